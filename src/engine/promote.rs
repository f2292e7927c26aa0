//! Promotion in a pass (issue 19, part 2): the source apps' histories read once per pass
//! ([`read_sources`], before the repository jobs start), and the decision of a promoted image
//! ([`decide`]): the tag [`crate::promote`] says soaked in the source, with the destination's
//! own policy, rollbacks and digest rule on top.
//!
//! Invariant: a promoted image is never given a tag its source did not soak: without a
//! readable source history the image fails (never falls back to the registry's newest), and
//! the destination's policy only ever sees the one candidate. The source is read through the
//! engine's history cache, in its own clone (one per repository URL), under that clone's lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;

use super::{Engine, Mode, ResolvedApp, fetch, rollback};
use crate::config::{ImageConfig, PromoteConfig, PromoteTrust};
use crate::edit;
use crate::forge::{self, PromotionRow};
use crate::git;
use crate::history::rollback::Rollback;
use crate::history::{TargetHistory, TargetValue};
use crate::policy::{Current, Decision, Policy, Promotion, Why};
use crate::promote::{self, Candidate, Rules};
use crate::registry;
use crate::report::ImageError;

/// One source target as read this pass: the source app's first target of the image.
#[derive(Debug)]
pub(crate) struct SourceRead {
    /// The source app.
    pub app: String,
    /// Its repository URL (for commit links).
    pub repo: String,
    pub file: String,
    /// The line of the image's reference on the source branch's head, when found.
    pub line: Option<usize>,
    pub history: Arc<TargetHistory>,
    /// Per allowed-signers file a `trust: signed` image names, the first-parent commits of the
    /// history whose signature verified (or why the file could not be read).
    pub verified: HashMap<PathBuf, Result<BTreeSet<git::Oid>, String>>,
}

/// One source as read, or why it could not be.
pub(crate) type SourceResult = Result<Arc<SourceRead>, ImageError>;

/// The sources of a pass, by (source app, image name there).
pub(crate) type Sources = HashMap<(String, String), SourceResult>;

/// The promotion of an image, with the evidence a pull request shows.
#[derive(Debug, Clone)]
pub(crate) struct Promoted {
    pub decision: Decision,
    pub evidence: Option<PromotionRow>,
}

/// Read the history of every source the promoted images of `apps` name, one repository after
/// another, each under its clone's lock, through the clone cache of `mode`. A source that cannot
/// be read is an error of every image promoted from it.
pub(crate) async fn read_sources(
    engine: &Engine,
    mode: Mode,
    apps: &[&ResolvedApp],
    now: OffsetDateTime,
) -> Sources {
    // Per source, the allowed-signers files its `trust: signed` readers name.
    let mut wanted: BTreeMap<(String, String), BTreeSet<PathBuf>> = BTreeMap::new();
    for promote in apps
        .iter()
        .flat_map(|a| a.app.images.iter())
        .filter_map(|i| i.promote.as_ref())
    {
        let files = wanted
            .entry((promote.from.clone(), promote.image.clone()))
            .or_default();
        if promote.trust == PromoteTrust::Signed
            && let Some(file) = &promote.allowed_signers
        {
            files.insert(file.clone());
        }
    }
    let mut sources = Sources::new();
    // Per repository and branch, the sources there.
    let mut by_repo: BTreeMap<(String, String), Vec<Wanted>> = BTreeMap::new();
    for ((from, image), signers) in wanted {
        let found = engine.inner.apps.iter().find(|a| a.app.name == from);
        let index = found.and_then(|a| a.app.images.iter().position(|i| i.name == image));
        match (found, index) {
            (Some(source), Some(index)) => by_repo
                .entry((source.app.repo.clone(), source.app.branch.clone()))
                .or_default()
                .push((source.clone(), index, signers)),
            _ => {
                let reason = match engine.inner.broken.iter().find(|(name, _)| *name == from) {
                    Some((_, error)) => format!("its settings are broken: {error}"),
                    None => format!("no app `{from}` with an image `{image}`"),
                };
                sources.insert(
                    (from.clone(), image),
                    Err(ImageError::PromoteSource { app: from, reason }),
                );
            }
        }
    }
    for ((url, branch), list) in by_repo {
        let lock = engine.repo_lock(&url);
        let guard = lock.lock_owned().await;
        let engine = engine.clone();
        let read = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            read_branch(&engine, mode, &url, &branch, &list, now)
        })
        .await;
        match read {
            Ok(read) => sources.extend(read),
            Err(panic) => tracing::error!(error = %panic, "reading promotion sources panicked"),
        }
    }
    sources
}

/// A source to read: its app, the image's index there, the allowed-signers files to check its
/// commits against.
type Wanted = (ResolvedApp, usize, BTreeSet<PathBuf>);

/// The sources on one branch of one repository, from one checkout.
fn read_branch(
    engine: &Engine,
    mode: Mode,
    url: &str,
    branch: &str,
    list: &[Wanted],
    now: OffsetDateTime,
) -> Sources {
    let key =
        |(app, index, _): &Wanted| (app.app.name.clone(), app.app.images[*index].name.clone());
    let checkout = match engine.git(mode).checkout(url, branch) {
        Ok(checkout) => checkout,
        Err(error) => {
            return list
                .iter()
                .map(|source| {
                    let failed = ImageError::PromoteSource {
                        app: source.0.app.name.clone(),
                        reason: error.to_string(),
                    };
                    (key(source), Err(failed))
                })
                .collect();
        }
    };
    // Every source file of the branch in one walk (a cold start), not one walk per file.
    let files: Vec<&str> = list
        .iter()
        .filter_map(|(app, index, _)| app.app.images[*index].targets.first())
        .filter(|target| !target.names_directory())
        .map(|target| target.file.as_str())
        .collect();
    if let Err(error) = engine.inner.history.prefetch(&checkout, url, &files, now) {
        tracing::warn!(url = %git::redact_url(url), %error, "cannot read the promotion sources' history");
    }
    list.iter()
        .map(|source| (key(source), read_one(engine, &checkout, source, now)))
        .collect()
}

/// One source target's history and line.
fn read_one(
    engine: &Engine,
    checkout: &git::Checkout,
    (source, index, signers): &Wanted,
    now: OffsetDateTime,
) -> Result<Arc<SourceRead>, ImageError> {
    let app = &source.app;
    let image = &app.images[*index];
    let failed = |reason: String| ImageError::PromoteSource {
        app: app.name.clone(),
        reason,
    };
    let (Some(config), Some(target)) = (
        image.targets.first(),
        source.targets.get(*index).and_then(|t| t.first()),
    ) else {
        return Err(failed(format!("image `{}` has no target", image.name)));
    };
    let path = git::inside_clone(checkout.workdir(), Path::new(&config.file))
        .map_err(|e| failed(e.to_string()))?;
    if config.names_directory() || path.is_dir() {
        return Err(failed(format!(
            "{} is a directory: promote from an app whose first target of `{}` is a file",
            config.file, image.name
        )));
    }
    let history = engine
        .inner
        .history
        .target(checkout, &app.repo, &config.file, target, &image.image, now)
        .map_err(|e| failed(e.to_string()))?;
    let line = std::fs::read(&path).ok().and_then(|bytes| {
        let document = edit::Document::parse(&bytes).ok()?;
        let found = document.find(target, &image.image).ok()?;
        found.first().map(|f| f.line)
    });
    let verified = signers
        .iter()
        .map(|file| (file.clone(), verify_all(checkout, &history, file)))
        .collect();
    Ok(Arc::new(SourceRead {
        app: app.name.clone(),
        repo: app.repo.clone(),
        file: config.file.clone(),
        line,
        history,
        verified,
    }))
}

/// The first-parent commits of `history` signed by a key of the allowed-signers `file`.
fn verify_all(
    checkout: &git::Checkout,
    history: &TargetHistory,
    file: &Path,
) -> Result<BTreeSet<git::Oid>, String> {
    let signers = git::AllowedSigners::from_file(file)?;
    let mut verified = BTreeSet::new();
    for change in &history.changes {
        let id = change.landed.id;
        if !verified.contains(&id)
            && checkout
                .verify_commit(id, &signers)
                .map_err(|e| e.to_string())?
                .is_some()
        {
            verified.insert(id);
        }
    }
    Ok(verified)
}

/// The history bound as a reason says it: `5000 commits or 90d`.
pub(crate) fn bound_text(engine: &Engine) -> String {
    let bound = &engine.inner.config.global.history;
    let secs = bound.max_age.as_secs();
    let age = if secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        format!("{secs}s")
    };
    format!("{} commits or {age}", bound.max_commits)
}

/// What a promoted image's decision needs from the pass.
pub(crate) struct Pass<'a> {
    pub registry: &'a registry::Client,
    pub memo: &'a fetch::MetaMemo,
    pub now: OffsetDateTime,
    pub bot: &'a str,
    pub bound: &'a str,
}

/// The decision for a promoted image whose target deploys `current`: the source's soaked tag,
/// if the destination's policy allows it and it is newer than `current`; else `current` kept,
/// saying why.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn decide(
    pass: &Pass<'_>,
    promote_config: &PromoteConfig,
    source: &SourceRead,
    (image, policy): (&ImageConfig, &Policy),
    tags: &[String],
    current: Current<'_>,
    rollback: Option<(&Rollback, crate::config::OnRollback)>,
) -> Result<Promoted, ImageError> {
    let verified = match (promote_config.trust, &promote_config.allowed_signers) {
        (PromoteTrust::Signed, Some(file)) => match source.verified.get(file) {
            Some(Ok(verified)) => Some(verified),
            Some(Err(reason)) => {
                return Err(ImageError::PromoteSource {
                    app: source.app.clone(),
                    reason: reason.clone(),
                });
            }
            None => {
                return Err(ImageError::PromoteSource {
                    app: source.app.clone(),
                    reason: format!("{} was not read in this pass", file.display()),
                });
            }
        },
        _ => None,
    };
    let rules = Rules {
        soak: time::Duration::try_from(promote_config.soak).unwrap_or(time::Duration::MAX),
        trust: promote_config.trust,
        bot: pass.bot,
        bound: pass.bound,
        verified,
    };
    let older = |to: &TargetValue, from: &TargetValue| older(policy, to, from);
    let outcome = promote::choose(&source.history, &rules, pass.now, &older);
    let keep = |step: Promotion| Promoted {
        decision: kept(current, &source.app, step, None),
        evidence: None,
    };
    let Some(candidate) = outcome.candidate else {
        return Ok(keep(outcome.newer.unwrap_or(Promotion::NothingSoaked)));
    };
    let tag = candidate.tag.clone();
    if !tags.contains(&tag) {
        return Ok(keep(Promotion::NotInRegistry { tag }));
    }
    // The policy sees the candidate alone; with a rollback here, the deployed tag too (what a
    // hold keeps).
    let mut offered = vec![tag.clone()];
    if let Some(deployed) = current.tag.filter(|t| rollback.is_some() && *t != tag) {
        offered.push(deployed.to_string());
    }
    let decided = rollback::decide(
        pass.registry,
        (pass.memo, pass.now),
        image,
        policy,
        &offered,
        current,
        rollback,
    )
    .await;
    let mut decision = match decided {
        Err(ImageError::NoMatch { .. }) => {
            return Ok(keep(Promotion::NotAllowed {
                tag,
                policy: policy.summary(),
            }));
        }
        Err(error) => return Err(error),
        Ok(decision) => decision,
    };
    if decision.keep_current {
        // Deployed already, older than deployed, or held by a rollback here: say what the
        // source holds that is newer, if anything.
        if let (false, Some(newer)) = (matches!(decision.why, Why::Held { .. }), outcome.newer) {
            let why = Why::Promotion {
                source: source.app.clone(),
                step: Box::new(newer),
            };
            decision.reason = why.to_string();
            decision.why = why;
        }
        return Ok(Promoted {
            decision,
            evidence: None,
        });
    }
    // The source pinned a digest: the registry must still give it for the tag.
    let digest = match &decision.digest {
        Some(digest) => Some(digest.clone()),
        None => fetch::digest(pass.registry, pass.memo, &image.image, &tag).await,
    };
    if let Some(pinned) = &candidate.value.digest
        && digest.as_ref() != Some(pinned)
    {
        return Ok(keep(Promotion::DigestChanged {
            tag,
            pinned: pinned.clone(),
            registry: digest.unwrap_or_else(|| "no digest".into()),
        }));
    }
    let why = Why::Promotion {
        source: source.app.clone(),
        step: Box::new(candidate.why()),
    };
    decision.reason = why.to_string();
    decision.why = why;
    Ok(Promoted {
        evidence: Some(evidence(&candidate, source, image, digest)),
        decision,
    })
}

/// The pull request's evidence of a promotion.
fn evidence(
    candidate: &Candidate,
    source: &SourceRead,
    image: &ImageConfig,
    digest: Option<String>,
) -> PromotionRow {
    let commit = candidate.commit.id.to_string();
    PromotionRow {
        name: image.name.clone(),
        tag: candidate.tag.clone(),
        source: source.app.clone(),
        file: source.file.clone(),
        line: source.line,
        link: forge::commit_url(&source.repo, &commit),
        short: commit.get(..7).unwrap_or(&commit).to_string(),
        commit,
        since: promote::rfc3339(candidate.since),
        soaked: promote::span(candidate.soaked),
        digest,
    }
}

/// Whether `to` ranks below `from` under the policy (as a rollback is told).
fn older(policy: &Policy, to: &TargetValue, from: &TargetValue) -> Option<bool> {
    match (to.tag.as_deref(), from.tag.as_deref()) {
        (Some(to), Some(from)) if to != from => policy.ranks_above(from, to),
        _ => None,
    }
}

/// `current` kept, because of `step`.
fn kept(current: Current<'_>, source: &str, step: Promotion, best: Option<String>) -> Decision {
    let why = Why::Promotion {
        source: source.to_string(),
        step: Box::new(step),
    };
    Decision {
        tag: current.tag.unwrap_or_default().to_string(),
        digest: current.digest.map(str::to_owned),
        reason: why.to_string(),
        why,
        keep_current: true,
        best,
    }
}

/// [`decide`] with the source read this pass (an error when it could not be read).
pub(crate) async fn decide_from(
    pass: &Pass<'_>,
    sources: &Sources,
    config: &PromoteConfig,
    image: (&ImageConfig, &Policy),
    tags: &[String],
    current: Current<'_>,
    rollback: Option<(&Rollback, crate::config::OnRollback)>,
) -> Result<Promoted, ImageError> {
    match sources.get(&(config.from.clone(), config.image.clone())) {
        Some(Ok(source)) => decide(pass, config, source, image, tags, current, rollback).await,
        Some(Err(error)) => Err(error.clone()),
        None => Err(ImageError::PromoteSource {
            app: config.from.clone(),
            reason: "its history was not read in this pass".into(),
        }),
    }
}
