//! Commit mode: the apps of one branch, one commit per app (or one for all of them with
//! `git.group_commits`) and one push, replanned on the new remote head when the push is
//! rejected.
//!
//! Invariant: an app's report says `pushed` only when the commit carrying its changes reached
//! the remote; every app of a branch whose push failed gets the push's error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;

use super::message;
use super::plan::{self, FileEdit, contexts};
use super::{Engine, Mode, ResolvedApp, WriteContext};
use crate::config::{App, WriteMode};
use crate::git::{self, Checkout, Oid};
use crate::report::AppError;
use crate::report::{AppReport, PlannedChange};

/// Why an app's changes were left uncommitted: the daemon is shutting down.
const NOT_COMMITTED_AT_SHUTDOWN: AppError =
    AppError::ShuttingDown("shutting down: changes not committed; the next start applies them");

/// The apps of one grouped commit (`git.group_commits`): their indices, the files written for
/// them, and their changes.
#[derive(Default)]
struct Group {
    members: Vec<usize>,
    paths: Vec<PathBuf>,
    changes: Vec<message::GroupedChange>,
}

impl Group {
    fn add(&mut self, index: usize, app: &str, paths: Vec<PathBuf>, changes: &[PlannedChange]) {
        self.members.push(index);
        for path in paths {
            if !self.paths.contains(&path) {
                self.paths.push(path);
            }
        }
        self.changes.extend(
            contexts(changes)
                .into_iter()
                .map(|change| message::GroupedChange {
                    app: app.to_string(),
                    change,
                }),
        );
    }
}

impl Engine {
    /// Before the tag lists are in: read the targets' histories of each commit-mode branch of
    /// the repository, and each file target's value history, into the engine's cache, from the
    /// clone as it is (the branch as last fetched or pushed; no fetch, so the round's fetch
    /// stays the only network call). The round then reads only what its fetch brought; the
    /// costly part, the walk over the commits of the last pass (a round of 1,000 commits), is
    /// done while the registry answers. Nothing is done for a repository not cloned yet. A
    /// failure is left to the round, which reads again and reports it.
    pub(crate) fn prepare_repository(&self, url: &str, apps: &[ResolvedApp], now: OffsetDateTime) {
        let mut by_branch: BTreeMap<&str, Vec<ResolvedApp>> = BTreeMap::new();
        for app in apps
            .iter()
            .filter(|a| a.app.write != WriteMode::PullRequest)
        {
            by_branch
                .entry(app.app.branch.as_str())
                .or_default()
                .push(app.clone());
        }
        let history = self.history();
        for (branch, apps) in by_branch {
            // A read: the clone as it is, never fetched nor repacked.
            let opened = self.git(Mode::DryRun).open_cached(url, branch);
            let Ok(Some(checkout)) = opened else {
                if let Err(error) = opened {
                    tracing::debug!(url = %git::redact_url(url), branch, %error, "reading the history ahead of the round failed; the round reads it");
                }
                continue;
            };
            let Ok(head) = checkout.remote_head() else {
                continue;
            };
            let _pinned = history.pin_at(&checkout, url, head);
            plan::prefetch_history(&history, now, &checkout, &apps);
            plan::prefetch_targets(&history, now, &checkout, &apps);
        }
    }

    /// Commit mode: plan every app of one branch on the remote head, one commit per app, one
    /// push; replan on the new head when the push is rejected.
    pub(crate) fn write_branch(
        &self,
        ctx: &WriteContext,
        url: &str,
        branch: &str,
        apps: &[ResolvedApp],
    ) -> (Vec<AppReport>, bool) {
        let mut reports: Vec<AppReport> =
            apps.iter().map(|a| AppReport::new(&a.app.name)).collect();
        let result = git::commit_and_push_with(
            self.git(ctx.mode),
            url,
            branch,
            self.retry(),
            |checkout, memory| {
                Ok::<usize, std::convert::Infallible>(self.commit_apps(
                    ctx,
                    checkout,
                    memory,
                    apps,
                    &mut reports,
                ))
            },
        );
        let pushed = match result {
            Ok(push) => {
                if push.pushed {
                    ctx.history
                        .record_own_commits(url, branch, push.base, &push.commits, ctx.now);
                }
                for report in &mut reports {
                    report.push_attempts = push.attempts;
                    report.pushed = push.pushed && report.commit.is_some();
                    if report.pushed {
                        log_pushed(report);
                    }
                }
                push.pushed
            }
            Err(e) => {
                tracing::warn!(url = %git::redact_url(url), branch, error = %e, "write-back failed");
                let error = AppError::WriteBack(Arc::new(e));
                for report in &mut reports {
                    report.commit = None;
                    report.errors.push(error.clone());
                }
                false
            }
        };
        (reports, pushed)
    }

    /// One round on a fresh checkout of the branch head: plan each app, then commit it (or,
    /// with `git.group_commits`, write its files and commit them all at the end). Returns the
    /// commits made. The round's objects are written out between commits once they weigh
    /// enough (`memory`), so a round of 1,000 commits does not hold all their trees.
    fn commit_apps(
        &self,
        ctx: &WriteContext,
        checkout: &Checkout,
        memory: &git::InMemory<'_>,
        apps: &[ResolvedApp],
        reports: &mut [AppReport],
    ) -> usize {
        let git_config = &self.config().global.git;
        let mut commits = 0;
        // With `git.group_commits`: the apps whose files are written, awaiting one commit.
        let mut group = Group::default();
        // The round reads histories at the head it started from, not after each of its commits.
        let _pinned = apps
            .first()
            .and_then(|a| ctx.history.pin(checkout, &a.app.repo).ok());
        plan::prefetch_history(&ctx.history, ctx.now, checkout, apps);
        for (index, (app, report)) in apps.iter().zip(reports.iter_mut()).enumerate() {
            *report = AppReport::new(&app.app.name);
            let planned = plan::plan_app(self.registry(), ctx, checkout, app);
            report.images = planned.images;
            report.errors = planned.errors;
            report.changes = planned.changes;
            if planned.files.is_empty() {
                continue;
            }
            if ctx.mode == Mode::DryRun {
                if ctx.diffs {
                    report.diffs = planned.files.iter().map(FileEdit::diff).collect();
                }
                // The message a commit would carry: a template that fails here fails there.
                if let Err(e) = self.render_message(&app.app, &report.changes) {
                    report.errors.push(e);
                }
                continue;
            }
            if self.shutting_down() {
                report.errors.push(NOT_COMMITTED_AT_SHUTDOWN);
                continue;
            }
            if git_config.group_commits {
                // Written now, so that the next app plans on top of these files.
                match write_files(checkout.workdir(), &planned.files) {
                    Ok(paths) => group.add(index, &app.app.name, paths, &report.changes),
                    Err(e) => report.errors.push(e),
                }
                continue;
            }
            match write_and_commit(checkout, &app.app, &planned.files, &report.changes) {
                Ok(Some(oid)) => {
                    report.commit = Some(oid.to_string());
                    commits += 1;
                    memory.persist_if_large();
                }
                Ok(None) => {}
                Err(e) => report.errors.push(e),
            }
        }
        if group.members.is_empty() {
            return commits;
        }
        if self.shutting_down() {
            for &i in &group.members {
                reports[i].errors.push(NOT_COMMITTED_AT_SHUTDOWN);
            }
            return commits;
        }
        let committed =
            message::render_group(git_config.group_commit_message.as_deref(), &group.changes)
                .map_err(AppError::template)
                .and_then(|msg| Ok(checkout.commit(&group.paths, &msg)?));
        for &i in &group.members {
            match &committed {
                Ok(oid) => reports[i].commit = oid.map(|o| o.to_string()),
                Err(e) => reports[i].errors.push(e.clone()),
            }
        }
        commits + usize::from(matches!(committed, Ok(Some(_))))
    }

    /// The commit message `app`'s changes would get (grouped or not), rendered only to find a
    /// template that fails.
    fn render_message(&self, app: &App, changes: &[PlannedChange]) -> Result<(), AppError> {
        let git_config = &self.config().global.git;
        let rows = contexts(changes);
        if git_config.group_commits {
            let grouped: Vec<message::GroupedChange> = rows
                .into_iter()
                .map(|change| message::GroupedChange {
                    app: app.name.clone(),
                    change,
                })
                .collect();
            message::render_group(git_config.group_commit_message.as_deref(), &grouped)
                .map(drop)
                .map_err(AppError::template)
        } else {
            message::render(app.commit_message.as_deref(), &app.name, &rows)
                .map(drop)
                .map_err(AppError::template)
        }
    }
}

fn log_pushed(report: &AppReport) {
    tracing::info!(
        app = %report.name,
        commit = report.commit.as_deref().unwrap_or(""),
        changes = report.changes.len(),
        "pushed"
    );
    for c in &report.changes {
        tracing::info!(app = %c.app, image = %c.image, file = %c.file, from = %c.from, to = %c.to, "updated");
    }
}

/// Write the planned files into the work tree and commit them on the branch head.
pub fn write_and_commit(
    checkout: &Checkout,
    app: &App,
    files: &[FileEdit],
    changes: &[PlannedChange],
) -> Result<Option<Oid>, AppError> {
    let message = message::render(app.commit_message.as_deref(), &app.name, &contexts(changes))
        .map_err(AppError::template)?;
    let paths = write_files(checkout.workdir(), files)?;
    Ok(checkout.commit(&paths, &message)?)
}

/// Write the planned files into a work tree; the paths written, relative to it.
pub fn write_files(root: &Path, files: &[FileEdit]) -> Result<Vec<PathBuf>, AppError> {
    let mut paths = Vec::new();
    for f in files {
        let path = git::inside_clone(root, Path::new(&f.file))?;
        crate::atomic::write(&path, &f.after).map_err(|error| AppError::Write {
            file: f.file.clone(),
            error: Arc::new(error),
        })?;
        paths.push(PathBuf::from(&f.file));
    }
    Ok(paths)
}
