//! In-memory physical store for `-dev` mode and unit tests.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tokio::sync::RwLock;

use super::{immediate_children, Physical, StorageError, WriteOp};

/// A BTreeMap behind a lock; nothing survives the process.
#[derive(Default)]
pub struct InmemStorage {
    entries: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl InmemStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Applies one batch to an ordered map; shared with stores that keep a map in memory.
pub fn apply_ops(map: &mut BTreeMap<String, Vec<u8>>, ops: Vec<WriteOp>) {
    for op in ops {
        match op {
            WriteOp::Put { key, value } => {
                map.insert(key, value);
            }
            WriteOp::Delete { key } => {
                map.remove(&key);
            }
            WriteOp::DeletePrefix { prefix } => {
                map.retain(|k, _| !k.starts_with(&prefix));
            }
        }
    }
}

#[async_trait]
impl Physical for InmemStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.entries.read().await.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let map = self.entries.read().await;
        let keys = map
            .range(prefix.to_string()..)
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(immediate_children(prefix, keys))
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        apply_ops(&mut *self.entries.write().await, ops);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batch_is_applied_in_order() {
        let store = InmemStorage::new();
        store
            .write(vec![
                WriteOp::Put {
                    key: "x/a".into(),
                    value: b"1".to_vec(),
                },
                WriteOp::Put {
                    key: "x/b/c".into(),
                    value: b"2".to_vec(),
                },
                WriteOp::Delete { key: "x/a".into() },
            ])
            .await
            .unwrap();
        assert_eq!(store.get("x/a").await.unwrap(), None);
        assert_eq!(store.list("x/").await.unwrap(), vec!["b/"]);
        store
            .write(vec![WriteOp::DeletePrefix { prefix: "x/".into() }])
            .await
            .unwrap();
        assert!(store.list("").await.unwrap().is_empty());
    }
}
