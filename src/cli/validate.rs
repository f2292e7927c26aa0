//! `imagebump validate`: load the configuration and list every problem at once: each file's,
//! every template tried against a sample of its context, and (as warnings) every secret
//! variable that is not set.
//!
//! Invariant: exits 0 only when nothing is wrong; warnings (unset secrets) are printed but do not
//! fail.

use std::process::ExitCode;

use super::{EXIT_OK, EXIT_USAGE};
use crate::config;
use crate::engine::check;

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
    let mut problems = checked.problems;
    problems.extend(check::templates(&checked.refs.templates));
    config::read::sort(&mut problems, &args.config.config);
    // An unset secret variable is a warning here (validate may run where the secrets are not,
    // as in CI); `run` and `once` refuse to start without it.
    // The same for a secret or key file that is not there (yet): it may be mounted at run time.
    // A notification sink's or webhook receiver's is read only by `run`.
    let (daemon_env, env): (Vec<_>, Vec<_>) = checked
        .refs
        .env
        .iter()
        .cloned()
        .partition(|r| r.daemon_only);
    let (daemon_files, files): (Vec<_>, Vec<_>) = checked
        .refs
        .files
        .iter()
        .cloned()
        .partition(|r| r.daemon_only);
    let mut warnings: Vec<_> = check::missing_env(&env)
        .into_iter()
        .chain(check::missing_files(&files))
        .map(|w| (w, "`run` and `once` refuse"))
        .chain(
            check::missing_env(&daemon_env)
                .into_iter()
                .chain(check::missing_files(&daemon_files))
                .map(|w| (w, "`run` refuses")),
        )
        .collect();
    warnings.sort_by_key(|(w, _)| (w.file.clone(), w.line, w.col));
    for (warning, who) in &warnings {
        eprintln!(
            "{}:{}:{}: warning: {}; {who} to start without it",
            warning.file.display(),
            warning.line,
            warning.col,
            warning.message
        );
    }
    for warning in &checked.warnings {
        eprintln!(
            "{}:{}:{}: warning: {}",
            warning.file.display(),
            warning.line,
            warning.col,
            warning.message
        );
    }
    if problems.is_empty() {
        let images: usize = checked.apps.iter().map(|a| a.images.len()).sum();
        println!(
            "{}: ok ({} apps, {} images)",
            args.config.config.display(),
            checked.apps.len(),
            images
        );
        return ExitCode::from(EXIT_OK);
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    eprintln!("{} problem(s) found", problems.len());
    ExitCode::from(EXIT_USAGE)
}
