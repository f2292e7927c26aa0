//! Prometheus metrics (prometheus-client, OpenMetrics text on `/metrics`).
//!
//! Invariant: every label is bounded — a registry host, an app name or a notification sink
//! name (all from the config), a receiver type, a scope kind, or an outcome chosen from a fixed
//! set of `&'static str`. Never a tag, a digest, a file name or anything read from a request.
//! Design choice: one [`Metrics`] value, created before the engine and shared (`Arc`) with it,
//! with one method per event, so the engine records what it does without knowing Prometheus.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The outcomes of `imagebump_cache_repacks_total` ([`Metrics::cache_repacks`]).
pub const REPACK_OUTCOMES: [&str; 3] = ["repacked", "failed", "skipped_backoff"];

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryOutcome {
    registry: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabel {
    registry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeOutcome {
    scope: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverOutcome {
    receiver: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkOutcome {
    sink: String,
    outcome: &'static str,
}

/// What became of one notification sink's events since the start (shown on the status page).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkStatus {
    /// The sink's configured name.
    pub sink: String,
    /// Count per outcome (`delivered`, `retried`, `failed`, `dropped`), in that order.
    pub counts: Vec<(&'static str, u64)>,
    /// The last outcome that was not `delivered`: what went wrong (never a URL or key).
    pub last_problem: Option<String>,
    /// RFC 3339 time of `last_problem`.
    pub last_problem_at: Option<String>,
    /// RFC 3339 time of the last delivery.
    pub last_delivered_at: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabel {
    app: String,
}

fn latency_histogram() -> Histogram {
    // 5 ms … ~82 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn cycle_histogram() -> Histogram {
    // 50 ms … ~27 min.
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

/// Every metric imagebump exposes. Cheap to share: all methods take `&self`.
pub struct Metrics {
    registry: Registry,
    registry_requests: Family<RegistryOutcome, Counter>,
    tag_list_duration: Family<RegistryLabel, Histogram, fn() -> Histogram>,
    check_duration: Family<ScopeLabel, Histogram, fn() -> Histogram>,
    checks: Family<ScopeOutcome, Counter>,
    images_checked: Counter,
    images_updated: Counter,
    commits: Counter,
    pushes: Family<OutcomeLabel, Counter>,
    problems: Family<KindLabel, Counter>,
    push_retries: Counter,
    webhook_events: Family<ReceiverOutcome, Counter>,
    app_last_success: Family<AppLabel, Gauge<f64, AtomicU64>>,
    app_errors: Family<AppLabel, Counter>,
    shard_index: Gauge,
    shard_count: Gauge,
    app_owned: Family<AppLabel, Gauge>,
    reloads: Family<OutcomeLabel, Counter>,
    config_problems: Gauge,
    registry_given_up: Family<RegistryLabel, Gauge>,
    notifications: Family<SinkOutcome, Counter>,
    /// The same per sink, with the last problem, for the status page.
    sinks: std::sync::Mutex<Vec<SinkStatus>>,
    check_retries: Family<OutcomeLabel, Counter>,
    cache_repacks: Family<OutcomeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

impl Metrics {
    /// Creates and registers every family under the `imagebump_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("imagebump");
        let registry_requests = Family::<RegistryOutcome, Counter>::default();
        registry.register(
            "registry_requests",
            "Registry HTTP requests, by registry host and outcome",
            registry_requests.clone(),
        );
        let tag_list_duration: Family<RegistryLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "tag_list_duration_seconds",
            "Time to list one repository's tags (all pages), by registry host",
            tag_list_duration.clone(),
        );
        let check_duration: Family<ScopeLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(cycle_histogram);
        registry.register(
            "check_duration_seconds",
            "Duration of one check: scope=all is a full poll cycle, repository a webhook check",
            check_duration.clone(),
        );
        let checks = Family::<ScopeOutcome, Counter>::default();
        registry.register(
            "checks",
            "Checks by scope and outcome (ok, error, coalesced)",
            checks.clone(),
        );
        let images_checked = Counter::default();
        registry.register(
            "images_checked",
            "Images checked against their registry",
            images_checked.clone(),
        );
        let images_updated = Counter::default();
        registry.register(
            "images_updated",
            "Image tag changes written to a config repo",
            images_updated.clone(),
        );
        let commits = Counter::default();
        registry.register("commits", "Commits created", commits.clone());
        let pushes = Family::<OutcomeLabel, Counter>::default();
        registry.register("pushes", "Git pushes, by outcome", pushes.clone());
        let push_retries = Counter::default();
        registry.register(
            "push_retries",
            "Git pushes retried after a conflict",
            push_retries.clone(),
        );
        let check_retries = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "check_retries",
            "Retries of failed webhook checks: scheduled, cancelled (a later request or check covered it), exhausted (attempts used up; the next poll retries)",
            check_retries.clone(),
        );
        // Every outcome exists from the start, at zero, so an alert on an increase sees the first.
        for outcome in ["scheduled", "cancelled", "exhausted"] {
            drop(check_retries.get_or_create(&OutcomeLabel { outcome }));
        }
        let cache_repacks = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "cache_repacks",
            "Repacks of cached clones past their limits: repacked, failed (nothing deleted, or the clone found damaged and cloned again), skipped_backoff (not tried: the clone's last repack failed less than its backoff ago)",
            cache_repacks.clone(),
        );
        for outcome in REPACK_OUTCOMES {
            drop(cache_repacks.get_or_create(&OutcomeLabel { outcome }));
        }
        let webhook_events = Family::<ReceiverOutcome, Counter>::default();
        registry.register(
            "webhook_events",
            "Webhook requests, by receiver type and outcome",
            webhook_events.clone(),
        );
        let app_last_success = Family::<AppLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "app_last_success_timestamp_seconds",
            "Unix time of the last check of the app that ended without error",
            app_last_success.clone(),
        );
        let shard_index = Gauge::default();
        registry.register(
            "shard_index",
            "This replica's shard index (0 when not sharded)",
            shard_index.clone(),
        );
        let shard_count = Gauge::default();
        registry.register(
            "shard_count",
            "How many shards the apps are spread over (1 when not sharded)",
            shard_count.clone(),
        );
        let app_owned = Family::<AppLabel, Gauge>::default();
        registry.register(
            "app_owned",
            "1 for each app this sharded replica polls on the schedule (other shards' apps are absent)",
            app_owned.clone(),
        );
        let app_errors = Family::<AppLabel, Counter>::default();
        registry.register(
            "app_errors",
            "Checks of the app that ended with an error",
            app_errors.clone(),
        );
        let problems = Family::<KindLabel, Counter>::default();
        registry.register(
            "problems",
            "Problems checks reported, by kind (registry, metadata, no_match, settings, io, edit, not_found, template, git, push, forge, pull_request, shutdown, internal)",
            problems.clone(),
        );
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by outcome (ok, rejected)",
            reloads.clone(),
        );
        let config_problems = Gauge::default();
        registry.register(
            "config_problems",
            "App files that do not load at the last (re)load; their apps run from their last good version or not at all",
            config_problems.clone(),
        );
        let registry_given_up = Family::<RegistryLabel, Gauge>::default();
        registry.register(
            "registry_given_up",
            "1 while a registry that kept failing is left alone (its requests fail at once), else 0; as of the last check",
            registry_given_up.clone(),
        );
        let notifications = Family::<SinkOutcome, Counter>::default();
        registry.register(
            "notifications",
            "Notification events by sink and outcome (delivered, retried: a try failed and another follows, failed: given up, dropped: the sink's queue was full)",
            notifications.clone(),
        );
        // Both outcomes exist from the start, so an alert on `rejected` sees 0 → 1.
        for outcome in ["ok", "rejected"] {
            drop(reloads.get_or_create(&OutcomeLabel { outcome }));
        }
        Metrics {
            registry,
            registry_requests,
            tag_list_duration,
            check_duration,
            checks,
            images_checked,
            images_updated,
            commits,
            pushes,
            problems,
            push_retries,
            webhook_events,
            app_last_success,
            app_errors,
            shard_index,
            shard_count,
            app_owned,
            reloads,
            config_problems,
            registry_given_up,
            notifications,
            sinks: std::sync::Mutex::default(),
            check_retries,
            cache_repacks,
        }
    }

    /// The configured notification sinks and their possible outcomes: every series is created
    /// at zero, and the page lists the sinks (a sink no longer configured is dropped from it).
    pub fn notification_sinks(&self, sinks: &[String], outcomes: &[&'static str]) {
        let mut board = self
            .sinks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        board.retain(|s| sinks.contains(&s.sink));
        for sink in sinks {
            for &outcome in outcomes {
                drop(self.notifications.get_or_create(&SinkOutcome {
                    sink: sink.clone(),
                    outcome,
                }));
            }
            if !board.iter().any(|s| &s.sink == sink) {
                board.push(SinkStatus {
                    sink: sink.clone(),
                    counts: outcomes.iter().map(|&o| (o, 0)).collect(),
                    ..SinkStatus::default()
                });
            }
        }
    }

    /// One notification outcome at `sink` (a configured name); `problem` says what went wrong.
    pub fn notification(&self, sink: &str, outcome: &'static str, problem: Option<&str>) {
        self.notifications
            .get_or_create(&SinkOutcome {
                sink: sink.to_string(),
                outcome,
            })
            .inc();
        let mut board = self
            .sinks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(status) = board.iter_mut().find(|s| s.sink == sink) else {
            return;
        };
        match status.counts.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, count)) => *count += 1,
            None => status.counts.push((outcome, 1)),
        }
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        if let Some(problem) = problem {
            status.last_problem = Some(format!("{outcome}: {problem}"));
            status.last_problem_at = now;
        } else if outcome == "delivered" {
            status.last_delivered_at = now;
        }
    }

    /// Every configured notification sink and what became of its events.
    pub fn notification_status(&self) -> Vec<SinkStatus> {
        self.sinks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Creates the series whose labels are known from the configuration, at zero, so every
    /// documented metric is there from the start and an alert on a rate or an increase sees the
    /// first event: per app (`app_errors_total`), per registry (requests, the tag list
    /// histogram, `registry_given_up`), per receiver type (webhook events), and the full-cycle
    /// and push outcomes. `app_last_success_timestamp_seconds` appears with an app's first
    /// successful check: a zero would claim a success in 1970.
    /// Which shard this replica is and which apps it owns (`None`: not sharded, owns all).
    pub fn shard(&self, shard: Option<&super::ShardStatus>) {
        self.shard_index
            .set(shard.map_or(0, |s| i64::from(s.index)));
        self.shard_count
            .set(shard.map_or(1, |s| i64::from(s.count)));
        if let Some(shard) = shard {
            self.app_owned.clear();
            for app in &shard.owned {
                self.app_owned
                    .get_or_create(&AppLabel { app: app.clone() })
                    .set(1);
            }
        }
    }

    pub fn known(&self, apps: &[String], registries: &[String], receivers: &[&'static str]) {
        for app in apps {
            drop(
                self.app_errors
                    .get_or_create(&AppLabel { app: app.clone() }),
            );
        }
        for registry in registries {
            let label = RegistryLabel {
                registry: registry.clone(),
            };
            drop(self.tag_list_duration.get_or_create(&label));
            drop(self.registry_given_up.get_or_create(&label));
            drop(self.registry_requests.get_or_create(&RegistryOutcome {
                registry: registry.clone(),
                outcome: "ok",
            }));
        }
        for receiver in receivers {
            drop(self.webhook_events.get_or_create(&ReceiverOutcome {
                receiver,
                outcome: "accepted",
            }));
        }
        for outcome in ["ok", "error"] {
            drop(self.checks.get_or_create(&ScopeOutcome {
                scope: "all",
                outcome,
            }));
            drop(self.pushes.get_or_create(&OutcomeLabel { outcome }));
        }
        drop(
            self.check_duration
                .get_or_create(&ScopeLabel { scope: "all" }),
        );
    }

    /// Whether `registry` is being left alone by the client's circuit breaker.
    pub fn registry_given_up(&self, registry: &str, given_up: bool) {
        self.registry_given_up
            .get_or_create(&RegistryLabel {
                registry: registry.to_string(),
            })
            .set(i64::from(given_up));
    }

    /// One registry HTTP request. `registry` is the configured host; `outcome` one of a fixed
    /// set, e.g. `ok`, `not_modified`, `unauthorized`, `not_found`, `rate_limited`,
    /// `server_error`, `network_error`.
    pub fn registry_request(&self, registry: &str, outcome: &'static str) {
        self.registry_requests
            .get_or_create(&RegistryOutcome {
                registry: registry.to_string(),
                outcome,
            })
            .inc();
    }

    /// The time it took to list one repository's tags (all pages).
    pub fn tag_list_latency(&self, registry: &str, elapsed: Duration) {
        self.tag_list_duration
            .get_or_create(&RegistryLabel {
                registry: registry.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A commit was created.
    pub fn commit(&self) {
        self.commits.inc();
    }

    /// A retry of a failed webhook check was `scheduled`, `cancelled` or `exhausted`.
    pub fn check_retry(&self, outcome: &'static str) {
        self.check_retries
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// A push ended; `outcome` is e.g. `ok`, `rejected`, `error`.
    pub fn push(&self, outcome: &'static str) {
        self.pushes.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Creates the problem series of these kinds at zero, so an alert on an increase sees the
    /// first one.
    pub fn problem_kinds(&self, kinds: &[&'static str]) {
        for &kind in kinds {
            drop(self.problems.get_or_create(&KindLabel { kind }));
        }
    }

    /// A check reported a problem of this kind (a fixed label, see the engine's `AppError`).
    pub fn problem(&self, kind: &'static str) {
        self.problems.get_or_create(&KindLabel { kind }).inc();
    }

    /// `count` more repacks of cached clones ended with `outcome`, one of [`REPACK_OUTCOMES`].
    pub fn cache_repacks(&self, outcome: &'static str, count: u64) {
        self.cache_repacks
            .get_or_create(&OutcomeLabel { outcome })
            .inc_by(count);
    }

    /// A push is retried after a conflict (non-fast-forward).
    pub fn push_retry(&self) {
        self.push_retries.inc();
    }

    /// Images that were checked, and how many of them got a new tag written.
    pub fn images(&self, checked: u64, updated: u64) {
        self.images_checked.inc_by(checked);
        self.images_updated.inc_by(updated);
    }

    /// One check of an app ended: record the success time or count the error.
    pub fn app_checked(&self, app: &str, ok: bool) {
        let label = AppLabel {
            app: app.to_string(),
        };
        if ok {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            self.app_last_success.get_or_create(&label).set(now);
        } else {
            self.app_errors.get_or_create(&label).inc();
        }
    }

    /// A webhook request was answered; `receiver` is the receiver type (`distribution`, …).
    pub fn webhook_event(&self, receiver: &'static str, outcome: &'static str) {
        self.webhook_events
            .get_or_create(&ReceiverOutcome { receiver, outcome })
            .inc();
    }

    /// A check ended (`ok` / `error`) or was coalesced into a running one (`coalesced`).
    pub fn check(&self, scope: &'static str, outcome: &'static str, elapsed: Option<Duration>) {
        self.checks
            .get_or_create(&ScopeOutcome { scope, outcome })
            .inc();
        if let Some(elapsed) = elapsed {
            self.check_duration
                .get_or_create(&ScopeLabel { scope })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// How many app files do not load right now.
    pub fn config_problems(&self, count: usize) {
        self.config_problems
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A configuration reload was applied (`ok`) or rejected (`rejected`).
    pub fn reload(&self, outcome: &'static str) {
        self.reloads.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The OpenMetrics text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; encode only propagates the writer's errors.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_labels_appear_in_text() {
        let metrics = Metrics::new();
        metrics.registry_request("ghcr.io", "ok");
        metrics.registry_request("ghcr.io", "ok");
        metrics.registry_request("ghcr.io", "rate_limited");
        metrics.tag_list_latency("ghcr.io", Duration::from_millis(120));
        metrics.webhook_event("ghcr", "accepted");
        metrics.app_checked("shop", true);
        metrics.app_checked("blog", false);
        metrics.push("ok");
        metrics.push_retry();
        metrics.cache_repacks("failed", 2);
        metrics.commit();
        metrics.registry_given_up("ghcr.io", true);
        metrics.images(3, 1);
        metrics.check("all", "ok", Some(Duration::from_secs(2)));
        metrics.notification_sinks(&["ops".into()], &["delivered", "failed"]);
        metrics.notification("ops", "failed", Some("the sink answered HTTP 500"));
        let text = metrics.encode();
        for expected in [
            "imagebump_registry_requests_total{registry=\"ghcr.io\",outcome=\"ok\"} 2",
            "imagebump_registry_requests_total{registry=\"ghcr.io\",outcome=\"rate_limited\"} 1",
            "imagebump_tag_list_duration_seconds_count{registry=\"ghcr.io\"} 1",
            "imagebump_webhook_events_total{receiver=\"ghcr\",outcome=\"accepted\"} 1",
            "imagebump_app_errors_total{app=\"blog\"} 1",
            "imagebump_app_last_success_timestamp_seconds{app=\"shop\"}",
            "imagebump_pushes_total{outcome=\"ok\"} 1",
            "imagebump_push_retries_total 1",
            "imagebump_cache_repacks_total{outcome=\"failed\"} 2",
            "imagebump_cache_repacks_total{outcome=\"repacked\"} 0",
            "imagebump_cache_repacks_total{outcome=\"skipped_backoff\"} 0",
            "imagebump_commits_total 1",
            "imagebump_registry_given_up{registry=\"ghcr.io\"} 1",
            "imagebump_images_checked_total 3",
            "imagebump_images_updated_total 1",
            "imagebump_check_duration_seconds_count{scope=\"all\"} 1",
            "imagebump_notifications_total{sink=\"ops\",outcome=\"delivered\"} 0",
            "imagebump_notifications_total{sink=\"ops\",outcome=\"failed\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }
}
