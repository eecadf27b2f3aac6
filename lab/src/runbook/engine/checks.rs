//! What the lab looks like to a drill: the wait conditions, the assertions, and the
//! probes both use (health, the active node, voters, DR status). Reads only; no step
//! here changes the lab.

use serde_json::Value;

use super::{lookup, Engine, HEALTH_TIMEOUT};
use crate::api::{Health, NodeClient};
use crate::canary::Canary;
use crate::runbook::format::{Action, AssertKind, WaitKind};
use crate::state::Target;

impl Engine<'_> {
    pub(super) fn condition(
        &self,
        kind: WaitKind,
        on: &str,
        count: Option<u64>,
        mode: Option<&str>,
        token: Option<&str>,
    ) -> Result<(bool, String), String> {
        match kind {
            WaitKind::Canary => {
                let acked = self.canary.as_ref().map_or(0, Canary::acked);
                Ok((acked >= count.unwrap_or(0), format!("canary acked {acked}")))
            }
            WaitKind::Leader => {
                let c = self.cluster_of(on)?;
                Ok(match self.active(c) {
                    Some(n) => (true, format!("leader {}", self.state.qualified(c, n))),
                    None => (false, format!("no active node in {on}")),
                })
            }
            WaitKind::Peers => {
                let voters = self.voters(on, token)?;
                Ok((
                    voters.len() as u64 == count.unwrap_or(0),
                    format!("voters [{}]", voters.join(", ")),
                ))
            }
            WaitKind::Sealed | WaitKind::Unsealed => {
                let want_sealed = kind == WaitKind::Sealed;
                let nodes = self.running_nodes(on)?;
                let states: Vec<String> = nodes
                    .iter()
                    .map(|&(c, n)| {
                        let sealed = self.health(c, n).is_none_or(|h| h.sealed);
                        format!(
                            "{} {}",
                            self.state.qualified(c, n),
                            if sealed { "sealed" } else { "unsealed" }
                        )
                    })
                    .collect();
                let holds = !nodes.is_empty()
                    && states
                        .iter()
                        .all(|s| s.ends_with(if want_sealed { " sealed" } else { " unsealed" }));
                Ok((holds, states.join(", ")))
            }
            WaitKind::Replication => {
                let status = self.dr_status(on)?;
                let seen = status.get("mode").and_then(Value::as_str).unwrap_or("-");
                let state = status.get("state").and_then(Value::as_str).unwrap_or("-");
                let want = mode.unwrap_or_default();
                let streaming = seen != "secondary" || state == "stream-wals";
                Ok((seen == want && streaming, format!("mode {seen}, state {state}")))
            }
            WaitKind::WalConverged => {
                let c = self.cluster_of(on)?;
                let primary = (0..self.state.clusters.len())
                    .filter(|&p| p != c)
                    .find_map(|p| {
                        let status = self.dr_status(&self.state.clusters[p].name).ok()?;
                        (status.get("mode")? == "primary")
                            .then(|| status.get("last_wal").and_then(Value::as_u64))?
                    })
                    .ok_or_else(|| "no DR primary answers".to_owned())?;
                let secondary = self.dr_status(on)?;
                let remote = secondary
                    .get("last_remote_wal")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                Ok((
                    primary > 0 && remote >= primary,
                    format!("primary last_wal {primary}, secondary last_remote_wal {remote}"),
                ))
            }
        }
    }

    pub(super) fn check(&self, action: &Action) -> Result<(bool, String), String> {
        let Action::Assert {
            kind,
            on,
            path,
            field,
            equals,
            count,
            code,
            mode,
            token,
        } = action
        else {
            return Err("not an assertion".to_owned());
        };
        let token = token.as_deref().map(|t| self.expand(t)).transpose()?;
        match kind {
            AssertKind::Secret => {
                let (c, n) = self.node_for(on)?;
                let token = token.unwrap_or_else(|| self.root_token(c));
                let path = self.expand(path.as_deref().unwrap_or_default())?;
                let field = field.as_deref().unwrap_or_default();
                let want = self.expand(equals.as_deref().unwrap_or_default())?;
                let client =
                    NodeClient::new(&self.state.clusters[c].nodes[n].api_addr).map_err(|e| e.to_string())?;
                let (status, body) = client
                    .request("GET", &path, None, Some(&token))
                    .map_err(|e| e.to_string())?;
                let value = lookup(&body, &format!("data.{field}"))
                    .or_else(|| lookup(&body, &format!("data.data.{field}")));
                Ok((
                    status == 200 && value.as_deref() == Some(want.as_str()),
                    format!("{path} {field}: want {want:?}, got HTTP {status} {value:?}"),
                ))
            }
            AssertKind::Peers => {
                let voters = self.voters(on, token.as_deref())?;
                let want = count.unwrap_or(0);
                Ok((
                    voters.len() as u64 == want,
                    format!("want {want} voters, got [{}]", voters.join(", ")),
                ))
            }
            AssertKind::Health => {
                let (c, n) = match self.state.resolve(Some(on)).map_err(|e| e.to_string())? {
                    Target::Node(c, n) => (c, n),
                    Target::Cluster(c) => (
                        c,
                        self.active(c)
                            .or_else(|| self.running_nodes(on).ok()?.first().map(|x| x.1))
                            .unwrap_or(0),
                    ),
                };
                let got = self.health(c, n).map_or(0, |h| h.status);
                let want = code.unwrap_or(0);
                Ok((
                    got == want,
                    format!("{}: want {want}, got {got}", self.state.qualified(c, n)),
                ))
            }
            AssertKind::DrMode => {
                let status = self.dr_status(on)?;
                let got = status
                    .get("mode")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_owned();
                let want = mode.as_deref().unwrap_or_default();
                Ok((got == want, format!("want mode {want}, got {got}")))
            }
        }
    }

    pub(super) fn health(&self, c: usize, n: usize) -> Option<Health> {
        let node = &self.state.clusters[c].nodes[n];
        let process = node.process.as_ref()?;
        if !self.provider.host(node).is_running(process) {
            return None;
        }
        NodeClient::with_timeout(&node.api_addr, HEALTH_TIMEOUT)
            .ok()?
            .health()
            .ok()
    }

    pub(super) fn active(&self, c: usize) -> Option<usize> {
        (0..self.state.clusters[c].nodes.len()).find(|&n| self.health(c, n).is_some_and(|h| h.is_active()))
    }

    pub(super) fn cluster_of(&self, on: &str) -> Result<usize, String> {
        match self.state.resolve(Some(on)).map_err(|e| e.to_string())? {
            Target::Cluster(c) | Target::Node(c, _) => Ok(c),
        }
    }

    /// A node as named, or a cluster's active node.
    pub(super) fn node_for(&self, on: &str) -> Result<(usize, usize), String> {
        match self.state.resolve(Some(on)).map_err(|e| e.to_string())? {
            Target::Node(c, n) => Ok((c, n)),
            Target::Cluster(c) => self
                .active(c)
                .map(|n| (c, n))
                .ok_or_else(|| format!("cluster {on} has no active node")),
        }
    }

    pub(super) fn running_nodes(&self, on: &str) -> Result<Vec<(usize, usize)>, String> {
        let target = self.state.resolve(Some(on)).map_err(|e| e.to_string())?;
        Ok(self
            .state
            .nodes_of(target)
            .into_iter()
            .filter(|&(c, n)| {
                let node = &self.state.clusters[c].nodes[n];
                node.process
                    .as_ref()
                    .is_some_and(|p| self.provider.host(node).is_running(p))
            })
            .collect())
    }

    /// Voters in the raft configuration, asked of the active node (or the node named).
    /// Without a token, every cluster's root token is tried: after DR promotion the
    /// secondary holds the primary's tokens.
    pub(super) fn voters(&self, on: &str, token: Option<&str>) -> Result<Vec<String>, String> {
        let (c, n) = self.node_for(on)?;
        let client = NodeClient::new(&self.state.clusters[c].nodes[n].api_addr).map_err(|e| e.to_string())?;
        let mut tokens: Vec<String> = token.map(str::to_owned).into_iter().collect();
        tokens.push(self.root_token(c));
        tokens.extend((0..self.state.clusters.len()).map(|o| self.root_token(o)));
        let mut last = String::new();
        for token in tokens.iter().filter(|t| !t.is_empty()) {
            match client.raft_servers(token) {
                Ok(servers) => {
                    return Ok(servers
                        .into_iter()
                        .filter(|s| s.voter)
                        .map(|s| s.node_id)
                        .collect())
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    pub(super) fn dr_status(&self, on: &str) -> Result<Value, String> {
        let (c, n) = match self.node_for(on) {
            Ok(node) => node,
            Err(e) => *self.running_nodes(on)?.first().ok_or(e)?,
        };
        NodeClient::with_timeout(&self.state.clusters[c].nodes[n].api_addr, HEALTH_TIMEOUT)
            .and_then(|client| client.dr_status())
            .map_err(|e| e.to_string())
    }
}
