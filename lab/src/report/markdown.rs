//! `report.md`: the run as a document an operator can paste into a post-mortem.

use std::fmt::Write as _;

use super::{seconds, DrillReport, Evidence};

/// Renders one run.
pub fn render(report: &DrillReport) -> String {
    let mut out = String::new();
    let verdict = if report.passed { "PASSED" } else { "FAILED" };
    let _ = writeln!(out, "# Drill `{}`: {verdict}\n", report.drill);
    let _ = writeln!(
        out,
        "{}\n\nTopology `{}`, run {}, {:.2}s in total.\n",
        report.description, report.topology, report.run, report.total_seconds
    );
    if let Some(error) = &report.error {
        let _ = writeln!(out, "**Stopped early:** {error}\n");
    }
    let m = &report.measurements;
    let _ = writeln!(out, "## Recovery\n\n| measure | value | target |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| RTO (fault to first write) | {} | {} |",
        seconds(m.rto_write_seconds),
        report.targets.rto_label()
    );
    let _ = writeln!(
        out,
        "| RTO (fault to first read) | {} | - |",
        seconds(m.rto_read_seconds)
    );
    if let Some(rpo) = &m.rpo {
        let _ = writeln!(
            out,
            "| RPO (acknowledged writes missing) | {} of {} (span {:.2}s) | {} |",
            rpo.missing.len(),
            rpo.acked,
            rpo.missing_span_seconds,
            report.targets.rpo_label()
        );
    }
    let _ = writeln!(out, "\n## Timeline\n");
    let mut marks: Vec<(&String, &f64)> = m.marks.iter().collect();
    marks.sort_by(|a, b| a.1.total_cmp(b.1));
    for (name, t) in marks {
        let _ = writeln!(out, "- {t:>7.2}s {name}");
    }
    let _ = writeln!(
        out,
        "\n## Steps\n\n| # | step | kind | start | duration | result |\n|---|---|---|---|---|---|"
    );
    for s in &report.steps {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2}s | {:.2}s | {} |",
            s.number,
            s.name,
            s.kind,
            s.start,
            s.duration,
            if s.ok {
                "ok".to_owned()
            } else {
                format!("FAILED: {}", s.detail.replace('|', "\\|"))
            }
        );
    }
    let _ = writeln!(out, "\n## Assertions\n");
    for a in &report.assertions {
        let _ = writeln!(
            out,
            "- [{}] {}: {}",
            if a.passed { "x" } else { " " },
            a.name,
            a.detail
        );
    }
    if let Some(canary) = &report.canary {
        let _ = writeln!(
            out,
            "\n## Canary\n\n{} writes acknowledged, {} failed attempts, {} reads after write.",
            canary.acks.len(),
            canary.failures.len(),
            canary.reads.len()
        );
        for (t, addr) in &canary.targets {
            let _ = writeln!(out, "- {t:.2}s writing to {addr}");
        }
    }
    let _ = writeln!(out, "\n## Evidence");
    for evidence in &report.evidence {
        out.push_str(&evidence_section(evidence));
    }
    out
}

fn evidence_section(evidence: &Evidence) -> String {
    let mut out = format!("\n### {} ({:.2}s)\n\n", evidence.label, evidence.t);
    for c in &evidence.clusters {
        let health: Vec<String> = c.health.iter().map(|(n, code)| format!("{n} {code}")).collect();
        let mode = c.dr_status.get("mode").and_then(|m| m.as_str()).unwrap_or("-");
        let _ = writeln!(
            out,
            "- **{}**: health [{}]; voters [{}]; DR mode {mode}",
            c.name,
            health.join(", "),
            c.voters.join(", ")
        );
    }
    out
}
