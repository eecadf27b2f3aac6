//! `lab render` output for every built-in topology, compared with golden files in
//! `tests/golden/` (regenerate with UPDATE_GOLDEN=1 after an intended template change).

mod common;

use std::path::Path;

/// Renders a topology with a fixed home and base port and concatenates the files.
fn render(topology: &str) -> String {
    let lab = common::Lab::new();
    let out = lab.home().join("out");
    let output = lab
        .command(&[
            "render",
            "--topology",
            topology,
            "--base-port",
            "8200",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("LAB_HOME", "/lab")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut files: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let name = Path::new(file).strip_prefix(&out).unwrap().display().to_string();
            format!("# ---- {name}\n{}", std::fs::read_to_string(file).unwrap())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(topology: &str) {
    let actual = render(topology);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{topology}.hcl"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            golden.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "rendered {topology} differs from {}",
        golden.display()
    );
}

#[test]
fn single() {
    check("single");
}

#[test]
fn ha3() {
    check("ha3");
}

#[test]
fn ha5() {
    check("ha5");
}

#[test]
fn dr() {
    check("dr");
}
