//! The `lab` binary: parse, resolve, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("lab: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<u8> {
    let settings = lab::cli::RawArgs::parse().resolve()?;
    Ok(lab::commands::run(settings)?)
}
