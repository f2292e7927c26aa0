//! Planning one app in a checkout: read what each target deploys, settle the policy's decision
//! against it, and compute the edited bytes of every file (nothing is written here).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;

use super::error::{AppError, ImageError, ReadError};
use super::message::{self, ChangeContext};
use super::{Fetched, ImageStatus, PlannedChange, ResolvedApp, settings};
use crate::config::App;
use crate::edit::{self, Update};
use crate::git::{self, Checkout, Oid};
use crate::policy::{Current, Decision, Step};

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
    /// Registry metadata the policies asked for and the pass has not fetched:
    /// `(repository, tags)`.
    pub missing: Vec<(String, Vec<String>)>,
}

/// Plan `app` against the files under `root`.
pub fn plan_app(root: &Path, app: &ResolvedApp, fetched: &Fetched, now: OffsetDateTime) -> AppPlan {
    let mut plan = AppPlan::default();
    // Current content of each touched file; several images may edit one file.
    let mut files: BTreeMap<String, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
    let app_file = app.app.file.display().to_string();
    for (image, policy) in app.app.images.iter().zip(&app.policies) {
        let repository = image.image.name();
        let mut status = ImageStatus {
            name: image.name.clone(),
            image: repository.clone(),
            ..ImageStatus::default()
        };
        let tags = match fetched.tags.get(&repository) {
            Some(Ok(tags)) => Some(tags.clone()),
            Some(Err(e)) => {
                status.error = Some(ImageError::Registry(e.clone()));
                None
            }
            None => {
                status.error = Some(ImageError::NotListed {
                    repository: repository.clone(),
                });
                None
            }
        };
        let meta = fetched.meta_of(&repository);
        for target_config in &image.targets {
            let at = format!(
                "{app_file}:{} (target {})",
                target_config.line, target_config.file
            );
            let target = match settings::target(target_config) {
                Ok(t) => t,
                Err(error) => {
                    status.error.get_or_insert(ImageError::Target { at, error });
                    continue;
                }
            };
            let entry = match files.get_mut(&target_config.file) {
                Some(entry) => entry,
                None => match read(root, &target_config.file) {
                    Ok(bytes) => files
                        .entry(target_config.file.clone())
                        .or_insert((bytes.clone(), bytes)),
                    Err(error) => {
                        status.error.get_or_insert(ImageError::Read { at, error });
                        continue;
                    }
                },
            };
            // Parsed once for both reading what is deployed and editing it.
            let document = match edit::Document::parse(&entry.1) {
                Ok(document) => document,
                Err(error) => {
                    status.error.get_or_insert(ImageError::Edit {
                        file: target_config.file.clone(),
                        error,
                    });
                    continue;
                }
            };
            let found = match document.find(&target, &image.image) {
                Ok(found) => found,
                Err(error) => {
                    status.error.get_or_insert(ImageError::Edit {
                        file: target_config.file.clone(),
                        error,
                    });
                    continue;
                }
            };
            let Some(first) = found.first() else {
                status.error.get_or_insert(ImageError::NotFound {
                    file: target_config.file.clone(),
                    repository: repository.clone(),
                    at,
                });
                continue;
            };
            if status.deployed.is_none() {
                status.deployed = first.tag.clone().or_else(|| first.digest.clone());
            }
            let Some(tags) = &tags else { continue };
            let current = Current {
                tag: first.tag.as_deref(),
                digest: first.digest.as_deref(),
            };
            let decision: Decision = match policy.select(tags, current, &meta, now) {
                Ok(Step::Decided(d)) => d,
                Ok(Step::NeedMetadata(wanted)) => {
                    plan.missing.push((repository.clone(), wanted.clone()));
                    status
                        .error
                        .get_or_insert(ImageError::MetadataMissing { tags: wanted });
                    continue;
                }
                Err(error) => {
                    status.error.get_or_insert(ImageError::NoMatch {
                        repository: repository.clone(),
                        error,
                    });
                    continue;
                }
            };
            // The best tag the policy allows, not the tag kept: a `~1.4` image whose deployed
            // 1.12.0 is kept shows 1.4.x here (or nothing when none is eligible yet).
            if status.candidate.is_none() {
                status.candidate.clone_from(&decision.best);
            }
            if decision.keep_current {
                continue;
            }
            let update =
                match Update::new(&repository, Some(&decision.tag), decision.digest.as_deref()) {
                    Ok(u) => u,
                    Err(error) => {
                        status.error.get_or_insert(ImageError::Update {
                            repository: repository.clone(),
                            error,
                        });
                        continue;
                    }
                };
            let applied = document.apply(&target, &update);
            drop(document);
            match applied {
                Ok(edited) => {
                    for change in &edited.changes {
                        plan.changes.push(PlannedChange {
                            app: app.app.name.clone(),
                            image: repository.clone(),
                            name: image.name.clone(),
                            file: target_config.file.clone(),
                            line: change.line,
                            from: change.old.clone(),
                            to: change.new.clone(),
                            // Only where this very scalar now holds it: a message never claims
                            // a digest that was not written.
                            digest: decision
                                .digest
                                .clone()
                                .filter(|d| change.new.contains(d.as_str())),
                            reason: decision.reason.clone(),
                            tag: decision.tag.clone(),
                        });
                    }
                    entry.1 = edited.bytes;
                }
                Err(error) => {
                    status.error.get_or_insert(ImageError::Edit {
                        file: target_config.file.clone(),
                        error,
                    });
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

/// Write the planned files into the work tree and commit them on the branch head.
pub fn write_and_commit(
    checkout: &Checkout,
    app: &App,
    files: &[FileEdit],
    changes: &[PlannedChange],
) -> Result<Option<Oid>, AppError> {
    let message = message::render(app.commit_message.as_deref(), &app.name, &contexts(changes))
        .map_err(AppError::template)?;
    let paths = write_files(checkout.workdir(), files)?;
    Ok(checkout.commit(&paths, &message)?)
}

/// Write the planned files into a work tree; the paths written, relative to it.
pub fn write_files(root: &Path, files: &[FileEdit]) -> Result<Vec<PathBuf>, AppError> {
    let mut paths = Vec::new();
    for f in files {
        let path = git::inside_clone(root, Path::new(&f.file))?;
        crate::atomic::write(&path, &f.after).map_err(|error| AppError::Write {
            file: f.file.clone(),
            error: Arc::new(error),
        })?;
        paths.push(PathBuf::from(&f.file));
    }
    Ok(paths)
}
