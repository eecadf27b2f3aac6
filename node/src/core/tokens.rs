//! The token store: service tokens persisted only as salted hashes, batch tokens
//! as self-contained encrypted blobs, accessors, parent/child trees and expiry.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use super::CoreError;
use crate::barrier::Barrier;
use crate::storage::WriteOp;

const SALT_PATH: &str = "sys/token/salt";
const ID_PREFIX: &str = "sys/token/id/";
const ACCESSOR_PREFIX: &str = "sys/token/accessor/";
const PARENT_PREFIX: &str = "sys/token/parent/";
/// AAD binding batch-token ciphertext to its purpose.
const BATCH_AAD: &[u8] = b"labnode-batch-token";
/// The system default and maximum TTL (32 days), as Vault's.
pub const DEFAULT_TTL_SECS: u64 = 32 * 24 * 3600;

/// `service` tokens are stored; `batch` tokens carry their own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Service,
    Batch,
}

impl TokenType {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Service => "service",
            TokenType::Batch => "batch",
        }
    }
}

/// Everything known about a token except the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Salted hash of the token (the storage key); empty for batch tokens.
    pub id_hash: String,
    pub accessor: String,
    pub parent_hash: Option<String>,
    pub policies: Vec<String>,
    pub path: String,
    pub meta: Option<BTreeMap<String, String>>,
    pub display_name: String,
    /// Remaining uses; 0 = unlimited.
    pub num_uses: i64,
    pub creation_time: i64,
    /// TTL granted at creation (seconds); 0 = never expires.
    pub creation_ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    /// Unix seconds at which the token stops working; `None` = never.
    pub expire_time: Option<i64>,
    pub orphan: bool,
    pub renewable: bool,
    pub token_type: TokenType,
    pub role: Option<String>,
}

impl TokenEntry {
    /// Whether this token has passed its expiry at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expire_time.is_some_and(|t| now >= t)
    }

    /// Seconds left, 0 when it never expires.
    pub fn remaining_ttl(&self, now: i64) -> u64 {
        self.expire_time.map(|t| (t - now).max(0) as u64).unwrap_or(0)
    }

    /// Whether the token carries the root policy.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// The `data` of `auth/token/lookup*`.
    pub fn lookup_data(&self, token: Option<&str>) -> Value {
        let now = Utc::now().timestamp();
        let rfc = |t: i64| {
            Utc.timestamp_opt(t, 0)
                .single()
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        };
        let mut data = json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": "",
            "expire_time": self.expire_time.and_then(rfc),
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": token.unwrap_or(""),
            "issue_time": rfc(self.creation_time),
            "meta": self.meta,
            "num_uses": self.num_uses,
            "orphan": self.orphan,
            "path": self.path,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": self.remaining_ttl(now),
            "type": self.token_type.as_str(),
        });
        if self.period > 0 {
            data["period"] = json!(self.period);
        }
        if let Some(role) = &self.role {
            data["role"] = json!(role);
        }
        data
    }
}

/// What a caller asks for when creating a token; already validated against the parent.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub id: Option<String>,
    pub policies: Vec<String>,
    pub meta: Option<BTreeMap<String, String>>,
    pub display_name: String,
    pub num_uses: i64,
    pub ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub orphan: bool,
    pub renewable: bool,
    pub token_type: TokenType,
    pub path: String,
    pub role: Option<String>,
}

impl TokenRequest {
    /// A root token: root policy, no TTL, orphan.
    pub fn root(path: &str) -> Self {
        Self {
            id: None,
            policies: vec!["root".into()],
            meta: None,
            display_name: "root".into(),
            num_uses: 0,
            ttl: 0,
            explicit_max_ttl: 0,
            period: 0,
            orphan: true,
            renewable: false,
            token_type: TokenType::Service,
            path: path.into(),
            role: None,
        }
    }
}

/// Random base62 text of `len` characters.
pub fn random_base62(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Persists and resolves tokens through the barrier.
pub struct TokenStore {
    barrier: Arc<Barrier>,
    salt: Vec<u8>,
    /// Decoded entries by hash: every request resolves its token, and only the active
    /// node writes tokens, so the cache is dropped on every write here and on every
    /// change of active node (`Core::reload_tables`).
    cache: std::sync::RwLock<std::collections::HashMap<String, TokenEntry>>,
}

/// Entries kept before the cache starts over.
const CACHE_LIMIT: usize = 16_384;

impl TokenStore {
    /// Loads (or on first use creates) the salt; called at unseal.
    pub async fn load(barrier: Arc<Barrier>) -> Result<Self, CoreError> {
        let salt = match barrier.get(SALT_PATH).await? {
            Some(salt) => salt,
            None => {
                let salt = crate::barrier::random_key();
                barrier.put(SALT_PATH, salt.clone()).await?;
                salt
            }
        };
        Ok(Self {
            barrier,
            salt,
            cache: Default::default(),
        })
    }

    /// The barrier the store writes through (wrapping keeps responses beside tokens).
    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// The salted hash under which a token or accessor is stored.
    pub fn hash(&self, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.salt).expect("HMAC takes any key length");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Creates a token; returns the token text (shown once) and its entry.
    pub async fn create(
        &self,
        parent: Option<&TokenEntry>,
        req: TokenRequest,
    ) -> Result<(String, TokenEntry), CoreError> {
        let now = Utc::now().timestamp();
        let ttl = effective_ttl(&req);
        let mut entry = TokenEntry {
            id_hash: String::new(),
            accessor: String::new(),
            parent_hash: if req.orphan {
                None
            } else {
                parent.map(|p| p.id_hash.clone()).filter(|h| !h.is_empty())
            },
            policies: req.policies,
            path: req.path,
            meta: req.meta,
            display_name: req.display_name,
            num_uses: req.num_uses,
            creation_time: now,
            creation_ttl: ttl,
            explicit_max_ttl: req.explicit_max_ttl,
            period: req.period,
            expire_time: (ttl > 0).then_some(now + ttl as i64),
            orphan: req.orphan || parent.is_none(),
            renewable: req.renewable && ttl > 0,
            token_type: req.token_type,
            role: req.role,
        };
        if let Some(p) = parent {
            // A child never outlives its parent.
            if let Some(pexp) = p.expire_time {
                if entry.expire_time.is_none_or(|e| e > pexp) && !entry.orphan {
                    entry.expire_time = Some(pexp);
                    entry.creation_ttl = (pexp - now).max(0) as u64;
                }
            }
        }
        match entry.token_type {
            TokenType::Batch => {
                entry.renewable = false;
                let plain = serde_json::to_vec(&entry)?;
                let sealed = self.barrier.encrypt_value(BATCH_AAD, &plain).await?;
                let token = format!(
                    "hvb.{}",
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
                );
                Ok((token, entry))
            }
            TokenType::Service => {
                let token = match req.id {
                    Some(id) if !id.is_empty() => id,
                    _ => format!("hvs.{}", random_base62(24)),
                };
                entry.id_hash = self.hash(&token);
                if self
                    .barrier
                    .get(&format!("{ID_PREFIX}{}", entry.id_hash))
                    .await?
                    .is_some()
                {
                    return Err(CoreError::invalid("cannot create a token with a duplicate ID"));
                }
                entry.accessor = random_base62(24);
                let mut ops = vec![
                    WriteOp::Put {
                        key: format!("{ID_PREFIX}{}", entry.id_hash),
                        value: encode(&entry)?,
                    },
                    WriteOp::Put {
                        key: format!("{ACCESSOR_PREFIX}{}", self.hash(&entry.accessor)),
                        value: entry.id_hash.clone().into_bytes(),
                    },
                ];
                if let Some(parent_hash) = &entry.parent_hash {
                    ops.push(WriteOp::Put {
                        key: format!("{PARENT_PREFIX}{parent_hash}/{}", entry.id_hash),
                        value: vec![],
                    });
                }
                self.barrier.write(ops).await?;
                Ok((token, entry))
            }
        }
    }

    /// Resolves a token to its live entry; expired, revoked and unknown tokens are `None`.
    pub async fn lookup(&self, token: &str) -> Result<Option<TokenEntry>, CoreError> {
        let now = Utc::now().timestamp();
        let entry = if let Some(blob) = token.strip_prefix("hvb.") {
            let Ok(sealed) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(blob) else {
                return Ok(None);
            };
            let Some(plain) = self.barrier.decrypt_value(BATCH_AAD, &sealed).await? else {
                return Ok(None);
            };
            serde_json::from_slice::<TokenEntry>(&plain).ok()
        } else {
            self.entry_by_hash(&self.hash(token)).await?
        };
        Ok(entry.filter(|e| !e.is_expired(now)))
    }

    /// Loads a stored entry by its hash.
    pub async fn entry_by_hash(&self, hash: &str) -> Result<Option<TokenEntry>, CoreError> {
        if let Some(entry) = self.cache.read().unwrap_or_else(|e| e.into_inner()).get(hash) {
            return Ok(Some(entry.clone()));
        }
        let entry: Option<TokenEntry> = match self.barrier.get(&format!("{ID_PREFIX}{hash}")).await? {
            Some(bytes) => serde_json::from_slice(&bytes).ok(),
            None => None,
        };
        if let Some(entry) = &entry {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(hash.to_string(), entry.clone());
        }
        Ok(entry)
    }

    fn forget(&self, hash: &str) {
        self.cache.write().unwrap_or_else(|e| e.into_inner()).remove(hash);
    }

    /// Drops every cached entry (another node may have changed tokens).
    pub fn clear_cache(&self) {
        self.cache.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Resolves an accessor to its entry.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Option<TokenEntry>, CoreError> {
        match self
            .barrier
            .get(&format!("{ACCESSOR_PREFIX}{}", self.hash(accessor)))
            .await?
        {
            Some(hash) => self.entry_by_hash(&String::from_utf8_lossy(&hash)).await,
            None => Ok(None),
        }
    }

    /// Counts one use; a token whose last use this was is revoked.
    pub async fn consume_use(&self, entry: &TokenEntry) -> Result<(), CoreError> {
        if entry.num_uses <= 0 || entry.token_type == TokenType::Batch {
            return Ok(());
        }
        self.forget(&entry.id_hash);
        if entry.num_uses == 1 {
            return self.revoke_tree(&entry.id_hash).await;
        }
        let mut updated = entry.clone();
        updated.num_uses -= 1;
        self.barrier
            .put(&format!("{ID_PREFIX}{}", entry.id_hash), encode(&updated)?)
            .await?;
        self.forget(&entry.id_hash);
        Ok(())
    }

    /// Revokes a token and, recursively, every child it created.
    pub async fn revoke_tree(&self, hash: &str) -> Result<(), CoreError> {
        let mut pending = vec![hash.to_string()];
        while let Some(current) = pending.pop() {
            for child in self.barrier.list(&format!("{PARENT_PREFIX}{current}/")).await? {
                pending.push(child.trim_end_matches('/').to_string());
            }
            self.delete_entry(&current, true).await?;
        }
        Ok(())
    }

    /// Revokes only this token; its children become orphans.
    pub async fn revoke_orphan(&self, hash: &str) -> Result<(), CoreError> {
        for child in self.barrier.list(&format!("{PARENT_PREFIX}{hash}/")).await? {
            if let Some(mut entry) = self.entry_by_hash(&child).await? {
                self.forget(&child);
                entry.parent_hash = None;
                entry.orphan = true;
                self.barrier
                    .put(&format!("{ID_PREFIX}{child}"), encode(&entry)?)
                    .await?;
                self.forget(&child);
            }
        }
        self.delete_entry(hash, true).await
    }

    async fn delete_entry(&self, hash: &str, with_children_index: bool) -> Result<(), CoreError> {
        let Some(entry) = self.entry_by_hash(hash).await? else {
            return Ok(());
        };
        self.forget(hash);
        let mut ops = vec![
            WriteOp::Delete {
                key: format!("{ID_PREFIX}{hash}"),
            },
            WriteOp::Delete {
                key: format!("{ACCESSOR_PREFIX}{}", self.hash(&entry.accessor)),
            },
            WriteOp::DeletePrefix {
                prefix: format!("cubbyhole/{hash}/"),
            },
        ];
        if let Some(parent) = &entry.parent_hash {
            ops.push(WriteOp::Delete {
                key: format!("{PARENT_PREFIX}{parent}/{hash}"),
            });
        }
        if with_children_index {
            ops.push(WriteOp::DeletePrefix {
                prefix: format!("{PARENT_PREFIX}{hash}/"),
            });
        }
        self.barrier.write(ops).await?;
        self.forget(hash);
        Ok(())
    }

    /// Extends a token's life by `increment` (or its original TTL), within its limits.
    pub async fn renew(&self, entry: &TokenEntry, increment: Option<u64>) -> Result<TokenEntry, CoreError> {
        if entry.token_type == TokenType::Batch {
            return Err(CoreError::invalid("batch tokens cannot be renewed"));
        }
        self.forget(&entry.id_hash);
        if !entry.renewable {
            return Err(CoreError::invalid("invalid lease ID"));
        }
        let now = Utc::now().timestamp();
        let base = if entry.period > 0 {
            entry.period
        } else {
            increment.filter(|i| *i > 0).unwrap_or(entry.creation_ttl)
        };
        let mut expire = now + base as i64;
        if entry.explicit_max_ttl > 0 {
            expire = expire.min(entry.creation_time + entry.explicit_max_ttl as i64);
        }
        expire = expire.min(now + DEFAULT_TTL_SECS as i64);
        let mut updated = entry.clone();
        updated.expire_time = Some(expire);
        self.barrier
            .put(&format!("{ID_PREFIX}{}", entry.id_hash), encode(&updated)?)
            .await?;
        self.forget(&entry.id_hash);
        Ok(updated)
    }

    /// Revokes every stored token whose TTL has passed; run periodically on the active node.
    pub async fn reap_expired(&self) -> Result<usize, CoreError> {
        let now = Utc::now().timestamp();
        let mut reaped = 0;
        for hash in self.barrier.list(ID_PREFIX).await? {
            if let Some(entry) = self.entry_by_hash(&hash).await? {
                if entry.is_expired(now) {
                    self.revoke_tree(&hash).await?;
                    reaped += 1;
                }
            }
        }
        Ok(reaped)
    }
}

fn effective_ttl(req: &TokenRequest) -> u64 {
    if req.policies.iter().any(|p| p == "root") && req.ttl == 0 && req.period == 0 {
        return 0;
    }
    let mut ttl = if req.period > 0 {
        req.period
    } else if req.ttl > 0 {
        req.ttl
    } else {
        DEFAULT_TTL_SECS
    };
    if req.explicit_max_ttl > 0 {
        ttl = ttl.min(req.explicit_max_ttl);
    }
    ttl.min(DEFAULT_TTL_SECS.max(req.period))
}

fn encode(entry: &TokenEntry) -> Result<Vec<u8>, CoreError> {
    Ok(serde_json::to_vec(entry)?)
}

/// RFC 3339 with nanoseconds, as Vault prints timestamps.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::InmemStorage;

    async fn store() -> TokenStore {
        let barrier = Arc::new(Barrier::new(Arc::new(InmemStorage::new())));
        barrier.initialize(&crate::barrier::random_key()).await.unwrap();
        TokenStore::load(barrier).await.unwrap()
    }

    fn child(policies: &[&str]) -> TokenRequest {
        TokenRequest {
            policies: policies.iter().map(|s| s.to_string()).collect(),
            display_name: "token".into(),
            renewable: true,
            orphan: false,
            token_type: TokenType::Service,
            path: "auth/token/create".into(),
            ..TokenRequest::root("auth/token/create")
        }
    }

    #[tokio::test]
    async fn revoking_a_parent_revokes_children() {
        let s = store().await;
        let (root, root_entry) = s
            .create(None, TokenRequest::root("auth/token/root"))
            .await
            .unwrap();
        assert!(root.starts_with("hvs.") && root.len() == 28);
        let (parent, parent_entry) = s.create(Some(&root_entry), child(&["default"])).await.unwrap();
        let (kid, _) = s.create(Some(&parent_entry), child(&["default"])).await.unwrap();
        assert!(s.lookup(&kid).await.unwrap().is_some());
        s.revoke_tree(&parent_entry.id_hash).await.unwrap();
        assert!(s.lookup(&parent).await.unwrap().is_none());
        assert!(s.lookup(&kid).await.unwrap().is_none());
        assert!(s.lookup(&root).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn batch_tokens_are_self_contained_and_expire() {
        let s = store().await;
        let mut req = child(&["p"]);
        req.token_type = TokenType::Batch;
        req.ttl = 1;
        let (token, _) = s.create(None, req).await.unwrap();
        assert!(token.starts_with("hvb."));
        let entry = s.lookup(&token).await.unwrap().unwrap();
        assert_eq!(entry.policies, vec!["p"]);
        assert!(s.barrier.list(ID_PREFIX).await.unwrap().is_empty());
        let mut forged = token.clone();
        forged.push('A');
        assert!(s.lookup(&forged).await.unwrap().is_none());
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        assert!(s.lookup(&token).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn last_use_revokes() {
        let s = store().await;
        let mut req = child(&["default"]);
        req.num_uses = 2;
        let (token, entry) = s.create(None, req).await.unwrap();
        s.consume_use(&entry).await.unwrap();
        let entry = s.lookup(&token).await.unwrap().unwrap();
        assert_eq!(entry.num_uses, 1);
        s.consume_use(&entry).await.unwrap();
        assert!(s.lookup(&token).await.unwrap().is_none());
    }
}
