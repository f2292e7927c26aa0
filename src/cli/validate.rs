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
    match config::load(&args.config.config) {
        Ok(loaded) if loaded.problems.is_empty() => {
            let images: usize = loaded.config.apps.iter().map(|a| a.images.len()).sum();
            println!(
                "{}: ok ({} apps, {} images)",
                args.config.config.display(),
                loaded.config.apps.len(),
                images
            );
            ExitCode::from(EXIT_OK)
        }
        Ok(loaded) => {
            for problem in &loaded.problems {
                eprintln!("{problem}");
            }
            eprintln!("{} problem(s) found", loaded.problems.len());
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
