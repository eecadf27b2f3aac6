//! `vault secrets enable|disable|list|tune`: mount management through `sys/mounts`.

use serde_json::{json, Map, Value};

use super::client::{Body, Client};
use super::duration;
use super::flags::{self, flag, Kind, Parsed, HTTP, OUTPUT};
use super::format::{self, Format};
use super::logical::sanitize;
use super::{expect_args, CmdResult, Context};

/// Dispatches `secrets <sub>`.
pub async fn run(sub: &str, args: &[String]) -> CmdResult {
    match sub {
        "enable" => enable(args).await,
        "disable" => disable(args).await,
        "list" => list(args).await,
        _ => tune(args).await,
    }
}

fn options(p: &Parsed) -> Map<String, Value> {
    let mut opts: Map<String, Value> = p
        .list("options")
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), json!(v))))
        .collect();
    if p.is_set("version") {
        opts.insert("version".into(), json!(p.int("version", 0).to_string()));
    }
    opts
}

const MOUNT_FLAGS: &[flags::Flag] = &[
    flag("description", Kind::Str),
    flag("default-lease-ttl", Kind::Duration),
    flag("max-lease-ttl", Kind::Duration),
    flag("options", Kind::Multi),
    flag("version", Kind::Int),
    flag("force-no-cache", Kind::Bool),
    flag("listing-visibility", Kind::Str),
    flag("audit-non-hmac-request-keys", Kind::Multi),
    flag("audit-non-hmac-response-keys", Kind::Multi),
    flag("passthrough-request-headers", Kind::Multi),
    flag("allowed-response-headers", Kind::Multi),
    flag("plugin-version", Kind::Str),
];

async fn enable(args: &[String]) -> CmdResult {
    let own: &[flags::Flag] = &[
        flag("path", Kind::Str),
        flag("local", Kind::Bool),
        flag("seal-wrap", Kind::Bool),
        flag("external-entropy-access", Kind::Bool),
        flag("plugin-name", Kind::Str),
    ];
    let p = flags::parse(&[HTTP, MOUNT_FLAGS, own], args)?;
    expect_args(&p.args, 1, 1)?;
    let client = Client::from_flags(&p)?;
    let kind = p.args[0].trim().to_string();
    let opts = options(&p);
    let path = format!(
        "{}/",
        sanitize(p.str("path").filter(|s| !s.is_empty()).unwrap_or(&kind))
    );
    let mut config = json!({
        "options": Value::Null,
        "default_lease_ttl": duration::format(p.duration("default-lease-ttl")),
        "max_lease_ttl": duration::format(p.duration("max-lease-ttl")),
        "force_no_cache": p.bool("force-no-cache"),
    });
    for (flag_name, key) in [
        ("audit-non-hmac-request-keys", "audit_non_hmac_request_keys"),
        ("audit-non-hmac-response-keys", "audit_non_hmac_response_keys"),
        ("passthrough-request-headers", "passthrough_request_headers"),
        ("allowed-response-headers", "allowed_response_headers"),
    ] {
        if p.is_set(flag_name) {
            config[key] = json!(p.list(flag_name));
        }
    }
    if let Some(v) = p.str("listing-visibility") {
        config["listing_visibility"] = json!(v);
    }
    if let Some(v) = p.str("plugin-version") {
        config["plugin_version"] = json!(v);
    }
    let mut body = json!({
        "type": kind,
        "description": p.string("description"),
        "config": config,
        "local": p.bool("local"),
        "seal_wrap": p.bool("seal-wrap"),
        "external_entropy_access": p.bool("external-entropy-access"),
        "options": if opts.is_empty() { Value::Null } else { Value::Object(opts) },
    });
    if let Some(n) = p.str("plugin-name") {
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

async fn disable(args: &[String]) -> CmdResult {
    let p = flags::parse(&[HTTP], args)?;
    expect_args(&p.args, 1, 1)?;
    let client = Client::from_flags(&p)?;
    let path = format!("{}/", sanitize(&p.args[0]));
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

async fn tune(args: &[String]) -> CmdResult {
    let p = flags::parse(&[HTTP, MOUNT_FLAGS], args)?;
    expect_args(&p.args, 1, 1)?;
    let client = Client::from_flags(&p)?;
    let path = format!("{}/", sanitize(&p.args[0]));
    let ttl = |name: &str| {
        if p.is_set(name) {
            duration::format(p.duration(name))
        } else {
            String::new()
        }
    };
    let opts = options(&p);
    let mut body = json!({
        "options": if opts.is_empty() { Value::Null } else { Value::Object(opts) },
        "default_lease_ttl": ttl("default-lease-ttl"),
        "max_lease_ttl": ttl("max-lease-ttl"),
        "force_no_cache": p.bool("force-no-cache"),
    });
    if let Some(d) = p.str("description") {
        body["description"] = json!(d);
    }
    if let Some(v) = p.str("listing-visibility") {
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

async fn list(args: &[String]) -> CmdResult {
    let p = flags::parse(&[HTTP, OUTPUT, &[flag("detailed", Kind::Bool)]], args)?;
    expect_args(&p.args, 0, 0)?;
    let fmt = Format::resolve(p.str("format"))?;
    let client = Client::from_flags(&p)?;
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
    if !p.bool("detailed") {
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
