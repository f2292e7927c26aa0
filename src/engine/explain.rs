//! `imagebump explain`: the whole decision for one app, tag by tag.
//!
//! Invariant: read-only. It reads the branch head of the app's config repo and asks the
//! registry exactly as a pass does (the same tag listing and the same [`fetch::decide`] loop),
//! then lets the policy name every tag's verdict ([`crate::policy::Policy::explain`], pure).
//! Nothing is committed, pushed or proposed. A problem with one image (a registry that fails,
//! a target that does not name the image) is that image's error; the others are explained.
//! For a pull-request app whose images would change, the forge is asked (read-only) whether
//! an open pull request already proposes these very versions (then the app waits for it).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use super::{
    Engine, Mode, ResolvedApp, WriteContext, fetch, plan, promote, pull_request, rollback, settings,
};
use crate::config::{OnRollback, TargetConfig, WriteMode};
use crate::edit;
use crate::forge::{self, Action, Forge};
use crate::git;
use crate::history::rollback::Rollback;
use crate::policy::{Current, Explanation, Why};
use crate::reference::ImageRef;
use crate::report::{ImageError, SettingsError};

/// Why an app cannot be explained at all.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("no app named `{app}` (apps: {known})")]
    UnknownApp { app: String, known: String },
    #[error("app `{app}` has no image named `{image}` (images: {known})")]
    UnknownImage {
        app: String,
        image: String,
        known: String,
    },
    #[error("app `{app}`: {error}")]
    Settings { app: String, error: SettingsError },
    #[error("app `{app}`: cannot read its config repo: {error}")]
    Checkout { app: String, error: String },
}

/// The decision for one app.
#[derive(Debug, Clone, Serialize)]
pub struct AppExplanation {
    pub app: String,
    /// The app file.
    pub file: String,
    /// The config repository, without credentials.
    pub repo: String,
    pub branch: String,
    /// `commit` or `pull-request`.
    pub write: String,
    pub images: Vec<ImageExplanation>,
    /// Pull-request apps whose images would change: what the forge holds for these versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<ProposalExplanation>,
    /// Why the forge could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request_error: Option<String>,
}

impl AppExplanation {
    /// True when some image could not be explained (its error says why), or the forge could
    /// not be asked.
    pub fn failed(&self) -> bool {
        self.pull_request_error.is_some()
            || self
                .images
                .iter()
                .any(|i| i.error.is_some() || i.decisions.iter().any(|d| d.error.is_some()))
    }
}

/// What the forge holds for the versions a pull-request app would propose.
#[derive(Debug, Clone, Serialize)]
pub struct ProposalExplanation {
    /// `waiting`: an open pull request proposes exactly these versions (it waits to be
    /// merged); `would_update`: an open one proposes others, the next pass updates it;
    /// `would_open`: none is open, the next pass opens one; `not_proposed_again`: a person
    /// closed one for these versions without merging it.
    pub state: &'static str,
    pub number: Option<u64>,
    pub url: Option<String>,
    /// The same, in words.
    pub text: String,
}

/// The decision for one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageExplanation {
    pub name: String,
    /// The repository (`ghcr.io/acme/api`).
    pub image: String,
    /// The policy in words.
    pub policy: String,
    /// What each target deploys, with its file and line.
    pub targets: Vec<TargetDeployed>,
    /// One decision per distinct deployed version (usually one).
    pub decisions: Vec<DecisionExplanation>,
    /// Why nothing could be decided for the image (its tag list failed).
    pub error: Option<String>,
}

/// One reference to the image in a target file.
#[derive(Debug, Clone, Serialize)]
pub struct TargetDeployed {
    pub file: String,
    /// The target as configured: `file`, `file (path a.b)`, `file (marker ns:name)`.
    pub target: String,
    /// 1-based line of the reference, when found.
    pub line: Option<usize>,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// Why the target deploys nothing known (file missing, image not named in it, ...).
    pub error: Option<String>,
}

/// The policy's decision for one deployed version, and every tag's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionExplanation {
    /// The deployed tag the decision starts from.
    pub deployed: Option<String>,
    pub deployed_digest: Option<String>,
    /// The tag (and digest) the targets would get; `null` when nothing can be chosen.
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// Nothing would change.
    pub keep_current: bool,
    /// The reason as a value, and in words.
    pub why: Option<Why>,
    pub why_text: Option<String>,
    /// The policy's full sentence (as in commit messages and logs).
    pub reason: Option<String>,
    /// A person's rollback the decision honours (`on_rollback`), in words; the tag verdicts
    /// are the policy's alone and do not repeat it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    /// Every tag's verdict.
    pub tags: Option<Explanation>,
    /// Why the decision could not be made (the registry would not describe a tag).
    pub error: Option<String>,
}

impl Engine {
    /// Explain app `app` (only image `image`, when given): read the deployed tags on the
    /// branch head, ask the registry, decide as a pass would, and name every tag's verdict.
    pub async fn explain(
        &self,
        app: &str,
        image: Option<&str>,
    ) -> Result<AppExplanation, ExplainError> {
        let inner = &self.inner;
        if let Some((_, error)) = inner.broken.iter().find(|(name, _)| name == app) {
            return Err(ExplainError::Settings {
                app: app.to_owned(),
                error: error.clone(),
            });
        }
        let Some(resolved) = inner.apps.iter().find(|a| a.app.name == app) else {
            let known: Vec<&str> = inner.apps.iter().map(|a| a.app.name.as_str()).collect();
            return Err(ExplainError::UnknownApp {
                app: app.to_owned(),
                known: known.join(", "),
            });
        };
        let chosen: Vec<usize> = (0..resolved.app.images.len())
            .filter(|&i| image.is_none_or(|name| resolved.app.images[i].name == name))
            .collect();
        if let (Some(image), true) = (image, chosen.is_empty()) {
            let known: Vec<&str> = resolved
                .app
                .images
                .iter()
                .map(|i| i.name.as_str())
                .collect();
            return Err(ExplainError::UnknownImage {
                app: app.to_owned(),
                image: image.to_owned(),
                known: known.join(", "),
            });
        }

        let mut repositories: BTreeMap<String, ImageRef> = BTreeMap::new();
        for &i in &chosen {
            let image = &resolved.app.images[i].image;
            repositories
                .entry(image.name())
                .or_insert_with(|| image.clone());
        }
        let now = OffsetDateTime::now_utc();
        let sources = promote::read_sources(self, Mode::DryRun, &[resolved], now).await;
        let ctx = Arc::new(WriteContext {
            sources,
            bound: promote::bound_text(self),
            mode: Mode::DryRun,
            diffs: false,
            now,
            tags: fetch::tag_lists(&inner.registry, &repositories, &super::progress::Quiet).await,
            memo: fetch::MetaMemo::default(),
            handle: tokio::runtime::Handle::current(),
            history: Arc::clone(&inner.history),
            bot: inner.config.global.git.author_email.clone(),
            progress: Arc::new(super::progress::Quiet),
        });
        let (tags, memo, now) = (&ctx.tags, &ctx.memo, ctx.now);
        let deployed = self
            .read_targets(resolved, &chosen, Arc::clone(&ctx))
            .await?;

        let mut images = Vec::new();
        for (&i, found) in chosen.iter().zip(deployed) {
            let (targets, rollbacks): (Vec<TargetDeployed>, Vec<FoundRollback>) =
                found.into_iter().unzip();
            let config = &resolved.app.images[i];
            let policy = &resolved.policies[i];
            let repository = config.image.name();
            let mut explained = ImageExplanation {
                name: config.name.clone(),
                image: repository.clone(),
                policy: policy.summary(),
                targets,
                decisions: Vec::new(),
                error: None,
            };
            let tags = match tags.of(&repository) {
                Ok(tags) => tags,
                Err(error) => {
                    explained.error = Some(error.to_string());
                    images.push(explained);
                    continue;
                }
            };
            // One decision per deployed version and rollback, as a pass makes them.
            let mut versions: Vec<(Option<String>, Option<String>, FoundRollback)> = Vec::new();
            for (target, rollback) in explained.targets.iter().zip(rollbacks) {
                let version = (target.tag.clone(), target.digest.clone(), rollback);
                if target.error.is_none() && !versions.contains(&version) {
                    versions.push(version);
                }
            }
            let setting = rollback::setting(&resolved.app, config);
            for (tag, digest, found) in versions {
                let current = Current {
                    tag: tag.as_deref(),
                    digest: digest.as_deref(),
                };
                let decided = match (&found, &config.promote) {
                    (Some(Err(error)), _) => Err(DecideError::Other(error.clone())),
                    (found, Some(promote_config)) => {
                        let rollback = match found {
                            Some(Ok(Some(r))) => Some((r, setting)),
                            _ => None,
                        };
                        promote::decide_from(
                            &ctx.promotion(&inner.registry),
                            &ctx.sources,
                            promote_config,
                            (config, policy),
                            &tags,
                            current,
                            rollback,
                        )
                        .await
                        .map(|made| made.decision)
                        .map_err(DecideError::from)
                    }
                    (Some(Ok(found)), None) => rollback::decide(
                        &inner.registry,
                        (&ctx.memo, ctx.now),
                        config,
                        policy,
                        &tags,
                        current,
                        found.as_ref().map(|r| (r, setting)),
                    )
                    .await
                    .map_err(DecideError::from),
                    (None, None) => rollback::decide(
                        &inner.registry,
                        (&ctx.memo, ctx.now),
                        config,
                        policy,
                        &tags,
                        current,
                        None,
                    )
                    .await
                    .map_err(DecideError::from),
                };
                let meta = memo.of(&repository);
                let mut decision = DecisionExplanation {
                    deployed: tag.clone(),
                    deployed_digest: digest.clone(),
                    tag: None,
                    digest: None,
                    keep_current: false,
                    why: None,
                    why_text: None,
                    reason: None,
                    rollback: match &found {
                        Some(Ok(Some(r))) => Some(format!(
                            "{} rolled {} back to {} in {} (on_rollback: {}): {}",
                            r.by,
                            r.from,
                            r.to,
                            r.commit,
                            setting.as_str(),
                            match setting {
                                OnRollback::SkipVersion =>
                                    format!("tags up to {} are not proposed again", r.from),
                                OnRollback::Hold => {
                                    "no update until a person changes the value".to_string()
                                }
                                OnRollback::Ignore => "ignored".to_string(),
                            }
                        )),
                        _ => None,
                    },
                    tags: None,
                    error: None,
                };
                match decided {
                    Ok(d) => {
                        decision.why_text = Some(d.why.to_string());
                        decision.why = Some(d.why);
                        decision.reason = Some(d.reason);
                        decision.keep_current = d.keep_current;
                        decision.tag = Some(d.tag);
                        decision.digest = d.digest;
                    }
                    Err(DecideError::NoMatch(error)) => {
                        decision.why_text = Some(error.why.to_string());
                        decision.why = Some(*error.why);
                        decision.reason = Some(error.reason);
                    }
                    Err(DecideError::Other(error)) => decision.error = Some(error),
                }
                match policy.explain(&tags, current, &meta, now) {
                    Ok(verdicts) => decision.tags = Some(verdicts),
                    Err(missing) => {
                        decision.error.get_or_insert_with(|| {
                            format!(
                                "the registry did not describe {}: no verdicts",
                                missing.join(", ")
                            )
                        });
                    }
                }
                explained.decisions.push(decision);
            }
            images.push(explained);
        }
        let (pull_request, pull_request_error) = match resolved.app.write {
            WriteMode::PullRequest => match self.proposal(resolved, Arc::clone(&ctx)).await {
                Ok(proposal) => (proposal, None),
                Err(error) => (None, Some(error)),
            },
            WriteMode::Commit => (None, None),
        };
        Ok(AppExplanation {
            app: resolved.app.name.clone(),
            file: resolved.app.file.display().to_string(),
            repo: crate::git::redact_url(&resolved.app.repo),
            branch: resolved.app.branch.clone(),
            write: match resolved.app.write {
                WriteMode::Commit => "commit".into(),
                WriteMode::PullRequest => "pull-request".into(),
            },
            images,
            pull_request,
            pull_request_error,
        })
    }

    /// A pull-request app: plan it as a dry run (every image, as the pass would), and when it
    /// would change something ask the forge what it holds for the bot branch. `Ok(None)`:
    /// nothing would be proposed.
    async fn proposal(
        &self,
        app: &ResolvedApp,
        ctx: Arc<WriteContext>,
    ) -> Result<Option<ProposalExplanation>, String> {
        let engine = self.clone();
        let planned_app = app.clone();
        let changes = tokio::task::spawn_blocking(move || {
            let checkout = engine
                .git(Mode::DryRun)
                .checkout(&planned_app.app.repo, &planned_app.app.branch)
                .map_err(|e| e.to_string())?;
            let plan = plan::plan_app(engine.registry(), &ctx, &checkout, &planned_app);
            Ok::<_, String>(plan.changes)
        })
        .await
        .map_err(|e| e.to_string())??;
        if changes.is_empty() {
            return Ok(None);
        }
        let config = &app.app;
        let branch = pull_request::bot_branch(
            config
                .pull_request
                .as_ref()
                .and_then(|pr| pr.branch.as_deref()),
            &config.name,
        )?;
        let forge = Forge::new(settings::forge(config).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let found = forge
            .find_pull_requests(&branch, &config.branch)
            .await
            .map_err(|e| e.to_string())?;
        let rows = plan::contexts(&changes);
        let said = |state, pr: Option<&forge::PullRequest>, text: String| ProposalExplanation {
            state,
            number: pr.map(|pr| pr.number),
            url: pr.map(|pr| pr.url.clone()),
            text,
        };
        Ok(Some(
            match forge::decide(&found, &forge::fingerprint(&rows)) {
                Action::UpToDate(pr) => said(
                    "waiting",
                    Some(&pr),
                    format!(
                        "waiting for pull request #{} ({}) to be merged: it proposes these versions",
                        pr.number, pr.url
                    ),
                ),
                Action::Update(pr) => said(
                    "would_update",
                    Some(&pr),
                    format!(
                        "pull request #{} ({}) proposes other versions: the next pass updates it",
                        pr.number, pr.url
                    ),
                ),
                Action::Skip { pr, reason } => said(
                    "not_proposed_again",
                    Some(&pr),
                    format!("not proposed again: {reason}"),
                ),
                Action::Create => said(
                    "would_open",
                    None,
                    format!("no pull request from {branch} yet: the next pass opens one"),
                ),
            },
        ))
    }

    /// What every target of the chosen images deploys on the branch head (a blocking clone
    /// or fetch, on a blocking thread).
    async fn read_targets(
        &self,
        app: &ResolvedApp,
        chosen: &[usize],
        ctx: Arc<WriteContext>,
    ) -> Result<Vec<Vec<(TargetDeployed, FoundRollback)>>, ExplainError> {
        let engine = self.clone();
        let app = app.clone();
        let chosen = chosen.to_vec();
        let name = app.app.name.clone();
        let checkout_error = |error: String| ExplainError::Checkout {
            app: name.clone(),
            error,
        };
        tokio::task::spawn_blocking(move || {
            let checkout = engine
                .git(Mode::DryRun)
                .checkout(&app.app.repo, &app.app.branch)
                .map_err(|e| e.to_string())?;
            let root = checkout.workdir();
            Ok(chosen
                .iter()
                .map(|&i| {
                    let image = &app.app.images[i];
                    image
                        .targets
                        .iter()
                        .zip(&app.targets[i])
                        .flat_map(|(config, target)| {
                            let found = find_in_target(root, config, target, &image.image);
                            // As a pass does: the rollback of each file that deploys something.
                            let mut rollbacks: Vec<(String, FoundRollback)> = Vec::new();
                            found
                                .into_iter()
                                .map(|f| {
                                    if f.error.is_some() {
                                        return (f, None);
                                    }
                                    if let Some((_, known)) =
                                        rollbacks.iter().find(|(file, _)| *file == f.file)
                                    {
                                        let known = known.clone();
                                        return (f, known);
                                    }
                                    let rollback = Some(
                                        rollback::find(
                                            ctx.rollbacks(),
                                            &checkout,
                                            &app.app,
                                            image,
                                            &app.policies[i],
                                            (&f.file, target),
                                        )
                                        .map_err(|e| e.to_string()),
                                    );
                                    rollbacks.push((f.file.clone(), rollback.clone()));
                                    (f, rollback)
                                })
                                .collect::<Vec<_>>()
                        })
                        .collect()
                })
                .collect())
        })
        .await
        .map_err(|e| checkout_error(e.to_string()))?
        .map_err(checkout_error)
    }
}

/// Whether a target's latest change is a person's rollback (`None`: the target deploys
/// nothing known; `Err`: the history could not be read).
type FoundRollback = Option<Result<Option<Rollback>, String>>;

/// Why a decision could not be made: no tag can be chosen (with its why), or another error.
enum DecideError {
    NoMatch(Box<crate::policy::NoMatch>),
    Other(String),
}

impl From<ImageError> for DecideError {
    fn from(error: ImageError) -> Self {
        match error {
            ImageError::NoMatch { error, .. } => DecideError::NoMatch(error),
            other => DecideError::Other(other.to_string()),
        }
    }
}

/// Every reference to `image` in one target (in each YAML file under a directory target, as a
/// pass looks), or entries saying why there is none.
fn find_in_target(
    root: &Path,
    config: &TargetConfig,
    target: &edit::Target,
    image: &ImageRef,
) -> Vec<TargetDeployed> {
    let described = match (&config.path, &config.marker) {
        (Some(path), _) => format!("{} (path {path})", config.file),
        (None, Some(marker)) => format!("{} (marker {marker})", config.file),
        (None, None) => config.file.clone(),
    };
    let entry = |file: &str, line, tag, digest, error| TargetDeployed {
        file: file.to_owned(),
        target: described.clone(),
        line,
        tag,
        digest,
        error,
    };
    let in_file = |file: &str| {
        plan::read(root, file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| edit::find(&bytes, target, image).map_err(|e| e.to_string()))
    };
    if !plan::is_directory(root, config) {
        return match in_file(&config.file) {
            Ok(found) if found.is_empty() => vec![entry(
                &config.file,
                None,
                None,
                None,
                Some(format!("{} is not named in {}", image.name(), config.file)),
            )],
            Ok(found) => found
                .into_iter()
                .map(|f| entry(&config.file, Some(f.line), f.tag, f.digest, None))
                .collect(),
            Err(error) => vec![entry(&config.file, None, None, None, Some(error))],
        };
    }
    let listing = match git::yaml_files_under(root, Path::new(&config.file)) {
        Ok(listing) => listing,
        Err(error) => {
            return vec![entry(
                &config.file,
                None,
                None,
                None,
                Some(error.to_string()),
            )];
        }
    };
    let mut out = Vec::new();
    for file in &listing.files {
        match in_file(file) {
            Ok(found) => out.extend(
                found
                    .into_iter()
                    .map(|f| entry(file, Some(f.line), f.tag, f.digest, None)),
            ),
            // A pass skips such a file and reports it; so does this.
            Err(error) => out.push(entry(
                file,
                None,
                None,
                None,
                Some(format!("skipped: {error}")),
            )),
        }
    }
    if out.iter().all(|e| e.error.is_some()) {
        out.push(entry(
            &config.file,
            None,
            None,
            None,
            Some(format!(
                "no YAML file under {} names {} ({} files)",
                config.file,
                image.name(),
                listing.files.len()
            )),
        ));
    }
    out
}
