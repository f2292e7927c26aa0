//! Planning one app in a checkout: read what each target deploys, settle the policy's decision
//! against it, and compute the edited bytes of every file (nothing is written here).
//!
//! Invariant: one path for every pass, mode and write style: [`plan_app`] reads each file of
//! the app once, decides once per image and deployed version, and edits the bytes it read; the
//! caller writes them (or, in a dry run, only shows them).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::message::ChangeContext;
use super::rollback;
use super::{ResolvedApp, WriteContext};
use crate::config::{ImageConfig, OnRollback, TargetConfig};
use crate::edit::{self, Target, Update};
use crate::git::{self, Checkout};
use crate::history::rollback::Rollback;
use crate::policy::{Current, Decision};
use crate::registry;
use crate::report::{AppError, ImageError, ReadError};
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

/// An app's files on the branch head, each read once, and per image and target what it
/// deploys (or why that is unknown).
struct DeployedApp {
    files: BTreeMap<String, Vec<u8>>,
    targets: Vec<Vec<Result<Deployed, ImageError>>>,
}

/// Per image and target, the rollback its latest change is, if any (`None` when the target
/// was not read).
type Rollbacks = Vec<Vec<Option<Result<Option<Rollback>, ImageError>>>>;

/// Per image and target, the policy's decision (`None` when the target or the tag list is
/// missing, which the image already reports).
type Decisions = Vec<Vec<Option<Result<Decision, ImageError>>>>;

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
    prefetch_history(ctx, checkout, std::slice::from_ref(app));
    let deployed = read_deployed(checkout.workdir(), app);
    let rollbacks = find_rollbacks(ctx, checkout, app, &deployed);
    let decisions = ctx
        .handle
        .block_on(decide_all(registry, ctx, app, &deployed, &rollbacks));
    edit_files(ctx, app, deployed, &decisions)
}

/// Step 1: read every target file once, parse it once, and find what each target deploys.
fn read_deployed(root: &Path, app: &ResolvedApp) -> DeployedApp {
    let mut read_files: BTreeMap<String, Result<Vec<u8>, ReadError>> = BTreeMap::new();
    for image in &app.app.images {
        for target in &image.targets {
            if !read_files.contains_key(&target.file) {
                read_files.insert(target.file.clone(), read(root, &target.file));
            }
        }
    }
    let documents: BTreeMap<&str, Result<edit::Document<'_>, edit::EditError>> = read_files
        .iter()
        .filter_map(|(file, bytes)| {
            let bytes = bytes.as_ref().ok()?;
            Some((file.as_str(), edit::Document::parse(bytes)))
        })
        .collect();
    let app_file = app.app.file.display().to_string();
    let targets =
        app.app
            .images
            .iter()
            .zip(&app.targets)
            .map(|(image, targets)| {
                image
                    .targets
                    .iter()
                    .zip(targets)
                    .map(|(config, target)| {
                        let at = format!("{app_file}:{} (target {})", config.line, config.file);
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
                        let found = document.find(target, &image.image).map_err(|error| {
                            ImageError::Edit {
                                file: file.clone(),
                                error,
                            }
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
                    })
                    .collect()
            })
            .collect();
    drop(documents);
    let files = read_files
        .into_iter()
        .filter_map(|(file, bytes)| Some((file, bytes.ok()?)))
        .collect();
    DeployedApp { files, targets }
}

/// Read the histories of the apps' target files in one walk of the branch (for files with
/// nothing cached: a cold start), instead of one walk per file. A failure is only logged
/// here: each target's own read then reports it.
pub(crate) fn prefetch_history(ctx: &WriteContext, checkout: &Checkout, apps: &[ResolvedApp]) {
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
                .flat_map(|i| i.targets.iter().map(|t| t.file.as_str()))
        })
        .collect();
    if let Err(error) = ctx.history.prefetch(checkout, url, &files, ctx.now) {
        tracing::warn!(url = %git::redact_url(url), %error, "cannot read the targets' history");
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
        .zip(app.targets.iter().zip(&deployed.targets))
        .map(|((image, policy), (targets, found))| {
            image
                .targets
                .iter()
                .zip(targets)
                .zip(found)
                .map(|((config, target), found)| {
                    found.as_ref().ok().map(|_| {
                        rollback::find(
                            ctx.rollbacks(),
                            checkout,
                            &app.app,
                            image,
                            policy,
                            (config, target),
                        )
                    })
                })
                .collect()
        })
        .collect()
}

/// Step 2: the decision for every target whose deployed tag and tag list are known, one per
/// distinct deployed version (and rollback) of an image.
async fn decide_all(
    registry: &registry::Client,
    ctx: &WriteContext,
    app: &ResolvedApp,
    deployed: &DeployedApp,
    rollbacks: &Rollbacks,
) -> Decisions {
    let mut all = Vec::new();
    for (((image, policy), targets), rollbacks) in app
        .app
        .images
        .iter()
        .zip(&app.policies)
        .zip(&deployed.targets)
        .zip(rollbacks)
    {
        let tags = ctx.tags.of(&image.image.name()).ok();
        let setting = rollback::setting(&app.app, image);
        let mut settled: HashMap<(&Deployed, Option<&Rollback>), Result<Decision, ImageError>> =
            HashMap::new();
        let mut decisions = Vec::new();
        for (target, found) in targets.iter().zip(rollbacks) {
            let (Ok(current), Some(tags)) = (target, &tags) else {
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
                slot.insert(
                    rollback::decide(
                        registry,
                        (&ctx.memo, ctx.now),
                        image,
                        policy,
                        tags,
                        current.current(),
                        found.map(|r| (r, setting)),
                    )
                    .await,
                );
            }
            decisions.push(settled.get(&key).cloned());
        }
        all.push(decisions);
    }
    all
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
    for (((image, targets), found), decisions) in app
        .app
        .images
        .iter()
        .zip(&app.targets)
        .zip(&deployed.targets)
        .zip(decisions)
    {
        let repository = image.image.name();
        let mut status = ImageStatus {
            name: image.name.clone(),
            image: repository.clone(),
            error: ctx.tags.of(&repository).err(),
            ..ImageStatus::default()
        };
        for (((config, target), found), decision) in
            image.targets.iter().zip(targets).zip(found).zip(decisions)
        {
            let deployed = match found {
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
            match apply(&mut files, &app.app.name, image, config, target, decision) {
                Ok(changes) => plan.changes.extend(changes),
                Err(error) => {
                    status.error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = &status.error {
            plan.errors.push(AppError::Image {
                image: image.name.clone(),
                error: Box::new(error.clone()),
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

/// Apply one target's decision to the current bytes of its file; the changes it made.
fn apply(
    files: &mut BTreeMap<String, (Vec<u8>, Vec<u8>)>,
    app: &str,
    image: &ImageConfig,
    config: &TargetConfig,
    target: &Target,
    decision: &Decision,
) -> Result<Vec<PlannedChange>, ImageError> {
    let repository = image.image.name();
    let update = Update::new(&repository, Some(&decision.tag), decision.digest.as_deref())
        .map_err(|error| ImageError::Update {
            repository: repository.clone(),
            error,
        })?;
    // Every target file that was read has an entry; one that was not has reported why.
    let Some(entry) = files.get_mut(&config.file) else {
        return Ok(Vec::new());
    };
    let edited = edit::Document::parse(&entry.1)
        .and_then(|document| document.apply(target, &update))
        .map_err(|error| ImageError::Edit {
            file: config.file.clone(),
            error,
        })?;
    let changes = edited
        .changes
        .iter()
        .map(|change| PlannedChange {
            app: app.to_string(),
            image: repository.clone(),
            name: image.name.clone(),
            file: config.file.clone(),
            line: change.line,
            from: change.old.clone(),
            to: change.new.clone(),
            // Only where this very scalar now holds it: a message never claims a digest that
            // was not written.
            digest: decision
                .digest
                .clone()
                .filter(|d| change.new.contains(d.as_str())),
            reason: decision.reason.clone(),
            tag: decision.tag.clone(),
        })
        .collect();
    entry.1 = edited.bytes;
    Ok(changes)
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
