//! Value grammars shared by the HCL walker and the environment overrides: Vault-style
//! durations, addresses, log levels, go-discover strings and "did you mean" suggestions.
//!
//! Every function returns `Err(String)` describing what was expected, so the caller can
//! prefix it with a file location or an environment variable name.

use std::time::Duration;

/// Parses integer seconds ("90") or a Go duration ("90s", "1h30m", "250ms", and Vault's
/// whole days "2d") with `labnode-duration`, the one parser the CLI and the API use too.
/// An empty value is refused here: the parser reads it as zero, a config file never means that.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || {
        format!(
            "expected a duration (seconds or a Go duration such as \"90s\" or \"1h30m\"), found \"{text}\""
        )
    };
    if text.is_empty() {
        return Err(expected());
    }
    labnode_duration::parse(text).map_err(|_| expected())
}

pub(crate) fn parse_bool_str(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Normalises a log level to trace|debug|info|warn|error, accepting any case and the
/// aliases "warning" and "err" that Vault (hclog) accepts.
pub(crate) fn parse_log_level(text: &str) -> Result<String, String> {
    let level = match text.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "err" => "error",
        _ => {
            return Err(format!(
                "expected one of trace, debug, info, warn, error, found \"{text}\""
            ))
        }
    };
    Ok(level.to_owned())
}

/// Normalises `log_format`: only the two formats the server can emit.
pub(crate) fn parse_log_format(text: &str) -> Result<String, String> {
    match text.to_ascii_lowercase().as_str() {
        "standard" => Ok("standard".to_owned()),
        "json" => Ok("json".to_owned()),
        _ => Err(format!("expected \"standard\" or \"json\", found \"{text}\"")),
    }
}

/// Checks an advertised or leader address: `http(s)://host[:port][/path]`.
pub(crate) fn check_url(text: &str) -> Result<(), String> {
    let expected = || format!("expected a URL such as \"https://10.0.1.10:8200\", found \"{text}\"");
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(expected());
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "expected scheme http or https, found \"{scheme}\" in \"{text}\""
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = split_host_port(authority).ok_or_else(expected)?;
    if host.is_empty() {
        return Err(expected());
    }
    check_host(host).map_err(|()| expected())?;
    match port {
        None => Ok(()),
        Some(port) => check_port(port, 1)
            .map(drop)
            .map_err(|e| format!("{e} in \"{text}\"")),
    }
}

/// Checks a bind address: `host:port`, IPv6 bracketed; port 0 asks the OS for one.
pub(crate) fn check_host_port(text: &str) -> Result<(), String> {
    let expected = || format!("expected host:port such as \"0.0.0.0:8200\", found \"{text}\"");
    match split_host_port(text) {
        Some((host, Some(port))) if !host.is_empty() => {
            check_host(host).map_err(|()| expected())?;
            check_port(port, 0)
                .map(drop)
                .map_err(|e| format!("{e} in \"{text}\""))
        }
        _ => Err(expected()),
    }
}

/// Parses a port number within `min..=65535`.
pub(crate) fn check_port(text: &str, min: u16) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port >= min => Ok(port),
        _ => Err(format!(
            "port must be a number from {min} to 65535, found \"{text}\""
        )),
    }
}

/// Splits `host[:port]`, keeping IPv6 literals in brackets intact.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = authority.strip_prefix('[') {
        let (host, tail) = inner.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        return match tail {
            "" => Some((host, None)),
            _ => Some((host, Some(tail.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// Hosts are DNS names or IP literals; anything with spaces or odd punctuation is a typo.
fn check_host(host: &str) -> Result<(), ()> {
    let ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

/// Parses a go-discover `auto_join` string into its key/value pairs and checks what
/// labnode's discovery needs: `provider=aws`, no duplicate keys.
pub fn parse_auto_join(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if chars.next() != Some('=') || key.is_empty() {
            return Err(format!(
                "expected space-separated key=value pairs, found \"{text}\""
            ));
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quoted value for \"{key}\" in \"{text}\"")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(format!("duplicate key \"{key}\" in \"{text}\""));
        }
        pairs.push((key, value));
    }
    match pairs.iter().find(|(k, _)| k == "provider") {
        Some((_, provider)) if provider == "aws" => Ok(pairs),
        Some((_, provider)) => Err(format!(
            "unsupported provider \"{provider}\" (labnode supports provider=aws)"
        )),
        None => Err(format!("missing provider=aws in \"{text}\"")),
    }
}

/// The closest known name within a small edit distance, for "did you mean" hints.
pub(crate) fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (word.len() / 3).max(2);
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(
            parse_duration("99999999999999999999h").is_err(),
            "overflow is refused, not a panic"
        );
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "s", "10x", "-5s", "1h 30m", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn log_levels() {
        assert_eq!(parse_log_level("INFO").as_deref(), Ok("info"));
        assert_eq!(parse_log_level("Warning").as_deref(), Ok("warn"));
        assert_eq!(parse_log_level("err").as_deref(), Ok("error"));
        assert_eq!(
            parse_log_level("loud"),
            Err("expected one of trace, debug, info, warn, error, found \"loud\"".to_owned())
        );
    }

    #[test]
    fn urls_and_bind_addresses() {
        assert_eq!(check_url("https://vault.hcvop.com:8200"), Ok(()));
        assert_eq!(check_url("http://10.0.0.1"), Ok(()));
        assert_eq!(check_url("https://[::1]:8200/"), Ok(()));
        assert_eq!(
            check_url("ftp://x:1"),
            Err("expected scheme http or https, found \"ftp\" in \"ftp://x:1\"".to_owned())
        );
        assert_eq!(
            check_url("https://x:99999"),
            Err("port must be a number from 1 to 65535, found \"99999\" in \"https://x:99999\"".to_owned())
        );
        assert!(check_url("vault.hcvop.com:8200").is_err());
        assert!(check_url("https://bad host:8200").is_err());
        assert_eq!(check_host_port("0.0.0.0:8200"), Ok(()));
        assert_eq!(check_host_port("[::]:8201"), Ok(()));
        assert_eq!(check_host_port("127.0.0.1:0"), Ok(()));
        assert!(check_host_port("0.0.0.0").is_err());
        assert!(check_host_port("::1:8200").is_err());
        assert!(check_host_port(":8200").is_err());
    }

    #[test]
    fn auto_join_grammar() {
        let pairs = parse_auto_join("provider=aws region=us-east-1 tag_key=vault tag_value=\"east 1\"");
        assert_eq!(
            pairs,
            Ok(vec![
                ("provider".to_owned(), "aws".to_owned()),
                ("region".to_owned(), "us-east-1".to_owned()),
                ("tag_key".to_owned(), "vault".to_owned()),
                ("tag_value".to_owned(), "east 1".to_owned()),
            ])
        );
        assert_eq!(
            parse_auto_join("provider=aws region=a region=b"),
            Err("duplicate key \"region\" in \"provider=aws region=a region=b\"".to_owned())
        );
        assert_eq!(
            parse_auto_join("provider=gce"),
            Err("unsupported provider \"gce\" (labnode supports provider=aws)".to_owned())
        );
        assert!(parse_auto_join("region=us-east-1").is_err());
        assert!(parse_auto_join("provider aws").is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("adress", &["address", "cluster_address"]),
            Some("address")
        );
        assert_eq!(
            suggest("tls_disabled", &["tls_disable", "address"]),
            Some("tls_disable")
        );
        assert_eq!(suggest("zzz", &["address"]), None);
    }
}
