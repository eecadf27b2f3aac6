//! The single error type of the Integrated Storage module.

use crate::storage::StorageError;

/// Everything that can go wrong opening, running or reconfiguring the Raft store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaftError {
    /// The data directory could not be created or read.
    #[error("raft data directory: {0}")]
    Io(#[from] std::io::Error),
    /// redb failed to open, read or commit.
    #[error("raft database: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A blocking storage task (open, read, write) died before it answered.
    #[error("raft database: {what} task failed: {source}")]
    Task {
        what: &'static str,
        source: tokio::task::JoinError,
    },
    /// A stored or received record could not be encoded or decoded.
    #[error("raft encoding: {0}")]
    Codec(#[from] postcard::Error),
    /// The options do not describe a valid node (e.g. an empty node id).
    #[error("invalid raft options: {0}")]
    InvalidOptions(String),
    /// `bootstrap` was called on a node that already has Raft state.
    #[error("raft node is already bootstrapped")]
    AlreadyBootstrapped,
    /// The operation needs consensus running; call `start` first.
    #[error("raft consensus is not running on this node")]
    NotRunning,
    /// The operation must run on the leader; the leader's name is given when known.
    #[error("this node is not the raft leader (leader: {})", .0.as_deref().unwrap_or("unknown"))]
    NotLeader(Option<String>),
    /// This node is in the Leader state but a quorum did not confirm it still leads, so it
    /// must not answer reads from its own, possibly stale, state.
    #[error("this node could not confirm it still leads the raft cluster: {0}")]
    LeadershipUnconfirmed(String),
    /// The named peer is not part of the membership.
    #[error("unknown raft peer {0:?}")]
    UnknownPeer(String),
    /// The cluster removed this node; it must be wiped before it can join again.
    #[error("this node was removed from its raft cluster; delete its data directory to join again")]
    Removed,
    /// Another membership change is still being committed; try again shortly.
    #[error("raft membership change in progress: {0}")]
    MembershipBusy(String),
    /// openraft rejected or failed the request.
    #[error("raft: {0}")]
    Consensus(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// openraft failed while shutting down.
    #[error("raft: shutdown: {0}")]
    Shutdown(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Consensus cannot start before the cluster TLS material is installed.
    #[error("raft: no cluster TLS credentials are installed; cannot reach peers")]
    NoClusterCredentials,
}

impl RaftError {
    /// Whether retrying after the in-flight membership change commits can succeed.
    pub fn is_membership_busy(&self) -> bool {
        matches!(self, RaftError::MembershipBusy(_))
    }
}

impl From<redb::Error> for RaftError {
    fn from(e: redb::Error) -> Self {
        RaftError::Database(Box::new(e))
    }
}

impl RaftError {
    /// An openraft failure, kept whole as the source.
    pub(crate) fn consensus(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        RaftError::Consensus(Box::new(e))
    }
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for RaftError {
            fn from(e: $t) -> Self {
                RaftError::Database(Box::new(e))
            }
        }
    )*};
}

redb_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<RaftError> for StorageError {
    fn from(e: RaftError) -> Self {
        match e {
            RaftError::NotLeader(_) | RaftError::NotRunning | RaftError::LeadershipUnconfirmed(_) => {
                StorageError::NotWritable(e.to_string())
            }
            other => StorageError::Backend(other.to_string()),
        }
    }
}
