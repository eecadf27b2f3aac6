//! `.lab/`: what runs where, so every command after `up` (and `down` after a crash)
//! knows the processes, ports, paths and credentials.
//!
//! Layout: `state.json`, and per node `<cluster>/<node>/{node.hcl,data/,labnode.log}`,
//! per cluster `<cluster>/creds.json` (mode 0600). `state.json` is rewritten atomically
//! after every change (plan, each process start, each stop), so it never lags reality by
//! more than one process.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::host::ProcessInfo;
use crate::topology::{DrRole, SealKind};

/// Marks a directory as created by lab, so `down --purge` never deletes a directory it
/// did not make (LAB_HOME=$HOME by mistake).
const MARKER: &str = ".lab-home";

/// Why lab state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file or directory under the lab home failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// `state.json` or a credentials file is not what lab wrote.
    #[error("{}: corrupt lab state ({source}); run `lab down` to clean up", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A command that needs a running lab found none.
    #[error("no lab in {}; start one with `lab up`", home.display())]
    NoLab {
        /// The lab home.
        home: PathBuf,
    },
    /// A cluster has no credentials yet (bring-up did not get to init).
    #[error("cluster {cluster} has no credentials yet ({} missing)", path.display())]
    NoCredentials {
        /// The cluster.
        cluster: String,
        /// Where they would be.
        path: PathBuf,
    },
    /// The NODE|CLUSTER argument names nothing in this lab.
    #[error("no cluster or node named \"{target}\" in this lab; known: {known}")]
    UnknownTarget {
        /// What the user typed.
        target: String,
        /// Every valid name.
        known: String,
    },
    /// A bare node name exists in several clusters.
    #[error("\"{target}\" is ambiguous; use one of: {candidates}")]
    Ambiguous {
        /// What the user typed.
        target: String,
        /// Qualified `cluster/node` names.
        candidates: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How far `up` got; `Starting` means a crash may have left half a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Directories and state written, processes being started.
    Starting,
    /// Every cluster initialized, unsealed and joined.
    Up,
}

/// Everything lab knows about the running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Which provider started it (and must tear it down).
    pub provider: String,
    /// The topology name or file.
    pub topology: String,
    /// How far bring-up got.
    pub phase: Phase,
    /// The labnode binary the nodes run (also the `vault` of `lab shell`).
    pub labnode: PathBuf,
    /// Clusters in bring-up order.
    pub clusters: Vec<ClusterState>,
    /// Cloud resources the provider created (localstack), which `down` deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsResources>,
}

/// What the localstack provider created in EC2 and KMS, recorded as each is created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsResources {
    /// The endpoint every call went to.
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The lab's VPC.
    pub vpc_id: Option<String>,
    /// Its subnet, holding the instances' private (loopback) addresses.
    pub subnet_id: Option<String>,
    /// One KMS key per cluster (the awskms seal).
    pub keys: Vec<KmsKey>,
    /// One instance per node (what auto_join discovers).
    pub instances: Vec<Ec2Instance>,
    /// What only the aws provider makes: security group, key pair, IAM role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_lab: Option<Ec2Lab>,
}

/// The aws provider's own resources and how to reach its instances again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ec2Lab {
    /// The `lab=<name>` tag on every resource, which `lab down --sweep` searches.
    pub name: String,
    /// The AWS profile the resources were made with, for the later commands.
    pub profile: Option<String>,
    /// Created by Terraform and only adopted: `lab down` leaves them to `terraform destroy`.
    pub adopted: bool,
    /// The security group.
    pub security_group_id: Option<String>,
    /// The EC2 key pair's name.
    pub key_pair: Option<String>,
    /// The private key lab connects with (created by lab under the home, or the operator's).
    pub ssh_key: PathBuf,
    /// True when `ssh_key` is lab's own file, deleted with the key pair.
    pub ssh_key_created: bool,
    /// The nodes' IAM role.
    pub role: Option<String>,
    /// Its inline policy's name, once attached.
    pub role_policy: Option<String>,
    /// The instance profile holding the role.
    pub instance_profile: Option<String>,
    /// Where node files live on the instances (`<dir>/bin/labnode`, `<dir>/<cluster>/<node>`).
    pub remote_dir: PathBuf,
}

/// How lab reaches a node's machine over ssh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshAddress {
    /// IP address or name.
    pub host: String,
    /// sshd's port.
    pub port: u16,
    /// The login.
    pub user: String,
}

/// A cluster's seal key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsKey {
    /// The cluster it seals.
    pub cluster: String,
    /// The key id.
    pub key_id: String,
    /// The alias the node configs name.
    pub alias: String,
}

/// A node's EC2 instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ec2Instance {
    /// `cluster/node`.
    pub node: String,
    /// The instance id.
    pub instance_id: String,
    /// Its private address, which the node binds.
    pub private_ip: String,
}

/// One cluster of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Cluster name.
    pub name: String,
    /// Seal type, which decides how bring-up and `fault start --unseal` unseal.
    pub seal: SealKind,
    /// DR role it is prepared for.
    pub dr_role: Option<DrRole>,
    /// Nodes in start order.
    pub nodes: Vec<NodeState>,
}

/// One node and its process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Raft node_id.
    pub name: String,
    /// Advertised API URL (what VAULT_ADDR points at).
    pub api_addr: String,
    /// API port (checked free before start).
    pub api_port: u16,
    /// Cluster port (checked free before start).
    pub cluster_port: u16,
    /// The node's directory.
    pub dir: PathBuf,
    /// The rendered HCL.
    pub config: PathBuf,
    /// Raft data directory.
    pub data: PathBuf,
    /// stdout+stderr of labnode.
    pub log: PathBuf,
    /// The running process, `None` when never started, stopped or killed.
    pub process: Option<ProcessInfo>,
    /// Where the node's machine answers ssh (`None`: it runs on this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshAddress>,
}

/// Credentials as `vault operator init -format=json` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Unseal key shares, base64.
    pub unseal_keys_b64: Vec<String>,
    /// Unseal key shares, hex.
    pub unseal_keys_hex: Vec<String>,
    /// Number of unseal shares.
    pub unseal_shares: u32,
    /// Shares needed to unseal.
    pub unseal_threshold: u32,
    /// Recovery key shares (auto-unseal), base64.
    pub recovery_keys_b64: Vec<String>,
    /// Recovery key shares, hex.
    pub recovery_keys_hex: Vec<String>,
    /// Number of recovery shares.
    pub recovery_keys_shares: u32,
    /// Recovery shares needed.
    pub recovery_keys_threshold: u32,
    /// The initial root token.
    pub root_token: String,
}

/// What a NODE|CLUSTER argument resolved to, as indexes into [`State::clusters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A whole cluster.
    Cluster(usize),
    /// One node: (cluster, node).
    Node(usize, usize),
}

impl State {
    /// Resolves `cluster`, `node` (if unique) or `cluster/node`; `None` means the first cluster.
    pub fn resolve(&self, target: Option<&str>) -> Result<Target, StateError> {
        let Some(target) = target else {
            return Ok(Target::Cluster(0));
        };
        if let Some(c) = self.clusters.iter().position(|c| c.name == target) {
            return Ok(Target::Cluster(c));
        }
        let (cluster, node) = match target.split_once('/') {
            Some((cluster, node)) => (Some(cluster), node),
            None => (None, target),
        };
        let matches: Vec<(usize, usize)> = self
            .clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| cluster.is_none_or(|name| c.name == name))
            .flat_map(|(ci, c)| {
                c.nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.name == node)
                    .map(move |(ni, _)| (ci, ni))
            })
            .collect();
        match matches.as_slice() {
            [(c, n)] => Ok(Target::Node(*c, *n)),
            [] => Err(StateError::UnknownTarget {
                target: target.to_owned(),
                known: self.known_names().join(", "),
            }),
            many => Err(StateError::Ambiguous {
                target: target.to_owned(),
                candidates: many
                    .iter()
                    .map(|(c, n)| self.qualified(*c, *n))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Resolves a target to the nodes it covers (a cluster covers all of its nodes).
    pub fn nodes_of(&self, target: Target) -> Vec<(usize, usize)> {
        match target {
            Target::Node(c, n) => vec![(c, n)],
            Target::Cluster(c) => (0..self.clusters[c].nodes.len()).map(|n| (c, n)).collect(),
        }
    }

    /// `cluster/node`, the unambiguous name used in messages.
    pub fn qualified(&self, cluster: usize, node: usize) -> String {
        format!(
            "{}/{}",
            self.clusters[cluster].name, self.clusters[cluster].nodes[node].name
        )
    }

    fn known_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.clusters.iter().map(|c| c.name.clone()).collect();
        for (ci, c) in self.clusters.iter().enumerate() {
            names.extend((0..c.nodes.len()).map(|ni| self.qualified(ci, ni)));
        }
        names
    }
}

/// The lab home directory (`./.lab` or `LAB_HOME`) and the files in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHome {
    root: PathBuf,
}

impl LabHome {
    /// Wraps an absolute directory path.
    pub fn new(root: PathBuf) -> LabHome {
        LabHome { root }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// A cluster's directory.
    pub fn cluster_dir(&self, cluster: &str) -> PathBuf {
        self.root.join(cluster)
    }

    /// A node's directory, holding its config, data and log.
    pub fn node_dir(&self, cluster: &str, node: &str) -> PathBuf {
        self.cluster_dir(cluster).join(node)
    }

    /// A cluster's credentials file.
    pub fn creds_path(&self, cluster: &str) -> PathBuf {
        self.cluster_dir(cluster).join("creds.json")
    }

    /// Reads `state.json`, `None` when there is no lab.
    pub fn load(&self) -> Result<Option<State>, StateError> {
        let path = self.state_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Reads `state.json`, failing with "no lab" when absent.
    pub fn require(&self) -> Result<State, StateError> {
        self.load()?.ok_or_else(|| StateError::NoLab {
            home: self.root.clone(),
        })
    }

    /// Creates the home (with its marker, only if lab creates the directory) and writes `state.json` atomically.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        if !self.root.exists() {
            fs::create_dir_all(&self.root).map_err(io(&self.root))?;
            let marker = self.root.join(MARKER);
            fs::write(
                &marker,
                b"created by lab; `lab down --purge` deletes this directory\n",
            )
            .map_err(io(&marker))?;
        }
        let bytes = serde_json::to_vec_pretty(state).map_err(|source| StateError::Corrupt {
            path: self.state_path(),
            source,
        })?;
        write_atomic(&self.state_path(), &bytes, 0o644)
    }

    /// Writes a cluster's credentials, readable by the owner only.
    pub fn save_credentials(&self, cluster: &str, creds: &Credentials) -> Result<PathBuf, StateError> {
        let path = self.creds_path(cluster);
        let bytes = serde_json::to_vec_pretty(creds).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes, 0o600)?;
        Ok(path)
    }

    /// Writes a secret file (an ssh private key) under the home, readable by the owner only.
    pub fn save_private(&self, relative: &Path, bytes: &[u8]) -> Result<PathBuf, StateError> {
        let path = self.root.join(relative);
        write_atomic(&path, bytes, 0o600)?;
        Ok(path)
    }

    /// Reads a cluster's credentials.
    pub fn credentials(&self, cluster: &str) -> Result<Credentials, StateError> {
        let path = self.creds_path(cluster);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StateError::NoCredentials {
                cluster: cluster.to_owned(),
                path,
            }),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// After every process is gone: removes data, configs, credentials and state, keeping
    /// each node's `labnode.log` so a failed lab can still be diagnosed.
    pub fn remove_runtime(&self) -> Result<(), StateError> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Ok(());
        };
        for entry in entries {
            let cluster_dir = entry.map_err(io(&self.root))?.path();
            if !cluster_dir.is_dir() {
                continue;
            }
            remove_file(&cluster_dir.join("creds.json"))?;
            for node in fs::read_dir(&cluster_dir).map_err(io(&cluster_dir))? {
                let node_dir = node.map_err(io(&cluster_dir))?.path();
                if node_dir.is_dir() {
                    remove_dir(&node_dir.join("data"))?;
                    remove_file(&node_dir.join("node.hcl"))?;
                }
            }
        }
        remove_file(&self.state_path())
    }

    /// Deletes the whole home, but only if lab created it; otherwise only lab's files.
    pub fn purge(&self) -> Result<(), StateError> {
        if self.root.join(MARKER).exists() {
            remove_dir(&self.root)
        } else {
            self.remove_runtime()
        }
    }
}

/// Writes to a temporary sibling and renames, so a crash never leaves half a file.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn remove_file(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

fn remove_dir(path: &Path) -> Result<(), StateError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeState {
        NodeState {
            name: name.into(),
            api_addr: "http://127.0.0.1:1".into(),
            api_port: 1,
            cluster_port: 2,
            dir: PathBuf::new(),
            config: PathBuf::new(),
            data: PathBuf::new(),
            log: PathBuf::new(),
            process: None,
            ssh: None,
        }
    }

    fn state() -> State {
        let cluster = |name: &str, nodes: &[&str]| ClusterState {
            name: name.into(),
            seal: SealKind::Shamir,
            dr_role: None,
            nodes: nodes.iter().map(|n| node(n)).collect(),
        };
        State {
            provider: "local".into(),
            topology: "dr".into(),
            phase: Phase::Up,
            labnode: PathBuf::new(),
            clusters: vec![
                cluster("primary", &["node-a", "node-b"]),
                cluster("secondary", &["node-a", "node-c"]),
            ],
            aws: None,
        }
    }

    #[test]
    fn targets_resolve_by_cluster_unique_node_or_qualified_name() {
        let s = state();
        assert_eq!(s.resolve(None).unwrap(), Target::Cluster(0));
        assert_eq!(s.resolve(Some("secondary")).unwrap(), Target::Cluster(1));
        assert_eq!(s.resolve(Some("node-c")).unwrap(), Target::Node(1, 1));
        assert_eq!(s.resolve(Some("secondary/node-a")).unwrap(), Target::Node(1, 0));
        let err = s.resolve(Some("node-a")).unwrap_err().to_string();
        assert!(err.contains("primary/node-a, secondary/node-a"), "{err}");
        let err = s.resolve(Some("node-z")).unwrap_err().to_string();
        assert!(err.contains("known: primary, secondary, primary/node-a"), "{err}");
    }

    #[test]
    fn credentials_are_private_and_runtime_removal_keeps_logs() {
        let dir = tempfile::tempdir().unwrap();
        let home = LabHome::new(dir.path().join("lab"));
        home.save(&state()).unwrap();
        let creds = Credentials {
            unseal_keys_b64: vec!["a".into()],
            unseal_keys_hex: vec!["b".into()],
            unseal_shares: 1,
            unseal_threshold: 1,
            recovery_keys_b64: vec![],
            recovery_keys_hex: vec![],
            recovery_keys_shares: 0,
            recovery_keys_threshold: 0,
            root_token: "t".into(),
        };
        let path = home.save_credentials("primary", &creds).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(home.credentials("primary").unwrap(), creds);
        let node_dir = home.node_dir("primary", "node-a");
        fs::create_dir_all(node_dir.join("data")).unwrap();
        fs::write(node_dir.join("labnode.log"), "log").unwrap();
        home.remove_runtime().unwrap();
        assert!(node_dir.join("labnode.log").exists());
        assert!(!node_dir.join("data").exists());
        assert!(home.load().unwrap().is_none());
        home.purge().unwrap();
        assert!(!home.root().exists());
    }

    #[test]
    fn purge_spares_a_directory_lab_did_not_create() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("precious"), "x").unwrap();
        LabHome::new(dir.path().to_owned()).purge().unwrap();
        assert!(dir.path().join("precious").exists());
    }
}
