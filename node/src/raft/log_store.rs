//! The Raft log, vote and commit index in redb (openraft's `RaftLogStorage`).

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, LogId, OptionalSend, RaftLogId, StorageError, StorageIOError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::db::{
    blocking, put_record, read_record, KEY_COMMITTED, KEY_LAST_PURGED, KEY_VOTE, LOGS, LOG_META,
};
use super::error::RaftError;
use super::types::{decode, encode, Entry, NodeId, TypeConfig};

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// Wraps a module error into the openraft storage error for the given subject.
fn io_err(kind: fn(AnyError) -> StorageIOError<NodeId>) -> impl Fn(RaftError) -> StorageError<NodeId> {
    move |e| kind(AnyError::error(e)).into()
}

/// Handle on the log tables; cheap to clone, one per running `Raft` plus its readers.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
    /// Last committed index + 1 (0 = none), mirrored for `RaftStore::status`.
    committed: Arc<AtomicU64>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>, committed: Arc<AtomicU64>) -> Self {
        Self { db, committed }
    }

    fn read_range<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<Entry>, RaftError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOGS)?;
        let mut out = Vec::new();
        for row in table.range(range)? {
            let (_, value) = row?;
            out.push(decode(value.value())?);
        }
        Ok(out)
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, RaftError> {
        let last_purged: Option<LogId<NodeId>> = read_record(&self.db, LOG_META, KEY_LAST_PURGED)?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOGS)?;
        let last = match table.last()? {
            Some((_, value)) => Some(*decode::<Entry>(value.value())?.get_log_id()),
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }
}

/// Reads the committed log id saved by the log store, for recovery at open.
pub(crate) fn stored_committed(db: &Database) -> Result<Option<LogId<NodeId>>, RaftError> {
    read_record(db, LOG_META, KEY_COMMITTED)
}

/// Reads the saved vote, for status while consensus is stopped.
pub(crate) fn stored_vote(db: &Database) -> Result<Option<Vote<NodeId>>, RaftError> {
    read_record(db, LOG_META, KEY_VOTE)
}

/// Reads entries in `range` straight from the table, for recovery at open.
pub(crate) fn stored_entries<RB: RangeBounds<u64>>(
    db: &Arc<Database>,
    range: RB,
) -> Result<Vec<Entry>, RaftError> {
    LogStore::new(db.clone(), Arc::new(AtomicU64::new(0))).read_range(range)
}

/// Whether the log holds (or ever held) any entry.
pub(crate) fn has_log(db: &Database) -> Result<bool, RaftError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LOGS)?;
    if !table.is_empty()? {
        return Ok(true);
    }
    let meta = txn.open_table(LOG_META)?;
    Ok(meta.get(KEY_LAST_PURGED)?.is_some())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry>> {
        self.read_range(range).map_err(io_err(StorageIOError::read_logs))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        self.log_state().map_err(io_err(StorageIOError::read_logs))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        let db = self.db.clone();
        let vote = *vote;
        blocking(move || {
            let txn = db.begin_write()?;
            put_record(&mut txn.open_table(LOG_META)?, KEY_VOTE, &vote)?;
            txn.commit()?;
            Ok(())
        })
        .await
        .map_err(io_err(StorageIOError::write_vote))
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        stored_vote(&self.db).map_err(io_err(StorageIOError::read_vote))
    }

    /// Saved without fsync: losing it only means re-applying from the durable log later.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        self.committed
            .store(committed.map_or(0, |c| c.index + 1), Ordering::Relaxed);
        let db = self.db.clone();
        blocking(move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::None)?;
            let mut table = txn.open_table(LOG_META)?;
            match committed {
                Some(log_id) => put_record(&mut table, KEY_COMMITTED, &log_id)?,
                None => {
                    table.remove(KEY_COMMITTED)?;
                }
            }
            drop(table);
            txn.commit()?;
            Ok(())
        })
        .await
        .map_err(io_err(StorageIOError::write))
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        stored_committed(&self.db).map_err(io_err(StorageIOError::read))
    }

    /// Durable (fsync) before the callback fires: acknowledged writes survive `kill -9`.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows = entries
            .into_iter()
            .map(|e| Ok((e.get_log_id().index, encode(&e)?)))
            .collect::<Result<Vec<_>, RaftError>>()
            .map_err(io_err(StorageIOError::write_logs))?;
        let db = self.db.clone();
        blocking(move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            {
                let mut table = txn.open_table(LOGS)?;
                for (index, bytes) in &rows {
                    table.insert(*index, bytes.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
        .map_err(io_err(StorageIOError::write_logs))?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let db = self.db.clone();
        blocking(move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            txn.open_table(LOGS)?.retain_in(log_id.index.., |_, _| false)?;
            txn.commit()?;
            Ok(())
        })
        .await
        .map_err(io_err(StorageIOError::write_logs))
    }

    /// Not fsynced: a lost purge only leaves extra entries, and any later durable commit
    /// persists it together with the snapshot that made it possible.
    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let db = self.db.clone();
        blocking(move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::None)?;
            txn.open_table(LOGS)?.retain_in(..=log_id.index, |_, _| false)?;
            put_record(&mut txn.open_table(LOG_META)?, KEY_LAST_PURGED, &log_id)?;
            txn.commit()?;
            Ok(())
        })
        .await
        .map_err(io_err(StorageIOError::write_logs))
    }
}
