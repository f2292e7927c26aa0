//! The per-app status behind `/api/v1/status` and `imagebump status`.
//!
//! Invariant: the status is only ever built from [`CycleReport`]s the worker returned; the daemon
//! never guesses a tag. Design choice: reports merge into the store image by image, so a
//! targeted (repository) check updates the images it looked at and leaves the app's other images
//! as the last full cycle saw them. The JSON types are plain serde structs shared with the CLI.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AppReport, CycleReport};

/// The body of `GET /api/v1/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Whether `/readyz` would answer 200.
    pub ready: bool,
    /// One entry per app, sorted by name.
    pub apps: Vec<AppStatus>,
    /// App files that do not load right now, by file. Empty when every file loads.
    #[serde(default)]
    pub config_errors: Vec<ConfigProblem>,
    /// Every registry asked or heard from, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<RegistryStatus>,
    /// Which shard this replica is and which apps it polls (absent when not sharded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardStatus>,
    /// Webhook checks that failed transiently and are retried soon, by scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<RetryStatus>,
}

/// A failed webhook check's scheduled retry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryStatus {
    /// What is checked again (`repository ghcr.io/acme/api`).
    pub scope: String,
    /// Which retry this is (1 is the first) ...
    pub attempt: u32,
    /// ... of at most this many.
    pub max_attempts: u32,
    /// RFC 3339 time it is due.
    pub at: Option<String>,
    /// What the check it retries failed with (`app: error`, the first failing app's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A sharded replica: its shard `index` of `count`, and the apps it owns (polls on the
/// schedule; the others it checks on webhooks and on the slower safety-net poll).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStatus {
    pub index: u32,
    pub count: u32,
    /// The owned apps, sorted.
    pub owned: Vec<String>,
    /// How often other shards' apps are checked here, e.g. `5m`.
    pub safety_net: String,
}

/// One registry as the daemon sees it: its traffic, whether the circuit breaker gave it up,
/// and the last webhook from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStatus {
    /// The registry host (`ghcr.io`, `127.0.0.1:5000`).
    pub name: String,
    /// HTTP requests sent to it since the daemon started (token requests and retries included).
    pub requests: u64,
    /// Of those, the ones that failed: no answer, a 5xx or a 429.
    pub failures: u64,
    /// Requests in a row that failed for good (after 3 the registry is given up for a while).
    pub failures_in_a_row: u32,
    /// RFC 3339 time until which it is not asked (given up), `null` while it is asked.
    pub given_up_until: Option<String>,
    /// The last failure's message, while failures_in_a_row > 0.
    pub last_error: Option<String>,
    /// RFC 3339 time of the last webhook announcing a push to it, and the repository named.
    pub last_webhook: Option<String>,
    pub last_webhook_repository: Option<String>,
}

/// An app file that did not load at the last (re)load. The daemon runs without it, or, when
/// the file loaded before, with the app's last good version (`app`), until the file is fixed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// The app file.
    pub file: String,
    /// Every problem in it, one `file:line:col: message` per line.
    pub error: String,
    /// The app still running from its last good version, `null` when nothing runs from it.
    pub app: Option<String>,
    /// RFC 3339 time this error was first seen (set by the store).
    pub since: Option<String>,
}

/// What the configuration says of an app (the worker tells; shown on the status page).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppDetails {
    pub name: String,
    /// The app file.
    pub file: String,
    /// The config repository URL, without credentials.
    pub repo: String,
    pub branch: String,
    /// `commit` or `pull-request`.
    pub write: String,
    pub images: Vec<ImageDetails>,
}

/// What the configuration says of one image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDetails {
    pub name: String,
    pub repository: String,
    /// The policy in words (`semver ~1.4, min_age 30m`).
    pub policy: String,
    /// Where its tag is written: `file`, `file (path a.b)` or `file (marker ns:name)`.
    pub targets: Vec<String>,
}

/// A change a check wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub image: String,
    pub from: String,
    pub to: String,
    /// RFC 3339 time of the check that wrote it.
    pub at: Option<String>,
    /// The commit that carries it, if any.
    pub commit: Option<String>,
    /// The pull request that carries it, if any.
    pub pull_request: Option<String>,
}

/// Updates kept per app for the status page.
pub const HISTORY: usize = 10;

/// One app's last known state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    pub name: String,
    pub images: Vec<ImageStatus>,
    /// What the configuration says of the app (`null` until the worker told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<AppDetails>,
    /// The last updates written, newest first (at most [`HISTORY`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Update>,
    /// RFC 3339 time the current error started (`null` while the app succeeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_since: Option<String>,
    /// The open pull request of the app, from the last check that saw one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    /// RFC 3339 time of the last check that looked at this app (`null`: never checked).
    pub last_check: Option<String>,
    /// RFC 3339 time of the last check without error.
    pub last_success: Option<String>,
    /// The error of the last check, `null` when it succeeded.
    pub last_error: Option<String>,
    /// The last commit a check created for this app.
    pub last_commit: Option<String>,
    /// How long the last check of this app took, in milliseconds.
    pub last_duration_ms: Option<u64>,
    /// Set while the app's file does not load: the app runs from its last good version.
    #[serde(default)]
    pub config_error: Option<String>,
}

/// One image of an app.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageStatus {
    pub name: String,
    pub repository: String,
    /// The tag in the config repo when last checked.
    pub deployed: Option<String>,
    /// The best tag the policy picked when last checked.
    pub candidate: Option<String>,
    /// Why the policy decided as it did when last checked (a kind plus the tags it names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<crate::policy::Why>,
    /// The same, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_text: Option<String>,
}

/// Thread-safe store of app statuses, updated from check reports.
#[derive(Debug, Default)]
pub struct StatusStore {
    apps: Mutex<BTreeMap<String, AppStatus>>,
    problems: Mutex<Vec<ConfigProblem>>,
    registries: Mutex<BTreeMap<String, RegistryStatus>>,
    shard: Mutex<Option<ShardStatus>>,
    retries: Mutex<Vec<RetryStatus>>,
}

/// RFC 3339 in UTC, to the second (sub-second precision is noise in a status).
fn rfc3339(time: OffsetDateTime) -> Option<String> {
    let time = time.replace_nanosecond(0).unwrap_or(time);
    time.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok()
}

impl StatusStore {
    pub fn new() -> StatusStore {
        StatusStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, AppStatus>> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.apps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes sure these apps are listed (not checked yet) and forgets apps no longer configured.
    pub fn set_apps(&self, names: &[String]) {
        let mut apps = self.lock();
        if names.is_empty() {
            return;
        }
        apps.retain(|name, _| names.contains(name));
        for name in names {
            apps.entry(name.clone()).or_insert_with(|| AppStatus {
                name: name.clone(),
                ..AppStatus::default()
            });
        }
    }

    /// Records what the configuration says of each app.
    pub fn set_details(&self, details: Vec<AppDetails>) {
        let mut apps = self.lock();
        for detail in details {
            if let Some(app) = apps.get_mut(&detail.name) {
                app.details = Some(detail);
            }
        }
    }

    /// Records which shard this replica is (`None`: not sharded).
    pub fn set_shard(&self, shard: Option<ShardStatus>) {
        *self
            .shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = shard;
    }

    /// Replaces the list of app files that do not load (after a load at `at`). A problem seen
    /// before with the same file and error keeps its `since`.
    pub fn set_config_problems(&self, mut problems: Vec<ConfigProblem>, at: OffsetDateTime) {
        let mut known = self
            .problems
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for problem in &mut problems {
            problem.since = known
                .iter()
                .find(|old| old.file == problem.file && old.error == problem.error)
                .and_then(|old| old.since.clone())
                .or_else(|| rfc3339(at));
        }
        *known = problems;
    }

    fn registries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RegistryStatus>> {
        self.registries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the registries' counters and breaker states (the worker's, after a check); the
    /// last webhook of each is kept.
    pub fn set_registries(&self, registries: Vec<RegistryStatus>) {
        let mut known = self.registries();
        for mut registry in registries {
            if let Some(old) = known.get(&registry.name) {
                registry.last_webhook.clone_from(&old.last_webhook);
                registry
                    .last_webhook_repository
                    .clone_from(&old.last_webhook_repository);
            }
            known.insert(registry.name.clone(), registry);
        }
    }

    /// A webhook announced a push of `repository` to `registry` at `at`.
    pub fn webhook_received(&self, registry: &str, repository: &str, at: OffsetDateTime) {
        let mut known = self.registries();
        let entry = known
            .entry(registry.to_string())
            .or_insert_with(|| RegistryStatus {
                name: registry.to_string(),
                ..RegistryStatus::default()
            });
        entry.last_webhook = rfc3339(at);
        entry.last_webhook_repository = Some(repository.to_string());
    }

    /// Merges a report, checked at `at`.
    pub fn record(&self, report: &CycleReport, at: OffsetDateTime) {
        let mut apps = self.lock();
        for app in &report.apps {
            let entry = apps.entry(app.name.clone()).or_insert_with(|| AppStatus {
                name: app.name.clone(),
                ..AppStatus::default()
            });
            merge(entry, app, report.duration, at);
        }
    }

    /// Replaces the retries scheduled (the check queue keeps it current).
    pub fn set_retries(&self, retries: Vec<RetryStatus>) {
        *self
            .retries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = retries;
    }

    /// A snapshot, sorted by app name.
    pub fn snapshot(&self, ready: bool) -> StatusResponse {
        let config_errors = self
            .problems
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let mut apps: Vec<AppStatus> = self.lock().values().cloned().collect();
        for app in &mut apps {
            app.config_error = config_errors
                .iter()
                .find(|p| p.app.as_deref() == Some(app.name.as_str()))
                .map(|p| p.error.clone());
        }
        StatusResponse {
            ready,
            apps,
            config_errors,
            registries: self.registries().values().cloned().collect(),
            shard: self
                .shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
            retries: self
                .retries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        }
    }
}

fn merge(entry: &mut AppStatus, app: &AppReport, duration: Duration, at: OffsetDateTime) {
    let when = rfc3339(at);
    entry.last_check.clone_from(&when);
    let error = app.error_text();
    if error.is_none() {
        entry.error_since = None;
    } else if entry.last_error.is_none() || entry.error_since.is_none() {
        entry.error_since.clone_from(&when);
    }
    entry.last_error = error;
    if app.errors.is_empty() {
        entry.last_success.clone_from(&when);
    }
    if app.commit.is_some() {
        entry.last_commit.clone_from(&app.commit);
    }
    if app.pull_request.is_some() {
        entry.pull_request.clone_from(&app.pull_request);
    }
    for image in &app.images {
        if let Some(change) = app.written(&image.name) {
            entry.history.insert(
                0,
                Update {
                    image: image.name.clone(),
                    from: change.from.clone(),
                    to: change.to.clone(),
                    at: when.clone(),
                    commit: app.commit.clone(),
                    pull_request: app.pull_request.clone(),
                },
            );
        }
    }
    entry.history.truncate(HISTORY);
    entry.last_duration_ms = Some(duration_ms(duration));
    for image in &app.images {
        let status = ImageStatus {
            name: image.name.clone(),
            repository: image.image.clone(),
            deployed: app.deployed_after(image),
            candidate: image.candidate.clone(),
            why: image.why.clone(),
            why_text: image.why_text(),
        };
        match entry
            .images
            .iter_mut()
            .find(|known| known.name == image.name)
        {
            Some(known) => *known = status,
            None => entry.images.push(status),
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryError;
    use crate::report::{AppError, ImageError, ImageStatus as ImageReport};
    use time::macros::datetime;

    fn image(name: &str, deployed: &str, candidate: &str) -> ImageReport {
        ImageReport {
            name: name.into(),
            image: format!("ghcr.io/acme/{name}"),
            deployed: Some(deployed.into()),
            candidate: Some(candidate.into()),
            error: None,
            why: None,
        }
    }

    fn registry_error() -> AppError {
        AppError::Image {
            image: "api".into(),
            error: Box::new(ImageError::Registry(RegistryError::BadResponse {
                registry: "ghcr.io".into(),
                repository: "acme/api".into(),
                detail: "HTTP 500".into(),
            })),
        }
    }

    #[test]
    fn targeted_reports_merge_image_by_image() {
        let store = StatusStore::new();
        store.set_apps(&["shop".into(), "blog".into()]);
        store.record(
            &CycleReport {
                apps: vec![AppReport {
                    name: "shop".into(),
                    images: vec![
                        image("api", "1.0.0", "1.0.1"),
                        image("web", "2.0.0", "2.0.0"),
                    ],
                    commit: Some("abc123".into()),
                    ..AppReport::default()
                }],
                duration: Duration::from_millis(1500),
            },
            datetime!(2026-01-01 10:00:00 UTC),
        );
        store.record(
            &CycleReport {
                apps: vec![AppReport {
                    name: "shop".into(),
                    errors: vec![registry_error()],
                    images: vec![image("api", "1.0.1", "1.0.2")],
                    ..AppReport::default()
                }],
                duration: Duration::from_millis(20),
            },
            datetime!(2026-01-01 10:05:00 UTC),
        );
        let snapshot = store.snapshot(true);
        assert_eq!(snapshot.apps.len(), 2);
        assert_eq!(snapshot.apps[0].name, "blog");
        assert_eq!(snapshot.apps[0].last_check, None);
        let shop = &snapshot.apps[1];
        assert_eq!(shop.last_check.as_deref(), Some("2026-01-01T10:05:00Z"));
        assert_eq!(shop.last_success.as_deref(), Some("2026-01-01T10:00:00Z"));
        assert_eq!(shop.last_error, Some(registry_error().to_string()));
        assert_eq!(shop.last_commit.as_deref(), Some("abc123"));
        assert_eq!(shop.images.len(), 2);
        assert_eq!(shop.images[0].deployed.as_deref(), Some("1.0.1"));
        assert_eq!(shop.images[0].candidate.as_deref(), Some("1.0.2"));
        assert_eq!(shop.images[1].deployed.as_deref(), Some("2.0.0"));

        store.set_apps(&["shop".into()]);
        assert_eq!(store.snapshot(true).apps.len(), 1);
    }

    #[test]
    fn registries_keep_their_last_webhook_across_checks() {
        let store = StatusStore::new();
        store.webhook_received("ghcr.io", "acme/api", datetime!(2026-01-01 10:00:00 UTC));
        store.set_registries(vec![RegistryStatus {
            name: "ghcr.io".into(),
            requests: 12,
            failures: 3,
            failures_in_a_row: 3,
            given_up_until: Some("2026-01-01T10:05:00Z".into()),
            last_error: Some("connection refused".into()),
            ..RegistryStatus::default()
        }]);
        let registries = store.snapshot(true).registries;
        assert_eq!(registries.len(), 1);
        assert_eq!(registries[0].requests, 12);
        assert_eq!(
            registries[0].last_webhook.as_deref(),
            Some("2026-01-01T10:00:00Z")
        );
        assert_eq!(
            registries[0].last_webhook_repository.as_deref(),
            Some("acme/api")
        );
    }
}
