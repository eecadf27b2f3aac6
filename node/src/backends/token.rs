//! `auth/token/`: creating, looking up, renewing and revoking tokens, and roles.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::core::fields::Fields;
use crate::core::tokens::{TokenEntry, TokenRequest, TokenType};
use crate::core::{Auth, Core, CoreError, Operation, Request, Response, Unsealed};

const ROLE_PREFIX: &str = "sys/token/role/";

/// A token role (`auth/token/roles/<name>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Role {
    name: String,
    allowed_policies: Vec<String>,
    disallowed_policies: Vec<String>,
    orphan: bool,
    renewable: bool,
    token_type: String,
    period: u64,
    explicit_max_ttl: u64,
    token_ttl: u64,
    path_suffix: String,
}

/// Serves `auth/token/<rest>`.
pub async fn handle(
    core: &Core,
    state: &Unsealed,
    token: Option<&TokenEntry>,
    req: &Request,
    rest: &str,
) -> Result<Response, CoreError> {
    let caller = token.ok_or(CoreError::PermissionDenied)?;
    let f = Fields(&req.data);
    let write = matches!(req.operation, Operation::Create | Operation::Update);
    match rest {
        "create" | "create-orphan" if write => {
            create(core, state, caller, req, rest == "create-orphan", None).await
        }
        "lookup-self" if matches!(req.operation, Operation::Read) || write => {
            Ok(Response::data(caller.lookup_data(req.client_token.as_deref())))
        }
        "lookup" if matches!(req.operation, Operation::Read) || write => {
            let (text, entry) = named_token(state, &f).await?;
            Ok(Response::data(entry.lookup_data(Some(&text))))
        }
        "lookup-accessor" if write => {
            let entry = named_accessor(state, &f).await?;
            Ok(Response::data(entry.lookup_data(None)))
        }
        "renew-self" if write => {
            renew(
                state,
                caller,
                req,
                req.client_token.as_deref().unwrap_or_default(),
            )
            .await
        }
        "renew" if write => {
            let (text, entry) = named_token(state, &f).await?;
            renew(state, &entry, req, &text).await
        }
        "renew-accessor" if write => {
            let entry = named_accessor(state, &f).await?;
            renew(state, &entry, req, "").await
        }
        "revoke-self" if write => revoke(state, caller, false).await,
        "revoke" if write => {
            let text = f.required_string("token")?;
            match state.tokens.lookup(&text).await? {
                Some(entry) => revoke(state, &entry, false).await,
                None => Ok(Response::empty()),
            }
        }
        "revoke-orphan" if write => {
            let text = f.required_string("token")?;
            match state.tokens.lookup(&text).await? {
                Some(entry) => revoke(state, &entry, true).await,
                None => Ok(Response::empty()),
            }
        }
        "revoke-accessor" if write => {
            let accessor = f.required_string("accessor")?;
            match state.tokens.lookup_accessor(&accessor).await? {
                Some(entry) => revoke(state, &entry, false).await,
                None => Err(CoreError::invalid("invalid accessor")),
            }
        }
        "roles" | "roles/" if matches!(req.operation, Operation::List | Operation::Read) => {
            let keys = core.barrier().list(ROLE_PREFIX).await?;
            if keys.is_empty() {
                return Err(CoreError::NotFound);
            }
            Ok(Response::data(json!({ "keys": keys })))
        }
        _ => {
            if let Some(role) = rest.strip_prefix("create/") {
                if write {
                    return create(core, state, caller, req, false, Some(role)).await;
                }
            }
            if let Some(name) = rest.strip_prefix("roles/") {
                return role_op(core, req, name).await;
            }
            Err(CoreError::NoHandler(format!("auth/token/{rest}")))
        }
    }
}

/// The live token named by the `token` field.
async fn named_token(state: &Unsealed, f: &Fields<'_>) -> Result<(String, TokenEntry), CoreError> {
    let text = f.required_string("token")?;
    let entry = state
        .tokens
        .lookup(&text)
        .await?
        .ok_or_else(|| CoreError::invalid("invalid token"))?;
    Ok((text, entry))
}

/// The live token whose accessor is the `accessor` field.
async fn named_accessor(state: &Unsealed, f: &Fields<'_>) -> Result<TokenEntry, CoreError> {
    let accessor = f.required_string("accessor")?;
    state
        .tokens
        .lookup_accessor(&accessor)
        .await?
        .ok_or_else(|| CoreError::invalid("invalid accessor"))
}

/// The `auth` block for a freshly created or renewed token.
fn auth_block(token: &str, entry: &TokenEntry) -> Auth {
    let now = chrono::Utc::now().timestamp();
    Auth {
        client_token: token.to_string(),
        accessor: entry.accessor.clone(),
        policies: entry.policies.clone(),
        token_policies: entry.policies.clone(),
        identity_policies: None,
        metadata: entry.meta.clone(),
        lease_duration: entry.remaining_ttl(now),
        renewable: entry.renewable,
        entity_id: String::new(),
        token_type: entry.token_type.as_str().into(),
        orphan: entry.orphan,
        mfa_requirement: None,
        num_uses: entry.num_uses,
    }
}

async fn load_role(core: &Core, name: &str) -> Result<Option<Role>, CoreError> {
    match core.barrier().get(&format!("{ROLE_PREFIX}{name}")).await? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

async fn create(
    core: &Core,
    state: &Unsealed,
    parent: &TokenEntry,
    req: &Request,
    orphan_endpoint: bool,
    role_name: Option<&str>,
) -> Result<Response, CoreError> {
    let f = Fields(&req.data);
    if parent.token_type == TokenType::Batch {
        return Err(CoreError::invalid("batch tokens cannot create more tokens"));
    }
    let role = match role_name {
        Some(name) => Some(
            load_role(core, name)
                .await?
                .ok_or_else(|| CoreError::invalid(format!("unknown role {name}")))?,
        ),
        None => None,
    };
    let mut policies = f.string_list("policies").unwrap_or_default();
    let no_default = f.bool("no_default_policy")?.unwrap_or(false);
    let parent_root = parent.is_root();
    if let Some(role) = &role {
        if policies.is_empty() {
            policies = role.allowed_policies.clone();
        } else if !role.allowed_policies.is_empty() {
            if let Some(bad) = policies
                .iter()
                .find(|p| *p != "default" && !role.allowed_policies.contains(p))
            {
                return Err(CoreError::invalid(format!(
                    "token policies ([{bad}]) must be subset of the role's allowed policies"
                )));
            }
        }
        if let Some(bad) = policies.iter().find(|p| role.disallowed_policies.contains(p)) {
            return Err(CoreError::invalid(format!(
                "token policy ({bad}) is disallowed by this role"
            )));
        }
    } else if policies.is_empty() {
        policies = parent.policies.clone();
    } else if !parent_root {
        let allowed: Vec<&String> = parent.policies.iter().collect();
        if let Some(bad) = policies.iter().find(|p| *p != "default" && !allowed.contains(p)) {
            return Err(CoreError::invalid(format!(
                "child policies must be subset of parent: {bad} is not in the parent's policies"
            )));
        }
    }
    if policies.iter().any(|p| p == "root") && !parent_root {
        return Err(CoreError::invalid(
            "root tokens may not be created by a non-root token",
        ));
    }
    if !no_default && !policies.iter().any(|p| p == "root") && !policies.iter().any(|p| p == "default") {
        policies.push("default".into());
    }
    policies.sort();
    policies.dedup();

    let no_parent = f.bool("no_parent")?.unwrap_or(false);
    if no_parent && !parent_root && !orphan_endpoint {
        return Err(CoreError::invalid(
            "root or sudo privileges required to create orphan token",
        ));
    }
    let orphan = orphan_endpoint || no_parent || role.as_ref().is_some_and(|r| r.orphan);
    let requested = f.string("type");
    let token_type = match (role.as_ref().map(|r| r.token_type.as_str()), requested.as_deref()) {
        (Some("batch"), _) => TokenType::Batch,
        (Some("service"), _) => TokenType::Service,
        (Some("default-batch"), Some("service")) => TokenType::Service,
        (Some("default-batch"), _) => TokenType::Batch,
        (_, Some("batch")) => TokenType::Batch,
        _ => TokenType::Service,
    };
    if token_type == TokenType::Batch && policies.iter().any(|p| p == "root") {
        return Err(CoreError::invalid("batch tokens cannot have the root policy"));
    }
    let mut renewable = f.bool("renewable")?.unwrap_or(true);
    if role.as_ref().is_some_and(|r| !r.renewable) {
        renewable = false;
    }
    let mut ttl = f.duration_secs("ttl")?.unwrap_or(0);
    if ttl == 0 {
        ttl = role.as_ref().map(|r| r.token_ttl).unwrap_or(0);
    }
    let mut explicit_max_ttl = f.duration_secs("explicit_max_ttl")?.unwrap_or(0);
    if let Some(r) = role.as_ref().filter(|r| r.explicit_max_ttl > 0) {
        explicit_max_ttl = if explicit_max_ttl == 0 {
            r.explicit_max_ttl
        } else {
            explicit_max_ttl.min(r.explicit_max_ttl)
        };
    }
    let mut period = f.duration_secs("period")?.unwrap_or(0);
    if let Some(r) = role.as_ref().filter(|r| r.period > 0) {
        period = r.period;
    }
    let display = f.string("display_name").unwrap_or_default();
    let display_name = if display.is_empty() {
        "token".to_string()
    } else {
        format!("token-{display}")
    };
    let request = TokenRequest {
        id: f.string("id").filter(|s| !s.is_empty()),
        policies,
        meta: f.string_map("meta")?,
        display_name,
        // Lossless: the count was read as an i64 and checked not negative.
        num_uses: f
            .non_negative_int("num_uses", Some("number of uses cannot be negative"))?
            .unwrap_or(0) as i64,
        ttl,
        explicit_max_ttl,
        period,
        orphan,
        renewable,
        token_type,
        path: match role_name {
            Some(r) => format!("auth/token/create/{r}"),
            None if orphan_endpoint => "auth/token/create-orphan".into(),
            None => "auth/token/create".into(),
        },
        role: role_name.map(str::to_string),
    };
    if request.id.is_some() && !parent_root {
        return Err(CoreError::invalid(
            "root or sudo privileges required to specify token id",
        ));
    }
    let (text, entry) = state.tokens.create(Some(parent), request).await?;
    Ok(Response {
        auth: Some(auth_block(&text, &entry)),
        ..Response::empty()
    })
}

async fn renew(
    state: &Unsealed,
    entry: &TokenEntry,
    req: &Request,
    text: &str,
) -> Result<Response, CoreError> {
    let increment = Fields(&req.data).duration_secs("increment")?;
    let renewed = state.tokens.renew(entry, increment).await?;
    Ok(Response {
        auth: Some(auth_block(text, &renewed)),
        ..Response::empty()
    })
}

async fn revoke(state: &Unsealed, entry: &TokenEntry, orphan: bool) -> Result<Response, CoreError> {
    if entry.token_type == TokenType::Batch {
        return Err(CoreError::invalid("batch tokens cannot be revoked"));
    }
    if orphan {
        state.tokens.revoke_orphan(&entry.id_hash).await?;
    } else {
        state.tokens.revoke_tree(&entry.id_hash).await?;
    }
    Ok(Response::empty())
}

async fn role_op(core: &Core, req: &Request, name: &str) -> Result<Response, CoreError> {
    let key = format!("{ROLE_PREFIX}{name}");
    match req.operation {
        Operation::Read => {
            let role = load_role(core, name).await?.ok_or(CoreError::NotFound)?;
            Ok(Response::data(json!({
                "name": role.name,
                "allowed_policies": role.allowed_policies,
                "disallowed_policies": role.disallowed_policies,
                "orphan": role.orphan,
                "renewable": role.renewable,
                "token_type": role.token_type,
                "period": role.period,
                "token_period": role.period,
                "explicit_max_ttl": role.explicit_max_ttl,
                "token_explicit_max_ttl": role.explicit_max_ttl,
                "token_ttl": role.token_ttl,
                "path_suffix": role.path_suffix,
            })))
        }
        Operation::Create | Operation::Update => {
            let f = Fields(&req.data);
            let mut role = load_role(core, name).await?.unwrap_or_else(|| Role {
                name: name.into(),
                renewable: true,
                token_type: "default-service".into(),
                ..Role::default()
            });
            if let Some(v) = f.string_list("allowed_policies") {
                role.allowed_policies = v;
            }
            if let Some(v) = f.string_list("disallowed_policies") {
                role.disallowed_policies = v;
            }
            if let Some(v) = f.bool("orphan")? {
                role.orphan = v;
            }
            if let Some(v) = f.bool("renewable")? {
                role.renewable = v;
            }
            if let Some(v) = f.string("token_type") {
                if !matches!(
                    v.as_str(),
                    "service" | "batch" | "default-service" | "default-batch" | "default"
                ) {
                    return Err(CoreError::invalid(format!("invalid 'token_type' value \"{v}\"")));
                }
                role.token_type = if v == "default" {
                    "default-service".into()
                } else {
                    v
                };
            }
            if let Some(v) = f.duration_secs("token_period")?.or(f.duration_secs("period")?) {
                role.period = v;
            }
            if let Some(v) = f
                .duration_secs("token_explicit_max_ttl")?
                .or(f.duration_secs("explicit_max_ttl")?)
            {
                role.explicit_max_ttl = v;
            }
            if let Some(v) = f.duration_secs("token_ttl")? {
                role.token_ttl = v;
            }
            if let Some(v) = f.string("path_suffix") {
                role.path_suffix = v;
            }
            let bytes = serde_json::to_vec(&role)?;
            core.barrier().put(&key, bytes).await?;
            Ok(Response::empty())
        }
        Operation::Delete => {
            core.barrier().delete(&key).await?;
            Ok(Response::empty())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}
