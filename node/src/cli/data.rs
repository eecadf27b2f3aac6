//! Vault's `kvbuilder`: turns `k=v`, `k=@file`, `k=-`, `@file.json` and `-` arguments into
//! the JSON body of a write, so `vault write` bodies are byte-for-byte what vault sends.

use std::io::Read;

use serde_json::{Map, Value};

/// Builds the request data; `None` when no argument contributed (vault then sends `null`).
pub fn build(args: &[String], stdin: &mut dyn Read) -> Result<Option<Map<String, Value>>, String> {
    let mut result: Option<Map<String, Value>> = None;
    let mut stdin_used = false;
    for raw in args {
        add(raw, &mut result, stdin, &mut stdin_used)
            .map_err(|e| format!("invalid key/value pair {raw:?}: {e}"))?;
    }
    Ok(result)
}

fn read_stdin(stdin: &mut dyn Read, used: &mut bool) -> Result<String, String> {
    if *used {
        return Err("stdin already consumed".into());
    }
    *used = true;
    let mut s = String::new();
    stdin.read_to_string(&mut s).map_err(|e| e.to_string())?;
    Ok(s)
}

fn merge_json(text: &str, result: &mut Option<Map<String, Value>>) -> Result<(), String> {
    let parsed: Map<String, Value> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    result.get_or_insert_with(Map::new).extend(parsed);
    Ok(())
}

fn add(
    raw: &str,
    result: &mut Option<Map<String, Value>>,
    stdin: &mut dyn Read,
    stdin_used: &mut bool,
) -> Result<(), String> {
    if raw.is_empty() {
        return Ok(());
    }
    let Some((key, value)) = raw.split_once('=') else {
        if raw == "-" {
            let text = read_stdin(stdin, stdin_used)?;
            return merge_json(&text, result);
        }
        if let Some(path) = raw.strip_prefix('@') {
            let text = std::fs::read_to_string(path).map_err(|e| format!("open {path}: {e}"))?;
            return merge_json(&text, result);
        }
        return Err("format must be key=value".into());
    };
    let value = if let Some(path) = value.strip_prefix('@') {
        std::fs::read_to_string(path).map_err(|e| format!("error reading file: open {path}: {e}"))?
    } else if let Some(rest) = value.strip_prefix("\\@") {
        format!("@{rest}")
    } else if value == "-" {
        read_stdin(stdin, stdin_used)?
    } else {
        value.to_string()
    };
    let map = result.get_or_insert_with(Map::new);
    match map.get_mut(key) {
        Some(Value::Array(items)) => items.push(Value::String(value)),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, Value::String(value)]);
        }
        None => {
            map.insert(key.to_string(), Value::String(value));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b(args: &[&str], stdin: &str) -> Result<Option<Map<String, Value>>, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        build(&args, &mut stdin.as_bytes())
    }

    #[test]
    fn key_value_forms() {
        let m = b(&["a=b", "c=d=e", "x=\\@y", "k=1", "k=2", "k=3"], "")
            .unwrap()
            .unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"a": "b", "c": "d=e", "x": "@y", "k": ["1", "2", "3"]})
        );
    }

    #[test]
    fn stdin_and_files() {
        let m = b(&["v=-"], "secret\n").unwrap().unwrap();
        assert_eq!(m["v"], json!("secret\n"));
        let m = b(&["-"], r#"{"n": 3, "s": "x"}"#).unwrap().unwrap();
        assert_eq!(Value::Object(m), json!({"n": 3, "s": "x"}));
        assert!(b(&["a=-", "b=-"], "x")
            .unwrap_err()
            .contains("stdin already consumed"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("body.json");
        std::fs::write(&f, r#"{"policy": "p"}"#).unwrap();
        let m = b(&[&format!("@{}", f.display()), "extra=1"], "")
            .unwrap()
            .unwrap();
        assert_eq!(Value::Object(m), json!({"policy": "p", "extra": "1"}));
        let m = b(&[&format!("file=@{}", f.display())], "").unwrap().unwrap();
        assert_eq!(m["file"], json!(r#"{"policy": "p"}"#));
    }

    #[test]
    fn empty_and_invalid() {
        assert_eq!(b(&[], "").unwrap(), None);
        assert_eq!(
            b(&["extra"], "").unwrap_err(),
            "invalid key/value pair \"extra\": format must be key=value"
        );
    }
}
