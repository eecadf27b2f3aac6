//! The programs a test runs, found from the checkout or the environment, never from a fixed
//! path of one machine. A missing one fails the test with a message saying how to get it,
//! unless its skip variable asks to skip: then [`crate::skip`] prints why and the caller
//! returns.

use std::path::{Path, PathBuf};

/// The checkout's root (this crate lives in `crates/testkit`).
pub fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit has a checkout root")
        .to_path_buf()
}

/// The labnode binary for tests of another crate: `LABNODE_BIN`, else `labnode` beside
/// `sibling`, a binary of the same cargo target directory (pass `env!("CARGO_BIN_EXE_lab")`).
pub fn labnode_beside(sibling: &str) -> PathBuf {
    let path = std::env::var_os("LABNODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(sibling).with_file_name("labnode"));
    assert!(
        path.is_file(),
        "labnode not found at {}: run `cargo build -p labnode` with the same CARGO_TARGET_DIR, or set LABNODE_BIN",
        path.display()
    );
    path
}

/// The OpenBao CLI: `LABNODE_BAO`, else the checkout's `.venv/bin/bao`. `None` (after a SKIP
/// notice) only when it is missing and `LABNODE_SKIP_BAO=1`; missing otherwise fails.
pub fn bao() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LABNODE_BAO").map(PathBuf::from) {
        assert!(path.is_file(), "LABNODE_BAO={} is not a file", path.display());
        return Some(path);
    }
    let venv = checkout().join(".venv/bin/bao");
    if venv.is_file() {
        return Some(venv);
    }
    if crate::skip_requested("LABNODE_SKIP_BAO") {
        crate::skip("no bao CLI (LABNODE_BAO unset, no .venv/bin/bao) and LABNODE_SKIP_BAO=1");
        return None;
    }
    panic!(
        "the OpenBao CLI `bao` is not installed: set LABNODE_BAO, or create the checkout's venv with \
         `python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-test.txt` \
         (scripts/test.sh does both); LABNODE_SKIP_BAO=1 skips the tests that need it"
    )
}

/// [`bao`] for a test that checked it at its start: missing here is a failure.
pub fn bao_required() -> PathBuf {
    bao().expect("this test needs bao; it must check `testkit::locate::bao()` before it starts")
}

/// `terraform` from PATH. `None` (after a SKIP notice) only when it is missing and
/// `LABNODE_SKIP_TERRAFORM=1`; missing otherwise fails.
pub fn terraform() -> Option<PathBuf> {
    if let Some(found) = on_path("terraform") {
        return Some(found);
    }
    if crate::skip_requested("LABNODE_SKIP_TERRAFORM") {
        crate::skip("no `terraform` on PATH and LABNODE_SKIP_TERRAFORM=1");
        return None;
    }
    panic!(
        "no `terraform` on PATH: install Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install); \
         LABNODE_SKIP_TERRAFORM=1 skips the checks that need it"
    )
}

/// An executable `name` in one of PATH's directories.
pub fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
