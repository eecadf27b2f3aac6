//! The course's configs verbatim, golden error messages, merge rules and env overrides.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// Seed slide "How Do I Configure Integrated Storage?" (first version): note the stray
/// comma after `kms_key_id`.
const SEED_FULL: &str = r#"storage "raft" {
  path      = "/opt/vault/data"
  node_id   = "node-a.hcvop.com"
  retry_join {
    auto_join = "provider=aws region=us-east-1 tag_key=vault tag_value=east-1"
  }
}

listener "tcp" {
  address = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_disable = 0
}

seal "awskms" {
  region = "us-east-1"
  kms_key_id = "12345678-abcd-1234-abcd-123456789101",
}

api_addr = "https://vault.hcvop.com:8200"
cluster_addr = "https://node-a.hcvop.com:8201"
cluster_name = "vault-prod-us-east-1"
ui = true
log_level = "INFO"
"#;

/// Second version of the same slide: no blank lines and a leading space in `cluster_addr`.
const SEED_FULL_SPACE: &str = r#"storage "raft" {
  path      = "/opt/vault/data"
  node_id   = "node-a.hcvop.com"
  retry_join {
    auto_join = "provider=aws region=us-east-1 tag_key=vault tag_value=east-1"
  }
}
listener "tcp" {
  address = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_disable = 0
}
seal "awskms" {
  region = "us-east-1"
  kms_key_id = "12345678-abcd-1234-abcd-123456789101",
}
api_addr = "https://vault.hcvop.com:8200"
cluster_addr = " https://node-a.hcvop.com:8201"
cluster_name = "vault-prod-us-east-1"
ui = true
log_level = "INFO"
"#;

/// Seed slide "Multiple retry_join stanzas".
const SEED_RETRY_JOIN: &str = r#"storage "raft" {
  path      = "/opt/vault/data"
  node_id   = "node-a.hcvop.com"
  retry_join {
    leader_api_addr = "https://node-b.hcvop.com:8200"
  }
  retry_join {
    leader_api_addr = "https://node-c.hcvop.com:8200"
  }
  retry_join {
    leader_api_addr = "https://node-d.hcvop.com:8200"
  }
  retry_join {
    leader_api_addr = "https://node-e.hcvop.com:8200"
  }
}
"#;

/// Seed slide "Using auto_join to discover other Vault nodes using tags".
const SEED_AUTO_JOIN: &str = r#"storage "raft" {
  path      = "/opt/vault/data"
  node_id   = "node-a.hcvop.com"
  retry_join {
    auto_join = "provider=aws region=us-east-1 tag_key=vault tag_value=east-1"
  }
}
"#;

const AUTO_JOIN: &str = "provider=aws region=us-east-1 tag_key=vault tag_value=east-1";

fn seed_raft(retry_join: Vec<RetryJoin>) -> RaftConfig {
    RaftConfig {
        path: PathBuf::from("/opt/vault/data"),
        node_id: Some("node-a.hcvop.com".to_owned()),
        performance_multiplier: 0,
        snapshot_threshold: 8192,
        trailing_logs: 10_000,
        max_entry_size: 1_048_576,
        retry_join_as_non_voter: false,
        autopilot_reconcile_interval: None,
        autopilot_update_interval: None,
        retry_join,
    }
}

fn auto_join() -> RetryJoin {
    RetryJoin {
        auto_join: Some(AUTO_JOIN.to_owned()),
        ..RetryJoin::default()
    }
}

fn leader(addr: &str) -> RetryJoin {
    RetryJoin {
        leader_api_addr: Some(addr.to_owned()),
        ..RetryJoin::default()
    }
}

const TLS_WARNING: &str = "listener \"tcp\" has TLS enabled but no tls_cert_file/tls_key_file; \
                           set both, or tls_disable = true";

fn seed_full_expected(origin: &str, warnings: Vec<String>) -> Config {
    Config {
        storage: StorageConfig::Raft(seed_raft(vec![auto_join()])),
        listeners: vec![ListenerConfig {
            address: "0.0.0.0:8200".to_owned(),
            cluster_address: Some("0.0.0.0:8201".to_owned()),
            ..ListenerConfig::default()
        }],
        seal: SealConfig::AwsKms(AwsKmsConfig {
            region: Some("us-east-1".to_owned()),
            kms_key_id: Some("12345678-abcd-1234-abcd-123456789101".to_owned()),
            ..AwsKmsConfig::default()
        }),
        api_addr: Some("https://vault.hcvop.com:8200".to_owned()),
        cluster_addr: Some("https://node-a.hcvop.com:8201".to_owned()),
        cluster_name: Some("vault-prod-us-east-1".to_owned()),
        ui: true,
        log_level: Some("info".to_owned()),
        log_format: None,
        disable_mlock: false,
        sources: vec![PathBuf::from(origin)],
        warnings,
    }
}

fn comma_warning(file: &str, line: usize) -> String {
    format!(
        "{file}:{line}:54: stray trailing comma after kms_key_id accepted; remove the trailing comma \
         (HCL separates attributes with newlines)"
    )
}

#[test]
fn seed_full_config_parses_with_comma_warning() {
    let config = parse_str(SEED_FULL, "seed.hcl").expect("seed config must parse");
    let expected = seed_full_expected(
        "seed.hcl",
        vec![
            comma_warning("seed.hcl", 17),
            format!("seed.hcl:9: {TLS_WARNING}"),
        ],
    );
    assert_eq!(config, expected);
}

#[test]
fn seed_leading_space_cluster_addr_is_trimmed_with_warning() {
    let config = parse_str(SEED_FULL_SPACE, "seed2.hcl").expect("seed config must parse");
    let expected = seed_full_expected(
        "seed2.hcl",
        vec![
            comma_warning("seed2.hcl", 15),
            format!("seed2.hcl:8: {TLS_WARNING}"),
            "seed2.hcl:18: cluster_addr = \" https://node-a.hcvop.com:8201\" has surrounding whitespace; \
             using \"https://node-a.hcvop.com:8201\" (remove the whitespace)"
                .to_owned(),
        ],
    );
    assert_eq!(config, expected);
}

#[test]
fn seed_multiple_retry_join() {
    let config = parse_str(SEED_RETRY_JOIN, "rj.hcl").expect("seed config must parse");
    let joins = ["b", "c", "d", "e"].map(|n| leader(&format!("https://node-{n}.hcvop.com:8200")));
    assert_eq!(config.storage, StorageConfig::Raft(seed_raft(joins.to_vec())));
    assert_eq!(config.listeners, vec![]);
    assert_eq!(config.seal, SealConfig::Shamir);
    assert_eq!(config.warnings, Vec::<String>::new());
    assert_eq!(config.log_level, None);
    assert!(!config.ui);
}

#[test]
fn seed_auto_join() {
    let config = parse_str(SEED_AUTO_JOIN, "aj.hcl").expect("seed config must parse");
    assert_eq!(config.storage, StorageConfig::Raft(seed_raft(vec![auto_join()])));
    assert_eq!(config.warnings, Vec::<String>::new());
}

/// The course page the `SEED_*` constants are copied from, inside the shared seed directory.
const SEED_PAGE: &str = "000_33db928fc132ffb5.txt";

/// The constants above are byte-for-byte copies of the course's blocks. The seed lives in
/// `shared/seed/` beside the project root (`LABNODE_SEED_DIR` overrides the directory); a
/// missing seed fails the test unless `LABNODE_SKIP_SEED=1` asks to skip it.
#[test]
fn seed_constants_are_verbatim() {
    let dir = std::env::var_os("LABNODE_SEED_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/seed"),
        PathBuf::from,
    );
    let page = dir.join(SEED_PAGE);
    let seed = match std::fs::read_to_string(&page) {
        Ok(seed) => seed,
        Err(e) if std::env::var_os("LABNODE_SKIP_SEED").is_some_and(|v| v == "1") => {
            println!("SKIP: cannot read the course seed {}: {e}", page.display());
            return;
        }
        Err(e) => panic!(
            "cannot read the course seed {}: {e} (set LABNODE_SEED_DIR to the seed directory, \
             or LABNODE_SKIP_SEED=1 to skip)",
            page.display()
        ),
    };
    for block in [SEED_FULL, SEED_FULL_SPACE, SEED_RETRY_JOIN, SEED_AUTO_JOIN] {
        assert!(seed.contains(&format!("\n{block}```")), "not verbatim:\n{block}");
    }
}

#[test]
fn full_key_set_parses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let text = format!(
        r#"
storage "raft" {{
  path = "/data"
  node_id = "n1"
  performance_multiplier = "5"
  snapshot_threshold = 100
  trailing_logs = 50
  max_entry_size = 2048
  retry_join_as_non_voter = "true"
  autopilot_reconcile_interval = "10s"
  autopilot_update_interval = 2
  retry_join {{
    leader_api_addr = "https://10.0.1.10:8200"
    leader_tls_servername = "vault.internal"
    leader_ca_cert_file = "{ca}"
    leader_client_cert = <<EOT
CERT
EOT
    leader_client_key = "KEY"
  }}
  retry_join {{
    auto_join = "provider=aws region=eu-west-1 tag_key=vault tag_value=prod"
    auto_join_scheme = "http"
    auto_join_port = 8300
  }}
}}
listener "tcp" {{
  address = "[::]:8200"
  tls_cert_file = "/tls/cert.pem"
  tls_key_file = "/tls/key.pem"
  tls_client_ca_file = "/tls/ca.pem"
  tls_min_version = "tls13"
  tls_require_and_verify_client_cert = 1
  max_request_size = 1024
  max_request_duration = "1m30s"
  tls_cipher_suites = "TLS_AES_128_GCM_SHA256"
  http_read_timeout = "30s"
  x_forwarded_for_hop_skips = 1
  telemetry {{
    unauthenticated_metrics_access = true
  }}
}}
listener "tcp" {{
  address = "127.0.0.1:9200"
  tls_disable = "1"
}}
seal "awskms" {{
  region = "eu-west-1"
  kms_key_id = "alias/vault-unseal"
  endpoint = "http://localhost:4566"
  access_key = "AK"
  secret_key = "SK"
  session_token = "ST"
  shared_creds_filename = "/creds"
  shared_creds_profile = "prof"
  role_arn = "arn:aws:iam::1:role/r"
  role_session_name = "sess"
  web_identity_token_file = "/token"
  disabled = "true"
}}
log_format = "JSON"
log_level = "warning"
disable_mlock = true
default_lease_ttl = "768h"
max_lease_ttl = 3600
pid_file = "/run/vault.pid"
disable_cache = false
plugin_directory = "/plugins"
telemetry {{
  prometheus_retention_time = "30s"
}}
"#,
        ca = ca.display()
    );
    let config = parse_str(&text, "full.hcl").unwrap_or_else(|e| panic!("{e}"));
    let StorageConfig::Raft(raft) = &config.storage else {
        panic!("expected raft")
    };
    assert_eq!(
        *raft,
        RaftConfig {
            path: PathBuf::from("/data"),
            node_id: Some("n1".to_owned()),
            performance_multiplier: 5,
            snapshot_threshold: 100,
            trailing_logs: 50,
            max_entry_size: 2048,
            retry_join_as_non_voter: true,
            autopilot_reconcile_interval: Some(Duration::from_secs(10)),
            autopilot_update_interval: Some(Duration::from_secs(2)),
            retry_join: vec![
                RetryJoin {
                    leader_api_addr: Some("https://10.0.1.10:8200".to_owned()),
                    leader_tls_servername: Some("vault.internal".to_owned()),
                    leader_ca_cert: Some(
                        "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".to_owned()
                    ),
                    leader_client_cert: Some("CERT\n".to_owned()),
                    leader_client_key: Some("KEY".to_owned()),
                    ..RetryJoin::default()
                },
                RetryJoin {
                    auto_join: Some("provider=aws region=eu-west-1 tag_key=vault tag_value=prod".to_owned()),
                    auto_join_scheme: Some("http".to_owned()),
                    auto_join_port: Some(8300),
                    ..RetryJoin::default()
                },
            ],
        }
    );
    assert_eq!(
        config.listeners,
        vec![
            ListenerConfig {
                address: "[::]:8200".to_owned(),
                cluster_address: None,
                tls_disable: false,
                tls_cert_file: Some("/tls/cert.pem".into()),
                tls_key_file: Some("/tls/key.pem".into()),
                tls_client_ca_file: Some("/tls/ca.pem".into()),
                tls_min_version: "tls13".to_owned(),
                tls_require_and_verify_client_cert: true,
                max_request_size: 1024,
                max_request_duration: Duration::from_secs(90),
            },
            ListenerConfig {
                address: "127.0.0.1:9200".to_owned(),
                tls_disable: true,
                ..ListenerConfig::default()
            },
        ]
    );
    assert_eq!(
        config.seal,
        SealConfig::AwsKms(AwsKmsConfig {
            region: Some("eu-west-1".to_owned()),
            kms_key_id: Some("alias/vault-unseal".to_owned()),
            endpoint: Some("http://localhost:4566".to_owned()),
            access_key: Some("AK".to_owned()),
            secret_key: Some("SK".to_owned()),
            session_token: Some("ST".to_owned()),
            shared_creds_filename: Some("/creds".to_owned()),
            shared_creds_profile: Some("prof".to_owned()),
            role_arn: Some("arn:aws:iam::1:role/r".to_owned()),
            role_session_name: Some("sess".to_owned()),
            web_identity_token_file: Some("/token".to_owned()),
            disabled: true,
        })
    );
    assert_eq!(config.log_format.as_deref(), Some("json"));
    assert_eq!(config.log_level.as_deref(), Some("warn"));
    assert!(config.disable_mlock);
    assert_eq!(config.warnings, Vec::<String>::new());
}

#[test]
fn inmem_and_shamir() {
    let config = parse_str("storage \"inmem\" {}\nseal \"shamir\" {}\n", "m.hcl").expect("parses");
    assert_eq!(config.storage, StorageConfig::Inmem);
    assert_eq!(config.seal, SealConfig::Shamir);
}

/// `(input, expected Display)` pairs: the exact messages operators will read.
#[test]
fn golden_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  adress = \"0.0.0.0:8200\"\n}\n",
            "t.hcl:3: unknown key \"adress\" in listener \"tcp\" (did you mean \"address\"?)",
        ),
        (
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = \"maybe\"\n}\n",
            "t.hcl:3: tls_disable: expected a boolean (true/false or 0/1), found \"maybe\"",
        ),
        (
            "storage \"inmem\" {}\nui = 2\n",
            "t.hcl:2: ui: expected a boolean (true/false or 0/1), found 2",
        ),
        (
            "storage \"raft\" {\n  node_id = \"a\"\n}\n",
            "t.hcl:1: storage \"raft\": missing required key \"path\" (or set VAULT_RAFT_PATH)",
        ),
        (
            "storage \"consul\" {\n  address = \"x\"\n}\n",
            "t.hcl:1: unknown storage type \"consul\" (labnode supports \"raft\" and \"inmem\")",
        ),
        (
            "storage \"inmem\" {}\n\nstorage \"raft\" {\n  path = \"/d\"\n}\n",
            "t.hcl:3: storage is already defined at t.hcl:1; define storage in only one place",
        ),
        (
            "storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n    leader_api_addr = \"https://a:8200\"\n    \
             auto_join = \"provider=aws tag_key=a tag_value=b\"\n  }\n}\n",
            "t.hcl:3: retry_join: set either leader_api_addr or auto_join, not both",
        ),
        (
            "storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n    leader_tls_servername = \"x\"\n  }\n}\n",
            "t.hcl:3: retry_join: missing required key \"leader_api_addr\" or \"auto_join\"",
        ),
        (
            "storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n    leader_api_addr = \"https://a:8200\"\n    \
             leader_ca_cert_file = \"/nonexistent/ca.pem\"\n  }\n}\n",
            "t.hcl:5: leader_ca_cert_file: cannot read \"/nonexistent/ca.pem\": No such file or directory \
             (os error 2)",
        ),
        (
            "storage \"inmem\" {}\napi_addr = \"https://a:8200\"\nui = \n",
            "t.hcl:3:6: syntax error: invalid expression; expected `\"`, `[`, `{`, `-`, `!`, `(`, `_`, `<`, \
             letter or digit in `ui =`",
        ),
        (
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"0.0.0.0:8200\", tls_disable = 1\n}\n",
            "t.hcl:3:27: syntax error: expected newline or eof in `address = \"0.0.0.0:8200\", tls_disable = 1`",
        ),
        (
            "storage \"inmem\" {}\nlog_level = \"loud\"\n",
            "t.hcl:2: log_level: expected one of trace, debug, info, warn, error, found \"loud\"",
        ),
        (
            "storage \"inmem\" {}\napi_addr = \"vault.example.com:8200\"\n",
            "t.hcl:2: api_addr: expected a URL such as \"https://10.0.1.10:8200\", found \"vault.example.com:8200\"",
        ),
        (
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"0.0.0.0:70000\"\n}\n",
            "t.hcl:3: address: port must be a number from 0 to 65535, found \"70000\" in \"0.0.0.0:70000\"",
        ),
        (
            "storage \"inmem\" {}\nseal \"awskms\" {\n  region = \"us-east-1\"\n}\n",
            "t.hcl:2: seal \"awskms\": missing required key \"kms_key_id\" \
             (or set VAULT_AWSKMS_SEAL_KEY_ID / AWSKMS_WRAPPER_KEY_ID)",
        ),
        (
            "storage \"inmem\" {}\nseal \"transit\" {}\n",
            "t.hcl:2: unknown seal type \"transit\" (labnode supports \"shamir\" and \"awskms\")",
        ),
        (
            "storage \"inmem\" {}\nlistner \"tcp\" {}\n",
            "t.hcl:2: unknown block \"listner\" at the top level (did you mean \"listener\"?)",
        ),
        (
            "storage \"inmem\" {}\napi_adr = \"https://a:8200\"\n",
            "t.hcl:2: unknown key \"api_adr\" at the top level (did you mean \"api_addr\"?)",
        ),
        (
            "storage \"inmem\" {}\nui = true\nui = false\n",
            "t.hcl:3: duplicate key \"ui\" (set each key once per block)",
        ),
        (
            "storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n    auto_join = \"provider=aws\"\n    \
             auto_join_scheme = \"ftp\"\n  }\n}\n",
            "t.hcl:5: auto_join_scheme: expected http or https, found \"ftp\"",
        ),
        (
            "storage \"raft\" {\n  path = \"/d\"\n  performance_multiplier = 11\n}\n",
            "t.hcl:3: performance_multiplier: expected 0 to 10, found 11",
        ),
        (
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  max_request_duration = \"soon\"\n}\n",
            "t.hcl:3: max_request_duration: expected a duration (seconds or a Go duration such as \"90s\" or \
             \"1h30m\"), found \"soon\"",
        ),
        (
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_cert_file = \"/c.pem\"\n}\n",
            "t.hcl:2: listener \"tcp\": tls_cert_file and tls_key_file must be set together",
        ),
        (
            "storage \"inmem\" {}\nlistener \"unix\" {}\n",
            "t.hcl:2: unknown listener type \"unix\" (labnode supports \"tcp\")",
        ),
        (
            "storage {}\n",
            "t.hcl:1: storage needs exactly one label naming its type, e.g. storage \"raft\" { ... }",
        ),
        (
            "storage \"inmem\" {}\nseal \"shamir\" {\n  kms_key_id = \"x\"\n}\n",
            "t.hcl:3: seal \"shamir\" takes no keys",
        ),
        (
            "storage \"inmem\" {}\ncluster_name = \"${var.name}\"\n",
            "t.hcl:2: cluster_name: expected a string without interpolation, found \"${var.name}\"",
        ),
        (
            "storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n    leader_api_addr = \"https://a:8200\"\n    \
             leader_ca_cert = \"PEM\"\n    leader_ca_cert_file = \"/ca.pem\"\n  }\n}\n",
            "t.hcl:6: leader_ca_cert_file: set either leader_ca_cert or leader_ca_cert_file, not both",
        ),
        (
            "storage \"inmem\" {\n  path = \"/d\"\n}\n",
            "t.hcl:2: storage \"inmem\" takes no keys",
        ),
        (
            "storage \"raft\" {\n  path = \"/d\"\n  retry_joins {\n    auto_join = \"provider=aws\"\n  }\n}\n",
            "t.hcl:3: unknown block \"retry_joins\" in storage \"raft\" (did you mean \"retry_join\"?)",
        ),
        ("ui = true\n", "t.hcl: no storage stanza; add storage \"raft\" { path = \"...\" } or storage \"inmem\" {}"),
    ];
    for (input, expected) in cases {
        match parse_str(input, "t.hcl") {
            Ok(config) => panic!("expected error {expected:?} for:\n{input}\ngot {config:?}"),
            Err(err) => assert_eq!(err.to_string(), *expected, "input:\n{input}"),
        }
    }
}

fn env_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

#[test]
fn env_overrides_win_over_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "a.hcl", SEED_FULL);
    let env = env_from(&[
        ("VAULT_API_ADDR", "https://10.0.0.5:8200"),
        ("VAULT_CLUSTER_ADDR", "https://10.0.0.5:8201"),
        ("VAULT_RAFT_NODE_ID", "node-z"),
        ("VAULT_RAFT_PATH", "/var/raft"),
        ("VAULT_LOG_LEVEL", "DEBUG"),
        ("VAULT_AWSKMS_SEAL_KEY_ID", "from-vault-env"),
        ("AWSKMS_WRAPPER_KEY_ID", "from-wrapper-env"),
        ("AWS_KMS_ENDPOINT", "http://127.0.0.1:4566"),
    ]);
    let config = load_with_env(std::slice::from_ref(&file), &env).expect("loads");
    assert_eq!(config.api_addr.as_deref(), Some("https://10.0.0.5:8200"));
    assert_eq!(config.cluster_addr.as_deref(), Some("https://10.0.0.5:8201"));
    assert_eq!(config.log_level.as_deref(), Some("debug"));
    let StorageConfig::Raft(raft) = &config.storage else {
        panic!("expected raft")
    };
    assert_eq!(raft.path, PathBuf::from("/var/raft"));
    assert_eq!(raft.node_id.as_deref(), Some("node-z"));
    let SealConfig::AwsKms(kms) = &config.seal else {
        panic!("expected awskms")
    };
    assert_eq!(kms.kms_key_id.as_deref(), Some("from-wrapper-env"));
    assert_eq!(kms.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
    assert_eq!(kms.region.as_deref(), Some("us-east-1"));
    assert_eq!(config.sources, vec![file]);
}

#[test]
fn env_seal_type_enables_awskms_and_fills_raft_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "a.hcl", "storage \"raft\" {\n  node_id = \"n\"\n}\n");
    let env = env_from(&[
        ("VAULT_SEAL_TYPE", "awskms"),
        ("VAULT_AWSKMS_SEAL_KEY_ID", "key-1"),
        ("VAULT_RAFT_PATH", "/r"),
        ("VAULT_API_ADDR", ""),
    ]);
    let config = load_with_env(&[file], &env).expect("loads");
    assert_eq!(
        config.seal,
        SealConfig::AwsKms(AwsKmsConfig {
            kms_key_id: Some("key-1".to_owned()),
            ..AwsKmsConfig::default()
        })
    );
    let StorageConfig::Raft(raft) = &config.storage else {
        panic!("expected raft")
    };
    assert_eq!(raft.path, PathBuf::from("/r"));
    assert_eq!(config.api_addr, None);
}

#[test]
fn env_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "a.hcl", "storage \"inmem\" {}\n");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("VAULT_SEAL_TYPE", "awskms")],
            "VAULT_SEAL_TYPE: awskms needs a key id: set VAULT_AWSKMS_SEAL_KEY_ID or AWSKMS_WRAPPER_KEY_ID, \
             or add a seal \"awskms\" stanza",
        ),
        (
            &[("VAULT_SEAL_TYPE", "pkcs11")],
            "VAULT_SEAL_TYPE: unknown seal type \"pkcs11\" (labnode supports \"shamir\" and \"awskms\")",
        ),
        (
            &[("VAULT_LOG_LEVEL", "chatty")],
            "VAULT_LOG_LEVEL: expected one of trace, debug, info, warn, error, found \"chatty\"",
        ),
        (
            &[("VAULT_API_ADDR", "10.0.0.1:8200")],
            "VAULT_API_ADDR: expected a URL such as \"https://10.0.1.10:8200\", found \"10.0.0.1:8200\"",
        ),
    ];
    for (pairs, expected) in cases {
        let err = load_with_env(std::slice::from_ref(&file), &env_from(pairs)).expect_err("must fail");
        assert_eq!(err.to_string(), *expected);
    }
}

#[test]
fn env_shamir_seal_type_keeps_shamir_and_ignores_key_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "a.hcl", "storage \"inmem\" {}\n");
    let env = env_from(&[("VAULT_SEAL_TYPE", "shamir"), ("AWSKMS_WRAPPER_KEY_ID", "k")]);
    assert_eq!(
        load_with_env(&[file], &env).expect("loads").seal,
        SealConfig::Shamir
    );
}

#[test]
fn directory_loads_sorted_hcl_and_merges() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "20-listener.hcl", "listener \"tcp\" {\n  address = \"0.0.0.0:8300\"\n  tls_disable = true\n}\nui = false\nlog_level = \"error\"\n");
    write(dir.path(), "10-base.hcl", "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n}\nui = true\ncluster_name = \"c1\"\n");
    write(dir.path(), "notes.txt", "not hcl {");
    let config = load_with_env(&[dir.path().to_owned()], &env_from(&[])).expect("loads");
    assert_eq!(
        config
            .listeners
            .iter()
            .map(|l| l.address.as_str())
            .collect::<Vec<_>>(),
        ["127.0.0.1:8200", "0.0.0.0:8300"]
    );
    assert!(!config.ui, "the later file overrides ui");
    assert_eq!(
        config.cluster_name.as_deref(),
        Some("c1"),
        "unset later keeps earlier"
    );
    assert_eq!(config.log_level.as_deref(), Some("error"));
    assert_eq!(
        config.sources,
        vec![dir.path().join("10-base.hcl"), dir.path().join("20-listener.hcl")]
    );
}

#[test]
fn duplicate_storage_and_seal_across_files_name_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(dir.path(), "a.hcl", "storage \"inmem\" {}\nseal \"shamir\" {}\n");
    let b = write(
        dir.path(),
        "b.hcl",
        "\n\nstorage \"raft\" {\n  path = \"/d\"\n}\n",
    );
    let err = load_with_env(&[a.clone(), b.clone()], &env_from(&[])).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: storage is already defined at {}:1; define storage in only one place",
            b.display(),
            a.display()
        )
    );
    let c = write(
        dir.path(),
        "c.hcl",
        "seal \"awskms\" {\n  kms_key_id = \"k\"\n}\n",
    );
    let err = load_with_env(&[a.clone(), c.clone()], &env_from(&[])).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1: seal is already defined at {}:2; define seal in only one place",
            c.display(),
            a.display()
        )
    );
}

#[test]
fn load_errors_without_locations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.hcl");
    let err = load_with_env(std::slice::from_ref(&missing), &env_from(&[])).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let err = load_with_env(&[dir.path().to_owned()], &env_from(&[])).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        format!("{}: directory contains no *.hcl files", dir.path().display())
    );
    let err = load_with_env(&[], &env_from(&[])).expect_err("must fail");
    assert_eq!(err.to_string(), "no configuration file given (use -config=FILE)");
    let listener_only = write(dir.path(), "l.hcl", "listener \"tcp\" {\n  tls_disable = 1\n}\n");
    let err = load_with_env(std::slice::from_ref(&listener_only), &env_from(&[])).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no storage stanza; add storage \"raft\" {{ path = \"...\" }} or storage \"inmem\" {{}}",
            listener_only.display()
        )
    );
}

#[test]
fn trailing_comma_only_tolerated_at_end_of_line() {
    let config = parse_str("storage \"inmem\" {}\nui = true, # comment\n", "c.hcl").expect("parses");
    assert!(config.ui);
    assert_eq!(
        config.warnings,
        [
            "c.hcl:2:10: stray trailing comma after ui accepted; remove the trailing comma \
          (HCL separates attributes with newlines)"
        ]
    );
    let list = parse_str(
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = [1,\n]\n}\n",
        "c.hcl",
    )
    .expect_err("a list is not a boolean");
    assert_eq!(
        list.to_string(),
        "c.hcl:3: tls_disable: expected a boolean (true/false or 0/1), found [1,\n]"
    );
}
