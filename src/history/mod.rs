//! A target's history on its branch: which values it held, since which commit, written by
//! whom. Rollback detection ([`rollback`]) reads it today; promotion between environments
//! (issue 19, part 2) is meant to read the same record.
//!
//! Invariant: reading is bounded (by default [`Bound::default`]: 5,000 first-parent commits or
//! 90 days) and cached per (repository, branch, file): a pass whose branch head is the one
//! read before reads no commit at all, a pass on a new head reads only the commits since (but
//! not the bot's own pushed commits, recorded as they are pushed: [`History::record_own_commits`]), a
//! cold start reads all of a branch's target files in one walk ([`History::prefetch`]), and a
//! file's blob is parsed once per target however often it is asked about. The cache stays
//! within the bound too: a record extended by new commits is cut to what a cold read would
//! hold (and the parsed values of blobs cut with it are forgotten), and a daemon reload keeps
//! only the records of targets still configured ([`History::carried`]). The walk itself
//! lives in `git` ([`crate::git::Checkout::file_history`]); the YAML reading is `edit`'s;
//! this module joins the two and keeps the cache. It never writes.
//!
//! Design choice: the cache key is the branch head and the file's blob ids, never a time: a
//! cached history is extended from the commit it was read at, and a branch rewritten under it
//! (the cached head no longer on the first-parent path within the bound) is read again from
//! scratch.

pub mod rollback;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

use crate::edit::{self, Target};
use crate::git::{
    Checkout, CommitMeta, FileHistory, FileVersion, GitError, HistoryEnd, Oid, OwnCommit, WalkBound,
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
    /// Versions were cut off when this record was made ([`trim`]).
    trimmed: bool,
}

impl FileRecord {
    /// The record at `head` after reading `read` from there: when the walk stopped at the
    /// head of `known`, its new versions and then the known ones, trimmed to `bound`.
    fn after(
        head: Oid,
        read: FileHistory,
        known: Option<&FileRecord>,
        bound: WalkBound,
    ) -> FileRecord {
        let (versions, end, trimmed) = match (read.end, known) {
            (HistoryEnd::Known, Some(older)) => {
                let mut versions = read.versions;
                versions.extend(older.versions.iter().cloned());
                trim(versions, older.end, bound)
            }
            (end, _) => (read.versions, end, false),
        };
        FileRecord {
            head,
            versions: Arc::new(versions),
            end,
            trimmed,
        }
    }
}

/// `versions` (newest first, ending at `end`) cut to what a fresh read within `bound` keeps:
/// no version older than its age limit (committer time; from the first such version on, as the
/// walk stops there) and no more versions than its commit limit (a first-parent commit writes
/// at most one version, so a fresh read holds no more). Whatever is cut, the record then ends
/// at the bound: an extended record never grows past what a cold read would hold.
fn trim(
    mut versions: Vec<FileVersion>,
    end: HistoryEnd,
    bound: WalkBound,
) -> (Vec<FileVersion>, HistoryEnd, bool) {
    let too_old = bound.not_before.and_then(|not_before| {
        versions
            .iter()
            .position(|version| version.commit.time < not_before)
    });
    let keep = too_old.unwrap_or(versions.len()).min(bound.max_commits);
    if keep < versions.len() {
        versions.truncate(keep);
        versions.shrink_to_fit();
        return (versions, HistoryEnd::Bound, true);
    }
    (versions, end, false)
}

/// `file` as a walk looks it up: its names between slashes, without empty or `.` ones.
fn walked_path(file: &str) -> String {
    file.split('/')
        .filter(|name| !name.is_empty() && *name != ".")
        .collect::<Vec<_>>()
        .join("/")
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
    /// A record was trimmed since the parsed values were last swept ([`History::sweep`]).
    trimmed: AtomicBool,
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
        let head = checkout.head()?;
        Ok(self.pin_at(checkout, url, head))
    }

    /// As [`Self::pin`], at `head` instead of the checkout's (a clone read before its fetch,
    /// at the branch as last fetched or pushed).
    pub fn pin_at(&self, checkout: &Checkout, url: &str, head: Oid) -> Pinned<'_> {
        let key = (url.to_string(), checkout.branch().to_string());
        if let Ok(mut pinned) = self.pinned.lock() {
            pinned.insert(key.clone(), head);
        }
        Pinned { history: self, key }
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

    /// After a record was trimmed: forget the parsed values of blobs no record holds any more
    /// (one look over the records, only when something was cut).
    fn sweep(&self) {
        if !self.trimmed.swap(false, Ordering::Relaxed) {
            return;
        }
        let live: HashSet<Oid> = match self.files.lock() {
            Ok(files) => files
                .values()
                .flat_map(|record| record.versions.iter().filter_map(|v| v.blob))
                .collect(),
            Err(_) => return,
        };
        if let Ok(mut values) = self.values.lock() {
            values.retain(|(blob, _), _| live.contains(blob));
            values.shrink_to_fit();
        }
    }

    /// A cache for a new configuration (a daemon reload) with `bound`: this one's records of
    /// the (repository, branch, file)s `configured` still names, so a reload reads no history
    /// again for them and keeps nothing of targets gone. With another bound it starts empty
    /// (a record read within the old bound is not one read within the new).
    pub fn carried(&self, bound: Bound, configured: impl Fn(&str, &str, &str) -> bool) -> History {
        let fresh = History::new(bound);
        if bound != self.bound {
            return fresh;
        }
        let keep = |(url, branch, file): &(String, String, String)| configured(url, branch, file);
        let files: HashMap<_, _> = match self.files.lock() {
            Ok(files) => files
                .iter()
                .filter(|(key, _)| keep(key))
                .map(|(key, record)| (key.clone(), record.clone()))
                .collect(),
            Err(_) => return fresh,
        };
        let live: HashSet<Oid> = files
            .values()
            .flat_map(|record| record.versions.iter().filter_map(|v| v.blob))
            .collect();
        let values = self
            .values
            .lock()
            .map(|values| {
                values
                    .iter()
                    .filter(|((blob, _), _)| live.contains(blob))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let targets = self
            .targets
            .lock()
            .map(|targets| {
                targets
                    .iter()
                    .filter(|((url, branch, file, _), _)| configured(url, branch, file))
                    .map(|(key, known)| (key.clone(), known.clone()))
                    .collect()
            })
            .unwrap_or_default();
        History {
            files: Mutex::new(files),
            values: Mutex::new(values),
            targets: Mutex::new(targets),
            ..fresh
        }
    }

    /// What the cache holds: (file records, versions in them, parsed values, target
    /// histories). What stays bounded shows here.
    pub fn size(&self) -> (usize, usize, usize, usize) {
        let (records, versions) = self
            .files
            .lock()
            .map(|files| {
                (
                    files.len(),
                    files.values().map(|record| record.versions.len()).sum(),
                )
            })
            .unwrap_or_default();
        let values = self.values.lock().map(|v| v.len()).unwrap_or_default();
        let targets = self.targets.lock().map(|t| t.len()).unwrap_or_default();
        (records, versions, values, targets)
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
            let bound = self.walk_bound(now);
            let read = checkout.files_history_since(head, &group, bound, since)?;
            if let Some(first) = read.first() {
                self.commits_read
                    .fetch_add(first.commits_read, Ordering::Relaxed);
            }
            let Ok(mut cached) = self.files.lock() else {
                return Ok(());
            };
            for (file, history) in group.iter().zip(read) {
                let key = key(file);
                let record = FileRecord::after(head, history, cached.get(&key), bound);
                if record.trimmed {
                    self.trimmed.store(true, Ordering::Relaxed);
                }
                cached.insert(key, record);
            }
        }
        self.sweep();
        Ok(())
    }

    /// After a push of the bot's own `commits` (oldest first, the first made on `base`, each on
    /// the one before) to `url`'s `branch`: the records read at `base` are carried over them
    /// as a walk from the last of them down to `base` would carry them, without reading them
    /// back (after a round of 1,000 commits, that walk was most of the next pass's own CPU).
    /// Left to be read as before: everything, when the commits do not chain from `base` or a
    /// walk would stop inside them (the bound); a record whose path is a folder of a changed
    /// path or lies under one (its entry then changes in ways the commits' files do not say).
    pub fn record_own_commits(
        &self,
        url: &str,
        branch: &str,
        base: Oid,
        commits: &[OwnCommit],
        now: OffsetDateTime,
    ) {
        let Some(last) = commits.last() else {
            return;
        };
        let mut parent = base;
        for commit in commits {
            if commit.parent != parent {
                return;
            }
            parent = commit.commit.id;
        }
        let bound = self.walk_bound(now);
        let within = commits.len() <= bound.max_commits
            && commits
                .iter()
                .all(|c| bound.not_before.is_none_or(|t| c.commit.time >= t));
        if !within {
            return;
        }
        let head = last.commit.id;
        // Per changed path, its new versions, newest first.
        let mut changed: HashMap<&str, Vec<FileVersion>> = HashMap::new();
        for commit in commits.iter().rev() {
            for (path, blob) in &commit.files {
                changed.entry(path.as_str()).or_default().push(FileVersion {
                    commit: commit.commit.clone(),
                    blob: *blob,
                    origin: None,
                });
            }
        }
        let folders: HashSet<&str> = changed
            .keys()
            .flat_map(|path| path.match_indices('/').map(|(at, _)| &path[..at]))
            .collect();
        let Ok(mut files) = self.files.lock() else {
            return;
        };
        for ((record_url, record_branch, file), record) in files.iter_mut() {
            if record_url != url || record_branch != branch || record.head != base {
                continue;
            }
            let path = walked_path(file);
            let under_changed = path
                .match_indices('/')
                .any(|(at, _)| changed.contains_key(&path[..at]));
            if path.is_empty() || folders.contains(path.as_str()) || under_changed {
                continue;
            }
            let read = FileHistory {
                head,
                versions: changed.get(path.as_str()).cloned().unwrap_or_default(),
                end: HistoryEnd::Known,
                commits_read: commits.len(),
            };
            *record = FileRecord::after(head, read, Some(record), bound);
            if record.trimmed {
                self.trimmed.store(true, Ordering::Relaxed);
            }
        }
        drop(files);
        self.sweep();
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
        let record = FileRecord::after(head, read, cached.as_ref(), bound);
        let (versions, end) = (Arc::clone(&record.versions), record.end);
        if record.trimmed {
            self.trimmed.store(true, Ordering::Relaxed);
        }
        if let Ok(mut files) = self.files.lock() {
            files.insert(key, record);
        }
        self.sweep();
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::git::{Author, CloneCache, GitSettings};

    const FILE: &str = "values.yaml";
    const DAY: i64 = 86_400;
    /// 2026-12-01, the tests' "now" on the first pass.
    const T0: i64 = 1_796_083_200;

    fn git(dir: &Path, args: &[&str], when: i64) {
        let date = format!("@{when} +0000");
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "jane")
            .env("GIT_AUTHOR_EMAIL", "jane@example.com")
            .env("GIT_COMMITTER_NAME", "jane")
            .env("GIT_COMMITTER_EMAIL", "jane@example.com")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .unwrap();
        assert!(status.status.success(), "git {args:?}: {status:?}");
    }

    /// A remote and a working clone to push from, and a clone cache for the reader.
    struct Repo {
        _root: tempfile::TempDir,
        work: std::path::PathBuf,
        url: String,
        cache: CloneCache,
    }

    impl Repo {
        fn new() -> Repo {
            let root = tempfile::tempdir().unwrap();
            let bare = root.path().join("remote.git");
            let work = root.path().join("work");
            std::fs::create_dir_all(&bare).unwrap();
            std::fs::create_dir_all(&work).unwrap();
            git(&bare, &["init", "-q", "--bare", "-b", "main"], T0);
            git(&work, &["init", "-q", "-b", "main"], T0);
            let url = format!("file://{}", bare.display());
            git(&work, &["remote", "add", "origin", &url], T0);
            let settings = GitSettings {
                author: Author {
                    name: "imagebump".into(),
                    email: "bot@imagebump.test".into(),
                },
                credentials: vec![],
                accept_unknown_hosts: false,
                signing_key: None,
            };
            let cache = CloneCache::new(root.path().join("cache"), settings);
            Repo {
                _root: root,
                work,
                url,
                cache,
            }
        }

        /// Commit `tag` into `file` at `when` and push.
        fn bump(&self, file: &str, tag: &str, when: i64) {
            let manifest = format!(
                "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: api\n      image: ghcr.io/acme/api:{tag}\n"
            );
            std::fs::write(self.work.join(file), manifest).unwrap();
            git(&self.work, &["add", file], when);
            git(&self.work, &["commit", "-q", "-m", tag], when);
            git(&self.work, &["push", "-q", "origin", "HEAD:main"], when);
        }

        fn checkout(&self) -> Checkout {
            self.cache.checkout(&self.url, "main").unwrap()
        }
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn read(history: &History, repo: &Repo, file: &str, now: i64) -> Arc<TargetHistory> {
        let image = ImageRef::parse("ghcr.io/acme/api").unwrap();
        history
            .target(
                &repo.checkout(),
                &repo.url,
                file,
                &Target::Auto,
                &image,
                at(now),
            )
            .unwrap()
    }

    #[test]
    fn an_extended_record_is_trimmed_to_the_commit_bound() {
        let repo = Repo::new();
        let history = History::new(Bound {
            max_commits: 3,
            max_age: Duration::days(90),
        });
        for n in 0..10 {
            let when = T0 + n * 60;
            repo.bump(FILE, &format!("1.0.{n}"), when);
            read(&history, &repo, FILE, when);
            let (records, versions, values, _) = history.size();
            assert_eq!(records, 1);
            assert!(versions <= 3, "pass {n}: {versions} versions cached");
            assert!(values <= 4, "pass {n}: {values} parsed values cached");
        }
        // What is kept is the newest, and the record no longer claims to reach the root.
        let known = read(&history, &repo, FILE, T0 + 600);
        assert!(!known.complete);
        let tags: Vec<String> = known
            .changes
            .iter()
            .map(|c| c.value.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(tags, ["1.0.9", "1.0.8"]);
    }

    #[test]
    fn an_extended_record_is_trimmed_to_the_age_bound() {
        let repo = Repo::new();
        let history = History::new(Bound {
            max_commits: 5000,
            max_age: Duration::days(10),
        });
        // One bump a day for 30 days, read every day: never more than 10 days are kept.
        for day in 0..30 {
            let when = T0 + day * DAY;
            repo.bump(FILE, &format!("1.0.{day}"), when);
            read(&history, &repo, FILE, when + 60);
            let (_, versions, values, _) = history.size();
            assert!(versions <= 11, "day {day}: {versions} versions cached");
            assert!(values <= 12, "day {day}: {values} parsed values cached");
        }
        // The same as a cold read within the bound.
        let cold = History::new(history.bound);
        let now = T0 + 29 * DAY + 60;
        assert_eq!(
            read(&cold, &repo, FILE, now),
            read(&history, &repo, FILE, now)
        );
    }

    #[test]
    fn a_reload_keeps_the_configured_files_only() {
        let repo = Repo::new();
        let history = History::new(Bound::default());
        repo.bump("a.yaml", "1.0.0", T0);
        repo.bump("b.yaml", "1.0.0", T0 + 60);
        repo.bump("a.yaml", "1.1.0", T0 + 120);
        read(&history, &repo, "a.yaml", T0 + 180);
        read(&history, &repo, "b.yaml", T0 + 180);
        assert_eq!(history.size().0, 2);

        let kept = history.carried(Bound::default(), |url, branch, file| {
            url == repo.url && branch == "main" && file == "a.yaml"
        });
        let (records, versions, values, targets) = kept.size();
        assert_eq!((records, versions, values, targets), (1, 2, 2, 1));
        // Served from what was carried: no commit read, no blob parsed.
        read(&kept, &repo, "a.yaml", T0 + 180);
        assert_eq!(kept.cost(), (0, 0));

        // Another bound: nothing carried (it was read within the old one).
        let other = Bound {
            max_commits: 10,
            max_age: Duration::days(1),
        };
        assert_eq!(history.carried(other, |_, _, _| true).size(), (0, 0, 0, 0));
    }

    /// The records of `files` in `history` at `url`'s main: (head, versions, end) per file.
    fn records(
        history: &History,
        url: &str,
        files: &[&str],
    ) -> Vec<(Oid, Vec<FileVersion>, HistoryEnd)> {
        let cached = history.files.lock().unwrap();
        files
            .iter()
            .map(|file| {
                let record = &cached[&(url.to_string(), "main".to_string(), file.to_string())];
                (record.head, record.versions.to_vec(), record.end)
            })
            .collect()
    }

    /// The bot's own commits, then pushed: a file changed twice, one in a folder, one removed,
    /// one created, one written with the same bytes beside a change, a commit touching no
    /// wanted file, and a record of the folder itself.
    fn own_round(repo: &Repo) -> (Checkout, Oid) {
        let checkout = repo.checkout();
        let base = checkout.head().unwrap();
        let manifest = |tag: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: api\n      image: ghcr.io/acme/api:{tag}\n"
            )
        };
        let commit = |writes: &[(&str, Option<&str>)]| {
            let mut paths = Vec::new();
            for (file, tag) in writes {
                let path = checkout.workdir().join(file);
                match tag {
                    Some(tag) => {
                        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                        std::fs::write(&path, manifest(tag)).unwrap();
                    }
                    None => std::fs::remove_file(&path).unwrap(),
                }
                paths.push(std::path::PathBuf::from(file));
            }
            checkout.commit(&paths, "bot").unwrap().expect("a commit");
        };
        commit(&[("a.yaml", Some("2.0.0"))]);
        commit(&[("apps/b.yaml", Some("2.0.0"))]);
        commit(&[("a.yaml", Some("2.1.0")), ("apps/c.yaml", Some("1.0.0"))]);
        commit(&[("d.yaml", None)]);
        commit(&[("e.yaml", Some("1.0.0"))]);
        commit(&[("other.txt", Some("x"))]);
        assert!(matches!(
            checkout.push().unwrap(),
            crate::git::PushOutcome::Pushed { .. }
        ));
        (checkout, base)
    }

    const OWN_FILES: [&str; 7] = [
        "a.yaml",
        "apps/b.yaml",
        "./apps/c.yaml",
        "d.yaml",
        "e.yaml",
        "untouched.yaml",
        "apps",
    ];

    fn seeded() -> Repo {
        let repo = Repo::new();
        repo.bump("a.yaml", "1.0.0", T0);
        std::fs::create_dir_all(repo.work.join("apps")).unwrap();
        repo.bump("apps/b.yaml", "1.0.0", T0 + 60);
        repo.bump("apps/c.yaml", "1.0.0", T0 + 120);
        repo.bump("d.yaml", "1.0.0", T0 + 180);
        repo.bump("untouched.yaml", "1.0.0", T0 + 240);
        repo
    }

    #[test]
    fn the_bots_pushed_commits_carry_the_records_as_a_walk_over_them_would() {
        let repo = seeded();
        let now = OffsetDateTime::now_utc();
        let history = History::new(Bound::default());
        history
            .prefetch(&repo.checkout(), &repo.url, &OWN_FILES, now)
            .unwrap();
        let (checkout, base) = own_round(&repo);
        let commits = checkout.own_commits();
        assert_eq!(commits.len(), 6);
        let read_before = history.cost().0;
        history.record_own_commits(&repo.url, "main", base, &commits, now);
        let carried = records(&history, &repo.url, &OWN_FILES);
        assert_eq!(history.cost().0, read_before, "nothing was read");
        let head = checkout.head().unwrap();
        for ((file, (at, _, _)), expected) in OWN_FILES.iter().zip(&carried).zip([head; 6]) {
            assert_eq!(*at, expected, "{file} carried to the pushed head");
        }
        assert_eq!(carried[6].0, base, "the folder's record is left to be read");

        // What a cold read of the pushed head finds, record for record.
        let cold = History::new(Bound::default());
        cold.prefetch(&checkout, &repo.url, &OWN_FILES, now)
            .unwrap();
        let walked = records(&cold, &repo.url, &OWN_FILES);
        assert_eq!(carried[..6], walked[..6]);
        // The record left behind is read from where it was: then it is the cold read's too.
        history
            .file_versions(&checkout, &repo.url, "apps", now)
            .unwrap();
        assert_eq!(records(&history, &repo.url, &OWN_FILES), walked);
    }

    #[test]
    fn commits_that_do_not_chain_from_the_base_or_pass_the_bound_carry_nothing() {
        let now = OffsetDateTime::now_utc();
        for (bound, wrong_base) in [
            (Bound::default(), true),
            (
                Bound {
                    max_commits: 5,
                    max_age: Duration::days(90),
                },
                false,
            ),
        ] {
            let repo = seeded();
            let history = History::new(bound);
            history
                .prefetch(&repo.checkout(), &repo.url, &OWN_FILES, now)
                .unwrap();
            let (checkout, base) = own_round(&repo);
            let before = records(&history, &repo.url, &OWN_FILES);
            let from = if wrong_base {
                checkout.own_commits()[0].commit.id
            } else {
                base
            };
            history.record_own_commits(&repo.url, "main", from, &checkout.own_commits(), now);
            assert_eq!(records(&history, &repo.url, &OWN_FILES), before);
        }
    }
}
