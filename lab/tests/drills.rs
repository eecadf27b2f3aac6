//! Every shipped drill runs against real binaries and passes; reports are written and
//! parse; a malformed runbook is rejected naming the step and the field.

mod common;

use serde_json::Value;

/// Runs `lab drill NAME --repeat 1 --report DIR` on its own ports and home; returns the
/// parsed journal.
fn drill(name: &str, nodes: u16) -> (Value, tempfile::TempDir) {
    let ports = testkit::ports::PortBlock::new(nodes);
    let lab = common::Lab::new();
    let report = tempfile::Builder::new()
        .prefix("lab-drill-report-")
        .tempdir()
        .unwrap();
    let dir = report.path().display().to_string();
    let out = lab.run(&[
        "drill",
        name,
        "--repeat",
        "1",
        "--base-port",
        &ports.arg(),
        "--report",
        &dir,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lab drill {name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PASSED"), "{stdout}");
    assert!(lab.node_pids().is_empty(), "the drill left nodes running");
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(report.path().join("journal.json")).unwrap()).unwrap();
    assert_eq!(journal["passed"], true);
    assert!(journal["events"].as_array().unwrap().len() > journal["steps"].as_array().unwrap().len());
    let html = std::fs::read_to_string(report.path().join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("</svg>"),
        "no SVG timeline"
    );
    let markdown = std::fs::read_to_string(report.path().join("report.md")).unwrap();
    assert!(
        markdown.starts_with(&format!("# Drill `{name}`: PASSED")),
        "{markdown}"
    );
    (journal, report)
}

fn missing(journal: &Value) -> u64 {
    journal["measurements"]["rpo"]["missing"]
        .as_array()
        .unwrap()
        .len() as u64
}

#[test]
fn leader_loss_keeps_every_acknowledged_write() {
    let (journal, _report) = drill("leader-loss", 3);
    assert_eq!(missing(&journal), 0, "raft lost acknowledged writes");
    assert!(journal["measurements"]["rto_write_seconds"].as_f64().unwrap() > 0.0);
    let marks = journal["measurements"]["marks"].as_object().unwrap();
    for mark in ["fault", "detection", "election", "first_write", "first_read"] {
        assert!(marks.contains_key(mark), "no {mark} mark: {marks:?}");
    }
    let evidence = journal["evidence"].as_array().unwrap();
    assert_eq!(evidence[0]["label"], "before");
    assert_eq!(evidence[1]["label"], "after");
}

#[test]
fn partitioned_leader_hands_over_and_rejoins() {
    let (journal, _report) = drill("partition-leader", 3);
    assert_eq!(missing(&journal), 0, "a partition lost acknowledged writes");
    let marks = journal["measurements"]["marks"].as_object().unwrap();
    for mark in ["fault", "election", "first_write"] {
        assert!(marks.contains_key(mark), "no {mark} mark: {marks:?}");
    }
}

#[test]
fn two_of_five_keeps_writing() {
    let (journal, _report) = drill("two-of-five", 5);
    assert_eq!(missing(&journal), 0, "raft lost acknowledged writes");
}

#[test]
fn dr_failover_with_otp_token() {
    let (journal, _report) = drill("dr-failover", 6);
    assert!(journal["measurements"]["marks"]["promotion"].is_f64());
}

#[test]
fn dr_failover_with_batch_token() {
    drill("dr-failover-batch", 6);
}

#[test]
fn failback_with_update_primary() {
    drill("failback", 6);
}

#[test]
fn snapshot_restore_undoes_a_bad_write() {
    drill("snapshot-restore", 3);
}

#[test]
fn malformed_runbook_names_step_and_field() {
    let lab = common::Lab::new();
    let file = lab.home().join("bad.toml");
    std::fs::write(
        &file,
        "topology = \"single\"\n[[step]]\nname = \"mount\"\nvault = \"secrets enable kv\"\non = \"primary\"\n\
         [[step]]\nname = \"kill it\"\nfault = \"kill\"\ntraget = \"primary\"\n",
    )
    .unwrap();
    let out = lab.run(&["drill", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("step 2 (kill it)") && stderr.contains("traget"),
        "{stderr}"
    );
    assert!(!lab.home().join("state.json").exists(), "nothing may start");
}
