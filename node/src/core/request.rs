//! The logical request and response every backend speaks, independent of HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a request wants to do; HTTP methods map onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// GET.
    Read,
    /// LIST or GET with `?list=true`.
    List,
    /// PUT/POST on a path that does not exist yet (decided by the backend's existence check).
    Create,
    /// PUT/POST.
    Update,
    /// PATCH (JSON merge patch).
    Patch,
    /// DELETE.
    Delete,
}

impl Operation {
    /// The ACL capability this operation needs.
    pub fn capability(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
        }
    }
}

/// One API request after HTTP decoding.
#[derive(Debug, Clone)]
pub struct Request {
    pub operation: Operation,
    /// Path below `/v1/`, without leading slash.
    pub path: String,
    /// JSON body (`null` and empty become `{}`), merged with query parameters on reads.
    pub data: Map<String, Value>,
    /// The client token, from `X-Vault-Token` or `Authorization: Bearer`.
    pub client_token: Option<String>,
    /// `X-Vault-Wrap-TTL`, already parsed.
    pub wrap_ttl: Option<Duration>,
}

impl Request {
    /// A request with an empty body.
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Self {
            operation,
            path: path.into(),
            data: Map::new(),
            client_token: None,
            wrap_ttl: None,
        }
    }

    /// Builder: attach a token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.client_token = Some(token.into());
        self
    }

    /// Builder: attach a body.
    pub fn with_data(mut self, data: Value) -> Self {
        if let Value::Object(map) = data {
            self.data = map;
        }
        self
    }
}

/// Authentication block of a response (`auth` in the envelope).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Auth {
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub identity_policies: Option<Vec<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub lease_duration: u64,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: String,
    pub orphan: bool,
    pub mfa_requirement: Option<Value>,
    pub num_uses: i64,
}

/// `wrap_info` of a wrapped response.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WrapInfo {
    pub token: String,
    pub accessor: String,
    pub ttl: u64,
    pub creation_time: String,
    pub creation_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrapped_accessor: Option<String>,
}

/// What a backend answers; the HTTP layer turns it into the envelope (or 204).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    pub auth: Option<Auth>,
    pub warnings: Vec<String>,
    pub lease_id: String,
    pub lease_duration: u64,
    pub renewable: bool,
    pub wrap_info: Option<WrapInfo>,
    /// A non-200 status that still carries the envelope (KV v2 soft-deleted read: 404).
    pub status: Option<u16>,
    /// Legacy endpoints that also copy `data` keys to the top level (`sys/mounts`, `sys/policy`).
    pub legacy_top_level: bool,
}

impl Response {
    /// A response with `data`.
    pub fn data(data: Value) -> Self {
        match data {
            Value::Object(map) => Self {
                data: Some(map),
                ..Self::default()
            },
            _ => Self::default(),
        }
    }

    /// The empty write result (HTTP 204).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builder: add a warning.
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    /// Whether this is the empty result that becomes 204.
    pub fn is_empty(&self) -> bool {
        self.data.is_none() && self.auth.is_none() && self.warnings.is_empty() && self.wrap_info.is_none()
    }
}
