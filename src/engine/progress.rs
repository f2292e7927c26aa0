//! What a pass tells while it runs, for a person watching it (`imagebump once` on a terminal).
//!
//! Invariant: only notices, never decisions: a [`Progress`] sees what the pass does, in the
//! order it happens, and cannot change it. Every app a pass covers reaches
//! [`Progress::app_done`] exactly once, with its final report (after its push), except apps
//! reported without being planned (broken settings, an internal error): those are only in the
//! pass's report.

use crate::report::AppReport;

/// Receives a pass's progress. Called from the pass's tasks and blocking threads, so it must
/// be cheap and thread-safe; every method defaults to doing nothing.
pub trait Progress: Send + Sync {
    /// The pass lists `repositories` image repositories, plans `apps` apps in `config_repos`
    /// config repositories.
    fn start(&self, repositories: usize, apps: usize, config_repos: usize) {
        let _ = (repositories, apps, config_repos);
    }

    /// One image repository's tags were listed (or failed to be).
    fn listed(&self, repository: &str) {
        let _ = repository;
    }

    /// One app was planned on a checkout (again when a rejected push replans it).
    fn planned(&self, app: &str) {
        let _ = app;
    }

    /// One app is done: its final report.
    fn app_done(&self, report: &AppReport) {
        let _ = report;
    }

    /// One config repository is done; `pushes` pushes were made to it.
    fn repo_done(&self, url: &str, pushes: usize) {
        let _ = (url, pushes);
    }
}

/// Tells nothing (the daemon, and `once --output json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {}
