//! DR replication end to end with real processes: the seed's three steps (enable the
//! primary, create a secondary token, enable the secondary) with the labnode CLI (as
//! `vault`) and the real `bao` CLI, on 3-node Raft clusters; streaming and catch-up; DR
//! operation tokens (OTP flow with the primary's keys, and a batch token made on the
//! primary); promotion, failback, activation-token misuse, and losing the primary mid-stream.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{fails, ok, Cluster, Server};
use serde_json::{json, Value};

const ENABLE_PRIMARY_WARNING: &str = "This cluster is being enabled as a primary for replication. Vault will be unavailable for a brief period and will resume service shortly.";
const ENABLE_SECONDARY_WARNING: &str = "Vault has successfully found secondary information; it may take a while to perform setup tasks. Vault will be unavailable until these tasks and initial sync complete.";
const PROMOTE_WARNING: &str = "This cluster is being promoted to a replication primary. Vault will be unavailable for a brief period and will resume service shortly.";
const DEMOTE_WARNING: &str = "This cluster is being demoted to a replication secondary. Vault will be unavailable for a brief period and will resume service shortly.";
const DISABLED: &str = "path disabled in replication DR secondary mode";

/// The seed's batch DR operation token policy.
const PROMOTION_POLICY: &str = r#"path "sys/replication/dr/secondary/promote"        { capabilities = ["update"] }
path "sys/replication/dr/secondary/update-primary" { capabilities = ["update"] }
path "sys/storage/raft/autopilot/state"            { capabilities = ["update","read"] }
"#;

/// Collapses the CLI's line wrapping (`  * text` wrapped at 80 columns) into single spaces.
fn unwrap_text(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Asserts the CLI printed exactly one warning block with `warning`, as vault does.
fn assert_warning(stderr: &str, product: &str, warning: &str) {
    assert_eq!(
        unwrap_text(stderr),
        unwrap_text(&format!(
            "WARNING! The following warnings were returned from {product}:\n\n  * {warning}"
        )),
        "stderr was:\n{stderr}"
    );
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `GET sys/replication/dr/status` → `data`.
async fn dr_status(s: &Server) -> Value {
    let r = s.request("GET", "sys/replication/dr/status", None, None).await;
    assert_eq!(r.status, 200, "dr status on {}: {r:?}", s.addr);
    r.body["data"].clone()
}

/// Polls the DR status of `s` until `pred` holds (deadline 30 s); returns that status.
async fn wait_status(s: &Server, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = dr_status(s).await;
        if pred(&st) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: DR status of {} after 30 s: {st:#}\nlog:\n{}",
            s.addr,
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn wal(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a number: {v}"))
}

/// Reads the primary's `last_wal` now, then waits until the secondary's
/// `last_remote_wal` reaches it; returns that primary index.
async fn wait_replicated(primary: &Server, secondary: &Server) -> u64 {
    let target = wal(&dr_status(primary).await, "last_wal");
    wait_status(secondary, "secondary catches up", |st| {
        st["last_remote_wal"].as_u64().is_some_and(|w| w >= target)
    })
    .await;
    target
}

async fn mount_kv2(s: &Server, token: &str) {
    let r = s
        .request(
            "POST",
            "sys/mounts/secret",
            Some(token),
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
}

async fn kv_put(s: &Server, token: &str, key: &str, data: Value) {
    let r = s
        .request(
            "POST",
            &format!("secret/data/{key}"),
            Some(token),
            Some(json!({ "data": data })),
        )
        .await;
    assert_eq!(r.status, 200, "kv put {key} on {}: {r:?}", s.addr);
}

async fn kv_get(s: &Server, token: &str, key: &str) -> Value {
    let r = s
        .request("GET", &format!("secret/data/{key}"), Some(token), None)
        .await;
    assert_eq!(r.status, 200, "kv get {key} on {}: {r:?}", s.addr);
    r.body["data"]["data"].clone()
}

/// A client path on a DR secondary: 400 with the exact refusal.
async fn assert_refused_on_secondary(s: &Server, token: &str, path: &str) {
    let r = s.request("GET", path, Some(token), None).await;
    assert_eq!(r.status, 400, "{path}: {r:?}");
    assert_eq!(r.body, json!({ "errors": [DISABLED] }), "{path}");
}

/// `vault write -field=wrapping_token sys/replication/dr/primary/secondary-token id=<id>`.
fn secondary_token(s: &Server, root: &str, id: &str, extra: &[&str]) -> String {
    let id = format!("id={id}");
    let mut args = vec![
        "write",
        "-field=wrapping_token",
        "sys/replication/dr/primary/secondary-token",
        &id,
    ];
    args.extend_from_slice(extra);
    ok(&s.cli(Some(root), &args)).trim().to_string()
}

/// The claims of an activation JWT.
fn jwt_claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {token}");
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("JWT body is base64url");
    serde_json::from_slice(&body).expect("JWT body is JSON")
}

/// The DR operation token OTP flow over the API, decoded locally (token XOR OTP).
async fn dr_operation_token(s: &Server, keys: &[String]) -> String {
    let base = "sys/replication/dr/secondary/generate-operation-token";
    let r = s
        .request("PUT", &format!("{base}/attempt"), None, Some(json!({})))
        .await;
    assert_eq!(r.status, 200, "attempt: {r:?}");
    let otp = r.body["otp"].as_str().expect("otp").to_string();
    let nonce = r.body["nonce"].as_str().expect("nonce").to_string();
    assert_eq!(r.body["otp_length"], json!(28));
    let mut last = Value::Null;
    for key in keys {
        let r = s
            .request(
                "PUT",
                &format!("{base}/update"),
                None,
                Some(json!({"key": key, "nonce": nonce})),
            )
            .await;
        assert_eq!(r.status, 200, "update: {r:?}");
        last = r.body;
    }
    assert_eq!(last["complete"], json!(true), "{last}");
    decode(last["encoded_token"].as_str().expect("encoded_token"), &otp)
}

fn decode(encoded: &str, otp: &str) -> String {
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .expect("encoded token is base64");
    assert_eq!(raw.len(), otp.len());
    let bytes: Vec<u8> = raw.iter().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
    String::from_utf8(bytes).expect("token is UTF-8")
}

/// A `Key  Value` table row of CLI output.
fn table_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(key)?;
            rest.starts_with(char::is_whitespace)
                .then(|| rest.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key} row in:\n{out}"))
}

/// Cluster addresses of a cluster's raft members, as `host:port`.
async fn cluster_addrs(c: &Cluster) -> Vec<String> {
    let r = c
        .active()
        .await
        .request("GET", "sys/storage/raft/configuration", Some(&c.root), None)
        .await;
    let mut addrs: Vec<String> = r.body["data"]["config"]["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| {
            let a = s["address"].as_str().expect("address");
            a.split_once("://").map_or(a, |(_, r)| r).to_string()
        })
        .collect();
    addrs.sort();
    addrs
}

/// Steps 1 and 3 of the brief: the seed's three steps between two 3-node clusters with
/// both CLIs, status on both sides, refusal on the secondary, streaming, an outage of
/// the whole secondary, the seed's DR operation token flow with 3 of the primary's 5
/// keys, promotion, and everything made on the primary working on the promoted cluster;
/// then failback: the old primary is demoted and follows the promoted cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_three_steps_promote_and_fail_back() {
    let (a, mut b) = tokio::join!(Cluster::start(3, 5, 3), Cluster::start(3, 5, 3));
    let a_active = a.active().await;
    let root = a.root.clone();

    // Data, a policy and a child token on A before replication starts.
    mount_kv2(a_active, &root).await;
    kv_put(a_active, &root, "app", json!({"password": "s3cr3t"})).await;
    let r = a_active
        .request(
            "PUT",
            "sys/policies/acl/app-read",
            Some(&root),
            Some(json!({"policy": "path \"secret/data/app\" { capabilities = [\"read\"] }\n"})),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = a_active
        .request(
            "POST",
            "auth/token/create",
            Some(&root),
            Some(json!({"policies": ["app-read"], "ttl": "8h"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let child = r.body["auth"]["client_token"].as_str().expect("child").to_string();

    // 1. Activate DR replication on the primary (bao), and again (labnode): refused.
    let out = a_active.bao(Some(&root), &["write", "-f", "sys/replication/dr/primary/enable"]);
    assert!(out.status.success(), "{out:?}");
    assert_warning(&stderr(&out), "OpenBao", ENABLE_PRIMARY_WARNING);
    let out = a_active.cli(Some(&root), &["write", "-f", "sys/replication/dr/primary/enable"]);
    assert!(fails(&out).contains("* this cluster is already a DR primary"), "{out:?}");

    // 2. The secondary token (labnode), a JWT naming A's API address, valid 30 minutes.
    let token = secondary_token(a_active, &root, "dr1", &[]);
    let claims = jwt_claims(&token);
    assert_eq!(claims["type"], json!("wrapping"));
    assert_eq!(claims["addr"], json!(a_active.addr));
    assert_eq!(wal(&claims, "exp") - wal(&claims, "iat"), 1800);
    assert!(claims["jti"].as_str().is_some_and(|j| j.starts_with("hvs.")), "{claims}");

    // 3. Activate the secondary (bao, with B's own root token).
    let b_active = b.active().await;
    let out = b_active.bao(
        Some(&b.root),
        &["write", "sys/replication/dr/secondary/enable", &format!("token={token}")],
    );
    assert!(out.status.success(), "{out:?}");
    assert_warning(&stderr(&out), "OpenBao", ENABLE_SECONDARY_WARNING);

    // Status on both sides (seed: `vault read -format=json sys/replication/dr/status`).
    let out = ok(&a_active.cli(None, &["read", "-format=json", "sys/replication/dr/status"]));
    let a_status: Value = serde_json::from_str(&out).expect("json");
    let a_status = &a_status["data"];
    assert_eq!(a_status["mode"], json!("primary"));
    assert_eq!(a_status["state"], json!("running"));
    assert_eq!(a_status["known_secondaries"], json!(["dr1"]));
    let cluster_id = a_status["cluster_id"].clone();
    let a_status = wait_status(a_active, "primary sees dr1 connected", |st| {
        st["secondaries"][0]["connection_status"] == json!("connected")
    })
    .await;
    assert_eq!(a_status["secondaries"][0]["node_id"], json!("dr1"));
    let b_status = wait_status(b_active, "secondary streams", |st| {
        st["state"] == json!("stream-wals") && st["connection_state"] == json!("ready")
    })
    .await;
    assert_eq!(b_status["mode"], json!("secondary"));
    assert_eq!(b_status["cluster_id"], cluster_id);
    assert_eq!(b_status["secondary_id"], json!("dr1"));
    assert_eq!(b_status["primaries"][0]["connection_status"], json!("connected"));
    assert_eq!(b_status["primaries"][0]["api_address"], json!(a_active.addr));
    let mut known: Vec<String> = serde_json::from_value(b_status["known_primary_cluster_addrs"].clone())
        .expect("known_primary_cluster_addrs");
    known.sort();
    assert_eq!(known, cluster_addrs(&a).await, "B knows every node of A");
    wait_replicated(a_active, b_active).await;

    // The secondary refuses clients on every node: health 472, KV 400 with the exact text.
    for node in b.running() {
        let h = node.health().await;
        assert_eq!(h.status, 472, "{}: {h:?}", node.addr);
        assert_eq!(h.body["replication_dr_mode"], json!("secondary"));
    }
    assert_refused_on_secondary(b_active, &root, "secret/data/app").await;
    assert_refused_on_secondary(b_active, &root, "auth/token/lookup-self").await;
    assert_refused_on_secondary(b_active, &b.root, "sys/mounts").await;
    let out = b_active.cli(Some(&root), &["kv", "get", "secret/app"]);
    assert!(fails(&out).contains(&format!("* {DISABLED}")), "{out:?}");

    // Writes on A after activation stream to B.
    for i in 0..20 {
        kv_put(a_active, &root, &format!("live/{i}"), json!({ "n": i })).await;
    }
    let target = wait_replicated(a_active, b_active).await;
    let b_wal = wal(&dr_status(b_active).await, "last_remote_wal");
    assert!(b_wal >= target, "B at {b_wal}, A at {target}");

    // Step 3: the whole secondary goes away, A keeps writing; B comes back, is unsealed
    // with A's keys (its own are gone) and catches up.
    b.stop_all();
    for i in 0..20 {
        kv_put(a_active, &root, &format!("offline/{i}"), json!({ "n": i })).await;
    }
    b.restart_all().await;
    let mut replies = Vec::new();
    for key in &b.keys[..3] {
        replies.push(
            b.node(0)
                .request("PUT", "sys/unseal", None, Some(json!({ "key": key })))
                .await,
        );
    }
    assert_eq!(replies[1].body["progress"], json!(2), "{replies:?}");
    assert_eq!(replies[2].status, 400, "B's own keys no longer open it: {replies:?}");
    assert_eq!(
        replies[2].body,
        json!({"errors": ["cipher: message authentication failed"]})
    );
    let a_keys = [a.keys[0].clone(), a.keys[2].clone(), a.keys[4].clone()];
    b.unseal_all(&a_keys).await;
    let b_active = b.active().await;
    wait_replicated(a_active, b_active).await;

    // The seed's DR operation token flow on B with three of A's five keys (labnode CLI).
    let out = ok(&b_active.cli(None, &["operator", "generate-root", "-dr-token", "-init"]));
    let nonce = table_field(&out, "Nonce");
    let otp = table_field(&out, "OTP");
    assert_eq!(table_field(&out, "Progress"), "0/3");
    assert_eq!(otp.len(), 28);
    let mut out = String::new();
    for (i, key) in a_keys.iter().enumerate() {
        out = ok(&b_active.cli_stdin(None, &["operator", "generate-root", "-dr-token"], &format!("{key}\n")));
        assert!(out.starts_with(&format!("Operation nonce: {nonce}\n")), "{out}");
        assert_eq!(table_field(&out, "Progress"), format!("{}/3", i + 1));
    }
    assert_eq!(table_field(&out, "Complete"), "true");
    let encoded = table_field(&out, "Encoded Token");
    let decode_arg = format!("-decode={encoded}");
    let otp_arg = format!("-otp={otp}");
    let dr_token = ok(&b_active.cli(
        None,
        &["operator", "generate-root", "-dr-token", &decode_arg, &otp_arg],
    ))
    .trim()
    .to_string();
    assert!(dr_token.starts_with("hvs.") && dr_token.len() == 28, "{dr_token}");

    // Promote B (seed command, labnode CLI) and see the seed's warning.
    let out = b_active.cli(
        None,
        &[
            "write",
            "sys/replication/dr/secondary/promote",
            &format!("dr_operation_token={dr_token}"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_warning(&stderr(&out), "Vault", PROMOTE_WARNING);
    let b_active = b.active().await;
    let st = dr_status(b_active).await;
    assert_eq!(st["mode"], json!("primary"));
    assert_eq!(st["cluster_id"], cluster_id);
    assert_eq!(st["known_secondaries"], json!([]));

    // On B: A's root token, KV v2 data (old, streamed, and written while B was down),
    // the policy, and the child token with exactly its policy's power.
    assert_eq!(kv_get(b_active, &root, "app").await, json!({"password": "s3cr3t"}));
    assert_eq!(kv_get(b_active, &root, "live/19").await, json!({"n": 19}));
    assert_eq!(kv_get(b_active, &root, "offline/19").await, json!({"n": 19}));
    let out = ok(&b_active.cli(Some(&root), &["policy", "read", "app-read"]));
    assert_eq!(out.trim(), "path \"secret/data/app\" { capabilities = [\"read\"] }");
    let out = ok(&b_active.cli(Some(&child), &["kv", "get", "-field=password", "secret/app"]));
    assert_eq!(out.trim(), "s3cr3t");
    let r = b_active
        .request("POST", "secret/data/app", Some(&child), Some(json!({"data": {"x": 1}})))
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = b_active.request("GET", "auth/token/lookup-self", Some(&child), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["data"]["policies"], json!(["app-read", "default"]));
    kv_put(b_active, &root, "after-promote", json!({"ok": true})).await;

    // Step 5, failback: demote A; A gets a DR operation token made with its original
    // keys (the same keys B uses now) and follows B with a secondary token from B.
    let out = a_active.cli(Some(&root), &["write", "-f", "sys/replication/dr/primary/demote"]);
    assert!(out.status.success(), "{out:?}");
    assert_warning(&stderr(&out), "Vault", DEMOTE_WARNING);
    let a_active = a.active().await;
    assert_eq!(a_active.health().await.status, 472);
    let st = dr_status(a_active).await;
    assert_eq!((st["mode"].clone(), st["state"].clone()), (json!("secondary"), json!("idle")));
    let back = secondary_token(b_active, &root, "a-failback", &[]);
    let a_dr_token = dr_operation_token(a_active, &a.keys[1..4]).await;
    let out = a_active.cli(
        None,
        &[
            "write",
            "sys/replication/dr/secondary/update-primary",
            &format!("dr_operation_token={a_dr_token}"),
            &format!("token={back}"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let st = wait_status(a_active, "A streams from B", |st| {
        st["state"] == json!("stream-wals") && st["connection_state"] == json!("ready")
    })
    .await;
    assert_eq!(st["secondary_id"], json!("a-failback"));
    assert_eq!(st["primaries"][0]["api_address"], json!(b_active.addr));
    assert_eq!(st["cluster_id"], cluster_id);
    kv_put(b_active, &root, "failback", json!({"from": "B"})).await;
    wait_replicated(b_active, a_active).await;
    let st = wait_status(b_active, "B sees A connected", |st| {
        st["secondaries"][0]["connection_status"] == json!("connected")
    })
    .await;
    assert_eq!(st["known_secondaries"], json!(["a-failback"]));

    // Promote A again (a fresh DR operation token): B's write is there.
    let a_dr_token = dr_operation_token(a_active, &a.keys[..3]).await;
    let r = a_active
        .request(
            "POST",
            "sys/replication/dr/secondary/promote",
            None,
            Some(json!({ "dr_operation_token": a_dr_token })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let a_active = a.active().await;
    assert_eq!(kv_get(a_active, &root, "failback").await, json!({"from": "B"}));
}
