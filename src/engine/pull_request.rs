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

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;

use super::commit::write_files;
use super::fetch;
use super::message;
use super::plan::{self, FileEdit, contexts};
use super::progress::Quiet;
use super::{Engine, Mode, ResolvedApp, WriteContext, settings};
use crate::config::PullRequestConfig;
use crate::forge::{self, Action, ChangeRow, Forge, Opened, PullRequest};
use crate::git::{Checkout, LeaseOutcome, Oid};
use crate::reference::ImageRef;
use crate::report::{AppError, PullRequestError};
use crate::report::{AppReport, PullRequestAction};

/// Default bot branch template.
pub const DEFAULT_BRANCH: &str = "imagebump/{{ app }}";

/// Plan, push and open/update the pull request of one app. Returns its report and whether
/// the bot branch was pushed.
///
/// Several replicas may work on the same app at once (issue 17); two rules keep them from
/// undoing each other:
/// - when another replica moved the bot branch between our look and our push, the whole app is
///   planned again on what is there now (up to `git.push_retries` attempts, with backoff), as
///   a rejected push is in commit mode: the loser of a race finds the work done or redoes it,
///   and is not left failing until the next poll;
/// - a bot branch holding a proposal other than ours is replaced only by a plan made from tags
///   listed after that proposal was seen: the pass's tag lists may be older than the replica
///   that pushed it (its pass started later), and replacing it would propose older versions
///   until some later pass. So the app's tags are listed again and the app planned again; the
///   replacement goes ahead only if the bot branch is still at the proposal seen before the
///   new listing.
pub(crate) fn write(
    engine: &Engine,
    ctx: &WriteContext,
    url: &str,
    app: &ResolvedApp,
) -> (AppReport, bool) {
    let retry = engine.retry();
    let attempts = retry.max_attempts.max(1);
    // A context whose tags were listed after the bot branch was seen at the commit it holds.
    let mut relisted: Option<(WriteContext, Oid)> = None;
    let mut attempt = 1;
    loop {
        let mut report = AppReport::new(&app.app.name);
        report.push_attempts = attempt;
        let (pass, seen) = match &relisted {
            Some((fresh, seen)) => (fresh, Some(*seen)),
            None => (ctx, None),
        };
        let error = match write_inner(engine, pass, url, app, seen, &mut report) {
            Ok(Written::Done { pushed }) => return (report, pushed),
            Ok(Written::OtherProposal { tip, .. }) if attempt < attempts => {
                tracing::info!(app = %app.app.name, %tip, "the bot branch holds another proposal; listing the tags again before replacing it");
                relisted = Some((relist(engine, ctx, app), tip));
                attempt += 1;
                continue;
            }
            Ok(Written::OtherProposal { branch, .. }) => {
                AppError::from(PullRequestError::Moved { branch })
            }
            Err(e) => e,
        };
        match error {
            AppError::PullRequest(PullRequestError::Moved { branch })
                if attempt < attempts && !engine.shutting_down() =>
            {
                tracing::info!(app = %app.app.name, %branch, attempt, "bot branch moved under the push; planning again");
                std::thread::sleep(retry.backoff(attempt));
                attempt += 1;
            }
            e => {
                tracing::warn!(app = %app.app.name, error = %e, "pull request failed");
                report.errors.push(e);
                return (report, false);
            }
        }
    }
}

/// What one attempt at an app did.
enum Written {
    /// Finished; `pushed` when the bot branch was pushed.
    Done { pushed: bool },
    /// The bot branch holds another proposal, at `tip`, made after this context's tags were
    /// listed (as far as we know): list them again before replacing it.
    OtherProposal { tip: Oid, branch: String },
}

/// A context for `app` alone with its tags listed now (the pass's other settings kept).
fn relist(engine: &Engine, ctx: &WriteContext, app: &ResolvedApp) -> WriteContext {
    let images: BTreeMap<String, ImageRef> = app
        .app
        .images
        .iter()
        .map(|image| (image.image.name(), image.image.clone()))
        .collect();
    let tags = ctx
        .handle
        .block_on(fetch::tag_lists(engine.registry(), &images, &Quiet));
    WriteContext {
        mode: ctx.mode,
        diffs: ctx.diffs,
        now: OffsetDateTime::now_utc(),
        tags,
        memo: fetch::MetaMemo::default(),
        handle: ctx.handle.clone(),
        history: Arc::clone(&ctx.history),
        bot: ctx.bot.clone(),
        progress: Arc::new(Quiet),
        // The sources as read for the pass (their clones may be this one, locked by this job).
        sources: ctx.sources.clone(),
        bound: ctx.bound.clone(),
    }
}

/// One attempt; `seen`: the bot branch commit seen before `ctx`'s tags were listed (a
/// proposal at that commit may be replaced by this plan).
fn write_inner(
    engine: &Engine,
    ctx: &WriteContext,
    url: &str,
    app: &ResolvedApp,
    seen: Option<Oid>,
    report: &mut AppReport,
) -> Result<Written, AppError> {
    let config = &app.app;
    let pr_config = config
        .pull_request
        .as_ref()
        .ok_or(PullRequestError::NotConfigured)?;
    let checkout = engine.git(ctx.mode).checkout(url, &config.branch)?;
    let planned = plan::plan_app(engine.registry(), ctx, &checkout, app);
    report.images = planned.images;
    report.errors = planned.errors;
    report.changes = planned.changes;
    if planned.files.is_empty() {
        if ctx.mode != Mode::DryRun {
            close_after_rollback(ctx, app, pr_config, report)?;
        }
        return Ok(Written::Done { pushed: false });
    }
    let rows: Vec<ChangeRow> = contexts(&report.changes);
    if ctx.mode == Mode::DryRun {
        if ctx.diffs {
            report.diffs = planned.files.iter().map(|f| f.diff()).collect();
        }
        // Fail where the real pass would, short of the remote and the forge.
        settings::forge(config)?;
        render(app, pr_config, (&rows, &planned.promotions))?;
        return Ok(Written::Done { pushed: false });
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
            return Ok(Written::Done { pushed: false });
        }
        Action::Skip { pr, reason } => {
            tracing::info!(app = %config.name, pr = %pr.url, %reason, "not proposing these versions again");
            report.pull_request = Some(pr.url);
            report.pull_request_action = Some(PullRequestAction::NotReopened(reason));
            return Ok(Written::Done { pushed: false });
        }
        Action::Create => None,
        Action::Update(pr) => Some(pr),
    };
    if engine.shutting_down() {
        return Err(AppError::ShuttingDown(
            "shutting down: pull request not updated; the next start does it",
        ));
    }
    let (commit, pushed) = match push_bot_branch(engine, &checkout, &texts, &planned.files, seen)? {
        BotPush::Nothing => return Ok(Written::Done { pushed: false }),
        BotPush::OtherProposal { tip } => {
            return Ok(Written::OtherProposal {
                tip,
                branch: texts.branch,
            });
        }
        BotPush::Holds { commit, pushed } => (commit, pushed),
    };
    report.commit = Some(commit.to_string());
    report.pushed = pushed;
    let (pr, action) = open_or_update(ctx, &forge, app, &texts, existing)?;
    tracing::info!(app = %config.name, pr = %pr.url, commit = %commit, pushed, changes = rows.len(), "pull request up to date");
    report.pull_request = Some(pr.url);
    report.pull_request_action = Some(action);
    Ok(Written::Done { pushed })
}

/// When a person's rollback on the base branch leaves nothing to propose (`hold`, or
/// `skip-version` with nothing newer) and the app's pull request is still open, proposing what
/// the rules now refuse: comment the rollback (who, which commit) on it and close it, marked as
/// closed by imagebump ([`Forge::close`]): its versions are not proposed while the rules refuse
/// them, and are again once they allow them (unlike after a person's close).
/// Only when every image of the app was decided: an image that failed may still want what the
/// pull request proposes.
fn close_after_rollback(
    ctx: &WriteContext,
    app: &ResolvedApp,
    pr_config: &PullRequestConfig,
    report: &mut AppReport,
) -> Result<(), AppError> {
    let held: Vec<String> = report
        .images
        .iter()
        .filter_map(|image| match &image.why {
            Some(why @ crate::policy::Why::Held { .. }) => Some(format!("{}: {why}", image.name)),
            _ => None,
        })
        .collect();
    let failed = !report.errors.is_empty() || report.images.iter().any(|i| i.error.is_some());
    if held.is_empty() || failed {
        return Ok(());
    }
    let config = &app.app;
    let branch = bot_branch(pr_config.branch.as_deref(), &config.name)
        .map_err(PullRequestError::BotBranchName)?;
    let forge = Forge::new(settings::forge(config)?)?;
    let found = ctx
        .handle
        .block_on(forge.find_pull_requests(&branch, &config.branch))?;
    let Some(open) = found.iter().find(|pr| pr.state == forge::PrState::Open) else {
        return Ok(());
    };
    let reason = format!("rolled back on {}: {}", config.branch, held.join("; "));
    let comment = format!(
        "imagebump closes this pull request: a person rolled back on `{}` what it builds on, \
         and the rollback rules (`on_rollback`) leave nothing to propose now.\n\n{}\n\n\
         These versions are not proposed while the rollback stands; a newer tag (or, under \
         `hold`, a person changing the value) opens a new pull request.",
        config.branch,
        held.iter()
            .map(|line| format!("- {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let closed = ctx
        .handle
        .block_on(forge.close(open, &comment))
        .map_err(|e| PullRequestError::NotUpdated {
            branch: branch.clone(),
            url: open.url.clone(),
            error: Arc::new(e),
        })?;
    tracing::info!(app = %config.name, pr = %closed.url, %reason, "closed the pull request after a rollback");
    report.pull_request = Some(closed.url);
    report.pull_request_action = Some(PullRequestAction::Closed(reason));
    Ok(())
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

/// What [`push_bot_branch`] found or did.
enum BotPush {
    /// Nothing to commit.
    Nothing,
    /// The bot branch holds `commit`: ours, just pushed, or the same change on the same base
    /// another replica pushed (`pushed: false`).
    Holds { commit: Oid, pushed: bool },
    /// The bot branch holds another proposal, at `tip`, not the one seen before our tags were
    /// listed: nothing pushed.
    OtherProposal { tip: Oid },
}

/// Commit the planned files on the target branch's head and push them to the bot branch with
/// a compare-and-swap, unless someone else committed to it, or it holds another proposal than
/// `seen` (see [`write`]).
fn push_bot_branch(
    engine: &Engine,
    checkout: &Checkout,
    texts: &Texts,
    files: &[FileEdit],
    seen: Option<Oid>,
) -> Result<BotPush, AppError> {
    let bot = &texts.branch;
    // The bot branch is ours to replace only if nobody else committed to it.
    let base_head = checkout.head()?;
    let tip = fetch_bot_tip(checkout, bot)?;
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
        return Ok(BotPush::Nothing);
    };
    if let Some(tip) = tip {
        if checkout.same_content(tip, commit)? {
            return Ok(BotPush::Holds {
                commit: tip,
                pushed: false,
            });
        }
        if seen != Some(tip) {
            return Ok(BotPush::OtherProposal { tip });
        }
    }
    let moved = || PullRequestError::Moved {
        branch: bot.clone(),
    };
    match checkout.push_with_lease(commit, bot, tip)? {
        LeaseOutcome::Pushed => Ok(BotPush::Holds {
            commit,
            pushed: true,
        }),
        LeaseOutcome::Stale { .. } => Err(moved().into()),
        // A smart-HTTP or SSH server re-checks the old value and refuses ("failed to update
        // ref") when another replica moved the branch since our look: that is a move too.
        LeaseOutcome::Rejected { .. } if fetch_bot_tip(checkout, bot)? != tip => {
            Err(moved().into())
        }
        LeaseOutcome::Rejected { reason } => Err(PullRequestError::Rejected {
            branch: bot.clone(),
            reason,
        }
        .into()),
    }
}

/// The bot branch's remote tip. A fetch can fail when another replica replaces the branch at
/// the same moment: over smart HTTP the server advertises the tip in one request and is asked
/// for it in the next, and by then no ref points at it ("not our ref"; git http-backend
/// answers 500). A bot branch is replaced, not fast-forwarded, so its old tip is no longer
/// reachable. Two more tries, a little apart, before the error counts.
fn fetch_bot_tip(checkout: &Checkout, bot: &str) -> Result<Option<Oid>, AppError> {
    const TRIES: u32 = 3;
    let mut tries = 1;
    loop {
        match checkout.fetch_remote_branch(bot) {
            Ok(tip) => return Ok(tip),
            Err(error) if tries < TRIES => {
                tracing::debug!(branch = bot, %error, "fetching the bot branch failed; trying again");
                std::thread::sleep(std::time::Duration::from_millis(100 * u64::from(tries)));
                tries += 1;
            }
            Err(error) => return Err(error.into()),
        }
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
            let opened = ctx
                .handle
                .block_on(forge.open(bot, &app.app.branch, &texts.title, &texts.body))
                .map_err(|e| PullRequestError::NotOpened {
                    branch: bot.clone(),
                    error: Arc::new(e),
                })?;
            match opened {
                Opened::Created(created) => {
                    for problem in &created.problems {
                        tracing::warn!(app = %app.app.name, pr = %created.pull_request.url, problem = %problem, "pull request opened with a problem");
                    }
                    Ok((created.pull_request, PullRequestAction::Opened))
                }
                Opened::Adopted(pr) => {
                    tracing::info!(app = %app.app.name, pr = %pr.url, "adopted the open pull request another replica opened for the bot branch");
                    Ok((pr, PullRequestAction::Updated))
                }
            }
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
