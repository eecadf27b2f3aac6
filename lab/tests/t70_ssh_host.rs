//! `SshHost` against a real OpenSSH server on loopback: files, commands, process
//! supervision, logs, host key pinning and the failures an operator meets (wrong key,
//! rebuilt machine, nothing listening). The "remote" machine is this one, so effects are
//! checked directly on the local filesystem and /proc.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use common::sshd::Sshd;
use lab::host::{Host, HostError, Launch, ProcessInfo, SshHost, SshTarget};

/// A host for `sshd` on 127.0.0.1 with known_hosts in `dir`, ready to use.
fn ready_host(sshd: &Sshd, dir: &Path) -> SshHost {
    let host = SshHost::new(sshd.target("127.0.0.1", &dir.join(".lab/known_hosts")));
    host.wait_ready(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    host
}

/// A long-running shell whose tag is unique to this test process.
fn launch(dir: &Path, script: &str, name: &str) -> Launch {
    let tag = format!("lab-t70-{name}-{}", std::process::id());
    Launch {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into(), tag.clone()],
        tag,
        log: dir.join("node/logs/out.log"),
        service: format!("lab-t70-{name}"),
    }
}

/// Waits until `path` holds `want` (a process writes it).
fn wait_for_content(path: &Path, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(path).unwrap_or_default() != want {
        assert!(
            Instant::now() < deadline,
            "{} never held {want:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Field `n` (0-based, after the command name) of /proc/PID/stat.
fn stat_field(pid: u32, n: usize) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(n)
        .unwrap()
        .to_owned()
}

#[test]
fn upload_and_exec_keep_bytes_and_arguments_intact() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let host = ready_host(&sshd, dir.path());

    let dest = dir.path().join("conf dir/nested/node.hcl");
    host.upload(b"listener \"tcp\" { address = '$HOME' }\n", &dest)
        .unwrap();
    assert_eq!(
        fs::read(&dest).unwrap(),
        b"listener \"tcp\" { address = '$HOME' }\n"
    );
    assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o600);
    let out = host.exec(Path::new("cat"), &[&dest.to_string_lossy()]).unwrap();
    assert!(out.success, "{out:?}");
    assert_eq!(out.stdout, "listener \"tcp\" { address = '$HOME' }\n");

    // A second upload replaces the file and leaves no temporary file behind.
    host.upload(b"second\n", &dest).unwrap();
    assert_eq!(fs::read_to_string(&dest).unwrap(), "second\n");
    let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["node.hcl"]);

    let args = [
        "with space",
        "it's",
        "\"q\"",
        "$HOME",
        "`id`",
        "a;b",
        "",
        "*",
        "back\\slash",
    ];
    let mut printf = vec!["%s|"];
    printf.extend(args);
    let out = host.exec(Path::new("printf"), &printf).unwrap();
    assert_eq!(out.stdout, "with space|it's|\"q\"|$HOME|`id`|a;b||*|back\\slash|");

    let out = host
        .exec(Path::new("/bin/sh"), &["-c", "echo out; echo err >&2; exit 3"])
        .unwrap();
    assert!(!out.success);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("out\n", "err\n"));

    // set_partition goes through upload and exec too.
    let raft = dir.path().join("raft");
    lab::host::set_partition(&host, &raft, true).unwrap();
    assert!(raft.join(lab::host::PARTITION_FILE).is_file());
    lab::host::set_partition(&host, &raft, false).unwrap();
    assert!(!raft.join(lab::host::PARTITION_FILE).exists());
}

#[test]
fn install_executable_copies_once_and_replaces_changed_binaries() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let host = ready_host(&sshd, dir.path());
    let binary = Path::new(env!("CARGO_BIN_EXE_lab"));
    let dest = dir.path().join("opt/lab/bin/labnode");

    host.install_executable(binary, &dest).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), fs::read(binary).unwrap());
    let first = fs::metadata(&dest).unwrap();
    assert_eq!(first.permissions().mode() & 0o777, 0o755);
    let out = host.exec(&dest, &["--help"]).unwrap();
    assert!(out.success, "{out:?}");

    // Same content: nothing is written (same inode, same mtime).
    host.install_executable(binary, &dest).unwrap();
    let second = fs::metadata(&dest).unwrap();
    assert_eq!(
        (second.ino(), second.mtime(), second.mtime_nsec()),
        (first.ino(), first.mtime(), first.mtime_nsec())
    );

    // Different content: replaced by rename (a new inode; a running binary keeps the old).
    let other = dir.path().join("other");
    fs::write(&other, b"#!/bin/sh\necho other\n").unwrap();
    host.install_executable(&other, &dest).unwrap();
    let third = fs::metadata(&dest).unwrap();
    assert_ne!(third.ino(), first.ino());
    assert_eq!(third.permissions().mode() & 0o777, 0o755);
    assert_eq!(host.exec(&dest, &[]).unwrap().stdout, "other\n");
    let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["labnode"]);
}

#[test]
fn start_is_running_logs_stop_and_kill() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let host = ready_host(&sshd, dir.path());
    let launch = launch(dir.path(), "echo started; sleep 60", "life");

    let process = host.start(&launch).unwrap();
    assert_eq!(process.pid, process.pgid);
    assert_eq!(process.tag, launch.tag);
    // Its own process group and session.
    assert_eq!(stat_field(process.pid, 2), process.pid.to_string());
    assert_eq!(stat_field(process.pid, 3), process.pid.to_string());
    wait_for_content(&launch.log, "started\n");
    assert!(host.is_running(&process));
    let stranger = ProcessInfo {
        tag: "not-this-one".into(),
        ..process.clone()
    };
    assert!(!host.is_running(&stranger));
    // Signals are refused for a pid that no longer carries the tag.
    host.kill(&stranger).unwrap();
    assert!(host.is_running(&process));

    let mut out = Vec::new();
    host.logs(&launch.log, false, &mut out).unwrap();
    assert_eq!(out, b"started\n");

    host.stop(&process, Duration::from_secs(5)).unwrap();
    assert!(!host.is_running(&process));
    host.stop(&process, Duration::from_secs(5)).unwrap();
    host.kill(&process).unwrap();

    // A process ignoring SIGTERM is killed after the grace period.
    let stubborn = self::launch(dir.path(), "trap '' TERM; echo again; sleep 60", "stubborn");
    let process = host.start(&stubborn).unwrap();
    wait_for_content(&stubborn.log, "started\nagain\n");
    let started = Instant::now();
    host.stop(&process, Duration::from_secs(1)).unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(!host.is_running(&process));

    let process = host.start(&launch).unwrap();
    host.kill(&process).unwrap();
    assert!(!host.is_running(&process));
    // Restarts append to the log.
    wait_for_content(&launch.log, "started\nagain\nstarted\n");
}

#[test]
fn processes_outlive_the_session_and_sessions_reopen_after_a_reboot() {
    let mut sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let launch = launch(dir.path(), "echo started; sleep 60", "survivor");
    let host = ready_host(&sshd, dir.path());
    let process = host.start(&launch).unwrap();
    drop(host);

    let host = ready_host(&sshd, dir.path());
    wait_for_content(&launch.log, "started\n");
    assert!(host.is_running(&process));

    // Every sshd process dies (the shared session breaks); the next action reconnects.
    sshd.restart();
    let out = host.exec(Path::new("echo"), &["back"]).unwrap();
    assert_eq!(out.stdout, "back\n");
    assert!(host.is_running(&process));
    host.kill(&process).unwrap();
    assert!(!host.is_running(&process));
}

/// Collects output and fails once it has seen `until`, as a closed pipe would.
struct StopAfter {
    seen: Vec<u8>,
    until: &'static str,
}

impl Write for StopAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if String::from_utf8_lossy(&self.seen).contains(self.until) {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        self.seen.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if String::from_utf8_lossy(&self.seen).contains(self.until) {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }
}

/// Pids of `tail` processes reading `log`.
fn tails_of(log: &Path) -> Vec<u32> {
    let log = log.to_string_lossy().into_owned();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"tail")) && args.contains(&log.as_bytes())
        })
        .collect()
}

#[test]
fn logs_follow_streams_appended_output_until_the_writer_fails() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let host = ready_host(&sshd, dir.path());
    let launch = launch(dir.path(), "echo first; sleep 3; echo second; sleep 60", "follow");
    let process = host.start(&launch).unwrap();
    wait_for_content(&launch.log, "first\n");

    let mut out = StopAfter {
        seen: Vec::new(),
        until: "second",
    };
    let started = Instant::now();
    let result = host.logs(&launch.log, true, &mut out);
    assert!(matches!(result, Err(HostError::Io { .. })), "{result:?}");
    assert_eq!(String::from_utf8_lossy(&out.seen), "first\nsecond\n");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The remote tail ends with its session.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tails_of(&launch.log).is_empty() {
        assert!(
            Instant::now() < deadline,
            "tail still runs: {:?}",
            tails_of(&launch.log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A missing log is an error naming the file, with and without follow.
    let missing = dir.path().join("nope.log");
    let error = host
        .logs(&missing, false, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(error.contains("nope.log"), "{error}");
    let error = host
        .logs(&missing, true, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(error.contains("nope.log"), "{error}");
    host.kill(&process).unwrap();
}

#[test]
fn host_key_is_pinned_on_first_contact_and_a_changed_key_is_refused() {
    let mut sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join(".lab/known_hosts");
    let target = sshd.target("127.0.0.1", &known_hosts);
    let host = SshHost::new(target.clone());
    assert!(!known_hosts.exists(), "new() must not connect");
    host.wait_ready(Duration::from_secs(10)).unwrap();

    let recorded = fs::read_to_string(&known_hosts).unwrap();
    let name = format!("[127.0.0.1]:{}", sshd.port());
    assert_eq!(recorded.lines().count(), 1, "{recorded}");
    assert!(
        recorded.starts_with(&format!("{name} ssh-ed25519 AAAA")),
        "{recorded}"
    );
    assert!(
        recorded.ends_with('\n') && !recorded.contains(" \n"),
        "{recorded:?}"
    );
    assert_eq!(
        fs::metadata(&known_hosts).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // OpenSSH itself finds the entry.
    let found = std::process::Command::new("ssh-keygen")
        .args(["-F", &name, "-f"])
        .arg(&known_hosts)
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "ssh-keygen -F did not find {name} in\n{recorded}"
    );

    // A later contact verifies without adding anything.
    SshHost::new(target.clone())
        .wait_ready(Duration::from_secs(10))
        .unwrap();
    assert_eq!(fs::read_to_string(&known_hosts).unwrap(), recorded);

    sshd.restart_with_new_host_key();
    let started = Instant::now();
    let error = SshHost::new(target.clone())
        .wait_ready(Duration::from_secs(30))
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a mismatch must not be retried"
    );
    assert!(matches!(error, HostError::HostKeyMismatch { .. }), "{error:?}");
    let message = error.to_string();
    for part in [
        format!("127.0.0.1:{}", sshd.port()),
        known_hosts.display().to_string(),
        "delete the stale line".to_owned(),
        name.clone(),
    ] {
        assert!(message.contains(&part), "{part:?} missing from: {message}");
    }
    // The host whose session broke refuses the new key on reconnecting, too.
    let error = host.exec(Path::new("true"), &[]).unwrap_err();
    assert!(matches!(error, HostError::HostKeyMismatch { .. }), "{error:?}");
    assert_eq!(fs::read_to_string(&known_hosts).unwrap(), recorded);

    // Once the operator deletes the stale line, the new key is recorded.
    fs::write(&known_hosts, "").unwrap();
    SshHost::new(target).wait_ready(Duration::from_secs(10)).unwrap();
    assert_ne!(fs::read_to_string(&known_hosts).unwrap(), recorded);
}

#[test]
fn a_key_sshd_does_not_authorize_is_refused_at_once() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let target = SshTarget {
        key_file: sshd.stranger_key(),
        ..sshd.target("127.0.0.1", &dir.path().join("known_hosts"))
    };
    let started = Instant::now();
    let error = SshHost::new(target.clone())
        .wait_ready(Duration::from_secs(30))
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused key must not be retried"
    );
    assert!(matches!(error, HostError::SshAuth { .. }), "{error:?}");
    let message = error.to_string();
    let who = format!("{}@127.0.0.1:{}", Sshd::user(), sshd.port());
    for part in [
        who.as_str(),
        &sshd.stranger_key().display().to_string(),
        "launched with",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }

    let missing = dir.path().join("no-such-key.pem");
    let error = SshHost::new(SshTarget {
        key_file: missing.clone(),
        ..target
    })
    .wait_ready(Duration::from_secs(30))
    .unwrap_err();
    assert!(matches!(error, HostError::SshAuth { .. }), "{error:?}");
    assert!(error.to_string().contains("no-such-key.pem"), "{error}");
}

#[test]
fn pem_rsa_keys_and_extra_loopback_addresses_work() {
    let sshd = Sshd::start_on(&["127.0.0.1", "127.0.1.21"]);
    let dir = tempfile::tempdir().unwrap();
    assert!(fs::read_to_string(sshd.client_key_rsa_pem())
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let known_hosts = dir.path().join("known_hosts");
    for address in ["127.0.0.1", "127.0.1.21"] {
        let host = SshHost::new(SshTarget {
            key_file: sshd.client_key_rsa_pem(),
            ..sshd.target(address, &known_hosts)
        });
        host.wait_ready(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{address}: {e}\n{}", sshd.log()));
        let out = host.exec(Path::new("id"), &["-un"]).unwrap();
        assert_eq!(out.stdout.trim(), Sshd::user());
    }
    assert_eq!(fs::read_to_string(&known_hosts).unwrap().lines().count(), 2);
}

#[test]
fn an_unreachable_host_times_out_with_a_clear_message() {
    let port = testkit::ports::free_port();
    let dir = tempfile::tempdir().unwrap();
    let host = SshHost::new(SshTarget {
        host: "127.0.0.1".into(),
        port,
        user: Sshd::user(),
        key_file: dir.path().join("unused"),
        known_hosts: dir.path().join("known_hosts"),
    });
    let started = Instant::now();
    let error = host.wait_ready(Duration::from_secs(3)).unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited <= Duration::from_secs(4),
        "waited {waited:?}"
    );
    assert!(matches!(error, HostError::SshNotReady { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("refused"), "{message}");

    let started = Instant::now();
    let process = ProcessInfo {
        pid: 1,
        pgid: 1,
        tag: "x".into(),
    };
    assert!(!host.is_running(&process));
    // Stopping cannot pretend to succeed on a host it cannot reach.
    let error = host.stop(&process, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(error, HostError::SshConnect { .. }), "{error:?}");
    let error = host.exec(Path::new("true"), &[]).unwrap_err();
    assert!(matches!(error, HostError::SshConnect { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!dir.path().join("known_hosts").exists());
}
