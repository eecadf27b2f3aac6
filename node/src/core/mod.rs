//! The logical core: seal state, initialization, authentication, ACL and routing.
//!
//! The HTTP layer hands every `/v1` request to [`Core::handle`] (or to one of the
//! raw, unauthenticated operations such as [`Core::unseal`]); the core
//! authenticates, authorizes and routes it to a backend through the barrier.

pub mod acl;
mod auto_seal;
pub mod autopilot;
mod error;
pub mod fields;
pub mod generate_root;
pub mod ha;
pub mod join;
pub mod join_client;
pub mod mounts;
mod request;
mod seal_error;
mod seal_state;
pub mod snapshot;
pub mod tokens;
mod unseal;
pub mod wrapping;

pub use error::{CoreError, RecordError};
pub use request::{Auth, Operation, Request, Response, WrapInfo};
pub use seal_error::{GenerateRootError, SealStateError};
pub use seal_state::{HealthQuery, InitRequest, InitResponse, SealStatus};

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard, RwLock};

use crate::barrier::Barrier;
use crate::cluster::{ClusterTls, ClusterTransport, TlsError};
use crate::raft::RaftStore;
use crate::storage::Physical;
use acl::PolicyStore;
use mounts::{MountError, MountTable, MOUNTS_PATH};
use tokens::{TokenEntry, TokenStore};

/// The version labnode reports (Vault-compatible clients parse it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Static facts about this node, from configuration.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Advertised API address (`api_addr`).
    pub api_addr: String,
    /// Advertised cluster address (`cluster_addr`).
    pub cluster_addr: String,
    /// Raft node id, or empty without raft.
    pub node_id: String,
    /// `raft` or `inmem`.
    pub storage_type: String,
    /// `cluster_name` from config, used at init.
    pub cluster_name: Option<String>,
}

/// The cluster's identity, created at init and replicated with the data.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClusterIdentity {
    pub name: String,
    pub id: String,
}

const CLUSTER_PATH: &str = "core/cluster";

/// Why the cluster's identity or TLS material could not be read or put to use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterStateError {
    #[error("cluster TLS material missing from storage")]
    MissingTls,
    #[error("cluster TLS: {0}")]
    TlsRecord(#[source] serde_json::Error),
    #[error(transparent)]
    InstallTls(#[from] TlsError),
    #[error("cluster identity: {0}")]
    IdentityRecord(#[source] serde_json::Error),
    #[error("cluster identity missing from storage")]
    MissingIdentity,
}
/// The cluster CA and member certificate (inside the barrier).
pub(crate) const CLUSTER_TLS_PATH: &str = "core/cluster-tls";

/// State that exists only while unsealed.
pub struct Unsealed {
    pub tokens: TokenStore,
    pub mounts: RwLock<MountTable>,
    pub policies: PolicyStore,
    pub cluster: ClusterIdentity,
    /// When this node last unsealed (reported as `active_time`).
    pub unsealed_at: chrono::DateTime<chrono::Utc>,
    /// The Raft term in which this node last served as active; a new term means
    /// another node may have changed mounts, policies or keys in between.
    active_term: std::sync::atomic::AtomicU64,
    refresh: Mutex<()>,
}

/// Serializes read-modify-write cycles on the same key (KV v2 versions, CAS).
pub struct KeyLocks {
    stripes: Vec<Arc<Mutex<()>>>,
}

impl KeyLocks {
    fn new(n: usize) -> Self {
        Self {
            stripes: (0..n).map(|_| Arc::new(Mutex::new(()))).collect(),
        }
    }

    /// Locks the stripe `key` hashes to.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() as usize) % self.stripes.len();
        self.stripes[i].clone().lock_owned().await
    }
}

/// One node's logical core.
pub struct Core {
    barrier: Arc<Barrier>,
    info: NodeInfo,
    unseal_progress: Mutex<unseal::UnsealProgress>,
    unsealed: RwLock<Option<Arc<Unsealed>>>,
    /// Per-key locks for backends that read before they write.
    pub key_locks: KeyLocks,
    /// Integrated Storage, when configured (None for inmem).
    raft: Option<Arc<RaftStore>>,
    /// The `sys/generate-root` attempt.
    generate_root: generate_root::OtpFlow,
    /// The combined unseal key, kept while unsealed to answer raft join challenges.
    unseal_key: RwLock<Option<zeroize::Zeroizing<Vec<u8>>>>,
    /// Join handshake and autopilot state.
    ha: ha::HaState,
    /// The cluster port's TLS credentials, installed once they can be read.
    transport: Arc<ClusterTransport>,
    /// The DR operation token attempt (on a DR secondary).
    dr_operation_token: generate_root::OtpFlow,
    /// DR replication role and stream state.
    dr: crate::replication::DrRuntime,
    /// This core, for tasks it spawns for itself (the DR stream).
    me: std::sync::Weak<Core>,
    /// The auto-unseal seal, when configured (`seal "awskms"`).
    auto_seal: Option<crate::seal::AwsKms>,
    /// A disabled awskms seal still needed to migrate away from it.
    migrate_from: Option<crate::seal::AwsKms>,
}

/// The seals a node runs with.
#[derive(Default)]
pub struct Seals {
    /// The active auto-unseal seal (`seal "awskms"`), or `None` for Shamir.
    pub auto: Option<crate::seal::AwsKms>,
    /// `seal "awskms" { disabled = "true" }`: the seal being migrated away from.
    pub migrate_from: Option<crate::seal::AwsKms>,
}

impl Core {
    /// A sealed core over in-memory or other non-replicated storage.
    pub fn new(physical: Arc<dyn Physical>, info: NodeInfo) -> Arc<Self> {
        Self::build(physical, info, None, ClusterTransport::new(), Seals::default())
    }

    /// A sealed core over Integrated Storage; `transport` carries the cluster port's
    /// credentials and `seals` the configured auto-unseal seals.
    pub fn with_raft(
        raft: Arc<RaftStore>,
        info: NodeInfo,
        transport: Arc<ClusterTransport>,
        seals: Seals,
    ) -> Arc<Self> {
        Self::build(raft.clone(), info, Some(raft), transport, seals)
    }

    fn build(
        physical: Arc<dyn Physical>,
        info: NodeInfo,
        raft: Option<Arc<RaftStore>>,
        transport: Arc<ClusterTransport>,
        seals: Seals,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            auto_seal: seals.auto,
            migrate_from: seals.migrate_from,
            dr_operation_token: Default::default(),
            dr: Default::default(),
            transport,
            barrier: Arc::new(Barrier::new(physical)),
            info,
            unseal_progress: Mutex::new(Default::default()),
            unsealed: RwLock::new(None),
            key_locks: KeyLocks::new(256),
            raft,
            generate_root: Default::default(),
            unseal_key: RwLock::new(None),
            ha: Default::default(),
        })
    }

    /// The cluster port's credentials (for forwarding and the cluster listener).
    pub fn transport(&self) -> &Arc<ClusterTransport> {
        &self.transport
    }

    /// DR replication state.
    pub fn dr(&self) -> &crate::replication::DrRuntime {
        &self.dr
    }

    /// This core as an `Arc`, for background tasks.
    pub(crate) fn arc(&self) -> Option<Arc<Core>> {
        self.me.upgrade()
    }

    /// The cluster CA and member certificate, from the (unsealed) barrier.
    pub(crate) async fn cluster_tls(&self) -> Result<ClusterTls, CoreError> {
        let bytes = self
            .barrier
            .get(CLUSTER_TLS_PATH)
            .await?
            .ok_or(ClusterStateError::MissingTls)?;
        Ok(serde_json::from_slice(&bytes).map_err(ClusterStateError::TlsRecord)?)
    }

    /// Reads the cluster TLS material from the (unsealed) barrier and starts using it.
    pub(crate) async fn install_cluster_tls(&self) -> Result<(), CoreError> {
        let tls = self.cluster_tls().await?;
        let replication_ca = self.dr_replication_ca().await?;
        self.transport
            .install(&tls, replication_ca.as_deref())
            .map_err(|e| ClusterStateError::InstallTls(e).into())
    }

    /// The Raft node, when this core runs on Integrated Storage.
    pub fn raft(&self) -> Option<&Arc<RaftStore>> {
        self.raft.as_ref()
    }

    /// The barrier, for backends.
    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// Static node facts.
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// The unsealed state, or `Sealed`.
    pub async fn state(&self) -> Result<Arc<Unsealed>, CoreError> {
        self.unsealed.read().await.clone().ok_or(CoreError::Sealed)
    }

    async fn load_unsealed(&self) -> Result<Arc<Unsealed>, CoreError> {
        let tokens = TokenStore::load(self.barrier.clone()).await?;
        let mounts = match self.barrier.get(MOUNTS_PATH).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(MountError::Decode)?,
            None => MountTable::initial(),
        };
        let cluster = match self.barrier.get(CLUSTER_PATH).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(ClusterStateError::IdentityRecord)?,
            None => return Err(ClusterStateError::MissingIdentity.into()),
        };
        Ok(Arc::new(Unsealed {
            tokens,
            mounts: RwLock::new(mounts),
            policies: PolicyStore::new(self.barrier.clone()),
            cluster,
            unsealed_at: chrono::Utc::now(),
            active_term: std::sync::atomic::AtomicU64::new(0),
            refresh: Mutex::new(()),
        }))
    }

    /// Reloads what other nodes may have changed while this one was a standby.
    async fn refresh_after_leadership_change(&self, state: &Unsealed) -> Result<(), CoreError> {
        use std::sync::atomic::Ordering;
        let Some(term) = self.raft.as_ref().and_then(|r| r.leader_term()) else {
            return Ok(());
        };
        if state.active_term.load(Ordering::Acquire) == term {
            return Ok(());
        }
        let _guard = state.refresh.lock().await;
        if state.active_term.load(Ordering::Acquire) == term {
            return Ok(());
        }
        self.reload_tables(state).await?;
        state.active_term.store(term, Ordering::Release);
        tracing::info!(term, "this node is now the active node");
        Ok(())
    }

    /// Re-reads the mount table, policies and keyring from storage.
    pub(crate) async fn reload_tables(&self, state: &Unsealed) -> Result<(), CoreError> {
        if let Some(bytes) = self.barrier.get(MOUNTS_PATH).await? {
            *state.mounts.write().await = serde_json::from_slice(&bytes).map_err(MountError::Decode)?;
        }
        state.policies.clear_cache().await;
        state.tokens.clear_cache();
        self.barrier.reload_keyring().await?;
        self.load_dr_state().await?;
        Ok(())
    }

    /// Persists the mount table.
    pub async fn save_mounts(&self, table: &MountTable) -> Result<(), CoreError> {
        let bytes = serde_json::to_vec(table).map_err(MountError::Encode)?;
        Ok(self.barrier.put(MOUNTS_PATH, bytes).await?)
    }

    /// Authenticates, authorizes and routes one logical request.
    pub async fn handle(&self, mut req: Request) -> Result<Response, CoreError> {
        let state = self.state().await?;
        if !self.is_active() {
            return Err(CoreError::Standby);
        }
        self.refresh_after_leadership_change(&state).await?;
        let dr_secondary = self.dr_mode().await == "secondary";
        let refused = dr_secondary || self.dr().is_demoting();
        if refused && !crate::replication::allowed_on_dr_secondary(&req.path) {
            return Err(CoreError::invalid(crate::replication::DISABLED_ON_SECONDARY));
        }
        crate::backends::refine_operation(self, &state, &mut req).await?;
        let dr_token_path = dr_secondary && req.path.starts_with("sys/storage/raft/");
        let token = if acl::is_unauthenticated(&req.path) || dr_token_path {
            None
        } else {
            Some(self.authorize(&state, &req).await?)
        };
        let response = crate::backends::route(self, &state, token.as_ref(), &req).await;
        if let Some(entry) = &token {
            state.tokens.consume_use(entry).await?;
        }
        let response = response?;
        match req.wrap_ttl {
            Some(ttl)
                if !response.is_empty() && response.status.is_none() && response.wrap_info.is_none() =>
            {
                wrapping::wrap(&state, response, ttl.as_secs(), &req.path).await
            }
            _ => Ok(response),
        }
    }

    /// Resolves the request's token and checks the ACL for its path and operation.
    pub async fn authorize(&self, state: &Unsealed, req: &Request) -> Result<TokenEntry, CoreError> {
        let given = req
            .client_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or(CoreError::PermissionDenied)?;
        let resolved = match crate::replication::jwt::looks_like_jwt(given) {
            true => self.resolve_activation_jwt(given).await,
            false => None,
        };
        let text = resolved.as_deref().unwrap_or(given);
        let entry = match state.tokens.lookup(text).await? {
            Some(entry) => entry,
            None if req.path == "sys/wrapping/unwrap" => {
                return Err(CoreError::invalid(wrapping::INVALID_WRAPPING_TOKEN));
            }
            None => return Err(CoreError::PermissionDenied),
        };
        state.policies.authorize(&entry, req).await?;
        Ok(entry)
    }
}
