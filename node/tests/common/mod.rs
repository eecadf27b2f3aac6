//! Shared harness for the integration tests: runs the real `labnode` binary on free loopback
//! ports with Raft storage in a temporary directory, and kills it on drop (also on panic).

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod cluster;
pub mod localstack;

/// The binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_labnode"))
}

/// Ports handed out by [`free_port`]: below the kernel's ephemeral range (32768 and up), so
/// no outgoing connection takes one between the probe and labnode's bind, and apart from the
/// lab tests' blocks (21000-32000).
const TEST_PORTS: std::ops::Range<u16> = 10_000..20_000;

/// A loopback port nobody listens on and no other test process holds. Each port is claimed
/// with an flock on a file per port, kept until this test process exits (nextest runs every
/// test in its own process), so parallel tests never race for the same port.
pub fn free_port() -> u16 {
    static HELD: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("labnode-test-ports");
    std::fs::create_dir_all(&dir).expect("create the port lock directory");
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let offset = ((std::process::id() ^ nanos) % u32::from(span)) as u16;
    for i in 0..span {
        let port = TEST_PORTS.start + (offset + i) % span;
        let Ok(lock) = std::fs::File::create(dir.join(port.to_string())) else {
            continue;
        };
        // SAFETY: flock on a descriptor we own; released when the file is closed.
        let locked = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&lock),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } == 0;
        if locked && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?}");
}

/// A node's directory, ports and config file; outlives the processes started from it, so a
/// test can stop and restart the same node.
pub struct NodeDir {
    pub dir: tempfile::TempDir,
    pub api_port: u16,
    pub cluster_port: u16,
    pub config: PathBuf,
}

impl NodeDir {
    /// A fresh directory with a single-node raft config on two free ports.
    pub fn new() -> Self {
        Self::member("node1", None)
    }

    /// A fresh directory whose raft config names the node `node_id` and, with
    /// `leader_api_addr`, carries a `retry_join { leader_api_addr = ... }` stanza.
    pub fn member(node_id: &str, leader_api_addr: Option<&str>) -> Self {
        let retry_join = leader_api_addr
            .map(|a| format!("  retry_join {{\n    leader_api_addr = \"{a}\"\n  }}\n"))
            .unwrap_or_default();
        let dir = tempfile::Builder::new()
            .prefix("labnode-test-")
            .tempdir()
            .expect("tempdir");
        let api_port = free_port();
        let mut cluster_port = free_port();
        while cluster_port == api_port {
            cluster_port = free_port();
        }
        let data = dir.path().join("data");
        let config = dir.path().join("node.hcl");
        std::fs::write(
            &config,
            format!(
                r#"storage "raft" {{
  path    = "{data}"
  node_id = "{node_id}"
{retry_join}}}

listener "tcp" {{
  address         = "127.0.0.1:{api_port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable     = true
}}

api_addr      = "http://127.0.0.1:{api_port}"
cluster_addr  = "http://127.0.0.1:{cluster_port}"
disable_mlock = true
"#,
                data = data.display()
            ),
        )
        .expect("write config");
        NodeDir {
            dir,
            api_port,
            cluster_port,
            config,
        }
    }

    /// The raft data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// Starts `labnode server -config=...` and waits until `/v1/sys/health` answers.
    pub async fn start(&self) -> Server {
        let log = self.dir.path().join("server.log");
        let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open server log");
        let child = Command::new(bin())
            .arg("server")
            .arg(format!("-config={}", self.config.display()))
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn labnode server");
        let mut server = Server {
            child: Some(child),
            addr: self.addr(),
            home: self.dir.path().to_path_buf(),
            log,
            http: reqwest::Client::new(),
            owns_home: false,
        };
        server.wait_listening(offset).await;
        server.wait_responding().await;
        server
    }
}

/// Starts `labnode server -dev` (in memory, unsealed, root token `root`) on a free port.
pub async fn start_dev() -> Server {
    let home = tempfile::Builder::new()
        .prefix("labnode-dev-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let port = free_port();
    let log = home.join("server.log");
    let stderr = std::fs::File::create(&log).expect("create server log");
    let child = Command::new(bin())
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .env("HOME", &home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn labnode server -dev");
    let mut server = Server {
        child: Some(child),
        addr: format!("http://127.0.0.1:{port}"),
        home,
        log,
        http: reqwest::Client::new(),
        owns_home: true,
    };
    server.wait_listening(0).await;
    server.wait_responding().await;
    server.wait_active().await;
    server
}

/// A running `labnode` process; killed (SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    home: PathBuf,
    log: PathBuf,
    http: reqwest::Client,
    /// `-dev` servers own their scratch `HOME` and remove it on drop.
    owns_home: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.owns_home {
            let _ = std::fs::remove_dir_all(&self.home);
        }
    }
}

/// An HTTP answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Server {
    /// The server's stderr so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until this process logs that its API listener is bound. Tests running in
    /// parallel may take a port between our probe and the bind; then this process exits
    /// and the health check alone could be answered by someone else's server.
    async fn wait_listening(&mut self, log_offset: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read(&self.log).unwrap_or_default();
            let fresh = &log[(log_offset as usize).min(log.len())..];
            if fresh.windows(20).any(|w| w == b"API listener started") {
                return;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "labnode did not start ({exited:?}); log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_responding(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!("{}/v1/sys/health", self.addr);
            if self.http.get(&url).send().await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "labnode did not answer /v1/sys/health within 30 s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `/v1/sys/health` says active (200).
    pub async fn wait_active(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.request("GET", "sys/health", None, None).await;
            if r.status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node not active after 30 s: {r:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends one request to `/v1/<path>`.
    pub async fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.raw(method, path, token, body.map(|b| b.to_string()), &[])
            .await
    }

    /// Sends one request with a raw body and extra headers.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}/v1/{path}", self.addr));
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("request failed");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply { status, body }
    }

    /// `PUT sys/init` with the given shares/threshold; returns (hex keys, root token).
    pub async fn init(&self, shares: u8, threshold: u8) -> (Vec<String>, String) {
        let r = self
            .request(
                "PUT",
                "sys/init",
                None,
                Some(json!({"secret_shares": shares, "secret_threshold": threshold})),
            )
            .await;
        assert_eq!(r.status, 200, "init: {r:?}");
        let keys = r.body["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k.as_str().expect("key").to_string())
            .collect();
        (
            keys,
            r.body["root_token"].as_str().expect("root_token").to_string(),
        )
    }

    /// Submits unseal keys until unsealed, then waits for the node to become active.
    pub async fn unseal(&self, keys: &[String]) {
        for key in keys {
            let r = self
                .request("PUT", "sys/unseal", None, Some(json!({ "key": key })))
                .await;
            assert_eq!(r.status, 200, "unseal: {r:?}");
            if r.body["sealed"] == json!(false) {
                self.wait_active().await;
                return;
            }
        }
        panic!("still sealed after {} keys", keys.len());
    }

    /// Init with one share and unseal: a ready node and its root token and key.
    pub async fn init_unsealed(&self) -> (String, String) {
        let (keys, root) = self.init(1, 1).await;
        self.unseal(&keys).await;
        (root, keys[0].clone())
    }

    /// Runs the labnode CLI against this server (`VAULT_ADDR`, optional `VAULT_TOKEN`).
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> Output {
        cli_at(&self.addr, &self.home, token, args)
    }

    /// Stops the process with SIGKILL (no shutdown path runs) and waits for it.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    /// Stops the process with SIGTERM and waits up to 10 s for it to exit.
    pub fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("labnode did not exit within 10 s of SIGTERM");
    }
}

/// Runs the labnode CLI with `VAULT_ADDR=addr` and a private `HOME`.
pub fn cli_at(addr: &str, home: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("VAULT_ADDR", addr)
        .env("HOME", home)
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_FORMAT")
        .stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("VAULT_TOKEN", t);
    }
    cmd.output().expect("run labnode CLI")
}

/// stdout of a CLI run that must succeed.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({:?}): stdout {} stderr {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
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

impl Server {
    /// The OS process id (for `kill -STOP` style tests).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The scratch `HOME` the CLI runs with.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `GET sys/health`: (status code, body).
    pub async fn health(&self) -> Reply {
        self.request("GET", "sys/health", None, None).await
    }

    /// Whether this node is unsealed and serves requests itself (health says not standby).
    pub async fn is_active(&self) -> bool {
        let r = self.health().await;
        r.body["sealed"] == json!(false) && r.body["standby"] == json!(false)
    }

    /// Submits unseal keys until the node reports `sealed: false` (standbys included).
    pub async fn submit_unseal_keys(&self, keys: &[String]) {
        for key in keys {
            let r = self
                .request("PUT", "sys/unseal", None, Some(json!({ "key": key })))
                .await;
            assert_eq!(r.status, 200, "unseal {}: {r:?}", self.addr);
            if r.body["sealed"] == json!(false) {
                return;
            }
        }
        panic!("{} still sealed after {} keys", self.addr, keys.len());
    }

    /// Polls `sys/seal-status` until `initialized` is true (a `retry_join` node got its
    /// challenge from the leader).
    pub async fn wait_initialized(&self) {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let r = self.request("GET", "sys/seal-status", None, None).await;
            if r.body["initialized"] == json!(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never got a join challenge within 45 s: {r:?}; log:\n{}",
                self.addr,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the labnode CLI with `input` on stdin.
    pub fn cli_stdin(&self, token: Option<&str>, args: &[&str], input: &str) -> Output {
        cli_with_stdin(bin(), &self.addr, &self.home, token, args, input)
    }

    /// Runs the real OpenBao CLI (`bao_bin()`) against this server.
    pub fn bao(&self, token: Option<&str>, args: &[&str]) -> Output {
        cli_with_stdin(&bao_bin(), &self.addr, &self.home, token, args, "")
    }
}

/// The OpenBao CLI: `$LABNODE_BAO`, else the project venv's. Missing is a test failure.
pub fn bao_bin() -> PathBuf {
    let p = std::env::var("LABNODE_BAO")
        .map(PathBuf::from)
        .unwrap_or_else(|_| "/work/main/.venv/bin/bao".into());
    assert!(
        p.is_file(),
        "bao CLI not found at {} (set LABNODE_BAO)",
        p.display()
    );
    p
}

/// Runs a Vault-compatible CLI binary with `VAULT_ADDR`/`BAO_ADDR`, a private `HOME` and `input` on stdin.
pub fn cli_with_stdin(
    binary: &Path,
    addr: &str,
    home: &Path,
    token: Option<&str>,
    args: &[&str],
    input: &str,
) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .env("VAULT_ADDR", addr)
        .env("BAO_ADDR", addr)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("VAULT_TOKEN")
        .env_remove("BAO_TOKEN")
        .env_remove("VAULT_FORMAT")
        .env_remove("BAO_FORMAT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("VAULT_TOKEN", t).env("BAO_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("run CLI");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("CLI output")
}

/// stderr of a CLI run that must fail.
pub fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded: stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A Raft cluster of labnode processes on loopback: `node1` is initialized first, the
/// others `retry_join` it and are unsealed with the same keys. Every process is killed on drop.
pub struct Cluster {
    pub dirs: Vec<NodeDir>,
    servers: Vec<Option<Server>>,
    /// Unseal keys (hex) and the initial root token.
    pub keys: Vec<String>,
    pub root: String,
    pub threshold: usize,
}

impl Cluster {
    /// Starts `size` nodes, initializes node1 with `shares`/`threshold`, unseals every node
    /// and waits until all of them are voters.
    pub async fn start(size: usize, shares: u8, threshold: u8) -> Cluster {
        let first = NodeDir::member("node1", None);
        let leader = first.addr();
        let mut dirs = vec![first];
        for i in 2..=size {
            dirs.push(NodeDir::member(&format!("node{i}"), Some(&leader)));
        }
        let servers: Vec<Option<Server>> = futures::future::join_all(dirs.iter().map(NodeDir::start))
            .await
            .into_iter()
            .map(Some)
            .collect();
        let (keys, root) = servers[0].as_ref().expect("node1").init(shares, threshold).await;
        let cluster = Cluster {
            dirs,
            servers,
            keys,
            root,
            threshold: threshold as usize,
        };
        let keys = cluster.keys[..cluster.threshold].to_vec();
        cluster.node(0).unseal(&keys).await;
        futures::future::join_all(cluster.servers[1..].iter().map(|s| async {
            let s = s.as_ref().expect("node");
            s.wait_initialized().await;
            s.submit_unseal_keys(&keys).await;
        }))
        .await;
        cluster.wait_voters(size).await;
        cluster
    }

    /// Node `i` (0-based); panics if it is stopped.
    pub fn node(&self, i: usize) -> &Server {
        self.servers[i].as_ref().expect("node is stopped")
    }

    /// The running nodes.
    pub fn running(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().flatten()
    }

    /// Waits until some node is active and returns it.
    pub async fn active(&self) -> &Server {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for s in self.running() {
                if s.is_active().await {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no active node after 30 s; node1 log:\n{}",
                self.node(0).log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the raft configuration (read on the active node) lists `n` voters.
    pub async fn wait_voters(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let active = self.active().await;
            let r = active
                .request("GET", "sys/storage/raft/configuration", Some(&self.root), None)
                .await;
            let voters = r.body["data"]["config"]["servers"]
                .as_array()
                .map(|s| s.iter().filter(|v| v["voter"] == json!(true)).count())
                .unwrap_or(0);
            if voters == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "raft has {voters} voters, want {n}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILLs every node.
    pub fn kill_all(&mut self) {
        for s in self.servers.iter_mut() {
            if let Some(s) = s.take() {
                s.kill();
            }
        }
    }

    /// SIGTERMs every node and waits for them to exit.
    pub fn stop_all(&mut self) {
        for s in self.servers.iter_mut() {
            if let Some(s) = s.take() {
                s.stop();
            }
        }
    }

    /// Starts every stopped node again (sealed).
    pub async fn restart_all(&mut self) {
        let stopped: Vec<usize> = (0..self.dirs.len())
            .filter(|i| self.servers[*i].is_none())
            .collect();
        let started = futures::future::join_all(stopped.iter().map(|i| self.dirs[*i].start())).await;
        for (i, s) in stopped.into_iter().zip(started) {
            self.servers[i] = Some(s);
        }
    }

    /// Unseals every running node with `keys`, then waits for an active node.
    pub async fn unseal_all(&self, keys: &[String]) {
        futures::future::join_all(self.running().map(|s| s.submit_unseal_keys(keys))).await;
        self.active().await;
    }
}
