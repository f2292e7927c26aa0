//! Command-line interface: argument parsing and output only.
//!
//! Invariant: no business logic lives here. Each subcommand resolves its arguments, calls the
//! library and maps the result to an exit code: 0 ok, 1 some work failed (or, for `select` and
//! `set --check`, "no match" / "would change"), 2 bad input or config.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod completions;
mod explain;
mod import;
mod once;
pub mod policy_flags;
mod progress;
mod run;
mod select;
mod set;
mod status;
mod tags;
mod validate;

/// The `--config` flag of the commands that read a configuration.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The global config file.
    #[arg(
        long,
        short = 'c',
        default_value = "imagebump.yaml",
        env = "IMAGEBUMP_CONFIG"
    )]
    pub config: std::path::PathBuf,
}

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
    /// Run the daemon: poll on a schedule, react to registry webhooks, serve metrics and status.
    Run(run::Args),
    /// Run one pass over the apps (or one app) and exit; --dry-run prints the plan.
    Once(once::Args),
    /// Explain one app's decision: the policy, the deployed tags, every tag and what ruled it out.
    Explain(explain::Args),
    /// Check the configuration and list every problem at once (file:line:col).
    Validate(validate::Args),
    /// Print the tag a policy picks from the tags on stdin (one per line); exit 1 if none matches.
    Select(select::Args),
    /// Set an image's tag/digest in YAML files in place, changing only those bytes (for CI).
    Set(set::Args),
    /// Show a running daemon's per-app status (deployed tag, best candidate, last check, error).
    Status(status::Args),
    /// Print the version and exit.
    Version,
    /// List an image's tags (semver tags first, in order; the others alphabetically).
    Tags(Box<tags::Args>),
    /// Translate Flux or Argo CD Image Updater objects into imagebump config files.
    #[command(subcommand)]
    Import(import::Tool),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) on stdout.
    Completions(completions::CompletionsArgs),
    /// Print the man page on stdout, or write one page per command with --dir.
    Man(completions::ManArgs),
}

/// A tokio runtime for a command: multi-threaded for the daemon and `explain`, on the calling
/// thread for one request and for `once` (its blocking git work runs on the blocking pool). On failure the error is printed and the exit code returned.
fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("imagebump: cannot start the async runtime: {e}");
        ExitCode::from(EXIT_FAILED)
    })
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Once(args) => once::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Select(args) => select::run(args),
        Command::Set(args) => set::run(args),
        Command::Status(args) => status::run(args),
        Command::Version => {
            println!("imagebump {}", env!("CARGO_PKG_VERSION"));
            ExitCode::from(EXIT_OK)
        }
        Command::Tags(args) => tags::run(*args),
        Command::Import(tool) => import::run(tool),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
    }
}
