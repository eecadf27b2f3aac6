//! HA clusters on Integrated Storage, formed the ways the course shows: `retry_join` stanzas
//! (3 and 5 nodes) and `operator raft join` by hand; `list-peers` (table and JSON, from every
//! node, labnode CLI and the real `bao`), autopilot state, `remove-peer`, duplicate node IDs,
//! and how a standby serves clients (forwarding, 307, health, leader).

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use testkit::cli::{ok, show};
use testkit::kv::{get_kv, http, put_kv};
use testkit::{Cluster, Node, RetryJoin};

const FIVE: [&str; 5] = ["node-a", "node-b", "node-c", "node-d", "node-e"];

/// The expected list-peers rows for `members` with `leader` leading, all voters.
fn rows<'a>(
    c: &Cluster,
    members: &[&'a str],
    leader: &str,
) -> Vec<(&'a str, String, &'static str, &'static str)> {
    members
        .iter()
        .map(|m| {
            (
                *m,
                c.node(m).cluster_hostport(),
                if *m == leader { "leader" } else { "follower" },
                "true",
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_by_retry_join_list_peers_autopilot_and_remove_peer() {
    if testkit::locate::bao().is_none() {
        return;
    }
    let mut c = common::cluster(&FIVE).form().await;
    let leader = c.wait_leader(&FIVE, Duration::from_secs(20)).await;
    let root = c.root.clone();

    // The course's table, identical from every node (standbys forward to the active node).
    let expected = peers_table(&rows(&c, &FIVE, &leader));
    for node in &c.nodes {
        let out = node.cli(Some(&root), &["operator", "raft", "list-peers"]);
        assert_eq!(ok(&out), expected, "list-peers on {}", node.name);
    }
    let out = c
        .node("node-c")
        .bao(Some(&root), &["operator", "raft", "list-peers"]);
    assert_eq!(ok(&out), expected, "bao list-peers: {}", show(&out));

    // JSON form: the raw configuration servers.
    let out = c
        .node("node-b")
        .cli(Some(&root), &["operator", "raft", "list-peers", "-format=json"]);
    let v: Value = serde_json::from_str(&ok(&out)).expect("list-peers json");
    let servers: Vec<Value> = FIVE
        .iter()
        .map(|n| {
            json!({
                "node_id": n,
                "address": c.node(n).cluster_hostport(),
                "leader": *n == leader,
                "protocol_version": "3",
                "voter": true,
            })
        })
        .collect();
    assert_eq!(v["data"]["config"]["servers"], json!(servers), "{v}");
    assert!(v["data"]["config"]["index"].as_u64().unwrap() > 0, "{v}");

    // Autopilot: five healthy voters tolerate two failures.
    let out = c.node("node-d").cli(
        Some(&root),
        &["operator", "raft", "autopilot", "state", "-format=json"],
    );
    let a: Value = serde_json::from_str(&ok(&out)).expect("autopilot json");
    assert_eq!(a["healthy"], json!(true), "{a}");
    assert_eq!(a["failure_tolerance"], json!(2), "{a}");
    assert_eq!(a["leader"], json!(leader), "{a}");
    let mut voters: Vec<String> = serde_json::from_value(a["voters"].clone()).unwrap();
    voters.sort();
    assert_eq!(voters, FIVE, "{a}");
    for n in FIVE {
        let s = &a["servers"][n];
        assert_eq!(s["address"], json!(c.node(n).cluster_hostport()), "{a}");
        assert_eq!(s["node_type"], json!("voter"), "{a}");
        let status = if n == leader { "leader" } else { "voter" };
        assert_eq!(s["status"], json!(status), "{a}");
    }
    let out = c
        .node("node-a")
        .cli(Some(&root), &["operator", "raft", "autopilot", "state"]);
    let text = ok(&out);
    assert!(
        text.starts_with(&format!(
            "Healthy:                         true\nFailure Tolerance:               2\nLeader:                          {leader}\nVoters:\n"
        )),
        "{text}"
    );

    // remove-peer node-e, exactly as the course prints it.
    let out = c
        .node("node-b")
        .cli(Some(&root), &["operator", "raft", "remove-peer", "node-e"]);
    assert_eq!(ok(&out), "Peer removed successfully!\n");
    let four = &FIVE[..4];
    c.wait_members(four, four).await;
    let leader = c.wait_leader(four, Duration::from_secs(20)).await;
    let expected = peers_table(&rows(&c, four, &leader));
    for n in four {
        let out = c.node(n).cli(Some(&root), &["operator", "raft", "list-peers"]);
        assert_eq!(ok(&out), expected, "list-peers on {n} after remove-peer");
    }

    // The cluster keeps serving (node-e still runs, cut out), through every member.
    c.mount_kv().await;
    let client = http(Duration::from_secs(10));
    for n in four {
        let st = put_kv(&client, &c.node(n).addr(), &root, &format!("after-remove/{n}"), n).await;
        assert_eq!(st, Ok(204), "write via {n}");
    }
    for n in four {
        for m in four {
            let got = get_kv(c.node(n).srv(), &root, &format!("after-remove/{m}")).await;
            assert_eq!(got.as_deref(), Some(*m), "read after-remove/{m} via {n}");
        }
    }
    c.node_mut("node-e").kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_operator_raft_join_and_duplicate_node_id_is_refused() {
    if testkit::locate::bao().is_none() {
        return;
    }
    let nodes = common::cluster(&["node1", "node2", "node3"])
        .join(RetryJoin::Manual)
        .start()
        .await;
    let Ok([n1, n2, n3]) = <[Node; 3]>::try_from(nodes) else {
        unreachable!("three names make three nodes")
    };
    let (keys, root) = n1.srv().init(3, 2).await;
    n1.srv().unseal(&keys).await;

    // `vault operator raft join http://leader` on the new node, then unseal it with the
    // leader's keys (labnode CLI for node2, the real bao CLI for node3).
    let out = n2.cli(None, &["operator", "raft", "join", &n1.addr()]);
    assert_eq!(ok(&out), "Key       Value\n---       -----\nJoined    true\n");
    let out = n3.bao(None, &["operator", "raft", "join", &n1.addr()]);
    assert_eq!(
        ok(&out),
        "Key       Value\n---       -----\nJoined    true\n",
        "{}",
        show(&out)
    );
    for k in &keys[..2] {
        ok(&n2.cli(None, &["operator", "unseal", k]));
        ok(&n3.bao(None, &["operator", "unseal", k]));
    }
    let c = Cluster {
        nodes: vec![n1, n2, n3],
        root: root.clone(),
        keys: keys.clone(),
        threshold: 2,
    };
    let three = ["node1", "node2", "node3"];
    c.wait_members(&three, &three).await;
    let leader = c.wait_leader(&three, Duration::from_secs(20)).await;
    let expected = peers_table(&rows(&c, &three, &leader));
    for n in three {
        let out = c.node(n).cli(Some(&root), &["operator", "raft", "list-peers"]);
        assert_eq!(ok(&out), expected, "list-peers on {n}");
    }

    // A fresh node reusing node_id "node2" is refused by the leader at the challenge.
    let mut dup = Node::new(common::labnode(), "node2");
    dup.start().await;
    let out = dup.cli(None, &["operator", "raft", "join", &c.node("node1").addr()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"node_id \"node2\" is already a member of this raft cluster; node IDs must be unique (remove the old peer first)"#),
        "{}",
        show(&out)
    );
    let r = dup.srv().request("GET", "sys/seal-status", None, None).await;
    assert_eq!(r.body["initialized"], json!(false), "{r:?}");
    c.wait_members(&three, &three).await;
}

/// A client that does not follow redirects, to see the 307s themselves.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_forwards_redirects_and_reports_health_and_leader() {
    if testkit::locate::bao().is_none() {
        return;
    }
    let three = ["s1", "s2", "s3"];
    let c = common::cluster(&three).form().await;
    let leader_name = c.wait_leader(&three, Duration::from_secs(20)).await;
    let leader = c.node(&leader_name);
    let standby = c.nodes.iter().find(|n| n.name != leader_name).unwrap();
    let root = c.root.clone();
    c.mount_kv().await;

    // A write and a read sent to a standby are forwarded to the active node.
    let client = http(Duration::from_secs(10));
    assert_eq!(
        put_kv(&client, &standby.addr(), &root, "fwd", "via-standby").await,
        Ok(204)
    );
    assert_eq!(
        get_kv(leader.srv(), &root, "fwd").await.as_deref(),
        Some("via-standby")
    );
    assert_eq!(
        get_kv(standby.srv(), &root, "fwd").await.as_deref(),
        Some("via-standby")
    );
    let out = standby.cli(Some(&root), &["kv", "get", "-field=value", "kv/fwd"]);
    assert_eq!(ok(&out), "via-standby");

    // X-Vault-No-Request-Forwarding: 307 to the active node's api_addr, nothing written.
    let raw = no_redirects();
    for (method, path) in [
        ("GET", "kv/fwd"),
        ("PUT", "kv/not-forwarded"),
        ("GET", "sys/mounts?x=1"),
    ] {
        let resp = raw
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v1/{path}", standby.addr()),
            )
            .header("X-Vault-Token", &root)
            .header("X-Vault-No-Request-Forwarding", "true")
            .json(&json!({"value": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 307, "{method} {path}");
        assert_eq!(
            resp.headers()["location"].to_str().unwrap(),
            format!("{}/v1/{path}", leader.addr()),
            "{method} {path}"
        );
    }
    assert_eq!(get_kv(leader.srv(), &root, "not-forwarded").await, None);

    // Snapshots are always redirected by a standby, even without the header.
    let resp = raw
        .get(format!("{}/v1/sys/storage/raft/snapshot", standby.addr()))
        .header("X-Vault-Token", &root)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 307);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        format!("{}/v1/sys/storage/raft/snapshot", leader.addr())
    );

    // sys/health: 429 on a standby, 200 with standbyok, 200 on the active node.
    let h = standby.srv().request("GET", "sys/health", None, None).await;
    assert_eq!(h.status, 429, "{h:?}");
    assert_eq!(
        (&h.body["initialized"], &h.body["sealed"], &h.body["standby"]),
        (&json!(true), &json!(false), &json!(true)),
        "{h:?}"
    );
    let h = standby
        .srv()
        .request("GET", "sys/health?standbyok=true", None, None)
        .await;
    assert_eq!((h.status, &h.body["standby"]), (200, &json!(true)), "{h:?}");
    let head = raw
        .head(format!("{}/v1/sys/health", standby.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 429);
    let h = leader.srv().request("GET", "sys/health", None, None).await;
    assert_eq!((h.status, &h.body["standby"]), (200, &json!(false)), "{h:?}");
    assert_eq!(
        h.body["cluster_id"],
        standby.srv().request("GET", "sys/health", None, None).await.body["cluster_id"]
    );

    // sys/leader on a standby names the active node and carries raft indexes.
    let l = standby.srv().request("GET", "sys/leader", None, None).await;
    assert_eq!(l.status, 200, "{l:?}");
    assert_eq!(l.body["ha_enabled"], json!(true), "{l:?}");
    assert_eq!(l.body["is_self"], json!(false), "{l:?}");
    assert_eq!(l.body["leader_address"], json!(leader.addr()), "{l:?}");
    assert_eq!(
        l.body["leader_cluster_address"],
        json!(format!("https://{}", leader.cluster_hostport())),
        "{l:?}"
    );
    let applied = l.body["raft_applied_index"].as_u64().unwrap();
    let committed = l.body["raft_committed_index"].as_u64().unwrap();
    assert!(applied > 0 && committed >= applied, "{l:?}");
    let l = leader.srv().request("GET", "sys/leader", None, None).await;
    assert_eq!(l.body["is_self"], json!(true), "{l:?}");
    assert_eq!(l.body["leader_address"], json!(leader.addr()), "{l:?}");

    // `vault status` on a standby: HA mode standby, active node's address.
    let out = standby.cli(None, &["status"]);
    let text = ok(&out);
    assert!(
        text.contains("HA Mode                 standby\n")
            && text.contains(&format!("Active Node Address     {}\n", leader.addr())),
        "{text}"
    );

    // The real bao CLI reads through the standby too.
    let out = standby.bao(Some(&root), &["kv", "get", "-field=value", "kv/fwd"]);
    assert_eq!(ok(&out), "via-standby", "{}", show(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_node_stops_serving() {
    let three = ["r1", "r2", "r3"];
    let c = common::cluster(&three).form().await;
    c.mount_kv().await;
    let root = c.root.clone();
    let out = c
        .node("r1")
        .cli(Some(&root), &["operator", "raft", "remove-peer", "r3"]);
    assert_eq!(ok(&out), "Peer removed successfully!\n");
    c.wait_members(&three[..2], &three[..2]).await;
    let removed = c.node("r3").srv();
    let h = removed.request("GET", "sys/health", None, None).await;
    assert_eq!(h.status, 530, "{h:?}");
    let client = http(Duration::from_secs(10));
    let st = put_kv(&client, &removed.addr, &root, "via-removed", "x").await;
    assert_ne!(st, Ok(204), "a removed node accepted a write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_are_not_refused() {
    let names = ["c1", "c2", "c3", "c4", "c5"];
    let nodes = common::cluster(&names).join(RetryJoin::First).start().await;
    let (keys, _root) = nodes[0].srv().init(3, 2).await;
    nodes[0].srv().unseal(&keys).await;
    for n in &nodes[1..] {
        n.srv().wait_initialized().await;
    }
    // Joiners unsealed one after another: the next join answer races autopilot promoting the
    // previous joiner to voter. (Racy: seen under load in the 5-node test; may pass alone.)
    for (i, n) in nodes[1..].iter().enumerate() {
        // Land inside autopilot's promotion window (1 s stabilisation, 0.5 s ticks).
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(900 + 200 * i as u64)).await;
        }
        let mut last = None;
        for k in &keys[..2] {
            last = Some(
                n.srv()
                    .request("PUT", "sys/unseal", None, Some(json!({ "key": k })))
                    .await,
            );
        }
        let r = last.unwrap();
        assert_eq!(
            (r.status, &r.body["sealed"]),
            (200, &json!(false)),
            "{}: {r:?}",
            n.name
        );
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while n
            .srv()
            .request("GET", "sys/health?standbyok=true", None, None)
            .await
            .status
            != 200
        {
            assert!(std::time::Instant::now() < until);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `Node/Address/State/Voter` table `operator raft list-peers` prints (tabwriter
/// layout: each column as wide as its longest cell plus four spaces, last column bare).
fn peers_table(rows: &[(&str, String, &str, &str)]) -> String {
    let mut all: Vec<[String; 4]> = vec![
        ["Node", "Address", "State", "Voter"].map(String::from),
        ["----", "-------", "-----", "-----"].map(String::from),
    ];
    for (n, a, s, v) in rows {
        all.push([n.to_string(), a.clone(), s.to_string(), v.to_string()]);
    }
    let widths: Vec<usize> = (0..3)
        .map(|c| all.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &all {
        for (c, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<width$}", r[c], width = w + 4));
        }
        out.push_str(&r[3]);
        out.push('\n');
    }
    out
}
