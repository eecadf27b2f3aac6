//! The vault-compatible command line.

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs the CLI with the process arguments; argv[0] may be `vault`.
pub fn run(_args: Vec<OsString>) -> ExitCode {
    ExitCode::FAILURE
}
