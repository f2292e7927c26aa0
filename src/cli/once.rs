//! `imagebump once`: one pass over the apps, then exit.
//!
//! Invariant: the exit code says whether every app succeeded (0), some failed (1) or the
//! configuration is unusable (2).

use std::process::ExitCode;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config;
use crate::daemon::logging::{LogFormat, init_logging};
use crate::engine::{Engine, PassOptions, PassReport, PullRequestAction, check};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: super::ConfigArg,
    /// Only this app.
    #[arg(long)]
    pub app: Option<String>,
    /// Plan only: print the changes (a unified diff per file, or JSON) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format. JSON: with --dry-run an array of {app, image, file, line, from, to,
    /// reason}; otherwise the pass report per app.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    /// Log level (error, warn, info, debug, trace) or a RUST_LOG-style filter; default:
    /// RUST_LOG, else warn.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log format on stderr: text or json.
    #[arg(long, default_value = "text")]
    pub log_format: LogFormat,
}

pub fn run(args: Args) -> ExitCode {
    let level = args
        .log_level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "warn".to_string());
    if let Err(e) = init_logging(args.log_format, Some(&level)) {
        eprintln!("imagebump: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let loaded = match config::load(&args.config.config).and_then(|loaded| {
        let mut found = check::templates(&loaded.refs.templates);
        found.extend(check::missing_env(&loaded.refs.env));
        loaded.with_problems(found)
    }) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for problem in &loaded.problems {
        eprintln!("{problem}");
    }
    if let Some(app) = &args.app
        && !loaded.config.apps.iter().any(|a| &a.name == app)
    {
        eprintln!(
            "imagebump: no valid app named `{app}` in {}",
            args.config.config.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let engine = match Engine::new(loaded.config) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("imagebump: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match super::runtime(true) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let options = PassOptions {
        app: args.app.clone(),
        dry_run: args.dry_run,
        ..PassOptions::default()
    };
    let report = runtime.block_on(engine.run_pass(&options));
    match args.output {
        Output::Text => print_text(&report, args.dry_run),
        Output::Json => print_json(&report, args.dry_run),
    }
    if !loaded.problems.is_empty() {
        ExitCode::from(EXIT_USAGE)
    } else if report.failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::from(EXIT_OK)
    }
}

fn print_text(report: &PassReport, dry_run: bool) {
    for app in &report.apps {
        let state = if !app.errors.is_empty() {
            "FAILED"
        } else if app.changes.is_empty() {
            "up to date"
        } else if dry_run {
            "would change"
        } else {
            match &app.pull_request_action {
                Some(PullRequestAction::Opened) => "pull request opened",
                Some(PullRequestAction::Updated) => "pull request updated",
                Some(PullRequestAction::Unchanged) => "already proposed (pull request unchanged)",
                Some(PullRequestAction::NotReopened(_)) => "not proposed again",
                None if app.pushed => "updated",
                None => "changes pending",
            }
        };
        println!("{}: {state}", app.name);
        for c in &app.changes {
            println!(
                "  {}:{}  {}  {} -> {}  ({})",
                c.file, c.line, c.name, c.from, c.to, c.reason
            );
        }
        if let Some(commit) = &app.commit {
            println!("  commit {commit}");
        }
        if let Some(pr) = &app.pull_request {
            match &app.pull_request_action {
                Some(PullRequestAction::NotReopened(reason)) => {
                    println!("  pull request {pr}: {reason}");
                }
                _ => println!("  pull request {pr}"),
            }
        }
        for error in &app.errors {
            println!("  error: {error}");
        }
        for diff in &app.diffs {
            print!("{diff}");
        }
    }
    if !dry_run {
        println!(
            "{} app(s), {} push(es), {} registry request(s)",
            report.apps.len(),
            report.pushes,
            report.registry_requests
        );
    }
}

fn print_json(report: &PassReport, dry_run: bool) {
    let text = if dry_run {
        let plan: Vec<serde_json::Value> = report
            .changes()
            .map(|c| {
                serde_json::json!({
                    "app": c.app, "image": c.image, "file": c.file, "line": c.line,
                    "from": c.from, "to": c.to, "reason": c.reason,
                })
            })
            .collect();
        serde_json::to_string_pretty(&plan)
    } else {
        serde_json::to_string_pretty(report)
    };
    match text {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("imagebump: cannot encode the report: {e}"),
    }
}
