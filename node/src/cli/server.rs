//! `vault server`: parses vault's server flags and runs [`crate::server::run`] on a
//! multi-thread runtime.

use std::path::PathBuf;

use crate::server::ServerOptions;

use super::flags::flag_set;
use super::{CliError, CmdResult};

flag_set! {
    /// Flags of `server`.
    pub struct ServerFlags {
        /// Config files or directories, repeatable.
        config: Vec<String> = "config",
        /// In-memory dev mode: initialized, unsealed, `secret/` mounted.
        dev: bool = "dev",
        /// The dev root token (else `VAULT_DEV_ROOT_TOKEN_ID`, else `root`).
        dev_root_token_id: Option<String> = "dev-root-token-id",
        /// The dev listener (else `VAULT_DEV_LISTEN_ADDRESS`, else `127.0.0.1:8200`).
        dev_listen_address: Option<String> = "dev-listen-address",
        /// Log level (else `VAULT_LOG_LEVEL`).
        log_level: Option<String> = "log-level",
    }
}

/// Builds [`ServerOptions`] from the flags (and `VAULT_DEV_*` env like vault).
fn options(f: ServerFlags) -> Result<ServerOptions, CliError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let opts = ServerOptions {
        config_paths: f.config.into_iter().map(PathBuf::from).collect(),
        dev: f.dev,
        dev_root_token_id: f
            .dev_root_token_id
            .or_else(|| env("VAULT_DEV_ROOT_TOKEN_ID"))
            .unwrap_or_else(|| "root".into()),
        dev_listen_address: f
            .dev_listen_address
            .or_else(|| env("VAULT_DEV_LISTEN_ADDRESS"))
            .unwrap_or_else(|| "127.0.0.1:8200".into()),
        log_level: f.log_level.or_else(|| env("VAULT_LOG_LEVEL")),
    };
    if !opts.dev && opts.config_paths.is_empty() {
        return Err(CliError::Usage(
            "Must specify at least one config path using -config".into(),
        ));
    }
    Ok(opts)
}

/// Runs the server until it stops; exit 1 with its error on failure. Positional arguments
/// are ignored, as they always were.
pub fn run(f: ServerFlags, _args: Vec<String>) -> CmdResult {
    let opts = options(f)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Local(format!("Error starting runtime: {e}")))?;
    rt.block_on(crate::server::run(opts))
        .map_err(|e| CliError::Local(e.to_string()))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::flags::{self, FlagSet};
    use super::*;

    fn options_of(args: &[&str]) -> Result<ServerOptions, CliError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        options(ServerFlags::resolve(&flags::parse(&ServerFlags::flags(), &args)?))
    }

    #[test]
    fn server_flags() {
        let o = options_of(&[
            "-dev",
            "-dev-root-token-id=abc",
            "-dev-listen-address",
            "127.0.0.1:1",
        ])
        .unwrap();
        assert!(o.dev);
        assert_eq!(o.dev_root_token_id, "abc");
        assert_eq!(o.dev_listen_address, "127.0.0.1:1");
        assert_eq!(
            options_of(&["-config=a.hcl", "-config", "b.hcl"])
                .unwrap()
                .config_paths,
            vec![PathBuf::from("a.hcl"), PathBuf::from("b.hcl")]
        );
        assert!(options_of(&[]).is_err());
    }
}
