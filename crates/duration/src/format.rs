//! Printing: Go's `Duration.String()` and Vault's `humanDuration`.

use std::time::Duration;

use crate::GoDuration;

/// Go's `Duration.String()` for a [`Duration`] (`1h0m0s`, `1.5s`, `500ms`, `0s`), as Vault
/// sends durations in request bodies. Spans beyond Go's range print the same way.
pub fn format_go(d: Duration) -> String {
    go_string(false, d.as_nanos())
}

/// Vault's `humanDuration`: Go's form with zero minutes and seconds dropped (`768h`,
/// `1h30m`, `1h1s`), as the CLI shows TTLs.
pub fn format_human(d: GoDuration) -> String {
    if d == GoDuration::ZERO {
        return "0s".into();
    }
    let mut s = d.to_string();
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(idx) = s.find("h0m").filter(|&i| i > 0) {
        s.replace_range(idx + 1..idx + 3, "");
    }
    s
}

/// Go's `Duration.format` on a sign and a magnitude in nanoseconds.
pub(crate) fn go_string(negative: bool, nanos: u128) -> String {
    let sign = if negative && nanos > 0 { "-" } else { "" };
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, per_unit) = match nanos {
            0..=999 => ("ns", 1),
            1_000..=999_999 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", decimal(nanos, per_unit));
    }
    let secs = nanos / 1_000_000_000;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    let (minutes, hours) = ((secs / 60) % 60, secs / 3600);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// `value / per_unit` with the remainder as a decimal fraction, trailing zeros dropped.
fn decimal(value: u128, per_unit: u128) -> String {
    let (whole, rest) = (value / per_unit, value % per_unit);
    if rest == 0 {
        return whole.to_string();
    }
    let width = per_unit.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(nanos: i64) -> String {
        GoDuration::from_nanos(nanos).to_string()
    }

    #[test]
    fn go_strings() {
        assert_eq!(go(0), "0s");
        assert_eq!(go(8 * 3_600_000_000_000), "8h0m0s");
        assert_eq!(go(90_000_000_000), "1m30s");
        assert_eq!(go(1_500_000_000), "1.5s");
        assert_eq!(go(500_000_000), "500ms");
        assert_eq!(go(1_500), "1.5µs");
        assert_eq!(go(7), "7ns");
        assert_eq!(go(-3_000), "-3µs");
        assert_eq!(go(3_601_000_000_001), "1h0m1.000000001s");
        assert_eq!(go(i64::MAX), "2562047h47m16.854775807s");
        assert_eq!(go(i64::MIN), "-2562047h47m16.854775808s");
        assert_eq!(format_go(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_go(Duration::ZERO), "0s");
    }

    #[test]
    fn human_form() {
        let secs = |s: i64| GoDuration::checked_from_secs(s).unwrap();
        assert_eq!(format_human(secs(2_764_800)), "768h");
        assert_eq!(format_human(secs(5400)), "1h30m");
        assert_eq!(format_human(secs(60)), "1m");
        assert_eq!(format_human(secs(3601)), "1h1s");
        assert_eq!(format_human(secs(45)), "45s");
        assert_eq!(format_human(GoDuration::ZERO), "0s");
    }
}
