//! The terminal summary of one run, and per-step percentiles across repeats.

use std::fmt::Write as _;

use serde::Serialize;

use super::{seconds, DrillReport};

/// The end-of-run summary: steps, assertions, RTO/RPO against targets, verdict.
pub fn terminal_summary(report: &DrillReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "drill {} (run {}): {}",
        report.drill,
        report.run,
        verdict(report.passed)
    );
    for step in &report.steps {
        let _ = writeln!(
            out,
            "  {:>2}. {:<44} {:>8}  {}",
            step.number,
            step.name,
            format!("{:.2}s", step.duration),
            if step.ok { "ok" } else { "FAILED" }
        );
    }
    if let Some(error) = &report.error {
        let _ = writeln!(out, "  stopped: {error}");
    }
    for assertion in &report.assertions {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            if assertion.passed { "pass" } else { "FAIL" },
            assertion.name,
            assertion.detail
        );
    }
    let m = &report.measurements;
    let _ = writeln!(
        out,
        "  RTO: first write {} (target {}), first read {}",
        seconds(m.rto_write_seconds),
        report.targets.rto_label(),
        seconds(m.rto_read_seconds)
    );
    if let Some(rpo) = &m.rpo {
        let _ = writeln!(
            out,
            "  RPO: {} of {} acknowledged writes missing, span {:.2}s (target {})",
            rpo.missing.len(),
            rpo.acked,
            rpo.missing_span_seconds,
            report.targets.rpo_label()
        );
    }
    let _ = writeln!(out, "  total {:.2}s", report.total_seconds);
    out
}

fn verdict(passed: bool) -> &'static str {
    if passed {
        "PASSED"
    } else {
        "FAILED"
    }
}

/// p50 and p95 of one quantity across repeats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    /// What was measured.
    pub name: String,
    /// Samples.
    pub samples: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
}

/// Several runs of one drill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    /// Runbook name.
    pub drill: String,
    /// Runs.
    pub runs: usize,
    /// Runs that passed.
    pub passed: usize,
    /// Per step, in order.
    pub steps: Vec<Percentiles>,
    /// RTO (write, read) and RPO (missing writes).
    pub recovery: Vec<Percentiles>,
}

/// Per-step and recovery percentiles across `reports` (runs of the same runbook).
pub fn aggregate(reports: &[DrillReport]) -> Aggregate {
    let mut steps = Vec::new();
    let count = reports.iter().map(|r| r.steps.len()).max().unwrap_or(0);
    for index in 0..count {
        let samples: Vec<f64> = reports
            .iter()
            .filter_map(|r| r.steps.get(index).map(|s| s.duration))
            .collect();
        let name = reports
            .iter()
            .find_map(|r| r.steps.get(index))
            .map(|s| format!("{}. {}", s.number, s.name))
            .unwrap_or_default();
        steps.push(percentiles(name, samples));
    }
    let m = |f: fn(&DrillReport) -> Option<f64>| reports.iter().filter_map(f).collect::<Vec<f64>>();
    let recovery = vec![
        percentiles(
            "RTO first write (s)".into(),
            m(|r| r.measurements.rto_write_seconds),
        ),
        percentiles(
            "RTO first read (s)".into(),
            m(|r| r.measurements.rto_read_seconds),
        ),
        percentiles(
            "RPO missing writes".into(),
            m(|r| r.measurements.rpo.as_ref().map(|v| v.missing.len() as f64)),
        ),
    ];
    Aggregate {
        drill: reports.first().map(|r| r.drill.clone()).unwrap_or_default(),
        runs: reports.len(),
        passed: reports.iter().filter(|r| r.passed).count(),
        steps,
        recovery: recovery.into_iter().filter(|p| p.samples > 0).collect(),
    }
}

fn percentiles(name: String, mut samples: Vec<f64>) -> Percentiles {
    samples.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        if samples.is_empty() {
            0.0
        } else {
            let index = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index]
        }
    };
    Percentiles {
        name,
        samples: samples.len(),
        p50: rank(0.5),
        p95: rank(0.95),
    }
}

impl Aggregate {
    /// A Markdown table of every percentile.
    pub fn table(&self) -> String {
        let mut out = format!(
            "# {}: {} runs, {} passed\n\n| step | n | p50 | p95 |\n|---|---|---|---|\n",
            self.drill, self.runs, self.passed
        );
        for p in self.steps.iter().chain(&self.recovery) {
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} |",
                p.name, p.samples, p.p50, p.p95
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles("x".into(), vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((p.p50, p.p95), (3.0, 5.0));
        let one = percentiles("y".into(), vec![7.0]);
        assert_eq!((one.p50, one.p95), (7.0, 7.0));
    }
}
