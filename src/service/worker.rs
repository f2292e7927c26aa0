//! The engine as the daemon's [`Worker`]: a check of a scope is a pass over the apps it covers,
//! and its report feeds the daemon's status store and metrics.
//!
//! Invariant: a check reports every app it covered, and a change counts as written only when its
//! app's push reached the remote.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{TargetConfig, WriteMode};
use time::format_description::well_known::Rfc3339;

use crate::daemon::metrics::REPACK_OUTCOMES;
use crate::daemon::{
    AppDetails, CycleReport, ImageDetails, Metrics, RegistryStatus, Scope, ShardStatus, Worker,
};
use crate::engine::settings;
use crate::engine::{AppError, Engine, PassOptions, PassReport};
use crate::git::RepackCounts;
use crate::notify::Notifier;
use crate::registry::{Outcome, Stats};
use crate::shard::Shard;

/// An [`Engine`] serving the daemon.
pub struct EngineWorker {
    engine: Engine,
    metrics: Arc<Metrics>,
    /// Apps with a schedule of their own: left out of the global cycle.
    own_schedule: BTreeSet<String>,
    /// Registry counters already exported, to add only the difference after each check.
    exported: Mutex<Stats>,
    /// The clone cache's repack counts already exported, likewise.
    exported_repacks: Mutex<RepackCounts>,
    /// Told of every check's reports; never waits for a sink.
    notifier: Option<Notifier>,
    /// This replica's shard and its safety-net interval (`None`: not sharded, polls every app).
    shard: Option<(Shard, String)>,
    /// The tags the last check of each repository a webhook named listed (`registry/repository`;
    /// bounded by the configured repositories, each list shared with the pass that read it).
    listed: Mutex<HashMap<String, Arc<Vec<String>>>>,
}

impl EngineWorker {
    pub fn new(engine: Engine, metrics: Arc<Metrics>) -> EngineWorker {
        let own_schedule = engine
            .config()
            .apps
            .iter()
            .filter(|a| a.schedule.is_some())
            .map(|a| a.name.clone())
            .collect();
        let exported = Mutex::new(engine.registry().stats());
        let exported_repacks = Mutex::new(engine.repacks());
        metrics.problem_kinds(AppError::KINDS);
        EngineWorker {
            engine,
            metrics,
            own_schedule,
            exported,
            exported_repacks,
            notifier: None,
            shard: None,
            listed: Mutex::new(HashMap::new()),
        }
    }

    /// Polls only the apps `shard` owns on the schedule ([`Scope::All`]);
    /// [`Scope::OtherShards`] (the safety net, every `safety_net`) checks the others.
    pub fn with_shard(mut self, shard: Shard, safety_net: String) -> EngineWorker {
        self.shard = Some((shard, safety_net));
        self
    }

    /// The configured apps the shard does not own (none when not sharded).
    fn not_owned(&self) -> BTreeSet<String> {
        let Some((shard, _)) = &self.shard else {
            return BTreeSet::new();
        };
        self.engine
            .config()
            .apps
            .iter()
            .filter(|a| !shard.owns(&a.name))
            .map(|a| a.name.clone())
            .collect()
    }

    /// Sends notifications of what each check did through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> EngineWorker {
        self.notifier = Some(notifier);
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn options(&self, scope: &Scope) -> PassOptions {
        match scope {
            Scope::All => PassOptions {
                exclude: self
                    .own_schedule
                    .union(&self.not_owned())
                    .cloned()
                    .collect(),
                ..PassOptions::default()
            },
            Scope::OtherShards => {
                let others = self.not_owned();
                PassOptions {
                    exclude: self
                        .engine
                        .config()
                        .apps
                        .iter()
                        .filter(|a| !others.contains(&a.name))
                        .map(|a| a.name.clone())
                        .collect(),
                    ..PassOptions::default()
                }
            }
            Scope::App(name) => PassOptions {
                app: Some(name.clone()),
                ..PassOptions::default()
            },
            Scope::Repository {
                registry,
                repository,
            } => PassOptions {
                repositories: Some(BTreeSet::from([format!("{registry}/{repository}")])),
                ..PassOptions::default()
            },
        }
    }

    fn export_registry_stats(&self) {
        let now = self.engine.registry().stats();
        let Ok(mut exported) = self.exported.lock() else {
            return;
        };
        for (registry, stats) in &now.registries {
            let before = exported.registry(registry);
            for (outcome, count) in &stats.by_outcome {
                let old = before.by_outcome.get(outcome).copied().unwrap_or(0);
                for _ in old..*count {
                    self.metrics.registry_request(registry, outcome.as_str());
                }
            }
        }
        *exported = now;
        for (registry, given_up) in self.engine.registry().given_up() {
            self.metrics.registry_given_up(&registry, given_up);
        }
    }

    /// The repacks the clone cache tried, failed or put off since the last check (whichever
    /// check's checkout it was: passes that run at once share the cache).
    fn export_repacks(&self) {
        let now = self.engine.repacks();
        let Ok(mut exported) = self.exported_repacks.lock() else {
            return;
        };
        let [repacked, failed, skipped_backoff] = REPACK_OUTCOMES;
        for (outcome, count, before) in [
            (repacked, now.repacked, exported.repacked),
            (failed, now.failed, exported.failed),
            (
                skipped_backoff,
                now.skipped_backoff,
                exported.skipped_backoff,
            ),
        ] {
            if count > before {
                self.metrics.cache_repacks(outcome, count - before);
            }
        }
        *exported = now;
    }

    /// Pushes and push retries; commits, images and per-app outcomes the daemon counts itself
    /// from the [`CycleReport`].
    fn export_pass(&self, report: &PassReport) {
        for (registry, elapsed) in &report.tag_lists {
            self.metrics.tag_list_latency(registry, *elapsed);
        }
        for _ in 0..report.pushes {
            self.metrics.push("ok");
        }
        for app in &report.apps {
            if !app.pushed && app.errors.iter().any(AppError::is_push) {
                self.metrics.push("error");
            }
            for error in &app.errors {
                self.metrics.problem(error.kind());
            }
        }
        let retries: u32 = report
            .apps
            .iter()
            .map(|a| a.push_attempts.saturating_sub(1))
            .max()
            .unwrap_or(0);
        for _ in 0..retries {
            self.metrics.push_retry();
        }
    }
}

impl Worker for EngineWorker {
    async fn check(&self, scope: Scope) -> CycleReport {
        let started = Instant::now();
        if let Scope::Repository { registry, .. } = &scope {
            // A webhook from this registry: it is up, whatever its recent failures.
            self.engine.registry().note_alive(registry);
        }
        let options = self.options(&scope);
        let mut report = self.engine.run_pass(&options).await;
        if let Ok(mut listed) = self.listed.lock() {
            listed.extend(std::mem::take(&mut report.listed));
        }
        self.export_registry_stats();
        self.export_repacks();
        self.export_pass(&report);
        if let Some(notifier) = &self.notifier {
            let now = time::OffsetDateTime::now_utc();
            let at = now
                .replace_nanosecond(0)
                .unwrap_or(now)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            notifier.observe(&report.apps, &at);
        }
        CycleReport {
            apps: report.apps,
            duration: started.elapsed(),
        }
    }

    fn listed(&self, registry: &str, repository: &str) -> Option<Arc<Vec<String>>> {
        self.listed
            .lock()
            .ok()?
            .get(&format!("{registry}/{repository}"))
            .cloned()
    }

    fn repositories(&self) -> Vec<(String, String)> {
        let mut seen = BTreeMap::new();
        for app in &self.engine.config().apps {
            for image in &app.images {
                seen.insert(
                    (image.image.registry.clone(), image.image.repository.clone()),
                    (),
                );
            }
        }
        seen.into_keys().collect()
    }

    fn apps(&self) -> Vec<String> {
        self.engine
            .config()
            .apps
            .iter()
            .map(|a| a.name.clone())
            .collect()
    }

    fn shard(&self) -> Option<ShardStatus> {
        let (shard, safety_net) = self.shard.as_ref()?;
        Some(ShardStatus {
            index: shard.index,
            count: shard.count,
            owned: self
                .apps()
                .into_iter()
                .filter(|app| shard.owns(app))
                .collect(),
            safety_net: safety_net.clone(),
        })
    }

    fn registries(&self) -> Vec<RegistryStatus> {
        let client = self.engine.registry();
        let stats = client.stats();
        let breakers = client.breakers();
        let now = time::OffsetDateTime::now_utc();
        let mut names: BTreeSet<&String> = stats.registries.keys().collect();
        names.extend(breakers.keys());
        names
            .into_iter()
            .map(|name| {
                let counts = stats.registry(name);
                let breaker = breakers.get(name).cloned().unwrap_or_default();
                let failures = [
                    Outcome::ServerError,
                    Outcome::ConnectionError,
                    Outcome::RateLimited,
                ]
                .iter()
                .filter_map(|outcome| counts.by_outcome.get(outcome))
                .sum();
                RegistryStatus {
                    name: name.clone(),
                    requests: counts.requests,
                    failures,
                    failures_in_a_row: breaker.failures,
                    given_up_until: breaker.given_up_for.and_then(|left| {
                        let until = now + left;
                        let until = until.replace_nanosecond(0).unwrap_or(until);
                        until.format(&Rfc3339).ok()
                    }),
                    last_error: (breaker.failures > 0 && !breaker.last_error.is_empty())
                        .then(|| breaker.last_error.clone()),
                    ..RegistryStatus::default()
                }
            })
            .collect()
    }

    fn app_details(&self) -> Vec<AppDetails> {
        let config = self.engine.config();
        config
            .apps
            .iter()
            .map(|app| AppDetails {
                name: app.name.clone(),
                file: app.file.display().to_string(),
                repo: crate::git::redact_url(&app.repo),
                branch: app.branch.clone(),
                write: match app.write {
                    WriteMode::Commit => "commit".into(),
                    WriteMode::PullRequest => "pull-request".into(),
                },
                images: app
                    .images
                    .iter()
                    .map(|image| ImageDetails {
                        name: image.name.clone(),
                        repository: image.image.name(),
                        policy: settings::policy(image, &config.global.registries)
                            .map_or_else(|e| format!("invalid: {e}"), |p| p.summary()),
                        targets: image.targets.iter().map(describe_target).collect(),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// `file`, `file (path a.b)` or `file (marker ns:name)`.
fn describe_target(target: &TargetConfig) -> String {
    match (&target.path, &target.marker) {
        (Some(path), _) => format!("{} (path {path})", target.file),
        (None, Some(marker)) => format!("{} (marker {marker})", target.file),
        (None, None) => target.file.clone(),
    }
}
