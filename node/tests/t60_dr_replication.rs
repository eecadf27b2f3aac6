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
use serde_json::{json, Value};
use testkit::cli::{fails, ok};
use testkit::{Cluster, ClusterBuilder, Reply, RetryJoin, Server};

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

/// `sys/replication/dr/secondary/promote` with a DR operation token.
async fn promote(s: &Server, token: &str) -> Reply {
    s.request(
        "POST",
        "sys/replication/dr/secondary/promote",
        None,
        Some(json!({ "dr_operation_token": token })),
    )
    .await
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

/// `size` nodes (`node1`..) that `retry_join` `node1`, initialized with `shares`/`threshold`.
async fn cluster(size: usize, shares: u8, threshold: u8) -> Cluster {
    ClusterBuilder::sized(common::labnode(), size)
        .join(RetryJoin::First)
        .keys(shares, threshold)
        .form()
        .await
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
    if testkit::locate::bao().is_none() {
        return;
    }
    let (a, mut b) = tokio::join!(cluster(3, 5, 3), cluster(3, 5, 3));
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
    let child = r.body["auth"]["client_token"]
        .as_str()
        .expect("child")
        .to_string();

    // 1. Activate DR replication on the primary (bao), and again (labnode): refused.
    let out = a_active.bao(Some(&root), &["write", "-f", "sys/replication/dr/primary/enable"]);
    assert!(out.status.success(), "{out:?}");
    assert_warning(&stderr(&out), "OpenBao", ENABLE_PRIMARY_WARNING);
    let out = a_active.cli(Some(&root), &["write", "-f", "sys/replication/dr/primary/enable"]);
    assert!(
        fails(&out).contains("* this cluster is already a DR primary"),
        "{out:?}"
    );

    // 2. The secondary token (labnode), a JWT naming A's API address, valid 30 minutes.
    let token = secondary_token(a_active, &root, "dr1", &[]);
    let claims = jwt_claims(&token);
    assert_eq!(claims["type"], json!("wrapping"));
    assert_eq!(claims["addr"], json!(a_active.addr));
    assert_eq!(wal(&claims, "exp") - wal(&claims, "iat"), 1800);
    assert!(
        claims["jti"].as_str().is_some_and(|j| j.starts_with("hvs.")),
        "{claims}"
    );

    // 3. Activate the secondary (bao, with B's own root token).
    let b_active = b.active().await;
    let out = b_active.bao(
        Some(&b.root),
        &[
            "write",
            "sys/replication/dr/secondary/enable",
            &format!("token={token}"),
        ],
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
    // (Only the active node: standbys may keep a stale DR mode, see
    // `standbys_follow_dr_role_changes`.)
    let h = b_active.health().await;
    assert_eq!(h.status, 472, "{}: {h:?}", b_active.addr);
    assert_eq!(h.body["replication_dr_mode"], json!("secondary"));
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
            b.server(0)
                .request("PUT", "sys/unseal", None, Some(json!({ "key": key })))
                .await,
        );
    }
    assert_eq!(replies[1].body["progress"], json!(2), "{replies:?}");
    assert_eq!(
        replies[2].status, 400,
        "B's own keys no longer open it: {replies:?}"
    );
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
        out = ok(&b_active.cli_stdin(
            None,
            &["operator", "generate-root", "-dr-token"],
            &format!("{key}\n"),
        ));
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
    assert_eq!(
        kv_get(b_active, &root, "app").await,
        json!({"password": "s3cr3t"})
    );
    assert_eq!(kv_get(b_active, &root, "live/19").await, json!({"n": 19}));
    assert_eq!(kv_get(b_active, &root, "offline/19").await, json!({"n": 19}));
    let out = ok(&b_active.cli(Some(&root), &["policy", "read", "app-read"]));
    assert_eq!(
        out.trim(),
        "path \"secret/data/app\" { capabilities = [\"read\"] }"
    );
    let out = ok(&b_active.cli(Some(&child), &["kv", "get", "-field=password", "secret/app"]));
    assert_eq!(out.trim(), "s3cr3t");
    let r = b_active
        .request(
            "POST",
            "secret/data/app",
            Some(&child),
            Some(json!({"data": {"x": 1}})),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = b_active
        .request("GET", "auth/token/lookup-self", Some(&child), None)
        .await;
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
    assert_eq!(
        (st["mode"].clone(), st["state"].clone()),
        (json!("secondary"), json!("idle"))
    );
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
    let r = promote(a_active, &a_dr_token).await;
    assert_eq!(r.status, 200, "{r:?}");
    let a_active = a.active().await;
    assert_eq!(kv_get(a_active, &root, "failback").await, json!({"from": "B"}));
}

/// Enables A as primary and B as its secondary `id` (labnode CLI); waits for streaming.
/// Returns the (now used) activation token.
async fn pair(a: &Cluster, b: &Cluster, id: &str) -> String {
    let a_active = a.active().await;
    ok(&a_active.cli(
        Some(&a.root),
        &["write", "-f", "sys/replication/dr/primary/enable"],
    ));
    let token = secondary_token(a_active, &a.root, id, &[]);
    let b_active = b.active().await;
    ok(&b_active.cli(
        Some(&b.root),
        &[
            "write",
            "sys/replication/dr/secondary/enable",
            &format!("token={token}"),
        ],
    ));
    wait_status(b_active, "secondary streams", |st| {
        st["state"] == json!("stream-wals")
    })
    .await;
    wait_replicated(a_active, b_active).await;
    token
}

/// `vault write sys/replication/dr/secondary/enable token=<t>` on `s`, which must fail;
/// returns the error line.
fn enable_refused(s: &Server, root: &str, token: &str) -> String {
    let out = s.cli(
        Some(root),
        &[
            "write",
            "sys/replication/dr/secondary/enable",
            &format!("token={token}"),
        ],
    );
    let err = fails(&out);
    err.lines()
        .find_map(|l| l.strip_prefix("* "))
        .unwrap_or_else(|| panic!("no error line in:\n{err}"))
        .to_string()
}

/// Replaces a JWT's payload, keeping header and signature.
fn tamper(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = jwt_claims(token);
    change(&mut claims);
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{body}.{}", parts[0], parts[2])
}

/// Step 2 of the brief: an activation token works once, not after it expired, not
/// when its payload was tampered with (and the tampering does not burn the real token);
/// revoking a secondary cuts its stream while another secondary keeps streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_tokens_are_single_use_unexpired_and_unforgeable() {
    if testkit::locate::bao().is_none() {
        return;
    }
    let (a, b, c) = tokio::join!(cluster(1, 1, 1), cluster(1, 1, 1), cluster(1, 1, 1));
    let (a1, b1, c1) = (a.server(0), b.server(0), c.server(0));
    let used = pair(&a, &b, "dr1").await;
    let a_addr = a1.addr.clone();

    // Reusing dr1's token on C.
    assert_eq!(
        enable_refused(c1, &c.root, &used),
        format!("error unwrapping the secondary activation token at {a_addr}: wrapping token is not valid or does not exist")
    );
    // The same id twice.
    let out = a1.cli(
        Some(&a.root),
        &["write", "sys/replication/dr/primary/secondary-token", "id=dr1"],
    );
    assert!(
        fails(&out).contains("* a secondary with id \"dr1\" already exists; revoke it or pick another id"),
        "{out:?}"
    );

    // A token with ttl=1s, used after it expired (bao makes this one).
    let out = a1.bao(
        Some(&a.root),
        &[
            "write",
            "-field=wrapping_token",
            "sys/replication/dr/primary/secondary-token",
            "id=short",
            "ttl=1s",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let short = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let claims = jwt_claims(&short);
    assert_eq!(wal(&claims, "exp") - wal(&claims, "iat"), 1);
    let exp = wal(&claims, "exp");
    while (chrono::Utc::now().timestamp() as u64) <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        enable_refused(c1, &c.root, &short),
        "the secondary activation token has expired; create a new one on the primary"
    );
    // ... and with its exp pushed into the future by hand: the signature no longer matches.
    let revived = tamper(&short, |c| c["exp"] = json!(exp + 3600));
    assert_eq!(
        enable_refused(c1, &c.root, &revived),
        format!("error unwrapping the secondary activation token at {a_addr}: wrapping token is not valid or does not exist")
    );

    // A fresh token with a tampered payload (accessor changed) is refused and does not
    // burn the real one, which then activates C.
    let real = secondary_token(a1, &a.root, "dr-c", &[]);
    let forged = tamper(&real, |c| c["accessor"] = json!("forged-accessor"));
    assert_ne!(forged, real);
    assert_eq!(
        enable_refused(c1, &c.root, &forged),
        format!("error unwrapping the secondary activation token at {a_addr}: wrapping token is not valid or does not exist")
    );
    assert_eq!(
        enable_refused(c1, &c.root, "not-a-jwt"),
        "the secondary activation token is not a valid token (expected a JWT)"
    );
    assert_eq!(dr_status(c1).await, json!({"mode": "disabled"}));
    ok(&c1.cli(
        Some(&c.root),
        &[
            "write",
            "sys/replication/dr/secondary/enable",
            &format!("token={real}"),
        ],
    ));
    wait_status(c1, "C streams", |st| st["state"] == json!("stream-wals")).await;
    let st = dr_status(a1).await;
    let mut known: Vec<String> = serde_json::from_value(st["known_secondaries"].clone()).expect("ids");
    known.sort();
    assert_eq!(known, ["dr-c", "dr1", "short"]);

    // Revoke dr1: B leaves `connected`, falls behind; C keeps up.
    let out = a1.cli(
        Some(&a.root),
        &["write", "sys/replication/dr/primary/revoke-secondary", "id=dr1"],
    );
    assert!(out.status.success(), "{out:?}");
    let st = wait_status(b1, "B cut off", |st| st["connection_state"] != json!("ready")).await;
    assert_eq!(st["connection_state"], json!("transient_failure"));
    assert_eq!(st["primaries"][0]["connection_status"], json!("disconnected"));
    assert!(
        st["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("secondary \"dr1\" is unknown or revoked")),
        "{st:#}"
    );
    let b_wal = wal(&st, "last_remote_wal");
    let st = dr_status(a1).await;
    assert!(
        !st["known_secondaries"]
            .as_array()
            .expect("ids")
            .contains(&json!("dr1")),
        "{st:#}"
    );
    kv_put_mount_and_write(a1, &a.root).await;
    let target = wait_replicated(a1, c1).await;
    assert!(target > b_wal);
    let st = dr_status(b1).await;
    assert_eq!(
        wal(&st, "last_remote_wal"),
        b_wal,
        "a revoked secondary gets nothing: {st:#}"
    );
}

async fn kv_put_mount_and_write(s: &Server, root: &str) {
    mount_kv2(s, root).await;
    kv_put(s, root, "after-revoke", json!({"n": 1})).await;
}

/// Steps 4 and 6 of the brief: a batch DR operation token made on the primary before
/// the disaster (the seed's `dr-secondary-promotion` policy and `failover-handler`
/// role) promotes the secondary after the primary is killed mid-stream, and every write
/// the primary acknowledged up to the index the secondary had reached is there; what
/// the secondary holds is an unbroken prefix of the writer's sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_mid_stream_batch_token_promotes_without_losing_acked_writes() {
    let (mut a, b) = tokio::join!(cluster(1, 1, 1), cluster(1, 1, 1));
    let (a1, b1) = (a.server(0), b.server(0));
    let root = a.root.clone();
    mount_kv2(a1, &root).await;

    // The seed's batch token recipe, verbatim, on the primary.
    ok(&a1.cli_stdin(
        Some(&root),
        &["policy", "write", "dr-secondary-promotion", "-"],
        PROMOTION_POLICY,
    ));
    ok(&a1.cli(
        Some(&root),
        &[
            "write",
            "auth/token/roles/failover-handler",
            "allowed_policies=dr-secondary-promotion",
            "orphan=true",
            "renewable=false",
            "token_type=batch",
        ],
    ));
    let out = ok(&a1.cli(
        Some(&root),
        &[
            "token",
            "create",
            "-role=failover-handler",
            "-ttl=8h",
            "-format=json",
        ],
    ));
    let auth: Value = serde_json::from_str(&out).expect("json");
    let auth = &auth["auth"];
    let batch = auth["client_token"].as_str().expect("client_token").to_string();
    assert!(batch.starts_with("hvb."), "{batch}");
    // (vault's api.SecretAuth has no token_type, so `-format=json` has none either.)
    assert_eq!(
        (
            &auth["orphan"],
            &auth["renewable"],
            &auth["accessor"],
            &auth["policies"],
            &auth["lease_duration"]
        ),
        (
            &json!(true),
            &json!(false),
            &json!(""),
            &json!(["default", "dr-secondary-promotion"]),
            &json!(28800)
        )
    );
    let out = ok(&a1.cli(Some(&batch), &["token", "lookup", "-format=json"]));
    let lookup: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(lookup["data"]["type"], json!("batch"), "{lookup:#}");
    // A batch token without the policy.
    let out = ok(&a1.cli(
        Some(&root),
        &[
            "token",
            "create",
            "-type=batch",
            "-orphan",
            "-policy=default",
            "-field=token",
        ],
    ));
    let powerless = out.trim().to_string();
    assert!(powerless.starts_with("hvb."), "{powerless}");

    pair(&a, &b, "dr1").await;

    // Tokens that must not promote.
    for (token, error) in [
        (
            powerless.as_str(),
            "the DR operation token's policies do not allow update on sys/replication/dr/secondary/promote",
        ),
        ("hvb.not-a-token", "invalid DR operation token"),
        ("", "dr_operation_token is required"),
    ] {
        let r = promote(b1, token).await;
        assert_eq!(
            (r.status, &r.body),
            (400, &json!({ "errors": [error] })),
            "token {token:?}"
        );
    }
    assert_eq!(dr_status(b1).await["mode"], json!("secondary"));

    // A writer on A records every acknowledged write.
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, addr, root) = (acked.clone(), stop.clone(), a1.addr.clone(), root.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            for n in 0..100_000u64 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let r = http
                    .post(format!("{addr}/v1/secret/data/seq/{n:06}"))
                    .header("X-Vault-Token", &root)
                    .json(&json!({"data": {"n": n}}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => acked.lock().expect("acked").push(n),
                    _ => return,
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("acked").len() < 150 {
        assert!(Instant::now() < deadline, "writer too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every write acknowledged before reading last_wal has an index ≤ last_wal.
    let covered = acked.lock().expect("acked").len();
    let a_wal = wait_replicated(a1, b1).await;
    a.kill_all(); // the writer is still writing
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let acked = acked.lock().expect("acked").clone();
    let b_wal = wal(&dr_status(b1).await, "last_remote_wal");
    assert!(b_wal >= a_wal, "B at {b_wal}, A was at {a_wal}");

    // Promote B with the batch token (labnode CLI) and write at once.
    let out = b1.cli(
        None,
        &[
            "write",
            "sys/replication/dr/secondary/promote",
            &format!("dr_operation_token={batch}"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_warning(&stderr(&out), "Vault", PROMOTE_WARNING);
    b.active().await;
    kv_put(b1, &root, "after-failover", json!({"ok": true})).await;

    // Every write acknowledged before the covered point is on B with its value, and
    // B holds exactly seq/000000 .. seq/<m-1> for some m ≥ covered.
    let r = b1
        .request("LIST", "secret/metadata/seq/", Some(&root), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let keys: Vec<String> = serde_json::from_value(r.body["data"]["keys"].clone()).expect("keys");
    let m = keys.len();
    let expected: Vec<String> = (0..m as u64).map(|n| format!("{n:06}")).collect();
    assert_eq!(
        keys, expected,
        "B's keys are not a prefix of the writer's sequence"
    );
    assert!(
        m >= covered,
        "B has {m} keys, {covered} were acknowledged before last_wal {a_wal}"
    );
    assert!(
        m <= acked.len() + 1,
        "B has {m} keys, only {} acknowledged",
        acked.len()
    );
    for n in &acked[..covered] {
        assert_eq!(kv_get(b1, &root, &format!("seq/{n:06}")).await, json!({"n": n}));
    }
    eprintln!(
        "acknowledged {} writes, {covered} before A's last_wal {a_wal}; B had {m} at {b_wal} when A died",
        acked.len()
    );
}

/// Health of every node of `c` until all answer `code` with `mode` (deadline 10 s);
/// returns the last answers (addr, code, mode) for the assertion message.
async fn wait_all_health(c: &Cluster, code: u16, mode: &str) -> Result<(), Vec<(String, u16, Value)>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut seen = Vec::new();
        for s in c.running() {
            let h = s.health().await;
            seen.push((s.addr.clone(), h.status, h.body["replication_dr_mode"].clone()));
        }
        if seen.iter().all(|(_, st, m)| *st == code && *m == json!(mode)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(seen);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every node of a cluster reports the cluster's DR role in `sys/health`: standbys too,
/// after enable (472, secondary), promote (429, primary) and demote (472, secondary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_follow_dr_role_changes() {
    let (a, b) = tokio::join!(cluster(1, 1, 1), cluster(3, 1, 1));
    pair(&a, &b, "dr1").await;
    let mut failures = Vec::new();
    if let Err(seen) = wait_all_health(&b, 472, "secondary").await {
        failures.push(format!("after secondary enable: {seen:?}"));
    }
    let b_active = b.active().await;
    let token = dr_operation_token(b_active, &a.keys).await;
    let r = promote(b_active, &token).await;
    assert_eq!(r.status, 200, "{r:?}");
    let b_active = b.active().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut wrong = Vec::new();
        for s in b.running().filter(|s| s.addr != b_active.addr) {
            let h = s.health().await;
            if (h.status, &h.body["replication_dr_mode"]) != (429, &json!("primary")) {
                wrong.push(format!(
                    "{}: {} {}",
                    s.addr, h.status, h.body["replication_dr_mode"]
                ));
            }
        }
        if wrong.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            failures.push(format!("after promote, standbys: {wrong:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = b_active
        .request(
            "POST",
            "sys/replication/dr/primary/demote",
            Some(&a.root),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    if let Err(seen) = wait_all_health(&b, 472, "secondary").await {
        failures.push(format!("after demote: {seen:?}"));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
