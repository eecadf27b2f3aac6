//! The current Raft snapshot as a file beside the database (`<path>/snapshot.bin`).
//!
//! Kept out of redb on purpose: a multi-megabyte value in a table that every apply touches made
//! each commit copy the pages around it (~7 MB written per client write at ~60k keys). The file
//! is written to a temporary name, fsynced, renamed over the old one and the directory fsynced,
//! so after a crash it is either the old snapshot or the new one, never a mix.
//!
//! Layout: the meta's length as a little-endian `u64`, the postcard meta, then the body (the
//! postcard encoding of every key/value pair, exactly what peers send in `/raft/snapshot`).

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use openraft::SnapshotMeta;

use super::error::RaftError;
use super::types::{decode, encode, NodeId, NodeInfo};

/// Snapshot metadata as openraft records it.
pub(crate) type Meta = SnapshotMeta<NodeId, NodeInfo>;

const FILE_NAME: &str = "snapshot.bin";
const TMP_PREFIX: &str = "snapshot.bin.tmp-";
/// Streaming buffer for writing a snapshot; the body never sits in memory as a whole.
const WRITE_BUFFER: usize = 256 * 1024;

/// The snapshot file of one node; shared by every `Raft` instance the node starts so that a
/// build still running from a stopped instance cannot overwrite a newer snapshot.
pub(crate) struct SnapshotFile {
    dir: PathBuf,
    /// Serializes the compare-and-replace step of concurrent builds and installs.
    replace: Mutex<()>,
    /// Distinguishes temporary files of concurrent writers.
    next_tmp: AtomicU64,
}

impl SnapshotFile {
    /// Points at `<dir>/snapshot.bin` and removes temporary files a crash left behind.
    pub(crate) fn open(dir: &Path) -> Result<Self, RaftError> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            replace: Mutex::new(()),
            next_tmp: AtomicU64::new(0),
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Durably writes a snapshot whose body `write_body` streams, and makes it current unless
    /// the current one is newer (a slow build racing a received snapshot). Returns whether it
    /// became current.
    pub(crate) fn write(
        &self,
        meta: &Meta,
        write_body: impl FnOnce(&mut dyn Write) -> Result<(), RaftError>,
    ) -> Result<bool, RaftError> {
        let tmp = self.dir.join(format!(
            "{TMP_PREFIX}{}",
            self.next_tmp.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.write_tmp(&tmp, meta, write_body).and_then(|()| {
            let _guard = self.replace.lock().unwrap_or_else(|p| p.into_inner());
            if self
                .read_meta()?
                .is_some_and(|current| current.last_log_id > meta.last_log_id)
            {
                return Ok(false);
            }
            fs::rename(&tmp, self.path())?;
            File::open(&self.dir)?.sync_all()?;
            Ok(true)
        });
        if !matches!(result, Ok(true)) {
            // Best effort: a leftover is also removed at the next open.
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_tmp(
        &self,
        tmp: &Path,
        meta: &Meta,
        write_body: impl FnOnce(&mut dyn Write) -> Result<(), RaftError>,
    ) -> Result<(), RaftError> {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, File::create(tmp)?);
        let header = encode(meta)?;
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        write_body(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(())
    }

    fn open_at_body(&self) -> Result<Option<(Meta, File)>, RaftError> {
        let mut file = match File::open(self.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut len = [0u8; 8];
        file.read_exact(&mut len)?;
        let mut header = vec![0u8; u64::from_le_bytes(len) as usize];
        file.read_exact(&mut header)?;
        Ok(Some((decode(&header)?, file)))
    }

    /// The current snapshot's metadata, reading only the header.
    pub(crate) fn read_meta(&self) -> Result<Option<Meta>, RaftError> {
        Ok(self.open_at_body()?.map(|(meta, _)| meta))
    }

    /// The current snapshot's metadata and body.
    pub(crate) fn read(&self) -> Result<Option<(Meta, Vec<u8>)>, RaftError> {
        let Some((meta, mut file)) = self.open_at_body()? else {
            return Ok(None);
        };
        let mut body = Vec::new();
        file.read_to_end(&mut body)?;
        Ok(Some((meta, body)))
    }
}
