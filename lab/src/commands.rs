//! One function per command, wiring the layers together; each returns the exit code.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use crate::cli::{Command, FaultAction, Settings};
use crate::fault::{self, Fault, FaultOutcome};
use crate::lifecycle;
use crate::provider::{self, LocalProvider, Provider, ProviderChoice};
use crate::render::Renderer;
use crate::report;
use crate::runbook::{Engine, Runbook};
use crate::state::{LabHome, Phase, State, Target};
use crate::status::{self, LabStatus};
use crate::topology::{SealKind, Topology};
use crate::LabError;

/// Runs a resolved command.
pub fn run(settings: Settings) -> Result<u8, LabError> {
    let home = &settings.home;
    match settings.command {
        Command::Up {
            topology,
            renderer,
            provider,
            json,
        } => up(home, &topology, &renderer, &provider, json),
        Command::Status { json } => status(home, json),
        Command::Env { target } => env(home, target.as_deref()),
        Command::Creds { cluster, json } => creds(home, cluster.as_deref(), json),
        Command::Shell { target } => shell(home, target.as_deref()),
        Command::Logs { node, follow } => logs(home, &node, follow),
        Command::Fault(action) => fault(home, action),
        Command::Render {
            topology,
            renderer,
            out,
        } => render(home, &topology, &renderer, &out),
        Command::Drill {
            runbook,
            topology,
            renderer,
            report,
            repeat,
            provider,
        } => drill(
            home,
            &runbook,
            &topology,
            &renderer,
            report.as_deref(),
            repeat,
            &provider,
        ),
        Command::Practice(action) => crate::practice::run(home, action),
        Command::Down { purge, sweep } => down(home, purge, sweep.as_deref()),
    }
}

/// Progress lines go to stderr so stdout stays clean for `--json` and `eval`.
fn progress(line: &str) {
    eprintln!("==> {line}");
}

fn up(
    home: &LabHome,
    topology: &Topology,
    renderer: &Renderer,
    choice: &ProviderChoice,
    json: bool,
) -> Result<u8, LabError> {
    let (state, provider) = lifecycle::start_lab(home, topology, renderer, choice, &mut progress)?;
    let status = status::collect(&state, home, provider.as_ref());
    if json {
        println!("{}", to_json(&status)?);
    } else {
        print!("{}", lifecycle::up_summary(home, &state, &status));
    }
    Ok(0)
}

/// Runs a drill `repeat` times, each on a fresh lab that is removed afterwards (logs
/// kept); exit code 0 when every run passed.
fn drill(
    home: &LabHome,
    runbook: &Runbook,
    topology: &Topology,
    renderer: &Renderer,
    report: Option<&Path>,
    repeat: u32,
    choice: &ProviderChoice,
) -> Result<u8, LabError> {
    let mut reports = Vec::new();
    for run in 1..=repeat as usize {
        progress(&format!(
            "drill {} run {run}/{repeat}: bringing up {}",
            runbook.name, topology.name
        ));
        let (state, provider) = lifecycle::start_lab(home, topology, renderer, choice, &mut progress)?;
        let outcome = Engine::new(home, state, provider.as_ref(), true)
            .map(|engine| engine.run(runbook, run))
            .map_err(|source| LabError::Io {
                path: std::env::temp_dir(),
                source,
            });
        let state = home.load()?;
        for line in provider.teardown(home, state.as_ref())? {
            progress(&line);
        }
        home.remove_runtime()?;
        let result = outcome?;
        print!("{}", report::terminal_summary(&result));
        if let Some(dir) = report {
            let dir = if repeat > 1 {
                dir.join(format!("run-{run}"))
            } else {
                dir.to_owned()
            };
            for path in report::write(&dir, &result)? {
                println!("  wrote {}", path.display());
            }
        }
        reports.push(result);
    }
    if repeat > 1 {
        let aggregate = report::aggregate(&reports);
        print!("{}", aggregate.table());
        if let Some(dir) = report {
            for path in report::write_aggregate(dir, &aggregate)? {
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(if reports.iter().all(|r| r.passed) { 0 } else { 1 })
}

fn status(home: &LabHome, json: bool) -> Result<u8, LabError> {
    let state = home.require()?;
    let provider = provider::for_state(&state, home)?;
    let status = status::collect(&state, home, provider.as_ref());
    if json {
        println!("{}", to_json(&status)?);
    } else {
        if state.phase == Phase::Starting {
            eprintln!(
                "note: bring-up did not finish (lab crashed or is still running); `lab down` cleans up"
            );
        }
        print!("{}", status.table());
    }
    Ok(0)
}

/// The node a NODE|CLUSTER argument means: a cluster means its active node (or its first
/// node, with a warning, when none is active).
fn pick_node(home: &LabHome, state: &State, target: Option<&str>) -> Result<(usize, usize), LabError> {
    match state.resolve(target)? {
        Target::Node(c, n) => Ok((c, n)),
        Target::Cluster(c) => {
            let provider = provider::for_state(state, home)?;
            let status: LabStatus = status::collect(state, home, provider.as_ref());
            Ok(match status.leader_of(c) {
                Some(n) => (c, n),
                None => {
                    eprintln!(
                        "warning: cluster {} has no active node; using {}",
                        state.clusters[c].name,
                        state.qualified(c, 0)
                    );
                    (c, 0)
                }
            })
        }
    }
}

/// VAULT_ADDR and VAULT_TOKEN for a target.
fn vault_env(home: &LabHome, state: &State, target: Option<&str>) -> Result<[(String, String); 2], LabError> {
    let (c, n) = pick_node(home, state, target)?;
    let creds = home.credentials(&state.clusters[c].name)?;
    Ok([
        (
            "VAULT_ADDR".to_owned(),
            state.clusters[c].nodes[n].api_addr.clone(),
        ),
        ("VAULT_TOKEN".to_owned(), creds.root_token),
    ])
}

fn env(home: &LabHome, target: Option<&str>) -> Result<u8, LabError> {
    let state = home.require()?;
    let vars = vault_env(home, &state, target)?;
    let assignments: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("export {}", assignments.join(" "));
    Ok(0)
}

fn creds(home: &LabHome, cluster: Option<&str>, json: bool) -> Result<u8, LabError> {
    let state = home.require()?;
    let c = match state.resolve(cluster)? {
        Target::Cluster(c) | Target::Node(c, _) => c,
    };
    let creds = home.credentials(&state.clusters[c].name)?;
    if json {
        println!("{}", to_json(&creds)?);
        return Ok(0);
    }
    for (i, key) in creds.unseal_keys_b64.iter().enumerate() {
        println!("Unseal Key {}: {key}", i + 1);
    }
    for (i, key) in creds.recovery_keys_b64.iter().enumerate() {
        println!("Recovery Key {}: {key}", i + 1);
    }
    println!("\nInitial Root Token: {}\n", creds.root_token);
    if creds.unseal_shares > 0 {
        println!(
            "Vault initialized with {} key shares and a key threshold of {}.",
            creds.unseal_shares, creds.unseal_threshold
        );
    } else {
        println!(
            "Vault initialized with {} recovery key shares and a key threshold of {}.",
            creds.recovery_keys_shares, creds.recovery_keys_threshold
        );
    }
    Ok(0)
}

fn shell(home: &LabHome, target: Option<&str>) -> Result<u8, LabError> {
    let state = home.require()?;
    let vars = vault_env(home, &state, target)?;
    let bin = tempfile::Builder::new()
        .prefix("lab-shell-")
        .tempdir()
        .map_err(|source| LabError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let vault = bin.path().join("vault");
    std::os::unix::fs::symlink(&state.labnode, &vault).map_err(|source| LabError::Io {
        path: vault.clone(),
        source,
    })?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.path().to_owned()];
    paths.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(paths).map_err(|e| LabError::Io {
        path: bin.path().to_owned(),
        source: std::io::Error::other(e),
    })?;
    let shell = std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    eprintln!(
        "lab shell: {}={} ; `vault` is labnode; exit to leave",
        vars[0].0, vars[0].1
    );
    let status = Process::new(&shell)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .env("PATH", path)
        .env("LAB_HOME", home.root())
        .status()
        .map_err(|source| LabError::Io {
            path: PathBuf::from(&shell),
            source,
        })?;
    Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1))
}

fn logs(home: &LabHome, node: &str, follow: bool) -> Result<u8, LabError> {
    let state = home.require()?;
    let Target::Node(c, n) = state.resolve(Some(node))? else {
        return Err(LabError::NotANode(node.to_owned()));
    };
    let provider = provider::for_state(&state, home)?;
    let mut stdout = std::io::stdout().lock();
    let node = &state.clusters[c].nodes[n];
    provider.host(node).logs(&node.log, follow, &mut stdout)?;
    Ok(0)
}

fn fault(home: &LabHome, action: FaultAction) -> Result<u8, LabError> {
    let mut state = home.require()?;
    let (target, fault) = match &action {
        FaultAction::Kill { target } => (target, Fault::Kill),
        FaultAction::Stop { target } => (target, Fault::Stop),
        FaultAction::Partition { target } => (target, Fault::Partition),
        FaultAction::Heal { target } => (target, Fault::Heal),
        FaultAction::Start { target, unseal } => (target, Fault::Start { unseal: *unseal }),
    };
    let nodes = state.nodes_of(state.resolve(Some(target))?);
    let provider = provider::for_state(&state, home)?;
    for (c, n) in nodes {
        let name = state.qualified(c, n);
        let outcome = fault::inject(home, provider.as_ref(), &mut state, (c, n), fault, &mut progress)?;
        let what = match outcome {
            FaultOutcome::Started => {
                let how = match (fault, state.clusters[c].seal) {
                    (Fault::Start { unseal: true }, _) => "unsealed and rejoined",
                    (_, SealKind::Awskms) => "it unseals itself through KMS and rejoins",
                    (_, SealKind::Shamir) => "sealed; unseal it to rejoin",
                };
                format!("started ({how})")
            }
            FaultOutcome::Partitioned => "partitioned from its peers".to_owned(),
            FaultOutcome::Healed => "healed".to_owned(),
            FaultOutcome::AlreadyDown => "already down".to_owned(),
            FaultOutcome::Killed { pid } => format!("killed (pid {pid})"),
            FaultOutcome::Stopped { pid } => format!("stopped (pid {pid})"),
        };
        println!("{name}: {what}");
    }
    Ok(0)
}

fn render(home: &LabHome, topology: &Topology, renderer: &Renderer, out: &Path) -> Result<u8, LabError> {
    // Planning only assigns addresses and paths; no labnode binary is needed for that.
    let plan = LocalProvider::new(PathBuf::new()).plan(topology, home)?;
    for cluster in &plan.clusters {
        for node in &cluster.nodes {
            let text = renderer.render_node(&node.context)?;
            let path = out.join(&cluster.name).join(format!("{}.hcl", node.state.name));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| LabError::Io {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            std::fs::write(&path, text).map_err(|source| LabError::Io {
                path: path.clone(),
                source,
            })?;
            println!("{}", path.display());
        }
    }
    Ok(0)
}

fn down(home: &LabHome, purge: bool, sweep: Option<&provider::AwsOptions>) -> Result<u8, LabError> {
    let removal = lifecycle::take_down(home, purge, sweep, &mut progress)?;
    println!("{}", removal.summary(home));
    Ok(0)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, LabError> {
    serde_json::to_string_pretty(value).map_err(|e| LabError::Io {
        path: PathBuf::from("<stdout>"),
        source: std::io::Error::other(e),
    })
}
