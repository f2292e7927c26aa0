//! One checked-out branch of a cached clone: fetch and hard reset, commits built in memory
//! from the head tree plus the listed files, and reads of history.
//!
//! **Invariant:** a [`Checkout`] owns its clone exclusively (the in-use claim and the OS lock
//! live as long as it does), its work tree is exactly the remote head after every
//! [`Checkout::refresh`], and the branch ref moves only to commits whose objects are on disk:
//! local commits are held in `pending_head` and written to the ref before a push or when a
//! round of in-memory objects has been persisted as one pack. Any local git failure marks the
//! clone for rebuild.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, DiffOptions, ErrorCode, FetchOptions, IndexEntry, ObjectType, Repository,
    ResetType, Signature, Sort, Tree,
};

use super::auth::{self, CallbackState};
use super::history::{CommitMeta, OwnCommit};
use super::{GitError, GitSettings, Oid, redact_url};

pub(super) const REMOTE: &str = "origin";
/// Priority of the first in-memory object backend (libgit2's own backends use 1 and 2).
const MEMPACK_PRIORITY: i32 = 1000;
/// Tree entries written into a round's in-memory objects after which
/// [`InMemory::persist_if_large`] writes them out: about 4 MB of trees. A round of 1,000
/// one-app commits in a directory of 1,000 apps writes 1,000 trees of 1,000 entries (35 MB);
/// held to the end of the round they were a third of the daemon's peak memory.
const PERSIST_TREE_ENTRIES: usize = 100_000;

/// Marker file in `.git`: the clone hit a local error and is rebuilt on its next checkout.
pub(super) const REBUILD_MARKER: &str = "imagebump-rebuild";

/// Errors that mean the clone's own files are damaged, as opposed to a network or remote problem.
pub(super) fn is_local_damage(err: &git2::Error) -> bool {
    use git2::ErrorClass as C;
    matches!(
        err.class(),
        C::Odb | C::Object | C::Zlib | C::Repository | C::Index | C::Tree | C::Reference
    )
}

/// The objects a round wrote into memory (see [`InMemory::persist_if_large`]).
#[derive(Default)]
pub(super) struct Written {
    ids: std::cell::RefCell<Vec<Oid>>,
    tree_entries: Cell<usize>,
}

impl Written {
    fn add(&self, id: Oid, tree_entries: usize) {
        self.ids.borrow_mut().push(id);
        self.tree_entries
            .set(self.tree_entries.get() + tree_entries);
    }

    fn clear(&self) {
        self.ids.borrow_mut().clear();
        self.tree_entries.set(0);
    }
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
    pub(super) _in_use: InUse,
    /// The OS lock on the clone, released when the checkout is dropped (or the process dies).
    pub(super) os_lock: File,
    /// The branch head after local commits, written to the ref only before a push or when a
    /// batch of in-memory objects is persisted: one ref update per pass instead of per commit.
    pub(super) pending_head: Cell<Option<Oid>>,
    /// Rounds of [`Checkout::with_objects_in_memory`] so far (see the priority there).
    pub(super) mempack_rounds: Cell<i32>,
    /// The objects written in memory since they were last persisted, and their tree entries.
    pub(super) in_memory: Written,
    /// The commits [`Checkout::commit`] made on the branch since the last reset, oldest first.
    pub(super) own: RefCell<Vec<OwnCommit>>,
    /// Index entries, with the stat data taken just before they were hashed, of the files
    /// [`Checkout::commit`] committed since the last reset, by path (see
    /// [`Checkout::record_committed_stat`]).
    pub(super) committed_stat: RefCell<HashMap<Vec<u8>, IndexEntry>>,
    pub(super) repo: Repository,
    pub(super) dir: PathBuf,
    pub(super) url: String,
    pub(super) branch: String,
    pub(super) settings: Arc<GitSettings>,
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
            .map_err(|e| {
                // No tracking ref is no damage: the branch was never fetched here, or the last
                // fetch failed after dropping the stale one (a remote gone for a while).
                if e.code() == ErrorCode::NotFound {
                    GitError::Local {
                        url: self.display_url(),
                        path: self.dir.clone(),
                        reason: auth::scrub(&self.settings, &self.url, e.message()),
                    }
                } else {
                    self.local(e)
                }
            })
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
        self.own.borrow_mut().clear();
        self.keep_committed_stat();
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
        result.map_err(|e| self.local(e))?;
        // Only a saving for later resets: the work tree is already the remote head's.
        if let Err(error) = self.refresh_index_stat() {
            tracing::warn!(url = %self.display_url(), error = %error.message(), "cannot record the stat data of committed files in the clone's index; the next reset hashes them again");
        }
        Ok(())
    }

    /// A file the bot committed is already right when the next reset comes: the reset leaves
    /// it alone and rebuilds its index entry from the tree, without stat data, so every later
    /// reset hashed it again (1,000 files per pass after a round of 1,000 commits). A diff of
    /// the index against the work tree, limited to those files, records their stat data once;
    /// with none missing, nothing is looked at.
    fn refresh_index_stat(&self) -> Result<(), git2::Error> {
        let mut index = self.repo.index()?;
        let mut options = DiffOptions::new();
        let mut unknown = 0;
        for entry in index.iter() {
            if entry.ino == 0 && entry.mtime.seconds() == 0 {
                options.pathspec(entry.path);
                unknown += 1;
            }
        }
        if unknown == 0 {
            return Ok(());
        }
        // Exact paths: the diff then looks at those files only, not the whole work tree.
        options.update_index(true).disable_pathspec_match(true);
        self.repo
            .diff_index_to_workdir(Some(&index), Some(&mut options))?;
        index.write()
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
            let mut stats = Vec::with_capacity(relative.len());
            for rel in &relative {
                let abs = self.dir.join(rel);
                let meta = std::fs::symlink_metadata(&abs);
                // Taken before the content is hashed: a later change shows in the stat data.
                stats.push(meta.as_ref().ok().filter(|m| m.is_file()).cloned());
                let content = match meta {
                    Ok(meta) => Some(NewBlob {
                        id: {
                            let id = self.repo.blob_path(&abs)?;
                            self.in_memory.add(id, 0);
                            id
                        },
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
                .enumerate()
                .map(|(index, (names, content))| (names.as_slice(), content.as_ref(), index))
                .collect();
            let written = &self.in_memory;
            let mut before = vec![None; changes.len()];
            let base = parent.tree()?;
            let tree_id =
                match update_tree(&self.repo, Some(&base), &changes, written, &mut before)? {
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
            self.in_memory.add(oid, 0);
            if move_branch {
                self.pending_head.set(Some(oid));
                let mut files: Vec<(String, Option<Oid>)> = Vec::new();
                let mut seen = HashSet::new();
                // A path listed twice was written once, with its last content.
                for (index, (names, content, _)) in changes.iter().enumerate().rev() {
                    let path = names
                        .iter()
                        .map(|n| n.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    let blob = content.map(|c| c.id);
                    if seen.insert(path.clone()) && blob != before[index] {
                        files.push((path, blob));
                    }
                }
                self.own.borrow_mut().push(OwnCommit {
                    commit: CommitMeta::of_signature(oid, &signature),
                    parent: parent.id(),
                    files,
                });
                self.record_committed_stat(&tree, &relative, &stats);
            }
            Ok(Some(oid))
        })();
        result.map_err(|e| self.local(e))
    }

    /// Keeps, for each committed regular file, the index entry a `git add` would have written:
    /// its blob and mode in the commit's tree and the stat data taken before it was hashed.
    /// Once written to the index ([`Self::keep_committed_stat`]), the reset to the pushed
    /// commit sees the files as unchanged without hashing them, and keeps their stat data for
    /// the resets after it (libgit2 keeps an entry's stat data when its blob and mode stay the
    /// same). A file written again after its commit differs in its stat data: the engine writes
    /// by rename, so its inode changes (the recorded inode is still taken when the new file is
    /// created), and a write in place changes its size or times. Should the stat data still
    /// match, the shortcut is the one `git add` and git's index take too.
    #[cfg(unix)]
    fn record_committed_stat(
        &self,
        tree: &Tree<'_>,
        relative: &[PathBuf],
        stats: &[Option<std::fs::Metadata>],
    ) {
        use std::os::unix::ffi::OsStrExt as _;
        use std::os::unix::fs::MetadataExt as _;
        let mut recorded = self.committed_stat.borrow_mut();
        for (rel, meta) in relative.iter().zip(stats) {
            let path = rel.as_os_str().as_bytes().to_vec();
            let entry = tree.get_path(rel).ok();
            let (Some(meta), Some(entry)) = (meta, entry) else {
                recorded.remove(&path);
                continue;
            };
            // Index fields are 32 bits wide; git truncates them the same way.
            let time =
                |seconds: i64, nanos: i64| git2::IndexTime::new(seconds as i32, nanos as u32);
            recorded.insert(
                path.clone(),
                IndexEntry {
                    ctime: time(meta.ctime(), meta.ctime_nsec()),
                    mtime: time(meta.mtime(), meta.mtime_nsec()),
                    dev: meta.dev() as u32,
                    ino: meta.ino() as u32,
                    mode: entry.filemode() as u32,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    file_size: meta.size() as u32,
                    id: entry.id(),
                    flags: 0,
                    // The entry is known to match the file (it was hashed from it), as libgit2
                    // marks an entry it adds from the work tree itself.
                    flags_extended: git2::IndexEntryExtendedFlag::UPTODATE.bits(),
                    path,
                },
            );
        }
    }

    #[cfg(not(unix))]
    fn record_committed_stat(
        &self,
        _tree: &Tree<'_>,
        _relative: &[PathBuf],
        _stats: &[Option<std::fs::Metadata>],
    ) {
    }

    /// Writes the entries [`Self::record_committed_stat`] kept into the clone's index: after a
    /// push (the next checkout, often another process, resets to the pushed head) and before a
    /// reset in the same checkout. Only a saving: without them the next reset hashes the
    /// committed files, so a failure is a warning.
    pub(super) fn keep_committed_stat(&self) {
        if let Err(error) = self.write_committed_stat() {
            tracing::warn!(url = %self.display_url(), error = %error.message(), "cannot record the stat data of committed files in the clone's index; the next reset hashes them");
        }
    }

    fn write_committed_stat(&self) -> Result<(), git2::Error> {
        let recorded = std::mem::take(&mut *self.committed_stat.borrow_mut());
        if recorded.is_empty() {
            return Ok(());
        }
        let mut index = self.repo.index()?;
        for entry in recorded.values() {
            index.add(entry)?;
        }
        index.write()
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

    /// Whether commits `a` and `b` have the same tree and the same parents (the same change on
    /// the same base, whoever made it and when).
    pub fn same_content(&self, a: Oid, b: Oid) -> Result<bool, GitError> {
        let result = (|| {
            let (a, b) = (self.repo.find_commit(a)?, self.repo.find_commit(b)?);
            Ok(a.tree_id() == b.tree_id() && a.parent_ids().eq(b.parent_ids()))
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
    pub(super) fn local(&self, err: git2::Error) -> GitError {
        self.mark_for_rebuild();
        GitError::Local {
            url: self.display_url(),
            path: self.dir.clone(),
            reason: auth::scrub(&self.settings, &self.url, err.message()),
        }
    }
}

/// The objects of one round of [`Checkout::with_objects_in_memory`], held in memory until the
/// round ends or [`InMemory::persist_if_large`] writes them out.
pub struct InMemory<'a> {
    checkout: &'a Checkout,
    odb: &'a git2::Odb<'a>,
    mempack: git2::Mempack<'a>,
}

impl InMemory<'_> {
    /// Writes the objects held so far to disk once their trees hold more than
    /// [`PERSIST_TREE_ENTRIES`] entries, so that a round of many commits keeps a few MB in
    /// memory instead of all its trees. Call it between commits. A failure is only logged:
    /// the objects stay in memory, and the end of the round persists them or fails the round.
    ///
    /// They are written as loose objects, not as a pack: libgit2 keeps a cache of delta bases
    /// of up to 16 MB per pack file, so a round split into ten packs of deltified trees made
    /// the push that reads them all hold 35 MB of them; a loose object is read whole and
    /// dropped. The loose writes go through a second handle on the clone, whose object
    /// database has no in-memory backend (in this one, the round's backend takes every write).
    pub fn persist_if_large(&self) {
        if self.checkout.in_memory.tree_entries.get() < PERSIST_TREE_ENTRIES {
            return;
        }
        if let Err(e) = self.persist_loose() {
            tracing::warn!(
                url = %self.checkout.display_url(),
                error = %e,
                "could not write this round's objects yet; the end of the round tries again"
            );
        }
    }

    /// Copies every object written since the last persist to loose objects on disk, then
    /// clears the memory (the objects are on disk before they leave memory).
    fn persist_loose(&self) -> Result<(), git2::Error> {
        let loose = Repository::open(self.checkout.repo.path())?;
        let loose = loose.odb()?;
        for &id in self.checkout.in_memory.ids.borrow().iter() {
            let object = self.odb.read(id)?;
            loose.write(object.kind(), object.data())?;
        }
        self.mempack.reset()?;
        self.checkout.in_memory.clear();
        Ok(())
    }

    /// Writes every object held to disk as one pack (the pack is on disk before the memory
    /// is cleared, so no object is ever in neither place).
    fn persist(&self) -> Result<(), git2::Error> {
        let mut buf = git2::Buf::new();
        self.mempack.dump(&self.checkout.repo, &mut buf)?;
        if buf.len() > 32 {
            // More than a pack header and trailer: at least one object.
            let mut writer = self.odb.packwriter()?;
            std::io::Write::write_all(&mut writer, &buf)
                .map_err(|e| git2::Error::from_str(&format!("writing pack: {e}")))?;
            drop(buf);
            writer.commit()?;
        }
        self.mempack.reset()?;
        self.checkout.in_memory.clear();
        Ok(())
    }
}

impl Checkout {
    /// Runs `f` with new objects (blobs, trees, commits) kept in memory, then writes them to
    /// disk as one pack (or a few, when `f` calls [`InMemory::persist_if_large`] between
    /// commits): hundreds of commits in a pass cost a few files instead of four each.
    /// Refs only ever point at objects on disk once this returns.
    pub(crate) fn with_objects_in_memory<T, E>(
        &self,
        f: impl FnOnce(&InMemory<'_>) -> Result<T, E>,
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
        self.in_memory.clear();
        let memory = InMemory {
            checkout: self,
            odb: &odb,
            mempack,
        };
        let result = f(&memory);
        memory.persist().map_err(|e| self.local(e))?;
        self.write_pending_head()?;
        Ok(result)
    }

    /// Points the branch ref at the head of the local commits, if any are pending.
    pub(super) fn write_pending_head(&self) -> Result<(), GitError> {
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

    pub(super) fn mark_for_rebuild(&self) {
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

/// One listed path split into its names, with its new content (`None`: the file is gone) and
/// its place in the list.
type Change<'a> = (&'a [&'a OsStr], Option<&'a NewBlob>, usize);

/// Writes `base` with `changes` applied and returns its id (`None` when it ends up empty).
/// Only the trees along the changed paths are rebuilt; every other subtree keeps its id, so a
/// commit costs O(depth x siblings) instead of O(files in the repository). The result is what
/// an index read from `base`, updated with the same paths and written would give: a file keeps
/// its mode, a directory disappears with its last file, and a file replaces a directory (or
/// any other entry) of the same name and the other way round.
/// Every tree written is added to `written`; `before[i]` is set to the id the path of change
/// `i` had in `base` (of whatever kind; left alone when it had none).
fn update_tree(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    changes: &[Change<'_>],
    written: &Written,
    before: &mut [Option<Oid>],
) -> Result<Option<Oid>, git2::Error> {
    type Slot<'a> = (Option<Option<&'a NewBlob>>, Vec<Change<'a>>);
    let mut by_name: BTreeMap<&OsStr, Slot<'_>> = BTreeMap::new();
    for &(names, content, index) in changes {
        let Some((first, rest)) = names.split_first() else {
            continue;
        };
        let slot = by_name.entry(*first).or_default();
        if rest.is_empty() {
            slot.0 = Some(content);
            if let Some(entry) = base.and_then(|b| b.get_name_bytes(first.as_encoded_bytes())) {
                before[index] = Some(entry.id());
            }
        } else {
            slot.1.push((rest, content, index));
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
        match update_tree(repo, subtree.as_ref(), &deeper, written, before)? {
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
        let entries = builder.len();
        let id = builder.write()?;
        written.add(id, entries);
        Ok(Some(id))
    }
}

pub(super) fn tracking_ref(branch: &str) -> String {
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

/// Marks a clone directory as in use until dropped.
#[derive(Debug)]
pub(super) struct InUse {
    dirs: Arc<Mutex<HashSet<PathBuf>>>,
    dir: PathBuf,
}

impl InUse {
    pub(super) fn claim(dirs: &Arc<Mutex<HashSet<PathBuf>>>, dir: &Path) -> Option<InUse> {
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
