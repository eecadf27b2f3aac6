//! Runs the `labnode` CLI and the real `bao` CLI against the same OpenBao dev server and
//! compares their output, so table layouts and messages stay identical to vault's.
//!
//! Needs `bao` (see `testkit::locate::bao`): without it the test fails, unless
//! `LABNODE_SKIP_BAO=1` asks to skip it.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Kills the dev server even when an assertion fails.
struct BaoServer {
    child: Child,
    addr: String,
}

impl Drop for BaoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bao: &Path) -> BaoServer {
    let port = testkit::ports::free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let child = Command::new(bao)
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bao");
    let server = BaoServer { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(bao, &server.addr, &["status"]);
        if out.status.code() == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "bao dev server did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

fn run(bin: &Path, addr: &str, args: &[&str]) -> Output {
    let mut command = testkit::cli::vault(bin, addr, &std::env::temp_dir(), Some("root"));
    command.args(args);
    testkit::cli::run(command)
}

/// Masks values that legitimately differ between two runs or between bao and vault wording.
fn normalise(s: &[u8]) -> String {
    let text = String::from_utf8_lossy(s)
        .replace("OpenBao", "Vault")
        .replace("'bao ", "'vault ");
    text.split_inclusive('\n')
        .map(|line| {
            // Vault prints `Build Date`, bao `Commit Date`; only the row's presence matters.
            if line.starts_with("Commit Date") || line.starts_with("Build Date") {
                return "<BUILD DATE>\n".to_string();
            }
            line.split(' ')
                .map(|w| {
                    let t = w.trim_matches(|c: char| c == '"' || c == ',' || c == '\n');
                    // IDs, tokens and timestamps are long runs of alphanumerics and
                    // `.-:`; some accessors have no digit at all.
                    let random_id =
                        t.len() >= 20 && t.chars().all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
                    if random_id {
                        w.replace(t, "<ID>")
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn compare(bao: &Path, addr: &str, args: &[&str]) {
    let ours = run(Path::new(env!("CARGO_BIN_EXE_labnode")), addr, args);
    let theirs = run(bao, addr, args);
    assert_eq!(
        normalise(&ours.stdout),
        normalise(&theirs.stdout),
        "stdout differs for {args:?}; stderr ours: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
    assert_eq!(
        normalise(&ours.stderr),
        normalise(&theirs.stderr),
        "stderr differs for {args:?}"
    );
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "exit code differs for {args:?}"
    );
}

#[test]
fn cli_output_matches_bao() {
    let Some(bao) = testkit::locate::bao() else {
        return;
    };
    let server = start(&bao);
    let a = server.addr.as_str();
    let ours = Path::new(env!("CARGO_BIN_EXE_labnode"));
    let policy = std::env::temp_dir().join(format!("labnode-cli-test-{}.hcl", std::process::id()));
    std::fs::write(&policy, "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n").unwrap();
    let policy = policy.to_string_lossy().into_owned();

    // Mutations run through our CLI; their output is compared with bao's on a twin path.
    for (cmd, twin) in [
        (
            vec!["secrets", "enable", "-path=kv1", "kv"],
            vec!["secrets", "enable", "-path=kv2", "kv"],
        ),
        (
            vec!["write", "kv1/x", "a=b", "n=3"],
            vec!["write", "kv2/x", "a=b", "n=3"],
        ),
        (
            vec!["policy", "write", "p1", &policy],
            vec!["policy", "write", "p2", &policy],
        ),
        (
            vec!["kv", "put", "secret/ap1", "user=x", "pass=y"],
            vec!["kv", "put", "secret/ap2", "user=x", "pass=y"],
        ),
    ] {
        let o = run(ours, a, &cmd);
        let b = run(&bao, a, &twin);
        let fix = |s: &[u8]| {
            normalise(s)
                .replace("kv2", "kv1")
                .replace("p2", "p1")
                .replace("ap2", "ap1")
        };
        assert_eq!(normalise(&o.stdout), fix(&b.stdout), "{cmd:?}");
        assert_eq!(o.status.code(), b.status.code(), "{cmd:?}");
    }
    for args in [
        vec!["status"],
        vec!["read", "kv1/x"],
        vec!["read", "-format=json", "kv1/x"],
        vec!["read", "-field=a", "kv1/x"],
        vec!["read", "-field=zz", "kv1/x"],
        vec!["read", "nosuch/path"],
        vec!["read", "kv1/x", "extra"],
        vec!["write", "kv1/y"],
        vec!["write", "-bogus", "kv1/y"],
        vec!["list", "kv1"],
        vec!["list", "-format=json", "kv1"],
        vec!["list", "kv1/nope"],
        vec!["kv", "get", "secret/ap1"],
        vec!["kv", "get", "-format=json", "secret/ap1"],
        vec!["kv", "get", "-field=user", "secret/ap1"],
        vec!["kv", "get", "secret/nope"],
        vec!["kv", "get", "kv1/x"],
        vec!["kv", "list", "secret"],
        vec!["kv", "metadata", "get", "secret/ap1"],
        vec!["token", "lookup"],
        vec![
            "token",
            "create",
            "-policy=default",
            "-ttl=1h",
            "-field=token_policies",
        ],
        vec!["token", "capabilities", "secret/foo"],
        vec!["policy", "read", "p1"],
        vec!["policy", "list"],
        vec!["secrets", "list"],
        vec!["delete", "kv1/x"],
        vec!["print", "token"],
    ] {
        compare(&bao, a, &args);
    }

    // Token creation: same table shape, tokens masked.
    let o = run(ours, a, &["token", "create", "-policy=default", "-ttl=1h"]);
    let b = run(&bao, a, &["token", "create", "-policy=default", "-ttl=1h"]);
    assert_eq!(normalise(&o.stdout), normalise(&b.stdout));

    // The warning block on a write the server answers with warnings.
    let o = run(ours, a, &["write", "secret/foo", "a=b"]);
    let b = run(&bao, a, &["write", "secret/foo", "a=b"]);
    assert_eq!(normalise(&o.stderr), normalise(&b.stderr));
    assert_eq!(o.status.code(), Some(2));
}
