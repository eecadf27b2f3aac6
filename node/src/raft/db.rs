//! The one redb database behind a node: table layout, typed record access, blocking bridge.
//!
//! Log store and state machine share a file so a single fsync (the log append, which is
//! `Durability::Immediate`) also persists every earlier non-durable state machine commit:
//! redb commits are totally ordered, so after a crash the file is always a consistent prefix.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::RaftError;
use super::types::{decode, encode};

/// Log entries by index, each postcard-encoded.
pub(crate) const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_logs");
/// Log-store records: vote, committed log id, last purged log id.
pub(crate) const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_log_meta");
/// The replicated key/value data (the Vault physical store).
pub(crate) const SM_DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_data");
/// State machine records: last applied and last membership. Small values only: every apply
/// rewrites `last_applied` here, and redb copies whatever shares its pages.
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");

pub(crate) const KEY_VOTE: &str = "vote";
pub(crate) const KEY_COMMITTED: &str = "committed";
pub(crate) const KEY_LAST_PURGED: &str = "last_purged";
pub(crate) const KEY_LAST_APPLIED: &str = "last_applied";
pub(crate) const KEY_MEMBERSHIP: &str = "last_membership";
/// Where builds before the snapshot file kept the snapshot; moved out at open.
pub(crate) const LEGACY_SNAPSHOT_META: &str = "snapshot_meta";
/// See [`LEGACY_SNAPSHOT_META`].
pub(crate) const LEGACY_SNAPSHOT_DATA: &str = "snapshot_data";

/// redb's page cache. Bounded because redb's default grows RSS about 1 MiB per MiB of file;
/// reads hit the OS page cache past this, and 64 MiB holds the hot B-tree pages of a few
/// hundred thousand keys.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Opens (creating if needed) the database file and every table, so readers never miss one.
pub(crate) fn open_database(dir: &Path) -> Result<Arc<Database>, RaftError> {
    std::fs::create_dir_all(dir)?;
    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(dir.join("raft.redb"))?;
    let txn = db.begin_write()?;
    txn.open_table(LOGS)?;
    txn.open_table(LOG_META)?;
    txn.open_table(SM_DATA)?;
    txn.open_table(SM_META)?;
    txn.commit()?;
    Ok(Arc::new(db))
}

/// Reads one encoded record from a `&str`-keyed metadata table.
pub(crate) fn read_record<T: DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, RaftError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(table)?;
    let value = table.get(key)?;
    match value {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// Writes one encoded record into an open metadata table.
pub(crate) fn put_record<T: Serialize>(
    table: &mut redb::Table<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<(), RaftError> {
    table.insert(key, encode(value)?.as_slice())?;
    Ok(())
}

/// Runs blocking redb work off the async executor (commits may fsync for milliseconds).
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, RaftError>
where
    F: FnOnce() -> Result<T, RaftError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| RaftError::Task {
            what: "storage",
            source,
        })?
}
