//! The mount table: which backend serves which path prefix, and where its data lives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::tokens::random_base62;

/// Where the table is persisted (barrier-encrypted).
pub const MOUNTS_PATH: &str = "core/mounts";

/// Why the stored mount table could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    #[error("mount table: {0}")]
    Decode(#[source] serde_json::Error),
    #[error(transparent)]
    Encode(serde_json::Error),
}

/// Lease settings of a mount (seconds; 0 = system default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountConfig {
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
}

/// One mounted secrets engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountEntry {
    /// With trailing slash, e.g. `secret/`.
    pub path: String,
    #[serde(rename = "type")]
    pub mount_type: String,
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    pub options: BTreeMap<String, String>,
    pub config: MountConfig,
    pub local: bool,
    pub seal_wrap: bool,
}

impl MountEntry {
    /// A new entry with fresh identifiers; `kv-v2` becomes `kv` with version 2, as Vault does.
    pub fn new(
        path: &str,
        mount_type: &str,
        description: &str,
        mut options: BTreeMap<String, String>,
    ) -> Self {
        let mount_type = match mount_type {
            "kv-v2" => {
                options.insert("version".into(), "2".into());
                "kv"
            }
            "kv-v1" | "generic" => {
                options.insert("version".into(), "1".into());
                "kv"
            }
            other => other,
        };
        if mount_type == "kv" {
            options.entry("version".into()).or_insert_with(|| "1".into());
        }
        Self {
            path: normalize(path),
            mount_type: mount_type.to_string(),
            description: description.to_string(),
            uuid: uuid::Uuid::new_v4().to_string(),
            accessor: format!("{}_{}", mount_type, &random_base62(8).to_lowercase()),
            options,
            config: MountConfig::default(),
            local: false,
            seal_wrap: false,
        }
    }

    /// The storage prefix of this mount's data.
    pub fn storage_prefix(&self) -> String {
        match self.mount_type.as_str() {
            "system" => "sys/".into(),
            "cubbyhole" => "cubbyhole/".into(),
            _ => format!("logical/{}/", self.uuid),
        }
    }

    /// KV version (1 or 2) for kv mounts.
    pub fn kv_version(&self) -> u8 {
        if self.options.get("version").map(String::as_str) == Some("2") {
            2
        } else {
            1
        }
    }

    /// The JSON shape `sys/mounts` and `sys/internal/ui/mounts` use.
    pub fn to_json(&self) -> Value {
        let options = if self.mount_type == "kv" {
            json!(self.options)
        } else {
            Value::Null
        };
        json!({
            "accessor": self.accessor,
            "config": {
                "default_lease_ttl": self.config.default_lease_ttl,
                "force_no_cache": self.config.force_no_cache,
                "max_lease_ttl": self.config.max_lease_ttl,
            },
            "description": self.description,
            "external_entropy_access": false,
            "local": self.local,
            "options": options,
            "plugin_version": "",
            "running_plugin_version": "",
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.mount_type,
            "uuid": self.uuid,
        })
    }
}

/// Adds the trailing slash Vault keys mounts by.
pub fn normalize(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    format!("{trimmed}/")
}

/// All mounts, longest-prefix routed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
}

impl MountTable {
    /// The table a freshly initialized node starts with.
    pub fn initial() -> Self {
        Self {
            entries: vec![
                MountEntry::new(
                    "cubbyhole/",
                    "cubbyhole",
                    "per-token private secret storage",
                    BTreeMap::new(),
                ),
                MountEntry::new("identity/", "identity", "identity store", BTreeMap::new()),
                MountEntry::new(
                    "sys/",
                    "system",
                    "system endpoints used for control, policy and debugging",
                    BTreeMap::new(),
                ),
            ],
        }
    }

    /// The mount serving `path` and the path relative to it.
    pub fn route<'a>(&self, path: &'a str) -> Option<(&MountEntry, &'a str)> {
        self.entries
            .iter()
            .filter(|m| path.starts_with(&m.path) || format!("{path}/") == m.path)
            .max_by_key(|m| m.path.len())
            .map(|m| (m, path.get(m.path.len()..).unwrap_or("")))
    }

    /// The mount at exactly `path`.
    pub fn get(&self, path: &str) -> Option<&MountEntry> {
        let path = normalize(path);
        self.entries.iter().find(|m| m.path == path)
    }

    /// Whether `path` would overlap an existing mount.
    pub fn conflicts(&self, path: &str) -> Option<&MountEntry> {
        let path = normalize(path);
        self.entries
            .iter()
            .find(|m| m.path.starts_with(&path) || path.starts_with(&m.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_longest_prefix() {
        let mut table = MountTable::initial();
        table
            .entries
            .push(MountEntry::new("secret", "kv-v2", "", BTreeMap::new()));
        table
            .entries
            .push(MountEntry::new("secret/deep", "kv", "", BTreeMap::new()));
        let (m, rest) = table.route("secret/data/app").unwrap();
        assert_eq!((m.path.as_str(), rest), ("secret/", "data/app"));
        assert_eq!(m.kv_version(), 2);
        let (m, rest) = table.route("secret/deep/x").unwrap();
        assert_eq!((m.path.as_str(), rest, m.kv_version()), ("secret/deep/", "x", 1));
        assert!(table.route("nothing/here").is_none());
        assert!(table.conflicts("secret/").is_some());
        assert!(table.conflicts("kv/").is_none());
    }
}
