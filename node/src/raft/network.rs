//! Raft RPCs over the cluster port: the axum server side and the reqwest client side.
//!
//! Bodies are postcard-encoded openraft messages; responses are postcard-encoded
//! `Result<Response, RaftError>`. A node whose consensus is stopped answers 503, which the
//! client reports as `Unreachable` so openraft backs off.

use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError as OpenRaftError, RemoteError,
    ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, OptionalSend, Snapshot, SnapshotMeta, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::node::RaftStore;
use super::types::{decode, encode, NodeId, NodeInfo, TypeConfig};
use crate::cluster::ClusterTransport;

/// Largest RPC body accepted; snapshots travel in one request.
const MAX_RPC_BYTES: usize = 1 << 30;
const CONTENT_TYPE: &str = "application/octet-stream";

/// A whole snapshot in one request body.
#[derive(Serialize, Deserialize)]
struct SnapshotRequest {
    vote: Vote<NodeId>,
    meta: SnapshotMeta<NodeId, NodeInfo>,
    data: Vec<u8>,
}

/// The routes peers call; served on the cluster listener.
pub(crate) fn router(store: Arc<RaftStore>) -> Router {
    Router::new()
        .route("/raft/append", post(handle_append))
        .route("/raft/vote", post(handle_vote))
        .route("/raft/snapshot", post(handle_snapshot))
        .layer(DefaultBodyLimit::max(MAX_RPC_BYTES))
        .with_state(store)
}

fn binary<T: Serialize>(value: &T) -> Response {
    match encode(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn stopped() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "raft consensus is not running").into_response()
}

fn bad_request(e: postcard::Error) -> Response {
    (StatusCode::BAD_REQUEST, e.to_string()).into_response()
}

async fn handle_append(State(store): State<Arc<RaftStore>>, body: Bytes) -> Response {
    let req: AppendEntriesRequest<TypeConfig> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(raft) = store.raft() else {
        return stopped();
    };
    binary(&raft.append_entries(req).await)
}

async fn handle_vote(State(store): State<Arc<RaftStore>>, body: Bytes) -> Response {
    let req: VoteRequest<NodeId> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(raft) = store.raft() else {
        return stopped();
    };
    binary(&raft.vote(req).await)
}

async fn handle_snapshot(State(store): State<Arc<RaftStore>>, body: Bytes) -> Response {
    let req: SnapshotRequest = match decode(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(raft) = store.raft() else {
        return stopped();
    };
    let snapshot = Snapshot {
        meta: req.meta,
        snapshot: Box::new(Cursor::new(req.data)),
    };
    binary(&raft.install_full_snapshot(req.vote, snapshot).await)
}

/// Why a request did not produce a decodable answer.
enum Transport {
    /// The peer is down, stopped or not accepting connections: back off.
    Unreachable(AnyError),
    /// Anything else on the wire.
    Network(AnyError),
}

impl<E: std::error::Error> From<Transport> for RPCError<NodeId, NodeInfo, E> {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Unreachable(e) => RPCError::Unreachable(Unreachable::from(e)),
            Transport::Network(e) => RPCError::Network(NetworkError::from(e)),
        }
    }
}

impl From<Transport> for StreamingError<TypeConfig, Fatal<NodeId>> {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Unreachable(e) => StreamingError::Unreachable(Unreachable::from(e)),
            Transport::Network(e) => StreamingError::Network(NetworkError::from(e)),
        }
    }
}

/// Creates one [`PeerClient`] per replication target, sharing the connection pool.
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    client: reqwest::Client,
    transport: Arc<ClusterTransport>,
}

impl NetworkFactory {
    pub(crate) fn new(client: reqwest::Client, transport: Arc<ClusterTransport>) -> Self {
        Self { client, transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            client: self.client.clone(),
            transport: self.transport.clone(),
            target,
            base: format!("{}://{}/raft", crate::cluster::SCHEME, node.cluster_addr),
        }
    }
}

/// Sends RPCs to one peer.
pub(crate) struct PeerClient {
    client: reqwest::Client,
    /// Consulted on every RPC so a simulated partition takes effect at once.
    transport: Arc<ClusterTransport>,
    target: NodeId,
    base: String,
}

impl PeerClient {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, Transport> {
        if self.transport.is_partitioned() {
            return Err(Transport::Unreachable(AnyError::error(
                "cluster port partitioned (lab fault)",
            )));
        }
        let body = encode(req).map_err(|e| Transport::Network(AnyError::new(&e)))?;
        let resp = self
            .client
            .post(format!("{}/{path}", self.base))
            .header(header::CONTENT_TYPE, CONTENT_TYPE)
            .timeout(ttl)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() || e.is_timeout() {
                    Transport::Unreachable(AnyError::new(&e))
                } else {
                    Transport::Network(AnyError::new(&e))
                }
            })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Transport::Network(AnyError::new(&e)))?;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return Err(Transport::Unreachable(AnyError::error(
                "peer consensus is stopped",
            )));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(Transport::Network(AnyError::error(format!(
                "HTTP {status}: {text}"
            ))));
        }
        decode(&bytes).map_err(|e| Transport::Network(AnyError::new(&e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, OpenRaftError<NodeId>>> {
        let res: Result<_, OpenRaftError<NodeId>> = self.call("append", &rpc, option.hard_ttl()).await?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// Unused: snapshots go through [`RaftNetwork::full_snapshot`] in one request.
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, OpenRaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(RPCError::Network(NetworkError::from(AnyError::error(
            "chunked snapshot transfer is not supported; use full_snapshot",
        ))))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, OpenRaftError<NodeId>>> {
        let res: Result<_, OpenRaftError<NodeId>> = self.call("vote", &rpc, option.hard_ttl()).await?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let req = SnapshotRequest {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot.into_inner(),
        };
        let res: Result<_, Fatal<NodeId>> = tokio::select! {
            res = self.call("snapshot", &req, option.hard_ttl()) => res?,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        res.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
    }
}
