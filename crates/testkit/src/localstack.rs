//! LocalStack (EC2, IAM, KMS on loopback) for the AWS tests: the one reachability probe, test
//! credentials, a KMS client for the setup the code under test never does, and unique names.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region};

/// The region every LocalStack test uses.
pub const REGION: &str = "us-east-1";

/// Variables that would override the key id or endpoint the tests configure.
pub const OVERRIDES: [&str; 4] = [
    "AWSKMS_WRAPPER_KEY_ID",
    "VAULT_AWSKMS_SEAL_KEY_ID",
    "AWS_KMS_ENDPOINT",
    "AWS_PROFILE",
];

/// LocalStack's endpoint: `LABNODE_LOCALSTACK_ENDPOINT`, else `http://127.0.0.1:4566`.
pub fn configured_endpoint() -> String {
    std::env::var("LABNODE_LOCALSTACK_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:4566".to_owned())
}

/// The endpoint of a LocalStack that answers its health check. `None` (after a SKIP notice)
/// only when `LABNODE_SKIP_LOCALSTACK=1`; a LocalStack that does not answer fails the test.
pub fn endpoint() -> Option<String> {
    if crate::skip_requested("LABNODE_SKIP_LOCALSTACK") {
        crate::skip("LABNODE_SKIP_LOCALSTACK=1");
        return None;
    }
    for var in OVERRIDES {
        assert!(
            std::env::var_os(var).is_none(),
            "unset {var}: it overrides the key id / endpoint these tests configure"
        );
    }
    let endpoint = configured_endpoint();
    if let Err(reason) = health(&endpoint) {
        panic!(
            "LocalStack at {endpoint} is not reachable ({reason}): start it with `scripts/localstack.sh start` \
             (or point LABNODE_LOCALSTACK_ENDPOINT at one); LABNODE_SKIP_LOCALSTACK=1 skips the tests that need it"
        );
    }
    Some(endpoint)
}

/// `GET /_localstack/health` over a plain socket (usable from sync and async tests alike).
fn health(endpoint: &str) -> Result<(), String> {
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("{endpoint} is not an http:// URL"))?
        .split('/')
        .next()
        .unwrap_or_default();
    let hostport = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let timeout = Duration::from_secs(3);
    let address = hostport
        .to_socket_addrs()
        .map_err(|e| format!("resolve {hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /_localstack/health HTTP/1.0\r\nHost: {authority}\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("health answered {status:?}"))
    }
}

/// LocalStack accepts any credentials.
pub fn credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "labnode-tests")
}

/// A plain SDK client for LocalStack's KMS.
pub fn kms(endpoint: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Creates a fresh symmetric key and returns its id.
pub async fn create_key(kms: &aws_sdk_kms::Client) -> String {
    let out = kms
        .create_key()
        .description("labnode tests")
        .send()
        .await
        .expect("CreateKey");
    out.key_metadata().expect("KeyMetadata").key_id().to_owned()
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}
