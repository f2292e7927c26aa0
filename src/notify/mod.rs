//! Notifications: Slack messages and signed JSON webhooks when an app's update is committed,
//! a pull request is opened or updated, or an app fails (after `failures` checks in a row) and
//! recovers.
//!
//! Architecture invariant: **a pass never waits for a sink.** [`Notifier::observe`] is a plain
//! function that hands events to one bounded queue per sink (`try_send`); a full queue drops the
//! event and reports it (`dropped`). One task per sink sends them ([`deliver`]), each try bounded
//! by a timeout and the tries by a count, so a dead or hanging sink only fills its own queue.
//! Every outcome goes to an [`Observer`] (the daemon's metrics and page). Sink URLs and HMAC
//! keys are read here from `*_env`/`*_file` into [`Secret`]s and never logged.
//!
//! Files: [`event`] (what happened, derived from pass reports; pure), [`payload`] (the Slack
//! and signed JSON bodies; pure), [`deliver`] (the per-sink task and its retries).

pub mod deliver;
pub mod event;
pub mod payload;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{Config, NotifyEvent, SecretRef, SinkConfig, SinkKind};
use crate::report::AppReport;
use crate::secret::Secret;
pub use deliver::{Observer, Outcome, Retry};
pub use event::{AppInfo, Event, Tracker};

/// Why the notifications of a configuration cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notification sink `{sink}`: {reason}")]
    Sink { sink: String, reason: String },
    #[error("notifications need a running async runtime")]
    NoRuntime,
    #[error("notifications: cannot build the HTTP client: {0}")]
    Client(String),
}

/// The failure counts of every app, kept across reloads (the caller holds it).
#[derive(Debug, Clone, Default)]
pub struct State(Arc<Mutex<Tracker>>);

struct Sink {
    name: String,
    events: Vec<NotifyEvent>,
    queue: mpsc::Sender<Arc<Event>>,
}

/// The configured sinks, their delivery tasks, and which apps tell which sinks.
pub struct Notifier {
    sinks: Vec<Sink>,
    /// Per app: its repository and branch, and the indexes of its sinks.
    apps: BTreeMap<String, (AppInfo, Vec<usize>)>,
    failures: u32,
    state: State,
    observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sinks.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("Notifier").field("sinks", &names).finish()
    }
}

impl Notifier {
    /// Reads every sink's secrets and starts one delivery task per sink (on the current tokio
    /// runtime). A configuration without `notifications` gives a notifier with no sink.
    pub fn start(
        config: &Config,
        state: State,
        observer: Arc<dyn Observer>,
    ) -> Result<Notifier, NotifyError> {
        let Some(settings) = &config.global.notifications else {
            return Ok(Notifier {
                sinks: Vec::new(),
                apps: BTreeMap::new(),
                failures: 1,
                state,
                observer,
            });
        };
        let retry = Retry {
            attempts: settings.attempts,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        };
        Self::start_with(config, state, observer, retry)
    }

    /// [`Notifier::start`] with the pauses between tries given (tests shorten them).
    pub fn start_with(
        config: &Config,
        state: State,
        observer: Arc<dyn Observer>,
        retry: Retry,
    ) -> Result<Notifier, NotifyError> {
        let settings = config.global.notifications.clone().unwrap_or_default();
        let mut targets = Vec::new();
        for sink in &settings.sinks {
            targets.push(target(sink)?);
        }
        let mut notifier = Notifier {
            sinks: Vec::new(),
            apps: BTreeMap::new(),
            failures: settings.failures,
            state,
            observer,
        };
        if targets.is_empty() {
            return Ok(notifier);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NotifyError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("imagebump/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Client(e.without_url().to_string()))?;
        for (target, sink) in targets.into_iter().zip(&settings.sinks) {
            let (queue, receiver) = mpsc::channel(settings.queue.max(1) as usize);
            notifier.sinks.push(Sink {
                name: sink.name.clone(),
                events: sink.events.clone(),
                queue,
            });
            runtime.spawn(deliver::run(
                target,
                retry,
                client.clone(),
                receiver,
                Arc::clone(&notifier.observer),
            ));
        }
        for app in &config.apps {
            let sinks = notifier
                .sinks
                .iter()
                .enumerate()
                .filter(|(_, s)| settings.notify.contains(&s.name) || app.notify.contains(&s.name))
                .map(|(i, _)| i)
                .collect();
            let info = AppInfo {
                repo: crate::git::redact_url(&app.repo),
                branch: app.branch.clone(),
            };
            notifier.apps.insert(app.name.clone(), (info, sinks));
        }
        if let Ok(mut tracker) = notifier.state.0.lock() {
            tracker.retain(
                &config
                    .apps
                    .iter()
                    .map(|a| a.name.clone())
                    .collect::<Vec<_>>(),
            );
        }
        Ok(notifier)
    }

    /// The configured sink names (for metrics known from the start).
    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.name.clone()).collect()
    }

    /// Turns the reports of a check (at `at`, RFC 3339) into events and queues them for their
    /// sinks. Never waits: a full queue drops the event and reports `dropped`.
    pub fn observe(&self, reports: &[AppReport], at: &str) {
        if self.sinks.is_empty() {
            return;
        }
        let mut new_id = || hex::encode(rand::random::<[u8; 16]>());
        let mut events = Vec::new();
        {
            let mut tracker = self
                .state
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for report in reports {
                let Some((info, sinks)) = self.apps.get(&report.name) else {
                    continue;
                };
                if sinks.is_empty() {
                    continue;
                }
                for event in tracker.events(report, info, self.failures, at, &mut new_id) {
                    events.push((Arc::new(event), sinks));
                }
            }
        }
        for (event, sinks) in events {
            for &index in sinks {
                let Some(sink) = self.sinks.get(index) else {
                    continue;
                };
                if !sink.events.contains(&event.kind) {
                    continue;
                }
                if sink.queue.try_send(Arc::clone(&event)).is_err() {
                    tracing::warn!(sink = %sink.name, event = event.event, app = %event.app, "notification dropped: the sink's queue is full");
                    self.observer.outcome(
                        &sink.name,
                        event.event,
                        Outcome::Dropped,
                        Some("the queue was full (the sink is slow or down)"),
                    );
                }
            }
        }
    }
}

fn target(sink: &SinkConfig) -> Result<deliver::Target, NotifyError> {
    let error = |reason: String| NotifyError::Sink {
        sink: sink.name.clone(),
        reason,
    };
    let url = read_secret(&sink.url).map_err(error)?;
    match reqwest::Url::parse(url.expose()) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
        _ => {
            return Err(error(format!(
                "the URL in {} is not an http(s) URL",
                describe(&sink.url)
            )));
        }
    }
    let key = match &sink.secret {
        Some(reference) => {
            let key = read_secret(reference).map_err(error)?;
            if let Some(why) = crate::secret::weak_secret(key.expose()) {
                return Err(error(format!(
                    "the key in {} is too short to sign with: {why}",
                    describe(reference)
                )));
            }
            Some(key)
        }
        None if sink.kind == SinkKind::Webhook => {
            return Err(error(
                "a webhook sink needs secret_env or secret_file".into(),
            ));
        }
        None => None,
    };
    Ok(deliver::Target {
        name: sink.name.clone(),
        kind: sink.kind,
        url,
        key,
    })
}

fn describe(reference: &SecretRef) -> String {
    match reference {
        SecretRef::Env(var) => format!("environment variable `{var}`"),
        SecretRef::File(path) => format!("file {}", path.display()),
    }
}

/// The value of an environment variable or the text of a file, without surrounding
/// whitespace; an unset, unreadable or empty one is an error naming it (never its value).
fn read_secret(reference: &SecretRef) -> Result<Secret, String> {
    let value = match reference {
        SecretRef::Env(var) => {
            std::env::var(var).map_err(|_| format!("{} is not set", describe(reference)))?
        }
        SecretRef::File(path) => {
            read_file(path).map_err(|e| format!("cannot read {}: {e}", describe(reference)))?
        }
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("{} is empty", describe(reference)));
    }
    Ok(Secret::new(value))
}

fn read_file(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}
