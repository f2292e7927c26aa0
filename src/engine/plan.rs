//! Planning one app in a checkout: read what each target deploys, settle the policy's decision
//! against it, and compute the edited bytes of every file (nothing is written here).
//!
//! Invariant: one path for every pass, mode and write style: [`plan_app`] reads each file of
//! the app once, decides once per image and deployed version, and edits the bytes it read; the
//! caller writes them (or, in a dry run, only shows them).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::fetch;
use super::message::ChangeContext;
use super::{ResolvedApp, WriteContext};
use crate::config::ImageConfig;
use crate::edit::{self, Target, Update};
use crate::git;
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

/// Per image and target, the policy's decision (`None` when the target or the tag list is
/// missing, which the image already reports).
type Decisions = Vec<Vec<Option<Result<Decision, ImageError>>>>;

/// Plan `app` against the files under `root`, in three steps: read what each target deploys,
/// settle each image's decision (fetching the metadata its policy asks for), edit the files.
/// Nothing is written here.
pub(crate) fn plan_app(
    registry: &registry::Client,
    ctx: &WriteContext,
    root: &Path,
    app: &ResolvedApp,
) -> AppPlan {
    let deployed = read_deployed(root, app);
    let decisions = ctx
        .handle
        .block_on(decide_all(registry, ctx, app, &deployed));
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

/// Step 2: the decision for every target whose deployed tag and tag list are known, one per
/// distinct deployed version of an image.
async fn decide_all(
    registry: &registry::Client,
    ctx: &WriteContext,
    app: &ResolvedApp,
    deployed: &DeployedApp,
) -> Decisions {
    let mut all = Vec::new();
    for ((image, policy), targets) in app
        .app
        .images
        .iter()
        .zip(&app.policies)
        .zip(&deployed.targets)
    {
        let tags = ctx.tags.of(&image.image.name()).ok();
        let mut settled: HashMap<&Deployed, Result<Decision, ImageError>> = HashMap::new();
        let mut decisions = Vec::new();
        for target in targets {
            let (Ok(current), Some(tags)) = (target, &tags) else {
                decisions.push(None);
                continue;
            };
            if !settled.contains_key(current) {
                let decision = fetch::decide(
                    registry,
                    &ctx.memo,
                    &image.image,
                    policy,
                    tags,
                    current.current(),
                    ctx.now,
                )
                .await;
                settled.insert(current, decision);
            }
            decisions.push(settled.get(current).cloned());
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
    let mut statuses = Vec::with_capacity(app.app.images.len());
    // The decisions to write, per file, in image and target order: each file is edited once.
    let mut pending: BTreeMap<&str, Vec<Pending<'_>>> = BTreeMap::new();
    for (index, (((image, targets), found), decisions)) in app
        .app
        .images
        .iter()
        .zip(&app.targets)
        .zip(&deployed.targets)
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
            pending
                .entry(config.file.as_str())
                .or_default()
                .push(Pending {
                    index,
                    image,
                    target,
                    decision,
                });
        }
        statuses.push(status);
    }
    let mut changes: Vec<Vec<PlannedChange>> = vec![Vec::new(); statuses.len()];
    for (file, items) in pending {
        // Every target file that was read has an entry; one that was not has reported why.
        let Some(entry) = files.get_mut(file) else {
            continue;
        };
        for (index, outcome) in edit_file(&app.app.name, file, &mut entry.1, &items) {
            match outcome {
                Ok(made) => changes[index].extend(made),
                Err(error) => {
                    statuses[index].error.get_or_insert(error);
                }
            }
        }
    }
    for ((image, status), made) in app.app.images.iter().zip(statuses).zip(changes) {
        plan.changes.extend(made);
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

/// One target's decision to write.
struct Pending<'a> {
    /// The image's index in the app.
    index: usize,
    image: &'a ImageConfig,
    target: &'a Target,
    decision: &'a Decision,
}

/// Apply the decisions of one file to its current bytes: per decision (by image index), the
/// changes it made or why it failed. All at once when they agree (one parse, one splice, one
/// check of the result, however many images the file holds); one after another otherwise, so
/// each failure is told to the image it belongs to.
fn edit_file(
    app: &str,
    file: &str,
    bytes: &mut Vec<u8>,
    items: &[Pending<'_>],
) -> Vec<(usize, Result<Vec<PlannedChange>, ImageError>)> {
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
                (item.index, outcome)
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
            (item.index, outcome)
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

fn read(root: &Path, file: &str) -> Result<Vec<u8>, ReadError> {
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
