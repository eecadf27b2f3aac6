//! `vault read|write|delete|list|unwrap`: the generic path commands.

use serde_json::Value;

use super::client::{Body, Client, Secret};
use super::flags::{flag_set, FieldFlag, HttpFlags, HttpOutput, OutputFlags};
use super::format::{self, Format};
use super::{data, expect_args, CliError, CmdResult, Context};

flag_set! {
    /// Commands that print a secret: `read`, `unwrap`.
    pub struct SecretFlags [http: HttpFlags, output: OutputFlags, field: FieldFlag] {}
}

flag_set! {
    /// Flags of `write`.
    pub struct WriteFlags [http: HttpFlags, output: OutputFlags, field: FieldFlag] {
        /// Write even without data.
        force: bool = "force",
        /// Short for `-force`.
        f: bool = "f",
    }
}

flag_set! {
    /// Flags of `list`.
    pub struct ListFlags [http: HttpFlags, output: OutputFlags]
    ignore { "detailed": Bool }
    {}
}

/// Vault's `sanitizePath`: no surrounding whitespace or slashes.
pub fn sanitize(path: &str) -> String {
    path.trim()
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

/// Parses trailing `k=v` arguments into query parameters (read/delete accept them).
fn query_from(args: &[String]) -> Result<Vec<(String, String)>, CliError> {
    let map = data::build(args, &mut std::io::stdin())
        .map_err(|e| CliError::Usage(format!("Failed to parse K=V data: {e}")))?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(k, v)| match v {
            Value::Array(items) => items
                .iter()
                .map(|i| (k.clone(), format::go_value(i)))
                .collect::<Vec<_>>(),
            other => vec![(k, format::go_value(&other))],
        })
        .collect())
}

/// `vault read PATH [K=V...]`.
pub async fn read(f: SecretFlags, args: Vec<String>) -> CmdResult {
    expect_min(&args)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let path = sanitize(&args[0]);
    let query = query_from(&args[1..])?;
    let secret = client
        .logical_read("GET", &path, &query)
        .await
        .context(format!("Error reading {path}"))?;
    let Some(secret) = secret else {
        return Err(CliError::Remote(format!("No value found at {path}")));
    };
    show(&secret, f.field.field.as_deref(), fmt)
}

fn expect_min(args: &[String]) -> Result<(), CliError> {
    if args.is_empty() {
        return Err(CliError::Usage("Not enough arguments (expected 1, got 0)".into()));
    }
    Ok(())
}

/// Prints a secret the way read/write do: one field raw, or the whole secret.
pub fn show(secret: &Secret, field: Option<&str>, fmt: Format) -> CmdResult {
    if let Some(f) = field.filter(|f| !f.is_empty()) {
        return format::print_secret_field(secret, f, fmt);
    }
    format::output_secret(secret, fmt)?;
    Ok(0)
}

/// Prints the outcome of a write: error (+ any secret), success line, field or secret.
pub fn show_write(
    outcome: super::client::Outcome,
    context: String,
    success: String,
    field: Option<&str>,
    fmt: Format,
) -> CmdResult {
    if let Some(e) = outcome.error {
        format::err(&format!("{context}: {e}"));
        if let Some(s) = &outcome.secret {
            format::output_secret(s, fmt)?;
        }
        return Ok(2);
    }
    match outcome.secret {
        None => {
            if fmt == Format::Table {
                format::out(&success);
            }
            Ok(0)
        }
        Some(s) => show(&s, field, fmt),
    }
}

/// `vault write PATH [K=V...]`.
pub async fn write(f: WriteFlags, args: Vec<String>) -> CmdResult {
    expect_min(&args)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let path = sanitize(&args[0]);
    let body = data::build(&args[1..], &mut std::io::stdin())
        .map_err(|e| CliError::Usage(format!("Failed to parse K=V data: {e}")))?;
    if body.as_ref().is_none_or(|m| m.is_empty()) && !(f.force || f.f) {
        return Err(CliError::Usage("Must supply data or use -force".into()));
    }
    let body = Body::Json(body.map(Value::Object).unwrap_or(Value::Null));
    let outcome = client.logical_write("PUT", &path, &body).await?;
    show_write(
        outcome,
        format!("Error writing data to {path}"),
        format!("Success! Data written to: {path}"),
        f.field.field.as_deref(),
        fmt,
    )
}

/// `vault delete PATH [K=V...]`.
pub async fn delete(f: HttpOutput, args: Vec<String>) -> CmdResult {
    expect_min(&args)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let path = sanitize(&args[0]);
    let query = query_from(&args[1..])?;
    let outcome = if query.is_empty() {
        client.logical_write("DELETE", &path, &Body::Empty).await?
    } else {
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        client
            .logical_write("DELETE", &format!("{path}?{}", q.join("&")), &Body::Empty)
            .await?
    };
    deleted(outcome, &path, fmt)
}

/// Prints the outcome of a delete like vault's delete command.
pub fn deleted(outcome: super::client::Outcome, path: &str, fmt: Format) -> CmdResult {
    if let Some(e) = outcome.error {
        format::err(&format!("Error deleting {path}: {e}"));
        if let Some(s) = &outcome.secret {
            format::output_secret(s, fmt)?;
        }
        return Ok(2);
    }
    if fmt == Format::Table {
        format::out(&format!("Success! Data deleted (if it existed) at: {path}"));
    }
    Ok(0)
}

/// `vault list PATH`.
pub async fn list(f: ListFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 1)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let path = sanitize(&args[0]);
    let secret = list_path(&client, &path)
        .await
        .context(format!("Error listing {path}"))?;
    output_list(secret, &path, fmt)
}

/// Lists `path` the way the Go client does (`GET ?list=true`).
pub async fn list_path(client: &Client, path: &str) -> Result<Option<Secret>, CliError> {
    client
        .logical_read("GET", path, &[("list".into(), "true".into())])
        .await
}

/// Vault's `OutputList`: `Keys` table, or just the keys array in json/yaml.
pub fn output_list(secret: Option<Secret>, path: &str, fmt: Format) -> CmdResult {
    let Some(secret) = secret.filter(|s| s.data.is_some()) else {
        return Err(CliError::Remote(format!("No value found at {path}")));
    };
    let keys = secret
        .data
        .as_ref()
        .and_then(|d| d.get("keys"))
        .and_then(Value::as_array)
        .cloned();
    let Some(keys) = keys else {
        return Err(CliError::Remote(format!("No entries found at {path}")));
    };
    if fmt != Format::Table {
        format::print_structured(&Value::Array(keys), fmt)?;
        return Ok(0);
    }
    format::print_warnings(secret.warnings.as_deref().unwrap_or_default());
    if !keys.is_empty() {
        let rows = keys.iter().map(|k| vec![format::go_value(k)]).collect();
        format::out(&format::table(&["Keys"], rows));
    }
    Ok(0)
}

/// `vault unwrap [TOKEN]`.
pub async fn unwrap(f: SecretFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 1)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let mut client = Client::from_flags(&f.http)?;
    let wrapping = args.first().map(|t| t.trim().to_string()).unwrap_or_default();
    let mut body = Value::Null;
    if !wrapping.is_empty() {
        match &client.token {
            None => client.token = Some(wrapping),
            Some(t) if *t != wrapping => body = serde_json::json!({ "token": wrapping }),
            Some(_) => {}
        }
    }
    let resp = client
        .send("PUT", "sys/wrapping/unwrap", &[], &Body::Json(body))
        .await
        .context("Error unwrapping")?;
    let Some(secret) = resp.secret()? else {
        return Err(CliError::Remote("Could not find wrapped response".into()));
    };
    if let Some(field) = f.field.field.as_deref().filter(|f| !f.is_empty()) {
        return format::print_secret_field(&secret, field, fmt);
    }
    if secret
        .data
        .as_ref()
        .and_then(|d| d.get("keys"))
        .is_some_and(Value::is_array)
    {
        return output_list(Some(secret), "", fmt);
    }
    format::output_secret(&secret, fmt)?;
    Ok(0)
}
