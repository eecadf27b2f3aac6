//! Multi-node Raft clusters of labnode processes: one builder for every multi-node test. The
//! nodes join by `retry_join` (every node naming every other, or all naming the first) or by
//! hand, are unsealed with the first node's keys, and are killed when the cluster drops.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::node::{Node, NodeConfig};
use crate::server::{Reply, Server};

/// How long cluster-forming steps may take before a test fails.
pub const FORM_DEADLINE: Duration = Duration::from_secs(45);

/// How the nodes' configs find the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryJoin {
    /// Every node lists every other node (the course's layout).
    Each,
    /// Every node after the first lists the first.
    First,
    /// No stanzas: the test joins by `operator raft join` (or keeps single nodes).
    Manual,
}

/// Builds a [`Cluster`]: names, how they join, key shares, and a config of the test's own.
pub struct ClusterBuilder<'a> {
    labnode: &'a Path,
    names: Vec<String>,
    join: RetryJoin,
    shares: u8,
    threshold: u8,
}

impl<'a> ClusterBuilder<'a> {
    /// Nodes named `names`, each listing every other in `retry_join`, 3 shares, threshold 2
    /// (so joiners really combine the leader's shares).
    pub fn new(labnode: &'a Path, names: &[&str]) -> ClusterBuilder<'a> {
        ClusterBuilder {
            labnode,
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            join: RetryJoin::Each,
            shares: 3,
            threshold: 2,
        }
    }

    /// `size` nodes named `node1`..`nodeN`.
    pub fn sized(labnode: &'a Path, size: usize) -> ClusterBuilder<'a> {
        let names: Vec<String> = (1..=size).map(|i| format!("node{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        ClusterBuilder::new(labnode, &names)
    }

    pub fn join(mut self, join: RetryJoin) -> Self {
        self.join = join;
        self
    }

    /// Key shares and threshold of the first node's `sys/init`.
    pub fn keys(mut self, shares: u8, threshold: u8) -> Self {
        self.shares = shares;
        self.threshold = threshold;
        self
    }

    /// The nodes, configured and not started.
    pub fn build(&self) -> Vec<Node> {
        let nodes: Vec<Node> = self.names.iter().map(|n| Node::new(self.labnode, n)).collect();
        let addrs: Vec<String> = nodes.iter().map(Node::addr).collect();
        for (i, node) in nodes.iter().enumerate() {
            let retry_join = match self.join {
                RetryJoin::Each => addrs
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, a)| a.clone())
                    .collect(),
                RetryJoin::First if i > 0 => vec![addrs[0].clone()],
                RetryJoin::First | RetryJoin::Manual => Vec::new(),
            };
            node.configure(&NodeConfig {
                retry_join,
                ..NodeConfig::default()
            });
        }
        nodes
    }

    /// The nodes, each running (sealed, uninitialized), started one after another.
    pub async fn start(&self) -> Vec<Node> {
        let mut nodes = self.build();
        for node in &mut nodes {
            node.start().await;
        }
        nodes
    }

    /// A formed cluster: the first node initialized and unsealed, the others joined (by
    /// `retry_join`), unsealed with its keys and voters.
    pub async fn form(&self) -> Cluster {
        assert_ne!(self.join, RetryJoin::Manual, "a manual join is the test's to do");
        let nodes = self.start().await;
        let (keys, root) = nodes[0].srv().init(self.shares, self.threshold).await;
        let threshold = usize::from(self.threshold);
        nodes[0].srv().unseal(&keys[..threshold]).await;
        let cluster = Cluster {
            nodes,
            root,
            keys,
            threshold,
        };
        // One joiner after another: each join is a membership change of its own.
        for node in &cluster.nodes[1..] {
            node.srv().wait_initialized().await;
            unseal_member(node.srv(), &cluster.keys[..threshold]).await;
        }
        let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        cluster.wait_members(&names, &names).await;
        cluster
    }
}

/// A formed cluster and its credentials. Every process is killed on drop.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub root: String,
    /// Unseal keys (hex) of the first node's `sys/init`.
    pub keys: Vec<String>,
    /// How many of `keys` unseal.
    pub threshold: usize,
}

impl Cluster {
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The running process of node `i` (0-based); panics if it is down.
    pub fn server(&self, i: usize) -> &Server {
        self.nodes[i].srv()
    }

    /// The running processes.
    pub fn running(&self) -> impl Iterator<Item = &Server> {
        self.nodes.iter().filter_map(|n| n.server.as_ref())
    }

    /// Waits until some node is active and returns it.
    pub async fn active(&self) -> &Server {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for s in self.running() {
                if s.is_active().await {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no active node after 30 s; {} log:\n{}",
                self.nodes[0].name,
                self.nodes[0].server.as_ref().map(Server::log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until one of `among` reports itself active (health 200) and every other
    /// running node in `among` agrees on it; returns its name.
    pub async fn wait_leader(&self, among: &[&str], deadline: Duration) -> String {
        let until = Instant::now() + deadline;
        loop {
            let mut active = Vec::new();
            let mut seen = Vec::new();
            for name in among {
                let node = self.node(name);
                let h = node.srv().request("GET", "sys/health", None, None).await;
                if h.status == 200 {
                    active.push(node.name.clone());
                }
                let l = node.srv().request("GET", "sys/leader", None, None).await;
                seen.push(l.body["leader_address"].as_str().unwrap_or_default().to_string());
            }
            if let [leader] = active.as_slice() {
                let addr = self.node(leader).addr();
                if seen.iter().all(|s| *s == addr) {
                    return leader.clone();
                }
            }
            assert!(
                Instant::now() < until,
                "no agreed leader among {among:?} within {deadline:?}: active {active:?}, seen {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the raft configuration (read on a running node) lists exactly `members`,
    /// with exactly `voters` of them voting.
    pub async fn wait_members(&self, members: &[&str], voters: &[&str]) {
        let until = Instant::now() + FORM_DEADLINE;
        let mut want: Vec<(String, bool)> = members
            .iter()
            .map(|m| (m.to_string(), voters.contains(m)))
            .collect();
        want.sort();
        let mut last = Value::Null;
        while Instant::now() < until {
            for server in self.running() {
                let r = server
                    .request("GET", "sys/storage/raft/configuration", Some(&self.root), None)
                    .await;
                if r.status != 200 {
                    last = r.body;
                    continue;
                }
                let got = peers(&r.body);
                if got.iter().map(|p| (p.0.clone(), p.3)).collect::<Vec<_>>() == want {
                    return;
                }
                last = r.body;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("membership never became {want:?}; last configuration: {last}");
    }

    /// Mounts a KV v1 engine at `kv/` (through the first node).
    pub async fn mount_kv(&self) {
        let r = self
            .server(0)
            .request(
                "POST",
                "sys/mounts/kv",
                Some(&self.root),
                Some(json!({"type": "kv", "options": {"version": "1"}})),
            )
            .await;
        assert_eq!(r.status, 204, "mount kv: {r:?}");
    }

    /// SIGKILLs every node.
    pub fn kill_all(&mut self) {
        self.nodes.iter_mut().for_each(Node::kill);
    }

    /// SIGTERMs every node and waits for them to exit.
    pub fn stop_all(&mut self) {
        self.nodes.iter_mut().for_each(Node::stop);
    }

    /// Starts every stopped node again (sealed).
    pub async fn restart_all(&mut self) {
        let stopped = self.nodes.iter_mut().filter(|n| n.server.is_none());
        futures::future::join_all(stopped.map(Node::start)).await;
    }

    /// Unseals every running node with `keys`, then waits for an active node.
    pub async fn unseal_all(&self, keys: &[String]) {
        futures::future::join_all(self.running().map(|s| s.submit_unseal_keys(keys))).await;
        self.active().await;
    }
}

/// `(node_id, address, leader, voter)` of a `sys/storage/raft/configuration` answer, sorted.
pub fn peers(body: &Value) -> Vec<(String, String, bool, bool)> {
    let mut out: Vec<_> = body["data"]["config"]["servers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["node_id"].as_str().unwrap_or_default().to_string(),
                s["address"].as_str().unwrap_or_default().to_string(),
                s["leader"].as_bool().unwrap_or(false),
                s["voter"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

/// Submits shares until the node is unsealed, then waits until it answers as an unsealed
/// member (active or standby).
///
/// While another membership change is in flight the leader refuses a join answer (500 "the
/// cluster is already undergoing a configuration change", see
/// `t41_ha_cluster::concurrent_joins_are_not_refused`), and a challenge a standby handed out
/// while it knew no leader is refused too ("join refused by the leader"); the joiner then
/// drops its challenge and `retry_join` fetches a new one, so this waits for it and unseals
/// again.
pub async fn unseal_member(server: &Server, keys: &[String]) {
    for _ in 0..5 {
        match try_unseal(server, keys).await {
            Ok(()) => return,
            Err(r) => {
                let body = r.body.to_string();
                assert!(
                    r.status == 500
                        && (body.contains("already undergoing a configuration change")
                            || body.contains("join refused by the leader")),
                    "unseal {}: {r:?}\n{}",
                    server.addr,
                    server.log()
                );
                server.wait_initialized().await;
            }
        }
    }
    panic!("{} could not join after 5 attempts", server.addr);
}

/// One round of shares; `Err` with the refusal when the join answer was refused.
async fn try_unseal(server: &Server, keys: &[String]) -> Result<(), Reply> {
    let r = server
        .request("PUT", "sys/unseal", None, Some(json!({ "reset": true })))
        .await;
    assert_eq!(r.status, 200, "unseal reset {}: {r:?}", server.addr);
    for key in keys {
        let r = server
            .request("PUT", "sys/unseal", None, Some(json!({ "key": key })))
            .await;
        if r.status != 200 {
            return Err(r);
        }
        if r.body["sealed"] == json!(false) {
            let until = Instant::now() + FORM_DEADLINE;
            loop {
                let h = server
                    .request("GET", "sys/health?standbyok=true", None, None)
                    .await;
                if h.status == 200 {
                    return Ok(());
                }
                assert!(Instant::now() < until, "{} not serving: {h:?}", server.addr);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("{} still sealed after {} keys", server.addr, keys.len());
}
