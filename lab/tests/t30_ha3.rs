//! A three-node cluster joined by retry_join, and a leader failure.

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
    lab.ok(&["down"]);
    assert!(lab.node_pids().is_empty());
}
