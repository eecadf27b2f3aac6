//! Bad input gets Vault's status codes and messages, and leaves the node as it was.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
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

/// Sends `requests` one after another on one keep-alive connection to `addr`
/// (`http://host:port`); returns each answer's status and body.
fn on_one_connection(addr: &str, requests: &[String]) -> Vec<(u16, serde_json::Value)> {
    let stream = TcpStream::connect(addr.trim_start_matches("http://")).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    requests
        .iter()
        .map(|request| {
            writer
                .write_all(request.as_bytes())
                .expect("send on the kept connection");
            let mut status_line = String::new();
            reader.read_line(&mut status_line).expect("status line");
            let status = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no status in {status_line:?} for {request:?}"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("header line");
                if line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
            (
                status,
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

/// The reproductions of issue 16 (each once took a connection down with a panic) answer
/// 400 naming the header or field, and the connection goes on serving.
#[tokio::test]
async fn overflowing_durations_answer_400_on_a_connection_that_stays_usable() {
    let node = common::node();
    let server = node.spawn().await;
    let (root, _) = server.init_unsealed().await;
    let host = server.addr.trim_start_matches("http://").to_string();
    let body = r#"{"ttl":"99999999999999999h"}"#;
    let requests = [
        format!(
            "GET /v1/sys/mounts HTTP/1.1\r\nHost: {host}\r\nX-Vault-Wrap-TTL: 99999999999999999999h\r\n\r\n"
        ),
        format!(
            "POST /v1/auth/token/create HTTP/1.1\r\nHost: {host}\r\nX-Vault-Token: {root}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        format!("GET /v1/sys/health HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    ];
    let answers = tokio::task::spawn_blocking({
        let addr = server.addr.clone();
        move || on_one_connection(&addr, &requests)
    })
    .await
    .unwrap();
    assert_eq!(
        answers[0],
        (
            400,
            json!({"errors": ["error parsing X-Vault-Wrap-TTL header: time: invalid duration \"99999999999999999999h\""]})
        )
    );
    assert_eq!(
        answers[1],
        (
            400,
            json!({"errors": ["error converting input 99999999999999999h for field \"ttl\": time: invalid duration \"99999999999999999h\""]})
        )
    );
    assert_eq!(answers[2].0, 200, "the same connection still serves: {answers:?}");
    assert_eq!(answers[2].1["sealed"], false);
}

/// Token counts and durations are checked as Vault checks them.
#[tokio::test]
async fn token_create_refuses_negative_and_overflowing_fields() {
    let node = common::node();
    let server = node.spawn().await;
    let (root, _) = server.init_unsealed().await;
    let refusals = [
        (json!({"num_uses": -1}), "number of uses cannot be negative".to_string()),
        (json!({"num_uses": "-1"}), "number of uses cannot be negative".to_string()),
        (
            json!({"num_uses": 1e300}),
            r#"field "num_uses" must be an integer"#.to_string(),
        ),
        (
            json!({"ttl": -1}),
            r#"error converting input -1 for field "ttl": cannot provide negative value '-1'"#.to_string(),
        ),
        (
            json!({"explicit_max_ttl": "-1h"}),
            r#"error converting input -1h for field "explicit_max_ttl": cannot provide negative value '-3600'"#
                .to_string(),
        ),
        (
            json!({"explicit_max_ttl": "99999999999999999h"}),
            r#"error converting input 99999999999999999h for field "explicit_max_ttl": time: invalid duration "99999999999999999h""#
                .to_string(),
        ),
        (
            json!({"period": "-5m"}),
            r#"error converting input -5m for field "period": cannot provide negative value '-300'"#.to_string(),
        ),
        (
            json!({"period": "99999999999999999h"}),
            r#"error converting input 99999999999999999h for field "period": time: invalid duration "99999999999999999h""#
                .to_string(),
        ),
    ];
    for (body, message) in refusals {
        let r = server
            .request("POST", "auth/token/create", Some(&root), Some(body.clone()))
            .await;
        assert_eq!((r.status, r.body), (400, json!({"errors": [message]})), "{body}");
    }
    let r = server
        .request(
            "POST",
            "auth/token/create",
            Some(&root),
            Some(json!({"num_uses": 0})),
        )
        .await;
    assert_eq!(r.status, 200, "zero uses is unlimited: {r:?}");
}

/// KV v2 counts (`max_versions`, `cas`) and `delete_version_after` are refused when
/// negative, and a refused write changes nothing.
#[tokio::test]
async fn kv_refuses_negative_counts_and_durations() {
    let node = common::node();
    let server = node.spawn().await;
    let (root, _) = server.init_unsealed().await;
    let r = server
        .request(
            "POST",
            "sys/mounts/secret",
            Some(&root),
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let refusals = [
        (
            "secret/metadata/x",
            json!({"max_versions": -3}),
            r#"field "max_versions" cannot be negative, got -3"#,
        ),
        (
            "secret/config",
            json!({"max_versions": "-1"}),
            r#"field "max_versions" cannot be negative, got -1"#,
        ),
        (
            "secret/metadata/x",
            json!({"delete_version_after": "-1h"}),
            r#"error converting input -1h for field "delete_version_after": cannot provide negative value '-3600'"#,
        ),
        (
            "secret/config",
            json!({"delete_version_after": -5}),
            r#"error converting input -5 for field "delete_version_after": cannot provide negative value '-5'"#,
        ),
        (
            "secret/data/x",
            json!({"options": {"cas": -1}, "data": {"k": "v"}}),
            r#"field "cas" cannot be negative, got -1"#,
        ),
    ];
    for (path, body, message) in refusals {
        let r = server
            .request("POST", path, Some(&root), Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.body),
            (400, json!({"errors": [message]})),
            "{path} {body}"
        );
    }
    let r = server
        .request("GET", "secret/metadata/x", Some(&root), None)
        .await;
    assert_eq!(r.status, 404, "refused writes made no key: {r:?}");
    let r = server.request("GET", "secret/config", Some(&root), None).await;
    assert_eq!(r.body["data"]["max_versions"], 0, "{r:?}");
    assert_eq!(r.body["data"]["delete_version_after"], "0s", "{r:?}");
}

/// `sys/init` refuses share counts out of Shamir's range and leaves the node uninitialized.
#[tokio::test]
async fn init_refuses_share_counts_out_of_range() {
    let node = common::node();
    let server = node.spawn().await;
    for (body, message) in [
        (
            json!({"secret_shares": 256, "secret_threshold": 3}),
            "invalid seal configuration: shares cannot be more than 255",
        ),
        (
            json!({"secret_shares": -1, "secret_threshold": 1}),
            r#"field "secret_shares" cannot be negative, got -1"#,
        ),
        (
            json!({"secret_shares": 3, "secret_threshold": -2}),
            r#"field "secret_threshold" cannot be negative, got -2"#,
        ),
        (
            json!({"secret_shares": 3, "secret_threshold": 4}),
            "invalid seal configuration: threshold cannot be larger than shares",
        ),
        (
            json!({"secret_shares": 0, "secret_threshold": 0}),
            "invalid seal configuration: shares and threshold must be at least 1",
        ),
        (
            json!({"secret_shares": 1e30, "secret_threshold": 2}),
            r#"field "secret_shares" must be an integer"#,
        ),
    ] {
        let r = server.request("PUT", "sys/init", None, Some(body.clone())).await;
        assert_eq!((r.status, r.body), (400, json!({"errors": [message]})), "{body}");
    }
    let r = server.request("GET", "sys/init", None, None).await;
    assert_eq!(r.body, json!({"initialized": false}));
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
