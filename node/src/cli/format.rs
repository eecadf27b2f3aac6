//! Output rendering that reproduces vault's: columnize tables, Go `%v` values, JSON the
//! way Go's `json.MarshalIndent` prints it, and the wrapped warning block.

use std::io::{IsTerminal, Write};

use labnode_duration::{format_human, GoDuration};
use serde::Serialize;
use serde_json::{Map, Value};

use super::client::Secret;
use super::CliError;

/// The `-format` / `VAULT_FORMAT` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human tables (the default).
    Table,
    /// `json.MarshalIndent` output.
    Json,
    /// YAML rendering of the same data.
    Yaml,
}

impl Format {
    /// Resolves the flag value, falling back to `VAULT_FORMAT`, like vault's `Format(ui)`.
    pub fn resolve(flag: Option<&str>) -> Result<Format, CliError> {
        let env = std::env::var("VAULT_FORMAT").ok();
        let raw = flag.map(str::to_string).or(env).unwrap_or_else(|| "table".into());
        match raw.to_lowercase().as_str() {
            "" | "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "yaml" | "yml" => Ok(Format::Yaml),
            other => Err(CliError::Usage(format!("Invalid output format: {other}"))),
        }
    }
}

/// Vault's `maxLineLength` for wrapped prose.
const MAX_LINE: usize = 78;

/// Prints a line to stdout (vault's `ui.Output`).
pub fn out(s: &str) {
    println!("{s}");
}

/// Prints a line to stderr (vault's `ui.Warn` / `ui.Error`).
pub fn err(s: &str) {
    eprintln!("{s}");
}

/// Vault's `PrintRaw`: no trailing newline unless stdout is a terminal, so
/// `$(vault read -field=x ...)` captures the bare value.
pub fn print_raw(s: &str) {
    let mut stdout = std::io::stdout();
    let text = if stdout.is_terminal() {
        format!("{s}\n")
    } else {
        s.to_string()
    };
    // A closed stdout leaves nothing useful to report.
    let _ = stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush());
}

/// Go's `fmt.Sprintf("%v", v)` for decoded JSON values.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_value(&m[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%q` of a `[]string`, as vault prints policy lists.
pub fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\"")))
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// Vault's `looksLikeDuration`: these keys are shown as human durations.
pub fn looks_like_duration(k: &str) -> bool {
    k == "period"
        || k.ends_with("_period")
        || k == "ttl"
        || k.ends_with("_ttl")
        || k == "duration"
        || k.ends_with("_duration")
        || k == "lease_max"
        || k == "ttl_max"
}

/// Vault's `humanDuration` of whole seconds; a count too large for Go's durations (where Go
/// would wrap around) is shown as plain seconds.
pub fn human_secs(secs: i64) -> String {
    GoDuration::checked_from_secs(secs).map_or_else(|| format!("{secs}s"), format_human)
}

/// Vault's `humanDurationInt`: integers become human durations, anything else is kept.
pub fn human_duration_value(v: &Value) -> String {
    match v.as_i64() {
        Some(secs) => human_secs(secs),
        None => go_value(v),
    }
}

/// `columnize.Format` with vault's config: 4-space glue, empty cells become `n/a`,
/// cells trimmed, the whole result trimmed.
pub fn columns(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| {
                    let t = c.trim();
                    if t.is_empty() {
                        "n/a".to_string()
                    } else {
                        t.to_string()
                    }
                })
                .collect()
        })
        .collect();
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut result = String::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                result.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                result.push_str(c);
                result.push_str(&" ".repeat(pad + 4));
            }
        }
        result.push('\n');
    }
    result.trim().to_string()
}

/// Vault's `tableOutput`: a header row, a dashed underline, then the rows.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut all = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    all.push(header.iter().map(|h| "-".repeat(h.trim().len())).collect());
    all.extend(rows);
    columns(&all)
}

/// A `Key`/`Value` table from rows already formatted.
pub fn kv_table(rows: Vec<(String, String)>) -> String {
    table(
        &["Key", "Value"],
        rows.into_iter().map(|(k, v)| vec![k, v]).collect(),
    )
}

/// Rows of a data map the way `OutputMap` prints them: sorted keys, durations humanized.
pub fn map_rows(data: &Map<String, Value>) -> Vec<(String, String)> {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v = &data[k.as_str()];
            let shown = if looks_like_duration(k) {
                human_duration_value(v)
            } else {
                go_value(v)
            };
            (k.clone(), shown)
        })
        .collect()
}

/// Go's JSON escapes `<`, `>`, `&` (HTML safety); they only ever occur inside strings.
fn go_escape(s: String) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Recursively sorts object keys, as Go prints maps.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k.as_str()]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `json.MarshalIndent(v, "", "  ")`.
pub fn json_pretty<T: Serialize>(v: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(v)
        .map(go_escape)
        .map_err(|e| CliError::Local(format!("Could not parse output: {e}")))
}

/// A YAML rendering of JSON data (sorted keys, like vault's ghodss/yaml output).
pub fn yaml(v: &Value) -> String {
    fn scalar(v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::String(s) if s.is_empty() => "\"\"".into(),
            Value::String(s)
                if s.contains(": ")
                    || s.contains('#')
                    || s.starts_with(|c: char| "-?:,[]{}&*!|>'\"%@` ".contains(c))
                    || s.contains('\n')
                    || matches!(s.as_str(), "true" | "false" | "null" | "yes" | "no" | "~")
                    || s.parse::<f64>().is_ok() =>
            {
                serde_json::to_string(s).unwrap_or_default()
            }
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    fn walk(v: &Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match v {
            Value::Object(m) if !m.is_empty() => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in keys {
                    let child = &m[k.as_str()];
                    match child {
                        Value::Object(c) if !c.is_empty() => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            walk(child, indent + 2, out);
                        }
                        Value::Array(c) if !c.is_empty() => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            walk(child, indent, out);
                        }
                        _ => out.push_str(&format!("{pad}{k}: {}\n", inline(child))),
                    }
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for item in a {
                    match item {
                        Value::Object(c) if !c.is_empty() => {
                            let mut nested = String::new();
                            walk(item, indent + 2, &mut nested);
                            out.push_str(&format!("{pad}- {}", &nested[indent + 2..]));
                        }
                        _ => out.push_str(&format!("{pad}- {}\n", inline(item))),
                    }
                }
            }
            other => out.push_str(&format!("{pad}{}\n", inline(other))),
        }
    }
    fn inline(v: &Value) -> String {
        match v {
            Value::Object(_) => "{}".into(),
            Value::Array(_) => "[]".into(),
            other => scalar(other),
        }
    }
    let mut out = String::new();
    walk(v, 0, &mut out);
    out
}

/// Prints structured data in the machine formats (`OutputData` for json/yaml).
pub fn print_structured<T: Serialize>(v: &T, format: Format) -> Result<(), CliError> {
    match format {
        Format::Yaml => {
            let value = serde_json::to_value(v).map_err(|e| CliError::Local(e.to_string()))?;
            print!("{}", yaml(&value));
        }
        _ => out(&json_pretty(v)?),
    }
    Ok(())
}

/// kr/text `Wrap`: minimum-raggedness word wrapping, as vault's `wrapAtLength` uses.
pub fn wrap(s: &str, lim: usize) -> String {
    let joined = s.trim().replace('\n', " ");
    let words: Vec<&str> = joined.split(' ').collect();
    let n = words.len();
    let lens: Vec<usize> = words.iter().map(|w| w.chars().count()).collect();
    let line_len = |i: usize, j: usize| lens[i..=j].iter().sum::<usize>() + (j - i);
    let mut cost = vec![i64::MAX; n];
    let mut nbrk = vec![n; n];
    for i in (0..n).rev() {
        if line_len(i, n - 1) <= lim {
            cost[i] = 0;
            nbrk[i] = n;
            continue;
        }
        for j in i + 1..n {
            let len = line_len(i, j - 1);
            let d = lim as i64 - len as i64;
            let mut c = d * d + cost[j];
            if len > lim {
                c += 100_000;
            }
            if c < cost[i] {
                cost[i] = c;
                nbrk[i] = j;
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        lines.push(words[i..nbrk[i]].join(" "));
        i = nbrk[i];
    }
    lines.join("\n")
}

/// Vault's `wrapAtLength`.
pub fn wrap_at_length(s: &str) -> String {
    wrap(s, MAX_LINE)
}

/// Vault's `wrapAtLengthWithPadding`.
pub fn wrap_with_padding(s: &str, pad: usize) -> String {
    let p = " ".repeat(pad);
    wrap(s, MAX_LINE - pad)
        .lines()
        .map(|l| format!("{p}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The warning block vault prints (to stderr) for a response's `warnings`.
pub fn print_warnings(warnings: &[String]) {
    if warnings.is_empty() {
        return;
    }
    err(&wrap_at_length(
        "WARNING! The following warnings were returned from Vault:",
    ));
    err("");
    for w in warnings {
        err(&wrap_with_padding(&format!("* {w}"), 2));
    }
    err("");
}

/// Rows vault's `OutputSecret` prints for a secret (lease, auth, wrap info, data).
pub fn secret_rows(secret: &Secret) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let row = |k: &str, v: String| (k.to_string(), v);
    if secret.lease_duration > 0 {
        let d = human_secs(secret.lease_duration);
        if secret.lease_id.is_empty() {
            rows.push(row("refresh_interval", d));
        } else {
            rows.push(row("lease_id", secret.lease_id.clone()));
            rows.push(row("lease_duration", d));
            rows.push(row("lease_renewable", secret.renewable.to_string()));
        }
    }
    if let Some(auth) = &secret.auth {
        rows.push(row("token", auth.client_token.clone()));
        rows.push(row("token_accessor", auth.accessor.clone()));
        let dur = if auth.lease_duration == 0 {
            "∞".to_string()
        } else {
            human_secs(auth.lease_duration)
        };
        rows.push(row("token_duration", dur));
        rows.push(row("token_renewable", auth.renewable.to_string()));
        rows.push(row(
            "token_policies",
            go_quoted_list(auth.token_policies.as_deref().unwrap_or_default()),
        ));
        rows.push(row(
            "identity_policies",
            go_quoted_list(auth.identity_policies.as_deref().unwrap_or_default()),
        ));
        rows.push(row(
            "policies",
            go_quoted_list(auth.policies.as_deref().unwrap_or_default()),
        ));
        if let Some(meta) = &auth.metadata {
            for (k, v) in meta {
                rows.push((format!("token_meta_{k}"), v.clone()));
            }
        }
    }
    if let Some(w) = &secret.wrap_info {
        rows.push(row("wrapping_token:", w.token.clone()));
        rows.push(row("wrapping_accessor:", w.accessor.clone()));
        rows.push(row("wrapping_token_ttl:", human_secs(w.ttl)));
        rows.push(row("wrapping_token_creation_time:", go_time(&w.creation_time)));
        rows.push(row("wrapping_token_creation_path:", w.creation_path.clone()));
        if !w.wrapped_accessor.is_empty() {
            rows.push(row("wrapped_accessor:", w.wrapped_accessor.clone()));
        }
    }
    if let Some(data) = &secret.data {
        rows.extend(map_rows(data));
    }
    rows
}

/// Go's `time.Time.String()` for an RFC 3339 timestamp (`2006-01-02 15:04:05.999999999 -0700 MST`).
pub fn go_time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
            let nanos = t.timestamp_subsec_nanos();
            let frac = if nanos == 0 {
                String::new()
            } else {
                format!(".{}", format!("{nanos:09}").trim_end_matches('0'))
            };
            let offset = t.format("%z").to_string();
            let zone = if t.offset().local_minus_utc() == 0 {
                "UTC".to_string()
            } else {
                offset.clone()
            };
            format!("{base}{frac} {offset} {zone}")
        }
        Err(_) => rfc3339.to_string(),
    }
}

/// Vault's `OutputSecret`: the whole envelope for json/yaml, else the table plus warnings.
pub fn output_secret(secret: &Secret, format: Format) -> Result<(), CliError> {
    if format != Format::Table {
        return print_structured(secret, format);
    }
    let rows = secret_rows(secret);
    if !rows.is_empty() {
        out(&kv_table(rows));
    }
    print_warnings(secret.warnings.as_deref().unwrap_or_default());
    Ok(())
}

/// Vault's `OutputData` for a map: a Key/Value table, or the map itself in json/yaml.
pub fn output_map(data: &Map<String, Value>, format: Format) -> Result<(), CliError> {
    if format != Format::Table {
        return print_structured(&sorted(&Value::Object(data.clone())), format);
    }
    let rows = map_rows(data);
    if !rows.is_empty() {
        out(&kv_table(rows));
    }
    Ok(())
}

/// Vault's `extractFieldFromSecret`.
fn secret_field(secret: &Secret, field: &str) -> Option<Value> {
    if let Some(w) = &secret.wrap_info {
        match field {
            "wrapping_token" => return Some(Value::String(w.token.clone())),
            "wrapping_accessor" => return Some(Value::String(w.accessor.clone())),
            "wrapping_token_ttl" => return Some(Value::from(w.ttl)),
            "wrapping_token_creation_time" => return Some(Value::String(w.creation_time.clone())),
            "wrapping_token_creation_path" => return Some(Value::String(w.creation_path.clone())),
            "wrapped_accessor" => return Some(Value::String(w.wrapped_accessor.clone())),
            _ => {}
        }
    }
    if let Some(a) = &secret.auth {
        let list = |l: &Option<Vec<String>>| serde_json::to_value(l.clone().unwrap_or_default()).ok();
        match field {
            "token" => return Some(Value::String(a.client_token.clone())),
            "token_accessor" => return Some(Value::String(a.accessor.clone())),
            "token_duration" => return Some(Value::from(a.lease_duration)),
            "token_renewable" => return Some(Value::Bool(a.renewable)),
            "token_policies" => return list(&a.token_policies),
            "identity_policies" => return list(&a.identity_policies),
            "policies" => return list(&a.policies),
            _ => {}
        }
        if let Some(k) = field.strip_prefix("token_meta_") {
            if let Some(v) = a.metadata.as_ref().and_then(|m| m.get(k)) {
                return Some(Value::String(v.clone()));
            }
        }
    }
    match field {
        "refresh_interval" | "lease_duration" if secret.lease_duration > 0 => {
            return Some(Value::from(secret.lease_duration))
        }
        "lease_id" if !secret.lease_id.is_empty() => return Some(Value::String(secret.lease_id.clone())),
        "lease_renewable" if !secret.lease_id.is_empty() => return Some(Value::Bool(secret.renewable)),
        _ => {}
    }
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(field))
        .filter(|v| !v.is_null())
        .cloned()
}

/// Vault's `PrintRawField` for a secret: the bare value, or json/yaml of it.
pub fn print_secret_field(secret: &Secret, field: &str, format: Format) -> Result<u8, CliError> {
    print_field(secret_field(secret, field), field, format)
}

/// Vault's `PrintRawField` for a plain map.
pub fn print_map_field(data: &Map<String, Value>, field: &str, format: Format) -> Result<u8, CliError> {
    print_field(data.get(field).filter(|v| !v.is_null()).cloned(), field, format)
}

fn print_field(val: Option<Value>, field: &str, format: Format) -> Result<u8, CliError> {
    let Some(val) = val else {
        return Err(CliError::Local(format!("Field {field:?} not present in secret")));
    };
    match format {
        Format::Table => print_raw(&go_value(&val)),
        Format::Json => print_raw(&json_pretty(&sorted(&val))?),
        Format::Yaml => print_raw(&yaml(&val)),
    }
    Ok(0)
}

/// Vault's `padEqualSigns`, used for `kv get` section headers.
pub fn pad_equal_signs(header: &str, total_len: usize) -> String {
    let mut eq = total_len as i64 - (header.len() as i64 + 2);
    if eq <= 0 {
        eq = 4;
    }
    if eq % 2 != 0 {
        eq += 1;
    }
    let side = "=".repeat((eq / 2) as usize);
    format!("{side} {header} {side}")
}

/// Vault's `getHeaderForMap`: width from the longest key plus the Value column.
pub fn header_for_map(header: &str, data: &Map<String, Value>) -> String {
    let max_key = data.keys().map(String::len).max().unwrap_or(0);
    pad_equal_signs(header, max_key + 4 + 5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_value_table_layout() {
        let t = kv_table(vec![
            ("refresh_interval".into(), "768h".into()),
            ("a".into(), "b".into()),
            ("empty".into(), "".into()),
        ]);
        assert_eq!(
            t,
            "Key                 Value\n---                 -----\nrefresh_interval    768h\na                   b\nempty               n/a"
        );
    }

    #[test]
    fn multi_column_table() {
        let t = table(
            &["Node", "Address", "State", "Voter"],
            vec![vec![
                "node1".into(),
                "127.0.0.1:18311".into(),
                "leader".into(),
                "true".into(),
            ]],
        );
        assert_eq!(
            t,
            "Node     Address            State     Voter\n----     -------            -----     -----\nnode1    127.0.0.1:18311    leader    true"
        );
    }

    #[test]
    fn go_values() {
        let v = json!({"c": 1, "a": "b", "n": null, "l": ["x", 2], "m": {"z": true}});
        assert_eq!(go_value(&v), "map[a:b c:1 l:[x 2] m:map[z:true] n:<nil>]");
        assert_eq!(
            go_quoted_list(&["a".into(), "default".into()]),
            r#"["a" "default"]"#
        );
        assert_eq!(go_quoted_list(&[]), "[]");
    }

    #[test]
    fn durations_in_maps() {
        let m = json!({"ttl": 2764800, "creation_ttl": 0, "max_ttl": "1h"});
        let rows = map_rows(m.as_object().unwrap());
        assert_eq!(rows[0], ("creation_ttl".into(), "0s".into()));
        assert_eq!(rows[1], ("max_ttl".into(), "1h".into()));
        assert_eq!(rows[2], ("ttl".into(), "768h".into()));
    }

    #[test]
    fn json_is_go_like() {
        let s = json_pretty(&json!({"b": "<x>", "a": []})).unwrap();
        assert_eq!(s, "{\n  \"a\": [],\n  \"b\": \"\\u003cx\\u003e\"\n}");
    }

    #[test]
    fn wrapping_matches_vault() {
        let w = wrap_with_padding(
            "* Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate \
             API endpoints to use. If using the OpenBao CLI, use 'bao kv put' for this operation.",
            2,
        );
        assert_eq!(
            w,
            "  * Invalid path for a versioned K/V secrets engine. See the API docs for the\n  \
             appropriate API endpoints to use. If using the OpenBao CLI, use 'bao kv put'\n  \
             for this operation."
        );
    }

    #[test]
    fn equal_sign_headers() {
        let meta = json!({"created_time": 1, "custom_metadata": 1, "version": 1});
        assert_eq!(
            header_for_map("Metadata", meta.as_object().unwrap()),
            "======= Metadata ======="
        );
        assert_eq!(
            pad_equal_signs("Secret Path", "secret/data/foo".len()),
            "= Secret Path ="
        );
        let v = json!({"created_time": 1, "deletion_time": 1, "destroyed": 1});
        assert_eq!(
            header_for_map("Version 1", v.as_object().unwrap()),
            "====== Version 1 ======"
        );
    }

    #[test]
    fn go_time_string() {
        assert_eq!(
            go_time("2026-11-29T01:28:50.657440364Z"),
            "2026-11-29 01:28:50.657440364 +0000 UTC"
        );
        assert_eq!(go_time("2026-11-29T01:28:50Z"), "2026-11-29 01:28:50 +0000 UTC");
    }

    #[test]
    fn yaml_rendering() {
        let y = yaml(&json!({"b": {"c": [1, "x"]}, "a": ""}));
        assert_eq!(y, "a: \"\"\nb:\n  c:\n  - 1\n  - x\n");
    }
}
