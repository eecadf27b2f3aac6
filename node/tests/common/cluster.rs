//! Multi-node Raft clusters for the HA tests: N `labnode` processes on free loopback ports,
//! joined by `retry_join` (or by hand), unsealed with the first node's keys. Every process is
//! killed when its [`Server`] drops, so a failing test leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{cli_at, NodeDir, Reply, Server};

/// Key shares and threshold every test cluster is initialised with (threshold > 1, so
/// joiners really combine the leader's shares).
pub const SHARES: u8 = 3;
pub const THRESHOLD: u8 = 2;

/// How long cluster-forming steps may take before a test fails.
pub const FORM_DEADLINE: Duration = Duration::from_secs(45);

/// One member: its directory and ports (which outlive restarts) and the running process.
pub struct ClusterNode {
    pub name: String,
    pub dir: NodeDir,
    pub server: Option<Server>,
}

impl ClusterNode {
    /// A fresh node directory on two free ports; call [`ClusterNode::configure`] before
    /// starting it.
    pub fn new(name: &str) -> Self {
        ClusterNode {
            name: name.to_string(),
            dir: NodeDir::new(),
            server: None,
        }
    }

    /// Rewrites the config: raft with `node_id`, `retry_join` stanzas, plain-HTTP API.
    pub fn configure(&self, retry_join: &[String]) {
        let stanzas: String = retry_join
            .iter()
            .map(|a| format!("  retry_join {{\n    leader_api_addr = \"{a}\"\n  }}\n"))
            .collect();
        self.write_config(&stanzas, None);
    }

    /// The node's HCL: raft with `node_id` and `stanzas`, the API on plain HTTP or, given a
    /// certificate and key, on TLS.
    fn write_config(&self, stanzas: &str, tls: Option<(&Path, &Path)>) {
        let (listener_tls, scheme) = match tls {
            Some((cert, key)) => (
                format!(
                    "  tls_disable     = false\n  tls_cert_file   = \"{}\"\n  tls_key_file    = \"{}\"\n",
                    cert.display(),
                    key.display()
                ),
                "https",
            ),
            None => ("  tls_disable     = true\n".to_owned(), "http"),
        };
        std::fs::write(
            &self.dir.config,
            format!(
                r#"storage "raft" {{
  path    = "{data}"
  node_id = "{name}"
{stanzas}}}

listener "tcp" {{
  address         = "127.0.0.1:{api}"
  cluster_address = "127.0.0.1:{cluster}"
{listener_tls}}}

api_addr      = "{scheme}://127.0.0.1:{api}"
cluster_addr  = "https://127.0.0.1:{cluster}"
disable_mlock = true
"#,
                data = self.dir.data().display(),
                name = self.name,
                api = self.dir.api_port,
                cluster = self.dir.cluster_port,
            ),
        )
        .expect("write config");
    }

    pub fn addr(&self) -> String {
        self.dir.addr()
    }

    /// `127.0.0.1:<cluster port>`, as list-peers shows it.
    pub fn cluster_hostport(&self) -> String {
        format!("127.0.0.1:{}", self.dir.cluster_port)
    }

    /// The running process; panics when the node is down.
    pub fn srv(&self) -> &Server {
        self.server
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    pub async fn start(&mut self) {
        assert!(self.server.is_none(), "{} already running", self.name);
        self.server = Some(self.dir.start().await);
    }

    /// SIGKILL, no shutdown path.
    pub fn kill(&mut self) {
        if let Some(s) = self.server.take() {
            s.kill();
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the process: a node cut off from everyone.
    pub fn signal(&self, sig: &str) {
        let pid = self.srv().pid().expect("running");
        let st = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill {sig} {pid}");
    }

    /// Runs the labnode CLI against this node.
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> Output {
        cli_at(&self.addr(), self.dir.dir.path(), token, args)
    }

    /// Runs the real `bao` CLI against this node.
    pub fn bao(&self, token: Option<&str>, args: &[&str]) -> Output {
        bao_at(&self.addr(), self.dir.dir.path(), token, args, &[])
    }
}

/// The real OpenBao CLI: `$LABNODE_BAO`, else the repository's venv copy.
pub fn bao_bin() -> PathBuf {
    std::env::var_os("LABNODE_BAO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/main/.venv/bin/bao"))
}

/// Runs `bao` with `BAO_ADDR`/`VAULT_ADDR=addr`, a private `HOME` and optional token.
pub fn bao_at(addr: &str, home: &Path, token: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bao_bin());
    cmd.args(args)
        .env("BAO_ADDR", addr)
        .env("VAULT_ADDR", addr)
        .env("HOME", home)
        .env_remove("BAO_TOKEN")
        .env_remove("VAULT_TOKEN")
        .env_remove("BAO_FORMAT")
        .env_remove("VAULT_FORMAT")
        .stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("BAO_TOKEN", t).env("VAULT_TOKEN", t);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run bao CLI")
}

/// stdout and stderr of a CLI run, for messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A formed cluster and its credentials.
pub struct Cluster {
    pub nodes: Vec<ClusterNode>,
    pub root: String,
    pub keys: Vec<String>,
}

impl Cluster {
    /// Forms a cluster the way the course does: every node's config lists every other node
    /// in a `retry_join` stanza; the first node is initialised, the others find it, are
    /// unsealed with its keys and promoted to voters by autopilot.
    pub async fn retry_join(names: &[&str]) -> Cluster {
        let mut nodes: Vec<ClusterNode> = names.iter().map(|n| ClusterNode::new(n)).collect();
        let addrs: Vec<String> = nodes.iter().map(ClusterNode::addr).collect();
        for (i, node) in nodes.iter().enumerate() {
            let others: Vec<String> = addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| a.clone())
                .collect();
            node.configure(&others);
        }
        for node in &mut nodes {
            node.start().await;
        }
        let (keys, root) = nodes[0].srv().init(SHARES, THRESHOLD).await;
        nodes[0].srv().unseal(&keys).await;
        let cluster = Cluster { nodes, root, keys };
        for node in &cluster.nodes[1..] {
            node.srv().wait_initialized().await;
            unseal_member(node.srv(), &cluster.keys).await;
        }
        cluster.wait_members(names, names).await;
        cluster
    }

    pub fn node(&self, name: &str) -> &ClusterNode {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node_mut(&mut self, name: &str) -> &mut ClusterNode {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Names of the nodes whose process runs.
    pub fn running(&self) -> Vec<&ClusterNode> {
        self.nodes.iter().filter(|n| n.server.is_some()).collect()
    }

    /// The node `sys/leader` on `asker` names as leader (by api address).
    pub async fn leader_seen_by(&self, asker: &ClusterNode) -> Option<&ClusterNode> {
        let r = asker.srv().request("GET", "sys/leader", None, None).await;
        let addr = r.body["leader_address"].as_str()?.to_string();
        self.nodes.iter().find(|n| n.addr() == addr)
    }

    /// Waits until one of `among` reports itself active (health 200) and every other
    /// running node in `among` agrees on it; returns its name.
    pub async fn wait_leader(&self, among: &[&str], deadline: Duration) -> String {
        let until = Instant::now() + deadline;
        loop {
            let mut active = Vec::new();
            let mut seen = Vec::new();
            for name in among {
                let node = self.node(name);
                let h = node.srv().request("GET", "sys/health", None, None).await;
                if h.status == 200 {
                    active.push(node.name.clone());
                }
                let l = node.srv().request("GET", "sys/leader", None, None).await;
                seen.push(l.body["leader_address"].as_str().unwrap_or_default().to_string());
            }
            if let [leader] = active.as_slice() {
                let addr = self.node(leader).addr();
                if seen.iter().all(|s| *s == addr) {
                    return leader.clone();
                }
            }
            assert!(
                Instant::now() < until,
                "no agreed leader among {among:?} within {deadline:?}: active {active:?}, seen {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the leader's raft configuration lists exactly `members`, with exactly
    /// `voters` of them voting.
    pub async fn wait_members(&self, members: &[&str], voters: &[&str]) {
        let until = Instant::now() + FORM_DEADLINE;
        let mut want: Vec<(String, bool)> = members
            .iter()
            .map(|m| (m.to_string(), voters.contains(m)))
            .collect();
        want.sort();
        let mut last = Value::Null;
        while Instant::now() < until {
            for node in self.running() {
                let r = node
                    .srv()
                    .request("GET", "sys/storage/raft/configuration", Some(&self.root), None)
                    .await;
                if r.status != 200 {
                    last = r.body;
                    continue;
                }
                let got = peers(&r.body);
                if got.iter().map(|p| (p.0.clone(), p.3)).collect::<Vec<_>>() == want {
                    return;
                }
                last = r.body;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("membership never became {want:?}; last configuration: {last}");
    }

    /// Mounts a KV v1 engine at `kv/`.
    pub async fn mount_kv(&self) {
        let r = self.nodes[0]
            .srv()
            .request(
                "POST",
                "sys/mounts/kv",
                Some(&self.root),
                Some(json!({"type": "kv", "options": {"version": "1"}})),
            )
            .await;
        assert_eq!(r.status, 204, "mount kv: {r:?}");
    }
}

/// `(node_id, address, leader, voter)` of a `sys/storage/raft/configuration` answer, sorted.
pub fn peers(body: &Value) -> Vec<(String, String, bool, bool)> {
    let mut out: Vec<_> = body["data"]["config"]["servers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["node_id"].as_str().unwrap_or_default().to_string(),
                s["address"].as_str().unwrap_or_default().to_string(),
                s["leader"].as_bool().unwrap_or(false),
                s["voter"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

/// Submits shares until the node is unsealed, then waits until it answers as an unsealed
/// member (active or standby).
///
/// While another membership change is in flight the leader refuses a join answer (500 "the
/// cluster is already undergoing a configuration change", see
/// `t41_ha_cluster::concurrent_joins_are_not_refused`); the joiner then drops its challenge
/// and `retry_join` fetches a new one, so this waits for it and unseals again.
pub async fn unseal_member(server: &Server, keys: &[String]) {
    for _ in 0..5 {
        match try_unseal(server, keys).await {
            Ok(()) => return,
            Err(r) => {
                assert!(
                    r.status == 500
                        && r.body
                            .to_string()
                            .contains("already undergoing a configuration change"),
                    "unseal {}: {r:?}\n{}",
                    server.addr,
                    server.log()
                );
                server.wait_initialized().await;
            }
        }
    }
    panic!("{} could not join after 5 attempts", server.addr);
}

/// One round of shares; `Err` with the refusal when the join answer was refused.
async fn try_unseal(server: &Server, keys: &[String]) -> Result<(), Reply> {
    let r = server
        .request("PUT", "sys/unseal", None, Some(json!({ "reset": true })))
        .await;
    assert_eq!(r.status, 200, "unseal reset {}: {r:?}", server.addr);
    for key in keys {
        let r = server
            .request("PUT", "sys/unseal", None, Some(json!({ "key": key })))
            .await;
        if r.status != 200 {
            return Err(r);
        }
        if r.body["sealed"] == json!(false) {
            let until = Instant::now() + FORM_DEADLINE;
            loop {
                let h = server
                    .request("GET", "sys/health?standbyok=true", None, None)
                    .await;
                if h.status == 200 {
                    return Ok(());
                }
                assert!(Instant::now() < until, "{} not serving: {h:?}", server.addr);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("{} still sealed after {} keys", server.addr, keys.len());
}

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

/// The `Node/Address/State/Voter` table `operator raft list-peers` prints (tabwriter
/// layout: each column as wide as its longest cell plus four spaces, last column bare).
pub fn peers_table(rows: &[(&str, String, &str, &str)]) -> String {
    let mut all: Vec<[String; 4]> = vec![
        ["Node", "Address", "State", "Voter"].map(String::from),
        ["----", "-------", "-----", "-----"].map(String::from),
    ];
    for (n, a, s, v) in rows {
        all.push([n.to_string(), a.clone(), s.to_string(), v.to_string()]);
    }
    let widths: Vec<usize> = (0..3)
        .map(|c| all.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &all {
        for (c, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<width$}", r[c], width = w + 4));
        }
        out.push_str(&r[3]);
        out.push('\n');
    }
    out
}

/// A test CA and a server certificate for `localhost` and `127.0.0.1`, as PEM files in `dir`:
/// returns (ca.pem, server.pem, server-key.pem).
pub fn api_tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "labnode test API CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

impl ClusterNode {
    /// Rewrites the config for a single raft node whose API listener speaks TLS.
    pub fn configure_api_tls(&self, cert: &Path, key: &Path) {
        self.write_config("", Some((cert, key)));
    }

    /// Starts a node configured by [`ClusterNode::configure_api_tls`]; the harness client
    /// trusts `ca` and talks https.
    pub async fn start_api_tls(&mut self, ca: &Path) {
        let log = self.dir.dir.path().join("server.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open server log");
        let child = Command::new(super::bin())
            .arg("server")
            .arg(format!("-config={}", self.dir.config.display()))
            .env("HOME", self.dir.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn labnode server");
        let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).expect("read CA")).expect("CA pem");
        let mut server = Server {
            child: Some(child),
            addr: format!("https://127.0.0.1:{}", self.dir.api_port),
            home: self.dir.dir.path().to_path_buf(),
            log,
            http: reqwest::Client::builder()
                .add_root_certificate(ca)
                .build()
                .expect("https client"),
            owns_home: false,
        };
        server.wait_listening(0).await;
        server.wait_responding().await;
        self.server = Some(server);
    }
}

/// Runs the labnode CLI with extra environment (e.g. `VAULT_CACERT`).
pub fn cli_env(addr: &str, home: &Path, token: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(super::bin());
    cmd.args(args)
        .env("VAULT_ADDR", addr)
        .env("HOME", home)
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_FORMAT")
        .env_remove("VAULT_CACERT")
        .env_remove("VAULT_SKIP_VERIFY")
        .stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("VAULT_TOKEN", t);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run labnode CLI")
}
