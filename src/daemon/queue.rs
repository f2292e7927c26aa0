//! The check queue: debounce, non-overlap and bounded concurrency for every check.
//!
//! Invariant: at most one check per [`Scope`] runs at a time, at most `max_concurrent` checks run
//! at all, and no check starts after shutdown began. Design choice: a per-scope state machine
//! (absent → pending → running → absent), where a request for a pending scope is absorbed and a
//! request for a running scope marks it to run once more after it ends. Scopes are independent,
//! so a webhook check of one repository starts while a long poll cycle (`Scope::All`) runs.
//!
//! Debounce has a leading edge: the first request for an idle scope starts its check at once
//! (a lone push, or a push right after the previous one's commit, is acted on without waiting);
//! requests that arrive before that check starts are covered by it, and a single request that
//! arrives while it runs starts the next check as soon as it ends (unless every tag it announced
//! was listed by that check). A request that announces a tag the daemon does not know yet for
//! its repository (not listed by the repository's last check, [`Worker::listed`], nor deployed,
//! chosen or written by the last check that reported it), the scope being idle, is news: it is
//! checked at once however soon it follows the previous request (a CI job pushing each tag as
//! soon as it sees the previous commit, with a check faster than half a debounce). A request
//! whose announced tags are all known (a burst's notifications delivered after the check that
//! listed them, a repeated notification, a re-pushed tag) waits until no request came for
//! `debounce`; so does a request without a tag less than half of `debounce` after the previous
//! one, the scope being idle (timing is all there is to go by). Several requests during
//! a run (a burst the registry is still delivering) make one more check, which waits for a
//! sliding quiet period of ten times `debounce`: it starts once no request for its scope came
//! for that long, or `debounce_max` after it began waiting, whichever is sooner. A CI job pushing
//! 100 tags one after the other therefore makes one check and at most one follow-up, and a
//! registry that never stops sending still gets checked every `debounce_max`; new tags pushed
//! one by one, each after the previous check ended, are checked one by one (nothing tells them
//! from a job waiting for each commit). A leading check that wrote nothing is run once more a
//! debounce later, unless it listed every tag its requests announced: a registry may announce a
//! tag before it can be listed, and a push must not wait for the next poll. An announced tag is only a hint: it decides when to check, never what to write.
//!
//! Retries: a check of a repository or an app ([`super::retry::retried_scope`]; polls are not
//! retried) whose report failed only in ways [`super::retry::report_retryable`] deems
//! transient, with no further check queued for its scope, is requested again after a backoff
//! ([`RetryOptions`]; never before the time its errors say a registry or forge will be asked
//! again, see [`super::retry`]), at most `max_attempts` times;
//! the retry is an ordinary request, so the invariants above hold for it too, and none is
//! scheduled or fires after shutdown began. A pending retry is cancelled by a new request for
//! its scope (whose check restarts the count), by a successful or non-retryable check of it,
//! and by the end of a full cycle that checked every app the retried check failed on (not an
//! app's retry, nor a repository's whose failing apps the cycle left out: an app with its own
//! schedule, another shard's app). Each step is logged and counted
//! (`imagebump_check_retries_total{outcome}`); when attempts run out, the next poll is the
//! safety net.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Semaphore;
// tokio's clock, not std's: the debounce follows tokio's paused clock in tests.
use tokio::time::Instant;
use tracing::{info, warn};

use super::metrics::Metrics;
pub use super::retry::RetryOptions;
use super::status::StatusStore;
use super::{CycleReport, Scope, Worker};
use crate::shutdown::Shutdown;

/// Debounce periods of quiet a burst's follow-up check waits for.
const BURST_QUIET: u32 = 10;

/// Announced tags kept per pending or running check; more make its requests unjudgeable.
const MAX_HINTS: usize = 256;

/// How checks are queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Half of it is the gap that tells a new push (one that announces no unknown tag) from the
    /// tail of a burst; a burst's follow-up
    /// check waits until no request for its scope came for ten times this long.
    pub debounce: Duration,
    /// ... but never longer than this after it began waiting.
    pub debounce_max: Duration,
    /// Checks running at once, all scopes together (at least 1).
    pub max_concurrent: usize,
    /// How failed webhook checks are retried.
    pub retry: RetryOptions,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            debounce: Duration::from_millis(250),
            debounce_max: Duration::from_secs(5),
            max_concurrent: 4,
            retry: RetryOptions::default(),
        }
    }
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    /// A new check was queued.
    Scheduled,
    /// Absorbed by a check of the same scope that is pending or running (it runs once more).
    Coalesced,
    /// Shutdown has begun; nothing was queued.
    Refused,
}

#[derive(Debug)]
enum State {
    /// Waiting for a free slot or for the quiet period; `last` is the latest request, `hints`
    /// what the requests it covers announced.
    Pending { last: Instant, hints: Hints },
    /// Running; `again`: how many requests came meanwhile, `hints`: what they announced.
    Running { again: u32, hints: Hints },
}

/// The tags a check's requests announced. `blind`: some announced none (a schedule tick, a
/// payload without a tag) or there were too many to keep, so they cannot be judged covered.
#[derive(Debug, Default)]
struct Hints {
    tags: BTreeSet<String>,
    blind: bool,
}

impl Hints {
    fn of(tags: &[String]) -> Hints {
        let mut hints = Hints::default();
        hints.add(tags);
        hints
    }

    fn add(&mut self, tags: &[String]) {
        if tags.is_empty() || self.tags.len() + tags.len() > MAX_HINTS {
            self.blind = true;
            self.tags.clear();
        } else if !self.blind {
            self.tags.extend(tags.iter().cloned());
        }
    }
}

/// The queue of checks in front of a [`Worker`]. Create it with [`Checks::new`].
pub struct Checks<W: Worker> {
    me: Weak<Checks<W>>,
    worker: RwLock<Arc<W>>,
    debounce: RwLock<(Duration, Duration)>,
    semaphore: Arc<Semaphore>,
    max_concurrent: u32,
    states: Mutex<HashMap<Scope, State>>,
    /// When each scope was last requested: a request less than half the debounce after the
    /// previous one is the tail of a burst the registry is still delivering; a request later
    /// than that is a new push.
    last_request: Mutex<HashMap<Scope, Instant>>,
    /// Per image repository (`registry/repository`), the tags the last report that covered it
    /// found deployed, chose or wrote: an announced tag among them is no news.
    known: Mutex<HashMap<String, BTreeSet<String>>>,
    metrics: Arc<Metrics>,
    status: Arc<StatusStore>,
    shutdown: Shutdown,
    full_cycles: AtomicU64,
    retry: RwLock<RetryOptions>,
    /// The retry state of each scope whose last check failed transiently.
    retries: Mutex<HashMap<Scope, Retry>>,
    retry_generation: AtomicU64,
}

/// A scope's retry: `attempt` retries made or scheduled; `due` while waiting to fire (`None`
/// once its check was requested); `generation` tells a stale timer from the current one;
/// `error` what the last check of the scope failed with.
#[derive(Debug)]
struct Retry {
    attempt: u32,
    due: Option<Instant>,
    generation: u64,
    error: Option<String>,
    /// The apps the check it retries failed on.
    failing: Vec<String>,
}

/// What one run of a check found.
struct Ran {
    wrote: bool,
    /// Some app failed.
    failed: bool,
    /// ... and every failure may go away by itself.
    retryable: bool,
    /// The longest wait its errors asked for ([`super::retry::report_wait`]).
    wait: Option<Duration>,
    /// The first failing app's error (`app: error`), and how many more apps failed.
    error: Option<String>,
    /// Every app the check reported on, and those of them that failed.
    apps: Vec<String>,
    failing: Vec<String>,
}

/// The object-safe view of [`Checks`] used by the HTTP layer (the router is not generic).
pub trait CheckQueue: Send + Sync {
    /// Queues a debounced check of `scope` for a webhook that announced `tags` (hints).
    fn request(&self, scope: Scope, tags: &[String]) -> Requested;
    /// Every `(registry, repository)` the current worker's apps use.
    fn repositories(&self) -> Vec<(String, String)>;
    /// How many full cycles (`Scope::All`) have ended.
    fn full_cycles(&self) -> u64;
    /// Whether shutdown has begun.
    fn shutting_down(&self) -> bool;
}

impl<W: Worker> Checks<W> {
    /// A queue in front of `worker`. `metrics` and `status` receive every report.
    pub fn new(
        worker: Arc<W>,
        options: CheckOptions,
        metrics: Arc<Metrics>,
        status: Arc<StatusStore>,
        shutdown: Shutdown,
    ) -> Arc<Checks<W>> {
        let max_concurrent = u32::try_from(options.max_concurrent.max(1)).unwrap_or(u32::MAX / 2);
        status.set_apps(&worker.apps());
        status.set_details(worker.app_details());
        status.set_shard(worker.shard());
        Arc::new_cyclic(|me| Checks {
            me: me.clone(),
            worker: RwLock::new(worker),
            debounce: RwLock::new((options.debounce, options.debounce_max)),
            semaphore: Arc::new(Semaphore::new(max_concurrent as usize)),
            max_concurrent,
            states: Mutex::new(HashMap::new()),
            last_request: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            metrics,
            status,
            shutdown,
            full_cycles: AtomicU64::new(0),
            retry: RwLock::new(options.retry),
            retries: Mutex::new(HashMap::new()),
            retry_generation: AtomicU64::new(0),
        })
    }

    /// The current worker.
    pub fn worker(&self) -> Arc<W> {
        self.worker
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the worker (after a reload). Running checks finish with the old one.
    pub fn replace_worker(&self, worker: Arc<W>, options: &CheckOptions) {
        let repositories: BTreeSet<String> = worker
            .repositories()
            .into_iter()
            .map(|(registry, repository)| format!("{registry}/{repository}"))
            .collect();
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|name, _| repositories.contains(name));
        self.status.set_apps(&worker.apps());
        self.status.set_details(worker.app_details());
        self.status.set_shard(worker.shard());
        *self
            .worker
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = worker;
        *self
            .debounce
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            (options.debounce, options.debounce_max);
        *self
            .retry
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = options.retry.clone();
    }

    /// The metrics this queue records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The status store this queue records into.
    pub fn status(&self) -> &Arc<StatusStore> {
        &self.status
    }

    fn debounce(&self) -> (Duration, Duration) {
        *self
            .debounce
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<Scope, State>> {
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a check of `scope` (webhooks): at once when the scope is idle and its previous
    /// request is not recent, otherwise after the debounce quiet period.
    pub fn request_debounced(&self, scope: Scope) -> Requested {
        self.enqueue(scope, true, &[])
    }

    /// Queues a check of `scope` for a webhook that announced `tags` (hints, possibly none): as
    /// [`Checks::request_debounced`], except that a tag the daemon does not know yet for the
    /// repository is news, checked at once when the scope is idle even right after the
    /// previous request.
    pub fn request_announced(&self, scope: Scope, tags: &[String]) -> Requested {
        self.enqueue(scope, true, tags)
    }

    /// Queues a check of `scope` to start as soon as a slot is free (schedule ticks); if one is
    /// already pending or running, it is coalesced into one follow-up run.
    pub fn request_now(&self, scope: Scope) -> Requested {
        self.enqueue(scope, false, &[])
    }

    fn enqueue(&self, scope: Scope, debounced: bool, tags: &[String]) -> Requested {
        if self.shutdown.is_triggered() {
            return Requested::Refused;
        }
        // A new request covers a pending retry; its check restarts the count.
        self.cancel_retry(&scope, "a new request");
        self.enqueue_inner(scope, debounced, tags)
    }

    fn enqueue_inner(&self, scope: Scope, debounced: bool, tags: &[String]) -> Requested {
        if self.shutdown.is_triggered() {
            return Requested::Refused;
        }
        let Some(me) = self.me.upgrade() else {
            return Requested::Refused;
        };
        let recent = debounced && self.note_request(&scope);
        // News is checked at once; announced tags that are all known (a late or repeated
        // notification, a re-pushed tag) wait for quiet; without tags, the gap decides.
        let burst_tail = debounced
            && if tags.is_empty() {
                recent
            } else {
                !self.news(&scope, tags)
            };
        let mut states = self.states();
        match states.get_mut(&scope) {
            Some(State::Pending { last, hints }) => {
                *last = Instant::now();
                hints.add(tags);
                self.metrics.check(scope.kind(), "coalesced", None);
                Requested::Coalesced
            }
            Some(State::Running { again, hints }) => {
                *again = again.saturating_add(1);
                hints.add(tags);
                self.metrics.check(scope.kind(), "coalesced", None);
                Requested::Coalesced
            }
            None => {
                states.insert(
                    scope.clone(),
                    State::Pending {
                        last: Instant::now(),
                        hints: Hints::of(tags),
                    },
                );
                drop(states);
                tokio::spawn(me.drive(scope, burst_tail));
                Requested::Scheduled
            }
        }
    }

    fn forget(&self, scope: &Scope) {
        self.states().remove(scope);
    }

    /// Runs the pending check of `scope`, and again while requests arrived during the run.
    /// `quiet_first`: the first run waits for the quiet period too (a burst's tail).
    async fn drive(self: Arc<Self>, scope: Scope, quiet_first: bool) {
        // How many debounce periods of quiet to wait before the next run (none: at once).
        let mut quiet = quiet_first.then_some(1);
        // A webhook check started at once: it may have listed the tags before the registry
        // stored the pushed one.
        let mut leading = !quiet_first && matches!(scope, Scope::Repository { .. });
        loop {
            if let Some(periods) = quiet
                && !self.wait_until_quiet(&scope, periods).await
            {
                return self.forget(&scope);
            }
            let permit = tokio::select! {
                permit = self.semaphore.clone().acquire_owned() => permit,
                () = self.shutdown.wait() => return self.forget(&scope),
            };
            let Ok(permit) = permit else {
                return self.forget(&scope);
            };
            if self.shutdown.is_triggered() {
                return self.forget(&scope);
            }
            let covering = {
                let mut states = self.states();
                let covering = match states.remove(&scope) {
                    Some(State::Pending { hints, .. }) => hints,
                    _ => Hints::of(&[]),
                };
                states.insert(
                    scope.clone(),
                    State::Running {
                        again: 0,
                        hints: Hints::default(),
                    },
                );
                covering
            };
            let ran = self.run(&scope).await;
            let wrote = ran.wrote;
            drop(permit);
            // A leading check that wrote nothing is confirmed once, a debounce later: the
            // registry may notify before the tag it announces can be listed (the distribution
            // registry queues the event before it writes the tag), and a push must never be
            // lost until the next poll. Not when it listed every tag its requests announced.
            // Not when it failed transiently either, with retries on: the retry (below, in
            // `after`) covers it.
            let retried = ran.retryable && self.retry_options().max_attempts > 0;
            let confirm = std::mem::take(&mut leading)
                && !wrote
                && !retried
                && !self.covered(&scope, &covering);
            let repository = matches!(scope, Scope::Repository { .. });
            let next = {
                let mut states = self.states();
                let (again, hints) = match states.remove(&scope) {
                    Some(State::Running { again, hints }) => (again, hints),
                    None | Some(State::Pending { .. }) => (0, Hints::default()),
                };
                // Requests during the run that announced only tags it listed (a burst's
                // notifications delivered while the check that saw them ran) need no check.
                let again = if again > 0 && self.covered(&scope, &hints) {
                    0
                } else {
                    again
                };
                let (next, hints) = match again {
                    _ if self.shutdown.is_triggered() => (None, hints),
                    0 if confirm => (Some(Some(1)), covering),
                    0 => (None, hints),
                    // One request came while it ran: a push right after the one just checked
                    // (a CI job that pushes once the previous commit landed), checked at once
                    // and confirmed like any leading check. A schedule tick's follow-up, too,
                    // runs as soon as a slot is free.
                    1 => {
                        leading = repository;
                        (Some(None), hints)
                    }
                    // Several: a webhook burst still going on waits for quiet.
                    _ => (Some(repository.then_some(BURST_QUIET)), hints),
                };
                if next.is_some() {
                    states.insert(
                        scope.clone(),
                        State::Pending {
                            last: Instant::now(),
                            hints,
                        },
                    );
                }
                next
            };
            match next {
                Some(periods) => quiet = periods,
                None => return self.after(&scope, &ran),
            }
        }
    }

    /// Records a request for `scope`; true when the previous one came less than half the
    /// debounce ago (the request belongs to a burst still going on).
    fn note_request(&self, scope: &Scope) -> bool {
        let (quiet, _) = self.debounce();
        let now = Instant::now();
        self.last_request
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(scope.clone(), now)
            .is_some_and(|previous| now.duration_since(previous) < quiet / 2)
    }

    /// Whether `tags`, announced for `scope`, hold one the daemon does not know yet for its
    /// repository: neither listed by its last check nor deployed, chosen or written by the last
    /// report of it (always false for a scope that is not a repository, or no tags).
    fn news(&self, scope: &Scope, tags: &[String]) -> bool {
        let Scope::Repository {
            registry,
            repository,
        } = scope
        else {
            return false;
        };
        if tags.is_empty() {
            return false;
        }
        let listed = self.worker().listed(registry, repository);
        let known = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = known.get(&format!("{registry}/{repository}"));
        tags.iter().any(|tag| {
            known.is_none_or(|known| !known.contains(tag))
                && listed.as_ref().is_none_or(|listed| !listed.contains(tag))
        })
    }

    /// Whether every request `hints` describes announced a tag, and none is news (the check
    /// that just ran listed them all, or they are what it deployed, chose or wrote).
    fn covered(&self, scope: &Scope, hints: &Hints) -> bool {
        let tags: Vec<String> = hints.tags.iter().cloned().collect();
        matches!(scope, Scope::Repository { .. })
            && !hints.blind
            && !tags.is_empty()
            && !self.news(scope, &tags)
    }

    /// Keeps, for each image repository `report` covers, the tags it found deployed, chose or
    /// wrote (replacing what an earlier report said of that repository).
    fn learn(&self, report: &CycleReport) {
        let mut learned: HashMap<String, BTreeSet<String>> = HashMap::new();
        for app in &report.apps {
            for image in &app.images {
                let tags = learned.entry(image.image.clone()).or_default();
                tags.extend(image.deployed.iter().cloned());
                tags.extend(image.candidate.iter().cloned());
                tags.extend(app.deployed_after(image));
            }
        }
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(learned);
    }

    /// Sleeps until no request for `scope` came for `periods` debounce periods (a burst's
    /// follow-up waits [`BURST_QUIET`]: robust to a registry that delivers a burst's
    /// notifications with gaps), or `debounce_max` after the wait began. Returns false if
    /// shutdown began meanwhile.
    async fn wait_until_quiet(&self, scope: &Scope, periods: u32) -> bool {
        let first = Instant::now();
        let (quiet, cap) = self.debounce();
        let quiet = (quiet * periods).min(cap.max(quiet));
        loop {
            let last = match self.states().get(scope) {
                Some(State::Pending { last, .. }) => *last,
                _ => first,
            };
            let due = (last + quiet).min(first + cap.max(quiet));
            if Instant::now() >= due {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = self.shutdown.wait() => return false,
            }
        }
    }

    /// Calls the worker and records the report; whether the check wrote an update. The check
    /// runs in its own task, so a panic in the worker is reported as a failed check instead of
    /// leaving the scope stuck "running".
    async fn run(&self, scope: &Scope) -> Ran {
        let worker = self.worker();
        let started = Instant::now();
        tracing::debug!(%scope, "check started");
        let task = {
            let scope = scope.clone();
            let worker = Arc::clone(&worker);
            tokio::spawn(async move { worker.check(scope).await })
        };
        let result = task.await;
        self.status.set_registries(worker.registries());
        match result {
            Ok(report) => {
                self.record(scope, &report, started.elapsed());
                Ran {
                    wrote: report
                        .apps
                        .iter()
                        .any(|app| app.images.iter().any(|i| app.written(&i.name).is_some())),
                    failed: report.apps.iter().any(|app| !app.errors.is_empty()),
                    retryable: super::retry::report_retryable(&report),
                    wait: super::retry::report_wait(&report),
                    error: first_error(&report),
                    apps: report.apps.iter().map(|app| app.name.clone()).collect(),
                    failing: report
                        .apps
                        .iter()
                        .filter(|app| !app.errors.is_empty())
                        .map(|app| app.name.clone())
                        .collect(),
                }
            }
            Err(error) => {
                tracing::error!(%scope, %error, "check panicked or was cancelled");
                self.metrics
                    .check(scope.kind(), "error", Some(started.elapsed()));
                Ran {
                    wrote: false,
                    failed: true,
                    retryable: false,
                    wait: None,
                    error: Some(format!("the check panicked or was cancelled: {error}")),
                    apps: Vec::new(),
                    failing: Vec::new(),
                }
            }
        }
    }

    fn record(&self, scope: &Scope, report: &CycleReport, elapsed: Duration) {
        self.status.record(report, OffsetDateTime::now_utc());
        self.learn(report);
        let mut checked = 0u64;
        let mut updated = 0u64;
        let mut failed = false;
        // Apps share a commit when commits are grouped: each commit is counted once.
        let mut commits = std::collections::HashSet::new();
        for app in &report.apps {
            self.metrics.app_checked(&app.name, app.errors.is_empty());
            if let Some(error) = app.error_text() {
                failed = true;
                warn!(app = %app.name, %error, "check failed");
            }
            if let Some(commit) = &app.commit
                && commits.insert(commit.as_str())
            {
                self.metrics.commit();
            }
            for image in &app.images {
                checked += 1;
                if let Some(change) = app.written(&image.name) {
                    updated += 1;
                    info!(
                        app = %app.name,
                        image = %image.name,
                        repository = %image.image,
                        from = %change.from,
                        to = %change.to,
                        commit = app.commit.as_deref().unwrap_or("-"),
                        "image updated"
                    );
                }
            }
        }
        self.metrics.images(checked, updated);
        let outcome = if failed { "error" } else { "ok" };
        self.metrics.check(scope.kind(), outcome, Some(elapsed));
        if *scope == Scope::All {
            self.full_cycles.fetch_add(1, Ordering::SeqCst);
        }
        info!(%scope, apps = report.apps.len(), images = checked, updated, elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX), outcome, "check done");
    }

    fn retry_options(&self) -> RetryOptions {
        self.retry
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn retries(&self) -> std::sync::MutexGuard<'_, HashMap<Scope, Retry>> {
        self.retries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the retry state of `scope`; a retry still waiting is counted and logged as
    /// cancelled by `cause`.
    fn cancel_retry(&self, scope: &Scope, cause: &str) {
        let removed = self.retries().remove(scope);
        if let Some(Retry {
            attempt,
            due: Some(_),
            ..
        }) = &removed
        {
            self.metrics.check_retry("cancelled");
            info!(%scope, attempt, cause, "check retry cancelled");
        }
        if removed.is_some() {
            self.publish_retries();
        }
    }

    /// Shows the retries waiting on the status.
    fn publish_retries(&self) {
        let max_attempts = self
            .retry
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .max_attempts;
        let now = OffsetDateTime::now_utc();
        let retries = self
            .pending_retries()
            .into_iter()
            .map(|(scope, attempt, wait, error)| super::status::RetryStatus {
                scope: scope.to_string(),
                last_error: error,
                attempt,
                max_attempts,
                at: time::Duration::try_from(wait)
                    .ok()
                    .and_then(|wait| now.checked_add(wait))
                    .and_then(|at| at.replace_nanosecond(0).ok())
                    .and_then(|at| {
                        at.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    }),
            })
            .collect();
        self.status.set_retries(retries);
    }

    /// The retries scheduled now, for the status: scope, attempt, how long until it fires, and
    /// what the check it retries failed with.
    pub fn pending_retries(&self) -> Vec<(Scope, u32, Duration, Option<String>)> {
        let now = Instant::now();
        let mut pending: Vec<(Scope, u32, Duration, Option<String>)> = self
            .retries()
            .iter()
            .filter_map(|(scope, retry)| {
                retry.due.map(|due| {
                    (
                        scope.clone(),
                        retry.attempt,
                        due.saturating_duration_since(now),
                        retry.error.clone(),
                    )
                })
            })
            .collect();
        pending.sort_by_key(|(scope, ..)| scope.to_string());
        pending
    }

    /// After the last check queued for `scope` ended: schedules a retry if it failed
    /// transiently and attempts are left; forgets the retry state otherwise. A full cycle
    /// cancels a repository retry waiting when it checked every app the retried check failed
    /// on; it keeps it when it left one out (an app with its own schedule, another shard's
    /// app), and never cancels an app's retry (a full cycle leaves out the apps with their
    /// own schedule). Polls (a full cycle, the other shards' safety net) are never retried:
    /// see [`super::retry`].
    fn after(&self, scope: &Scope, ran: &Ran) {
        if *scope == Scope::All {
            let covered: std::collections::HashSet<&str> =
                ran.apps.iter().map(String::as_str).collect();
            let waiting: Vec<Scope> = self
                .retries()
                .iter()
                .filter(|(scope, retry)| {
                    retry.due.is_some()
                        && matches!(scope, Scope::Repository { .. })
                        && retry
                            .failing
                            .iter()
                            .all(|app| covered.contains(app.as_str()))
                })
                .map(|(scope, _)| scope.clone())
                .collect();
            for scope in waiting {
                self.cancel_retry(&scope, "a full cycle covered it");
            }
            return;
        }
        if !super::retry::retried_scope(scope) {
            return;
        }
        if !ran.failed || !ran.retryable || self.shutdown.is_triggered() {
            self.cancel_retry(scope, "the check ended without a transient failure");
            return;
        }
        let options = self.retry_options();
        let mut retries = self.retries();
        let attempt = retries.get(scope).map_or(0, |retry| retry.attempt) + 1;
        if attempt > options.max_attempts {
            retries.remove(scope);
            drop(retries);
            self.publish_retries();
            if options.max_attempts > 0 {
                self.metrics.check_retry("exhausted");
                warn!(%scope, attempts = options.max_attempts, "check still failing after its retries; the next poll tries again");
            }
            return;
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        // Not before the registry or forge is asked again (its breaker, its Retry-After): an
        // attempt then would fail without asking. Such a wait is cut to `max` like the rest.
        let delay = options
            .delay(attempt)
            .max(ran.wait.unwrap_or_default().min(options.max));
        let generation = self.retry_generation.fetch_add(1, Ordering::SeqCst);
        let due = Instant::now() + delay;
        retries.insert(
            scope.clone(),
            Retry {
                attempt,
                due: Some(due),
                generation,
                error: ran.error.clone(),
                failing: ran.failing.clone(),
            },
        );
        drop(retries);
        self.publish_retries();
        self.metrics.check_retry("scheduled");
        info!(%scope, attempt, of = options.max_attempts, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "check failed transiently; retry scheduled");
        tokio::spawn(me.fire_retry(scope.clone(), generation, due));
    }

    /// Requests the check of `scope` at `due`, unless the retry was cancelled or replaced, or
    /// shutdown began, meanwhile.
    async fn fire_retry(self: Arc<Self>, scope: Scope, generation: u64, due: Instant) {
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            () = self.shutdown.wait() => return,
        }
        {
            let mut retries = self.retries();
            match retries.get_mut(&scope) {
                Some(retry) if retry.generation == generation && retry.due.is_some() => {
                    retry.due = None;
                }
                _ => return,
            }
        }
        self.publish_retries();
        self.enqueue_inner(scope, false, &[]);
    }

    /// Waits until no check is running (call after shutdown was triggered, so none starts), at
    /// most `timeout`. Returns whether every check ended in time.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let all = self.semaphore.acquire_many(self.max_concurrent);
        match tokio::time::timeout(timeout, all).await {
            Ok(Ok(permits)) => {
                drop(permits);
                true
            }
            Ok(Err(_)) | Err(_) => false,
        }
    }
}

/// The first failing app's error in `report` (`app: error`), saying how many more apps failed.
fn first_error(report: &CycleReport) -> Option<String> {
    let mut failing = report
        .apps
        .iter()
        .filter_map(|app| Some((&app.name, app.error_text()?)));
    let (name, error) = failing.next()?;
    Some(match failing.count() {
        0 => format!("{name}: {error}"),
        more => format!("{name}: {error} (and {more} more app(s) failing)"),
    })
}

impl<W: Worker> CheckQueue for Checks<W> {
    fn request(&self, scope: Scope, tags: &[String]) -> Requested {
        self.request_announced(scope, tags)
    }

    fn repositories(&self) -> Vec<(String, String)> {
        self.worker().repositories()
    }

    fn full_cycles(&self) -> u64 {
        self.full_cycles.load(Ordering::SeqCst)
    }

    fn shutting_down(&self) -> bool {
        self.shutdown.is_triggered()
    }
}
