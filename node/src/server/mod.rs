//! Wires config, storage, core and the HTTP listeners into a running node.

use std::path::PathBuf;

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
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Startup(String),
}

/// Runs a node until it receives SIGINT or SIGTERM.
pub async fn run(_opts: ServerOptions) -> Result<(), ServerError> {
    Err(ServerError::Startup("server is not implemented yet".into()))
}
