//! Cache maintenance: a cached clone whose packs or loose objects have piled up is repacked
//! into one pack, in-process (libgit2 has no `gc`, and the container image has no `git`).
//!
//! **Invariant:** no object, pack or reflog of a clone is deleted before one new pack holding
//! every object reachable from the clone's refs (every ref: branches, remote-tracking refs,
//! imagebump's own `refs/imagebump/*`; `HEAD`; the index's blobs) has been written with its
//! index, checked to hold all of them on its own, and made durable (both files fsynced,
//! renamed into `objects/pack`, the directory fsynced). It runs only under the clone's locks
//! (in-process claim and OS lock), between rounds (no object in memory, no pending head), and
//! never talks to the remote. A repack that fails at any step before that point leaves every
//! old object where it was; one that fails while deleting leaves some duplicates, never a
//! missing object.
//!
//! What is dropped: objects no ref reaches (the commits of a round whose push was rejected, a
//! branch deleted on the remote), and the reflogs, which imagebump never reads and which would
//! name dropped commits. Fetching them again is always possible: the remote is the source of
//! truth.
//!
//! **Invariant (when):** a clone is repacked only past one of its cache's [`Maintenance`]
//! limits (the global file's `git.maintenance`), only by a checkout that may write (the cache
//! of [`super::CloneCache::without_maintenance`], which `imagebump explain` and dry runs use,
//! never repacks), and never while a repack of that clone that failed is less than its
//! [`RepackBackoff`] old (`first` after one failure, doubling with each failure in a row up to
//! `max`; a success, or the clone found damaged and cloned again, forgets the failures). The
//! cache keeps that record ([`Failures`], in memory and in the clone, written before each
//! attempt: a process killed by a repack does not retry it at once after its restart) and
//! counts each outcome ([`RepackCounts`]).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::{ObjectType, Odb, Oid, Repository};

/// When a cached clone is repacked ([`super::CloneCache::with_maintenance`]; the engine sets it
/// from the global file's `git.maintenance`).
///
/// Defaults ([`Maintenance::DEFAULT`]): more than 50 packs (git's own `gc.autoPackLimit`:
/// libgit2 looks an object up in each pack's index in turn, so every lookup that misses the
/// last pack used costs one binary search per pack, and each open pack holds a file handle and
/// mapped windows; a daemon committing on 1-minute polls reaches 50 in under an hour) or more
/// than 5,000 loose objects (below git's `gc.auto` of 6,700: each is a file of at least one
/// 4 KB block, and a round that writes its trees out as it goes writes hundreds of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maintenance {
    /// Repack when the clone holds more packs than this.
    pub max_packs: usize,
    /// Repack when the clone holds more loose objects than this.
    pub max_loose_objects: usize,
}

impl Maintenance {
    pub const DEFAULT: Maintenance = Maintenance {
        max_packs: 50,
        max_loose_objects: 5_000,
    };

    /// Never repack (the clone then grows by a pack or more per pass).
    pub const OFF: Maintenance = Maintenance {
        max_packs: usize::MAX,
        max_loose_objects: usize::MAX,
    };

    fn wanted(&self, census: &Census) -> bool {
        census.packs > self.max_packs || census.loose_objects > self.max_loose_objects
    }
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance::DEFAULT
    }
}

/// How long a clone whose repack failed is left alone before the next try
/// ([`super::CloneCache::with_repack_backoff`]): `first` after one failure, doubling with each
/// failure in a row, up to `max`.
///
/// Defaults ([`RepackBackoff::DEFAULT`]): 5 minutes, up to 4 hours. A repack reads and writes
/// the whole object store: a clone whose repack keeps failing (a full disk, an unwritable
/// directory) would otherwise pay that at every checkout, every poll and every webhook, for
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepackBackoff {
    pub first: Duration,
    pub max: Duration,
}

impl RepackBackoff {
    pub const DEFAULT: RepackBackoff = RepackBackoff {
        first: Duration::from_secs(5 * 60),
        max: Duration::from_secs(4 * 60 * 60),
    };

    /// The wait after `failures` failures in a row (at least one).
    pub fn after(&self, failures: u32) -> Duration {
        crate::backoff::doubling(self.first, failures, self.max)
    }
}

impl Default for RepackBackoff {
    fn default() -> Self {
        RepackBackoff::DEFAULT
    }
}

/// The failed repacks of each clone (by clone directory), in a row, and when the last one
/// failed. Kept in memory and written in the clone ([`FAILED`]): each attempt is written down
/// before it starts, as the failure it becomes if the process never returns from it (killed
/// out of memory), and cleared by a success; a new process reads what an earlier one wrote.
#[derive(Debug, Default)]
pub(super) struct Failures {
    by_clone: HashMap<PathBuf, (u32, Instant)>,
}

/// The file in a clone's `.git` that holds its failed repacks in a row and the Unix time of
/// the last: `FAILURES SECONDS`.
const FAILED: &str = "imagebump-repack-failed";

impl Failures {
    /// How long the clone `dir` is still left alone at `now`, if it is. A clone this process
    /// holds nothing against is looked up in what an earlier one wrote.
    pub(super) fn waiting(
        &mut self,
        dir: &Path,
        now: Instant,
        backoff: RepackBackoff,
    ) -> Option<Duration> {
        if !self.by_clone.contains_key(dir)
            && let Some((failures, ago)) = read_failed(dir)
        {
            let last = now.checked_sub(ago).unwrap_or(now);
            self.by_clone.insert(dir.to_path_buf(), (failures, last));
        }
        let &(failures, last) = self.by_clone.get(dir)?;
        let until = last.checked_add(backoff.after(failures))?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// A repack of `dir` starts: written down as one more failure now, which it is unless
    /// [`Failures::forget`] or [`Failures::failed`] follows.
    pub(super) fn starting(&self, dir: &Path) {
        let failures = self.by_clone.get(dir).map_or(0, |(n, _)| *n);
        write_failed(dir, failures.saturating_add(1));
    }

    /// One more failure of `dir` at `now`: how many in a row, and how long it is left alone.
    pub(super) fn failed(
        &mut self,
        dir: &Path,
        now: Instant,
        backoff: RepackBackoff,
    ) -> (u32, Duration) {
        let entry = self.by_clone.entry(dir.to_path_buf()).or_insert((0, now));
        *entry = (entry.0.saturating_add(1), now);
        write_failed(dir, entry.0);
        (entry.0, backoff.after(entry.0))
    }

    /// `dir` was repacked, or is cloned again: no failure is held against it.
    pub(super) fn forget(&mut self, dir: &Path) {
        self.by_clone.remove(dir);
        match std::fs::remove_file(dir.join(".git").join(FAILED)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot clear the record of failed repacks");
            }
            _ => {}
        }
    }
}

/// Writes `failures` in a row, the last now, into the clone `dir`. Best effort: a clone that
/// cannot be written to fails its repack anyway, and its failures stay held in memory.
fn write_failed(dir: &Path, failures: u32) {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path = dir.join(".git").join(FAILED);
    if let Err(e) = crate::atomic::write(&path, format!("{failures} {seconds}\n").as_bytes()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write down the repack's attempt");
    }
}

/// What [`write_failed`] wrote in the clone `dir`: the failures in a row and how long ago the
/// last one was (0 for a time ahead of the clock). `None` when nothing (or nothing readable)
/// is there.
fn read_failed(dir: &Path) -> Option<(u32, Duration)> {
    let text = std::fs::read_to_string(dir.join(".git").join(FAILED)).ok()?;
    let (failures, seconds) = text.trim().split_once(' ')?;
    let failures: u32 = failures.parse().ok().filter(|n| *n > 0)?;
    let at = std::time::UNIX_EPOCH.checked_add(Duration::from_secs(seconds.parse().ok()?))?;
    let ago = std::time::SystemTime::now()
        .duration_since(at)
        .unwrap_or(Duration::ZERO);
    Some((failures, ago))
}

/// What became of the repacks a cache's checkouts wanted, since it was built
/// ([`super::CloneCache::repacks`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepackCounts {
    /// Repacked into one pack.
    pub repacked: u64,
    /// Tried and failed (nothing deleted), or found the clone damaged (cloned again).
    pub failed: u64,
    /// Past a limit, but not tried: the clone's last repack failed less than its backoff ago.
    pub skipped_backoff: u64,
}

/// What a clone's object store holds on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    pub packs: usize,
    /// Bytes of every file in `objects/pack` (packs, their indexes, anything else there).
    pub pack_bytes: u64,
    pub loose_objects: usize,
    pub loose_bytes: u64,
}

impl Census {
    /// Bytes of the object store.
    pub fn bytes(&self) -> u64 {
        self.pack_bytes + self.loose_bytes
    }
}

/// Counts the packs and loose objects of the clone whose `.git` directory is `git_dir`.
/// Unreadable directories count as empty.
pub fn census(git_dir: &Path) -> Census {
    let objects = git_dir.join("objects");
    let mut census = Census::default();
    for (path, meta) in files_in(&objects.join("pack")) {
        census.pack_bytes += meta.len();
        if path.extension().is_some_and(|ext| ext == "pack") {
            census.packs += 1;
        }
    }
    for (_, meta) in loose_objects(&objects) {
        census.loose_objects += 1;
        census.loose_bytes += meta.len();
    }
    census
}

/// The regular files directly in `dir` (none when it cannot be read).
fn files_in(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            meta.is_file().then(|| (entry.path(), meta))
        })
        .collect()
}

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The loose object files under `objects` (`xx/` + 38 hex digits), and libgit2's temporary
/// files of an interrupted loose write there.
fn loose_objects(objects: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let Ok(entries) = std::fs::read_dir(objects) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_name().to_str().is_some_and(|n| is_hex(n, 2)) {
            continue;
        }
        for (path, meta) in files_in(&entry.path()) {
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| is_hex(n, 38) || n.starts_with("tmp_object_git2_"))
            {
                found.push((path, meta));
            }
        }
    }
    found
}

/// What a repack did: one new pack holds every reachable object; `left` old files could not be
/// deleted (they only duplicate objects of the new pack, or are unreachable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Repacked {
    pub before: Census,
    pub after: Census,
    pub objects: usize,
    pub left: usize,
}

/// Why a repack did not happen.
#[derive(Debug, thiserror::Error)]
pub(super) enum RepackError {
    /// An object reachable from the clone's refs cannot be read: the clone is damaged.
    #[error("the clone cannot be read: {0}")]
    Unreadable(String),
    /// Writing, checking or installing the new pack failed; no old object was deleted.
    #[error("{0}")]
    Failed(String),
}

/// Where the new pack is written and checked before it is moved into `objects/pack`.
const STAGING: &str = "imagebump-repack";

/// The census of the clone at `dir` (a work tree with its `.git`) when it is past one of
/// `limits`, i.e. wants a repack; `None` when it is below both.
pub(super) fn due(dir: &Path, limits: Maintenance) -> Option<Census> {
    let before = census(&dir.join(".git"));
    limits.wanted(&before).then_some(before)
}

/// Repacks the clone at `dir` (a work tree with its `.git`), whose census was `before` (see
/// [`due`]). Call only while holding the clone's locks, with no round of objects in memory.
pub(super) fn maintain(dir: &Path, before: Census) -> Result<Repacked, RepackError> {
    let git_dir = dir.join(".git");
    let staging = git_dir.join(STAGING);
    let failed =
        |what: &str, e: &dyn std::fmt::Display| RepackError::Failed(format!("{what}: {e}"));
    if staging.exists() {
        // Left by a repack that died: never moved into objects/pack, so never relied on.
        std::fs::remove_dir_all(&staging)
            .map_err(|e| failed("removing an earlier unfinished repack", &e))?;
    }
    let result = repack(dir, &git_dir, &staging, before);
    if staging.exists()
        && let Err(e) = std::fs::remove_dir_all(&staging)
    {
        tracing::warn!(path = %staging.display(), error = %e, "could not remove the repack's staging directory");
    }
    result
}

/// The objects a new pack must hold: the refs' and HEAD's targets, and the index's blobs.
struct Roots {
    tips: Vec<Oid>,
    index_blobs: Vec<Oid>,
    refs: Vec<String>,
}

fn roots(repo: &Repository) -> Result<Roots, git2::Error> {
    let mut tips = Vec::new();
    let mut refs = Vec::new();
    for reference in repo.references()? {
        let reference = reference?;
        if let Ok(name) = reference.name() {
            refs.push(name.to_string());
        }
        if let Some(id) = reference.resolve()?.target() {
            tips.push(id);
        }
    }
    match repo.head() {
        Ok(head) => tips.extend(head.target()),
        Err(e)
            if matches!(
                e.code(),
                git2::ErrorCode::UnbornBranch | git2::ErrorCode::NotFound
            ) => {}
        Err(e) => return Err(e),
    }
    let mut index_blobs = Vec::new();
    for entry in repo.index()?.iter() {
        // Gitlinks (submodules) name a commit of another repository.
        if entry.mode != 0o160000 {
            index_blobs.push(entry.id);
        }
    }
    tips.sort();
    tips.dedup();
    Ok(Roots {
        tips,
        index_blobs,
        refs,
    })
}

/// Calls `commit`, `tree` or `other` for what `tip` is, peeling annotated tags (whose own ids
/// go to `other`).
fn peel(
    repo: &Repository,
    tip: Oid,
    mut commit: impl FnMut(Oid) -> Result<(), git2::Error>,
    mut tree: impl FnMut(Oid) -> Result<(), git2::Error>,
    mut other: impl FnMut(Oid) -> Result<(), git2::Error>,
) -> Result<(), git2::Error> {
    let mut id = tip;
    // A tag of a tag of ...: bounded, a cycle is impossible in a content-addressed store.
    for _ in 0..64 {
        let object = repo.find_object(id, None)?;
        match object.kind() {
            Some(ObjectType::Commit) => return commit(id),
            Some(ObjectType::Tree) => return tree(id),
            Some(ObjectType::Tag) => {
                other(id)?;
                id = object
                    .as_tag()
                    .ok_or_else(|| git2::Error::from_str("a tag object that is not a tag"))?
                    .target_id();
            }
            _ => return other(id),
        }
    }
    Err(git2::Error::from_str("tags nested too deep"))
}

/// Is this failure the clone's own damage (an object that is missing or corrupt), not a
/// failure to write?
fn is_damage(e: &git2::Error) -> bool {
    super::checkout::is_local_damage(e)
}

fn repack(
    dir: &Path,
    git_dir: &Path,
    staging: &Path,
    before: Census,
) -> Result<Repacked, RepackError> {
    let failed =
        |what: &str, e: &dyn std::fmt::Display| RepackError::Failed(format!("{what}: {e}"));
    let reading = |e: git2::Error| {
        if is_damage(&e) {
            RepackError::Unreadable(e.message().to_string())
        } else {
            RepackError::Failed(format!("reading the clone: {}", e.message()))
        }
    };
    let repo = Repository::open(dir).map_err(reading)?;
    let roots = roots(&repo).map_err(reading)?;
    if roots.tips.is_empty() {
        // Nothing reachable would mean deleting everything: never.
        return Err(RepackError::Failed("the clone has no refs".into()));
    }

    // 1. One pack of everything reachable, written to the staging directory.
    let mut builder = repo.packbuilder().map_err(reading)?;
    let mut walk = repo.revwalk().map_err(reading)?;
    let mut trees = Vec::new();
    let mut others = Vec::new();
    for &tip in &roots.tips {
        peel(
            &repo,
            tip,
            |id| walk.push(id),
            |id| {
                trees.push(id);
                Ok(())
            },
            |id| {
                others.push(id);
                Ok(())
            },
        )
        .map_err(reading)?;
    }
    builder.insert_walk(&mut walk).map_err(reading)?;
    for &id in &trees {
        builder.insert_tree(id).map_err(reading)?;
    }
    for &id in others.iter().chain(&roots.index_blobs) {
        builder.insert_object(id, None).map_err(reading)?;
    }
    let objects = builder.object_count();
    let staged = staging.join("pack");
    std::fs::create_dir_all(&staged).map_err(|e| failed("creating the staging directory", &e))?;
    builder.write(&staged, 0).map_err(|e| match e.class() {
        // The builder reads every object's data only now: a corrupt one is damage.
        git2::ErrorClass::Zlib | git2::ErrorClass::Object => {
            RepackError::Unreadable(e.message().to_string())
        }
        _ => failed("writing the new pack", &e.message()),
    })?;
    drop(builder);
    let mut new_files: Vec<PathBuf> = files_in(&staged).into_iter().map(|(p, _)| p).collect();
    // The index goes in last: libgit2 and git find a pack through its `.idx`.
    new_files.sort_by_key(|p| p.extension().is_some_and(|ext| ext == "idx"));
    if !new_files
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "pack"))
        || !new_files
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "idx"))
    {
        return Err(RepackError::Failed(
            "the new pack or its index is missing".into(),
        ));
    }
    for file in &new_files {
        File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(|e| failed(&format!("syncing {}", file.display()), &e))?;
    }

    // 2. The new pack alone must hold every root and everything they reach.
    check_complete(dir, staging, &roots).map_err(|e| {
        RepackError::Failed(format!(
            "the new pack does not hold every reachable object: {e}"
        ))
    })?;

    // 3. Into objects/pack, durably.
    let pack_dir = git_dir.join("objects").join("pack");
    let mut new_names = HashSet::new();
    for file in &new_files {
        let Some(name) = file.file_name() else {
            continue;
        };
        std::fs::rename(file, pack_dir.join(name)).map_err(|e| {
            failed(
                &format!("moving the new pack into {}", pack_dir.display()),
                &e,
            )
        })?;
        new_names.insert(name.to_os_string());
    }
    File::open(&pack_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| failed(&format!("syncing {}", pack_dir.display()), &e))?;

    // 4. Only now: the reflogs (they name commits about to go), the old packs, the loose
    // objects. A failure here leaves duplicates of objects the new pack holds.
    for name in roots.refs.iter().map(String::as_str).chain(["HEAD"]) {
        if let Err(e) = repo.reflog_delete(name) {
            // A reflog that stays names objects that go: keep every old object this time.
            return Err(failed(
                &format!("deleting the reflog of {name}"),
                &e.message(),
            ));
        }
    }
    let mut left = 0;
    let new_stems: HashSet<PathBuf> = new_names
        .iter()
        .map(|name| Path::new(name).with_extension(""))
        .collect();
    let mut old_pack_files: Vec<PathBuf> = files_in(&pack_dir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pack-"))
                && p.file_name()
                    .map(|n| !new_stems.contains(&Path::new(n).with_extension("")))
                    .unwrap_or(false)
        })
        .collect();
    // Indexes first: a reader never finds an index whose pack is gone.
    old_pack_files.sort_by_key(|p| p.extension().is_none_or(|ext| ext != "idx"));
    for file in old_pack_files {
        if std::fs::remove_file(&file).is_err() {
            left += 1;
        }
    }
    let objects_dir = git_dir.join("objects");
    for (file, _) in loose_objects(&objects_dir) {
        if std::fs::remove_file(&file).is_err() {
            left += 1;
        }
    }
    // The emptied fan-out directories (a non-empty one stays: remove_dir refuses it).
    if let Ok(entries) = std::fs::read_dir(&objects_dir) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_str().is_some_and(|n| is_hex(n, 2)) {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
    Ok(Repacked {
        before,
        after: census(git_dir),
        objects,
        left,
    })
}

/// Checks, through an object database made of the staging directory only, that every root
/// and every object reachable from them is there.
fn check_complete(dir: &Path, staging: &Path, roots: &Roots) -> Result<(), git2::Error> {
    let repo = Repository::open(dir)?;
    let odb = Odb::new()?;
    let staging = staging
        .to_str()
        .ok_or_else(|| git2::Error::from_str("the clone's path is not UTF-8"))?;
    odb.add_disk_alternate(staging)?;
    repo.set_odb(&odb)?;
    let mut walk = repo.revwalk()?;
    let mut trees = Vec::new();
    for &tip in &roots.tips {
        peel(
            &repo,
            tip,
            |id| walk.push(id),
            |id| {
                trees.push(id);
                Ok(())
            },
            |id| {
                if odb.exists(id) {
                    Ok(())
                } else {
                    Err(git2::Error::from_str(&format!("{id} is missing")))
                }
            },
        )?;
    }
    let mut seen = HashSet::new();
    for commit in walk {
        let commit = repo.find_commit(commit?)?;
        trees.push(commit.tree_id());
    }
    while let Some(id) = trees.pop() {
        if !seen.insert(id) {
            continue;
        }
        let tree = repo.find_tree(id)?;
        for entry in tree.iter() {
            match entry.kind() {
                Some(ObjectType::Tree) => trees.push(entry.id()),
                Some(ObjectType::Blob) if seen.insert(entry.id()) && !odb.exists(entry.id()) => {
                    return Err(git2::Error::from_str(&format!(
                        "blob {} is missing",
                        entry.id()
                    )));
                }
                // Gitlinks name commits of other repositories; a blob seen before is there.
                _ => {}
            }
        }
    }
    for &id in &roots.index_blobs {
        if !odb.exists(id) {
            return Err(git2::Error::from_str(&format!(
                "index blob {id} is missing"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_census_counts_packs_and_loose_objects_and_the_limits_are_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        std::fs::create_dir_all(objects.join("pack")).unwrap();
        std::fs::create_dir_all(objects.join("ab")).unwrap();
        std::fs::create_dir_all(objects.join("info")).unwrap();
        for (path, bytes) in [
            ("pack/pack-1.pack", 100),
            ("pack/pack-1.idx", 10),
            ("pack/pack-2.pack", 50),
            ("pack/pack-2.idx", 5),
            (&format!("ab/{}", "c".repeat(38)), 7),
            (&format!("ab/{}", "d".repeat(38)), 3),
            ("ab/not-an-object", 1000),
            ("info/packs", 1000),
        ] {
            std::fs::write(objects.join(path), vec![0u8; bytes]).unwrap();
        }
        let census = census(dir.path());
        assert_eq!(
            census,
            Census {
                packs: 2,
                pack_bytes: 165,
                loose_objects: 2,
                loose_bytes: 10,
            }
        );
        assert_eq!(census.bytes(), 175);
        let limits = |max_packs, max_loose_objects| Maintenance {
            max_packs,
            max_loose_objects,
        };
        assert!(!limits(2, 2).wanted(&census));
        assert!(limits(1, 2).wanted(&census));
        assert!(limits(2, 1).wanted(&census));
        assert!(!Maintenance::OFF.wanted(&census));
        assert!(!Maintenance::DEFAULT.wanted(&census));
    }

    #[test]
    fn the_backoff_doubles_with_each_failure_in_a_row_up_to_its_cap() {
        let backoff = RepackBackoff {
            first: Duration::from_secs(60),
            max: Duration::from_secs(300),
        };
        let waits: Vec<u64> = (1..=6).map(|n| backoff.after(n).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 300, 300, 300]);
        assert_eq!(backoff.after(u32::MAX), backoff.max);
        assert_eq!(RepackBackoff::DEFAULT.after(1), Duration::from_secs(300));
        assert_eq!(
            RepackBackoff::DEFAULT.after(7),
            Duration::from_secs(4 * 3600)
        );
    }

    #[test]
    fn a_failed_clone_waits_out_its_backoff_and_a_success_forgets_its_failures() {
        let backoff = RepackBackoff {
            first: Duration::from_secs(60),
            max: Duration::from_secs(600),
        };
        let cache = tempfile::tempdir().unwrap();
        for clone in ["a", "b"] {
            std::fs::create_dir_all(cache.path().join(clone).join(".git")).unwrap();
        }
        let (a, b) = (&cache.path().join("a"), &cache.path().join("b"));
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut failures = Failures::default();
        assert_eq!(failures.waiting(a, start, backoff), None, "never failed");

        assert_eq!(
            failures.failed(a, start, backoff),
            (1, Duration::from_secs(60))
        );
        assert_eq!(
            failures.waiting(a, at(10), backoff),
            Some(Duration::from_secs(50))
        );
        assert_eq!(failures.waiting(b, at(10), backoff), None, "per clone");
        assert_eq!(failures.waiting(a, at(60), backoff), None, "waited out");

        // Failing again at the next try doubles the wait, counted from that failure.
        assert_eq!(
            failures.failed(a, at(61), backoff),
            (2, Duration::from_secs(120))
        );
        assert!(failures.waiting(a, at(180), backoff).is_some());
        assert_eq!(failures.waiting(a, at(181), backoff), None);

        // A shorter backoff applies to the failures already held.
        let none = RepackBackoff {
            first: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(failures.waiting(a, at(62), none), None);

        failures.forget(a);
        assert_eq!(failures.waiting(a, at(62), backoff), None);
        assert_eq!(
            failures.failed(a, at(62), backoff),
            (1, Duration::from_secs(60)),
            "a success starts the count again"
        );
    }

    #[test]
    fn an_attempt_is_written_in_the_clone_and_read_by_the_next_process() {
        let backoff = RepackBackoff {
            first: Duration::from_secs(60),
            max: Duration::from_secs(600),
        };
        let cache = tempfile::tempdir().unwrap();
        let a = &cache.path().join("a");
        std::fs::create_dir_all(a.join(".git")).unwrap();
        let now = Instant::now();
        // An attempt that never returned (the process was killed): one failure, now.
        Failures::default().starting(a);
        let mut next = Failures::default();
        let wait = next.waiting(a, now, backoff).unwrap();
        assert!(wait > Duration::from_secs(55), "{wait:?}");
        // Two failures in a row, written by `failed`: the next process doubles the wait.
        let mut first = Failures::default();
        first.failed(a, now, backoff);
        first.starting(a);
        first.failed(a, now, backoff);
        let wait = Failures::default().waiting(a, now, backoff).unwrap();
        assert!(wait > Duration::from_secs(115), "{wait:?}");
        // A success clears it; an unreadable record is no record.
        first.forget(a);
        assert_eq!(Failures::default().waiting(a, now, backoff), None);
        std::fs::write(a.join(".git").join(FAILED), "garbage\n").unwrap();
        assert_eq!(Failures::default().waiting(a, now, backoff), None);
        // A time ahead of the clock counts as now.
        std::fs::write(a.join(".git").join(FAILED), "1 99999999999\n").unwrap();
        assert_eq!(
            Failures::default().waiting(a, now, backoff),
            Some(Duration::from_secs(60))
        );
    }
}
