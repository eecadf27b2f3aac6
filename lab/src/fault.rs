//! Faults injected into a node of an up lab: kill, stop, start, partition, heal. The one
//! implementation behind `lab fault`, drill `fault` steps and the exercises of
//! `lab practice` (whose steps run `lab fault`); each caller words the [`FaultOutcome`]
//! its own way. Only [`Host`] actions and bring-up's restart; no command-line types.

use std::time::Duration;

use crate::bringup::{Bringup, BringupError};
use crate::host::{self, Host, HostError, ProcessInfo};
use crate::provider::Provider;
use crate::state::{LabHome, State, StateError};

/// How long a stopped node may take to exit before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// What happens to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL (a crash).
    Kill,
    /// SIGTERM, then SIGKILL after [`STOP_GRACE`].
    Stop,
    /// Start again; with `unseal`, unseal it with the cluster's keys and wait until it rejoined.
    Start {
        /// Unseal with the stored keys.
        unseal: bool,
    },
    /// Cut the node's cluster port from its peers (clients still reach it).
    Partition,
    /// Undo [`Fault::Partition`].
    Heal,
}

/// What a fault did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOutcome {
    /// The process was killed.
    Killed {
        /// Its pid.
        pid: u32,
    },
    /// The process stopped (or was killed after the grace period).
    Stopped {
        /// Its pid.
        pid: u32,
    },
    /// Kill or stop of a node that has no process.
    AlreadyDown,
    /// The node runs again.
    Started,
    /// The node's cluster port is cut.
    Partitioned,
    /// The node's cluster port is open again.
    Healed,
}

/// Why a fault could not be injected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// Signalling the process or switching the partition on its host failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// Recording the stopped process in `state.json` failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The restarted node did not come back.
    #[error(transparent)]
    Bringup(#[from] BringupError),
}

/// Stops `process` on `host`: SIGTERM, then SIGKILL after [`STOP_GRACE`].
pub fn stop_process(host: &dyn Host, process: &ProcessInfo) -> Result<(), HostError> {
    host.stop(process, STOP_GRACE)
}

/// Injects `fault` into node `n` of cluster `c`, recording a process that went away in
/// `state` and `state.json`; `progress` receives bring-up's lines of a start.
pub fn inject(
    home: &LabHome,
    provider: &dyn Provider,
    state: &mut State,
    (c, n): (usize, usize),
    fault: Fault,
    progress: &mut dyn FnMut(&str),
) -> Result<FaultOutcome, FaultError> {
    match fault {
        Fault::Start { unseal } => {
            Bringup {
                home,
                provider,
                progress,
            }
            .restart(state, c, n, unseal)?;
            Ok(FaultOutcome::Started)
        }
        Fault::Partition | Fault::Heal => {
            let cut = fault == Fault::Partition;
            let node = &state.clusters[c].nodes[n];
            host::set_partition(provider.host(node).as_ref(), &node.data, cut)?;
            Ok(if cut {
                FaultOutcome::Partitioned
            } else {
                FaultOutcome::Healed
            })
        }
        Fault::Kill | Fault::Stop => {
            let Some(process) = state.clusters[c].nodes[n].process.take() else {
                return Ok(FaultOutcome::AlreadyDown);
            };
            let host = provider.host(&state.clusters[c].nodes[n]);
            let pid = process.pid;
            let outcome = if fault == Fault::Kill {
                host.kill(&process)?;
                FaultOutcome::Killed { pid }
            } else {
                stop_process(host.as_ref(), &process)?;
                FaultOutcome::Stopped { pid }
            };
            home.save(state)?;
            Ok(outcome)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::provider::LocalProvider;
    use crate::state::{ClusterState, NodeState, Phase};
    use crate::topology::SealKind;

    fn lab_of_one_node(home: &LabHome) -> State {
        let dir = home.root().join("c/n");
        State {
            provider: "local".to_owned(),
            topology: "single".to_owned(),
            phase: Phase::Up,
            labnode: PathBuf::from("labnode"),
            clusters: vec![ClusterState {
                name: "c".to_owned(),
                seal: SealKind::Shamir,
                dr_role: None,
                nodes: vec![NodeState {
                    name: "n".to_owned(),
                    api_addr: "http://127.0.0.1:1".to_owned(),
                    api_port: 1,
                    cluster_port: 2,
                    config: dir.join("node.hcl"),
                    log: dir.join("labnode.log"),
                    data: dir.join("data"),
                    dir,
                    process: None,
                    ssh: None,
                }],
            }],
            aws: None,
        }
    }

    #[test]
    fn a_node_without_a_process_is_already_down_and_partition_toggles_its_file() {
        let root = tempfile::tempdir().unwrap();
        let home = LabHome::new(root.path().to_owned());
        let mut state = lab_of_one_node(&home);
        let provider = LocalProvider::new(PathBuf::from("labnode"));
        let mut quiet = |_: &str| {};
        for fault in [Fault::Kill, Fault::Stop] {
            let outcome = inject(&home, &provider, &mut state, (0, 0), fault, &mut quiet).unwrap();
            assert_eq!(outcome, FaultOutcome::AlreadyDown);
        }
        let data = state.clusters[0].nodes[0].data.clone();
        std::fs::create_dir_all(&data).unwrap();
        let cut = inject(&home, &provider, &mut state, (0, 0), Fault::Partition, &mut quiet).unwrap();
        assert_eq!(cut, FaultOutcome::Partitioned);
        assert_eq!(
            std::fs::read_dir(&data).unwrap().count(),
            1,
            "the partition file exists"
        );
        let healed = inject(&home, &provider, &mut state, (0, 0), Fault::Heal, &mut quiet).unwrap();
        assert_eq!(healed, FaultOutcome::Healed);
        assert_eq!(
            std::fs::read_dir(&data).unwrap().count(),
            0,
            "the partition file is gone"
        );
    }
}
