//! `vault secrets enable|disable|list|tune`: mount management through `sys/mounts`.

use labnode_duration::GoDuration;
use serde_json::{json, Map, Value};

use super::client::{Body, Client};
use super::flags::{flag_set, HttpFlags, HttpOnly, OutputFlags};
use super::format::{self, Format};
use super::logical::sanitize;
use super::{expect_args, CmdResult, Context};

flag_set! {
    /// The mount configuration flags `secrets enable` and `secrets tune` share.
    pub struct MountConfigFlags {
        /// Human-friendly description.
        description: Option<String> = "description",
        /// Default lease TTL.
        default_lease_ttl: Option<GoDuration> = "default-lease-ttl",
        /// Maximum lease TTL.
        max_lease_ttl: Option<GoDuration> = "max-lease-ttl",
        /// `k=v` engine options.
        options: Vec<String> = "options",
        /// Engine version (KV: 1 or 2), sent as the `version` option.
        version: Option<i64> = "version",
        /// Disable caching.
        force_no_cache: bool = "force-no-cache",
        /// `hidden` or `unauth`.
        listing_visibility: Option<String> = "listing-visibility",
        /// Request keys not HMAC'd in audit logs.
        audit_non_hmac_request_keys: Vec<String> = "audit-non-hmac-request-keys",
        /// Response keys not HMAC'd in audit logs.
        audit_non_hmac_response_keys: Vec<String> = "audit-non-hmac-response-keys",
        /// Request headers passed to the engine.
        passthrough_request_headers: Vec<String> = "passthrough-request-headers",
        /// Response headers the engine may set.
        allowed_response_headers: Vec<String> = "allowed-response-headers",
        /// Plugin version to run.
        plugin_version: Option<String> = "plugin-version",
    }
}

impl MountConfigFlags {
    /// The `options` map: `-options k=v` pairs plus `-version`.
    fn options(&self) -> Map<String, Value> {
        let mut opts: Map<String, Value> = self
            .options
            .iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), json!(v))))
            .collect();
        if let Some(version) = self.version {
            opts.insert("version".into(), json!(version.to_string()));
        }
        opts
    }

    /// The four list settings, each sent only when given.
    fn lists(&self) -> [(&'static str, &Vec<String>); 4] {
        [
            ("audit_non_hmac_request_keys", &self.audit_non_hmac_request_keys),
            ("audit_non_hmac_response_keys", &self.audit_non_hmac_response_keys),
            ("passthrough_request_headers", &self.passthrough_request_headers),
            ("allowed_response_headers", &self.allowed_response_headers),
        ]
    }
}

flag_set! {
    /// Flags of `secrets enable`.
    pub struct EnableFlags [http: HttpFlags, config: MountConfigFlags] {
        /// Where to mount (default: the type).
        path: Option<String> = "path",
        /// Not replicated.
        local: bool = "local",
        /// Seal-wrap the engine's storage.
        seal_wrap: bool = "seal-wrap",
        /// Give the engine access to external entropy.
        external_entropy_access: bool = "external-entropy-access",
        /// The plugin to run.
        plugin_name: Option<String> = "plugin-name",
    }
}

flag_set! {
    /// Flags of `secrets tune`.
    pub struct TuneFlags [http: HttpFlags, config: MountConfigFlags] {}
}

flag_set! {
    /// Flags of `secrets list`.
    pub struct ListFlags [http: HttpFlags, output: OutputFlags] {
        /// Show every column.
        detailed: bool = "detailed",
    }
}

/// `vault secrets enable TYPE`.
pub async fn enable(f: EnableFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 1)?;
    let client = Client::from_flags(&f.http)?;
    let kind = args[0].trim().to_string();
    let c = &f.config;
    let opts = c.options();
    let path = format!(
        "{}/",
        sanitize(f.path.as_deref().filter(|s| !s.is_empty()).unwrap_or(&kind))
    );
    let mut config = json!({
        "options": Value::Null,
        "default_lease_ttl": c.default_lease_ttl.unwrap_or_default().to_string(),
        "max_lease_ttl": c.max_lease_ttl.unwrap_or_default().to_string(),
        "force_no_cache": c.force_no_cache,
    });
    for (key, values) in c.lists() {
        if !values.is_empty() {
            config[key] = json!(values);
        }
    }
    if let Some(v) = &c.listing_visibility {
        config["listing_visibility"] = json!(v);
    }
    if let Some(v) = &c.plugin_version {
        config["plugin_version"] = json!(v);
    }
    let mut body = json!({
        "type": kind,
        "description": c.description.as_deref().unwrap_or_default(),
        "config": config,
        "local": f.local,
        "seal_wrap": f.seal_wrap,
        "external_entropy_access": f.external_entropy_access,
        "options": if opts.is_empty() { Value::Null } else { Value::Object(opts) },
    });
    if let Some(n) = &f.plugin_name {
        body["plugin_name"] = json!(n);
    }
    client
        .send(
            "POST",
            &format!("sys/mounts/{}", path.trim_end_matches('/')),
            &[],
            &Body::Json(body),
        )
        .await
        .context("Error enabling")?;
    format::out(&format!("Success! Enabled the {kind} secrets engine at: {path}"));
    Ok(0)
}

/// `vault secrets disable PATH`.
pub async fn disable(f: HttpOnly, args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 1)?;
    let client = Client::from_flags(&f.http)?;
    let path = format!("{}/", sanitize(&args[0]));
    client
        .send(
            "DELETE",
            &format!("sys/mounts/{}", path.trim_end_matches('/')),
            &[],
            &Body::Empty,
        )
        .await
        .context(format!("Error disabling secrets engine at {path}"))?;
    format::out(&format!(
        "Success! Disabled the secrets engine (if it existed) at: {path}"
    ));
    Ok(0)
}

/// `vault secrets tune PATH`.
pub async fn tune(f: TuneFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 1)?;
    let client = Client::from_flags(&f.http)?;
    let path = format!("{}/", sanitize(&args[0]));
    let c = &f.config;
    let ttl = |d: Option<GoDuration>| d.map(|d| d.to_string()).unwrap_or_default();
    let opts = c.options();
    let mut body = json!({
        "options": if opts.is_empty() { Value::Null } else { Value::Object(opts) },
        "default_lease_ttl": ttl(c.default_lease_ttl),
        "max_lease_ttl": ttl(c.max_lease_ttl),
        "force_no_cache": c.force_no_cache,
    });
    if let Some(d) = &c.description {
        body["description"] = json!(d);
    }
    if let Some(v) = &c.listing_visibility {
        body["listing_visibility"] = json!(v);
    }
    client
        .send("POST", &format!("sys/mounts/{path}tune"), &[], &Body::Json(body))
        .await
        .context(format!("Error tuning secrets engine {path}"))?;
    format::out(&format!("Success! Tuned the secrets engine at: {path}"));
    Ok(0)
}

/// The mounts map from `sys/mounts` (under `data`, or top level on legacy servers).
fn mounts_of(v: &Value) -> Map<String, Value> {
    let data = v.get("data").and_then(Value::as_object).filter(|d| !d.is_empty());
    let src = data
        .cloned()
        .or_else(|| v.as_object().cloned())
        .unwrap_or_default();
    src.into_iter()
        .filter(|(k, m)| k.ends_with('/') && m.is_object())
        .collect()
}

/// `vault secrets list`.
pub async fn list(f: ListFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let resp = client
        .send("GET", "sys/mounts", &[], &Body::Empty)
        .await
        .context("Error listing secrets engines")?;
    let v: Value = resp.json()?.unwrap_or_default();
    let mounts = mounts_of(&v);
    if fmt != Format::Table {
        format::print_structured(&format::sorted(&Value::Object(mounts)), fmt)?;
        return Ok(0);
    }
    let mut paths: Vec<&String> = mounts.keys().collect();
    paths.sort();
    let s = |m: &Value, ptr: &str| m.pointer(ptr).map(format::go_value).unwrap_or_default();
    if !f.detailed {
        let rows = paths
            .iter()
            .map(|k| {
                let m = &mounts[k.as_str()];
                vec![
                    k.to_string(),
                    s(m, "/type"),
                    s(m, "/accessor"),
                    s(m, "/description"),
                ]
            })
            .collect();
        format::out(&format::table(&["Path", "Type", "Accessor", "Description"], rows));
        return Ok(0);
    }
    let rows = paths
        .iter()
        .map(|k| {
            let m = &mounts[k.as_str()];
            let kind = s(m, "/type");
            let builtin_local = kind == "system" || kind == "cubbyhole";
            let ttl = |ptr: &str| match m.pointer(ptr).and_then(Value::as_i64) {
                _ if builtin_local => String::new(),
                Some(0) | None => "system".to_string(),
                Some(n) => n.to_string(),
            };
            let local = m.get("local").and_then(Value::as_bool).unwrap_or(false);
            let opts = m
                .get("options")
                .filter(|o| !o.is_null())
                .map(format::go_value)
                .unwrap_or("map[]".into());
            vec![
                k.to_string(),
                kind.clone(),
                s(m, "/accessor"),
                ttl("/config/default_lease_ttl"),
                ttl("/config/max_lease_ttl"),
                s(m, "/config/force_no_cache"),
                if local { "local" } else { "replicated" }.to_string(),
                s(m, "/seal_wrap"),
                s(m, "/external_entropy_access"),
                opts,
                s(m, "/description"),
                s(m, "/uuid"),
                s(m, "/plugin_version"),
                s(m, "/running_plugin_version"),
                s(m, "/running_sha256"),
                s(m, "/deprecation_status"),
            ]
        })
        .collect();
    let header = [
        "Path",
        "Plugin",
        "Accessor",
        "Default TTL",
        "Max TTL",
        "Force No Cache",
        "Replication",
        "Seal Wrap",
        "External Entropy Access",
        "Options",
        "Description",
        "UUID",
        "Version",
        "Running Version",
        "Running SHA256",
        "Deprecation Status",
    ];
    format::out(&format::table(&header, rows));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_from_envelope_or_legacy() {
        let v = json!({"request_id": "x", "data": {"secret/": {"type": "kv"}}, "secret/": {"type": "kv"}});
        assert_eq!(mounts_of(&v).len(), 1);
        let legacy = json!({"sys/": {"type": "system"}, "request_id": "x"});
        assert_eq!(mounts_of(&legacy).keys().collect::<Vec<_>>(), vec!["sys/"]);
    }
}
