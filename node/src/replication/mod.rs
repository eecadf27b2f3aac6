//! DR replication: a primary cluster streams every applied write to DR secondary
//! clusters, which keep a warm copy (tokens and leases included), serve no client
//! requests, and can be promoted when the primary is lost.
//!
//! The WAL index is the primary's Raft log index: a secondary asks the primary for
//! the applied entries after the last index it stored, over the primary's cluster
//! port with a client certificate from the primary's replication CA. When the log
//! no longer reaches back that far (compaction), or when the secondary is new, it
//! takes a full copy of the data first (`merkle-sync`), then streams (`stream-wals`).
//!
//! Keys under [`LOCAL_PREFIXES`] belong to one cluster and never cross: the cluster
//! port's TLS material, Raft bookkeeping and the replication state itself.
//!
//! [`role`] decides every role change as plain state (what is allowed from which
//! role, the next role and what to do around it); `primary` and `secondary` run those
//! decisions on [`Core`] with the I/O (storage, streaming, wiping), `client` is the
//! secondary's HTTP I/O towards its primary, and the cluster-port routes the
//! primary serves are in [`crate::http::replication`].

mod client;
mod error;
pub mod jwt;
mod primary;
pub mod role;
mod secondary;

pub use error::ReplicationError;
pub use role::{DrState, KnownSecondary, PrimaryState, SecondaryState};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::core::tokens::rfc3339;
use crate::core::{Core, CoreError, Response};
use role::{RoleAction, Transition};

/// Where this cluster's DR role is kept (local, barrier-encrypted).
pub const STATE_PATH: &str = "core/replication/dr-state";
/// The last primary WAL index a secondary applied (local, written with the data it covers).
pub const REMOTE_WAL_PATH: &str = "core/replication/dr-remote-wal";
/// Hashes of DR operation tokens minted on this secondary (local).
pub const OP_TOKEN_PREFIX: &str = "core/replication/dr-op-token/";
/// Key prefixes that stay with their cluster.
pub const LOCAL_PREFIXES: &[&str] = &["core/cluster-tls", "core/raft/", "core/replication/"];
/// The refusal every client path gets on a DR secondary.
pub const DISABLED_ON_SECONDARY: &str = "path disabled in replication DR secondary mode";

/// Whether a physical key belongs to this cluster only.
pub fn is_local(key: &str) -> bool {
    LOCAL_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Whether deleting `prefix` would reach into local keys.
pub fn touches_local(prefix: &str) -> bool {
    LOCAL_PREFIXES
        .iter()
        .any(|p| p.starts_with(prefix) || prefix.starts_with(p))
}

/// A secondary's stream as seen by the primary node that serves it.
#[derive(Debug, Clone)]
pub struct SecondaryProgress {
    pub last_ack: u64,
    pub last_heartbeat: DateTime<Utc>,
}

/// The secondary's view of its stream.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    /// `stream-wals`, `merkle-sync` or `idle`.
    pub state: &'static str,
    /// `ready`, `connecting`, `transient_failure`, `idle` or `shutdown`.
    pub connection_state: &'static str,
    pub last_remote_wal: u64,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub last_start: DateTime<Utc>,
    pub last_error: Option<String>,
}

impl Default for StreamStatus {
    fn default() -> Self {
        Self {
            state: "idle",
            connection_state: "idle",
            last_remote_wal: 0,
            last_heartbeat: None,
            last_start: Utc::now(),
            last_error: None,
        }
    }
}

/// In-memory DR state of a node.
#[derive(Default)]
pub struct DrRuntime {
    /// Cached copy of the persisted state (reloaded at unseal and after changes).
    state: Mutex<DrState>,
    /// Bumped whenever the role changes; a secondary's stream loop ends on a bump.
    generation: AtomicU64,
    progress: Mutex<HashMap<String, SecondaryProgress>>,
    stream: Mutex<StreamStatus>,
    /// The generation whose stream loop is running, so unseals never start a second one.
    running_loop: std::sync::Mutex<Option<u64>>,
    /// Set while a primary is being demoted: client requests are refused as on a secondary
    /// so the last writes can reach the secondaries before the role changes.
    demoting: std::sync::atomic::AtomicBool,
}

impl DrRuntime {
    /// Whether this primary is draining towards its secondaries before becoming one.
    pub fn is_demoting(&self) -> bool {
        self.demoting.load(Ordering::Acquire)
    }

    /// The current role.
    pub async fn state(&self) -> DrState {
        self.state.lock().await.clone()
    }

    fn bump(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Claims the right to run the stream loop of `generation`; false if one already runs.
    fn claim_loop(&self, generation: u64) -> bool {
        let mut running = self.running_loop.lock().unwrap_or_else(|e| e.into_inner());
        if *running == Some(generation) {
            return false;
        }
        *running = Some(generation);
        true
    }
}

/// Paths a DR secondary still serves through the logical layer.
pub fn allowed_on_dr_secondary(path: &str) -> bool {
    matches!(
        path,
        "sys/replication/status" | "sys/replication/dr/status" | "sys/replication/performance/status"
    ) || path.starts_with("sys/replication/dr/secondary/")
        || path.starts_with("sys/storage/raft/")
}

impl Core {
    /// Loads the DR role from storage (at unseal, after activation or promotion).
    pub(crate) async fn load_dr_state(&self) -> Result<DrState, CoreError> {
        let state = match self.barrier().get(STATE_PATH).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(ReplicationError::StateCorrupt)?,
            None => DrState::Disabled,
        };
        *self.dr().state.lock().await = state.clone();
        Ok(state)
    }

    /// Persists and caches a new DR role; a secondary's running stream stops.
    pub(crate) async fn set_dr_state(&self, state: DrState) -> Result<u64, CoreError> {
        let bytes = serde_json::to_vec(&state).map_err(ReplicationError::Encode)?;
        self.barrier().put(STATE_PATH, bytes).await?;
        *self.dr().state.lock().await = state;
        Ok(self.dr().bump())
    }

    /// Persists an accepted role change and performs its actions in order; the answer
    /// carries the transition's warning.
    pub(crate) async fn apply_transition(&self, transition: Transition) -> Result<Response, CoreError> {
        self.set_dr_state(transition.next).await?;
        for action in transition.actions {
            match action {
                RoleAction::InstallClusterTls => self.install_cluster_tls().await?,
                RoleAction::ForgetAllProgress => self.dr().progress.lock().await.clear(),
                RoleAction::ForgetProgress(id) => {
                    self.dr().progress.lock().await.remove(&id);
                }
                RoleAction::ResetStream { state, connection } => self.reset_stream(state, connection).await,
                RoleAction::ReloadTables => {
                    if let Ok(state) = self.state().await {
                        self.reload_tables(&state).await?;
                    }
                }
            }
        }
        Ok(match transition.warning {
            Some(warning) => Response::empty().with_warning(warning),
            None => Response::empty(),
        })
    }

    /// The DR mode string for health and status.
    pub async fn dr_mode(&self) -> &'static str {
        // Only the active node changes the role; a standby reads it afresh (it is a local,
        // replicated entry) so its health and status never lag behind.
        if !self.is_active() && self.state().await.is_ok() {
            if let Ok(state) = self.load_dr_state().await {
                return state.mode();
            }
        }
        self.dr().state.lock().await.mode()
    }

    /// The replication CA a DR primary's cluster port must also trust.
    pub(crate) async fn dr_replication_ca(&self) -> Result<Option<String>, CoreError> {
        Ok(match self.load_dr_state().await? {
            DrState::Primary(p) => Some(p.replication_ca.ca_pem),
            _ => None,
        })
    }

    /// Maps an activation JWT to the wrapping token it carries, when this primary signed it.
    pub async fn resolve_activation_jwt(&self, token: &str) -> Option<String> {
        if !jwt::looks_like_jwt(token) {
            return None;
        }
        match &*self.dr().state.lock().await {
            DrState::Primary(p) => jwt::verify(&p.jwt_key, token).map(|c| c.jti),
            _ => None,
        }
    }

    /// `sys/replication/dr/status`.
    pub async fn dr_status(&self) -> Result<Value, CoreError> {
        let state = self.dr().state().await;
        let last_wal = self
            .raft()
            .and_then(|r| r.status().ok())
            .map(|s| s.applied_index)
            .unwrap_or(0);
        Ok(match state {
            DrState::Disabled => json!({ "mode": "disabled" }),
            DrState::Primary(p) => {
                let progress = self.dr().progress.lock().await.clone();
                let secondaries: Vec<Value> = p
                    .secondaries
                    .values()
                    .filter(|s| !s.revoked)
                    .map(|s| {
                        let seen = progress.get(&s.id);
                        let connected = seen.is_some_and(|p| (Utc::now() - p.last_heartbeat).num_seconds() < 15);
                        json!({
                            "node_id": s.id,
                            "api_address": "",
                            "cluster_address": "",
                            "connection_status": if connected { "connected" } else { "disconnected" },
                            "last_heartbeat": seen.map(|p| rfc3339(p.last_heartbeat)).unwrap_or_default(),
                            "last_heartbeat_duration_ms": seen.map(|p| (Utc::now() - p.last_heartbeat).num_milliseconds()).unwrap_or(0),
                            "clock_skew_ms": 0,
                            "replication_primary_canary_age_ms": 0,
                            "last_acked_wal": seen.map(|p| p.last_ack).unwrap_or(0),
                        })
                    })
                    .collect();
                json!({
                    "mode": "primary",
                    "state": "running",
                    "cluster_id": p.cluster_id,
                    "known_secondaries": p.secondaries.values().filter(|s| !s.revoked).map(|s| s.id.clone()).collect::<Vec<_>>(),
                    "last_wal": last_wal,
                    "last_dr_wal": last_wal,
                    "last_reindex_epoch": "0",
                    "merkle_root": position_digest(last_wal),
                    "corrupted_merkle_tree": false,
                    "last_corruption_check_epoch": "-62135596800",
                    "primary_cluster_addr": p.primary_cluster_addr,
                    "ssct_generation_counter": 0,
                    "secondaries": secondaries,
                })
            }
            DrState::Secondary(s) => {
                let stream = self.dr().stream.lock().await.clone();
                let connected = stream.connection_state == "ready";
                json!({
                    "mode": "secondary",
                    "state": stream.state,
                    "connection_state": stream.connection_state,
                    "cluster_id": s.cluster_id,
                    "known_primary_cluster_addrs": s.known_primary_cluster_addrs,
                    "last_remote_wal": stream.last_remote_wal,
                    "last_reindex_epoch": "0",
                    "last_start": rfc3339(stream.last_start),
                    "merkle_root": position_digest(stream.last_remote_wal),
                    "primary_cluster_addr": s.primary_cluster_addr,
                    "secondary_id": s.secondary_id,
                    "last_error": stream.last_error,
                    "primaries": if s.primary_cluster_addr.is_empty() { vec![] } else { vec![json!({
                        "api_address": s.primary_api_addr,
                        "cluster_address": format!("https://{}", s.primary_cluster_addr),
                        "connection_status": if connected { "connected" } else { "disconnected" },
                        "last_heartbeat": stream.last_heartbeat.map(rfc3339).unwrap_or_default(),
                        "last_heartbeat_duration_ms": stream.last_heartbeat.map(|t| (Utc::now() - t).num_milliseconds()).unwrap_or(0),
                        "clock_skew_ms": 0,
                    })] },
                })
            }
        })
    }
}

/// A digest of a WAL position, reported as `merkle_root` (labnode keeps no Merkle
/// tree; equal values mean both sides stand at the same index).
fn position_digest(index: u64) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(index.to_be_bytes())[..20])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_keys_never_cross() {
        assert!(is_local("core/cluster-tls"));
        assert!(is_local("core/replication/dr-state"));
        assert!(!is_local("core/keyring"));
        assert!(!is_local("logical/abc/data"));
        assert!(touches_local(""));
        assert!(touches_local("core/"));
        assert!(!touches_local("logical/"));
    }

    #[test]
    fn secondary_serves_only_replication_and_raft_paths() {
        assert!(allowed_on_dr_secondary("sys/replication/dr/status"));
        assert!(allowed_on_dr_secondary("sys/replication/dr/secondary/promote"));
        assert!(!allowed_on_dr_secondary("secret/data/x"));
        assert!(!allowed_on_dr_secondary("auth/token/lookup-self"));
        assert!(!allowed_on_dr_secondary("sys/mounts"));
    }
}
