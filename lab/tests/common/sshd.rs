//! A real OpenSSH server for tests of the ssh host: a host key and client keys generated
//! with `ssh-keygen` in a temp dir, a free (locked) loopback port, and every sshd process it started
//! killed on drop (so a failing test leaves none behind).

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lab::host::SshTarget;

/// The OpenSSH server binary.
const SSHD: &str = "/usr/sbin/sshd";

/// One running sshd, listening on loopback addresses.
pub struct Sshd {
    dir: tempfile::TempDir,
    addresses: Vec<String>,
    port: u16,
    host_key: PathBuf,
    rotations: u32,
    child: Option<Child>,
}

impl Sshd {
    /// An sshd on 127.0.0.1.
    pub fn start() -> Sshd {
        Sshd::start_on(&["127.0.0.1"])
    }

    /// An sshd listening on each of `addresses` (loopback addresses such as 127.0.1.21 need
    /// no setup on Linux), all on the same port.
    pub fn start_on(addresses: &[&str]) -> Sshd {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} not found: `apt-get install openssh-server` (scripts/test.sh installs it)"
        );
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // sshd's privilege separation directory, missing in containers until the
            // service first ran.
            fs::create_dir_all("/run/sshd").unwrap();
        }
        let dir = tempfile::Builder::new().prefix("lab-sshd-").tempdir().unwrap();
        let host_key = dir.path().join("host_key_0");
        keygen(&host_key, &["-t", "ed25519"]);
        keygen(&dir.path().join("client_ed25519"), &["-t", "ed25519"]);
        keygen(
            &dir.path().join("client_rsa.pem"),
            &["-t", "rsa", "-b", "2048", "-m", "PEM"],
        );
        keygen(&dir.path().join("stranger"), &["-t", "ed25519"]);
        let mut authorized = fs::read_to_string(dir.path().join("client_ed25519.pub")).unwrap();
        authorized.push_str(&fs::read_to_string(dir.path().join("client_rsa.pem.pub")).unwrap());
        fs::write(dir.path().join("authorized_keys"), authorized).unwrap();
        let mut sshd = Sshd {
            dir,
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            port: 0,
            host_key,
            rotations: 0,
            child: None,
        };
        for _ in 0..20 {
            let addresses: Vec<&str> = sshd.addresses.iter().map(String::as_str).collect();
            sshd.port = testkit::ports::free_port_on(&addresses);
            if sshd.spawn() {
                return sshd;
            }
        }
        panic!("sshd could not bind a free port:\n{}", sshd.log());
    }

    /// The port sshd listens on (on every address).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An ed25519 private key (OpenSSH format) that sshd authorizes.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// An RSA private key in PEM format (`BEGIN RSA PRIVATE KEY`, as EC2 CreateKeyPair
    /// returns) that sshd authorizes.
    pub fn client_key_rsa_pem(&self) -> PathBuf {
        self.dir.path().join("client_rsa.pem")
    }

    /// A valid private key that sshd does not authorize.
    pub fn stranger_key(&self) -> PathBuf {
        self.dir.path().join("stranger")
    }

    /// The user tests log in as: the one running them (sshd only lets a non-root sshd
    /// authenticate its own user).
    pub fn user() -> String {
        let out = Command::new("id").arg("-un").output().unwrap();
        assert!(out.status.success(), "id -un failed");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The temp dir holding keys, config and sshd's log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where to reach this sshd on `address` with the authorized ed25519 key, recording host
    /// keys in `known_hosts`.
    pub fn target(&self, address: &str, known_hosts: &Path) -> SshTarget {
        SshTarget {
            host: address.to_owned(),
            port: self.port,
            user: Sshd::user(),
            key_file: self.client_key(),
            known_hosts: known_hosts.to_owned(),
        }
    }

    /// Kills sshd and every session it serves (like a reboot of the machine: open
    /// connections break), then starts it again on the same port with the same host key.
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn_retrying(), "sshd did not restart:\n{}", self.log());
    }

    /// Like [`Sshd::restart`], with a newly generated host key (a rebuilt machine).
    pub fn restart_with_new_host_key(&mut self) {
        self.kill();
        self.rotations += 1;
        self.host_key = self.dir.path().join(format!("host_key_{}", self.rotations));
        keygen(&self.host_key, &["-t", "ed25519"]);
        assert!(self.spawn_retrying(), "sshd did not restart:\n{}", self.log());
    }

    /// sshd's own log (its stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Spawns sshd on the current port a few times (the port was just released).
    fn spawn_retrying(&mut self) -> bool {
        (0..10).any(|_| self.spawn())
    }

    /// Writes the config, runs sshd and waits until it accepts connections; false when it
    /// exited (e.g. the port was taken meanwhile).
    fn spawn(&mut self) -> bool {
        let dir = self.dir.path();
        let mut config = String::new();
        for address in &self.addresses {
            config.push_str(&format!("ListenAddress {address}:{}\n", self.port));
        }
        config.push_str(&format!(
            "HostKey {host_key}\n\
             AuthorizedKeysFile {dir}/authorized_keys\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             StrictModes no\n\
             UsePAM no\n\
             PidFile {dir}/sshd.pid\n\
             Subsystem sftp internal-sftp\n\
             MaxStartups 100\n\
             MaxSessions 100\n",
            host_key = self.host_key.display(),
            dir = dir.display(),
        ));
        let config_file = dir.join("sshd_config");
        fs::write(&config_file, config).unwrap();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("sshd.log"))
            .unwrap();
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            let ready = self
                .addresses
                .iter()
                .all(|a| TcpStream::connect((a.as_str(), self.port)).is_ok());
            if ready {
                self.child = Some(child);
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not accept connections within 10s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs sshd and its descendants (per-connection processes leave its process
    /// group, so they are found through their parents).
    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let mut doomed = vec![child.id()];
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i];
            doomed.extend(children(parent));
            i += 1;
        }
        for pid in doomed.iter().rev() {
            // SAFETY: kill(2) only sends a signal.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        }
        let _ = child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `ssh-keygen` to create an unencrypted key pair at `path`.
fn keygen(path: &Path, args: &[&str]) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", "lab-test"])
        .args(args)
        .arg("-f")
        .arg(path)
        .output()
        .expect("ssh-keygen not found: apt-get install openssh-client");
    assert!(
        out.status.success(),
        "ssh-keygen {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pids whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1.to_owned();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}
