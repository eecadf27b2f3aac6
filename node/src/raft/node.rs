//! The node handle: owns the database, starts and stops consensus, coalesces writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use openraft::error::{CheckIsLeaderError, ClientWriteError, Fatal, RaftError as OpenRaftError};
use openraft::{ChangeMembers, Config, SnapshotPolicy};
use redb::Database;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use super::error::RaftError;
use super::log_store::{self, LogStore};
use super::network::{self, NetworkFactory};
use super::read_lease::ReadLease;
use super::snapshot_file::SnapshotFile;
use super::state_machine::{self, Membership, StateMachine};
use super::types::{node_id_for, NodeId, NodeInfo, Raft, Request};
use super::{RaftMember, RaftOptions, RaftStatus};
use crate::storage::{Physical, StorageError, WriteOp};

/// Most write batches folded into one Raft entry.
const MAX_BATCHES_PER_ENTRY: usize = 512;
/// Queued `write` calls before callers wait for room.
const WRITE_QUEUE: usize = 4096;
/// How long a write waits for a quorum before giving up: a leader cut off from its
/// followers must answer with an error, never hang (the write may still commit later
/// if the partition heals, as with any timed-out request).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The minimum election timeout at multiplier 1 (the maximum is twice that).
const ELECTION_TIMEOUT_MIN_MS: u64 = 250;
/// Timing scale when the config leaves `performance_multiplier` at 0: 50 ms heartbeat,
/// 250-500 ms election timeout. Chosen for leader failover of about a tenth of OpenBao's:
/// on a loaded 2-core machine (load average ~10, 3 nodes + wrk) kill -9 of the leader to the
/// first successful write measured ~1.0 s with 1 against ~2.0 s with 2 (OpenBao ~11.4 s), and
/// 1 caused no extra elections (term unchanged) through 60 s of c=16/64 load
/// (`bench/cluster.sh`, docs/benchmarks.md). Raise it for slow disks or WAN links.
const DEFAULT_PERFORMANCE_MULTIPLIER: u64 = 1;
/// How long a leader waits for a quorum to confirm its leadership before a read fails.
const READ_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between leadership confirmations that no quorum answered in time.
const CONFIRM_RETRY: Duration = Duration::from_millis(20);
/// How long `bootstrap` waits for the new single-voter cluster to elect this node.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(10);

/// One caller's batch waiting to be folded into an entry.
struct PendingWrite {
    ops: Vec<WriteOp>,
    done: oneshot::Sender<Result<(), StorageError>>,
}

/// A started consensus instance and its write coalescer.
struct Running {
    raft: Raft,
    writes: mpsc::Sender<PendingWrite>,
    coalescer: JoinHandle<()>,
}

/// One applied Raft entry as the replication stream ships it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalEntry {
    pub index: u64,
    pub batches: Vec<Vec<WriteOp>>,
}

/// What [`RaftStore::wal_after`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalRead {
    Entries(Vec<WalEntry>),
    Compacted,
}

/// Every key/value pair of the replicated data, in key order.
pub type DataPairs = Vec<(String, Vec<u8>)>;

/// The file that marks a node removed from its cluster.
fn removed_marker(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("removed")
}

/// How far one follower has replicated, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerProgress {
    pub name: String,
    pub matched_index: u64,
    pub voter: bool,
}

/// The leader's view of replication, for autopilot and `autopilot state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationView {
    pub last_log_index: u64,
    pub followers: Vec<FollowerProgress>,
}

/// A Raft-replicated physical store backed by one redb file.
///
/// Opening only reads local state; consensus runs between `start` and `stop`, so a sealed
/// node can still serve local reads of the seal configuration.
pub struct RaftStore {
    opts: RaftOptions,
    id: NodeId,
    db: Arc<Database>,
    snapshots: Arc<SnapshotFile>,
    /// Last committed index + 1 (0 = none), maintained by the log store.
    committed: Arc<AtomicU64>,
    /// Serializes `start`, `stop` and `bootstrap`.
    lifecycle: Mutex<()>,
    running: RwLock<Option<Arc<Running>>>,
    /// Set once the cluster removed this node; it then never runs consensus again.
    removed: std::sync::atomic::AtomicBool,
    /// While valid, the leader's local reads are linearizable.
    read_lease: ReadLease,
}

/// Whether `id` leads, as far as clients are concerned: in the Leader state and acknowledged
/// by a quorum in this term. A restarted former leader restores its old vote and enters the
/// Leader state at once; until a quorum accepts it (or it hears the newer term and steps
/// down) it must not report itself active, or two nodes answer health as the leader.
fn leads(m: &openraft::RaftMetrics<NodeId, NodeInfo>, id: NodeId) -> bool {
    m.state == openraft::ServerState::Leader
        && m.current_leader == Some(id)
        && m.millis_since_quorum_ack.is_some()
}

impl RaftStore {
    /// Opens (creating if needed) the database under `opts.path` without starting consensus.
    ///
    /// Committed entries not yet in the state machine are applied, so local reads reflect
    /// every acknowledged write even before `start`.
    pub async fn open(opts: RaftOptions) -> Result<Arc<RaftStore>, RaftError> {
        if opts.node_id.is_empty() {
            return Err(RaftError::InvalidOptions("node_id must not be empty".into()));
        }
        let path = opts.path.clone();
        let me = node_id_for(&opts.node_id);
        let (db, snapshots, committed) = tokio::task::spawn_blocking(move || {
            let db = super::db::open_database(&path)?;
            let snapshots = SnapshotFile::open(&path)?;
            state_machine::recover(&db, &snapshots)?;
            state_machine::replay_committed(&db)?;
            state_machine::replay_sole_voter(&db, me)?;
            let committed = log_store::stored_committed(&db)?;
            Ok::<_, RaftError>((db, Arc::new(snapshots), committed))
        })
        .await
        .map_err(|source| RaftError::Task { what: "open", source })??;
        let path_for_marker = opts.path.clone();
        let read_lease = ReadLease::new(Duration::from_millis(
            ELECTION_TIMEOUT_MIN_MS * timing_multiplier(&opts) / 2,
        ));
        Ok(Arc::new(RaftStore {
            id: node_id_for(&opts.node_id),
            opts,
            db,
            snapshots,
            committed: Arc::new(AtomicU64::new(committed.map_or(0, |c| c.index + 1))),
            lifecycle: Mutex::new(()),
            running: RwLock::new(None),
            removed: std::sync::atomic::AtomicBool::new(removed_marker(&path_for_marker).exists()),
            read_lease,
        }))
    }

    /// This node's numeric openraft id.
    pub fn raft_id(&self) -> u64 {
        self.id
    }

    /// This node as peers see it.
    pub fn node_info(&self) -> NodeInfo {
        NodeInfo {
            name: self.opts.node_id.clone(),
            cluster_addr: self.opts.cluster_addr.clone(),
            api_addr: self.opts.api_addr.clone(),
        }
    }

    /// Whether the cluster removed this node (`remove-peer`); remembered across restarts.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Records that the cluster removed this node and leaves consensus for good, so a
    /// removed node never disrupts the cluster with elections.
    pub async fn mark_removed(&self) -> Result<(), RaftError> {
        std::fs::write(
            removed_marker(&self.opts.path),
            b"removed from the raft cluster\n",
        )?;
        self.removed.store(true, Ordering::Release);
        self.stop().await
    }

    /// Whether this node already has Raft state (a vote, a log or a membership), i.e. whether
    /// it must not be bootstrapped or joined again.
    pub fn is_bootstrapped(&self) -> Result<bool, RaftError> {
        if log_store::stored_vote(&self.db)?.is_some() || log_store::has_log(&self.db)? {
            return Ok(true);
        }
        let (applied, membership) = state_machine::applied_state(&self.db)?;
        Ok(applied.is_some() || membership.log_id().is_some())
    }

    /// Creates a new single-voter cluster made of this node, starting consensus if needed,
    /// and waits until this node leads it.
    pub async fn bootstrap(self: &Arc<Self>) -> Result<(), RaftError> {
        if self.is_bootstrapped()? {
            return Err(RaftError::AlreadyBootstrapped);
        }
        self.start().await?;
        let raft = self.raft().ok_or(RaftError::NotRunning)?;
        let members = BTreeMap::from([(self.id, self.node_info())]);
        raft.initialize(members).await.map_err(RaftError::consensus)?;
        raft.wait(Some(BOOTSTRAP_TIMEOUT))
            .current_leader(self.id, "bootstrap")
            .await
            .map_err(RaftError::consensus)?;
        Ok(())
    }

    fn raft_config(&self) -> Result<Config, RaftError> {
        let multiplier = timing_multiplier(&self.opts);
        let config = Config {
            cluster_name: "labnode".into(),
            heartbeat_interval: 50 * multiplier,
            election_timeout_min: ELECTION_TIMEOUT_MIN_MS * multiplier,
            election_timeout_max: 500 * multiplier,
            install_snapshot_timeout: 60_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.opts.snapshot_threshold.max(1)),
            max_in_snapshot_log_to_keep: self.opts.trailing_logs,
            purge_batch_size: 64,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| RaftError::InvalidOptions(e.to_string()))
    }

    /// Starts participating in consensus; a no-op when already running.
    pub async fn start(self: &Arc<Self>) -> Result<(), RaftError> {
        let _guard = self.lifecycle.lock().await;
        if self.running_handle().is_some() {
            return Ok(());
        }
        if self.is_removed() {
            return Err(RaftError::Removed);
        }
        let client = self
            .opts
            .transport
            .client()
            .ok_or_else(|| RaftError::NoClusterCredentials)?;
        let raft = Raft::new(
            self.id,
            Arc::new(self.raft_config()?),
            NetworkFactory::new(client, self.opts.transport.clone()),
            LogStore::new(self.db.clone(), self.committed.clone()),
            StateMachine::new(self.db.clone(), self.snapshots.clone()),
        )
        .await
        .map_err(RaftError::consensus)?;
        let (writes, rx) = mpsc::channel(WRITE_QUEUE);
        let coalescer = tokio::spawn(coalesce(raft.clone(), rx));
        *self.running.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Running {
            raft,
            writes,
            coalescer,
        }));
        Ok(())
    }

    /// Leaves consensus (e.g. on seal); a no-op when not running. Local reads keep working
    /// and `start` may be called again.
    pub async fn stop(&self) -> Result<(), RaftError> {
        let _guard = self.lifecycle.lock().await;
        let Some(running) = self.running.write().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(());
        };
        running.coalescer.abort();
        running
            .raft
            .shutdown()
            .await
            .map_err(|e| RaftError::Shutdown(Box::new(e)))
    }

    fn running_handle(&self) -> Option<Arc<Running>> {
        self.running.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The shared database, for tests that inspect the log directly.
    #[cfg(test)]
    pub(crate) fn db_handle(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// The snapshot file, for tests that inspect it directly.
    #[cfg(test)]
    pub(crate) fn snapshot_file(&self) -> Arc<SnapshotFile> {
        self.snapshots.clone()
    }

    /// The running openraft instance, if consensus is started.
    pub(crate) fn raft(&self) -> Option<Raft> {
        self.running_handle().map(|r| r.raft.clone())
    }

    /// The routes peers call on the cluster listener (`/raft/append`, `/vote`, `/snapshot`).
    pub fn cluster_router(self: &Arc<Self>) -> axum::Router {
        network::router(self.clone())
    }

    /// The current term while this node leads, `None` otherwise; a change of term tells the
    /// core that leadership changed hands and its caches may be stale.
    pub fn leader_term(&self) -> Option<u64> {
        let raft = self.raft()?;
        let metrics = raft.metrics();
        let m = metrics.borrow();
        leads(&m, self.id).then_some(m.current_term)
    }

    /// On the leader: its last log index and how far each other member has replicated.
    pub fn replication(&self) -> Option<ReplicationView> {
        let raft = self.raft()?;
        let m = raft.metrics().borrow().clone();
        let replication = m.replication.as_ref()?;
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let followers = replication
            .iter()
            .filter(|(id, _)| **id != self.id)
            .filter_map(|(id, matched)| {
                membership.get_node(id).map(|node| FollowerProgress {
                    name: node.name.clone(),
                    matched_index: matched.map_or(0, |l| l.index),
                    voter: voters.contains(id),
                })
            })
            .collect();
        Some(ReplicationView {
            last_log_index: m.last_log_index.unwrap_or(0),
            followers,
        })
    }

    /// Whether consensus runs here and this node leads; cheap enough for every request.
    pub fn is_leader(&self) -> bool {
        self.raft()
            .is_some_and(|raft| leads(&raft.metrics().borrow(), self.id))
    }

    /// A point-in-time view for `operator raft list-peers` and health endpoints.
    pub fn status(&self) -> Result<RaftStatus, RaftError> {
        let committed = self.committed.load(Ordering::Relaxed);
        let committed_index = committed.saturating_sub(1);
        if let Some(raft) = self.raft() {
            let m = raft.metrics().borrow().clone();
            let stale_self = m.current_leader == Some(self.id) && !leads(&m, self.id);
            return Ok(build_status(
                self,
                true,
                if stale_self { None } else { m.current_leader },
                m.current_term,
                committed_index,
                m.last_applied.map_or(0, |l| l.index),
                &m.membership_config,
            ));
        }
        let (applied, membership) = state_machine::applied_state(&self.db)?;
        let term = log_store::stored_vote(&self.db)?.map_or(0, |v| v.leader_id.term);
        Ok(build_status(
            self,
            false,
            None,
            term,
            committed_index,
            applied.map_or(0, |l| l.index),
            &membership,
        ))
    }

    fn leader_raft(&self) -> Result<Raft, RaftError> {
        let raft = self.raft().ok_or(RaftError::NotRunning)?;
        let not_leader = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            (m.current_leader != Some(self.id)).then(|| {
                m.current_leader.and_then(|id| {
                    m.membership_config
                        .membership()
                        .get_node(&id)
                        .map(|n| n.name.clone())
                })
            })
        };
        match not_leader {
            Some(name) => Err(RaftError::NotLeader(name)),
            None => Ok(raft),
        }
    }

    /// Adds a non-voting member that receives the log (the first step of joining).
    pub async fn add_learner(&self, name: &str, cluster_addr: &str, api_addr: &str) -> Result<(), RaftError> {
        let raft = self.leader_raft()?;
        let node = NodeInfo {
            name: name.to_string(),
            cluster_addr: cluster_addr.to_string(),
            api_addr: api_addr.to_string(),
        };
        raft.add_learner(node_id_for(name), node, false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    fn known_peer(&self, raft: &Raft, name: &str) -> Result<NodeId, RaftError> {
        let id = node_id_for(name);
        let metrics = raft.metrics().borrow().clone();
        if metrics.membership_config.membership().get_node(&id).is_none() {
            return Err(RaftError::UnknownPeer(name.to_string()));
        }
        Ok(id)
    }

    /// Makes a caught-up learner a voter.
    pub async fn promote_voter(&self, name: &str) -> Result<(), RaftError> {
        let raft = self.leader_raft()?;
        let id = self.known_peer(&raft, name)?;
        raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// Turns a voter back into a learner (it keeps replicating but no longer votes).
    pub async fn demote(&self, name: &str) -> Result<(), RaftError> {
        let raft = self.leader_raft()?;
        let id = self.known_peer(&raft, name)?;
        raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// Removes a peer from the cluster entirely (`operator raft remove-peer`).
    pub async fn remove(&self, name: &str) -> Result<(), RaftError> {
        let raft = self.leader_raft()?;
        let id = self.known_peer(&raft, name)?;
        let is_voter = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id);
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        raft.change_membership(change, false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// A consistent copy of the replicated data and the log index it reflects
    /// (for `sys/storage/raft/snapshot`).
    pub fn export_data(&self) -> Result<(DataPairs, u64), RaftError> {
        state_machine::export(&self.db)
    }

    /// The replication stream's source: applied entries after `after` (at most `max`), or
    /// `Compacted` when the log no longer reaches back that far and a full copy is needed.
    pub fn wal_after(&self, after: u64, max: usize) -> Result<WalRead, RaftError> {
        let (applied, _) = state_machine::applied_state(&self.db)?;
        let applied = applied.map_or(0, |l| l.index);
        if after >= applied {
            return Ok(WalRead::Entries(Vec::new()));
        }
        let end = applied.min(after + max as u64);
        let entries = log_store::stored_entries(&self.db, after + 1..=end)?;
        if entries.first().map(|e| e.log_id.index) != Some(after + 1) {
            return Ok(WalRead::Compacted);
        }
        Ok(WalRead::Entries(
            entries
                .into_iter()
                .map(|e| WalEntry {
                    index: e.log_id.index,
                    batches: match e.payload {
                        openraft::EntryPayload::Normal(req) => req.batches,
                        _ => Vec::new(),
                    },
                })
                .collect(),
        ))
    }

    /// Builds a snapshot now (and lets openraft compact the log behind it).
    pub async fn trigger_snapshot(&self) -> Result<(), RaftError> {
        let raft = self.raft().ok_or(RaftError::NotRunning)?;
        raft.trigger().snapshot().await.map_err(RaftError::consensus)
    }
}

fn build_status(
    store: &RaftStore,
    running: bool,
    leader: Option<NodeId>,
    term: u64,
    committed_index: u64,
    applied_index: u64,
    membership: &Membership,
) -> RaftStatus {
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, node)| RaftMember {
            name: node.name.clone(),
            cluster_addr: node.cluster_addr.clone(),
            api_addr: node.api_addr.clone(),
            voter: voters.contains(id),
        })
        .collect();
    RaftStatus {
        node_id: store.opts.node_id.clone(),
        running,
        leader: leader.and_then(|id| membership.membership().get_node(&id).cloned()),
        is_leader: running && leader == Some(store.id),
        term,
        committed_index,
        applied_index,
        members,
    }
}

fn membership_error(e: OpenRaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> RaftError {
    match e {
        OpenRaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            RaftError::NotLeader(f.leader_node.map(|n| n.name))
        }
        OpenRaftError::APIError(ClientWriteError::ChangeMembershipError(
            openraft::error::ChangeMembershipError::InProgress(busy),
        )) => RaftError::MembershipBusy(busy.to_string()),
        other => RaftError::consensus(other),
    }
}

fn write_error(e: &OpenRaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> StorageError {
    match e {
        OpenRaftError::APIError(ClientWriteError::ForwardToLeader(f)) => StorageError::NotWritable(
            RaftError::NotLeader(f.leader_node.as_ref().map(|n| n.name.clone())).to_string(),
        ),
        OpenRaftError::Fatal(Fatal::Stopped) => StorageError::NotWritable(RaftError::NotRunning.to_string()),
        other => StorageError::Backend(other.to_string()),
    }
}

/// Folds queued `write` calls into Raft entries: while one entry is being made durable and
/// applied, the next one collects every batch that arrives, so one log fsync serves many
/// callers. One entry in flight at a time measured fastest: openraft 0.9 fsyncs each entry
/// separately, so more in flight only means smaller entries.
async fn coalesce(raft: Raft, mut rx: mpsc::Receiver<PendingWrite>) {
    while let Some(first) = rx.recv().await {
        let mut pending = vec![first];
        while pending.len() < MAX_BATCHES_PER_ENTRY {
            match rx.try_recv() {
                Ok(p) => pending.push(p),
                Err(_) => break,
            }
        }
        let (batches, waiters): (Vec<_>, Vec<_>) = pending.into_iter().map(|p| (p.ops, p.done)).unzip();
        let result = raft.client_write(Request { batches }).await;
        for waiter in waiters {
            let reply = match &result {
                Ok(_) => Ok(()),
                Err(e) => Err(write_error(e)),
            };
            // A caller that gave up waiting is not an error.
            let _ = waiter.send(reply);
        }
    }
}

/// The configured timing scale, 0 meaning the default.
fn timing_multiplier(opts: &RaftOptions) -> u64 {
    match opts.performance_multiplier {
        0 => DEFAULT_PERFORMANCE_MULTIPLIER,
        m => m,
    }
}

impl RaftStore {
    /// Makes a read on the active node linearizable: it proceeds inside a read lease, or once
    /// a quorum confirmed this node still leads (see `read_lease`). Other nodes read their
    /// local state as before: the HTTP layer forwards their client requests to the active
    /// node, and what they read themselves (seal configuration and keys while unsealing) is
    /// node-local. That includes a restarted former leader, which is in the Leader state
    /// before any quorum acknowledged it (`leads` is false) and must still unseal.
    async fn linearizable_read(&self) -> Result<(), RaftError> {
        let Some(raft) = self.raft() else {
            return Ok(());
        };
        let term = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            if !leads(&m, self.id) {
                return Ok(());
            }
            m.current_term
        };
        self.read_lease.ensure(term, || confirm_leadership(&raft)).await
    }
}

/// Asks a quorum to confirm this node leads, retrying while heartbeats merely went
/// unanswered (openraft gives each confirmation one heartbeat interval, which a loaded
/// machine can miss) and failing at once when a newer leader is known.
async fn confirm_leadership(raft: &Raft) -> Result<(), RaftError> {
    let deadline = tokio::time::Instant::now() + READ_CONFIRM_TIMEOUT;
    loop {
        let error = match tokio::time::timeout_at(deadline, raft.ensure_linearizable()).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(OpenRaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => e.to_string(),
            Ok(Err(e)) => return Err(RaftError::LeadershipUnconfirmed(e.to_string())),
            Err(_) => "no answer".to_owned(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(RaftError::LeadershipUnconfirmed(format!(
                "no quorum within {}s: {error}",
                READ_CONFIRM_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(CONFIRM_RETRY).await;
    }
}

#[async_trait]
impl Physical for RaftStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.linearizable_read().await?;
        Ok(state_machine::get(&self.db, key)?)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.linearizable_read().await?;
        Ok(state_machine::list(&self.db, prefix)?)
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        let running = self.running_handle().ok_or(RaftError::NotRunning)?;
        self.leader_raft()?;
        let (done, wait) = oneshot::channel();
        running
            .writes
            .send(PendingWrite { ops, done })
            .await
            .map_err(|_| RaftError::NotRunning)?;
        match tokio::time::timeout(COMMIT_TIMEOUT, wait).await {
            Ok(reply) => reply.map_err(|_| RaftError::NotRunning)?,
            Err(_) => Err(StorageError::NotWritable(format!(
                "the write was not committed within {}s: this node has likely lost its quorum",
                COMMIT_TIMEOUT.as_secs()
            ))),
        }
    }
}
