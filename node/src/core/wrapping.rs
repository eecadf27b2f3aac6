//! Response wrapping: a response is parked in the cubbyhole of a single-use token
//! and the client gets only that token.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::tokens::{rfc3339, TokenEntry, TokenRequest, TokenType};
use super::{Auth, CoreError, Response, Unsealed, WrapInfo};

/// The message for an unknown, used or expired wrapping token.
pub const INVALID_WRAPPING_TOKEN: &str = "wrapping token is not valid or does not exist";

/// What is kept in the wrapping token's cubbyhole.
#[derive(Serialize, Deserialize)]
struct Wrapped {
    creation_path: String,
    creation_time: DateTime<Utc>,
    ttl: u64,
    data: Option<Map<String, Value>>,
    auth: Option<Auth>,
    warnings: Vec<String>,
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
}

fn cubby_key(entry: &TokenEntry) -> String {
    format!("cubbyhole/{}/response", entry.id_hash)
}

/// Wraps `resp` for `ttl` seconds; returns the response carrying only `wrap_info`.
pub async fn wrap(
    state: &Unsealed,
    resp: Response,
    ttl: u64,
    creation_path: &str,
) -> Result<Response, CoreError> {
    let wrapped_accessor = resp
        .auth
        .as_ref()
        .map(|a| a.accessor.clone())
        .filter(|a| !a.is_empty());
    let stored = Wrapped {
        creation_path: creation_path.to_string(),
        creation_time: Utc::now(),
        ttl,
        data: resp.data,
        auth: resp.auth,
        warnings: resp.warnings,
        lease_id: resp.lease_id,
        lease_duration: resp.lease_duration,
        renewable: resp.renewable,
    };
    store(state, stored, wrapped_accessor).await
}

async fn store(
    state: &Unsealed,
    stored: Wrapped,
    wrapped_accessor: Option<String>,
) -> Result<Response, CoreError> {
    let request = TokenRequest {
        policies: vec!["response-wrapping".into()],
        display_name: String::new(),
        num_uses: 1,
        ttl: stored.ttl,
        renewable: false,
        orphan: true,
        token_type: TokenType::Service,
        path: stored.creation_path.clone(),
        ..TokenRequest::root("")
    };
    let (token, entry) = state.tokens.create(None, request).await?;
    let bytes = serde_json::to_vec(&stored)?;
    state.tokens.barrier().put(&cubby_key(&entry), bytes).await?;
    Ok(Response {
        wrap_info: Some(WrapInfo {
            token,
            accessor: entry.accessor.clone(),
            ttl: stored.ttl,
            creation_time: rfc3339(stored.creation_time),
            creation_path: stored.creation_path,
            wrapped_accessor,
        }),
        ..Response::empty()
    })
}

async fn load(state: &Unsealed, token: &str) -> Result<(TokenEntry, Wrapped), CoreError> {
    let invalid = || CoreError::invalid(INVALID_WRAPPING_TOKEN);
    let entry = state.tokens.lookup(token).await?.ok_or_else(invalid)?;
    if !entry.policies.iter().any(|p| p == "response-wrapping") {
        return Err(invalid());
    }
    let bytes = state
        .tokens
        .barrier()
        .get(&cubby_key(&entry))
        .await?
        .ok_or_else(invalid)?;
    let stored = serde_json::from_slice(&bytes)?;
    Ok((entry, stored))
}

/// Returns the wrapped response and destroys the wrapping token.
pub async fn unwrap(state: &Unsealed, token: &str) -> Result<Response, CoreError> {
    let (entry, stored) = load(state, token).await?;
    state.tokens.revoke_tree(&entry.id_hash).await?;
    Ok(Response {
        data: stored.data,
        auth: stored.auth,
        warnings: stored.warnings,
        lease_id: stored.lease_id,
        lease_duration: stored.lease_duration,
        renewable: stored.renewable,
        ..Response::empty()
    })
}

/// `sys/wrapping/lookup`: what a wrapping token holds, without using it.
pub async fn lookup(state: &Unsealed, token: &str) -> Result<Response, CoreError> {
    let (_, stored) = load(state, token).await?;
    Ok(Response::data(json!({
        "creation_path": stored.creation_path,
        "creation_time": rfc3339(stored.creation_time),
        "creation_ttl": stored.ttl,
    })))
}

/// `sys/wrapping/rewrap`: the same response under a fresh token; the old one dies.
pub async fn rewrap(state: &Unsealed, token: &str) -> Result<Response, CoreError> {
    let (entry, mut stored) = load(state, token).await?;
    state.tokens.revoke_tree(&entry.id_hash).await?;
    stored.creation_time = Utc::now();
    let accessor = stored
        .auth
        .as_ref()
        .map(|a| a.accessor.clone())
        .filter(|a| !a.is_empty());
    store(state, stored, accessor).await
}
