//! The local machine: nodes are plain child processes, each in its own session.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{ExecOutput, Host, HostError, Launch, ProcessInfo};

/// How often `stop` and `logs -f` look again.
const POLL: Duration = Duration::from_millis(100);

/// Runs nodes as processes of this machine (Linux: identity checks read `/proc`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalHost;

impl Host for LocalHost {
    fn upload(&self, contents: &[u8], dest: &Path) -> Result<(), HostError> {
        let io = |source| HostError::Io {
            path: dest.to_owned(),
            source,
        };
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        fs::write(dest, contents).map_err(io)
    }

    fn exec(&self, program: &Path, args: &[&str]) -> Result<ExecOutput, HostError> {
        let output = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| HostError::Spawn {
                program: program.to_owned(),
                source,
            })?;
        Ok(ExecOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    fn start(&self, launch: &Launch) -> Result<ProcessInfo, HostError> {
        let io = |source| HostError::Io {
            path: launch.log.clone(),
            source,
        };
        if let Some(parent) = launch.log.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .map_err(io)?;
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io)?)
            .stderr(log)
            .env("NO_COLOR", "1");
        // The node must run the rendered file as written, so no inherited VAULT_* setting
        // (e.g. VAULT_API_ADDR inside `lab shell`) may override it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("VAULT_") {
                command.env_remove(name);
            }
        }
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent; a new
        // session makes the node its own process group, immune to the terminal's SIGINT and
        // SIGHUP, and lets `down` signal exactly that group.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|source| HostError::Spawn {
            program: launch.program.clone(),
            source,
        })?;
        Ok(ProcessInfo {
            pid: child.id(),
            pgid: child.id(),
            tag: launch.tag.clone(),
        })
    }

    fn is_running(&self, process: &ProcessInfo) -> bool {
        is_ours(process.pid, &process.tag)
    }

    fn stop(&self, process: &ProcessInfo, grace: Duration) -> Result<(), HostError> {
        if !self.is_running(process) {
            return Ok(());
        }
        signal_group(process.pgid, libc::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running(process) {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        self.kill(process)
    }

    fn kill(&self, process: &ProcessInfo) -> Result<(), HostError> {
        if !self.is_running(process) {
            return Ok(());
        }
        signal_group(process.pgid, libc::SIGKILL)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.is_running(process) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    fn logs(&self, log: &Path, follow: bool, out: &mut dyn Write) -> Result<(), HostError> {
        let io = |source| HostError::Io {
            path: log.to_owned(),
            source,
        };
        let mut file = fs::File::open(log).map_err(io)?;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            file.read_to_end(&mut buf).map_err(io)?;
            out.write_all(&buf).map_err(io)?;
            out.flush().map_err(io)?;
            if !follow {
                return Ok(());
            }
            std::thread::sleep(POLL);
            // A log truncated behind our back (a new `up` after `down`) is read from the start.
            let position = file.stream_position().map_err(io)?;
            if fs::metadata(log).map_err(io)?.len() < position {
                file.seek(SeekFrom::Start(0)).map_err(io)?;
            }
        }
    }
}

/// Sends `signal` to a whole process group; an already-empty group is not an error.
fn signal_group(pgid: u32, signal: libc::c_int) -> Result<(), HostError> {
    let Ok(pgid_t) = libc::pid_t::try_from(pgid) else {
        return Ok(());
    };
    // SAFETY: kill(2) with a negative pid only sends a signal; no memory is involved.
    let rc = unsafe { libc::kill(-pgid_t, signal) };
    if rc == 0 {
        return Ok(());
    }
    let source = std::io::Error::last_os_error();
    if source.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(HostError::Signal { pgid, source })
    }
}

/// True when `pid` is alive (not a zombie) and one of its arguments equals `tag`.
pub(crate) fn is_ours(pid: u32, tag: &str) -> bool {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // The state letter follows the last ')' (the command name may contain spaces or parens).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X") | None) {
        return false;
    }
    fs::read(proc_dir.join("cmdline"))
        .map(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == tag.as_bytes()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_stop_and_kill_a_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let host = LocalHost;
        let tag = format!("lab-test-{}", std::process::id());
        let launch = Launch {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo started; sleep 30".into(), tag.clone()],
            tag: tag.clone(),
            log: dir.path().join("x/out.log"),
            service: "lab-test".into(),
        };
        let process = host.start(&launch).unwrap();
        assert_eq!(process.pid, process.pgid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::read_to_string(&launch.log).unwrap_or_default().is_empty() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        assert!(host.is_running(&process));
        let mut out = Vec::new();
        host.logs(&launch.log, false, &mut out).unwrap();
        assert_eq!(out, b"started\n");
        host.stop(&process, Duration::from_secs(5)).unwrap();
        assert!(!host.is_running(&process));
        let process = host.start(&launch).unwrap();
        host.kill(&process).unwrap();
        assert!(!host.is_running(&process));
        let stranger = ProcessInfo {
            tag: "not-this-one".into(),
            ..ProcessInfo::clone(&process)
        };
        assert!(!host.is_running(&stranger));
        assert!(host
            .exec(Path::new("/bin/sh"), &["-c", "exit 3"])
            .map(|o| !o.success)
            .unwrap());
    }
}
