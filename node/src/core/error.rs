//! Errors of the logical layer, each with the HTTP status Vault uses for it.
//!
//! Each concern has its own error type beside its code (`JoinError` in `join.rs`,
//! `MountError` in `mounts.rs`, ...); `CoreError` carries them unflattened, so the cause
//! stays reachable through `source()` while the message and status stay Vault's.

use super::acl::PolicyStoreError;
use super::ha::MembershipError;
use super::join::JoinError;
use super::mounts::MountError;
use super::seal_error::{GenerateRootError, SealStateError};
use super::snapshot::SnapshotError;
use super::ClusterStateError;
use crate::barrier::BarrierError;
use crate::raft::RaftError;
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
    // Typed causes, one per concern: the message is the cause's own.
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error(transparent)]
    ClusterState(#[from] ClusterStateError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    PolicyStore(#[from] PolicyStoreError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Raft(#[from] RaftError),
    /// Barrier failures other than sealed or not writable (see the `From` below).
    #[error(transparent)]
    Barrier(BarrierError),
    /// Storage failures other than not writable.
    #[error(transparent)]
    Storage(StorageError),
    // Seal state, OTP token attempts and DR replication (each carries its own status).
    #[error(transparent)]
    SealState(#[from] SealStateError),
    #[error(transparent)]
    GenerateRoot(#[from] GenerateRootError),
    #[error(transparent)]
    Replication(#[from] ReplicationError),
}

/// A JSON record kept in storage (KV data, cubbyhole entries, token entries and roles,
/// wrapped responses) could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("stored data is not an object")]
    NotAnObject,
}

impl From<serde_json::Error> for CoreError {
    fn from(e: serde_json::Error) -> Self {
        CoreError::Record(RecordError::Json(e))
    }
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
            CoreError::Join(e) => e.status(),
            CoreError::Membership(e) => e.status(),
            CoreError::PolicyStore(e) => e.status(),
            CoreError::ClusterState(_)
            | CoreError::Mount(_)
            | CoreError::Snapshot(_)
            | CoreError::Record(_)
            | CoreError::Raft(_)
            | CoreError::Barrier(_)
            | CoreError::Storage(_) => 500,
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
            other => CoreError::Barrier(other),
        }
    }
}

impl From<StorageError> for CoreError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotWritable(msg) => CoreError::Unavailable(msg),
            other => CoreError::Storage(other),
        }
    }
}
