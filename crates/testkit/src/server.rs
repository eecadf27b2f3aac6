//! A running `labnode` process: its HTTP API, its CLI, and the ways to stop it. The process is
//! killed (SIGKILL) when the [`Server`] drops, so a failing test leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli;
use crate::ports::free_port;

/// How long a request to a test server may take before the test fails instead of hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP answer: status and JSON body (`Null` when empty, a string when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// A running `labnode` process; killed (SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    labnode: PathBuf,
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

/// An HTTP client for a test server, trusting `ca` when the API speaks TLS.
pub(crate) fn client(ca: Option<&Path>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("read CA {}: {e}", ca.display()));
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA is PEM"));
    }
    builder.build().expect("HTTP client")
}

/// What [`Server::spawn`] needs to start one process.
pub(crate) struct Launch<'a> {
    pub labnode: &'a Path,
    pub args: Vec<String>,
    pub env: &'a [(String, String)],
    pub addr: String,
    pub home: &'a Path,
    pub log: PathBuf,
    pub ca: Option<&'a Path>,
}

impl Server {
    /// Starts the process and waits until it logged that its API listener is bound and
    /// `/v1/sys/health` answers.
    pub(crate) async fn spawn(launch: Launch<'_>) -> Server {
        let offset = std::fs::metadata(&launch.log).map_or(0, |m| m.len());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .unwrap_or_else(|e| panic!("open server log {}: {e}", launch.log.display()));
        let mut command = Command::new(launch.labnode);
        command
            .args(&launch.args)
            .env("HOME", launch.home)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file"))
            .stderr(log);
        for var in crate::localstack::OVERRIDES {
            command.env_remove(var);
        }
        command.envs(launch.env.iter().map(|(k, v)| (k, v)));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {:?}: {e}", launch.labnode.display(), launch.args));
        let mut server = Server {
            child: Some(child),
            addr: launch.addr,
            labnode: launch.labnode.to_path_buf(),
            home: launch.home.to_path_buf(),
            log: launch.log,
            http: client(launch.ca),
            owns_home: false,
        };
        server.wait_listening(offset).await;
        server.wait_responding().await;
        server
    }

    /// Starts `labnode server -dev` (in memory, unsealed, root token `root`) on a free port.
    pub async fn dev(labnode: &Path) -> Server {
        let home = tempfile::Builder::new()
            .prefix("labnode-dev-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let port = free_port();
        let mut server = Server::spawn(Launch {
            labnode,
            args: vec![
                "server".into(),
                "-dev".into(),
                "-dev-root-token-id=root".into(),
                format!("-dev-listen-address=127.0.0.1:{port}"),
            ],
            env: &[],
            addr: format!("http://127.0.0.1:{port}"),
            home: &home,
            log: home.join("server.log"),
            ca: None,
        })
        .await;
        server.owns_home = true;
        server.wait_active().await;
        server
    }

    /// The server's log (stdout and stderr) so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The OS process id (for `kill -STOP` style tests).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The scratch `HOME` the CLI runs with.
    pub fn home(&self) -> &Path {
        &self.home
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
                "labnode at {} did not start ({exited:?}); log:\n{}",
                self.addr,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_responding(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.try_request("GET", "sys/health", None, None).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "labnode at {} did not answer /v1/sys/health within 30 s; log:\n{}",
                self.addr,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `/v1/sys/health` says active (200).
    pub async fn wait_active(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.health().await;
            if r.status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not active after 30 s: {r:?}; log:\n{}",
                self.addr,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends one request to `/v1/<path>`; a transport error fails the test.
    pub async fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.raw(method, path, token, body.map(|b| b.to_string()), &[])
            .await
    }

    /// Sends one request to `/v1/<path>`; `Err` when nothing answered.
    pub async fn try_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Reply, reqwest::Error> {
        self.try_raw(method, path, token, body.map(|b| b.to_string()), &[])
            .await
    }

    /// Sends one request with a raw body and extra headers; a transport error fails the test.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.try_raw(method, path, token, body, headers)
            .await
            .unwrap_or_else(|e| panic!("{method} {}/v1/{path} failed: {e:?}", self.addr))
    }

    async fn try_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
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
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply { status, body })
    }

    /// `GET sys/health`.
    pub async fn health(&self) -> Reply {
        self.request("GET", "sys/health", None, None).await
    }

    /// Whether this node is unsealed and serves requests itself (health says not standby).
    pub async fn is_active(&self) -> bool {
        let r = self.health().await;
        r.body["sealed"] == json!(false) && r.body["standby"] == json!(false)
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
        assert_eq!(r.status, 200, "init {}: {r:?}", self.addr);
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
        self.submit_unseal_keys(keys).await;
        self.wait_active().await;
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

    /// Init with one share and unseal: a ready node and its root token and key.
    pub async fn init_unsealed(&self) -> (String, String) {
        let (keys, root) = self.init(1, 1).await;
        self.unseal(&keys).await;
        (root, keys[0].clone())
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

    /// Runs the labnode CLI against this server.
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut command = cli::vault(&self.labnode, &self.addr, &self.home, token);
        command.args(args);
        cli::run(command)
    }

    /// Runs the labnode CLI with `input` on stdin.
    pub fn cli_stdin(&self, token: Option<&str>, args: &[&str], input: &str) -> Output {
        let mut command = cli::vault(&self.labnode, &self.addr, &self.home, token);
        command.args(args);
        cli::run_with_stdin(command, input)
    }

    /// Runs the real OpenBao CLI against this server (the test checked
    /// [`crate::locate::bao`] first).
    pub fn bao(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut command = cli::vault(&crate::locate::bao_required(), &self.addr, &self.home, token);
        command.args(args);
        cli::run(command)
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
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("labnode at {} did not exit within 10 s of SIGTERM", self.addr);
    }

    /// Freezes the process (SIGSTOP): a node cut off from everyone.
    pub fn pause(&self) {
        signal(self.pid().expect("running"), libc::SIGSTOP);
    }

    /// Thaws a process frozen by [`Server::pause`] (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid().expect("running"), libc::SIGCONT);
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) only sends a signal to our own child.
    let sent = unsafe { libc::kill(pid as libc::pid_t, sig) } == 0;
    assert!(sent, "kill -{sig} {pid}: {}", std::io::Error::last_os_error());
}
