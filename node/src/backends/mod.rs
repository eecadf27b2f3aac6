//! Backends: the handlers behind each path prefix.
//!
//! `sys/` and `auth/token/` are built in; `cubbyhole/` is per token; everything
//! else is looked up in the mount table (kv v1 and v2 for now).

mod cubbyhole;
pub mod kv;
mod sys;
mod token;

use crate::core::tokens::TokenEntry;
use crate::core::{Core, CoreError, Operation, Request, Response, Unsealed};

/// Sends an authorized request to the backend that owns its path.
pub async fn route(
    core: &Core,
    state: &Unsealed,
    token: Option<&TokenEntry>,
    req: &Request,
) -> Result<Response, CoreError> {
    let path = req.path.as_str();
    if let Some(rest) = path.strip_prefix("sys/") {
        return sys::handle(core, state, token, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix("auth/token/") {
        return token::handle(core, state, token, req, rest).await;
    }
    if let Some(rest) = path
        .strip_prefix("cubbyhole/")
        .or((path == "cubbyhole").then_some(""))
    {
        return cubbyhole::handle(core, token, req, rest).await;
    }
    let mount = {
        let table = state.mounts.read().await;
        table.route(path).map(|(m, rest)| (m.clone(), rest.to_string()))
    };
    match mount {
        Some((m, rest)) if m.mount_type == "kv" => kv::handle(core, &m, &rest, req).await,
        _ => Err(CoreError::NoHandler(path.to_string())),
    }
}

/// Turns an `Update` into a `Create` when the target does not exist yet, so the
/// ACL can tell the `create` and `update` capabilities apart.
pub async fn refine_operation(core: &Core, state: &Unsealed, req: &mut Request) -> Result<(), CoreError> {
    if req.operation != Operation::Update {
        return Ok(());
    }
    let mount = {
        let table = state.mounts.read().await;
        table
            .route(&req.path)
            .map(|(m, rest)| (m.clone(), rest.to_string()))
    };
    if let Some((m, rest)) = mount.filter(|(m, _)| m.mount_type == "kv") {
        if !kv::exists(core, &m, &rest).await? {
            req.operation = Operation::Create;
        }
    }
    Ok(())
}
