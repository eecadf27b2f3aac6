//! Turning started processes into a working cluster: init the first node, unseal it,
//! wait until it is active, then start, unseal and check every follower.
//!
//! Every process start is written to `state.json` before lab waits on it, so a crash of
//! `lab` at any point leaves a state `lab down` can clean up.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::{ApiError, NodeClient};
use crate::host::{Host, HostError, Launch};
use crate::provider::Provider;
use crate::state::{Credentials, LabHome, NodeState, Phase, State, StateError};
use crate::topology::SealKind;

/// Unseal (or recovery) key shares created at init, as the seed's `vault operator init`.
pub const KEY_SHARES: u32 = 5;
/// Shares needed to unseal.
pub const KEY_THRESHOLD: u32 = 3;

/// How long a node may take to open its API port.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to become active or standby, or to appear in the peer list.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Between two polls.
const POLL: Duration = Duration::from_millis(200);
/// Log lines quoted when a node dies or hangs.
const LOG_TAIL_LINES: usize = 15;

/// Why a cluster did not come up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BringupError {
    /// Starting or signalling a process failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// Recording state or credentials failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A request that must succeed (init, unseal) failed.
    #[error("{node}: {source}")]
    Api {
        /// `cluster/node`.
        node: String,
        /// The request failure.
        source: ApiError,
    },
    /// The node died or hung while lab waited for it.
    #[error("{0}")]
    Stuck(Box<StuckNode>),
    /// The node process is already running (`fault start` on a live node).
    #[error("{0} is already running")]
    AlreadyRunning(String),
}

/// A node that exited, or did not reach a state in time, with the end of its log.
#[derive(Debug)]
pub struct StuckNode {
    /// `cluster/node`.
    pub node: String,
    /// What lab was waiting for.
    pub what: String,
    /// `None` when the process exited; else how long lab waited and the last answer.
    pub timed_out: Option<(Duration, String)>,
    /// The node's log.
    pub log: PathBuf,
    /// Its last lines.
    pub tail: String,
}

impl fmt::Display for StuckNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let StuckNode { node, what, .. } = self;
        match &self.timed_out {
            None => write!(f, "{node} exited while lab was waiting for it to {what}")?,
            Some((waited, last)) => write!(
                f,
                "{node} did not {what} within {}s (last answer: {last})",
                waited.as_secs()
            )?,
        }
        write!(f, "; last lines of {}:\n{}", self.log.display(), self.tail)
    }
}

/// The command line that runs a node; its `-config=` argument is also its identity tag.
pub fn launch_for(labnode: &Path, cluster: &str, node: &NodeState) -> Launch {
    let tag = format!("-config={}", node.config.display());
    Launch {
        program: labnode.to_owned(),
        args: vec!["server".to_owned(), tag.clone()],
        tag,
        log: node.log.clone(),
        service: format!("labnode-{cluster}-{}", node.name),
    }
}

/// What bring-up acts through, plus a sink for progress lines.
pub struct Bringup<'a> {
    /// Where state and credentials are recorded.
    pub home: &'a LabHome,
    /// Runs the node processes on its hosts.
    pub provider: &'a dyn Provider,
    /// Receives one human-readable line per step.
    pub progress: &'a mut dyn FnMut(&str),
}

impl Bringup<'_> {
    /// Brings up every cluster of `state` in order, then marks the lab as up.
    pub fn run(&mut self, state: &mut State) -> Result<(), BringupError> {
        for cluster in 0..state.clusters.len() {
            self.cluster(state, cluster)?;
        }
        state.phase = Phase::Up;
        self.home.save(state)?;
        Ok(())
    }

    /// Init on the first node, unseal, wait active; then the followers.
    fn cluster(&mut self, state: &mut State, c: usize) -> Result<(), BringupError> {
        let name = state.clusters[c].name.clone();
        let seal = state.clusters[c].seal;
        let count = state.clusters[c].nodes.len();
        (self.progress)(&format!("cluster {name}: {count} node(s), seal {seal:?}").to_lowercase());
        self.start(state, c, 0)?;
        self.wait_api(state, c, 0)?;
        let leader = self.client(state, c, 0)?;
        let node = state.qualified(c, 0);
        (self.progress)(&format!(
            "{node}: initializing ({KEY_SHARES} key shares, threshold {KEY_THRESHOLD})"
        ));
        let body = match seal {
            SealKind::Shamir => json!({ "secret_shares": KEY_SHARES, "secret_threshold": KEY_THRESHOLD }),
            SealKind::Awskms => json!({ "recovery_shares": KEY_SHARES, "recovery_threshold": KEY_THRESHOLD }),
        };
        let init = leader.init(body).map_err(|source| BringupError::Api {
            node: node.clone(),
            source,
        })?;
        let creds = credentials(seal, init);
        let path = self.home.save_credentials(&name, &creds)?;
        (self.progress)(&format!(
            "{node}: initialized; credentials in {} (mode 0600)",
            path.display()
        ));
        self.unseal(state, c, 0, &creds)?;
        self.wait(state, c, 0, "become active", READY_TIMEOUT, |client| {
            let health = client.health()?;
            Ok((health.is_active(), format!("health {}", health.status)))
        })?;
        (self.progress)(&format!("{node}: active"));
        self.wait_member(state, c, 0, &creds.root_token)?;
        for n in 1..count {
            self.start(state, c, n)?;
        }
        for n in 1..count {
            self.join(state, c, n, &creds)?;
        }
        Ok(())
    }

    /// Restarts a stopped node; with `unseal`, also unseals it with the cluster's keys and
    /// waits until it is back in the peer list.
    pub fn restart(
        &mut self,
        state: &mut State,
        c: usize,
        n: usize,
        unseal: bool,
    ) -> Result<(), BringupError> {
        let node = state.qualified(c, n);
        let node_state = &state.clusters[c].nodes[n];
        if let Some(process) = &node_state.process {
            if self.provider.host(node_state).is_running(process) {
                return Err(BringupError::AlreadyRunning(node));
            }
        }
        self.start(state, c, n)?;
        self.wait_api(state, c, n)?;
        if unseal {
            let creds = self.home.credentials(&state.clusters[c].name)?;
            self.unseal(state, c, n, &creds)?;
            self.wait_unsealed_member(state, c, n)?;
            self.wait_member(state, c, n, &creds.root_token)?;
        }
        Ok(())
    }

    /// A follower: wait until it learned the leader's seal configuration through
    /// retry_join, unseal it with the leader's keys, wait until it serves and is a peer.
    fn join(
        &mut self,
        state: &mut State,
        c: usize,
        n: usize,
        creds: &Credentials,
    ) -> Result<(), BringupError> {
        self.wait_api(state, c, n)?;
        self.join_once(state, c, n, creds)
    }

    fn join_once(
        &mut self,
        state: &mut State,
        c: usize,
        n: usize,
        creds: &Credentials,
    ) -> Result<(), BringupError> {
        if state.clusters[c].seal == SealKind::Shamir {
            self.wait(
                state,
                c,
                n,
                "receive the leader's seal configuration (retry_join)",
                READY_TIMEOUT,
                |client| {
                    let status = client.seal_status()?;
                    let known = status.t > 0 || !status.sealed;
                    Ok((
                        known,
                        format!("initialized {} t {} n {}", status.initialized, status.t, status.n),
                    ))
                },
            )?;
        }
        self.unseal(state, c, n, creds)?;
        self.wait_unsealed_member(state, c, n)?;
        self.wait_member(state, c, n, &creds.root_token)
    }

    fn wait_unsealed_member(&mut self, state: &State, c: usize, n: usize) -> Result<(), BringupError> {
        self.wait(state, c, n, "become active or standby", READY_TIMEOUT, |client| {
            let health = client.health()?;
            Ok((health.is_unsealed_member(), format!("health {}", health.status)))
        })?;
        (self.progress)(&format!("{}: unsealed and serving", state.qualified(c, n)));
        Ok(())
    }

    /// Starts one node's process and records it before anything else can fail.
    fn start(&mut self, state: &mut State, c: usize, n: usize) -> Result<(), BringupError> {
        let node = &state.clusters[c].nodes[n];
        let launch = launch_for(self.provider.labnode(), &state.clusters[c].name, node);
        let process = self.provider.host(node).start(&launch)?;
        let pid = process.pid;
        state.clusters[c].nodes[n].process = Some(process);
        self.home.save(state)?;
        (self.progress)(&format!(
            "{}: started pid {pid} on {}",
            state.qualified(c, n),
            state.clusters[c].nodes[n].api_addr
        ));
        Ok(())
    }

    fn wait_api(&mut self, state: &State, c: usize, n: usize) -> Result<(), BringupError> {
        self.wait(state, c, n, "open its API", START_TIMEOUT, |client| {
            client.health().map(|h| (true, format!("health {}", h.status)))
        })
    }

    /// Gives key shares until the node reports unsealed (no-op for auto-unseal).
    fn unseal(&mut self, state: &State, c: usize, n: usize, creds: &Credentials) -> Result<(), BringupError> {
        let node = state.qualified(c, n);
        let client = self.client(state, c, n)?;
        let api = |source| BringupError::Api {
            node: node.clone(),
            source,
        };
        if creds.unseal_keys_b64.is_empty() {
            return Ok(());
        }
        for key in creds.unseal_keys_b64.iter().take(creds.unseal_threshold as usize) {
            let status = client.unseal(key).map_err(api)?;
            if !status.sealed {
                break;
            }
        }
        let status = client.seal_status().map_err(api)?;
        if status.sealed {
            return Err(api(ApiError::Decode {
                addr: state.clusters[c].nodes[n].api_addr.clone(),
                path: "/v1/sys/unseal".to_owned(),
                message: format!(
                    "still sealed after {} keys (progress {}/{})",
                    creds.unseal_threshold, status.progress, status.t
                ),
            }));
        }
        (self.progress)(&format!(
            "{node}: unsealed with {} of {} keys",
            creds.unseal_threshold, creds.unseal_shares
        ));
        Ok(())
    }

    /// Waits until the raft peer list lists this node as a voter (autopilot promotes a
    /// joiner shortly after it joins; every lab topology is all voters). The node itself
    /// is asked: a standby forwards to the active node, whichever that is by now.
    fn wait_member(&mut self, state: &State, c: usize, n: usize, token: &str) -> Result<(), BringupError> {
        let node_id = state.clusters[c].nodes[n].name.clone();
        self.wait(
            state,
            c,
            n,
            "become a voter in the raft peer list",
            READY_TIMEOUT,
            |client| {
                let servers = client.raft_servers(token)?;
                let voter = servers.iter().any(|s| s.node_id == node_id && s.voter);
                let peers: Vec<String> = servers
                    .iter()
                    .map(|s| format!("{}{}", s.node_id, if s.voter { "" } else { " (non-voter)" }))
                    .collect();
                Ok((voter, format!("peers [{}]", peers.join(", "))))
            },
        )?;
        (self.progress)(&format!(
            "{}: voter in the raft configuration",
            state.qualified(c, n)
        ));
        Ok(())
    }

    fn client(&self, state: &State, c: usize, n: usize) -> Result<NodeClient, BringupError> {
        NodeClient::new(&state.clusters[c].nodes[n].api_addr).map_err(|source| BringupError::Api {
            node: state.qualified(c, n),
            source,
        })
    }

    /// Polls `check` until it reports done, failing early if the process dies. `check`
    /// returns (done, what it saw); errors count as "not yet" and are reported on timeout.
    fn wait(
        &mut self,
        state: &State,
        c: usize,
        n: usize,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&NodeClient) -> Result<(bool, String), ApiError>,
    ) -> Result<(), BringupError> {
        let node = &state.clusters[c].nodes[n];
        let client = self.client(state, c, n)?;
        let host = self.provider.host(node);
        let stuck = |timed_out| {
            BringupError::Stuck(Box::new(StuckNode {
                node: state.qualified(c, n),
                what: what.to_owned(),
                timed_out,
                log: node.log.clone(),
                tail: log_tail(host.as_ref(), &node.log),
            }))
        };
        let started = Instant::now();
        loop {
            if let Some(process) = &node.process {
                if !host.is_running(process) {
                    return Err(stuck(None));
                }
            }
            let last = match check(&client) {
                Ok((true, _)) => return Ok(()),
                Ok((false, seen)) => seen,
                Err(e) => e.to_string(),
            };
            if started.elapsed() > timeout {
                return Err(stuck(Some((timeout, last))));
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The init response in `vault operator init -format=json` shape.
fn credentials(seal: SealKind, init: crate::api::InitResponse) -> Credentials {
    let (unseal, recovery) = match seal {
        SealKind::Shamir => ((KEY_SHARES, KEY_THRESHOLD), (0, 0)),
        SealKind::Awskms => ((0, 0), (KEY_SHARES, KEY_THRESHOLD)),
    };
    Credentials {
        unseal_keys_b64: init.keys_base64,
        unseal_keys_hex: init.keys,
        unseal_shares: unseal.0,
        unseal_threshold: unseal.1,
        recovery_keys_b64: init.recovery_keys_base64,
        recovery_keys_hex: init.recovery_keys,
        recovery_keys_shares: recovery.0,
        recovery_keys_threshold: recovery.1,
        root_token: init.root_token,
    }
}

/// The last lines of a node's log, indented, for error messages.
fn log_tail(host: &dyn Host, log: &Path) -> String {
    let mut bytes = Vec::new();
    // A log that cannot be read reads as empty: the error being reported matters more.
    let _ = host.logs(log, false, &mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    if tail.is_empty() {
        "  (log is empty)".to_owned()
    } else {
        tail.iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
