//! Planning one app in a checkout: read what each target deploys, settle the policy's decision
//! against it, and compute the edited bytes of every file (nothing is written here).
//!
//! Invariant: one path for every pass, mode and write style: [`plan_app`] reads each file of
//! the app once, decides once per image and deployed version, and edits the bytes it read; the
//! caller writes them (or, in a dry run, only shows them).
//!
//! A directory target (`clusters/prod/`, or a path that is a directory on the branch) is
//! listed once per pass ([`git::yaml_files_under`]: sorted, no symlink followed) and each of its
//! YAML files becomes a site of the image when it mentions it. A file that cannot be read or
//! parsed is skipped and reported (once per app, with file:line); the others are still edited.
//! A directory where nothing mentions the image is one problem of that target.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

use super::message::ChangeContext;
use super::promote;
use super::rollback;
use super::{ResolvedApp, WriteContext};
use crate::config::{ImageConfig, OnRollback, TargetConfig};
use crate::edit::{self, Target, Update};
use crate::forge::PromotionRow;
use crate::git::{self, Checkout};
use crate::history::History;
use crate::history::rollback::Rollback;
use crate::policy::{Current, Decision};
use crate::registry;
use crate::report::{AppError, ImageError, ReadError, SettingsError, SkipReason};
use crate::report::{ImageStatus, PlannedChange};

/// Largest file the engine edits (a values file is a few kB; this guards against a binary).
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// One file's planned edit.
#[derive(Debug, Clone)]
pub struct FileEdit {
    /// Path relative to the repo root.
    pub file: String,
    pub before: Vec<u8>,
    pub after: Vec<u8>,
}

impl FileEdit {
    /// A unified diff of the edit, as `git diff` would show it.
    pub fn diff(&self) -> String {
        let before = String::from_utf8_lossy(&self.before);
        let after = String::from_utf8_lossy(&self.after);
        similar::TextDiff::from_lines(before.as_ref(), after.as_ref())
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{}", self.file), &format!("b/{}", self.file))
            .to_string()
    }
}

/// The plan of one app.
#[derive(Debug, Default)]
pub struct AppPlan {
    pub images: Vec<ImageStatus>,
    pub changes: Vec<PlannedChange>,
    /// Files that change, in path order.
    pub files: Vec<FileEdit>,
    pub errors: Vec<AppError>,
    /// The evidence of every promoted image that changes (for the pull request's body).
    pub promotions: Vec<PromotionRow>,
}

/// What one target deploys on the branch head: the tag and digest of the first reference to
/// the image it finds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Deployed {
    tag: Option<String>,
    digest: Option<String>,
}

impl Deployed {
    fn current(&self) -> Current<'_> {
        Current {
            tag: self.tag.as_deref(),
            digest: self.digest.as_deref(),
        }
    }
}

/// One place an image is looked for: the file of a file target, or one file of a directory
/// target that mentions the image. When a target cannot be read, or a directory target matches
/// nothing, its one site carries the reason.
#[derive(Debug)]
struct Site {
    /// Index of the target in the image's `targets`.
    target: usize,
    /// The file edited, relative to the repo root.
    file: String,
    found: Result<Deployed, ImageError>,
}

/// An app's files on the branch head, each read once, and per image where it is deployed (or
/// why that is unknown).
struct DeployedApp {
    files: BTreeMap<String, Vec<u8>>,
    /// Per image, its sites: targets in config order, a directory's files in path order.
    sites: Vec<Vec<Site>>,
    /// Per image, the files of its directory targets that were skipped (unreadable, not YAML
    /// the parser accepts, refused by the finder). A file no parser accepts is reported once
    /// per app, under the first image whose directory holds it.
    skipped: Vec<Vec<ImageError>>,
}

/// Per image and site, the rollback its file's latest change is, if any (`None` when the site
/// was not read).
type Rollbacks = Vec<Vec<Option<Result<Option<Rollback>, ImageError>>>>;

/// Per image and site, the policy's decision (`None` when the site or the tag list is
/// missing, which the image already reports).
type Decisions = Vec<Vec<Option<Result<Decision, ImageError>>>>;

/// Per image, the evidence of its promotion, when it is promoted to a new tag.
type Evidence = Vec<Option<PromotionRow>>;

/// Plan `app` against the checked-out files, in three steps: read what each target deploys
/// (and whether a person rolled it back), settle each image's decision (fetching the metadata
/// its policy asks for), edit the files. Nothing is written here.
pub(crate) fn plan_app(
    registry: &registry::Client,
    ctx: &WriteContext,
    checkout: &Checkout,
    app: &ResolvedApp,
) -> AppPlan {
    ctx.progress.planned(&app.app.name);
    let deployed = read_deployed(checkout.workdir(), app);
    let files: Vec<&str> = app
        .app
        .images
        .iter()
        .zip(&deployed.sites)
        .filter(|(image, _)| rollback::setting(&app.app, image) != OnRollback::Ignore)
        .flat_map(|(_, sites)| sites.iter().map(|site| site.file.as_str()))
        .collect();
    if let Err(error) = ctx
        .history
        .prefetch(checkout, &app.app.repo, &files, ctx.now)
    {
        tracing::warn!(app = %app.app.name, %error, "cannot read the targets' history");
    }
    let rollbacks = find_rollbacks(ctx, checkout, app, &deployed);
    let (decisions, evidence) = ctx
        .handle
        .block_on(decide_all(registry, ctx, app, &deployed, &rollbacks));
    let mut plan = edit_files(ctx, app, deployed, &decisions);
    // The evidence of the promotions this plan writes.
    for (image, row) in app.app.images.iter().zip(evidence) {
        if let Some(row) = row
            && plan
                .changes
                .iter()
                .any(|c| c.name == image.name && c.tag == row.tag)
        {
            plan.promotions.push(row);
        }
    }
    plan
}

/// A target is a directory when it is written as one (`clusters/prod/`) or when its path is a
/// directory on the branch.
pub(super) fn is_directory(root: &Path, target: &TargetConfig) -> bool {
    target.names_directory()
        || std::fs::symlink_metadata(root.join(&target.file)).is_ok_and(|meta| meta.is_dir())
}

/// Step 1: list every directory target once, read every file once (a target's, or a YAML file
/// under a directory target), parse it once, and find where each image is deployed.
fn read_deployed(root: &Path, app: &ResolvedApp) -> DeployedApp {
    let mut listings: BTreeMap<&str, Result<git::YamlFiles, ReadError>> = BTreeMap::new();
    let mut read_files: BTreeMap<String, Result<Vec<u8>, ReadError>> = BTreeMap::new();
    for target in app.app.images.iter().flat_map(|image| &image.targets) {
        let file = target.file.as_str();
        if listings.contains_key(file) || read_files.contains_key(file) {
            continue;
        }
        if !is_directory(root, target) {
            read_files.insert(target.file.clone(), read(root, file));
            continue;
        }
        let listing = git::yaml_files_under(root, Path::new(file))
            .map_err(|e| ReadError::Unsafe(Arc::new(e)));
        for listed in listing.iter().flat_map(|listing| &listing.files) {
            if !read_files.contains_key(listed) {
                read_files.insert(listed.clone(), read(root, listed));
            }
        }
        listings.insert(file, listing);
    }
    let documents: BTreeMap<&str, Result<edit::Document<'_>, edit::EditError>> = read_files
        .iter()
        .filter_map(|(file, bytes)| {
            let bytes = bytes.as_ref().ok()?;
            Some((file.as_str(), edit::Document::parse(bytes)))
        })
        .collect();
    let app_file = app.app.file.display().to_string();
    // Files of directory targets already reported as skipped (once per app).
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    let mut sites = Vec::new();
    let mut skipped = Vec::new();
    for (image, targets) in app.app.images.iter().zip(&app.targets) {
        let mut image_sites = Vec::new();
        let mut image_skipped = Vec::new();
        for (index, (config, target)) in image.targets.iter().zip(targets).enumerate() {
            let at = format!("{app_file}:{} (target {})", config.line, config.file);
            let site = |found| Site {
                target: index,
                file: config.file.clone(),
                found,
            };
            let listing = match listings.get(config.file.as_str()) {
                None => {
                    let found = find_in_file(&read_files, &documents, config, target, image, at);
                    image_sites.push(site(found));
                    continue;
                }
                Some(Err(error)) => {
                    image_sites.push(site(Err(ImageError::Read {
                        at,
                        error: error.clone(),
                    })));
                    continue;
                }
                Some(Ok(listing)) => listing,
            };
            if matches!(target, Target::Helm { .. }) {
                image_sites.push(site(Err(ImageError::Target {
                    at,
                    error: SettingsError::Invalid {
                        what: format!("{} is a directory", config.file),
                        reason: "a Helm values `path` needs one file".into(),
                    },
                })));
                continue;
            }
            let skip = |file: &str, reason| ImageError::Skipped {
                file: file.to_string(),
                dir: config.file.clone(),
                reason,
            };
            for name in &listing.unnamed {
                if reported.insert(name) {
                    image_skipped.push(skip(name, SkipReason::NameNotUtf8));
                }
            }
            let before = image_sites.len();
            for file in &listing.files {
                let document = match (read_files.get(file), documents.get(file.as_str())) {
                    (Some(Err(error)), _) => {
                        if reported.insert(file) {
                            image_skipped.push(skip(file, SkipReason::Read(error.clone())));
                        }
                        continue;
                    }
                    (_, Some(Err(error))) => {
                        if reported.insert(file) {
                            image_skipped.push(skip(file, SkipReason::Edit(error.clone())));
                        }
                        continue;
                    }
                    (_, Some(Ok(document))) => document,
                    // Every listed file was read above, and parsed if it was read.
                    (_, None) => continue,
                };
                match document.find(target, &image.image) {
                    Ok(found) => {
                        if let Some(first) = found.first() {
                            image_sites.push(Site {
                                target: index,
                                file: file.clone(),
                                found: Ok(Deployed {
                                    tag: first.tag.clone(),
                                    digest: first.digest.clone(),
                                }),
                            });
                        }
                    }
                    Err(error) => image_skipped.push(skip(file, SkipReason::Edit(error))),
                }
            }
            if image_sites.len() == before {
                image_sites.push(site(Err(ImageError::NothingInDirectory {
                    dir: config.file.clone(),
                    repository: image.image.name(),
                    files: listing.files.len(),
                    symlinks: listing.symlinks.len(),
                    at,
                })));
            }
        }
        sites.push(image_sites);
        skipped.push(image_skipped);
    }
    drop(documents);
    let files = read_files
        .into_iter()
        .filter_map(|(file, bytes)| Some((file, bytes.ok()?)))
        .collect();
    DeployedApp {
        files,
        sites,
        skipped,
    }
}

/// What a file target deploys: the first reference to the image in its file.
fn find_in_file(
    read_files: &BTreeMap<String, Result<Vec<u8>, ReadError>>,
    documents: &BTreeMap<&str, Result<edit::Document<'_>, edit::EditError>>,
    config: &TargetConfig,
    target: &Target,
    image: &ImageConfig,
    at: String,
) -> Result<Deployed, ImageError> {
    let file = &config.file;
    let document = match (read_files.get(file), documents.get(file.as_str())) {
        (Some(Err(error)), _) => {
            return Err(ImageError::Read {
                at,
                error: error.clone(),
            });
        }
        (_, Some(Ok(document))) => document,
        (_, Some(Err(error))) => {
            return Err(ImageError::Edit {
                file: file.clone(),
                error: error.clone(),
            });
        }
        // Every target file was read above, and parsed if it was read.
        (_, None) => {
            return Err(ImageError::NotFound {
                file: file.clone(),
                repository: image.image.name(),
                at,
            });
        }
    };
    let found = document
        .find(target, &image.image)
        .map_err(|error| ImageError::Edit {
            file: file.clone(),
            error,
        })?;
    let first = found.first().ok_or_else(|| ImageError::NotFound {
        file: file.clone(),
        repository: image.image.name(),
        at,
    })?;
    Ok(Deployed {
        tag: first.tag.clone(),
        digest: first.digest.clone(),
    })
}

/// Read the histories of the apps' target files in one walk of the branch (for files with
/// nothing cached: a cold start), instead of one walk per file. Directory targets are read
/// per app, once their files are known ([`plan_app`]). A failure is only logged here: each
/// target's own read then reports it.
pub(crate) fn prefetch_history(
    history: &History,
    now: OffsetDateTime,
    checkout: &Checkout,
    apps: &[ResolvedApp],
) {
    let Some(url) = apps.first().map(|a| a.app.repo.as_str()) else {
        return;
    };
    let files: Vec<&str> = apps
        .iter()
        .flat_map(|a| {
            a.app
                .images
                .iter()
                .filter(|i| rollback::setting(&a.app, i) != OnRollback::Ignore)
                .flat_map(|i| i.targets.iter())
                .filter(|t| !t.names_directory())
                .map(|t| t.file.as_str())
        })
        .collect();
    if let Err(error) = history.prefetch(checkout, url, &files, now) {
        tracing::warn!(url = %git::redact_url(url), %error, "cannot read the targets' history");
    }
}

/// Ahead of a round, while the registry lists the tags: each file target's value history at
/// the pinned head, so that the round's rollback checks ([`find_rollbacks`]) find it cached
/// when the branch has not moved since. A target whose history cannot be read is logged here
/// and read again, and reported, by the round (a damaged clone is cloned again by then).
pub(crate) fn prefetch_targets(
    history: &History,
    now: OffsetDateTime,
    checkout: &Checkout,
    apps: &[ResolvedApp],
) {
    for app in apps {
        for (image, targets) in app.app.images.iter().zip(&app.targets) {
            if rollback::setting(&app.app, image) == OnRollback::Ignore {
                continue;
            }
            for (config, target) in image.targets.iter().zip(targets) {
                // A directory's files are known only once it is listed ([`plan_app`]); its own
                // path has no value history (and reading it as a file would fail).
                if is_directory(checkout.workdir(), config) {
                    continue;
                }
                if let Err(error) = history.target(
                    checkout,
                    &app.app.repo,
                    &config.file,
                    target,
                    &image.image,
                    now,
                ) {
                    tracing::warn!(app = %app.app.name, image = %image.name, %error, "reading ahead: the target's history cannot be read; the round reads it again");
                }
            }
        }
    }
}

/// Step 1b: per target that was read, whether its latest change is a person's rollback of a
/// value imagebump wrote (read from the branch's history, cached across passes).
fn find_rollbacks(
    ctx: &WriteContext,
    checkout: &Checkout,
    app: &ResolvedApp,
    deployed: &DeployedApp,
) -> Rollbacks {
    app.app
        .images
        .iter()
        .zip(&app.policies)
        .zip(app.targets.iter().zip(&deployed.sites))
        .map(|((image, policy), (targets, sites))| {
            sites
                .iter()
                .map(|site| {
                    let target = targets.get(site.target)?;
                    site.found.as_ref().ok().map(|_| {
                        rollback::find(
                            ctx.rollbacks(),
                            checkout,
                            &app.app,
                            image,
                            policy,
                            (&site.file, target),
                        )
                    })
                })
                .collect()
        })
        .collect()
}

/// Step 2: the decision for every target whose deployed tag and tag list are known, one per
/// distinct deployed version (and rollback) of an image. A promoted image decides on the tag
/// its source soaked ([`promote::decide`]).
async fn decide_all(
    registry: &registry::Client,
    ctx: &WriteContext,
    app: &ResolvedApp,
    deployed: &DeployedApp,
    rollbacks: &Rollbacks,
) -> (Decisions, Evidence) {
    let mut all = Vec::new();
    let mut evidence = Vec::new();
    for (((image, policy), sites), rollbacks) in app
        .app
        .images
        .iter()
        .zip(&app.policies)
        .zip(&deployed.sites)
        .zip(rollbacks)
    {
        let tags = ctx.tags.of(&image.image.name()).ok();
        let setting = rollback::setting(&app.app, image);
        let mut promoted: Option<PromotionRow> = None;
        let mut settled: HashMap<(&Deployed, Option<&Rollback>), Result<Decision, ImageError>> =
            HashMap::new();
        let mut decisions = Vec::new();
        for (site, found) in sites.iter().zip(rollbacks) {
            let (Ok(current), Some(tags)) = (&site.found, &tags) else {
                decisions.push(None);
                continue;
            };
            let found = match found {
                Some(Err(error)) => {
                    decisions.push(Some(Err(error.clone())));
                    continue;
                }
                Some(Ok(found)) => found.as_ref(),
                None => None,
            };
            let key = (current, found);
            if let Entry::Vacant(slot) = settled.entry(key) {
                let rollback = found.map(|r| (r, setting));
                let decided = match &image.promote {
                    None => {
                        rollback::decide(
                            registry,
                            (&ctx.memo, ctx.now),
                            image,
                            policy,
                            tags,
                            current.current(),
                            rollback,
                        )
                        .await
                    }
                    Some(config) => {
                        let pass = ctx.promotion(registry);
                        let made = promote::decide_from(
                            &pass,
                            &ctx.sources,
                            config,
                            (image, policy),
                            tags,
                            current.current(),
                            rollback,
                        )
                        .await;
                        made.map(|made| {
                            if promoted.is_none() {
                                promoted = made.evidence;
                            }
                            made.decision
                        })
                    }
                };
                slot.insert(decided);
            }
            decisions.push(settled.get(&key).cloned());
        }
        all.push(decisions);
        evidence.push(promoted);
    }
    (all, evidence)
}

/// Step 3: apply every decision to the bytes read in step 1 (images in order, so several
/// images may edit one file), and report each image.
fn edit_files(
    ctx: &WriteContext,
    app: &ResolvedApp,
    deployed: DeployedApp,
    decisions: &Decisions,
) -> AppPlan {
    let mut plan = AppPlan::default();
    let mut files: BTreeMap<String, (Vec<u8>, Vec<u8>)> = deployed
        .files
        .into_iter()
        .map(|(file, bytes)| (file, (bytes.clone(), bytes)))
        .collect();
    let mut statuses = Vec::with_capacity(app.app.images.len());
    // The decisions to write, per file, in image and target order: each file is edited once.
    let mut pending: BTreeMap<&str, Vec<Pending<'_>>> = BTreeMap::new();
    let mut count = 0;
    for (index, (((image, targets), sites), decisions)) in app
        .app
        .images
        .iter()
        .zip(&app.targets)
        .zip(&deployed.sites)
        .zip(decisions)
        .enumerate()
    {
        let repository = image.image.name();
        let mut status = ImageStatus {
            name: image.name.clone(),
            image: repository.clone(),
            error: ctx.tags.of(&repository).err(),
            ..ImageStatus::default()
        };
        for (site, decision) in sites.iter().zip(decisions) {
            // Every site was made from one of the image's targets.
            let Some(target) = targets.get(site.target) else {
                continue;
            };
            let deployed = match &site.found {
                Ok(deployed) => deployed,
                Err(error) => {
                    status.error.get_or_insert(error.clone());
                    continue;
                }
            };
            if status.deployed.is_none() {
                status.deployed = deployed.tag.clone().or_else(|| deployed.digest.clone());
            }
            let decision = match decision {
                None => continue,
                Some(Err(error)) => {
                    if let (
                        None,
                        ImageError::NoMatch {
                            error: no_match, ..
                        },
                    ) = (&status.why, error)
                    {
                        status.why = Some((*no_match.why).clone());
                    }
                    status.error.get_or_insert(error.clone());
                    continue;
                }
                Some(Ok(decision)) => decision,
            };
            if status.why.is_none() {
                status.why = Some(decision.why.clone());
            }
            // The best tag the policy allows, not the tag kept: a `~1.4` image whose deployed
            // 1.12.0 is kept shows 1.4.x here (or nothing when none is eligible yet).
            if status.candidate.is_none() {
                status.candidate.clone_from(&decision.best);
            }
            if decision.keep_current {
                continue;
            }
            pending
                .entry(site.file.as_str())
                .or_default()
                .push(Pending {
                    index,
                    seq: count,
                    image,
                    target,
                    decision,
                });
            count += 1;
        }
        statuses.push(status);
    }
    // The changes of each decision, in the order the decisions were made (image, then target).
    let mut changes: Vec<Vec<PlannedChange>> = vec![Vec::new(); count];
    for (file, items) in pending {
        // Every file that was read has an entry; one that was not has reported why.
        let Some(entry) = files.get_mut(file) else {
            continue;
        };
        for ((index, seq), outcome) in edit_file(&app.app.name, file, &mut entry.1, &items) {
            match outcome {
                Ok(made) => changes[seq] = made,
                Err(error) => {
                    statuses[index].error.get_or_insert(error);
                }
            }
        }
    }
    plan.changes = changes.into_iter().flatten().collect();
    for ((image, mut status), skipped) in app.app.images.iter().zip(statuses).zip(&deployed.skipped)
    {
        // The image's first problem, then every file its directory targets skipped: none is
        // left out of the report, and a skipped file alone makes the image show a problem.
        let errors: Vec<ImageError> = status.error.iter().chain(skipped).cloned().collect();
        if status.error.is_none() {
            status.error = skipped.first().cloned();
        }
        for error in errors {
            plan.errors.push(AppError::Image {
                image: image.name.clone(),
                error: Box::new(error),
            });
        }
        plan.images.push(status);
    }
    plan.files = files
        .into_iter()
        .filter(|(_, (before, after))| before != after)
        .map(|(file, (before, after))| FileEdit {
            file,
            before,
            after,
        })
        .collect();
    plan
}

/// What one decision's edit made, or why it failed.
type Outcome = Result<Vec<PlannedChange>, ImageError>;

/// One target's decision to write.
struct Pending<'a> {
    /// The image's index in the app.
    index: usize,
    /// The decision's place among all of the app's decisions to write.
    seq: usize,
    image: &'a ImageConfig,
    target: &'a Target,
    decision: &'a Decision,
}

/// Apply the decisions of one file to its current bytes: per decision (by image index and
/// place), the
/// changes it made or why it failed. All at once when they agree (one parse, one splice, one
/// check of the result, however many images the file holds); one after another otherwise, so
/// each failure is told to the image it belongs to.
fn edit_file(
    app: &str,
    file: &str,
    bytes: &mut Vec<u8>,
    items: &[Pending<'_>],
) -> Vec<((usize, usize), Outcome)> {
    let updates: Vec<Result<Update, ImageError>> = items.iter().map(update_of).collect();
    let batch: Vec<(&Target, &Update)> = items
        .iter()
        .zip(&updates)
        .filter_map(|(item, update)| Some((item.target, update.as_ref().ok()?)))
        .collect();
    let together = edit::Document::parse(bytes).and_then(|document| document.apply_each(&batch));
    if let Ok(edited) = together {
        *bytes = edited.bytes;
        let mut made = edited.changes.into_iter();
        return items
            .iter()
            .zip(updates)
            .map(|(item, update)| {
                let outcome = update.map(|_| {
                    let changes = made.next().unwrap_or_default();
                    planned(app, item, file, &changes)
                });
                ((item.index, item.seq), outcome)
            })
            .collect();
    }
    items
        .iter()
        .zip(updates)
        .map(|(item, update)| {
            let outcome = update.and_then(|update| {
                let edited = edit::Document::parse(bytes)
                    .and_then(|document| document.apply(item.target, &update))
                    .map_err(|error| ImageError::Edit {
                        file: file.to_string(),
                        error,
                    })?;
                *bytes = edited.bytes;
                Ok(planned(app, item, file, &edited.changes))
            });
            ((item.index, item.seq), outcome)
        })
        .collect()
}

/// The update a decision writes, validated.
fn update_of(item: &Pending<'_>) -> Result<Update, ImageError> {
    let repository = item.image.image.name();
    Update::new(
        &repository,
        Some(&item.decision.tag),
        item.decision.digest.as_deref(),
    )
    .map_err(|error| ImageError::Update { repository, error })
}

/// The planned changes of one decision's edit.
fn planned(
    app: &str,
    item: &Pending<'_>,
    file: &str,
    changes: &[edit::Change],
) -> Vec<PlannedChange> {
    let repository = item.image.image.name();
    changes
        .iter()
        .map(|change| PlannedChange {
            app: app.to_string(),
            image: repository.clone(),
            name: item.image.name.clone(),
            file: file.to_string(),
            line: change.line,
            from: change.old.clone(),
            to: change.new.clone(),
            // Only where this very scalar now holds it: a message never claims a digest that
            // was not written.
            digest: item
                .decision
                .digest
                .clone()
                .filter(|d| change.new.contains(d.as_str())),
            reason: item.decision.reason.clone(),
            tag: item.decision.tag.clone(),
        })
        .collect()
}

/// A target file's bytes, refused when it leaves the clone, is not a file or is too large.
pub(super) fn read(root: &Path, file: &str) -> Result<Vec<u8>, ReadError> {
    let path =
        git::inside_clone(root, Path::new(file)).map_err(|e| ReadError::Unsafe(Arc::new(e)))?;
    let io = |error| ReadError::Io {
        file: file.to_string(),
        error: Arc::new(error),
    };
    let meta = std::fs::symlink_metadata(&path).map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile {
            file: file.to_string(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge {
            file: file.to_string(),
            limit: MAX_FILE_BYTES,
        });
    }
    std::fs::read(&path).map_err(io)
}

/// The commit message contexts of an app's changes.
pub fn contexts(changes: &[PlannedChange]) -> Vec<ChangeContext> {
    changes
        .iter()
        .map(|c| ChangeContext {
            image: c.image.clone(),
            name: c.name.clone(),
            file: c.file.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
            digest: c.digest.clone(),
            reason: c.reason.clone(),
            tag: c.tag.clone(),
        })
        .collect()
}
