//! Errors of the logical layer, each with the HTTP status Vault uses for it.

use super::seal_error::{GenerateRootError, SealStateError};
use crate::barrier::BarrierError;
use crate::replication::ReplicationError;
use crate::storage::StorageError;

/// Why a logical request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    #[error("Vault is sealed")]
    Sealed,
    #[error("permission denied")]
    PermissionDenied,
    /// A 403 with a more specific message.
    #[error("{0}")]
    Forbidden(String),
    /// A missing secret: 404 with an empty error list.
    #[error("not found")]
    NotFound,
    #[error("unsupported path")]
    UnsupportedPath,
    #[error("no handler for route \"{0}\". route entry not found.")]
    NoHandler(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("unsupported operation")]
    UnsupportedOperation,
    #[error("Vault is not initialized")]
    NotInitialized,
    /// This node is a standby; the request belongs on the active node.
    #[error("node is not the active node")]
    Standby,
    /// 503 with a message: no active node reachable, or similar.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    // Seal state, OTP token attempts and DR replication (each carries its own status).
    #[error(transparent)]
    SealState(#[from] SealStateError),
    #[error(transparent)]
    GenerateRoot(#[from] GenerateRootError),
    #[error(transparent)]
    Replication(#[from] ReplicationError),
}

impl CoreError {
    /// The HTTP status code for this error.
    pub fn status(&self) -> u16 {
        match self {
            CoreError::Sealed | CoreError::Standby | CoreError::Unavailable(_) => 503,
            CoreError::PermissionDenied | CoreError::Forbidden(_) => 403,
            CoreError::NotFound | CoreError::UnsupportedPath | CoreError::NoHandler(_) => 404,
            CoreError::InvalidRequest(_) => 400,
            CoreError::UnsupportedOperation => 405,
            CoreError::NotInitialized => 400,
            CoreError::Internal(_) => 500,
            CoreError::SealState(e) => e.status(),
            CoreError::GenerateRoot(e) => e.status(),
            CoreError::Replication(e) => e.status(),
        }
    }

    /// The `errors` array of the body (empty for a plain 404).
    pub fn messages(&self) -> Vec<String> {
        match self {
            CoreError::NotFound | CoreError::UnsupportedOperation => vec![],
            other => vec![other.to_string()],
        }
    }

    /// Shorthand for a 400.
    pub fn invalid(msg: impl Into<String>) -> Self {
        CoreError::InvalidRequest(msg.into())
    }
}

impl From<BarrierError> for CoreError {
    fn from(e: BarrierError) -> Self {
        match e {
            BarrierError::Sealed => CoreError::Sealed,
            BarrierError::Storage(StorageError::NotWritable(msg)) => CoreError::Unavailable(msg),
            other => CoreError::Internal(other.to_string()),
        }
    }
}

impl From<StorageError> for CoreError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotWritable(msg) => CoreError::Unavailable(msg),
            other => CoreError::Internal(other.to_string()),
        }
    }
}
