//! Typed server configuration: what `labnode server -config=...` runs with.
//!
//! These structs are the contract between the HCL parser and the server; the
//! parser fills them and validates values, the server never sees raw HCL.

use std::path::PathBuf;
use std::time::Duration;

/// The whole server configuration after merging every file and env override.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `storage "raft" {}` or `storage "inmem" {}`; required unless `-dev`.
    pub storage: StorageConfig,
    /// One or more `listener "tcp" {}` stanzas; the first serves the API.
    pub listeners: Vec<ListenerConfig>,
    /// `seal "shamir"` (the default when absent) or `seal "awskms"`.
    pub seal: SealConfig,
    /// Advertised API address (`api_addr`, env VAULT_API_ADDR).
    pub api_addr: Option<String>,
    /// Advertised cluster address (`cluster_addr`, env VAULT_CLUSTER_ADDR).
    pub cluster_addr: Option<String>,
    /// `cluster_name`; generated at init when absent.
    pub cluster_name: Option<String>,
    /// `ui = true` serves /ui.
    pub ui: bool,
    /// `log_level` (trace|debug|info|warn|error), env VAULT_LOG_LEVEL.
    pub log_level: Option<String>,
    /// `log_format` (standard|json).
    pub log_format: Option<String>,
    /// `disable_mlock`; accepted for compatibility, labnode never mlocks.
    pub disable_mlock: bool,
    /// Where each setting came from, for messages that point at a file.
    pub sources: Vec<PathBuf>,
}

/// Which physical backend to run.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageConfig {
    /// Integrated Storage.
    Raft(RaftConfig),
    /// Nothing persisted; for tests and `-dev`.
    Inmem,
}

/// `storage "raft" { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct RaftConfig {
    /// Directory holding the Raft log and state machine (env VAULT_RAFT_PATH).
    pub path: PathBuf,
    /// Unique node name inside the cluster (env VAULT_RAFT_NODE_ID); generated and
    /// persisted under `path` when absent.
    pub node_id: Option<String>,
    /// Scales election and heartbeat timeouts (0 = default, 1 fastest .. 10).
    pub performance_multiplier: u64,
    /// Applied entries between snapshots (default 8192).
    pub snapshot_threshold: u64,
    /// Log entries kept after a snapshot (default 10000).
    pub trailing_logs: u64,
    /// Upper bound on a single entry in bytes (default 1 MiB).
    pub max_entry_size: u64,
    /// Join as a non-voter through retry_join.
    pub retry_join_as_non_voter: bool,
    /// `retry_join { ... }` stanzas, tried concurrently while uninitialized.
    pub retry_join: Vec<RetryJoin>,
}

/// One `retry_join` stanza: exactly one of `leader_api_addr` or `auto_join`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetryJoin {
    pub leader_api_addr: Option<String>,
    pub auto_join: Option<String>,
    /// `http` or `https` for auto_join candidates (default https).
    pub auto_join_scheme: Option<String>,
    /// API port for auto_join candidates (default 8200).
    pub auto_join_port: Option<u16>,
    pub leader_tls_servername: Option<String>,
    /// PEM text, read from the `*_file` key or given inline.
    pub leader_ca_cert: Option<String>,
    pub leader_client_cert: Option<String>,
    pub leader_client_key: Option<String>,
}

/// `listener "tcp" { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// Bind address for the API, `host:port` (default 127.0.0.1:8200).
    pub address: String,
    /// Bind address for the cluster port (default: API port + 1 on the same host).
    pub cluster_address: Option<String>,
    /// `tls_disable` (accepts true/false, 1/0, "true"/"1").
    pub tls_disable: bool,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_client_ca_file: Option<PathBuf>,
    /// tls10|tls11|tls12|tls13 (default tls12).
    pub tls_min_version: String,
    pub tls_require_and_verify_client_cert: bool,
    /// Bytes; default 32 MiB.
    pub max_request_size: u64,
    /// Default 90 s.
    pub max_request_duration: Duration,
}

/// The seal that protects the root key.
#[derive(Debug, Clone, PartialEq)]
pub enum SealConfig {
    /// Unseal keys split with Shamir's secret sharing.
    Shamir,
    /// Auto-unseal through AWS KMS.
    AwsKms(AwsKmsConfig),
}

/// `seal "awskms" { ... }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AwsKmsConfig {
    pub region: Option<String>,
    pub kms_key_id: Option<String>,
    pub endpoint: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub session_token: Option<String>,
    pub shared_creds_filename: Option<String>,
    pub shared_creds_profile: Option<String>,
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub web_identity_token_file: Option<String>,
    /// `disabled = "true"`: migrate away from this seal.
    pub disabled: bool,
}
