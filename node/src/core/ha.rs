//! Integrated Storage clustering as the core runs it: both sides of the join handshake,
//! the membership endpoints, autopilot rounds and step-down.
//!
//! The decisions live in plain state types (`join.rs` for the handshake, `autopilot.rs`
//! for promotions); this file feeds them the time, storage and Raft state and carries out
//! what they return: sealing challenges, the joiner's requests (`join_client.rs`), Raft
//! membership changes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::autopilot::{self, Autopilot};
use super::fields::Fields;
use super::join::{
    self, Admission, ChallengeBook, DataWait, DataWaitStep, JoinAnswer, JoinError, JoinStart, OpenChallenge,
};
use super::join_client::{AnswerRequest, JoinClientError, JoinTarget, LeaderClient};
use super::seal_state::SEAL_CONFIG_PATH;
use super::{Core, CoreError, Response};
use crate::barrier::{open, random_key, seal_bytes, ROOT_KEY_PATH};
use crate::raft::{RaftError, RaftStore};

/// How long a join waits for another membership change to finish.
const MEMBERSHIP_BUSY_WAIT: Duration = Duration::from_secs(15);
/// How long step-down waits for another voter to take over before rejoining anyway.
const STEP_DOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the intent to stay a non-voter is recorded, so autopilot leaves the node alone.
const NON_VOTER_PREFIX: &str = "core/raft/non-voter/";
const NOT_RAFT: &str = "raft storage is not in use";

/// What opens a join challenge.
#[derive(Clone, Copy)]
pub enum JoinKey<'a> {
    /// The cluster's unseal key, combined from the operator's shares.
    Shamir(&'a [u8]),
    /// The shared KMS key (auto-unseal): no operator step.
    Kms,
}

/// A challenge received from a leader, with the client that reaches it again.
pub type PendingJoin = join::PendingJoin<LeaderClient>;

/// Why a membership change or query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    #[error("removing {name}: {source}")]
    Remove {
        name: String,
        #[source]
        source: RaftError,
    },
    /// `promote` / `demote` refused by Raft (unknown peer, not the leader, ...).
    #[error("{0}")]
    Suffrage(#[source] RaftError),
    #[error("the leader cannot be marked removed")]
    LeaderCannotBeRemoved,
}

impl MembershipError {
    /// The HTTP status Vault answers with.
    pub fn status(&self) -> u16 {
        match self {
            MembershipError::Remove { .. } => 500,
            MembershipError::Suffrage(_) | MembershipError::LeaderCannotBeRemoved => 400,
        }
    }
}

/// Join and membership state kept by the core.
#[derive(Default)]
pub struct HaState {
    pub(crate) pending_join: Mutex<Option<PendingJoin>>,
    challenges: Mutex<ChallengeBook>,
    autopilot: Mutex<Autopilot>,
}

/// Adds a learner, waiting out membership changes already in flight (several nodes
/// joining at once, or autopilot promoting one) instead of refusing the join.
async fn add_learner_when_free(raft: &RaftStore, admission: &Admission) -> Result<(), JoinError> {
    let deadline = Instant::now() + MEMBERSHIP_BUSY_WAIT;
    loop {
        match raft
            .add_learner(&admission.server_id, &admission.cluster_addr, &admission.api_addr)
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) if e.is_membership_busy() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => {
                return Err(JoinError::AddLearner {
                    name: admission.server_id.clone(),
                    source,
                })
            }
        }
    }
}

/// Asks every candidate for a challenge at once; the first good answer wins, otherwise the
/// last error is reported.
async fn first_challenge(
    targets: Vec<JoinTarget>,
    server_id: &str,
    non_voter: bool,
) -> Result<PendingJoin, JoinError> {
    let attempts = targets.into_iter().map(|target| {
        Box::pin(async move {
            let leader = LeaderClient::connect(&target)?;
            let challenge = leader.request_challenge(server_id).await?;
            Ok::<_, JoinClientError>(PendingJoin {
                leader,
                challenge: challenge.sealed_answer,
                seal_config: challenge.seal_config,
                non_voter,
            })
        })
    });
    let (pending, _) = futures::future::select_ok(attempts)
        .await
        .map_err(JoinError::NoCandidateAnswered)?;
    Ok(pending)
}

impl Core {
    fn require_raft(&self) -> Result<&std::sync::Arc<RaftStore>, CoreError> {
        self.raft().ok_or_else(|| CoreError::invalid(NOT_RAFT))
    }

    /// Leader side of `bootstrap/challenge`: a random answer sealed with the unseal key.
    pub async fn raft_challenge(&self, server_id: &str) -> Result<Response, CoreError> {
        join::require_server_id(server_id)?;
        let raft = self.require_raft()?;
        let status = raft.status()?;
        let answer = self.ha.challenges.lock().await.challenge_requested(
            server_id,
            status.members.iter().map(|m| m.name.as_str()),
            Zeroizing::new(random_key()),
            Instant::now(),
        )?;
        let config = self.seal_config().await?.ok_or(CoreError::NotInitialized)?;
        let challenge = match &self.auto_seal {
            Some(kms) => kms.encrypt(&answer).await.map_err(JoinError::SealChallenge)?,
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
        let required =
            |name: &str, missing: JoinError| f.string(name).filter(|s| !s.is_empty()).ok_or(missing);
        let server_id = required("server_id", JoinError::NoServerId)?;
        let answer = required("answer", JoinError::NoAnswer)?;
        let cluster_addr = required("cluster_addr", JoinError::NoClusterAddr)?;
        let api_addr = f.string("api_addr").unwrap_or_default();
        let non_voter = f.bool("non_voter")?.unwrap_or(false);
        let answer = base64::engine::general_purpose::STANDARD
            .decode(answer)
            .map_err(|_| JoinError::WrongAnswer)?;
        let admission = self.ha.challenges.lock().await.answer_received(
            JoinAnswer {
                server_id,
                answer,
                cluster_addr,
                api_addr,
                non_voter,
            },
            Instant::now(),
        )?;
        let raft = self.require_raft()?;
        if admission.record_non_voter {
            self.barrier()
                .put(&format!("{NON_VOTER_PREFIX}{}", admission.server_id), vec![])
                .await?;
        }
        add_learner_when_free(raft, &admission).await?;
        tracing::info!(node = %admission.server_id, cluster_addr = %admission.cluster_addr, "raft peer joined as a learner");
        let status = raft.status()?;
        let peers: Vec<Value> = status
            .members
            .iter()
            .map(|m| json!({ "id": m.name, "address": m.cluster_addr, "suffrage": if m.voter { 0 } else { 1 } }))
            .collect();
        let tls = serde_json::to_value(self.cluster_tls().await?)?;
        Ok(Response::data(json!({ "peers": peers, "tls_keyring": tls })))
    }

    /// Joiner side: asks every candidate for a challenge at once; the first answer wins.
    pub async fn raft_join(&self, targets: Vec<JoinTarget>, non_voter: bool) -> Result<bool, CoreError> {
        let raft = self.require_raft()?;
        let member = self.is_initialized().await? || raft.is_bootstrapped()?;
        let pending = self.ha.pending_join.lock().await.is_some();
        if join::join_requested(member, pending, targets.len())? == JoinStart::AlreadyJoining {
            return Ok(true);
        }
        let pending = first_challenge(targets, &self.info().node_id, non_voter).await?;
        tracing::info!(leader = %pending.leader.base(), "received a raft join challenge; unseal this node with the cluster's keys to finish joining");
        let open_with =
            join::challenge_received(&pending.seal_config, self.auto_seal.is_some(), self.seal_type())?;
        *self.ha.pending_join.lock().await = Some(pending);
        if open_with == OpenChallenge::WithKms {
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
            (JoinKey::Shamir(combined), _) => {
                open(combined, server_id.as_bytes(), &pending.challenge).ok_or(JoinError::WrongUnsealKey)?
            }
            (JoinKey::Kms, Some(kms)) => kms
                .decrypt(&pending.challenge)
                .await
                .map_err(JoinError::OpenWithKms)?,
            (JoinKey::Kms, None) => return Err(JoinError::NoAutoSeal.into()),
        };
        let raft = self.require_raft()?;
        let sent = pending
            .leader
            .send_answer(&AnswerRequest {
                answer: &answer,
                server_id: &server_id,
                cluster_addr: &self.info().cluster_addr,
                api_addr: &self.info().api_addr,
                non_voter: pending.non_voter,
            })
            .await;
        let tls = match sent {
            Ok(tls) => tls,
            Err(refused @ JoinClientError::AnswerRefused { .. }) => {
                *slot = None;
                return Err(JoinError::from(refused).into());
            }
            Err(e) => return Err(JoinError::from(e).into()),
        };
        self.transport
            .install(&tls, None)
            .map_err(JoinError::InstallTls)?;
        raft.start().await.map_err(JoinError::StartRaft)?;
        let wait = DataWait::started(Instant::now());
        let physical = self.barrier().physical().clone();
        loop {
            let synced = physical.get(ROOT_KEY_PATH).await?.is_some()
                && physical.get(SEAL_CONFIG_PATH).await?.is_some();
            match wait.checked(synced, Instant::now())? {
                DataWaitStep::Unseal => break,
                DataWaitStep::PollAgain => tokio::time::sleep(Duration::from_millis(50)).await,
            }
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
            .map_err(JoinError::UnsealFromReplica)?;
        *self.unseal_key.write().await = Some(unseal_key);
        self.post_unseal().await
    }

    /// `sys/storage/raft/configuration` (`operator raft list-peers`).
    pub async fn raft_configuration(&self) -> Result<Response, CoreError> {
        let status = self.require_raft()?.status()?;
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
        let raft = self.require_raft()?;
        let removed_addr = raft
            .status()
            .ok()
            .and_then(|s| s.members.into_iter().find(|m| m.name == server_id))
            .map(|m| m.cluster_addr);
        match raft.remove(server_id).await {
            Ok(()) | Err(RaftError::UnknownPeer(_)) => {}
            Err(source) => {
                return Err(MembershipError::Remove {
                    name: server_id.to_string(),
                    source,
                }
                .into())
            }
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
        self.ha.autopilot.lock().await.peer_removed(server_id);
        Ok(Response::empty())
    }

    /// This node was removed by the cluster: stop for good and say so in health.
    pub async fn mark_removed(&self) -> Result<(), CoreError> {
        let raft = self.require_raft()?;
        let status = raft.status()?;
        if status.members.iter().any(|m| m.name == self.info().node_id) && status.is_leader {
            return Err(MembershipError::LeaderCannotBeRemoved.into());
        }
        raft.mark_removed().await?;
        tracing::warn!("this node was removed from its raft cluster; it no longer serves requests");
        Ok(())
    }

    /// `sys/storage/raft/promote` and `demote` (explicit suffrage changes).
    pub async fn raft_set_voter(&self, server_id: &str, voter: bool) -> Result<Response, CoreError> {
        let raft = self.require_raft()?;
        let key = format!("{NON_VOTER_PREFIX}{server_id}");
        if voter {
            self.barrier().delete(&key).await?;
            raft.promote_voter(server_id).await
        } else {
            self.barrier().put(&key, vec![]).await?;
            raft.demote(server_id).await
        }
        .map_err(MembershipError::Suffrage)?;
        Ok(Response::empty())
    }

    /// `sys/storage/raft/autopilot/state`.
    pub async fn autopilot_state(&self) -> Result<Response, CoreError> {
        let raft = self.require_raft()?;
        let status = raft.status()?;
        let view = raft.replication();
        let last = view
            .as_ref()
            .map(|v| v.last_log_index)
            .unwrap_or(status.applied_index);
        let leader = status.leader.as_ref().map(|l| l.name.clone()).unwrap_or_default();
        let pilot = self.ha.autopilot.lock().await;
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
            let healthy = is_leader || autopilot::caught_up(matched, last);
            if m.voter {
                voters.push(m.name.clone());
                if healthy {
                    healthy_voters += 1;
                }
            } else {
                non_voters.push(m.name.clone());
            }
            let stable = pilot
                .stable_since(&m.name)
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
        let health = autopilot::cluster_health(voters.len(), healthy_voters);
        Ok(Response::data(json!({
            "healthy": health.healthy,
            "failure_tolerance": health.failure_tolerance,
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
            self.ha.autopilot.lock().await.leadership_lost();
            return Ok(());
        };
        if self.state().await.is_err() {
            return Ok(());
        }
        let mut stays_non_voter = BTreeSet::new();
        for learner in view.followers.iter().filter(|f| !f.voter) {
            let intent = format!("{NON_VOTER_PREFIX}{}", learner.name);
            if self.barrier().get(&intent).await?.is_some() {
                stays_non_voter.insert(learner.name.clone());
            }
        }
        let promote = self
            .ha
            .autopilot
            .lock()
            .await
            .round(&view, &stays_non_voter, Instant::now());
        for name in promote {
            match raft.promote_voter(&name).await {
                Ok(()) => tracing::info!(node = %name, "autopilot promoted a caught-up peer to voter"),
                Err(e) => tracing::warn!(node = %name, error = %e, "autopilot could not promote peer"),
            }
        }
        Ok(())
    }

    /// `sys/step-down`: give up leadership so another voter takes over.
    ///
    /// openraft 0.9 cannot hand leadership over, so this node leaves consensus until
    /// another voter reports itself active (polled over the cluster port, bounded by
    /// [`STEP_DOWN_TIMEOUT`]) and then rejoins as a follower. Rejoining earlier would let
    /// it resume leading before the others' election timers fire.
    pub async fn step_down(&self) -> Result<(), CoreError> {
        let Some(raft) = self.raft() else { return Ok(()) };
        let status = raft.status()?;
        let other_voters: Vec<String> = status
            .members
            .iter()
            .filter(|m| m.voter && m.name != status.node_id)
            .map(|m| m.cluster_addr.clone())
            .collect();
        raft.stop().await?;
        self.wait_for_another_leader(&other_voters).await;
        raft.start().await?;
        Ok(())
    }

    /// Polls the other voters' `sys/leader` until one of them is the active node.
    async fn wait_for_another_leader(&self, voters: &[String]) {
        if voters.is_empty() {
            return;
        }
        let deadline = Instant::now() + STEP_DOWN_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(client) = self.transport().client() {
                for addr in voters {
                    let url = format!("{}://{addr}/v1/sys/leader", crate::cluster::SCHEME);
                    let Ok(resp) = client.get(&url).send().await else {
                        continue;
                    };
                    if resp
                        .json::<Value>()
                        .await
                        .is_ok_and(|body| body["is_self"] == true)
                    {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::warn!(
            timeout_secs = STEP_DOWN_TIMEOUT.as_secs(),
            "step-down: no other voter became active in time; rejoining consensus"
        );
    }
}
