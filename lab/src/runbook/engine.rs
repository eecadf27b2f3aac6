//! Runs a runbook's steps against an up lab, one at a time, recording every event.
//!
//! A failing step stops the drill (later steps would act on a lab in an unknown state);
//! a failing assertion is recorded and the drill goes on. Every wait is bounded by its
//! timeout, every poll sleeps [`POLL`].

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::format::{Action, AssertKind, CanaryAction, FaultKind, Mark, Runbook, Step, WaitKind};
use super::split_words;
use crate::api::{Health, NodeClient};
use crate::canary::{self, Canary, CanaryConfig, CanaryLog, Verification};
use crate::fault::{self, Fault, FaultOutcome};
use crate::provider::Provider;
use crate::report::{Assertion, ClusterEvidence, DrillReport, Evidence, Journal, Measurements, StepResult};
use crate::state::{LabHome, State, Target};

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
    fn condition(
        &self,
        kind: WaitKind,
        on: &str,
        count: Option<u64>,
        mode: Option<&str>,
        token: Option<&str>,
    ) -> Result<(bool, String), String> {
        match kind {
            WaitKind::Canary => {
                let acked = self.canary.as_ref().map_or(0, Canary::acked);
                Ok((acked >= count.unwrap_or(0), format!("canary acked {acked}")))
            }
            WaitKind::Leader => {
                let c = self.cluster_of(on)?;
                Ok(match self.active(c) {
                    Some(n) => (true, format!("leader {}", self.state.qualified(c, n))),
                    None => (false, format!("no active node in {on}")),
                })
            }
            WaitKind::Peers => {
                let voters = self.voters(on, token)?;
                Ok((
                    voters.len() as u64 == count.unwrap_or(0),
                    format!("voters [{}]", voters.join(", ")),
                ))
            }
            WaitKind::Sealed | WaitKind::Unsealed => {
                let want_sealed = kind == WaitKind::Sealed;
                let nodes = self.running_nodes(on)?;
                let states: Vec<String> = nodes
                    .iter()
                    .map(|&(c, n)| {
                        let sealed = self.health(c, n).is_none_or(|h| h.sealed);
                        format!(
                            "{} {}",
                            self.state.qualified(c, n),
                            if sealed { "sealed" } else { "unsealed" }
                        )
                    })
                    .collect();
                let holds = !nodes.is_empty()
                    && states
                        .iter()
                        .all(|s| s.ends_with(if want_sealed { " sealed" } else { " unsealed" }));
                Ok((holds, states.join(", ")))
            }
            WaitKind::Replication => {
                let status = self.dr_status(on)?;
                let seen = status.get("mode").and_then(Value::as_str).unwrap_or("-");
                let state = status.get("state").and_then(Value::as_str).unwrap_or("-");
                let want = mode.unwrap_or_default();
                let streaming = seen != "secondary" || state == "stream-wals";
                Ok((seen == want && streaming, format!("mode {seen}, state {state}")))
            }
            WaitKind::WalConverged => {
                let c = self.cluster_of(on)?;
                let primary = (0..self.state.clusters.len())
                    .filter(|&p| p != c)
                    .find_map(|p| {
                        let status = self.dr_status(&self.state.clusters[p].name).ok()?;
                        (status.get("mode")? == "primary")
                            .then(|| status.get("last_wal").and_then(Value::as_u64))?
                    })
                    .ok_or_else(|| "no DR primary answers".to_owned())?;
                let secondary = self.dr_status(on)?;
                let remote = secondary
                    .get("last_remote_wal")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                Ok((
                    primary > 0 && remote >= primary,
                    format!("primary last_wal {primary}, secondary last_remote_wal {remote}"),
                ))
            }
        }
    }

    fn check(&self, action: &Action) -> Result<(bool, String), String> {
        let Action::Assert {
            kind,
            on,
            path,
            field,
            equals,
            count,
            code,
            mode,
            token,
        } = action
        else {
            return Err("not an assertion".to_owned());
        };
        let token = token.as_deref().map(|t| self.expand(t)).transpose()?;
        match kind {
            AssertKind::Secret => {
                let (c, n) = self.node_for(on)?;
                let token = token.unwrap_or_else(|| self.root_token(c));
                let path = self.expand(path.as_deref().unwrap_or_default())?;
                let field = field.as_deref().unwrap_or_default();
                let want = self.expand(equals.as_deref().unwrap_or_default())?;
                let client =
                    NodeClient::new(&self.state.clusters[c].nodes[n].api_addr).map_err(|e| e.to_string())?;
                let (status, body) = client
                    .request("GET", &path, None, Some(&token))
                    .map_err(|e| e.to_string())?;
                let value = lookup(&body, &format!("data.{field}"))
                    .or_else(|| lookup(&body, &format!("data.data.{field}")));
                Ok((
                    status == 200 && value.as_deref() == Some(want.as_str()),
                    format!("{path} {field}: want {want:?}, got HTTP {status} {value:?}"),
                ))
            }
            AssertKind::Peers => {
                let voters = self.voters(on, token.as_deref())?;
                let want = count.unwrap_or(0);
                Ok((
                    voters.len() as u64 == want,
                    format!("want {want} voters, got [{}]", voters.join(", ")),
                ))
            }
            AssertKind::Health => {
                let (c, n) = match self.state.resolve(Some(on)).map_err(|e| e.to_string())? {
                    Target::Node(c, n) => (c, n),
                    Target::Cluster(c) => (
                        c,
                        self.active(c)
                            .or_else(|| self.running_nodes(on).ok()?.first().map(|x| x.1))
                            .unwrap_or(0),
                    ),
                };
                let got = self.health(c, n).map_or(0, |h| h.status);
                let want = code.unwrap_or(0);
                Ok((
                    got == want,
                    format!("{}: want {want}, got {got}", self.state.qualified(c, n)),
                ))
            }
            AssertKind::DrMode => {
                let status = self.dr_status(on)?;
                let got = status
                    .get("mode")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_owned();
                let want = mode.as_deref().unwrap_or_default();
                Ok((got == want, format!("want mode {want}, got {got}")))
            }
        }
    }

    fn canary_step(
        &mut self,
        action: CanaryAction,
        on: Option<&str>,
        failover: Option<&str>,
        rate: u32,
        token: Option<&str>,
    ) -> StepOutcome {
        match action {
            CanaryAction::Start => {
                if self.canary.is_some() {
                    return Err("the canary is already running".to_owned());
                }
                let on = on.unwrap_or_default();
                let (c, n) = self.node_for(on)?;
                let token = match token {
                    Some(t) => self.expand(t)?,
                    None => self.root_token(c),
                };
                canary::prepare(&self.state.clusters[c].nodes[n].api_addr, &token)
                    .map_err(|e| e.to_string())?;
                let mut candidates: Vec<String> = self.state.clusters[c]
                    .nodes
                    .iter()
                    .map(|n| n.api_addr.clone())
                    .collect();
                if let Some(failover) = failover {
                    let f = self.cluster_of(failover)?;
                    candidates.extend(self.state.clusters[f].nodes.iter().map(|n| n.api_addr.clone()));
                }
                self.canary = Some(Canary::start(CanaryConfig {
                    candidates,
                    token,
                    rate,
                    epoch: self.journal.epoch(),
                }));
                Ok(format!(
                    "writing {rate}/s to {on}{}",
                    failover.map(|f| format!(", then {f}")).unwrap_or_default()
                ))
            }
            CanaryAction::Stop | CanaryAction::Verify => {
                if let Some(canary) = self.canary.take() {
                    self.canary_log = Some(canary.stop().map_err(|e| e.to_string())?);
                }
                let log = self
                    .canary_log
                    .as_ref()
                    .ok_or_else(|| "the canary never ran".to_owned())?;
                let summary = format!("{} acked, {} failed attempts", log.acks.len(), log.failures.len());
                if action == CanaryAction::Stop {
                    return Ok(summary);
                }
                let on = on.unwrap_or_default();
                let (c, n) = self.node_for(on)?;
                let token = match token {
                    Some(t) => self.expand(t)?,
                    None => self.root_token(c),
                };
                let verification = canary::verify(log, &self.state.clusters[c].nodes[n].api_addr, &token)
                    .map_err(|e| e.to_string())?;
                let detail = format!(
                    "{summary}; {} missing on {}",
                    verification.missing.len(),
                    self.state.qualified(c, n)
                );
                self.rpo = Some(verification);
                Ok(detail)
            }
        }
    }

    /// The OTP flow on a DR secondary, authorized by `keys_from`'s unseal keys.
    fn generate_dr_token(&mut self, on: &str, keys_from: &str, into: &str) -> StepOutcome {
        let (c, n) = self.node_for(on)?;
        let keys = self.home.credentials(keys_from).map_err(|e| e.to_string())?;
        let base = ["operator", "generate-root", "-dr-token"];
        let run = |extra: &[&str]| -> Result<Value, String> {
            let args: Vec<String> = base.iter().chain(extra).map(|s| (*s).to_owned()).collect();
            let out = self.vault(&args, c, n, None)?;
            serde_json::from_str(&out).map_err(|e| format!("unexpected output ({e}): {out}"))
        };
        let _ = run(&["-cancel"]);
        let init = run(&["-init"])?;
        let field =
            |v: &Value, name: &str| v.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (nonce, otp) = (field(&init, "nonce"), field(&init, "otp"));
        if otp.is_empty() {
            return Err(format!("-init returned no OTP: {init}"));
        }
        // Auto-unsealed (awskms) clusters authorize with recovery keys, Shamir ones with
        // unseal keys.
        let (shares, threshold, kind) = if keys.unseal_keys_b64.is_empty() {
            (&keys.recovery_keys_b64, keys.recovery_keys_threshold, "recovery")
        } else {
            (&keys.unseal_keys_b64, keys.unseal_threshold, "unseal")
        };
        let mut encoded = String::new();
        for key in shares.iter().take(threshold as usize) {
            let status = run(&[&format!("-nonce={nonce}"), key])?;
            if status.get("complete") == Some(&Value::Bool(true)) {
                encoded = field(&status, "encoded_token");
                break;
            }
        }
        if encoded.is_empty() {
            return Err(format!(
                "not complete after {threshold} {kind} keys of {keys_from}"
            ));
        }
        let decoded = run(&[&format!("-decode={encoded}"), &format!("-otp={otp}")])?;
        let token = field(&decoded, "token");
        if token.is_empty() {
            return Err(format!("decoding gave no token: {decoded}"));
        }
        self.vars.insert(into.to_owned(), token);
        Ok(format!(
            "{threshold} {kind} keys of {keys_from}, token in {{{{{into}}}}}"
        ))
    }

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

    fn health(&self, c: usize, n: usize) -> Option<Health> {
        let node = &self.state.clusters[c].nodes[n];
        let process = node.process.as_ref()?;
        if !self.provider.host(node).is_running(process) {
            return None;
        }
        NodeClient::with_timeout(&node.api_addr, HEALTH_TIMEOUT)
            .ok()?
            .health()
            .ok()
    }

    fn active(&self, c: usize) -> Option<usize> {
        (0..self.state.clusters[c].nodes.len()).find(|&n| self.health(c, n).is_some_and(|h| h.is_active()))
    }

    fn cluster_of(&self, on: &str) -> Result<usize, String> {
        match self.state.resolve(Some(on)).map_err(|e| e.to_string())? {
            Target::Cluster(c) | Target::Node(c, _) => Ok(c),
        }
    }

    /// A node as named, or a cluster's active node.
    fn node_for(&self, on: &str) -> Result<(usize, usize), String> {
        match self.state.resolve(Some(on)).map_err(|e| e.to_string())? {
            Target::Node(c, n) => Ok((c, n)),
            Target::Cluster(c) => self
                .active(c)
                .map(|n| (c, n))
                .ok_or_else(|| format!("cluster {on} has no active node")),
        }
    }

    fn running_nodes(&self, on: &str) -> Result<Vec<(usize, usize)>, String> {
        let target = self.state.resolve(Some(on)).map_err(|e| e.to_string())?;
        Ok(self
            .state
            .nodes_of(target)
            .into_iter()
            .filter(|&(c, n)| {
                let node = &self.state.clusters[c].nodes[n];
                node.process
                    .as_ref()
                    .is_some_and(|p| self.provider.host(node).is_running(p))
            })
            .collect())
    }

    /// Voters in the raft configuration, asked of the active node (or the node named).
    /// Without a token, every cluster's root token is tried: after DR promotion the
    /// secondary holds the primary's tokens.
    fn voters(&self, on: &str, token: Option<&str>) -> Result<Vec<String>, String> {
        let (c, n) = self.node_for(on)?;
        let client = NodeClient::new(&self.state.clusters[c].nodes[n].api_addr).map_err(|e| e.to_string())?;
        let mut tokens: Vec<String> = token.map(str::to_owned).into_iter().collect();
        tokens.push(self.root_token(c));
        tokens.extend((0..self.state.clusters.len()).map(|o| self.root_token(o)));
        let mut last = String::new();
        for token in tokens.iter().filter(|t| !t.is_empty()) {
            match client.raft_servers(token) {
                Ok(servers) => {
                    return Ok(servers
                        .into_iter()
                        .filter(|s| s.voter)
                        .map(|s| s.node_id)
                        .collect())
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    fn dr_status(&self, on: &str) -> Result<Value, String> {
        let (c, n) = match self.node_for(on) {
            Ok(node) => node,
            Err(e) => *self.running_nodes(on)?.first().ok_or(e)?,
        };
        NodeClient::with_timeout(&self.state.clusters[c].nodes[n].api_addr, HEALTH_TIMEOUT)
            .and_then(|client| client.dr_status())
            .map_err(|e| e.to_string())
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
