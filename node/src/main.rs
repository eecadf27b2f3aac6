//! The `labnode` binary (also answers as `vault` through a symlink).

fn main() -> std::process::ExitCode {
    labnode::cli::run(std::env::args_os().collect())
}
