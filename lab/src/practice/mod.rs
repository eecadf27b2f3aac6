//! `lab practice`: exam-style exercises. `start` brings up the exercise's topology with
//! [`lifecycle::start_lab`], as `lab up` does, runs its setup (which may break the lab on
//! purpose), prints the task and starts a timer; `check` grades the lab's state over HTTP;
//! `hint` shows the next hint; `solution` prints (or runs) the scripted answer; `reset`
//! starts over. It uses the lab library only, never the command-line layer.
//!
//! The session lives in `.lab/practice.json`; files the exercises use (snapshots,
//! answers) in `.lab/practice/`.

mod checks;
mod exercise;
mod http;
mod script;
mod session;
mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_kms::error::DisplayErrorContext;

use crate::api::ApiError;
use crate::lifecycle;
use crate::provider::{localstack_kms_client, ProviderChoice};
use crate::render::Renderer;
use crate::state::{LabHome, State, StateError, Target};
use crate::status;
use crate::topology::TopologyError;
use crate::LabError;
use exercise::Exercise;
use session::Session;

/// LocalStack's endpoint when `LABNODE_LOCALSTACK_ENDPOINT` is unset.
const LOCALSTACK_ENDPOINT: &str = "http://127.0.0.1:4566";

/// `lab practice ...`, resolved from the flags.
#[derive(Debug, Clone)]
pub enum PracticeAction {
    /// List the exercises.
    List,
    /// Bring up an exercise's lab, prepare it, print the task and start the timer.
    Start {
        /// A built-in exercise name or an exercise TOML file.
        exercise: String,
        /// API port of the first node.
        base_port: Option<u16>,
        /// Where the exercise's lab runs.
        provider: ProviderChoice,
    },
    /// Grade the lab: pass or fail per check, and the time taken so far.
    Check,
    /// Show the next hint.
    Hint,
    /// Tear the exercise's lab down and start it again (timer and hints too).
    Reset,
    /// Print the scripted solution; with `run`, also run it against the lab.
    Solution {
        /// Also run it.
        run: bool,
    },
}

/// Why a practice command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PracticeError {
    /// No built-in has this name and no such file exists.
    #[error("unknown exercise \"{name}\": not a built-in ({known}) and no such file")]
    UnknownExercise {
        /// What the user typed.
        name: String,
        /// The built-in names.
        known: String,
    },
    /// An exercise file (or `practice.json`) is not what the format allows.
    #[error("{origin}: {message}")]
    Invalid {
        /// File path or `built-in NAME`.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The exercise's topology is invalid.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Lab state or credentials.
    #[error(transparent)]
    State(#[from] StateError),
    /// A request to a node failed.
    #[error(transparent)]
    Api(ApiError),
    /// A `{{...}}` that names nothing.
    #[error("placeholder {{{{{placeholder}}}}}: {why}")]
    Placeholder {
        /// The text inside the braces.
        placeholder: String,
        /// Why it cannot be resolved.
        why: String,
    },
    /// A cluster has no active node to ask.
    #[error("cluster {0} has no active node")]
    NoActiveNode(String),
    /// A check that cannot be evaluated as written.
    #[error("{0}")]
    Check(String),
    /// A setup or solution step exited non-zero.
    #[error("a step failed (exit status {0}); its output is above")]
    StepFailed(i32),
    /// `check`, `hint`, `reset` or `solution` without `start`.
    #[error("no exercise started in {}; run `lab practice list` and `lab practice start NAME`", home.display())]
    NoSession {
        /// The lab home.
        home: PathBuf,
    },
    /// The exercise has the operator run a node on this machine.
    #[error("exercise {0} runs a node of yours on this machine next to LocalStack; start it with the local provider")]
    LocalOnly(String),
    /// The exercise needs LocalStack, which is not answering.
    #[error("this exercise needs LocalStack's KMS at {endpoint} ({reason}); start it with `scripts/localstack.sh start`")]
    LocalStack {
        /// The endpoint tried.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// A local file action failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The directory for files exercises read and write (snapshots, tokens).
pub fn practice_dir(home: &LabHome) -> PathBuf {
    home.root().join("practice")
}

/// Runs a practice subcommand; the exit code is 1 when `check` finds a failing check.
pub fn run(home: &LabHome, action: PracticeAction) -> Result<u8, LabError> {
    match action {
        PracticeAction::List => list(),
        PracticeAction::Start {
            exercise,
            base_port,
            provider,
        } => start(home, &exercise, base_port, &provider),
        PracticeAction::Check => check(home),
        PracticeAction::Hint => hint(home),
        PracticeAction::Reset => {
            let session = Session::load(home)?;
            let removal = lifecycle::take_down(home, false, None, &mut progress)?;
            println!("{}", removal.summary(home));
            start(
                home,
                &session.exercise,
                Some(session.base_port),
                &session.provider,
            )
        }
        PracticeAction::Solution { run } => solution(home, run),
    }
}

fn list() -> Result<u8, LabError> {
    for (name, exercise) in Exercise::built_ins()? {
        let topology = match &exercise.topology {
            toml::Value::String(name) => name.clone(),
            _ => "custom".to_owned(),
        };
        let needs = if exercise.localstack {
            ", needs LocalStack"
        } else {
            ""
        };
        println!("{name:<20} {} ({topology}{needs})", exercise.title);
    }
    println!("\nstart one with `lab practice start NAME`");
    Ok(0)
}

fn start(
    home: &LabHome,
    spec: &str,
    base_port: Option<u16>,
    provider: &ProviderChoice,
) -> Result<u8, LabError> {
    let exercise = Exercise::load(spec)?;
    let mut vars = BTreeMap::new();
    if exercise.localstack && !matches!(provider, ProviderChoice::Local) {
        return Err(PracticeError::LocalOnly(spec.to_owned()).into());
    }
    if exercise.localstack {
        let endpoint = localstack_endpoint();
        let key = create_kms_key(&endpoint)?;
        vars.insert("kms_endpoint".to_owned(), endpoint);
        vars.insert("kms_key_id".to_owned(), key);
    }
    let topology = exercise.topology(base_port, spec)?;
    let (state, lab) = lifecycle::start_lab(home, &topology, &Renderer::new(None)?, provider, &mut progress)?;
    print!(
        "{}",
        lifecycle::up_summary(home, &state, &status::collect(&state, home, lab.as_ref()))
    );
    let dir = practice_dir(home);
    std::fs::create_dir_all(&dir).map_err(|source| PracticeError::Io { path: dir, source })?;
    let session = Session::new(
        spec,
        topology.clusters[0].nodes[0].api_port,
        vars,
        provider.clone(),
    );
    session.save(home)?;
    if !exercise.setup.is_empty() {
        eprintln!("==> preparing the exercise");
        run_steps(home, &session, &exercise, &exercise.setup, script::Output::Stderr)?;
    }
    let session = Session::new(spec, session.base_port, session.vars, session.provider);
    session.save(home)?;
    let state = home.require()?;
    let task = session.context(home, &state).render(&exercise.task)?;
    println!("\n{}\n\n{}", exercise.title, task.trim_end());
    println!(
        "\nThe timer is running. `lab shell` gives you `vault`; `lab practice check` grades, \
         `lab practice hint` helps."
    );
    Ok(0)
}

fn check(home: &LabHome) -> Result<u8, LabError> {
    let session = Session::load(home)?;
    let exercise = Exercise::load(&session.exercise)?;
    let state = home.require()?;
    let outcomes = checks::grade(&session.context(home, &state), &exercise.checks);
    let passed = outcomes.iter().filter(|o| o.passed).count();
    for outcome in &outcomes {
        let mark = if outcome.passed { "PASS" } else { "FAIL" };
        println!("{mark}  {}: {}", outcome.describe, outcome.detail);
    }
    println!(
        "\n{passed}/{} checks passed; elapsed {}",
        outcomes.len(),
        format_elapsed(session.elapsed())
    );
    Ok(if passed == outcomes.len() { 0 } else { 1 })
}

fn hint(home: &LabHome) -> Result<u8, LabError> {
    let mut session = Session::load(home)?;
    let exercise = Exercise::load(&session.exercise)?;
    let total = exercise.hints.len();
    let Some(text) = exercise.hints.get(session.hints_shown) else {
        println!("no more hints ({total} shown); `lab practice solution` shows the answer");
        return Ok(0);
    };
    let state = home.require()?;
    let text = session.context(home, &state).render(text)?;
    session.hints_shown += 1;
    session.save(home)?;
    println!("hint {}/{total}: {}", session.hints_shown, text.trim_end());
    Ok(0)
}

fn solution(home: &LabHome, run: bool) -> Result<u8, LabError> {
    let session = Session::load(home)?;
    let exercise = Exercise::load(&session.exercise)?;
    if run {
        run_steps(
            home,
            &session,
            &exercise,
            &exercise.solution,
            script::Output::Stdout,
        )?;
        println!("\nsolution applied; grade it with `lab practice check`");
        return Ok(0);
    }
    let state = home.require()?;
    let ctx = session.context(home, &state);
    println!("# in `lab shell` (or run it with `lab practice solution --run`):");
    for step in &exercise.solution {
        println!("{}", ctx.render(step)?);
    }
    Ok(0)
}

/// Renders and runs steps with VAULT_ADDR/VAULT_TOKEN of the exercise's `env` target.
fn run_steps(
    home: &LabHome,
    session: &Session,
    exercise: &Exercise,
    steps: &[String],
    output: script::Output,
) -> Result<(), LabError> {
    let state = home.require()?;
    let ctx = session.context(home, &state);
    let steps = steps
        .iter()
        .map(|s| ctx.render(s))
        .collect::<Result<Vec<_>, _>>()?;
    let vars = vault_env(home, &state, exercise.env.as_deref())?;
    script::run(home, &state.labnode, &vars, &steps, output)?;
    Ok(())
}

/// VAULT_ADDR (a node, or a cluster's active node, else its first) and VAULT_TOKEN.
fn vault_env(
    home: &LabHome,
    state: &State,
    target: Option<&str>,
) -> Result<Vec<(String, String)>, PracticeError> {
    let (c, n) = match state.resolve(target)? {
        Target::Node(c, n) => (c, n),
        Target::Cluster(c) => (c, http::active_node(state, c).unwrap_or(0)),
    };
    let token = home.credentials(&state.clusters[c].name)?.root_token;
    Ok(vec![
        (
            "VAULT_ADDR".to_owned(),
            state.clusters[c].nodes[n].api_addr.clone(),
        ),
        ("VAULT_TOKEN".to_owned(), token),
    ])
}

fn localstack_endpoint() -> String {
    std::env::var("LABNODE_LOCALSTACK_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| LOCALSTACK_ENDPOINT.to_owned())
}

/// Creates a symmetric KMS key in LocalStack for an exercise's seal stanza.
fn create_kms_key(endpoint: &str) -> Result<String, PracticeError> {
    let fail = |reason: String| PracticeError::LocalStack {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("starting an async runtime: {e}")))?;
    let created = runtime
        .block_on(
            localstack_kms_client(endpoint)
                .create_key()
                .description("lab practice awskms-auto-unseal")
                .send(),
        )
        .map_err(|e| fail(format!("CreateKey: {}", DisplayErrorContext(e))))?;
    created
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .ok_or_else(|| fail("CreateKey: no KeyMetadata in the answer".to_owned()))
}

/// Progress lines go to stderr, as `lab up`'s do.
fn progress(line: &str) {
    eprintln!("==> {line}");
}

fn format_elapsed(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    format!("{}m{:02}s", secs / 60, secs % 60)
}
