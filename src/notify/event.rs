//! What a sink is told: one [`Event`] per app and occasion, derived from the pass reports by
//! [`Tracker`], which remembers each app's consecutive failures.
//!
//! Invariant: pure (no I/O, no clock of its own: the caller passes the time); an event is
//! only derived from what a report says happened: `committed` only for changes that reached the
//! remote, `pull_request` only when one was opened or updated, `failed` once when an app
//! reaches the threshold of failed checks in a row, `recovered` once at its next good check.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::NotifyEvent;
use crate::forge::commit_url;
use crate::report::{AppReport, PullRequestAction};

/// The version of the payload schema (docs/notifications.md).
pub const SCHEMA_VERSION: u32 = 1;

/// One notification, as the `webhook` sink sends it (the documented JSON payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub version: u32,
    /// `committed`, `pull_request`, `failed` or `recovered`.
    pub event: &'static str,
    #[serde(skip)]
    pub kind: NotifyEvent,
    /// Unique per event, the same on every retry of it (for receivers to drop duplicates).
    pub id: String,
    /// RFC 3339 time of the check that caused the event.
    pub at: String,
    pub app: String,
    /// The config repository, without credentials.
    pub repo: String,
    pub branch: String,
    /// The images written (committed, pull_request); empty otherwise.
    pub changes: Vec<Change>,
    /// The commit that carries the changes (committed, pull_request).
    pub commit: Option<String>,
    /// A link to that commit, when the repository is on a forge whose links are known.
    pub commit_url: Option<String>,
    pub pull_request: Option<PullRequest>,
    /// Consecutive failed checks (failed: the threshold; recovered: how many there were).
    pub failures: Option<u32>,
    /// The last check's error (failed).
    pub error: Option<String>,
}

/// One image tag written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The image's name in the app config.
    pub image: String,
    /// The image repository (`ghcr.io/acme/api`).
    pub repository: String,
    pub from: String,
    pub to: String,
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    pub url: String,
    /// `opened` or `updated`.
    pub action: &'static str,
}

/// What the tracker needs to know of an app besides its report.
#[derive(Debug, Clone, Default)]
pub struct AppInfo {
    pub repo: String,
    pub branch: String,
}

/// Consecutive failed checks per app, turned into `failed` and `recovered` events.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    failing: BTreeMap<String, u32>,
}

impl Tracker {
    /// The events of one app's report, checked at `at`. `threshold` is the number of failed
    /// checks in a row that makes a `failed` event (at least 1); `new_id` names each event.
    pub fn events(
        &mut self,
        report: &AppReport,
        info: &AppInfo,
        threshold: u32,
        at: &str,
        new_id: &mut dyn FnMut() -> String,
    ) -> Vec<Event> {
        let threshold = threshold.max(1);
        let mut events = Vec::new();
        let mut base = |kind: NotifyEvent| Event {
            version: SCHEMA_VERSION,
            event: kind.as_str(),
            kind,
            id: new_id(),
            at: at.to_string(),
            app: report.name.clone(),
            repo: info.repo.clone(),
            branch: info.branch.clone(),
            changes: Vec::new(),
            commit: None,
            commit_url: None,
            pull_request: None,
            failures: None,
            error: None,
        };
        let changes: Vec<Change> = report
            .changes
            .iter()
            .map(|c| Change {
                image: c.name.clone(),
                repository: c.image.clone(),
                from: c.from.clone(),
                to: c.to.clone(),
                file: c.file.clone(),
                line: c.line,
            })
            .collect();
        let action = match &report.pull_request_action {
            Some(PullRequestAction::Opened) => Some("opened"),
            Some(PullRequestAction::Updated) => Some("updated"),
            _ => None,
        };
        if let (Some(action), Some(url)) = (action, &report.pull_request) {
            let mut event = base(NotifyEvent::PullRequest);
            event.changes = changes;
            event.commit.clone_from(&report.commit);
            event.commit_url = report
                .commit
                .as_deref()
                .and_then(|sha| commit_url(&info.repo, sha));
            event.pull_request = Some(PullRequest {
                url: url.clone(),
                action,
            });
            events.push(event);
        } else if report.pushed
            && report.pull_request.is_none()
            && let Some(sha) = &report.commit
            && !changes.is_empty()
        {
            let mut event = base(NotifyEvent::Committed);
            event.changes = changes;
            event.commit = Some(sha.clone());
            event.commit_url = commit_url(&info.repo, sha);
            events.push(event);
        }
        let count = self.failing.entry(report.name.clone()).or_insert(0);
        if report.errors.is_empty() {
            if *count >= threshold {
                let mut event = base(NotifyEvent::Recovered);
                event.failures = Some(*count);
                events.push(event);
            }
            *count = 0;
        } else {
            *count = count.saturating_add(1);
            if *count == threshold {
                let mut event = base(NotifyEvent::Failed);
                event.failures = Some(*count);
                event.error = report.error_text();
                events.push(event);
            }
        }
        events
    }

    /// Forgets apps no longer configured.
    pub fn retain(&mut self, apps: &[String]) {
        self.failing.retain(|name, _| apps.contains(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AppError, PlannedChange};

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id{n}")
        }
    }

    fn info() -> AppInfo {
        AppInfo {
            repo: "https://github.com/acme/deploy.git".into(),
            branch: "main".into(),
        }
    }

    fn failing(name: &str) -> AppReport {
        AppReport {
            name: name.into(),
            errors: vec![AppError::Internal("registry down".into())],
            ..AppReport::default()
        }
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|e| e.event).collect()
    }

    #[test]
    fn failed_once_at_the_threshold_and_recovered_once() {
        let mut tracker = Tracker::default();
        let mut id = ids();
        let ok = AppReport {
            name: "shop".into(),
            ..AppReport::default()
        };
        let mut seen = Vec::new();
        for report in [
            &failing("shop"),
            &failing("shop"),
            &failing("shop"),
            &failing("shop"),
            &ok,
            &ok,
        ] {
            seen.push(kinds(&tracker.events(report, &info(), 3, "t", &mut id)));
        }
        assert_eq!(
            seen,
            vec![
                vec![],
                vec![],
                vec!["failed"],
                vec![],
                vec!["recovered"],
                vec![]
            ]
        );
        // Fewer failures than the threshold: nothing, also not when it recovers.
        for report in [&failing("shop"), &failing("shop"), &ok] {
            assert!(tracker.events(report, &info(), 3, "t", &mut id).is_empty());
        }
    }

    #[test]
    fn the_failed_event_carries_the_count_and_error() {
        let mut tracker = Tracker::default();
        let events = tracker.events(&failing("shop"), &info(), 1, "t", &mut ids());
        assert_eq!(events[0].failures, Some(1));
        assert_eq!(
            events[0].error.as_deref(),
            Some("internal error: registry down")
        );
    }

    #[test]
    fn committed_only_when_pushed() {
        let change = PlannedChange {
            app: "shop".into(),
            image: "ghcr.io/acme/api".into(),
            name: "api".into(),
            file: "values.yaml".into(),
            line: 4,
            from: "1.0.0".into(),
            to: "1.1.0".into(),
            digest: None,
            reason: String::new(),
            tag: "1.1.0".into(),
        };
        let mut report = AppReport {
            name: "shop".into(),
            changes: vec![change],
            commit: Some("abc123".into()),
            pushed: false,
            ..AppReport::default()
        };
        let mut tracker = Tracker::default();
        assert!(
            tracker
                .events(&report, &info(), 3, "t", &mut ids())
                .is_empty()
        );
        report.pushed = true;
        let events = tracker.events(&report, &info(), 3, "t", &mut ids());
        assert_eq!(kinds(&events), vec!["committed"]);
        assert_eq!(
            events[0].commit_url.as_deref(),
            Some("https://github.com/acme/deploy/commit/abc123")
        );
        assert_eq!(events[0].changes[0].to, "1.1.0");
        // An unchanged pull request is no event.
        report.pull_request = Some("https://github.com/acme/deploy/pull/7".into());
        report.pull_request_action = Some(PullRequestAction::Unchanged);
        assert!(
            tracker
                .events(&report, &info(), 3, "t", &mut ids())
                .is_empty()
        );
        report.pull_request_action = Some(PullRequestAction::Updated);
        let events = tracker.events(&report, &info(), 3, "t", &mut ids());
        assert_eq!(kinds(&events), vec!["pull_request"]);
        assert_eq!(
            events[0].pull_request.as_ref().map(|p| p.action),
            Some("updated")
        );
    }
}
