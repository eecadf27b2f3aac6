//! Integrated Storage clustering as the core sees it: the join handshake
//! (challenge / answer), membership endpoints, autopilot-lite and step-down.
//!
//! A joining node proves it holds the cluster's unseal key before it is let in:
//! the leader encrypts a random answer with that key, and only a node unsealed
//! with the same key shares can send it back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::fields::Fields;
use super::seal_state::SEAL_CONFIG_PATH;
use super::{Core, CoreError, Response};
use crate::barrier::{open, random_key, seal_bytes, ROOT_KEY_PATH};
use crate::seal::SealConfig;

/// How long a challenge stays answerable.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// How long a learner must stay caught up before autopilot makes it a voter.
const STABILIZATION: Duration = Duration::from_secs(1);
/// Entries a learner may lag and still count as caught up.
const CAUGHT_UP_LAG: u64 = 32;
/// How long a joiner waits for the leader's data after its answer was accepted.
const JOIN_SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a join waits for another membership change to finish.
const MEMBERSHIP_BUSY_WAIT: Duration = Duration::from_secs(15);
/// Where the intent to stay a non-voter is recorded, so autopilot leaves the node alone.
const NON_VOTER_PREFIX: &str = "core/raft/non-voter/";

/// Cluster-port routes for members only: a removed node learns of its removal.
pub fn internal_router(core: std::sync::Arc<Core>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    axum::Router::new()
        .route(
            "/cluster/removed",
            axum::routing::post(
                |axum::extract::State(core): axum::extract::State<std::sync::Arc<Core>>| async move {
                    match core.mark_removed().await {
                        Ok(()) => StatusCode::NO_CONTENT.into_response(),
                        Err(e) => (
                            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                            e.to_string(),
                        )
                            .into_response(),
                    }
                },
            ),
        )
        .with_state(core)
}

/// What opens a join challenge.
#[derive(Clone, Copy)]
pub enum JoinKey<'a> {
    /// The cluster's unseal key, combined from the operator's shares.
    Shamir(&'a [u8]),
    /// The shared KMS key (auto-unseal): no operator step.
    Kms,
}

/// Where and how to reach a leader candidate.
#[derive(Debug, Clone, Default)]
pub struct JoinTarget {
    pub leader_api_addr: String,
    pub leader_ca_cert: Option<String>,
    pub leader_client_cert: Option<String>,
    pub leader_client_key: Option<String>,
    pub leader_tls_servername: Option<String>,
}

/// A challenge received from a leader, waiting for the operator's unseal keys.
pub struct PendingJoin {
    leader_api_addr: String,
    client: reqwest::Client,
    challenge: Vec<u8>,
    pub(crate) seal_config: SealConfig,
    non_voter: bool,
}

/// Join and membership state kept by the core.
#[derive(Default)]
pub struct HaState {
    pub(crate) pending_join: Mutex<Option<PendingJoin>>,
    challenges: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    caught_up_since: Mutex<HashMap<String, Instant>>,
}

fn join_client(target: &JoinTarget) -> Result<(reqwest::Client, String), CoreError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10));
    if let Some(ca) = &target.leader_ca_cert {
        let cert = reqwest::Certificate::from_pem(ca.as_bytes())
            .map_err(|e| CoreError::invalid(format!("leader_ca_cert is not a PEM certificate: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    if let (Some(cert), Some(key)) = (&target.leader_client_cert, &target.leader_client_key) {
        let identity = reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
            .map_err(|e| CoreError::invalid(format!("leader client certificate or key is invalid: {e}")))?;
        builder = builder.identity(identity);
    }
    let mut base = target.leader_api_addr.trim_end_matches('/').to_string();
    if let Some(name) = &target.leader_tls_servername {
        let url =
            reqwest::Url::parse(&base).map_err(|e| CoreError::invalid(format!("leader_api_addr: {e}")))?;
        let port = url.port_or_known_default().unwrap_or(8200);
        let addrs: Vec<std::net::SocketAddr> =
            std::net::ToSocketAddrs::to_socket_addrs(&(url.host_str().unwrap_or(""), port))
                .map_err(|e| CoreError::invalid(format!("resolving {base}: {e}")))?
                .collect();
        builder = builder.resolve_to_addrs(name, &addrs);
        base = format!("{}://{name}:{port}", url.scheme());
    }
    let client = builder
        .build()
        .map_err(|e| CoreError::Internal(format!("building join client: {e}")))?;
    Ok((client, base))
}

/// Adds a learner, waiting out membership changes already in flight (several nodes
/// joining at once, or autopilot promoting one) instead of refusing the join.
async fn add_learner_when_free(
    raft: &crate::raft::RaftStore,
    name: &str,
    cluster_addr: &str,
    api_addr: &str,
) -> Result<(), CoreError> {
    let deadline = Instant::now() + MEMBERSHIP_BUSY_WAIT;
    loop {
        match raft.add_learner(name, cluster_addr, api_addr).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_membership_busy() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(CoreError::Internal(format!(
                    "adding {name} to the raft cluster: {e}"
                )))
            }
        }
    }
}

impl Core {
    /// Leader side of `bootstrap/challenge`: a random answer sealed with the unseal key.
    pub async fn raft_challenge(&self, server_id: &str) -> Result<Response, CoreError> {
        if server_id.is_empty() {
            return Err(CoreError::invalid("no server_id provided"));
        }
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let status = raft.status().map_err(|e| CoreError::Internal(e.to_string()))?;
        if status.members.iter().any(|m| m.name == server_id) {
            return Err(CoreError::invalid(format!(
                "node_id \"{server_id}\" is already a member of this raft cluster; node IDs must be unique (remove the old peer first)"
            )));
        }
        let config = self.seal_config().await?.ok_or(CoreError::NotInitialized)?;
        // A joiner asks every candidate at once and standbys forward here, so several
        // challenges for one node arrive together: they must all hide the same answer, or
        // the one the joiner answers may have been replaced by a later one.
        let answer = {
            let mut challenges = self.ha.challenges.lock().await;
            challenges.retain(|_, (_, at)| at.elapsed() < CHALLENGE_TTL);
            challenges
                .entry(server_id.to_string())
                .or_insert_with(|| (random_key(), Instant::now()))
                .0
                .clone()
        };
        let challenge = match &self.auto_seal {
            Some(kms) => kms
                .encrypt(&answer)
                .await
                .map_err(|e| CoreError::Unavailable(e.to_string()))?,
            None => {
                let key = self.unseal_key.read().await.clone().ok_or(CoreError::Sealed)?;
                seal_bytes(&key, server_id.as_bytes(), &answer)
            }
        };
        Ok(Response::data(json!({
            "challenge": base64::engine::general_purpose::STANDARD.encode(challenge),
            "seal_config": {
                "type": config.seal_type,
                "secret_shares": config.secret_shares,
                "secret_threshold": config.secret_threshold,
                "pgp_keys": null,
                "nonce": "",
                "backup": false,
            },
        })))
    }

    /// Leader side of `bootstrap/answer`: checks the answer and adds the node as a learner.
    pub async fn raft_answer(&self, data: &serde_json::Map<String, Value>) -> Result<Response, CoreError> {
        let f = Fields(data);
        let server_id = f
            .string("server_id")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CoreError::invalid("no server_id provided"))?;
        let answer = f
            .string("answer")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CoreError::invalid("no answer provided"))?;
        let cluster_addr = f
            .string("cluster_addr")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CoreError::invalid("no cluster_addr provided"))?;
        let api_addr = f.string("api_addr").unwrap_or_default();
        let non_voter = f.bool("non_voter")?.unwrap_or(false);
        let given = base64::engine::general_purpose::STANDARD
            .decode(answer)
            .map_err(|_| CoreError::invalid("invalid answer given"))?;
        let expected = {
            let mut challenges = self.ha.challenges.lock().await;
            challenges.retain(|_, (_, at)| at.elapsed() < CHALLENGE_TTL);
            challenges.remove(&server_id).map(|(a, _)| a)
        };
        let expected =
            expected.ok_or_else(|| CoreError::invalid("no expected answer for the server id provided"))?;
        if !bool::from(expected.ct_eq(&given)) {
            return Err(CoreError::invalid("invalid answer given"));
        }
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let cluster_addr = cluster_addr
            .split_once("://")
            .map(|(_, r)| r.to_string())
            .unwrap_or(cluster_addr);
        if non_voter {
            self.barrier()
                .put(&format!("{NON_VOTER_PREFIX}{server_id}"), vec![])
                .await?;
        }
        add_learner_when_free(raft, &server_id, &cluster_addr, &api_addr).await?;
        tracing::info!(node = %server_id, cluster_addr = %cluster_addr, "raft peer joined as a learner");
        let status = raft.status().map_err(|e| CoreError::Internal(e.to_string()))?;
        let peers: Vec<Value> = status
            .members
            .iter()
            .map(|m| json!({ "id": m.name, "address": m.cluster_addr, "suffrage": if m.voter { 0 } else { 1 } }))
            .collect();
        let tls = self
            .barrier()
            .get(super::CLUSTER_TLS_PATH)
            .await?
            .ok_or_else(|| CoreError::Internal("cluster TLS material missing from storage".into()))?;
        let tls: Value = serde_json::from_slice(&tls).map_err(|e| CoreError::Internal(e.to_string()))?;
        Ok(Response::data(json!({ "peers": peers, "tls_keyring": tls })))
    }

    /// Joiner side: asks every candidate for a challenge at once; the first answer wins.
    pub async fn raft_join(&self, targets: Vec<JoinTarget>, non_voter: bool) -> Result<bool, CoreError> {
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        if self.is_initialized().await?
            || raft
                .is_bootstrapped()
                .map_err(|e| CoreError::Internal(e.to_string()))?
        {
            return Ok(true);
        }
        if self.ha.pending_join.lock().await.is_some() {
            return Ok(true);
        }
        if targets.is_empty() {
            return Err(CoreError::invalid("no leader address given"));
        }
        let server_id = self.info().node_id.clone();
        let attempts = targets.into_iter().map(|target| {
            let server_id = server_id.clone();
            Box::pin(async move {
                let (client, base) = join_client(&target)?;
                let resp = client
                    .put(format!("{base}/v1/sys/storage/raft/bootstrap/challenge"))
                    .json(&json!({ "server_id": server_id }))
                    .send()
                    .await
                    .map_err(|e| CoreError::Internal(format!("{}: {e}", target.leader_api_addr)))?;
                let status = resp.status();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                if !status.is_success() {
                    return Err(CoreError::Internal(format!(
                        "{}: {status}: {}",
                        target.leader_api_addr, body["errors"]
                    )));
                }
                let challenge = body["data"]["challenge"]
                    .as_str()
                    .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
                    .ok_or_else(|| {
                        CoreError::Internal(format!("{}: malformed challenge", target.leader_api_addr))
                    })?;
                let seal_config: SealConfig = serde_json::from_value(body["data"]["seal_config"].clone())
                    .map_err(|e| {
                        CoreError::Internal(format!("{}: seal config: {e}", target.leader_api_addr))
                    })?;
                Ok(PendingJoin {
                    leader_api_addr: base,
                    client,
                    challenge,
                    seal_config,
                    non_voter,
                })
            })
        });
        let (pending, _) = futures::future::select_ok(attempts)
            .await
            .map_err(|e| CoreError::Internal(format!("failed to join raft cluster: {e}")))?;
        tracing::info!(leader = %pending.leader_api_addr, "received a raft join challenge; unseal this node with the cluster's keys to finish joining");
        let auto = pending.seal_config.is_auto();
        if auto != self.auto_seal.is_some() {
            return Err(CoreError::invalid(format!(
                "seal type mismatch: the leader uses the {} seal, this node the {} seal",
                pending.seal_config.seal_type,
                self.seal_type()
            )));
        }
        *self.ha.pending_join.lock().await = Some(pending);
        if auto {
            if let Err(e) = self.complete_join(JoinKey::Kms).await {
                *self.ha.pending_join.lock().await = None;
                return Err(e);
            }
        }
        Ok(true)
    }

    /// Joiner side, once it can open the challenge (the operator's shares combined, or
    /// KMS): answer it, start consensus, wait for the leader's data, then unseal from it.
    pub(crate) async fn complete_join(&self, key: JoinKey<'_>) -> Result<(), CoreError> {
        let mut slot = self.ha.pending_join.lock().await;
        let pending = slot.as_ref().ok_or(CoreError::NotInitialized)?;
        let server_id = self.info().node_id.clone();
        let answer = match (key, &self.auto_seal) {
            (JoinKey::Shamir(combined), _) => open(combined, server_id.as_bytes(), &pending.challenge)
                .ok_or_else(|| CoreError::invalid("cipher: message authentication failed"))?,
            (JoinKey::Kms, Some(kms)) => kms
                .decrypt(&pending.challenge)
                .await
                .map_err(|e| CoreError::invalid(format!("opening the join challenge through KMS: {e}")))?,
            (JoinKey::Kms, None) => return Err(CoreError::invalid("this node has no auto-unseal seal")),
        };
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let resp = pending
            .client
            .put(format!(
                "{}/v1/sys/storage/raft/bootstrap/answer",
                pending.leader_api_addr
            ))
            .json(&json!({
                "answer": base64::engine::general_purpose::STANDARD.encode(&answer),
                "cluster_addr": self.info().cluster_addr,
                "api_addr": self.info().api_addr,
                "server_id": server_id,
                "non_voter": pending.non_voter,
            }))
            .send()
            .await
            .map_err(|e| {
                CoreError::Internal(format!(
                    "sending the join answer to {}: {e}",
                    pending.leader_api_addr
                ))
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            *slot = None;
            return Err(CoreError::Internal(format!(
                "join refused by the leader ({status}): {}",
                body["errors"]
            )));
        }
        let tls: crate::cluster::ClusterTls = serde_json::from_value(body["data"]["tls_keyring"].clone())
            .map_err(|e| {
                CoreError::Internal(format!(
                    "the leader's join answer carried no cluster TLS material: {e}"
                ))
            })?;
        self.transport
            .install(&tls, None)
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        raft.start()
            .await
            .map_err(|e| CoreError::Internal(format!("starting raft: {e}")))?;
        let deadline = Instant::now() + JOIN_SYNC_TIMEOUT;
        let physical = self.barrier().physical().clone();
        loop {
            let synced = physical.get(ROOT_KEY_PATH).await?.is_some()
                && physical.get(SEAL_CONFIG_PATH).await?.is_some();
            if synced {
                break;
            }
            if Instant::now() > deadline {
                return Err(CoreError::Internal(
                    "joined the raft cluster but no data arrived from the leader in 60s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        *slot = None;
        drop(slot);
        let unseal_key = match key {
            JoinKey::Shamir(combined) => Zeroizing::new(combined.to_vec()),
            JoinKey::Kms => self.kms_unseal_key().await?,
        };
        self.barrier()
            .unseal(&unseal_key)
            .await
            .map_err(|e| CoreError::Internal(format!("unsealing from replicated data: {e}")))?;
        *self.unseal_key.write().await = Some(unseal_key);
        self.post_unseal().await
    }

    /// `sys/storage/raft/configuration` (`operator raft list-peers`).
    pub async fn raft_configuration(&self) -> Result<Response, CoreError> {
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let status = raft.status().map_err(|e| CoreError::Internal(e.to_string()))?;
        let leader = status.leader.as_ref().map(|l| l.name.clone());
        let mut servers: Vec<Value> = status
            .members
            .iter()
            .map(|m| {
                json!({
                    "node_id": m.name,
                    "address": m.cluster_addr,
                    "leader": leader.as_deref() == Some(m.name.as_str()),
                    "protocol_version": "3",
                    "voter": m.voter,
                })
            })
            .collect();
        servers.sort_by(|a, b| a["node_id"].as_str().cmp(&b["node_id"].as_str()));
        Ok(Response::data(
            json!({ "config": { "servers": servers, "index": status.committed_index } }),
        ))
    }

    /// `sys/storage/raft/remove-peer`: unknown ids are not an error, as in Vault.
    pub async fn raft_remove_peer(&self, server_id: &str) -> Result<Response, CoreError> {
        if server_id.is_empty() {
            return Err(CoreError::invalid("no server id provided"));
        }
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let removed_addr = raft
            .status()
            .ok()
            .and_then(|s| s.members.into_iter().find(|m| m.name == server_id))
            .map(|m| m.cluster_addr);
        match raft.remove(server_id).await {
            Ok(()) | Err(crate::raft::RaftError::UnknownPeer(_)) => {}
            Err(e) => return Err(CoreError::Internal(format!("removing {server_id}: {e}"))),
        }
        if let (Some(addr), Some(client)) = (removed_addr, self.transport().client()) {
            let url = format!("{}://{addr}/cluster/removed", crate::cluster::SCHEME);
            if let Err(e) = client.post(&url).send().await {
                tracing::warn!(node = %server_id, error = %e, "could not tell the removed node; it will find out when it restarts");
            }
        }
        self.barrier()
            .delete(&format!("{NON_VOTER_PREFIX}{server_id}"))
            .await?;
        self.ha.caught_up_since.lock().await.remove(server_id);
        Ok(Response::empty())
    }

    /// This node was removed by the cluster: stop for good and say so in health.
    pub async fn mark_removed(&self) -> Result<(), CoreError> {
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let status = raft.status().map_err(|e| CoreError::Internal(e.to_string()))?;
        if status.members.iter().any(|m| m.name == self.info().node_id) && status.is_leader {
            return Err(CoreError::invalid("the leader cannot be marked removed"));
        }
        raft.mark_removed()
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        tracing::warn!("this node was removed from its raft cluster; it no longer serves requests");
        Ok(())
    }

    /// `sys/storage/raft/promote` and `demote` (explicit suffrage changes).
    pub async fn raft_set_voter(&self, server_id: &str, voter: bool) -> Result<Response, CoreError> {
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let key = format!("{NON_VOTER_PREFIX}{server_id}");
        if voter {
            self.barrier().delete(&key).await?;
            raft.promote_voter(server_id).await
        } else {
            self.barrier().put(&key, vec![]).await?;
            raft.demote(server_id).await
        }
        .map_err(|e| CoreError::invalid(e.to_string()))?;
        Ok(Response::empty())
    }

    /// `sys/storage/raft/autopilot/state`.
    pub async fn autopilot_state(&self) -> Result<Response, CoreError> {
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let status = raft.status().map_err(|e| CoreError::Internal(e.to_string()))?;
        let view = raft.replication();
        let last = view
            .as_ref()
            .map(|v| v.last_log_index)
            .unwrap_or(status.applied_index);
        let leader = status.leader.as_ref().map(|l| l.name.clone()).unwrap_or_default();
        let since = self.ha.caught_up_since.lock().await.clone();
        let mut servers = serde_json::Map::new();
        let (mut voters, mut non_voters) = (Vec::new(), Vec::new());
        let mut healthy_voters = 0usize;
        for m in &status.members {
            let is_leader = m.name == leader;
            let matched = if is_leader {
                last
            } else {
                view.as_ref()
                    .and_then(|v| v.followers.iter().find(|f| f.name == m.name))
                    .map(|f| f.matched_index)
                    .unwrap_or(0)
            };
            let healthy = is_leader || matched + CAUGHT_UP_LAG >= last;
            if m.voter {
                voters.push(m.name.clone());
                if healthy {
                    healthy_voters += 1;
                }
            } else {
                non_voters.push(m.name.clone());
            }
            let stable = since
                .get(&m.name)
                .map(|t| chrono::Utc::now() - chrono::Duration::from_std(t.elapsed()).unwrap_or_default());
            servers.insert(
                m.name.clone(),
                json!({
                    "id": m.name,
                    "name": m.name,
                    "address": m.cluster_addr,
                    "node_status": if healthy { "alive" } else { "left" },
                    "last_contact": "0s",
                    "last_term": status.term,
                    "last_index": matched,
                    "healthy": healthy,
                    "stable_since": stable.map(super::tokens::rfc3339).unwrap_or_default(),
                    "status": if is_leader { "leader" } else if m.voter { "voter" } else { "non-voter" },
                    "version": super::VERSION,
                    "node_type": if m.voter { "voter" } else { "non-voter" },
                }),
            );
        }
        let quorum = voters.len() / 2 + 1;
        Ok(Response::data(json!({
            "healthy": healthy_voters >= quorum,
            "failure_tolerance": healthy_voters.saturating_sub(quorum),
            "leader": leader,
            "servers": servers,
            "voters": voters,
            "non_voters": non_voters,
        })))
    }

    /// One autopilot round on the leader: learners that stayed caught up become voters.
    pub async fn autopilot_tick(&self) -> Result<(), CoreError> {
        let Some(raft) = self.raft() else { return Ok(()) };
        let Some(view) = raft.replication() else {
            self.ha.caught_up_since.lock().await.clear();
            return Ok(());
        };
        if self.state().await.is_err() {
            return Ok(());
        }
        let mut since = self.ha.caught_up_since.lock().await;
        for follower in &view.followers {
            if follower.matched_index + CAUGHT_UP_LAG < view.last_log_index {
                since.remove(&follower.name);
                continue;
            }
            let first_seen = *since.entry(follower.name.clone()).or_insert_with(Instant::now);
            if follower.voter || first_seen.elapsed() < STABILIZATION {
                continue;
            }
            if self
                .barrier()
                .get(&format!("{NON_VOTER_PREFIX}{}", follower.name))
                .await?
                .is_some()
            {
                continue;
            }
            match raft.promote_voter(&follower.name).await {
                Ok(()) => {
                    tracing::info!(node = %follower.name, "autopilot promoted a caught-up peer to voter")
                }
                Err(e) => {
                    tracing::warn!(node = %follower.name, error = %e, "autopilot could not promote peer")
                }
            }
        }
        Ok(())
    }

    /// `sys/step-down`: give up leadership so another voter takes over.
    pub async fn step_down(&self) -> Result<(), CoreError> {
        let Some(raft) = self.raft() else { return Ok(()) };
        raft.stop()
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        raft.start()
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        Ok(())
    }
}
