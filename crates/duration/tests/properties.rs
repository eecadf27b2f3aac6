//! Properties over random inputs: nothing panics, and printing then parsing gives back the
//! same duration.

use std::time::Duration;

use labnode_duration::{format_go, format_human, parse, parse_signed, DurationError, GoDuration};
use proptest::prelude::*;

/// Text shaped like a duration (signs, digits, dots, units, `d`, stray bytes), so the parser's
/// deeper branches see many inputs, not only its first refusal.
fn duration_like() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[-+]?([0-9]{0,25}(\\.[0-9]{0,25})?(ns|us|µs|μs|ms|s|m|h|d|x| |é)?){0,5}")
        .expect("valid regex")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_text_never_panics(input in any::<String>()) {
        let signed = parse_signed(&input);
        let unsigned = parse(&input);
        // The two agree: the unsigned form is the signed one minus negatives.
        match (&signed, &unsigned) {
            (Ok(d), Ok(u)) => prop_assert_eq!(d.to_std(), Some(*u)),
            (Ok(d), Err(DurationError::Negative { .. })) => prop_assert!(d.is_negative()),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            other => prop_assert!(false, "disagree on {:?}: {:?}", input, other),
        }
        if let Err(e) = signed {
            prop_assert!(!e.to_string().contains('\n'), "an error stays on one line: {}", e);
        }
    }

    #[test]
    fn duration_like_text_never_panics(input in duration_like()) {
        if let Ok(d) = parse_signed(&input) {
            // Whatever parsed prints and reparses to itself.
            prop_assert_eq!(parse_signed(&d.to_string()), Ok(d));
            let _ = format_human(d);
        }
    }

    #[test]
    fn go_strings_round_trip(nanos in any::<i64>()) {
        let d = GoDuration::from_nanos(nanos);
        prop_assert_eq!(parse_signed(&d.to_string()), Ok(d));
    }

    #[test]
    fn std_durations_round_trip(nanos in 0..=i64::MAX as u64) {
        let d = Duration::from_nanos(nanos);
        prop_assert_eq!(parse(&format_go(d)), Ok(d));
    }

    #[test]
    fn integer_seconds_are_checked(secs in any::<i64>()) {
        let parsed = parse_signed(&secs.to_string());
        match GoDuration::checked_from_secs(secs) {
            Some(d) => prop_assert_eq!(parsed, Ok(d)),
            None => {
                let overflowed = matches!(parsed, Err(DurationError::Overflow { .. }));
                prop_assert!(overflowed);
            }
        }
    }

    #[test]
    fn whole_days_are_checked(days in any::<i64>()) {
        let parsed = parse_signed(&format!("{days}d"));
        match days.checked_mul(86_400).and_then(GoDuration::checked_from_secs) {
            Some(d) => prop_assert_eq!(parsed, Ok(d)),
            None => {
                let overflowed = matches!(parsed, Err(DurationError::Overflow { .. }));
                prop_assert!(overflowed);
            }
        }
    }
}
