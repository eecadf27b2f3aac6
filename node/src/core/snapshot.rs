//! `operator raft snapshot save|restore`: a gzipped tar of the replicated data,
//! shaped like Vault's (meta.json, state.bin, SHA256SUMS, SHA256SUMS.sealed).
//!
//! The data inside is the physical store as-is, so every value stays barrier
//! ciphertext; the sealed checksum proves which cluster's keys took it.

use std::io::{Read, Write};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Core, CoreError};
use crate::raft::RaftError;
use crate::storage::WriteOp;

const SUMS_AAD: &[u8] = b"labnode-snapshot-sums";

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("writing snapshot: {0}")]
    Write(#[source] std::io::Error),
    #[error("failed to decompress snapshot: {0}")]
    Decompress(#[source] std::io::Error),
    #[error(transparent)]
    Export(RaftError),
    #[error(transparent)]
    EncodeState(postcard::Error),
    #[error(transparent)]
    EncodeMeta(serde_json::Error),
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn append(builder: &mut tar::Builder<impl Write>, name: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    header.set_cksum();
    builder
        .append_data(&mut header, name, bytes)
        .map_err(SnapshotError::Write)
}

impl Core {
    /// Produces a snapshot archive of everything in Integrated Storage.
    pub async fn snapshot_save(&self) -> Result<Vec<u8>, CoreError> {
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let (pairs, index) = raft.export_data().map_err(SnapshotError::Export)?;
        let status = raft.status()?;
        let state = postcard::to_allocvec(&pairs).map_err(SnapshotError::EncodeState)?;
        let servers: Vec<_> = status
            .members
            .iter()
            .map(|m| json!({ "Suffrage": if m.voter { 0 } else { 1 }, "ID": m.name, "Address": m.cluster_addr }))
            .collect();
        let meta = serde_json::to_vec(&json!({
            "Version": 1,
            "ID": format!("labnode-snapshot-{index}"),
            "Index": index,
            "Term": status.term,
            "Peers": null,
            "Configuration": { "Servers": servers },
            "ConfigurationIndex": 0,
            "Size": state.len(),
        }))
        .map_err(SnapshotError::EncodeMeta)?;
        let sums = format!(
            "{}  meta.json\n{}  state.bin\n",
            sha256_hex(&meta),
            sha256_hex(&state)
        );
        let sealed = self.barrier().encrypt_value(SUMS_AAD, sums.as_bytes()).await?;

        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        append(&mut builder, "meta.json", &meta)?;
        append(&mut builder, "state.bin", &state)?;
        append(&mut builder, "SHA256SUMS", sums.as_bytes())?;
        append(&mut builder, "SHA256SUMS.sealed", &sealed)?;
        let gz = builder.into_inner().map_err(SnapshotError::Write)?;
        Ok(gz.finish().map_err(SnapshotError::Write)?)
    }

    /// Replaces all data with a snapshot's. Without `force` the snapshot must come from
    /// this cluster (its sealed checksum must open with our keys).
    pub async fn snapshot_restore(&self, archive: &[u8], force: bool) -> Result<(), CoreError> {
        let state = self.state().await?;
        let mut files = std::collections::HashMap::new();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
        let entries = tar.entries().map_err(SnapshotError::Decompress)?;
        for entry in entries {
            let mut entry = entry.map_err(SnapshotError::Decompress)?;
            let name = entry
                .path()
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(SnapshotError::Decompress)?;
            files.insert(name, bytes);
        }
        let file = |name: &str| {
            files.get(name).ok_or_else(|| {
                CoreError::invalid(format!("snapshot is missing {name}; is it a raft snapshot?"))
            })
        };
        let (meta, body, sums) = (file("meta.json")?, file("state.bin")?, file("SHA256SUMS")?);
        let expected = format!(
            "{}  meta.json\n{}  state.bin\n",
            sha256_hex(meta),
            sha256_hex(body)
        );
        if sums.as_slice() != expected.as_bytes() {
            return Err(CoreError::invalid(
                "snapshot is corrupt: SHA256SUMS does not match its contents",
            ));
        }
        if !force {
            let sealed = file("SHA256SUMS.sealed")?;
            let opened = self.barrier().decrypt_value(SUMS_AAD, sealed).await?;
            if opened.as_deref() != Some(sums.as_slice()) {
                return Err(CoreError::invalid(
                    "could not verify the snapshot: it was not taken from this cluster (its sealed checksum does not open with this cluster's keys); use -force to restore it anyway",
                ));
            }
        }
        let pairs: Vec<(String, Vec<u8>)> = postcard::from_bytes(body)
            .map_err(|e| CoreError::invalid(format!("snapshot state is unreadable: {e}")))?;
        let mut ops = Vec::with_capacity(pairs.len() + 1);
        ops.push(WriteOp::DeletePrefix {
            prefix: String::new(),
        });
        ops.extend(pairs.into_iter().map(|(key, value)| WriteOp::Put { key, value }));
        self.barrier().physical().write(ops).await?;
        if force {
            tracing::warn!(
                "restored a snapshot from another cluster; sealing: unseal with that cluster's keys"
            );
            self.seal().await;
            return Ok(());
        }
        self.reload_tables(&state).await?;
        tracing::info!("restored a raft snapshot");
        Ok(())
    }
}
