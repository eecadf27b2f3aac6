//! Placeholders in tasks, setup and solution steps and check values: `{{root_token}}`,
//! `{{unseal_key_1}}`, `{{cluster:NAME:root_token}}`, `{{node:NAME:api_addr}}`, ... and,
//! resolved against the running lab when used, `{{leader:CLUSTER}}` and
//! `{{read:TARGET:PATH:POINTER}}`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::http::Vault;
use super::PracticeError;
use crate::state::{LabHome, State, Target};

/// What placeholders are resolved against.
pub struct Context<'a> {
    /// The lab home (credentials, the practice directory).
    pub home: &'a LabHome,
    /// The running lab.
    pub state: &'a State,
    /// Values the exercise's start recorded (`kms_key_id`, `kms_endpoint`).
    pub vars: &'a BTreeMap<String, String>,
}

impl Context<'_> {
    /// Replaces every `{{...}}` in `text`.
    pub fn render(&self, text: &str) -> Result<String, PracticeError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| PracticeError::Placeholder {
                placeholder: after.chars().take(30).collect(),
                why: "no closing }}".to_owned(),
            })?;
            out.push_str(&self.resolve(after[..close].trim())?);
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The practice directory, for files the exercises read and write.
    pub fn practice_dir(&self) -> String {
        super::practice_dir(self.home).display().to_string()
    }

    fn resolve(&self, key: &str) -> Result<String, PracticeError> {
        let fail = |why: &str| PracticeError::Placeholder {
            placeholder: key.to_owned(),
            why: why.to_owned(),
        };
        let parts: Vec<&str> = key.split(':').collect();
        match parts.as_slice() {
            ["practice_dir"] => Ok(self.practice_dir()),
            [name] if self.vars.contains_key(*name) => Ok(self.vars[*name].clone()),
            [secret] => self.credential(&self.state.clusters[0].name, secret),
            ["cluster", cluster, secret] => self.credential(cluster, secret),
            ["node", target, field] => {
                let Target::Node(c, n) = self.state.resolve(Some(target))? else {
                    return Err(fail("names a cluster; use NODE or CLUSTER/NODE"));
                };
                let node = &self.state.clusters[c].nodes[n];
                match *field {
                    "api_addr" => Ok(node.api_addr.clone()),
                    "cluster_port" => Ok(node.cluster_port.to_string()),
                    "config" => Ok(node.config.display().to_string()),
                    "data" => Ok(node.data.display().to_string()),
                    "log" => Ok(node.log.display().to_string()),
                    _ => Err(fail("node fields: api_addr, cluster_port, config, data, log")),
                }
            }
            ["leader", cluster] => {
                let vault = Vault::active(self, Some(cluster))?;
                let servers = vault.get("sys/storage/raft/configuration")?;
                servers
                    .pointer("/data/config/servers")
                    .and_then(Value::as_array)
                    .and_then(|s| s.iter().find(|s| s["leader"] == true))
                    .and_then(|s| s["node_id"].as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| fail("the raft configuration names no leader"))
            }
            ["read", target, path, pointer] => {
                let value = Vault::active(self, Some(target))?.get(path)?;
                value
                    .pointer(pointer)
                    .map(scalar)
                    .ok_or_else(|| fail("the response has no such field"))
            }
            _ => Err(fail("unknown placeholder")),
        }
    }

    /// `root_token`, `unseal_key_N` or `recovery_key_N` of a cluster.
    fn credential(&self, cluster: &str, secret: &str) -> Result<String, PracticeError> {
        let creds = self.home.credentials(cluster)?;
        let indexed = |prefix: &str, keys: &[String]| {
            secret
                .strip_prefix(prefix)
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| keys.get(i.checked_sub(1)?).cloned())
        };
        if secret == "root_token" {
            return Ok(creds.root_token);
        }
        indexed("unseal_key_", &creds.unseal_keys_b64)
            .or_else(|| indexed("recovery_key_", &creds.recovery_keys_b64))
            .ok_or_else(|| PracticeError::Placeholder {
                placeholder: secret.to_owned(),
                why: format!(
                    "not a credential of cluster {cluster} (root_token, unseal_key_N, recovery_key_N)"
                ),
            })
    }
}

/// A JSON value as the string a learner would type: strings bare, others as JSON.
pub fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
