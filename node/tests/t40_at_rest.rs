//! Nothing secret is stored in plaintext: after writing known values and creating tokens,
//! the raw bytes of every file under the data directory contain none of them.

mod common;

use serde_json::json;

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            let bytes = std::fs::read(f).expect("read data file");
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .map(|f| f.display().to_string())
        .collect()
}

#[tokio::test]
async fn no_secret_or_token_in_plaintext_on_disk() {
    let node = common::node();
    let server = node.spawn().await;
    let (root, key) = server.init_unsealed().await;
    let ok = |r: testkit::Reply, code: u16| {
        assert_eq!(r.status, code, "{r:?}");
        r
    };
    ok(
        server
            .request(
                "POST",
                "sys/mounts/secret",
                Some(&root),
                Some(json!({"type": "kv-v2"})),
            )
            .await,
        204,
    );
    ok(
        server
            .request("POST", "sys/mounts/kv", Some(&root), Some(json!({"type": "kv"})))
            .await,
        204,
    );
    let v2_secret = "PlaintextCanary-v2-7f3a9c1e5b";
    let v1_secret = "PlaintextCanary-v1-2d8e4f6a0c";
    ok(
        server
            .request(
                "PUT",
                "secret/data/app",
                Some(&root),
                Some(json!({"data": {"password": v2_secret}})),
            )
            .await,
        200,
    );
    ok(
        server
            .request("PUT", "kv/app", Some(&root), Some(json!({"password": v1_secret})))
            .await,
        204,
    );
    ok(
        server
            .request(
                "PUT",
                "sys/policies/acl/reader",
                Some(&root),
                Some(json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"})),
            )
            .await,
        204,
    );
    let mut tokens = vec![root.clone()];
    for body in [
        json!({"policies": ["reader"]}),
        json!({"policies": ["reader"], "ttl": "1h", "num_uses": 5}),
        json!({"policies": ["reader"], "type": "batch"}),
    ] {
        let r = ok(
            server
                .request("POST", "auth/token/create", Some(&root), Some(body))
                .await,
            200,
        );
        tokens.push(r.body["auth"]["client_token"].as_str().unwrap().to_string());
    }
    let wrapped = ok(
        server
            .raw("GET", "kv/app", Some(&root), None, &[("X-Vault-Wrap-TTL", "300")])
            .await,
        200,
    );
    tokens.push(wrapped.body["wrap_info"]["token"].as_str().unwrap().to_string());
    for t in &tokens[1..] {
        let r = server
            .request("GET", "auth/token/lookup-self", Some(t), None)
            .await;
        assert!(
            r.status == 200 || t == tokens.last().unwrap(),
            "token works: {r:?}"
        );
    }
    server.stop();

    let data = node.data();
    let files = files_under(&data);
    assert!(
        files.iter().any(|f| f.ends_with("raft.redb")),
        "raft.redb present: {files:?}"
    );
    let key_bytes = hex::decode(&key).unwrap();
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        (format!("secret {v2_secret}"), v2_secret.as_bytes().to_vec()),
        (format!("secret {v1_secret}"), v1_secret.as_bytes().to_vec()),
        ("unseal key (hex)".into(), key.as_bytes().to_vec()),
        ("unseal key (raw bytes)".into(), key_bytes),
    ];
    for t in &tokens {
        needles.push((format!("token {t}"), t.as_bytes().to_vec()));
        let body = t.split_once('.').map(|(_, b)| b).unwrap_or(t);
        needles.push((format!("token body {body}"), body.as_bytes().to_vec()));
    }
    for (what, needle) in &needles {
        let found = files_containing(&data, needle);
        assert!(found.is_empty(), "{what} found in plaintext in {found:?}");
    }

    let server = node.spawn().await;
    server.unseal(&[key]).await;
    let r = server.request("GET", "secret/data/app", Some(&root), None).await;
    assert_eq!(r.body["data"]["data"]["password"], v2_secret);
    server.stop();
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}
