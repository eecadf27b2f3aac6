//! Auto-unseal through AWS KMS: the barrier's unseal key is kept wrapped by KMS,
//! the node unseals itself at boot, and operators hold recovery keys, which
//! authorize root-token and DR-operation-token generation but never unseal.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{Core, CoreError};

/// The KMS-wrapped unseal key (outside the barrier, readable while sealed).
pub const HSM_KEY_PATH: &str = "core/hsm/barrier-unseal-keys";
/// The recovery key (inside the barrier).
pub const RECOVERY_KEY_PATH: &str = "core/recovery-key";

impl Core {
    /// `shamir` or `awskms`, from the configured seal.
    pub fn seal_type(&self) -> &'static str {
        if self.auto_seal.is_some() {
            "awskms"
        } else {
            "shamir"
        }
    }

    /// Unwraps the unseal key through KMS.
    pub(crate) async fn kms_unseal_key(&self) -> Result<Zeroizing<Vec<u8>>, CoreError> {
        let kms = self
            .auto_seal
            .as_ref()
            .ok_or_else(|| CoreError::invalid("this node has no auto-unseal seal"))?;
        let wrapped = self
            .barrier()
            .physical()
            .get(HSM_KEY_PATH)
            .await?
            .ok_or_else(|| {
                CoreError::Internal("the KMS-wrapped unseal key is missing from storage".into())
            })?;
        kms.decrypt(&wrapped)
            .await
            .map(Zeroizing::new)
            .map_err(|e| CoreError::Unavailable(e.to_string()))
    }

    /// Unseals through KMS when initialized and sealed; `Ok(false)` when there is
    /// nothing to do yet (not initialized, or already unsealed).
    pub async fn auto_unseal(&self) -> Result<bool, CoreError> {
        if self.auto_seal.is_none() || self.state().await.is_ok() {
            return Ok(false);
        }
        let Some(config) = self.seal_config().await? else {
            return Ok(false);
        };
        if !config.is_auto() {
            return Err(CoreError::invalid(format!(
                "storage was initialized with the {} seal but the config has seal \"awskms\"; \
                 migrate with `vault operator unseal -migrate` (not supported by this build yet)",
                config.seal_type
            )));
        }
        let key = self.kms_unseal_key().await?;
        self.open_barrier(key).await?;
        tracing::info!("unsealed through awskms");
        Ok(true)
    }

    /// Whether combined operator shares are this cluster's: the unseal key under
    /// Shamir, the recovery key under auto-unseal.
    pub(crate) async fn verify_operator_key(&self, combined: &[u8]) -> Result<bool, CoreError> {
        let auto = self.seal_config().await?.is_some_and(|c| c.is_auto());
        if !auto {
            return self.verify_unseal_key(combined).await;
        }
        let stored = self.barrier().get(RECOVERY_KEY_PATH).await?.ok_or_else(|| {
            CoreError::invalid("this cluster has no recovery key (initialized with 0 recovery shares)")
        })?;
        Ok(bool::from(stored.ct_eq(combined)))
    }
}
