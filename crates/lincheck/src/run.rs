//! `lincheck run`: client tasks doing KV v2 reads, writes and check-and-sets on a few keys
//! while the leader is killed and restarted, then paused and resumed; afterwards every
//! acknowledged write is looked for, and the history goes to the checker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::checker;
use crate::history::{Input, Operation, Outcome, Output};
use crate::lab::{Lab, LabError, NodeStatus, Paused};
use crate::report::{Fault, FaultKind, LostWrite, Report};
use crate::vault::{KvClient, RequestError};

/// The KV v2 mount the recorder writes to.
pub const MOUNT: &str = "lincheck";
/// Versions a KV v2 key keeps by default; older ones are deleted on write.
const RETAINED_VERSIONS: u64 = 10;
/// Attempts per read-back request.
const READ_BACK_ATTEMPTS: u32 = 10;
/// How long a health probe may take when looking for the active node.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(800);
/// How long a client waits after an error before its next operation.
const ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// How long to wait for the cluster to have exactly one leader with every node up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the recorder does and for how long.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Concurrent client tasks.
    pub clients: usize,
    /// Keys they share.
    pub keys: usize,
    /// Leader kill -9 / restart cycles.
    pub kill_cycles: u32,
    /// Leader SIGSTOP / SIGCONT cycles.
    pub pause_cycles: u32,
    /// How long a killed leader stays down.
    pub down_for: Duration,
    /// How long a paused leader stays frozen (longer than an election).
    pub pause_for: Duration,
    /// Load without faults before the first and after each cycle.
    pub settle: Duration,
    /// Read timeout; a read without an answer by then is unknown. Longer than `pause_for`,
    /// so reads queued on a paused leader are answered when it resumes.
    pub read_timeout: Duration,
    /// Write timeout; a write without an answer by then is unknown and the client looks for
    /// the active node again. Shorter than `pause_for`, so writes move to a new leader while
    /// the old one is frozen.
    pub write_timeout: Duration,
    /// Pause between a client's operations.
    pub think: Duration,
    /// Operations at most.
    pub max_ops: usize,
    /// The whole fault schedule stops after this.
    pub time_limit: Duration,
    /// Search steps the checker may spend per key.
    pub check_budget: u64,
    /// Seeds the clients' choices.
    pub seed: u64,
}

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The lab could not be queried or faulted.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A setup or read-back request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The cluster did not settle to one leader with every node up.
    #[error("no single leader with every node up within {}s (last status: {last:?})", SETTLE_TIMEOUT.as_secs())]
    NoLeader {
        /// The last status seen.
        last: Vec<NodeStatus>,
    },
    /// A client task panicked.
    #[error("a client task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// State the clients and the fault injector share.
struct Shared {
    started: Instant,
    stop: AtomicBool,
    issued: AtomicUsize,
    next_value: AtomicU64,
    history: Mutex<Vec<Operation>>,
    /// Where writes go; any node would forward, but the active one answers directly.
    active: RwLock<String>,
    nodes: Vec<String>,
    keys: Vec<String>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn record(&self, mut op: Operation) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        op.id = history.len();
        history.push(op);
    }

    fn active(&self) -> String {
        self.active.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Records a history against the lab, then checks it.
pub async fn run(lab: &Lab, opts: &RunOptions) -> Result<Report, RunError> {
    let token = lab.root_token().await?;
    let reader = KvClient::new(token.clone(), MOUNT.into(), opts.read_timeout)?;
    let writer = KvClient::new(token.clone(), MOUNT.into(), opts.write_timeout)?;
    let health = KvClient::new(token, MOUNT.into(), HEALTH_TIMEOUT)?;
    let status = settled(lab).await?;
    let leader = leader_of(&status).api_addr.clone();
    writer.mount(&leader).await?;
    // Fresh keys for every run, so a run on a lab used before starts from empty registers.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let shared = Arc::new(Shared {
        started: Instant::now(),
        stop: AtomicBool::new(false),
        issued: AtomicUsize::new(0),
        next_value: AtomicU64::new(1),
        history: Mutex::new(Vec::new()),
        active: RwLock::new(leader),
        nodes: status.iter().map(|n| n.api_addr.clone()).collect(),
        keys: (0..opts.keys.max(1)).map(|k| format!("{run}-k{k}")).collect(),
    });
    let clients: Vec<_> = (0..opts.clients.max(1))
        .map(|index| {
            let seed = opts.seed.wrapping_mul(1_000_003).wrapping_add(index as u64);
            tokio::spawn(client(
                shared.clone(),
                Clients {
                    reader: reader.clone(),
                    writer: writer.clone(),
                    health: health.clone(),
                },
                index,
                seed,
                opts.clone(),
            ))
        })
        .collect();

    let mut faults = Vec::new();
    let schedule = inject(lab, &shared, opts, &mut faults);
    let finished = tokio::time::timeout(opts.time_limit, schedule).await;
    shared.stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    let cut_short = match finished {
        Ok(result) => {
            result?;
            false
        }
        Err(_) => true,
    };
    let elapsed = shared.started.elapsed();
    let history = std::mem::take(&mut *shared.history.lock().unwrap_or_else(|e| e.into_inner()));

    let status = settled(lab).await?;
    let lost = lost_writes(&reader, &leader_of(&status).api_addr, &history).await?;
    let verdict = checker::check(&history, opts.check_budget);
    Ok(Report {
        history,
        faults,
        lost,
        verdict,
        elapsed,
        cut_short,
    })
}

/// The HTTP clients of one client task, one per timeout.
struct Clients {
    reader: KvClient,
    writer: KvClient,
    health: KvClient,
}

/// One client: one operation at a time until told to stop or the operation cap is reached.
async fn client(shared: Arc<Shared>, kv: Clients, index: usize, seed: u64, opts: RunOptions) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut last_version: HashMap<String, u64> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed) && shared.issued.fetch_add(1, Ordering::Relaxed) < opts.max_ops
    {
        let key = shared.keys[rng.gen_range(0..shared.keys.len())].clone();
        let roll = rng.gen_range(0..10);
        let input = if roll < 5 {
            Input::Read
        } else {
            let value = shared.next_value.fetch_add(1, Ordering::Relaxed);
            match last_version.get(&key) {
                Some(&expected_version) if roll >= 8 => Input::Cas {
                    expected_version,
                    value,
                },
                _ => Input::Write { value },
            }
        };
        let addr = match input {
            Input::Read => shared.nodes[rng.gen_range(0..shared.nodes.len())].clone(),
            Input::Write { .. } | Input::Cas { .. } => shared.active(),
        };
        let invoke = shared.now_us();
        let result = match input {
            Input::Read => kv.reader.read(&addr, &key).await,
            Input::Write { value } => kv.writer.write(&addr, &key, value, None).await,
            Input::Cas {
                expected_version,
                value,
            } => kv.writer.write(&addr, &key, value, Some(expected_version)).await,
        };
        let returned = shared.now_us();
        let outcome = match result {
            Ok(output) => {
                if let Output::Read { version, .. } | Output::Written { version } = output {
                    last_version.insert(key.clone(), version);
                }
                Outcome::Ok { returned, output }
            }
            Err(e) => {
                if input != Input::Read {
                    find_active(&shared, &kv.health).await;
                }
                // Errors come fast while there is no leader; do not spin on them.
                tokio::time::sleep(ERROR_BACKOFF).await;
                if e.not_sent() {
                    Outcome::Fail
                } else {
                    Outcome::Unknown
                }
            }
        };
        shared.record(Operation {
            id: 0,
            client: index,
            key,
            input,
            invoke,
            outcome,
        });
        if !opts.think.is_zero() {
            tokio::time::sleep(rng.gen_range(Duration::ZERO..=opts.think)).await;
        }
    }
}

/// Points writes at whichever node answers health as active; keeps the old one if none does.
async fn find_active(shared: &Shared, health: &KvClient) {
    let mut probes = tokio::task::JoinSet::new();
    for addr in shared.nodes.clone() {
        let health = health.clone();
        probes.spawn(async move { health.is_active(&addr).await.then_some(addr) });
    }
    while let Some(probe) = probes.join_next().await {
        if let Ok(Some(addr)) = probe {
            *shared.active.write().unwrap_or_else(|e| e.into_inner()) = addr;
            return;
        }
    }
}

/// The fault schedule: kill cycles, then pause cycles, each on the current leader.
async fn inject(
    lab: &Lab,
    shared: &Shared,
    opts: &RunOptions,
    faults: &mut Vec<Fault>,
) -> Result<(), RunError> {
    tokio::time::sleep(opts.settle).await;
    for _ in 0..opts.kill_cycles {
        let node = leader_of(&settled(lab).await?).name.clone();
        let at_us = shared.now_us();
        lab.kill(&node).await?;
        tokio::time::sleep(opts.down_for).await;
        lab.start(&node).await?;
        faults.push(Fault {
            kind: FaultKind::Kill,
            node,
            at_us,
            healed_us: shared.now_us(),
        });
        tokio::time::sleep(opts.settle).await;
    }
    for _ in 0..opts.pause_cycles {
        let node = leader_of(&settled(lab).await?).name.clone();
        let pid = lab.pid(&node)?;
        let at_us = shared.now_us();
        let paused = Paused::pause(pid)?;
        tokio::time::sleep(opts.pause_for).await;
        paused.resume()?;
        faults.push(Fault {
            kind: FaultKind::Pause,
            node,
            at_us,
            healed_us: shared.now_us(),
        });
        tokio::time::sleep(opts.settle).await;
    }
    Ok(())
}

/// The lab's status once exactly one node leads and every other one follows.
async fn settled(lab: &Lab) -> Result<Vec<NodeStatus>, RunError> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let status = lab.status().await?;
        let leaders = status.iter().filter(|n| n.state == "leader").count();
        if leaders == 1
            && status
                .iter()
                .all(|n| n.state == "leader" || n.state == "follower")
        {
            return Ok(status);
        }
        if Instant::now() > deadline {
            return Err(RunError::NoLeader { last: status });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leader_of(status: &[NodeStatus]) -> &NodeStatus {
    status
        .iter()
        .find(|n| n.state == "leader")
        .expect("settled() returns a status with a leader")
}

/// Acknowledged writes the cluster no longer has: a version above the key's current one
/// (rolled back), a version acknowledged twice (one of the two was overwritten by a
/// rollback), or a different value at a version the key still keeps.
async fn lost_writes(kv: &KvClient, addr: &str, history: &[Operation]) -> Result<Vec<LostWrite>, RunError> {
    let mut acked: HashMap<&str, Vec<(u64, u64, usize)>> = HashMap::new();
    for op in history {
        if let (
            Outcome::Ok {
                output: Output::Written { version },
                ..
            },
            Some(value),
        ) = (op.outcome, op.input.written_value())
        {
            acked
                .entry(op.key.as_str())
                .or_default()
                .push((version, value, op.id));
        }
    }
    let mut lost = Vec::new();
    for (key, mut writes) in acked {
        let current = retried(|| kv.current_version(addr, key)).await?;
        writes.sort_unstable();
        let mut previous_version = None;
        for (version, value, id) in writes {
            let found = if previous_version == Some(version) {
                Some("version acknowledged twice".to_owned())
            } else if version > current {
                Some(format!("above the current version {current}"))
            } else if version + RETAINED_VERSIONS > current {
                match retried(|| kv.read_version(addr, key, version)).await? {
                    Some(stored) if stored == value => None,
                    Some(stored) => Some(format!("version holds {stored}")),
                    None => Some("version missing".to_owned()),
                }
            } else {
                None
            };
            previous_version = Some(version);
            if let Some(reason) = found {
                lost.push(LostWrite {
                    id,
                    key: key.to_owned(),
                    version,
                    value,
                    reason,
                });
            }
        }
    }
    lost.sort_by_key(|l| l.id);
    Ok(lost)
}

/// A read-back request, retried a few times: right after the last fault the cluster may
/// still answer an error now and then, which says nothing about what it stored.
async fn retried<T, F, Fut>(request: F) -> Result<T, RequestError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, RequestError>>,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Err(_) if attempt < READ_BACK_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            result => return result,
        }
    }
}
