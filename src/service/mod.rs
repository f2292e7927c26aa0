//! The composition root: the one place that wires the engine, the daemon and the settings
//! together for `imagebump run`. The engine knows nothing of the daemon and the daemon nothing
//! of the engine; this module adapts one to the other ([`worker::EngineWorker`]) and turns the
//! configuration into the daemon's settings, reading every secret through
//! [`crate::engine::settings`].
//!
//! Invariant: a configuration is turned into a worker and settings whole, or refused with a
//! message; a broken app file keeps its last good version running ([`LastGood`]).

pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::read::Diagnostic;
use crate::config::{self, App, Config};
use crate::daemon::{self, ConfigProblem, Loaded, Metrics, Receiver, Settings};
use crate::engine::{Engine, check, settings};
use crate::notify;
use worker::EngineWorker;

/// Where the HTTP server listens when the config has no `webhook:` section.
const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// `imagebump run --shard i/n`: the apps this replica polls, and how often it checks the
/// others (default: 5 times the global interval; 1 h with a cron schedule).
#[derive(Clone, Copy, Debug)]
pub struct Sharding {
    pub shard: crate::shard::Shard,
    pub safety_net: Option<Duration>,
}

/// The safety net's default with a cron `schedule` (no single interval to multiply).
const CRON_SAFETY_NET: Duration = Duration::from_secs(3600);

impl Sharding {
    /// The safety-net interval under the global `schedule`.
    fn safety_net(&self, schedule: &daemon::Schedule) -> Duration {
        self.safety_net.unwrap_or(match schedule {
            daemon::Schedule::Interval(interval) => *interval * 5,
            daemon::Schedule::Cron(_) => CRON_SAFETY_NET,
        })
    }
}

/// The last version of each app file that loaded, by file: what keeps running while a later
/// edit of that file does not load. (It also keeps the notifications' count of each app's
/// failed checks in a row, which a reload must not reset.)
#[derive(Default)]
pub struct LastGood {
    apps: BTreeMap<PathBuf, App>,
    notifications: notify::State,
    /// The running engine's history cache: a reload keeps its records of the targets still
    /// configured (and drops the others).
    history: Option<Arc<crate::history::History>>,
}

/// The notification outcomes, counted in the metrics (and shown on the status page).
struct NotificationMetrics(Arc<Metrics>);

impl notify::Observer for NotificationMetrics {
    fn outcome(&self, sink: &str, _event: &str, outcome: notify::Outcome, detail: Option<&str>) {
        self.0.notification(sink, outcome.as_str(), detail);
    }
}

impl LastGood {
    /// Puts the last good version of every broken app file into `config` (unless its name is
    /// taken by a file that loads now), remembers the files that load now, and returns the
    /// problems by file, each naming the app kept running, if any.
    pub fn apply(&mut self, config: &mut Config, problems: &[Diagnostic]) -> Vec<ConfigProblem> {
        let mut by_file: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for problem in problems {
            by_file
                .entry(problem.file.clone())
                .or_default()
                .push(problem.to_string());
        }
        let loads_now: BTreeSet<PathBuf> = config.apps.iter().map(|a| a.file.clone()).collect();
        let mut kept = BTreeMap::new();
        for file in by_file.keys() {
            if loads_now.contains(file) {
                continue;
            }
            if let Some(app) = self.apps.get(file)
                && !config.apps.iter().any(|a| a.name == app.name)
            {
                kept.insert(file.clone(), app.clone());
                config.apps.push(app.clone());
            }
        }
        config.apps.sort_by(|a, b| a.name.cmp(&b.name));
        // Files that load now replace their last good version; broken ones keep theirs; files
        // that are gone are forgotten.
        self.apps = config
            .apps
            .iter()
            .map(|app| (app.file.clone(), app.clone()))
            .collect();
        by_file
            .into_iter()
            .map(|(file, errors)| ConfigProblem {
                app: kept.get(&file).map(|app| app.name.clone()),
                file: file.display().to_string(),
                error: errors.join("\n"),
                since: None,
            })
            .collect()
    }
}

/// Read the configuration and build the worker and the daemon settings. A broken app file
/// keeps its last good version running (`last_good`), or is left out when it never loaded; both
/// are reported. A broken global file or a missing secret rejects the configuration.
pub fn load(
    path: &Path,
    ready_at_start: bool,
    metrics: &Arc<Metrics>,
    shutdown: &daemon::Shutdown,
    last_good: &mut LastGood,
    sharding: Option<Sharding>,
) -> Result<Loaded<EngineWorker>, String> {
    let mut loaded = config::load(path)
        .and_then(|loaded| {
            let mut found = check::templates(&loaded.refs.templates);
            found.extend(check::missing_env(&loaded.refs.env));
            loaded.with_problems(found)
        })
        .map_err(|e| e.to_string())?;
    let problems = last_good.apply(&mut loaded.config, &loaded.problems);
    let mut settings = daemon_settings(&loaded.config, ready_at_start)?;
    let safety_net = sharding.map(|s| s.safety_net(&settings.schedule));
    if let (Some(sharding), Some(every)) = (sharding, safety_net) {
        // Apps with a schedule of their own are polled on it by their owner only; the safety
        // net checks them elsewhere.
        settings
            .app_schedules
            .retain(|(app, _)| sharding.shard.owns(app));
        settings.safety_net = Some(daemon::Schedule::Interval(every));
    }
    let observer = Arc::new(NotificationMetrics(Arc::clone(metrics)));
    let notifier =
        notify::Notifier::start(&loaded.config, last_good.notifications.clone(), observer)
            .map_err(|e| e.to_string())?;
    let mut engine = Engine::new(loaded.config)
        .map_err(|e| e.to_string())?
        .with_shutdown(shutdown.clone());
    if let Some(previous) = &last_good.history {
        engine = engine.with_history_from(previous);
    }
    last_good.history = Some(engine.history());
    // Only once this configuration is taken: a rejected reload leaves the page's sinks alone.
    metrics.notification_sinks(
        &notifier.sink_names(),
        &notify::Outcome::ALL.map(notify::Outcome::as_str),
    );
    let mut worker = EngineWorker::new(engine, Arc::clone(metrics)).with_notifier(notifier);
    if let (Some(sharding), Some(every)) = (sharding, safety_net) {
        worker = worker.with_shard(sharding.shard, humantime(every));
    }
    Ok(Loaded {
        worker,
        settings,
        problems,
    })
}

/// `90s` → `1m30s`: a duration as the config writes one.
fn humantime(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if m > 0 {
        text.push_str(&format!("{m}m"));
    }
    if s > 0 || text.is_empty() {
        text.push_str(&format!("{s}s"));
    }
    text
}

fn daemon_settings(config: &Config, ready_at_start: bool) -> Result<Settings, String> {
    let webhook = config.global.webhook.as_ref();
    let listen = match webhook {
        Some(w) => w.listen,
        None => SocketAddr::from_str(DEFAULT_LISTEN).map_err(|e| e.to_string())?,
    };
    let mut settings = Settings::new(listen, config.global.schedule.clone());
    settings.status_listen = config.global.http_listen;
    if settings.status_listen == Some(listen) {
        return Err(format!(
            "http.listen and webhook.listen are both {listen}: give the status listener its own port"
        ));
    }
    for app in &config.apps {
        if let Some(s) = &app.schedule {
            settings.app_schedules.push((app.name.clone(), s.clone()));
        }
    }
    for r in webhook.map(|w| w.receivers.as_slice()).unwrap_or_default() {
        settings.receivers.push(Receiver {
            kind: r.kind,
            secret: settings::webhook_secret(r).map_err(|e| e.to_string())?,
            registry: r.registry.clone(),
        });
    }
    settings.ready_after_first_cycle = !ready_at_start;
    // A lone push is checked at once; the pushes of a burst still going on make one follow-up
    // after 100 ms of quiet (the window slides while events keep coming, capped at debounce_max).
    settings.checks.debounce = webhook
        .and_then(|w| w.debounce)
        .unwrap_or(Duration::from_millis(100));
    if let Some(max) = webhook.and_then(|w| w.debounce_max) {
        settings.checks.debounce_max = max;
    }
    if let Some(n) = config.global.max_concurrent_checks {
        settings.checks.max_concurrent = n as usize;
    }
    if let Some(retry) = webhook.map(|w| w.retry) {
        settings.checks.retry = daemon::RetryOptions {
            max_attempts: retry.max_attempts,
            initial: retry.initial,
            max: retry.max,
        };
    }
    // A failed webhook check's retries never wait longer than half the poll interval (the
    // poll is the safety net after them).
    if let daemon::Schedule::Interval(interval) = &settings.schedule {
        settings.checks.retry.max = settings.checks.retry.max.min(*interval / 2);
    }
    settings.watch_paths = vec![config.file.clone(), config.global.apps_dir.clone()];
    Ok(settings)
}
