//! `lab up --provider localstack`: an auto-unsealed ha3 cluster whose nodes find each
//! other through LocalStack's EC2, and a `lab down` that leaves nothing behind in it.
//!
//! Needs LocalStack at `LABNODE_LOCALSTACK_ENDPOINT` (default http://127.0.0.1:4566; start
//! it with `scripts/localstack.sh start`). When it is down the test fails;
//! `LABNODE_SKIP_LOCALSTACK=1` makes it print SKIP instead.

mod common;

use std::time::{Duration, Instant};

use common::localstack::Aws;
use serde_json::Value;

#[test]
fn ha3_on_localstack_auto_unseals_joins_by_tag_and_cleans_up() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let aws = Aws::new(&endpoint);
    let ports = testkit::ports::PortBlock::new(3);
    let lab = common::Lab::new();
    let base = ports.arg();
    lab.ok(&[
        "up",
        "--provider",
        "localstack",
        "--endpoint",
        &endpoint,
        "--topology",
        "ha3",
        "--base-port",
        &base,
    ]);

    let status = lab.status();
    assert_eq!(common::states(&status), ["leader", "follower", "follower"]);
    let nodes = status["clusters"][0]["nodes"].as_array().unwrap();
    let addrs: Vec<&str> = nodes.iter().map(|n| n["api_addr"].as_str().unwrap()).collect();
    let want: Vec<String> = (11..=13).map(|h| format!("http://127.0.1.{h}:{base}")).collect();
    assert_eq!(addrs, want);
    assert!(
        nodes.iter().all(|n| n["voter"] == true && n["sealed"] == false),
        "{status}"
    );

    let creds: Value = serde_json::from_str(&lab.ok(&["creds", "--json"])).unwrap();
    assert_eq!(creds["recovery_keys_b64"].as_array().unwrap().len(), 5, "{creds}");
    assert_eq!(creds["unseal_keys_b64"], serde_json::json!([]), "{creds}");

    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(lab.home().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["provider"], "localstack");
    let recorded = &state["aws"];
    let instances: Vec<String> = recorded["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(instances.len(), 3, "{recorded}");
    for id in &instances {
        assert_eq!(aws.instance_state(id), "running");
    }
    let key_id = recorded["keys"][0]["key_id"].as_str().unwrap().to_owned();
    assert_eq!(aws.key_state(&key_id), "Enabled");
    let vpc_id = recorded["vpc_id"].as_str().unwrap().to_owned();
    assert_eq!(aws.vpc_error(&vpc_id), None);

    // A crashed node restarts without keys: KMS unseals it, auto_join brings it back.
    lab.ok(&["fault", "kill", "node-b"]);
    lab.ok(&["fault", "start", "node-b"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = lab.status();
        let node_b = &status["clusters"][0]["nodes"][1];
        if node_b["state"] == "follower" && node_b["sealed"] == false && node_b["voter"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "node-b did not come back: {status}");
        std::thread::sleep(Duration::from_millis(500));
    }

    let down = lab.command(&["down"]).output().unwrap();
    assert!(down.status.success(), "{down:?}");
    let progress = String::from_utf8_lossy(&down.stderr);
    assert!(progress.contains("terminated 3 EC2 instance(s)"), "{progress}");
    assert!(lab.node_pids().is_empty());
    for id in &instances {
        assert_eq!(aws.instance_state(id), "terminated");
    }
    let gone = aws.vpc_error(&vpc_id).expect("VPC deleted");
    assert!(gone.contains("NotFound"), "{gone}");
    assert_eq!(aws.key_state(&key_id), "PendingDeletion");
    assert!(!lab.home().join("state.json").exists());
}
