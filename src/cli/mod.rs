//! Command-line interface: argument parsing and output only.
//!
//! Invariant: no business logic lives here. Each subcommand resolves its arguments, calls the
//! library and maps the result to an exit code: 0 ok, 1 some work failed (or, for `select` and
//! `set --check`, "no match" / "would change"), 2 bad input or config.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod tags;

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
    /// Print the version and exit.
    Version,
    /// List an image's tags (semver tags first, in order; the others alphabetically).
    Tags(Box<tags::Args>),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("imagebump {}", env!("CARGO_PKG_VERSION"));
            ExitCode::from(EXIT_OK)
        }
        Command::Tags(args) => tags::run(*args),
    }
}
