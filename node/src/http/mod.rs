//! The `/v1` HTTP API: Vault's wire conventions over the logical core.
//!
//! Raw endpoints (init, seal-status, unseal, health, leader) answer flat JSON;
//! everything else goes through [`Core::handle`] and comes back in the logical
//! envelope, or as 204 when empty.

pub mod cluster;
mod panic;
pub mod replication;

pub use panic::catch_panics;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::core::generate_root::OtpPurpose;
use crate::core::{Core, CoreError, HealthQuery, InitRequest, Operation, Request, Response};

/// Marks a request a standby already forwarded, so it is never forwarded twice.
const FORWARDED_HEADER: &str = "x-labnode-forwarded";

/// The share counts of a `sys/init` body.
const INIT_COUNTS: [&str; 5] = [
    "secret_shares",
    "secret_threshold",
    "recovery_shares",
    "recovery_threshold",
    "stored_shares",
];

/// Why an API request failed: the core refused it, or this layer could not forward it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A request a standby forwarded reached a node that is not active either; forwarding
    /// it again could loop.
    #[error("forwarded request reached a node that is not active")]
    ForwardLoop,
}

impl ApiError {
    /// The HTTP status Vault answers with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Core(e) => e.status(),
            ApiError::ForwardLoop => 500,
        }
    }

    /// The `errors` array of the body.
    pub fn messages(&self) -> Vec<String> {
        match self {
            ApiError::Core(e) => e.messages(),
            ApiError::ForwardLoop => vec![self.to_string()],
        }
    }
}

/// Shared state of the API listener.
#[derive(Clone)]
pub struct ApiState {
    pub core: Arc<Core>,
}

/// The API router for one node; a panicking request answers 500 (see [`catch_panics`]).
pub fn router(core: Arc<Core>, max_request_size: usize) -> Router {
    catch_panics(
        Router::new()
            .fallback(dispatch)
            .layer(DefaultBodyLimit::max(max_request_size))
            .with_state(ApiState { core }),
    )
}

/// Which OTP flow a raw generate-root style path drives.
fn otp_purpose(path: &str) -> OtpPurpose {
    if path.starts_with("sys/replication/") {
        OtpPurpose::DrOperation
    } else {
        OtpPurpose::Root
    }
}

/// Paths a node always answers itself, whatever its role.
fn is_node_local(path: &str) -> bool {
    matches!(
        path,
        "sys/init"
            | "sys/seal-status"
            | "sys/unseal"
            | "sys/health"
            | "sys/leader"
            | "sys/storage/raft/join"
            | "sys/metrics"
    )
}

/// Forwards a request to the active node (or redirects when the client asked not to be proxied).
async fn forward(
    app: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<HttpResponse, ApiError> {
    if app.core.is_removed() {
        return Err(CoreError::Unavailable("this node was removed from its raft cluster".into()).into());
    }
    if headers.contains_key(FORWARDED_HEADER) {
        return Err(ApiError::ForwardLoop);
    }
    let leader = app
        .core
        .raft()
        .and_then(|r| r.status().ok())
        .and_then(|s| s.leader)
        .ok_or_else(|| {
            CoreError::Unavailable("local node not active but active cluster node not found".into())
        })?;
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let always_redirect = path_and_query.starts_with("/v1/sys/storage/raft/snapshot");
    if always_redirect
        || headers
            .get("x-vault-no-request-forwarding")
            .is_some_and(|v| v == "true")
    {
        let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
        let location = format!("{}{}", leader.api_addr.trim_end_matches('/'), path_and_query);
        if let Ok(value) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, value);
        }
        return Ok(resp);
    }
    let url = format!(
        "{}://{}{}",
        crate::cluster::SCHEME,
        leader.cluster_addr,
        path_and_query
    );
    let client =
        app.core.transport().client().ok_or_else(|| {
            CoreError::Unavailable("no cluster credentials to reach the active node".into())
        })?;
    let mut request = client
        .request(method.clone(), url)
        .body(body.clone())
        .header(FORWARDED_HEADER, "true");
    for (name, value) in headers {
        let keep = name.as_str().starts_with("x-vault-")
            || *name == header::AUTHORIZATION
            || *name == header::CONTENT_TYPE;
        if keep {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let upstream = request
        .send()
        .await
        .map_err(|e| CoreError::Unavailable(format!("error forwarding request to the active node: {e}")))?;
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out_headers = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            if n != header::TRANSFER_ENCODING && n != header::CONNECTION && n != header::CONTENT_LENGTH {
                out_headers.insert(n, v);
            }
        }
    }
    let bytes = upstream
        .bytes()
        .await
        .map_err(|e| CoreError::Unavailable(format!("reading forwarded response: {e}")))?;
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().extend(out_headers);
    Ok(resp)
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body.to_string()).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An error in Vault's `{"errors":[...]}` form.
pub fn error_response(err: &ApiError) -> HttpResponse {
    json_response(err.status(), &json!({ "errors": err.messages() }))
}

fn no_content() -> HttpResponse {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The envelope every logical response uses.
pub fn envelope(resp: &Response) -> Value {
    let wrapped = resp.wrap_info.is_some();
    let mut body = json!({
        "request_id": if wrapped { String::new() } else { uuid::Uuid::new_v4().to_string() },
        "lease_id": resp.lease_id,
        "renewable": resp.renewable,
        "lease_duration": resp.lease_duration,
        "data": if wrapped { Value::Null } else { resp.data.clone().map(Value::Object).unwrap_or(Value::Null) },
        "wrap_info": resp.wrap_info,
        "warnings": if resp.warnings.is_empty() { Value::Null } else { json!(resp.warnings) },
        "auth": resp.auth,
    });
    if resp.legacy_top_level {
        if let (Some(data), Value::Object(obj)) = (&resp.data, &mut body) {
            for (k, v) in data {
                obj.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    body
}

fn client_token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim().to_string());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

/// Parses a request body: empty and `null` are `{}`; anything but an object is refused.
fn parse_body(body: &Bytes) -> Result<Map<String, Value>, CoreError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(CoreError::invalid(
            "failed to parse JSON input: request body must be a JSON object",
        )),
        Err(e) => Err(CoreError::invalid(format!("failed to parse JSON input: {e}"))),
    }
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

fn query_bool(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name)
        .is_some_and(|v| v.is_empty() || matches!(v.as_str(), "true" | "1" | "t" | "True"))
}

fn query_code(q: &HashMap<String, String>, name: &str) -> Result<Option<u16>, CoreError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse::<u16>()
            .map(Some)
            .map_err(|_| CoreError::invalid(format!("unable to parse {name}: {v}"))),
    }
}

async fn dispatch(
    State(app): State<ApiState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResponse {
    let Some(path) = uri.path().strip_prefix("/v1/") else {
        if uri.path() == "/" || uri.path().starts_with("/ui") {
            return ui_page();
        }
        return json_response(404, &json!({ "errors": [] }));
    };
    let path = path.trim_start_matches('/').to_string();
    let core = &app.core;
    let result = if !is_node_local(&path) && core.state().await.is_ok() && !core.is_active() {
        forward(&app, &method, &uri, &headers, &body).await
    } else {
        handle_v1(&app, &method, &path, &uri, &headers, &body)
            .await
            .map_err(ApiError::from)
    };
    match result {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

fn ui_page() -> HttpResponse {
    let mut resp = (
        StatusCode::OK,
        "<!doctype html><title>labnode</title><h1>labnode</h1><p>The Vault-compatible API is served under /v1/.</p>",
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

async fn handle_v1(
    app: &ApiState,
    method: &Method,
    path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<HttpResponse, CoreError> {
    let core = &app.core;
    let query = query_map(uri);
    let is_write = *method == Method::PUT || *method == Method::POST;
    match path {
        "sys/init" if *method == Method::GET => {
            return Ok(json_response(
                200,
                &json!({ "initialized": core.is_initialized().await? }),
            ));
        }
        "sys/init" if is_write => {
            let data = parse_body(body)?;
            // Counts checked first so a negative or fractional one is refused by name.
            let f = crate::core::fields::Fields(&data);
            for count in INIT_COUNTS {
                f.non_negative_int(count, None)?;
            }
            let req: InitRequest = serde_json::from_value(Value::Object(data))
                .map_err(|e| CoreError::invalid(format!("failed to parse JSON input: {e}")))?;
            let resp = core.init(req, None).await?;
            return Ok(json_response(200, &json!(resp)));
        }
        "sys/seal-status" if *method == Method::GET => {
            return Ok(json_response(200, &json!(core.seal_status().await?)));
        }
        "sys/unseal" if is_write => {
            let data = parse_body(body)?;
            let key = data.get("key").and_then(Value::as_str);
            let flag = |name: &str| data.get(name).and_then(Value::as_bool).unwrap_or(false);
            return Ok(json_response(
                200,
                &json!(core.unseal(key, flag("reset"), flag("migrate")).await?),
            ));
        }
        "sys/health" if *method == Method::GET || *method == Method::HEAD => {
            let q = HealthQuery {
                standbyok: query_bool(&query, "standbyok"),
                perfstandbyok: query_bool(&query, "perfstandbyok"),
                activecode: query_code(&query, "activecode")?,
                standbycode: query_code(&query, "standbycode")?,
                drsecondarycode: query_code(&query, "drsecondarycode")?,
                performancestandbycode: query_code(&query, "performancestandbycode")?,
                sealedcode: query_code(&query, "sealedcode")?,
                uninitcode: query_code(&query, "uninitcode")?,
                removedcode: query_code(&query, "removedcode")?,
            };
            let (code, body) = core.health(&q).await?;
            if *method == Method::HEAD {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
                return Ok(status.into_response());
            }
            return Ok(json_response(code, &body));
        }
        "sys/leader" if *method == Method::GET => return Ok(json_response(200, &core.leader().await?)),
        "sys/generate-root/attempt" | "sys/replication/dr/secondary/generate-operation-token/attempt" => {
            let purpose = otp_purpose(path);
            let body = match *method {
                Method::GET => core.generate_root_status(purpose).await?,
                Method::PUT | Method::POST => {
                    let data = parse_body(body)?;
                    let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
                    core.generate_root_start(purpose, text("otp"), text("pgp_key"))
                        .await?
                }
                Method::DELETE => {
                    core.generate_root_cancel(purpose).await;
                    return Ok(no_content());
                }
                _ => return Err(CoreError::UnsupportedOperation),
            };
            return Ok(json_response(200, &body));
        }
        "sys/generate-root/update" | "sys/replication/dr/secondary/generate-operation-token/update"
            if is_write =>
        {
            let data = parse_body(body)?;
            let text = |k: &str| {
                data.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            if text("key").is_empty() {
                return Err(CoreError::invalid(
                    "'key' must be specified in request body as JSON",
                ));
            }
            let status = core
                .generate_root_update(otp_purpose(path), &text("key"), &text("nonce"))
                .await?;
            return Ok(json_response(200, &status));
        }
        "sys/storage/raft/join" if is_write => {
            let data = parse_body(body)?;
            let f = crate::core::fields::Fields(&data);
            let target = crate::core::join_client::JoinTarget {
                leader_api_addr: f.string("leader_api_addr").unwrap_or_default(),
                leader_ca_cert: f.string("leader_ca_cert").filter(|s| !s.is_empty()),
                leader_client_cert: f.string("leader_client_cert").filter(|s| !s.is_empty()),
                leader_client_key: f.string("leader_client_key").filter(|s| !s.is_empty()),
                leader_tls_servername: f.string("leader_tls_servername").filter(|s| !s.is_empty()),
            };
            if target.leader_api_addr.is_empty() {
                return Err(CoreError::invalid("leader_api_addr is required"));
            }
            if !(target.leader_api_addr.starts_with("http://")
                || target.leader_api_addr.starts_with("https://"))
            {
                return Err(CoreError::invalid(format!(
                    "invalid leader_api_addr scheme: {}",
                    target.leader_api_addr
                )));
            }
            let non_voter = f.bool("non_voter")?.unwrap_or(false);
            let joined = core.raft_join(vec![target], non_voter).await?;
            return Ok(json_response(200, &json!({ "joined": joined })));
        }
        "sys/storage/raft/snapshot" | "sys/storage/raft/snapshot-force" => {
            let operation = if *method == Method::GET {
                Operation::Read
            } else {
                Operation::Update
            };
            if operation == Operation::Read && path.ends_with("force") {
                return Err(CoreError::UnsupportedOperation);
            }
            let state = core.state().await?;
            let mut req = Request::new(operation, path);
            req.client_token = client_token(headers);
            core.authorize(&state, &req).await?;
            if operation == Operation::Read {
                let archive = core.snapshot_save().await?;
                let mut resp = (StatusCode::OK, archive).into_response();
                let h = resp.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
                h.insert(
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("attachment; filename=\"raft.snap\""),
                );
                return Ok(resp);
            }
            core.snapshot_restore(body, path.ends_with("force")).await?;
            return Ok(no_content());
        }
        "sys/init"
        | "sys/seal-status"
        | "sys/unseal"
        | "sys/health"
        | "sys/leader"
        | "sys/storage/raft/join" => {
            return Err(CoreError::UnsupportedOperation);
        }
        _ => {}
    }

    let operation = match *method {
        Method::GET if query_bool(&query, "list") => Operation::List,
        Method::GET => Operation::Read,
        Method::PUT | Method::POST => Operation::Update,
        Method::DELETE => Operation::Delete,
        Method::PATCH => Operation::Patch,
        _ if method.as_str() == "LIST" => Operation::List,
        _ => return Err(CoreError::UnsupportedOperation),
    };
    let mut data = parse_body(body)?;
    if matches!(operation, Operation::Read | Operation::List | Operation::Delete) {
        for (k, v) in &query {
            if k != "list" {
                data.entry(k.clone()).or_insert_with(|| Value::String(v.clone()));
            }
        }
    }
    let wrap_ttl = match headers.get("x-vault-wrap-ttl").and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) => Some(
            labnode_duration::parse(v)
                .map_err(|e| CoreError::invalid(format!("error parsing X-Vault-Wrap-TTL header: {e}")))?,
        ),
    };
    let req = Request {
        operation,
        path: path.to_string(),
        data,
        client_token: client_token(headers),
        wrap_ttl,
    };
    let resp = core.handle(req).await?;
    if let Some(status) = resp.status {
        return Ok(json_response(status, &envelope(&resp)));
    }
    if resp.is_empty() {
        return Ok(no_content());
    }
    Ok(json_response(200, &envelope(&resp)))
}
