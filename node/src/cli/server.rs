//! `vault server`: parses vault's server flags and runs [`crate::server::run`] on a
//! multi-thread runtime.

use std::path::PathBuf;

use crate::server::ServerOptions;

use super::flags::{self, flag, Kind};
use super::{CliError, CmdResult};

const FLAGS: &[flags::Flag] = &[
    flag("config", Kind::Multi),
    flag("dev", Kind::Bool),
    flag("dev-root-token-id", Kind::Str),
    flag("dev-listen-address", Kind::Str),
    flag("log-level", Kind::Str),
];

/// Builds [`ServerOptions`] from the flags (and `VAULT_DEV_*` env like vault).
fn options(args: &[String]) -> Result<ServerOptions, CliError> {
    let p = flags::parse(&[FLAGS], args)?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let opts = ServerOptions {
        config_paths: p.list("config").into_iter().map(PathBuf::from).collect(),
        dev: p.bool("dev"),
        dev_root_token_id: p
            .str("dev-root-token-id")
            .map(str::to_string)
            .or_else(|| env("VAULT_DEV_ROOT_TOKEN_ID"))
            .unwrap_or_else(|| "root".into()),
        dev_listen_address: p
            .str("dev-listen-address")
            .map(str::to_string)
            .or_else(|| env("VAULT_DEV_LISTEN_ADDRESS"))
            .unwrap_or_else(|| "127.0.0.1:8200".into()),
        log_level: p
            .str("log-level")
            .map(str::to_string)
            .or_else(|| env("VAULT_LOG_LEVEL")),
    };
    if !opts.dev && opts.config_paths.is_empty() {
        return Err(CliError::Usage(
            "Must specify at least one config path using -config".into(),
        ));
    }
    Ok(opts)
}

/// Runs the server until it stops; exit 1 with its error on failure.
pub fn run(args: &[String]) -> CmdResult {
    let opts = options(args)?;
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
    use super::*;

    #[test]
    fn server_flags() {
        let args: Vec<String> = [
            "-dev",
            "-dev-root-token-id=abc",
            "-dev-listen-address",
            "127.0.0.1:1",
        ]
        .map(String::from)
        .to_vec();
        let o = options(&args).unwrap();
        assert!(o.dev);
        assert_eq!(o.dev_root_token_id, "abc");
        assert_eq!(o.dev_listen_address, "127.0.0.1:1");
        let args: Vec<String> = ["-config=a.hcl", "-config", "b.hcl"].map(String::from).to_vec();
        assert_eq!(
            options(&args).unwrap().config_paths,
            vec![PathBuf::from("a.hcl"), PathBuf::from("b.hcl")]
        );
        assert!(options(&[]).is_err());
    }
}
