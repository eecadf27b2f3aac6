//! The awskms seal and EC2 auto_join discovery against LocalStack's KMS and EC2 APIs.
//!
//! Needs LocalStack at `LABNODE_LOCALSTACK_ENDPOINT` (default http://127.0.0.1:4566); start
//! it with `scripts/localstack.sh start`. When it is not reachable the tests print SKIP and
//! pass, unless `LABNODE_REQUIRE_LOCALSTACK` is set (CI sets it), in which case they fail.
//! Everything stays on loopback: the EC2 instances are records whose 127.0.1.x addresses
//! nothing connects to.

use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use labnode::cluster::discover::Ec2Client;
use labnode::cluster::{discover_aws, DiscoverError};
use labnode::config::AwsKmsConfig;
use labnode::seal::{AwsKms, KmsError};

const REGION: &str = "us-east-1";

/// The LocalStack endpoint, or `None` (after a SKIP notice) when it is down and not required.
async fn localstack(test: &str) -> Option<String> {
    for var in [
        "AWSKMS_WRAPPER_KEY_ID",
        "VAULT_AWSKMS_SEAL_KEY_ID",
        "AWS_KMS_ENDPOINT",
    ] {
        assert!(
            std::env::var_os(var).is_none(),
            "unset {var}: it overrides the key id / endpoint these tests configure"
        );
    }
    let endpoint = std::env::var("LABNODE_LOCALSTACK_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:4566".to_owned());
    let health = reqwest::Client::new()
        .get(format!("{endpoint}/_localstack/health"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    match health {
        Ok(response) if response.status().is_success() => Some(endpoint),
        outcome => {
            let reason = match outcome {
                Ok(response) => format!("HTTP {}", response.status()),
                Err(e) => e.to_string(),
            };
            if std::env::var("LABNODE_REQUIRE_LOCALSTACK").is_ok_and(|v| !v.is_empty() && v != "0") {
                panic!("LABNODE_REQUIRE_LOCALSTACK is set but LocalStack at {endpoint} is not reachable: {reason}");
            }
            eprintln!(
                "SKIP {test}: LocalStack not reachable at {endpoint} ({reason}); \
                 run scripts/localstack.sh start (set LABNODE_REQUIRE_LOCALSTACK=1 to fail instead)"
            );
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn test_credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "t50")
}

// ---------------------------------------------------------------------------------------
// KMS

/// A plain SDK client for the setup the seal itself never does (CreateKey, DisableKey).
fn kms_admin(endpoint: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(test_credentials())
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Creates a fresh symmetric key and returns its id.
async fn create_key(admin: &aws_sdk_kms::Client) -> String {
    let out = admin
        .create_key()
        .description("labnode t50")
        .send()
        .await
        .expect("CreateKey");
    out.key_metadata().expect("KeyMetadata").key_id().to_owned()
}

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
    let Some(endpoint) = localstack("kms_envelope_round_trip").await else {
        return;
    };
    let admin = kms_admin(&endpoint);
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
    let Some(endpoint) = localstack("kms_missing_key_is_named").await else {
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
    let Some(endpoint) = localstack("kms_disabled_key_is_refused").await else {
        return;
    };
    let admin = kms_admin(&endpoint);
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
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
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

/// The text of the first element named `name` in an EC2 XML response.
fn xml_text(xml: &str, name: &str) -> String {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .find(|n| n.tag_name().name() == name)
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        .to_owned()
}

/// Terminates the instances and removes the subnet and VPC even when an assertion fails.
struct Ec2Lab {
    endpoint: String,
    vpc_id: String,
    subnet_id: String,
    instances: Vec<String>,
}

impl Drop for Ec2Lab {
    fn drop(&mut self) {
        let endpoint = self.endpoint.clone();
        let vpc = self.vpc_id.clone();
        let subnet = self.subnet_id.clone();
        let instances = std::mem::take(&mut self.instances);
        // Drop cannot await inside the test's runtime; clean up on a thread with its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let ec2 = Ec2Client::new(Some(&endpoint), REGION, test_credentials()).unwrap();
                let mut params = vec![("Action".to_owned(), "TerminateInstances".to_owned())];
                for (i, id) in instances.iter().enumerate() {
                    params.push((format!("InstanceId.{}", i + 1), id.clone()));
                }
                let params: Vec<(&str, &str)> =
                    params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                if let Err(e) = ec2.call(&params).await {
                    eprintln!("cleanup: TerminateInstances failed: {e}");
                }
                for (action, key, id) in [
                    ("DeleteSubnet", "SubnetId", &subnet),
                    ("DeleteVpc", "VpcId", &vpc),
                ] {
                    if let Err(e) = ec2.call(&[("Action", action), (key, id)]).await {
                        eprintln!("cleanup: {action} {id} failed: {e}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn run_instance(ec2: &Ec2Client, subnet_id: &str, ip: &str, tag_value: &str) -> String {
    let xml = ec2
        .call(&[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", subnet_id),
            ("PrivateIpAddress", ip),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "vault"),
            ("TagSpecification.1.Tag.1.Value", tag_value),
        ])
        .await
        .expect("RunInstances");
    xml_text(&xml, "instanceId")
}

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
    let Some(endpoint) = localstack("ec2_auto_join_discovers_running_tagged_instances").await else {
        return;
    };
    let ec2 = Ec2Client::new(Some(&endpoint), REGION, test_credentials()).unwrap();
    let vpc_xml = ec2
        .call(&[("Action", "CreateVpc"), ("CidrBlock", "127.0.0.0/16")])
        .await
        .expect("CreateVpc");
    let vpc_id = xml_text(&vpc_xml, "vpcId");
    let mut lab = Ec2Lab {
        endpoint: endpoint.clone(),
        vpc_id: vpc_id.clone(),
        subnet_id: String::new(),
        instances: Vec::new(),
    };
    let subnet_xml = ec2
        .call(&[
            ("Action", "CreateSubnet"),
            ("VpcId", &vpc_id),
            ("CidrBlock", "127.0.1.0/24"),
        ])
        .await
        .expect("CreateSubnet");
    lab.subnet_id = xml_text(&subnet_xml, "subnetId");

    let tag = unique("labnode-t50");
    for ip in ["127.0.1.11", "127.0.1.12", "127.0.1.13"] {
        let id = run_instance(&ec2, &lab.subnet_id, ip, &tag).await;
        lab.instances.push(id);
    }
    // Same tag key, other value: must not be a candidate.
    let decoy = run_instance(&ec2, &lab.subnet_id, "127.0.1.14", &format!("{tag}-other")).await;
    lab.instances.push(decoy);

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

    ec2.call(&[("Action", "StopInstances"), ("InstanceId.1", &lab.instances[1])])
        .await
        .expect("StopInstances");
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

    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
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
    assert!(matches!(err, DiscoverError::Unreachable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
