//! `lab practice` through the real binaries: every exercise fails `check` as set up (and
//! after a wrong attempt), then passes after its scripted solution.

mod common;

use std::time::{Duration, Instant};

/// How long a solved lab may take to settle (autopilot promoting a joiner, a promotion).
const SETTLE: Duration = Duration::from_secs(45);

/// `lab practice check`: (passed, stdout).
fn check(lab: &common::Lab) -> (bool, String) {
    let out = lab.run(&["practice", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "check errored: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), stdout)
}

/// Runs `script` in `lab shell` (VAULT_ADDR/VAULT_TOKEN of the first cluster, `vault`) and
/// asserts that every command of it succeeded, so a wrong attempt really happened.
fn shell(lab: &common::Lab, script: &str) {
    let mut command = lab.command(&["shell"]);
    command.env("SHELL", "/bin/sh");
    let out = testkit::cli::run_with_stdin(command, &format!("set -e\n{script}"));
    testkit::cli::succeeded(&format!("lab shell with {script:?}"), &out);
}

/// `lab practice start`; returns what it printed.
fn start(lab: &common::Lab, name: &str, base: &str) -> String {
    lab.ok(&["practice", "start", name, "--base-port", base])
}

/// Starts `name`, expects failing checks as set up and after `wrong` (then `reset` if
/// asked), runs the solution and expects every check to pass within [`SETTLE`].
fn exercise(name: &str, nodes: u16, wrong: Option<fn(&common::Lab)>, reset: bool) {
    let ports = testkit::ports::PortBlock::new(nodes);
    let lab = common::Lab::new();
    let started = Instant::now();
    let task = start(&lab, name, &ports.arg());
    assert!(task.contains("The timer is running"), "{task}");
    assert!(!task.contains("{{"), "unresolved placeholder in the task: {task}");
    let (passed, out) = check(&lab);
    assert!(!passed && out.contains("FAIL"), "{name} passes as set up:\n{out}");
    if let Some(attempt) = wrong {
        attempt(&lab);
        let (passed, out) = check(&lab);
        assert!(
            !passed && out.contains("FAIL"),
            "{name} passes after a wrong attempt:\n{out}"
        );
    }
    if reset {
        lab.ok(&["practice", "reset"]);
    }
    assert!(lab.ok(&["practice", "hint"]).starts_with("hint 1/"));
    let solution = lab.ok(&["practice", "solution"]);
    assert!(!solution.contains("{{"), "unresolved placeholder: {solution}");
    lab.ok(&["practice", "solution", "--run"]);
    let deadline = Instant::now() + SETTLE;
    loop {
        let (passed, out) = check(&lab);
        if passed {
            assert!(out.contains("PASS") && out.contains("elapsed"), "{out}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name} still fails after its solution:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("{name}: {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn retry_join_unseal() {
    exercise("retry-join-unseal", 3, None, false);
}

#[test]
fn manual_join() {
    exercise("manual-join", 3, None, false);
}

#[test]
fn find_leader() {
    exercise(
        "find-leader",
        3,
        Some(|lab| shell(lab, "vault write secret/answers leader=node-x\n")),
        false,
    );
}

#[test]
fn remove_failed_peer() {
    // Bringing node-c back keeps it in the configuration; reset starts over from the setup.
    exercise(
        "remove-failed-peer",
        3,
        Some(|lab| {
            lab.ok(&["fault", "start", "node-c", "--unseal"]);
        }),
        true,
    );
}

#[test]
fn snapshot_restore() {
    exercise(
        "snapshot-restore",
        1,
        Some(|lab| {
            shell(
                lab,
                "vault operator raft snapshot save $LAB_HOME/practice/incident.snap\n\
                 vault operator raft snapshot restore $LAB_HOME/practice/incident.snap\n",
            )
        }),
        false,
    );
}

#[test]
fn awskms_auto_unseal() {
    if testkit::localstack::endpoint().is_none() {
        return;
    }
    exercise("awskms-auto-unseal", 1, None, false);
}

#[test]
fn dr_enable() {
    exercise("dr-enable", 2, None, false);
}

#[test]
fn dr_status() {
    exercise(
        "dr-status",
        2,
        Some(|lab| {
            shell(
                lab,
                "vault write secret/answers cluster_id=x last_wal=999999999 secondary=dallas-dr\n",
            )
        }),
        false,
    );
}

#[test]
fn dr_operation_token() {
    exercise(
        "dr-operation-token",
        2,
        Some(|lab| shell(lab, "echo hvs.not-a-dr-token > $LAB_HOME/practice/dr-token\n")),
        false,
    );
}

#[test]
fn dr_promote() {
    exercise("dr-promote", 2, None, false);
}

#[test]
fn dr_batch_token() {
    exercise(
        "dr-batch-token",
        1,
        Some(|lab| {
            shell(
                lab,
                "vault write auth/token/roles/failover-handler allowed_policies=default token_type=service\n",
            )
        }),
        false,
    );
}

#[test]
fn list_and_commands_without_a_session() {
    let lab = common::Lab::new();
    let list = lab.ok(&["practice", "list"]);
    assert!(
        list.lines()
            .filter(|l| l.starts_with("dr-") || l.contains("(ha3)"))
            .count()
            >= 8,
        "{list}"
    );
    let out = lab.run(&["practice", "check"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no exercise started"));
    let out = lab.run(&["practice", "start", "no-such-exercise"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown exercise"));
}
