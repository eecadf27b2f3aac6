//! Initialization, unsealing, sealing and the unauthenticated status endpoints.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::mounts::MountTable;
use super::tokens::{TokenRequest, TokenStore};
use super::unseal::{plan_init, HealthFacts, KeyUse, UnsealFacts, UnsealRequest, UnsealStep};
use super::{ClusterIdentity, Core, CoreError, SealStateError, CLUSTER_PATH, CLUSTER_TLS_PATH, VERSION};
use crate::barrier::{random_key, BarrierError};
use crate::cluster::ClusterTls;
use crate::seal::{self, SealConfig};

/// Where the (non-secret) seal configuration lives, outside the barrier.
pub const SEAL_CONFIG_PATH: &str = "core/plain/seal-config";

/// Body of `PUT sys/init`; `null` counts as absent, as clients like hvac send it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InitRequest {
    #[serde(deserialize_with = "null_as_default")]
    pub secret_shares: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub secret_threshold: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub recovery_shares: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub recovery_threshold: u64,
    pub pgp_keys: Option<Vec<String>>,
    pub root_token_pgp_key: Option<String>,
    pub recovery_pgp_keys: Option<Vec<String>>,
    #[serde(deserialize_with = "null_as_default")]
    pub stored_shares: u64,
}

fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Answer of `PUT sys/init`.
#[derive(Debug, Clone, Serialize)]
pub struct InitResponse {
    pub keys: Vec<String>,
    pub keys_base64: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovery_keys: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovery_keys_base64: Vec<String>,
    pub root_token: String,
}

/// `sys/seal-status` (also the answer of `sys/unseal`).
#[derive(Debug, Clone, Serialize)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub seal_type: String,
    pub initialized: bool,
    pub sealed: bool,
    pub t: u8,
    pub n: u8,
    pub progress: usize,
    pub nonce: String,
    pub version: String,
    pub build_date: String,
    pub migration: bool,
    pub recovery_seal: bool,
    pub storage_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// Query parameters of `sys/health`, already parsed.
#[derive(Debug, Clone, Default)]
pub struct HealthQuery {
    pub standbyok: bool,
    pub perfstandbyok: bool,
    pub activecode: Option<u16>,
    pub standbycode: Option<u16>,
    pub drsecondarycode: Option<u16>,
    pub performancestandbycode: Option<u16>,
    pub sealedcode: Option<u16>,
    pub uninitcode: Option<u16>,
    /// Code for a node removed from its raft cluster (Vault 1.19+: 530).
    pub removedcode: Option<u16>,
}

/// Decodes an unseal key share given as hex or standard base64.
pub(crate) fn decode_share(key: &str) -> Option<Vec<u8>> {
    let key = key.trim();
    hex::decode(key)
        .ok()
        .filter(|b| !b.is_empty())
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(key).ok())
}

impl Core {
    /// The stored seal configuration, if initialized.
    pub async fn seal_config(&self) -> Result<Option<SealConfig>, CoreError> {
        match self.barrier.physical().get(SEAL_CONFIG_PATH).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| SealStateError::SealConfigCorrupt(e).into()),
            None => Ok(None),
        }
    }

    /// Whether `sys/init` has run here, or this node holds a join challenge from an
    /// initialized cluster (it then waits for that cluster's unseal keys).
    pub async fn is_initialized(&self) -> Result<bool, CoreError> {
        if self.ha.pending_join.lock().await.is_some() {
            return Ok(true);
        }
        Ok(self.seal_config().await?.is_some() && self.barrier.is_initialized().await?)
    }

    /// The seal configuration to unseal with: our own, or the joined cluster's.
    async fn effective_seal_config(&self) -> Result<Option<SealConfig>, CoreError> {
        if let Some(config) = self.seal_config().await? {
            return Ok(Some(config));
        }
        Ok(self
            .ha
            .pending_join
            .lock()
            .await
            .as_ref()
            .map(|p| p.seal_config.clone()))
    }

    /// `GET sys/seal-status`.
    pub async fn seal_status(&self) -> Result<SealStatus, CoreError> {
        let config = self.effective_seal_config().await?;
        let initialized = self.is_initialized().await?;
        let state = self.unsealed.read().await.clone();
        let progress = self.unseal_progress.lock().await;
        Ok(SealStatus {
            seal_type: config
                .as_ref()
                .map(|c| c.seal_type.clone())
                .unwrap_or_else(|| self.seal_type().into()),
            initialized,
            sealed: state.is_none(),
            t: config.as_ref().map(|c| c.operator_shares().1).unwrap_or(0),
            n: config.as_ref().map(|c| c.operator_shares().0).unwrap_or(0),
            progress: progress.progress(),
            nonce: progress.nonce().to_string(),
            version: VERSION.into(),
            build_date: "2026-11-29T00:00:00Z".into(),
            migration: self.migration_pending().await?,
            recovery_seal: config
                .as_ref()
                .map(SealConfig::is_auto)
                .unwrap_or(self.auto_seal.is_some()),
            storage_type: self.info.storage_type.clone(),
            cluster_name: state.as_ref().map(|s| s.cluster.name.clone()),
            cluster_id: state.as_ref().map(|s| s.cluster.id.clone()),
        })
    }

    /// `PUT sys/init`: creates keys, the root token and the initial tables.
    pub async fn init(
        &self,
        req: InitRequest,
        root_token_id: Option<String>,
    ) -> Result<InitResponse, CoreError> {
        let config = plan_init(
            &req,
            self.auto_seal.as_ref().map(|_| self.seal_type()),
            self.is_initialized().await?,
        )?;
        let b64 = |parts: &[Vec<u8>]| -> Vec<String> {
            parts
                .iter()
                .map(|s| base64::engine::general_purpose::STANDARD.encode(s))
                .collect()
        };
        let unseal_key = zeroize::Zeroizing::new(random_key());
        if !config.is_auto() {
            let shares = seal::split(&unseal_key, config.secret_shares, config.secret_threshold);
            let root_token = self
                .initialize_storage(&unseal_key, &config, None, root_token_id)
                .await?;
            self.seal().await;
            return Ok(InitResponse {
                keys: shares.iter().map(hex::encode).collect(),
                keys_base64: b64(&shares),
                recovery_keys: vec![],
                recovery_keys_base64: vec![],
                root_token,
            });
        }
        let recovery_key = zeroize::Zeroizing::new(random_key());
        let shares = if config.recovery_shares > 0 {
            seal::split(&recovery_key, config.recovery_shares, config.recovery_threshold)
        } else {
            vec![]
        };
        let root_token = self
            .initialize_storage(&unseal_key, &config, Some(&recovery_key), root_token_id)
            .await?;
        *self.unseal_key.write().await = Some(unseal_key);
        self.post_unseal().await?;
        Ok(InitResponse {
            keys: vec![],
            keys_base64: vec![],
            recovery_keys: shares.iter().map(hex::encode).collect(),
            recovery_keys_base64: b64(&shares),
            root_token,
        })
    }

    /// Writes everything a new cluster starts with, leaving the barrier open.
    async fn initialize_storage(
        &self,
        unseal_key: &[u8],
        config: &SealConfig,
        recovery_key: Option<&[u8]>,
        root_token_id: Option<String>,
    ) -> Result<String, CoreError> {
        let cluster = ClusterIdentity {
            name: self.info.cluster_name.clone().unwrap_or_else(|| {
                format!(
                    "vault-cluster-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                )
            }),
            id: uuid::Uuid::new_v4().to_string(),
        };
        let cluster_tls = match &self.raft {
            Some(raft) => {
                let tls = ClusterTls::generate(&cluster.id).map_err(SealStateError::ClusterTls)?;
                self.transport
                    .install(&tls, None)
                    .map_err(SealStateError::ClusterTls)?;
                if !raft.is_bootstrapped().map_err(SealStateError::RaftState)? {
                    raft.bootstrap().await.map_err(SealStateError::RaftBootstrap)?;
                }
                Some(tls)
            }
            None => None,
        };
        self.barrier.initialize(unseal_key).await?;
        if let Some(tls) = cluster_tls {
            let bytes = serde_json::to_vec(&tls).map_err(SealStateError::Encode)?;
            self.barrier.put(CLUSTER_TLS_PATH, bytes).await?;
        }
        if let Some(kms) = &self.auto_seal {
            let wrapped = kms.encrypt(unseal_key).await.map_err(SealStateError::Kms)?;
            self.barrier
                .physical()
                .put(super::auto_seal::HSM_KEY_PATH, wrapped)
                .await?;
        }
        if let Some(recovery) = recovery_key {
            self.barrier
                .put(super::auto_seal::RECOVERY_KEY_PATH, recovery.to_vec())
                .await?;
        }
        let cluster_bytes = serde_json::to_vec(&cluster).map_err(SealStateError::Encode)?;
        self.barrier.put(CLUSTER_PATH, cluster_bytes).await?;
        self.save_mounts(&MountTable::initial()).await?;
        let tokens = TokenStore::load(self.barrier.clone()).await?;
        let mut root_req = TokenRequest::root("auth/token/root");
        root_req.id = root_token_id;
        let (root_token, _) = tokens.create(None, root_req).await?;
        let config_bytes = serde_json::to_vec(config).map_err(SealStateError::Encode)?;
        self.barrier
            .physical()
            .put(SEAL_CONFIG_PATH, config_bytes)
            .await?;
        Ok(root_token)
    }

    /// `PUT sys/unseal`: adds a share; at the threshold, opens the barrier (or completes
    /// a join or a seal migration). The decision is [`super::unseal::UnsealProgress::step`].
    pub async fn unseal(
        &self,
        key: Option<&str>,
        reset: bool,
        migrate: bool,
    ) -> Result<SealStatus, CoreError> {
        let config = self.effective_seal_config().await?;
        let facts = UnsealFacts {
            config: config.as_ref(),
            joining: self.seal_config().await?.is_none(),
            configured_seal: self.seal_type(),
            migration: self.migration_pending().await?,
            unsealed: self.unsealed.read().await.is_some(),
        };
        let request = UnsealRequest { key, reset, migrate };
        let step = self
            .unseal_progress
            .lock()
            .await
            .step(&facts, request, || uuid::Uuid::new_v4().to_string())?;
        match step {
            UnsealStep::Report => {}
            UnsealStep::AutoUnseal => {
                self.auto_unseal().await?;
            }
            UnsealStep::Combine {
                shares,
                threshold,
                then,
            } => {
                let combined = zeroize::Zeroizing::new(
                    seal::combine(&shares, threshold).map_err(SealStateError::Combine)?,
                );
                match then {
                    KeyUse::CompleteJoin => self.complete_join(super::ha::JoinKey::Shamir(&combined)).await?,
                    KeyUse::MigrateSeal => {
                        let stored = config.as_ref().ok_or(SealStateError::NotInitialized)?;
                        self.migrate_seal(stored, combined).await?
                    }
                    KeyUse::OpenBarrier => self.open_barrier(combined).await?,
                }
            }
        }
        self.seal_status().await
    }

    /// Opens the barrier with the combined unseal key, installs the cluster credentials,
    /// joins consensus and loads the unsealed state.
    pub(crate) async fn open_barrier(
        &self,
        unseal_key: zeroize::Zeroizing<Vec<u8>>,
    ) -> Result<(), CoreError> {
        match self.barrier.unseal(&unseal_key).await {
            Ok(()) => {}
            Err(BarrierError::InvalidKey) => return Err(SealStateError::WrongKey.into()),
            Err(e) => return Err(e.into()),
        }
        if let Some(raft) = &self.raft {
            let started = async {
                self.install_cluster_tls().await?;
                raft.start()
                    .await
                    .map_err(|e| SealStateError::RaftStart(e).into())
            };
            if let Err(e) = started.await {
                self.barrier.seal().await;
                return Err(e);
            }
        }
        *self.unseal_key.write().await = Some(unseal_key);
        self.post_unseal().await
    }

    /// Loads the unsealed state after the barrier opened.
    pub(crate) async fn post_unseal(&self) -> Result<(), CoreError> {
        match self.load_unsealed().await {
            Ok(state) => {
                *self.unsealed.write().await = Some(state);
                if let crate::replication::DrState::Secondary(_) = self.load_dr_state().await? {
                    self.spawn_stream();
                }
                tracing::info!("vault is unsealed");
                Ok(())
            }
            Err(e) => {
                self.barrier.seal().await;
                Err(e)
            }
        }
    }

    /// Checks a combined unseal key (generate-root, DR operation tokens).
    pub async fn verify_unseal_key(&self, key: &[u8]) -> Result<bool, CoreError> {
        match self.barrier.verify_unseal_key(key).await {
            Ok(()) => Ok(true),
            Err(BarrierError::InvalidKey) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Seals this node: forgets every key and the unsealed state, and leaves the
    /// Raft cluster's consensus (a sealed node neither votes nor leads).
    pub async fn seal(&self) {
        *self.unsealed.write().await = None;
        *self.unseal_key.write().await = None;
        self.barrier.seal().await;
        self.transport.clear();
        if let Some(raft) = &self.raft {
            if let Err(e) = raft.stop().await {
                tracing::warn!(error = %e, "stopping raft while sealing");
            }
        }
        tracing::info!("vault is sealed");
    }

    /// Whether `remove-peer` took this node out of its raft cluster (it still runs, but
    /// must neither serve nor forward).
    pub fn is_removed(&self) -> bool {
        self.raft.as_ref().is_some_and(|r| r.is_removed())
    }

    /// Whether this node serves requests itself (single node, or the Raft leader).
    pub fn is_active(&self) -> bool {
        self.raft.as_ref().is_none_or(|r| r.is_leader())
    }

    /// `GET sys/health`: the status code and body.
    pub async fn health(&self, q: &HealthQuery) -> Result<(u16, Value), CoreError> {
        let status = self.seal_status().await?;
        let standby = !status.sealed && !self.is_active();
        let removed = self.is_removed();
        let code = HealthFacts {
            initialized: status.initialized,
            removed,
            sealed: status.sealed,
            dr_secondary: self.dr_mode().await == "secondary",
            standby,
        }
        .code(q);
        let mut body = json!({
            "removed_from_cluster": removed,
            "initialized": status.initialized,
            "sealed": status.sealed,
            "standby": status.sealed || standby,
            "performance_standby": false,
            "replication_performance_mode": if status.sealed { "unknown" } else { "disabled" },
            "replication_dr_mode": if status.sealed { "unknown" } else { self.dr_mode().await },
            "server_time_utc": chrono::Utc::now().timestamp(),
            "version": VERSION,
            "enterprise": false,
            "echo_duration_ms": 0,
            "clock_skew_ms": 0,
        });
        if let (Some(name), Some(id)) = (status.cluster_name, status.cluster_id) {
            body["cluster_name"] = json!(name);
            body["cluster_id"] = json!(id);
        }
        Ok((code, body))
    }

    /// `GET sys/leader`.
    pub async fn leader(&self) -> Result<Value, CoreError> {
        self.state().await?;
        let Some(raft) = &self.raft else {
            return Ok(json!({
                "ha_enabled": false,
                "is_self": false,
                "active_time": "0001-01-01T00:00:00Z",
                "leader_address": "",
                "leader_cluster_address": "",
                "performance_standby": false,
                "performance_standby_last_remote_wal": 0,
            }));
        };
        let status = raft.status().map_err(SealStateError::RaftState)?;
        let (leader_address, leader_cluster_address) = status
            .leader
            .as_ref()
            .map(|l| (l.api_addr.clone(), format!("https://{}", l.cluster_addr)))
            .unwrap_or_default();
        Ok(json!({
            "ha_enabled": true,
            "is_self": status.is_leader,
            "active_time": if status.is_leader { self.active_since().await } else { "0001-01-01T00:00:00Z".into() },
            "leader_address": leader_address,
            "leader_cluster_address": leader_cluster_address,
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
            "raft_committed_index": status.committed_index,
            "raft_applied_index": status.applied_index,
        }))
    }

    async fn active_since(&self) -> String {
        self.unsealed
            .read()
            .await
            .as_ref()
            .map(|s| super::tokens::rfc3339(s.unsealed_at))
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
    }
}
