//! The primary side: enabling, activation tokens, revocation, demotion, and the
//! sync and stream answers served on the cluster port.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{is_local, jwt, DrState, KnownSecondary, PrimaryState, SecondaryProgress, SecondaryState};
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

fn valid_secondary_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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
        self.raft()
            .ok_or_else(|| CoreError::invalid("DR replication requires raft storage"))?;
        match self.dr().state().await {
            DrState::Primary(_) => return Err(CoreError::invalid("this cluster is already a DR primary")),
            DrState::Secondary(_) => {
                return Err(CoreError::invalid(
                    "this cluster is a DR secondary; promote it before enabling it as a primary",
                ))
            }
            DrState::Disabled => {}
        }
        let primary = PrimaryState {
            cluster_id: state.cluster.id.clone(),
            primary_cluster_addr: primary_cluster_addr
                .map(|a| a.split_once("://").map(|(_, r)| r.to_string()).unwrap_or(a))
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| self.info().cluster_addr.clone()),
            replication_ca: IssuingCa::generate(&format!("labnode-replication-ca-{}", state.cluster.id))
                .map_err(|e| CoreError::Internal(e.to_string()))?,
            jwt_key: jwt::generate_key().map_err(CoreError::Internal)?,
            secondaries: BTreeMap::new(),
        };
        self.set_dr_state(DrState::Primary(primary)).await?;
        self.install_cluster_tls().await?;
        tracing::info!("DR replication enabled: this cluster is a DR primary");
        Ok(Response::empty().with_warning(
            "This cluster is being enabled as a primary for replication. Vault will be unavailable for a brief period and will resume service shortly.",
        ))
    }

    /// `dr/primary/secondary-token`: a wrapped, single-use activation token in JWT form.
    pub async fn dr_secondary_token(
        &self,
        state: &Unsealed,
        id: &str,
        ttl: Option<u64>,
    ) -> Result<Response, CoreError> {
        let DrState::Primary(mut primary) = self.dr().state().await else {
            return Err(CoreError::invalid(
                "this cluster is not a DR primary; run sys/replication/dr/primary/enable first",
            ));
        };
        if !valid_secondary_id(id) {
            return Err(CoreError::invalid(
                "id must be 1-128 letters, digits, '-', '_' or '.'",
            ));
        }
        if primary.secondaries.get(id).is_some_and(|s| !s.revoked) {
            return Err(CoreError::invalid(format!(
                "a secondary with id \"{id}\" already exists; revoke it or pick another id"
            )));
        }
        let (client_cert, client_key) = primary
            .replication_ca
            .issue(&format!("{DR_SECONDARY_SUBJECT_PREFIX}{id}"), vec![])
            .map_err(|e| CoreError::Internal(e.to_string()))?;
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
            .ok_or_else(|| CoreError::Internal("wrapping produced no token".into()))?;
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
        info.token = jwt::sign(&primary.jwt_key, &claims).map_err(CoreError::Internal)?;
        primary.secondaries.insert(
            id.to_string(),
            KnownSecondary {
                id: id.to_string(),
                revoked: false,
            },
        );
        self.set_dr_state(DrState::Primary(primary)).await?;
        Ok(Response {
            wrap_info: Some(info),
            ..Response::empty()
        })
    }

    /// `dr/primary/revoke-secondary`: the secondary's stream is refused from now on.
    pub async fn dr_revoke_secondary(&self, id: &str) -> Result<Response, CoreError> {
        let DrState::Primary(mut primary) = self.dr().state().await else {
            return Err(CoreError::invalid("this cluster is not a DR primary"));
        };
        let entry = primary
            .secondaries
            .get_mut(id)
            .ok_or_else(|| CoreError::invalid(format!("no secondary with id \"{id}\"")))?;
        entry.revoked = true;
        self.set_dr_state(DrState::Primary(primary)).await?;
        self.dr().progress.lock().await.remove(id);
        Ok(Response::empty())
    }

    /// `dr/primary/demote`: keep the data, become a secondary without a primary.
    ///
    /// A planned failover should lose nothing, so before the role changes the primary stops
    /// serving clients and waits (up to [`DEMOTE_DRAIN`]) until every secondary that streamed
    /// recently has acknowledged its last WAL entry; one that does not is named in a warning.
    pub async fn dr_demote(&self) -> Result<Response, CoreError> {
        let DrState::Primary(primary) = self.dr().state().await else {
            return Err(CoreError::invalid("this cluster is not a DR primary"));
        };
        self.dr().demoting.store(true, Ordering::Release);
        let behind = self.drain_to_secondaries().await;
        let demoted = self.become_demoted(primary).await;
        self.dr().demoting.store(false, Ordering::Release);
        let mut response = demoted?;
        for (id, acked, target) in behind {
            response = response.with_warning(format!(
                "secondary {id} acknowledged WAL {acked} of {target} before the demotion; \
                 writes after {acked} are not on it"
            ));
        }
        Ok(response)
    }

    /// Waits until every live secondary acknowledged everything applied here; returns the
    /// ones that did not, as `(id, acknowledged, target)`.
    async fn drain_to_secondaries(&self) -> Vec<(String, u64, u64)> {
        let target = self
            .raft()
            .and_then(|r| r.status().ok())
            .map(|s| s.applied_index)
            .unwrap_or(0);
        let deadline = Instant::now() + DEMOTE_DRAIN;
        loop {
            let live_since = Utc::now() - chrono::Duration::from_std(DEMOTE_DRAIN).unwrap_or_default();
            let behind: Vec<(String, u64, u64)> = self
                .dr()
                .progress
                .lock()
                .await
                .iter()
                .filter(|(_, p)| p.last_heartbeat > live_since && p.last_ack < target)
                .map(|(id, p)| (id.clone(), p.last_ack, target))
                .collect();
            if behind.is_empty() || Instant::now() >= deadline {
                return behind;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Persists the secondary role without a primary, keeping the data and cluster id.
    async fn become_demoted(&self, primary: PrimaryState) -> Result<Response, CoreError> {
        let secondary = SecondaryState {
            cluster_id: primary.cluster_id,
            secondary_id: String::new(),
            primary_cluster_addr: String::new(),
            primary_api_addr: String::new(),
            known_primary_cluster_addrs: vec![],
            ca_pem: String::new(),
            client_cert_pem: String::new(),
            client_key_pem: String::new(),
        };
        self.set_dr_state(DrState::Secondary(secondary)).await?;
        self.install_cluster_tls().await?;
        tracing::warn!("this cluster was demoted to a DR secondary");
        Ok(Response::empty().with_warning(
            "This cluster is being demoted to a replication secondary. Vault will be unavailable for a brief period and will resume service shortly.",
        ))
    }

    /// `dr/primary/disable`: stop being a primary; secondaries are cut off.
    pub async fn dr_primary_disable(&self) -> Result<Response, CoreError> {
        if !matches!(self.dr().state().await, DrState::Primary(_)) {
            return Err(CoreError::invalid("this cluster is not a DR primary"));
        }
        self.set_dr_state(DrState::Disabled).await?;
        self.install_cluster_tls().await?;
        self.dr().progress.lock().await.clear();
        Ok(Response::empty().with_warning(
            "This cluster is having replication disabled. Vault will be unavailable for a brief period and will resume service shortly.",
        ))
    }

    async fn check_secondary(&self, id: &str) -> Result<(), CoreError> {
        match self.dr().state().await {
            DrState::Primary(p) if p.secondaries.get(id).is_some_and(|s| !s.revoked) => Ok(()),
            DrState::Primary(_) => Err(CoreError::Forbidden(format!(
                "secondary \"{id}\" is unknown or revoked"
            ))),
            _ => Err(CoreError::Forbidden("this cluster is not a DR primary".into())),
        }
    }

    /// The full copy a secondary starts from.
    pub async fn dr_sync(&self, secondary_id: &str) -> Result<SyncReply, CoreError> {
        self.check_secondary(secondary_id).await?;
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let (pairs, index) = raft
            .export_data()
            .map_err(|e| CoreError::Internal(e.to_string()))?;
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
        self.check_secondary(secondary_id).await?;
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
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
                .map_err(|e| CoreError::Internal(e.to_string()))?
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
