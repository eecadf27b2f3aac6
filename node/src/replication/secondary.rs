//! The secondary side: activation, the full copy, the WAL stream, DR operation
//! tokens, promotion and pointing at a new primary.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::primary::{StreamReply, SyncReply};
use super::{
    is_local, jwt, touches_local, DrState, PrimaryState, SecondaryState, OP_TOKEN_PREFIX, REMOTE_WAL_PATH,
};
use crate::cluster::{ClusterTls, IssuingCa};
use crate::core::tokens::random_base62;
use crate::core::{Core, CoreError, Request, Response};
use crate::storage::WriteOp;

/// Pause after a failed stream round before trying again (and the next primary address).
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The activation token's content, after the primary unwrapped it for us.
struct Activation {
    state: SecondaryState,
}

fn activation_client(ca_file: Option<&str>) -> Result<reqwest::Client, CoreError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30));
    if let Some(path) = ca_file.filter(|p| !p.is_empty()) {
        let pem = std::fs::read(path).map_err(|e| CoreError::invalid(format!("ca_file {path}: {e}")))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| CoreError::invalid(format!("ca_file {path}: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| CoreError::Internal(e.to_string()))
}

/// Unwraps the activation token at the primary (which also makes it unusable).
async fn activate(
    token: &str,
    primary_api_addr: Option<&str>,
    ca_file: Option<&str>,
) -> Result<Activation, CoreError> {
    let claims = jwt::claims_unverified(token).ok_or_else(|| {
        CoreError::invalid("the secondary activation token is not a valid token (expected a JWT)")
    })?;
    if claims.exp <= Utc::now().timestamp() {
        return Err(CoreError::invalid(
            "the secondary activation token has expired; create a new one on the primary",
        ));
    }
    let addr = primary_api_addr
        .filter(|a| !a.is_empty())
        .unwrap_or(&claims.addr)
        .trim_end_matches('/')
        .to_string();
    let resp = activation_client(ca_file)?
        .put(format!("{addr}/v1/sys/wrapping/unwrap"))
        .header("X-Vault-Token", token)
        .send()
        .await
        .map_err(|e| CoreError::invalid(format!("error contacting the primary at {addr}: {e}")))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(CoreError::invalid(format!(
            "error unwrapping the secondary activation token at {addr}: {}",
            body["errors"]
                .as_array()
                .and_then(|e| e.first())
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
        )));
    }
    let data = &body["data"];
    let text = |k: &str| data[k].as_str().unwrap_or_default().to_string();
    let primary_cluster_addr = text("primary_cluster_addr");
    let primary_cluster_addr = primary_cluster_addr
        .split_once("://")
        .map(|(_, r)| r.to_string())
        .unwrap_or(primary_cluster_addr);
    let mut known: Vec<String> = data["primary_cluster_addrs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if !known.contains(&primary_cluster_addr) {
        known.insert(0, primary_cluster_addr.clone());
    }
    Ok(Activation {
        state: SecondaryState {
            cluster_id: text("cluster_id"),
            secondary_id: text("id"),
            primary_cluster_addr,
            primary_api_addr: addr,
            known_primary_cluster_addrs: known,
            ca_pem: text("ca_cert"),
            client_cert_pem: text("client_cert"),
            client_key_pem: text("client_key"),
        },
    })
}

fn replication_client(state: &SecondaryState) -> Result<reqwest::Client, CoreError> {
    let tls = ClusterTls {
        ca_pem: state.ca_pem.clone(),
        cert_pem: state.client_cert_pem.clone(),
        key_pem: state.client_key_pem.clone(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(
            tls.client_config()
                .map_err(|e| CoreError::Internal(e.to_string()))?,
        )
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| CoreError::Internal(e.to_string()))
}

async fn fetch<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: String,
) -> Result<T, CoreError> {
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| CoreError::Unavailable(format!("{url}: {e}")))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| CoreError::Unavailable(format!("{url}: {e}")))?;
    if !status.is_success() {
        return Err(CoreError::Unavailable(format!(
            "{url}: {status}: {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    postcard::from_bytes(&bytes).map_err(|e| CoreError::Internal(format!("{url}: malformed answer: {e}")))
}

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
        self.raft()
            .ok_or_else(|| CoreError::invalid("DR replication requires raft storage"))?;
        match self.dr().state().await {
            DrState::Primary(_) => {
                return Err(CoreError::invalid(
                    "this cluster is a DR primary; it cannot become a secondary",
                ))
            }
            DrState::Secondary(_) => {
                return Err(CoreError::invalid(
                    "this cluster is already a DR secondary; use update-primary to change primaries",
                ))
            }
            DrState::Disabled => {}
        }
        let activation = activate(token, primary_api_addr, ca_file).await?;
        self.adopt_primary(activation.state).await?;
        Ok(Response::empty().with_warning(
            "Vault has successfully found secondary information; it may take a while to perform setup tasks. Vault will be unavailable until these tasks and initial sync complete.",
        ))
    }

    /// `dr/secondary/update-primary`: follow a new primary (a fresh token from it), or
    /// forget the primary when `token` is empty.
    pub async fn dr_update_primary(
        &self,
        token: &str,
        primary_api_addr: Option<&str>,
        ca_file: Option<&str>,
    ) -> Result<Response, CoreError> {
        let DrState::Secondary(mut current) = self.dr().state().await else {
            return Err(CoreError::invalid("this cluster is not a DR secondary"));
        };
        if token.is_empty() {
            current.primary_cluster_addr.clear();
            current.known_primary_cluster_addrs.clear();
            self.set_dr_state(DrState::Secondary(current)).await?;
            self.reset_stream("idle", "idle").await;
            return Ok(Response::empty());
        }
        let activation = activate(token, primary_api_addr, ca_file).await?;
        self.adopt_primary(activation.state).await?;
        Ok(Response::empty())
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
        let tls_bytes = serde_json::to_vec(&cluster_tls).map_err(|e| CoreError::Internal(e.to_string()))?;
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
        let raft = self
            .raft()
            .ok_or_else(|| CoreError::invalid("raft storage is not in use"))?;
        let (current, _) = raft
            .export_data()
            .map_err(|e| CoreError::Internal(e.to_string()))?;
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

    async fn reset_stream(&self, state: &'static str, connection: &'static str) {
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
                        .map_err(|e| CoreError::Internal(e.to_string()))?;
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
        if !matches!(self.dr().state().await, DrState::Secondary(_)) {
            return Err(CoreError::invalid("this cluster is not a DR secondary"));
        }
        if token.is_empty() {
            return Err(CoreError::invalid("dr_operation_token is required"));
        }
        if self.barrier().get(&op_token_key(token)).await?.is_some() {
            return Ok(());
        }
        let state = self.state().await?;
        let entry = state
            .tokens
            .lookup(token)
            .await?
            .ok_or_else(|| CoreError::invalid("invalid DR operation token"))?;
        state.policies.clear_cache().await;
        let mut req = Request::new(crate::core::Operation::Update, path);
        req.client_token = Some(token.to_string());
        state.policies.authorize(&entry, &req).await.map_err(|_| {
            CoreError::invalid(format!(
                "the DR operation token's policies do not allow update on {path}"
            ))
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
        let DrState::Secondary(secondary) = self.dr().state().await else {
            return Err(CoreError::invalid("this cluster is not a DR secondary"));
        };
        let primary = PrimaryState {
            cluster_id: secondary.cluster_id.clone(),
            primary_cluster_addr: primary_cluster_addr
                .map(|a| a.split_once("://").map(|(_, r)| r.to_string()).unwrap_or(a))
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| self.info().cluster_addr.clone()),
            replication_ca: IssuingCa::generate(&format!("labnode-replication-ca-{}", secondary.cluster_id))
                .map_err(|e| CoreError::Internal(e.to_string()))?,
            jwt_key: jwt::generate_key().map_err(CoreError::Internal)?,
            secondaries: Default::default(),
        };
        self.set_dr_state(DrState::Primary(primary)).await?;
        self.install_cluster_tls().await?;
        if let Ok(state) = self.state().await {
            self.reload_tables(&state).await?;
        }
        self.reset_stream("idle", "shutdown").await;
        tracing::warn!("this cluster was promoted to DR primary");
        Ok(Response::empty().with_warning(
            "This cluster is being promoted to a replication primary. Vault will be unavailable for a brief period and will resume service shortly.",
        ))
    }
}

fn merge_addrs(first: &str, rest: &[String]) -> Vec<String> {
    let mut out = vec![first.to_string()];
    for a in rest {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}
