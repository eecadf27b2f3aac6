//! `vault kv ...`: learns the mount and KV version from `sys/internal/ui/mounts/<path>`
//! first, exactly as vault does, then talks to the v1 or v2 paths.

use labnode_duration::GoDuration;
use serde_json::{json, Map, Value};

use super::client::{Body, Client};
use super::flags::{flag_set, CommaList, FieldFlag, HttpFlags, OutputFlags};
use super::format::{self, Format};
use super::logical::{self, sanitize};
use super::{data, CliError, CmdResult, Context};

flag_set! {
    /// `-mount` and the common flags: `kv list`, `kv metadata delete`.
    pub struct MountFlags [http: HttpFlags, output: OutputFlags] {
        /// The mount, when the path is relative to it.
        mount: Option<String> = "mount",
    }
}

flag_set! {
    /// Flags of `kv get`.
    pub struct GetFlags [http: HttpFlags, output: OutputFlags, field: FieldFlag] {
        /// The mount, when the path is relative to it.
        mount: Option<String> = "mount",
        /// The version to read (KV v2).
        version: Option<i64> = "version",
    }
}

flag_set! {
    /// Flags of `kv put` and `kv patch`.
    pub struct PutFlags [http: HttpFlags, output: OutputFlags, field: FieldFlag] {
        /// The mount, when the path is relative to it.
        mount: Option<String> = "mount",
        /// Check-and-set version (KV v2).
        cas: Option<i64> = "cas",
        /// `patch` or `rw` for `kv patch`.
        method: Option<String> = "method",
        /// Keys `kv patch` removes.
        remove_data: Vec<String> = "remove-data",
    }
}

flag_set! {
    /// Flags of `kv delete`, `kv undelete` and `kv destroy`.
    pub struct VersionsFlags [http: HttpFlags, output: OutputFlags] {
        /// The mount, when the path is relative to it.
        mount: Option<String> = "mount",
        /// The versions to act on.
        versions: CommaList = "versions",
    }
}

flag_set! {
    /// Flags of `kv metadata get`.
    pub struct MetadataGetFlags [http: HttpFlags, output: OutputFlags, field: FieldFlag] {
        /// The mount, when the path is relative to it.
        mount: Option<String> = "mount",
    }
}

flag_set! {
    /// Flags of `kv metadata put`.
    pub struct MetadataPutFlags [http: HttpFlags, output: OutputFlags] {
        /// The mount, when the path is relative to it.
        mount: Option<String> = "mount",
        /// Versions to keep; sent only when zero or more.
        max_versions: Option<i64> = "max-versions",
        /// Require check-and-set on writes; sent only when given.
        cas_required: Option<bool> = "cas-required",
        /// Delete versions this long after writing; sent only when given.
        delete_version_after: Option<GoDuration> = "delete-version-after",
        /// `k=v` pairs of custom metadata.
        custom_metadata: Vec<String> = "custom-metadata",
    }
}

/// Mount path (with trailing slash, possibly empty) and KV version of `path`.
async fn preflight(client: &Client, path: &str) -> Result<(String, u8), CliError> {
    let resp = match client.send_plain(&format!("sys/internal/ui/mounts/{path}")).await {
        Ok(r) => r,
        Err(CliError::Transport(e)) if e.code() == Some(404) => return Ok((String::new(), 1)),
        Err(e) => return Err(e),
    };
    let Some(secret) = resp.secret()? else {
        return Err(CliError::Remote("nil response from pre-flight request".into()));
    };
    let data = secret.data.unwrap_or_default();
    let mount = data
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let version = data
        .get("options")
        .and_then(|o| o.get("version"))
        .and_then(Value::as_str);
    Ok((mount, if version == Some("2") { 2 } else { 1 }))
}

/// `path.Join` for vault paths: no empty segments, no trailing slash.
fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .flat_map(|p| p.split('/'))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// Vault's `addPrefixToKVPath` for the common case (mount is a prefix of path).
fn add_prefix(path: &str, mount: &str, prefix: &str) -> String {
    if path == mount || path == mount.trim_end_matches('/') {
        return join(&[mount, prefix]);
    }
    let suffix = path.strip_prefix(mount).unwrap_or(path);
    join(&[mount, prefix, suffix])
}

/// Where a KV command operates.
struct Target {
    /// Mount path with trailing slash.
    mount: String,
    /// Whether the mount is KV v2.
    v2: bool,
    /// The user's path relative to... whatever they typed (sanitized).
    path: String,
}

impl Target {
    /// The API path for a v2 sub-tree (`data`, `metadata`, ...), or the plain path on v1.
    fn api(&self, prefix: &str) -> String {
        if self.v2 {
            add_prefix(&self.path, &self.mount, prefix)
        } else {
            self.path.clone()
        }
    }
}

async fn target(client: &Client, mount: Option<&str>, raw: &str) -> Result<Target, CliError> {
    let raw = sanitize(raw);
    if let Some(m) = mount.filter(|m| !m.is_empty()) {
        let mount = format!("{}/", sanitize(m));
        let (_, version) = preflight(client, &mount).await?;
        let path = join(&[&mount, &raw]);
        return Ok(Target {
            mount,
            v2: version == 2,
            path,
        });
    }
    let (mount, version) = preflight(client, &raw).await?;
    Ok(Target {
        mount,
        v2: version == 2,
        path: raw,
    })
}

fn need_path(args: &[String]) -> Result<(), CliError> {
    match args.len() {
        0 => Err(CliError::Usage("Not enough arguments (expected 1, got 0)".into())),
        1 => Ok(()),
        n => Err(CliError::Usage(format!(
            "Too many arguments (expected 1, got {n})"
        ))),
    }
}

fn output_path(path: &str, header: &str) {
    format::out(&format::pad_equal_signs(header, path.len()));
    format::out(path);
    format::out("");
}

/// `vault kv get KEY`.
pub async fn get(f: GetFlags, args: Vec<String>) -> CmdResult {
    need_path(&args)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let t = target(&client, f.mount.as_deref(), &args[0]).await?;
    let full = t.api("data");
    let mut query = Vec::new();
    if let Some(version) = f.version.filter(|v| t.v2 && *v > 0) {
        query.push(("version".to_string(), version.to_string()));
    }
    let secret = client
        .logical_read("GET", &full, &query)
        .await
        .context(format!("Error reading {full}"))?;
    let Some(secret) = secret else {
        return Err(CliError::Remote(format!("No value found at {full}")));
    };
    if let Some(field) = f.field.field.as_deref().filter(|f| !f.is_empty()) {
        if !t.v2 {
            return format::print_secret_field(&secret, field, fmt);
        }
        let inner = secret
            .data
            .as_ref()
            .and_then(|d| d.get("data"))
            .and_then(Value::as_object)
            .cloned();
        let Some(inner) = inner else {
            return Err(CliError::Remote(format!("No data found at {full}")));
        };
        if field == "data" && !inner.contains_key("data") {
            return format::print_secret_field(&secret, field, fmt);
        }
        return format::print_map_field(&inner, field, fmt);
    }
    if secret.wrap_info.is_some() || fmt != Format::Table {
        format::output_secret(&secret, fmt)?;
        return Ok(0);
    }
    format::print_warnings(secret.warnings.as_deref().unwrap_or_default());
    if t.v2 {
        output_path(&full, "Secret Path");
    }
    let all = secret.data.clone().unwrap_or_default();
    if let Some(meta) = all.get("metadata").and_then(Value::as_object) {
        format::out(&format::header_for_map("Metadata", meta));
        format::output_map(meta, fmt)?;
        format::out("");
    }
    let shown: Option<Map<String, Value>> = if t.v2 {
        all.get("data").and_then(Value::as_object).cloned()
    } else {
        secret.data.clone()
    };
    if let Some(d) = shown {
        format::out(&format::header_for_map("Data", &d));
        format::output_map(&d, fmt)?;
    }
    Ok(0)
}

/// `vault kv put KEY K=V...`.
pub async fn put(f: PutFlags, args: Vec<String>) -> CmdResult {
    write(f, args, false).await
}

/// `vault kv patch KEY K=V...`.
pub async fn patch(f: PutFlags, args: Vec<String>) -> CmdResult {
    write(f, args, true).await
}

async fn write(f: PutFlags, args: Vec<String>, patch: bool) -> CmdResult {
    match args.len() {
        0 => {
            return Err(CliError::Usage(
                "Not enough arguments (expected >1, got 0)".into(),
            ))
        }
        1 if !patch || f.remove_data.is_empty() => return Err(CliError::Usage("Must supply data".into())),
        _ => {}
    }
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let body = data::build(&args[1..], &mut std::io::stdin())
        .map_err(|e| CliError::Usage(format!("Failed to parse K=V data: {e}")))?
        .unwrap_or_default();
    let client = Client::from_flags(&f.http)?;
    let t = target(&client, f.mount.as_deref(), &args[0]).await?;
    if patch && !t.v2 {
        return Err(CliError::Remote(
            "K/V engine mount must be version 2 for patch support".into(),
        ));
    }
    let full = t.api("data");
    let mut payload = Value::Object(body);
    if t.v2 {
        let mut options = Map::new();
        if let Some(cas) = f.cas.filter(|c| *c > -1) {
            options.insert("cas".into(), json!(cas));
        }
        if patch {
            let mut d = payload.as_object().cloned().unwrap_or_default();
            for k in &f.remove_data {
                d.insert(k.clone(), Value::Null);
            }
            payload = Value::Object(d);
        }
        payload = json!({ "data": payload, "options": options });
    }
    let method = if patch && f.method.as_deref() != Some("rw") {
        "PATCH"
    } else {
        "PUT"
    };
    let outcome = client.logical_write(method, &full, &Body::Json(payload)).await?;
    if outcome.error.is_some() || outcome.secret.is_none() {
        return logical::show_write(
            outcome,
            format!("Error writing data to {full}"),
            format!("Success! Data written to: {full}"),
            f.field.field.as_deref(),
            fmt,
        );
    }
    let secret = outcome.secret.unwrap_or_default();
    if let Some(field) = f.field.field.as_deref().filter(|f| !f.is_empty()) {
        return format::print_secret_field(&secret, field, fmt);
    }
    if fmt == Format::Table {
        output_path(&full, "Secret Path");
        let meta = secret.data.clone().unwrap_or_default();
        format::out(&format::header_for_map("Metadata", &meta));
        format::output_map(&meta, fmt)?;
        return Ok(0);
    }
    format::output_secret(&secret, fmt)?;
    Ok(0)
}

/// `vault kv delete KEY`.
pub async fn delete(f: VersionsFlags, args: Vec<String>) -> CmdResult {
    need_path(&args)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let t = target(&client, f.mount.as_deref(), &args[0]).await?;
    let vs = f.versions.items;
    if t.v2 && !vs.is_empty() {
        let full = t.api("delete");
        let outcome = client
            .logical_write("PUT", &full, &Body::Json(json!({ "versions": vs })))
            .await?;
        return logical::deleted(outcome, &full, fmt);
    }
    let full = t.api("data");
    let outcome = client.logical_write("DELETE", &full, &Body::Empty).await?;
    logical::deleted(outcome, &full, fmt)
}

/// `vault kv undelete -versions=N KEY`.
pub async fn undelete(f: VersionsFlags, args: Vec<String>) -> CmdResult {
    versions_op(f, args, "undelete").await
}

/// `vault kv destroy -versions=N KEY`.
pub async fn destroy(f: VersionsFlags, args: Vec<String>) -> CmdResult {
    versions_op(f, args, "destroy").await
}

async fn versions_op(f: VersionsFlags, args: Vec<String>, op: &str) -> CmdResult {
    let vs = f.versions.items;
    if vs.is_empty() {
        return Err(CliError::Usage(format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {op}."
        )));
    }
    need_path(&args)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let t = target(&client, f.mount.as_deref(), &args[0]).await?;
    if !t.v2 {
        let what = if op == "undelete" { "Undelete" } else { "Destroy" };
        return Err(CliError::Usage(format!("{what} not supported on KV Version 1")));
    }
    put_and_report(&client, &t.api(op), json!({ "versions": vs }), fmt).await
}

/// `PUT` a JSON body and print the outcome the way `vault kv` does for writes without output.
async fn put_and_report(client: &Client, full: &str, body: Value, fmt: Format) -> CmdResult {
    let outcome = client.logical_write("PUT", full, &Body::Json(body)).await?;
    logical::show_write(
        outcome,
        format!("Error writing data to {full}"),
        format!("Success! Data written to: {full}"),
        None,
        fmt,
    )
}

/// `vault kv list PATH`.
pub async fn list(f: MountFlags, args: Vec<String>) -> CmdResult {
    need_path(&args)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let t = target(&client, f.mount.as_deref(), &args[0]).await?;
    let full = t.api("metadata");
    let secret = logical::list_path(&client, &full)
        .await
        .context(format!("Error listing {full}"))?;
    logical::output_list(secret, &full, fmt)
}

/// `vault kv metadata get KEY`.
pub async fn metadata_get(f: MetadataGetFlags, args: Vec<String>) -> CmdResult {
    need_path(&args)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let t = target(&client, f.mount.as_deref(), &args[0]).await?;
    if !t.v2 {
        return Err(CliError::Usage("Metadata not supported on KV Version 1".into()));
    }
    let full = t.api("metadata");
    let secret = client
        .logical_read("GET", &full, &[])
        .await
        .context(format!("Error reading {full}"))?;
    let Some(mut secret) = secret else {
        return Err(CliError::Remote(format!("No value found at {full}")));
    };
    if let Some(field) = f.field.field.as_deref().filter(|f| !f.is_empty()) {
        return format::print_secret_field(&secret, field, fmt);
    }
    if fmt != Format::Table {
        format::output_secret(&secret, fmt)?;
        return Ok(0);
    }
    let versions = secret.data.as_mut().and_then(|d| d.remove("versions"));
    let Some(Value::Object(versions)) = versions else {
        format::err(&format!("No value found at {full}"));
        format::output_secret(&secret, fmt)?;
        return Ok(2);
    };
    output_path(&full, "Metadata Path");
    format::out(&format::header_for_map(
        "Metadata",
        secret.data.as_ref().unwrap_or(&Map::new()),
    ));
    format::output_secret(&secret, fmt)?;
    let mut keys: Vec<i64> = versions.keys().filter_map(|k| k.parse().ok()).collect();
    keys.sort_unstable();
    for k in keys {
        let v = versions
            .get(&k.to_string())
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        format::out(&format!(
            "\n{}",
            format::header_for_map(&format!("Version {k}"), &v)
        ));
        format::output_map(&v, fmt)?;
    }
    Ok(0)
}

/// `vault kv metadata put KEY`.
pub async fn metadata_put(f: MetadataPutFlags, args: Vec<String>) -> CmdResult {
    need_path(&args)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let t = target(&client, f.mount.as_deref(), &args[0]).await?;
    if !t.v2 {
        return Err(CliError::Usage("Metadata not supported on KV Version 1".into()));
    }
    let mut body = Map::new();
    if let Some(max) = f.max_versions.filter(|n| *n >= 0) {
        body.insert("max_versions".into(), json!(max));
    }
    if let Some(required) = f.cas_required {
        body.insert("cas_required".into(), json!(required));
    }
    if let Some(after) = f.delete_version_after {
        body.insert("delete_version_after".into(), json!(after.to_string()));
    }
    let custom: Map<String, Value> = f
        .custom_metadata
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), json!(v))))
        .collect();
    if !custom.is_empty() {
        body.insert("custom_metadata".into(), Value::Object(custom));
    }
    put_and_report(&client, &t.api("metadata"), Value::Object(body), fmt).await
}

/// `vault kv metadata delete KEY`.
pub async fn metadata_delete(f: MountFlags, args: Vec<String>) -> CmdResult {
    need_path(&args)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let t = target(&client, f.mount.as_deref(), &args[0]).await?;
    if !t.v2 {
        return Err(CliError::Usage("Metadata not supported on KV Version 1".into()));
    }
    let full = t.api("metadata");
    let outcome = client.logical_write("DELETE", &full, &Body::Empty).await?;
    logical::deleted(outcome, &full, fmt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_paths() {
        assert_eq!(add_prefix("secret/foo", "secret/", "data"), "secret/data/foo");
        assert_eq!(
            add_prefix("secret/a/b", "secret/", "metadata"),
            "secret/metadata/a/b"
        );
        assert_eq!(add_prefix("secret", "secret/", "metadata"), "secret/metadata");
        assert_eq!(join(&["secret/", "foo/"]), "secret/foo");
    }
}
