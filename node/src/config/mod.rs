//! HCL configuration: parsing, validation and environment overrides.

mod model;

pub use model::*;

use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Placeholder until the parser lands.
    #[error("{0}")]
    Invalid(String),
}

/// Loads and merges every file (a directory contributes its `*.hcl`).
pub fn load(_paths: &[PathBuf]) -> Result<Config, ConfigError> {
    Err(ConfigError::Invalid(
        "config parsing is not implemented yet".into(),
    ))
}
