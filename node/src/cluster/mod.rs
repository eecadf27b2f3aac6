//! The cluster port: Raft RPCs and forwarded client requests between nodes,
//! always over TLS with mutual authentication against the cluster's own CA.
//!
//! The CA and the member certificate are created at init and kept inside the
//! barrier, so a node can only speak on the cluster port once it is unsealed
//! (or, when joining, once the leader accepted its challenge answer).

mod discover;
mod serve;
mod tls;

pub use discover::{discover_aws, DiscoverError};
pub use serve::{serve, AcceptorSource};
pub use tls::{
    load_listener_tls, peer_role, ClusterTls, IssuingCa, PeerRole, TlsError, DR_SECONDARY_SUBJECT_PREFIX,
};

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_rustls::TlsAcceptor;

/// Scheme used on the cluster port.
pub const SCHEME: &str = "https";

struct Material {
    acceptor: TlsAcceptor,
    client: reqwest::Client,
}

/// The node's current cluster credentials, installed at init, unseal or join.
#[derive(Default)]
pub struct ClusterTransport {
    material: RwLock<Option<Arc<Material>>>,
    /// A simulated network partition of the cluster port (both directions).
    partitioned: std::sync::atomic::AtomicBool,
}

/// The file in a node's raft `path` that partitions its cluster port while it exists; the API
/// port stays reachable, as when a node loses its peers but not its clients. An interface
/// with `lab` (which keeps its own copy of the name): see "Interfaces between lab and
/// labnode" in docs/ARCHITECTURE.md.
pub const PARTITION_FILE: &str = "fault-partition";

impl std::fmt::Debug for ClusterTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTransport")
            .field("installed", &self.current().is_some())
            .finish()
    }
}

impl ClusterTransport {
    /// An empty transport: the cluster port refuses every handshake until `install`.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Starts using `tls` for both sides of the cluster port; `replication_ca` also
    /// admits DR secondaries' client certificates (on a DR primary).
    pub fn install(&self, tls: &ClusterTls, replication_ca: Option<&str>) -> Result<(), TlsError> {
        let material = Material {
            acceptor: TlsAcceptor::from(tls.server_config(replication_ca)?),
            client: reqwest::Client::builder()
                .use_preconfigured_tls(tls.client_config()?)
                .connect_timeout(Duration::from_millis(500))
                .timeout(Duration::from_secs(90))
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .map_err(TlsError::from)?,
        };
        *self.material.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(material));
        Ok(())
    }

    /// Forgets the credentials (the node sealed).
    pub fn clear(&self) {
        *self.material.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn current(&self) -> Option<Arc<Material>> {
        self.material.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The mutually authenticated client for peers' cluster ports (none while partitioned).
    pub fn client(&self) -> Option<reqwest::Client> {
        if self.is_partitioned() {
            return None;
        }
        self.current().map(|m| m.client.clone())
    }

    /// Cuts (or restores) this node's cluster traffic in both directions.
    pub fn set_partitioned(&self, partitioned: bool) {
        let was = self
            .partitioned
            .swap(partitioned, std::sync::atomic::Ordering::AcqRel);
        if was != partitioned {
            tracing::warn!(partitioned, "simulated partition of the cluster port changed");
        }
    }

    /// Whether the cluster port is (simulated) partitioned.
    pub fn is_partitioned(&self) -> bool {
        self.partitioned.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl AcceptorSource for ClusterTransport {
    fn acceptor(&self) -> Option<TlsAcceptor> {
        if self.is_partitioned() {
            return None;
        }
        self.current().map(|m| m.acceptor.clone())
    }
}
