//! Crash durability: every write the API acknowledged survives `kill -9`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

const WRITERS: usize = 8;
/// Upper bound on writes per writer, so the loop stops by itself even if the kill is late.
const MAX_PER_WRITER: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let node = common::node();
    let server = node.spawn().await;
    let (root, key) = server.init_unsealed().await;
    let r = server
        .request(
            "POST",
            "sys/mounts/kv",
            Some(&root),
            Some(json!({"type": "kv", "options": {"version": "1"}})),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = server
        .request(
            "POST",
            "sys/mounts/secret",
            Some(&root),
            Some(json!({"type": "kv-v2"})),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");

    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (acked, http, root, addr) = (acked.clone(), http.clone(), root.clone(), server.addr.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..MAX_PER_WRITER {
                let (path, body, value) = if i % 2 == 0 {
                    let v = format!("v1-{w}-{i}");
                    (format!("kv/w{w}/k{i}"), json!({ "value": v }), v)
                } else {
                    let v = format!("v2-{w}-{i}");
                    (
                        format!("secret/data/w{w}/k{i}"),
                        json!({ "data": { "value": v } }),
                        v,
                    )
                };
                let sent = http
                    .put(format!("{addr}/v1/{path}"))
                    .header("X-Vault-Token", &root)
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().is_success() => acked.lock().unwrap().push((path, value)),
                    _ => return,
                }
            }
        }));
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    for w in writers {
        w.await.expect("writer task");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 300,
        "only {} writes were acknowledged before the kill",
        acked.len()
    );

    let server = node.spawn().await;
    let status = server.request("GET", "sys/seal-status", None, None).await;
    assert_eq!(status.body["sealed"], true);
    server.unseal(&[key]).await;
    let mut lost = Vec::new();
    for (path, value) in &acked {
        let r = server.request("GET", path, Some(&root), None).await;
        let got = if path.starts_with("secret/") {
            &r.body["data"]["data"]["value"]
        } else {
            &r.body["data"]["value"]
        };
        if r.status != 200 || got != &json!(value) {
            lost.push(format!("{path}: {} {}", r.status, r.body));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost after kill -9, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}
