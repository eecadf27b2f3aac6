//! `operator raft snapshot save|restore` on a 3-node cluster with the labnode CLI and the real
//! `bao` CLI: later writes disappear on every node (and after a failover), and a snapshot from
//! another cluster is refused unless `-force` is given.

mod common;

use std::io::Read;
use std::time::Duration;

use serde_json::json;
use testkit::cli::{ok, show};
use testkit::cluster::unseal_member;
use testkit::kv::{get_kv, http, put_kv};
use testkit::Node;

/// The member names of a snapshot archive, and its meta.json.
fn archive_entries(path: &std::path::Path) -> (Vec<String>, serde_json::Value) {
    let bytes = std::fs::read(path).expect("read snapshot");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut names = Vec::new();
    let mut meta = serde_json::Value::Null;
    for entry in tar.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let name = entry.path().unwrap().to_string_lossy().to_string();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        if name == "meta.json" {
            meta = serde_json::from_slice(&body).expect("meta.json");
        }
        if name == "SHA256SUMS.sealed" {
            assert!(!body.is_empty(), "empty SHA256SUMS.sealed");
        }
        names.push(name);
    }
    (names, meta)
}

async fn put(client: &reqwest::Client, addr: &str, root: &str, key: &str, value: &str) {
    assert_eq!(
        put_kv(client, addr, root, key, value).await,
        Ok(204),
        "put kv/{key} via {addr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_restore_rolls_back_every_node_and_refuses_foreign_snapshots() {
    if testkit::locate::bao().is_none() {
        return;
    }
    let names = ["p1", "p2", "p3"];
    let mut c = common::cluster(&names).form().await;
    c.mount_kv().await;
    let root = c.root.clone();
    let leader = c.wait_leader(&names, Duration::from_secs(20)).await;
    let standby = names.iter().copied().find(|n| *n != leader).unwrap();
    let client = http(Duration::from_secs(10));
    put(&client, &c.node(&leader).addr(), &root, "a", "before").await;

    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("labnode.snap");
    let theirs_bao = dir.path().join("bao.snap");
    // Saved through a standby: it answers 307 and the CLI follows it to the active node.
    let out = c.node(standby).cli(
        Some(&root),
        &["operator", "raft", "snapshot", "save", ours.to_str().unwrap()],
    );
    assert_eq!(ok(&out), "");
    // The real bao CLI saves from labnode too (it checks SHA256SUMS.sealed).
    let out = c.node(&leader).bao(
        Some(&root),
        &[
            "operator",
            "raft",
            "snapshot",
            "save",
            theirs_bao.to_str().unwrap(),
        ],
    );
    ok(&out);
    for file in [&ours, &theirs_bao] {
        let (mut entries, meta) = archive_entries(file);
        entries.sort();
        assert_eq!(
            entries,
            ["SHA256SUMS", "SHA256SUMS.sealed", "meta.json", "state.bin"],
            "{file:?}"
        );
        let mut ids: Vec<String> = meta["Configuration"]["Servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["ID"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        assert_eq!(ids, names, "{meta}");
        assert!(meta["Index"].as_u64().unwrap() > 0, "{meta}");
    }

    // Later writes, then restore through a standby: they are gone on every node.
    put(&client, &c.node(standby).addr(), &root, "a", "after").await;
    put(&client, &c.node(&leader).addr(), &root, "b", "later").await;
    let out = c.node(standby).cli(
        Some(&root),
        &["operator", "raft", "snapshot", "restore", ours.to_str().unwrap()],
    );
    assert_eq!(ok(&out), "");
    for n in names {
        let srv = c.node(n).srv();
        assert_eq!(
            get_kv(srv, &root, "a").await.as_deref(),
            Some("before"),
            "kv/a via {n}"
        );
        assert_eq!(get_kv(srv, &root, "b").await, None, "kv/b via {n}");
    }
    // The restore went through Raft: after the leader dies the new leader has it too.
    c.node_mut(&leader).kill();
    let rest: Vec<&str> = names.iter().copied().filter(|n| *n != leader).collect();
    let new = c.wait_leader(&rest, Duration::from_secs(20)).await;
    for n in &rest {
        let srv = c.node(n).srv();
        assert_eq!(
            get_kv(srv, &root, "a").await.as_deref(),
            Some("before"),
            "kv/a via {n}"
        );
        assert_eq!(get_kv(srv, &root, "b").await, None, "kv/b via {n}");
    }

    // The bao-saved snapshot restores with the bao CLI.
    put(&client, &c.node(&new).addr(), &root, "c", "later-again").await;
    let out = c.node(&new).bao(
        Some(&root),
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            theirs_bao.to_str().unwrap(),
        ],
    );
    ok(&out);
    for n in &rest {
        let srv = c.node(n).srv();
        assert_eq!(get_kv(srv, &root, "c").await, None, "kv/c via {n}");
        assert_eq!(
            get_kv(srv, &root, "a").await.as_deref(),
            Some("before"),
            "kv/a via {n}"
        );
    }

    // Another cluster's snapshot is refused without -force...
    let mut other = Node::new(common::labnode(), "other");
    other.start().await;
    let (other_keys, other_root) = other.srv().init(1, 1).await;
    other.srv().unseal(&other_keys).await;
    let r = other
        .srv()
        .request(
            "POST",
            "sys/mounts/kv",
            Some(&other_root),
            Some(json!({"type": "kv", "options": {"version": "1"}})),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        put_kv(&client, &other.addr(), &other_root, "a", "other").await,
        Ok(204)
    );
    let foreign = dir.path().join("other.snap");
    ok(&other.cli(
        Some(&other_root),
        &["operator", "raft", "snapshot", "save", foreign.to_str().unwrap()],
    ));
    let refused_msg = "could not verify the snapshot: it was not taken from this cluster (its sealed checksum does not open with this cluster's keys); use -force to restore it anyway";
    let out = c.node(&new).cli(
        Some(&root),
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            foreign.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(refused_msg),
        "{}",
        show(&out)
    );
    let out = c.node(&new).bao(
        Some(&root),
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            foreign.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(refused_msg),
        "{}",
        show(&out)
    );
    assert_eq!(
        get_kv(c.node(&new).srv(), &root, "a").await.as_deref(),
        Some("before")
    );

    // ...and accepted with -force: the other node takes our data, seals, and opens with our keys.
    let out = other.cli(
        Some(&other_root),
        &["operator", "raft", "snapshot", "restore", ours.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(refused_msg),
        "{}",
        show(&out)
    );
    let out = other.cli(
        Some(&other_root),
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            "-force",
            ours.to_str().unwrap(),
        ],
    );
    assert_eq!(ok(&out), "");
    let s = other.srv().request("GET", "sys/seal-status", None, None).await;
    assert_eq!(
        (&s.body["sealed"], &s.body["t"], &s.body["n"]),
        (&json!(true), &json!(2), &json!(3)),
        "{s:?}"
    );
    unseal_member(other.srv(), &c.keys).await;
    other.srv().wait_active().await;
    assert_eq!(get_kv(other.srv(), &root, "a").await.as_deref(), Some("before"));
    let r = other.srv().request("GET", "kv/a", Some(&other_root), None).await;
    assert_eq!(r.status, 403, "the other cluster's token must be gone: {r:?}");
}
