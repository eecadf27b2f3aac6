//! The parsers: Vault's `ParseDurationSecond` front end and a port of Go's
//! `time.ParseDuration`, both on checked integers (a fraction is the only float, as in Go).

use crate::{DurationError, IntProblem, NANOS_PER_SEC};

/// Nanoseconds in a day, for Vault's `Nd` form.
const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SEC;

/// 2^63: the magnitude of `i64::MIN`, the bound Go's parser checks against.
const LIMIT: u64 = 1 << 63;

/// `parseutil.ParseDurationSecond` on a string, in nanoseconds.
pub(crate) fn vault_duration(input: &str) -> Result<i64, DurationError> {
    let overflow = || DurationError::Overflow {
        input: input.to_owned(),
    };
    if input.is_empty() {
        return Ok(0);
    }
    if let Ok(secs) = go_parse_int(input) {
        return secs.checked_mul(NANOS_PER_SEC).ok_or_else(overflow);
    }
    if let Some(days) = input.strip_suffix('d') {
        let count = go_parse_int(days).map_err(|problem| DurationError::Days {
            days: days.to_owned(),
            problem,
        })?;
        return count.checked_mul(NANOS_PER_DAY).ok_or_else(overflow);
    }
    go_duration(input)
}

/// Go's `strconv.ParseInt(s, 10, 64)`: an optional sign and at least one decimal digit.
fn go_parse_int(s: &str) -> Result<i64, IntProblem> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IntProblem::Syntax);
    }
    // Only digits and a sign are left, so a parse failure can only be the range.
    s.parse::<i64>().map_err(|_| IntProblem::Range)
}

/// A port of Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`.
fn go_duration(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid {
        input: input.to_owned(),
    };
    let overflow = || DurationError::Overflow {
        input: input.to_owned(),
    };
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let before = rest.len();
        let (whole, after_int) = leading_int(rest).ok_or_else(overflow)?;
        rest = after_int;
        let had_int = before != rest.len();
        let (mut fraction, mut scale, mut had_fraction) = (0u64, 1f64, false);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (f, s, after_fraction) = leading_fraction(after_dot);
            had_fraction = after_dot.len() != after_fraction.len();
            (fraction, scale, rest) = (f, s, after_fraction);
        }
        if !had_int && !had_fraction {
            return Err(invalid());
        }
        // The unit runs up to the next digit or dot, both ASCII, so the split is on a
        // character boundary.
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
            });
        }
        let (unit_text, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        let unit = unit_nanos(unit_text).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_text.to_owned(),
            input: input.to_owned(),
        })?;
        if whole > LIMIT / unit {
            return Err(overflow());
        }
        let mut value = whole * unit;
        if fraction > 0 {
            // At most 3.6e12 (nanoseconds in an hour), so the float is exact enough and
            // the conversion cannot saturate.
            value += (fraction as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(overflow());
            }
        }
        // Both terms are at most 2^63, so the sum fits in u64 before the check.
        total += value;
        if total > LIMIT {
            return Err(overflow());
        }
    }
    if negative {
        // total <= 2^63, whose negation is exactly i64::MIN.
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| overflow())
}

/// Go's unit table.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Go's `leadingInt`: the leading digits as a number, `None` past 2^63.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut x: u64 = 0;
    for b in s[..len].bytes() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(b - b'0');
        if x > LIMIT {
            return None;
        }
    }
    Some((x, &s[len..]))
}

/// Go's `leadingFraction`: the leading digits and 10^(digits kept); digits past the
/// precision of u64 are consumed but ignored, never an error.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    let (mut x, mut scale, mut saturated) = (0u64, 1f64, false);
    for b in s[..len].bytes() {
        if saturated {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            saturated = true;
            continue;
        }
        let next = x * 10 + u64::from(b - b'0');
        if next > LIMIT {
            saturated = true;
            continue;
        }
        x = next;
        scale *= 10.0;
    }
    (x, scale, &s[len..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_parse_int_rules() {
        assert_eq!(go_parse_int("42"), Ok(42));
        assert_eq!(go_parse_int("-42"), Ok(-42));
        assert_eq!(go_parse_int("+0"), Ok(0));
        assert_eq!(go_parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(go_parse_int("9223372036854775808"), Err(IntProblem::Range));
        for bad in ["", "+", "-", "1_000", "0x10", " 1", "1.0", "--1"] {
            assert_eq!(go_parse_int(bad), Err(IntProblem::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn fractions_keep_go_precision() {
        assert_eq!(go_duration("1.000000001s"), Ok(1_000_000_001));
        assert_eq!(go_duration("0.1234567890123456789012345s"), Ok(123_456_789));
        assert_eq!(go_duration("1.5µs"), Ok(1_500));
    }
}
