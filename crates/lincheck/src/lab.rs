//! The lab under test, driven through the real `lab` binary (`status --json`, `creds --json`,
//! `fault kill|start`) and, for pauses, SIGSTOP/SIGCONT of the pid its `state.json` records
//! (`lab fault stop` is a graceful SIGTERM, not a pause).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// What went wrong talking to the lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// The `lab` binary could not be started.
    #[error("cannot run {}: {source}", bin.display())]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// `lab ARGS` exited unsuccessfully.
    #[error("`lab {args}` failed ({status}): {stderr}")]
    Failed {
        /// The arguments, space separated.
        args: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// `lab ARGS` printed something that is not the JSON it documents.
    #[error("`lab {args}` printed unexpected output: {detail}")]
    Output {
        /// The arguments, space separated.
        args: String,
        /// What is missing or malformed.
        detail: String,
    },
    /// `state.json` could not be read or has no pid for the node.
    #[error("{}: {detail}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is missing or malformed.
        detail: String,
    },
    /// A signal could not be delivered.
    #[error("cannot send signal {signal} to pid {pid}: {source}")]
    Signal {
        /// The signal number.
        signal: i32,
        /// The process.
        pid: u32,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// One node as `lab status --json` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Node name (`node-a`).
    pub name: String,
    /// Its API address (`http://127.0.0.1:8200`).
    pub api_addr: String,
    /// `leader`, `follower`, `down`, `sealed`, ...
    pub state: String,
}

/// A lab home and the `lab` binary that manages it.
#[derive(Debug, Clone)]
pub struct Lab {
    /// The `lab` binary.
    pub bin: PathBuf,
    /// Its LAB_HOME.
    pub home: PathBuf,
}

impl Lab {
    async fn run(&self, args: &[&str]) -> Result<String, LabError> {
        let output = tokio::process::Command::new(&self.bin)
            .args(args)
            .env("LAB_HOME", &self.home)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| LabError::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(LabError::Failed {
                args: args.join(" "),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    async fn run_json(&self, args: &[&str]) -> Result<Value, LabError> {
        let text = self.run(args).await?;
        serde_json::from_str(&text).map_err(|e| LabError::Output {
            args: args.join(" "),
            detail: e.to_string(),
        })
    }

    /// The nodes of the lab's first cluster.
    pub async fn status(&self) -> Result<Vec<NodeStatus>, LabError> {
        let args = ["status", "--json"];
        let status = self.run_json(&args).await?;
        let missing = |what: &str| LabError::Output {
            args: args.join(" "),
            detail: format!("no {what}"),
        };
        let nodes = status["clusters"][0]["nodes"]
            .as_array()
            .ok_or_else(|| missing("clusters[0].nodes"))?;
        nodes
            .iter()
            .map(|n| {
                let field = |name: &str| {
                    n[name]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| missing(&format!("node {name}")))
                };
                Ok(NodeStatus {
                    name: field("name")?,
                    api_addr: field("api_addr")?,
                    state: field("state")?,
                })
            })
            .collect()
    }

    /// The root token of the lab's first cluster.
    pub async fn root_token(&self) -> Result<String, LabError> {
        let args = ["creds", "--json"];
        let creds = self.run_json(&args).await?;
        creds["root_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| LabError::Output {
                args: args.join(" "),
                detail: "no root_token".into(),
            })
    }

    /// `lab fault kill NODE` (kill -9).
    pub async fn kill(&self, node: &str) -> Result<(), LabError> {
        self.run(&["fault", "kill", node]).await.map(drop)
    }

    /// `lab fault start NODE --unseal`: restarts, unseals and waits until it rejoined.
    pub async fn start(&self, node: &str) -> Result<(), LabError> {
        self.run(&["fault", "start", node, "--unseal"]).await.map(drop)
    }

    /// The pid `state.json` records for a running node.
    pub fn pid(&self, node: &str) -> Result<u32, LabError> {
        let path = self.home.join("state.json");
        let state_error = |detail: String| LabError::State {
            path: path.clone(),
            detail,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| state_error(e.to_string()))?;
        let state: Value = serde_json::from_str(&text).map_err(|e| state_error(e.to_string()))?;
        pid_of(&state, node).ok_or_else(|| state_error(format!("no running process for {node}")))
    }
}

fn pid_of(state: &Value, node: &str) -> Option<u32> {
    state["clusters"]
        .as_array()?
        .iter()
        .flat_map(|c| c["nodes"].as_array().into_iter().flatten())
        .find(|n| n["name"] == node)?["process"]["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
}

/// A process stopped with SIGSTOP; dropping it sends SIGCONT, so an error or panic in the
/// recorder never leaves a node frozen.
pub struct Paused {
    pid: u32,
    resumed: bool,
}

impl Paused {
    /// Freezes `pid` (SIGSTOP).
    pub fn pause(pid: u32) -> Result<Paused, LabError> {
        signal(pid, libc::SIGSTOP)?;
        Ok(Paused { pid, resumed: false })
    }

    /// Lets it run again (SIGCONT).
    pub fn resume(mut self) -> Result<(), LabError> {
        self.resumed = true;
        signal(self.pid, libc::SIGCONT)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if !self.resumed {
            let _ = signal(self.pid, libc::SIGCONT);
        }
    }
}

fn signal(pid: u32, signal: i32) -> Result<(), LabError> {
    let target = libc::pid_t::try_from(pid).map_err(|_| LabError::Signal {
        signal,
        pid,
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: kill(2) with a pid read from the lab's own state file; no memory is involved.
    if unsafe { libc::kill(target, signal) } != 0 {
        return Err(LabError::Signal {
            signal,
            pid,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The `lab` binary next to this one (as `cargo build` places them), if it is there.
pub fn sibling_lab_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let lab = exe.with_file_name("lab");
    lab.is_file().then_some(lab)
}

/// Whether `path` looks like a lab home (has a `state.json`).
pub fn is_lab_home(path: &Path) -> bool {
    path.join("state.json").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_comes_from_the_named_node_of_any_cluster() {
        let state = serde_json::json!({"clusters": [
            {"nodes": [{"name": "node-a", "process": {"pid": 41}}, {"name": "node-b", "process": null}]},
            {"nodes": [{"name": "node-c", "process": {"pid": 43}}]}
        ]});
        assert_eq!(pid_of(&state, "node-a"), Some(41));
        assert_eq!(pid_of(&state, "node-b"), None);
        assert_eq!(pid_of(&state, "node-c"), Some(43));
        assert_eq!(pid_of(&state, "node-x"), None);
    }
}
