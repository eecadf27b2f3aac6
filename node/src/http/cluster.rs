//! Cluster-port routes of the core for members only (merged beside Raft's and
//! replication's on the cluster listener): a removed node learns of its removal.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::core::Core;

/// The core's member-only routes.
pub fn internal_router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/cluster/removed", post(removed))
        .with_state(core)
}

/// `POST /cluster/removed`: the leader took this node out of the cluster.
async fn removed(State(core): State<Arc<Core>>) -> Response {
    match core.mark_removed().await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            e.to_string(),
        )
            .into_response(),
    }
}
