//! Seal migration, both ways, on one raft node with data: Shamir → awskms (the unseal
//! shares become recovery shares) and awskms → Shamir (`seal "awskms" { disabled = "true" }`,
//! the recovery shares become unseal shares), each finished by `unseal -migrate`.
//!
//! Needs LocalStack's KMS, like `t50_aws_localstack.rs` (it fails without it; `LABNODE_SKIP_LOCALSTACK=1` prints SKIP).

mod common;

use serde_json::{json, Value};

use testkit::localstack::{create_key, kms, REGION};
use testkit::{Node, Server};

/// The node's config with a seal stanza appended (or none).
fn configure(dir: &Node, base: &str, seal: Option<String>) {
    let text = match seal {
        Some(stanza) => format!("{base}\n{stanza}\n"),
        None => base.to_string(),
    };
    dir.write_config(&text);
}

fn awskms(key_id: &str, endpoint: &str, disabled: bool) -> String {
    let disabled = if disabled { "\n  disabled   = \"true\"" } else { "" };
    format!(
        "seal \"awskms\" {{\n  region     = \"{REGION}\"\n  kms_key_id = \"{key_id}\"\n  endpoint   = \"{endpoint}\"\n  \
         access_key = \"test\"\n  secret_key = \"test\"{disabled}\n}}"
    )
}

async fn seal_status(server: &Server) -> Value {
    server.request("GET", "sys/seal-status", None, None).await.body
}

async fn unseal_migrate(server: &Server, keys: &[String]) -> Value {
    let mut last = Value::Null;
    for key in keys {
        let r = server
            .request(
                "PUT",
                "sys/unseal",
                None,
                Some(json!({ "key": key, "migrate": true })),
            )
            .await;
        assert_eq!(r.status, 200, "unseal -migrate: {r:?}\n{}", server.log());
        last = r.body;
    }
    last
}

async fn read_secret(server: &Server, token: &str) -> Value {
    let r = server.request("GET", "secret/data/keep", Some(token), None).await;
    assert_eq!(r.status, 200, "read after migration: {r:?}");
    r.body["data"]["data"]["v"].clone()
}

#[tokio::test]
async fn shamir_to_awskms_and_back_keeps_the_data() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let key_id = create_key(&kms(&endpoint)).await;
    let dir = common::node();
    let base = std::fs::read_to_string(&dir.config).expect("base config");

    // A Shamir node (3 shares, threshold 2) with a secret.
    let server = dir.spawn().await;
    let (keys, root) = server.init(3, 2).await;
    server.unseal(&keys).await;
    let r = server
        .request(
            "POST",
            "sys/mounts/secret",
            Some(&root),
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = server
        .request(
            "PUT",
            "secret/data/keep",
            Some(&root),
            Some(json!({"data": {"v": "kept"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    server.kill();

    // Shamir → awskms: plain unseal is refused, -migrate with two old shares finishes it.
    configure(&dir, &base, Some(awskms(&key_id, &endpoint, false)));
    let server = dir.spawn().await;
    let status = seal_status(&server).await;
    assert_eq!(
        (status["migration"].clone(), status["sealed"].clone()),
        (json!(true), json!(true)),
        "{status}"
    );
    let r = server
        .request("PUT", "sys/unseal", None, Some(json!({ "key": keys[0] })))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("seal migration pending"),
        "{r:?}"
    );
    let done = unseal_migrate(&server, &keys[..2]).await;
    assert_eq!(done["sealed"], json!(false), "{done}");
    let status = seal_status(&server).await;
    assert_eq!(status["type"], json!("awskms"), "{status}");
    assert_eq!(status["recovery_seal"], json!(true), "{status}");
    assert_eq!(
        (status["t"].clone(), status["n"].clone()),
        (json!(2), json!(3)),
        "{status}"
    );
    assert_eq!(status["migration"], json!(false), "{status}");
    server.wait_active().await;
    assert_eq!(read_secret(&server, &root).await, json!("kept"));
    server.kill();

    // A restart now unseals itself through KMS.
    let server = dir.spawn().await;
    server.wait_active().await;
    assert_eq!(read_secret(&server, &root).await, json!("kept"));
    server.kill();

    // awskms → Shamir: the disabled stanza keeps KMS reachable; the recovery shares (the old
    // unseal shares) finish the migration and become the unseal shares again.
    configure(&dir, &base, Some(awskms(&key_id, &endpoint, true)));
    let server = dir.spawn().await;
    let status = seal_status(&server).await;
    assert_eq!(
        (status["migration"].clone(), status["sealed"].clone()),
        (json!(true), json!(true)),
        "{status}"
    );
    let done = unseal_migrate(&server, &keys[1..]).await;
    assert_eq!(done["sealed"], json!(false), "{done}");
    assert_eq!(seal_status(&server).await["type"], json!("shamir"));
    server.wait_active().await;
    assert_eq!(read_secret(&server, &root).await, json!("kept"));
    server.kill();

    // Plain Shamir again: sealed at start, the same shares unseal it.
    configure(&dir, &base, None);
    let server = dir.spawn().await;
    let status = seal_status(&server).await;
    assert_eq!(
        (status["type"].clone(), status["sealed"].clone()),
        (json!("shamir"), json!(true)),
        "{status}"
    );
    server.unseal(&[keys[0].clone(), keys[2].clone()]).await;
    assert_eq!(read_secret(&server, &root).await, json!("kept"));
}
