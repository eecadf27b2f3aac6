//! The vault-compatible command line: `labnode <cmd>` and `vault <cmd>` (through a
//! symlink) behave identically so Vault course commands run verbatim.
//!
//! Layout: [`table`] defines every command and group once, [`flags`] parses Go-style flags
//! into each command's typed flag struct, [`client`] speaks HTTP, [`format`] renders vault's
//! tables and JSON, and one module per command group does the work.

mod client;
mod data;
mod flags;
mod format;
mod kv;
mod logical;
mod operator;
mod policy;
mod raft;
mod secrets;
mod server;
mod table;
mod token;

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use client::ApiError;

/// Every way a CLI command can fail; each maps to vault's exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad flags or arguments (exit 1).
    #[error("{0}")]
    Usage(String),
    /// A local failure such as an unreadable file (exit 1).
    #[error("{0}")]
    Local(String),
    /// A request failure not yet given its command context (exit 2).
    #[error("{0}")]
    Transport(Box<ApiError>),
    /// A request failure with vault's context prefix, e.g. `Error writing data to x` (exit 2).
    #[error("{context}: {source}")]
    Api {
        /// The command's message prefix.
        context: String,
        /// The underlying request failure.
        source: Box<ApiError>,
    },
    /// The server answered but there is nothing to show, e.g. `No value found at x` (exit 2).
    #[error("{0}")]
    Remote(String),
    /// `-output-curl-string`: the request is printed instead of sent (exit 0).
    #[error("{0}")]
    Curl(String),
}

impl CliError {
    /// Vault's exit code for this failure.
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Local(_) => 1,
            CliError::Curl(_) => 0,
            CliError::Transport(_) | CliError::Api { .. } | CliError::Remote(_) => 2,
        }
    }
}

/// Adds vault's per-command prefix to request failures.
trait Context<T> {
    /// Turns a bare transport/API failure into `"<context>: <error>"`.
    fn context(self, context: impl Into<String>) -> Result<T, CliError>;
}

impl<T> Context<T> for Result<T, CliError> {
    fn context(self, context: impl Into<String>) -> Result<T, CliError> {
        self.map_err(|e| match e {
            CliError::Transport(source) => CliError::Api {
                context: context.into(),
                source,
            },
            other => other,
        })
    }
}

/// What a command returns: its exit code, or a failure to print.
type CmdResult = Result<u8, CliError>;

/// Runs the CLI with the process arguments; argv[0] may be `vault`.
pub fn run(args: Vec<OsString>) -> ExitCode {
    let words: Vec<String> = args
        .into_iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (command, rest) = match table::find(&words) {
        table::Found::Command(command, rest) => (command, rest),
        // Asked for, a listing goes to stdout with success; otherwise it is the error.
        table::Found::Group(group, rest) if table::asks_help(rest) => {
            format::out(&table::group_help(group));
            return ExitCode::SUCCESS;
        }
        table::Found::Group(group, _) => {
            format::err(&table::group_help(group));
            return ExitCode::from(1);
        }
        table::Found::Unknown if table::asks_help(&words) => {
            format::out(&table::top_help());
            return ExitCode::SUCCESS;
        }
        table::Found::Unknown => {
            format::err(&table::top_help());
            return ExitCode::from(127);
        }
    };
    let result = flags::parse(&(command.flags)(), rest).and_then(|parsed| {
        if parsed.help {
            format::out(&table::command_help(command));
            return Ok(0);
        }
        match command.action {
            table::Action::Blocking(run) => run(parsed),
            table::Action::Async(run) => {
                restore_default_sigpipe();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| CliError::Local(format!("Error starting runtime: {e}")))?
                    .block_on(run(parsed))
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(CliError::Curl(s)) => {
            format::out(&s);
            ExitCode::SUCCESS
        }
        Err(e) => {
            format::err(&e.to_string());
            ExitCode::from(e.exit_code())
        }
    }
}

/// Client commands end quietly when their output pipe closes (`... | head`), as vault
/// does; Rust's runtime ignores SIGPIPE, which would turn that into a panic. The
/// server keeps ignoring it so a vanished client never kills a node.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any thread is spawned; it only resets
    // the disposition of one signal to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Checks the positional count like vault (`Not enough arguments (expected 1, got 0)`).
fn expect_args(args: &[String], min: usize, max: usize) -> Result<(), CliError> {
    let expected = if min == max {
        min.to_string()
    } else {
        format!("{min}-{max}")
    };
    if args.len() < min {
        return Err(CliError::Usage(format!(
            "Not enough arguments (expected {expected}, got {})",
            args.len()
        )));
    }
    if args.len() > max {
        return Err(CliError::Usage(format!(
            "Too many arguments (expected {expected}, got {})",
            args.len()
        )));
    }
    Ok(())
}

/// Reads a secret such as an unseal key: hidden prompt on a terminal, else one stdin line.
fn read_secret(prompt: &str) -> Result<String, CliError> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        let mut stdout = std::io::stdout();
        let echo = |on: bool| {
            std::process::Command::new("stty")
                .arg(if on { "echo" } else { "-echo" })
                .stdin(std::process::Stdio::inherit())
                .status()
        };
        // Best effort: if stty is missing the key is echoed, as a plain prompt would.
        let _ = write!(stdout, "{prompt}").and_then(|_| stdout.flush());
        let _ = echo(false);
        let read = stdin.lock().read_line(&mut line);
        let _ = echo(true);
        println!();
        read.map_err(|e| CliError::Local(format!("Error reading input: {e}")))?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Local(format!("Error reading input: {e}")))?;
    }
    Ok(line.trim().to_string())
}
