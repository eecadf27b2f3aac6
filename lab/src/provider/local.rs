//! The local provider: every node is a `labnode server` process on 127.0.0.1.

use std::collections::HashSet;
use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Plan, PlannedCluster, PlannedNode, Provider, ProviderError};
use crate::host::{Host, LocalHost, ProcessInfo};
use crate::render::{JoinContext, ListenerContext, NodeContext, SealContext};
use crate::state::{LabHome, NodeState, State};
use crate::topology::{SealKind, Topology};

/// Every address the local provider hands out: nothing leaves the machine.
const LOOPBACK: &str = "127.0.0.1";

/// How long a node gets to exit after SIGTERM during teardown.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Processes on this machine, found and signalled through `/proc`.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    labnode: PathBuf,
    host: Arc<LocalHost>,
}

impl LocalProvider {
    /// A provider running the given labnode binary.
    pub fn new(labnode: PathBuf) -> LocalProvider {
        LocalProvider {
            labnode,
            host: Arc::new(LocalHost),
        }
    }

    /// Finds labnode next to the `lab` executable, else `LABNODE_BIN`, else on `PATH`.
    pub fn discover() -> Result<LocalProvider, ProviderError> {
        let next_to_lab = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("labnode")))
            .unwrap_or_else(|| PathBuf::from("labnode"));
        let from_env = std::env::var_os("LABNODE_BIN")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let on_path = || {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("labnode"))
                    .find(|candidate| candidate.is_file())
            })
        };
        let found = Some(next_to_lab.clone())
            .filter(|p| p.is_file())
            .or(from_env.filter(|p| p.is_file()))
            .or_else(on_path)
            .ok_or(ProviderError::LabnodeNotFound { next_to_lab })?;
        let labnode = found.canonicalize().unwrap_or(found);
        Ok(LocalProvider::new(labnode))
    }

    /// Checks that the labnode binary runs (`labnode version`).
    pub(super) fn check_labnode(&self) -> Result<(), ProviderError> {
        let check = self
            .host
            .exec(&self.labnode, &["version"])
            .map_err(|e| e.to_string())
            .and_then(|out| {
                if out.success {
                    Ok(())
                } else {
                    Err(out.stderr.trim().to_owned())
                }
            });
        check.map_err(|detail| ProviderError::LabnodeBroken {
            labnode: self.labnode.clone(),
            detail,
        })
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn plan(&self, topology: &Topology, home: &LabHome) -> Result<Plan, ProviderError> {
        let api_addr = |port: u16| format!("http://{LOOPBACK}:{port}");
        let clusters = topology
            .clusters
            .iter()
            .map(|cluster| {
                if cluster.seal == SealKind::Awskms {
                    return Err(ProviderError::Unsupported {
                        provider: "local",
                        message: format!(
                            "cluster {} wants seal \"awskms\", but the local provider has no KMS; \
                             use seal = \"shamir\" (auto-unseal comes with the localstack provider)",
                            cluster.name
                        ),
                    });
                }
                let nodes = cluster
                    .nodes
                    .iter()
                    .map(|node| {
                        let dir = home.node_dir(&cluster.name, &node.name);
                        let data = dir.join("data");
                        let context = NodeContext {
                            node_id: node.name.clone(),
                            cluster_name: cluster.name.clone(),
                            data_path: data.display().to_string(),
                            api_addr: api_addr(node.api_port),
                            cluster_addr: format!("https://{LOOPBACK}:{}", node.cluster_port),
                            listener: ListenerContext {
                                address: format!("{LOOPBACK}:{}", node.api_port),
                                cluster_address: format!("{LOOPBACK}:{}", node.cluster_port),
                                tls_disable: true,
                            },
                            seal: SealContext { awskms: None },
                            join: JoinContext {
                                leader_api_addrs: cluster
                                    .nodes
                                    .iter()
                                    .filter(|peer| peer.name != node.name)
                                    .map(|peer| api_addr(peer.api_port))
                                    .collect(),
                                auto_join: None,
                            },
                            ui: true,
                            log_level: cluster.log_level.clone(),
                        };
                        PlannedNode {
                            state: NodeState {
                                name: node.name.clone(),
                                api_addr: context.api_addr.clone(),
                                api_port: node.api_port,
                                cluster_port: node.cluster_port,
                                config: dir.join("node.hcl"),
                                log: dir.join("labnode.log"),
                                data,
                                dir,
                                process: None,
                                ssh: None,
                            },
                            context,
                        }
                    })
                    .collect();
                Ok(PlannedCluster {
                    name: cluster.name.clone(),
                    seal: cluster.seal,
                    dr_role: cluster.dr_role,
                    nodes,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Plan::of_clusters(clusters))
    }

    fn preflight(&self, plan: &Plan) -> Result<(), ProviderError> {
        self.check_labnode()?;
        let mut busy = Vec::new();
        for cluster in &plan.clusters {
            for node in &cluster.nodes {
                for (port, what) in [(node.state.api_port, "API"), (node.state.cluster_port, "cluster")] {
                    if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
                        busy.push(format!(
                            "  {LOOPBACK}:{port} ({}/{} {what} port) is used by {}",
                            cluster.name,
                            node.state.name,
                            port_owner(port).unwrap_or_else(|| "another process".to_owned())
                        ));
                    }
                }
            }
        }
        if busy.is_empty() {
            Ok(())
        } else {
            busy.push("  stop that process or choose other ports with --base-port N".to_owned());
            Err(ProviderError::PortsInUse(busy))
        }
    }

    fn host(&self, _node: &NodeState) -> Arc<dyn Host> {
        self.host.clone()
    }

    fn labnode(&self) -> &Path {
        &self.labnode
    }

    fn teardown(&self, home: &LabHome, state: Option<&State>) -> Result<Vec<String>, ProviderError> {
        let mut stopped = Vec::new();
        let recorded = state
            .into_iter()
            .flat_map(|s| s.clusters.iter())
            .flat_map(|c| c.nodes.iter().map(move |n| (format!("{}/{}", c.name, n.name), n)))
            .filter_map(|(name, n)| n.process.clone().map(|p| (name, p)));
        for (name, process) in recorded.chain(orphans(home)) {
            if self.host.is_running(&process) {
                self.host.stop(&process, STOP_GRACE)?;
                stopped.push(format!("stopped {name} (pid {})", process.pid));
            }
        }
        Ok(stopped)
    }
}

/// labnode processes started for this home that `state.json` may not know about: any
/// process with a `-config=` argument under the home (the tag every node carries).
fn orphans(home: &LabHome) -> Vec<(String, ProcessInfo)> {
    let prefix = format!("-config={}/", home.root().display());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter_map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let tag = cmdline
                .split(|b| *b == 0)
                .filter_map(|arg| std::str::from_utf8(arg).ok())
                .find(|arg| arg.starts_with(&prefix))?
                .to_owned();
            let name = format!("unrecorded {}", &tag["-config=".len()..]);
            Some((name, ProcessInfo { pid, pgid: pid, tag }))
        })
        .collect()
}

/// Names the process listening on a loopback or wildcard TCP port (`pid N (comm)`), when
/// `/proc` lets us see it.
fn port_owner(port: u16) -> Option<String> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = fields.get(1)?.rsplit_once(':')?.1;
                    let listening = *fields.get(3)? == "0A";
                    (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                        .then(|| fields.get(9).map(|inode| inode.to_string()))
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let wanted: HashSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let procs = fs::read_dir("/proc").ok()?;
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let owns = fds.flatten().any(|fd| {
            fs::read_link(fd.path())
                .ok()
                .and_then(|target| target.to_str().map(|t| wanted.contains(t)))
                .unwrap_or(false)
        });
        if owns {
            let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(format!("pid {pid} ({})", comm.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_gives_every_node_its_peers_and_loopback_addresses() {
        let topology = Topology::load("ha3", Some(18200)).unwrap();
        let home = LabHome::new(PathBuf::from("/lab"));
        let plan = LocalProvider::new(PathBuf::from("labnode"))
            .plan(&topology, &home)
            .unwrap();
        let b = &plan.clusters[0].nodes[1];
        assert_eq!(b.context.api_addr, "http://127.0.0.1:18210");
        assert_eq!(
            b.context.join.leader_api_addrs,
            ["http://127.0.0.1:18200", "http://127.0.0.1:18220"]
        );
        assert_eq!(b.state.data, Path::new("/lab/primary/node-b/data"));
        assert_eq!(b.state.log, Path::new("/lab/primary/node-b/labnode.log"));
    }

    #[test]
    fn awskms_needs_another_provider() {
        let text = "[[clusters]]\nname = \"a\"\nnodes = [\"n\"]\nseal = \"awskms\"";
        let topology = Topology::from_toml(text, "f", "f", None).unwrap();
        let err = LocalProvider::new(PathBuf::new())
            .plan(&topology, &LabHome::new(PathBuf::from("/lab")))
            .unwrap_err();
        assert!(err.to_string().contains("no KMS"), "{err}");
    }

    #[test]
    fn the_owner_of_a_busy_port_is_named() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let owner = port_owner(port).unwrap();
        assert!(
            owner.starts_with(&format!("pid {} (", std::process::id())),
            "{owner}"
        );
    }
}
