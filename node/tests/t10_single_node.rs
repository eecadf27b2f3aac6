//! A single raft node driven by the labnode CLI as a learner would: init, unseal, mount,
//! write and read KV v1 and v2, restart, unseal again and find the data intact.

mod common;

use serde_json::Value;
use testkit::cli::ok;

#[tokio::test]
async fn cli_init_unseal_kv_restart() {
    let node = common::node();
    let server = node.spawn().await;

    let status = server.cli(None, &["status"]);
    assert_eq!(
        status.status.code(),
        Some(2),
        "uninitialized node reports sealed (exit 2)"
    );

    let init: Value = serde_json::from_str(&ok(&server.cli(None, &["operator", "init", "-format=json"])))
        .expect("init json");
    assert_eq!(init["unseal_shares"], 5);
    assert_eq!(init["unseal_threshold"], 3);
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .expect("unseal_keys_b64")
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 5);
    let root = init["root_token"].as_str().expect("root_token").to_string();

    let again = server.cli(None, &["operator", "init"]);
    assert_eq!(again.status.code(), Some(2), "second init fails");
    assert!(String::from_utf8_lossy(&again.stderr).contains("Vault is already initialized"));

    unseal_with_cli(&server, &keys[1..4]).await;
    let root = Some(root.as_str());

    let enable = ok(&server.cli(root, &["secrets", "enable", "-path=secret", "kv-v2"]));
    assert!(enable.starts_with("Success! Enabled the kv"), "{enable}");
    ok(&server.cli(
        root,
        &["kv", "put", "secret/app", "password=hunter2", "user=alice"],
    ));
    ok(&server.cli(
        root,
        &["kv", "put", "secret/app", "password=hunter3", "user=alice"],
    ));
    let got = ok(&server.cli(root, &["kv", "get", "-field=password", "secret/app"]));
    assert_eq!(got.trim_end_matches('\n'), "hunter3");
    let v1 = ok(&server.cli(
        root,
        &["kv", "get", "-version=1", "-field=password", "secret/app"],
    ));
    assert_eq!(v1.trim_end_matches('\n'), "hunter2");

    ok(&server.cli(root, &["secrets", "enable", "-path=kv", "kv"]));
    let wrote = ok(&server.cli(root, &["write", "kv/team/db", "conn=postgres://db"]));
    assert_eq!(wrote.trim(), "Success! Data written to: kv/team/db");
    ok(&server.cli(root, &["write", "kv/team/cache", "conn=redis://cache"]));
    let read = ok(&server.cli(root, &["read", "-field=conn", "kv/team/db"]));
    assert_eq!(read.trim_end_matches('\n'), "postgres://db");
    let list = ok(&server.cli(root, &["list", "kv/team"]));
    assert_eq!(list, "Keys\n----\ncache\ndb\n");
    let missing = server.cli(root, &["read", "kv/team/nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "No value found at kv/team/nope"
    );

    server.stop();
    let server = node.spawn().await;
    let status = server.cli(None, &["status"]);
    assert_eq!(status.status.code(), Some(2), "restarted node is sealed");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("Sealed") && l.ends_with("true")),
        "status: {text}"
    );
    let sealed_read = server.cli(root, &["read", "kv/team/db"]);
    assert_eq!(sealed_read.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&sealed_read.stderr).contains("Vault is sealed"));

    unseal_with_cli(&server, &[keys[4].clone(), keys[0].clone(), keys[2].clone()]).await;
    let got = ok(&server.cli(root, &["kv", "get", "-field=password", "secret/app"]));
    assert_eq!(got.trim_end_matches('\n'), "hunter3");
    let read = ok(&server.cli(root, &["read", "-field=conn", "kv/team/cache"]));
    assert_eq!(read.trim_end_matches('\n'), "redis://cache");
    let list = ok(&server.cli(root, &["list", "kv/team"]));
    assert_eq!(list, "Keys\n----\ncache\ndb\n");
    server.stop();
}

/// Three `operator unseal` calls; progress is shown after each, sealed=false after the last.
async fn unseal_with_cli(server: &testkit::Server, keys: &[String]) {
    for (i, key) in keys.iter().enumerate() {
        let out = server.cli(None, &["operator", "unseal", "-format=json", key]);
        let status: Value = serde_json::from_str(&ok(&out)).expect("seal status json");
        if i + 1 < keys.len() {
            assert_eq!(status["sealed"], true);
            assert_eq!(status["progress"], i as u64 + 1);
        } else {
            assert_eq!(status["sealed"], false, "{status}");
            assert_eq!(status["progress"], 0);
        }
    }
    server.wait_active().await;
}

/// bao prints the engine type as typed (`kv-v2`); labnode prints `kv`.
#[tokio::test]
async fn secrets_enable_kv_v2_message_matches_vault() {
    let server = testkit::Server::dev(common::labnode()).await;
    let out = ok(&server.cli(Some("root"), &["secrets", "enable", "-path=s2", "kv-v2"]));
    assert_eq!(out, "Success! Enabled the kv-v2 secrets engine at: s2/\n");
}
