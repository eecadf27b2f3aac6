//! Running a command line under test (`labnode`, `bao`, `lab`) and reading its result: the
//! checks panic with the exit status, stdout and stderr, so a failure shows all three.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Variables of the caller's shell that would change what a Vault-compatible CLI does.
const VAULT_ENV: [&str; 10] = [
    "VAULT_TOKEN",
    "BAO_TOKEN",
    "VAULT_FORMAT",
    "BAO_FORMAT",
    "VAULT_CACERT",
    "BAO_CACERT",
    "VAULT_SKIP_VERIFY",
    "BAO_SKIP_VERIFY",
    "VAULT_NAMESPACE",
    "BAO_NAMESPACE",
];

/// A Vault-compatible CLI (`labnode` or `bao`) aimed at `addr`, with a private `HOME`, no
/// colours, none of the caller's `VAULT_*`/`BAO_*` settings and, given one, `token`.
pub fn vault(binary: &Path, addr: &str, home: &Path, token: Option<&str>) -> Command {
    let mut command = Command::new(binary);
    command
        .env("VAULT_ADDR", addr)
        .env("BAO_ADDR", addr)
        .env("HOME", home)
        .env("NO_COLOR", "1");
    for var in VAULT_ENV {
        command.env_remove(var);
    }
    if let Some(token) = token {
        command.env("VAULT_TOKEN", token).env("BAO_TOKEN", token);
    }
    command
}

/// Runs `command` to completion with nothing on stdin.
pub fn run(mut command: Command) -> Output {
    let program = command.get_program().to_owned();
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.to_string_lossy()))
}

/// Runs `command` to completion with `input` on stdin.
pub fn run_with_stdin(mut command: Command, input: &str) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| panic!("write {program}'s stdin: {e}"));
    drop(stdin);
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {program}: {e}"))
}

/// Exit status, stdout and stderr of a run, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// stdout of a run of `what` that must succeed.
pub fn succeeded(what: &str, out: &Output) -> String {
    assert!(out.status.success(), "{what} failed: {}", show(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stdout of a CLI run that must succeed.
pub fn ok(out: &Output) -> String {
    succeeded("command", out)
}

/// stderr of a CLI run that must fail.
pub fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded: {}",
        show(out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
