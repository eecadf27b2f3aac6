//! TLS: the cluster port only talks to holders of the cluster certificate (mutual TLS), and an
//! API listener with `tls_disable = false` serves the CLIs that trust its CA (`VAULT_CACERT`).

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use testkit::cli::{ok, show};
use testkit::tls::api_tls_files;
use testkit::{Node, NodeConfig};

/// The whole error chain of a failed request, for matching.
fn chain(e: &reqwest::Error) -> String {
    let mut s = format!("{e}");
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(" | {inner}"));
        src = inner.source();
    }
    s
}

/// An https client that accepts any server certificate, optionally presenting `identity`.
fn insecure(identity: Option<reqwest::Identity>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5));
    if let Some(id) = identity {
        b = b.identity(id);
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_port_refuses_clients_without_the_cluster_certificate() {
    let mut node = Node::new(common::labnode(), "solo");
    node.start().await;
    let url = format!("https://{}/v1/sys/health", node.cluster_hostport());

    // Sealed: no credentials yet, every connection is dropped.
    let e = insecure(None)
        .get(&url)
        .send()
        .await
        .expect_err("sealed cluster port answered");
    let text = chain(&e);
    assert!(
        text.contains("tls handshake eof") || text.contains("Connection reset by peer"),
        "{text}"
    );

    let (_root, _key) = node.srv().init_unsealed().await;

    // No client certificate: the handshake fails (the server requires one).
    refused(insecure(None), &url, "CertificateRequired").await;

    // A certificate from a CA the cluster does not know: refused as well.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["labnode-cluster".to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).unwrap();
    let id =
        reqwest::Identity::from_pem(format!("{}\n{}", cert.pem(), key.serialize_pem()).as_bytes()).unwrap();
    refused(insecure(Some(id)), &url, "UnknownCA").await;

    // curl -k without a client certificate: TLS failure, no HTTP status.
    let out = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            &url,
        ])
        .output()
        .expect("run curl");
    assert_eq!(out.status.code(), Some(56), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "000");

    // Plain HTTP to the cluster port gets no HTTP answer at all.
    let e = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("http://{}/v1/sys/health", node.cluster_hostport()))
        .send()
        .await
        .expect_err("plain HTTP answered on the cluster port");
    let text = chain(&e);
    assert!(text.contains("invalid HTTP version parsed"), "{text}");

    // The API port keeps working meanwhile.
    let h = node.srv().request("GET", "sys/health", None, None).await;
    assert_eq!(h.status, 200, "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tls_listener_with_the_cli_and_vault_cacert() {
    if testkit::locate::bao().is_none() {
        return;
    }
    let mut node = Node::new(common::labnode(), "tls1");
    let tls = api_tls_files(node.home());
    node.configure(&NodeConfig {
        api_tls: Some((tls.cert.clone(), tls.key.clone())),
        ..NodeConfig::default()
    });
    node.trust(&tls.ca);
    node.start().await;
    assert_eq!(node.addr(), format!("https://127.0.0.1:{}", node.api_port));
    let ca_s = tls.ca.to_str().unwrap();
    let trust = [("VAULT_CACERT", ca_s)];

    let out = node.cli_env(
        None,
        &[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ],
        &trust,
    );
    let init: Value = serde_json::from_str(&ok(&out)).expect("init json");
    let unseal_key = init["unseal_keys_b64"][0].as_str().expect("key").to_string();
    let root = init["root_token"].as_str().expect("root").to_string();
    ok(&node.cli_env(None, &["operator", "unseal", &unseal_key], &trust));
    node.srv().wait_active().await;
    ok(&node.cli_env(Some(&root), &["secrets", "enable", "-version=1", "kv"], &trust));
    ok(&node.cli_env(Some(&root), &["kv", "put", "kv/tls", "v=over-tls"], &trust));
    let out = node.cli_env(Some(&root), &["kv", "get", "-field=v", "kv/tls"], &trust);
    assert_eq!(ok(&out), "over-tls");

    // Without the CA the CLI refuses the server's certificate.
    let out = node.cli_env(Some(&root), &["kv", "get", "-field=v", "kv/tls"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid peer certificate: UnknownIssuer"),
        "{}",
        show(&out)
    );
    assert!(out.stdout.is_empty());

    // The real bao CLI: works with BAO_CACERT, fails without.
    let out = node.bao_env(
        Some(&root),
        &["kv", "get", "-field=v", "kv/tls"],
        &[("BAO_CACERT", ca_s)],
    );
    assert_eq!(ok(&out), "over-tls", "{}", show(&out));
    let out = node.bao_env(Some(&root), &["kv", "get", "-field=v", "kv/tls"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("x509: certificate signed by unknown authority"),
        "{}",
        show(&out)
    );

    // Plain HTTP against the TLS listener does not get the API.
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/v1/sys/health", node.api_port))
        .send()
        .await;
    assert!(r.map(|r| r.status().as_u16() != 200).unwrap_or(true));
}

/// Asserts the cluster port refuses `client` with TLS alert `alert`. With TLS 1.3 the
/// server's verdict on a client certificate arrives after the client finished its
/// handshake; when the request was already on its way, the client sees the connection die
/// instead of the alert. Either way no HTTP answer came back.
async fn refused(client: reqwest::Client, url: &str, alert: &str) {
    let e = client
        .get(url)
        .send()
        .await
        .expect_err("the cluster port accepted a client it must refuse");
    let text = chain(&e);
    let closed_after_handshake = text.contains("connection was not ready")
        || text.contains("connection closed")
        || text.contains("Canceled");
    assert!(
        text.contains(&format!("received fatal alert: {alert}")) || closed_after_handshake,
        "{text}"
    );
}
