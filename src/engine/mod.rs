//! The write-back spine: for every app, read what is deployed, ask the registry what exists,
//! let the policy choose, edit the files, commit and push (or open a merge request).
//!
//! Invariant: the engine is the only module that knows every other stage; each stage knows
//! nothing of the others. It owns the order of work, the sharing (one tag list per repository
//! per pass, one push per config repository and branch) and the failure isolation (a failing
//! registry, repo or app never stops the others).
//!
//! Design choice: a pass has two halves. The async half lists every image repository once and
//! makes a provisional decision per image, fetching only the registry metadata its policy asks
//! for. The blocking half (libgit2 is synchronous) runs once per config repository: it reads
//! what the files deploy, settles each decision against that (pure: [`crate::policy`] on the
//! fetched data), edits, commits per app and pushes per branch, replanning on the new remote
//! head when a push is rejected. Config repositories are processed in parallel; the apps of
//! one repository share one clone and one push.

pub mod check;
pub mod error;
pub mod message;
mod plan;
mod pull_request;
pub mod settings;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::config::{App, Config, WriteMode};
use crate::git::{self, CloneCache, RetryOptions};
use crate::policy::{Current, Kind, Policy, Step, TagMeta};
use crate::reference::ImageRef;
use crate::registry::{self, ClientOptions};

pub use error::{AppError, ImageError, PullRequestError, ReadError};
pub use settings::SettingsError;

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
}

/// Why an app's changes were left uncommitted: the daemon is shutting down.
const NOT_COMMITTED_AT_SHUTDOWN: AppError =
    AppError::ShuttingDown("shutting down: changes not committed; the next start applies them");

/// The apps of one grouped commit (`git.group_commits`): their indices, the files written for
/// them, and their changes.
#[derive(Default)]
struct Group {
    members: Vec<usize>,
    paths: Vec<std::path::PathBuf>,
    changes: Vec<message::GroupedChange>,
}

impl Group {
    fn add(
        &mut self,
        index: usize,
        app: &str,
        paths: Vec<std::path::PathBuf>,
        changes: &[PlannedChange],
    ) {
        self.members.push(index);
        for path in paths {
            if !self.paths.contains(&path) {
                self.paths.push(path);
            }
        }
        self.changes
            .extend(
                plan::contexts(changes)
                    .into_iter()
                    .map(|change| message::GroupedChange {
                        app: app.to_string(),
                        change,
                    }),
            );
    }
}

/// One planned or applied change of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    pub app: String,
    /// The image repository (`ghcr.io/acme/api`).
    pub image: String,
    /// The image's name in the app config.
    pub name: String,
    pub file: String,
    pub line: usize,
    pub from: String,
    pub to: String,
    pub digest: Option<String>,
    /// Why the policy chose `to`.
    pub reason: String,
    /// The new tag alone, whatever form `to` has.
    pub tag: String,
}

/// What a pass knows of one image of one app.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageStatus {
    pub name: String,
    pub image: String,
    /// The tag the config repo deploys (first target), if found.
    pub deployed: Option<String>,
    /// The best tag the policy allows, if one is eligible: the new tag when the image is
    /// updated, the deployed one when it already is the best, and a lower one when the
    /// deployed tag is newer than every candidate and is kept (no downgrade).
    pub candidate: Option<String>,
    pub error: Option<ImageError>,
}

/// The outcome of one pass for one app.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AppReport {
    pub name: String,
    pub images: Vec<ImageStatus>,
    pub changes: Vec<PlannedChange>,
    /// The commit that carries this app's changes (after a successful push).
    pub commit: Option<String>,
    /// The pull request that carries them (pull-request mode).
    pub pull_request: Option<String>,
    /// What this pass did with that pull request (pull-request mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request_action: Option<PullRequestAction>,
    /// Unified diffs of the planned edits (dry run only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<String>,
    pub errors: Vec<AppError>,
    /// Push attempts of the repository/branch this app was written with.
    pub push_attempts: u32,
    pub pushed: bool,
}

impl AppReport {
    fn new(name: &str) -> Self {
        AppReport {
            name: name.to_string(),
            ..AppReport::default()
        }
    }
}

/// What a pass did with an app's pull request: never reported as an update when nothing was
/// done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "reason")]
pub enum PullRequestAction {
    /// A new pull request was opened.
    Opened,
    /// The open pull request got a new commit, title and body.
    Updated,
    /// The open pull request already proposes exactly these versions: nothing was done.
    Unchanged,
    /// A person closed a pull request for exactly these versions without merging it: they are
    /// not proposed again (the reason says which).
    NotReopened(String),
}

/// The outcome of one pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub apps: Vec<AppReport>,
    /// Pushes made (one per config repository and branch with changes).
    pub pushes: usize,
    /// Registry requests sent during the pass.
    pub registry_requests: u64,
    /// How long each tags listing of the pass took, by registry host (listings that ended).
    #[serde(skip)]
    pub tag_lists: Vec<(String, std::time::Duration)>,
}

impl PassReport {
    /// True when any app reported an error.
    pub fn failed(&self) -> bool {
        self.apps.iter().any(|a| !a.errors.is_empty())
    }

    /// Every planned or applied change.
    pub fn changes(&self) -> impl Iterator<Item = &PlannedChange> {
        self.apps.iter().flat_map(|a| a.changes.iter())
    }
}

/// Errors that keep the engine from starting (bad settings, missing secrets).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("registry client: {0}")]
    Registry(#[from] registry::RegistryError),
}

/// The data a pass fetched from the registries, shared by every app.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// Tags by repository name; `Err` holds why the listing failed.
    pub tags: HashMap<String, Result<Arc<Vec<String>>, registry::RegistryError>>,
    /// Metadata by repository name and tag.
    pub meta: Mutex<HashMap<String, HashMap<String, TagMeta>>>,
    /// How long each listing took, by registry host.
    pub tag_lists: Vec<(String, std::time::Duration)>,
}

impl Fetched {
    /// A snapshot of the metadata of one repository.
    pub fn meta_of(&self, repository: &str) -> HashMap<String, TagMeta> {
        self.meta
            .lock()
            .map(|m| m.get(repository).cloned().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// One app, resolved: its config, and per image the policy and editor targets.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedApp {
    pub app: App,
    pub policies: Vec<Policy>,
}

struct Inner {
    config: Config,
    apps: Vec<ResolvedApp>,
    /// Apps whose settings failed (a missing secret, a bad range): reported on every pass.
    broken: Vec<(String, SettingsError)>,
    registry: registry::Client,
    git: CloneCache,
    retry: RetryOptions,
    /// One lock per config repository URL: passes that run at once (a webhook check during a
    /// poll) take turns on a clone instead of failing on it.
    repo_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Once triggered, no new commit or push is started.
    shutdown: Option<crate::shutdown::Shutdown>,
}

/// The engine: built once per configuration, shared by every pass.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Build the registry client, the clone cache and every app's policies.
    pub fn new(config: Config) -> Result<Engine, EngineError> {
        let breaker = &config.global.registry_breaker;
        let registry = registry::Client::new(
            settings::registries(&config)?,
            ClientOptions {
                breaker_cooldown: breaker.cooldown,
                max_breaker_cooldown: breaker.max_cooldown,
                ..ClientOptions::default()
            },
        )?;
        let git_settings = settings::git(&config)?;
        if let Some(key) = &git_settings.signing_key {
            tracing::info!(
                fingerprint = %key.fingerprint(),
                "commits are signed with this SSH key"
            );
        }
        let git = CloneCache::new(config.global.workdir.clone(), git_settings)
            .with_lock_wait(config.global.git.workdir_wait);
        let mut apps = Vec::new();
        let mut broken = Vec::new();
        for app in &config.apps {
            let policies: Result<Vec<Policy>, SettingsError> = app
                .images
                .iter()
                .map(|image| settings::policy(image, &config.global.registries))
                .collect();
            match policies {
                Ok(policies) => apps.push(ResolvedApp {
                    app: app.clone(),
                    policies,
                }),
                Err(e) => broken.push((app.name.clone(), e)),
            }
        }
        let retry = RetryOptions {
            max_attempts: config.global.git.push_retries.max(1),
            ..RetryOptions::default()
        };
        Ok(Engine {
            inner: Arc::new(Inner {
                config,
                apps,
                broken,
                registry,
                git,
                retry,
                repo_locks: Mutex::new(HashMap::new()),
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
        let inner = &self.inner;
        let requests_before = inner.registry.stats().total_requests();
        let selected: Vec<&ResolvedApp> = inner
            .apps
            .iter()
            .filter(|a| options.app.as_ref().is_none_or(|name| &a.app.name == name))
            .filter(|a| !options.exclude.contains(&a.app.name))
            .filter(|a| {
                options.repositories.as_ref().is_none_or(|repos| {
                    a.app.images.iter().any(|i| repos.contains(&i.image.name()))
                })
            })
            .collect();
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
        let fetched = Arc::new(self.fetch_tags(&images).await);
        report.tag_lists.clone_from(&fetched.tag_lists);

        // Provisional decisions fetch the metadata each policy asks for.
        let now = OffsetDateTime::now_utc();
        self.fetch_metadata(&selected, &images, &fetched, now).await;

        // One blocking job per config repository, all in parallel.
        let mut by_repo: BTreeMap<String, Vec<ResolvedApp>> = BTreeMap::new();
        for app in selected {
            by_repo
                .entry(app.app.repo.clone())
                .or_default()
                .push(app.clone());
        }
        let mut jobs = JoinSet::new();
        for (url, apps) in by_repo {
            let engine = self.clone();
            let fetched = Arc::clone(&fetched);
            let dry_run = options.dry_run;
            let lock = self.repo_lock(&url);
            jobs.spawn(async move {
                let guard = lock.lock_owned().await;
                engine
                    .fetch_metadata_for_deployed(&url, &apps, &fetched, now)
                    .await;
                let handle = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || {
                    let _guard = guard;
                    engine.write_repository(&handle, &url, apps, &fetched, now, dry_run)
                })
                .await
            });
        }
        while let Some(result) = jobs.join_next().await {
            match result.and_then(|inner| inner) {
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

    async fn fetch_tags(&self, images: &BTreeMap<String, ImageRef>) -> Fetched {
        let mut jobs = JoinSet::new();
        for (name, image) in images {
            let client = self.inner.registry.clone();
            let (name, image) = (name.clone(), image.clone());
            jobs.spawn(async move {
                let started = std::time::Instant::now();
                let result = client.list_tags(&image).await;
                (name, image.registry, started.elapsed(), result)
            });
        }
        let mut fetched = Fetched::default();
        while let Some(joined) = jobs.join_next().await {
            let Ok((name, registry, elapsed, result)) = joined else {
                continue;
            };
            fetched.tag_lists.push((registry, elapsed));
            let entry = match result {
                Ok(tags) => {
                    tracing::debug!(repository = %name, tags = tags.len(), "listed tags");
                    Ok(Arc::new(tags))
                }
                Err(e) => {
                    tracing::warn!(repository = %name, error = %e, "cannot list tags");
                    Err(e)
                }
            };
            fetched.tags.insert(name, entry);
        }
        // A repository whose listing job panicked has no entry: its images report it.
        fetched
    }

    async fn fetch_metadata(
        &self,
        apps: &[&ResolvedApp],
        images: &BTreeMap<String, ImageRef>,
        fetched: &Fetched,
        now: OffsetDateTime,
    ) {
        for app in apps {
            for (image, policy) in app.app.images.iter().zip(&app.policies) {
                let name = image.image.name();
                let Some(Ok(tags)) = fetched.tags.get(&name) else {
                    continue;
                };
                let Some(reference) = images.get(&name) else {
                    continue;
                };
                // Each round asks for more tags; a policy asks at most once per tag (a platform
                // filter asks again for a tag whose platforms the registry did not give: once).
                let want_platforms = !policy.platforms.is_empty();
                let mut asked: Option<Vec<String>> = None;
                for _ in 0..tags.len() + 2 {
                    let meta = fetched.meta_of(&name);
                    let Ok(Step::NeedMetadata(wanted)) =
                        policy.select(tags, Current::default(), &meta, now)
                    else {
                        break;
                    };
                    if asked.as_ref() == Some(&wanted) {
                        break;
                    }
                    asked = Some(wanted.clone());
                    let mut found = Vec::new();
                    for tag in wanted {
                        found.push((
                            tag.clone(),
                            self.tag_meta(reference, &tag, want_platforms).await,
                        ));
                    }
                    if let Ok(mut all) = fetched.meta.lock() {
                        all.entry(name.clone()).or_default().extend(found);
                    }
                }
            }
        }
    }

    /// Some policies need registry metadata of the deployed tag too (newest_build compares
    /// build times, `digest` compares digests). Plan once on the branch heads, without writing,
    /// and fetch what the plans ask for. Only for apps whose policies use metadata.
    async fn fetch_metadata_for_deployed(
        &self,
        url: &str,
        apps: &[ResolvedApp],
        fetched: &Arc<Fetched>,
        now: OffsetDateTime,
    ) {
        let uses_metadata = |p: &Policy| {
            matches!(p.kind, Kind::NewestBuild | Kind::Digest { .. })
                || p.pin_digest
                || p.min_age.is_some()
                || !p.platforms.is_empty()
        };
        let platform_repositories: std::collections::HashSet<String> = apps
            .iter()
            .flat_map(|a| a.app.images.iter().zip(&a.policies))
            .filter(|(_, p)| !p.platforms.is_empty())
            .map(|(image, _)| image.image.name())
            .collect();
        let apps: Vec<ResolvedApp> = apps
            .iter()
            .filter(|a| a.policies.iter().any(uses_metadata))
            .cloned()
            .collect();
        if apps.is_empty() {
            return;
        }
        // Each round can only ask for tags it has not got; two rounds settle every policy.
        for _ in 0..2 {
            let engine = self.clone();
            let (url, apps_round, fetched_round) =
                (url.to_string(), apps.clone(), Arc::clone(fetched));
            let missing = tokio::task::spawn_blocking(move || {
                let mut missing = Vec::new();
                let mut by_branch: BTreeMap<&str, Vec<&ResolvedApp>> = BTreeMap::new();
                for app in &apps_round {
                    by_branch
                        .entry(app.app.branch.as_str())
                        .or_default()
                        .push(app);
                }
                for (branch, apps) in by_branch {
                    let Ok(checkout) = engine.inner.git.checkout(&url, branch) else {
                        continue;
                    };
                    for app in apps {
                        missing.extend(
                            plan::plan_app(checkout.workdir(), app, &fetched_round, now).missing,
                        );
                    }
                }
                missing
            })
            .await
            .unwrap_or_default();
            if missing.is_empty() {
                return;
            }
            for (repository, tags) in missing {
                let Ok(image) = ImageRef::parse(&repository) else {
                    continue;
                };
                let want_platforms = platform_repositories.contains(&repository);
                let mut found = Vec::new();
                for tag in tags {
                    found.push((
                        tag.clone(),
                        self.tag_meta(&image, &tag, want_platforms).await,
                    ));
                }
                if let Ok(mut all) = fetched.meta.lock() {
                    all.entry(repository).or_default().extend(found);
                }
            }
        }
    }

    /// A tag's digest and creation time, and with `want_platforms` the platforms it has
    /// images for (`None` when the registry failed to say: the policy then asks again, and the
    /// tag is never picked on a guess).
    async fn tag_meta(&self, image: &ImageRef, tag: &str, want_platforms: bool) -> TagMeta {
        let client = &self.inner.registry;
        let digest = match client.digest(image, tag).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(image = %image.name(), tag, error = %e, "cannot read the digest");
                return TagMeta::default();
            }
        };
        let created = client.created(image, &digest).await.unwrap_or_else(|e| {
            tracing::warn!(image = %image.name(), tag, error = %e, "cannot read the creation time");
            None
        });
        let platforms = if want_platforms {
            match client.platforms(image, &digest).await {
                Ok(platforms) => Some(platforms),
                Err(e) => {
                    tracing::warn!(image = %image.name(), tag, error = %e, "cannot read the platforms");
                    None
                }
            }
        } else {
            None
        };
        TagMeta {
            digest: Some(digest),
            created,
            platforms,
        }
    }

    /// Everything one config repository needs: commit-mode apps branch by branch (one push per
    /// branch), then each pull-request app. Runs on a blocking thread.
    fn write_repository(
        &self,
        handle: &tokio::runtime::Handle,
        url: &str,
        apps: Vec<ResolvedApp>,
        fetched: &Fetched,
        now: OffsetDateTime,
        dry_run: bool,
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
            let (apps, pushed) = self.write_branch(url, &branch, &apps, fetched, now, dry_run);
            pushes += usize::from(pushed);
            reports.extend(apps);
        }
        for app in pull_requests {
            let (report, pushed) =
                pull_request::write(self, handle, url, &app, fetched, now, dry_run);
            pushes += usize::from(pushed);
            reports.push(report);
        }
        (reports, pushes)
    }

    /// Commit mode: plan every app of one branch on the remote head, one commit per app, one
    /// push; replan on the new head when the push is rejected.
    fn write_branch(
        &self,
        url: &str,
        branch: &str,
        apps: &[ResolvedApp],
        fetched: &Fetched,
        now: OffsetDateTime,
        dry_run: bool,
    ) -> (Vec<AppReport>, bool) {
        let inner = &self.inner;
        let mut reports: Vec<AppReport> =
            apps.iter().map(|a| AppReport::new(&a.app.name)).collect();
        let git_config = &self.config().global.git;
        let result = git::commit_and_push(&inner.git, url, branch, &inner.retry, |checkout| {
            let mut commits = 0;
            // With `git.group_commits`: the apps whose files are written, awaiting one commit.
            let mut group = Group::default();
            for (index, (app, report)) in apps.iter().zip(reports.iter_mut()).enumerate() {
                *report = AppReport::new(&app.app.name);
                let planned = plan::plan_app(checkout.workdir(), app, fetched, now);
                report.images = planned.images;
                report.errors = planned.errors;
                report.changes = planned.changes;
                if planned.files.is_empty() {
                    continue;
                }
                if dry_run {
                    report.diffs = planned.files.iter().map(|f| f.diff()).collect();
                    // The message a commit would carry: a template that fails here fails there.
                    let rows = plan::contexts(&report.changes);
                    let rendered = if git_config.group_commits {
                        let grouped: Vec<message::GroupedChange> = rows
                            .into_iter()
                            .map(|change| message::GroupedChange {
                                app: app.app.name.clone(),
                                change,
                            })
                            .collect();
                        message::render_group(git_config.group_commit_message.as_deref(), &grouped)
                            .map(drop)
                            .map_err(AppError::template)
                    } else {
                        message::render(app.app.commit_message.as_deref(), &app.app.name, &rows)
                            .map(drop)
                            .map_err(AppError::template)
                    };
                    if let Err(e) = rendered {
                        report.errors.push(e);
                    }
                    continue;
                }
                if self.shutting_down() {
                    report.errors.push(NOT_COMMITTED_AT_SHUTDOWN);
                    continue;
                }
                if git_config.group_commits {
                    // Written now, so that the next app plans on top of these files.
                    match plan::write_files(checkout.workdir(), &planned.files) {
                        Ok(paths) => group.add(index, &app.app.name, paths, &report.changes),
                        Err(e) => report.errors.push(e),
                    }
                    continue;
                }
                match plan::write_and_commit(checkout, &app.app, &planned.files, &report.changes) {
                    Ok(Some(oid)) => {
                        report.commit = Some(oid.to_string());
                        commits += 1;
                    }
                    Ok(None) => {}
                    Err(e) => report.errors.push(e),
                }
            }
            if !group.members.is_empty() && self.shutting_down() {
                for &i in &group.members {
                    reports[i].errors.push(NOT_COMMITTED_AT_SHUTDOWN);
                }
            } else if !group.members.is_empty() {
                let committed = message::render_group(
                    git_config.group_commit_message.as_deref(),
                    &group.changes,
                )
                .map_err(AppError::template)
                .and_then(|msg| checkout.commit(&group.paths, &msg).map_err(AppError::from));
                for &i in &group.members {
                    match &committed {
                        Ok(oid) => reports[i].commit = oid.map(|o| o.to_string()),
                        Err(e) => reports[i].errors.push(e.clone()),
                    }
                }
                commits += usize::from(matches!(committed, Ok(Some(_))));
            }
            Ok::<usize, std::convert::Infallible>(commits)
        });
        let pushed = match result {
            Ok(push) => {
                for report in &mut reports {
                    report.push_attempts = push.attempts;
                    report.pushed = push.pushed && report.commit.is_some();
                    if report.pushed {
                        tracing::info!(
                            app = %report.name,
                            commit = report.commit.as_deref().unwrap_or(""),
                            changes = report.changes.len(),
                            "pushed"
                        );
                        for c in &report.changes {
                            tracing::info!(app = %c.app, image = %c.image, file = %c.file, from = %c.from, to = %c.to, "updated");
                        }
                    }
                }
                push.pushed
            }
            Err(e) => {
                tracing::warn!(url = %git::redact_url(url), branch, error = %e, "write-back failed");
                let error = AppError::WriteBack(Arc::new(e));
                for report in &mut reports {
                    report.commit = None;
                    report.errors.push(error.clone());
                }
                false
            }
        };
        (reports, pushed)
    }

    fn repo_lock(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.inner.repo_locks.lock() {
            Ok(mut locks) => Arc::clone(locks.entry(url.to_string()).or_default()),
            // A poisoned map only means another pass panicked while inserting; a fresh lock
            // is still correct for this pass.
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub(crate) fn git(&self) -> &CloneCache {
        &self.inner.git
    }

    pub(crate) fn author_email(&self) -> &str {
        &self.inner.config.global.git.author_email
    }
}
