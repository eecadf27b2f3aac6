//! The `sys/` backend's logical endpoints: mounts, policies, capabilities, keys.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::core::fields::Fields;
use crate::core::generate_root::OtpPurpose;
use crate::core::mounts::{normalize, MountEntry};
use crate::core::tokens::{rfc3339, TokenEntry};
use crate::core::wrapping;
use crate::core::{Core, CoreError, Operation, Request, Response, Unsealed};
use crate::storage::WriteOp;

/// Serves `sys/<rest>`.
pub async fn handle(
    core: &Core,
    state: &Unsealed,
    token: Option<&TokenEntry>,
    req: &Request,
    rest: &str,
) -> Result<Response, CoreError> {
    use Operation::*;
    let op = req.operation;
    let write = matches!(op, Create | Update);
    match rest {
        "mounts" if op == Read => list_mounts(state).await,
        "internal/ui/mounts" if op == Read => ui_mounts(state).await,
        "auth" if op == Read => Ok(legacy(auth_table())),
        "policy" if matches!(op, Read | List) => {
            let names = state.policies.list().await?;
            Ok(legacy(json!({ "keys": names, "policies": names })))
        }
        "policies/acl" if matches!(op, Read | List) => {
            Ok(Response::data(json!({ "keys": state.policies.list().await? })))
        }
        "capabilities" if write => capabilities(state, req, None).await,
        "capabilities-self" if write => capabilities(state, req, token).await,
        "capabilities-accessor" if write => {
            let accessor = Fields(&req.data).required_string("accessor")?;
            let entry = state
                .tokens
                .lookup_accessor(&accessor)
                .await?
                .ok_or_else(|| CoreError::invalid("invalid accessor"))?;
            capabilities(state, req, Some(&entry)).await
        }
        "rotate" if write => {
            core.barrier().rotate().await?;
            Ok(Response::empty())
        }
        "key-status" if op == Read => {
            let status = core.barrier().key_status().await?;
            Ok(Response::data(json!({
                "term": status.term,
                "install_time": rfc3339(status.install_time),
                "encryptions": 0,
            })))
        }
        "seal" if write => {
            core.seal().await;
            Ok(Response::empty())
        }
        "step-down" if write => {
            core.step_down().await?;
            Ok(Response::empty())
        }
        "storage/raft/bootstrap/challenge" if write => {
            core.raft_challenge(&Fields(&req.data).string("server_id").unwrap_or_default())
                .await
        }
        "storage/raft/bootstrap/answer" if write => core.raft_answer(&req.data).await,
        "storage/raft/configuration" if op == Read || write => {
            require_dr_token_if_unauthenticated(core, token, req).await?;
            core.raft_configuration().await
        }
        "storage/raft/remove-peer" if write => {
            require_dr_token_if_unauthenticated(core, token, req).await?;
            core.raft_remove_peer(&Fields(&req.data).string("server_id").unwrap_or_default())
                .await
        }
        "storage/raft/promote" | "storage/raft/demote" if write => {
            require_dr_token_if_unauthenticated(core, token, req).await?;
            let server_id = Fields(&req.data).required_string("server_id")?;
            core.raft_set_voter(&server_id, rest.ends_with("promote")).await
        }
        "storage/raft/autopilot/state" if op == Read || write => {
            require_dr_token_if_unauthenticated(core, token, req).await?;
            core.autopilot_state().await
        }
        "storage/raft/autopilot/configuration" if op == Read => Ok(Response::data(json!({
            "cleanup_dead_servers": false,
            "last_contact_threshold": "10s",
            "dead_server_last_contact_threshold": "24h0m0s",
            "max_trailing_logs": 1000,
            "min_quorum": 0,
            "server_stabilization_time": "1s",
            "disable_upgrade_migration": false,
        }))),
        "wrapping/wrap" if write => {
            if req.wrap_ttl.is_none() {
                return Err(CoreError::invalid(
                    "endpoint requires response wrapping to be used",
                ));
            }
            Ok(Response::data(Value::Object(req.data.clone())))
        }
        "wrapping/unwrap" if write => {
            let token = wrapping_token(core, req).await?;
            wrapping::unwrap(state, &token).await
        }
        "wrapping/lookup" if write || op == Read => {
            wrapping::lookup(state, &wrapping_token(core, req).await?).await
        }
        "wrapping/rewrap" if write => wrapping::rewrap(state, &wrapping_token(core, req).await?).await,
        "generate-root-token/attempt" => match op {
            Read => Ok(Response::data(core.generate_root_status(OtpPurpose::Root).await?)),
            Create | Update => {
                let f = Fields(&req.data);
                Ok(Response::data(
                    core.generate_root_start(OtpPurpose::Root, f.string("otp"), f.string("pgp_key"))
                        .await?,
                ))
            }
            Delete => {
                core.generate_root_cancel(OtpPurpose::Root).await;
                Ok(Response::empty())
            }
            _ => Err(CoreError::UnsupportedOperation),
        },
        "generate-root-token/update" if write => {
            let f = Fields(&req.data);
            let key = f.required_string("key")?;
            Ok(Response::data(
                core.generate_root_update(OtpPurpose::Root, &key, &f.string("nonce").unwrap_or_default())
                    .await?,
            ))
        }
        "replication/status" if op == Read => Ok(Response::data(
            json!({ "dr": core.dr_status().await?, "performance": { "mode": "disabled" } }),
        )),
        "replication/dr/status" if op == Read => Ok(Response::data(core.dr_status().await?)),
        "replication/performance/status" if op == Read => Ok(Response::data(json!({ "mode": "disabled" }))),
        "replication/dr/primary/enable" if write => {
            core.dr_primary_enable(state, Fields(&req.data).string("primary_cluster_addr"))
                .await
        }
        "replication/dr/primary/secondary-token" if write => {
            let f = Fields(&req.data);
            core.dr_secondary_token(state, &f.required_string("id")?, f.duration_secs("ttl")?)
                .await
        }
        "replication/dr/primary/revoke-secondary" if write => {
            core.dr_revoke_secondary(&Fields(&req.data).required_string("id")?)
                .await
        }
        "replication/dr/primary/demote" if write => core.dr_demote().await,
        "replication/dr/primary/disable" if write => core.dr_primary_disable().await,
        "replication/dr/secondary/enable" if write => {
            let f = Fields(&req.data);
            let token = f.required_string("token")?;
            let (api, ca) = (f.string("primary_api_addr"), f.string("ca_file"));
            core.dr_secondary_enable(&token, api.as_deref(), ca.as_deref())
                .await
        }
        "replication/dr/secondary/promote" if write => {
            let f = Fields(&req.data);
            core.check_dr_operation_token(&dr_token(req), "sys/replication/dr/secondary/promote")
                .await?;
            core.dr_promote(f.string("primary_cluster_addr")).await
        }
        "replication/dr/secondary/update-primary" if write => {
            let f = Fields(&req.data);
            core.check_dr_operation_token(&dr_token(req), "sys/replication/dr/secondary/update-primary")
                .await?;
            let (api, ca) = (f.string("primary_api_addr"), f.string("ca_file"));
            core.dr_update_primary(
                &f.string("token").unwrap_or_default(),
                api.as_deref(),
                ca.as_deref(),
            )
            .await
        }
        "replication/dr/secondary/operation-token/delete" if write => {
            core.dr_delete_operation_token(&dr_token(req)).await
        }
        "decode-token" if write => {
            let f = Fields(&req.data);
            let token = crate::core::generate_root::decode_token(
                &f.required_string("encoded_token")?,
                &f.required_string("otp")?,
            )
            .ok_or_else(|| CoreError::invalid("the encoded token does not decode with this OTP"))?;
            Ok(Response::data(json!({ "token": token })))
        }
        _ => {
            if let Some(path) = rest.strip_prefix("internal/ui/mounts/") {
                return ui_mount(state, path).await;
            }
            if let Some(path) = rest.strip_prefix("mounts/") {
                return mount_op(core, state, req, path).await;
            }
            if let Some(name) = rest.strip_prefix("policies/acl/") {
                return policy_op(state, req, name, "policy").await;
            }
            if let Some(name) = rest.strip_prefix("policy/") {
                return policy_op(state, req, name, "rules").await;
            }
            Err(CoreError::NoHandler(format!("sys/{rest}")))
        }
    }
}

/// The DR operation token of a request: the `dr_operation_token` field, else the header token.
fn dr_token(req: &Request) -> String {
    Fields(&req.data)
        .string("dr_operation_token")
        .filter(|t| !t.is_empty())
        .or_else(|| req.client_token.clone())
        .unwrap_or_default()
}

/// On a DR secondary, raft endpoints are authorized by a DR operation token instead.
async fn require_dr_token_if_unauthenticated(
    core: &Core,
    token: Option<&TokenEntry>,
    req: &Request,
) -> Result<(), CoreError> {
    if token.is_some() {
        return Ok(());
    }
    core.check_dr_operation_token(&dr_token(req), &req.path).await
}

/// The wrapping token of an unwrap/lookup/rewrap: the `token` field, else the caller's token.
/// Activation tokens in JWT form carry the real wrapping token as `jti`.
async fn wrapping_token(core: &Core, req: &Request) -> Result<String, CoreError> {
    let token = Fields(&req.data)
        .string("token")
        .filter(|t| !t.is_empty())
        .or_else(|| req.client_token.clone())
        .ok_or_else(|| CoreError::invalid(wrapping::INVALID_WRAPPING_TOKEN))?;
    if crate::replication::jwt::looks_like_jwt(&token) {
        return core
            .resolve_activation_jwt(&token)
            .await
            .ok_or_else(|| CoreError::invalid(wrapping::INVALID_WRAPPING_TOKEN));
    }
    Ok(token)
}

/// Legacy endpoints repeat `data` at the top level.
fn legacy(data: Value) -> Response {
    Response {
        legacy_top_level: true,
        ..Response::data(data)
    }
}

fn auth_table() -> Value {
    json!({
        "token/": {
            "accessor": "auth_token_labnode",
            "config": { "default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false, "token_type": "default-service" },
            "description": "token based credentials",
            "external_entropy_access": false,
            "local": false,
            "options": null,
            "seal_wrap": false,
            "type": "token",
            "uuid": "00000000-0000-0000-0000-000000000001",
        }
    })
}

async fn list_mounts(state: &Unsealed) -> Result<Response, CoreError> {
    let table = state.mounts.read().await;
    let map: Map<String, Value> = table
        .entries
        .iter()
        .map(|m| (m.path.clone(), m.to_json()))
        .collect();
    Ok(legacy(Value::Object(map)))
}

async fn ui_mounts(state: &Unsealed) -> Result<Response, CoreError> {
    let table = state.mounts.read().await;
    let secret: Map<String, Value> = table
        .entries
        .iter()
        .map(|m| (m.path.clone(), m.to_json()))
        .collect();
    Ok(Response::data(json!({ "secret": secret, "auth": auth_table() })))
}

async fn ui_mount(state: &Unsealed, path: &str) -> Result<Response, CoreError> {
    let table = state.mounts.read().await;
    let Some((mount, _)) = table.route(path) else {
        return Err(CoreError::Forbidden(format!(
            "preflight capability check returned 403, please ensure client's policies grant access to path \"{path}/\""
        )));
    };
    let mut data = mount.to_json();
    data["path"] = json!(mount.path);
    Ok(Response::data(data))
}

async fn mount_op(core: &Core, state: &Unsealed, req: &Request, path: &str) -> Result<Response, CoreError> {
    if let Some(path) = path.strip_suffix("/tune") {
        return tune(core, state, req, path).await;
    }
    let f = Fields(&req.data);
    match req.operation {
        Operation::Create | Operation::Update => {
            let mount_type = f.required_string("type")?;
            if !matches!(mount_type.as_str(), "kv" | "kv-v1" | "kv-v2" | "generic") {
                return Err(CoreError::invalid(format!(
                    "plugin not found in the catalog: {mount_type}"
                )));
            }
            let normalized = normalize(path);
            if ["sys/", "auth/", "cubbyhole/", "identity/"]
                .iter()
                .any(|p| normalized.starts_with(p))
            {
                return Err(CoreError::invalid(format!(
                    "cannot mount at reserved path \"{normalized}\""
                )));
            }
            let options: BTreeMap<String, String> = f.string_map("options")?.unwrap_or_default();
            let mut entry = MountEntry::new(
                path,
                &mount_type,
                &f.string("description").unwrap_or_default(),
                options,
            );
            if let Some(Value::Object(config)) = req.data.get("config") {
                let cf = Fields(config);
                entry.config.default_lease_ttl = cf.duration_secs("default_lease_ttl")?.unwrap_or(0);
                entry.config.max_lease_ttl = cf.duration_secs("max_lease_ttl")?.unwrap_or(0);
            }
            entry.local = f.bool("local")?.unwrap_or(false);
            entry.seal_wrap = f.bool("seal_wrap")?.unwrap_or(false);
            let mut table = state.mounts.write().await;
            if let Some(existing) = table.conflicts(path) {
                return Err(CoreError::invalid(format!(
                    "path is already in use at {}",
                    existing.path
                )));
            }
            table.entries.push(entry);
            core.save_mounts(&table).await?;
            Ok(Response::empty())
        }
        Operation::Delete => {
            let mut table = state.mounts.write().await;
            let Some(entry) = table.get(path).cloned() else {
                return Ok(Response::empty());
            };
            if !matches!(entry.mount_type.as_str(), "kv") {
                return Err(CoreError::invalid(format!("cannot unmount \"{}\"", entry.path)));
            }
            table.entries.retain(|m| m.path != entry.path);
            core.barrier()
                .write(vec![WriteOp::DeletePrefix {
                    prefix: entry.storage_prefix(),
                }])
                .await?;
            core.save_mounts(&table).await?;
            Ok(Response::empty())
        }
        Operation::Read => {
            let table = state.mounts.read().await;
            let entry = table
                .get(path)
                .ok_or_else(|| CoreError::invalid(format!("no mount entry found at path \"{path}\"")))?;
            Ok(Response::data(entry.to_json()))
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

async fn tune(core: &Core, state: &Unsealed, req: &Request, path: &str) -> Result<Response, CoreError> {
    let mut table = state.mounts.write().await;
    let normalized = normalize(path);
    let entry = table
        .entries
        .iter_mut()
        .find(|m| m.path == normalized)
        .ok_or_else(|| CoreError::invalid(format!("no mount entry found at path \"{path}\"")))?;
    match req.operation {
        Operation::Read => Ok(Response::data(json!({
            "default_lease_ttl": entry.config.default_lease_ttl,
            "max_lease_ttl": entry.config.max_lease_ttl,
            "force_no_cache": entry.config.force_no_cache,
            "description": entry.description,
            "options": entry.options,
        }))),
        Operation::Create | Operation::Update => {
            let f = Fields(&req.data);
            if let Some(v) = f.duration_secs("default_lease_ttl")? {
                entry.config.default_lease_ttl = v;
            }
            if let Some(v) = f.duration_secs("max_lease_ttl")? {
                entry.config.max_lease_ttl = v;
            }
            if let Some(d) = f.string("description") {
                entry.description = d;
            }
            if let Some(options) = f.string_map("options")? {
                if entry.mount_type == "kv"
                    && options.get("version").map(String::as_str) == Some("1")
                    && entry.kv_version() == 2
                {
                    return Err(CoreError::invalid(
                        "cannot downgrade mount from KV version 2 to version 1",
                    ));
                }
                entry.options.extend(options);
            }
            core.save_mounts(&table).await?;
            Ok(Response::empty())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

async fn policy_op(
    state: &Unsealed,
    req: &Request,
    name: &str,
    body_field: &str,
) -> Result<Response, CoreError> {
    let name = name.to_lowercase();
    match req.operation {
        Operation::Read => {
            if name == "root" {
                let data = json!({ "name": "root", body_field: "" });
                return Ok(if body_field == "rules" {
                    legacy(data)
                } else {
                    Response::data(data)
                });
            }
            let policy = state.policies.get(&name).await?.ok_or(CoreError::NotFound)?;
            let data = json!({ "name": policy.name, body_field: policy.raw });
            Ok(if body_field == "rules" {
                legacy(data)
            } else {
                Response::data(data)
            })
        }
        Operation::Create | Operation::Update => {
            let f = Fields(&req.data);
            let raw = f
                .string("policy")
                .or_else(|| f.string("rules"))
                .ok_or_else(|| CoreError::invalid("'policy' parameter not supplied or empty"))?;
            state.policies.put(&name, &raw).await?;
            Ok(Response::empty())
        }
        Operation::Delete => {
            state.policies.delete(&name).await?;
            Ok(Response::empty())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

async fn capabilities(
    state: &Unsealed,
    req: &Request,
    who: Option<&TokenEntry>,
) -> Result<Response, CoreError> {
    let f = Fields(&req.data);
    let entry = match who {
        Some(e) => e.clone(),
        None => {
            let token = f.required_string("token")?;
            state
                .tokens
                .lookup(&token)
                .await?
                .ok_or_else(|| CoreError::invalid("invalid token"))?
        }
    };
    let paths = f
        .string_list("paths")
        .or_else(|| f.string_list("path"))
        .unwrap_or_default();
    if paths.is_empty() {
        return Err(CoreError::invalid("missing paths"));
    }
    let mut data = Map::new();
    let mut all = Vec::new();
    for path in &paths {
        let caps = state.policies.capabilities(&entry.policies, path).await?;
        all.extend(caps.clone());
        data.insert(path.clone(), json!(caps));
    }
    if paths.len() == 1 {
        data.insert("capabilities".into(), json!(all));
    }
    Ok(legacy(Value::Object(data)))
}
