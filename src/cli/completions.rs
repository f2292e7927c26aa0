//! `imagebump completions SHELL` and `imagebump man`: shell completions (clap_complete) and
//! man pages (clap_mangen), generated from the same clap definitions as the parser, so they
//! can never list a flag the binary does not take.
//!
//! Invariant: generated from the parser's own definitions, never written by hand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, EXIT_FAILED, EXIT_OK, EXIT_USAGE};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write imagebump.1 and one imagebump-COMMAND.1 per subcommand into this existing
    /// directory (and list them), instead of printing imagebump.1 on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Print the completion script for one shell on stdout.
pub fn completions(args: CompletionsArgs) -> ExitCode {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
    ExitCode::from(EXIT_OK)
}

/// Print the main man page, or write every page into `--dir`.
pub fn man(args: ManArgs) -> ExitCode {
    let command = Cli::command();
    let Some(dir) = args.dir else {
        let mut page = Vec::new();
        if let Err(e) = clap_mangen::Man::new(command).render(&mut page) {
            eprintln!("imagebump: cannot render the man page: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
        return match std::io::Write::write_all(&mut std::io::stdout(), &page) {
            Ok(()) => ExitCode::from(EXIT_OK),
            Err(e) => {
                eprintln!("imagebump: cannot write the man page: {e}");
                ExitCode::from(EXIT_FAILED)
            }
        };
    };
    if !dir.is_dir() {
        eprintln!("imagebump: {} is not a directory", dir.display());
        return ExitCode::from(EXIT_USAGE);
    }
    if let Err(e) = clap_mangen::generate_to(command, &dir) {
        eprintln!(
            "imagebump: cannot write man pages into {}: {e}",
            dir.display()
        );
        return ExitCode::from(EXIT_FAILED);
    }
    let mut pages: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "1")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("imagebump"))
            })
            .collect(),
        Err(e) => {
            eprintln!("imagebump: cannot list {}: {e}", dir.display());
            return ExitCode::from(EXIT_FAILED);
        }
    };
    pages.sort();
    for page in pages {
        println!("{}", page.display());
    }
    ExitCode::from(EXIT_OK)
}
