//! Replication on the cluster port: what DR secondaries call on a primary, and
//! how the active node hands new keys to its own standbys.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Serialize;

use crate::cluster::PeerRole;
use crate::core::Core;

fn binary<T: Serialize>(value: &T) -> Response {
    match postcard::to_allocvec(value) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn refused(status: u16, message: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
        message,
    )
        .into_response()
}

/// The `/replication/*` routes of the cluster port.
pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/replication/dr/sync", get(sync))
        .route("/replication/dr/stream", get(stream))
        .route("/replication/internal/adopt-root-key", post(adopt))
        .with_state(core)
}

/// Everything else on the cluster port (Raft RPCs, forwarded requests) is for members only.
pub async fn require_member(Extension(role): Extension<PeerRole>, req: Request, next: Next) -> Response {
    if role == PeerRole::Member || req.uri().path().starts_with("/replication/") {
        return next.run(req).await;
    }
    refused(403, "this endpoint is for members of the cluster".into())
}

async fn sync(State(core): State<Arc<Core>>, Extension(role): Extension<PeerRole>) -> Response {
    let PeerRole::DrSecondary(id) = role else {
        return refused(403, "not a DR secondary".into());
    };
    match core.dr_sync(&id).await {
        Ok(reply) => binary(&reply),
        Err(e) => refused(e.status(), e.to_string()),
    }
}

async fn stream(
    State(core): State<Arc<Core>>,
    Extension(role): Extension<PeerRole>,
    Query(query): Query<HashMap<String, u64>>,
) -> Response {
    let PeerRole::DrSecondary(id) = role else {
        return refused(403, "not a DR secondary".into());
    };
    match core
        .dr_stream(&id, query.get("after").copied().unwrap_or(0))
        .await
    {
        Ok(reply) => binary(&reply),
        Err(e) => refused(e.status(), e.to_string()),
    }
}

async fn adopt(State(core): State<Arc<Core>>, Extension(role): Extension<PeerRole>, body: Bytes) -> Response {
    if role != PeerRole::Member {
        return refused(403, "only members of this cluster may hand over keys".into());
    }
    match core.adopt_root_key_from_peer(&body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(e.status(), e.to_string()),
    }
}
