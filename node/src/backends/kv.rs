//! The KV secrets engine, versions 1 and 2.
//!
//! Version 2 keeps `metadata/<path>` (all versions' metadata) and
//! `versions/<path>/<n>` (each version's data) under the mount's storage prefix;
//! every write changes both in one atomic batch under a per-key lock.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::core::fields::{format_duration, Fields};
use crate::core::mounts::MountEntry;
use crate::core::tokens::{rfc3339, DEFAULT_TTL_SECS};
use crate::core::{Core, CoreError, Operation, RecordError, Request, Response};
use crate::storage::WriteOp;

/// Versions kept when neither the key nor the mount says otherwise.
const DEFAULT_MAX_VERSIONS: u64 = 10;

/// Serves a request below a kv mount; `rest` is the path relative to the mount.
pub async fn handle(
    core: &Core,
    mount: &MountEntry,
    rest: &str,
    req: &Request,
) -> Result<Response, CoreError> {
    let prefix = mount.storage_prefix();
    if mount.kv_version() == 2 {
        V2 { core, prefix, mount }.handle(rest, req).await
    } else {
        v1(core, &prefix, mount, rest, req).await
    }
}

/// Whether the addressed entry exists (decides create vs update for the ACL).
pub async fn exists(core: &Core, mount: &MountEntry, rest: &str) -> Result<bool, CoreError> {
    let prefix = mount.storage_prefix();
    if mount.kv_version() == 2 {
        let key = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
        Ok(core
            .barrier()
            .get(&format!("{prefix}metadata/{key}"))
            .await?
            .is_some())
    } else {
        Ok(core.barrier().get(&format!("{prefix}{rest}")).await?.is_some())
    }
}

async fn list_keys(core: &Core, storage_prefix: &str) -> Result<Response, CoreError> {
    let keys = core.barrier().list(storage_prefix).await?;
    if keys.is_empty() {
        return Err(CoreError::NotFound);
    }
    Ok(Response::data(json!({ "keys": keys })))
}

fn dir_prefix(path: &str) -> String {
    if path.is_empty() || path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    }
}

async fn v1(
    core: &Core,
    prefix: &str,
    mount: &MountEntry,
    rest: &str,
    req: &Request,
) -> Result<Response, CoreError> {
    if req.operation == Operation::List {
        return list_keys(core, &format!("{prefix}{}", dir_prefix(rest))).await;
    }
    if rest.is_empty() || rest.ends_with('/') {
        return Err(CoreError::UnsupportedOperation);
    }
    let key = format!("{prefix}{rest}");
    match req.operation {
        Operation::Read => {
            let bytes = core.barrier().get(&key).await?.ok_or(CoreError::NotFound)?;
            let data: Value = serde_json::from_slice(&bytes)?;
            let ttl = if mount.config.default_lease_ttl > 0 {
                mount.config.default_lease_ttl
            } else {
                DEFAULT_TTL_SECS
            };
            Ok(Response {
                lease_duration: ttl,
                ..Response::data(data)
            })
        }
        Operation::Create | Operation::Update => {
            if req.data.is_empty() {
                return Err(CoreError::invalid("no data provided"));
            }
            core.barrier().put(&key, to_bytes(&req.data)?).await?;
            Ok(Response::empty())
        }
        Operation::Delete => {
            core.barrier().delete(&key).await?;
            Ok(Response::empty())
        }
        Operation::Patch | Operation::List => Err(CoreError::UnsupportedOperation),
    }
}

fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CoreError> {
    Ok(serde_json::to_vec(value)?)
}

fn from_bytes<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, CoreError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Metadata of one version.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VersionMeta {
    created_time: DateTime<Utc>,
    deletion_time: Option<DateTime<Utc>>,
    destroyed: bool,
}

impl VersionMeta {
    fn to_json(&self, version: u64, custom: &Option<BTreeMap<String, String>>) -> Value {
        json!({
            "created_time": rfc3339(self.created_time),
            "custom_metadata": custom,
            "deletion_time": self.deletion_time.map(rfc3339).unwrap_or_default(),
            "destroyed": self.destroyed,
            "version": version,
        })
    }

    fn is_live(&self) -> bool {
        self.deletion_time.is_none() && !self.destroyed
    }
}

/// Everything known about one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyMeta {
    created_time: DateTime<Utc>,
    updated_time: DateTime<Utc>,
    current_version: u64,
    oldest_version: u64,
    max_versions: u64,
    cas_required: bool,
    delete_version_after: u64,
    custom_metadata: Option<BTreeMap<String, String>>,
    versions: BTreeMap<u64, VersionMeta>,
}

impl KeyMeta {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            created_time: now,
            updated_time: now,
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
            custom_metadata: None,
            versions: BTreeMap::new(),
        }
    }
}

/// Mount-wide settings (`<mount>/config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MountSettings {
    max_versions: u64,
    cas_required: bool,
    delete_version_after: u64,
}

struct V2<'a> {
    core: &'a Core,
    prefix: String,
    mount: &'a MountEntry,
}

impl V2<'_> {
    async fn handle(&self, rest: &str, req: &Request) -> Result<Response, CoreError> {
        let (section, key) = rest.split_once('/').unwrap_or((rest, ""));
        match (section, req.operation) {
            ("config", Operation::Read) => self.read_config().await,
            ("config", Operation::Create | Operation::Update) => self.write_config(req).await,
            ("data", Operation::List) | ("metadata", Operation::List) => {
                list_keys(self.core, &format!("{}metadata/{}", self.prefix, dir_prefix(key))).await
            }
            (_, _) if key.is_empty() && section != "config" => {
                Err(CoreError::NoHandler(format!("{}{rest}", self.mount.path)))
            }
            ("data", Operation::Read) => self.read(key, req).await,
            ("data", Operation::Create | Operation::Update) => self.write(key, req).await,
            ("data", Operation::Patch) => self.patch(key, req).await,
            ("data", Operation::Delete) => self.soft_delete(key, None).await,
            ("delete", Operation::Create | Operation::Update) => {
                self.soft_delete(key, Some(versions(req)?)).await
            }
            ("undelete", Operation::Create | Operation::Update) => self.undelete(key, versions(req)?).await,
            ("destroy", Operation::Create | Operation::Update) => self.destroy(key, versions(req)?).await,
            ("metadata", Operation::Read) => self.read_metadata(key).await,
            ("metadata", Operation::Create | Operation::Update | Operation::Patch) => {
                self.write_metadata(key, req).await
            }
            ("metadata", Operation::Delete) => self.delete_metadata(key).await,
            ("delete" | "undelete" | "destroy" | "config", _) => Err(CoreError::UnsupportedOperation),
            _ => Err(CoreError::NoHandler(format!("{}{rest}", self.mount.path))),
        }
    }

    fn meta_key(&self, key: &str) -> String {
        format!("{}metadata/{key}", self.prefix)
    }

    fn version_key(&self, key: &str, version: u64) -> String {
        format!("{}versions/{key}/{version}", self.prefix)
    }

    async fn settings(&self) -> Result<MountSettings, CoreError> {
        match self.core.barrier().get(&format!("{}config", self.prefix)).await? {
            Some(bytes) => from_bytes(&bytes),
            None => Ok(MountSettings::default()),
        }
    }

    async fn read_config(&self) -> Result<Response, CoreError> {
        let s = self.settings().await?;
        Ok(Response::data(json!({
            "cas_required": s.cas_required,
            "delete_version_after": format_duration(s.delete_version_after),
            "max_versions": s.max_versions,
        })))
    }

    async fn write_config(&self, req: &Request) -> Result<Response, CoreError> {
        let f = Fields(&req.data);
        let mut s = self.settings().await?;
        if let Some(v) = f.non_negative_int("max_versions", None)? {
            s.max_versions = v;
        }
        if let Some(v) = f.bool("cas_required")? {
            s.cas_required = v;
        }
        if let Some(v) = f.duration_secs("delete_version_after")? {
            s.delete_version_after = v;
        }
        self.core
            .barrier()
            .put(&format!("{}config", self.prefix), to_bytes(&s)?)
            .await?;
        Ok(Response::empty())
    }

    async fn load_meta(&self, key: &str) -> Result<Option<KeyMeta>, CoreError> {
        match self.core.barrier().get(&self.meta_key(key)).await? {
            Some(bytes) => from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn read(&self, key: &str, req: &Request) -> Result<Response, CoreError> {
        let meta = self.load_meta(key).await?.ok_or(CoreError::NotFound)?;
        let wanted = Fields(&req.data).int("version")?.unwrap_or(0);
        let version = if wanted > 0 {
            wanted as u64
        } else {
            meta.current_version
        };
        let vmeta = meta.versions.get(&version).ok_or(CoreError::NotFound)?;
        let metadata = vmeta.to_json(version, &meta.custom_metadata);
        if !vmeta.is_live() {
            let mut resp = Response::data(json!({ "data": null, "metadata": metadata }));
            resp.status = Some(404);
            return Ok(resp);
        }
        let bytes = self
            .core
            .barrier()
            .get(&self.version_key(key, version))
            .await?
            .ok_or(CoreError::NotFound)?;
        let data: Value = from_bytes(&bytes)?;
        Ok(Response::data(json!({ "data": data, "metadata": metadata })))
    }

    async fn write(&self, key: &str, req: &Request) -> Result<Response, CoreError> {
        let data = match req.data.get("data") {
            Some(Value::Object(map)) => map.clone(),
            Some(Value::Null) | None => return Err(CoreError::invalid("no data provided")),
            Some(_) => return Err(CoreError::invalid("data must be a JSON object")),
        };
        let cas = match req.data.get("options") {
            Some(Value::Object(opts)) => Fields(opts).non_negative_int("cas", None)?,
            _ => None,
        };
        self.store_version(key, data, cas).await
    }

    async fn store_version(
        &self,
        key: &str,
        data: Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<Response, CoreError> {
        let _guard = self.core.key_locks.lock(&self.meta_key(key)).await;
        let settings = self.settings().await?;
        let now = Utc::now();
        let mut meta = self.load_meta(key).await?.unwrap_or_else(|| KeyMeta::new(now));
        if (meta.cas_required || settings.cas_required) && cas.is_none() {
            return Err(CoreError::invalid(
                "check-and-set parameter required for this call",
            ));
        }
        if let Some(cas) = cas {
            if cas != meta.current_version {
                return Err(CoreError::invalid(
                    "check-and-set parameter did not match the current version",
                ));
            }
        }
        let version = meta.current_version + 1;
        meta.current_version = version;
        meta.updated_time = now;
        if meta.oldest_version == 0 {
            meta.oldest_version = version;
        }
        meta.versions.insert(
            version,
            VersionMeta {
                created_time: now,
                deletion_time: None,
                destroyed: false,
            },
        );
        let mut ops = vec![WriteOp::Put {
            key: self.version_key(key, version),
            value: to_bytes(&data)?,
        }];
        let max = [meta.max_versions, settings.max_versions]
            .into_iter()
            .find(|m| *m > 0)
            .unwrap_or(DEFAULT_MAX_VERSIONS);
        while meta.versions.len() as u64 > max {
            let Some((&oldest, _)) = meta.versions.iter().next() else {
                break;
            };
            meta.versions.remove(&oldest);
            ops.push(WriteOp::Delete {
                key: self.version_key(key, oldest),
            });
        }
        meta.oldest_version = meta.versions.keys().next().copied().unwrap_or(version);
        let vmeta = meta.versions[&version].to_json(version, &meta.custom_metadata);
        ops.push(WriteOp::Put {
            key: self.meta_key(key),
            value: to_bytes(&meta)?,
        });
        self.core.barrier().write(ops).await?;
        Ok(Response::data(vmeta))
    }

    async fn patch(&self, key: &str, req: &Request) -> Result<Response, CoreError> {
        let Some(Value::Object(patch)) = req.data.get("data") else {
            return Err(CoreError::invalid("no data provided"));
        };
        let meta = self.load_meta(key).await?.ok_or(CoreError::NotFound)?;
        if !meta
            .versions
            .get(&meta.current_version)
            .is_some_and(VersionMeta::is_live)
        {
            return Err(CoreError::NotFound);
        }
        let bytes = self
            .core
            .barrier()
            .get(&self.version_key(key, meta.current_version))
            .await?
            .ok_or(CoreError::NotFound)?;
        let mut data: Value = from_bytes(&bytes)?;
        merge_patch(&mut data, &Value::Object(patch.clone()));
        let cas = match req.data.get("options") {
            Some(Value::Object(opts)) => Fields(opts).non_negative_int("cas", None)?,
            _ => None,
        };
        let Value::Object(merged) = data else {
            return Err(RecordError::NotAnObject.into());
        };
        self.store_version(key, merged, cas.or(Some(meta.current_version)))
            .await
    }

    async fn update_meta(
        &self,
        key: &str,
        change: impl FnOnce(&mut KeyMeta, &mut Vec<WriteOp>) -> Result<(), CoreError>,
    ) -> Result<Response, CoreError> {
        let _guard = self.core.key_locks.lock(&self.meta_key(key)).await;
        let Some(mut meta) = self.load_meta(key).await? else {
            return Ok(Response::empty());
        };
        let mut ops = Vec::new();
        change(&mut meta, &mut ops)?;
        meta.updated_time = Utc::now();
        ops.push(WriteOp::Put {
            key: self.meta_key(key),
            value: to_bytes(&meta)?,
        });
        self.core.barrier().write(ops).await?;
        Ok(Response::empty())
    }

    async fn soft_delete(&self, key: &str, which: Option<Vec<u64>>) -> Result<Response, CoreError> {
        let now = Utc::now();
        self.update_meta(key, |meta, _| {
            let targets = which.unwrap_or_else(|| vec![meta.current_version]);
            for v in targets {
                if let Some(vm) = meta.versions.get_mut(&v) {
                    if vm.deletion_time.is_none() {
                        vm.deletion_time = Some(now);
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn undelete(&self, key: &str, which: Vec<u64>) -> Result<Response, CoreError> {
        self.update_meta(key, |meta, _| {
            for v in which {
                if let Some(vm) = meta.versions.get_mut(&v).filter(|vm| !vm.destroyed) {
                    vm.deletion_time = None;
                }
            }
            Ok(())
        })
        .await
    }

    async fn destroy(&self, key: &str, which: Vec<u64>) -> Result<Response, CoreError> {
        let keys: Vec<String> = which.iter().map(|v| self.version_key(key, *v)).collect();
        self.update_meta(key, |meta, ops| {
            for (v, vkey) in which.iter().zip(keys) {
                if let Some(vm) = meta.versions.get_mut(v) {
                    vm.destroyed = true;
                    ops.push(WriteOp::Delete { key: vkey });
                }
            }
            Ok(())
        })
        .await
    }

    async fn read_metadata(&self, key: &str) -> Result<Response, CoreError> {
        let meta = self.load_meta(key).await?.ok_or(CoreError::NotFound)?;
        let versions: Map<String, Value> = meta
            .versions
            .iter()
            .map(|(v, vm)| {
                (
                    v.to_string(),
                    json!({
                        "created_time": rfc3339(vm.created_time),
                        "deletion_time": vm.deletion_time.map(rfc3339).unwrap_or_default(),
                        "destroyed": vm.destroyed,
                    }),
                )
            })
            .collect();
        Ok(Response::data(json!({
            "cas_required": meta.cas_required,
            "created_time": rfc3339(meta.created_time),
            "current_version": meta.current_version,
            "custom_metadata": meta.custom_metadata,
            "delete_version_after": format_duration(meta.delete_version_after),
            "max_versions": meta.max_versions,
            "oldest_version": meta.oldest_version,
            "updated_time": rfc3339(meta.updated_time),
            "versions": versions,
        })))
    }

    async fn write_metadata(&self, key: &str, req: &Request) -> Result<Response, CoreError> {
        let _guard = self.core.key_locks.lock(&self.meta_key(key)).await;
        let f = Fields(&req.data);
        let now = Utc::now();
        let mut meta = self.load_meta(key).await?.unwrap_or_else(|| KeyMeta::new(now));
        if let Some(v) = f.non_negative_int("max_versions", None)? {
            meta.max_versions = v;
        }
        if let Some(v) = f.bool("cas_required")? {
            meta.cas_required = v;
        }
        if let Some(v) = f.duration_secs("delete_version_after")? {
            meta.delete_version_after = v;
        }
        if let Some(custom) = f.string_map("custom_metadata")? {
            meta.custom_metadata = Some(custom);
        }
        meta.updated_time = now;
        self.core
            .barrier()
            .put(&self.meta_key(key), to_bytes(&meta)?)
            .await?;
        Ok(Response::empty())
    }

    async fn delete_metadata(&self, key: &str) -> Result<Response, CoreError> {
        let _guard = self.core.key_locks.lock(&self.meta_key(key)).await;
        self.core
            .barrier()
            .write(vec![
                WriteOp::DeletePrefix {
                    prefix: format!("{}versions/{key}/", self.prefix),
                },
                WriteOp::Delete {
                    key: self.meta_key(key),
                },
            ])
            .await?;
        Ok(Response::empty())
    }
}

fn versions(req: &Request) -> Result<Vec<u64>, CoreError> {
    let list = Fields(&req.data).string_list("versions").unwrap_or_default();
    if list.is_empty() {
        return Err(CoreError::invalid("no version number provided"));
    }
    list.iter()
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| CoreError::invalid(format!("invalid version number \"{v}\"")))
        })
        .collect()
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    for (k, v) in patch_map {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut target, &json!({"a": null, "b": {"c": 9}, "e": "x"}));
        assert_eq!(target, json!({"b": {"c": 9, "d": 3}, "e": "x"}));
    }
}
