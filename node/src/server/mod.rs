//! Wires config, storage, core and the HTTP listeners into a running node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::cluster::ClusterTransport;

use crate::core::join_client::JoinTarget;
use crate::core::{Core, InitRequest, NodeInfo, Operation, Request, Seals};
use crate::raft::{RaftOptions, RaftStore};
use crate::storage::InmemStorage;
use labnode_config::{self as config, Config, ListenerConfig, SealConfig, StorageConfig};

/// What `labnode server` was asked to run.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `-config` files or directories, in the order given.
    pub config_paths: Vec<PathBuf>,
    /// `-dev`: in-memory, initialized and unsealed at start.
    pub dev: bool,
    /// `-dev-root-token-id` (default `root`).
    pub dev_root_token_id: String,
    /// `-dev-listen-address` (default 127.0.0.1:8200).
    pub dev_listen_address: String,
    /// `-log-level`, overriding the config file.
    pub log_level: Option<String>,
}

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("listener address {0:?} is not host:port")]
    ListenerAddress(String),
    #[error(
        "listener {0}: TLS is enabled (tls_disable is false) but tls_cert_file and tls_key_file are not set; \
         set both, or set tls_disable = true"
    )]
    ListenerTlsFiles(String),
    #[error("listener {address}: {source}")]
    ListenerTls {
        address: String,
        #[source]
        source: crate::cluster::TlsError,
    },
    #[error("creating {}: {source}", path.display())]
    CreateDataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}: {source}", path.display())]
    WriteNodeId {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to listen on {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("seal \"awskms\": {0}")]
    Kms(#[source] crate::seal::KmsError),
    #[error("seal \"awskms\" needs storage \"raft\" in labnode")]
    KmsNeedsRaft,
    #[error("opening raft storage at {}: {source}", path.display())]
    OpenRaft {
        path: PathBuf,
        #[source]
        source: crate::raft::RaftError,
    },
    #[error("API listener failed: {0}")]
    Serve(#[source] std::io::Error),
    /// A `-dev` setup step (`init`, `unseal`, `mount`) failed.
    #[error("dev {step}: {source}")]
    DevSetup {
        step: &'static str,
        #[source]
        source: crate::core::CoreError,
    },
}

fn dev_config(opts: &ServerOptions) -> Config {
    Config {
        storage: StorageConfig::Inmem,
        listeners: vec![ListenerConfig {
            address: opts.dev_listen_address.clone(),
            tls_disable: true,
            ..ListenerConfig::default()
        }],
        seal: SealConfig::Shamir,
        api_addr: None,
        cluster_addr: None,
        cluster_name: None,
        ui: true,
        log_level: None,
        log_format: None,
        disable_mlock: true,
        sources: vec![],
        warnings: vec![],
    }
}

fn init_logging(level: &str, format: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn,hyper=warn,reqwest=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == Some("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Replaces an unspecified bind host with loopback so the advertised address is dialable.
fn advertise(bind: &str) -> String {
    match bind.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => format!("127.0.0.1:{}", addr.port()),
        _ => bind.to_string(),
    }
}

/// `host:port` of a URL or plain address.
fn host_port(addr: &str) -> String {
    let no_scheme = addr.split_once("://").map(|(_, rest)| rest).unwrap_or(addr);
    no_scheme.trim_end_matches('/').to_string()
}

/// The cluster port's bind address: configured, or the API port plus one.
fn cluster_bind(listener: &ListenerConfig) -> Result<String, ServerError> {
    if let Some(addr) = &listener.cluster_address {
        return Ok(addr.clone());
    }
    let addr: SocketAddr = listener
        .address
        .parse()
        .map_err(|_| ServerError::ListenerAddress(listener.address.clone()))?;
    Ok(SocketAddr::new(addr.ip(), addr.port().wrapping_add(1)).to_string())
}

/// The API listener's TLS acceptor, or `None` with `tls_disable = true`.
fn listener_tls(listener: &ListenerConfig) -> Result<Option<TlsAcceptor>, ServerError> {
    if listener.tls_disable {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&listener.tls_cert_file, &listener.tls_key_file) else {
        return Err(ServerError::ListenerTlsFiles(listener.address.clone()));
    };
    let config = crate::cluster::load_listener_tls(
        cert,
        key,
        listener.tls_client_ca_file.as_deref(),
        listener.tls_require_and_verify_client_cert,
        &listener.tls_min_version,
    )
    .map_err(|source| ServerError::ListenerTls {
        address: listener.address.clone(),
        source,
    })?;
    Ok(Some(TlsAcceptor::from(config)))
}

/// The node id from config, or the one generated on first start and kept under `path`.
fn node_id(configured: Option<&str>, path: &Path) -> Result<String, ServerError> {
    if let Some(id) = configured {
        return Ok(id.to_string());
    }
    let file = path.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&file) {
        return Ok(id.trim().to_string());
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::create_dir_all(path).map_err(|source| ServerError::CreateDataDir {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(&file, &id).map_err(|source| ServerError::WriteNodeId { path: file, source })?;
    Ok(id)
}

async fn bind(addr: &str, what: &'static str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind {
        what,
        addr: addr.to_string(),
        source,
    })
}

/// Runs a node until it receives SIGINT or SIGTERM.
pub async fn run(opts: ServerOptions) -> Result<(), ServerError> {
    let config = if opts.dev {
        dev_config(&opts)
    } else {
        config::load(&opts.config_paths)?
    };
    let level = opts
        .log_level
        .clone()
        .or(config.log_level.clone())
        .unwrap_or_else(|| "info".into());
    init_logging(&level, config.log_format.as_deref());
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let kms = match &config.seal {
        SealConfig::AwsKms(kms) => Some(
            crate::seal::AwsKms::connect(kms)
                .await
                .map_err(ServerError::Kms)?,
        ),
        SealConfig::Shamir => None,
    };
    let disabled = matches!(&config.seal, SealConfig::AwsKms(k) if k.disabled);
    let (auto_seal, migrate_from) = if disabled { (None, kms) } else { (kms, None) };
    if auto_seal.is_some() && matches!(config.storage, StorageConfig::Inmem) {
        return Err(ServerError::KmsNeedsRaft);
    }
    let listener = config.listeners.first().cloned().unwrap_or_default();
    let api_tls = listener_tls(&listener)?;
    let scheme = if api_tls.is_some() { "https" } else { "http" };
    let api_addr = config
        .api_addr
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{}", advertise(&listener.address)));
    let transport = ClusterTransport::new();
    let cluster_bind_addr = cluster_bind(&listener)?;
    let cluster_addr = config
        .cluster_addr
        .as_deref()
        .map(host_port)
        .unwrap_or_else(|| advertise(&cluster_bind_addr));

    let (core, raft) = match &config.storage {
        StorageConfig::Raft(rc) => {
            let name = node_id(rc.node_id.as_deref(), &rc.path)?;
            let raft = RaftStore::open(RaftOptions {
                node_id: name.clone(),
                path: rc.path.clone(),
                cluster_addr: cluster_addr.clone(),
                api_addr: api_addr.clone(),
                snapshot_threshold: rc.snapshot_threshold,
                trailing_logs: rc.trailing_logs,
                performance_multiplier: rc.performance_multiplier,
                transport: transport.clone(),
            })
            .await
            .map_err(|source| ServerError::OpenRaft {
                path: rc.path.clone(),
                source,
            })?;
            let info = NodeInfo {
                api_addr: api_addr.clone(),
                cluster_addr: cluster_addr.clone(),
                node_id: name,
                storage_type: "raft".into(),
                cluster_name: config.cluster_name.clone(),
            };
            (
                Core::with_raft(
                    raft.clone(),
                    info,
                    transport.clone(),
                    Seals {
                        auto: auto_seal.clone(),
                        migrate_from,
                    },
                ),
                Some(raft),
            )
        }
        StorageConfig::Inmem => {
            let info = NodeInfo {
                api_addr: api_addr.clone(),
                cluster_addr: cluster_addr.clone(),
                node_id: String::new(),
                storage_type: "inmem".into(),
                cluster_name: config.cluster_name.clone(),
            };
            (Core::new(Arc::new(InmemStorage::new()), info), None)
        }
    };

    let api_listener = bind(&listener.address, "API").await?;
    let cluster_listener = match &raft {
        Some(_) => Some(bind(&cluster_bind_addr, "cluster").await?),
        None => None,
    };

    if opts.dev {
        dev_setup(&core, &opts.dev_root_token_id).await?;
    }

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let api = crate::http::router(core.clone(), listener.max_request_size as usize);
    if let (Some(raft), Some(cluster_listener)) = (&raft, cluster_listener) {
        let app = crate::http::catch_panics(
            raft.cluster_router()
                .merge(crate::http::replication::router(core.clone()))
                .merge(crate::http::cluster::internal_router(core.clone()))
                .merge(api.clone())
                .layer(axum::middleware::from_fn(
                    crate::http::replication::require_member,
                )),
        );
        tokio::spawn(crate::cluster::serve(
            cluster_listener,
            transport.clone(),
            app,
            stop_rx.clone(),
        ));
        tracing::info!(address = %cluster_bind_addr, "cluster listener started (mutual TLS)");
    }
    tokio::spawn(reap_tokens(core.clone(), stop_rx.clone()));
    if auto_seal.is_some() {
        tokio::spawn(auto_unseal(core.clone(), stop_rx.clone()));
    }
    if let StorageConfig::Raft(rc) = &config.storage {
        tokio::spawn(watch_partition_fault(
            transport.clone(),
            rc.path.join(crate::cluster::PARTITION_FILE),
            stop_rx.clone(),
        ));
        tokio::spawn(autopilot(core.clone(), stop_rx.clone()));
        if !rc.retry_join.is_empty() {
            tokio::spawn(retry_join(
                core.clone(),
                rc.retry_join.clone(),
                rc.retry_join_as_non_voter,
                stop_rx.clone(),
            ));
        }
    }
    tracing::info!(address = %listener.address, api_addr = %api_addr, "API listener started");
    let serve_api = async {
        match api_tls {
            Some(acceptor) => {
                crate::cluster::serve(api_listener, Arc::new(acceptor), api, stop_rx.clone()).await;
                Ok(())
            }
            None => {
                let mut rx = stop_rx.clone();
                axum::serve(api_listener, api)
                    .with_graceful_shutdown(async move {
                        let _ = rx.changed().await;
                    })
                    .await
            }
        }
    };
    tokio::select! {
        result = serve_api => result.map_err(ServerError::Serve)?,
        _ = &mut shutdown => tracing::info!("shutdown requested"),
    }
    let _ = stop_tx.send(true);
    core.seal().await;
    if let Some(raft) = raft {
        let _ = raft.stop().await;
    }
    Ok(())
}

/// `-dev`: initialize with one key share, unseal, mount `secret/` as KV v2, print the credentials.
async fn dev_setup(core: &Arc<Core>, root_token_id: &str) -> Result<(), ServerError> {
    let init = core
        .init(
            InitRequest {
                secret_shares: 1,
                secret_threshold: 1,
                ..Default::default()
            },
            Some(root_token_id.to_string()),
        )
        .await
        .map_err(|source| ServerError::DevSetup { step: "init", source })?;
    core.unseal(init.keys.first().map(String::as_str), false, false)
        .await
        .map_err(|source| ServerError::DevSetup {
            step: "unseal",
            source,
        })?;
    let mount = Request::new(Operation::Update, "sys/mounts/secret")
        .with_token(init.root_token.clone())
        .with_data(json!({ "type": "kv", "options": { "version": "2" } }));
    core.handle(mount).await.map_err(|source| ServerError::DevSetup {
        step: "mount",
        source,
    })?;
    println!(
        "WARNING! dev mode is enabled! In this mode, labnode runs entirely in-memory\nand starts unsealed with a single unseal key. The root token is already\nauthenticated to the CLI, so you can immediately begin using it.\n\nYou may need to set the following environment variables:\n\n    $ export VAULT_ADDR='{}'\n\nThe unseal key and root token are displayed below in case you want to\nseal/unseal the Vault or re-authenticate.\n\nUnseal Key: {}\nRoot Token: {}\n\nDevelopment mode should NOT be used in production installations!\n",
        core.info().api_addr,
        init.keys_base64.first().cloned().unwrap_or_default(),
        init.root_token
    );
    Ok(())
}

/// Unseals through KMS as soon as storage is initialized (at boot, or once a join
/// delivered the cluster's data); retries while KMS is unreachable.
async fn auto_unseal(core: Arc<Core>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match core.auto_unseal().await {
            Ok(true) => return,
            Ok(false) if core.state().await.is_ok() => return,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "auto-unseal through awskms failed; retrying in 2s"),
        }
    }
}

/// Applies `lab fault partition|heal`: the cluster port is cut while the file exists.
async fn watch_partition_fault(
    transport: Arc<ClusterTransport>,
    file: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        transport.set_partitioned(file.exists());
    }
}

/// Runs autopilot-lite on whichever node leads: caught-up learners become voters.
async fn autopilot(core: Arc<Core>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = core.autopilot_tick().await {
            tracing::debug!(error = %e, "autopilot round failed");
        }
    }
}

/// This round's leader candidates: every `leader_api_addr`, and the instances each
/// `auto_join` finds by tag.
async fn join_targets(stanzas: &[config::RetryJoin]) -> Vec<JoinTarget> {
    let mut targets = Vec::new();
    for stanza in stanzas {
        let target = |addr: String| JoinTarget {
            leader_api_addr: addr,
            leader_ca_cert: stanza.leader_ca_cert.clone(),
            leader_client_cert: stanza.leader_client_cert.clone(),
            leader_client_key: stanza.leader_client_key.clone(),
            leader_tls_servername: stanza.leader_tls_servername.clone(),
        };
        if let Some(addr) = &stanza.leader_api_addr {
            targets.push(target(addr.clone()));
        }
        if let Some(auto_join) = &stanza.auto_join {
            let scheme = stanza.auto_join_scheme.as_deref().unwrap_or("https");
            match crate::cluster::discover_aws(auto_join, scheme, stanza.auto_join_port.unwrap_or(8200)).await
            {
                Ok(found) => targets.extend(found.into_iter().map(target)),
                Err(e) => tracing::warn!(error = %e, "retry_join: auto_join discovery failed"),
            }
        }
    }
    targets
}

/// `retry_join`: while this node is not part of a cluster, asks every configured
/// leader for a join challenge every 2 s.
async fn retry_join(
    core: Arc<Core>,
    stanzas: Vec<config::RetryJoin>,
    non_voter: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let member = core.raft().is_some_and(|r| r.is_bootstrapped().unwrap_or(false));
        if member {
            return;
        }
        let targets = join_targets(&stanzas).await;
        if targets.is_empty() {
            tracing::debug!("retry_join: no candidates this round");
            continue;
        }
        match core.raft_join(targets, non_voter).await {
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retry_join: no leader answered; retrying in 2s"),
        }
    }
}

/// Periodically revokes expired tokens on the active node.
async fn reap_tokens(core: Arc<Core>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if !core.is_active() {
            continue;
        }
        if let Ok(state) = core.state().await {
            match state.tokens.reap_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(count = n, "revoked expired tokens"),
                Err(e) => tracing::warn!(error = %e, "token reaper"),
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
