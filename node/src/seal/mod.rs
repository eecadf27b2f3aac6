//! Seals: what protects the key that opens the barrier.
//!
//! Shamir splits the unseal key into shares held by operators; the auto-unseal
//! seals (awskms) wrap it with an external key service instead.

pub mod awskms;
mod shamir;

pub use awskms::{AwsKms, KmsError};
pub use shamir::{combine, split};

use serde::{Deserialize, Serialize};

/// Why a seal operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("no key shares given")]
    NoShares,
    /// A share is not in the sharing scheme's encoding.
    #[error("invalid key share: {0}")]
    MalformedShare(&'static str),
    /// The share set cannot be combined (too few, duplicate, or mismatched lengths);
    /// the sharing crate explains why only in words.
    #[error("{0}")]
    Unrecoverable(String),
    /// secret_shares / secret_threshold out of range.
    #[error("{0}")]
    InvalidConfig(String),
}

/// The persisted description of a seal (`core/seal-config`): no secret material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    /// `shamir` or `awskms`.
    #[serde(rename = "type")]
    pub seal_type: String,
    pub secret_shares: u8,
    pub secret_threshold: u8,
    /// Recovery key split (auto-unseal seals only; recovery keys never unseal).
    #[serde(default)]
    pub recovery_shares: u8,
    #[serde(default)]
    pub recovery_threshold: u8,
}

impl SealConfig {
    /// An auto-unseal (awskms) configuration: the barrier key is one KMS-wrapped key,
    /// and `recovery_shares` / `recovery_threshold` split the recovery key (0 is allowed).
    pub fn auto(seal_type: &str, recovery_shares: u64, recovery_threshold: u64) -> Result<Self, SealError> {
        if recovery_threshold > recovery_shares {
            return Err(SealError::InvalidConfig(
                "recovery threshold cannot be larger than recovery shares".into(),
            ));
        }
        if recovery_shares > 255 {
            return Err(SealError::InvalidConfig(
                "recovery shares cannot be more than 255".into(),
            ));
        }
        if recovery_shares > 0 && recovery_threshold == 0 {
            return Err(SealError::InvalidConfig(
                "recovery threshold must be at least 1".into(),
            ));
        }
        if recovery_shares > 1 && recovery_threshold == 1 {
            return Err(SealError::InvalidConfig(
                "recovery threshold must be greater than one for multiple shares".into(),
            ));
        }
        Ok(Self {
            seal_type: seal_type.into(),
            secret_shares: 1,
            secret_threshold: 1,
            recovery_shares: recovery_shares as u8,
            recovery_threshold: recovery_threshold as u8,
        })
    }

    /// Whether this seal unseals itself (recovery keys instead of unseal keys).
    pub fn is_auto(&self) -> bool {
        self.seal_type != "shamir"
    }

    /// The shares an operator holds: recovery keys under auto-unseal, unseal keys otherwise.
    pub fn operator_shares(&self) -> (u8, u8) {
        if self.is_auto() {
            (self.recovery_shares, self.recovery_threshold)
        } else {
            (self.secret_shares, self.secret_threshold)
        }
    }

    /// A Shamir configuration after checking the bounds Vault enforces.
    pub fn shamir(shares: u64, threshold: u64) -> Result<Self, SealError> {
        if shares == 0 || threshold == 0 {
            return Err(SealError::InvalidConfig(
                "shares and threshold must be at least 1".into(),
            ));
        }
        if threshold > shares {
            return Err(SealError::InvalidConfig(
                "threshold cannot be larger than shares".into(),
            ));
        }
        if shares > 255 {
            return Err(SealError::InvalidConfig("shares cannot be more than 255".into()));
        }
        if shares > 1 && threshold == 1 {
            return Err(SealError::InvalidConfig(
                "threshold must be greater than one for multiple shares".into(),
            ));
        }
        Ok(Self {
            seal_type: "shamir".into(),
            secret_shares: shares as u8,
            secret_threshold: threshold as u8,
            recovery_shares: 0,
            recovery_threshold: 0,
        })
    }
}
