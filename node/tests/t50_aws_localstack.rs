//! The awskms seal and EC2 auto_join discovery against LocalStack's KMS and EC2 APIs.
//!
//! Needs LocalStack at `LABNODE_LOCALSTACK_ENDPOINT` (default http://127.0.0.1:4566); start
//! it with `scripts/localstack.sh start`. When it is not reachable the tests fail;
//! `LABNODE_SKIP_LOCALSTACK=1` makes them print SKIP instead.
//! Everything stays on loopback: the EC2 instances are records whose 127.0.1.x addresses
//! nothing connects to.

use std::time::{Duration, Instant};

use aws_query::QueryError;
use labnode::cluster::{discover_aws, DiscoverError};
use labnode::seal::{AwsKms, KmsError};
use labnode_config::AwsKmsConfig;

mod common;

use common::localstack::Ec2Lab;
use testkit::localstack::{create_key, kms, unique, REGION};

fn seal_config(endpoint: &str, key_id: &str) -> AwsKmsConfig {
    AwsKmsConfig {
        region: Some(REGION.to_owned()),
        kms_key_id: Some(key_id.to_owned()),
        endpoint: Some(endpoint.to_owned()),
        access_key: Some("test".to_owned()),
        secret_key: Some("test".to_owned()),
        ..AwsKmsConfig::default()
    }
}

#[tokio::test]
async fn kms_envelope_round_trip() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let admin = kms(&endpoint);
    let key_id = create_key(&admin).await;
    let kms = AwsKms::connect(&seal_config(&endpoint, &key_id)).await.unwrap();
    assert_eq!(kms.key_id(), key_id);

    let root_key = b"0123456789abcdef0123456789abcdef";
    let blob = kms.encrypt(root_key).await.unwrap();
    assert_eq!(blob[0], 1, "version byte");
    assert!(
        !blob.windows(root_key.len()).any(|w| w == root_key),
        "plaintext leaked into the blob"
    );
    assert_eq!(kms.decrypt(&blob).await.unwrap(), root_key);

    let again = kms.encrypt(root_key).await.unwrap();
    assert_ne!(blob, again, "each encrypt draws a fresh data key and nonce");

    let large: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let large_blob = kms.encrypt(&large).await.unwrap();
    assert_eq!(kms.decrypt(&large_blob).await.unwrap(), large);
    assert_eq!(kms.decrypt(&kms.encrypt(b"").await.unwrap()).await.unwrap(), b"");

    // A node configured with an alias of the same key opens blobs written under its id.
    let alias = format!("alias/{}", unique("labnode-t50"));
    admin
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");
    let by_alias = AwsKms::connect(&seal_config(&endpoint, &alias)).await.unwrap();
    assert_eq!(by_alias.key_id(), alias);
    assert_eq!(by_alias.decrypt(&blob).await.unwrap(), root_key);

    let mut tampered = blob.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let err = kms.decrypt(&tampered).await.unwrap_err();
    assert!(matches!(err, KmsError::Authentication { .. }), "{err}");
    let err = kms.decrypt(&blob[..10]).await.unwrap_err();
    assert!(matches!(err, KmsError::MalformedBlob(_)), "{err}");
}

#[tokio::test]
async fn kms_missing_key_is_named() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let missing = "11111111-2222-3333-4444-555555555555";
    let err = AwsKms::connect(&seal_config(&endpoint, missing))
        .await
        .unwrap_err();
    assert!(matches!(err, KmsError::KeyNotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(missing) && message.contains(&endpoint),
        "{message}"
    );

    let err = AwsKms::connect(&seal_config(&endpoint, "alias/labnode-no-such-alias"))
        .await
        .unwrap_err();
    assert!(matches!(err, KmsError::KeyNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn kms_disabled_key_is_refused() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let admin = kms(&endpoint);
    let key_id = create_key(&admin).await;
    let kms = AwsKms::connect(&seal_config(&endpoint, &key_id)).await.unwrap();
    let blob = kms.encrypt(b"secret").await.unwrap();

    admin
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey");
    let err = AwsKms::connect(&seal_config(&endpoint, &key_id))
        .await
        .unwrap_err();
    match &err {
        KmsError::KeyNotEnabled { state, .. } => assert_eq!(state, "Disabled"),
        other => panic!("expected KeyNotEnabled, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&key_id) && message.contains("Disabled"),
        "{message}"
    );

    // A seal that connected before the key was disabled fails clearly on use.
    let err = kms.encrypt(b"more").await.unwrap_err();
    assert!(matches!(err, KmsError::KeyNotEnabled { .. }), "{err:?}");
    let err = kms.decrypt(&blob).await.unwrap_err();
    assert!(matches!(err, KmsError::KeyNotEnabled { .. }), "{err:?}");
}

#[tokio::test]
async fn kms_unreachable_endpoint_fails_fast() {
    // Needs no LocalStack: the endpoint is a loopback port nobody listens on.
    let port = testkit::ports::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let err = AwsKms::connect(&seal_config(&endpoint, "alias/anything"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, KmsError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&endpoint), "{err}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

// ---------------------------------------------------------------------------------------
// EC2 auto_join

/// Polls discovery until it returns `want` (instances may pass through `pending`).
async fn discover_until(auto_join: &str, want: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut got = discover_aws(auto_join, "http", 8200).await.unwrap();
        got.sort();
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn ec2_auto_join_discovers_running_tagged_instances() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let mut lab = Ec2Lab::new(&endpoint, "127.0.1.0/24").await;
    let tag = unique("labnode-t50");
    for ip in ["127.0.1.11", "127.0.1.12", "127.0.1.13"] {
        lab.run_instance(ip, &tag).await;
    }
    // Same tag key, other value: must not be a candidate.
    lab.run_instance("127.0.1.14", &format!("{tag}-other")).await;

    let auto_join = format!(
        "provider=aws region={REGION} tag_key=vault tag_value={tag} endpoint={endpoint} \
         access_key_id=test secret_access_key=test"
    );
    let all = [
        "http://127.0.1.11:8200",
        "http://127.0.1.12:8200",
        "http://127.0.1.13:8200",
    ];
    assert_eq!(discover_until(&auto_join, &all).await, all);

    lab.instance_action("StopInstances", &lab.instances[1]).await;
    let remaining = ["http://127.0.1.11:8200", "http://127.0.1.13:8200"];
    assert_eq!(discover_until(&auto_join, &remaining).await, remaining);

    let unknown_tag = auto_join.replace(&tag, &unique("labnode-t50-nobody"));
    assert!(discover_aws(&unknown_tag, "http", 8200).await.unwrap().is_empty());
}

#[tokio::test]
async fn ec2_auto_join_errors_are_clear() {
    let err = discover_aws("provider=gce project_name=p tag_value=v", "https", 8200)
        .await
        .unwrap_err();
    assert!(matches!(err, DiscoverError::InvalidAutoJoin(_)), "{err:?}");
    assert!(err.to_string().contains("\"gce\""), "{err}");

    let port = testkit::ports::free_port();
    let started = Instant::now();
    let err = discover_aws(
        &format!(
            "provider=aws region=us-east-1 tag_key=vault tag_value=x endpoint=http://127.0.0.1:{port} \
             access_key_id=test secret_access_key=test"
        ),
        "https",
        8200,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, DiscoverError::Ec2(QueryError::Unreachable { .. })),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
