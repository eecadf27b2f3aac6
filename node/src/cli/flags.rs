//! Go `flag`-package style parsing, because vault's flags behave that way: `-f`, `--f`,
//! `-f=v`, `-f v`, booleans take no separate value, and parsing stops at the first
//! positional argument (later `-x` words stay positional, with a warning like vault's).
//!
//! Two steps, as in ripgrep's low-level and high-level arguments: [`parse`] checks the
//! words against a command's flag list and validates every value (an unknown flag is an
//! error naming it), then a [`FlagSet`] struct declared with [`flag_set!`] resolves the
//! validated values into typed fields. Each flag's name is written once, beside its field,
//! so code reads `flags.key_shares`, never a string that could be misspelt.

use std::collections::HashMap;

use labnode_duration::GoDuration;

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
    /// A signed decimal integer.
    Int,
    /// A duration in vault's syntax (`30m`, `3600`, `1h30m`, `7d`).
    Duration,
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// Name without dashes.
    pub name: &'static str,
    /// Value shape.
    pub kind: Kind,
}

/// A flag value that passed validation.
#[derive(Debug, Clone)]
enum Given {
    Bool(bool),
    Text(String),
    Int(i64),
    Duration(GoDuration),
}

/// The low-level result of parsing: validated flag values plus the positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    values: HashMap<&'static str, Vec<Given>>,
    /// Positional arguments, in order.
    pub args: Vec<String>,
    /// Set when `-h`/`-help` was given.
    pub help: bool,
}

impl Parsed {
    fn last(&self, name: &str) -> Option<&Given> {
        self.values.get(name).and_then(|v| v.last())
    }

    fn texts(&self, name: &str) -> Vec<String> {
        self.values
            .get(name)
            .map(|given| {
                given
                    .iter()
                    .filter_map(|g| match g {
                        Given::Text(t) => Some(t.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A Rust type a flag resolves into; its [`Kind`] follows from the type.
pub trait FlagValue: Sized {
    /// How the flag is parsed.
    const KIND: Kind;
    /// The resolved value of flag `name` (absent flags give the type's "unset" value).
    fn take(parsed: &Parsed, name: &str) -> Self;
}

/// A boolean that is false unless given.
impl FlagValue for bool {
    const KIND: Kind = Kind::Bool;
    fn take(parsed: &Parsed, name: &str) -> Self {
        matches!(parsed.last(name), Some(Given::Bool(true)))
    }
}

/// A boolean whose absence matters (`-renewable` defaults to true, `-cas-required` is
/// sent only when given).
impl FlagValue for Option<bool> {
    const KIND: Kind = Kind::Bool;
    fn take(parsed: &Parsed, name: &str) -> Self {
        match parsed.last(name) {
            Some(Given::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

impl FlagValue for Option<String> {
    const KIND: Kind = Kind::Str;
    fn take(parsed: &Parsed, name: &str) -> Self {
        match parsed.last(name) {
            Some(Given::Text(t)) => Some(t.clone()),
            _ => None,
        }
    }
}

impl FlagValue for Option<i64> {
    const KIND: Kind = Kind::Int;
    fn take(parsed: &Parsed, name: &str) -> Self {
        match parsed.last(name) {
            Some(Given::Int(n)) => Some(*n),
            _ => None,
        }
    }
}

impl FlagValue for Option<GoDuration> {
    const KIND: Kind = Kind::Duration;
    fn take(parsed: &Parsed, name: &str) -> Self {
        match parsed.last(name) {
            Some(Given::Duration(d)) => Some(*d),
            _ => None,
        }
    }
}

/// Every occurrence, verbatim ([`Kind::Multi`]).
impl FlagValue for Vec<String> {
    const KIND: Kind = Kind::Multi;
    fn take(parsed: &Parsed, name: &str) -> Self {
        parsed.texts(name)
    }
}

/// Every occurrence split at commas, blanks dropped ([`Kind::List`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommaList {
    /// The items in order.
    pub items: Vec<String>,
}

impl FlagValue for CommaList {
    const KIND: Kind = Kind::List;
    fn take(parsed: &Parsed, name: &str) -> Self {
        CommaList {
            items: parsed.texts(name),
        }
    }
}

/// A group of flags resolved into one struct; commands compose groups.
pub trait FlagSet: Sized {
    /// Appends the flags of this set to `out`.
    fn add_flags(out: &mut Vec<Flag>);
    /// Reads the typed values out of a parse of these flags.
    fn resolve(parsed: &Parsed) -> Self;

    /// The flags of this set as a list.
    fn flags() -> Vec<Flag> {
        let mut out = Vec::new();
        Self::add_flags(&mut out);
        out
    }
}

/// Commands without flags of their own.
impl FlagSet for () {
    fn add_flags(_: &mut Vec<Flag>) {}
    fn resolve(_: &Parsed) -> Self {}
}

/// Declares a flag set: a struct whose fields are flags (`field: Type = "flag-name"`),
/// optionally embedding other sets (`[http: HttpFlags, ...]`) and listing flags vault
/// accepts that have no effect here (`ignore { "ca-path": Str }`).
macro_rules! flag_set {
    (
        $(#[$meta:meta])*
        pub struct $name:ident
        $([ $($group:ident : $group_ty:ident),* $(,)? ])?
        $(ignore { $($ignored:literal : $ignored_kind:ident),* $(,)? })?
        { $( $(#[$field_meta:meta])* $field:ident : $ty:ty = $flag:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name {
            $($( #[doc = concat!("The `", stringify!($group_ty), "` flags.")] pub $group: $group_ty, )*)?
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl $crate::cli::flags::FlagSet for $name {
            fn add_flags(out: &mut Vec<$crate::cli::flags::Flag>) {
                $($( <$group_ty as $crate::cli::flags::FlagSet>::add_flags(out); )*)?
                $($( out.push($crate::cli::flags::Flag {
                    name: $ignored,
                    kind: $crate::cli::flags::Kind::$ignored_kind,
                }); )*)?
                $( out.push($crate::cli::flags::Flag {
                    name: $flag,
                    kind: <$ty as $crate::cli::flags::FlagValue>::KIND,
                }); )*
            }

            fn resolve(parsed: &$crate::cli::flags::Parsed) -> Self {
                $name {
                    $($( $group: <$group_ty as $crate::cli::flags::FlagSet>::resolve(parsed), )*)?
                    $( $field: <$ty as $crate::cli::flags::FlagValue>::take(parsed, $flag), )*
                }
            }
        }
    };
}
pub(crate) use flag_set;

flag_set! {
    /// Connection flags every HTTP-speaking vault command accepts.
    pub struct HttpFlags
    ignore {
        "agent-address": Str,
        "ca-path": Str,
        "tls-server-name": Str,
        "namespace": Str,
        "ns": Str,
        "mfa": Multi,
        "non-interactive": Bool,
        "output-policy": Bool,
        "disable-redirects": Bool,
    }
    {
        /// `-address`, else `VAULT_ADDR`.
        address: Option<String> = "address",
        /// `-ca-cert`, else `VAULT_CACERT`.
        ca_cert: Option<String> = "ca-cert",
        /// `-client-cert`, else `VAULT_CLIENT_CERT`.
        client_cert: Option<String> = "client-cert",
        /// `-client-key`, else `VAULT_CLIENT_KEY`.
        client_key: Option<String> = "client-key",
        /// `-tls-skip-verify`, or `VAULT_SKIP_VERIFY`.
        tls_skip_verify: bool = "tls-skip-verify",
        /// `-header k=v`, sent on every request.
        header: Vec<String> = "header",
        /// Print the request as curl instead of sending it.
        output_curl_string: bool = "output-curl-string",
        /// Send `X-Vault-Policy-Override`.
        policy_override: bool = "policy-override",
        /// Ask for a wrapped response.
        wrap_ttl: Option<GoDuration> = "wrap-ttl",
    }
}

flag_set! {
    /// `-format` of commands that print data.
    pub struct OutputFlags {
        /// `table`, `json` or `yaml`; else `VAULT_FORMAT`.
        format: Option<String> = "format",
    }
}

flag_set! {
    /// `-field` of commands that print a secret.
    pub struct FieldFlag {
        /// Print only this field, raw.
        field: Option<String> = "field",
    }
}

flag_set! {
    /// Commands that take only the connection flags.
    pub struct HttpOnly [http: HttpFlags] {}
}

flag_set! {
    /// Commands that take the connection flags and `-format`.
    pub struct HttpOutput [http: HttpFlags, output: OutputFlags] {}
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Flags vault parses anywhere, so it does not warn when they follow positional arguments.
const GLOBAL_FLAGS: &[&str] = &["format", "output-curl-string", "output-policy"];

/// Vault's warning for flag-like words after the positional arguments (printed even when
/// parsing failed, for the words left after the failure, as vault does).
fn warn_trailing_flags(rest: &[String]) {
    let trailing: Vec<&str> = rest
        .iter()
        .filter(|a| a.starts_with('-') && *a != "-")
        .filter(|a| {
            let name = a.trim_start_matches('-');
            let name = name.split_once('=').map_or(name, |(n, _)| n);
            !GLOBAL_FLAGS.contains(&name)
        })
        .map(String::as_str)
        .collect();
    if !trailing.is_empty() {
        eprintln!(
            "Command flags must be provided before positional arguments. The following arguments \
             will not be parsed as flags: [{}]",
            trailing.join(",")
        );
    }
}

/// Parses `args` against `spec`, Go style.
pub fn parse(spec: &[Flag], args: &[String]) -> Result<Parsed, CliError> {
    let mut out = Parsed::default();
    let mut i = 0;
    let result = parse_into(spec, args, &mut i, &mut out);
    warn_trailing_flags(&args[i.min(args.len())..]);
    result?;
    out.args = args[i..].to_vec();
    Ok(out)
}

/// The flag loop; `i` is left at the first word not consumed (as Go's `f.Args()`).
fn parse_into(spec: &[Flag], args: &[String], i: &mut usize, out: &mut Parsed) -> Result<(), CliError> {
    while *i < args.len() {
        let arg = &args[*i];
        if arg.len() < 2 || !arg.starts_with('-') {
            return Ok(());
        }
        if arg == "--" {
            *i += 1;
            return Ok(());
        }
        let dashes = if arg.starts_with("--") { 2 } else { 1 };
        let body = &arg[dashes..];
        if body.starts_with('-') || body.starts_with('=') {
            return Err(CliError::Usage(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        *i += 1;
        if name == "h" || name == "help" {
            out.help = true;
            continue;
        }
        let Some(flag) = spec.iter().find(|f| f.name == name) else {
            return Err(CliError::Usage(format!("flag provided but not defined: -{name}")));
        };
        let value = if flag.kind == Kind::Bool {
            inline.unwrap_or_else(|| "true".into())
        } else if let Some(v) = inline {
            v
        } else if *i < args.len() {
            *i += 1;
            args[*i - 1].clone()
        } else {
            return Err(CliError::Usage(format!("flag needs an argument: -{name}")));
        };
        let invalid = |why: &dyn std::fmt::Display| {
            CliError::Usage(format!("invalid value {value:?} for flag -{name}: {why}"))
        };
        let given = match flag.kind {
            Kind::Bool => vec![Given::Bool(parse_bool(&value).ok_or_else(|| {
                CliError::Usage(format!(
                    "invalid boolean value {value:?} for -{name}: strconv.ParseBool: parsing {value:?}: \
                     invalid syntax"
                ))
            })?)],
            Kind::Int => vec![Given::Int(go_parse_int(&value).map_err(|e| invalid(&e))?)],
            Kind::Duration => vec![Given::Duration(
                labnode_duration::parse_signed(&value).map_err(|e| invalid(&e))?,
            )],
            Kind::List => value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Given::Text(s.to_string()))
                .collect(),
            Kind::Str | Kind::Multi => vec![Given::Text(value)],
        };
        out.values.entry(flag.name).or_default().extend(given);
    }
    Ok(())
}

/// Go's `strconv.ParseInt(s, 10, 64)` with its error text, as vault's int flags use it.
fn go_parse_int(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {s:?}: invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: value out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    flag_set! {
        /// A set exercising every kind.
        pub struct Sample [output: OutputFlags] {
            /// A boolean.
            force: bool = "force",
            /// A short boolean.
            f: bool = "f",
            /// A list.
            policy: CommaList = "policy",
            /// An integer.
            key_shares: Option<i64> = "key-shares",
            /// A duration.
            ttl: Option<GoDuration> = "ttl",
            /// A tri-state boolean.
            renewable: Option<bool> = "renewable",
            /// A verbatim repeatable.
            metadata: Vec<String> = "metadata",
        }
    }

    fn p(args: &[&str]) -> Result<(Sample, Vec<String>), CliError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let parsed = parse(&Sample::flags(), &args)?;
        Ok((Sample::resolve(&parsed), parsed.args))
    }

    #[test]
    fn go_style_forms() {
        let (s, args) = p(&[
            "-format=json",
            "--policy",
            "a,b",
            "-policy=c",
            "-f",
            "secret/x",
            "-force",
        ])
        .unwrap();
        assert_eq!(s.output.format.as_deref(), Some("json"));
        assert_eq!(s.policy.items, vec!["a", "b", "c"]);
        assert!(s.f);
        assert!(!s.force, "flags after the first positional stay positional");
        assert_eq!(args, vec!["secret/x", "-force"]);
    }

    #[test]
    fn bool_does_not_consume_next_word() {
        let (s, args) = p(&["-force", "path", "a=b"]).unwrap();
        assert!(s.force);
        assert_eq!(args, vec!["path", "a=b"]);
        let (s, _) = p(&["-force=false", "path"]).unwrap();
        assert!(!s.force);
        let (s, _) = p(&["-renewable=false"]).unwrap();
        assert_eq!(s.renewable, Some(false));
        assert_eq!(p(&[]).unwrap().0.renewable, None);
    }

    #[test]
    fn errors_match_go() {
        let err = |args: &[&str]| p(args).unwrap_err().to_string();
        assert_eq!(err(&["-bogus"]), "flag provided but not defined: -bogus");
        assert_eq!(err(&["-format"]), "flag needs an argument: -format");
        assert_eq!(
            err(&["-key-shares=x"]),
            "invalid value \"x\" for flag -key-shares: strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            err(&["-key-shares=99999999999999999999"]),
            "invalid value \"99999999999999999999\" for flag -key-shares: strconv.ParseInt: parsing \
             \"99999999999999999999\": value out of range"
        );
        assert_eq!(
            err(&["-force=x"]),
            "invalid boolean value \"x\" for -force: strconv.ParseBool: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            err(&["-ttl=abc"]),
            "invalid value \"abc\" for flag -ttl: time: invalid duration \"abc\""
        );
        assert_eq!(
            err(&["-ttl=99999999999999999999h"]),
            "invalid value \"99999999999999999999h\" for flag -ttl: time: invalid duration \
             \"99999999999999999999h\""
        );
        assert_eq!(err(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(err(&["-=x"]), "bad flag syntax: -=x");
    }

    #[test]
    fn typed_values() {
        let (s, _) = p(&[
            "-key-shares",
            "3",
            "-ttl=1h",
            "-metadata=a=b,c",
            "-metadata",
            "d=e",
        ])
        .unwrap();
        assert_eq!(s.key_shares, Some(3));
        assert_eq!(s.ttl.map(|d| d.to_string()).as_deref(), Some("1h0m0s"));
        assert_eq!(s.metadata, vec!["a=b,c", "d=e"]);
        let (s, _) = p(&[]).unwrap();
        assert_eq!(s.key_shares, None);
        assert!(s.policy.items.is_empty());
        let (s, _) = p(&["-policy=,a,,b"]).unwrap();
        assert_eq!(s.policy.items, ["a", "b"]);
    }

    #[test]
    fn double_dash_single_dash_and_help() {
        let (_, args) = p(&["--", "-force"]).unwrap();
        assert_eq!(args, vec!["-force"]);
        let (_, args) = p(&["-", "x"]).unwrap();
        assert_eq!(args, vec!["-", "x"]);
        let args: Vec<String> = ["-h", "-force"].map(String::from).to_vec();
        assert!(parse(&Sample::flags(), &args).unwrap().help);
    }
}
