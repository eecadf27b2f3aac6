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
    /// Tolerated mistakes (`FILE:LINE: what; how to fix`) the server should log at start.
    pub warnings: Vec<String>,
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
    /// `autopilot_reconcile_interval`: how often autopilot reconciles voter state.
    pub autopilot_reconcile_interval: Option<Duration>,
    /// `autopilot_update_interval`: how often autopilot refreshes server health.
    pub autopilot_update_interval: Option<Duration>,
    /// `retry_join { ... }` stanzas, tried concurrently while uninitialized.
    pub retry_join: Vec<RetryJoin>,
}

/// One `retry_join` stanza: exactly one of `leader_api_addr` or `auto_join`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetryJoin {
    /// A known leader's API URL, e.g. `https://10.0.1.10:8200`.
    pub leader_api_addr: Option<String>,
    /// A go-discover string (`provider=aws tag_key=... tag_value=...`).
    pub auto_join: Option<String>,
    /// `http` or `https` for auto_join candidates (default https).
    pub auto_join_scheme: Option<String>,
    /// API port for auto_join candidates (default 8200).
    pub auto_join_port: Option<u16>,
    /// SNI name and certificate name to expect from the leader.
    pub leader_tls_servername: Option<String>,
    /// PEM text, read from the `*_file` key or given inline.
    pub leader_ca_cert: Option<String>,
    /// PEM client certificate presented to the leader.
    pub leader_client_cert: Option<String>,
    /// PEM private key of `leader_client_cert`.
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
    /// PEM server certificate (chain) served when TLS is on.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle used to verify client certificates.
    pub tls_client_ca_file: Option<PathBuf>,
    /// tls10|tls11|tls12|tls13 (default tls12).
    pub tls_min_version: String,
    /// Reject clients without a certificate signed by `tls_client_ca_file`.
    pub tls_require_and_verify_client_cert: bool,
    /// Bytes; default 32 MiB.
    pub max_request_size: u64,
    /// Default 90 s.
    pub max_request_duration: Duration,
}

impl Default for ListenerConfig {
    /// Vault's defaults for a `listener "tcp" {}` with no keys.
    fn default() -> Self {
        ListenerConfig {
            address: "127.0.0.1:8200".to_owned(),
            cluster_address: None,
            tls_disable: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_min_version: "tls12".to_owned(),
            tls_require_and_verify_client_cert: false,
            max_request_size: 32 << 20,
            max_request_duration: Duration::from_secs(90),
        }
    }
}

/// The seal that protects the root key.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once at startup; boxing would change the contract"
)]
pub enum SealConfig {
    /// Unseal keys split with Shamir's secret sharing.
    Shamir,
    /// Auto-unseal through AWS KMS.
    AwsKms(AwsKmsConfig),
}

/// `seal "awskms" { ... }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AwsKmsConfig {
    /// AWS region; falls back to AWS_REGION, AWS_DEFAULT_REGION, ... at seal time.
    pub region: Option<String>,
    /// Key id, ARN or `alias/...` (env AWSKMS_WRAPPER_KEY_ID > VAULT_AWSKMS_SEAL_KEY_ID).
    pub kms_key_id: Option<String>,
    /// KMS endpoint override (env AWS_KMS_ENDPOINT), e.g. a local KMS mock.
    pub endpoint: Option<String>,
    /// Static access key id.
    pub access_key: Option<String>,
    /// Static secret access key.
    pub secret_key: Option<String>,
    /// Session token for temporary static credentials.
    pub session_token: Option<String>,
    /// Shared credentials file (default ~/.aws/credentials).
    pub shared_creds_filename: Option<String>,
    /// Profile inside the shared credentials file.
    pub shared_creds_profile: Option<String>,
    /// Role to assume (web identity).
    pub role_arn: Option<String>,
    /// Session name for the assumed role.
    pub role_session_name: Option<String>,
    /// Web identity token file for AssumeRoleWithWebIdentity.
    pub web_identity_token_file: Option<String>,
    /// `disabled = "true"`: migrate away from this seal.
    pub disabled: bool,
}
