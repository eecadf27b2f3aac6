//! `lab down` cleans up whatever state the lab is in.

mod common;

use std::time::{Duration, Instant};

#[test]
fn down_after_a_node_was_killed_behind_labs_back() {
    let ports = testkit::ports::PortBlock::new(1);
    let lab = common::Lab::new();
    let base = ports.arg();
    lab.ok(&["up", "--topology", "single", "--base-port", &base]);
    let pids = lab.node_pids();
    assert_eq!(pids.len(), 1);
    // SAFETY: plain kill(2) of the node we just started.
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.node_pids().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(common::states(&lab.status()), ["down"]);
    lab.ok(&["down"]);
    assert!(!lab.home().join("state.json").exists());
}

#[test]
fn down_after_lab_was_killed_mid_up() {
    let ports = testkit::ports::PortBlock::new(3);
    let lab = common::Lab::new();
    let base = ports.arg();
    let mut up = lab
        .command(&["up", "--topology", "ha3", "--base-port", &base])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while lab.node_pids().len() < 2 {
        assert!(Instant::now() < deadline, "lab up never started two nodes");
        std::thread::sleep(Duration::from_millis(20));
    }
    up.kill().unwrap();
    up.wait().unwrap();
    assert!(!lab.node_pids().is_empty(), "nodes outlive a crashed lab");
    let status = lab.ok(&["status"]);
    assert!(status.contains("node-a"), "{status}");
    lab.ok(&["down"]);
    assert!(lab.node_pids().is_empty(), "down left nodes running");
    assert!(!lab.home().join("state.json").exists());
}

#[test]
fn down_without_state_still_finds_nodes_started_for_this_home() {
    let ports = testkit::ports::PortBlock::new(1);
    let lab = common::Lab::new();
    let base = ports.arg();
    lab.ok(&["up", "--topology", "single", "--base-port", &base]);
    std::fs::remove_file(lab.home().join("state.json")).unwrap();
    assert_eq!(lab.node_pids().len(), 1);
    let out = lab.ok(&["down"]);
    assert!(lab.node_pids().is_empty(), "{out}");
}
