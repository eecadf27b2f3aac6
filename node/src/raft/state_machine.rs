//! The replicated key/value state machine and its snapshots (openraft's `RaftStateMachine`).

use std::io::Cursor;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, EntryPayload, LogId, OptionalSend, RaftLogId, RaftSnapshotBuilder, StorageError,
    StorageIOError, StoredMembership,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table};

use super::db::{
    blocking, put_record, KEY_LAST_APPLIED, KEY_MEMBERSHIP, KEY_SNAPSHOT_DATA, KEY_SNAPSHOT_META, SM_DATA,
    SM_META,
};
use super::error::RaftError;
use super::types::{decode, encode, Entry, NodeId, NodeInfo, Response, TypeConfig};
use crate::storage::{immediate_children, WriteOp};

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// Membership as recorded by the state machine.
pub(crate) type Membership = StoredMembership<NodeId, NodeInfo>;

/// The serialized form of a snapshot: every key/value pair in key order.
type SnapshotBody = Vec<(String, Vec<u8>)>;

/// Handle on the state machine tables; one per running `Raft`.
#[derive(Clone)]
pub(crate) struct StateMachine {
    db: Arc<Database>,
}

impl StateMachine {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        Self { db }
    }
}

/// Reads one key of the replicated data.
pub(crate) fn get(db: &Database, key: &str) -> Result<Option<Vec<u8>>, RaftError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SM_DATA)?;
    let value = table.get(key)?;
    Ok(value.map(|v| v.value().to_vec()))
}

/// Lists the immediate children of `prefix` in the replicated data.
pub(crate) fn list(db: &Database, prefix: &str) -> Result<Vec<String>, RaftError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SM_DATA)?;
    let mut keys = Vec::new();
    for row in table.range(prefix..)? {
        let (key, _) = row?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        keys.push(key.to_string());
    }
    Ok(immediate_children(prefix, keys.iter().map(String::as_str)))
}

/// Every key/value pair and the index they reflect, read in one transaction.
pub(crate) fn export(db: &Database) -> Result<(SnapshotBody, u64), RaftError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SM_DATA)?;
    let mut pairs = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        pairs.push((key.value().to_string(), value.value().to_vec()));
    }
    let meta = txn.open_table(SM_META)?;
    let applied: Option<LogId<NodeId>> = match meta.get(KEY_LAST_APPLIED)? {
        Some(v) => decode(v.value())?,
        None => None,
    };
    Ok((pairs, applied.map_or(0, |l| l.index)))
}

/// The last applied log id and membership, as one consistent read.
pub(crate) fn applied_state(db: &Database) -> Result<(Option<LogId<NodeId>>, Membership), RaftError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SM_META)?;
    let applied = match table.get(KEY_LAST_APPLIED)? {
        Some(v) => decode(v.value())?,
        None => None,
    };
    let membership = match table.get(KEY_MEMBERSHIP)? {
        Some(v) => decode(v.value())?,
        None => Membership::default(),
    };
    Ok((applied, membership))
}

fn apply_ops(table: &mut Table<&str, &[u8]>, ops: &[WriteOp]) -> Result<(), RaftError> {
    for op in ops {
        match op {
            WriteOp::Put { key, value } => {
                table.insert(key.as_str(), value.as_slice())?;
            }
            WriteOp::Delete { key } => {
                table.remove(key.as_str())?;
            }
            WriteOp::DeletePrefix { prefix } => {
                let mut doomed = Vec::new();
                for row in table.range(prefix.as_str()..)? {
                    let (key, _) = row?;
                    if !key.value().starts_with(prefix.as_str()) {
                        break;
                    }
                    doomed.push(key.value().to_string());
                }
                for key in doomed {
                    table.remove(key.as_str())?;
                }
            }
        }
    }
    Ok(())
}

/// Applies committed entries in ONE transaction that also records `last_applied`.
///
/// Committed without fsync: after a crash the data and `last_applied` roll back together and
/// openraft (or [`replay_committed`]) re-applies the tail from the durable log.
pub(crate) fn apply_entries(db: &Database, entries: &[Entry]) -> Result<(), RaftError> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    {
        let mut data = txn.open_table(SM_DATA)?;
        let mut meta = txn.open_table(SM_META)?;
        for entry in entries {
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(request) => {
                    for batch in &request.batches {
                        apply_ops(&mut data, batch)?;
                    }
                }
                EntryPayload::Membership(m) => {
                    let stored = Membership::new(Some(*entry.get_log_id()), m.clone());
                    put_record(&mut meta, KEY_MEMBERSHIP, &stored)?;
                }
            }
        }
        put_record(&mut meta, KEY_LAST_APPLIED, &Some(*last.get_log_id()))?;
    }
    txn.commit()?;
    Ok(())
}

/// Brings the local state machine up to the stored commit index without starting consensus,
/// so reads while sealed see every write that was acknowledged before a crash.
pub(crate) fn replay_committed(db: &Arc<Database>) -> Result<(), RaftError> {
    let Some(committed) = super::log_store::stored_committed(db)? else {
        return Ok(());
    };
    let (applied, _) = applied_state(db)?;
    let start = applied.map_or(0, |a| a.index + 1);
    if start > committed.index {
        return Ok(());
    }
    let entries = super::log_store::stored_entries(db, start..=committed.index)?;
    apply_entries(db, &entries)
}

fn current_snapshot(db: &Database) -> Result<Option<Snapshot<TypeConfig>>, RaftError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SM_META)?;
    let (Some(meta), Some(data)) = (table.get(KEY_SNAPSHOT_META)?, table.get(KEY_SNAPSHOT_DATA)?) else {
        return Ok(None);
    };
    Ok(Some(Snapshot {
        meta: decode(meta.value())?,
        snapshot: Box::new(Cursor::new(data.value().to_vec())),
    }))
}

/// Serializes the data table as of one read transaction and records it as the current snapshot.
fn build_snapshot(db: &Database) -> Result<Snapshot<TypeConfig>, RaftError> {
    let txn = db.begin_read()?;
    let meta_table = txn.open_table(SM_META)?;
    let last_log_id: Option<LogId<NodeId>> = match meta_table.get(KEY_LAST_APPLIED)? {
        Some(v) => decode(v.value())?,
        None => None,
    };
    let last_membership: Membership = match meta_table.get(KEY_MEMBERSHIP)? {
        Some(v) => decode(v.value())?,
        None => Membership::default(),
    };
    let data_table = txn.open_table(SM_DATA)?;
    let mut body: SnapshotBody = Vec::new();
    for row in data_table.iter()? {
        let (key, value) = row?;
        body.push((key.value().to_string(), value.value().to_vec()));
    }
    drop(txn);
    let bytes = encode(&body)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let snapshot_id = match last_log_id {
        Some(id) => format!("{}-{}-{nanos}", id.leader_id, id.index),
        None => format!("none-{nanos}"),
    };
    let meta = SnapshotMeta {
        last_log_id,
        last_membership,
        snapshot_id,
    };
    let mut wtxn = db.begin_write()?;
    wtxn.set_durability(Durability::None)?;
    {
        let mut table = wtxn.open_table(SM_META)?;
        put_record(&mut table, KEY_SNAPSHOT_META, &meta)?;
        table.insert(KEY_SNAPSHOT_DATA, bytes.as_slice())?;
    }
    wtxn.commit()?;
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(bytes)),
    })
}

/// Replaces the whole state machine with a received snapshot in one durable transaction.
fn install_snapshot(
    db: &Database,
    meta: &SnapshotMeta<NodeId, NodeInfo>,
    bytes: Vec<u8>,
) -> Result<(), RaftError> {
    let body: SnapshotBody = decode(&bytes)?;
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut data = txn.open_table(SM_DATA)?;
        data.retain(|_, _| false)?;
        for (key, value) in &body {
            data.insert(key.as_str(), value.as_slice())?;
        }
        let mut table = txn.open_table(SM_META)?;
        put_record(&mut table, KEY_LAST_APPLIED, &meta.last_log_id)?;
        put_record(&mut table, KEY_MEMBERSHIP, &meta.last_membership)?;
        put_record(&mut table, KEY_SNAPSHOT_META, meta)?;
        table.insert(KEY_SNAPSHOT_DATA, bytes.as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// Builds snapshots from a consistent read of the state machine.
pub(crate) struct SnapshotBuilder {
    db: Arc<Database>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let db = self.db.clone();
        blocking(move || build_snapshot(&db))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::error(e)).into())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StoreResult<(Option<LogId<NodeId>>, Membership)> {
        applied_state(&self.db).map_err(|e| StorageIOError::read_state_machine(AnyError::error(e)).into())
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let count = entries.len();
        let db = self.db.clone();
        blocking(move || apply_entries(&db, &entries))
            .await
            .map_err(|e| StorageIOError::write_state_machine(AnyError::error(e)))?;
        Ok(vec![Response; count])
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { db: self.db.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let db = self.db.clone();
        let meta_owned = meta.clone();
        blocking(move || install_snapshot(&db, &meta_owned, snapshot.into_inner()))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error(e)).into())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        current_snapshot(&self.db).map_err(|e| StorageIOError::read_snapshot(None, AnyError::error(e)).into())
    }
}
