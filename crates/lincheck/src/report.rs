//! A run's result and the figures it prints: operations, faults, lost acknowledged writes and
//! the checker's verdict (with the operations around a violation).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::checker::{Verdict, Violation};
use crate::history::{Input, Operation, Outcome, Output};

/// Which fault was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// kill -9, then `lab fault start --unseal`.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// What was done.
    pub kind: FaultKind,
    /// To which node (the leader at the time).
    pub node: String,
    /// When it started (µs on the history's clock).
    pub at_us: u64,
    /// When the node was running again (µs).
    pub healed_us: u64,
}

/// An acknowledged write the cluster no longer has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostWrite {
    /// The operation id.
    pub id: usize,
    /// Its key.
    pub key: String,
    /// The version it was acknowledged as.
    pub version: u64,
    /// The value it wrote.
    pub value: u64,
    /// What the read-back found.
    pub reason: String,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every operation, in completion order.
    pub history: Vec<Operation>,
    /// Every fault, in order.
    pub faults: Vec<Fault>,
    /// Acknowledged writes missing afterwards.
    pub lost: Vec<LostWrite>,
    /// The checker's verdict on `history`.
    pub verdict: Verdict,
    /// How long the clients ran.
    pub elapsed: Duration,
    /// Whether the time limit stopped the fault schedule early.
    pub cut_short: bool,
}

impl Report {
    /// Linearizable, nothing lost, the whole schedule run.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Linearizable && self.lost.is_empty() && !self.cut_short
    }

    /// Number of faults of one kind.
    pub fn count(&self, kind: FaultKind) -> usize {
        self.faults.iter().filter(|f| f.kind == kind).count()
    }
}

/// Operation counts by kind and outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Reads.
    pub reads: usize,
    /// Plain writes.
    pub writes: usize,
    /// Check-and-sets.
    pub cas: usize,
    /// Answered.
    pub ok: usize,
    /// Certainly without effect.
    pub failed: usize,
    /// Unanswered after sending.
    pub unknown: usize,
    /// Acknowledged writes and check-and-sets that stored a version.
    pub acked_writes: usize,
}

impl Counts {
    /// Counts `history`.
    pub fn of(history: &[Operation]) -> Counts {
        let mut c = Counts::default();
        for op in history {
            match op.input {
                Input::Read => c.reads += 1,
                Input::Write { .. } => c.writes += 1,
                Input::Cas { .. } => c.cas += 1,
            }
            match op.outcome {
                Outcome::Ok { output, .. } => {
                    c.ok += 1;
                    c.acked_writes += usize::from(matches!(output, Output::Written { .. }));
                }
                Outcome::Fail => c.failed += 1,
                Outcome::Unknown => c.unknown += 1,
            }
        }
        c
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = Counts::of(&self.history);
        writeln!(
            f,
            "operations: {} in {:.1}s (reads {}, writes {}, cas {}; ok {}, failed {}, unknown {}; acknowledged writes {})",
            self.history.len(),
            self.elapsed.as_secs_f64(),
            c.reads,
            c.writes,
            c.cas,
            c.ok,
            c.failed,
            c.unknown,
            c.acked_writes
        )?;
        writeln!(
            f,
            "faults: {} leader kill/restart, {} leader pause/resume{}",
            self.count(FaultKind::Kill),
            self.count(FaultKind::Pause),
            if self.cut_short {
                " (time limit reached: schedule cut short)"
            } else {
                ""
            }
        )?;
        writeln!(f, "lost acknowledged writes: {}", self.lost.len())?;
        for lost in &self.lost {
            writeln!(
                f,
                "  op {} {} v{} = {}: {}",
                lost.id, lost.key, lost.version, lost.value, lost.reason
            )?;
        }
        match &self.verdict {
            Verdict::Linearizable => writeln!(f, "verdict: linearizable"),
            Verdict::Inconclusive { key } => {
                writeln!(f, "verdict: inconclusive (search budget exhausted on key {key})")
            }
            Verdict::NotLinearizable(v) => {
                writeln!(
                    f,
                    "verdict: NOT linearizable (key {}, operation {})",
                    v.key, v.stuck
                )?;
                write_violation(f, &self.history, v, &self.faults)
            }
        }
    }
}

/// The stuck operation, the last operations of the longest consistent order, the operations
/// overlapping the stuck one, and the faults around it.
fn write_violation(
    f: &mut fmt::Formatter<'_>,
    history: &[Operation],
    v: &Violation,
    faults: &[Fault],
) -> fmt::Result {
    let Some(stuck) = history.get(v.stuck) else {
        return Ok(());
    };
    writeln!(f, "  cannot be placed: {}", describe(stuck))?;
    writeln!(f, "  longest consistent order ends with:")?;
    for id in v.longest_prefix.iter().rev().take(8).rev() {
        if let Some(op) = history.get(*id) {
            writeln!(f, "    {}", describe(op))?;
        }
    }
    let end = match stuck.outcome {
        Outcome::Ok { returned, .. } => returned,
        _ => u64::MAX,
    };
    writeln!(f, "  overlapping it on the same key:")?;
    for op in history.iter().filter(|op| {
        op.key == stuck.key
            && op.id != stuck.id
            && op.invoke <= end
            && match op.outcome {
                Outcome::Ok { returned, .. } => returned >= stuck.invoke,
                _ => true,
            }
    }) {
        writeln!(f, "    {}", describe(op))?;
    }
    for fault in faults
        .iter()
        .filter(|x| x.at_us <= end && x.healed_us + 5_000_000 >= stuck.invoke)
    {
        writeln!(
            f,
            "  fault: {:?} {} {:.3}s..{:.3}s",
            fault.kind,
            fault.node,
            fault.at_us as f64 / 1e6,
            fault.healed_us as f64 / 1e6
        )?;
    }
    Ok(())
}

fn describe(op: &Operation) -> String {
    let input = match op.input {
        Input::Read => "read".to_owned(),
        Input::Write { value } => format!("write {value}"),
        Input::Cas {
            expected_version,
            value,
        } => format!("cas v{expected_version} {value}"),
    };
    let outcome = match op.outcome {
        Outcome::Ok { returned, output } => {
            let output = match output {
                Output::Read { version, value } => format!("v{version} = {value:?}"),
                Output::Written { version } => format!("stored v{version}"),
                Output::CasRejected => "cas rejected".to_owned(),
            };
            format!(
                "{:.3}s..{:.3}s {output}",
                op.invoke as f64 / 1e6,
                returned as f64 / 1e6
            )
        }
        Outcome::Fail => format!("{:.3}s.. failed", op.invoke as f64 / 1e6),
        Outcome::Unknown => format!("{:.3}s.. unknown", op.invoke as f64 / 1e6),
    };
    format!("op {} client {} {} {input}: {outcome}", op.id, op.client, op.key)
}
