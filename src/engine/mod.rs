//! The write-back spine: for every app, read what is deployed, ask the registry what exists,
//! let the policy choose, edit the files, commit and push (or open a merge request).
//!
//! Invariant: the engine is the only module that knows every other stage; each stage knows
//! nothing of the others. It owns the order of work, the sharing (one tag list per repository
//! per pass, one metadata request per tag per pass, one push per config repository and branch)
//! and the failure isolation (a failing registry, repo or app never stops the others).
//!
//! Design choice: a pass has one shape. The async start lists every image repository once
//! ([`fetch`]). Meanwhile one job per config repository, in parallel, runs on a blocking thread
//! (libgit2 is synchronous): it reads its targets' histories from its clone as it is, waits
//! for the complete [`WriteContext`] ([`pending`]) without holding the repository, fetches,
//! and plans each app the same way whatever the mode ([`plan`]): read
//! what each target deploys on the branch head, settle each image's decision in one async loop
//! that fetches the metadata its policy asks for, edit the bytes read. Commit mode ([`commit`])
//! commits per app and pushes per branch, replanning on the new remote head when a push is
//! rejected; pull-request mode ([`pull_request`]) pushes a bot branch and asks the forge. A
//! [`WriteContext`] carries the mode, the time and the fetched data through all of it.
//!
//! Files: [`fetch`], [`plan`], [`explain`] (`imagebump explain`, read-only), [`progress`]
//! (what a pass tells while it runs),
//! [`commit`], [`pull_request`], [`message`] (commit messages), [`settings`] (config to stage
//! settings, secrets), [`check`] (template and secret checks before a pass). What a pass reports
//! is [`crate::report`].

pub mod check;
mod commit;
pub mod explain;
mod fetch;
pub mod message;
mod pending;
mod plan;
pub mod progress;
mod promote;
mod pull_request;
mod rollback;
pub mod settings;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::config::{App, Config, WriteMode};
use crate::edit::Target;
use crate::git::{self, CloneCache, RetryOptions};
use crate::policy::Policy;
use crate::reference::ImageRef;
use crate::registry::{self, ClientOptions};

pub use crate::report::{
    AppError, AppReport, ImageError, ImageStatus, PassReport, PlannedChange, PullRequestAction,
    PullRequestError, ReadError, SettingsError,
};

/// The decision of `policy` over `tags` (the repository of `image`, listed) outside a pass, for
/// `imagebump tags`: the loop a pass runs ([`fetch`]), asking the registry for the metadata the
/// policy needs (the platforms of its candidates, build times), each tag once.
pub async fn decide_tags(
    client: &registry::Client,
    image: &ImageRef,
    policy: &Policy,
    tags: &[String],
    now: OffsetDateTime,
) -> Result<crate::policy::Decision, crate::report::ImageError> {
    let memo = fetch::MetaMemo::default();
    fetch::decide(
        client,
        &memo,
        image,
        policy,
        tags,
        crate::policy::Current::default(),
        now,
    )
    .await
}

/// What one pass covers and whether it may write.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Only this app.
    pub app: Option<String>,
    /// Only the apps using one of these repositories (`registry/repository`), e.g. from a
    /// webhook.
    pub repositories: Option<BTreeSet<String>>,
    /// Leave these apps out (they have a schedule of their own).
    pub exclude: BTreeSet<String>,
    /// Plan only: no commit, no push, no pull request.
    pub dry_run: bool,
    /// A dry run leaves the diffs out of the report (`AppReport::diffs`): for a caller that
    /// prints none (`once --dry-run --output json`), so it does not pay for them.
    pub without_diffs: bool,
}

/// Errors that keep the engine from starting (bad settings, missing secrets).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("registry client: {0}")]
    Registry(#[from] registry::RegistryError),
}

/// Whether a pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Commit and push, or update the pull request.
    Write,
    /// Plan only: diffs and the checks a write would make, nothing written.
    DryRun,
}

/// What every app of a pass is planned and written with: the mode, the pass's time, the tag
/// lists, the metadata memo, and the runtime the blocking jobs fetch more metadata on.
pub(crate) struct WriteContext {
    pub mode: Mode,
    /// In a dry run, whether the reports carry each changed file's diff.
    pub diffs: bool,
    pub now: OffsetDateTime,
    pub tags: fetch::TagLists,
    pub memo: fetch::MetaMemo,
    pub handle: tokio::runtime::Handle,
    /// The engine's history cache (it outlives the pass).
    pub history: Arc<crate::history::History>,
    /// The bot's email: commits by it are imagebump's (rollback detection).
    pub bot: String,
    pub progress: Arc<dyn progress::Progress>,
    /// The promotion sources' histories, read before the repository jobs.
    pub sources: promote::Sources,
    /// The history bound as reasons say it (`5000 commits or 90d`).
    pub bound: String,
}

impl WriteContext {
    /// What reading rollbacks needs, from this pass.
    /// What deciding a promoted image needs, from this pass.
    pub(crate) fn promotion<'a>(&'a self, registry: &'a registry::Client) -> promote::Pass<'a> {
        promote::Pass {
            registry,
            memo: &self.memo,
            now: self.now,
            bot: &self.bot,
            bound: &self.bound,
        }
    }

    pub(crate) fn rollbacks(&self) -> rollback::Reader<'_> {
        rollback::Reader {
            history: &self.history,
            bot: &self.bot,
            now: self.now,
        }
    }
}

/// One app, resolved when the engine is built: its config, and per image its policy and its
/// editor targets (in the order of the config's targets).
#[derive(Debug, Clone)]
pub(crate) struct ResolvedApp {
    pub app: App,
    pub policies: Vec<Policy>,
    pub targets: Vec<Vec<Target>>,
}

impl ResolvedApp {
    fn resolve(app: &App, config: &Config) -> Result<ResolvedApp, SettingsError> {
        let policies = app
            .images
            .iter()
            .map(|image| settings::policy(image, &config.global.registries))
            .collect::<Result<Vec<Policy>, SettingsError>>()?;
        let targets = app
            .images
            .iter()
            .map(|image| image.targets.iter().map(settings::target).collect())
            .collect::<Result<Vec<Vec<Target>>, SettingsError>>()?;
        Ok(ResolvedApp {
            app: app.clone(),
            policies,
            targets,
        })
    }
}

/// Whether a target's `file` (a file, or a directory: written with a trailing `/` or found
/// to be one on the branch) covers the repository file `path`.
fn target_holds(file: &str, path: &str) -> bool {
    let dir = file.trim_start_matches("./").trim_end_matches('/');
    dir.is_empty()
        || dir == "."
        || path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The `history:` bound of the global file, as `history` reads it.
fn history_bound(config: &crate::config::HistoryBound) -> crate::history::Bound {
    crate::history::Bound {
        max_commits: usize::try_from(config.max_commits).unwrap_or(usize::MAX),
        max_age: time::Duration::try_from(config.max_age).unwrap_or(time::Duration::MAX),
    }
}

struct Inner {
    config: Config,
    apps: Vec<ResolvedApp>,
    /// Apps whose settings failed (a missing secret, a bad range): reported on every pass.
    broken: Vec<(String, SettingsError)>,
    registry: registry::Client,
    /// The clone cache of passes that write: a checkout repacks a clone past its limits.
    git: CloneCache,
    /// The same cache for reads (`explain`, dry runs): its checkouts never repack.
    git_reading: CloneCache,
    retry: RetryOptions,
    /// One lock per config repository URL: passes that run at once (a webhook check during a
    /// poll) take turns on a clone instead of failing on it.
    repo_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The targets' histories read so far, per (repository, branch, file).
    history: Arc<crate::history::History>,
    /// Once triggered, no new commit or push is started.
    shutdown: Option<crate::shutdown::Shutdown>,
}

/// The engine: built once per configuration, shared by every pass.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// What [`Engine::warm_up`] started, for [`Engine::new_warmed`].
pub struct WarmUp {
    http: Option<registry::PlainHttp>,
}

impl Engine {
    /// Start, on threads of their own, the one-time setups an engine needs whatever the
    /// configuration (libgit2's, see [`git::warm_up`]; the registry's HTTP client, see
    /// [`registry::PlainHttp`]), and return at once: a command calls this before reading its
    /// configuration, so the two overlap. Hand the result to [`Engine::new_warmed`].
    pub fn warm_up() -> WarmUp {
        git::warm_up();
        WarmUp {
            http: registry::PlainHttp::build_in_background(&ClientOptions::default()),
        }
    }

    /// Build the registry client, the clone cache and every app's policies and targets.
    pub fn new(config: Config) -> Result<Engine, EngineError> {
        Self::new_warmed(config, WarmUp { http: None })
    }

    /// [`Engine::new`], using what [`Engine::warm_up`] prepared.
    pub fn new_warmed(config: Config, warm: WarmUp) -> Result<Engine, EngineError> {
        let breaker = &config.global.registry_breaker;
        let registry = registry::Client::with_plain_http(
            settings::registries(&config)?,
            ClientOptions {
                breaker_cooldown: breaker.cooldown,
                max_breaker_cooldown: breaker.max_cooldown,
                ..ClientOptions::default()
            },
            warm.http,
        )?;
        let git_settings = settings::git(&config)?;
        if let Some(key) = &git_settings.signing_key {
            tracing::info!(
                fingerprint = %key.fingerprint(),
                "commits are signed with this SSH key"
            );
        }
        let git = CloneCache::new(config.global.workdir.clone(), git_settings)
            .with_lock_wait(config.global.git.workdir_wait)
            .with_maintenance(settings::maintenance(&config.global.git.maintenance));
        let mut apps = Vec::new();
        let mut broken = Vec::new();
        for app in &config.apps {
            match ResolvedApp::resolve(app, &config) {
                Ok(resolved) => apps.push(resolved),
                Err(e) => broken.push((app.name.clone(), e)),
            }
        }
        let retry = RetryOptions {
            max_attempts: config.global.git.push_retries.max(1),
            ..RetryOptions::default()
        };
        let bound = history_bound(&config.global.history);
        Ok(Engine {
            inner: Arc::new(Inner {
                config,
                apps,
                broken,
                registry,
                git_reading: git.without_maintenance(),
                git,
                retry,
                repo_locks: Mutex::new(HashMap::new()),
                history: Arc::new(crate::history::History::new(bound)),
                shutdown: None,
            }),
        })
    }

    /// Stop starting commits and pushes once `shutdown` is triggered (the daemon's signal).
    /// Call before the engine is shared.
    pub fn with_shutdown(mut self, shutdown: crate::shutdown::Shutdown) -> Engine {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.shutdown = Some(shutdown);
        }
        self
    }

    /// Keep what `previous` (the engine of the configuration before a reload) read of the
    /// targets' histories that this configuration still has, so a reload reads no history
    /// again; records of targets no longer configured are dropped with `previous`. Call before
    /// the engine is shared.
    pub fn with_history_from(mut self, previous: &crate::history::History) -> Engine {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            let bound = history_bound(&inner.config.global.history);
            let apps = &inner.config.apps;
            let configured = |url: &str, branch: &str, file: &str| {
                apps.iter()
                    .filter(|app| app.repo == url && app.branch == branch)
                    .flat_map(|app| app.images.iter().flat_map(|image| image.targets.iter()))
                    .any(|target| target_holds(&target.file, file))
            };
            inner.history = Arc::new(previous.carried(bound, configured));
        }
        self
    }

    /// The targets' history cache (carried over a reload with [`Engine::with_history_from`]).
    pub fn history(&self) -> Arc<crate::history::History> {
        Arc::clone(&self.inner.history)
    }

    pub(crate) fn shutting_down(&self) -> bool {
        self.inner
            .shutdown
            .as_ref()
            .is_some_and(crate::shutdown::Shutdown::is_triggered)
    }

    /// The configuration this engine runs.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The history reads so far: first-parent commits read and blobs parsed (a pass whose
    /// branch heads did not move adds nothing).
    pub fn history_cost(&self) -> (usize, usize) {
        self.inner.history.cost()
    }

    /// What became of the repacks the clone cache wanted since this engine was built (a
    /// reload's engine starts again at zero, with no failure held against any clone).
    pub fn repacks(&self) -> git::RepackCounts {
        self.inner.git.repacks()
    }

    /// The registry client (for its request counters).
    pub fn registry(&self) -> &registry::Client {
        &self.inner.registry
    }

    /// Every image repository (`registry/repository`) some app uses.
    pub fn repositories(&self) -> BTreeSet<String> {
        self.inner
            .apps
            .iter()
            .flat_map(|a| a.app.images.iter().map(|i| i.image.name()))
            .collect()
    }

    /// Run one pass. Never fails as a whole: every problem lands in the report of its app.
    pub async fn run_pass(&self, options: &PassOptions) -> PassReport {
        self.run_pass_with(options, Arc::new(progress::Quiet)).await
    }

    /// [`Engine::run_pass`], telling `progress` what it does as it goes.
    pub async fn run_pass_with(
        &self,
        options: &PassOptions,
        progress: Arc<dyn progress::Progress>,
    ) -> PassReport {
        let inner = &self.inner;
        let requests_before = inner.registry.stats().total_requests();
        let selected = self.select(options);
        let mut report = PassReport::default();
        for (name, error) in &inner.broken {
            if options.app.as_ref().is_none_or(|n| n == name) && options.repositories.is_none() {
                let mut app = AppReport::new(name);
                app.errors.push(AppError::Settings(error.clone()));
                report.apps.push(app);
            }
        }

        // One tag list per image repository, shared by every app that uses it.
        let mut images: BTreeMap<String, ImageRef> = BTreeMap::new();
        for app in &selected {
            for image in &app.app.images {
                images
                    .entry(image.image.name())
                    .or_insert_with(|| image.image.clone());
            }
        }
        let config_repos: BTreeSet<&str> = selected.iter().map(|a| a.app.repo.as_str()).collect();
        progress.start(images.len(), selected.len(), config_repos.len());
        let now = OffsetDateTime::now_utc();
        // One blocking job per config repository, all in parallel. While the registry lists
        // the tags, each reads its targets' histories from its clone under its repository's
        // lock (no fetch), lets the lock go, and waits for the pass's context; then it takes the
        // lock again, fetches and writes. No lock is held while waiting, so a check that needs the repository
        // meanwhile (a webhook's, during a poll cycle stuck on a slow registry) is not kept
        // waiting for this pass's registries. Both halves run on the job's one thread, so what
        // the first frees the second reuses (glibc keeps freed memory per thread arena).
        let mut by_repo: BTreeMap<String, Vec<ResolvedApp>> = BTreeMap::new();
        for app in &selected {
            by_repo
                .entry(app.app.repo.clone())
                .or_default()
                .push((*app).clone());
        }
        let mut senders = pending::Senders::new();
        let mut jobs = JoinSet::new();
        for (url, apps) in by_repo {
            let engine = self.clone();
            let lock = self.repo_lock(&url);
            let pending = senders.pending();
            jobs.spawn_blocking(move || {
                {
                    let _guard = lock.blocking_lock();
                    engine.prepare_repository(&url, &apps, now);
                }
                let ctx = match pending.wait() {
                    Ok(ctx) => ctx,
                    Err(abandoned) => {
                        let reports = apps
                            .iter()
                            .map(|app| {
                                let mut report = AppReport::new(&app.app.name);
                                report
                                    .errors
                                    .push(AppError::Internal(abandoned.to_string()));
                                report
                            })
                            .collect();
                        return (reports, 0);
                    }
                };
                let _guard = lock.blocking_lock();
                engine.write_repository(&ctx, &url, apps)
            });
        }
        let mode = if options.dry_run {
            Mode::DryRun
        } else {
            Mode::Write
        };
        let (tags, sources) = tokio::join!(
            fetch::tag_lists(&inner.registry, &images, progress.as_ref()),
            promote::read_sources(self, mode, &selected, now)
        );
        report.tag_lists.clone_from(&tags.durations);
        if let Some(repositories) = &options.repositories {
            // A targeted check (a webhook's): what it listed tells later notifications of
            // tags it already saw from news (the daemon's check queue).
            report.listed = repositories
                .iter()
                .filter_map(|name| match tags.by_repository.get(name) {
                    Some(Ok(list)) => Some((name.clone(), Arc::clone(list))),
                    _ => None,
                })
                .collect();
        }
        let ctx = Arc::new(WriteContext {
            sources,
            bound: promote::bound_text(self),
            mode,
            diffs: !options.without_diffs,
            now,
            tags,
            memo: fetch::MetaMemo::default(),
            handle: tokio::runtime::Handle::current(),
            history: Arc::clone(&inner.history),
            bot: inner.config.global.git.author_email.clone(),
            progress,
        });

        senders.send(&ctx);
        drop(ctx);
        while let Some(result) = jobs.join_next().await {
            match result {
                Ok((apps, pushes)) => {
                    report.pushes += pushes;
                    report.apps.extend(apps);
                }
                Err(e) => {
                    tracing::error!(error = %e, "a repository job panicked");
                    let mut app = AppReport::new("(internal)");
                    app.errors.push(AppError::Internal(e.to_string()));
                    report.apps.push(app);
                }
            }
        }
        report.apps.sort_by(|a, b| a.name.cmp(&b.name));
        report.registry_requests = inner.registry.stats().total_requests() - requests_before;
        report
    }

    /// Everything one config repository needs: commit-mode apps branch by branch (one push per
    /// branch), then each pull-request app. Runs on a blocking thread.
    pub(crate) fn write_repository(
        &self,
        ctx: &WriteContext,
        url: &str,
        apps: Vec<ResolvedApp>,
    ) -> (Vec<AppReport>, usize) {
        let mut reports = Vec::new();
        let mut pushes = 0;
        let mut by_branch: BTreeMap<String, Vec<ResolvedApp>> = BTreeMap::new();
        let mut pull_requests = Vec::new();
        for app in apps {
            if app.app.write == WriteMode::PullRequest {
                pull_requests.push(app);
            } else {
                by_branch
                    .entry(app.app.branch.clone())
                    .or_default()
                    .push(app);
            }
        }
        for (branch, apps) in by_branch {
            let (apps, pushed) = self.write_branch(ctx, url, &branch, &apps);
            pushes += usize::from(pushed);
            for app in &apps {
                ctx.progress.app_done(app);
            }
            reports.extend(apps);
        }
        for app in pull_requests {
            let (report, pushed) = pull_request::write(self, ctx, url, &app);
            pushes += usize::from(pushed);
            ctx.progress.app_done(&report);
            reports.push(report);
        }
        ctx.progress.repo_done(url, pushes);
        (reports, pushes)
    }

    /// The apps a pass covers.
    fn select(&self, options: &PassOptions) -> Vec<&ResolvedApp> {
        self.inner
            .apps
            .iter()
            .filter(|a| options.app.as_ref().is_none_or(|name| &a.app.name == name))
            .filter(|a| !options.exclude.contains(&a.app.name))
            .filter(|a| {
                options.repositories.as_ref().is_none_or(|repos| {
                    a.app.images.iter().any(|i| repos.contains(&i.image.name()))
                })
            })
            .collect()
    }

    fn repo_lock(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.inner.repo_locks.lock() {
            Ok(mut locks) => Arc::clone(locks.entry(url.to_string()).or_default()),
            // A poisoned map only means another pass panicked while inserting; a fresh lock
            // is still correct for this pass.
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The clone cache, as a pass in `mode` uses it: a dry run (and `explain`, and any read
    /// ahead of a round) leaves the clones' object stores as it finds them, so only a pass
    /// that writes repacks a clone past its limits.
    pub(crate) fn git(&self, mode: Mode) -> &CloneCache {
        match mode {
            Mode::Write => &self.inner.git,
            Mode::DryRun => &self.inner.git_reading,
        }
    }

    pub(crate) fn retry(&self) -> &RetryOptions {
        &self.inner.retry
    }

    pub(crate) fn author_email(&self) -> &str {
        &self.inner.config.global.git.author_email
    }
}

#[cfg(test)]
mod history_tests {
    use super::target_holds;

    #[test]
    fn a_target_holds_its_file_or_the_files_under_its_directory() {
        assert!(target_holds("apps/api/values.yaml", "apps/api/values.yaml"));
        assert!(target_holds(
            "./apps/api/values.yaml",
            "apps/api/values.yaml"
        ));
        assert!(target_holds("apps/api/", "apps/api/deploy.yaml"));
        assert!(target_holds("apps/api", "apps/api/sub/deploy.yaml"));
        assert!(target_holds("./", "anything.yaml"));
        assert!(!target_holds("apps/api", "apps/api2/deploy.yaml"));
        assert!(!target_holds(
            "apps/api/values.yaml",
            "apps/web/values.yaml"
        ));
    }
}
