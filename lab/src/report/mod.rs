//! What a drill leaves behind: the journal (every event, monotonic seconds since the
//! start), the terminal summary, and Markdown and self-contained HTML reports with an SVG
//! timeline, written to `--report DIR`.

mod html;
mod markdown;
mod summary;

pub use summary::{aggregate, terminal_summary, Aggregate};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::canary::{CanaryLog, Verification};
use crate::runbook::Targets;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Creating the directory or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The journal could not be serialized.
    #[error("cannot serialize the journal: {0}")]
    Json(#[from] serde_json::Error),
}

/// One thing that happened, `t` seconds after the drill started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Seconds since the start (monotonic clock).
    pub t: f64,
    /// `step-start`, `step-end`, `mark`, `canary`, `evidence`, `assert`, `error`, `lab`.
    pub kind: String,
    /// The step it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// What happened.
    pub detail: String,
}

/// Records events and prints the live view (one plain line per event on stderr).
#[derive(Debug)]
pub struct Journal {
    epoch: Instant,
    events: Vec<Event>,
    live: bool,
}

impl Journal {
    /// A journal whose time zero is now; `live` prints each event as it happens.
    pub fn new(live: bool) -> Journal {
        Journal {
            epoch: Instant::now(),
            events: Vec::new(),
            live,
        }
    }

    /// Time zero.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Seconds since time zero.
    pub fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Records (and shows) an event; returns its time.
    pub fn record(&mut self, kind: &str, step: Option<usize>, detail: impl Into<String>) -> f64 {
        let event = Event {
            t: self.now(),
            kind: kind.to_owned(),
            step,
            detail: detail.into(),
        };
        if self.live {
            let at = step.map(|s| format!("step {s} ")).unwrap_or_default();
            eprintln!("[{:>7.2}s] {at}{}: {}", event.t, event.kind, event.detail);
        }
        let t = event.t;
        self.events.push(event);
        t
    }

    /// Every event so far.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }
}

/// How one step went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepResult {
    /// 1-based position.
    pub number: usize,
    /// Its name.
    pub name: String,
    /// vault, fault, wait, assert, canary, generate_dr_token.
    pub kind: String,
    /// Start, seconds since the drill started.
    pub start: f64,
    /// Duration in seconds.
    pub duration: f64,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it did or why it failed.
    pub detail: String,
}

/// One assertion, including the targets checked at the end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assertion {
    /// The step, or 0 for targets.
    pub step: usize,
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// Expected and seen.
    pub detail: String,
}

/// One cluster's state at a moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterEvidence {
    /// Cluster name.
    pub name: String,
    /// (node, `sys/health` code or 0 when down).
    pub health: Vec<(String, u16)>,
    /// Raft voters per the active node (empty when unknown).
    pub voters: Vec<String>,
    /// `sys/replication/dr/status` data of the active node.
    pub dr_status: Value,
}

/// The lab's state at a moment (before the fault, after the drill).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// `before` or `after`.
    pub label: String,
    /// Seconds since the drill started.
    pub t: f64,
    /// Every cluster.
    pub clusters: Vec<ClusterEvidence>,
}

/// Recovery measurements, all in seconds since the drill started unless named otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Measurements {
    /// Timeline marks: fault, detection, election, promotion, first_read, first_write.
    pub marks: BTreeMap<String, f64>,
    /// Fault to first acknowledged write after it.
    pub rto_write_seconds: Option<f64>,
    /// Fault to first successful read after it.
    pub rto_read_seconds: Option<f64>,
    /// The canary read-back.
    pub rpo: Option<Verification>,
}

/// Everything one run of a drill produced: the JSON journal is this, serialized.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// Runbook name.
    pub drill: String,
    /// Its description.
    pub description: String,
    /// Topology.
    pub topology: String,
    /// Which repeat this is (1-based).
    pub run: usize,
    /// Wall-clock start, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Passed: every step ran, every assertion and target held.
    pub passed: bool,
    /// Why the drill stopped early.
    pub error: Option<String>,
    /// Targets from the runbook.
    pub targets: Targets,
    /// Steps that ran.
    pub steps: Vec<StepResult>,
    /// Assertions and targets.
    pub assertions: Vec<Assertion>,
    /// RTO, RPO and the marks.
    pub measurements: Measurements,
    /// Canary writes, failures and reads.
    pub canary: Option<CanaryLog>,
    /// Before and after.
    pub evidence: Vec<Evidence>,
    /// The journal.
    pub events: Vec<Event>,
    /// Seconds from start to end.
    pub total_seconds: f64,
}

/// Writes `journal.json`, `report.md` and `report.html` into `dir`.
pub fn write(dir: &Path, report: &DrillReport) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let files = [
        ("journal.json", serde_json::to_string_pretty(report)?),
        ("report.md", markdown::render(report)),
        ("report.html", html::render(report)),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the cross-repeat summary (`summary.md`, `summary.json`) into `dir`.
pub fn write_aggregate(dir: &Path, aggregate: &Aggregate) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    for (name, text) in [
        ("summary.json", serde_json::to_string_pretty(aggregate)?),
        ("summary.md", aggregate.table()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// `1.23s`, or `-` when not measured.
pub(crate) fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}s"))
}
