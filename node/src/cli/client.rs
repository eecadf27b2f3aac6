//! The HTTP side: a vault API client that sends what the Go client sends
//! (`X-Vault-Request`, `X-Vault-Token`, `X-Vault-Wrap-TTL`), follows one 307, and
//! reports failures in the Go client's `Error making API request.` shape.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::flags::HttpFlags;
use super::CliError;

/// Vault's response envelope, with fields in the Go `api.Secret` order so JSON output matches.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Secret {
    /// Request id assigned by the server.
    #[serde(default)]
    pub request_id: String,
    /// Lease id for leased secrets.
    #[serde(default)]
    pub lease_id: String,
    /// Lease (or refresh) duration in seconds.
    #[serde(default)]
    pub lease_duration: i64,
    /// Whether the lease is renewable.
    #[serde(default)]
    pub renewable: bool,
    /// Response data.
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    /// Server warnings.
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    /// Token information for auth responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SecretAuth>,
    /// Wrapping information when the response was wrapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_info: Option<WrapInfo>,
    /// Mount type (Vault >= 1.13).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_type: String,
}

/// Go `api.SecretAuth`, field order preserved.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecretAuth {
    /// The token.
    #[serde(default)]
    pub client_token: String,
    /// Its accessor.
    #[serde(default)]
    pub accessor: String,
    /// All policies.
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    /// Policies attached to the token.
    #[serde(default)]
    pub token_policies: Option<Vec<String>>,
    /// Policies from identity.
    #[serde(default)]
    pub identity_policies: Option<Vec<String>>,
    /// Token metadata.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Whether the token has no parent.
    #[serde(default)]
    pub orphan: bool,
    /// Identity entity.
    #[serde(default)]
    pub entity_id: String,
    /// TTL in seconds.
    #[serde(default)]
    pub lease_duration: i64,
    /// Whether it can be renewed.
    #[serde(default)]
    pub renewable: bool,
    /// MFA requirement (always null here).
    #[serde(default)]
    pub mfa_requirement: Option<Value>,
}

/// Go `api.SecretWrapInfo`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WrapInfo {
    /// The wrapping token.
    #[serde(default)]
    pub token: String,
    /// Its accessor.
    #[serde(default)]
    pub accessor: String,
    /// TTL in seconds.
    #[serde(default)]
    pub ttl: i64,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub creation_time: String,
    /// Path whose response was wrapped.
    #[serde(default)]
    pub creation_path: String,
    /// Accessor of a wrapped token.
    #[serde(default)]
    pub wrapped_accessor: String,
}

/// A failed request, printed exactly like the Go client's errors.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// The server answered with a non-success status.
    Status {
        /// HTTP method.
        method: String,
        /// Full URL.
        url: String,
        /// Status code.
        code: u16,
        /// The `errors` array, or the raw body when it was not JSON.
        errors: Vec<String>,
        /// Whether `errors` holds a raw body.
        raw: bool,
        /// The body, for 404 responses that still carry a secret.
        body: Vec<u8>,
    },
    /// The request could not be made.
    Transport(String),
}

impl ApiError {
    /// The HTTP status, when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            ApiError::Transport(_) => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Transport(s) => f.write_str(s),
            ApiError::Status {
                method,
                url,
                code,
                errors,
                raw,
                ..
            } => {
                let kind = if *raw { "Raw Message" } else { "Errors" };
                write!(
                    f,
                    "Error making API request.\n\nURL: {method} {url}\nCode: {code}. {kind}:\n\n"
                )?;
                if *raw {
                    f.write_str(errors.first().map(String::as_str).unwrap_or_default())
                } else {
                    let lines: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
                    f.write_str(&lines.join("\n"))
                }
            }
        }
    }
}

impl std::error::Error for ApiError {}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body at all.
    Empty,
    /// A JSON document (`Value::Null` sends `null`, as `vault write -f` does).
    Json(Value),
    /// Raw bytes (snapshot restore).
    Raw(Vec<u8>),
}

/// A successful response.
#[derive(Debug)]
pub struct Response {
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// Parses the body as JSON; `None` for an empty body (204).
    pub fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<Option<T>, CliError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|e| CliError::Local(format!("error parsing response: {e}")))
    }

    /// Parses the body as a vault envelope.
    pub fn secret(&self) -> Result<Option<Secret>, CliError> {
        self.json()
    }
}

/// A configured connection to one vault address.
pub struct Client {
    http: reqwest::Client,
    /// The API address (`VAULT_ADDR` / `-address`), without a trailing slash.
    pub addr: String,
    /// The token sent as `X-Vault-Token`, if any.
    pub token: Option<String>,
    wrap_ttl: Option<String>,
    headers: Vec<(String, String)>,
    curl: bool,
    policy_override: bool,
}

/// Where `vault login` stores the token and where commands look when `VAULT_TOKEN` is unset.
pub fn token_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".vault-token"))
}

/// The token from `VAULT_TOKEN`, else `~/.vault-token`.
pub fn default_token() -> Option<String> {
    if let Ok(t) = std::env::var("VAULT_TOKEN") {
        if !t.is_empty() {
            return Some(t);
        }
    }
    let path = token_file()?;
    let t = std::fs::read_to_string(path).ok()?;
    let t = t.trim().to_string();
    (!t.is_empty()).then_some(t)
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Client {
    /// Builds a client from the common flags and the `VAULT_*` environment, as vault does.
    pub fn from_flags(f: &HttpFlags) -> Result<Client, CliError> {
        let addr = f
            .address
            .clone()
            .or_else(|| env_nonempty("VAULT_ADDR"))
            .unwrap_or_else(|| "https://127.0.0.1:8200".into());
        let addr = addr.trim_end_matches('/').to_string();
        let local = |e: String| CliError::Local(format!("Error initializing client: {e}"));
        let timeout = match env_nonempty("VAULT_CLIENT_TIMEOUT") {
            Some(t) => labnode_duration::parse(&t).map_err(|e| local(e.to_string()))?,
            None => Duration::from_secs(60),
        };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout);
        let skip = f.tls_skip_verify
            || env_nonempty("VAULT_SKIP_VERIFY")
                .and_then(|v| super::flags::parse_bool(&v))
                .unwrap_or(false);
        if skip {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(path) = f.ca_cert.clone().or_else(|| env_nonempty("VAULT_CACERT")) {
            let pem = std::fs::read(&path).map_err(|e| local(format!("{path}: {e}")))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| local(e.to_string()))?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let cert = f
            .client_cert
            .clone()
            .or_else(|| env_nonempty("VAULT_CLIENT_CERT"));
        let key = f.client_key.clone().or_else(|| env_nonempty("VAULT_CLIENT_KEY"));
        if let (Some(cert), Some(key)) = (cert, key) {
            let mut pem = std::fs::read(&cert).map_err(|e| local(format!("{cert}: {e}")))?;
            pem.extend(std::fs::read(&key).map_err(|e| local(format!("{key}: {e}")))?);
            builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(|e| local(e.to_string()))?);
        }
        let http = builder.build().map_err(|e| local(e.to_string()))?;
        // Vault's DefaultWrappingLookupFunc: a non-zero flag, else VAULT_WRAP_TTL verbatim.
        let wrap_ttl = f
            .wrap_ttl
            .filter(|d| *d != labnode_duration::GoDuration::ZERO)
            .map(|d| d.to_string())
            .or_else(|| env_nonempty("VAULT_WRAP_TTL"));
        let headers = f
            .header
            .iter()
            .filter_map(|h| h.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        Ok(Client {
            http,
            addr,
            token: default_token(),
            wrap_ttl,
            headers,
            curl: f.output_curl_string,
            policy_override: f.policy_override,
        })
    }

    /// Sends one request to `/v1/<path>`; non-2xx/3xx statuses become [`ApiError::Status`].
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: &Body,
    ) -> Result<Response, CliError> {
        let mut url = format!("{}/v1/{}", self.addr, path.trim_start_matches('/'));
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            url = format!("{url}?{}", q.join("&"));
        }
        if self.curl {
            return Err(CliError::Curl(self.curl_string(method, &url, body)));
        }
        self.send_url(method, url, body, true).await
    }

    /// A GET that ignores `-wrap-ttl` and `-output-curl-string`, as vault's KV mount preflight does.
    pub async fn send_plain(&self, path: &str) -> Result<Response, CliError> {
        let url = format!("{}/v1/{}", self.addr, path.trim_start_matches('/'));
        self.send_url("GET", url, &Body::Empty, false).await
    }

    async fn send_url(
        &self,
        method: &str,
        url: String,
        body: &Body,
        wrap: bool,
    ) -> Result<Response, CliError> {
        let first = self.send_once(method, &url, body, wrap).await?;
        if first.status().as_u16() == 307 {
            if let Some(loc) = first.headers().get("location").and_then(|l| l.to_str().ok()) {
                let next = loc.to_string();
                let second = self.send_once(method, &next, body, wrap).await?;
                return finish(method, &next, second).await;
            }
        }
        finish(method, &url, first).await
    }

    async fn send_once(
        &self,
        method: &str,
        url: &str,
        body: &Body,
        wrap: bool,
    ) -> Result<reqwest::Response, CliError> {
        let m = Method::from_bytes(method.as_bytes()).map_err(|e| CliError::Local(e.to_string()))?;
        let mut req = self.http.request(m, url).header("X-Vault-Request", "true");
        if let Some(t) = &self.token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(w) = self.wrap_ttl.as_ref().filter(|_| wrap) {
            req = req.header("X-Vault-Wrap-TTL", w);
        }
        if method == "PATCH" {
            req = req.header("Content-Type", "application/merge-patch+json");
        }
        if self.policy_override {
            req = req.header("X-Vault-Policy-Override", "true");
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req = match body {
            Body::Empty => req,
            Body::Json(v) => req.body(serde_json::to_vec(v).map_err(|e| CliError::Local(e.to_string()))?),
            Body::Raw(b) => req.body(b.clone()),
        };
        req.send().await.map_err(|e| transport_error(method, url, &e))
    }

    fn curl_string(&self, method: &str, url: &str, body: &Body) -> String {
        let mut s = format!("curl -X {method} -H \"X-Vault-Request: true\"");
        if self.token.is_some() {
            s.push_str(" -H \"X-Vault-Token: $(vault print token)\"");
        }
        if let Some(w) = &self.wrap_ttl {
            s.push_str(&format!(" -H \"X-Vault-Wrap-TTL: {w}\""));
        }
        match body {
            Body::Json(v) => s.push_str(&format!(" -d '{}'", serde_json::to_string(v).unwrap_or_default())),
            Body::Raw(_) => s.push_str(" --data-binary @-"),
            Body::Empty => {}
        }
        format!("{s} \"{url}\"")
    }
}

/// Go prints the method capitalised in transport errors (`Put "http://..."`).
fn go_method(m: &str) -> String {
    let lower = m.to_lowercase();
    let mut c = lower.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A request that never got an HTTP answer, worded like Go's `Put "url": ...`.
fn transport_error(method: &str, url: &str, e: &reqwest::Error) -> CliError {
    let msg = format!("{} {url:?}: {}", go_method(method), chain(e));
    CliError::Transport(Box::new(ApiError::Transport(msg)))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

async fn finish(method: &str, url: &str, resp: reqwest::Response) -> Result<Response, CliError> {
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport_error(method, url, &e))?
        .to_vec();
    if (200..400).contains(&status) {
        return Ok(Response { body });
    }
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    let (errors, raw) = match serde_json::from_slice::<Errors>(&body) {
        Ok(e) => (e.errors, false),
        Err(_) => (vec![String::from_utf8_lossy(&body).into_owned()], true),
    };
    Err(CliError::Transport(Box::new(ApiError::Status {
        method: method.to_string(),
        url: url.to_string(),
        code: status,
        errors,
        raw,
        body,
    })))
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The outcome of a logical write/delete: the Go client can return a secret *and* an
/// error (404 with warnings), and vault prints both.
pub struct Outcome {
    /// The parsed envelope, if any.
    pub secret: Option<Secret>,
    /// The request failure, if any.
    pub error: Option<ApiError>,
}

impl Client {
    /// `Logical().Read`/`List`: a 404 yields the secret only if it has data or warnings.
    pub async fn logical_read(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Secret>, CliError> {
        match self.send(method, path, query, &Body::Empty).await {
            Ok(r) => r.secret(),
            Err(CliError::Transport(e)) if e.code() == Some(404) => match *e {
                ApiError::Status { body, .. } => Ok(secret_from_404(&body)),
                ApiError::Transport(_) => Ok(None),
            },
            Err(e) => Err(e),
        }
    }

    /// `Logical().Write`/`Delete`: returns the secret and error separately.
    pub async fn logical_write(&self, method: &str, path: &str, body: &Body) -> Result<Outcome, CliError> {
        match self.send(method, path, &[], body).await {
            Ok(r) => Ok(Outcome {
                secret: r.secret()?,
                error: None,
            }),
            Err(CliError::Transport(e)) => {
                let secret = match &*e {
                    ApiError::Status { code: 404, body, .. } => secret_from_404(body),
                    _ => None,
                };
                Ok(Outcome {
                    secret,
                    error: Some(*e),
                })
            }
            Err(e) => Err(e),
        }
    }
}

fn secret_from_404(body: &[u8]) -> Option<Secret> {
    let s: Secret = serde_json::from_slice(body).ok()?;
    let has_warnings = s.warnings.as_ref().is_some_and(|w| !w.is_empty());
    let has_data = s.data.as_ref().is_some_and(|d| !d.is_empty());
    (has_warnings || has_data).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_text() {
        let e = ApiError::Status {
            method: "PUT".into(),
            url: "http://127.0.0.1:8200/v1/secret/foo".into(),
            code: 403,
            errors: vec!["permission denied".into()],
            raw: false,
            body: vec![],
        };
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: PUT http://127.0.0.1:8200/v1/secret/foo\nCode: 403. Errors:\n\n* permission denied"
        );
    }

    #[test]
    fn secret_json_order() {
        let s: Secret =
            serde_json::from_str(r#"{"data":{"a":"b"},"request_id":"r","wrap_info":null}"#).unwrap();
        let out = serde_json::to_string(&s).unwrap();
        assert_eq!(
            out,
            r#"{"request_id":"r","lease_id":"","lease_duration":0,"renewable":false,"data":{"a":"b"},"warnings":null}"#
        );
    }

    #[test]
    fn not_found_with_warnings_is_a_secret() {
        assert!(secret_from_404(br#"{"errors":[]}"#).is_none());
        assert!(secret_from_404(br#"{"data":null,"warnings":["w"]}"#).is_some());
        assert_eq!(go_method("PUT"), "Put");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
