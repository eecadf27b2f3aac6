//! The vaultrs client (a third-party Rust Vault client) against a raft node: KV v2 and KV v1.

mod common;

use std::collections::HashMap;

use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use vaultrs::{kv1, kv2, sys};

fn client(addr: &str, token: &str) -> VaultClient {
    VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(addr)
            .token(token)
            .build()
            .expect("vaultrs settings"),
    )
    .expect("vaultrs client")
}

#[tokio::test]
async fn vaultrs_kv_round_trips() {
    let node = common::node();
    let server = node.spawn().await;
    let (root, _) = server.init_unsealed().await;
    let c = client(&server.addr, &root);

    let health = sys::health(&c).await.expect("health");
    assert!(health.initialized);
    assert!(!health.sealed);

    sys::mount::enable(&c, "secret", "kv-v2", None)
        .await
        .expect("mount kv-v2");
    sys::mount::enable(&c, "kv", "kv", None)
        .await
        .expect("mount kv v1");

    let first = HashMap::from([("user", "alice"), ("password", "pw-1")]);
    let meta = kv2::set(&c, "secret", "app/db", &first).await.expect("kv2 set");
    assert_eq!(meta.version, 1);
    assert!(!meta.destroyed);
    let second = HashMap::from([("user", "alice"), ("password", "pw-2")]);
    assert_eq!(
        kv2::set(&c, "secret", "app/db", &second).await.unwrap().version,
        2
    );

    let latest: HashMap<String, String> = kv2::read(&c, "secret", "app/db").await.expect("kv2 read");
    assert_eq!(latest["password"], "pw-2");
    assert_eq!(latest.len(), 2);
    let v1: HashMap<String, String> = kv2::read_version(&c, "secret", "app/db", 1).await.unwrap();
    assert_eq!(v1["password"], "pw-1");
    assert_eq!(
        kv2::list(&c, "secret", "app").await.unwrap(),
        vec!["db".to_string()]
    );
    let md = kv2::read_metadata(&c, "secret", "app/db")
        .await
        .expect("metadata");
    assert_eq!(md.current_version, 2);
    assert_eq!(md.oldest_version, 1);
    assert_eq!(md.versions.len(), 2);

    kv2::delete_latest(&c, "secret", "app/db")
        .await
        .expect("soft delete");
    let err = kv2::read::<HashMap<String, String>>(&c, "secret", "app/db")
        .await
        .expect_err("deleted latest version is not readable");
    // A soft-deleted version answers 404 with the full envelope (as bao does), which vaultrs
    // reports as a REST error rather than an API error.
    assert!(format!("{err:?}").contains("code: 404"), "{err:?}");
    kv2::undelete_versions(&c, "secret", "app/db", vec![2])
        .await
        .expect("undelete");
    let back: HashMap<String, String> = kv2::read(&c, "secret", "app/db").await.unwrap();
    assert_eq!(back["password"], "pw-2");

    let data = HashMap::from([("conn", "postgres://db")]);
    kv1::set(&c, "kv", "team/db", &data).await.expect("kv1 set");
    kv1::set(&c, "kv", "team/cache", &HashMap::from([("conn", "redis://")]))
        .await
        .unwrap();
    let got: HashMap<String, String> = kv1::get(&c, "kv", "team/db").await.expect("kv1 get");
    assert_eq!(
        got,
        HashMap::from([("conn".to_string(), "postgres://db".to_string())])
    );
    let keys = kv1::list(&c, "kv", "team").await.expect("kv1 list").data.keys;
    assert_eq!(keys, vec!["cache".to_string(), "db".to_string()]);
    kv1::delete(&c, "kv", "team/db").await.expect("kv1 delete");
    let err = kv1::get::<HashMap<String, String>>(&c, "kv", "team/db")
        .await
        .expect_err("deleted");
    assert!(matches!(err, ClientError::APIError { code: 404, .. }), "{err:?}");

    let bad = client(&server.addr, "hvs.not-a-real-token");
    let err = kv1::get::<HashMap<String, String>>(&bad, "kv", "team/cache")
        .await
        .expect_err("wrong token");
    assert!(
        matches!(err, ClientError::APIError { code: 403, ref errors } if errors == &["permission denied"]),
        "{err:?}"
    );
}
