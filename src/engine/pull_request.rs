//! Pull-request mode: one bot branch and one open pull request per app, updated in place.
//!
//! The change is planned on the target branch's remote head, committed on top of it (never on
//! the target branch itself) and pushed to the bot branch with a compare-and-swap: the bot
//! branch is replaced only when every commit on it after the target branch is imagebump's,
//! and only if nobody moved it since we looked. Then the forge is asked to open or update the
//! pull request. A pull request a human closed unmerged is not proposed again for the same
//! versions (the fingerprint in its body says which).
//!
//! Invariant: nothing is ever force-pushed: the bot branch moves only by compare-and-swap and
//! only when every commit on it is imagebump's; every template is rendered before anything is
//! pushed.

use std::sync::Arc;

use super::commit::write_files;
use super::message;
use super::plan::{self, FileEdit, contexts};
use super::{Engine, Mode, ResolvedApp, WriteContext, settings};
use crate::config::PullRequestConfig;
use crate::forge::{self, Action, ChangeRow, Forge, PullRequest};
use crate::git::{Checkout, LeaseOutcome, Oid};
use crate::report::{AppError, PullRequestError};
use crate::report::{AppReport, PullRequestAction};

/// Default bot branch template.
pub const DEFAULT_BRANCH: &str = "imagebump/{{ app }}";

/// Plan, push and open/update the pull request of one app. Returns its report and whether
/// the bot branch was pushed.
pub(crate) fn write(
    engine: &Engine,
    ctx: &WriteContext,
    url: &str,
    app: &ResolvedApp,
) -> (AppReport, bool) {
    let mut report = AppReport::new(&app.app.name);
    match write_inner(engine, ctx, url, app, &mut report) {
        Ok(pushed) => (report, pushed),
        Err(e) => {
            tracing::warn!(app = %app.app.name, error = %e, "pull request failed");
            report.errors.push(e);
            (report, false)
        }
    }
}

fn write_inner(
    engine: &Engine,
    ctx: &WriteContext,
    url: &str,
    app: &ResolvedApp,
    report: &mut AppReport,
) -> Result<bool, AppError> {
    let config = &app.app;
    let pr_config = config
        .pull_request
        .as_ref()
        .ok_or(PullRequestError::NotConfigured)?;
    let checkout = engine.git().checkout(url, &config.branch)?;
    let planned = plan::plan_app(engine.registry(), ctx, &checkout, app);
    report.images = planned.images;
    report.errors = planned.errors;
    report.changes = planned.changes;
    if planned.files.is_empty() {
        return Ok(false);
    }
    let rows: Vec<ChangeRow> = contexts(&report.changes);
    if ctx.mode == Mode::DryRun {
        report.diffs = planned.files.iter().map(|f| f.diff()).collect();
        // Fail where the real pass would, short of the remote and the forge.
        settings::forge(config)?;
        render(app, pr_config, (&rows, &planned.promotions))?;
        return Ok(false);
    }
    let forge = Forge::new(settings::forge(config)?)?;
    let texts = render(app, pr_config, (&rows, &planned.promotions))?;
    let found = ctx
        .handle
        .block_on(forge.find_pull_requests(&texts.branch, &config.branch))?;
    let existing = match forge::decide(&found, &forge::fingerprint(&rows)) {
        Action::UpToDate(pr) => {
            report.pull_request = Some(pr.url);
            report.pull_request_action = Some(PullRequestAction::Unchanged);
            return Ok(false);
        }
        Action::Skip { pr, reason } => {
            tracing::info!(app = %config.name, pr = %pr.url, %reason, "not proposing these versions again");
            report.pull_request = Some(pr.url);
            report.pull_request_action = Some(PullRequestAction::NotReopened(reason));
            return Ok(false);
        }
        Action::Create => None,
        Action::Update(pr) => Some(pr),
    };
    if engine.shutting_down() {
        return Err(AppError::ShuttingDown(
            "shutting down: pull request not updated; the next start does it",
        ));
    }
    let Some(commit) = push_bot_branch(engine, &checkout, &texts, &planned.files)? else {
        return Ok(false);
    };
    report.commit = Some(commit.to_string());
    report.pushed = true;
    let (pr, action) = open_or_update(ctx, &forge, app, &texts, existing)?;
    tracing::info!(app = %config.name, pr = %pr.url, commit = %commit, changes = rows.len(), "pull request up to date");
    report.pull_request = Some(pr.url);
    report.pull_request_action = Some(action);
    Ok(true)
}

/// The texts of an app's pull request: bot branch, commit message, title and body.
struct Texts {
    branch: String,
    message: String,
    title: String,
    body: String,
}

/// Render every template of the pull request (a failure here fails the app, before anything
/// is pushed).
fn render(
    app: &ResolvedApp,
    pr_config: &PullRequestConfig,
    (rows, promotions): (&[ChangeRow], &[forge::PromotionRow]),
) -> Result<Texts, AppError> {
    let name = &app.app.name;
    Ok(Texts {
        branch: bot_branch(pr_config.branch.as_deref(), name)
            .map_err(PullRequestError::BotBranchName)?,
        message: message::render(app.app.commit_message.as_deref(), name, rows)
            .map_err(AppError::template)?,
        title: forge::render_title(pr_config.title.as_deref(), name, rows)
            .map_err(AppError::template)?,
        body: forge::render_promoted_body(pr_config.body.as_deref(), name, rows, promotions)
            .map_err(AppError::template)?,
    })
}

/// Commit the planned files on the target branch's head and push them to the bot branch with
/// a compare-and-swap, unless someone else committed to it. `None` when there is nothing to
/// commit.
fn push_bot_branch(
    engine: &Engine,
    checkout: &Checkout,
    texts: &Texts,
    files: &[FileEdit],
) -> Result<Option<Oid>, AppError> {
    let bot = &texts.branch;
    // The bot branch is ours to replace only if nobody else committed to it.
    let base_head = checkout.head()?;
    let tip = checkout.fetch_remote_branch(bot)?;
    if let Some(tip) = tip {
        let commits = checkout.commits_between(base_head, tip)?;
        let ours = engine.author_email();
        let foreign: Vec<String> = commits
            .iter()
            .filter(|c| c.author_email != ours)
            .map(|c| {
                format!(
                    "{} by {} ({})",
                    &c.id.to_string()[..12],
                    c.author_email,
                    c.summary
                )
            })
            .collect();
        if !foreign.is_empty() {
            return Err(PullRequestError::ForeignCommits {
                branch: bot.clone(),
                commits: foreign,
            }
            .into());
        }
    }
    let paths = write_files(checkout.workdir(), files)?;
    let Some(commit) = checkout.commit_on(base_head, &paths, &texts.message)? else {
        return Ok(None);
    };
    match checkout.push_with_lease(commit, bot, tip)? {
        LeaseOutcome::Pushed => Ok(Some(commit)),
        LeaseOutcome::Stale { .. } => Err(PullRequestError::Moved {
            branch: bot.clone(),
        }
        .into()),
        LeaseOutcome::Rejected { reason } => Err(PullRequestError::Rejected {
            branch: bot.clone(),
            reason,
        }
        .into()),
    }
}

/// Open the pull request, or update the open one, once its bot branch is pushed.
fn open_or_update(
    ctx: &WriteContext,
    forge: &Forge,
    app: &ResolvedApp,
    texts: &Texts,
    existing: Option<PullRequest>,
) -> Result<(PullRequest, PullRequestAction), AppError> {
    let bot = &texts.branch;
    match existing {
        None => {
            let created = ctx
                .handle
                .block_on(forge.create(bot, &app.app.branch, &texts.title, &texts.body))
                .map_err(|e| PullRequestError::NotOpened {
                    branch: bot.clone(),
                    error: Arc::new(e),
                })?;
            for problem in &created.problems {
                tracing::warn!(app = %app.app.name, pr = %created.pull_request.url, problem = %problem, "pull request opened with a problem");
            }
            Ok((created.pull_request, PullRequestAction::Opened))
        }
        Some(pr) => {
            let updated = ctx
                .handle
                .block_on(forge.update(&pr, &texts.title, &texts.body))
                .map_err(|e| PullRequestError::NotUpdated {
                    branch: bot.clone(),
                    url: pr.url.clone(),
                    error: Arc::new(e),
                })?;
            Ok((updated, PullRequestAction::Updated))
        }
    }
}

/// The bot branch name from its template (an undefined variable is an error).
pub(crate) fn bot_branch(template: Option<&str>, app: &str) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let name = env
        .render_str(
            template.unwrap_or(DEFAULT_BRANCH),
            minijinja::context! { app => app },
        )
        .map_err(|e| format!("pull_request.branch template: {e}"))?;
    let name = name.trim().to_string();
    let valid = !name.is_empty()
        && !name.starts_with(['-', '/'])
        && !name.ends_with(['/', '.'])
        && !name.contains("..")
        && !name.ends_with(".lock")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
    if valid {
        Ok(name)
    } else {
        Err(format!(
            "pull_request.branch renders `{name}`, which is not a valid branch name"
        ))
    }
}
