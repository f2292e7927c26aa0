//! `imagebump explain`: the whole decision for one app, tag by tag.
//!
//! Invariant: read-only. It reads the branch head of the app's config repo and asks the
//! registry exactly as a pass does (the same tag listing and the same [`fetch::decide`] loop),
//! then lets the policy name every tag's verdict ([`crate::policy::Policy::explain`], pure).
//! Nothing is committed, pushed or proposed. A problem with one image (a registry that fails,
//! a target that does not name the image) is that image's error; the others are explained.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use super::{Engine, ResolvedApp, fetch, plan, rollback};
use crate::config::{TargetConfig, WriteMode};
use crate::edit;
use crate::history::rollback::Rollback;
use crate::policy::{Current, Explanation, Why};
use crate::reference::ImageRef;
use crate::report::SettingsError;

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
}

impl AppExplanation {
    /// True when some image could not be explained (its error says why).
    pub fn failed(&self) -> bool {
        self.images
            .iter()
            .any(|i| i.error.is_some() || i.decisions.iter().any(|d| d.error.is_some()))
    }
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
        let tags = fetch::tag_lists(&inner.registry, &repositories, &super::progress::Quiet).await;
        let now = OffsetDateTime::now_utc();
        let (deployed, rollbacks) = self.read_targets(resolved, &chosen, now).await?;
        let memo = fetch::MetaMemo::default();

        let mut images = Vec::new();
        for ((&i, targets), rolled_back) in chosen.iter().zip(deployed).zip(rollbacks) {
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
            let setting = rollback::setting(&resolved.app, config);
            let rolled_back = match rolled_back {
                Ok(found) => found,
                Err(error) => {
                    explained.error = Some(error.to_string());
                    images.push(explained);
                    continue;
                }
            };
            let tags = match tags.of(&repository) {
                Ok(tags) => tags,
                Err(error) => {
                    explained.error = Some(error.to_string());
                    images.push(explained);
                    continue;
                }
            };
            let mut versions: Vec<(Option<String>, Option<String>)> = Vec::new();
            for target in &explained.targets {
                let version = (target.tag.clone(), target.digest.clone());
                if target.error.is_none() && !versions.contains(&version) {
                    versions.push(version);
                }
            }
            for (tag, digest) in versions {
                let current = Current {
                    tag: tag.as_deref(),
                    digest: digest.as_deref(),
                };
                // The rollback of the targets deploying this version, if any.
                let found = rolled_back.as_ref().filter(|r| {
                    r.to.tag.as_deref() == current.tag && r.to.digest.as_deref() == current.digest
                });
                let decided = rollback::decide(
                    &inner.registry,
                    (&memo, now),
                    config,
                    policy,
                    &tags,
                    current,
                    found.map(|r| (r, setting)),
                )
                .await;
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
                    Err(crate::report::ImageError::NoMatch { error, .. }) => {
                        decision.why_text = Some(error.why.to_string());
                        decision.why = Some(*error.why);
                        decision.reason = Some(error.reason);
                    }
                    Err(error) => decision.error = Some(error.to_string()),
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
        })
    }

    /// What every target of the chosen images deploys on the branch head, and per image the
    /// rollback of its first rolled-back target (a blocking clone or fetch and history read,
    /// on a blocking thread).
    #[allow(clippy::type_complexity)]
    async fn read_targets(
        &self,
        app: &ResolvedApp,
        chosen: &[usize],
        now: OffsetDateTime,
    ) -> Result<
        (
            Vec<Vec<TargetDeployed>>,
            Vec<Result<Option<Rollback>, crate::report::ImageError>>,
        ),
        ExplainError,
    > {
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
                .git()
                .checkout(&app.app.repo, &app.app.branch)
                .map_err(|e| e.to_string())?;
            let root = checkout.workdir();
            let deployed = chosen
                .iter()
                .map(|&i| {
                    let image = &app.app.images[i];
                    image
                        .targets
                        .iter()
                        .zip(&app.targets[i])
                        .flat_map(|(config, target)| {
                            find_in_target(root, config, target, &image.image)
                        })
                        .collect()
                })
                .collect();
            let reader = rollback::Reader {
                history: &engine.inner.history,
                bot: &engine.inner.config.global.git.author_email,
                now,
            };
            let rollbacks = chosen
                .iter()
                .map(|&i| {
                    let image = &app.app.images[i];
                    let mut found = None;
                    for (config, target) in image.targets.iter().zip(&app.targets[i]) {
                        found = rollback::find(
                            reader,
                            &checkout,
                            &app.app,
                            image,
                            &app.policies[i],
                            (&config.file, target),
                        )?;
                        if found.is_some() {
                            break;
                        }
                    }
                    Ok(found)
                })
                .collect();
            Ok((deployed, rollbacks))
        })
        .await
        .map_err(|e| checkout_error(e.to_string()))?
        .map_err(checkout_error)
    }
}

/// Every reference to `image` in one target, or one entry saying why there is none.
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
    let entry = |line, tag, digest, error| TargetDeployed {
        file: config.file.clone(),
        target: described.clone(),
        line,
        tag,
        digest,
        error,
    };
    let found = plan::read(root, &config.file)
        .map_err(|e| e.to_string())
        .and_then(|bytes| edit::find(&bytes, target, image).map_err(|e| e.to_string()));
    match found {
        Ok(found) if found.is_empty() => vec![entry(
            None,
            None,
            None,
            Some(format!("{} is not named in {}", image.name(), config.file)),
        )],
        Ok(found) => found
            .into_iter()
            .map(|f| entry(Some(f.line), f.tag, f.digest, None))
            .collect(),
        Err(error) => vec![entry(None, None, None, Some(error))],
    }
}
