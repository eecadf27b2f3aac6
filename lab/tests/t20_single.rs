//! The whole life of a single-node lab through the real binaries.

mod common;

use std::io::Write;
use std::process::Stdio;

#[test]
fn up_status_env_creds_shell_down() {
    let ports = testkit::ports::PortBlock::new(1);
    let lab = common::Lab::new();
    let base = ports.arg();
    let up: serde_json::Value =
        serde_json::from_str(&lab.ok(&["up", "--topology", "single", "--base-port", &base, "--json"]))
            .unwrap();
    assert_eq!(common::states(&up), ["leader"]);

    let status = lab.status();
    let addr = format!("http://127.0.0.1:{base}");
    assert_eq!(
        status,
        serde_json::json!({"clusters":[{"name":"primary","nodes":[
            {"name":"node-a","api_addr":addr,"state":"leader","voter":true,"sealed":false}]}]})
    );
    let table = lab.ok(&["status"]);
    assert!(table.starts_with("CLUSTER  NODE    ADDRESS"), "{table}");

    let creds: serde_json::Value = serde_json::from_str(&lab.ok(&["creds", "primary", "--json"])).unwrap();
    let keys: Vec<&str> = creds.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "recovery_keys_b64",
            "recovery_keys_hex",
            "recovery_keys_shares",
            "recovery_keys_threshold",
            "root_token",
            "unseal_keys_b64",
            "unseal_keys_hex",
            "unseal_shares",
            "unseal_threshold"
        ]
    );
    assert_eq!(creds["unseal_keys_b64"].as_array().unwrap().len(), 5);
    assert_eq!(creds["unseal_threshold"], 3);
    let token = creds["root_token"].as_str().unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(lab.home().join("primary/creds.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    for target in [None, Some("primary"), Some("node-a")] {
        let args: Vec<&str> = ["env"].into_iter().chain(target).collect();
        assert_eq!(
            lab.ok(&args).trim(),
            format!("export VAULT_ADDR={addr} VAULT_TOKEN={token}")
        );
    }

    let mut shell = lab
        .command(&["shell", "node-a"])
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo addr=$VAULT_ADDR; vault operator raft list-peers; exit 7\n")
        .unwrap();
    let out = shell.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stdout}");
    assert!(stdout.contains(&format!("addr={addr}")), "{stdout}");
    assert!(stdout.contains("node-a") && stdout.contains("leader"), "{stdout}");

    assert!(lab.ok(&["logs", "node-a"]).contains("unsealed"));

    let again = lab.run(&["up", "--topology", "single", "--base-port", &base]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    assert_eq!(lab.node_pids().len(), 1);
    lab.ok(&["down"]);
    assert!(lab.node_pids().is_empty());
    assert!(!lab.home().join("state.json").exists());
    assert!(!lab.home().join("primary/node-a/data").exists());
    assert!(
        lab.home().join("primary/node-a/labnode.log").exists(),
        "plain down keeps logs"
    );
    lab.ok(&["down"]);
    let status = lab.run(&["status"]);
    assert!(!status.status.success());
    assert!(String::from_utf8_lossy(&status.stderr).contains("no lab"));
}
