//! The replicated key/value state machine and its snapshots (openraft's `RaftStateMachine`).

use std::io::{Cursor, Write};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, EntryPayload, LogId, OptionalSend, RaftLogId, RaftSnapshotBuilder, StorageError,
    StorageIOError, StoredMembership,
};
use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
};

use super::db::{
    blocking, put_record, KEY_LAST_APPLIED, KEY_MEMBERSHIP, LEGACY_SNAPSHOT_DATA, LEGACY_SNAPSHOT_META,
    SM_DATA, SM_META,
};
use super::error::RaftError;
use super::snapshot_file::{Meta, SnapshotFile};
use super::types::{decode, Entry, NodeId, NodeInfo, Response, TypeConfig};
use crate::storage::{immediate_children, WriteOp};

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// Membership as recorded by the state machine.
pub(crate) type Membership = StoredMembership<NodeId, NodeInfo>;

/// The serialized form of a snapshot: every key/value pair in key order.
type SnapshotBody = Vec<(String, Vec<u8>)>;

/// Handle on the state machine tables and the snapshot file; one per running `Raft`.
#[derive(Clone)]
pub(crate) struct StateMachine {
    db: Arc<Database>,
    snapshots: Arc<SnapshotFile>,
}

impl StateMachine {
    pub(crate) fn new(db: Arc<Database>, snapshots: Arc<SnapshotFile>) -> Self {
        Self { db, snapshots }
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

/// On a cluster whose only voter is this node, every entry in the durable log is
/// committed (its own fsync is the quorum), even when the saved commit index lags after
/// a crash: apply them too, so a sealed node reads its latest data (seal configuration,
/// root key) before consensus restarts. Stops at a membership change, after which the
/// node may no longer be the sole voter.
pub(crate) fn replay_sole_voter(db: &Arc<Database>, me: NodeId) -> Result<(), RaftError> {
    let (applied, membership) = applied_state(db)?;
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    if voters != [me] {
        return Ok(());
    }
    let start = applied.map_or(0, |a| a.index + 1);
    let entries = super::log_store::stored_entries(db, start..)?;
    let normal: Vec<Entry> = entries
        .into_iter()
        .take_while(|e| !matches!(e.payload, EntryPayload::Membership(_)))
        .collect();
    if normal.is_empty() {
        return Ok(());
    }
    apply_entries(db, &normal)
}

/// Streams the postcard encoding of a [`SnapshotBody`] from `table` without collecting it:
/// the pair count, then each pair (byte-identical to `encode(&body)`).
fn write_body(table: &ReadOnlyTable<&str, &[u8]>, out: &mut dyn Write) -> Result<(), RaftError> {
    let count = usize::try_from(table.len()?).map_err(|e| RaftError::Database(Box::new(e)))?;
    postcard::to_io(&count, &mut *out)?;
    for row in table.iter()? {
        let (key, value) = row?;
        postcard::to_io(&(key.value(), value.value()), &mut *out)?;
    }
    Ok(())
}

/// Decodes an encoded [`SnapshotBody`] pair by pair, borrowing from `bytes`.
fn for_each_pair(
    bytes: &[u8],
    mut f: impl FnMut(&str, &[u8]) -> Result<(), RaftError>,
) -> Result<(), RaftError> {
    let (count, mut rest) = postcard::take_from_bytes::<usize>(bytes)?;
    for _ in 0..count {
        let ((key, value), tail) = postcard::take_from_bytes::<(&str, &[u8])>(rest)?;
        f(key, value)?;
        rest = tail;
    }
    Ok(())
}

fn current_snapshot(file: &SnapshotFile) -> Result<Option<Snapshot<TypeConfig>>, RaftError> {
    Ok(file.read()?.map(|(meta, body)| Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(body)),
    }))
}

/// Streams the data table, as of one read transaction, into the snapshot file.
///
/// The returned snapshot carries only the meta: openraft 0.9 keeps nothing but `meta` of a
/// built snapshot (`sm::worker`, `StorageHelper::get_initial_state`) and fetches the data with
/// `get_current_snapshot` when it sends one, so the body is never held in memory here.
fn build_snapshot(db: &Database, file: &SnapshotFile) -> Result<Snapshot<TypeConfig>, RaftError> {
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
    let data = txn.open_table(SM_DATA)?;
    file.write(&meta, |out| write_body(&data, out))?;
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(Vec::new())),
    })
}

/// Replaces the state machine with a snapshot body in one durable transaction.
fn load_body(db: &Database, meta: &SnapshotMeta<NodeId, NodeInfo>, bytes: &[u8]) -> Result<(), RaftError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut data = txn.open_table(SM_DATA)?;
        data.retain(|_, _| false)?;
        for_each_pair(bytes, |key, value| {
            data.insert(key, value)?;
            Ok(())
        })?;
        let mut table = txn.open_table(SM_META)?;
        put_record(&mut table, KEY_LAST_APPLIED, &meta.last_log_id)?;
        put_record(&mut table, KEY_MEMBERSHIP, &meta.last_membership)?;
    }
    txn.commit()?;
    Ok(())
}

/// Installs a received snapshot: the file first, then the state machine.
///
/// A crash between the two leaves the file ahead of the state machine, which [`recover`]
/// finishes at the next open, so the pair acts as one atomic step.
fn install_snapshot(
    db: &Database,
    file: &SnapshotFile,
    meta: &SnapshotMeta<NodeId, NodeInfo>,
    bytes: &[u8],
) -> Result<(), RaftError> {
    for_each_pair(bytes, |_, _| Ok(()))?;
    file.write(meta, |out| Ok(out.write_all(bytes)?))?;
    load_body(db, meta, bytes)
}

/// Brings storage left by an earlier run into shape before anything reads it: moves a
/// snapshot stored inside redb by older builds out to the file, and finishes an install (or
/// a build whose state machine commit was lost in a crash) when the snapshot file is ahead
/// of the state machine.
pub(crate) fn recover(db: &Database, file: &SnapshotFile) -> Result<(), RaftError> {
    let legacy = {
        let txn = db.begin_read()?;
        let table = txn.open_table(SM_META)?;
        match (table.get(LEGACY_SNAPSHOT_META)?, table.get(LEGACY_SNAPSHOT_DATA)?) {
            (Some(meta), Some(data)) => Some((decode::<Meta>(meta.value())?, data.value().to_vec())),
            (None, None) => None,
            _ => Some((Meta::default(), Vec::new())),
        }
    };
    if let Some((meta, bytes)) = legacy {
        if !bytes.is_empty() && file.read_meta()?.is_none() {
            file.write(&meta, |out| Ok(out.write_all(&bytes)?))?;
        }
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(SM_META)?;
            table.remove(LEGACY_SNAPSHOT_META)?;
            table.remove(LEGACY_SNAPSHOT_DATA)?;
        }
        txn.commit()?;
    }
    let Some(meta) = file.read_meta()? else {
        return Ok(());
    };
    let (applied, _) = applied_state(db)?;
    if meta.last_log_id <= applied {
        return Ok(());
    }
    match file.read()? {
        Some((meta, body)) => load_body(db, &meta, &body),
        None => Ok(()),
    }
}

/// Builds snapshots from a consistent read of the state machine.
pub(crate) struct SnapshotBuilder {
    db: Arc<Database>,
    file: Arc<SnapshotFile>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let db = self.db.clone();
        let file = self.file.clone();
        blocking(move || build_snapshot(&db, &file))
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
        SnapshotBuilder {
            db: self.db.clone(),
            file: self.snapshots.clone(),
        }
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
        let file = self.snapshots.clone();
        let meta_owned = meta.clone();
        blocking(move || install_snapshot(&db, &file, &meta_owned, snapshot.get_ref()))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error(e)).into())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let file = self.snapshots.clone();
        blocking(move || current_snapshot(&file))
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::error(e)).into())
    }
}
