//! The last line of defence of both listeners: a panic inside a request handler becomes a
//! 500 in Vault's `{"errors":[...]}` form, logged under a request id, instead of a dropped
//! connection. Input checks are meant to stop bad requests long before this; a panic that
//! reaches here is a bug, and the request id ties the client's answer to the log line.

use std::any::Any;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

/// Wraps `router` so a panicking handler answers 500 instead of taking the connection down.
pub fn catch_panics(router: Router) -> Router {
    router.layer(CatchPanicLayer::custom(panic_response))
}

/// The 500 a panicking request gets; the panic's message goes to the log only.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let request_id = uuid::Uuid::new_v4();
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(%request_id, panic = message, "request handler panicked; answered 500");
    let body = json!({ "errors": [format!("internal error; request id {request_id}")] });
    let mut resp = (StatusCode::INTERNAL_SERVER_ERROR, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("handler bug")
    }

    fn router() -> Router {
        catch_panics(
            Router::new()
                .route("/boom", get(boom))
                .route("/fine", get(|| async { "ok" })),
        )
    }

    async fn call(router: Router, path: &str) -> (StatusCode, String) {
        let resp = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_vaults_error_form() {
        let (status, body) = call(router(), "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let errors = body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{body}");
        let message = errors[0].as_str().unwrap();
        let id = message.strip_prefix("internal error; request id ").unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{message}");
        assert!(
            !message.contains("handler bug"),
            "the panic text stays in the log"
        );
    }

    #[tokio::test]
    async fn the_router_keeps_serving_after_a_panic() {
        let router = router();
        assert_eq!(
            call(router.clone(), "/boom").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(call(router, "/fine").await, (StatusCode::OK, "ok".into()));
    }

    #[test]
    fn panic_payloads_of_both_kinds_are_answered() {
        let owned = panic_response(Box::new(String::from("owned")));
        let borrowed = panic_response(Box::new("borrowed"));
        let other = panic_response(Box::new(42_u8));
        for resp in [owned, borrowed, other] {
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
}
