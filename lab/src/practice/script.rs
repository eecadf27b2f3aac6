//! Setup and solution steps: shell lines (mostly `vault ...`) run as one `sh -e` script,
//! so a step can use a variable an earlier step set. The script sees the lab's env:
//! VAULT_ADDR and VAULT_TOKEN, LAB_HOME, and `vault` (= labnode) and `lab` on PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::PracticeError;
use crate::state::LabHome;

/// Where a script's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The learner's terminal (solution --run).
    Stdout,
    /// Progress stream (setup), so stdout stays clean.
    Stderr,
}

/// The script text: each step echoed as `$ step`, then run; `set -e` stops at a failure.
pub fn script(steps: &[String]) -> String {
    let mut text = String::from("set -e\n");
    for step in steps {
        let shown = format!("$ {step}").replace('\'', "'\\''");
        text.push_str(&format!("printf '%s\\n' '{shown}'\n{step}\n"));
    }
    text
}

/// Runs rendered `steps` with `vars` (VAULT_ADDR, VAULT_TOKEN) in the lab's environment.
pub fn run(
    home: &LabHome,
    labnode: &Path,
    vars: &[(String, String)],
    steps: &[String],
    output: Output,
) -> Result<(), PracticeError> {
    let bin = tempfile::Builder::new()
        .prefix("lab-practice-")
        .tempdir()
        .map_err(|source| PracticeError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let vault = bin.path().join("vault");
    std::os::unix::fs::symlink(labnode, &vault).map_err(|source| PracticeError::Io {
        path: vault.clone(),
        source,
    })?;
    let lab_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned))
        .unwrap_or_default();
    let mut paths: Vec<PathBuf> = vec![bin.path().to_owned(), lab_dir];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(paths).map_err(|e| PracticeError::Io {
        path: bin.path().to_owned(),
        source: std::io::Error::other(e),
    })?;
    let out = || match output {
        Output::Stdout => Stdio::inherit(),
        Output::Stderr => Stdio::from(std::io::stderr()),
    };
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(script(steps))
        .current_dir(super::practice_dir(home))
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .env("PATH", path)
        .env("LAB_HOME", home.root())
        .stdin(Stdio::null())
        .stdout(out())
        .stderr(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|source| PracticeError::Io {
            path: PathBuf::from("/bin/sh"),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(PracticeError::StepFailed(status.code().unwrap_or(-1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_echoed_with_quotes_escaped() {
        let text = script(&["echo 'hi'".to_owned()]);
        assert_eq!(text, "set -e\nprintf '%s\\n' '$ echo '\\''hi'\\'''\necho 'hi'\n");
        let out = Command::new("/bin/sh").arg("-c").arg(&text).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "$ echo 'hi'\nhi\n");
    }
}
