//! Bad input gets Vault's status codes and messages, and leaves the node as it was.

mod common;

use std::process::{Command, Stdio};

use serde_json::json;

#[tokio::test]
async fn api_rejects_bad_requests() {
    let node = common::node();
    let server = node.spawn().await;
    let (root, _) = server.init_unsealed().await;
    let r = server
        .request("POST", "sys/mounts/kv", Some(&root), Some(json!({"type": "kv"})))
        .await;
    assert_eq!(r.status, 204, "{r:?}");

    let r = server
        .raw("PUT", "kv/x", Some(&root), Some("{\"value\": ".into()), &[])
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let msg = r.body["errors"][0].as_str().unwrap_or_default();
    assert!(msg.starts_with("failed to parse JSON input"), "{r:?}");

    let r = server
        .raw("PUT", "kv/x", Some(&root), Some("[1,2]".into()), &[])
        .await;
    assert_eq!(r.status, 400, "a JSON array is not a request body: {r:?}");

    let r = server.request("GET", "nosuchmount/x", Some(&root), None).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        r.body,
        json!({"errors": ["no handler for route \"nosuchmount/x\". route entry not found."]})
    );
    let r = server.raw("GET", "../v2/sys/health", None, None, &[]).await;
    assert_eq!(r.status, 404, "outside /v1: {r:?}");

    let r = server
        .request("PUT", "kv/x", Some(&root), Some(json!({"v": "1"})))
        .await;
    assert_eq!(r.status, 204);
    let r = server.request("GET", "kv/x", None, None).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body, json!({"errors": ["permission denied"]}));
    let r = server.request("GET", "kv/x", Some(""), None).await;
    assert_eq!(r.status, 403, "empty token: {r:?}");
    let r = server
        .request("GET", "kv/x", Some("hvs.AAAAAAAAAAAAAAAAAAAAAAAA"), None)
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body, json!({"errors": ["permission denied"]}));

    let r = server
        .raw(
            "GET",
            "kv/x",
            None,
            None,
            &[("Authorization", &format!("Bearer {root}"))],
        )
        .await;
    assert_eq!(
        r.status, 200,
        "Authorization: Bearer works like X-Vault-Token: {r:?}"
    );
    assert_eq!(r.body["data"], json!({"v": "1"}));

    let r = server.request("PATCH", "sys/seal-status", None, None).await;
    assert_eq!(r.status, 405, "{r:?}");
}

#[tokio::test]
async fn wrong_unseal_key_leaves_progress_unchanged() {
    let node = common::node();
    let server = node.spawn().await;

    let (root, key) = server.init_unsealed().await;
    let r = server.request("PUT", "sys/seal", Some(&root), None).await;
    assert_eq!(r.status, 204, "{r:?}");
    let mut bytes = hex::decode(&key).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    let wrong = hex::encode(bytes);
    let r = server
        .request("PUT", "sys/unseal", None, Some(json!({"key": wrong})))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.body,
        json!({"errors": ["cipher: message authentication failed"]})
    );
    let s = server.request("GET", "sys/seal-status", None, None).await.body;
    assert_eq!(
        (s["sealed"].clone(), s["progress"].clone()),
        (json!(true), json!(0))
    );

    let r = server
        .request(
            "PUT",
            "sys/unseal",
            None,
            Some(json!({"key": "not hex or base64!"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"errors": ["'key' must be a valid hex or base64 string"]})
    );
    let r = server.request("PUT", "sys/unseal", None, Some(json!({}))).await;
    assert_eq!(r.status, 400);
    server.unseal(&[key]).await;
}

#[tokio::test]
async fn share_of_another_length_is_refused_mid_unseal() {
    let node = common::node();
    let server = node.spawn().await;
    let (keys, _) = server.init(5, 3).await;

    let r = server
        .request("PUT", "sys/unseal", None, Some(json!({"key": keys[0]})))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["progress"], 1);
    let nonce = r.body["nonce"].clone();

    let short = &keys[1][..keys[1].len() - 2];
    let r = server
        .request("PUT", "sys/unseal", None, Some(json!({"key": short})))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.body,
        json!({"errors": ["invalid key: key share has the wrong length for this seal"]})
    );
    let r = server
        .request("PUT", "sys/unseal", None, Some(json!({"key": keys[0]})))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body, json!({"errors": ["given key share is a duplicate"]}));

    let s = server.request("GET", "sys/seal-status", None, None).await.body;
    assert_eq!(s["progress"], 1, "{s}");
    assert_eq!(s["nonce"], nonce);
    assert_eq!(s["sealed"], true);
    server.unseal(&keys[1..3]).await;
}

/// Runs `labnode ARGS` with no server; returns (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(common::labnode())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run labnode");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_config_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let syntax = dir.path().join("syntax.hcl");
    std::fs::write(
        &syntax,
        "storage \"raft\" {\n  path = \"/tmp/x\"\n  node_id = \n}\n",
    )
    .unwrap();
    let unknown = dir.path().join("unknown.hcl");
    std::fs::write(
        &unknown,
        "storage \"raft\" {\n  path = \"/tmp/x\"\n}\nlistener \"tcp\" {\n  adress = \"127.0.0.1:1\"\n  tls_disable = true\n}\n",
    )
    .unwrap();
    let syntax = syntax.display().to_string();
    let unknown = unknown.display().to_string();

    for args in [
        vec!["server".to_string(), format!("-config={syntax}")],
        vec!["operator".into(), "validate-config".into(), syntax.clone()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{syntax}:3")) && stderr.contains("syntax error"),
            "{args:?}: {stderr}"
        );
    }
    let expected =
        format!("{unknown}:5: unknown key \"adress\" in listener \"tcp\" (did you mean \"address\"?)");
    for args in [
        vec!["server".to_string(), format!("-config={unknown}")],
        vec!["operator".into(), "validate-config".into(), unknown.clone()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }

    let missing = dir.path().join("missing.hcl").display().to_string();
    let (code, stderr) = run(&["server", &format!("-config={missing}")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&missing), "{stderr}");
    let (code, stderr) = run(&["server"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("Must specify at least one config path using -config"),
        "{stderr}"
    );
}

/// vault (Go) ends quietly when its reader goes away (`labnode token create | head -1`);
/// labnode panics with "failed printing to stdout: Broken pipe".
#[test]
fn cli_survives_a_closed_stdout_pipe() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(common::labnode())
        .arg("version")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run labnode version");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
