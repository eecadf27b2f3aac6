//! What each node is doing right now, asked of the nodes themselves (never cached), in
//! the `status --json` contract shape and as a table for people.

use std::fmt::Write as _;

use serde::Serialize;

use crate::api::{Health, NodeClient};
use crate::provider::Provider;
use crate::state::{LabHome, State};

/// `status --json` (**contract**): `{"clusters":[{"name","nodes":[...]}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabStatus {
    /// Clusters in bring-up order.
    pub clusters: Vec<ClusterStatus>,
}

/// One cluster's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// Cluster name.
    pub name: String,
    /// Nodes in start order.
    pub nodes: Vec<NodeStatus>,
}

/// One node (**contract** field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// API address (what VAULT_ADDR would be).
    pub api_addr: String,
    /// leader | follower | sealed | removed | down.
    pub state: NodeRole,
    /// Voting raft member, per the active node's peer list (false when unknown).
    pub voter: bool,
    /// Sealed; a down node counts as sealed (it holds no key).
    pub sealed: bool,
}

/// The role a node plays, from its process and `sys/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Active node of its cluster.
    Leader,
    /// Unsealed standby.
    Follower,
    /// Running but sealed or not initialized.
    Sealed,
    /// Running, but taken out of its raft cluster (`remove-peer`): it serves nothing.
    Removed,
    /// No process, or not answering.
    Down,
}

/// The status `sys/health` answers on a node removed from its raft cluster.
const HEALTH_REMOVED: u16 = 530;

impl NodeRole {
    /// The role and sealed flag `sys/health` reports (`None`: no answer, so down and sealed).
    fn of(health: Option<&Health>) -> (NodeRole, bool) {
        match health {
            None => (NodeRole::Down, true),
            Some(h) if h.is_active() => (NodeRole::Leader, h.sealed),
            Some(h) if h.is_unsealed_member() => (NodeRole::Follower, h.sealed),
            Some(h) if h.status == HEALTH_REMOVED => (NodeRole::Removed, h.sealed),
            Some(h) => (NodeRole::Sealed, h.sealed),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            NodeRole::Leader => "leader",
            NodeRole::Follower => "follower",
            NodeRole::Sealed => "sealed",
            NodeRole::Removed => "removed",
            NodeRole::Down => "down",
        }
    }
}

/// Asks every node of the lab for its health, and each cluster's active node for voters.
pub fn collect(state: &State, home: &LabHome, provider: &dyn Provider) -> LabStatus {
    let clusters = state
        .clusters
        .iter()
        .map(|cluster| {
            let mut nodes: Vec<NodeStatus> = cluster
                .nodes
                .iter()
                .map(|node| {
                    let running = node
                        .process
                        .as_ref()
                        .is_some_and(|p| provider.host(node).is_running(p));
                    let health = running
                        .then(|| NodeClient::new(&node.api_addr).and_then(|c| c.health()).ok())
                        .flatten();
                    let (state, sealed) = NodeRole::of(health.as_ref());
                    NodeStatus {
                        name: node.name.clone(),
                        api_addr: node.api_addr.clone(),
                        state,
                        voter: false,
                        sealed,
                    }
                })
                .collect();
            let leader = nodes.iter().find(|n| n.state == NodeRole::Leader);
            let token = home.credentials(&cluster.name).ok().map(|c| c.root_token);
            let peers = leader
                .zip(token)
                .and_then(|(leader, token)| NodeClient::new(&leader.api_addr).ok().map(|c| (c, token)))
                .and_then(|(client, token)| client.raft_servers(&token).ok())
                .unwrap_or_default();
            for node in &mut nodes {
                node.voter = peers.iter().any(|p| p.node_id == node.name && p.voter);
            }
            ClusterStatus {
                name: cluster.name.clone(),
                nodes,
            }
        })
        .collect();
    LabStatus { clusters }
}

impl LabStatus {
    /// The index of a cluster's active node, if one answers as active.
    pub fn leader_of(&self, cluster: usize) -> Option<usize> {
        self.clusters
            .get(cluster)?
            .nodes
            .iter()
            .position(|n| n.state == NodeRole::Leader)
    }

    /// An aligned table: cluster, node, address, state, voter, sealed.
    pub fn table(&self) -> String {
        let mut rows = vec![["CLUSTER", "NODE", "ADDRESS", "STATE", "VOTER", "SEALED"].map(String::from)];
        for cluster in &self.clusters {
            for node in &cluster.nodes {
                rows.push([
                    cluster.name.clone(),
                    node.name.clone(),
                    node.api_addr.clone(),
                    node.state.as_str().to_owned(),
                    node.voter.to_string(),
                    node.sealed.to_string(),
                ]);
            }
        }
        let widths: Vec<usize> = (0..6)
            .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_health_status() {
        let health = |status: u16, sealed: bool| Health {
            status,
            standby: status == 429,
            sealed,
        };
        assert_eq!(NodeRole::of(None), (NodeRole::Down, true));
        assert_eq!(NodeRole::of(Some(&health(200, false))), (NodeRole::Leader, false));
        assert_eq!(
            NodeRole::of(Some(&health(429, false))),
            (NodeRole::Follower, false)
        );
        assert_eq!(NodeRole::of(Some(&health(503, true))), (NodeRole::Sealed, true));
        assert_eq!(NodeRole::of(Some(&health(501, true))), (NodeRole::Sealed, true));
        assert_eq!(
            NodeRole::of(Some(&health(530, false))),
            (NodeRole::Removed, false)
        );
        assert_eq!(NodeRole::Removed.as_str(), "removed");
        assert_eq!(serde_json::to_value(NodeRole::Removed).unwrap(), "removed");
    }

    #[test]
    fn json_and_table_shapes() {
        let status = LabStatus {
            clusters: vec![ClusterStatus {
                name: "primary".into(),
                nodes: vec![NodeStatus {
                    name: "node-a".into(),
                    api_addr: "http://127.0.0.1:8200".into(),
                    state: NodeRole::Leader,
                    voter: true,
                    sealed: false,
                }],
            }],
        };
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#"{"clusters":[{"name":"primary","nodes":[{"name":"node-a","api_addr":"http://127.0.0.1:8200","state":"leader","voter":true,"sealed":false}]}]}"#
        );
        assert_eq!(
            status.table(),
            "CLUSTER  NODE    ADDRESS                STATE   VOTER  SEALED\n\
             primary  node-a  http://127.0.0.1:8200  leader  true   false\n"
        );
        assert_eq!(status.leader_of(0), Some(0));
    }
}
