//! The daemon's main loop: load, serve HTTP, schedule, reload, shut down.
//!
//! Invariant: a configuration is applied whole or not at all — an invalid new config is logged
//! and counted, and the running one stays. Design choice: one shared [`Shutdown`] signal (a
//! `watch` channel) stops the HTTP server (gracefully), the scheduler and the queue; then the
//! daemon waits for in-flight checks up to the grace period and returns, so a SIGTERM ends the
//! process within `shutdown_grace` plus a second.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Display;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use super::http::{HttpState, router, status_router, webhook_router};
use super::metrics::Metrics;
use super::queue::{CheckOptions, Checks};
use super::serve::{ServeLimits, serve};
use super::status::{ConfigProblem, StatusStore};
use super::webhook::Receiver;
use super::{Scope, Worker};
use crate::schedule::Schedule;
use crate::shutdown::Shutdown;

/// How the outside world steers a running daemon: reload and shutdown requests. The binary
/// wires Unix signals to it with [`Control::listen_for_signals`]; tests call the methods.
#[derive(Clone, Debug, Default)]
pub struct Control {
    shutdown: Shutdown,
    reload: Arc<Notify>,
}

impl Control {
    pub fn new() -> Control {
        Control::default()
    }

    /// The shutdown signal the daemon obeys.
    pub fn shutdown_signal(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Asks the daemon to stop: no new work, in-flight checks get the grace period.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Asks the daemon to reload its configuration (as SIGHUP does).
    pub fn reload(&self) {
        self.reload.notify_one();
    }

    /// SIGHUP → reload, SIGTERM and SIGINT → shutdown. Call inside a tokio runtime.
    pub fn listen_for_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let control = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = hangup.recv() => {
                        info!("SIGHUP: reloading the configuration");
                        control.reload();
                    }
                    Some(()) = terminate.recv() => {
                        info!("SIGTERM: shutting down");
                        control.shutdown();
                    }
                    Some(()) = interrupt.recv() => {
                        info!("SIGINT: shutting down");
                        control.shutdown();
                    }
                    else => return,
                }
            }
        });
        Ok(())
    }
}

/// Everything the daemon itself needs from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the HTTP server listens (webhooks, health, metrics, status). Not reloadable.
    pub listen: SocketAddr,
    /// The global schedule: a `Scope::All` check on each tick.
    pub schedule: Schedule,
    /// Apps with their own schedule: a `Scope::App` check on each of their ticks. (The worker
    /// should leave them out of `Scope::All`.)
    pub app_schedules: Vec<(String, Schedule)>,
    /// A sharded replica's safety net: a [`Scope::OtherShards`] check on each tick (`None`: not
    /// sharded).
    pub safety_net: Option<Schedule>,
    /// Upper bound of the random delay added to each tick (a tenth of the period at most).
    pub max_jitter: Duration,
    /// Debounce window and concurrency (`max_concurrent` is not reloadable).
    pub checks: CheckOptions,
    /// The webhook receivers.
    pub receivers: Vec<Receiver>,
    /// `/readyz` waits for the first full cycle (default true).
    pub ready_after_first_cycle: bool,
    /// Files and directories whose change (mtime, size, entries) triggers a reload.
    pub watch_paths: Vec<PathBuf>,
    /// How often `watch_paths` are looked at.
    pub watch_interval: Duration,
    /// How long in-flight checks may run after a shutdown request.
    pub shutdown_grace: Duration,
    /// Connection limits of the listener (header timeout, connection cap). Not reloadable.
    pub serve: ServeLimits,
    /// Where health, readiness, metrics and status are served; `None`: on `listen`, with the
    /// webhooks. Not reloadable.
    pub status_listen: Option<SocketAddr>,
}

impl Settings {
    /// Settings with defaults: 5 s max jitter, 250 ms debounce (capped at 5 s), 4 concurrent
    /// checks, ready after
    /// the first cycle, no watched paths (polled every 3 s once set), 8 s shutdown grace.
    pub fn new(listen: SocketAddr, schedule: Schedule) -> Settings {
        Settings {
            listen,
            schedule,
            app_schedules: Vec::new(),
            safety_net: None,
            max_jitter: Duration::from_secs(5),
            checks: CheckOptions::default(),
            receivers: Vec::new(),
            ready_after_first_cycle: true,
            watch_paths: Vec::new(),
            watch_interval: Duration::from_secs(3),
            shutdown_grace: Duration::from_secs(8),
            serve: ServeLimits::default(),
            status_listen: None,
        }
    }
}

/// What the loader returns: a ready worker and the daemon settings of one configuration, and
/// the app files that did not load (the worker runs without them, or with their last good
/// version; a reload with any of them counts as `rejected`).
pub struct Loaded<W> {
    pub worker: W,
    pub settings: Settings,
    pub problems: Vec<ConfigProblem>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(
        "cannot listen on {addr}: {source} (is the port in use? change webhook.listen or http.listen)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

async fn load<W, L, E>(loader: &Arc<L>) -> Result<Loaded<W>, String>
where
    W: Worker,
    L: Fn() -> Result<Loaded<W>, E> + Send + Sync + 'static,
    E: Display + Send + 'static,
{
    let loader = loader.clone();
    match tokio::task::spawn_blocking(move || loader().map_err(|error| error.to_string())).await {
        Ok(result) => result,
        Err(_) => Err("loading the configuration panicked".to_string()),
    }
}

/// Runs the daemon until `control` asks it to stop.
///
/// `loader` reads the configuration and builds a worker; it is called once at start (an error
/// is returned as [`DaemonError::Config`]) and again on every reload request or watched-file
/// change (an error is logged and the old configuration keeps running). It runs on a blocking
/// thread, so it may read files.
pub async fn run<W, L, E>(
    loader: L,
    metrics: Arc<Metrics>,
    control: Control,
) -> Result<(), DaemonError>
where
    W: Worker,
    L: Fn() -> Result<Loaded<W>, E> + Send + Sync + 'static,
    E: Display + Send + 'static,
{
    let loader = Arc::new(loader);
    let Loaded {
        worker,
        settings,
        problems,
    } = load(&loader).await.map_err(DaemonError::Config)?;
    let (listener, status_listener) = bind(&settings).await?;
    let shutdown = control.shutdown.clone();
    let status = Arc::new(StatusStore::new());
    report_problems(&status, &metrics, problems);
    register_known(&metrics, &worker, &settings);
    let checks = Checks::new(
        Arc::new(worker),
        settings.checks.clone(),
        metrics.clone(),
        status,
        shutdown.clone(),
    );
    let http = HttpState::new(
        &checks,
        settings.receivers.clone(),
        settings.ready_after_first_cycle,
    );
    let servers = serve_all(listener, status_listener, &http, &settings, &shutdown);
    let (settings_sender, settings_receiver) = watch::channel(settings.clone());
    let scheduler = tokio::spawn(schedule_loop(
        checks.clone(),
        settings_receiver,
        shutdown.clone(),
    ));
    let running = Running {
        checks,
        http,
        metrics,
        settings: settings_sender,
    };

    let mut current = settings;
    let mut seen = fingerprint(current.watch_paths.clone()).await;
    loop {
        let reason = tokio::select! {
            () = shutdown.wait() => break,
            () = control.reload.notified() => "reload requested",
            () = tokio::time::sleep(current.watch_interval) => {
                if current.watch_paths.is_empty() {
                    continue;
                }
                let now = fingerprint(current.watch_paths.clone()).await;
                if now == seen {
                    continue;
                }
                seen = now;
                "configuration files changed"
            }
        };
        info!(reason, "reloading the configuration");
        match load(&loader).await {
            Ok(loaded) => {
                current = running.apply(loaded, &current);
                seen = fingerprint(current.watch_paths.clone()).await;
            }
            Err(message) => {
                error!(error = %message, "new configuration rejected; the previous one keeps running");
                running.metrics.reload("rejected");
            }
        }
    }

    info!(
        grace_secs = current.shutdown_grace.as_secs(),
        "shutting down: no new checks"
    );
    if !running.checks.drain(current.shutdown_grace).await {
        warn!("checks still running after the grace period are abandoned");
    }
    let _ = scheduler.await;
    for server in servers {
        let _ = server.await;
    }
    info!("stopped");
    Ok(())
}

/// Bind the webhook listener and, with `http.listen`, the operator listener.
async fn bind(settings: &Settings) -> Result<(TcpListener, Option<TcpListener>), DaemonError> {
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Bind { addr, source })
    };
    let listener = bind(settings.listen).await?;
    let status_listener = match settings.status_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    Ok((listener, status_listener))
}

/// Serve the webhooks on `listener` and the operator routes on `status_listener` (or on
/// `listener` too when there is none) until shutdown.
fn serve_all(
    listener: TcpListener,
    status_listener: Option<TcpListener>,
    http: &HttpState,
    settings: &Settings,
    shutdown: &Shutdown,
) -> Vec<tokio::task::JoinHandle<()>> {
    let spawn = |listener, app| {
        tokio::spawn(serve(
            listener,
            app,
            settings.serve,
            shutdown.clone(),
            Duration::from_secs(1),
        ))
    };
    match (status_listener, settings.status_listen) {
        (Some(status_listener), Some(status_listen)) => {
            info!(
                listen = %settings.listen,
                %status_listen,
                "imagebump daemon started: webhooks on listen, health, metrics and status on status_listen"
            );
            vec![
                spawn(listener, webhook_router(http.clone())),
                spawn(status_listener, status_router(http.clone())),
            ]
        }
        _ => {
            info!(
                listen = %settings.listen,
                "imagebump daemon started (health, metrics and status share the webhook port; set http.listen to serve them apart)"
            );
            vec![spawn(listener, router(http.clone()))]
        }
    }
}

/// What a reload replaces in a running daemon.
struct Running<W: Worker> {
    checks: Arc<Checks<W>>,
    http: HttpState,
    metrics: Arc<Metrics>,
    settings: watch::Sender<Settings>,
}

impl<W: Worker> Running<W> {
    /// Apply a configuration that loaded (its broken app files are in `problems`); returns the
    /// settings now in force.
    fn apply(&self, loaded: Loaded<W>, current: &Settings) -> Settings {
        let Loaded {
            worker,
            settings,
            problems,
        } = loaded;
        if settings.status_listen != current.status_listen {
            warn!(
                "a new http.listen needs a restart; health, metrics and status stay where they are"
            );
        }
        if settings.listen != current.listen {
            warn!(
                listen = %current.listen,
                wanted = %settings.listen,
                "a new listen address needs a restart; still listening on the old one"
            );
        }
        register_known(&self.metrics, &worker, &settings);
        self.checks
            .replace_worker(Arc::new(worker), &settings.checks);
        self.http
            .reconfigure(settings.receivers.clone(), settings.ready_after_first_cycle);
        self.settings.send_replace(settings.clone());
        // The outcome is counted last: whoever sees the reload counted finds the status, the
        // problem count and the log lines already saying what it did.
        let broken_files = problems.len();
        report_problems(self.checks.status(), &self.metrics, problems);
        if broken_files == 0 {
            info!("new configuration applied");
            self.metrics.reload("ok");
        } else {
            // Applied for the files that load; the broken ones keep their last good version
            // (or stay off) and are shown in the status until they are fixed.
            error!(
                broken_files,
                "new configuration applied without the app files that do not load"
            );
            self.metrics.reload("rejected");
        }
        self.checks.request_now(Scope::All);
        settings
    }
}

/// Creates the metric series of the apps, registries and receivers of this configuration.
fn register_known<W: Worker>(metrics: &Metrics, worker: &W, settings: &Settings) {
    let mut registries: Vec<String> = worker.repositories().into_iter().map(|(r, _)| r).collect();
    registries.sort();
    registries.dedup();
    let receivers: Vec<&'static str> = settings.receivers.iter().map(|r| r.kind.as_str()).collect();
    metrics.known(&worker.apps(), &registries, &receivers);
    metrics.shard(worker.shard().as_ref());
}

/// Logs each app file that does not load and shows it in the status and metrics.
fn report_problems(status: &StatusStore, metrics: &Metrics, problems: Vec<ConfigProblem>) {
    for problem in &problems {
        match &problem.app {
            Some(app) => error!(
                file = %problem.file,
                app = %app,
                error = %problem.error,
                "app file does not load; its last good version keeps running"
            ),
            None => error!(
                file = %problem.file,
                error = %problem.error,
                "app file does not load; it is not running"
            ),
        }
    }
    metrics.config_problems(problems.len());
    status.set_config_problems(problems, OffsetDateTime::now_utc());
}

/// One schedule the loop keeps: what to check and when it last fired.
struct Planned {
    scope: Scope,
    schedule: Schedule,
    last_fired: Option<OffsetDateTime>,
    jitter: Duration,
}

fn plan(settings: &Settings, fired: Option<OffsetDateTime>) -> Vec<Planned> {
    let mut planned = vec![Planned {
        scope: Scope::All,
        schedule: settings.schedule.clone(),
        last_fired: fired,
        jitter: Duration::ZERO,
    }];
    if let Some(schedule) = &settings.safety_net {
        planned.push(Planned {
            scope: Scope::OtherShards,
            schedule: schedule.clone(),
            // Never at start: the owners poll their apps then; this is for the dead ones.
            last_fired: Some(fired.unwrap_or_else(OffsetDateTime::now_utc)),
            jitter: Duration::ZERO,
        });
    }
    for (app, schedule) in &settings.app_schedules {
        planned.push(Planned {
            scope: Scope::App(app.clone()),
            schedule: schedule.clone(),
            last_fired: fired,
            jitter: Duration::ZERO,
        });
    }
    planned
}

fn random_jitter(schedule: &Schedule, cap: Duration) -> Duration {
    let max = schedule.max_jitter(cap);
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::random_range(0..=max_ms))
}

/// Fires `request_now` for each planned scope when due. Overlap is the queue's business: a
/// tick while the same scope still runs is coalesced into one follow-up run.
async fn schedule_loop<W: Worker>(
    checks: Arc<Checks<W>>,
    mut settings: watch::Receiver<Settings>,
    shutdown: Shutdown,
) {
    let mut current = settings.borrow_and_update().clone();
    let mut planned = plan(&current, None);
    loop {
        let now = OffsetDateTime::now_utc();
        let Some((index, delay)) = planned
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let delay = entry.schedule.delay_until_next(now, entry.last_fired);
                let jitter = if entry.last_fired.is_some() {
                    entry.jitter
                } else {
                    Duration::ZERO
                };
                (index, delay + jitter)
            })
            .min_by_key(|(_, delay)| *delay)
        else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {
                let entry = &mut planned[index];
                entry.last_fired = Some(OffsetDateTime::now_utc());
                entry.jitter = random_jitter(&entry.schedule, current.max_jitter);
                tracing::debug!(scope = %entry.scope, "schedule tick");
                checks.request_now(entry.scope.clone());
            }
            changed = settings.changed() => {
                if changed.is_err() {
                    return;
                }
                current = settings.borrow_and_update().clone();
                // The reload itself queues a full check; count the new schedule from now.
                planned = plan(&current, Some(OffsetDateTime::now_utc()));
            }
            () = shutdown.wait() => return,
        }
    }
}

/// A hash of the watched paths' metadata (and, for directories, their entries, 3 levels deep).
async fn fingerprint(paths: Vec<PathBuf>) -> u64 {
    tokio::task::spawn_blocking(move || {
        let mut hasher = DefaultHasher::new();
        for path in &paths {
            visit(path, 3, &mut hasher);
        }
        hasher.finish()
    })
    .await
    .unwrap_or(0)
}

fn visit(path: &Path, depth: u32, hasher: &mut DefaultHasher) {
    path.hash(hasher);
    let Ok(meta) = std::fs::metadata(path) else {
        "missing".hash(hasher);
        return;
    };
    meta.len().hash(hasher);
    meta.modified().ok().hash(hasher);
    if meta.is_dir() && depth > 0 {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        let mut children: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        children.sort();
        for child in children {
            visit(&child, depth - 1, hasher);
        }
    }
}
