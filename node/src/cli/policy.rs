//! `vault policy write|read|list|delete|fmt` against `sys/policies/acl`.

use std::io::Read;

use serde_json::{json, Value};

use super::client::{Body, Client};
use super::flags::{HttpOnly, HttpOutput};
use super::format::{self, Format};
use super::logical;
use super::{expect_args, CliError, CmdResult, Context};

fn read_source(path: &str) -> Result<String, CliError> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Local(format!("Failed to read from stdin: {e}")))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| CliError::Local(format!("Error opening policy file: {e}")))
}

/// `vault policy write NAME PATH`.
pub async fn write(f: HttpOnly, args: Vec<String>) -> CmdResult {
    expect_args(&args, 2, 2)?;
    let name = args[0].trim().to_lowercase();
    let rules = read_source(&args[1])?;
    let client = Client::from_flags(&f.http)?;
    client
        .send(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            &[],
            &Body::Json(json!({ "policy": rules })),
        )
        .await
        .context("Error uploading policy")?;
    format::out(&format!("Success! Uploaded policy: {name}"));
    Ok(0)
}

/// `vault policy read NAME`.
pub async fn read(f: HttpOutput, args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 1)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let name = args[0].trim().to_lowercase();
    let client = Client::from_flags(&f.http)?;
    let secret = client
        .logical_read("GET", &format!("sys/policies/acl/{name}"), &[])
        .await
        .context(format!("Error reading policy named {name}"))?;
    let rules = secret
        .and_then(|s| s.data)
        .and_then(|d| d.get("policy").and_then(Value::as_str).map(str::to_string));
    let Some(rules) = rules else {
        return Err(CliError::Remote(format!("No policy named: {name}")));
    };
    if fmt != Format::Table {
        format::print_structured(&json!({ "policy": rules }), fmt)?;
    } else {
        format::out(rules.trim());
    }
    Ok(0)
}

/// `vault policy list`.
pub async fn list(f: HttpOutput, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let secret = logical::list_path(&client, "sys/policies/acl")
        .await
        .context("Error listing policies")?;
    let keys = secret
        .and_then(|s| s.data)
        .and_then(|d| d.get("keys").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    if fmt != Format::Table {
        format::print_structured(&keys, fmt)?;
        return Ok(0);
    }
    for k in keys {
        format::out(&format::go_value(&k));
    }
    Ok(0)
}

/// `vault policy delete NAME`.
pub async fn delete(f: HttpOnly, args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 1)?;
    let name = args[0].trim().to_lowercase();
    let client = Client::from_flags(&f.http)?;
    client
        .send("DELETE", &format!("sys/policies/acl/{name}"), &[], &Body::Empty)
        .await
        .context(format!("Error deleting {name}"))?;
    format::out(&format!("Success! Deleted policy: {name}"));
    Ok(0)
}

/// `vault policy fmt PATH`: rewrites the file in canonical HCL.
pub async fn fmt((): (), args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 1)?;
    let path = &args[0];
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Local(format!("Error opening policy file: {e}")))?;
    let body: hcl::Body =
        hcl::from_str(&text).map_err(|e| CliError::Local(format!("Error parsing policy: {e}")))?;
    let formatted = hcl::format::to_string(&body)
        .map_err(|e| CliError::Local(format!("Error formatting policy: {e}")))?;
    std::fs::write(path, formatted)
        .map_err(|e| CliError::Local(format!("Error writing policy file: {e}")))?;
    format::out(&format!("Success! Formatted policy: {path}"));
    Ok(0)
}
