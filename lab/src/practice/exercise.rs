//! The exercise format (`scenarios/practice/*.toml`): a topology, a setup that may leave
//! the lab broken on purpose, the task, state-based checks, hints and a scripted solution.
//! The built-ins are embedded at build time, so a user's own file uses the same format.

use std::path::Path;

use serde::Deserialize;

use super::PracticeError;
use crate::topology::Topology;

/// The built-in exercises by name, as shipped in `scenarios/practice/`, in course order.
const BUILT_INS: &[(&str, &str)] = &[
    (
        "retry-join-unseal",
        include_str!("../../../scenarios/practice/retry-join-unseal.toml"),
    ),
    (
        "manual-join",
        include_str!("../../../scenarios/practice/manual-join.toml"),
    ),
    (
        "find-leader",
        include_str!("../../../scenarios/practice/find-leader.toml"),
    ),
    (
        "remove-failed-peer",
        include_str!("../../../scenarios/practice/remove-failed-peer.toml"),
    ),
    (
        "snapshot-restore",
        include_str!("../../../scenarios/practice/snapshot-restore.toml"),
    ),
    (
        "awskms-auto-unseal",
        include_str!("../../../scenarios/practice/awskms-auto-unseal.toml"),
    ),
    (
        "dr-enable",
        include_str!("../../../scenarios/practice/dr-enable.toml"),
    ),
    (
        "dr-status",
        include_str!("../../../scenarios/practice/dr-status.toml"),
    ),
    (
        "dr-operation-token",
        include_str!("../../../scenarios/practice/dr-operation-token.toml"),
    ),
    (
        "dr-promote",
        include_str!("../../../scenarios/practice/dr-promote.toml"),
    ),
    (
        "dr-batch-token",
        include_str!("../../../scenarios/practice/dr-batch-token.toml"),
    ),
];

/// One exercise as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exercise {
    /// One line for `list`.
    pub title: String,
    /// A built-in topology name (`single`, `ha3`, ...) or an inline topology table.
    pub topology: toml::Value,
    /// NODE|CLUSTER whose address and root token the scripts get as VAULT_ADDR and
    /// VAULT_TOKEN (default: the first cluster's active node).
    pub env: Option<String>,
    /// Needs LocalStack's KMS: `start` creates a key (`{{kms_key_id}}`, `{{kms_endpoint}}`).
    #[serde(default)]
    pub localstack: bool,
    /// What the learner must do, in the course's terms.
    pub task: String,
    /// Shell steps run after bring-up to prepare (or break) the lab.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Shown one at a time by `hint`.
    pub hints: Vec<String>,
    /// Shell steps (mostly `vault ...`) that solve the task.
    pub solution: Vec<String>,
    /// What `check` verifies.
    pub checks: Vec<Check>,
}

/// One state-based check: a description and exactly one of the check tables, e.g.
/// `voters = { nodes = ["node-a", "node-b"] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// What `check` prints next to pass or fail.
    pub describe: String,
    voters: Option<Voters>,
    unsealed: Option<Unsealed>,
    read: Option<Read>,
    role_token: Option<RoleToken>,
    dr_operation_token: Option<DrOperationToken>,
    file: Option<FileCheck>,
}

/// What a [`Check`] verifies.
#[derive(Debug, Clone, Copy)]
pub enum CheckKind<'a> {
    /// See [`Voters`].
    Voters(&'a Voters),
    /// See [`Unsealed`].
    Unsealed(&'a Unsealed),
    /// See [`Read`].
    Read(&'a Read),
    /// See [`RoleToken`].
    RoleToken(&'a RoleToken),
    /// See [`DrOperationToken`].
    DrOperationToken(&'a DrOperationToken),
    /// See [`FileCheck`].
    File(&'a FileCheck),
}

impl Check {
    /// The one check table that is set.
    pub fn kind(&self) -> Result<CheckKind<'_>, String> {
        let set: Vec<CheckKind<'_>> = [
            self.voters.as_ref().map(CheckKind::Voters),
            self.unsealed.as_ref().map(CheckKind::Unsealed),
            self.read.as_ref().map(CheckKind::Read),
            self.role_token.as_ref().map(CheckKind::RoleToken),
            self.dr_operation_token.as_ref().map(CheckKind::DrOperationToken),
            self.file.as_ref().map(CheckKind::File),
        ]
        .into_iter()
        .flatten()
        .collect();
        match set.as_slice() {
            [one] => Ok(*one),
            _ => Err(format!(
                "check \"{}\" needs exactly one of voters, unsealed, read, role_token, dr_operation_token, file",
                self.describe
            )),
        }
    }
}

/// The raft configuration of `cluster` holds exactly these nodes, all voters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voters {
    /// Cluster (default: the first).
    pub cluster: Option<String>,
    /// Expected node ids.
    pub nodes: Vec<String>,
}

/// Each node is unsealed and serving (active or standby).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsealed {
    /// NODE or CLUSTER/NODE names.
    pub nodes: Vec<String>,
}

/// A JSON value read with GET `/v1/PATH` from `at` (a node, or a cluster's active node).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    /// NODE|CLUSTER (default: the first cluster).
    pub at: Option<String>,
    /// API path without `/v1/`.
    pub path: String,
    /// JSON pointer into the response, e.g. `/data/mode`.
    pub pointer: String,
    /// Token (template; default: the root token of `at`'s cluster).
    pub token: Option<String>,
    /// The value, as a string, equals this (template).
    pub equals: Option<String>,
    /// The value is an array holding this string (template).
    pub contains: Option<String>,
    /// The value is an integer within these bounds (templates), inclusive.
    pub between: Option<[String; 2]>,
}

/// A token created from a token role has this type and these capabilities on `path`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleToken {
    /// CLUSTER (default: the first).
    pub at: Option<String>,
    /// Token role name (`auth/token/create/ROLE`).
    pub role: String,
    /// Expected `type` of the token (`batch`, `service`).
    pub token_type: String,
    /// Path whose capabilities the new token asks for.
    pub path: String,
    /// Capabilities the token must have there.
    pub capabilities: Vec<String>,
}

/// A file holds a DR operation token that the DR secondary `at` accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrOperationToken {
    /// The DR secondary CLUSTER.
    pub at: String,
    /// Path of the file (template).
    pub file: String,
}

/// A file exists and is not empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheck {
    /// Path (template).
    pub path: String,
}

impl Exercise {
    /// Names and titles of the built-ins, in course order.
    pub fn built_ins() -> Result<Vec<(&'static str, Exercise)>, PracticeError> {
        BUILT_INS
            .iter()
            .map(|(name, text)| Ok((*name, Exercise::parse(text, &format!("built-in {name}"))?)))
            .collect()
    }

    /// A built-in by name, or a TOML file by path.
    pub fn load(spec: &str) -> Result<Exercise, PracticeError> {
        if let Some((name, text)) = BUILT_INS.iter().find(|(name, _)| *name == spec) {
            return Exercise::parse(text, &format!("built-in {name}"));
        }
        let path = Path::new(spec);
        if !path.is_file() {
            let known: Vec<&str> = BUILT_INS.iter().map(|(n, _)| *n).collect();
            return Err(PracticeError::UnknownExercise {
                name: spec.to_owned(),
                known: known.join(", "),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| PracticeError::Io {
            path: path.to_owned(),
            source,
        })?;
        Exercise::parse(&text, spec)
    }

    /// Parses exercise text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Exercise, PracticeError> {
        let invalid = |message: String| PracticeError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        let exercise: Exercise =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
        if exercise.checks.is_empty() || exercise.solution.is_empty() || exercise.hints.is_empty() {
            return Err(invalid(
                "an exercise needs checks, hints and a solution".to_owned(),
            ));
        }
        for check in &exercise.checks {
            check.kind().map_err(&invalid)?;
        }
        exercise.topology(None, origin)?;
        Ok(exercise)
    }

    /// The exercise's topology with ports from `base_port`.
    pub fn topology(&self, base_port: Option<u16>, origin: &str) -> Result<Topology, PracticeError> {
        Ok(match &self.topology {
            toml::Value::String(name) => Topology::load(name, base_port)?,
            toml::Value::Table(table) => {
                let text = toml::to_string(table).map_err(|e| PracticeError::Invalid {
                    origin: origin.to_owned(),
                    message: format!("topology: {e}"),
                })?;
                Topology::from_toml(&text, &format!("{origin} topology"), origin, base_port)?
            }
            other => {
                return Err(PracticeError::Invalid {
                    origin: origin.to_owned(),
                    message: format!(
                        "topology must be a built-in name or a table, not {}",
                        other.type_str()
                    ),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_parse_and_unknown_fields_are_named() {
        assert!(Exercise::built_ins().unwrap().len() >= 10);
        let text = "title='t'\ntopology='single'\ntask='x'\nhints=['h']\nsolution=['s']\n\
                    [[checks]]\ndescribe='d'\nfile={path='p',extra=1}\n";
        let err = Exercise::parse(text, "f").unwrap_err().to_string();
        assert!(err.contains("extra") || err.contains("unknown"), "{err}");
        let typo = "title='t'\ntopolgy='single'\ntask='x'\nhints=['h']\nsolution=['s']\n";
        let err = Exercise::parse(typo, "f").unwrap_err().to_string();
        assert!(err.contains("topolgy"), "{err}");
    }
}
