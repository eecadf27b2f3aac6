//! `report.html`: one self-contained file (no scripts, no external assets) with an inline
//! SVG timeline: step bars, canary acknowledgements per quarter second, and the marks.

use std::fmt::Write as _;

use super::{seconds, DrillReport};

const WIDTH: f64 = 900.0;
const LEFT: f64 = 40.0;
const BAR: f64 = 14.0;
const BUCKET: f64 = 0.25;

/// Renders one run.
pub fn render(report: &DrillReport) -> String {
    let title = format!(
        "Drill {}: {}",
        report.drill,
        if report.passed { "PASSED" } else { "FAILED" }
    );
    let mut body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n",
        escape(&title),
        escape(&report.description)
    );
    if let Some(error) = &report.error {
        let _ = writeln!(body, "<p class=\"fail\">Stopped early: {}</p>", escape(error));
    }
    let m = &report.measurements;
    let _ = writeln!(
        body,
        "<table><tr><th>measure</th><th>value</th><th>target</th></tr>\
         <tr><td>RTO (fault to first write)</td><td>{}</td><td>{}</td></tr>\
         <tr><td>RTO (fault to first read)</td><td>{}</td><td>-</td></tr>",
        seconds(m.rto_write_seconds),
        report.targets.rto_label(),
        seconds(m.rto_read_seconds)
    );
    if let Some(rpo) = &m.rpo {
        let _ = writeln!(
            body,
            "<tr><td>RPO (acknowledged writes missing)</td><td>{} of {} (span {:.2}s)</td><td>{}</td></tr>",
            rpo.missing.len(),
            rpo.acked,
            rpo.missing_span_seconds,
            report.targets.rpo_label()
        );
    }
    body.push_str("</table>\n<h2>Timeline</h2>\n");
    body.push_str(&timeline(report));
    body.push_str("<h2>Steps</h2>\n<table><tr><th>#</th><th>step</th><th>kind</th><th>start</th><th>duration</th><th>result</th></tr>\n");
    for s in &report.steps {
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}s</td><td>{:.2}s</td><td class=\"{}\">{}</td></tr>",
            s.number,
            escape(&s.name),
            s.kind,
            s.start,
            s.duration,
            if s.ok { "pass" } else { "fail" },
            if s.ok { "ok".to_owned() } else { escape(&s.detail) }
        );
    }
    body.push_str("</table>\n<h2>Assertions</h2>\n<ul>\n");
    for a in &report.assertions {
        let _ = writeln!(
            body,
            "<li class=\"{}\">{} {}: {}</li>",
            if a.passed { "pass" } else { "fail" },
            if a.passed { "pass" } else { "FAIL" },
            escape(&a.name),
            escape(&a.detail)
        );
    }
    body.push_str("</ul>\n<h2>Evidence</h2>\n");
    for e in &report.evidence {
        let _ = writeln!(body, "<h3>{} ({:.2}s)</h3>\n<table><tr><th>cluster</th><th>health</th><th>voters</th><th>DR status</th></tr>", escape(&e.label), e.t);
        for c in &e.clusters {
            let health: Vec<String> = c.health.iter().map(|(n, code)| format!("{n} {code}")).collect();
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
                escape(&c.name),
                escape(&health.join(", ")),
                escape(&c.voters.join(", ")),
                escape(&serde_json::to_string_pretty(&c.dr_status).unwrap_or_default())
            );
        }
        body.push_str("</table>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:sans-serif;max-width:960px;margin:2em auto}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}}\
         pre{{margin:0;font-size:11px}}.pass{{color:#060}}.fail{{color:#b00}}</style></head>\n<body>\n{body}</body></html>\n",
        escape(&title)
    )
}

/// The SVG: one bar per step, a canary rate strip, and a vertical line per mark.
fn timeline(report: &DrillReport) -> String {
    let total = report.total_seconds.max(1.0);
    let x = |t: f64| LEFT + (t / total) * (WIDTH - LEFT - 10.0);
    let steps_height = report.steps.len() as f64 * (BAR + 2.0);
    let strip_top = steps_height + 10.0;
    let strip_height = 40.0;
    let height = strip_top + strip_height + 40.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-size=\"10\">\n"
    );
    for (i, s) in report.steps.iter().enumerate() {
        let y = i as f64 * (BAR + 2.0);
        let width = (x(s.start + s.duration) - x(s.start)).max(1.0);
        let fill = if s.ok { "#8ab" } else { "#d66" };
        let _ = writeln!(
            svg,
            "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{BAR}\" fill=\"{fill}\"><title>{}. {} ({:.2}s)</title></rect>\
             <text x=\"2\" y=\"{:.1}\">{}</text>",
            x(s.start),
            s.number,
            escape(&s.name),
            s.duration,
            y + BAR - 3.0,
            s.number
        );
    }
    if let Some(canary) = &report.canary {
        let buckets = (total / BUCKET).ceil() as usize + 1;
        let mut counts = vec![0u32; buckets];
        for ack in &canary.acks {
            if let Some(c) = counts.get_mut((ack.t / BUCKET) as usize) {
                *c += 1;
            }
        }
        let max = f64::from(counts.iter().copied().max().unwrap_or(1).max(1));
        let _ = writeln!(
            svg,
            "<text x=\"2\" y=\"{:.1}\">acks</text>",
            strip_top + strip_height / 2.0
        );
        for (i, c) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let h = f64::from(*c) / max * strip_height;
            let t = i as f64 * BUCKET;
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#6a6\"/>",
                x(t),
                strip_top + strip_height - h,
                (x(t + BUCKET) - x(t)).max(1.0)
            );
        }
    }
    let mut marks: Vec<(&String, &f64)> = report.measurements.marks.iter().collect();
    marks.sort_by(|a, b| a.1.total_cmp(b.1));
    for (i, (name, t)) in marks.iter().enumerate() {
        let color = if name.as_str() == "fault" { "#c00" } else { "#333" };
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"0\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"{color}\" stroke-dasharray=\"3,2\"/>\
             <text x=\"{0:.1}\" y=\"{2:.1}\" fill=\"{color}\">{3} {4:.2}s</text>",
            x(**t),
            strip_top + strip_height,
            strip_top + strip_height + 12.0 + (i % 2) as f64 * 12.0,
            escape(name),
            t
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
