//! labnode's HCL configuration: the typed model ([`Config`]), the parser over hcl-edit that
//! keeps spans, validation, the merge of several files, the `VAULT_*` environment overrides,
//! [`parse_str`] for rendered text and [`parse_auto_join`] for go-discover strings.
//!
//! [`load`] reads `-config` paths (files, or directories of `*.hcl`), merges them, applies
//! the overrides and validates everything into a [`Config`]. Every error names the file and
//! line it comes from (`FILE:LINE:`).
//!
//! Used by the server (`labnode`) and by `lab` (rendering checks). It is pure parsing and
//! must never import the server, tokio, an HTTP stack or the AWS crates, so that `lab` and
//! the config tests build without them.

mod model;
mod parse;
mod values;

#[cfg(test)]
mod tests;

pub use model::*;
pub use values::parse_auto_join;

use std::fmt;
use std::path::{Path, PathBuf};

use parse::{Fragment, Located, StorageDraft};

/// A place in a configuration file, printed as `FILE:LINE` or `FILE:LINE:COL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as it was named on the command line (or the `origin` given to [`parse_str`]).
    pub file: String,
    /// One-based line.
    pub line: usize,
    /// One-based column, when the parser knows it (syntax errors).
    pub column: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(column) => write!(f, "{}:{}:{}", self.file, self.line, column),
            None => write!(f, "{}:{}", self.file, self.line),
        }
    }
}

/// Why a configuration could not be loaded; the message starts with `FILE:LINE:` whenever
/// the problem has a place in a file, then says what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The text is not valid HCL.
    #[error("{at}: syntax error: {message}")]
    Syntax {
        /// Where the parser stopped.
        at: Location,
        /// What the parser expected.
        message: String,
    },
    /// Valid HCL that labnode cannot use: unknown key, wrong type, bad value.
    #[error("{at}: {message}")]
    Invalid {
        /// The offending key or block.
        at: Location,
        /// What is wrong and what was expected.
        message: String,
    },
    /// `storage` or `seal` defined a second time.
    #[error("{at}: {what} is already defined at {first}; define {what} in only one place")]
    Duplicate {
        /// The second definition.
        at: Location,
        /// The first definition.
        first: Location,
        /// `storage` or `seal`.
        what: String,
    },
    /// An environment override has a value labnode cannot use.
    #[error("{var}: {message}")]
    Env {
        /// The variable name, e.g. `VAULT_LOG_LEVEL`.
        var: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Nothing to load: no paths, or a directory without `*.hcl` files.
    #[error("{0}")]
    NoFiles(String),
    /// No file defined `storage`; only `-dev` runs without one.
    #[error(
        "{files}: no storage stanza; add storage \"raft\" {{ path = \"...\" }} or storage \"inmem\" {{}}"
    )]
    MissingStorage {
        /// The files that were loaded, comma-separated.
        files: String,
    },
}

/// Loads and merges every file (a directory contributes its `*.hcl` in sorted order),
/// then applies the process environment's `VAULT_*` overrides.
pub fn load(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    load_with_env(paths, &|name| std::env::var(name).ok())
}

/// [`load`] with an injectable environment lookup, so overrides are testable without
/// touching the process environment. Empty values count as unset.
pub fn load_with_env(paths: &[PathBuf], env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    if paths.is_empty() {
        return Err(ConfigError::NoFiles(
            "no configuration file given (use -config=FILE)".to_owned(),
        ));
    }
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files)?;
    }
    let mut merged = Fragment::default();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            path: file.clone(),
            source,
        })?;
        merged.merge(parse::parse_fragment(&text, &file.display().to_string())?)?;
    }
    apply_env(&mut merged, &|name| env(name).filter(|value| !value.is_empty()))?;
    finish(merged, files)
}

/// Parses one configuration text without environment overrides; `origin` names it in
/// messages (a file name, or e.g. `"<test>"`).
pub fn parse_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    finish(parse::parse_fragment(text, origin)?, vec![PathBuf::from(origin)])
}

/// A file is taken as is; a directory contributes its `*.hcl` files, sorted by name.
fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    if !std::fs::metadata(path).map_err(read_err)?.is_dir() {
        files.push(path.to_owned());
        return Ok(());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let entry_path = entry.map_err(read_err)?.path();
        if entry_path.extension().is_some_and(|ext| ext == "hcl") && entry_path.is_file() {
            found.push(entry_path);
        }
    }
    if found.is_empty() {
        return Err(ConfigError::NoFiles(format!(
            "{}: directory contains no *.hcl files",
            path.display()
        )));
    }
    found.sort();
    files.extend(found);
    Ok(())
}

/// Applies the environment overrides Vault honours; the environment beats the files.
fn apply_env(f: &mut Fragment, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let env_err = |var: &str, message: String| ConfigError::Env {
        var: var.to_owned(),
        message,
    };
    for (var, slot) in [
        ("VAULT_API_ADDR", &mut f.api_addr),
        ("VAULT_CLUSTER_ADDR", &mut f.cluster_addr),
    ] {
        if let Some(value) = env(var) {
            values::check_url(&value).map_err(|e| env_err(var, e))?;
            *slot = Some(value);
        }
    }
    if let Some(value) = env("VAULT_LOG_LEVEL") {
        f.log_level = Some(values::parse_log_level(&value).map_err(|e| env_err("VAULT_LOG_LEVEL", e))?);
    }
    if let Some(Located {
        value: StorageDraft::Raft { path, config },
        ..
    }) = &mut f.storage
    {
        if let Some(value) = env("VAULT_RAFT_PATH") {
            *path = Some(PathBuf::from(value));
        }
        if let Some(value) = env("VAULT_RAFT_NODE_ID") {
            config.node_id = Some(value);
        }
    }
    let seal_from_env = match env("VAULT_SEAL_TYPE").as_deref() {
        None | Some("shamir") => None,
        Some("awskms") if f.seal.is_none() => Some(AwsKmsConfig::default()),
        Some("awskms") => None,
        Some(other) => {
            return Err(env_err(
                "VAULT_SEAL_TYPE",
                format!("unknown seal type \"{other}\" (labnode supports \"shamir\" and \"awskms\")"),
            ))
        }
    };
    let key_id = env("AWSKMS_WRAPPER_KEY_ID").or_else(|| env("VAULT_AWSKMS_SEAL_KEY_ID"));
    let endpoint = env("AWS_KMS_ENDPOINT");
    if let Some(endpoint) = &endpoint {
        values::check_url(endpoint).map_err(|e| env_err("AWS_KMS_ENDPOINT", e))?;
    }
    if let Some(mut kms) = seal_from_env {
        kms.kms_key_id = key_id;
        kms.endpoint = endpoint;
        if kms.kms_key_id.is_none() {
            return Err(env_err(
                "VAULT_SEAL_TYPE",
                "awskms needs a key id: set VAULT_AWSKMS_SEAL_KEY_ID or AWSKMS_WRAPPER_KEY_ID, \
                 or add a seal \"awskms\" stanza"
                    .to_owned(),
            ));
        }
        // Not a file location: the seal came from the environment.
        let at = Location {
            file: "env VAULT_SEAL_TYPE".to_owned(),
            line: 0,
            column: None,
        };
        f.seal = Some(Located {
            at,
            value: SealConfig::AwsKms(kms),
        });
    } else if let Some(Located {
        value: SealConfig::AwsKms(kms),
        ..
    }) = &mut f.seal
    {
        if key_id.is_some() {
            kms.kms_key_id = key_id;
        }
        if endpoint.is_some() {
            kms.endpoint = endpoint;
        }
    }
    Ok(())
}

/// Checks what only the merged result can tell (storage present, raft path, KMS key id)
/// and builds the typed [`Config`].
fn finish(f: Fragment, sources: Vec<PathBuf>) -> Result<Config, ConfigError> {
    let files = || {
        sources
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(storage) = f.storage else {
        return Err(ConfigError::MissingStorage { files: files() });
    };
    let storage = match storage.value {
        StorageDraft::Inmem => StorageConfig::Inmem,
        StorageDraft::Raft {
            path: Some(path),
            config,
        } => StorageConfig::Raft(RaftConfig { path, ..config }),
        StorageDraft::Raft { path: None, .. } => {
            return Err(ConfigError::Invalid {
                at: storage.at,
                message: "storage \"raft\": missing required key \"path\" (or set VAULT_RAFT_PATH)"
                    .to_owned(),
            })
        }
    };
    let seal = match f.seal {
        None => SealConfig::Shamir,
        Some(Located {
            value: SealConfig::AwsKms(kms),
            at,
        }) if kms.kms_key_id.is_none() => {
            return Err(ConfigError::Invalid {
                at,
                message: "seal \"awskms\": missing required key \"kms_key_id\" \
                          (or set VAULT_AWSKMS_SEAL_KEY_ID / AWSKMS_WRAPPER_KEY_ID)"
                    .to_owned(),
            });
        }
        Some(seal) => seal.value,
    };
    Ok(Config {
        storage,
        listeners: f.listeners,
        seal,
        api_addr: f.api_addr,
        cluster_addr: f.cluster_addr,
        cluster_name: f.cluster_name,
        ui: f.ui.unwrap_or(false),
        log_level: f.log_level,
        log_format: f.log_format,
        disable_mlock: f.disable_mlock.unwrap_or(false),
        sources,
        warnings: f.warnings,
    })
}
