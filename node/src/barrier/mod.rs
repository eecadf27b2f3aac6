//! The security barrier: every entry is AES-256-GCM encrypted before it reaches
//! physical storage, and nothing is readable while the barrier is sealed.
//!
//! Layout in physical storage:
//! - `core/root-key`: the root key, encrypted with the unseal key (which is never stored);
//! - `core/keyring`: the term keys, encrypted with the root key;
//! - every other entry: `[version][term][nonce][ciphertext]`, the key path as AAD, so an
//!   entry copied to another path does not decrypt.

mod crypto;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use zeroize::Zeroizing;

use crate::storage::{Physical, StorageError, WriteOp};
pub use crypto::{b64, open, random_key, seal as seal_bytes};

/// Where the encrypted root key lives.
pub const ROOT_KEY_PATH: &str = "core/root-key";
/// Where the encrypted keyring lives.
pub const KEYRING_PATH: &str = "core/keyring";
/// Entries under this prefix bypass the barrier (seal configuration only; never secrets).
pub const PLAINTEXT_PREFIX: &str = "core/plain/";

/// Why a barrier operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierError {
    #[error("Vault is sealed")]
    Sealed,
    #[error("barrier is already initialized")]
    AlreadyInitialized,
    #[error("barrier is not initialized")]
    NotInitialized,
    /// The unseal key did not open the root key.
    #[error("cipher: message authentication failed")]
    InvalidKey,
    /// An entry failed to decrypt: tampering or corruption.
    #[error("failed to decrypt entry {0}: message authentication failed")]
    Corrupt(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One generation of the data encryption key.
#[derive(Clone, Serialize, Deserialize)]
struct TermKey {
    term: u32,
    #[serde(with = "crate::barrier::crypto::b64")]
    key: Vec<u8>,
    install_time: DateTime<Utc>,
}

/// The decrypted keyring held in memory while unsealed.
#[derive(Clone, Serialize, Deserialize)]
struct Keyring {
    active_term: u32,
    keys: Vec<TermKey>,
}

impl Drop for Keyring {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for k in &mut self.keys {
            k.key.zeroize();
        }
    }
}

impl Keyring {
    fn key(&self, term: u32) -> Option<&TermKey> {
        self.keys.iter().find(|k| k.term == term)
    }
    fn active(&self) -> &TermKey {
        self.key(self.active_term).expect("active term is always present")
    }
}

/// What `sys/key-status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: DateTime<Utc>,
}

struct Unsealed {
    root_key: Zeroizing<Vec<u8>>,
    keyring: Keyring,
}

/// The encrypted view over a physical store.
pub struct Barrier {
    physical: Arc<dyn Physical>,
    state: RwLock<Option<Unsealed>>,
}

impl Barrier {
    /// A sealed barrier over `physical`.
    pub fn new(physical: Arc<dyn Physical>) -> Self {
        Self {
            physical,
            state: RwLock::new(None),
        }
    }

    /// The store underneath, for the few plaintext entries (seal configuration).
    pub fn physical(&self) -> &Arc<dyn Physical> {
        &self.physical
    }

    /// Whether a root key has ever been stored.
    pub async fn is_initialized(&self) -> Result<bool, BarrierError> {
        Ok(self.physical.get(ROOT_KEY_PATH).await?.is_some())
    }

    /// Creates a fresh root key and keyring protected by `unseal_key`, and leaves
    /// the barrier unsealed so the caller can write the initial entries.
    pub async fn initialize(&self, unseal_key: &[u8]) -> Result<(), BarrierError> {
        if self.is_initialized().await? {
            return Err(BarrierError::AlreadyInitialized);
        }
        let root_key = Zeroizing::new(random_key());
        let keyring = Keyring {
            active_term: 1,
            keys: vec![TermKey {
                term: 1,
                key: random_key(),
                install_time: Utc::now(),
            }],
        };
        let sealed_keyring = seal_keyring(&root_key, &keyring);
        self.physical
            .write(vec![
                WriteOp::Put {
                    key: KEYRING_PATH.into(),
                    value: sealed_keyring,
                },
                WriteOp::Put {
                    key: ROOT_KEY_PATH.into(),
                    value: seal_bytes(unseal_key, ROOT_KEY_PATH.as_bytes(), &root_key),
                },
            ])
            .await?;
        *self.state.write().await = Some(Unsealed { root_key, keyring });
        Ok(())
    }

    /// Checks `unseal_key` against the stored root key without unsealing.
    pub async fn verify_unseal_key(&self, unseal_key: &[u8]) -> Result<(), BarrierError> {
        self.open_root_key(unseal_key).await.map(drop)
    }

    async fn open_root_key(&self, unseal_key: &[u8]) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let blob = self
            .physical
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        open(unseal_key, ROOT_KEY_PATH.as_bytes(), &blob)
            .map(Zeroizing::new)
            .ok_or(BarrierError::InvalidKey)
    }

    /// Opens the barrier with the unseal key.
    pub async fn unseal(&self, unseal_key: &[u8]) -> Result<(), BarrierError> {
        let root_key = self.open_root_key(unseal_key).await?;
        let keyring = self.load_keyring(&root_key).await?;
        *self.state.write().await = Some(Unsealed { root_key, keyring });
        Ok(())
    }

    async fn load_keyring(&self, root_key: &[u8]) -> Result<Keyring, BarrierError> {
        let blob = self
            .physical
            .get(KEYRING_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let plain = Zeroizing::new(
            open(root_key, KEYRING_PATH.as_bytes(), &blob)
                .ok_or_else(|| BarrierError::Corrupt(KEYRING_PATH.into()))?,
        );
        serde_json::from_slice(&plain).map_err(|_| BarrierError::Corrupt(KEYRING_PATH.into()))
    }

    /// The root key, for handing to a DR secondary over mutually authenticated TLS.
    pub async fn root_key(&self) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let guard = self.state.read().await;
        Ok(guard.as_ref().ok_or(BarrierError::Sealed)?.root_key.clone())
    }

    /// Switches to another cluster's root key (DR secondary activation): the keyring
    /// now in storage is that cluster's and opens only with its root key.
    pub async fn adopt_root_key(&self, root_key: &[u8]) -> Result<(), BarrierError> {
        let keyring = self.load_keyring(root_key).await?;
        *self.state.write().await = Some(Unsealed {
            root_key: Zeroizing::new(root_key.to_vec()),
            keyring,
        });
        Ok(())
    }

    /// Forgets every key held in memory.
    pub async fn seal(&self) {
        *self.state.write().await = None;
    }

    /// Whether the barrier is sealed.
    pub async fn is_sealed(&self) -> bool {
        self.state.read().await.is_none()
    }

    /// Reads and decrypts one entry.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BarrierError> {
        self.ensure_unsealed().await?;
        let Some(blob) = self.physical.get(key).await? else {
            return Ok(None);
        };
        if key.starts_with(PLAINTEXT_PREFIX) {
            return Ok(Some(blob));
        }
        self.decrypt(key, &blob).await.map(Some)
    }

    async fn ensure_unsealed(&self) -> Result<(), BarrierError> {
        if self.state.read().await.is_none() {
            return Err(BarrierError::Sealed);
        }
        Ok(())
    }

    async fn decrypt(&self, key: &str, blob: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let term = crypto::term_of(blob).ok_or_else(|| BarrierError::Corrupt(key.into()))?;
        {
            let guard = self.state.read().await;
            let state = guard.as_ref().ok_or(BarrierError::Sealed)?;
            if let Some(tk) = state.keyring.key(term) {
                return crypto::open_term(&tk.key, key.as_bytes(), blob)
                    .ok_or_else(|| BarrierError::Corrupt(key.into()));
            }
        }
        // Another node rotated the keyring: reload it and try once more.
        self.reload_keyring().await?;
        let guard = self.state.read().await;
        let state = guard.as_ref().ok_or(BarrierError::Sealed)?;
        let tk = state
            .keyring
            .key(term)
            .ok_or_else(|| BarrierError::Corrupt(key.into()))?;
        crypto::open_term(&tk.key, key.as_bytes(), blob).ok_or_else(|| BarrierError::Corrupt(key.into()))
    }

    /// Re-reads the keyring from storage (after a rotation elsewhere in the cluster).
    pub async fn reload_keyring(&self) -> Result<(), BarrierError> {
        let mut guard = self.state.write().await;
        let state = guard.as_mut().ok_or(BarrierError::Sealed)?;
        state.keyring = self.load_keyring(&state.root_key).await?;
        Ok(())
    }

    /// Lists keys under `prefix` (keys are not secret; values are).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        self.ensure_unsealed().await?;
        Ok(self.physical.list(prefix).await?)
    }

    /// Encrypts every put and applies the batch atomically.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<(), BarrierError> {
        let ops = {
            let guard = self.state.read().await;
            let state = guard.as_ref().ok_or(BarrierError::Sealed)?;
            let active = state.keyring.active();
            ops.into_iter()
                .map(|op| match op {
                    WriteOp::Put { key, value } if !key.starts_with(PLAINTEXT_PREFIX) => {
                        let value = crypto::seal_term(active.term, &active.key, key.as_bytes(), &value);
                        WriteOp::Put { key, value }
                    }
                    other => other,
                })
                .collect()
        };
        Ok(self.physical.write(ops).await?)
    }

    /// Convenience for one encrypted put.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), BarrierError> {
        self.write(vec![WriteOp::Put {
            key: key.into(),
            value,
        }])
        .await
    }

    /// Convenience for one delete.
    pub async fn delete(&self, key: &str) -> Result<(), BarrierError> {
        self.write(vec![WriteOp::Delete { key: key.into() }]).await
    }

    /// Encrypts a value that lives outside storage (batch tokens) under the active key.
    pub async fn encrypt_value(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let guard = self.state.read().await;
        let active = guard.as_ref().ok_or(BarrierError::Sealed)?.keyring.active();
        Ok(crypto::seal_term(active.term, &active.key, aad, plain))
    }

    /// Reverses [`Barrier::encrypt_value`]; `None` for a forged or foreign value.
    pub async fn decrypt_value(&self, aad: &[u8], blob: &[u8]) -> Result<Option<Vec<u8>>, BarrierError> {
        let Some(term) = crypto::term_of(blob) else {
            return Ok(None);
        };
        let guard = self.state.read().await;
        let state = guard.as_ref().ok_or(BarrierError::Sealed)?;
        Ok(state
            .keyring
            .key(term)
            .and_then(|tk| crypto::open_term(&tk.key, aad, blob)))
    }

    /// Adds a new term key and makes it active; old terms still decrypt old entries.
    pub async fn rotate(&self) -> Result<KeyStatus, BarrierError> {
        let mut guard = self.state.write().await;
        let state = guard.as_mut().ok_or(BarrierError::Sealed)?;
        let mut keyring = self.load_keyring(&state.root_key).await?;
        let term = keyring.keys.iter().map(|k| k.term).max().unwrap_or(0) + 1;
        let install_time = Utc::now();
        keyring.keys.push(TermKey {
            term,
            key: random_key(),
            install_time,
        });
        keyring.active_term = term;
        self.physical
            .put(KEYRING_PATH, seal_keyring(&state.root_key, &keyring))
            .await?;
        state.keyring = keyring;
        Ok(KeyStatus { term, install_time })
    }

    /// The active term and when it was installed.
    pub async fn key_status(&self) -> Result<KeyStatus, BarrierError> {
        let guard = self.state.read().await;
        let active = guard.as_ref().ok_or(BarrierError::Sealed)?.keyring.active();
        Ok(KeyStatus {
            term: active.term,
            install_time: active.install_time,
        })
    }

    /// Re-protects the root key under a new unseal key (rekey, seal migration).
    pub async fn rewrap_root_key(&self, new_unseal_key: &[u8]) -> Result<(), BarrierError> {
        let guard = self.state.read().await;
        let state = guard.as_ref().ok_or(BarrierError::Sealed)?;
        let blob = seal_bytes(new_unseal_key, ROOT_KEY_PATH.as_bytes(), &state.root_key);
        Ok(self.physical.put(ROOT_KEY_PATH, blob).await?)
    }
}

fn seal_keyring(root_key: &[u8], keyring: &Keyring) -> Vec<u8> {
    let plain = Zeroizing::new(serde_json::to_vec(keyring).expect("keyring serializes"));
    seal_bytes(root_key, KEYRING_PATH.as_bytes(), &plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::InmemStorage;

    async fn fresh() -> (Arc<InmemStorage>, Barrier, Vec<u8>) {
        let physical = Arc::new(InmemStorage::new());
        let barrier = Barrier::new(physical.clone());
        let unseal_key = random_key();
        barrier.initialize(&unseal_key).await.unwrap();
        (physical, barrier, unseal_key)
    }

    #[tokio::test]
    async fn values_are_ciphertext_underneath() {
        let (physical, barrier, _) = fresh().await;
        barrier
            .put("secret/a", b"hunter2-plaintext".to_vec())
            .await
            .unwrap();
        let raw = physical.get("secret/a").await.unwrap().unwrap();
        assert!(!raw.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            barrier.get("secret/a").await.unwrap().unwrap(),
            b"hunter2-plaintext"
        );
        let root = physical.get(ROOT_KEY_PATH).await.unwrap().unwrap();
        assert_ne!(root.len(), 0);
    }

    #[tokio::test]
    async fn sealed_barrier_refuses_and_wrong_key_fails() {
        let (_, barrier, key) = fresh().await;
        barrier.put("x", b"1".to_vec()).await.unwrap();
        barrier.seal().await;
        assert!(matches!(barrier.get("x").await, Err(BarrierError::Sealed)));
        assert!(matches!(
            barrier.unseal(&random_key()).await,
            Err(BarrierError::InvalidKey)
        ));
        barrier.unseal(&key).await.unwrap();
        assert_eq!(barrier.get("x").await.unwrap().unwrap(), b"1");
    }

    #[tokio::test]
    async fn entries_are_bound_to_their_path() {
        let (physical, barrier, _) = fresh().await;
        barrier.put("a", b"1".to_vec()).await.unwrap();
        let raw = physical.get("a").await.unwrap().unwrap();
        physical.put("b", raw).await.unwrap();
        assert!(matches!(barrier.get("b").await, Err(BarrierError::Corrupt(_))));
    }

    #[tokio::test]
    async fn rotation_keeps_old_entries_readable() {
        let (_, barrier, key) = fresh().await;
        barrier.put("old", b"1".to_vec()).await.unwrap();
        let status = barrier.rotate().await.unwrap();
        assert_eq!(status.term, 2);
        barrier.put("new", b"2".to_vec()).await.unwrap();
        barrier.seal().await;
        barrier.unseal(&key).await.unwrap();
        assert_eq!(barrier.key_status().await.unwrap().term, 2);
        assert_eq!(barrier.get("old").await.unwrap().unwrap(), b"1");
        assert_eq!(barrier.get("new").await.unwrap().unwrap(), b"2");
    }
}
