//! Lab shapes: which clusters exist, which nodes they hold, and the ports each node gets.
//!
//! The built-in shapes (`single`, `ha3`, `ha5`, `dr`) are the TOML files under
//! `scenarios/topologies/`, embedded at build time, so a user's own file uses exactly the
//! same format and checks as the built-ins.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The API port of the first node when neither `--base-port` nor the file sets one.
pub const DEFAULT_BASE_PORT: u16 = 8200;

/// Distance between the API ports of consecutive nodes; the cluster port is API + 1.
const PORT_STRIDE: u16 = 10;

/// The built-in topologies by name, as shipped in `scenarios/topologies/`.
const BUILT_INS: &[(&str, &str)] = &[
    ("single", include_str!("../../scenarios/topologies/single.toml")),
    ("ha3", include_str!("../../scenarios/topologies/ha3.toml")),
    ("ha5", include_str!("../../scenarios/topologies/ha5.toml")),
    ("dr", include_str!("../../scenarios/topologies/dr.toml")),
];

/// Why a topology could not be loaded; every message names the file (or built-in) first.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// Neither a built-in name nor an existing file.
    #[error("unknown topology \"{0}\": not a built-in (single, ha3, ha5, dr) and no such file")]
    Unknown(String),
    /// The file exists but could not be read.
    #[error("{}: cannot read topology: {source}", path.display())]
    Read {
        /// The topology file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Not valid TOML, or a field that the format does not have (the message names it).
    #[error("{origin}: {message}")]
    Parse {
        /// File path or `built-in NAME`.
        origin: String,
        /// The TOML parser's explanation, with line and column.
        message: String,
    },
    /// Valid TOML describing an impossible lab (duplicate names, ports past 65535...).
    #[error("{origin}: {message}")]
    Invalid {
        /// File path or `built-in NAME`.
        origin: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// How a cluster's root key is protected; decides the `seal` stanza and how bring-up unseals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealKind {
    /// Unseal keys split with Shamir's scheme; lab unseals with 3 of 5 keys.
    #[default]
    Shamir,
    /// Auto-unseal through AWS KMS; needs a provider that supplies a KMS (LocalStack, AWS).
    Awskms,
}

/// The DR replication role a cluster is prepared for; bring-up does not enable replication,
/// drills do, so this is recorded for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrRole {
    /// The system of record.
    Primary,
    /// Will be enabled as the DR secondary of the primary.
    Secondary,
}

/// A topology file as written: the raw, unvalidated shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    description: Option<String>,
    base_port: Option<u16>,
    clusters: Vec<ClusterFile>,
}

/// One `[[clusters]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    name: String,
    nodes: Vec<String>,
    #[serde(default)]
    seal: SealKind,
    dr_role: Option<DrRole>,
    log_level: Option<String>,
}

/// A validated lab shape with every port assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The built-in name or the file path it was loaded from.
    pub name: String,
    /// One line for humans, shown by `up`.
    pub description: String,
    /// Clusters in bring-up order.
    pub clusters: Vec<Cluster>,
}

/// One Vault cluster: its own raft, its own init and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `cluster_name` in HCL and the name users pass to `env`, `creds`, `fault kill`.
    pub name: String,
    /// Nodes in start order; the first one is initialized.
    pub nodes: Vec<Node>,
    /// How the cluster is sealed.
    pub seal: SealKind,
    /// DR role the cluster is prepared for, if any.
    pub dr_role: Option<DrRole>,
    /// `log_level` for every node of the cluster.
    pub log_level: String,
}

/// One server of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Raft `node_id`, unique in its cluster (the seed's node-a, node-b ...).
    pub name: String,
    /// API listener port.
    pub api_port: u16,
    /// Cluster (raft) listener port, API + 1.
    pub cluster_port: u16,
}

impl Topology {
    /// Loads a built-in by name or a TOML file by path, then assigns ports starting at
    /// `base_port` (the flag), else the file's `base_port`, else 8200.
    pub fn load(spec: &str, base_port: Option<u16>) -> Result<Topology, TopologyError> {
        if let Some((name, text)) = BUILT_INS.iter().find(|(name, _)| *name == spec) {
            return Topology::from_toml(text, &format!("built-in {name}"), name, base_port);
        }
        let path = Path::new(spec);
        if !path.exists() {
            return Err(TopologyError::Unknown(spec.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Topology::from_toml(&text, spec, spec, base_port)
    }

    /// Parses and validates topology text; `origin` names it in errors.
    pub fn from_toml(
        text: &str,
        origin: &str,
        name: &str,
        base_port: Option<u16>,
    ) -> Result<Topology, TopologyError> {
        let file: TopologyFile = toml::from_str(text).map_err(|e| TopologyError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |message: String| TopologyError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        if file.clusters.is_empty() {
            return Err(invalid(
                "no clusters: add at least one [[clusters]] table".to_owned(),
            ));
        }
        let base = base_port.or(file.base_port).unwrap_or(DEFAULT_BASE_PORT);
        let total: usize = file.clusters.iter().map(|c| c.nodes.len()).sum();
        let last_port = u32::from(base) + u32::from(PORT_STRIDE) * (total.max(1) as u32 - 1) + 1;
        if base == 0 || last_port > u32::from(u16::MAX) {
            return Err(invalid(format!(
                "base port {base} does not fit {total} nodes (each takes {PORT_STRIDE} ports, the last \
                 would need {last_port}); choose a base port between 1 and {}",
                u32::from(u16::MAX) + 1 - u32::from(PORT_STRIDE) * total as u32
            )));
        }
        let mut cluster_names = HashSet::new();
        let mut all_nodes = HashSet::new();
        let mut next_port = base;
        let mut clusters = Vec::new();
        for (index, cluster) in file.clusters.into_iter().enumerate() {
            let at = format!("clusters[{index}]");
            check_name(&cluster.name)
                .map_err(|why| invalid(format!("{at}.name \"{}\" {why}", cluster.name)))?;
            if !cluster_names.insert(cluster.name.clone()) {
                return Err(invalid(format!(
                    "{at}.name: cluster \"{}\" is defined twice; cluster names must be unique",
                    cluster.name
                )));
            }
            if cluster.nodes.is_empty() {
                return Err(invalid(format!(
                    "{at}.nodes is empty: a cluster needs at least one node"
                )));
            }
            let mut names = HashSet::new();
            let mut nodes = Vec::new();
            for node in cluster.nodes {
                check_name(&node).map_err(|why| invalid(format!("{at}.nodes: \"{node}\" {why}")))?;
                if !names.insert(node.clone()) {
                    return Err(invalid(format!(
                        "{at}.nodes: \"{node}\" appears twice; node names must be unique in a cluster"
                    )));
                }
                all_nodes.insert(node.clone());
                nodes.push(Node {
                    name: node,
                    api_port: next_port,
                    cluster_port: next_port + 1,
                });
                next_port = next_port.saturating_add(PORT_STRIDE);
            }
            let log_level = cluster.log_level.unwrap_or_else(|| "info".to_owned());
            if !["trace", "debug", "info", "warn", "error"].contains(&log_level.as_str()) {
                return Err(invalid(format!(
                    "{at}.log_level \"{log_level}\": expected trace, debug, info, warn or error"
                )));
            }
            clusters.push(Cluster {
                name: cluster.name,
                nodes,
                seal: cluster.seal,
                dr_role: cluster.dr_role,
                log_level,
            });
        }
        if let Some(clash) = clusters.iter().find(|c| all_nodes.contains(&c.name)) {
            return Err(invalid(format!(
                "cluster \"{}\" has the same name as a node; `lab env {0}` would be ambiguous",
                clash.name
            )));
        }
        Ok(Topology {
            name: name.to_owned(),
            description: file.description.unwrap_or_default(),
            clusters,
        })
    }
}

/// Names end up in paths, HCL and command lines, so keep them to DNS-label characters.
fn check_name(name: &str) -> Result<(), &'static str> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err("is not a valid name: use 1-63 lowercase letters, digits and '-', starting with a letter or digit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(t: &Topology) -> Vec<(String, String, u16, u16)> {
        t.clusters
            .iter()
            .flat_map(|c| {
                c.nodes
                    .iter()
                    .map(|n| (c.name.clone(), n.name.clone(), n.api_port, n.cluster_port))
            })
            .collect()
    }

    #[test]
    fn built_ins_load_with_seed_names_and_distinct_ports() {
        let ha5 = Topology::load("ha5", None).unwrap();
        let names: Vec<_> = ha5.clusters[0].nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node-a", "node-b", "node-c", "node-d", "node-e"]);
        assert_eq!(ha5.clusters[0].nodes[4].api_port, 8240);
        let dr = Topology::load("dr", Some(9000)).unwrap();
        let p = ports(&dr);
        assert_eq!(p[0], ("primary".into(), "node-a".into(), 9000, 9001));
        assert_eq!(p[3], ("secondary".into(), "node-a".into(), 9030, 9031));
        assert_eq!(dr.clusters[1].dr_role, Some(DrRole::Secondary));
        assert_eq!(Topology::load("single", None).unwrap().clusters[0].nodes.len(), 1);
    }

    #[test]
    fn unknown_field_is_named() {
        let err = Topology::from_toml(
            "[[clusters]]\nname = \"a\"\nnodez = [\"x\"]\n",
            "t.toml",
            "t",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("t.toml: "), "{err}");
        assert!(err.contains("nodez"), "{err}");
    }

    #[test]
    fn invalid_shapes_are_explained() {
        let cases = [
            ("clusters = []", "no clusters"),
            (
                "[[clusters]]\nname = \"a\"\nnodes = []",
                "clusters[0].nodes is empty",
            ),
            (
                "[[clusters]]\nname = \"a\"\nnodes = [\"n\", \"n\"]",
                "appears twice",
            ),
            ("[[clusters]]\nname = \"A\"\nnodes = [\"n\"]", "not a valid name"),
            (
                "[[clusters]]\nname = \"n\"\nnodes = [\"n\"]",
                "same name as a node",
            ),
            (
                "[[clusters]]\nname = \"a\"\nnodes = [\"n\"]\nlog_level = \"loud\"",
                "log_level",
            ),
            (
                "base_port = 65530\n[[clusters]]\nname = \"a\"\nnodes = [\"n\", \"m\"]",
                "does not fit",
            ),
        ];
        for (text, expected) in cases {
            let err = Topology::from_toml(text, "f", "f", None).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn flag_beats_file_base_port() {
        let text = "base_port = 9100\n[[clusters]]\nname = \"a\"\nnodes = [\"n\"]";
        assert_eq!(
            Topology::from_toml(text, "f", "f", None).unwrap().clusters[0].nodes[0].api_port,
            9100
        );
        let t = Topology::from_toml(text, "f", "f", Some(9200)).unwrap();
        assert_eq!(t.clusters[0].nodes[0].api_port, 9200);
    }

    #[test]
    fn unknown_name_is_not_a_file() {
        let err = Topology::load("ha7", None).unwrap_err().to_string();
        assert!(err.contains("unknown topology \"ha7\""), "{err}");
    }
}
