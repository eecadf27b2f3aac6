//! Why a DR replication operation failed: a role transition refused, an activation
//! that did not work, the stream to the primary broken, or the local bookkeeping.

use super::jwt::JwtError;
use crate::cluster::TlsError;
use crate::raft::RaftError;

/// Why a DR replication operation failed, with the HTTP status it is answered with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    #[error("DR replication requires raft storage")]
    RequiresRaft,
    #[error("raft storage is not in use")]
    RaftNotInUse,
    #[error("this cluster is already a DR primary")]
    AlreadyPrimary,
    #[error("this cluster is a DR secondary; promote it before enabling it as a primary")]
    PromoteBeforeEnablingPrimary,
    #[error("this cluster is not a DR primary; run sys/replication/dr/primary/enable first")]
    EnablePrimaryFirst,
    #[error("this cluster is not a DR primary")]
    NotPrimary,
    #[error("id must be 1-128 letters, digits, '-', '_' or '.'")]
    InvalidSecondaryId,
    #[error("a secondary with id \"{id}\" already exists; revoke it or pick another id")]
    SecondaryExists { id: String },
    #[error("no secondary with id \"{id}\"")]
    UnknownSecondary { id: String },
    #[error("this cluster is a DR primary; it cannot become a secondary")]
    PrimaryCannotBecomeSecondary,
    #[error("this cluster is already a DR secondary; use update-primary to change primaries")]
    AlreadySecondary,
    #[error("this cluster is not a DR secondary")]
    NotSecondary,
    /// A stream or sync request from a secondary this primary does not (or no longer) serve.
    #[error("secondary \"{id}\" is unknown or revoked")]
    StreamPeerUnknown { id: String },
    /// A stream or sync request reached a cluster that is not a DR primary.
    #[error("this cluster is not a DR primary")]
    StreamNotPrimary,
    #[error("the secondary activation token is not a valid token (expected a JWT)")]
    TokenNotJwt,
    #[error("the secondary activation token has expired; create a new one on the primary")]
    TokenExpired,
    #[error("ca_file {path}: {source}")]
    CaFileRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ca_file {path}: {source}")]
    CaFileParse {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("error contacting the primary at {addr}: {source}")]
    PrimaryUnreachable {
        addr: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("error unwrapping the secondary activation token at {addr}: {message}")]
    UnwrapRefused { addr: String, message: String },
    #[error("dr_operation_token is required")]
    OperationTokenRequired,
    #[error("invalid DR operation token")]
    InvalidOperationToken,
    #[error("the DR operation token's policies do not allow update on {path}")]
    OperationTokenNotAllowed { path: String },
    /// A request to the primary's cluster port failed.
    #[error("{url}: {source}")]
    PrimaryRequest {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The primary's cluster port answered with an error status.
    #[error("{url}: {status}: {body}")]
    PrimaryStatus {
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("{url}: malformed answer: {source}")]
    MalformedAnswer {
        url: String,
        #[source]
        source: postcard::Error,
    },
    /// An HTTP client could not be built.
    #[error("{0}")]
    HttpClient(#[source] reqwest::Error),
    /// Replication certificates could not be made or used.
    #[error("{0}")]
    Tls(#[source] TlsError),
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error("{0}")]
    Raft(#[source] RaftError),
    #[error("wrapping produced no token")]
    NoWrappingToken,
    #[error("DR state: {0}")]
    StateCorrupt(#[source] serde_json::Error),
    /// A replication record could not be encoded for storage.
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
}

impl ReplicationError {
    /// The HTTP status code for this error.
    pub fn status(&self) -> u16 {
        use ReplicationError::*;
        match self {
            StreamPeerUnknown { .. } | StreamNotPrimary => 403,
            PrimaryRequest { .. } | PrimaryStatus { .. } => 503,
            MalformedAnswer { .. }
            | HttpClient(_)
            | Tls(_)
            | Jwt(_)
            | Raft(_)
            | NoWrappingToken
            | StateCorrupt(_)
            | Encode(_) => 500,
            _ => 400,
        }
    }
}
