//! `imagebump validate`: load the configuration and list every problem at once.

use std::process::ExitCode;

use super::{EXIT_OK, EXIT_USAGE};
use crate::config;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: super::ConfigArg,
}

pub fn run(args: Args) -> ExitCode {
    let checked = match config::check(&args.config.config) {
        Ok(checked) => checked,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if checked.problems.is_empty() {
        let images: usize = checked.apps.iter().map(|a| a.images.len()).sum();
        println!(
            "{}: ok ({} apps, {} images)",
            args.config.config.display(),
            checked.apps.len(),
            images
        );
        return ExitCode::from(EXIT_OK);
    }
    for problem in &checked.problems {
        eprintln!("{problem}");
    }
    eprintln!("{} problem(s) found", checked.problems.len());
    ExitCode::from(EXIT_USAGE)
}
