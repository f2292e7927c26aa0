//! The clone cache: one working clone per repository URL, opened (cloned, or rebuilt when
//! damaged) and handed out as a [`Checkout`].
//!
//! **Invariant:** at most one [`Checkout`] of a clone directory is alive at a time - in this
//! process through the shared in-use set, across processes through an OS file lock on
//! `<clone dir>.lock` that holds the holder's PID - and git's own `*.lock` files in a clone are
//! removed only while holding that OS lock. A clone marked for rebuild (or with too many packs)
//! is deleted and cloned again on its next checkout, never used as it is. A clone past
//! [`Maintenance`]'s limits is repacked right after its fetch, under the same locks
//! (`maintenance.rs`); a repack that fails leaves it as it was, and that clone is not tried
//! again before its [`RepackBackoff`] has passed. The cache of
//! [`CloneCache::without_maintenance`] (reads: `explain`, dry runs) never repacks.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{File, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use git2::Repository;
use sha2::Digest as _;

use super::checkout::{Checkout, InUse, REBUILD_MARKER, REMOTE};
use super::maintenance::{
    self, Census, Failures, Maintenance, RepackBackoff, RepackCounts, RepackError, Repacked,
};
use super::{GitError, GitSettings, redact_url};

/// One working clone per repository URL under `workdir`, reused across passes.
///
/// Clones of the cache share a record of the directories in use: a second [`Checkout`] of a
/// URL while the first is alive is refused ([`GitError::Busy`]) instead of racing on its files.
///
/// Across processes (`once` while `run` runs, two replicas on one volume), each clone is
/// guarded by an OS file lock on `<clone dir>.lock`, which holds the holder's PID: a second
/// process waits for it up to [`CloneCache::with_lock_wait`] (60 s by default), then fails
/// with [`GitError::WorkdirInUse`] naming that PID. The OS releases the lock when its holder
/// exits, even after `kill -9`, so a stale lock file never blocks anyone.
#[derive(Debug, Clone)]
pub struct CloneCache {
    workdir: PathBuf,
    settings: Arc<GitSettings>,
    in_use: Arc<Mutex<HashSet<PathBuf>>>,
    lock_wait: Duration,
    maintenance: Maintenance,
    repack_backoff: RepackBackoff,
    /// Shared by the clones of the cache (and [`CloneCache::without_maintenance`]).
    repacks: Arc<Mutex<RepackRecord>>,
}

/// The repacks of a cache: the failures held against each clone, and the counts.
#[derive(Debug, Default)]
struct RepackRecord {
    failures: Failures,
    counts: RepackCounts,
}

/// How long [`CloneCache::checkout`] waits by default for another process's lock on a clone.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Why [`lock_clone`] did not get the lock.
enum LockFailure {
    /// Another process held it for the whole wait; `pid` as written in the lock file.
    Held {
        pid: Option<u32>,
    },
    Io(String),
}

/// Takes the OS lock of the clone `dir` (file `<dir>.lock`, created next to it), waiting up to
/// `wait` for another process that holds it, and writes this process's PID into it.
fn lock_clone(dir: &Path, wait: Duration) -> Result<File, LockFailure> {
    let mut path = dir.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| LockFailure::Io(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| LockFailure::Io(format!("cannot open lock file {}: {e}", path.display())))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let waited = started.elapsed();
                if waited >= wait {
                    let mut holder = String::new();
                    let _ = file.seek(SeekFrom::Start(0));
                    let _ = file.read_to_string(&mut holder);
                    return Err(LockFailure::Held {
                        pid: holder.trim().parse().ok(),
                    });
                }
                std::thread::sleep((wait - waited).min(Duration::from_millis(100)));
            }
            Err(TryLockError::Error(e)) => {
                return Err(LockFailure::Io(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
    }
    // Only the holder writes here; a reader that races this write sees no PID, not a wrong one.
    let written = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    written
        .map_err(|e| LockFailure::Io(format!("cannot write lock file {}: {e}", path.display())))?;
    Ok(file)
}

impl CloneCache {
    pub fn new(workdir: PathBuf, settings: GitSettings) -> Self {
        CloneCache {
            workdir,
            settings: Arc::new(settings),
            in_use: Arc::default(),
            lock_wait: DEFAULT_LOCK_WAIT,
            maintenance: Maintenance::DEFAULT,
            repack_backoff: RepackBackoff::DEFAULT,
            repacks: Arc::default(),
        }
    }

    /// When a clone is repacked, right after a checkout has fetched it
    /// ([`Maintenance::DEFAULT`] unless set).
    pub fn with_maintenance(mut self, maintenance: Maintenance) -> Self {
        self.maintenance = maintenance;
        self
    }

    /// How long a clone whose repack failed is left alone ([`RepackBackoff::DEFAULT`] unless
    /// set). The failures already held against a clone are measured against the new backoff.
    pub fn with_repack_backoff(mut self, backoff: RepackBackoff) -> Self {
        self.repack_backoff = backoff;
        self
    }

    /// The same cache (the same clones, locks and record of repacks) whose checkouts never
    /// repack: for the commands and passes that only read (`imagebump explain`, a dry run),
    /// which leave the clones' object stores as they find them.
    pub fn without_maintenance(&self) -> Self {
        self.clone().with_maintenance(Maintenance::OFF)
    }

    /// What became of the repacks this cache's checkouts wanted since it was built.
    pub fn repacks(&self) -> RepackCounts {
        self.record().counts
    }

    fn record(&self) -> std::sync::MutexGuard<'_, RepackRecord> {
        // A thread that panicked while holding it left counts and failures, both still valid.
        self.repacks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the clone of `url` holds on disk: packs, loose objects and their bytes.
    pub fn census(&self, url: &str) -> Census {
        maintenance::census(&self.dir_for(url).join(".git"))
    }

    /// How long a checkout waits for another process that works in the same clone.
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    pub fn settings(&self) -> &GitSettings {
        &self.settings
    }

    /// The clone directory of `url`: a hash of the URL (userinfo stripped) plus a readable
    /// suffix taken from the repository name, e.g. `3f2a9c0e1b7d4a55-shop-config`.
    pub fn dir_for(&self, url: &str) -> PathBuf {
        let shown = redact_url(url);
        let hash = hex::encode(sha2::Sha256::digest(shown.as_bytes()));
        let name = shown
            .trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("")
            .trim_end_matches(".git");
        let suffix: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(40)
            .collect();
        let suffix = suffix.trim_start_matches('.');
        if suffix.is_empty() {
            self.workdir.join(&hash[..16])
        } else {
            self.workdir.join(format!("{}-{suffix}", &hash[..16]))
        }
    }

    /// Opens (or clones) the cache entry of `url`, fetches only `branch`, and hard-resets the
    /// work tree to the remote head, removing untracked files. Local commits and edits from an
    /// earlier pass are discarded: the result is always exactly the remote's state.
    pub fn checkout(&self, url: &str, branch: &str) -> Result<Checkout, GitError> {
        let dir = self.dir_for(url);
        let local = |reason: String| GitError::Local {
            url: redact_url(url),
            path: dir.clone(),
            reason,
        };
        if !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
            return Err(local(format!("`{branch}` is not a valid branch name")));
        }
        let (mut in_use, mut os_lock) = self.claim(url, &dir)?;
        let mut rebuilt = false;
        loop {
            let repo = open_or_init(&dir, url).map_err(|e| local(e.message().to_string()))?;
            let checkout = self.hand_out(in_use, os_lock, repo, dir.clone(), url, branch);
            match checkout.refresh() {
                Ok(()) => {
                    let mut checkout = checkout;
                    // An object its refs reach is lost: clone again, like any broken clone.
                    if self.maintain(&mut checkout, url) || rebuilt {
                        return Ok(checkout);
                    }
                    rebuilt = true;
                    in_use = checkout._in_use;
                    os_lock = checkout.os_lock;
                }
                // The clone itself is broken (the failing call marked it): start from scratch once.
                Err(err) if !rebuilt && needs_rebuild(&dir) => {
                    tracing::warn!(url = %redact_url(url), %err, "clone is damaged; cloning again");
                    rebuilt = true;
                    in_use = checkout._in_use;
                    os_lock = checkout.os_lock;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl CloneCache {
    /// Repacks the clone of `checkout` when [`Maintenance`] says so (see `maintenance.rs`),
    /// right after its fetch, under its locks, unless its last repack failed less than its
    /// backoff ago. A failure never fails the checkout: it is logged once and the old objects
    /// stay. `false`: an object its refs reach cannot be read, and the clone is marked for
    /// rebuild.
    fn maintain(&self, checkout: &mut Checkout, url: &str) -> bool {
        let dir = checkout.dir.clone();
        let shown = redact_url(url);
        // (Below the limits, the failures held against the clone stay: a read-only checkout
        // of the cache without maintenance must not end a backoff.)
        let Some(before) = maintenance::due(&dir, self.maintenance) else {
            return true;
        };
        {
            let mut record = self.record();
            if let Some(wait) = record
                .failures
                .waiting(&dir, Instant::now(), self.repack_backoff)
            {
                record.counts.skipped_backoff += 1;
                tracing::debug!(url = %shown, packs = before.packs, loose = before.loose_objects, retry_in = ?wait, "repack skipped: the last one failed");
                return true;
            }
            record.failures.starting(&dir);
        }
        let outcome = maintenance::maintain(&dir, before);
        // Packs may have moved under the checkout's handle: it reads through a fresh one.
        let reopened = Repository::open(&dir);
        let mut record = self.record();
        match outcome {
            Ok(Repacked {
                before,
                after,
                objects,
                left,
            }) => {
                record.counts.repacked += 1;
                record.failures.forget(&dir);
                tracing::info!(
                    url = %shown,
                    packs_before = before.packs,
                    packs_after = after.packs,
                    loose_before = before.loose_objects,
                    loose_after = after.loose_objects,
                    bytes_before = before.bytes(),
                    bytes_after = after.bytes(),
                    objects,
                    "repacked the clone"
                );
                if left > 0 {
                    tracing::warn!(url = %shown, files = left, "repack could not delete some old object files; they stay until the next repack");
                }
            }
            Err(RepackError::Unreadable(reason)) => {
                record.counts.failed += 1;
                // Cloned again at once: the fresh clone owes nothing to this one's failures.
                record.failures.forget(&dir);
                tracing::warn!(url = %shown, %reason, "clone is damaged (found while repacking); cloning again");
                checkout.mark_for_rebuild();
                return false;
            }
            Err(err @ RepackError::Failed(_)) => {
                record.counts.failed += 1;
                let (failures, wait) =
                    record
                        .failures
                        .failed(&dir, Instant::now(), self.repack_backoff);
                tracing::warn!(
                    url = %shown,
                    error = %err,
                    failures,
                    retry_in = ?wait,
                    "repack failed; the clone keeps its old objects and is not repacked again before retry_in"
                );
            }
        }
        drop(record);
        match reopened {
            Ok(repo) => checkout.repo = repo,
            Err(e) => {
                tracing::warn!(url = %shown, error = %e.message(), "clone cannot be opened after a repack; cloning again");
                checkout.mark_for_rebuild();
                return false;
            }
        }
        true
    }
}

/// Removes every `*.lock` file under the `.git` directory `git_dir` (refs, index, packed-refs,
/// HEAD, config; not the object store, which libgit2 does not lock), never following a symlink.
/// Returns how many were removed. Call only while holding the clone's OS lock.
fn remove_stale_git_locks(git_dir: &Path) -> usize {
    let mut removed = 0;
    let mut pending = vec![git_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if path != git_dir.join("objects") {
                    pending.push(path);
                }
            } else if kind.is_file()
                && path.extension().is_some_and(|ext| ext == "lock")
                && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

fn needs_rebuild(dir: &Path) -> bool {
    dir.join(".git").join(REBUILD_MARKER).exists()
}

/// libgit2 writes one pack per fetch and never repacks; a checkout repacks a clone past
/// [`Maintenance::max_packs`]. Past this many (repacks failing, or maintenance off) object
/// lookups slow down, and the clone is rebuilt (a fresh clone of a config repository is cheap).
pub const MAX_PACKS: usize = 200;

fn too_many_packs(dir: &Path) -> bool {
    std::fs::read_dir(dir.join(".git/objects/pack"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                .count()
                > MAX_PACKS
        })
        .unwrap_or(false)
}

impl CloneCache {
    /// The existing clone of `url` as it is on disk, without fetching: `None` when there is no
    /// usable clone yet (the next [`Self::checkout`] clones it). Its work tree may hold the
    /// leftovers of an earlier round; read it at [`Checkout::remote_head`], the branch as last
    /// fetched or pushed. For reading history ahead of a round while the registry answers,
    /// so that the round's one fetch stays the only network call.
    pub fn open_cached(&self, url: &str, branch: &str) -> Result<Option<Checkout>, GitError> {
        let dir = self.dir_for(url);
        if !dir.join(".git").is_dir() || needs_rebuild(&dir) {
            return Ok(None);
        }
        let (in_use, os_lock) = self.claim(url, &dir)?;
        let repo = match Repository::open(&dir) {
            Ok(repo)
                if !repo.is_bare()
                    && repo.find_remote(REMOTE).is_ok_and(|r| r.url() == Ok(url)) =>
            {
                repo
            }
            _ => return Ok(None),
        };
        Ok(Some(self.hand_out(in_use, os_lock, repo, dir, url, branch)))
    }

    /// The [`Checkout`] of a claimed clone (see [`Self::claim`]).
    fn hand_out(
        &self,
        in_use: InUse,
        os_lock: File,
        repo: Repository,
        dir: PathBuf,
        url: &str,
        branch: &str,
    ) -> Checkout {
        Checkout {
            _in_use: in_use,
            os_lock,
            pending_head: Cell::new(None),
            mempack_rounds: Cell::new(0),
            in_memory: Default::default(),
            own: Default::default(),
            committed_stat: Default::default(),
            repo,
            dir,
            url: url.to_string(),
            branch: branch.to_string(),
            settings: Arc::clone(&self.settings),
        }
    }

    /// Claims the clone `dir` of `url` in this process and takes its OS lock, then removes the
    /// git lock files a killed process left in it.
    fn claim(&self, url: &str, dir: &Path) -> Result<(InUse, File), GitError> {
        let in_use = InUse::claim(&self.in_use, dir).ok_or_else(|| GitError::Busy {
            url: redact_url(url),
        })?;
        let os_lock = match lock_clone(dir, self.lock_wait) {
            Ok(file) => file,
            Err(LockFailure::Held { pid }) => {
                return Err(GitError::WorkdirInUse {
                    url: redact_url(url),
                    path: dir.to_path_buf(),
                    pid,
                    waited: self.lock_wait,
                });
            }
            Err(LockFailure::Io(reason)) => {
                return Err(GitError::Local {
                    url: redact_url(url),
                    path: dir.to_path_buf(),
                    reason,
                });
            }
        };
        // Holding the clone's OS lock, no other process or thread uses it: git's own lock
        // files in it were left by a process that died mid-write (`kill -9` during a fetch or a
        // commit) and would fail every later fetch of this repository.
        let removed = remove_stale_git_locks(&dir.join(".git"));
        if removed > 0 {
            tracing::info!(url = %redact_url(url), removed, "removed lock files left by a killed process");
        }
        Ok((in_use, os_lock))
    }
}

fn open_or_init(dir: &Path, url: &str) -> Result<Repository, git2::Error> {
    let repo = match Repository::open(dir) {
        Ok(repo) if !repo.is_bare() && !needs_rebuild(dir) && !too_many_packs(dir) => repo,
        _ => {
            if needs_rebuild(dir) {
                tracing::warn!(url = %redact_url(url), "clone was found damaged by an earlier read; cloning again");
            }
            if dir.exists() {
                // Not a usable clone (interrupted init, corruption): start over.
                std::fs::remove_dir_all(dir)
                    .map_err(|e| git2::Error::from_str(&format!("cannot remove: {e}")))?;
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| git2::Error::from_str(&format!("cannot create: {e}")))?;
            Repository::init(dir)?
        }
    };
    match repo.find_remote(REMOTE) {
        Ok(remote) if remote.url() == Ok(url) => {}
        Ok(_) => repo.remote_set_url(REMOTE, url)?,
        Err(_) => {
            repo.remote_with_fetch(REMOTE, url, "+refs/heads/*:refs/remotes/origin/*")?;
        }
    }
    Ok(repo)
}
