//! A machine reached over ssh (an EC2 instance): processes run as systemd units when the
//! host has systemd, else as `setsid` background processes; files travel over SFTP.
//!
//! One authenticated session per [`SshHost`] is opened on first use and reused; when the
//! connection turns out to be dead (the instance rebooted) it is opened again once,
//! transparently. Host keys are pinned in lab's own known_hosts file on first contact.

use std::borrow::Cow;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use ssh2::{CheckResult, ErrorCode, KnownHostFileKind, OpenFlags, OpenType, Session, Sftp};

use super::{ExecOutput, Host, HostError, Launch, ProcessInfo};

/// Longest wait for a TCP connection to be accepted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the ssh banner, key exchange and authentication.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for any single answer on an open session, so a dead host fails an action
/// instead of hanging lab.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How often `wait_ready` tries again.
const RETRY: Duration = Duration::from_secs(1);
/// The time `wait_ready` gives its final attempt, made when its timeout has run out.
const LAST_ATTEMPT: Duration = Duration::from_millis(200);
/// How often `stop` and `kill` look again.
const POLL: Duration = Duration::from_millis(200);
/// How long `kill` waits for the group to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long `logs -f` blocks before sending a keepalive (when due) and reading again.
const FOLLOW_WAKE: Duration = Duration::from_secs(2);
/// Seconds between keepalives while `logs -f` waits for output.
const KEEPALIVE_SECS: u32 = 15;
/// How long systemd lets a unit take to stop (on `restart`) before SIGKILL: shorter than
/// [`OPERATION_TIMEOUT`] so a restart never outlasts lab's wait for its answer.
const UNIT_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// SFTP transfer chunk; libssh2 pipelines the packets of one write.
const CHUNK: usize = 1 << 20;

/// libssh2 error codes meaning the transport itself failed (the session is unusable).
mod transport {
    /// `LIBSSH2_ERROR_BANNER_RECV`.
    pub const BANNER_RECV: i32 = -2;
    /// `LIBSSH2_ERROR_SOCKET_SEND`.
    pub const SOCKET_SEND: i32 = -7;
    /// `LIBSSH2_ERROR_TIMEOUT`.
    pub const TIMEOUT: i32 = -9;
    /// `LIBSSH2_ERROR_SOCKET_DISCONNECT`.
    pub const SOCKET_DISCONNECT: i32 = -13;
    /// `LIBSSH2_ERROR_SOCKET_TIMEOUT`.
    pub const SOCKET_TIMEOUT: i32 = -30;
    /// `LIBSSH2_ERROR_SOCKET_RECV`.
    pub const SOCKET_RECV: i32 = -43;
    /// `LIBSSH2_ERROR_BAD_SOCKET`.
    pub const BAD_SOCKET: i32 = -45;
}

/// Where and as whom to reach one machine over ssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// IP address or DNS name.
    pub host: String,
    /// sshd's port (22 on EC2).
    pub port: u16,
    /// The login user (`ec2-user`, `ubuntu`, `root`); commands needing root use `sudo -n`.
    pub user: String,
    /// The private key: PEM RSA (EC2 CreateKeyPair) or an OpenSSH ed25519/rsa key, unencrypted.
    pub key_file: PathBuf,
    /// lab's own known_hosts (e.g. `.lab/known_hosts`), so host keys are pinned per lab.
    pub known_hosts: PathBuf,
}

impl SshTarget {
    /// `host:port`, as errors name the machine.
    fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The name a host key is recorded under, as OpenSSH writes it.
    fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }

    /// True when commands need no `sudo` to act as root.
    fn is_root(&self) -> bool {
        self.user == "root"
    }
}

/// A [`Host`] reached over ssh: lab drives EC2 instances through it exactly as it drives
/// local processes through [`super::LocalHost`].
pub struct SshHost {
    /// The machine.
    target: SshTarget,
    /// The shared session, opened on first use and dropped when its connection fails.
    connection: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SshHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshHost")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// One authenticated session and its SFTP channel (opened when first needed).
struct Connection {
    /// The session.
    session: Session,
    /// SFTP on that session.
    sftp: Option<Sftp>,
}

impl Connection {
    /// The session's SFTP channel, opened on first use.
    fn sftp(&mut self) -> Result<&Sftp, ssh2::Error> {
        let sftp = match self.sftp.take() {
            Some(sftp) => sftp,
            None => self.session.sftp()?,
        };
        Ok(self.sftp.insert(sftp))
    }
}

/// How an action on a session failed, which decides whether it is tried again.
enum OpError {
    /// The session was dead before the request reached the host: safe to retry on a new one.
    Stale(ssh2::Error),
    /// An ssh request failed after the action began.
    Ssh(ssh2::Error),
    /// Reading or writing an open channel or remote file failed.
    Channel(std::io::Error),
    /// Anything else (a failed remote command, a local write).
    Host(HostError),
}

impl From<HostError> for OpError {
    fn from(error: HostError) -> OpError {
        OpError::Host(error)
    }
}

/// True when `error` means the connection (not just one request) is broken.
fn is_transport(error: &ssh2::Error) -> bool {
    matches!(
        error.code(),
        ErrorCode::Session(
            transport::BANNER_RECV
                | transport::SOCKET_SEND
                | transport::TIMEOUT
                | transport::SOCKET_DISCONNECT
                | transport::SOCKET_TIMEOUT
                | transport::SOCKET_RECV
                | transport::BAD_SOCKET
        )
    )
}

/// Classifies the failure of an action's first request: a transport failure there means
/// the reused session had died, so the action never started.
fn first(error: ssh2::Error) -> OpError {
    if is_transport(&error) {
        OpError::Stale(error)
    } else {
        OpError::Ssh(error)
    }
}

/// A finished remote command.
struct Finished {
    /// Exit status; -1 when it was killed by a signal.
    status: i32,
    /// Standard output.
    stdout: Vec<u8>,
    /// Standard error.
    stderr: Vec<u8>,
}

impl Finished {
    /// Standard output as text.
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text.
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl SshHost {
    /// Cheap: does not connect. The first action connects (and authenticates, and checks
    /// the host key), so a provider can build hosts for machines that are still booting.
    pub fn new(target: SshTarget) -> SshHost {
        SshHost {
            target,
            connection: Mutex::new(None),
        }
    }

    /// The machine this host reaches, for messages and state.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Polls until sshd answers and accepts the key, up to `timeout` (instances take a while
    /// to boot): refused, timed-out or reset connections are retried every second; a refused
    /// key or a changed host key is returned at once (retrying cannot help).
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), HostError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut slot = self.lock();
        // A kept session may be from before a reboot: the answer must be a fresh one.
        *slot = None;
        loop {
            let attempt = Instant::now();
            let budget = deadline.saturating_duration_since(attempt).max(LAST_ATTEMPT);
            let error = match self.open(budget) {
                Ok(connection) => {
                    *slot = Some(connection);
                    return Ok(());
                }
                Err(HostError::SshConnect { message, .. }) => message,
                Err(error) => return Err(error),
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(HostError::SshNotReady {
                    host: self.target.label(),
                    waited: started.elapsed(),
                    last: error,
                });
            }
            std::thread::sleep((attempt + RETRY).min(deadline).saturating_duration_since(now));
        }
    }

    /// Copies a local executable (the labnode binary, tens of MB) to `remote` with mode 0755
    /// over SFTP, creating parent directories; skipped when the remote file already has the
    /// same SHA-256. The copy goes to a temporary name first and is renamed into place, so a
    /// running binary is never half-written.
    pub fn install_executable(&self, local: &Path, remote: &Path) -> Result<(), HostError> {
        let io = |source| HostError::Io {
            path: local.to_owned(),
            source,
        };
        let mut file = fs::File::open(local).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0; CHUNK];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let want: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let remote_q = shell_quote(&remote.to_string_lossy()).into_owned();
        let script = format!(
            "{mkdir}sha256sum -- {remote_q} 2>/dev/null || true",
            mkdir = mkdir_parent(remote)
        );
        let action = format!("install {}", remote.display());
        let have = self.with_connection(&action, |conn| {
            let done = self.script(conn, &script, None)?;
            self.check(&done, &format!("mkdir and sha256sum for {}", remote.display()))?;
            Ok(done.stdout())
        })?;
        let current = have
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .any(|hash| hash == want);
        if current {
            return Ok(());
        }
        let mut file = fs::File::open(local).map_err(io)?;
        self.with_connection(&action, |conn| self.put(conn, &mut file, local, remote, 0o755))
    }

    /// Opens a new authenticated session within `budget`, checking the host key.
    fn open(&self, budget: Duration) -> Result<Connection, HostError> {
        let target = &self.target;
        let connect_error = |message: String| HostError::SshConnect {
            host: target.label(),
            message,
        };
        let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|e| connect_error(format!("cannot resolve {}: {e}", target.host)))?
            .collect();
        let deadline = Instant::now() + budget;
        let mut last = format!("{} resolves to no address", target.host);
        let mut stream = None;
        for addr in addrs {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(CONNECT_TIMEOUT);
            if wait.is_zero() {
                last = format!("no time left to connect to {addr}");
                break;
            }
            match TcpStream::connect_timeout(&addr, wait) {
                Ok(tcp) => {
                    stream = Some(tcp);
                    break;
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        let stream = stream.ok_or_else(|| connect_error(last))?;
        // Small requests (signals, checks) should not wait for Nagle.
        stream
            .set_nodelay(true)
            .map_err(|e| connect_error(format!("cannot configure the socket: {e}")))?;
        let mut session = Session::new().map_err(|e| connect_error(e.message().to_owned()))?;
        let handshake = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(100), HANDSHAKE_TIMEOUT);
        session.set_timeout(millis(handshake));
        session.set_tcp_stream(stream);
        session
            .handshake()
            .map_err(|e| connect_error(format!("ssh handshake failed: {}", e.message())))?;
        self.check_host_key(&session)?;
        self.authenticate(&session)?;
        session.set_timeout(millis(OPERATION_TIMEOUT));
        Ok(Connection { session, sftp: None })
    }

    /// Verifies the server's key against `known_hosts`, recording it on first contact.
    fn check_host_key(&self, session: &Session) -> Result<(), HostError> {
        let target = &self.target;
        let path = &target.known_hosts;
        let io = |source| HostError::Io {
            path: path.clone(),
            source,
        };
        let failed = |action: &str, error: ssh2::Error| HostError::Ssh {
            host: target.label(),
            action: format!("{action} ({})", path.display()),
            message: error.message().to_owned(),
        };
        let (key, kind) = session.host_key().ok_or_else(|| HostError::Ssh {
            host: target.label(),
            action: "read the server's host key".to_owned(),
            message: "the server sent no host key".to_owned(),
        })?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io)?;
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        // Hosts of one lab connect in parallel: the lock makes check-then-append atomic.
        // SAFETY: flock on a descriptor we own; released when `file` is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        let mut known = session.known_hosts().map_err(|e| failed("read known hosts", e))?;
        known
            .read_file(path, KnownHostFileKind::OpenSSH)
            .map_err(|e| failed("read known hosts", e))?;
        let name = target.known_hosts_name();
        match known.check_port(&target.host, target.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => Err(HostError::HostKeyMismatch {
                host: target.label(),
                name,
                known_hosts: path.clone(),
            }),
            CheckResult::Failure => Err(HostError::Ssh {
                host: target.label(),
                action: format!("check the host key against {}", path.display()),
                message: "libssh2 could not compare the keys".to_owned(),
            }),
            CheckResult::NotFound => {
                let mut entry = session
                    .known_hosts()
                    .map_err(|e| failed("record the host key", e))?;
                entry
                    .add(&name, key, "", kind.into())
                    .map_err(|e| failed("record the host key", e))?;
                let mut lines = String::new();
                for host in entry.hosts().map_err(|e| failed("record the host key", e))? {
                    let line = entry
                        .write_string(&host, KnownHostFileKind::OpenSSH)
                        .map_err(|e| failed("record the host key", e))?;
                    // libssh2 ends the line with a space for the empty comment.
                    lines.push_str(line.trim_end());
                    lines.push('\n');
                }
                file.write_all(lines.as_bytes()).map_err(io)
            }
        }
    }

    /// Public-key authentication with `key_file`; a refusal names user, host and key.
    fn authenticate(&self, session: &Session) -> Result<(), HostError> {
        let target = &self.target;
        let refused = |message: String| HostError::SshAuth {
            user: target.user.clone(),
            host: target.label(),
            key_file: target.key_file.clone(),
            message,
        };
        fs::File::open(&target.key_file).map_err(|e| refused(format!("cannot read the key file: {e}")))?;
        session
            .userauth_pubkey_file(&target.user, None, &target.key_file, None)
            .map_err(|e| refused(e.message().to_owned()))?;
        if session.authenticated() {
            Ok(())
        } else {
            Err(refused("the server did not accept it".to_owned()))
        }
    }

    /// The session slot; a panic in another thread leaves at worst a dead session, which
    /// the next action replaces.
    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        self.connection.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` on the shared session, connecting first if needed. A reused session found
    /// dead before the action started is replaced and the action tried once more; a session
    /// whose transport failed midway is dropped so the next action reconnects.
    fn with_connection<T>(
        &self,
        action: &str,
        mut op: impl FnMut(&mut Connection) -> Result<T, OpError>,
    ) -> Result<T, HostError> {
        let mut slot = self.lock();
        loop {
            let (connection, reused) = match slot.take() {
                Some(connection) => (connection, true),
                None => (self.open(CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT)?, false),
            };
            let connection = slot.insert(connection);
            match op(connection) {
                Ok(value) => return Ok(value),
                Err(OpError::Stale(_)) if reused => *slot = None,
                Err(OpError::Stale(error) | OpError::Ssh(error)) => {
                    if matches!(error.code(), ErrorCode::Session(_)) {
                        *slot = None;
                    }
                    return Err(self.ssh_error(action, &error));
                }
                Err(OpError::Channel(error)) => {
                    *slot = None;
                    return Err(HostError::Ssh {
                        host: self.target.label(),
                        action: action.to_owned(),
                        message: error.to_string(),
                    });
                }
                Err(OpError::Host(error)) => return Err(error),
            }
        }
    }

    /// An ssh failure while doing `action`.
    fn ssh_error(&self, action: &str, error: &ssh2::Error) -> HostError {
        HostError::Ssh {
            host: self.target.label(),
            action: action.to_owned(),
            message: error.message().to_owned(),
        }
    }

    /// Runs a command line through the login shell, feeding it `input`, to completion.
    fn run(&self, conn: &mut Connection, command: &str, input: Option<&[u8]>) -> Result<Finished, OpError> {
        let mut channel = conn.session.channel_session().map_err(first)?;
        channel.exec(command).map_err(OpError::Ssh)?;
        if let Some(input) = input {
            channel.write_all(input).map_err(OpError::Channel)?;
        }
        channel.send_eof().map_err(OpError::Ssh)?;
        // stderr is buffered by libssh2 while stdout is read; commands here write little.
        let mut stdout = Vec::new();
        channel.read_to_end(&mut stdout).map_err(OpError::Channel)?;
        let mut stderr = Vec::new();
        channel
            .stderr()
            .read_to_end(&mut stderr)
            .map_err(OpError::Channel)?;
        channel.wait_close().map_err(OpError::Ssh)?;
        let signalled = channel.exit_signal().map_err(OpError::Ssh)?.exit_signal.is_some();
        let status = if signalled {
            -1
        } else {
            channel.exit_status().map_err(OpError::Ssh)?
        };
        Ok(Finished {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs a POSIX shell script as the login user, whatever its login shell is.
    fn script(&self, conn: &mut Connection, script: &str, input: Option<&[u8]>) -> Result<Finished, OpError> {
        self.run(conn, &format!("/bin/sh -c {}", shell_quote(script)), input)
    }

    /// An error for a command of lab's own that exited non-zero.
    fn check(&self, done: &Finished, command: &str) -> Result<(), OpError> {
        if done.status == 0 {
            Ok(())
        } else {
            Err(OpError::Host(HostError::RemoteCommand {
                host: self.target.label(),
                command: command.to_owned(),
                status: done.status,
                stderr: done.stderr(),
            }))
        }
    }

    /// Writes `source` to a temporary name next to `dest` over SFTP, sets `mode` and renames
    /// it into place (creating `dest`'s directory first).
    fn put(
        &self,
        conn: &mut Connection,
        source: &mut dyn Read,
        local: &Path,
        dest: &Path,
        mode: u32,
    ) -> Result<(), OpError> {
        let dest_s = dest.to_string_lossy();
        let name = dest
            .file_name()
            .map_or(Cow::Borrowed("file"), |n| n.to_string_lossy());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let temp = dest.with_file_name(format!(".{name}.lab-tmp-{}-{nanos}", std::process::id()));
        let temp_q = shell_quote(&temp.to_string_lossy()).into_owned();
        let mkdir = mkdir_parent(dest);
        if !mkdir.is_empty() {
            let done = self.script(conn, &format!("{mkdir}true"), None)?;
            self.check(&done, &format!("mkdir for {dest_s}"))?;
        }
        let written = self.write_file(conn, source, local, &temp, mode);
        let rename = format!(
            "chmod {mode:o} -- {temp_q} && mv -f -- {temp_q} {}",
            shell_quote(&dest_s)
        );
        let result = written.and_then(|()| {
            let done = self.script(conn, &rename, None)?;
            self.check(&done, &format!("mv into {dest_s}"))
        });
        if result.is_err() {
            if let Ok(sftp) = conn.sftp() {
                // Best effort: the temporary file is hidden and harmless if this fails too.
                let _ = sftp.unlink(&temp);
            }
        }
        result
    }

    /// Copies `source` into a new remote file `path` with `mode`.
    fn write_file(
        &self,
        conn: &mut Connection,
        source: &mut dyn Read,
        local: &Path,
        path: &Path,
        mode: u32,
    ) -> Result<(), OpError> {
        let mode = i32::try_from(mode).unwrap_or(0o600);
        let sftp = conn.sftp().map_err(OpError::Ssh)?;
        let mut file = sftp
            .open_mode(path, OpenFlags::WRITE | OpenFlags::TRUNCATE, mode, OpenType::File)
            .map_err(OpError::Ssh)?;
        let mut buf = vec![0; CHUNK];
        loop {
            let n = source.read(&mut buf).map_err(|source| {
                OpError::Host(HostError::Io {
                    path: local.to_owned(),
                    source,
                })
            })?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(OpError::Channel)?;
        }
        file.close().map_err(OpError::Ssh)
    }

    /// Streams a remote file as it grows, on a session of its own (so the shared one stays
    /// free), until the writer fails or `tail` ends.
    fn follow(&self, log: &Path, out: &mut dyn Write) -> Result<(), HostError> {
        let action = format!("follow {}", log.display());
        let conn = self.open(CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT)?;
        let session = &conn.session;
        let ssh = |error: ssh2::Error| self.ssh_error(&action, &error);
        let out_error = |source| HostError::Io {
            path: log.to_owned(),
            source,
        };
        let mut channel = session.channel_session().map_err(ssh)?;
        // --pid ends tail when this session's sshd process goes (lab interrupted), even if
        // nothing more is ever appended.
        channel
            .exec(&format!(
                "exec tail -c +1 -f --pid=$PPID -- {}",
                shell_quote(&log.to_string_lossy())
            ))
            .map_err(ssh)?;
        session.set_keepalive(true, KEEPALIVE_SECS);
        session.set_timeout(millis(FOLLOW_WAKE));
        let mut buf = vec![0; 64 * 1024];
        loop {
            match channel.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.write_all(&buf[..n]).map_err(out_error)?;
                    out.flush().map_err(out_error)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    session.keepalive_send().map_err(ssh)?;
                }
                Err(e) => {
                    return Err(HostError::Ssh {
                        host: self.target.label(),
                        action,
                        message: e.to_string(),
                    })
                }
            }
        }
        session.set_timeout(millis(OPERATION_TIMEOUT));
        let mut stderr = String::new();
        channel
            .stderr()
            .read_to_string(&mut stderr)
            .map_err(|e| HostError::Ssh {
                host: self.target.label(),
                action: action.clone(),
                message: e.to_string(),
            })?;
        channel.wait_close().map_err(ssh)?;
        let status = channel.exit_status().map_err(ssh)?;
        if status == 0 {
            Ok(())
        } else {
            Err(HostError::RemoteCommand {
                host: self.target.label(),
                command: format!("tail -f {}", log.display()),
                status,
                stderr,
            })
        }
    }

    /// Whether the process exists, is not a zombie and carries its tag; an error when the
    /// host cannot tell (unreachable).
    fn running(&self, process: &ProcessInfo) -> Result<bool, HostError> {
        let script = format!("{}\nours {}", ours_function(&process.tag), process.pid);
        let done = self.with_connection("check a process", |conn| self.script(conn, &script, None))?;
        match done.status {
            0 => Ok(true),
            1 | 2 => Ok(false),
            status => Err(HostError::RemoteCommand {
                host: self.target.label(),
                command: format!("check process {}", process.pid),
                status,
                stderr: done.stderr(),
            }),
        }
    }

    /// Sends `signal` (a name: TERM, KILL) to the process group if the process is still
    /// ours; falls back to `sudo` for processes of systemd units owned by root.
    fn signal(&self, process: &ProcessInfo, signal: &str) -> Result<(), HostError> {
        let pgid = process.pgid;
        let sudo = if self.target.is_root() {
            String::new()
        } else {
            format!("err=$(sudo -n kill -s {signal} -- -{pgid} 2>&1) && exit 0\n")
        };
        let script = format!(
            "{ours}\nours {pid} || exit 0\nerr=$(kill -s {signal} -- -{pgid} 2>&1) && exit 0\n\
             {sudo}ours {pid} || exit 0\nprintf '%s\\n' \"$err\" >&2\nexit 1\n",
            ours = ours_function(&process.tag),
            pid = process.pid,
        );
        let action = format!("send SIG{signal} to process group {pgid}");
        self.with_connection(&action, |conn| {
            let done = self.script(conn, &script, None)?;
            self.check(&done, &format!("kill -s {signal} -- -{pgid}"))
        })
    }
}

impl Host for SshHost {
    fn upload(&self, contents: &[u8], dest: &Path) -> Result<(), HostError> {
        self.with_connection(&format!("upload {}", dest.display()), |conn| {
            self.put(conn, &mut &contents[..], Path::new("upload"), dest, 0o600)
        })
    }

    fn exec(&self, program: &Path, args: &[&str]) -> Result<ExecOutput, HostError> {
        let mut command = shell_quote(&program.to_string_lossy()).into_owned();
        for arg in args {
            command.push(' ');
            command.push_str(&shell_quote(arg));
        }
        let done = self.with_connection(&format!("run {}", program.display()), |conn| {
            self.run(conn, &command, None)
        })?;
        Ok(ExecOutput {
            success: done.status == 0,
            stdout: done.stdout(),
            stderr: done.stderr(),
        })
    }

    fn start(&self, launch: &Launch) -> Result<ProcessInfo, HostError> {
        if !valid_unit_name(&launch.service) {
            return Err(HostError::Ssh {
                host: self.target.label(),
                action: format!("start {}", launch.service),
                message: "a service name may only contain letters, digits and `-_.:@`".to_owned(),
            });
        }
        let log = shell_quote(&launch.log.to_string_lossy()).into_owned();
        let mut command = shell_quote(&launch.program.to_string_lossy()).into_owned();
        for arg in &launch.args {
            command.push(' ');
            command.push_str(&shell_quote(arg));
        }
        let unit = format!("/etc/systemd/system/{}.service", launch.service);
        let temp = format!("/etc/systemd/system/.{}.service.lab-tmp", launch.service);
        let service = &launch.service;
        let install = format!(
            "cat > {temp} && chmod 644 {temp} && mv -f {temp} {unit} && \
             systemctl daemon-reload && systemctl restart {service}"
        );
        let sudo = if self.target.is_root() { "" } else { "sudo -n " };
        // Without systemd, the pid is reported once setsid has made the process its own
        // group and exec'd it (or it died), so the caller never sees a half-started process.
        let script = format!(
            "{mkdir}if [ -d /run/systemd/system ]; then\n\
             {sudo}/bin/sh -c {install} || exit\n\
             systemctl show -p MainPID --value {service}\n\
             exit\n\
             fi\n\
             {ours}\n\
             NO_COLOR=1 setsid {command} </dev/null >>{log} 2>&1 &\n\
             pid=$!\n\
             n=0\n\
             while [ $n -lt 100 ]; do\n\
             ours $pid; r=$?\n\
             [ $r -eq 2 ] && break\n\
             [ $r -eq 0 ] && [ \"$group\" = \"$pid\" ] && break\n\
             sleep 0.05 2>/dev/null || sleep 1\n\
             n=$((n + 1))\n\
             done\n\
             echo $pid\n",
            mkdir = mkdir_parent(&launch.log),
            install = shell_quote(&install),
            ours = ours_function(&launch.tag),
        );
        let action = format!("start {service}");
        let text = systemd_unit(launch);
        let done = self.with_connection(&action, |conn| {
            let done = self.script(conn, &script, Some(text.as_bytes()))?;
            self.check(&done, &format!("start {service}"))?;
            Ok(done)
        })?;
        let pid = done
            .stdout()
            .lines()
            .rev()
            .find_map(|line| line.trim().parse::<u32>().ok())
            .filter(|pid| *pid != 0)
            .ok_or_else(|| HostError::Ssh {
                host: self.target.label(),
                action,
                message: format!(
                    "no process id came back (the service may have exited at once; see {} \
                     or `journalctl -u {service}`); output: {}",
                    launch.log.display(),
                    done.stdout().trim()
                ),
            })?;
        Ok(ProcessInfo {
            pid,
            pgid: pid,
            tag: launch.tag.clone(),
        })
    }

    fn is_running(&self, process: &ProcessInfo) -> bool {
        self.running(process).unwrap_or(false)
    }

    fn stop(&self, process: &ProcessInfo, grace: Duration) -> Result<(), HostError> {
        // Signalling first (a no-op for a process already gone) makes an unreachable host
        // an error rather than a process that seems stopped.
        self.signal(process, "TERM")?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.running(process)? {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        self.kill(process)
    }

    fn kill(&self, process: &ProcessInfo) -> Result<(), HostError> {
        self.signal(process, "KILL")?;
        let deadline = Instant::now() + KILL_WAIT;
        while self.running(process)? && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    fn logs(&self, log: &Path, follow: bool, out: &mut dyn Write) -> Result<(), HostError> {
        if follow {
            return self.follow(log, out);
        }
        let out_error = |source| HostError::Io {
            path: log.to_owned(),
            source,
        };
        self.with_connection(&format!("read {}", log.display()), |conn| {
            let sftp = conn.sftp().map_err(first)?;
            let mut file = sftp.open(log).map_err(first)?;
            let mut buf = vec![0; CHUNK];
            loop {
                let n = file.read(&mut buf).map_err(OpError::Channel)?;
                if n == 0 {
                    return Ok(());
                }
                out.write_all(&buf[..n]).map_err(out_error)?;
                out.flush().map_err(out_error)?;
            }
        })
    }
}

/// A POSIX shell function: `ours PID` succeeds while the process exists, is not a zombie
/// and carries `tag` (the checks [`super::LocalHost`] makes, done remotely); it returns 2
/// when the process is gone and 1 when it is someone else's, and leaves its process group
/// in `$group`.
fn ours_function(tag: &str) -> String {
    format!(
        "ours() {{\n\
         p=$1\n\
         s=$(cat /proc/$p/stat 2>/dev/null) || return 2\n\
         s=${{s##*')'}}\n\
         set -- $s\n\
         case \"$1\" in Z|X|'') return 2;; esac\n\
         group=$3\n\
         tr '\\000' '\\n' </proc/$p/cmdline 2>/dev/null | grep -qxF -e {tag} || return 1\n\
         }}",
        tag = shell_quote(tag)
    )
}

/// `mkdir -p -- DIR && ` for the directory of `path`, or nothing when it has none.
fn mkdir_parent(path: &Path) -> String {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => format!("mkdir -p -- {} && ", shell_quote(&parent.to_string_lossy())),
        None => String::new(),
    }
}

/// True for names safe both as a systemd unit name and inside a path.
fn valid_unit_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c))
}

/// A `Duration` as libssh2's timeout in milliseconds.
fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

/// Quotes `word` for a POSIX shell: words of only safe characters stay as they are, the
/// rest are single-quoted (a `'` inside becomes `'\''`).
fn shell_quote(word: &str) -> Cow<'_, str> {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,+@%".contains(c));
    if safe {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

/// Escapes `%` specifiers, which systemd expands in most unit settings.
fn systemd_escape_specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// Quotes one word of a systemd command line (`ExecStart=`): specifiers and `$` variables
/// are escaped, words with other than safe characters are double-quoted with C escapes.
fn systemd_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,+@=%$".contains(c));
    let mut quoted = String::with_capacity(word.len() + 2);
    if !safe {
        quoted.push('"');
    }
    for c in word.chars() {
        match c {
            '%' => quoted.push_str("%%"),
            '$' => quoted.push_str("$$"),
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => quoted.push_str(&format!("\\x{:02x}", u32::from(c) & 0xff)),
            c => quoted.push(c),
        }
    }
    if !safe {
        quoted.push('"');
    }
    quoted
}

/// The systemd unit text that runs `launch`: its output is appended to `launch.log`, it is
/// never restarted behind lab's back, and stopping it stops its whole control group.
/// Public because the provider's EC2 user data installs the same unit at boot. The log's
/// directory must exist before the unit starts (systemd does not create it).
pub fn systemd_unit(launch: &Launch) -> String {
    let mut exec = systemd_quote(&launch.program.to_string_lossy());
    for arg in &launch.args {
        exec.push(' ');
        exec.push_str(&systemd_quote(arg));
    }
    let log = systemd_escape_specifiers(&launch.log.to_string_lossy());
    format!(
        "# Written by lab: one labnode of a lab. lab starts, stops and kills it.\n\
         [Unit]\n\
         Description=lab node {description}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n\
         ExecStart={exec}\n\
         Environment=NO_COLOR=1\n\
         StandardInput=null\n\
         StandardOutput=append:{log}\n\
         StandardError=append:{log}\n\
         Restart=no\n\
         KillMode=control-group\n\
         TimeoutStopSec={stop_secs}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        description = systemd_escape_specifiers(&launch.service),
        stop_secs = UNIT_STOP_TIMEOUT.as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What `/bin/sh` makes of `printf '%s\n' WORDS`.
    fn through_sh(words: &[&str]) -> String {
        let line: Vec<String> = words.iter().map(|w| shell_quote(w).into_owned()).collect();
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {}", line.join(" ")))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn shell_quote_keeps_every_word_intact() {
        assert_eq!(shell_quote("-config=/a/b.hcl"), "'-config=/a/b.hcl'");
        assert_eq!(shell_quote("/usr/bin/labnode"), "/usr/bin/labnode");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let words = [
            "plain",
            "with space",
            "it's",
            "\"double\"",
            "$HOME",
            "${x:-y}",
            "`id`",
            "$(id)",
            "a\\b",
            "semi;colon && x",
            "*",
            "~",
            "line\nbreak",
            "'",
            "",
            "-config=/tmp/x y/z",
        ];
        let expected: String = words.iter().map(|w| format!("{w}\n")).collect();
        assert_eq!(through_sh(&words), expected);
    }

    #[test]
    fn systemd_unit_runs_the_launch_and_appends_its_log() {
        let launch = Launch {
            program: "/opt/lab/bin/labnode".into(),
            args: vec![
                "server".into(),
                "-config=/opt/lab/n1/node.hcl".into(),
                "has space".into(),
                "100%".into(),
                "$HOME".into(),
                "say \"hi\"".into(),
            ],
            tag: "-config=/opt/lab/n1/node.hcl".into(),
            log: "/opt/lab/n1/labnode.log".into(),
            service: "labnode-primary-n1".into(),
        };
        let unit = systemd_unit(&launch);
        let lines: Vec<&str> = unit.lines().collect();
        for want in [
            "[Unit]",
            "[Service]",
            "[Install]",
            "Description=lab node labnode-primary-n1",
            "ExecStart=/opt/lab/bin/labnode server -config=/opt/lab/n1/node.hcl \"has space\" 100%% $$HOME \"say \\\"hi\\\"\"",
            "StandardOutput=append:/opt/lab/n1/labnode.log",
            "StandardError=append:/opt/lab/n1/labnode.log",
            "Restart=no",
            "KillMode=control-group",
            "Environment=NO_COLOR=1",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{unit}");
        }
    }

    #[test]
    fn systemd_analyze_accepts_the_unit_without_warnings() {
        let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
            eprintln!("SKIP: systemd-analyze is not installed (apt-get install systemd)");
            return;
        };
        assert!(version.status.success());
        let dir = tempfile::tempdir().unwrap();
        let launch = Launch {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                "echo \"$1\" 100% 'x\\y'; sleep 1".into(),
                "tag with space".into(),
                "it's".into(),
                "tab\there".into(),
            ],
            tag: "tag with space".into(),
            log: dir.path().join("logs 100%/out.log"),
            service: "lab-unit-check".into(),
        };
        let unit = dir.path().join("lab-unit-check.service");
        fs::write(&unit, systemd_unit(&launch)).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{stderr}\n{}",
            systemd_unit(&launch)
        );
    }

    #[test]
    fn systemd_quote_escapes() {
        assert_eq!(systemd_quote("a"), "a");
        assert_eq!(systemd_quote(""), "\"\"");
        assert_eq!(systemd_quote("a\\b"), "\"a\\\\b\"");
        assert_eq!(systemd_quote("x\ny"), "\"x\\ny\"");
        assert_eq!(systemd_quote("50%"), "50%%");
    }

    #[test]
    fn unit_names_cannot_leave_the_unit_directory() {
        assert!(valid_unit_name("labnode-dr-n1"));
        assert!(!valid_unit_name("../evil"));
        assert!(!valid_unit_name("a/b"));
        assert!(!valid_unit_name(".hidden"));
        assert!(!valid_unit_name(""));
    }

    #[test]
    fn ssh_host_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<SshHost>();
    }

    #[test]
    fn known_hosts_names_follow_openssh() {
        let mut target = SshTarget {
            host: "10.0.0.5".into(),
            port: 22,
            user: "ec2-user".into(),
            key_file: "k".into(),
            known_hosts: "kh".into(),
        };
        assert_eq!(target.known_hosts_name(), "10.0.0.5");
        assert_eq!(target.label(), "10.0.0.5:22");
        target.port = 2222;
        assert_eq!(target.known_hosts_name(), "[10.0.0.5]:2222");
    }
}
