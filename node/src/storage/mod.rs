//! The physical storage layer: an ordered key/value store of opaque bytes.
//!
//! Everything above this layer sees only ciphertext-agnostic bytes; the barrier
//! encrypts before anything reaches an implementation. Two implementations exist:
//! [`InmemStorage`] for `-dev` mode and tests, and the Raft-backed store in
//! [`crate::raft`].

mod inmem;

pub use inmem::InmemStorage;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Failures of a physical store, kept coarse so every backend can report them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// This node cannot accept writes (it is not the Raft leader, or lost quorum).
    #[error("storage is not writable on this node: {0}")]
    NotWritable(String),
    /// The underlying engine failed (I/O, corruption, a shut-down Raft node).
    #[error("storage backend failure: {0}")]
    Backend(String),
}

/// One mutation inside an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// Create or replace `key`.
    Put { key: String, value: Vec<u8> },
    /// Remove `key`; removing a missing key is not an error.
    Delete { key: String },
    /// Remove every key that starts with `prefix` (mount disable, DR secondary wipe).
    DeletePrefix { prefix: String },
}

/// A key/value store with Vault's physical semantics.
///
/// `list` returns the immediate children of `prefix`: keys without further `/`
/// verbatim, and deeper keys collapsed to their first segment with a trailing `/`,
/// sorted and de-duplicated.
#[async_trait]
pub trait Physical: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Lists the immediate children of `prefix` (which is empty or ends with `/`).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Applies every op atomically and durably, in order; returns once applied.
    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StorageError>;

    /// Convenience for a single put.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.write(vec![WriteOp::Put {
            key: key.to_string(),
            value,
        }])
        .await
    }

    /// Convenience for a single delete.
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.write(vec![WriteOp::Delete { key: key.to_string() }]).await
    }
}

/// Collapses sorted full keys under `prefix` into Vault-style immediate children.
///
/// Shared by every backend so listing behaves identically everywhere.
pub fn immediate_children<'a>(prefix: &str, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_collapse_directories() {
        let keys = ["a/b", "a/c/d", "a/c/e", "a/f", "b/x"];
        assert_eq!(
            immediate_children("a/", keys.iter().copied()),
            vec!["b", "c/", "f"]
        );
        assert_eq!(immediate_children("", keys.iter().copied()), vec!["a/", "b/"]);
        assert!(immediate_children("z/", keys.iter().copied()).is_empty());
    }
}
