//! The few Vault HTTP endpoints lab needs: init, unseal, seal-status, health and the raft
//! peer list. Blocking on purpose: bring-up is a sequence of waits, one node at a time.

use std::time::Duration;

use reqwest::blocking::Client;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// Why a request to a node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Nothing answered (not started yet, crashed, or killed).
    #[error("{addr} is not answering: {source}")]
    Unreachable {
        /// The node's API address.
        addr: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The node answered with an unexpected status; `body` carries Vault's `errors`.
    #[error("{method} {addr}{path}: HTTP {status}: {body}")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// The node's API address.
        addr: String,
        /// The request path.
        path: String,
        /// The status code.
        status: u16,
        /// The response body, trimmed.
        body: String,
    },
    /// The node answered 2xx with a body lab does not understand.
    #[error("{addr}{path}: unexpected response: {message}")]
    Decode {
        /// The node's API address.
        addr: String,
        /// The request path.
        path: String,
        /// What did not parse.
        message: String,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot create HTTP client: {0}")]
    Client(reqwest::Error),
}

/// `GET /v1/sys/health`: the status code carries the node's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// 200 active, 429 standby, 472 DR secondary, 473 perf standby, 501 uninitialized, 503 sealed.
    pub status: u16,
    /// From the body; a standby reports `standby: true`.
    pub standby: bool,
    /// From the body.
    pub sealed: bool,
}

impl Health {
    /// Active node of its cluster (a DR secondary's active node answers 472, not standby).
    pub fn is_active(&self) -> bool {
        self.status == 200 || (self.status == 472 && !self.standby)
    }

    /// Unsealed and serving as active or standby: what "healthy" means for a follower.
    pub fn is_unsealed_member(&self) -> bool {
        matches!(self.status, 200 | 429 | 472 | 473)
    }
}

/// `GET /v1/sys/seal-status`, the fields bring-up waits on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SealStatus {
    /// Seal type (`shamir`, `awskms`).
    #[serde(rename = "type")]
    pub seal_type: String,
    /// Initialized (a joining node reports the leader's state once it has the challenge).
    pub initialized: bool,
    /// Sealed.
    pub sealed: bool,
    /// Threshold; 0 until the node knows its seal configuration.
    pub t: u32,
    /// Shares.
    pub n: u32,
    /// Keys given so far.
    pub progress: u32,
}

/// `PUT /v1/sys/init` response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InitResponse {
    /// Unseal shares, hex (empty with auto-unseal).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Unseal shares, base64.
    #[serde(default)]
    pub keys_base64: Vec<String>,
    /// Recovery shares, hex (auto-unseal only).
    #[serde(default)]
    pub recovery_keys: Vec<String>,
    /// Recovery shares, base64.
    #[serde(default)]
    pub recovery_keys_base64: Vec<String>,
    /// Initial root token.
    pub root_token: String,
}

/// One entry of `sys/storage/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RaftServer {
    /// Raft node id.
    pub node_id: String,
    /// Cluster address `host:port`.
    #[serde(default)]
    pub address: String,
    /// Current raft leader.
    #[serde(default)]
    pub leader: bool,
    /// Voting member.
    #[serde(default)]
    pub voter: bool,
}

/// A client for one node's API address.
#[derive(Debug, Clone)]
pub struct NodeClient {
    addr: String,
    http: Client,
}

impl NodeClient {
    /// A client for `api_addr` (e.g. `http://127.0.0.1:8200`); never uses a proxy, so
    /// requests go straight to the node.
    pub fn new(api_addr: &str) -> Result<NodeClient, ApiError> {
        NodeClient::with_timeout(api_addr, Duration::from_secs(10))
    }

    /// A client whose requests give up after `timeout` (the canary wants to notice a dead
    /// node within a second, not ten).
    pub fn with_timeout(api_addr: &str, timeout: Duration) -> Result<NodeClient, ApiError> {
        let http = Client::builder()
            .no_proxy()
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            .build()
            .map_err(ApiError::Client)?;
        Ok(NodeClient {
            addr: api_addr.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The node's role, from the status code of `GET /v1/sys/health`.
    pub fn health(&self) -> Result<Health, ApiError> {
        let response = self
            .http
            .get(format!("{}/v1/sys/health", self.addr))
            .send()
            .map_err(|source| self.unreachable(source))?;
        let status = response.status().as_u16();
        let body: Value = response.json().unwrap_or(Value::Null);
        let flag = |name: &str| body.get(name).and_then(Value::as_bool).unwrap_or(false);
        Ok(Health {
            status,
            standby: flag("standby"),
            sealed: flag("sealed") || status == 503 || status == 501,
        })
    }

    /// `GET /v1/sys/seal-status`.
    pub fn seal_status(&self) -> Result<SealStatus, ApiError> {
        self.call("GET", "/v1/sys/seal-status", None, None)
    }

    /// `PUT /v1/sys/init` with Shamir shares (ignored by auto-unseal nodes, which want
    /// recovery shares instead; the caller passes the right pair).
    pub fn init(&self, body: Value) -> Result<InitResponse, ApiError> {
        self.call("PUT", "/v1/sys/init", Some(body), None)
    }

    /// `PUT /v1/sys/unseal` with one key share.
    pub fn unseal(&self, key: &str) -> Result<SealStatus, ApiError> {
        self.call("PUT", "/v1/sys/unseal", Some(json!({ "key": key })), None)
    }

    /// `GET /v1/sys/storage/raft/configuration` (needs a token).
    pub fn raft_servers(&self, token: &str) -> Result<Vec<RaftServer>, ApiError> {
        let path = "/v1/sys/storage/raft/configuration";
        let body: Value = self.call("GET", path, None, Some(token))?;
        let servers = body
            .pointer("/data/config/servers")
            .cloned()
            .ok_or_else(|| self.decode(path, "no data.config.servers".to_owned()))?;
        serde_json::from_value(servers).map_err(|e| self.decode(path, e.to_string()))
    }

    /// `GET /v1/sys/replication/dr/status` (unauthenticated): its `data`.
    pub fn dr_status(&self) -> Result<Value, ApiError> {
        let body: Value = self.call("GET", "/v1/sys/replication/dr/status", None, None)?;
        Ok(body.get("data").cloned().unwrap_or(Value::Null))
    }

    /// Any request: the status code and the body as JSON (`null` when empty or not JSON).
    /// Only transport failures are errors, so callers decide what a status means.
    pub fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<(u16, Value), ApiError> {
        let url = format!("{}/v1/{}", self.addr, path.trim_start_matches('/'));
        let mut request = match method {
            "PUT" => self.http.put(url),
            "POST" => self.http.post(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.get(url),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        let response = request.send().map_err(|source| self.unreachable(source))?;
        let status = response.status().as_u16();
        let text = response.text().map_err(|source| self.unreachable(source))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.addr);
        let mut request = match method {
            "PUT" => self.http.put(url),
            _ => self.http.get(url),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        let response = request.send().map_err(|source| self.unreachable(source))?;
        let status = response.status().as_u16();
        let text = response.text().map_err(|source| self.unreachable(source))?;
        if !(200..300).contains(&status) {
            return Err(ApiError::Status {
                method,
                addr: self.addr.clone(),
                path: path.to_owned(),
                status,
                body: text.trim().to_owned(),
            });
        }
        serde_json::from_str(&text).map_err(|e| self.decode(path, e.to_string()))
    }

    fn unreachable(&self, source: reqwest::Error) -> ApiError {
        ApiError::Unreachable {
            addr: self.addr.clone(),
            source,
        }
    }

    fn decode(&self, path: &str, message: String) -> ApiError {
        ApiError::Decode {
            addr: self.addr.clone(),
            path: path.to_owned(),
            message,
        }
    }
}
