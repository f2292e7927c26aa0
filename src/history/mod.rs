//! A target's history on its branch: which values it held, since which commit, written by
//! whom. Rollback detection ([`rollback`]) reads it today; promotion between environments
//! (issue 19, part 2) is meant to read the same record.
//!
//! Invariant: reading is bounded (by default [`Bound::default`]: 5,000 first-parent commits or
//! 90 days) and cached per (repository, branch, file): a pass whose branch head is the one
//! read before reads no commit at all, a pass on a new head reads only the commits since, a
//! cold start reads all of a branch's target files in one walk ([`History::prefetch`]), and a
//! file's blob is parsed once per target however often it is asked about. The walk itself
//! lives in `git` ([`crate::git::Checkout::file_history`]); the YAML reading is `edit`'s;
//! this module joins the two and keeps the cache. It never writes.
//!
//! Design choice: the cache key is the branch head and the file's blob ids, never a time: a
//! cached history is extended from the commit it was read at, and a branch rewritten under it
//! (the cached head no longer on the first-parent path within the bound) is read again from
//! scratch.

pub mod rollback;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

use crate::edit::{self, Target};
use crate::git::{
    Checkout, CommitMeta, FileHistory, FileVersion, GitError, HistoryEnd, Oid, WalkBound,
};
use crate::reference::ImageRef;

/// How far back a history read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub max_commits: usize,
    pub max_age: Duration,
}

impl Default for Bound {
    /// 5,000 first-parent commits or 90 days, whichever is reached first.
    fn default() -> Bound {
        Bound {
            max_commits: 5000,
            max_age: Duration::days(90),
        }
    }
}

/// What a target holds in one version of its file: the tag and digest of the first reference
/// to the image (as the engine reads what is deployed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetValue {
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl std::fmt::Display for TargetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => write!(f, "{tag}@{digest}"),
            (Some(tag), None) => f.write_str(tag),
            (None, Some(digest)) => f.write_str(digest),
            (None, None) => f.write_str("(none)"),
        }
    }
}

/// A commit that changed what a target holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueChange {
    /// The value from this commit on; `None`: the file or the reference was gone.
    pub value: Option<TargetValue>,
    /// Who made the change: for a merge that took the file from a merged side, the commit on
    /// that side that wrote it; else the first-parent commit itself.
    pub by: CommitMeta,
    /// The first-parent commit that brought the change to the branch.
    pub landed: CommitMeta,
}

/// A target's value changes on its branch, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHistory {
    pub changes: Vec<ValueChange>,
    /// The read reached the file's first version: nothing older is missing.
    pub complete: bool,
}

/// One file's versions as last read, and the head they were read at.
#[derive(Debug, Clone)]
struct FileRecord {
    head: Oid,
    versions: Arc<Vec<FileVersion>>,
    end: HistoryEnd,
}

impl FileRecord {
    /// The record at `head` after reading `read` from there: when the walk stopped at the
    /// head of `known`, its new versions and then the known ones.
    fn after(head: Oid, read: FileHistory, known: Option<&FileRecord>) -> FileRecord {
        let (versions, end) = match (read.end, known) {
            (HistoryEnd::Known, Some(older)) => {
                let mut versions = read.versions;
                versions.extend(older.versions.iter().cloned());
                (versions, older.end)
            }
            (end, _) => (read.versions, end),
        };
        FileRecord {
            head,
            versions: Arc::new(versions),
            end,
        }
    }
}

/// (repository URL, branch, file, target and image).
type TargetKey = (String, String, String, String);

/// The history cache of an engine: shared by its passes, one entry per (repository URL,
/// branch, file).
#[derive(Debug, Default)]
pub struct History {
    bound: Bound,
    files: Mutex<HashMap<(String, String, String), FileRecord>>,
    /// A target's value in a blob, by (blob, target and image): parsed once.
    values: Mutex<HashMap<(Oid, String), Option<TargetValue>>>,
    /// A target's changes as last computed, by (file key, target and image), with the head
    /// they were computed at.
    targets: Mutex<HashMap<TargetKey, (Oid, Arc<TargetHistory>)>>,
    commits_read: AtomicUsize,
    blobs_parsed: AtomicUsize,
    /// Per (repository, branch), the head a round of commits started from ([`History::pin`]):
    /// histories are read there, not at each of the bot's own commits of the round.
    pinned: Mutex<HashMap<(String, String), Oid>>,
    /// The last blob parsed, kept parsed: the images of one file are read one after another
    /// in the same versions, and a file of 2,500 images was read and parsed 2,500 times.
    last_parsed: Mutex<Option<(Oid, Arc<Option<edit::OwnedDocument>>)>>,
}

/// Keeps a branch's history pinned to a head until dropped ([`History::pin`]).
pub struct Pinned<'a> {
    history: &'a History,
    key: (String, String),
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        if let Ok(mut pinned) = self.history.pinned.lock() {
            pinned.remove(&self.key);
        }
    }
}

/// Why a history could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("reading the history of {file}: {error}")]
pub struct HistoryError {
    pub file: String,
    pub error: Arc<GitError>,
}

impl History {
    pub fn new(bound: Bound) -> History {
        History {
            bound,
            ..History::default()
        }
    }

    /// Read the histories of the checkout's branch (of the repository `url`) at its current
    /// head until the guard is dropped, whatever the bot commits meanwhile: a round that commits
    /// app after app would otherwise read, for every app, the commits of all the apps before
    /// it (a walk per file of up to one commit per app: quadratic in apps). The bot's own
    /// commits of the round change no person's rollback.
    pub fn pin(&self, checkout: &Checkout, url: &str) -> Result<Pinned<'_>, GitError> {
        let key = (url.to_string(), checkout.branch().to_string());
        let head = checkout.head()?;
        if let Ok(mut pinned) = self.pinned.lock() {
            pinned.insert(key.clone(), head);
        }
        Ok(Pinned { history: self, key })
    }

    /// The head histories of the checkout's branch are read at: the pinned one, else the
    /// checkout's.
    fn head(&self, checkout: &Checkout, url: &str) -> Result<Oid, GitError> {
        let key = (url.to_string(), checkout.branch().to_string());
        match self.pinned.lock().ok().and_then(|p| p.get(&key).copied()) {
            Some(head) => Ok(head),
            None => checkout.head(),
        }
    }

    /// First-parent commits read so far (all files), and blobs parsed: what the cache saved
    /// shows here (a steady-state pass adds nothing).
    pub fn cost(&self) -> (usize, usize) {
        (
            self.commits_read.load(Ordering::Relaxed),
            self.blobs_parsed.load(Ordering::Relaxed),
        )
    }

    /// Read the histories of `files` on the checkout's branch (of the repository `url`) in one
    /// walk per starting point, so that the [`History::target`] calls that follow find them
    /// cached: the files with nothing cached from the head down (a cold start), and the files
    /// cached at an older head from the head down to that one (after the bot's own commits,
    /// every file of a pass is behind by the same commits: one walk over them, not one per file).
    pub fn prefetch(
        &self,
        checkout: &Checkout,
        url: &str,
        files: &[&str],
        now: OffsetDateTime,
    ) -> Result<(), GitError> {
        let branch = checkout.branch().to_string();
        let head = self.head(checkout, url)?;
        let key = |file: &str| (url.to_string(), branch.clone(), file.to_string());
        // Per starting point below the head (None: nothing cached), the files to read.
        let mut groups: HashMap<Option<Oid>, Vec<&str>> = HashMap::new();
        match self.files.lock() {
            Ok(cached) => {
                for &file in files {
                    match cached.get(&key(file)) {
                        Some(record) if record.head == head => {}
                        Some(record) => groups.entry(Some(record.head)).or_default().push(file),
                        None => groups.entry(None).or_default().push(file),
                    }
                }
            }
            Err(_) => return Ok(()),
        }
        for (since, mut group) in groups {
            group.sort_unstable();
            group.dedup();
            // One file is read as well by the incremental read of `target`.
            if group.len() < 2 {
                continue;
            }
            let read = checkout.files_history_since(head, &group, self.walk_bound(now), since)?;
            if let Some(first) = read.first() {
                self.commits_read
                    .fetch_add(first.commits_read, Ordering::Relaxed);
            }
            let Ok(mut cached) = self.files.lock() else {
                return Ok(());
            };
            for (file, history) in group.iter().zip(read) {
                let key = key(file);
                let record = FileRecord::after(head, history, cached.get(&key));
                cached.insert(key, record);
            }
        }
        Ok(())
    }

    fn walk_bound(&self, now: OffsetDateTime) -> WalkBound {
        WalkBound {
            max_commits: self.bound.max_commits,
            not_before: Some((now - self.bound.max_age).unix_timestamp()),
        }
    }

    /// The value changes of `target` (a reference to `image` in `file`) on the checkout's
    /// branch (of the repository `url`), newest first.
    pub fn target(
        &self,
        checkout: &Checkout,
        url: &str,
        file: &str,
        target: &Target,
        image: &ImageRef,
        now: OffsetDateTime,
    ) -> Result<Arc<TargetHistory>, HistoryError> {
        let wrap = |error| HistoryError {
            file: file.to_string(),
            error: Arc::new(error),
        };
        let key = format!("{}\u{0}{target:?}", image.name());
        let target_key = (
            url.to_string(),
            checkout.branch().to_string(),
            file.to_string(),
            key.clone(),
        );
        let head = self.head(checkout, url).map_err(wrap)?;
        if let Some(known) = self.targets.lock().ok().and_then(|targets| {
            targets
                .get(&target_key)
                .filter(|(at, _)| *at == head)
                .map(|(_, known)| Arc::clone(known))
        }) {
            return Ok(known);
        }
        let (versions, end) = self.file_versions(checkout, url, file, now).map_err(wrap)?;
        let mut values = Vec::with_capacity(versions.len());
        for version in versions.iter() {
            values.push(
                self.value(checkout, version.blob, &key, target, image)
                    .map_err(wrap)?,
            );
        }
        let mut changes = Vec::new();
        for (i, version) in versions.iter().enumerate() {
            let older = match values.get(i + 1) {
                Some(older) => older,
                // The oldest version read: a change only if the file began there.
                None if end == HistoryEnd::Root => &None,
                None => break,
            };
            if values[i] != *older {
                changes.push(ValueChange {
                    value: values[i].clone(),
                    by: version
                        .origin
                        .clone()
                        .unwrap_or_else(|| version.commit.clone()),
                    landed: version.commit.clone(),
                });
            }
        }
        let history = Arc::new(TargetHistory {
            changes,
            complete: end == HistoryEnd::Root,
        });
        if let Ok(mut targets) = self.targets.lock() {
            targets.insert(target_key, (head, Arc::clone(&history)));
        }
        Ok(history)
    }

    /// The file's versions on the branch, from the cache when the head did not move, else
    /// read from the head down to the commit the cache was read at (or the bound).
    fn file_versions(
        &self,
        checkout: &Checkout,
        url: &str,
        file: &str,
        now: OffsetDateTime,
    ) -> Result<(Arc<Vec<FileVersion>>, HistoryEnd), GitError> {
        let key = (
            url.to_string(),
            checkout.branch().to_string(),
            file.to_string(),
        );
        let head = self.head(checkout, url)?;
        let cached = self
            .files
            .lock()
            .ok()
            .and_then(|files| files.get(&key).cloned());
        if let Some(record) = &cached
            && record.head == head
        {
            return Ok((Arc::clone(&record.versions), record.end));
        }
        let bound = self.walk_bound(now);
        let read = checkout.file_history_from(
            head,
            Path::new(file),
            bound,
            cached.as_ref().map(|record| record.head),
        )?;
        self.commits_read
            .fetch_add(read.commits_read, Ordering::Relaxed);
        let record = FileRecord::after(head, read, cached.as_ref());
        let (versions, end) = (Arc::clone(&record.versions), record.end);
        if let Ok(mut files) = self.files.lock() {
            files.insert(key, record);
        }
        Ok((versions, end))
    }

    /// Blob `blob` parsed (`None`: it does not parse), reusing the last one parsed.
    fn parsed(
        &self,
        checkout: &Checkout,
        blob: Oid,
    ) -> Result<Arc<Option<edit::OwnedDocument>>, GitError> {
        if let Ok(last) = self.last_parsed.lock()
            && let Some((id, document)) = last.as_ref()
            && *id == blob
        {
            return Ok(Arc::clone(document));
        }
        let bytes = checkout.blob(blob)?;
        self.blobs_parsed.fetch_add(1, Ordering::Relaxed);
        let document = Arc::new(edit::OwnedDocument::parse(bytes).ok());
        if let Ok(mut last) = self.last_parsed.lock() {
            *last = Some((blob, Arc::clone(&document)));
        }
        Ok(document)
    }

    /// The target's value in one blob, parsed once per blob and target.
    fn value(
        &self,
        checkout: &Checkout,
        blob: Option<Oid>,
        key: &str,
        target: &Target,
        image: &ImageRef,
    ) -> Result<Option<TargetValue>, GitError> {
        let Some(blob) = blob else { return Ok(None) };
        let cache_key = (blob, key.to_string());
        if let Some(value) = self
            .values
            .lock()
            .ok()
            .and_then(|values| values.get(&cache_key).cloned())
        {
            return Ok(value);
        }
        let document = self.parsed(checkout, blob)?;
        // A version that does not parse, or has no reference to the image, holds no value.
        let value = document
            .as_ref()
            .as_ref()
            .and_then(|document| document.find(target, image).ok())
            .and_then(|found| {
                found.first().map(|first| TargetValue {
                    tag: first.tag.clone(),
                    digest: first.digest.clone(),
                })
            });
        if let Ok(mut values) = self.values.lock() {
            values.insert(cache_key, value.clone());
        }
        Ok(value)
    }
}
