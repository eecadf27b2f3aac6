//! `lincheck run` records a history against a running lab under faults and checks it;
//! `lincheck check FILE` checks a recorded history again. Exit 0: linearizable and nothing
//! lost; 1: not linearizable or acknowledged writes lost; 2: inconclusive or error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use lincheck::checker::{self, Verdict};
use lincheck::history::Operation;
use lincheck::lab::{self, Lab};
use lincheck::run::{self, RunOptions};

#[derive(Parser)]
#[command(name = "lincheck", about = "Linearizability of labnode's KV v2 under faults")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive clients against an up lab while killing and pausing its leader.
    Run(RunArgs),
    /// Check a history written by `run --history`.
    Check {
        /// The JSON history.
        file: PathBuf,
        /// Search steps per key.
        #[arg(long, default_value_t = 50_000_000)]
        budget: u64,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The lab's home (as for `lab`).
    #[arg(long, env = "LAB_HOME")]
    lab_home: PathBuf,
    /// The `lab` binary; default: next to this one.
    #[arg(long)]
    lab: Option<PathBuf>,
    #[arg(long, default_value_t = 6)]
    clients: usize,
    #[arg(long, default_value_t = 3)]
    keys: usize,
    #[arg(long, default_value_t = 20)]
    kill_cycles: u32,
    #[arg(long, default_value_t = 20)]
    pause_cycles: u32,
    /// Milliseconds a killed leader stays down.
    #[arg(long, default_value_t = 1500)]
    down_ms: u64,
    /// Milliseconds a paused leader stays frozen.
    #[arg(long, default_value_t = 3000)]
    pause_ms: u64,
    /// Milliseconds of fault-free load after each cycle.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Read timeout in milliseconds (an unanswered read is unknown); above --pause-ms.
    #[arg(long, default_value_t = 6000)]
    read_timeout_ms: u64,
    /// Write timeout in milliseconds (an unanswered write is unknown); below --pause-ms.
    #[arg(long, default_value_t = 1000)]
    write_timeout_ms: u64,
    /// Upper bound of the random pause between a client's operations, in milliseconds.
    #[arg(long, default_value_t = 5)]
    think_ms: u64,
    #[arg(long, default_value_t = 200_000)]
    max_ops: usize,
    /// Seconds after which the fault schedule stops.
    #[arg(long, default_value_t = 900)]
    time_limit_s: u64,
    /// Checker search steps per key.
    #[arg(long, default_value_t = 50_000_000)]
    budget: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the history as JSON here.
    #[arg(long)]
    history: Option<PathBuf>,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lincheck: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Run(args) => run_command(args),
        Command::Check { file, budget } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let history: Vec<Operation> =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
            let verdict = checker::check(&history, budget);
            println!("operations: {}", history.len());
            println!("verdict: {verdict:?}");
            Ok(ExitCode::from(match verdict {
                Verdict::Linearizable => 0,
                Verdict::NotLinearizable(_) => 1,
                Verdict::Inconclusive { .. } => 2,
            }))
        }
    }
}

fn run_command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let bin = match args.lab {
        Some(bin) => bin,
        None => lab::sibling_lab_binary().context("no `lab` binary next to lincheck: pass --lab")?,
    };
    anyhow::ensure!(
        lab::is_lab_home(&args.lab_home),
        "{} is not an up lab (no state.json): run `lab up` first",
        args.lab_home.display()
    );
    let lab = Lab {
        bin,
        home: args.lab_home,
    };
    let opts = RunOptions {
        clients: args.clients,
        keys: args.keys,
        kill_cycles: args.kill_cycles,
        pause_cycles: args.pause_cycles,
        down_for: Duration::from_millis(args.down_ms),
        pause_for: Duration::from_millis(args.pause_ms),
        settle: Duration::from_millis(args.settle_ms),
        read_timeout: Duration::from_millis(args.read_timeout_ms),
        write_timeout: Duration::from_millis(args.write_timeout_ms),
        think: Duration::from_millis(args.think_ms),
        max_ops: args.max_ops,
        time_limit: Duration::from_secs(args.time_limit_s),
        check_budget: args.budget,
        seed: args.seed,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let report = runtime.block_on(run::run(&lab, &opts))?;
    if let Some(path) = &args.history {
        let json = serde_json::to_string(&report.history).context("encoding the history")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{report}");
    Ok(ExitCode::from(match report.verdict {
        Verdict::Inconclusive { .. } if report.lost.is_empty() => 2,
        _ if report.passed() => 0,
        _ if report.cut_short && report.lost.is_empty() && report.verdict == Verdict::Linearizable => 2,
        _ => 1,
    }))
}
