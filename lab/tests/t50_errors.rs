//! Mistakes are reported clearly and leave nothing behind.

mod common;

use std::net::{Ipv4Addr, TcpListener};

#[test]
fn port_in_use_is_named_and_nothing_starts() {
    let ports = testkit::ports::PortBlock::new(3);
    let lab = common::Lab::new();
    let base = ports.base;
    let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, base + 11)).unwrap();
    let out = lab.run(&["up", "--topology", "ha3", "--base-port", &base.to_string()]);
    drop(squatter);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "127.0.0.1:{} (primary/node-b cluster port) is used by pid {}",
            base + 11,
            std::process::id()
        )),
        "{stderr}"
    );
    assert!(lab.node_pids().is_empty());
    assert!(!lab.home().join("state.json").exists());
}

#[test]
fn malformed_topology_file_names_the_field() {
    let lab = common::Lab::new();
    let file = lab.home().join("bad.toml");
    std::fs::write(
        &file,
        "[[clusters]]\nname = \"primary\"\nnodes = [\"node-a\"]\nsael = \"shamir\"\n",
    )
    .unwrap();
    let topology = file.to_str().unwrap();
    let out_dir = lab.home().join("out");
    let attempts = [
        vec!["up", "--topology", topology],
        vec![
            "render",
            "--topology",
            topology,
            "--out",
            out_dir.to_str().unwrap(),
        ],
    ];
    for args in attempts {
        let out = lab.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("bad.toml") && stderr.contains("unknown field `sael`"),
            "{stderr}"
        );
    }
    let out = lab.run(&["up", "--topology", "ha7"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown topology \"ha7\""));
    assert!(lab.node_pids().is_empty());
    assert!(!lab.home().join("state.json").exists());
}
