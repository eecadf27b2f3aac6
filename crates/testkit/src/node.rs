//! One labnode node of a test: its directory, address and config file, which outlive its
//! processes (so a test can stop and restart the same node), and the process that runs now.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::cli;
use crate::ports::free_port;
use crate::server::{Launch, Server};

/// What a node's standard HCL holds besides raft storage and the listener.
#[derive(Default)]
pub struct NodeConfig {
    /// One `retry_join { leader_api_addr = ... }` stanza per address.
    pub retry_join: Vec<String>,
    /// The API listener speaks TLS with this certificate and key (PEM files); plain HTTP
    /// when `None`.
    pub api_tls: Option<(PathBuf, PathBuf)>,
    /// Extra top-level HCL, e.g. a `seal "awskms" { ... }` stanza.
    pub extra: String,
}

/// A node's directory, address and config; `server` is its running process, if any.
/// Dropping the node kills the process and removes the directory.
pub struct Node {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub host: String,
    pub api_port: u16,
    pub cluster_port: u16,
    pub config: PathBuf,
    pub server: Option<Server>,
    labnode: PathBuf,
    /// The CA the harness trusts when the API speaks TLS.
    ca: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Node {
    /// A node on 127.0.0.1 with two free ports and a single-node raft config (node_id `name`,
    /// plain-HTTP API).
    pub fn new(labnode: &Path, name: &str) -> Node {
        let api_port = free_port();
        let cluster_port = free_port();
        let node = Node::on(labnode, name, "127.0.0.1", api_port, cluster_port);
        node.configure(&NodeConfig::default());
        node
    }

    /// A node on fixed ports of `host` (e.g. the course's `<ip>:8200` on a loopback address a
    /// test owns); write its config with [`Node::configure`] or [`Node::write_config`].
    pub fn on(labnode: &Path, name: &str, host: &str, api_port: u16, cluster_port: u16) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("labnode-test-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("node.hcl");
        Node {
            name: name.to_owned(),
            dir,
            host: host.to_owned(),
            api_port,
            cluster_port,
            config,
            server: None,
            labnode: labnode.to_path_buf(),
            ca: None,
            env: Vec::new(),
        }
    }

    /// Writes the standard HCL: raft storage with `node_id` = the node's name, the listener,
    /// `api_addr`/`cluster_addr`, and what `config` adds.
    pub fn configure(&self, config: &NodeConfig) {
        let stanzas: String = config
            .retry_join
            .iter()
            .map(|a| format!("  retry_join {{\n    leader_api_addr = \"{a}\"\n  }}\n"))
            .collect();
        let (listener_tls, scheme) = match &config.api_tls {
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
        self.write_config(&format!(
            r#"storage "raft" {{
  path    = "{data}"
  node_id = "{name}"
{stanzas}}}

listener "tcp" {{
  address         = "{host}:{api}"
  cluster_address = "{host}:{cluster}"
{listener_tls}}}

api_addr      = "{scheme}://{host}:{api}"
cluster_addr  = "https://{host}:{cluster}"
disable_mlock = true
{extra}"#,
            data = self.data().display(),
            name = self.name,
            host = self.host,
            api = self.api_port,
            cluster = self.cluster_port,
            extra = config.extra,
        ));
    }

    /// Writes `text` as the node's config (a test's own HCL).
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap_or_else(|e| panic!("write {}: {e}", self.config.display()));
    }

    /// The harness talks https to this node, trusting `ca` (configure `api_tls` to match).
    pub fn trust(&mut self, ca: &Path) {
        self.ca = Some(ca.to_path_buf());
    }

    /// An environment variable for the node's processes.
    pub fn env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// The raft data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The scratch `HOME` of the node's processes and CLI runs.
    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// The API address, `http(s)://host:port`.
    pub fn addr(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.api_port)
    }

    /// `host:<cluster port>`, as list-peers shows it.
    pub fn cluster_hostport(&self) -> String {
        format!("{}:{}", self.host, self.cluster_port)
    }

    /// Starts `labnode server -config=...` and returns the process, leaving `server` alone
    /// (single-node tests that restart hold the process themselves).
    pub async fn spawn(&self) -> Server {
        Server::spawn(Launch {
            labnode: &self.labnode,
            args: vec!["server".into(), format!("-config={}", self.config.display())],
            env: &self.env,
            addr: self.addr(),
            home: self.dir.path(),
            log: self.dir.path().join("server.log"),
            ca: self.ca.as_deref(),
        })
        .await
    }

    /// Starts the node's process as `server`.
    pub async fn start(&mut self) {
        assert!(self.server.is_none(), "{} already running", self.name);
        self.server = Some(self.spawn().await);
    }

    /// The running process; panics when the node is down.
    pub fn srv(&self) -> &Server {
        self.server
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    /// SIGKILL, no shutdown path.
    pub fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
    }

    /// SIGTERM, and waits for the process to exit.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }

    /// The labnode binary's path, for a test's own `labnode` command line.
    pub fn labnode(&self) -> &Path {
        &self.labnode
    }

    /// Runs the labnode CLI against this node (running or not) with extra environment.
    pub fn cli_env(&self, token: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = cli::vault(&self.labnode, &self.addr(), self.home(), token);
        command.args(args).envs(env.iter().copied());
        cli::run(command)
    }

    /// Runs the labnode CLI against this node.
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> Output {
        self.cli_env(token, args, &[])
    }

    /// Runs the real `bao` CLI against this node with extra environment (the test checked
    /// [`crate::locate::bao`] first).
    pub fn bao_env(&self, token: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = cli::vault(&crate::locate::bao_required(), &self.addr(), self.home(), token);
        command.args(args).envs(env.iter().copied());
        cli::run(command)
    }

    /// Runs the real `bao` CLI against this node.
    pub fn bao(&self, token: Option<&str>, args: &[&str]) -> Output {
        self.bao_env(token, args, &[])
    }
}
