//! Real `labnode server` processes with the course's production config: the awskms seal
//! and `retry_join { auto_join = "provider=aws ..." }`, both served by LocalStack.
//!
//! Needs LocalStack at `LABNODE_LOCALSTACK_ENDPOINT` (default http://127.0.0.1:4566; start
//! it with `scripts/localstack.sh start`). When it is down the tests fail;
//! `LABNODE_SKIP_LOCALSTACK=1` makes them print SKIP instead.
//!
//! Every node listens on 8200/8201 of its own loopback address, as in the course; each test
//! owns one 127.0.5X.0/24 range and one tag value, so the tests run in parallel with each
//! other and with a hand-run cluster on 127.0.1.x.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use common::localstack::Ec2Lab;
use testkit::localstack::{create_key, kms, unique, REGION};
use testkit::{Node, Reply};

// ---------------------------------------------------------------------------------------
// Nodes: the course's config on <ip>:8200/8201, run as real processes, killed on drop.

/// LocalStack's test credentials, in every node's environment.
const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", REGION),
];

/// The course's first config block, with LocalStack's endpoint added to both AWS users.
fn course_config(data: &str, ip: &str, tag: &str, key_id: &str, endpoint: &str) -> String {
    let last = ip.rsplit('.').next().unwrap();
    format!(
        r#"storage "raft" {{
  path      = "{data}"
  node_id   = "node-{last}"
  retry_join {{
    auto_join = "provider=aws region={REGION} tag_key=vault tag_value={tag} endpoint={endpoint}"
    auto_join_scheme = "http"
  }}
}}
listener "tcp" {{
  address = "{ip}:8200"
  cluster_address = "{ip}:8201"
  tls_disable = 1
}}
seal "awskms" {{
  region = "{REGION}"
  kms_key_id = "{key_id}",
  endpoint = "{endpoint}"
}}
api_addr = "http://{ip}:8200"
cluster_addr = "https://{ip}:8201"
cluster_name = "vault-prod-us-east-1"
ui = true
log_level = "INFO"
"#
    )
}

/// A node on `<ip>:8200/8201` with the course config; not started.
fn course_node(ip: &str, tag: &str, key_id: &str, endpoint: &str) -> Node {
    let last = ip.rsplit('.').next().unwrap();
    let mut node = Node::on(common::labnode(), &format!("node-{last}"), ip, 8200, 8201);
    std::fs::create_dir_all(node.data()).unwrap();
    node.write_config(&course_config(
        &node.data().display().to_string(),
        ip,
        tag,
        key_id,
        endpoint,
    ));
    for (key, value) in AWS_ENV {
        node.env(key, value);
    }
    node
}

/// `labnode server -config=...` of `node` as a plain command, for a server expected to exit.
fn server_command(node: &Node) -> Command {
    let mut command = Command::new(node.labnode());
    command
        .arg("server")
        .arg(format!("-config={}", node.config.display()))
        .env("HOME", node.home())
        .env("NO_COLOR", "1")
        .envs(AWS_ENV)
        .stdin(Stdio::null());
    for var in testkit::localstack::OVERRIDES {
        command.env_remove(var);
    }
    command
}

async fn seal_status(node: &Node) -> Value {
    node.srv()
        .request("GET", "sys/seal-status", None, None)
        .await
        .body
}

/// Polls `check` on `node` until it holds, panicking with the last value and the log.
async fn wait_for(node: &Node, what: &str, timeout: Duration, check: impl AsyncCheck) {
    let deadline = Instant::now() + timeout;
    loop {
        let (done, seen) = check.check(node).await;
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: not {what} within {timeout:?} (last: {seen}); log:\n{}",
            node.host,
            node.srv().log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A condition on a node, polled by [`wait_for`]: (holds, what was seen).
trait AsyncCheck {
    async fn check(&self, node: &Node) -> (bool, String);
}

/// `sys/health` answers with this status (200 active, 429 standby, 503 sealed, 501 uninitialized).
struct Health(u16);

impl AsyncCheck for Health {
    async fn check(&self, node: &Node) -> (bool, String) {
        match node.srv().try_request("GET", "sys/health", None, None).await {
            Ok(Reply { status, body }) => (status == self.0, format!("{status} {body}")),
            Err(_) => (false, "no answer".to_owned()),
        }
    }
}

/// The raft configuration, read through this node, lists exactly these voters.
struct Voters<'a> {
    token: &'a str,
    want: &'a [&'a str],
}

impl AsyncCheck for Voters<'_> {
    async fn check(&self, node: &Node) -> (bool, String) {
        let Ok(Reply { status: 200, body }) = node
            .srv()
            .try_request("GET", "sys/storage/raft/configuration", Some(self.token), None)
            .await
        else {
            return (false, "no 200 answer".to_owned());
        };
        let servers = body["data"]["config"]["servers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut voters: Vec<String> = servers
            .iter()
            .filter(|s| s["voter"] == json!(true))
            .map(|s| s["node_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        voters.sort();
        (voters == self.want, format!("{servers:?}"))
    }
}

/// The node ids of the three-node tests.
const COURSE_NODES: [&str; 3] = ["node-11", "node-12", "node-13"];

/// The three course nodes are voters, read through the first, and the others serve as
/// unsealed standbys.
async fn wait_formed(nodes: &[Node], root: &str) {
    let voters = Voters {
        token: root,
        want: &COURSE_NODES,
    };
    wait_for(&nodes[0], "three voters", Duration::from_secs(60), voters).await;
    for node in &nodes[1..] {
        wait_for(node, "an unsealed standby", Duration::from_secs(30), Health(429)).await;
    }
}

/// `labnode operator init -format=json` against `node`, as the course does it.
fn operator_init(node: &Node) -> Value {
    let out = node.cli(None, &["operator", "init", "-format=json"]);
    serde_json::from_str(&testkit::cli::ok(&out)).expect("init output is JSON")
}

fn recovery_keys(init: &Value) -> Vec<String> {
    init["recovery_keys_b64"]
        .as_array()
        .expect("recovery_keys_b64")
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------

/// (a) The course config, three nodes: init gives recovery keys, every node auto-unseals
/// and joins through EC2 discovery, and a crashed node comes back unsealed.
#[tokio::test]
async fn course_config_forms_an_auto_unsealed_cluster() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let key_id = create_key(&kms(&endpoint)).await;
    let tag = unique("t51-a");
    let mut ec2 = Ec2Lab::new(&endpoint, "127.0.51.0/24").await;
    let ips = ["127.0.51.11", "127.0.51.12", "127.0.51.13"];
    for ip in ips {
        ec2.run_instance(ip, &tag).await;
    }
    let mut nodes: Vec<Node> = ips
        .iter()
        .map(|ip| course_node(ip, &tag, &key_id, &endpoint))
        .collect();
    for node in &mut nodes {
        node.start().await;
    }
    let init = operator_init(&nodes[0]);
    assert_eq!(recovery_keys(&init).len(), 5, "{init}");
    assert_eq!(init["recovery_keys_threshold"], json!(3), "{init}");
    assert_eq!(init["unseal_keys_b64"], json!([]), "{init}");
    let root = init["root_token"].as_str().unwrap().to_owned();

    wait_for(&nodes[0], "active", Duration::from_secs(30), Health(200)).await;
    wait_formed(&nodes, &root).await;
    for node in &nodes {
        let status = seal_status(node).await;
        assert_eq!(status["type"], json!("awskms"), "{status}");
        assert_eq!(status["recovery_seal"], json!(true), "{status}");
        assert_eq!(status["sealed"], json!(false), "{status}");
        assert_eq!(status["initialized"], json!(true), "{status}");
    }

    // A crash: the node comes back and unseals itself through KMS, no keys given.
    nodes[1].kill();
    nodes[1].start().await;
    wait_for(
        &nodes[1],
        "auto-unsealed after restart",
        Duration::from_secs(30),
        Health(429),
    )
    .await;
    let voters = Voters {
        token: &root,
        want: &COURSE_NODES,
    };
    wait_for(&nodes[1], "three voters", Duration::from_secs(30), voters).await;
}

/// (b) Discovery only offers running instances: while the leader's instance is stopped in
/// EC2, the other nodes find no one to join; once it runs again they join.
#[tokio::test]
async fn stopped_instance_is_not_a_join_candidate() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let key_id = create_key(&kms(&endpoint)).await;
    let tag = unique("t51-b");
    let mut ec2 = Ec2Lab::new(&endpoint, "127.0.52.0/24").await;
    let ips = ["127.0.52.11", "127.0.52.12", "127.0.52.13"];
    let mut instances = Vec::new();
    for ip in ips {
        instances.push(ec2.run_instance(ip, &tag).await);
    }
    ec2.instance_action("StopInstances", &instances[0]).await;

    let mut nodes: Vec<Node> = ips
        .iter()
        .map(|ip| course_node(ip, &tag, &key_id, &endpoint))
        .collect();
    nodes[0].start().await;
    let root = operator_init(&nodes[0])["root_token"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for(&nodes[0], "active", Duration::from_secs(30), Health(200)).await;
    for node in &mut nodes[1..] {
        node.start().await;
    }
    // Several discovery rounds (one every 2 s): the followers stay uninitialized.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for node in &nodes[1..] {
        let status = seal_status(node).await;
        assert_eq!(status["initialized"], json!(false), "{}: {status}", node.host);
    }
    let alone = ["node-11"];
    let voters = Voters {
        token: &root,
        want: &alone,
    };
    wait_for(&nodes[0], "the only voter", Duration::from_secs(1), voters).await;

    ec2.instance_action("StartInstances", &instances[0]).await;
    wait_formed(&nodes, &root).await;
}

/// (c) A seal that cannot work stops the server at once with a message naming the key or
/// the endpoint, instead of a node that serves sealed forever.
#[tokio::test]
async fn unusable_kms_stops_the_server() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let admin = kms(&endpoint);
    let disabled = create_key(&admin).await;
    admin
        .disable_key()
        .key_id(&disabled)
        .send()
        .await
        .expect("DisableKey");
    let missing = uuid::Uuid::new_v4().to_string();
    let dead_endpoint = format!("http://127.0.0.1:{}", testkit::ports::free_port());
    let tag = unique("t51-c");
    let cases = [
        (
            "127.0.53.11",
            missing.clone(),
            endpoint.clone(),
            vec![missing.as_str(), "not found"],
        ),
        (
            "127.0.53.12",
            disabled.clone(),
            endpoint.clone(),
            vec![disabled.as_str(), "Disabled"],
        ),
        (
            "127.0.53.13",
            disabled.clone(),
            dead_endpoint.clone(),
            vec![dead_endpoint.as_str(), "unreachable"],
        ),
    ];
    for (ip, key_id, kms_endpoint, expected) in cases {
        let node = course_node(ip, &tag, &key_id, &kms_endpoint);
        let started = Instant::now();
        let mut child = server_command(&node)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{ip}: labnode still running after 20 s with key {key_id} at {kms_endpoint}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "{ip}: {stderr}");
        for word in expected {
            assert!(stderr.contains(word), "{ip}: expected {word:?} in:\n{stderr}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{ip}: took {:?}",
            started.elapsed()
        );
    }
}

/// (d) Recovery keys generate a root token (3 of 5) but are no unseal keys: with the KMS
/// key disabled, a sealed node stays sealed whatever recovery keys it is given.
#[tokio::test]
async fn recovery_keys_generate_root_but_do_not_unseal() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let admin = kms(&endpoint);
    let key_id = create_key(&admin).await;
    let mut node = course_node("127.0.54.11", &unique("t51-d"), &key_id, &endpoint);
    node.start().await;
    let init = operator_init(&node);
    let keys = recovery_keys(&init);
    let root = init["root_token"].as_str().unwrap().to_owned();
    wait_for(&node, "active", Duration::from_secs(30), Health(200)).await;

    let Reply {
        status,
        body: attempt,
    } = node
        .srv()
        .request("PUT", "sys/generate-root/attempt", None, Some(json!({})))
        .await;
    assert_eq!(status, 200, "{attempt}");
    assert_eq!(attempt["required"], json!(3), "{attempt}");
    let nonce = attempt["nonce"].as_str().unwrap().to_owned();
    let otp = attempt["otp"].as_str().unwrap().to_owned();
    let mut last = Value::Null;
    for key in &keys[..3] {
        let Reply { status, body } = node
            .srv()
            .request(
                "PUT",
                "sys/generate-root/update",
                None,
                Some(json!({"key": key, "nonce": nonce})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        last = body;
    }
    assert_eq!(last["complete"], json!(true), "{last}");
    let encoded = last["encoded_token"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .unwrap();
    let token: String = bytes
        .iter()
        .zip(otp.as_bytes())
        .map(|(a, b)| char::from(a ^ b))
        .collect();
    let Reply { status, body } = node
        .srv()
        .request("GET", "auth/token/lookup-self", Some(&token), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["policies"], json!(["root"]), "{body}");

    // Without KMS the recovery keys cannot open the barrier.
    admin
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey");
    let Reply { status, body } = node.srv().request("PUT", "sys/seal", Some(&root), None).await;
    assert!(status == 204 || status == 200, "seal: {status} {body}");
    for key in &keys[..3] {
        let Reply { body, .. } = node
            .srv()
            .request("PUT", "sys/unseal", None, Some(json!({ "key": key })))
            .await;
        assert_ne!(body["sealed"], json!(false), "a recovery key unsealed: {body}");
    }
    assert_eq!(seal_status(&node).await["sealed"], json!(true));

    // With the key enabled again, KMS (not the recovery keys) unseals it.
    admin
        .enable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("EnableKey");
    let Reply { status, body } = node
        .srv()
        .request("PUT", "sys/unseal", None, Some(json!({ "key": keys[0] })))
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for(&node, "active again", Duration::from_secs(30), Health(200)).await;
}

/// (e) Shamir parameters on an awskms node are refused with Vault's message.
#[tokio::test]
async fn init_with_secret_shares_is_refused() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let key_id = create_key(&kms(&endpoint)).await;
    let mut node = course_node("127.0.55.11", &unique("t51-e"), &key_id, &endpoint);
    node.start().await;
    let Reply { status, body } = node
        .srv()
        .request(
            "PUT",
            "sys/init",
            None,
            Some(json!({"secret_shares": 5, "secret_threshold": 3})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"],
        json!(["parameters secret_shares,secret_threshold not applicable to seal type awskms"])
    );
    assert_eq!(seal_status(&node).await["initialized"], json!(false));
}
