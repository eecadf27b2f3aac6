//! Vault's duration syntax, parsed and printed exactly as Vault does, with checked arithmetic.
//!
//! Owns the rules of `parseutil.ParseDurationSecond`, which Vault applies to every duration it
//! reads (CLI flags, API fields, headers, config): the empty string is zero, an integer
//! (`300`, `-5`) is seconds, an integer followed by `d` (`7d`) is days, and anything else is a
//! Go `time.ParseDuration` string (`1h30m`, `1.5h`, `500ms`, `10us`, `10µs`, `3ns`). Values are
//! Go's `time.Duration`: signed nanoseconds in 64 bits (about ±292 years). Where Go wraps
//! around silently (`99999999999d`), this crate returns [`DurationError::Overflow`]; no input
//! panics. Error texts are Go's (`time: invalid duration "x"`), because the CLI prints them
//! byte-for-byte like Vault; each names the input. Printing follows Go's `Duration.String`
//! (`1h0m0s`) and Vault's shortened `humanDuration` (`1h`).
//!
//! This crate is a leaf: it must never import the server, the CLI, the config crate or
//! serde — callers decide what a JSON number or an HCL value means and hand over text.

mod format;
mod parse;

use std::fmt;
use std::time::Duration;

pub use format::{format_go, format_human};

/// Nanoseconds in one second.
const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Go's `time.Duration`: signed nanoseconds. Negative values are allowed here; [`parse`] and
/// [`GoDuration::to_std`] are where a caller says it wants none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(i64);

impl GoDuration {
    /// No time at all.
    pub const ZERO: GoDuration = GoDuration(0);

    /// A duration of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: i64) -> GoDuration {
        GoDuration(nanos)
    }

    /// The duration in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// `secs` seconds, or `None` when that does not fit (Go would wrap around).
    pub fn checked_from_secs(secs: i64) -> Option<GoDuration> {
        secs.checked_mul(NANOS_PER_SEC).map(GoDuration)
    }

    /// Whole seconds, truncated toward zero like Go's `int(d.Seconds())`.
    pub const fn whole_secs(self) -> i64 {
        self.0 / NANOS_PER_SEC
    }

    /// Whether the duration is below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The same span as a [`Duration`], or `None` when it is negative.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.0).ok().map(Duration::from_nanos)
    }
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()`: `1h0m0s`, `1.5s`, `500ms`, `-3µs`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format::go_string(self.0 < 0, u128::from(self.0.unsigned_abs())))
    }
}

/// Why `strconv.ParseInt` refused the number in front of a `d` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntProblem {
    /// Not an optionally signed run of decimal digits.
    Syntax,
    /// Outside the 64-bit signed range.
    Range,
}

impl fmt::Display for IntProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IntProblem::Syntax => "invalid syntax",
            IntProblem::Range => "value out of range",
        })
    }
}

/// Why a duration was refused; every message names the input as Go quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not Go duration syntax (`abc`, `1h 30m`, `.s`).
    #[error("time: invalid duration {}", quote(.input))]
    Invalid {
        /// The text as given.
        input: String,
    },
    /// A number without a unit where one is needed (`1.5`, `2h30`).
    #[error("time: missing unit in duration {}", quote(.input))]
    MissingUnit {
        /// The text as given.
        input: String,
    },
    /// A unit Go does not know (`5x`, `3w`).
    #[error("time: unknown unit {} in duration {}", quote(.unit), quote(.input))]
    UnknownUnit {
        /// The unrecognised unit.
        unit: String,
        /// The text as given.
        input: String,
    },
    /// The number before a `d` suffix is not an integer (`1.5d`): Vault only takes whole days.
    #[error("strconv.ParseInt: parsing {}: {problem}", quote(.days))]
    Days {
        /// The text before the `d`.
        days: String,
        /// What is wrong with it.
        problem: IntProblem,
    },
    /// The value does not fit in Go's 64-bit nanoseconds (about 292 years); Go's own text.
    #[error("time: invalid duration {}", quote(.input))]
    Overflow {
        /// The text as given.
        input: String,
    },
    /// A negative duration where only zero or more is allowed.
    #[error("negative duration {} where only zero or more is allowed", quote(.input))]
    Negative {
        /// The text as given.
        input: String,
    },
}

/// Parses Vault's duration syntax into a signed Go duration; see the crate doc for the rules.
pub fn parse_signed(input: &str) -> Result<GoDuration, DurationError> {
    parse::vault_duration(input).map(GoDuration)
}

/// Parses Vault's duration syntax into a [`Duration`]; a negative value is
/// [`DurationError::Negative`]. The empty string is zero, as in Vault.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let d = parse_signed(input)?;
    d.to_std().ok_or_else(|| DurationError::Negative {
        input: input.to_owned(),
    })
}

/// Go's `time.quote`: double quotes, `"` and `\` escaped, bytes of control or non-ASCII
/// characters as `\xNN`, so a hostile input cannot break the line it is reported on.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600 * NANOS_PER_SEC;

    fn ns(input: &str) -> i64 {
        parse_signed(input)
            .unwrap_or_else(|e| panic!("{input:?}: {e}"))
            .as_nanos()
    }

    fn err(input: &str) -> String {
        parse_signed(input).unwrap_err().to_string()
    }

    #[test]
    fn vault_forms() {
        assert_eq!(ns(""), 0);
        assert_eq!(ns("300"), 300 * NANOS_PER_SEC);
        assert_eq!(ns("+7"), 7 * NANOS_PER_SEC);
        assert_eq!(ns("-5"), -5 * NANOS_PER_SEC);
        assert_eq!(ns("2d"), 48 * H);
        assert_eq!(ns("-1d"), -24 * H);
        assert_eq!(ns("1h30m"), 90 * 60 * NANOS_PER_SEC);
        assert_eq!(ns("1.5h"), 90 * 60 * NANOS_PER_SEC);
        assert_eq!(ns("8h0m0s"), 8 * H);
        assert_eq!(ns("500ms"), 500_000_000);
        assert_eq!(ns("10us"), 10_000);
        assert_eq!(ns("10µs"), 10_000);
        assert_eq!(ns("10μs"), 10_000);
        assert_eq!(ns("3ns"), 3);
        assert_eq!(ns(".5s"), 500_000_000);
        assert_eq!(ns("1.s"), NANOS_PER_SEC);
        assert_eq!(ns("0"), 0);
        assert_eq!(ns("-0"), 0);
        assert_eq!(ns("-1.5m"), -90 * NANOS_PER_SEC);
        assert_eq!(ns("2562047h47m16.854775807s"), i64::MAX);
        assert_eq!(ns("-2562047h47m16.854775808s"), i64::MIN);
    }

    #[test]
    fn go_error_texts() {
        assert_eq!(err("abc"), r#"time: invalid duration "abc""#);
        assert_eq!(err("5x"), r#"time: unknown unit "x" in duration "5x""#);
        assert_eq!(err("1.5"), r#"time: missing unit in duration "1.5""#);
        assert_eq!(err("1.5d"), r#"strconv.ParseInt: parsing "1.5": invalid syntax"#);
        assert_eq!(err("d"), r#"strconv.ParseInt: parsing "": invalid syntax"#);
        assert_eq!(
            err("99999999999999999999d"),
            r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#
        );
        assert_eq!(err("1h 30m"), r#"time: unknown unit "h " in duration "1h 30m""#);
        assert_eq!(err(".s"), r#"time: invalid duration ".s""#);
        assert_eq!(err("-"), r#"time: invalid duration "-""#);
        assert_eq!(err("a\"\n"), r#"time: invalid duration "a\"\x0a""#);
        assert_eq!(
            err("5é"),
            r#"time: unknown unit "\xc3\xa9" in duration "5\xc3\xa9""#
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        for input in [
            "99999999999999999999h",
            "99999999999999999h",
            "2562048h",
            "2562047h47m16.854775808s",
            "9223372037",
            "106752d",
            "9223372036854775807d",
            "18446744073709551616ns",
        ] {
            assert_eq!(
                parse_signed(input),
                Err(DurationError::Overflow {
                    input: input.to_owned()
                }),
                "{input}"
            );
        }
        assert_eq!(
            err("99999999999999999999h"),
            r#"time: invalid duration "99999999999999999999h""#
        );
    }

    #[test]
    fn std_durations_refuse_negatives() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse(""), Ok(Duration::ZERO));
        assert_eq!(parse("-0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse("-5s").unwrap_err().to_string(),
            r#"negative duration "-5s" where only zero or more is allowed"#
        );
    }

    #[test]
    fn seconds_helpers() {
        assert_eq!(
            GoDuration::checked_from_secs(2).map(GoDuration::as_nanos),
            Some(2_000_000_000)
        );
        assert_eq!(GoDuration::checked_from_secs(i64::MAX), None);
        assert_eq!(GoDuration::from_nanos(-1_500_000_000).whole_secs(), -1);
        assert_eq!(GoDuration::from_nanos(-1).to_std(), None);
    }
}
