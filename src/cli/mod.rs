//! Command-line interface: argument parsing and output only.
//!
//! Invariant: no business logic lives here. Each subcommand resolves its arguments, calls the
//! library and maps the result to an exit code: 0 ok, 1 some work failed (or, for `select` and
//! `set --check`, "no match" / "would change"), 2 bad input or config.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod validate;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code when some work failed, or for `select`/`--check`, the negative answer.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for invalid input or configuration.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "imagebump",
    version,
    about = "Keeps the container image tags in a GitOps config repo up to date"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration and list every problem at once (file:line:col).
    Validate(validate::Args),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(args),
    }
}
