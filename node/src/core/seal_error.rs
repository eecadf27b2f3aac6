//! Why initialization, unsealing, sealing, seal migration or an OTP token attempt
//! failed, each with the HTTP status Vault answers with.

use crate::cluster::TlsError;
use crate::raft::RaftError;
use crate::seal::{KmsError, SealError};

/// Why `sys/init`, `sys/unseal`, a seal migration or the seal bookkeeping failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealStateError {
    #[error("Vault is not initialized")]
    NotInitialized,
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    #[error("PGP-encrypted key shares are not supported by labnode")]
    PgpNotSupported,
    /// Share parameters of the other kind of seal.
    #[error("parameters {parameters} not applicable to seal type {seal_type}")]
    NotApplicable {
        parameters: &'static str,
        seal_type: String,
    },
    #[error("invalid seal configuration: {0}")]
    InvalidSealConfig(#[source] SealError),
    #[error("invalid recovery configuration: {0}")]
    InvalidRecoveryConfig(#[source] SealError),
    #[error(
        "seal migration pending: storage uses the {stored} seal but the configuration the {configured} seal; \
         unseal with -migrate and the current {keys} keys"
    )]
    MigrationPending {
        stored: String,
        configured: &'static str,
        keys: &'static str,
    },
    #[error("vault is unsealed")]
    ResetWhileUnsealed,
    #[error("'key' must be specified in request body as JSON, or 'reset' set to true")]
    KeyMissing,
    #[error("'key' must be a valid hex or base64 string")]
    KeyNotEncoded,
    #[error("given key share is a duplicate")]
    DuplicateShare,
    #[error("invalid key: key share has the wrong length for this seal")]
    WrongShareLength,
    /// The collected shares do not combine into a key.
    #[error("{0}")]
    Combine(#[source] SealError),
    /// The combined key does not open the barrier.
    #[error("cipher: message authentication failed")]
    WrongKey,
    #[error("this node has no auto-unseal seal")]
    NoAutoSeal,
    #[error("this cluster has no recovery key (initialized with 0 recovery shares)")]
    NoRecoveryKey,
    #[error("the recovery key shares do not match this cluster's recovery key")]
    RecoveryKeyMismatch,
    #[error(
        "seal migration needs the old seal in the configuration (for awskms: seal \"awskms\" {{ disabled = \"true\" }})"
    )]
    MigrationNeedsOldSeal,
    /// The recovery split cannot become an unseal split.
    #[error("cannot migrate: {0}")]
    CannotMigrate(#[source] SealError),
    /// The unseal split cannot become a recovery split.
    #[error("{0}")]
    MigratedConfig(#[source] SealError),
    #[error("seal migration must run on the active node; this node did not become active")]
    NotActiveForMigration,
    #[error("the KMS-wrapped unseal key is missing from storage")]
    HsmKeyMissing,
    /// KMS refused or could not be reached.
    #[error("{0}")]
    Kms(#[source] KmsError),
    #[error("seal configuration: {0}")]
    SealConfigCorrupt(#[source] serde_json::Error),
    /// A seal record could not be encoded for storage.
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
    /// The cluster port's certificates could not be made or installed at init.
    #[error("{0}")]
    ClusterTls(#[source] TlsError),
    #[error("{0}")]
    RaftState(#[source] RaftError),
    #[error("failed to bootstrap raft: {0}")]
    RaftBootstrap(#[source] RaftError),
    #[error("failed to start raft: {0}")]
    RaftStart(#[source] RaftError),
}

impl SealStateError {
    /// The HTTP status code Vault uses for this error.
    pub fn status(&self) -> u16 {
        use SealStateError::*;
        match self {
            Kms(_) | NotActiveForMigration => 503,
            HsmKeyMissing | MigratedConfig(_) | SealConfigCorrupt(_) | Encode(_) | ClusterTls(_)
            | RaftState(_) | RaftBootstrap(_) | RaftStart(_) => 500,
            _ => 400,
        }
    }
}

/// Why a `sys/generate-root` or DR operation token attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateRootError {
    #[error("this cluster is not a DR secondary")]
    NotDrSecondary,
    #[error("cannot specify both an otp and a pgp_key")]
    OtpAndPgpKey,
    #[error("PGP-encrypted root tokens are not supported by labnode; use an OTP")]
    PgpNotSupported,
    #[error("OTP string has incorrect length")]
    OtpLength,
    #[error("root generation already in progress")]
    InProgress,
    #[error("no root generation in progress")]
    NotInProgress,
    #[error("incorrect nonce supplied; nonce for this root generation operation is \"{expected}\"")]
    WrongNonce { expected: String },
    #[error("'key' must be a valid hex or base64 string")]
    KeyNotEncoded,
    #[error("given key share is a duplicate")]
    DuplicateShare,
    /// The collected shares do not combine into a key.
    #[error("{0}")]
    Combine(#[source] SealError),
    #[error("unable to verify key shares: cipher: message authentication failed")]
    WrongKey,
}

impl GenerateRootError {
    /// Every refusal of an attempt is a 400.
    pub fn status(&self) -> u16 {
        400
    }
}
