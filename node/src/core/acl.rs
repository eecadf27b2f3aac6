//! ACL policies: parsing HCL policy documents and deciding what a token may do.
//!
//! Rule selection follows Vault: an exact (non-wildcard) match wins; otherwise the
//! matching pattern with the highest priority is the only rule applied, and `deny`
//! on it refuses everything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use super::tokens::TokenEntry;
use super::{CoreError, Operation, Request};
use crate::barrier::Barrier;

const POLICY_PREFIX: &str = "sys/policy/";

/// Capability bits.
pub mod cap {
    pub const DENY: u16 = 1;
    pub const CREATE: u16 = 1 << 1;
    pub const READ: u16 = 1 << 2;
    pub const UPDATE: u16 = 1 << 3;
    pub const DELETE: u16 = 1 << 4;
    pub const LIST: u16 = 1 << 5;
    pub const SUDO: u16 = 1 << 6;
    pub const PATCH: u16 = 1 << 7;
    /// Names in the order Vault prints them.
    pub const NAMES: [(&str, u16); 8] = [
        ("create", CREATE),
        ("delete", DELETE),
        ("deny", DENY),
        ("list", LIST),
        ("patch", PATCH),
        ("read", READ),
        ("sudo", SUDO),
        ("update", UPDATE),
    ];
}

/// Why a policy document was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("failed to parse policy: {0}")]
    Syntax(String),
    #[error("failed to parse policy: path \"{path}\": path \"{path}\": invalid capability \"{capability}\"")]
    UnknownCapability { path: String, capability: String },
    #[error("failed to parse policy: path \"{0}\": invalid legacy policy value \"{1}\"")]
    UnknownLegacy(String, String),
}

/// One `path "..." { ... }` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    pub pattern: String,
    pub capabilities: u16,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub raw: String,
    pub rules: Vec<PathRule>,
}

fn capability_bit(name: &str) -> Option<u16> {
    cap::NAMES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

fn legacy_bits(value: &str) -> Option<u16> {
    Some(match value {
        "deny" => cap::DENY,
        "read" => cap::READ | cap::LIST,
        "write" => cap::READ | cap::LIST | cap::CREATE | cap::UPDATE | cap::DELETE,
        "sudo" => cap::READ | cap::LIST | cap::CREATE | cap::UPDATE | cap::DELETE | cap::SUDO,
        _ => return None,
    })
}

/// Names of the capabilities set in `bits`, sorted as Vault prints them.
pub fn capability_names(bits: u16) -> Vec<String> {
    if bits & cap::DENY != 0 {
        return vec!["deny".into()];
    }
    cap::NAMES
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| n.to_string())
        .collect()
}

impl Policy {
    /// Parses an HCL (or JSON) policy document.
    pub fn parse(name: &str, raw: &str) -> Result<Self, PolicyError> {
        let body: hcl::Body = match hcl::parse(raw) {
            Ok(body) => body,
            Err(hcl_err) => match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(json) => return Self::from_json(name, raw, &json),
                Err(_) => return Err(PolicyError::Syntax(hcl_err.to_string())),
            },
        };
        let mut rules = Vec::new();
        for block in body.blocks() {
            if block.identifier() != "path" {
                return Err(PolicyError::Syntax(format!(
                    "unexpected block \"{}\"",
                    block.identifier()
                )));
            }
            let pattern = block
                .labels()
                .first()
                .map(|l| l.as_str().to_string())
                .ok_or_else(|| PolicyError::Syntax("path block without a path".into()))?;
            let mut bits = 0u16;
            for attr in block.body().attributes() {
                match attr.key() {
                    "capabilities" => {
                        let hcl::Expression::Array(items) = attr.expr() else {
                            return Err(PolicyError::Syntax(format!(
                                "path \"{pattern}\": capabilities must be a list"
                            )));
                        };
                        for item in items {
                            let hcl::Expression::String(c) = item else {
                                return Err(PolicyError::Syntax(format!(
                                    "path \"{pattern}\": capabilities must be strings"
                                )));
                            };
                            bits |= capability_bit(c).ok_or_else(|| PolicyError::UnknownCapability {
                                path: pattern.clone(),
                                capability: c.clone(),
                            })?;
                        }
                    }
                    "policy" => {
                        let hcl::Expression::String(v) = attr.expr() else {
                            return Err(PolicyError::Syntax(format!(
                                "path \"{pattern}\": policy must be a string"
                            )));
                        };
                        bits |= legacy_bits(v)
                            .ok_or_else(|| PolicyError::UnknownLegacy(pattern.clone(), v.clone()))?;
                    }
                    "allowed_parameters"
                    | "denied_parameters"
                    | "required_parameters"
                    | "min_wrapping_ttl"
                    | "max_wrapping_ttl"
                    | "control_group"
                    | "mfa_methods" => {}
                    other => {
                        return Err(PolicyError::Syntax(format!(
                            "path \"{pattern}\": invalid key \"{other}\""
                        )));
                    }
                }
            }
            rules.push(PathRule {
                pattern,
                capabilities: bits,
            });
        }
        Ok(Self {
            name: name.into(),
            raw: raw.into(),
            rules,
        })
    }

    fn from_json(name: &str, raw: &str, json: &serde_json::Value) -> Result<Self, PolicyError> {
        let paths = json
            .get("path")
            .and_then(|p| p.as_object())
            .ok_or_else(|| PolicyError::Syntax("no \"path\" object".into()))?;
        let mut rules = Vec::new();
        for (pattern, body) in paths {
            let mut bits = 0;
            for c in body
                .get("capabilities")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
            {
                let c = c.as_str().unwrap_or_default();
                bits |= capability_bit(c).ok_or_else(|| PolicyError::UnknownCapability {
                    path: pattern.clone(),
                    capability: c.into(),
                })?;
            }
            if let Some(v) = body.get("policy").and_then(|p| p.as_str()) {
                bits |=
                    legacy_bits(v).ok_or_else(|| PolicyError::UnknownLegacy(pattern.clone(), v.into()))?;
            }
            rules.push(PathRule {
                pattern: pattern.clone(),
                capabilities: bits,
            });
        }
        Ok(Self {
            name: name.into(),
            raw: raw.into(),
            rules,
        })
    }
}

/// Whether `pattern` (with `+` segments and a trailing `*`) matches `path`.
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    let (body, glob) = match pattern.strip_suffix('*') {
        Some(b) => (b, true),
        None => (pattern, false),
    };
    let mut rest = path;
    let mut segments = body.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if seg == "+" {
            let end = rest.find('/').unwrap_or(rest.len());
            if end == 0 && !(last && glob) {
                return false;
            }
            rest = &rest[end..];
        } else if last {
            if glob {
                return rest.starts_with(seg);
            }
            return rest == seg;
        } else if let Some(r) = rest.strip_prefix(seg) {
            rest = r;
        } else {
            return false;
        }
        if !last {
            match rest.strip_prefix('/') {
                Some(r) => rest = r,
                None => return false,
            }
        } else {
            return glob || rest.is_empty();
        }
    }
    glob || rest.is_empty()
}

fn is_wild(pattern: &str) -> bool {
    pattern.ends_with('*') || pattern.split('/').any(|s| s == "+")
}

/// Vault's priority order: `true` when `a` loses to `b`.
fn lower_priority(a: &str, b: &str) -> bool {
    let first_wild = |p: &str| {
        let plus = p.split('/').scan(0usize, |pos, seg| {
            let at = *pos;
            *pos += seg.len() + 1;
            Some((at, seg))
        });
        let plus_at = plus.filter(|(_, s)| *s == "+").map(|(at, _)| at).next();
        let star_at = p.ends_with('*').then(|| p.len() - 1);
        match (plus_at, star_at) {
            (Some(x), Some(y)) => x.min(y),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => usize::MAX,
        }
    };
    let plus_count = |p: &str| p.split('/').filter(|s| *s == "+").count();
    let (wa, wb) = (first_wild(a), first_wild(b));
    if wa != wb {
        return wa < wb;
    }
    if a.ends_with('*') != b.ends_with('*') {
        return a.ends_with('*');
    }
    if plus_count(a) != plus_count(b) {
        return plus_count(a) > plus_count(b);
    }
    if a.len() != b.len() {
        return a.len() < b.len();
    }
    a < b
}

/// The merged rules of a set of policies.
#[derive(Debug, Default)]
pub struct Acl {
    rules: BTreeMap<String, u16>,
}

impl Acl {
    /// Merges policies: identical patterns union their capabilities; deny wipes.
    pub fn new<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Self {
        let mut rules: BTreeMap<String, u16> = BTreeMap::new();
        for policy in policies {
            for rule in &policy.rules {
                let slot = rules.entry(rule.pattern.clone()).or_insert(0);
                *slot |= rule.capabilities;
                if *slot & cap::DENY != 0 {
                    *slot = cap::DENY;
                }
            }
        }
        Self { rules }
    }

    /// The capabilities granted on `path` (0 when nothing matches).
    pub fn capabilities(&self, path: &str) -> u16 {
        if let Some(bits) = self.rules.get(path).filter(|_| !is_wild(path)) {
            return *bits;
        }
        let mut best: Option<&str> = None;
        for pattern in self
            .rules
            .keys()
            .filter(|p| is_wild(p) && pattern_matches(p, path))
        {
            if best.is_none_or(|b| lower_priority(b, pattern)) {
                best = Some(pattern);
            }
        }
        best.map(|p| self.rules[p]).unwrap_or(0)
    }
}

/// Paths that need `sudo` in addition to their normal capability.
pub fn requires_sudo(path: &str) -> bool {
    const EXACT: &[&str] = &[
        "sys/seal",
        "sys/step-down",
        "sys/rotate",
        "sys/raw",
        "sys/audit",
        "sys/remount",
        "sys/leases",
        "sys/replication/dr/primary/secondary-token",
        "sys/replication/performance/primary/secondary-token",
        "sys/replication/primary/secondary-token",
        "sys/storage/raft/snapshot",
        "sys/storage/raft/snapshot-force",
        "auth/token/accessors/",
    ];
    const PREFIX: &[&str] = &[
        "sys/raw/",
        "sys/audit/",
        "sys/auth/",
        "sys/leases/revoke-prefix/",
        "sys/leases/revoke-force/",
        "auth/token/revoke-orphan",
    ];
    EXACT.contains(&path) || PREFIX.iter().any(|p| path.starts_with(p))
}

/// Paths served without any token (their own credentials are in the body, or none).
pub fn is_unauthenticated(path: &str) -> bool {
    matches!(
        path,
        "sys/wrapping/lookup"
            | "sys/replication/status"
            | "sys/replication/dr/status"
            | "sys/replication/performance/status"
            | "sys/storage/raft/bootstrap/challenge"
            | "sys/storage/raft/bootstrap/answer"
            | "sys/replication/dr/secondary/promote"
            | "sys/replication/dr/secondary/update-primary"
            | "sys/replication/dr/secondary/operation-token/delete"
            | "sys/replication/dr/secondary/disable"
            | "sys/decode-token"
    )
}

/// The policy every non-root token gets unless `no_default_policy`.
pub const DEFAULT_POLICY: &str = r#"
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/capabilities-self" { capabilities = ["update"] }
path "sys/internal/ui/mounts" { capabilities = ["read"] }
path "sys/internal/ui/mounts/*" { capabilities = ["read"] }
path "sys/internal/ui/resultant-acl" { capabilities = ["read"] }
path "sys/renew" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "cubbyhole/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "sys/wrapping/wrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
path "sys/tools/hash" { capabilities = ["update"] }
path "sys/tools/hash/*" { capabilities = ["update"] }
path "sys/control-group/request" { capabilities = ["update"] }
"#;

/// The policy of response-wrapping tokens: unwrap, and nothing else.
pub const RESPONSE_WRAPPING_POLICY: &str = r#"
path "cubbyhole/response" { capabilities = ["create", "read"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
path "sys/wrapping/rewrap" { capabilities = ["update"] }
"#;

/// Stored policy document.
#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    policy: String,
}

/// Why the policy store refused a policy or could not read or write one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyStoreError {
    /// An operator's policy document does not parse (400).
    #[error("{0}")]
    Rejected(#[source] PolicyError),
    #[error("policy {name}: {source}")]
    Decode {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// A stored or built-in policy no longer parses.
    #[error("{0}")]
    Unparsable(#[source] PolicyError),
    #[error(transparent)]
    Encode(serde_json::Error),
}

impl PolicyStoreError {
    /// The HTTP status Vault answers with.
    pub fn status(&self) -> u16 {
        match self {
            PolicyStoreError::Rejected(_) => 400,
            _ => 500,
        }
    }
}

/// Policies persisted through the barrier, cached in memory.
pub struct PolicyStore {
    barrier: Arc<Barrier>,
    cache: RwLock<HashMap<String, Arc<Policy>>>,
}

impl PolicyStore {
    /// A store with an empty cache.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self {
            barrier,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Loads a policy by name; the built-ins `default` and `response-wrapping` exist
    /// until overwritten; `root` is implicit and has no rules.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Policy>>, CoreError> {
        if let Some(p) = self.cache.read().await.get(name) {
            return Ok(Some(p.clone()));
        }
        let policy = match self.barrier.get(&format!("{POLICY_PREFIX}{name}")).await? {
            Some(bytes) => {
                let stored: StoredPolicy =
                    serde_json::from_slice(&bytes).map_err(|source| PolicyStoreError::Decode {
                        name: name.to_string(),
                        source,
                    })?;
                Policy::parse(name, &stored.policy).map_err(PolicyStoreError::Unparsable)?
            }
            None => match name {
                "default" => Policy::parse(name, DEFAULT_POLICY).map_err(PolicyStoreError::Unparsable)?,
                "response-wrapping" => {
                    Policy::parse(name, RESPONSE_WRAPPING_POLICY).map_err(PolicyStoreError::Unparsable)?
                }
                _ => return Ok(None),
            },
        };
        let policy = Arc::new(policy);
        self.cache.write().await.insert(name.to_string(), policy.clone());
        Ok(Some(policy))
    }

    /// Validates and stores a policy.
    pub async fn put(&self, name: &str, raw: &str) -> Result<(), CoreError> {
        if name == "root" {
            return Err(CoreError::invalid("cannot update \"root\" policy"));
        }
        let policy = Policy::parse(name, raw).map_err(PolicyStoreError::Rejected)?;
        let stored = serde_json::to_vec(&StoredPolicy {
            name: name.into(),
            policy: raw.into(),
        })
        .map_err(PolicyStoreError::Encode)?;
        self.barrier
            .put(&format!("{POLICY_PREFIX}{name}"), stored)
            .await?;
        self.cache
            .write()
            .await
            .insert(name.to_string(), Arc::new(policy));
        Ok(())
    }

    /// Deletes a policy (`root` and `default` cannot be deleted).
    pub async fn delete(&self, name: &str) -> Result<(), CoreError> {
        if name == "root" || name == "default" {
            return Err(CoreError::invalid(format!("cannot delete \"{name}\" policy")));
        }
        self.barrier.delete(&format!("{POLICY_PREFIX}{name}")).await?;
        self.cache.write().await.remove(name);
        Ok(())
    }

    /// Names of every policy, including the built-ins.
    pub async fn list(&self) -> Result<Vec<String>, CoreError> {
        let mut names = self.barrier.list(POLICY_PREFIX).await?;
        for builtin in ["default", "root"] {
            if !names.iter().any(|n| n == builtin) {
                names.push(builtin.into());
            }
        }
        names.retain(|n| n != "response-wrapping");
        names.sort();
        Ok(names)
    }

    /// Drops cached policies (after another node may have changed them).
    pub async fn clear_cache(&self) {
        self.cache.write().await.clear();
    }

    /// The merged ACL of a token's policies.
    pub async fn acl_for(&self, policies: &[String]) -> Result<Acl, CoreError> {
        let mut loaded = Vec::new();
        for name in policies {
            if let Some(p) = self.get(name).await? {
                loaded.push(p);
            }
        }
        Ok(Acl::new(loaded.iter().map(|p| p.as_ref())))
    }

    /// The capabilities `policies` grant on `path`, as names.
    pub async fn capabilities(&self, policies: &[String], path: &str) -> Result<Vec<String>, CoreError> {
        if policies.iter().any(|p| p == "root") {
            return Ok(vec!["root".into()]);
        }
        let bits = self.acl_for(policies).await?.capabilities(path);
        Ok(if bits == 0 {
            vec!["deny".into()]
        } else {
            capability_names(bits)
        })
    }

    /// Refuses the request unless the token's policies allow it.
    pub async fn authorize(&self, token: &TokenEntry, req: &Request) -> Result<(), CoreError> {
        if token.is_root() {
            return Ok(());
        }
        let path = match req.operation {
            Operation::List if !req.path.ends_with('/') => format!("{}/", req.path),
            _ => req.path.clone(),
        };
        let bits = self.acl_for(&token.policies).await?.capabilities(&path);
        let needed = match req.operation {
            Operation::Read => cap::READ,
            Operation::List => cap::LIST,
            Operation::Create => cap::CREATE,
            Operation::Update => cap::UPDATE,
            Operation::Patch => cap::PATCH,
            Operation::Delete => cap::DELETE,
        };
        if bits & cap::DENY != 0 || bits & needed == 0 {
            return Err(CoreError::PermissionDenied);
        }
        if requires_sudo(&req.path) && bits & cap::SUDO == 0 {
            return Err(CoreError::PermissionDenied);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(text: &str) -> Acl {
        let p = Policy::parse("t", text).unwrap();
        Acl::new([&p])
    }

    #[test]
    fn exact_beats_glob_and_deny_wins() {
        let a = acl(r#"
            path "secret/data/app/*" { capabilities = ["read", "list"] }
            path "secret/data/app/admin" { capabilities = ["deny"] }
            path "secret/metadata/app/*" { capabilities = ["list"] }
        "#);
        assert_eq!(a.capabilities("secret/data/app/db"), cap::READ | cap::LIST);
        assert_eq!(a.capabilities("secret/data/app/admin"), cap::DENY);
        assert_eq!(a.capabilities("secret/data/other"), 0);
        assert_eq!(a.capabilities("secret/metadata/app/"), cap::LIST);
    }

    #[test]
    fn plus_matches_one_segment() {
        assert!(pattern_matches("kv1/+/x", "kv1/a/x"));
        assert!(!pattern_matches("kv1/+/x", "kv1/a/b/x"));
        assert!(pattern_matches("secret/*", "secret/a/b"));
        assert!(pattern_matches("secret/a*", "secret/abc"));
        assert!(!pattern_matches("secret/a", "secret/ab"));
        assert!(pattern_matches("+/data/*", "secret/data/x"));
    }

    #[test]
    fn priority_prefers_later_wildcards_and_longer_patterns() {
        let a = acl(r#"
            path "secret/*" { capabilities = ["read"] }
            path "secret/data/*" { capabilities = ["update"] }
            path "+/data/app" { capabilities = ["delete"] }
        "#);
        assert_eq!(a.capabilities("secret/data/app"), cap::UPDATE);
        assert_eq!(a.capabilities("secret/other"), cap::READ);
    }

    #[test]
    fn bad_policies_are_rejected_with_reasons() {
        let err = Policy::parse("x", r#"path "x" { capabilities = ["bogus"] }"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to parse policy: path \"x\": path \"x\": invalid capability \"bogus\""
        );
        let err = Policy::parse("x", "path \"x\" {\n capabilities = [\"read\"\n").unwrap_err();
        assert!(err.to_string().contains("failed to parse policy"), "{err}");
        assert!(Policy::parse("d", DEFAULT_POLICY).is_ok());
        let legacy = Policy::parse("l", r#"path "a/*" { policy = "write" }"#).unwrap();
        assert!(legacy.rules[0].capabilities & cap::UPDATE != 0);
    }
}
