//! Linearizability under leader faults, the short version of scripts/linearizability.sh: an
//! ha3 lab whose leader is killed and restarted, then paused and resumed, under lincheck's
//! clients; the recorded history must be linearizable and no acknowledged write lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The lincheck binary: LINCHECK_BIN, else next to `lab` in the target directory.
fn lincheck() -> PathBuf {
    let path = std::env::var_os("LINCHECK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_BIN_EXE_lab")).with_file_name("lincheck"));
    assert!(
        path.is_file(),
        "lincheck not found at {}: run `cargo build -p lincheck` first (same CARGO_TARGET_DIR) or set LINCHECK_BIN",
        path.display()
    );
    path
}

/// The number in `line` after `label`, e.g. `acknowledged writes 87)`.
fn figure(stdout: &str, label: &str) -> u64 {
    let rest = stdout
        .split_once(label)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{stdout}"))
        .1;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in:\n{stdout}"))
}

#[test]
fn leader_kills_and_pauses_keep_kv_linearizable_without_losing_acknowledged_writes() {
    let ports = testkit::ports::PortBlock::new(3);
    let lab = common::Lab::new();
    lab.ok(&["up", "--topology", "ha3", "--base-port", &ports.arg()]);

    // Outside the lab home, which is removed: the history to look at when this fails.
    let history = std::env::temp_dir().join(format!("t80-history-{}.json", std::process::id()));
    let out = Command::new(lincheck())
        .args(["run", "--lab", env!("CARGO_BIN_EXE_lab"), "--lab-home"])
        .arg(lab.home())
        .arg("--history")
        .arg(&history)
        .args(["--kill-cycles", "2", "--pause-cycles", "3", "--clients", "6"])
        .args(["--time-limit-s", "300"])
        .env("LABNODE_BIN", common::labnode())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "lincheck run failed ({}; history in {}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status,
        history.display()
    );
    assert!(stdout.contains("verdict: linearizable"), "{stdout}");
    assert!(
        stdout.contains("faults: 2 leader kill/restart, 3 leader pause/resume\n"),
        "{stdout}"
    );
    assert_eq!(figure(&stdout, "lost acknowledged writes:"), 0, "{stdout}");
    // A history without acknowledged writes or reads could not have failed.
    assert!(figure(&stdout, "acknowledged writes ") > 10, "{stdout}");
    assert!(figure(&stdout, "(reads ") > 10, "{stdout}");
    lab.ok(&["down"]);
    assert!(lab.node_pids().is_empty());
    std::fs::remove_file(&history).unwrap();
}
