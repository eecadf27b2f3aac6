//! The instances as hosts: one ssh connection per machine, and each machine made ready
//! for a node (cloud-init finished, the labnode binary installed and working).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use super::AwsProvider;
use crate::host::{Host, SshHost, SshTarget};
use crate::provider::{Provider, ProviderError};
use crate::state::{NodeState, SshAddress, State};

/// Waits for cloud-init (absent on emulated machines: then nothing to wait for).
const CLOUD_INIT_WAIT: &str =
    "if command -v cloud-init >/dev/null 2>&1; then cloud-init status --wait >/dev/null || { cloud-init status; exit 1; }; fi";

impl AwsProvider {
    /// Waits for ssh on every node's machine and installs the labnode binary there.
    pub(super) fn prepare_hosts(&self, state: &State) -> Result<(), ProviderError> {
        let local = self.local.labnode();
        for cluster in &state.clusters {
            for node in &cluster.nodes {
                let host = self.ssh_host(node);
                let target = host.target().clone();
                eprintln!(
                    "==> {}/{}: waiting for ssh on {}@{}:{}",
                    cluster.name, node.name, target.user, target.host, target.port
                );
                host.wait_ready(self.options.ssh_timeout)?;
                // sshd answers before cloud-init ran the user data that creates lab's
                // directories; where there is cloud-init, wait for it to finish.
                let booted = host.exec(Path::new("/bin/sh"), &["-c", CLOUD_INIT_WAIT])?;
                if !booted.success {
                    return Err(self.cloud_error(
                        format!("user data on {}/{}", cluster.name, node.name),
                        format!(
                            "cloud-init reported a failure: {}; see /var/log/cloud-init-output.log there",
                            booted.stdout.trim()
                        ),
                    ));
                }
                host.install_executable(local, &self.remote_labnode)?;
                let version = host.exec(&self.remote_labnode, &["version"])?;
                if !version.success {
                    return Err(ProviderError::LabnodeBroken {
                        labnode: self.remote_labnode.clone(),
                        detail: format!(
                            "on {}: {} (is the instance's OS older than the one labnode was built on?)",
                            target.host,
                            version.stderr.trim()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The ssh host of `node`, one per address, connected on first use.
    pub(super) fn ssh_host(&self, node: &NodeState) -> Arc<SshHost> {
        let address = node.ssh.clone().unwrap_or(SshAddress {
            host: String::new(),
            port: self.options.ssh_port,
            user: self.options.ssh_user.clone(),
        });
        let key = format!("{}@{}:{}", address.user, address.host, address.port);
        let key_file = self.ssh_key_file();
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(SshHost::new(SshTarget {
                    host: address.host,
                    port: address.port,
                    user: address.user,
                    key_file,
                    known_hosts: self.home.root().join("known_hosts"),
                }))
            })
            .clone()
    }
}

/// The public half of an operator's private key: `KEY.pub` beside it.
pub(super) fn public_key_of(private: &Path) -> Result<String, String> {
    if let Err(e) = std::fs::metadata(private) {
        return Err(format!("--ssh-key {}: {e}", private.display()));
    }
    let public = PathBuf::from(format!("{}.pub", private.display()));
    std::fs::read_to_string(&public).map_err(|e| {
        format!(
            "--ssh-key {}: cannot read its public key {} ({e}); create it with `ssh-keygen -y -f {} > {}`",
            private.display(),
            public.display(),
            private.display(),
            public.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_beside_the_private_one_is_required() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        std::fs::write(&key, "private").unwrap();
        assert!(public_key_of(&key).unwrap_err().contains("ssh-keygen -y -f"));
        std::fs::write(dir.path().join("id.pub"), "ssh-ed25519 AAAA me\n").unwrap();
        assert_eq!(public_key_of(&key).unwrap(), "ssh-ed25519 AAAA me\n");
        assert!(public_key_of(&dir.path().join("missing"))
            .unwrap_err()
            .contains("--ssh-key"));
    }
}
