//! A three-node cluster joined by retry_join, a leader failure, and a removed peer.

mod common;

#[test]
fn ha3_forms_one_cluster_of_voters_and_survives_leader_kill() {
    let ports = testkit::ports::PortBlock::new(3);
    let lab = common::Lab::new();
    let base = ports.arg();
    lab.ok(&["up", "--topology", "ha3", "--base-port", &base]);
    let status = lab.status();
    let nodes = status["clusters"][0]["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["node-a", "node-b", "node-c"]);
    assert_eq!(common::states(&status), ["leader", "follower", "follower"]);
    assert!(
        nodes.iter().all(|n| n["voter"] == true && n["sealed"] == false),
        "{status}"
    );

    lab.ok(&["fault", "kill", "node-a"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let states = common::states(&lab.status());
        if states[0] == "down" && states[1..].contains(&"leader".to_owned()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no new leader: {states:?}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    lab.ok(&["fault", "start", "node-a", "--unseal"]);
    let states = common::states(&lab.status());
    assert!(
        states.iter().filter(|s| *s == "leader").count() == 1,
        "{states:?}"
    );
    assert!(!states.contains(&"down".to_owned()), "{states:?}");

    // remove-peer a follower: status shows it removed, not sealed, and no longer a voter.
    let status = lab.status();
    let nodes = status["clusters"][0]["nodes"].as_array().unwrap().clone();
    let leader = nodes.iter().find(|n| n["state"] == "leader").unwrap();
    let removed = nodes.iter().rposition(|n| n["state"] == "follower").unwrap();
    let removed_name = nodes[removed]["name"].as_str().unwrap();
    let creds: serde_json::Value = serde_json::from_str(&lab.ok(&["creds", "primary", "--json"])).unwrap();
    let mut remove = testkit::cli::vault(
        &common::labnode(),
        leader["api_addr"].as_str().unwrap(),
        lab.home(),
        creds["root_token"].as_str(),
    );
    remove.args(["operator", "raft", "remove-peer", removed_name]);
    testkit::cli::succeeded("labnode operator raft remove-peer", &testkit::cli::run(remove));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = lab.status();
        let node = &status["clusters"][0]["nodes"][removed];
        if node["state"] == "removed" {
            assert_eq!(node["voter"], false, "{status}");
            assert_eq!(node["sealed"], false, "{status}");
            let voters = status["clusters"][0]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["voter"] == true)
                .count();
            assert_eq!(voters, 2, "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never shown removed: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let table = lab.ok(&["status"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains(removed_name) && l.contains("removed")),
        "{table}"
    );
    lab.ok(&["down"]);
    assert!(lab.node_pids().is_empty());
}
