//! Harness for tests that run the real `lab` and `labnode` binaries: a temporary
//! LAB_HOME, a base port whose ports are free, and a guard that runs `lab down --purge`
//! even when the test fails.

#![allow(dead_code, reason = "each test file uses a different part of the harness")]

pub mod localstack;
pub mod sshd;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The labnode binary: LABNODE_BIN, else next to `lab` in the target directory.
pub fn labnode() -> PathBuf {
    let path = std::env::var_os("LABNODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_BIN_EXE_lab")).with_file_name("labnode"));
    assert!(
        path.is_file(),
        "labnode not found at {}: run `cargo build -p labnode` first (same CARGO_TARGET_DIR) or set LABNODE_BIN",
        path.display()
    );
    path
}

/// A block of 100 ports reserved for one test. The reservation is an flock on a file per
/// block, so concurrent test processes (cargo test binaries, nextest's process per test)
/// never share a block, and a crashed test releases it with its process.
pub struct PortBlock {
    /// API port of the first node.
    pub base: u16,
    _lock: std::fs::File,
}

impl PortBlock {
    /// The first block with a free lock and `nodes` free API and cluster ports.
    pub fn new(nodes: u16) -> PortBlock {
        let dir = std::env::temp_dir().join("lab-test-ports");
        std::fs::create_dir_all(&dir).unwrap();
        for block in 0..110u16 {
            let base = 21000 + block * 100;
            let lock = std::fs::File::create(dir.join(base.to_string())).unwrap();
            // SAFETY: flock on a descriptor we own; released when the file is closed.
            let locked = unsafe {
                libc::flock(
                    std::os::fd::AsRawFd::as_raw_fd(&lock),
                    libc::LOCK_EX | libc::LOCK_NB,
                )
            } == 0;
            let free = (0..nodes).all(|i| {
                [0, 1]
                    .iter()
                    .all(|d| TcpListener::bind((Ipv4Addr::LOCALHOST, base + 10 * i + d)).is_ok())
            });
            if locked && free {
                return PortBlock { base, _lock: lock };
            }
        }
        panic!("no free block of ports between 21000 and 32000");
    }

    /// The base port as a `--base-port` argument.
    pub fn arg(&self) -> String {
        self.base.to_string()
    }
}

/// One lab home; dropping it runs `lab down --purge`.
pub struct Lab {
    pub home: tempfile::TempDir,
    /// Extra environment for every `lab` command, the final `down` included.
    pub env: Vec<(String, String)>,
}

impl Lab {
    pub fn new() -> Lab {
        Lab {
            home: tempfile::Builder::new().prefix("lab-test-").tempdir().unwrap(),
            env: Vec::new(),
        }
    }

    /// The lab home directory (the temp dir itself).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A `lab` command with this home and labnode.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lab"));
        command
            .args(args)
            .env("LAB_HOME", self.home())
            .env("LABNODE_BIN", labnode())
            .env_remove("LAB_TEMPLATES")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `lab ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `lab ARGS`, asserting success, and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lab {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Pids of processes started for this home (any `-config=` argument under it).
    pub fn node_pids(&self) -> Vec<u32> {
        node_pids_under(self.home())
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--purge"]);
    }
}

/// Live (not zombie) labnode processes whose config lives under `dir` (their `-config=`
/// argument is the tag every node carries).
pub fn node_pids_under(dir: &Path) -> Vec<u32> {
    let prefix = format!("-config={}/", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    !s.rsplit_once(')')
                        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(false);
            alive
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| c.split(|b| *b == 0).any(|a| a.starts_with(prefix.as_bytes())))
                    .unwrap_or(false)
        })
        .collect()
}

/// The `state` of every node, in order.
pub fn states(status: &serde_json::Value) -> Vec<String> {
    status["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["nodes"].as_array().unwrap().iter())
        .map(|n| n["state"].as_str().unwrap().to_owned())
        .collect()
}
