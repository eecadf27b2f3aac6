//! The Vault API calls checks and placeholders make, beyond what [`crate::api`] offers:
//! arbitrary reads and writes with a token, answered as JSON.

use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::Value;

use super::template::Context;
use super::PracticeError;
use crate::api::{ApiError, NodeClient};
use crate::state::{State, Target};

/// One node's API with a token.
pub struct Vault {
    addr: String,
    token: String,
    http: Client,
}

/// The index of the active node of cluster `c` (a DR secondary's active node included).
pub fn active_node(state: &State, c: usize) -> Option<usize> {
    state.clusters[c].nodes.iter().position(|node| {
        NodeClient::new(&node.api_addr)
            .and_then(|client| client.health())
            .is_ok_and(|health| health.is_active())
    })
}

impl Vault {
    /// A NODE, or a CLUSTER's active node (default: the first cluster), with that
    /// cluster's root token.
    pub fn active(ctx: &Context<'_>, target: Option<&str>) -> Result<Vault, PracticeError> {
        let state = ctx.state;
        let (c, n) = match state.resolve(target)? {
            Target::Node(c, n) => (c, n),
            Target::Cluster(c) => (
                c,
                active_node(state, c)
                    .ok_or_else(|| PracticeError::NoActiveNode(state.clusters[c].name.clone()))?,
            ),
        };
        let token = ctx.home.credentials(&state.clusters[c].name)?.root_token;
        Vault::new(&state.clusters[c].nodes[n].api_addr, &token)
    }

    /// A client for `addr` using `token`.
    pub fn new(addr: &str, token: &str) -> Result<Vault, PracticeError> {
        let http = Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| PracticeError::Api(ApiError::Client(e)))?;
        Ok(Vault {
            addr: addr.to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    /// The same node with another token.
    pub fn with_token(&self, token: &str) -> Vault {
        Vault {
            addr: self.addr.clone(),
            token: token.to_owned(),
            http: self.http.clone(),
        }
    }

    /// `GET /v1/PATH`.
    pub fn get(&self, path: &str) -> Result<Value, PracticeError> {
        self.send("GET", path, None)
    }

    /// `PUT /v1/PATH` with a JSON body.
    pub fn put(&self, path: &str, body: Value) -> Result<Value, PracticeError> {
        self.send("PUT", path, Some(body))
    }

    fn send(&self, method: &'static str, path: &str, body: Option<Value>) -> Result<Value, PracticeError> {
        let url = format!("{}/v1/{path}", self.addr);
        let request = match body {
            Some(body) => self.http.put(url).json(&body),
            None => self.http.get(url),
        };
        let request = if self.token.is_empty() {
            request
        } else {
            request.header("X-Vault-Token", &self.token)
        };
        let response = request.send().map_err(|source| {
            PracticeError::Api(ApiError::Unreachable {
                addr: self.addr.clone(),
                source,
            })
        })?;
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(PracticeError::Api(ApiError::Status {
                method,
                addr: self.addr.clone(),
                path: format!("/v1/{path}"),
                status,
                body: text.trim().to_owned(),
            }));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| {
            PracticeError::Api(ApiError::Decode {
                addr: self.addr.clone(),
                path: format!("/v1/{path}"),
                message: e.to_string(),
            })
        })
    }
}
