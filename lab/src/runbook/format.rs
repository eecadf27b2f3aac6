//! The runbook file format (`scenarios/drills/*.toml`): a topology, optional targets,
//! then `[[step]]` tables. Each step is parsed on its own so every error names the step
//! (number and name) and the field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::RunbookError;

/// Default time a `wait` step may take.
const DEFAULT_TIMEOUT_SECONDS: f64 = 60.0;
/// Default canary write rate.
const DEFAULT_CANARY_RATE: u32 = 50;

/// A runbook as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunbookFile {
    description: Option<String>,
    topology: String,
    targets: Option<Targets>,
    step: Vec<toml::Value>,
}

/// What the drill must achieve; compared against the measurements in the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Fault to first acknowledged write on the (new) active node.
    pub rto_seconds: Option<f64>,
    /// Acknowledged canary writes that may be missing afterwards.
    pub rpo_writes: Option<u64>,
}

impl Targets {
    /// The RTO target as reports print it (`15s`, or `-` when unset).
    pub fn rto_label(&self) -> String {
        self.rto_seconds.map_or("-".to_owned(), |t| format!("{t}s"))
    }

    /// The RPO target as reports print it (a write count, or `-` when unset).
    pub fn rpo_label(&self) -> String {
        self.rpo_writes.map_or("-".to_owned(), |t| t.to_string())
    }
}

/// One `[[step]]` as written: every field any step kind may use.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    name: Option<String>,
    vault: Option<String>,
    fault: Option<FaultKind>,
    wait: Option<WaitKind>,
    assert: Option<AssertKind>,
    canary: Option<CanaryAction>,
    generate_dr_token: Option<DrTokenFile>,
    on: Option<String>,
    target: Option<String>,
    token: Option<String>,
    capture: Option<BTreeMap<String, String>>,
    mark: Option<Mark>,
    timeout_seconds: Option<f64>,
    count: Option<u64>,
    code: Option<u16>,
    mode: Option<String>,
    path: Option<String>,
    field: Option<String>,
    equals: Option<String>,
    unseal: Option<bool>,
    rate: Option<u32>,
    failover: Option<String>,
}

/// `generate_dr_token = { on = "secondary", keys_from = "primary" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrTokenFile {
    on: String,
    keys_from: String,
    #[serde(rename = "as")]
    into: Option<String>,
}

/// `fault = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// SIGKILL (a crash).
    Kill,
    /// SIGTERM, then SIGKILL after a grace period.
    Stop,
    /// Start again (`unseal = true` unseals with the cluster's keys).
    Start,
    /// Cut the node's cluster port from its peers (clients still reach it).
    Partition,
    /// Undo `partition`.
    Heal,
}

/// `wait = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// Some node of the cluster answers as active.
    Leader,
    /// The raft configuration lists `count` voters.
    Peers,
    /// The node (or every node of the cluster) is sealed.
    Sealed,
    /// The node (or every running node of the cluster) is unsealed.
    Unsealed,
    /// `sys/replication/dr/status` reports `mode` (and `state` when given).
    Replication,
    /// The DR secondary's last_remote_wal caught up with the primary's last_wal.
    WalConverged,
    /// The canary has acknowledged `count` more writes since the wait began.
    Canary,
}

/// `assert = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssertKind {
    /// `path` is readable and `field` equals `equals`.
    Secret,
    /// `count` voters in the raft configuration.
    Peers,
    /// `sys/health` answers `code`.
    Health,
    /// `sys/replication/dr/status` reports `mode`.
    DrMode,
}

/// `canary = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryAction {
    /// Start writing to the active node of `on` (then of `failover`).
    Start,
    /// Stop writing.
    Stop,
    /// Stop, then read back every acknowledged write through `on`: the RPO.
    Verify,
}

/// A point of the timeline a step stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    /// The failure (RTO starts here); every kill/stop fault marks it unless set otherwise.
    Fault,
    /// The failure was noticed.
    Detection,
    /// A new leader was elected.
    Election,
    /// A DR secondary was promoted.
    Promotion,
    /// Data was restored (snapshot).
    Restore,
}

impl Mark {
    /// The name used in journals and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Fault => "fault",
            Mark::Detection => "detection",
            Mark::Election => "election",
            Mark::Promotion => "promotion",
            Mark::Restore => "restore",
        }
    }
}

/// A parsed, checked runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// Built-in name or file path.
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// Topology name or file, as `lab up --topology` takes it.
    pub topology: String,
    /// Targets for the summary.
    pub targets: Targets,
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// One checked step.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based position.
    pub number: usize,
    /// The given name, or one made from the action.
    pub name: String,
    /// What it does.
    pub action: Action,
    /// Timeline mark recorded when it completes (a fault marks when it starts).
    pub mark: Option<Mark>,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// A vault CLI command against the active node of a cluster, or a node.
    Vault {
        /// Arguments as one string; `{{var}}` is replaced before splitting.
        command: String,
        /// CLUSTER, NODE or CLUSTER/NODE.
        on: String,
        /// VAULT_TOKEN (template); default: the cluster's root token.
        token: Option<String>,
        /// Variable name to JSON path (dotted) in the command's output.
        capture: BTreeMap<String, String>,
    },
    /// Kill, stop or start a node or cluster.
    Fault {
        /// What happens.
        kind: FaultKind,
        /// CLUSTER, NODE, CLUSTER/NODE, CLUSTER/leader, CLUSTER/follower or CLUSTER/down.
        target: String,
        /// For start: unseal with the cluster's stored keys.
        unseal: bool,
    },
    /// Poll until a condition holds.
    Wait {
        /// The condition.
        kind: WaitKind,
        /// CLUSTER or NODE.
        on: String,
        /// Voters for `peers`, writes for `canary`.
        count: Option<u64>,
        /// DR mode for `replication`.
        mode: Option<String>,
        /// Token for `peers` (template).
        token: Option<String>,
        /// Give up after this long.
        timeout: Duration,
    },
    /// Check a condition once; a failed assertion fails the drill but later steps run.
    Assert {
        /// The condition.
        kind: AssertKind,
        /// CLUSTER or NODE.
        on: String,
        /// Secret path.
        path: Option<String>,
        /// Secret field.
        field: Option<String>,
        /// Expected value (template).
        equals: Option<String>,
        /// Voters.
        count: Option<u64>,
        /// Health status code.
        code: Option<u16>,
        /// DR mode.
        mode: Option<String>,
        /// Token (template).
        token: Option<String>,
    },
    /// Start, stop or verify the canary writer.
    Canary {
        /// What to do.
        action: CanaryAction,
        /// The cluster written to (start) or read back from (verify).
        on: Option<String>,
        /// A cluster whose active node takes over the writes (DR).
        failover: Option<String>,
        /// Writes per second.
        rate: u32,
        /// Token (template).
        token: Option<String>,
    },
    /// Generate a DR operation token with the OTP flow.
    GenerateDrToken {
        /// The DR secondary.
        on: String,
        /// The cluster whose unseal keys authorize it.
        keys_from: String,
        /// Variable receiving the token.
        into: String,
    },
}

impl Runbook {
    /// Parses and checks runbook text; `name` identifies it in errors.
    pub fn from_toml(text: &str, name: &str) -> Result<Runbook, RunbookError> {
        let file: RunbookFile = toml::from_str(text).map_err(|e| RunbookError::Parse {
            origin: name.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        if file.step.is_empty() {
            return Err(RunbookError::Parse {
                origin: name.to_owned(),
                message: "no steps: add at least one [[step]] table".to_owned(),
            });
        }
        let steps = file
            .step
            .into_iter()
            .enumerate()
            .map(|(i, value)| parse_step(name, i + 1, value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Runbook {
            name: name.to_owned(),
            description: file.description.unwrap_or_default(),
            topology: file.topology,
            targets: file.targets.unwrap_or_default(),
            steps,
        })
    }
}

fn parse_step(origin: &str, number: usize, value: toml::Value) -> Result<Step, RunbookError> {
    let given = value.get("name").and_then(toml::Value::as_str).map(str::to_owned);
    let error = |name: &Option<String>, message: String| RunbookError::Step {
        origin: origin.to_owned(),
        number,
        name: name.clone().unwrap_or_else(|| "unnamed".to_owned()),
        message,
    };
    let file =
        StepFile::deserialize(value).map_err(|e| error(&given, e.to_string().trim_end().to_owned()))?;
    let chosen: Vec<&str> = [
        ("vault", file.vault.is_some()),
        ("fault", file.fault.is_some()),
        ("wait", file.wait.is_some()),
        ("assert", file.assert.is_some()),
        ("canary", file.canary.is_some()),
        ("generate_dr_token", file.generate_dr_token.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect();
    if chosen.len() != 1 {
        return Err(error(
            &given,
            format!(
                "a step needs exactly one of the fields vault, fault, wait, assert, canary, generate_dr_token (found {})",
                if chosen.is_empty() { "none".to_owned() } else { chosen.join(", ") }
            ),
        ));
    }
    let kind = chosen[0];
    let mut file = file;
    let need = |field: &str, value: Option<String>| {
        value.ok_or_else(|| error(&given, format!("field `{field}` is required by a `{kind}` step")))
    };
    let timeout = Duration::from_secs_f64(
        file.timeout_seconds
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
            .clamp(0.1, 3600.0),
    );
    let action = if let Some(command) = file.vault.take() {
        Action::Vault {
            command,
            on: need("on", file.on.take())?,
            token: file.token.take(),
            capture: file.capture.take().unwrap_or_default(),
        }
    } else if let Some(kind) = file.fault {
        Action::Fault {
            kind,
            target: need("target", file.target.take())?,
            unseal: file.unseal.unwrap_or(false),
        }
    } else if let Some(wait) = file.wait {
        if matches!(wait, WaitKind::Peers | WaitKind::Canary) && file.count.is_none() {
            return Err(error(&given, "field `count` is required by this wait".to_owned()));
        }
        if wait == WaitKind::Replication && file.mode.is_none() {
            return Err(error(
                &given,
                "field `mode` is required by wait = \"replication\"".to_owned(),
            ));
        }
        let on = if wait == WaitKind::Canary {
            file.on.take().unwrap_or_default()
        } else {
            need("on", file.on.take())?
        };
        Action::Wait {
            kind: wait,
            on,
            count: file.count,
            mode: file.mode.take(),
            token: file.token.take(),
            timeout,
        }
    } else if let Some(assert) = file.assert {
        let required: &[(&str, bool)] = match assert {
            AssertKind::Secret => &[
                ("path", file.path.is_some()),
                ("field", file.field.is_some()),
                ("equals", file.equals.is_some()),
            ],
            AssertKind::Peers => &[("count", file.count.is_some())],
            AssertKind::Health => &[("code", file.code.is_some())],
            AssertKind::DrMode => &[("mode", file.mode.is_some())],
        };
        if let Some((field, _)) = required.iter().find(|(_, set)| !set) {
            return Err(error(
                &given,
                format!("field `{field}` is required by this assert"),
            ));
        }
        Action::Assert {
            kind: assert,
            on: need("on", file.on.take())?,
            path: file.path.take(),
            field: file.field.take(),
            equals: file.equals.take(),
            count: file.count,
            code: file.code,
            mode: file.mode.take(),
            token: file.token.take(),
        }
    } else if let Some(action) = file.canary {
        if matches!(action, CanaryAction::Start | CanaryAction::Verify) && file.on.is_none() {
            return Err(error(
                &given,
                "field `on` is required by this canary step".to_owned(),
            ));
        }
        Action::Canary {
            action,
            on: file.on.take(),
            failover: file.failover.take(),
            rate: file.rate.unwrap_or(DEFAULT_CANARY_RATE).clamp(1, 500),
            token: file.token.take(),
        }
    } else {
        let dr = file
            .generate_dr_token
            .take()
            .ok_or_else(|| error(&given, "no action".to_owned()))?;
        Action::GenerateDrToken {
            on: dr.on,
            keys_from: dr.keys_from,
            into: dr.into.unwrap_or_else(|| "dr_token".to_owned()),
        }
    };
    let mark = file.mark.or(match action {
        Action::Fault {
            kind: FaultKind::Kill | FaultKind::Stop | FaultKind::Partition,
            ..
        } => Some(Mark::Fault),
        _ => None,
    });
    let name = file.name.take().unwrap_or_else(|| default_name(&action));
    Ok(Step {
        number,
        name,
        action,
        mark,
    })
}

fn default_name(action: &Action) -> String {
    match action {
        Action::Vault { command, on, .. } => format!("vault {command} (on {on})"),
        Action::Fault { kind, target, .. } => format!("{kind:?} {target}").to_lowercase(),
        Action::Wait { kind, on, .. } => format!("wait {kind:?} {on}").to_lowercase(),
        Action::Assert { kind, on, .. } => format!("assert {kind:?} {on}").to_lowercase(),
        Action::Canary { action, on, .. } => {
            format!("canary {action:?} {}", on.as_deref().unwrap_or("")).to_lowercase()
        }
        Action::GenerateDrToken { on, .. } => format!("generate DR operation token on {on}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
topology = "ha3"
[targets]
rto_seconds = 10
rpo_writes = 0
[[step]]
name = "enable"
vault = "write -f sys/replication/dr/primary/enable"
on = "primary"
capture = { token = "wrap_info.token" }
[[step]]
fault = "kill"
target = "primary/leader"
[[step]]
wait = "peers"
on = "primary"
count = 2
[[step]]
generate_dr_token = { on = "secondary", keys_from = "primary" }
"#;

    #[test]
    fn steps_parse_with_defaults() {
        let runbook = Runbook::from_toml(GOOD, "t").unwrap();
        assert_eq!(runbook.steps.len(), 4);
        assert_eq!(runbook.targets.rpo_writes, Some(0));
        assert_eq!(runbook.steps[1].mark, Some(Mark::Fault));
        assert_eq!(runbook.steps[1].name, "kill primary/leader");
        let Action::GenerateDrToken { into, .. } = &runbook.steps[3].action else {
            panic!("not a DR token step");
        };
        assert_eq!(into, "dr_token");
    }

    #[test]
    fn errors_name_the_step_and_field() {
        let bad = GOOD.replace(
            "target = \"primary/leader\"",
            "targte = \"x\"\nname = \"kill it\"",
        );
        let err = Runbook::from_toml(&bad, "t").unwrap_err().to_string();
        assert!(
            err.contains("step 2 (kill it)") && err.contains("targte"),
            "{err}"
        );
        let bad = GOOD.replace("count = 2", "");
        let err = Runbook::from_toml(&bad, "t").unwrap_err().to_string();
        assert!(err.contains("step 3") && err.contains("`count`"), "{err}");
        let bad = GOOD.replace("count = 2", "count = \"two\"");
        let err = Runbook::from_toml(&bad, "t").unwrap_err().to_string();
        assert!(err.contains("step 3") && err.contains("count"), "{err}");
        let err = Runbook::from_toml("topology = \"x\"\nstep = []\nextra = 1", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("extra"), "{err}");
    }
}
