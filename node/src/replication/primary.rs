//! The primary side: enabling, activation tokens, revocation, demotion, and the
//! sync and stream answers served on the cluster port.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::role::{behind_after_drain, Behind, PrimaryKeys};
use super::{is_local, jwt, ReplicationError, SecondaryProgress};
use crate::cluster::{IssuingCa, DR_SECONDARY_SUBJECT_PREFIX};
use crate::core::{wrapping, Core, CoreError, Response, Unsealed};
use crate::raft::{WalEntry, WalRead};

/// Default life of an activation token (30 minutes).
const DEFAULT_TOKEN_TTL: u64 = 1800;
/// Most WAL entries in one stream answer.
const STREAM_BATCH: usize = 2048;
/// How long a stream request waits for new entries before answering empty (a heartbeat).
const STREAM_WAIT: Duration = Duration::from_secs(2);
/// How long a demotion waits for live secondaries to acknowledge the last WAL entry.
const DEMOTE_DRAIN: Duration = Duration::from_secs(10);

/// A full copy of the replicated data for a new or lagging secondary.
#[derive(Serialize, Deserialize)]
pub struct SyncReply {
    pub index: u64,
    pub pairs: Vec<(String, Vec<u8>)>,
    /// The primary's root key, so the secondary can open the shared keyring; it only
    /// ever travels over the mutually authenticated replication channel.
    pub root_key: Vec<u8>,
    pub primary_cluster_addrs: Vec<String>,
}

/// One stream answer: the entries after the requested index.
#[derive(Serialize, Deserialize)]
pub enum StreamReply {
    Entries {
        entries: Vec<WalEntry>,
        last_wal: u64,
        primary_cluster_addrs: Vec<String>,
    },
    /// The log was compacted past the requested index: take a full copy first.
    Compacted,
    /// This node is not the primary's active node; try this cluster address.
    NotActive { active_cluster_addr: Option<String> },
}

/// A new replication CA and token signing key for a primary of cluster `cluster_id`.
pub(super) fn primary_keys(cluster_id: &str) -> Result<PrimaryKeys, ReplicationError> {
    Ok(PrimaryKeys {
        replication_ca: IssuingCa::generate(&format!("labnode-replication-ca-{cluster_id}"))
            .map_err(ReplicationError::Tls)?,
        jwt_key: jwt::generate_key()?,
    })
}

impl Core {
    fn cluster_addrs(&self) -> Vec<String> {
        self.raft()
            .and_then(|r| r.status().ok())
            .map(|s| s.members.into_iter().map(|m| m.cluster_addr).collect())
            .unwrap_or_else(|| vec![self.info().cluster_addr.clone()])
    }

    /// `dr/primary/enable`: creates the replication CA and the token signing key.
    pub async fn dr_primary_enable(
        &self,
        state: &Unsealed,
        primary_cluster_addr: Option<String>,
    ) -> Result<Response, CoreError> {
        let cluster_id = &state.cluster.id;
        let addr = super::role::primary_cluster_addr(primary_cluster_addr, &self.info().cluster_addr);
        let transition =
            self.dr()
                .state()
                .await
                .enable_primary(self.raft().is_some(), cluster_id, addr, primary_keys)?;
        let response = self.apply_transition(transition).await?;
        tracing::info!("DR replication enabled: this cluster is a DR primary");
        Ok(response)
    }

    /// `dr/primary/secondary-token`: a wrapped, single-use activation token in JWT form.
    pub async fn dr_secondary_token(
        &self,
        state: &Unsealed,
        id: &str,
        ttl: Option<u64>,
    ) -> Result<Response, CoreError> {
        let current = self.dr().state().await;
        let (primary, transition) = current.issue_secondary_token(id)?;
        let (client_cert, client_key) = primary
            .replication_ca
            .issue(&format!("{DR_SECONDARY_SUBJECT_PREFIX}{id}"), vec![])
            .map_err(ReplicationError::Tls)?;
        let cluster_ca = self.cluster_tls().await?.ca_pem;
        let data = json!({
            "ca_cert": cluster_ca,
            "client_cert": client_cert,
            "client_key": client_key,
            "cluster_id": primary.cluster_id,
            "encrypted_client_key": null,
            "id": id,
            "mode": 512,
            "nonce": null,
            "primary_cluster_addr": format!("https://{}", primary.primary_cluster_addr),
            "primary_cluster_addrs": self.cluster_addrs(),
            "primary_public_key": null,
        });
        let ttl = ttl.filter(|t| *t > 0).unwrap_or(DEFAULT_TOKEN_TTL);
        let wrapped = wrapping::wrap(
            state,
            Response::data(data),
            ttl,
            "sys/replication/dr/primary/secondary-token",
        )
        .await?;
        let mut info = wrapped
            .wrap_info
            .clone()
            .ok_or(ReplicationError::NoWrappingToken)?;
        let now = Utc::now().timestamp();
        let claims = jwt::Claims {
            accessor: info.accessor.clone(),
            addr: self.info().api_addr.clone(),
            exp: now + ttl as i64,
            iat: now,
            jti: info.token.clone(),
            nbf: now - 5,
            token_type: "wrapping".into(),
        };
        info.token = jwt::sign(&primary.jwt_key, &claims).map_err(ReplicationError::from)?;
        self.apply_transition(transition).await?;
        Ok(Response {
            wrap_info: Some(info),
            ..Response::empty()
        })
    }

    /// `dr/primary/revoke-secondary`: the secondary's stream is refused from now on.
    pub async fn dr_revoke_secondary(&self, id: &str) -> Result<Response, CoreError> {
        let transition = self.dr().state().await.revoke_secondary(id)?;
        self.apply_transition(transition).await
    }

    /// `dr/primary/demote`: keep the data, become a secondary without a primary.
    ///
    /// A planned failover should lose nothing, so before the role changes the primary stops
    /// serving clients and waits (up to [`DEMOTE_DRAIN`]) until every secondary that streamed
    /// recently has acknowledged its last WAL entry; one that does not is named in a warning.
    pub async fn dr_demote(&self) -> Result<Response, CoreError> {
        let transition = self.dr().state().await.demote()?;
        self.dr().demoting.store(true, Ordering::Release);
        let behind = self.drain_to_secondaries().await;
        let demoted = self.apply_transition(transition).await;
        self.dr().demoting.store(false, Ordering::Release);
        let mut response = demoted?;
        tracing::warn!("this cluster was demoted to a DR secondary");
        for secondary in behind {
            response = response.with_warning(secondary.warning());
        }
        Ok(response)
    }

    /// Waits until every live secondary acknowledged everything applied here; returns the
    /// ones that did not.
    async fn drain_to_secondaries(&self) -> Vec<Behind> {
        let target = self
            .raft()
            .and_then(|r| r.status().ok())
            .map(|s| s.applied_index)
            .unwrap_or(0);
        let deadline = Instant::now() + DEMOTE_DRAIN;
        loop {
            let live_since = Utc::now() - chrono::Duration::from_std(DEMOTE_DRAIN).unwrap_or_default();
            let behind = behind_after_drain(&*self.dr().progress.lock().await, target, live_since);
            if behind.is_empty() || Instant::now() >= deadline {
                return behind;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `dr/primary/disable`: stop being a primary; secondaries are cut off.
    pub async fn dr_primary_disable(&self) -> Result<Response, CoreError> {
        let transition = self.dr().state().await.disable_primary()?;
        self.apply_transition(transition).await
    }

    /// The full copy a secondary starts from.
    pub async fn dr_sync(&self, secondary_id: &str) -> Result<SyncReply, CoreError> {
        self.dr().state().await.check_stream_peer(secondary_id)?;
        let raft = self.raft().ok_or(ReplicationError::RaftNotInUse)?;
        let (pairs, index) = raft.export_data().map_err(ReplicationError::Raft)?;
        let pairs = pairs.into_iter().filter(|(k, _)| !is_local(k)).collect();
        let root_key = self.barrier().root_key().await?.to_vec();
        tracing::info!(secondary = %secondary_id, index, "sending a full copy to a DR secondary");
        Ok(SyncReply {
            index,
            pairs,
            root_key,
            primary_cluster_addrs: self.cluster_addrs(),
        })
    }

    /// The applied entries after `after`, waiting briefly for new ones; also records
    /// the secondary's acknowledgement (it has applied everything up to `after`).
    pub async fn dr_stream(&self, secondary_id: &str, after: u64) -> Result<StreamReply, CoreError> {
        self.dr().state().await.check_stream_peer(secondary_id)?;
        let raft = self.raft().ok_or(ReplicationError::RaftNotInUse)?;
        if !self.is_active() {
            let leader = raft.status().ok().and_then(|s| s.leader).map(|l| l.cluster_addr);
            return Ok(StreamReply::NotActive {
                active_cluster_addr: leader,
            });
        }
        self.dr().progress.lock().await.insert(
            secondary_id.to_string(),
            SecondaryProgress {
                last_ack: after,
                last_heartbeat: Utc::now(),
            },
        );
        let deadline = Instant::now() + STREAM_WAIT;
        loop {
            match raft
                .wal_after(after, STREAM_BATCH)
                .map_err(ReplicationError::Raft)?
            {
                WalRead::Compacted => return Ok(StreamReply::Compacted),
                WalRead::Entries(entries) if !entries.is_empty() || Instant::now() >= deadline => {
                    let last_wal = entries.last().map(|e| e.index).unwrap_or(after);
                    return Ok(StreamReply::Entries {
                        entries,
                        last_wal,
                        primary_cluster_addrs: self.cluster_addrs(),
                    });
                }
                WalRead::Entries(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}
