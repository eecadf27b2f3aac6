//! Typed access to request fields, coercing the strings `vault write k=v` sends.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::CoreError;

/// Parses a Go-style duration ("90s", "1h30m", "8h0m0s", "1.5h") or bare seconds ("300").
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Duration::ZERO);
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

/// Formats seconds as Go does for durations ("1h0m0s", "30m0s", "0s").
pub fn format_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Field accessors over a request body.
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// A string field; numbers and booleans are rendered as text.
    pub fn string(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A required, non-empty string field.
    pub fn required_string(&self, name: &str) -> Result<String, CoreError> {
        self.string(name)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CoreError::invalid(format!("missing required field \"{name}\"")))
    }

    /// A boolean field: JSON bool, or the strings true/false/1/0.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, CoreError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => Ok(Some(n.as_i64().unwrap_or(0) != 0)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" | "yes" => Ok(Some(true)),
                "false" | "0" | "f" | "no" | "" => Ok(Some(false)),
                _ => Err(CoreError::invalid(format!(
                    "error converting input {s} for field \"{name}\": expected a boolean"
                ))),
            },
            Some(_) => Err(CoreError::invalid(format!("field \"{name}\" must be a boolean"))),
        }
    }

    /// An integer field: JSON number or numeric string.
    pub fn int(&self, name: &str) -> Result<Option<i64>, CoreError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| CoreError::invalid(format!("field \"{name}\" must be an integer"))),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                CoreError::invalid(format!(
                    "error converting input {s} for field \"{name}\": expected an integer"
                ))
            }),
            Some(_) => Err(CoreError::invalid(format!("field \"{name}\" must be an integer"))),
        }
    }

    /// A duration field in seconds: number of seconds or a Go duration string.
    pub fn duration_secs(&self, name: &str) -> Result<Option<u64>, CoreError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(Some(n.as_f64().unwrap_or(0.0).max(0.0) as u64)),
            Some(Value::String(s)) => parse_duration(s)
                .map(|d| Some(d.as_secs()))
                .ok_or_else(|| CoreError::invalid(format!("invalid duration \"{s}\" for field \"{name}\""))),
            Some(_) => Err(CoreError::invalid(format!("field \"{name}\" must be a duration"))),
        }
    }

    /// A list of strings: JSON array, or a comma-separated string.
    pub fn string_list(&self, name: &str) -> Option<Vec<String>> {
        let list: Vec<String> = match self.0.get(name)? {
            Value::Array(items) => items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.trim().to_string()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            Value::String(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
            _ => return None,
        };
        Some(list.into_iter().filter(|s| !s.is_empty()).collect())
    }

    /// A map of strings (token metadata, custom_metadata).
    pub fn string_map(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, CoreError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(
                map.iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            )),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .split(',')
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .ok_or_else(|| CoreError::invalid(format!("field \"{name}\" must be a map of k=v")))
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(CoreError::invalid(format!("field \"{name}\" must be a map"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("8h0m0s"), Some(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5m0s"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("bogus"), None);
        assert_eq!(format_duration(3600), "1h0m0s");
        assert_eq!(format_duration(1800), "30m0s");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn coercion_from_cli_strings() {
        let body = json!({"orphan":"true","num_uses":"3","ttl":"1h","policies":"a, b","meta":{"k":1}});
        let f = Fields(body.as_object().unwrap());
        assert_eq!(f.bool("orphan").unwrap(), Some(true));
        assert_eq!(f.int("num_uses").unwrap(), Some(3));
        assert_eq!(f.duration_secs("ttl").unwrap(), Some(3600));
        assert_eq!(f.string_list("policies").unwrap(), vec!["a", "b"]);
        assert_eq!(f.string_map("meta").unwrap().unwrap()["k"], "1");
        assert!(f.bool("ttl").is_err());
    }
}
