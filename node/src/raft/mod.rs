//! Integrated Storage: openraft over a redb log store and state machine.
//!
//! One redb file per node holds the Raft log, vote, commit index and the replicated
//! key/value data; the current snapshot is a file beside it. [`RaftStore`] implements [`crate::storage::Physical`]: reads come from the
//! local state machine (on the leader only inside a quorum-confirmed read lease), writes go
//! through consensus. Peers talk over the cluster port using
//! [`RaftStore::cluster_router`].

mod db;
mod error;
mod log_store;
mod network;
mod node;
mod read_lease;
mod snapshot_file;
mod state_machine;
mod types;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use std::sync::Arc;

use serde::Serialize;

use crate::cluster::ClusterTransport;

pub use error::RaftError;
pub use node::{DataPairs, FollowerProgress, RaftStore, ReplicationView, WalEntry, WalRead};
pub use types::{node_id_for, NodeInfo};

/// How to open and run one Raft node; mirrors Vault's `storage "raft"` stanza.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// The Vault node name, unique in the cluster.
    pub node_id: String,
    /// Directory holding the node's database file.
    pub path: PathBuf,
    /// host:port advertised to peers for Raft RPCs.
    pub cluster_addr: String,
    /// The API address advertised for client redirection.
    pub api_addr: String,
    /// Applied entries between snapshots (log compaction trigger).
    pub snapshot_threshold: u64,
    /// Entries kept in the log behind a snapshot so slow followers avoid a full snapshot.
    pub trailing_logs: u64,
    /// Scales heartbeat and election timeouts (1 = fastest, 0 = the default, currently 1).
    pub performance_multiplier: u64,
    /// The mutually authenticated client for peers' cluster ports.
    pub transport: Arc<ClusterTransport>,
}

/// One member of the cluster as `list-peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaftMember {
    /// The Vault node name.
    pub name: String,
    /// Where peers reach it.
    pub cluster_addr: String,
    /// Where clients are redirected to.
    pub api_addr: String,
    /// Whether it votes (false for learners / non-voters).
    pub voter: bool,
}

/// A point-in-time view of this node's consensus state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaftStatus {
    /// This node's name.
    pub node_id: String,
    /// Whether consensus is started on this node.
    pub running: bool,
    /// The current leader, when known.
    pub leader: Option<NodeInfo>,
    /// Whether this node is the leader.
    pub is_leader: bool,
    /// The current (or last saved) term.
    pub term: u64,
    /// Highest log index known committed.
    pub committed_index: u64,
    /// Highest log index applied to the local state machine.
    pub applied_index: u64,
    /// The membership as last applied or observed.
    pub members: Vec<RaftMember>,
}
