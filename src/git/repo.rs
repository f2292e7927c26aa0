//! The clone cache and the operations on one checked-out branch.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, ErrorCode, FetchOptions, ObjectType, PushOptions, Repository, ResetType,
    Signature, Sort, Tree,
};
use sha2::Digest as _;

use super::auth::{self, CallbackState};
use super::{GitError, GitSettings, Oid, redact_url};

const REMOTE: &str = "origin";
/// Priority of the first in-memory object backend (libgit2's own backends use 1 and 2).
const MEMPACK_PRIORITY: i32 = 1000;
/// Local ref that holds a commit while [`Checkout::push_with_lease`] pushes it.
const OUTGOING_REF: &str = "refs/imagebump/outgoing";

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

/// Marks a clone directory as in use until dropped.
#[derive(Debug)]
struct InUse {
    dirs: Arc<Mutex<HashSet<PathBuf>>>,
    dir: PathBuf,
}

impl InUse {
    fn claim(dirs: &Arc<Mutex<HashSet<PathBuf>>>, dir: &Path) -> Option<InUse> {
        // A poisoned lock only means another thread panicked; the set itself is still valid.
        let mut set = dirs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        set.insert(dir.to_path_buf()).then(|| InUse {
            dirs: Arc::clone(dirs),
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut set = self
            .dirs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        set.remove(&self.dir);
    }
}

impl CloneCache {
    pub fn new(workdir: PathBuf, settings: GitSettings) -> Self {
        CloneCache {
            workdir,
            settings: Arc::new(settings),
            in_use: Arc::default(),
            lock_wait: DEFAULT_LOCK_WAIT,
        }
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
        let mut in_use = InUse::claim(&self.in_use, &dir).ok_or_else(|| GitError::Busy {
            url: redact_url(url),
        })?;
        let mut os_lock = match lock_clone(&dir, self.lock_wait) {
            Ok(file) => file,
            Err(LockFailure::Held { pid }) => {
                return Err(GitError::WorkdirInUse {
                    url: redact_url(url),
                    path: dir.clone(),
                    pid,
                    waited: self.lock_wait,
                });
            }
            Err(LockFailure::Io(reason)) => return Err(local(reason)),
        };
        // Holding the clone's OS lock, no other process or thread uses it: git's own lock
        // files in it were left by a process that died mid-write (`kill -9` during a fetch or a
        // commit) and would fail every later fetch of this repository.
        let removed = remove_stale_git_locks(&dir.join(".git"));
        if removed > 0 {
            tracing::info!(url = %redact_url(url), removed, "removed lock files left by a killed process");
        }
        let mut rebuilt = false;
        loop {
            let repo = open_or_init(&dir, url).map_err(|e| local(e.message().to_string()))?;
            let checkout = Checkout {
                _in_use: in_use,
                os_lock,
                pending_head: Cell::new(None),
                mempack_rounds: Cell::new(0),
                repo,
                dir: dir.clone(),
                url: url.to_string(),
                branch: branch.to_string(),
                settings: Arc::clone(&self.settings),
            };
            match checkout.refresh() {
                Ok(()) => return Ok(checkout),
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

/// Marker file in `.git`: the clone hit a local error and is rebuilt on its next checkout.
const REBUILD_MARKER: &str = "imagebump-rebuild";

fn needs_rebuild(dir: &Path) -> bool {
    dir.join(".git").join(REBUILD_MARKER).exists()
}

/// Errors that mean the clone's own files are damaged, as opposed to a network or remote problem.
fn is_local_damage(err: &git2::Error) -> bool {
    use git2::ErrorClass as C;
    matches!(
        err.class(),
        C::Odb | C::Object | C::Zlib | C::Repository | C::Index | C::Tree | C::Reference
    )
}

/// libgit2 writes one pack per fetch and never repacks; past this many packs object lookups
/// slow down, and the clone is rebuilt (a fresh clone of a config repository is cheap).
const MAX_PACKS: usize = 200;

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

fn open_or_init(dir: &Path, url: &str) -> Result<Repository, git2::Error> {
    let repo = match Repository::open(dir) {
        Ok(repo) if !repo.is_bare() && !needs_rebuild(dir) && !too_many_packs(dir) => repo,
        _ => {
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

/// What the remote did with a normal (fast-forward only) push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The remote branch now points at `head`.
    Pushed { head: Oid },
    /// The remote branch moved since it was fetched (a race with another writer): fetching
    /// and planning again can succeed.
    Rejected { reason: String },
    /// The remote declined the update for good (a hook, a protected branch, no permission):
    /// retrying the same push cannot succeed. `reason` carries the remote's own message.
    Refused { reason: String },
}

/// What the remote did with a compare-and-swap push ([`Checkout::push_with_lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    Pushed,
    /// The remote branch was not at the expected commit; nothing was pushed.
    /// `actual` is where it is (`None`: it does not exist).
    Stale {
        actual: Option<Oid>,
    },
    /// The remote refused the update for another reason (hook, protected branch, ...).
    Rejected {
        reason: String,
    },
}

/// What one push did, before the caller decides what it means.
enum Sent {
    Pushed,
    /// A lease check failed: nothing was sent.
    Stale {
        actual: Option<Oid>,
    },
    /// The remote refused because the branch moved under the push.
    Race {
        reason: String,
    },
    /// The remote refused for any other reason (hook, protection, permission).
    Refused {
        reason: String,
    },
}

/// At most this much of what the remote prints during a push is kept.
const MAX_REMOTE_TEXT: usize = 16 * 1024;

/// Does a remote's per-ref status mean the branch moved under the push? These are the
/// statuses `git receive-pack` sends when its compare-and-swap on the old value fails or the
/// update is not a fast-forward; every other status (`pre-receive hook declined`,
/// `protected branch hook declined`, `deny updating a hidden ref`, ...) is a refusal.
fn is_race(status: &str) -> bool {
    let status = status.to_ascii_lowercase();
    [
        "non-fast-forward",
        "fetch first",
        "stale info",
        "failed to update ref",
        "failed to lock",
        "cannot lock ref",
        "but expected",
    ]
    .iter()
    .any(|needle| status.contains(needle))
}

/// The remote's own lines (a hook's stderr), without progress meters, on one line.
fn remote_message(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let lines: Vec<&str> = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .filter(|line| !(line.contains('%') && line.contains('(')))
        .collect();
    let mut joined = lines.join(" / ");
    if joined.len() > 1000 {
        let mut end = 1000;
        while !joined.is_char_boundary(end) {
            end -= 1;
        }
        joined.truncate(end);
        joined.push('…');
    }
    joined
}

/// A commit as the pull-request mode needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: Oid,
    pub author_name: String,
    pub author_email: String,
    pub committer_email: String,
    pub summary: String,
}

/// A clone whose work tree is at the remote head of one branch.
pub struct Checkout {
    _in_use: InUse,
    /// The OS lock on the clone, released when the checkout is dropped (or the process dies).
    os_lock: File,
    /// The branch head after local commits, written to the ref only before a push or when a
    /// batch of in-memory objects is persisted: one ref update per pass instead of per commit.
    pending_head: Cell<Option<Oid>>,
    /// Rounds of [`Checkout::with_objects_in_memory`] so far (see the priority there).
    mempack_rounds: Cell<i32>,
    repo: Repository,
    dir: PathBuf,
    url: String,
    branch: String,
    settings: Arc<GitSettings>,
}

impl std::fmt::Debug for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkout")
            .field("dir", &self.dir)
            .field("url", &redact_url(&self.url))
            .field("branch", &self.branch)
            .finish()
    }
}

impl Checkout {
    /// The work tree: the caller edits files here before [`Checkout::commit`].
    pub fn workdir(&self) -> &Path {
        &self.dir
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The repository URL with any userinfo removed.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The commit the checked-out branch points at.
    pub fn head(&self) -> Result<Oid, GitError> {
        if let Some(oid) = self.pending_head.get() {
            return Ok(oid);
        }
        self.repo
            .refname_to_id(&format!("refs/heads/{}", self.branch))
            .map_err(|e| self.local(e))
    }

    /// The remote head of the branch as of the last fetch or successful push.
    pub fn remote_head(&self) -> Result<Oid, GitError> {
        self.repo
            .refname_to_id(&tracking_ref(&self.branch))
            .map_err(|e| self.local(e))
    }

    /// Fetches the branch and hard-resets the work tree to its new remote head, discarding
    /// local commits, edits and untracked files.
    pub fn refresh(&self) -> Result<(), GitError> {
        let oid =
            self.fetch_remote_branch(&self.branch)?
                .ok_or_else(|| GitError::BranchNotFound {
                    url: self.display_url(),
                    branch: self.branch.clone(),
                })?;
        self.reset_to(oid)
    }

    fn reset_to(&self, oid: Oid) -> Result<(), GitError> {
        self.pending_head.set(None);
        let result = (|| {
            let commit = self.repo.find_commit(oid)?;
            let head_ref = format!("refs/heads/{}", self.branch);
            self.repo
                .reference(&head_ref, oid, true, "imagebump: reset to remote head")?;
            self.repo.set_head(&head_ref)?;
            let mut options = CheckoutBuilder::new();
            options.force().remove_untracked(true).remove_ignored(true);
            self.repo
                .reset(commit.as_object(), ResetType::Hard, Some(&mut options))?;
            // `reset` keeps untracked files whatever the options say; a forced checkout of
            // HEAD with `remove_untracked` drops them.
            let mut options = CheckoutBuilder::new();
            options.force().remove_untracked(true).remove_ignored(true);
            self.repo.checkout_head(Some(&mut options))
        })();
        result.map_err(|e| self.local(e))
    }

    /// Fetches `branch` (only that branch) and returns its remote tip, `None` when the remote
    /// has no such branch. The commits become available locally (see [`Self::commits_between`]).
    pub fn fetch_remote_branch(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        let tracking = tracking_ref(branch);
        // A tracking ref from an earlier fetch must not survive the branch's deletion.
        if let Ok(mut stale) = self.repo.find_reference(&tracking) {
            stale.delete().map_err(|e| self.local(e))?;
        }
        let state = CallbackState::default();
        let result = (|| {
            let mut remote = self.repo.find_remote(REMOTE)?;
            let mut options = FetchOptions::new();
            options
                .remote_callbacks(auth::callbacks(&self.settings, &self.url, &state))
                .download_tags(AutotagOption::None)
                .update_fetchhead(false);
            remote.fetch(
                &[format!("+refs/heads/{branch}:{tracking}")],
                Some(&mut options),
                None,
            )
        })();
        result.map_err(|e| {
            if is_local_damage(&e) {
                self.mark_for_rebuild();
            }
            state.error(&self.settings, &self.url, "fetch", &e)
        })?;
        Ok(self.repo.refname_to_id(&tracking).ok())
    }

    /// Commits the current content of `paths` (relative to the work tree, or absolute inside
    /// it; a missing file is removed) on top of the branch head. `None` when nothing changed.
    pub fn commit(&self, paths: &[PathBuf], message: &str) -> Result<Option<Oid>, GitError> {
        // The commit is built from the head tree plus the listed files, not from the index:
        // the index is left alone (the next reset rewrites everything anyway), and only the
        // trees along the listed paths are rewritten, which keeps a pass of one commit per app
        // linear in the number of apps.
        self.commit_tree(self.head()?, paths, message, true)
    }

    /// Creates a commit of the work tree content of `paths` on top of `parent` (for example
    /// the base branch head) without moving any branch. `None` when the content of `paths`
    /// already equals `parent`'s.
    pub fn commit_on(
        &self,
        parent: Oid,
        paths: &[PathBuf],
        message: &str,
    ) -> Result<Option<Oid>, GitError> {
        self.commit_tree(parent, paths, message, false)
    }

    fn commit_tree(
        &self,
        parent: Oid,
        paths: &[PathBuf],
        message: &str,
        move_branch: bool,
    ) -> Result<Option<Oid>, GitError> {
        let mut relative = Vec::with_capacity(paths.len());
        for path in paths {
            relative.push(self.relative_path(path)?);
        }
        let result = (|| {
            let parent = self.repo.find_commit(parent)?;
            let mut changes = Vec::with_capacity(relative.len());
            for rel in &relative {
                let abs = self.dir.join(rel);
                let content = match std::fs::symlink_metadata(&abs) {
                    Ok(meta) => Some(NewBlob {
                        id: self.repo.blob_path(&abs)?,
                        mode: if is_executable(&meta) {
                            0o100755
                        } else {
                            0o100644
                        },
                    }),
                    Err(_) => None,
                };
                changes.push((rel.iter().collect::<Vec<&OsStr>>(), content));
            }
            let changes: Vec<Change<'_>> = changes
                .iter()
                .map(|(names, content)| (names.as_slice(), content.as_ref()))
                .collect();
            let tree_id = match update_tree(&self.repo, Some(&parent.tree()?), &changes)? {
                Some(id) => id,
                None => self.repo.treebuilder(None)?.write()?,
            };
            if tree_id == parent.tree_id() {
                return Ok(None);
            }
            let tree = self.repo.find_tree(tree_id)?;
            let author = &self.settings.author;
            let signature = Signature::now(&author.name, &author.email)?;
            let oid = match &self.settings.signing_key {
                None => {
                    self.repo
                        .commit(None, &signature, &signature, message, &tree, &[&parent])?
                }
                Some(key) => {
                    let buffer = self.repo.commit_create_buffer(
                        &signature,
                        &signature,
                        message,
                        &tree,
                        &[&parent],
                    )?;
                    let content = buffer.as_str().map_err(|_| {
                        git2::Error::from_str("the commit to sign is not UTF-8 text")
                    })?;
                    self.repo
                        .commit_signed(content, &key.sign(content.as_bytes()), None)?
                }
            };
            if move_branch {
                self.pending_head.set(Some(oid));
            }
            Ok(Some(oid))
        })();
        result.map_err(|e| self.local(e))
    }

    fn relative_path(&self, path: &Path) -> Result<PathBuf, GitError> {
        let rel = if path.is_absolute() {
            path.strip_prefix(&self.dir).map(Path::to_path_buf).ok()
        } else {
            Some(path.to_path_buf())
        };
        match rel {
            Some(rel) if rel.components().all(|c| matches!(c, Component::Normal(_))) => {
                // The content is read from the work tree: no component may lead outside it.
                super::inside_clone(&self.dir, &rel)?;
                Ok(rel)
            }
            _ => Err(GitError::Local {
                url: self.display_url(),
                path: self.dir.clone(),
                reason: format!("{} is not a file inside the work tree", path.display()),
            }),
        }
    }

    /// Pushes the branch to the same branch on the remote, fast-forward only (never forced).
    /// A refusal is reported per ref as [`PushOutcome::Rejected`], not as success.
    pub fn push(&self) -> Result<PushOutcome, GitError> {
        self.write_pending_head()?;
        let head = self.head()?;
        let dst = format!("refs/heads/{}", self.branch);
        match self.push_refspec(&format!("{dst}:{dst}"), &dst, None)? {
            Sent::Pushed => {
                self.repo
                    .reference(&tracking_ref(&self.branch), head, true, "imagebump: pushed")
                    .map_err(|e| self.local(e))?;
                Ok(PushOutcome::Pushed { head })
            }
            Sent::Race { reason } => Ok(PushOutcome::Rejected { reason }),
            Sent::Refused { reason } => Ok(PushOutcome::Refused { reason }),
            Sent::Stale { actual } => Ok(PushOutcome::Rejected {
                reason: format!("remote branch moved to {actual:?}"),
            }),
        }
    }

    /// Compare-and-swap push ("force-with-lease"): sets the remote `branch` to `commit` only if
    /// it currently points at `expected_old` (`None`: the branch must not exist). The check runs
    /// in libgit2's `push_negotiation` callback against the remote's advertised tip; smart
    /// transports then send that tip as the old value, so the server re-checks it atomically.
    pub fn push_with_lease(
        &self,
        commit: Oid,
        branch: &str,
        expected_old: Option<Oid>,
    ) -> Result<LeaseOutcome, GitError> {
        self.repo
            .reference(OUTGOING_REF, commit, true, "imagebump: outgoing")
            .map_err(|e| self.local(e))?;
        let dst = format!("refs/heads/{branch}");
        let outcome =
            match self.push_refspec(&format!("+{OUTGOING_REF}:{dst}"), &dst, Some(expected_old))? {
                Sent::Pushed => LeaseOutcome::Pushed,
                Sent::Stale { actual } => LeaseOutcome::Stale { actual },
                Sent::Race { reason } | Sent::Refused { reason } => {
                    LeaseOutcome::Rejected { reason }
                }
            };
        if outcome == LeaseOutcome::Pushed {
            self.repo
                .reference(&tracking_ref(branch), commit, true, "imagebump: pushed")
                .map_err(|e| self.local(e))?;
        }
        Ok(outcome)
    }

    fn push_refspec(
        &self,
        refspec: &str,
        dst: &str,
        lease: Option<Option<Oid>>,
    ) -> Result<Sent, GitError> {
        let state = CallbackState::default();
        let refused: RefCell<Option<String>> = RefCell::new(None);
        // What the remote printed (`remote: ...` lines): a hook's reason for declining.
        let remote_text: RefCell<Vec<u8>> = RefCell::new(Vec::new());
        let stale: Cell<Option<Option<Oid>>> = Cell::new(None);
        let result = {
            let mut callbacks = auth::callbacks(&self.settings, &self.url, &state);
            callbacks.push_update_reference(|refname, status| {
                if let Some(status) = status {
                    *refused.borrow_mut() = Some(format!("{refname}: {status}"));
                }
                Ok(())
            });
            callbacks.sideband_progress(|data| {
                let mut text = remote_text.borrow_mut();
                if text.len() < MAX_REMOTE_TEXT {
                    text.extend_from_slice(data);
                }
                true
            });
            let stale = &stale;
            if let Some(expected) = lease {
                callbacks.push_negotiation(move |updates| {
                    for update in updates {
                        if update.dst_refname() != Ok(dst) {
                            continue;
                        }
                        let current = Some(update.src()).filter(|oid| !oid.is_zero());
                        if current != expected {
                            stale.set(Some(current));
                            return Err(git2::Error::from_str(
                                "remote branch is not at the expected commit",
                            ));
                        }
                    }
                    Ok(())
                });
            }
            let mut options = PushOptions::new();
            options.remote_callbacks(callbacks);
            self.repo
                .find_remote(REMOTE)
                .and_then(|mut remote| remote.push(&[refspec], Some(&mut options)))
        };
        match result {
            Ok(()) => match refused.into_inner() {
                Some(status) if is_race(&status) => Ok(Sent::Race { reason: status }),
                Some(status) => {
                    let said = remote_message(&remote_text.borrow());
                    let said = auth::scrub(&self.settings, &self.url, &said);
                    Ok(Sent::Refused {
                        reason: if said.is_empty() {
                            status
                        } else {
                            format!("{status}; the remote said: {said}")
                        },
                    })
                }
                None => Ok(Sent::Pushed),
            },
            Err(_) if stale.get().is_some() => Ok(Sent::Stale {
                actual: stale.get().flatten(),
            }),
            Err(e) if e.code() == ErrorCode::NotFastForward => Ok(Sent::Race {
                reason: format!("{dst}: non-fast-forward ({})", e.message()),
            }),
            Err(e) => Err(state.error(&self.settings, &self.url, "push", &e)),
        }
    }

    /// Commits reachable from `tip` but not from `base`, newest first.
    pub fn commits_between(&self, base: Oid, tip: Oid) -> Result<Vec<CommitInfo>, GitError> {
        let result = (|| {
            let mut walk = self.repo.revwalk()?;
            walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
            walk.push(tip)?;
            walk.hide(base)?;
            let mut commits = Vec::new();
            for id in walk {
                let commit = self.repo.find_commit(id?)?;
                commits.push(CommitInfo {
                    id: commit.id(),
                    author_name: commit.author().name().unwrap_or("").to_string(),
                    author_email: commit.author().email().unwrap_or("").to_string(),
                    committer_email: commit.committer().email().unwrap_or("").to_string(),
                    summary: commit.summary().ok().flatten().unwrap_or("").to_string(),
                });
            }
            Ok(commits)
        })();
        result.map_err(|e| self.local(e))
    }

    /// The content of `path` in `commit` (`None` when the file does not exist there).
    pub fn file_at(&self, commit: Oid, path: &Path) -> Result<Option<Vec<u8>>, GitError> {
        let result = (|| {
            let tree = self.repo.find_commit(commit)?.tree()?;
            let entry = match tree.get_path(path) {
                Ok(entry) => entry,
                Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let blob = self.repo.find_blob(entry.id())?;
            Ok(Some(blob.content().to_vec()))
        })();
        result.map_err(|e| self.local(e))
    }

    /// A failure of the local clone. Also marks the clone so that the next
    /// [`CloneCache::checkout`] rebuilds it from the remote instead of failing forever.
    fn local(&self, err: git2::Error) -> GitError {
        self.mark_for_rebuild();
        GitError::Local {
            url: self.display_url(),
            path: self.dir.clone(),
            reason: auth::scrub(&self.settings, &self.url, err.message()),
        }
    }
}

impl Checkout {
    /// Runs `f` with new objects (blobs, trees, commits) kept in memory, then writes them to
    /// disk as one pack: hundreds of commits in a pass cost one file instead of four each.
    /// Refs only ever point at objects on disk once this returns.
    pub(crate) fn with_objects_in_memory<T, E>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<Result<T, E>, GitError> {
        let odb = self.repo.odb().map_err(|e| self.local(e))?;
        // libgit2 writes new objects to the first writable backend in priority order, and a
        // backend stays in the odb for the repository's lifetime: an earlier round's mempack
        // (already dumped) would otherwise keep receiving this round's objects, which would
        // then never reach the disk. Each round's mempack outranks every earlier one.
        let priority = self.mempack_rounds.get() + MEMPACK_PRIORITY;
        self.mempack_rounds.set(self.mempack_rounds.get() + 1);
        let mempack = odb
            .add_new_mempack_backend(priority)
            .map_err(|e| self.local(e))?;
        let result = f();
        let persisted = (|| {
            let mut buf = git2::Buf::new();
            mempack.dump(&self.repo, &mut buf)?;
            if buf.len() > 32 {
                // More than a pack header and trailer: at least one object.
                let mut writer = odb.packwriter()?;
                std::io::Write::write_all(&mut writer, &buf)
                    .map_err(|e| git2::Error::from_str(&format!("writing pack: {e}")))?;
                writer.commit()?;
            }
            mempack.reset()
        })();
        persisted.map_err(|e| self.local(e))?;
        self.write_pending_head()?;
        Ok(result)
    }

    /// Points the branch ref at the head of the local commits, if any are pending.
    fn write_pending_head(&self) -> Result<(), GitError> {
        let Some(oid) = self.pending_head.get() else {
            return Ok(());
        };
        self.repo
            .reference(
                &format!("refs/heads/{}", self.branch),
                oid,
                true,
                "imagebump: commit",
            )
            .map_err(|e| self.local(e))?;
        self.pending_head.set(None);
        Ok(())
    }

    fn mark_for_rebuild(&self) {
        // Best effort: if even this write fails, the next checkout reports the error again.
        let _ = std::fs::write(self.repo.path().join(REBUILD_MARKER), b"");
    }
}

/// The work tree content of one listed path.
struct NewBlob {
    id: Oid,
    /// The mode of a new file; a path that is already a file in the parent tree keeps its own.
    mode: i32,
}

/// One listed path split into its names, with its new content (`None`: the file is gone).
type Change<'a> = (&'a [&'a OsStr], Option<&'a NewBlob>);

/// Writes `base` with `changes` applied and returns its id (`None` when it ends up empty).
/// Only the trees along the changed paths are rebuilt; every other subtree keeps its id, so a
/// commit costs O(depth x siblings) instead of O(files in the repository). The result is what
/// an index read from `base`, updated with the same paths and written would give: a file keeps
/// its mode, a directory disappears with its last file, and a file replaces a directory (or
/// any other entry) of the same name and the other way round.
fn update_tree(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    changes: &[Change<'_>],
) -> Result<Option<Oid>, git2::Error> {
    type Slot<'a> = (Option<Option<&'a NewBlob>>, Vec<Change<'a>>);
    let mut by_name: BTreeMap<&OsStr, Slot<'_>> = BTreeMap::new();
    for &(names, content) in changes {
        let Some((first, rest)) = names.split_first() else {
            continue;
        };
        let slot = by_name.entry(*first).or_default();
        if rest.is_empty() {
            slot.0 = Some(content);
        } else {
            slot.1.push((rest, content));
        }
    }
    let mut builder = repo.treebuilder(base)?;
    for (name, (leaf, deeper)) in by_name {
        let name = Path::new(name);
        // (mode, is a tree) of the entry `name` currently has in the builder.
        let current = |builder: &git2::TreeBuilder<'_>| {
            builder.get(name).map(|entry| {
                entry.map(|e| (e.id(), e.filemode(), e.kind() == Some(ObjectType::Tree)))
            })
        };
        match (leaf, current(&builder)?) {
            (Some(Some(blob)), Some((_, mode, false))) => {
                builder.insert(name, blob.id, mode)?;
            }
            (Some(Some(blob)), _) => {
                builder.insert(name, blob.id, blob.mode)?;
            }
            (Some(None), Some((_, _, false))) => builder.remove(name)?,
            _ => {}
        }
        if deeper.is_empty() {
            continue;
        }
        let subtree = match current(&builder)? {
            Some((id, _, true)) => Some(repo.find_tree(id)?),
            _ => None,
        };
        match update_tree(repo, subtree.as_ref(), &deeper)? {
            Some(id) => {
                builder.insert(name, id, 0o040000)?;
            }
            None if subtree.is_some() => builder.remove(name)?,
            None => {}
        }
    }
    if builder.is_empty() {
        Ok(None)
    } else {
        builder.write().map(Some)
    }
}

fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/{REMOTE}/{branch}")
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn races_are_told_from_refusals() {
        for race in [
            "refs/heads/main: non-fast-forward",
            "refs/heads/main: fetch first",
            "refs/heads/main: failed to update ref",
            "refs/heads/main: cannot lock ref 'refs/heads/main': is at 1234 but expected 5678",
            "refs/heads/main: stale info",
        ] {
            assert!(is_race(race), "{race}");
        }
        for refusal in [
            "refs/heads/main: pre-receive hook declined",
            "refs/heads/main: protected branch hook declined",
            "refs/heads/main: deny updating a hidden ref",
            "refs/heads/main: hook declined",
        ] {
            assert!(!is_race(refusal), "{refusal}");
        }
    }

    #[test]
    fn the_remote_message_keeps_the_hook_lines_only() {
        let raw = b"Resolving deltas:  50% (1/2)\rResolving deltas: 100% (2/2), done.\n\
                    GL-HOOK-ERR: protected branch\n\n";
        assert_eq!(remote_message(raw), "GL-HOOK-ERR: protected branch");
        let long = "x".repeat(5000);
        assert_eq!(remote_message(long.as_bytes()).chars().count(), 1001);
    }
}
