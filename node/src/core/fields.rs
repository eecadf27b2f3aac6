//! Typed access to request fields, coercing the strings `vault write k=v` sends.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::CoreError;

/// Formats seconds as Go prints durations ("1h0m0s", "30m0s", "0s"), as Vault answers them.
pub fn format_duration(secs: u64) -> String {
    labnode_duration::format_go(Duration::from_secs(secs))
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
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| (i64::MIN as f64..i64::MAX as f64).contains(f))
                        .map(|f| f as i64)
                })
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

    /// A count or version field, as Vault checks them: an integer (see [`Fields::int`]) that
    /// must not be negative. `negative` is Vault's refusal where it has its own words (token
    /// `num_uses`); otherwise the 400 says which field and what value.
    pub fn non_negative_int(&self, name: &str, negative: Option<&str>) -> Result<Option<u64>, CoreError> {
        let Some(value) = self.int(name)? else {
            return Ok(None);
        };
        u64::try_from(value).map(Some).map_err(|_| {
            CoreError::invalid(match negative {
                Some(message) => message.to_string(),
                None => format!("field \"{name}\" cannot be negative, got {value}"),
            })
        })
    }

    /// A duration field in whole seconds, read as Vault's `TypeDurationSecond`: a number is
    /// taken by its text (so `300` is seconds and `1.5` lacks a unit, as in Vault), a string
    /// by Vault's duration rules; overflow and negative values are a 400 naming the field.
    pub fn duration_secs(&self, name: &str) -> Result<Option<u64>, CoreError> {
        let text = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(CoreError::invalid(format!("field \"{name}\" must be a duration"))),
        };
        let refuse = |why: &dyn std::fmt::Display| {
            CoreError::invalid(format!(
                "error converting input {text} for field \"{name}\": {why}"
            ))
        };
        let secs = labnode_duration::parse_signed(&text)
            .map_err(|e| refuse(&e))?
            .whole_secs();
        u64::try_from(secs)
            .map(Some)
            .map_err(|_| refuse(&format_args!("cannot provide negative value '{secs}'")))
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
        assert_eq!(format_duration(3600), "1h0m0s");
        assert_eq!(format_duration(1800), "30m0s");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn duration_fields_are_checked_and_named() {
        let body = json!({"a": "8h0m0s", "b": 90, "c": "1h30m", "d": "2d", "e": "", "f": "5m0s",
            "huge": "99999999999999999h", "neg": -5, "neg_text": "-1h", "float": 1.5,
            "bogus": "bogus", "list": [1]});
        let f = Fields(body.as_object().unwrap());
        assert_eq!(f.duration_secs("a").unwrap(), Some(8 * 3600));
        assert_eq!(f.duration_secs("b").unwrap(), Some(90));
        assert_eq!(f.duration_secs("c").unwrap(), Some(5400));
        assert_eq!(f.duration_secs("d").unwrap(), Some(2 * 86400));
        assert_eq!(f.duration_secs("e").unwrap(), Some(0));
        assert_eq!(f.duration_secs("f").unwrap(), Some(300));
        assert_eq!(f.duration_secs("missing").unwrap(), None);
        let refusal = |name: &str| {
            let e = f.duration_secs(name).unwrap_err();
            assert_eq!(e.status(), 400, "{name}");
            e.to_string()
        };
        assert_eq!(
            refusal("huge"),
            r#"error converting input 99999999999999999h for field "huge": time: invalid duration "99999999999999999h""#
        );
        assert_eq!(
            refusal("neg"),
            r#"error converting input -5 for field "neg": cannot provide negative value '-5'"#
        );
        assert_eq!(
            refusal("neg_text"),
            r#"error converting input -1h for field "neg_text": cannot provide negative value '-3600'"#
        );
        assert_eq!(
            refusal("float"),
            r#"error converting input 1.5 for field "float": time: missing unit in duration "1.5""#
        );
        assert!(refusal("bogus").contains(r#"field "bogus""#));
        assert_eq!(refusal("list"), r#"field "list" must be a duration"#);
    }

    #[test]
    fn counts_refuse_negative_and_overflowing_values() {
        let body = json!({"zero": 0, "n": "7", "neg": -3, "neg_text": "-1", "huge": 1e300,
            "too_big": "99999999999999999999", "word": "many", "float": 2.0});
        let f = Fields(body.as_object().unwrap());
        assert_eq!(f.non_negative_int("zero", None).unwrap(), Some(0));
        assert_eq!(f.non_negative_int("n", None).unwrap(), Some(7));
        assert_eq!(f.non_negative_int("float", None).unwrap(), Some(2));
        assert_eq!(f.non_negative_int("missing", None).unwrap(), None);
        let refusal = |name: &str, negative: Option<&str>| {
            let e = f.non_negative_int(name, negative).unwrap_err();
            assert_eq!(e.status(), 400, "{name}");
            e.to_string()
        };
        assert_eq!(refusal("neg", None), r#"field "neg" cannot be negative, got -3"#);
        assert_eq!(
            refusal("neg_text", None),
            r#"field "neg_text" cannot be negative, got -1"#
        );
        assert_eq!(
            refusal("neg", Some("number of uses cannot be negative")),
            "number of uses cannot be negative"
        );
        assert_eq!(refusal("huge", None), r#"field "huge" must be an integer"#);
        assert_eq!(
            refusal("too_big", None),
            r#"error converting input 99999999999999999999 for field "too_big": expected an integer"#
        );
        assert!(refusal("word", None).contains(r#"field "word""#));
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
