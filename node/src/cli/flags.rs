//! Go `flag`-package style parsing, because vault's flags behave that way: `-f`, `--f`,
//! `-f=v`, `-f v`, booleans take no separate value, and parsing stops at the first
//! positional argument (later `-x` words stay positional, with a warning like vault's).

use std::collections::HashMap;

use super::duration;
use super::CliError;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `-x` or `-x=false`; never consumes the next word.
    Bool,
    /// A single string; the last occurrence wins.
    Str,
    /// A repeatable string (`-policy=a -policy=b`); comma-separated values are split.
    List,
    /// A repeatable string kept verbatim (no comma splitting), e.g. `-metadata k=v`.
    Multi,
    /// A signed integer.
    Int,
    /// A duration (`30m`, `3600`, `1h30m`), validated at parse time.
    Duration,
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// Name without dashes.
    pub name: &'static str,
    /// Value shape.
    pub kind: Kind,
}

/// Shorthand constructor so flag tables stay readable.
pub const fn flag(name: &'static str, kind: Kind) -> Flag {
    Flag { name, kind }
}

/// Connection flags every HTTP-speaking vault command accepts.
pub const HTTP: &[Flag] = &[
    flag("address", Kind::Str),
    flag("agent-address", Kind::Str),
    flag("ca-cert", Kind::Str),
    flag("ca-path", Kind::Str),
    flag("client-cert", Kind::Str),
    flag("client-key", Kind::Str),
    flag("tls-server-name", Kind::Str),
    flag("tls-skip-verify", Kind::Bool),
    flag("namespace", Kind::Str),
    flag("ns", Kind::Str),
    flag("header", Kind::Multi),
    flag("mfa", Kind::Multi),
    flag("non-interactive", Kind::Bool),
    flag("output-curl-string", Kind::Bool),
    flag("output-policy", Kind::Bool),
    flag("policy-override", Kind::Bool),
    flag("disable-redirects", Kind::Bool),
    flag("wrap-ttl", Kind::Duration),
];

/// Output flags of commands that print data.
pub const OUTPUT: &[Flag] = &[flag("format", Kind::Str)];

/// `-field` for commands that print a secret.
pub const FIELD: &[Flag] = &[flag("field", Kind::Str)];

/// The result of parsing: flag values plus the remaining positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    values: HashMap<&'static str, Vec<String>>,
    /// Positional arguments, in order.
    pub args: Vec<String>,
    /// Set when `-h`/`-help` was given.
    pub help: bool,
}

impl Parsed {
    /// Whether a boolean flag is set (last occurrence wins).
    pub fn bool(&self, name: &str) -> bool {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .is_some_and(|v| parse_bool(v) == Some(true))
    }

    /// Whether the flag appeared at all, so defaults can be told from explicit values.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The last value given for a string flag.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    /// The string value or `""`, matching Go's zero value.
    pub fn string(&self, name: &str) -> String {
        self.str(name).unwrap_or_default().to_string()
    }

    /// Every value of a repeatable flag.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// An integer flag (validated at parse time), or the default.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.str(name).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    /// A duration flag in nanoseconds (validated at parse time), or zero.
    pub fn duration(&self, name: &str) -> i128 {
        self.str(name).and_then(|v| duration::parse(v).ok()).unwrap_or(0)
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` against the union of `sets`, Go style.
pub fn parse(sets: &[&[Flag]], args: &[String]) -> Result<Parsed, CliError> {
    let lookup = |name: &str| {
        sets.iter()
            .flat_map(|s| s.iter())
            .find(|f| f.name == name)
            .copied()
    };
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let dashes = if arg.starts_with("--") { 2 } else { 1 };
        if arg == "--" {
            i += 1;
            break;
        }
        let body = &arg[dashes..];
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(CliError::Usage(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        i += 1;
        if name == "h" || name == "help" {
            out.help = true;
            continue;
        }
        let Some(spec) = lookup(name) else {
            return Err(CliError::Usage(format!("flag provided but not defined: -{name}")));
        };
        let value = if spec.kind == Kind::Bool {
            let v = inline.unwrap_or_else(|| "true".into());
            if parse_bool(&v).is_none() {
                return Err(CliError::Usage(format!(
                    "invalid boolean value {v:?} for -{name}: parse error"
                )));
            }
            v
        } else if let Some(v) = inline {
            v
        } else if i < args.len() {
            i += 1;
            args[i - 1].clone()
        } else {
            return Err(CliError::Usage(format!("flag needs an argument: -{name}")));
        };
        let invalid = |why: &str| CliError::Usage(format!("invalid value {value:?} for flag -{name}: {why}"));
        match spec.kind {
            Kind::Int if value.parse::<i64>().is_err() => return Err(invalid("parse error")),
            Kind::Duration if duration::parse(&value).is_err() => {
                return Err(invalid(&format!("time: invalid duration {value:?}")))
            }
            _ => {}
        }
        let slot = out.values.entry(spec.name).or_default();
        if spec.kind == Kind::List {
            slot.extend(
                value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            );
        } else {
            slot.push(value);
        }
    }
    out.args = args[i..].to_vec();
    let late: Vec<&str> = out
        .args
        .iter()
        .skip(1)
        .filter(|a| a.len() > 1 && a.starts_with('-'))
        .map(String::as_str)
        .collect();
    if !late.is_empty() {
        eprintln!(
            "Command flags must be provided before positional arguments. The following arguments \
             will not be parsed as flags: [{}]",
            late.join(",")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[Flag] = &[
        flag("force", Kind::Bool),
        flag("f", Kind::Bool),
        flag("format", Kind::Str),
        flag("policy", Kind::List),
        flag("key-shares", Kind::Int),
        flag("ttl", Kind::Duration),
    ];

    fn p(args: &[&str]) -> Result<Parsed, CliError> {
        parse(&[SPEC], &args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn go_style_forms() {
        let r = p(&[
            "-format=json",
            "--policy",
            "a,b",
            "-policy=c",
            "-f",
            "secret/x",
            "-force",
        ])
        .unwrap();
        assert_eq!(r.str("format"), Some("json"));
        assert_eq!(r.list("policy"), vec!["a", "b", "c"]);
        assert!(r.bool("f"));
        assert!(
            !r.bool("force"),
            "flags after the first positional stay positional"
        );
        assert_eq!(r.args, vec!["secret/x", "-force"]);
    }

    #[test]
    fn bool_does_not_consume_next_word() {
        let r = p(&["-force", "path", "a=b"]).unwrap();
        assert!(r.bool("force"));
        assert_eq!(r.args, vec!["path", "a=b"]);
        let r = p(&["-force=false", "path"]).unwrap();
        assert!(!r.bool("force"));
    }

    #[test]
    fn errors_match_go() {
        assert_eq!(
            p(&["-bogus"]).unwrap_err().to_string(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            p(&["-format"]).unwrap_err().to_string(),
            "flag needs an argument: -format"
        );
        assert_eq!(
            p(&["-key-shares=x"]).unwrap_err().to_string(),
            "invalid value \"x\" for flag -key-shares: parse error"
        );
        assert!(p(&["-ttl=abc"]).is_err());
        assert_eq!(p(&["---x"]).unwrap_err().to_string(), "bad flag syntax: ---x");
    }

    #[test]
    fn double_dash_and_single_dash() {
        let r = p(&["--", "-force"]).unwrap();
        assert_eq!(r.args, vec!["-force"]);
        let r = p(&["-", "x"]).unwrap();
        assert_eq!(r.args, vec!["-", "x"]);
        assert_eq!(p(&["-key-shares", "3"]).unwrap().int("key-shares", 5), 3);
        assert_eq!(p(&[]).unwrap().int("key-shares", 5), 5);
    }
}
