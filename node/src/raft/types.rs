//! The openraft type configuration and the records it carries.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::WriteOp;

openraft::declare_raft_types!(
    /// Binds openraft's generic machinery to labnode's entries, peers and snapshot blobs.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft node id; derived from the Vault node name by [`node_id_for`].
pub type NodeId = u64;

/// A log entry of this cluster.
pub type Entry = openraft::Entry<TypeConfig>;

/// The openraft handle of this cluster.
pub type Raft = openraft::Raft<TypeConfig>;

/// A peer as the operator knows it: the Vault node name and both advertised addresses.
///
/// Carried as openraft's `Node` so that membership (and so `list-peers`) shows names and
/// addresses, not hashed ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The Vault `node_id` string.
    pub name: String,
    /// host:port of the cluster listener, where `/raft/*` RPCs are served.
    pub cluster_addr: String,
    /// The API address clients are redirected to.
    pub api_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.cluster_addr)
    }
}

/// One Raft entry's payload: physical write batches, each applied atomically and in order.
///
/// Concurrent `Physical::write` calls are coalesced into one entry so that a single log fsync
/// covers many callers; a batch is never split across entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The coalesced batches, in submission order.
    pub batches: Vec<Vec<WriteOp>>,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request{{batches: {}}}", self.batches.len())
    }
}

/// What applying an entry reports back to `client_write`; writes carry no result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response;

/// Maps a Vault node name to openraft's numeric id: the first 8 bytes of its SHA-256.
///
/// Deterministic, so every peer derives the same id from the same name without coordination.
pub fn node_id_for(name: &str) -> NodeId {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Encodes a record in the compact binary format used on disk and on the wire.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}

/// Decodes a record written by [`encode`].
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}
