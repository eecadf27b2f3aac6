//! The joiner's requests to a leader candidate: `bootstrap/challenge` and `bootstrap/answer`.
//!
//! This lives in `core/` beside `join.rs` rather than in `cluster/`: `cluster/` is the
//! mutually authenticated cluster port, whose member certificate only a successful join
//! hands out, so a joiner talks to a candidate's *API* port with the `retry_join` stanza's
//! TLS settings, and everything it sends and reads is the handshake `join.rs` decides on.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::cluster::ClusterTls;
use crate::seal::SealConfig;

/// What `reqwest::Url::parse` fails with (the `url` crate's error, named through reqwest).
type UrlParseError = <reqwest::Url as std::str::FromStr>::Err;

/// Where and how to reach a leader candidate (one `retry_join` stanza or `operator raft join`).
#[derive(Debug, Clone, Default)]
pub struct JoinTarget {
    pub leader_api_addr: String,
    pub leader_ca_cert: Option<String>,
    pub leader_client_cert: Option<String>,
    pub leader_client_key: Option<String>,
    pub leader_tls_servername: Option<String>,
}

/// Why a request to a leader candidate failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinClientError {
    #[error("leader_ca_cert is not a PEM certificate: {0}")]
    CaCert(#[source] reqwest::Error),
    #[error("leader client certificate or key is invalid: {0}")]
    ClientIdentity(#[source] reqwest::Error),
    #[error("leader_api_addr: {0}")]
    LeaderAddr(#[source] UrlParseError),
    #[error("resolving {base}: {source}")]
    Resolve {
        base: String,
        #[source]
        source: std::io::Error,
    },
    #[error("building join client: {0}")]
    Build(#[source] reqwest::Error),
    #[error("{leader}: {source}")]
    ChallengeRequest {
        leader: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{leader}: {status}: {errors}")]
    ChallengeRefused {
        leader: String,
        status: reqwest::StatusCode,
        errors: Value,
    },
    #[error("{leader}: malformed challenge")]
    MalformedChallenge { leader: String },
    #[error("{leader}: seal config: {source}")]
    ChallengeSealConfig {
        leader: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("sending the join answer to {leader}: {source}")]
    SendAnswer {
        leader: String,
        #[source]
        source: reqwest::Error,
    },
    /// The leader checked the answer and said no; the challenge is used up.
    #[error("join refused by the leader ({status}): {errors}")]
    AnswerRefused {
        status: reqwest::StatusCode,
        errors: Value,
    },
    #[error("the leader's join answer carried no cluster TLS material: {0}")]
    NoClusterTls(#[source] serde_json::Error),
}

impl JoinClientError {
    /// The HTTP status Vault answers with: the target's own settings are the caller's
    /// mistake (400), an unreachable or refusing leader is a server-side failure (500).
    pub fn status(&self) -> u16 {
        match self {
            JoinClientError::CaCert(_)
            | JoinClientError::ClientIdentity(_)
            | JoinClientError::LeaderAddr(_)
            | JoinClientError::Resolve { .. } => 400,
            _ => 500,
        }
    }
}

/// A challenge as a candidate handed it out.
pub struct Challenge {
    pub sealed_answer: Vec<u8>,
    pub seal_config: SealConfig,
}

/// What the joiner sends back once it opened the challenge.
pub struct AnswerRequest<'a> {
    pub answer: &'a [u8],
    pub server_id: &'a str,
    pub cluster_addr: &'a str,
    pub api_addr: &'a str,
    pub non_voter: bool,
}

/// An HTTP client for one leader candidate's API port.
pub struct LeaderClient {
    client: reqwest::Client,
    /// The address as configured, for messages about the challenge request.
    configured: String,
    /// The URL base requests go to (`leader_tls_servername` replaces the host).
    base: String,
}

impl LeaderClient {
    /// Builds the client from the target's TLS settings; resolves the address now when a
    /// TLS server name must be presented instead of the host.
    pub fn connect(target: &JoinTarget) -> Result<Self, JoinClientError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10));
        if let Some(ca) = &target.leader_ca_cert {
            let cert = reqwest::Certificate::from_pem(ca.as_bytes()).map_err(JoinClientError::CaCert)?;
            builder = builder.add_root_certificate(cert);
        }
        if let (Some(cert), Some(key)) = (&target.leader_client_cert, &target.leader_client_key) {
            let identity = reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
                .map_err(JoinClientError::ClientIdentity)?;
            builder = builder.identity(identity);
        }
        let mut base = target.leader_api_addr.trim_end_matches('/').to_string();
        if let Some(name) = &target.leader_tls_servername {
            let url = reqwest::Url::parse(&base).map_err(JoinClientError::LeaderAddr)?;
            let port = url.port_or_known_default().unwrap_or(8200);
            let addrs: Vec<SocketAddr> = (url.host_str().unwrap_or(""), port)
                .to_socket_addrs()
                .map_err(|source| JoinClientError::Resolve {
                    base: base.clone(),
                    source,
                })?
                .collect();
            builder = builder.resolve_to_addrs(name, &addrs);
            base = format!("{}://{name}:{port}", url.scheme());
        }
        Ok(Self {
            client: builder.build().map_err(JoinClientError::Build)?,
            configured: target.leader_api_addr.clone(),
            base,
        })
    }

    /// The URL base this client sends to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `PUT sys/storage/raft/bootstrap/challenge` for `server_id`.
    pub async fn request_challenge(&self, server_id: &str) -> Result<Challenge, JoinClientError> {
        let leader = || self.configured.clone();
        let resp = self
            .client
            .put(format!("{}/v1/sys/storage/raft/bootstrap/challenge", self.base))
            .json(&json!({ "server_id": server_id }))
            .send()
            .await
            .map_err(|source| JoinClientError::ChallengeRequest {
                leader: leader(),
                source,
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(JoinClientError::ChallengeRefused {
                leader: leader(),
                status,
                errors: body["errors"].clone(),
            });
        }
        let sealed_answer = body["data"]["challenge"]
            .as_str()
            .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
            .ok_or_else(|| JoinClientError::MalformedChallenge { leader: leader() })?;
        let seal_config = serde_json::from_value(body["data"]["seal_config"].clone()).map_err(|source| {
            JoinClientError::ChallengeSealConfig {
                leader: leader(),
                source,
            }
        })?;
        Ok(Challenge {
            sealed_answer,
            seal_config,
        })
    }

    /// `PUT sys/storage/raft/bootstrap/answer`; the leader answers with the cluster's TLS
    /// material once it added this node as a learner.
    pub async fn send_answer(&self, answer: &AnswerRequest<'_>) -> Result<ClusterTls, JoinClientError> {
        let resp = self
            .client
            .put(format!("{}/v1/sys/storage/raft/bootstrap/answer", self.base))
            .json(&json!({
                "answer": base64::engine::general_purpose::STANDARD.encode(answer.answer),
                "cluster_addr": answer.cluster_addr,
                "api_addr": answer.api_addr,
                "server_id": answer.server_id,
                "non_voter": answer.non_voter,
            }))
            .send()
            .await
            .map_err(|source| JoinClientError::SendAnswer {
                leader: self.base.clone(),
                source,
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(JoinClientError::AnswerRefused {
                status,
                errors: body["errors"].clone(),
            });
        }
        serde_json::from_value(body["data"]["tls_keyring"].clone()).map_err(JoinClientError::NoClusterTls)
    }
}
