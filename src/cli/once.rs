//! `imagebump once`: one pass over the apps, then exit.
//!
//! Invariant: the exit code says whether every app succeeded (0), some failed (1) or the
//! configuration is unusable (2). Text output: each app's result block on stdout as the app
//! completes, a one-line summary at the end; on a terminal, progress bars on stderr
//! ([`super::progress`]).

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use super::progress::{Block, Reporter};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config;
use crate::daemon::logging::{LogFormat, init_logging};
use crate::engine::progress::Progress;
use crate::engine::{AppReport, Engine, PassOptions, PassReport, PullRequestAction, check};

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

/// The `once` command, for the binary's `main`: it leaves the pass's memory to the process's
/// exit (see the end).
pub fn run(args: Args) -> ExitCode {
    let (engine, problems) = match load_engine(
        &args.config.config,
        args.app.as_deref(),
        args.log_level.as_deref(),
        args.log_format,
    ) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    // One thread drives the pass's requests: they wait on the network, and the git work runs
    // on the blocking pool anyway. Measured at 1,000 tag lists: 20% less CPU than two workers
    // waking each other (fewer futex calls and context switches), on cores the registry shares.
    let runtime = match super::runtime(false) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let options = PassOptions {
        app: args.app.clone(),
        dry_run: args.dry_run,
        // Only the text output prints the diffs.
        without_diffs: args.output == Output::Json,
        ..PassOptions::default()
    };
    let terminal = std::io::stderr().is_terminal();
    let text = args.output == Output::Text;
    let dry_run = args.dry_run;
    let block: Option<Block> =
        text.then(|| Box::new(move |app: &AppReport| app_block(app, dry_run)) as Block);
    let reporter = Arc::new(Reporter::new(terminal, block));
    let progress: Arc<dyn Progress> = reporter.clone();
    let report = runtime.block_on(engine.run_pass_with(&options, progress));
    reporter.finish();
    match args.output {
        Output::Text => print_rest(&report, &reporter.printed(), args.dry_run),
        Output::Json => print_json(&report, args.dry_run),
    }
    let code = if problems {
        ExitCode::from(EXIT_USAGE)
    } else if report.failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::from(EXIT_OK)
    };
    // Everything is printed and nothing is left to flush or release but memory and the
    // runtime's idle threads: the process's exit frees them at once, instead of a walk over
    // every cache and report entry (about 5 ms at 1,000 images, after the output).
    std::mem::forget((engine, report, runtime));
    code
}

/// Logging, the configuration (with the template and secret checks a pass would fail on) and
/// the engine, for `once` and `explain`. `app`, when given, must be a valid app. `Ok` also
/// says whether some app file has problems (printed here; the command still runs the others
/// and exits 2). `Err`: the exit code, the error printed.
pub(super) fn load_engine(
    config: &std::path::Path,
    app: Option<&str>,
    log_level: Option<&str>,
    log_format: LogFormat,
) -> Result<(Engine, bool), ExitCode> {
    let warm = Engine::warm_up();
    let level = log_level
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "warn".to_string());
    if let Err(e) = init_logging(log_format, Some(&level)) {
        eprintln!("imagebump: {e}");
        return Err(ExitCode::from(EXIT_USAGE));
    }
    let mut unused = Vec::new();
    let loaded = match config::load(config).and_then(|loaded| {
        let mut found = check::templates(&loaded.refs.templates);
        let (daemon_only, needed): (Vec<_>, Vec<_>) =
            loaded.refs.env.iter().cloned().partition(|r| r.daemon_only);
        found.extend(check::missing_env(&needed));
        unused = check::missing_env(&daemon_only);
        loaded.with_problems(found)
    }) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return Err(ExitCode::from(EXIT_USAGE));
        }
    };
    for problem in &loaded.problems {
        eprintln!("{problem}");
    }
    // Notification sinks and webhook receivers are the daemon's: `once` neither notifies nor
    // listens, so their unset variables are named, not fatal.
    for note in &unused {
        eprintln!("{note}; unused by `once` (only `imagebump run` reads it)");
    }
    if let Some(app) = app
        && !loaded.config.apps.iter().any(|a| a.name == app)
    {
        eprintln!(
            "imagebump: no valid app named `{app}` in {}",
            config.display()
        );
        return Err(ExitCode::from(EXIT_USAGE));
    }
    let problems = !loaded.problems.is_empty();
    match Engine::new_warmed(loaded.config, warm) {
        Ok(engine) => Ok((engine, problems)),
        Err(e) => {
            eprintln!("imagebump: {e}");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// The apps the reporter did not print as they completed (broken settings, an internal
/// error), then the one-line summary.
fn print_rest(report: &PassReport, printed: &BTreeSet<String>, dry_run: bool) {
    for app in report.apps.iter().filter(|a| !printed.contains(&a.name)) {
        print!("{}", app_block(app, dry_run));
    }
    println!("{}", summary(report, dry_run));
}

/// What became of one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Failed,
    UpToDate,
    WouldChange,
    PullRequestOpened,
    PullRequestUpdated,
    AlreadyProposed,
    NotProposedAgain,
    Updated,
    ChangesPending,
}

impl State {
    fn of(app: &AppReport, dry_run: bool) -> State {
        if !app.errors.is_empty() {
            State::Failed
        } else if app.changes.is_empty() {
            State::UpToDate
        } else if dry_run {
            State::WouldChange
        } else {
            match &app.pull_request_action {
                Some(PullRequestAction::Opened) => State::PullRequestOpened,
                Some(PullRequestAction::Updated) => State::PullRequestUpdated,
                Some(PullRequestAction::Unchanged) => State::AlreadyProposed,
                Some(PullRequestAction::NotReopened(_)) => State::NotProposedAgain,
                Some(PullRequestAction::Closed(_)) => State::UpToDate,
                None if app.pushed => State::Updated,
                None => State::ChangesPending,
            }
        }
    }

    /// On the app's first line.
    fn words(self) -> &'static str {
        match self {
            State::Failed => "FAILED",
            State::UpToDate => "up to date",
            State::WouldChange => "would change",
            State::PullRequestOpened => "pull request opened",
            State::PullRequestUpdated => "pull request updated",
            State::AlreadyProposed => "already proposed (pull request unchanged)",
            State::NotProposedAgain => "not proposed again",
            State::Updated => "updated",
            State::ChangesPending => "changes pending",
        }
    }

    /// In the summary's counts.
    fn counted(self) -> &'static str {
        match self {
            State::Failed => "failed",
            State::AlreadyProposed => "already proposed",
            State::PullRequestOpened | State::PullRequestUpdated => "updated",
            other => other.words(),
        }
    }
}

/// One app's result: its state, a line per image (deployed, candidate, why), the changes,
/// the commit or pull request, the errors and, in a dry run, the diffs.
fn app_block(app: &AppReport, dry_run: bool) -> String {
    let mut out = format!("{}: {}\n", app.name, State::of(app, dry_run).words());
    for line in image_lines(app) {
        out.push_str(&line);
        out.push('\n');
    }
    for c in &app.changes {
        out.push_str(&format!(
            "  {}:{}  {}  {} -> {}  ({})\n",
            c.file, c.line, c.name, c.from, c.to, c.reason
        ));
    }
    if let Some(commit) = &app.commit {
        out.push_str(&format!("  commit {commit}\n"));
    }
    if let Some(pr) = &app.pull_request {
        match &app.pull_request_action {
            Some(PullRequestAction::NotReopened(reason)) => {
                out.push_str(&format!("  pull request {pr}: {reason}\n"));
            }
            Some(PullRequestAction::Closed(reason)) => {
                out.push_str(&format!("  pull request {pr} closed: {reason}\n"));
            }
            _ => out.push_str(&format!("  pull request {pr}\n")),
        }
    }
    for error in &app.errors {
        out.push_str(&format!("  error: {error}\n"));
    }
    for diff in &app.diffs {
        out.push_str(diff);
    }
    out
}

/// `3 app(s): 1 updated, 1 up to date, 1 failed; 1 push(es), 12 registry request(s)`.
fn summary(report: &PassReport, dry_run: bool) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for app in &report.apps {
        *counts.entry(State::of(app, dry_run).counted()).or_default() += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let states = if counts.is_empty() {
        String::new()
    } else {
        format!(": {}", counts.join(", "))
    };
    let writes = if dry_run {
        "dry run, nothing written".to_string()
    } else {
        format!("{} push(es)", report.pushes)
    };
    format!(
        "{} app(s){states}; {writes}, {} registry request(s)",
        report.apps.len(),
        report.registry_requests
    )
}

/// One line per image: deployed tag, best candidate and why, e.g.
/// `  api 1.4.2 -> 1.4.3: 1.4.3 is newer and allowed`, `  web 2.0.0: up to date: ...`.
fn image_lines(app: &AppReport) -> Vec<String> {
    app.images
        .iter()
        .map(|image| {
            let deployed = image.deployed.as_deref().unwrap_or("(not found)");
            let mut line = format!("  {} {deployed}", image.name);
            if let Some(candidate) = &image.candidate
                && image.deployed.as_ref() != Some(candidate)
                && app.changes.iter().any(|c| c.name == image.name)
            {
                line.push_str(&format!(" -> {candidate}"));
            }
            match image.why_text() {
                Some(why) => line.push_str(&format!(": {why}")),
                None => line.push_str(": not decided"),
            }
            let proposed = app.changes.iter().any(|c| c.name == image.name);
            if let (true, Some(PullRequestAction::Unchanged), Some(pr)) =
                (proposed, &app.pull_request_action, &app.pull_request)
            {
                line.push_str(&format!("; waiting for pull request {pr} to be merged"));
            }
            line
        })
        .collect()
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
