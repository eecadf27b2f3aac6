//! The secondary side: activation, the full copy, the WAL stream, DR operation
//! tokens, promotion and pointing at a new primary.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::client::{activate, fetch, replication_client};
use super::primary::{primary_keys, StreamReply, SyncReply};
use super::role::{merge_addrs, UpdatePrimary};
use super::{
    is_local, touches_local, DrState, ReplicationError, SecondaryState, OP_TOKEN_PREFIX, REMOTE_WAL_PATH,
};
use crate::core::tokens::random_base62;
use crate::core::{Core, CoreError, Request, Response};
use crate::storage::WriteOp;

/// Pause after a failed stream round before trying again (and the next primary address).
const RETRY_PAUSE: Duration = Duration::from_millis(500);

fn op_token_key(token: &str) -> String {
    format!(
        "{OP_TOKEN_PREFIX}{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

impl Core {
    /// `dr/secondary/enable`: wipes this cluster, copies the primary, starts streaming.
    pub async fn dr_secondary_enable(
        &self,
        token: &str,
        primary_api_addr: Option<&str>,
        ca_file: Option<&str>,
    ) -> Result<Response, CoreError> {
        self.dr().state().await.enable_secondary(self.raft().is_some())?;
        let secondary = activate(token, primary_api_addr, ca_file).await?;
        self.adopt_primary(secondary).await?;
        Ok(Response::empty().with_warning(super::role::ENABLE_SECONDARY_WARNING))
    }

    /// `dr/secondary/update-primary`: follow a new primary (a fresh token from it), or
    /// forget the primary when `token` is empty.
    pub async fn dr_update_primary(
        &self,
        token: &str,
        primary_api_addr: Option<&str>,
        ca_file: Option<&str>,
    ) -> Result<Response, CoreError> {
        match self.dr().state().await.update_primary(!token.is_empty())? {
            UpdatePrimary::Forget(transition) => self.apply_transition(*transition).await,
            UpdatePrimary::Follow => {
                let secondary = activate(token, primary_api_addr, ca_file).await?;
                self.adopt_primary(secondary).await?;
                Ok(Response::empty())
            }
        }
    }

    /// Takes a full copy from the primary, switches to its keys, records the secondary
    /// role and starts the stream.
    async fn adopt_primary(&self, secondary: SecondaryState) -> Result<(), CoreError> {
        let cluster_tls = self.cluster_tls().await?;
        self.reset_stream("merkle-sync", "connecting").await;
        let client = replication_client(&secondary)?;
        let reply: SyncReply = fetch(
            &client,
            format!("https://{}/replication/dr/sync", secondary.primary_cluster_addr),
        )
        .await?;
        let index = reply.index;
        self.apply_full_copy(&reply).await?;
        self.barrier().adopt_root_key(&reply.root_key).await?;
        let tls_bytes = serde_json::to_vec(&cluster_tls).map_err(ReplicationError::Encode)?;
        self.barrier()
            .put(crate::core::CLUSTER_TLS_PATH, tls_bytes)
            .await?;
        let mut secondary = secondary;
        secondary.known_primary_cluster_addrs =
            merge_addrs(&secondary.primary_cluster_addr, &reply.primary_cluster_addrs);
        self.set_dr_state(DrState::Secondary(secondary)).await?;
        self.dr().stream.lock().await.last_remote_wal = index;
        self.reload_after_adoption(&reply.root_key).await?;
        tracing::info!(index, "DR secondary activated from a full copy of the primary");
        Ok(())
    }

    /// Replaces every replicated key with the primary's, keeping local keys, atomically.
    async fn apply_full_copy(&self, reply: &SyncReply) -> Result<(), CoreError> {
        let physical = self.barrier().physical().clone();
        let raft = self.raft().ok_or(ReplicationError::RaftNotInUse)?;
        let (current, _) = raft.export_data().map_err(ReplicationError::Raft)?;
        let mut ops = vec![WriteOp::DeletePrefix {
            prefix: String::new(),
        }];
        ops.extend(
            current
                .into_iter()
                .filter(|(k, _)| is_local(k))
                .map(|(key, value)| WriteOp::Put { key, value }),
        );
        ops.extend(
            reply
                .pairs
                .iter()
                .filter(|(k, _)| !is_local(k))
                .map(|(k, v)| WriteOp::Put {
                    key: k.clone(),
                    value: v.clone(),
                }),
        );
        ops.push(WriteOp::Put {
            key: REMOTE_WAL_PATH.into(),
            value: reply.index.to_be_bytes().to_vec(),
        });
        physical.write(ops).await?;
        Ok(())
    }

    /// After the keys changed: reload everything the unsealed state caches, here and on
    /// the other nodes of this cluster.
    async fn reload_after_adoption(&self, root_key: &[u8]) -> Result<(), CoreError> {
        self.post_unseal().await?;
        let Some(raft) = self.raft() else { return Ok(()) };
        let Some(client) = self.transport().client() else {
            return Ok(());
        };
        let me = self.info().node_id.clone();
        let members = raft.status().map(|s| s.members).unwrap_or_default();
        for member in members.into_iter().filter(|m| m.name != me) {
            let url = format!(
                "https://{}/replication/internal/adopt-root-key",
                member.cluster_addr
            );
            match client.post(&url).body(root_key.to_vec()).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(node = %member.name, status = %r.status(), "peer did not take the new root key; unseal it with the primary's keys")
                }
                Err(e) => {
                    tracing::warn!(node = %member.name, error = %e, "peer unreachable; unseal it with the primary's keys when it returns")
                }
            }
        }
        Ok(())
    }

    /// A peer of this cluster tells us the keys changed (DR activation on the active node).
    pub async fn adopt_root_key_from_peer(&self, root_key: &[u8]) -> Result<(), CoreError> {
        self.state().await?;
        self.barrier().adopt_root_key(root_key).await?;
        self.post_unseal().await?;
        self.load_dr_state().await?;
        tracing::info!("adopted the DR primary's keys from the active node");
        Ok(())
    }

    pub(super) async fn reset_stream(&self, state: &'static str, connection: &'static str) {
        let mut stream = self.dr().stream.lock().await;
        stream.state = state;
        stream.connection_state = connection;
        stream.last_start = Utc::now();
    }

    /// Starts the stream loop for the current role (it ends when the role changes).
    pub(crate) fn spawn_stream(&self) {
        let generation = self.dr().generation();
        if !self.dr().claim_loop(generation) {
            return;
        }
        if let Some(core) = self.arc() {
            tokio::spawn(async move { core.stream_loop(generation).await });
        }
    }

    async fn stream_loop(self: Arc<Self>, generation: u64) {
        let mut addr_index = 0usize;
        let mut client: Option<(String, reqwest::Client)> = None;
        if let Ok(Some(bytes)) = self.barrier().physical().get(REMOTE_WAL_PATH).await {
            if let Ok(arr) = <[u8; 8]>::try_from(bytes.as_slice()) {
                self.dr().stream.lock().await.last_remote_wal = u64::from_be_bytes(arr);
            }
        }
        while self.dr().generation() == generation {
            let DrState::Secondary(secondary) = self.dr().state().await else {
                return;
            };
            if secondary.primary_cluster_addr.is_empty() {
                self.reset_stream("idle", "idle").await;
                return;
            }
            if self.state().await.is_err() || !self.is_active() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let addrs = merge_addrs(
                &secondary.primary_cluster_addr,
                &secondary.known_primary_cluster_addrs,
            );
            let addr = addrs[addr_index % addrs.len()].clone();
            // One client (and its pooled mutual-TLS connection) per set of credentials.
            let reuse = client
                .as_ref()
                .is_some_and(|(cert, _)| *cert == secondary.client_cert_pem);
            if !reuse {
                match replication_client(&secondary) {
                    Ok(c) => client = Some((secondary.client_cert_pem.clone(), c)),
                    Err(e) => {
                        tracing::warn!(error = %e, "DR stream: cannot build the replication client");
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                }
            }
            let Some((_, http)) = client.as_ref() else {
                continue;
            };
            match self.stream_round(http, &secondary, &addr, generation).await {
                Ok(Some(next)) => {
                    if let Some(i) = addrs.iter().position(|a| *a == next) {
                        addr_index = i;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let mut stream = self.dr().stream.lock().await;
                    stream.connection_state = "transient_failure";
                    stream.last_error = Some(e.to_string());
                    drop(stream);
                    tracing::debug!(primary = %addr, error = %e, "DR stream round failed");
                    addr_index += 1;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// One request/apply cycle; `Ok(Some(addr))` redirects to the primary's active node.
    async fn stream_round(
        &self,
        client: &reqwest::Client,
        secondary: &SecondaryState,
        addr: &str,
        generation: u64,
    ) -> Result<Option<String>, CoreError> {
        let after = self.dr().stream.lock().await.last_remote_wal;
        let reply: StreamReply = fetch(
            client,
            format!("https://{addr}/replication/dr/stream?after={after}"),
        )
        .await?;
        match reply {
            StreamReply::NotActive { active_cluster_addr } => Ok(active_cluster_addr),
            StreamReply::Compacted => {
                self.reset_stream("merkle-sync", "ready").await;
                let full: SyncReply = fetch(client, format!("https://{addr}/replication/dr/sync")).await?;
                if self.dr().generation() != generation {
                    return Ok(None);
                }
                self.apply_full_copy(&full).await?;
                self.dr().stream.lock().await.last_remote_wal = full.index;
                Ok(None)
            }
            StreamReply::Entries {
                entries,
                last_wal,
                primary_cluster_addrs,
            } => {
                let mut ops = Vec::new();
                let mut needs_full_copy = false;
                for op in entries.into_iter().flat_map(|e| e.batches).flatten() {
                    match &op {
                        WriteOp::Put { key, .. } | WriteOp::Delete { key } if is_local(key) => {}
                        WriteOp::DeletePrefix { prefix } if touches_local(prefix) => needs_full_copy = true,
                        _ => ops.push(op),
                    }
                }
                if self.dr().generation() != generation {
                    return Ok(None);
                }
                if needs_full_copy {
                    let full: SyncReply =
                        fetch(client, format!("https://{addr}/replication/dr/sync")).await?;
                    self.apply_full_copy(&full).await?;
                    self.dr().stream.lock().await.last_remote_wal = full.index;
                } else if last_wal > after {
                    ops.push(WriteOp::Put {
                        key: REMOTE_WAL_PATH.into(),
                        value: last_wal.to_be_bytes().to_vec(),
                    });
                    self.barrier().physical().write(ops).await?;
                    self.dr().stream.lock().await.last_remote_wal = last_wal;
                }
                let mut stream = self.dr().stream.lock().await;
                stream.state = "stream-wals";
                stream.connection_state = "ready";
                stream.last_heartbeat = Some(Utc::now());
                stream.last_error = None;
                drop(stream);
                if !primary_cluster_addrs.is_empty()
                    && primary_cluster_addrs != secondary.known_primary_cluster_addrs
                {
                    let mut updated = secondary.clone();
                    updated.known_primary_cluster_addrs =
                        merge_addrs(&secondary.primary_cluster_addr, &primary_cluster_addrs);
                    let bytes = serde_json::to_vec(&DrState::Secondary(updated.clone()))
                        .map_err(ReplicationError::Encode)?;
                    self.barrier().put(super::STATE_PATH, bytes).await?;
                    *self.dr().state.lock().await = DrState::Secondary(updated);
                }
                Ok(None)
            }
        }
    }

    /// Accepts a DR operation token for `path`: one minted here by the OTP flow, or a
    /// (batch) token from the primary whose policies grant `update` on `path`.
    pub async fn check_dr_operation_token(&self, token: &str, path: &str) -> Result<(), CoreError> {
        self.dr().state().await.check_operation_token(token)?;
        if self.barrier().get(&op_token_key(token)).await?.is_some() {
            return Ok(());
        }
        let state = self.state().await?;
        let entry = state
            .tokens
            .lookup(token)
            .await?
            .ok_or(ReplicationError::InvalidOperationToken)?;
        state.policies.clear_cache().await;
        let mut req = Request::new(crate::core::Operation::Update, path);
        req.client_token = Some(token.to_string());
        state.policies.authorize(&entry, &req).await.map_err(|_| {
            ReplicationError::OperationTokenNotAllowed {
                path: path.to_string(),
            }
            .into()
        })
    }

    /// Mints a DR operation token at the end of the OTP flow.
    pub(crate) async fn mint_dr_operation_token(&self) -> Result<String, CoreError> {
        let token = format!("hvs.{}", random_base62(24));
        self.barrier().put(&op_token_key(&token), vec![]).await?;
        Ok(token)
    }

    /// `dr/secondary/operation-token/delete`.
    pub async fn dr_delete_operation_token(&self, token: &str) -> Result<Response, CoreError> {
        self.check_dr_operation_token(token, "sys/replication/dr/secondary/operation-token/delete")
            .await?;
        self.barrier().delete(&op_token_key(token)).await?;
        Ok(Response::empty())
    }

    /// `dr/secondary/promote`: this cluster becomes the DR primary with all replicated
    /// data and tokens.
    pub async fn dr_promote(&self, primary_cluster_addr: Option<String>) -> Result<Response, CoreError> {
        let addr = super::role::primary_cluster_addr(primary_cluster_addr, &self.info().cluster_addr);
        let transition = self.dr().state().await.promote(addr, primary_keys)?;
        let response = self.apply_transition(transition).await?;
        tracing::warn!("this cluster was promoted to DR primary");
        Ok(response)
    }
}
