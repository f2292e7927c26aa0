//! `imagebump explain APP [--image NAME]`: why each image of one app is (or is not) updated,
//! tag by tag.
//!
//! Invariant: read-only, and only printing here: the engine reads the branch and asks the
//! registry ([`crate::engine::Engine::explain`]), the policy names every tag's verdict. The text
//! output is bounded: at most [`SHOWN`] tags of each run of one verdict, then a count
//! (`... and 312 more outside ~1.4`); `--all` prints every tag, `--output json` every tag too.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::once::{Output, load_engine};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::daemon::logging::LogFormat;
use crate::engine::explain::{AppExplanation, DecisionExplanation, ImageExplanation};
use crate::policy::TagVerdict;

/// Tags shown of each run of one verdict in the text output.
pub const SHOWN: usize = 3;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The app to explain (its `name`).
    pub app: String,
    #[command(flatten)]
    pub config: super::ConfigArg,
    /// Only this image of the app (its `name` in the app file).
    #[arg(long)]
    pub image: Option<String>,
    /// Output format. JSON: the app, and per image its targets, decisions and every tag's
    /// verdict.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    /// Print every tag instead of a few of each kind and counts.
    #[arg(long)]
    pub all: bool,
    /// Log level (error, warn, info, debug, trace) or a RUST_LOG-style filter; default:
    /// RUST_LOG, else warn.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log format on stderr: text or json.
    #[arg(long, default_value = "text")]
    pub log_format: LogFormat,
}

pub fn run(args: Args) -> ExitCode {
    let (engine, problems) = match load_engine(
        &args.config.config,
        Some(&args.app),
        args.log_level.as_deref(),
        args.log_format,
    ) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let runtime = match super::runtime(true) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let explained = match runtime.block_on(engine.explain(&args.app, args.image.as_deref())) {
        Ok(explained) => explained,
        Err(error) => {
            eprintln!("imagebump: {error}");
            return ExitCode::from(match error {
                crate::engine::explain::ExplainError::Checkout { .. } => EXIT_FAILED,
                _ => EXIT_USAGE,
            });
        }
    };
    match args.output {
        Output::Text => print!("{}", render(&explained, args.all)),
        Output::Json => match serde_json::to_string_pretty(&explained) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("imagebump: cannot encode the explanation: {e}");
                return ExitCode::from(EXIT_FAILED);
            }
        },
    }
    if problems {
        ExitCode::from(EXIT_USAGE)
    } else if explained.failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::from(EXIT_OK)
    }
}

/// The explanation in words, bounded unless `all`.
pub fn render(app: &AppExplanation, all: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} branch {}, writes by {}",
        app.app, app.file, app.repo, app.branch, app.write
    );
    if let Some(proposal) = &app.pull_request {
        let _ = writeln!(out, "pull request: {}", proposal.text);
    }
    if let Some(error) = &app.pull_request_error {
        let _ = writeln!(out, "pull request: cannot ask the forge: {error}");
    }
    for image in &app.images {
        render_image(&mut out, image, all);
    }
    out
}

fn render_image(out: &mut String, image: &ImageExplanation, all: bool) {
    let _ = writeln!(out, "\n{} ({})", image.name, image.image);
    let _ = writeln!(out, "  policy: {}", image.policy);
    for target in &image.targets {
        let at = match target.line {
            Some(line) => format!("{}:{line}", target.file),
            None => target.file.clone(),
        };
        let what = match (&target.error, &target.tag, &target.digest) {
            (Some(error), _, _) => format!("error: {error}"),
            (None, Some(tag), Some(digest)) => format!("{tag}@{digest}"),
            (None, Some(tag), None) => tag.clone(),
            (None, None, Some(digest)) => format!("@{digest}"),
            (None, None, None) => "no tag".to_string(),
        };
        let via = if target.target == target.file {
            String::new()
        } else {
            format!("  [{}]", target.target)
        };
        let _ = writeln!(out, "  deployed at {at}: {what}{via}");
    }
    if let Some(error) = &image.error {
        let _ = writeln!(out, "  error: {error}");
    }
    let several = image.decisions.len() > 1;
    for decision in &image.decisions {
        render_decision(out, decision, several, all);
    }
}

fn render_decision(out: &mut String, decision: &DecisionExplanation, several: bool, all: bool) {
    if several {
        let _ = writeln!(
            out,
            "  from deployed {}:",
            decision.deployed.as_deref().unwrap_or("(no tag)")
        );
    }
    if let Some(why) = &decision.why_text {
        let _ = writeln!(out, "  why: {why}");
    }
    if let Some(rollback) = &decision.rollback {
        let _ = writeln!(out, "  rollback: {rollback}");
    }
    match (&decision.tag, decision.keep_current) {
        (Some(tag), false) => {
            let to = match &decision.digest {
                Some(digest) => format!("{tag}@{digest}"),
                None => tag.clone(),
            };
            let _ = writeln!(out, "  would write: {to}");
        }
        (Some(_), true) => {
            let _ = writeln!(out, "  would write: nothing (the deployed tag stays)");
        }
        (None, _) => {
            let _ = writeln!(out, "  would write: nothing (no tag can be chosen)");
        }
    }
    if let Some(error) = &decision.error {
        let _ = writeln!(out, "  error: {error}");
    }
    if let Some(tags) = &decision.tags {
        let noun = if tags.candidates == 1 {
            "candidate"
        } else {
            "candidates"
        };
        let _ = writeln!(
            out,
            "  tags: {} in the repository, {} {noun}",
            tags.tags, tags.candidates
        );
        render_verdicts(out, &tags.verdicts, all);
    }
}

/// Every verdict, or with `all == false` the first [`SHOWN`] of each run of one kind and the
/// count of the rest.
fn render_verdicts(out: &mut String, verdicts: &[TagVerdict], all: bool) {
    let width = verdicts
        .iter()
        .map(|v| v.tag.chars().count())
        .max()
        .unwrap_or(0)
        .min(32);
    let mut start = 0;
    while start < verdicts.len() {
        let group = verdicts[start].verdict.group();
        let end = verdicts[start..]
            .iter()
            .position(|v| v.verdict.group() != group)
            .map_or(verdicts.len(), |n| start + n);
        let run = &verdicts[start..end];
        let shown = if all { run.len() } else { run.len().min(SHOWN) };
        for v in &run[..shown] {
            let _ = writeln!(out, "    {:width$}  {}", v.tag, v.text);
        }
        if run.len() > shown {
            let _ = writeln!(out, "    ... and {} more {group}", run.len() - shown);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Verdict;

    fn verdict(tag: &str, verdict: Verdict) -> TagVerdict {
        TagVerdict {
            tag: tag.into(),
            text: verdict.to_string(),
            verdict,
        }
    }

    #[test]
    fn long_runs_of_one_verdict_are_counted() {
        let outside = || Verdict::OutsideRange {
            range: "~1.4".into(),
        };
        let mut verdicts = vec![verdict("1.4.5", Verdict::Chosen)];
        for minor in (5..20).rev() {
            verdicts.push(verdict(&format!("1.{minor}.0"), outside()));
        }
        verdicts.push(verdict(
            "latest",
            Verdict::Unparsed {
                expected: "a version",
            },
        ));
        let mut out = String::new();
        render_verdicts(&mut out, &verdicts, false);
        assert_eq!(
            out,
            "    1.4.5   chosen: newer than the deployed tag and eligible
    1.19.0  outside ~1.4
    1.18.0  outside ~1.4
    1.17.0  outside ~1.4
    ... and 12 more outside ~1.4
    latest  not a version
"
        );
        let mut out = String::new();
        render_verdicts(&mut out, &verdicts, true);
        assert_eq!(out.lines().count(), verdicts.len());
    }
}
