//! Cubbyhole: private storage of one token, gone when the token is.

use serde_json::{json, Value};

use crate::core::tokens::{TokenEntry, TokenType};
use crate::core::{Core, CoreError, Operation, Request, Response};

/// Storage prefix of one token's cubbyhole.
pub fn prefix(token: &TokenEntry) -> String {
    format!("cubbyhole/{}/", token.id_hash)
}

/// Serves `cubbyhole/<rest>` for the calling token.
pub async fn handle(
    core: &Core,
    token: Option<&TokenEntry>,
    req: &Request,
    rest: &str,
) -> Result<Response, CoreError> {
    let token = token.ok_or(CoreError::PermissionDenied)?;
    if token.token_type == TokenType::Batch {
        return Err(CoreError::invalid("cubbyhole is not available to batch tokens"));
    }
    let base = prefix(token);
    match req.operation {
        Operation::List => {
            let dir = if rest.is_empty() || rest.ends_with('/') {
                rest.to_string()
            } else {
                format!("{rest}/")
            };
            let keys = core.barrier().list(&format!("{base}{dir}")).await?;
            if keys.is_empty() {
                return Err(CoreError::NotFound);
            }
            Ok(Response::data(json!({ "keys": keys })))
        }
        Operation::Read => {
            let bytes = core
                .barrier()
                .get(&format!("{base}{rest}"))
                .await?
                .ok_or(CoreError::NotFound)?;
            let data: Value = serde_json::from_slice(&bytes)?;
            Ok(Response::data(data))
        }
        Operation::Create | Operation::Update => {
            if rest.is_empty() {
                return Err(CoreError::invalid("missing path"));
            }
            let bytes = serde_json::to_vec(&req.data)?;
            core.barrier().put(&format!("{base}{rest}"), bytes).await?;
            Ok(Response::empty())
        }
        Operation::Delete => {
            core.barrier().delete(&format!("{base}{rest}")).await?;
            Ok(Response::empty())
        }
        Operation::Patch => Err(CoreError::UnsupportedOperation),
    }
}
