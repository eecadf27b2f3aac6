//! Harness for tests that run the real `lab` and `labnode` binaries: a temporary LAB_HOME
//! and a guard that runs `lab down --purge` even when the test fails. Ports, binaries and
//! CLI checks come from `testkit`.

#![allow(dead_code, reason = "each test file uses a different part of the harness")]

pub mod localstack;
pub mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The labnode binary: LABNODE_BIN, else next to `lab` in the target directory.
pub fn labnode() -> PathBuf {
    testkit::locate::labnode_beside(env!("CARGO_BIN_EXE_lab"))
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
        testkit::cli::run(self.command(args))
    }

    /// Runs `lab ARGS`, asserting success, and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        testkit::cli::succeeded(&format!("lab {args:?}"), &self.run(args))
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
