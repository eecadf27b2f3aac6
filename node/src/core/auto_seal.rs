//! Auto-unseal through AWS KMS: the barrier's unseal key is kept wrapped by KMS,
//! the node unseals itself at boot, and operators hold recovery keys, which
//! authorize root-token and DR-operation-token generation but never unseal.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{Core, CoreError, SealStateError};
use crate::seal::SealConfig;

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
        let kms = self.auto_seal.as_ref().ok_or(SealStateError::NoAutoSeal)?;
        let wrapped = self
            .barrier()
            .physical()
            .get(HSM_KEY_PATH)
            .await?
            .ok_or(SealStateError::HsmKeyMissing)?;
        kms.decrypt(&wrapped)
            .await
            .map(Zeroizing::new)
            .map_err(|e| SealStateError::Kms(e).into())
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
            // A seal migration is pending: it waits for `unseal -migrate`.
            return Ok(false);
        }
        let key = self.kms_unseal_key().await?;
        self.open_barrier(key).await?;
        tracing::info!("unsealed through awskms");
        Ok(true)
    }

    /// Whether storage was sealed with another seal than the configured one, so the
    /// next unseal must be a `-migrate` one.
    pub async fn migration_pending(&self) -> Result<bool, CoreError> {
        Ok(self
            .seal_config()
            .await?
            .is_some_and(|c| c.seal_type != self.seal_type()))
    }

    /// Completes a seal migration with the old seal's combined operator key.
    ///
    /// Shamir → awskms: the unseal key gets wrapped by KMS and the old unseal shares
    /// become the recovery shares. awskms → Shamir: the recovery key becomes the new
    /// unseal key (the root key is re-protected under it) and the recovery shares
    /// become the unseal shares.
    pub(crate) async fn migrate_seal(
        &self,
        stored: &SealConfig,
        combined: Zeroizing<Vec<u8>>,
    ) -> Result<(), CoreError> {
        let physical = self.barrier().physical().clone();
        match (&self.auto_seal, &self.migrate_from) {
            (Some(kms), _) if !stored.is_auto() => {
                self.open_barrier(combined.clone()).await?;
                self.wait_until_active().await?;
                let wrapped = kms.encrypt(&combined).await.map_err(SealStateError::Kms)?;
                physical.put(HSM_KEY_PATH, wrapped).await?;
                self.barrier().put(RECOVERY_KEY_PATH, combined.to_vec()).await?;
                let config = SealConfig::auto(
                    "awskms",
                    stored.secret_shares.into(),
                    stored.secret_threshold.into(),
                )
                .map_err(SealStateError::MigratedConfig)?;
                self.store_seal_config(&config).await?;
                tracing::warn!(
                    "seal migrated from shamir to awskms; the old unseal keys are now recovery keys"
                );
            }
            (None, Some(kms)) if stored.is_auto() => {
                let wrapped = physical
                    .get(HSM_KEY_PATH)
                    .await?
                    .ok_or(SealStateError::HsmKeyMissing)?;
                let unseal_key = Zeroizing::new(kms.decrypt(&wrapped).await.map_err(SealStateError::Kms)?);
                self.open_barrier(unseal_key).await?;
                self.wait_until_active().await?;
                if !self.verify_operator_key(&combined).await? {
                    self.seal().await;
                    return Err(SealStateError::RecoveryKeyMismatch.into());
                }
                self.barrier().rewrap_root_key(&combined).await?;
                let config =
                    SealConfig::shamir(stored.recovery_shares.into(), stored.recovery_threshold.into())
                        .map_err(SealStateError::CannotMigrate)?;
                self.store_seal_config(&config).await?;
                physical.delete(HSM_KEY_PATH).await?;
                self.barrier().delete(RECOVERY_KEY_PATH).await?;
                *self.unseal_key.write().await = Some(combined);
                tracing::warn!("seal migrated from awskms to shamir; the recovery keys are now unseal keys");
            }
            _ => return Err(SealStateError::MigrationNeedsOldSeal.into()),
        }
        Ok(())
    }

    /// Waits (briefly) until this node leads, so a migration can write.
    async fn wait_until_active(&self) -> Result<(), CoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while !self.is_active() {
            if std::time::Instant::now() > deadline {
                return Err(SealStateError::NotActiveForMigration.into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn store_seal_config(&self, config: &SealConfig) -> Result<(), CoreError> {
        let bytes = serde_json::to_vec(config).map_err(SealStateError::Encode)?;
        Ok(self
            .barrier()
            .physical()
            .put(super::seal_state::SEAL_CONFIG_PATH, bytes)
            .await?)
    }

    /// Whether combined operator shares are this cluster's: the unseal key under
    /// Shamir, the recovery key under auto-unseal.
    pub(crate) async fn verify_operator_key(&self, combined: &[u8]) -> Result<bool, CoreError> {
        let auto = self.seal_config().await?.is_some_and(|c| c.is_auto());
        if !auto {
            return self.verify_unseal_key(combined).await;
        }
        let stored = self
            .barrier()
            .get(RECOVERY_KEY_PATH)
            .await?
            .ok_or(SealStateError::NoRecoveryKey)?;
        Ok(bool::from(stored.ct_eq(combined)))
    }
}
