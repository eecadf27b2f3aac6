//! KV v1 writes and reads at `kv/` with a client of the test's choosing, for tests that
//! count acknowledged writes across failures.

use std::time::Duration;

use serde_json::json;

use crate::server::{Reply, Server};

/// A client that gives up after `timeout` (so a hung request is an observable failure).
pub fn http(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("client")
}

/// One KV v1 write; `Ok(status)` when the server answered, `Err` on transport errors.
pub async fn put_kv(
    client: &reqwest::Client,
    addr: &str,
    token: &str,
    key: &str,
    value: &str,
) -> Result<u16, String> {
    client
        .put(format!("{addr}/v1/kv/{key}"))
        .header("X-Vault-Token", token)
        .json(&json!({ "value": value }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

/// One KV v1 read: the stored `value`, `None` for 404.
pub async fn get_kv(server: &Server, token: &str, key: &str) -> Option<String> {
    let r: Reply = server
        .request("GET", &format!("kv/{key}"), Some(token), None)
        .await;
    match r.status {
        200 => Some(r.body["data"]["value"].as_str().expect("value").to_string()),
        404 => None,
        _ => panic!("read kv/{key} on {}: {r:?}", server.addr),
    }
}
