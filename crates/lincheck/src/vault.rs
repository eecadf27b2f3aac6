//! The few Vault HTTP API calls the recorder makes: KV v2 read, write and check-and-set on
//! one mount, the mount itself, and `sys/health` to find the active node.

use std::time::Duration;

use serde_json::{json, Value};

use crate::history::Output;

/// The field every write stores its unique value under.
const FIELD: &str = "v";

/// Why a request has no usable answer, split by whether it may have taken effect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The connection was never made, so the server never saw the request.
    #[error("{url}: not sent: {source}")]
    NotSent {
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Sent, but the answer was lost (timeout, reset) or unreadable.
    #[error("{url}: no answer: {source}")]
    NoAnswer {
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
        /// The response body, for the report.
        body: String,
    },
    /// A 2xx answer whose body is not what KV v2 answers.
    #[error("{url}: unexpected answer: {body}")]
    Unexpected {
        /// The request URL.
        url: String,
        /// The response body.
        body: String,
    },
}

impl RequestError {
    /// Whether the request certainly had no effect.
    pub fn not_sent(&self) -> bool {
        matches!(self, RequestError::NotSent { .. })
    }
}

/// A Vault API client for one KV v2 mount, with the root token.
#[derive(Clone)]
pub struct KvClient {
    http: reqwest::Client,
    token: String,
    mount: String,
}

impl KvClient {
    /// A client whose every request gives up after `timeout`.
    pub fn new(token: String, mount: String, timeout: Duration) -> Result<KvClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .no_proxy()
            .build()?;
        Ok(KvClient { http, token, mount })
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> Result<(u16, Value), RequestError> {
        let response = request
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .map_err(|source| classify(url, source))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|source| RequestError::NoAnswer {
            url: url.to_owned(),
            source,
        })?;
        let value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status >= 300 && !(status == 404 || is_cas_mismatch(status, &value)) {
            return Err(RequestError::Status {
                url: url.to_owned(),
                status,
                body,
            });
        }
        Ok((status, value))
    }

    /// Mounts the KV v2 engine at this client's mount unless it is there already.
    pub async fn mount(&self, addr: &str) -> Result<(), RequestError> {
        let url = format!("{addr}/v1/sys/mounts/{}", self.mount);
        let request = self
            .http
            .post(&url)
            .json(&json!({ "type": "kv", "options": { "version": "2" } }));
        match self.send(request, &url).await {
            Ok(_) => Ok(()),
            Err(RequestError::Status {
                status: 400, body, ..
            }) if body.contains("already in use") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads the current version of `key`.
    pub async fn read(&self, addr: &str, key: &str) -> Result<Output, RequestError> {
        let url = format!("{addr}/v1/{}/data/{key}", self.mount);
        let (status, body) = self.send(self.http.get(&url), &url).await?;
        if status == 404 {
            return Ok(Output::Read {
                version: 0,
                value: None,
            });
        }
        let version = body["data"]["metadata"]["version"].as_u64();
        let value = body["data"]["data"][FIELD].as_str().and_then(|v| v.parse().ok());
        match (version, value) {
            (Some(version), Some(value)) => Ok(Output::Read {
                version,
                value: Some(value),
            }),
            _ => Err(unexpected(&url, &body)),
        }
    }

    /// The value stored at `version` of `key`, `None` if that version is gone.
    pub async fn read_version(
        &self,
        addr: &str,
        key: &str,
        version: u64,
    ) -> Result<Option<u64>, RequestError> {
        let url = format!("{addr}/v1/{}/data/{key}?version={version}", self.mount);
        let (status, body) = self.send(self.http.get(&url), &url).await?;
        if status == 404 {
            return Ok(None);
        }
        match body["data"]["data"][FIELD].as_str().and_then(|v| v.parse().ok()) {
            Some(value) => Ok(Some(value)),
            None => Err(unexpected(&url, &body)),
        }
    }

    /// The current version of `key` from its metadata (0: never written).
    pub async fn current_version(&self, addr: &str, key: &str) -> Result<u64, RequestError> {
        let url = format!("{addr}/v1/{}/metadata/{key}", self.mount);
        let (status, body) = self.send(self.http.get(&url), &url).await?;
        if status == 404 {
            return Ok(0);
        }
        body["data"]["current_version"]
            .as_u64()
            .ok_or_else(|| unexpected(&url, &body))
    }

    /// Writes `value` to `key`, only at version `cas` when given.
    pub async fn write(
        &self,
        addr: &str,
        key: &str,
        value: u64,
        cas: Option<u64>,
    ) -> Result<Output, RequestError> {
        let url = format!("{addr}/v1/{}/data/{key}", self.mount);
        let mut body = json!({ "data": { FIELD: value.to_string() } });
        if let Some(cas) = cas {
            body["options"] = json!({ "cas": cas });
        }
        let (status, answer) = self.send(self.http.post(&url).json(&body), &url).await?;
        if status == 400 && cas.is_some() {
            return Ok(Output::CasRejected);
        }
        match answer["data"]["version"].as_u64() {
            Some(version) if status < 300 => Ok(Output::Written { version }),
            _ => Err(unexpected(&url, &answer)),
        }
    }

    /// Whether `addr` answers `sys/health` as the active node (200).
    pub async fn is_active(&self, addr: &str) -> bool {
        let url = format!("{addr}/v1/sys/health");
        matches!(self.http.get(&url).send().await, Ok(r) if r.status().as_u16() == 200)
    }
}

fn is_cas_mismatch(status: u16, body: &Value) -> bool {
    status == 400
        && body["errors"].as_array().is_some_and(|e| {
            e.iter()
                .any(|m| m.as_str().is_some_and(|m| m.contains("check-and-set")))
        })
}

fn classify(url: &str, source: reqwest::Error) -> RequestError {
    let url = url.to_owned();
    if source.is_connect() {
        RequestError::NotSent { url, source }
    } else {
        RequestError::NoAnswer { url, source }
    }
}

fn unexpected(url: &str, body: &Value) -> RequestError {
    RequestError::Unexpected {
        url: url.to_owned(),
        body: body.to_string(),
    }
}
