//! Where a node's process lives and how lab acts on it.
//!
//! Bring-up, faults and teardown only talk to a [`Host`], so the same code drives local
//! processes today and ssh-reachable machines later (an `ssh` implementation of this
//! trait is all the EC2 path needs on this side).

mod local;
mod ssh;

pub use local::LocalHost;
pub use ssh::{systemd_unit, SshHost, SshTarget};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why an action on a host failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The program could not be started.
    #[error("cannot start {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file on the host could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Sending a signal failed for a reason other than "already gone".
    #[error("cannot signal process group {pgid}: {source}")]
    Signal {
        /// The process group.
        pgid: u32,
        /// The OS error.
        source: std::io::Error,
    },
    /// No ssh session could be opened (name not resolved, connection refused or timed out,
    /// handshake failed); waiting may help, as with an instance still booting.
    #[error("cannot reach {host} over ssh: {message}")]
    SshConnect {
        /// `host:port`.
        host: String,
        /// What failed.
        message: String,
    },
    /// sshd did not answer within the time `wait_ready` was given.
    #[error("{host} did not accept an ssh session within {}s (last error: {last})", waited.as_secs())]
    SshNotReady {
        /// `host:port`.
        host: String,
        /// How long lab waited.
        waited: Duration,
        /// Why the last attempt failed.
        last: String,
    },
    /// sshd refused the key: retrying cannot help, the operator must fix the key or user.
    #[error(
        "ssh {user}@{host} refused the key {}: {message}; is it the private key of the key pair \
         the instance was launched with, and is {user} the image's login user?",
        key_file.display()
    )]
    SshAuth {
        /// The login user.
        user: String,
        /// `host:port`.
        host: String,
        /// The private key offered.
        key_file: PathBuf,
        /// What sshd or libssh2 said.
        message: String,
    },
    /// The host presented a different key than the one recorded at first contact: either the
    /// machine was rebuilt under the same address, or something is intercepting the connection.
    #[error(
        "the ssh host key of {host} does not match the one recorded in {file}; if the machine \
         was really rebuilt, delete the stale line for {name} from that file (`ssh-keygen -R \
         '{name}' -f {file}`) and retry, otherwise someone may be intercepting the connection",
        file = known_hosts.display()
    )]
    HostKeyMismatch {
        /// `host:port`.
        host: String,
        /// The name the key is recorded under (`host` or `[host]:port`).
        name: String,
        /// lab's known_hosts file.
        known_hosts: PathBuf,
    },
    /// An ssh or SFTP request failed on an open session.
    #[error("{host}: cannot {action} over ssh: {message}")]
    Ssh {
        /// `host:port`.
        host: String,
        /// What lab was doing.
        action: String,
        /// What libssh2 or the server said.
        message: String,
    },
    /// A command lab runs itself on the host (not one passed to [`Host::exec`]) failed.
    #[error("{host}: `{command}` failed with exit status {status}: {}", stderr.trim_end())]
    RemoteCommand {
        /// `host:port`.
        host: String,
        /// The command (or what it does).
        command: String,
        /// Its exit status (-1 when killed by a signal).
        status: i32,
        /// Its standard error.
        stderr: String,
    },
}

/// A started process, recorded in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Process group (the process leads its own session and group), signalled as a whole.
    pub pgid: u32,
    /// An argument only this process has (its `-config=...`); checked before any signal
    /// so a recycled pid is never hit.
    pub tag: String,
}

/// What to start: a program, its arguments and where its output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The executable on the host.
    pub program: PathBuf,
    /// Arguments; one of them must equal `tag`.
    pub args: Vec<String>,
    /// The identifying argument, copied into [`ProcessInfo::tag`].
    pub tag: String,
    /// File receiving stdout and stderr (appended, so restarts keep history).
    pub log: PathBuf,
    /// A name for the process that an operator recognises (`labnode-CLUSTER-NODE`): the
    /// systemd unit on hosts that have systemd.
    pub service: String,
}

/// The result of a short command run on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// The file in a node's raft `path` whose presence makes labnode cut its cluster traffic
/// (both directions) while clients still reach its API: an interface with labnode, which
/// keeps its own copy of the name; see "Interfaces between lab and labnode" in
/// docs/ARCHITECTURE.md.
pub const PARTITION_FILE: &str = "fault-partition";

/// Simulates a network partition of a node's cluster port, or heals it, by creating or
/// removing [`PARTITION_FILE`] in its raft directory.
pub fn set_partition(host: &dyn Host, raft_dir: &Path, partitioned: bool) -> Result<(), HostError> {
    let file = raft_dir.join(PARTITION_FILE);
    if partitioned {
        host.upload(b"partitioned by lab\n", &file)
    } else {
        let path = file.to_string_lossy().into_owned();
        host.exec(Path::new("rm"), &["-f", &path]).map(drop)
    }
}

/// A machine that runs nodes.
pub trait Host {
    /// Places a file on the host (configs are rendered locally, then uploaded).
    fn upload(&self, contents: &[u8], dest: &Path) -> Result<(), HostError>;
    /// Runs a short command to completion (e.g. checking the binary works before a lab starts).
    fn exec(&self, program: &Path, args: &[&str]) -> Result<ExecOutput, HostError>;
    /// Starts a long-running process in its own session and process group.
    fn start(&self, launch: &Launch) -> Result<ProcessInfo, HostError>;
    /// True while the recorded process exists, is not a zombie and still carries its tag.
    fn is_running(&self, process: &ProcessInfo) -> bool;
    /// Asks the process group to exit (SIGTERM), then kills it after `grace`.
    fn stop(&self, process: &ProcessInfo, grace: Duration) -> Result<(), HostError>;
    /// Kills the process group at once (SIGKILL), like a crash or power loss.
    fn kill(&self, process: &ProcessInfo) -> Result<(), HostError>;
    /// Copies a log to `out`; with `follow`, keeps copying what is appended until interrupted.
    fn logs(&self, log: &Path, follow: bool, out: &mut dyn Write) -> Result<(), HostError>;
}
