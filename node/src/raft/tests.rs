//! Storage conformance, durability, compaction, cluster failover and lifecycle tests.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError as OpenRaftStorageError;
use tempfile::TempDir;
use tokio::net::TcpListener;

use crate::cluster::{serve, AcceptorSource, ClusterTls, ClusterTransport};
use tokio::task::JoinHandle;

use super::log_store::{self, LogStore};
use super::state_machine::StateMachine;
use super::types::{NodeId, TypeConfig};
use super::*;
use crate::storage::{Physical, StorageError, WriteOp};

/// One set of cluster credentials shared by every node a test starts.
fn transport() -> Arc<ClusterTransport> {
    static TLS: std::sync::OnceLock<ClusterTls> = std::sync::OnceLock::new();
    let tls = TLS.get_or_init(|| ClusterTls::generate("raft-tests").unwrap());
    let transport = ClusterTransport::new();
    transport.install(tls, None).unwrap();
    transport
}

fn options(dir: &TempDir, name: &str, cluster_addr: &str) -> RaftOptions {
    RaftOptions {
        transport: transport(),
        node_id: name.to_string(),
        path: dir.path().join(name),
        cluster_addr: cluster_addr.to_string(),
        api_addr: format!("http://{name}.api"),
        snapshot_threshold: 100_000,
        trailing_logs: 10_000,
        performance_multiplier: 1,
    }
}

/// Opens the store again after `stop`: tasks of the stopped instance may hold the database
/// for a moment longer, and redb refuses a second open until they let go.
async fn reopen(opts: RaftOptions) -> Arc<RaftStore> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match RaftStore::open(opts.clone()).await {
            Ok(store) => return store,
            Err(e) if e.to_string().contains("already open") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopening {}: {e}", opts.path.display()),
        }
    }
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn put(key: &str, value: &str) -> Vec<WriteOp> {
    vec![WriteOp::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
    }]
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), OpenRaftStorageError<NodeId>> {
        let dir = TempDir::new().expect("tempdir");
        let db = super::db::open_database(dir.path()).expect("open database");
        let log = LogStore::new(db.clone(), Arc::new(std::sync::atomic::AtomicU64::new(0)));
        let snapshots =
            Arc::new(super::snapshot_file::SnapshotFile::open(dir.path()).expect("snapshot file"));
        Ok((dir, log, StateMachine::new(db, snapshots)))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("storage suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_survive_reopen() {
    let dir = TempDir::new().unwrap();
    let opts = options(&dir, "solo", "127.0.0.1:1");
    let store = RaftStore::open(opts.clone()).await.unwrap();
    assert!(!store.is_bootstrapped().unwrap());
    store.bootstrap().await.unwrap();
    assert!(matches!(
        store.bootstrap().await,
        Err(RaftError::AlreadyBootstrapped)
    ));

    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (t..1000).step_by(16) {
                    store
                        .write(put(&format!("k/{}/{i:04}", i % 10), &format!("v{i}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "1000 writes from 16 tasks in {elapsed:?} ({:.0} writes/s)",
        1000.0 / elapsed.as_secs_f64()
    );
    eprintln!("entries used: {}", store.status().unwrap().applied_index);

    let check = |store: Arc<RaftStore>| async move {
        let dirs = store.list("k/").await.unwrap();
        assert_eq!(dirs, (0..10).map(|d| format!("{d}/")).collect::<Vec<_>>());
        let mut total = 0;
        for d in 0..10 {
            total += store.list(&format!("k/{d}/")).await.unwrap().len();
        }
        assert_eq!(total, 1000);
        for i in 0..1000 {
            let got = store.get(&format!("k/{}/{i:04}", i % 10)).await.unwrap();
            assert_eq!(got, Some(format!("v{i}").into_bytes()));
        }
    };
    check(store.clone()).await;
    let status = store.status().unwrap();
    assert!(status.is_leader && status.running);
    assert_eq!(status.leader.as_ref().map(|l| l.name.as_str()), Some("solo"));
    assert_eq!(status.members.len(), 1);
    assert!(status.applied_index > 0 && status.applied_index <= status.committed_index);

    store.stop().await.unwrap();
    drop(store);
    let store = reopen(opts).await;
    assert!(store.is_bootstrapped().unwrap());
    check(store.clone()).await;
    store.start().await.unwrap();
    eventually("leadership after restart", Duration::from_secs(5), || {
        let store = store.clone();
        async move { store.status().unwrap().is_leader }
    })
    .await;
    check(store.clone()).await;
    store.write(put("after", "restart")).await.unwrap();
    store.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_compacts_log_and_restores_after_restart() {
    let dir = TempDir::new().unwrap();
    let mut opts = options(&dir, "snap", "127.0.0.1:1");
    opts.snapshot_threshold = 50;
    opts.trailing_logs = 5;
    let store = RaftStore::open(opts.clone()).await.unwrap();
    store.bootstrap().await.unwrap();
    for i in 0..200 {
        store.write(put(&format!("s/{i:03}"), "x")).await.unwrap();
    }
    store
        .write(vec![WriteOp::DeletePrefix { prefix: "s/1".into() }])
        .await
        .unwrap();
    let raft = store.raft().unwrap();
    eventually("a snapshot and purge", Duration::from_secs(10), || {
        let m = raft.metrics().borrow().clone();
        async move { m.snapshot.is_some_and(|s| s.index >= 150) && m.purged.is_some_and(|p| p.index >= 100) }
    })
    .await;
    assert!(log_store::stored_entries(&store.db_handle(), 0..=10)
        .unwrap()
        .is_empty());
    store.stop().await.unwrap();
    drop(store);
    drop(raft);

    let store = reopen(opts).await;
    store.start().await.unwrap();
    eventually("leadership after restart", Duration::from_secs(5), || {
        let store = store.clone();
        async move { store.status().unwrap().is_leader }
    })
    .await;
    let keys = store.list("s/").await.unwrap();
    assert_eq!(keys.len(), 100);
    assert_eq!(keys.first().map(String::as_str), Some("000"));
    assert_eq!(keys.last().map(String::as_str), Some("099"));
    assert_eq!(store.get("s/150").await.unwrap(), None);
    store.stop().await.unwrap();
}

/// A store with `n` keys `k/<i>` whose snapshot covers all of them.
async fn snapshotted_store(dir: &TempDir, name: &str, n: usize) -> (RaftOptions, Arc<RaftStore>) {
    let opts = options(dir, name, "127.0.0.1:1");
    let store = RaftStore::open(opts.clone()).await.unwrap();
    store.bootstrap().await.unwrap();
    for i in 0..n {
        store
            .write(put(&format!("k/{i:03}"), &i.to_string()))
            .await
            .unwrap();
    }
    store.trigger_snapshot().await.unwrap();
    let raft = store.raft().unwrap();
    let last = raft.metrics().borrow().last_applied.map(|l| l.index);
    eventually("the snapshot", Duration::from_secs(10), || {
        let m = raft.metrics().borrow().clone();
        async move { m.snapshot.map(|s| s.index) == last }
    })
    .await;
    (opts, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_file_is_the_postcard_body_peers_exchange() {
    let dir = TempDir::new().unwrap();
    let (_, store) = snapshotted_store(&dir, "body", 20).await;
    let mut sm = StateMachine::new(store.db_handle(), store.snapshot_file());
    let snapshot = openraft::storage::RaftStateMachine::get_current_snapshot(&mut sm)
        .await
        .unwrap()
        .expect("a snapshot");
    let body: Vec<(String, Vec<u8>)> = super::types::decode(snapshot.snapshot.get_ref()).unwrap();
    let (exported, _) = store.export_data().unwrap();
    assert_eq!(body, exported);
    assert_eq!(body.len(), 20);
    store.stop().await.unwrap();
}

/// A crash between writing a received snapshot's file and loading it into the state machine
/// is finished at the next open, before any read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_file_ahead_of_state_machine_is_loaded_at_open() {
    let dir = TempDir::new().unwrap();
    let (opts, store) = snapshotted_store(&dir, "src", 30).await;
    store.stop().await.unwrap();
    drop(store);
    let target = TempDir::new().unwrap();
    let mut copy = opts.clone();
    copy.path = target.path().join("src");
    std::fs::create_dir_all(&copy.path).unwrap();
    std::fs::copy(opts.path.join("snapshot.bin"), copy.path.join("snapshot.bin")).unwrap();

    let store = RaftStore::open(copy).await.unwrap();
    assert_eq!(store.list("k/").await.unwrap().len(), 30);
    assert_eq!(store.get("k/007").await.unwrap(), Some(b"7".to_vec()));
    assert!(store.status().unwrap().applied_index >= 30);
}

/// Data directories from builds that kept the snapshot inside redb are migrated at open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_stored_in_redb_moves_to_the_file() {
    let dir = TempDir::new().unwrap();
    let (opts, store) = snapshotted_store(&dir, "old", 10).await;
    store.stop().await.unwrap();
    let db = store.db_handle();
    let (meta, body) = {
        let mut sm = StateMachine::new(db.clone(), store.snapshot_file());
        let s = openraft::storage::RaftStateMachine::get_current_snapshot(&mut sm)
            .await
            .unwrap()
            .unwrap();
        (s.meta, s.snapshot.into_inner())
    };
    {
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(super::db::SM_META).unwrap();
            super::db::put_record(&mut table, super::db::LEGACY_SNAPSHOT_META, &meta).unwrap();
            table
                .insert(super::db::LEGACY_SNAPSHOT_DATA, body.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    drop((db, store));
    std::fs::remove_file(opts.path.join("snapshot.bin")).unwrap();

    let store = RaftStore::open(opts.clone()).await.unwrap();
    let txn = redb::ReadableDatabase::begin_read(&*store.db_handle()).unwrap();
    let table = txn.open_table(super::db::SM_META).unwrap();
    assert!(table.get(super::db::LEGACY_SNAPSHOT_DATA).unwrap().is_none());
    assert!(table.get(super::db::LEGACY_SNAPSHOT_META).unwrap().is_none());
    let mut sm = StateMachine::new(store.db_handle(), store.snapshot_file());
    let moved = openraft::storage::RaftStateMachine::get_current_snapshot(&mut sm)
        .await
        .unwrap()
        .expect("the moved snapshot");
    assert_eq!(moved.meta, meta);
    assert_eq!(moved.snapshot.into_inner(), body);
}

struct Cluster {
    _dir: TempDir,
    nodes: Vec<Arc<RaftStore>>,
    servers: Vec<JoinHandle<()>>,
}

impl Cluster {
    async fn new(names: &[&str], snapshot_threshold: u64) -> Cluster {
        let dir = TempDir::new().unwrap();
        let mut nodes = Vec::new();
        let mut servers = Vec::new();
        for name in names {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let mut opts = options(&dir, name, &addr);
            opts.snapshot_threshold = snapshot_threshold;
            opts.trailing_logs = 0;
            let store = RaftStore::open(opts).await.unwrap();
            let router = store.cluster_router();
            let source: Arc<dyn AcceptorSource> = transport();
            let (_never, stop) = tokio::sync::watch::channel(false);
            servers.push(tokio::spawn(async move {
                let _keep_open = _never;
                serve(listener, source, router, stop).await;
            }));
            nodes.push(store);
        }
        Cluster {
            _dir: dir,
            nodes,
            servers,
        }
    }

    async fn shutdown(self) {
        for node in &self.nodes {
            node.stop().await.unwrap();
        }
        for server in self.servers {
            server.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_fail_over() {
    let cluster = Cluster::new(&["a", "b", "c"], 20).await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    a.bootstrap().await.unwrap();
    // Enough entries that the learners must receive a snapshot rather than the purged log.
    for i in 0..60 {
        a.write(put(&format!("pre/{i:02}"), "p")).await.unwrap();
    }
    for peer in [b, c] {
        peer.start().await.unwrap();
        let info = peer.node_info();
        a.add_learner(&info.name, &info.cluster_addr, &info.api_addr)
            .await
            .unwrap();
        a.promote_voter(&info.name).await.unwrap();
    }
    let status = a.status().unwrap();
    assert_eq!(status.members.iter().filter(|m| m.voter).count(), 3);
    assert!(matches!(
        a.promote_voter("nobody").await,
        Err(RaftError::UnknownPeer(_))
    ));

    a.write(put("shared/key", "hello")).await.unwrap();
    for node in &cluster.nodes {
        let node = node.clone();
        eventually("replication to every node", Duration::from_secs(5), || {
            let node = node.clone();
            async move { node.get("shared/key").await.unwrap() == Some(b"hello".to_vec()) }
        })
        .await;
        assert_eq!(node.list("pre/").await.unwrap().len(), 60);
    }
    match b.write(put("x", "y")).await {
        Err(StorageError::NotWritable(msg)) => assert!(msg.contains("(leader: a)"), "{msg}"),
        other => panic!("follower write should be refused, got {other:?}"),
    }
    assert_eq!(b.status().unwrap().leader.map(|l| l.name), Some("a".to_string()));

    let stopped_at = Instant::now();
    a.stop().await.unwrap();
    let survivors = [b.clone(), c.clone()];
    eventually("a new leader", Duration::from_secs(5), || {
        let survivors = survivors.clone();
        async move { survivors.iter().any(|n| n.status().unwrap().is_leader) }
    })
    .await;
    eprintln!(
        "new leader elected {:?} after stopping the old one",
        stopped_at.elapsed()
    );
    let leader = survivors
        .iter()
        .find(|n| n.status().unwrap().is_leader)
        .unwrap()
        .clone();
    leader.write(put("shared/after", "failover")).await.unwrap();
    for node in &survivors {
        let node = node.clone();
        eventually("post-failover replication", Duration::from_secs(5), || {
            let node = node.clone();
            async move { node.get("shared/after").await.unwrap().is_some() }
        })
        .await;
    }

    // The old leader rejoins as a follower and catches up.
    a.start().await.unwrap();
    let old = a.clone();
    eventually("old leader catches up", Duration::from_secs(5), || {
        let old = old.clone();
        async move { old.get("shared/after").await.unwrap().is_some() }
    })
    .await;
    leader.remove("a").await.unwrap();
    assert_eq!(leader.status().unwrap().members.len(), 2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_start_in_process() {
    let dir = TempDir::new().unwrap();
    let store = RaftStore::open(options(&dir, "cycle", "127.0.0.1:1"))
        .await
        .unwrap();
    match store.write(put("early", "x")).await {
        Err(StorageError::NotWritable(_)) => {}
        other => panic!("write before start should be refused, got {other:?}"),
    }
    store.bootstrap().await.unwrap();
    store.start().await.unwrap();
    store.write(put("one", "1")).await.unwrap();
    store.stop().await.unwrap();
    store.stop().await.unwrap();
    assert!(!store.status().unwrap().running);
    assert_eq!(store.status().unwrap().members.len(), 1);
    assert_eq!(store.get("one").await.unwrap(), Some(b"1".to_vec()));
    assert!(matches!(
        store.write(put("two", "2")).await,
        Err(StorageError::NotWritable(_))
    ));
    for round in 0..2 {
        store.start().await.unwrap();
        eventually("leadership", Duration::from_secs(5), || {
            let store = store.clone();
            async move { store.status().unwrap().is_leader }
        })
        .await;
        store.write(put(&format!("round/{round}"), "r")).await.unwrap();
        store.trigger_snapshot().await.unwrap();
        store.stop().await.unwrap();
    }
    assert_eq!(store.list("round/").await.unwrap(), vec!["0", "1"]);
}
