//! The decisions of initialization and unsealing as plain state: which `sys/init`
//! request is acceptable, how unseal key shares are collected toward the threshold,
//! and what `sys/health` answers. No I/O happens here; [`super::Core`] reads the facts,
//! feeds them in, and does what the returned [`UnsealStep`] says (combining with the
//! seal, opening the barrier, migrating, talking to KMS).

use zeroize::Zeroizing;

use super::seal_state::{decode_share, HealthQuery, InitRequest};
use super::SealStateError;
use crate::seal::SealConfig;

/// What the unseal decision needs to know about the node, read fresh for every request.
#[derive(Debug, Clone, Copy)]
pub struct UnsealFacts<'a> {
    /// The seal configuration to unseal with: the node's own, or the one of the
    /// cluster it is joining; `None` while uninitialized.
    pub config: Option<&'a SealConfig>,
    /// The configuration came from a pending join (this node has none of its own).
    pub joining: bool,
    /// The seal this node is configured with (`shamir` or `awskms`).
    pub configured_seal: &'static str,
    /// Storage was sealed with another seal than the configured one.
    pub migration: bool,
    /// The barrier is open.
    pub unsealed: bool,
}

/// One `PUT sys/unseal` body.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnsealRequest<'a> {
    pub key: Option<&'a str>,
    pub reset: bool,
    pub migrate: bool,
}

/// What the combined key is for once the threshold is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Open the join challenge of the cluster being joined.
    CompleteJoin,
    /// Migrate storage from its seal to the configured one.
    MigrateSeal,
    /// Open the barrier.
    OpenBarrier,
}

/// What `Core` does after one unseal request was accepted.
#[derive(PartialEq, Eq)]
pub enum UnsealStep {
    /// Nothing more to do: answer with the seal status (progress, nonce).
    Report,
    /// An auto-unseal seal on a sealed node: unwrap the key through KMS.
    AutoUnseal,
    /// The threshold is reached (progress is already reset, success or not, as in
    /// Vault): combine these shares and use the key as `then` says.
    Combine {
        shares: Vec<Zeroizing<Vec<u8>>>,
        threshold: u8,
        then: KeyUse,
    },
}

/// Names the step without the shares, so key material never reaches a log.
impl std::fmt::Debug for UnsealStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnsealStep::Report => f.write_str("Report"),
            UnsealStep::AutoUnseal => f.write_str("AutoUnseal"),
            UnsealStep::Combine {
                shares,
                threshold,
                then,
            } => f
                .debug_struct("Combine")
                .field("shares", &shares.len())
                .field("threshold", threshold)
                .field("then", then)
                .finish(),
        }
    }
}

/// The unseal key shares collected so far, and the nonce of this attempt.
#[derive(Default)]
pub struct UnsealProgress {
    nonce: String,
    shares: Vec<Zeroizing<Vec<u8>>>,
}

impl UnsealProgress {
    /// How many shares were accepted (`progress` in seal-status).
    pub fn progress(&self) -> usize {
        self.shares.len()
    }

    /// The attempt's nonce, empty when no share is pending.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Decides one unseal request; `fresh_nonce` names a new attempt when its first
    /// share arrives.
    pub fn step(
        &mut self,
        facts: &UnsealFacts<'_>,
        request: UnsealRequest<'_>,
        fresh_nonce: impl FnOnce() -> String,
    ) -> Result<UnsealStep, SealStateError> {
        let config = facts.config.ok_or(SealStateError::NotInitialized)?;
        if facts.migration && !request.migrate && !request.reset {
            return Err(SealStateError::MigrationPending {
                stored: config.seal_type.clone(),
                configured: facts.configured_seal,
                keys: if config.is_auto() { "recovery" } else { "unseal" },
            });
        }
        if config.is_auto() && !facts.migration {
            return Ok(match facts.unsealed {
                true => UnsealStep::Report,
                false => UnsealStep::AutoUnseal,
            });
        }
        if request.reset {
            if facts.unsealed {
                return Err(SealStateError::ResetWhileUnsealed);
            }
            *self = Self::default();
            return Ok(UnsealStep::Report);
        }
        let key = request
            .key
            .filter(|k| !k.is_empty())
            .ok_or(SealStateError::KeyMissing)?;
        if facts.unsealed {
            return Ok(UnsealStep::Report);
        }
        let share = Zeroizing::new(decode_share(key).ok_or(SealStateError::KeyNotEncoded)?);
        if self.shares.contains(&share) {
            return Err(SealStateError::DuplicateShare);
        }
        if self.shares.first().is_some_and(|s| s.len() != share.len()) {
            return Err(SealStateError::WrongShareLength);
        }
        if self.shares.is_empty() {
            self.nonce = fresh_nonce();
        }
        self.shares.push(share);
        let threshold = config.operator_shares().1;
        if self.shares.len() < threshold as usize {
            return Ok(UnsealStep::Report);
        }
        let then = if facts.joining {
            KeyUse::CompleteJoin
        } else if facts.migration {
            KeyUse::MigrateSeal
        } else {
            KeyUse::OpenBarrier
        };
        Ok(UnsealStep::Combine {
            shares: std::mem::take(self).shares,
            threshold,
            then,
        })
    }
}

/// Checks a `sys/init` request against the node's state and configured seal; returns
/// the seal configuration to initialize with. `auto_seal` names the configured
/// auto-unseal seal (`awskms`), `None` for Shamir.
pub fn plan_init(
    req: &InitRequest,
    auto_seal: Option<&str>,
    initialized: bool,
) -> Result<SealConfig, SealStateError> {
    if initialized {
        return Err(SealStateError::AlreadyInitialized);
    }
    let given = |keys: &Option<Vec<String>>| keys.as_ref().is_some_and(|k| !k.is_empty());
    if given(&req.pgp_keys)
        || req.root_token_pgp_key.as_ref().is_some_and(|k| !k.is_empty())
        || given(&req.recovery_pgp_keys)
    {
        return Err(SealStateError::PgpNotSupported);
    }
    match auto_seal {
        None => {
            if req.recovery_shares > 0 || req.recovery_threshold > 0 {
                return Err(SealStateError::NotApplicable {
                    parameters: "recovery_shares,recovery_threshold",
                    seal_type: "shamir".into(),
                });
            }
            SealConfig::shamir(req.secret_shares, req.secret_threshold)
                .map_err(SealStateError::InvalidSealConfig)
        }
        Some(seal_type) => {
            if req.secret_shares > 0 || req.secret_threshold > 0 {
                return Err(SealStateError::NotApplicable {
                    parameters: "secret_shares,secret_threshold",
                    seal_type: seal_type.into(),
                });
            }
            SealConfig::auto(seal_type, req.recovery_shares, req.recovery_threshold)
                .map_err(SealStateError::InvalidRecoveryConfig)
        }
    }
}

/// What `sys/health` looks at, in Vault's order of precedence.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthFacts {
    pub initialized: bool,
    pub removed: bool,
    pub sealed: bool,
    pub dr_secondary: bool,
    /// Unsealed but not the active node.
    pub standby: bool,
}

impl HealthFacts {
    /// The status code: the first matching condition wins, each overridable by its
    /// query parameter.
    pub fn code(&self, q: &HealthQuery) -> u16 {
        if !self.initialized {
            q.uninitcode.unwrap_or(501)
        } else if self.removed {
            q.removedcode.unwrap_or(530)
        } else if self.sealed {
            q.sealedcode.unwrap_or(503)
        } else if self.dr_secondary {
            q.drsecondarycode.unwrap_or(472)
        } else if self.standby && !q.standbyok {
            q.standbycode.unwrap_or(429)
        } else {
            q.activecode.unwrap_or(200)
        }
    }
}

#[cfg(test)]
mod tests;
