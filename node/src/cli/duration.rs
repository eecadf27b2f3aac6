//! Go `time.Duration` parsing and printing, because vault sends durations as Go strings
//! (`"8h0m0s"`) and shows TTLs in Go's shortened form (`768h`).

/// Nanoseconds per second.
pub const SECOND: i128 = 1_000_000_000;

/// Parses like vault's `parseutil.ParseDurationSecond`: bare integers are seconds,
/// `Nd` is days, otherwise Go duration syntax. Returns nanoseconds.
pub fn parse(input: &str) -> Result<i128, String> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(i128::from(secs) * SECOND);
    }
    if let Some(days) = s.strip_suffix('d') {
        if let Ok(d) = days.parse::<i64>() {
            return Ok(i128::from(d) * 86_400 * SECOND);
        }
    }
    parse_go(s).ok_or_else(|| format!("time: invalid duration {s:?}"))
}

fn parse_go(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += num * unit;
    }
    let ns = total.round() as i128;
    Some(if neg { -ns } else { ns })
}

/// Go's `time.Duration.String()`.
pub fn format(ns: i128) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if u < 1_000_000_000 {
        let (unit, div) = match u {
            0..=999 => ("ns", 1u128),
            1_000..=999_999 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", frac(u, div));
    }
    let secs_total = u / 1_000_000_000;
    let nanos = u % 1_000_000_000;
    let h = secs_total / 3600;
    let m = (secs_total % 3600) / 60;
    let s = secs_total % 60;
    let sec = frac(s * 1_000_000_000 + nanos, 1_000_000_000);
    if h > 0 {
        format!("{sign}{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{sign}{m}m{sec}s")
    } else {
        format!("{sign}{sec}s")
    }
}

fn frac(v: u128, div: u128) -> String {
    let whole = v / div;
    let rem = v % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Vault's `humanDuration`: Go's form with trailing zero units dropped (`1h`, `1h30m`).
pub fn human(ns: i128) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let mut s = format(ns);
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(idx) = s.find("h0m") {
        if idx > 0 {
            s = format!("{}{}", &s[..idx + 1], &s[idx + 3..]);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formatting() {
        assert_eq!(format(8 * 3600 * SECOND), "8h0m0s");
        assert_eq!(format(0), "0s");
        assert_eq!(format(90 * SECOND), "1m30s");
        assert_eq!(format(1_500_000_000), "1.5s");
        assert_eq!(format(500_000_000), "500ms");
    }

    #[test]
    fn parsing() {
        assert_eq!(parse("8h").unwrap(), 8 * 3600 * SECOND);
        assert_eq!(parse("3600").unwrap(), 3600 * SECOND);
        assert_eq!(parse("1h30m").unwrap(), 5400 * SECOND);
        assert_eq!(parse("2d").unwrap(), 2 * 86400 * SECOND);
        assert_eq!(parse("1.5h").unwrap(), 5400 * SECOND);
        assert!(parse("abc").is_err());
        assert!(parse("5x").is_err());
    }

    #[test]
    fn human_form() {
        assert_eq!(human(2_764_800 * SECOND), "768h");
        assert_eq!(human(5400 * SECOND), "1h30m");
        assert_eq!(human(60 * SECOND), "1m");
        assert_eq!(human(3601 * SECOND), "1h1s");
        assert_eq!(human(45 * SECOND), "45s");
    }
}
