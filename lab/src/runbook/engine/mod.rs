//! Runs a runbook's steps against an up lab, one at a time, recording every event.
//!
//! A failing step stops the drill (later steps would act on a lab in an unknown state);
//! a failing assertion is recorded and the drill goes on. Every wait is bounded by its
//! timeout, every poll sleeps [`POLL`]. The step engine is here; [`checks`] holds the
//! wait conditions and assertions, [`steps`] the canary and DR-token steps.

mod checks;
mod steps;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::format::{Action, FaultKind, Mark, Runbook, Step, WaitKind};
use super::split_words;
use crate::canary::{Canary, CanaryLog, Verification};
use crate::fault::{self, Fault, FaultOutcome};
use crate::provider::Provider;
use crate::report::{Assertion, ClusterEvidence, DrillReport, Evidence, Journal, Measurements, StepResult};
use crate::state::{LabHome, State};

/// Between two polls of a wait.
const POLL: Duration = Duration::from_millis(200);
/// How often a wait prints the canary's progress.
const LIVE_EVERY: Duration = Duration::from_secs(2);
/// Health checks during drills must not hang on a dying node.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The outcome of one step: what it did, or why it failed.
type StepOutcome = Result<String, String>;

/// Runs runbooks against one lab.
pub struct Engine<'a> {
    home: &'a LabHome,
    state: State,
    provider: &'a dyn Provider,
    journal: Journal,
    vars: BTreeMap<String, String>,
    canary: Option<Canary>,
    canary_log: Option<CanaryLog>,
    rpo: Option<Verification>,
    marks: BTreeMap<String, f64>,
    assertions: Vec<Assertion>,
    evidence: Vec<Evidence>,
    _workdir: tempfile::TempDir,
}

impl<'a> Engine<'a> {
    /// An engine for the lab in `home`, whose state is `state`.
    pub fn new(
        home: &'a LabHome,
        state: State,
        provider: &'a dyn Provider,
        live: bool,
    ) -> Result<Engine<'a>, std::io::Error> {
        let workdir = tempfile::Builder::new().prefix("lab-drill-").tempdir()?;
        let mut vars = BTreeMap::new();
        vars.insert("drill.dir".to_owned(), workdir.path().display().to_string());
        for cluster in &state.clusters {
            if let Ok(creds) = home.credentials(&cluster.name) {
                vars.insert(format!("{}.root_token", cluster.name), creds.root_token);
            }
        }
        Ok(Engine {
            home,
            state,
            provider,
            journal: Journal::new(live),
            vars,
            canary: None,
            canary_log: None,
            rpo: None,
            marks: BTreeMap::new(),
            assertions: Vec::new(),
            evidence: Vec::new(),
            _workdir: workdir,
        })
    }

    /// Runs every step, then measures and judges.
    pub fn run(mut self, runbook: &Runbook, run: usize) -> DrillReport {
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.journal.record(
            "drill",
            None,
            format!("{} on {} (run {run})", runbook.name, runbook.topology),
        );
        let mut steps = Vec::new();
        let mut error = None;
        for step in &runbook.steps {
            if step.mark == Some(Mark::Fault) && self.evidence.is_empty() {
                self.collect_evidence("before");
            }
            let start = self
                .journal
                .record("step-start", Some(step.number), step.name.clone());
            if step.mark == Some(Mark::Fault) {
                self.marks.entry("fault".to_owned()).or_insert(start);
            }
            let outcome = self.step(step);
            let end = self.journal.now();
            if let (Ok(_), Some(mark)) = (&outcome, step.mark) {
                if mark != Mark::Fault {
                    self.marks.entry(mark.as_str().to_owned()).or_insert(end);
                }
            }
            let (ok, detail) = match outcome {
                Ok(detail) => (true, detail),
                Err(detail) => (false, detail),
            };
            self.journal.record(
                "step-end",
                Some(step.number),
                format!(
                    "{} in {:.2}s: {detail}",
                    if ok { "ok" } else { "FAILED" },
                    end - start
                ),
            );
            steps.push(StepResult {
                number: step.number,
                name: step.name.clone(),
                kind: kind_name(&step.action).to_owned(),
                start,
                duration: end - start,
                ok,
                detail: detail.clone(),
            });
            if !ok {
                error = Some(format!("step {} ({}) failed: {detail}", step.number, step.name));
                break;
            }
        }
        if let Some(canary) = self.canary.take() {
            match canary.stop() {
                Ok(log) => self.canary_log = Some(log),
                Err(e) => error = error.or(Some(e.to_string())),
            }
        }
        self.collect_evidence("after");
        let measurements = self.measure();
        self.judge(runbook, &measurements);
        let passed = error.is_none() && self.assertions.iter().all(|a| a.passed);
        let total_seconds = self
            .journal
            .record("drill", None, if passed { "passed" } else { "failed" });
        DrillReport {
            drill: runbook.name.clone(),
            description: runbook.description.clone(),
            topology: runbook.topology.clone(),
            run,
            started_unix,
            passed,
            error,
            targets: runbook.targets,
            steps,
            assertions: self.assertions,
            measurements,
            canary: self.canary_log,
            evidence: self.evidence,
            events: self.journal.into_events(),
            total_seconds,
        }
    }

    fn step(&mut self, step: &Step) -> StepOutcome {
        match &step.action {
            Action::Vault {
                command,
                on,
                token,
                capture,
            } => self.vault_step(command, on, token.as_deref(), capture),
            Action::Fault { kind, target, unseal } => self.fault(*kind, target, *unseal),
            Action::Wait {
                kind,
                on,
                count,
                mode,
                token,
                timeout,
            } => self.wait(*kind, on, *count, mode.as_deref(), token.as_deref(), *timeout),
            Action::Assert { .. } => {
                let (passed, detail) = self.check(&step.action)?;
                self.journal.record(
                    "assert",
                    Some(step.number),
                    format!("{} {detail}", if passed { "pass" } else { "FAIL" }),
                );
                self.assertions.push(Assertion {
                    step: step.number,
                    name: step.name.clone(),
                    passed,
                    detail: detail.clone(),
                });
                Ok(detail)
            }
            Action::Canary {
                action,
                on,
                failover,
                rate,
                token,
            } => self.canary_step(
                *action,
                on.as_deref(),
                failover.as_deref(),
                *rate,
                token.as_deref(),
            ),
            Action::GenerateDrToken { on, keys_from, into } => self.generate_dr_token(on, keys_from, into),
        }
    }

    fn vault_step(
        &mut self,
        command: &str,
        on: &str,
        token: Option<&str>,
        capture: &BTreeMap<String, String>,
    ) -> StepOutcome {
        let (c, n) = self.node_for(on)?;
        let token = match token {
            Some(t) => self.expand(t)?,
            None => self.root_token(c),
        };
        let args = split_words(&self.expand(command)?)?;
        let stdout = self.vault(&args, c, n, Some(&token))?;
        if capture.is_empty() {
            return Ok(format!("on {}", self.state.qualified(c, n)));
        }
        let output: Value = serde_json::from_str(&stdout)
            .map_err(|e| format!("output is not JSON ({e}); cannot capture: {stdout}"))?;
        let mut captured = Vec::new();
        for (var, path) in capture {
            let value =
                lookup(&output, path).ok_or_else(|| format!("capture {var}: no `{path}` in the output"))?;
            self.vars.insert(var.clone(), value);
            captured.push(var.as_str());
        }
        Ok(format!(
            "on {}, captured {}",
            self.state.qualified(c, n),
            captured.join(", ")
        ))
    }

    /// Runs the vault CLI (labnode) against one node, `VAULT_FORMAT=json`; returns stdout.
    fn vault(&self, args: &[String], c: usize, n: usize, token: Option<&str>) -> Result<String, String> {
        let mut command = Command::new(&self.state.labnode);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("VAULT_") {
                command.env_remove(name);
            }
        }
        command
            .args(args)
            .env("VAULT_ADDR", &self.state.clusters[c].nodes[n].api_addr)
            .env("VAULT_FORMAT", "json")
            .env("NO_COLOR", "1");
        if let Some(token) = token {
            command.env("VAULT_TOKEN", token);
        }
        let out = command
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.state.labnode.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "`vault {}` failed ({}): {}",
                redact(args),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn fault(&mut self, kind: FaultKind, target: &str, unseal: bool) -> StepOutcome {
        let fault = match kind {
            FaultKind::Kill => Fault::Kill,
            FaultKind::Stop => Fault::Stop,
            FaultKind::Start => Fault::Start { unseal },
            FaultKind::Partition => Fault::Partition,
            FaultKind::Heal => Fault::Heal,
        };
        let nodes = self.fault_targets(target)?;
        let mut done = Vec::new();
        for (c, n) in nodes {
            let name = self.state.qualified(c, n);
            let mut progress = |line: &str| eprintln!("           {line}");
            let outcome = fault::inject(
                self.home,
                self.provider,
                &mut self.state,
                (c, n),
                fault,
                &mut progress,
            )
            .map_err(|e| e.to_string())?;
            done.push(match outcome {
                FaultOutcome::Started => format!("started {name}"),
                FaultOutcome::Partitioned => format!("partitioned {name}"),
                FaultOutcome::Healed => format!("healed {name}"),
                FaultOutcome::AlreadyDown => format!("{name} already down"),
                FaultOutcome::Killed { pid } => format!("killed {name} (pid {pid})"),
                FaultOutcome::Stopped { pid } => format!("stopped {name} (pid {pid})"),
            });
        }
        Ok(done.join(", "))
    }

    /// CLUSTER/leader, CLUSTER/follower, CLUSTER/down (every node not running), or
    /// anything `lab fault` takes.
    fn fault_targets(&self, target: &str) -> Result<Vec<(usize, usize)>, String> {
        if let Some((cluster, role)) = target.split_once('/') {
            if role == "down" {
                let c = self.cluster_of(cluster)?;
                let running = self.running_nodes(cluster)?;
                return Ok((0..self.state.clusters[c].nodes.len())
                    .map(|n| (c, n))
                    .filter(|node| !running.contains(node))
                    .collect());
            }
            if role == "leader" || role == "follower" {
                let c = self.cluster_of(cluster)?;
                let found = (0..self.state.clusters[c].nodes.len()).find(|&n| {
                    self.health(c, n).is_some_and(|h| {
                        if role == "leader" {
                            h.is_active()
                        } else {
                            h.is_unsealed_member() && !h.is_active()
                        }
                    })
                });
                return found
                    .map(|n| vec![(c, n)])
                    .ok_or_else(|| format!("cluster {cluster} has no {role} right now"));
            }
        }
        let resolved = self.state.resolve(Some(target)).map_err(|e| e.to_string())?;
        Ok(self.state.nodes_of(resolved))
    }

    fn wait(
        &mut self,
        kind: WaitKind,
        on: &str,
        count: Option<u64>,
        mode: Option<&str>,
        token: Option<&str>,
        timeout: Duration,
    ) -> StepOutcome {
        let token = token.map(|t| self.expand(t)).transpose()?;
        let count = match kind {
            WaitKind::Canary => count.map(|more| more + self.canary.as_ref().map_or(0, Canary::acked)),
            _ => count,
        };
        let started = Instant::now();
        let mut last_live = Instant::now();
        loop {
            let seen = match self.condition(kind, on, count, mode, token.as_deref()) {
                Ok((true, seen)) => {
                    return Ok(format!("{seen} after {:.2}s", started.elapsed().as_secs_f64()))
                }
                Ok((false, seen)) => seen,
                Err(e) => e,
            };
            if started.elapsed() > timeout {
                return Err(format!(
                    "timed out after {}s (last: {seen})",
                    timeout.as_secs_f64()
                ));
            }
            if last_live.elapsed() >= LIVE_EVERY {
                last_live = Instant::now();
                let canary = self
                    .canary
                    .as_ref()
                    .map(|c| format!("; canary {} acked, {:.0}/s", c.acked(), c.rate()))
                    .unwrap_or_default();
                self.journal.record("waiting", None, format!("{seen}{canary}"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// One evaluation of a wait condition: (holds, what was seen).
    fn measure(&mut self) -> Measurements {
        let mut measurements = Measurements {
            marks: self.marks.clone(),
            rpo: self.rpo.clone(),
            ..Measurements::default()
        };
        let (Some(fault), Some(log)) = (self.marks.get("fault").copied(), &self.canary_log) else {
            return measurements;
        };
        let marks = &mut measurements.marks;
        // Recovery counts from the first failed write after the fault: a write or read
        // still answered by the failing side before it went down is not a recovery.
        let outage = log.failures.iter().copied().find(|t| *t >= fault);
        if let Some(t) = outage {
            marks.entry("detection".to_owned()).or_insert(t);
        }
        let since = outage.unwrap_or(fault);
        if let Some(ack) = log.acks.iter().find(|a| a.t >= since) {
            marks.insert("first_write".to_owned(), ack.t);
            measurements.rto_write_seconds = Some(ack.t - fault);
        }
        if let Some(t) = log.reads.iter().find(|t| **t >= since) {
            marks.insert("first_read".to_owned(), *t);
            measurements.rto_read_seconds = Some(t - fault);
        }
        measurements
    }

    fn judge(&mut self, runbook: &Runbook, m: &Measurements) {
        if let Some(target) = runbook.targets.rto_seconds {
            let (passed, detail) = match m.rto_write_seconds {
                Some(rto) => (rto <= target, format!("{rto:.2}s, target {target}s")),
                None => (
                    false,
                    format!("not measured (no write after the fault), target {target}s"),
                ),
            };
            self.assertions.push(Assertion {
                step: 0,
                name: "RTO target".to_owned(),
                passed,
                detail,
            });
        }
        if let Some(target) = runbook.targets.rpo_writes {
            let (passed, detail) = match &m.rpo {
                Some(v) => (
                    v.missing.len() as u64 <= target,
                    format!(
                        "{} of {} acknowledged writes missing, target {target}",
                        v.missing.len(),
                        v.acked
                    ),
                ),
                None => (
                    false,
                    format!("not measured (no canary verify step), target {target}"),
                ),
            };
            self.assertions.push(Assertion {
                step: 0,
                name: "RPO target".to_owned(),
                passed,
                detail,
            });
        }
    }

    fn collect_evidence(&mut self, label: &str) {
        let clusters = (0..self.state.clusters.len())
            .map(|c| {
                let cluster = &self.state.clusters[c];
                let health = (0..cluster.nodes.len())
                    .map(|n| {
                        (
                            cluster.nodes[n].name.clone(),
                            self.health(c, n).map_or(0, |h| h.status),
                        )
                    })
                    .collect();
                ClusterEvidence {
                    name: cluster.name.clone(),
                    health,
                    voters: self.voters(&cluster.name, None).unwrap_or_default(),
                    dr_status: self.dr_status(&cluster.name).unwrap_or(Value::Null),
                }
            })
            .collect();
        let t = self.journal.record("evidence", None, label);
        self.evidence.push(Evidence {
            label: label.to_owned(),
            t,
            clusters,
        });
    }

    fn root_token(&self, c: usize) -> String {
        self.vars
            .get(&format!("{}.root_token", self.state.clusters[c].name))
            .cloned()
            .unwrap_or_default()
    }

    /// Replaces every `{{var}}`; an unknown variable is an error naming it.
    fn expand(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
            let name = after[..end].trim();
            let value = self.vars.get(name).ok_or_else(|| {
                format!(
                    "unknown variable {{{{{name}}}}}; known: {}",
                    self.vars.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A dotted path (`wrap_info.token`, `data.keys.0`) into JSON, as a string.
fn lookup(value: &Value, path: &str) -> Option<String> {
    let found = path.split('.').try_fold(value, |v, key| match v {
        Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => v.get(key),
    })?;
    match found {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A command line for messages, with anything token- or key-like cut short.
fn redact(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let secret = a.len() > 20 && !a.contains('/') && !a.starts_with('-')
                || a.starts_with("token=")
                || a.contains("_token=");
            if secret {
                format!("{}…", &a[..a.len().min(8)])
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn kind_name(action: &Action) -> &'static str {
    match action {
        Action::Vault { .. } => "vault",
        Action::Fault { .. } => "fault",
        Action::Wait { .. } => "wait",
        Action::Assert { .. } => "assert",
        Action::Canary { .. } => "canary",
        Action::GenerateDrToken { .. } => "generate_dr_token",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_and_redaction() {
        let v: Value = serde_json::json!({"wrap_info": {"token": "abc"}, "data": {"keys": [1, 2]}});
        assert_eq!(lookup(&v, "wrap_info.token").as_deref(), Some("abc"));
        assert_eq!(lookup(&v, "data.keys.1").as_deref(), Some("2"));
        assert_eq!(lookup(&v, "data.nope"), None);
        let args = vec![
            "write".to_owned(),
            "sys/x".to_owned(),
            "token=eyJhbGciOiJFUzI1NiJ9.long".to_owned(),
        ];
        assert_eq!(redact(&args), "write sys/x token=ey…");
    }
}
