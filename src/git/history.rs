//! Reads of one file's history on the checked-out branch: the first-parent commits that gave
//! the file a new blob, newest first, bounded in commits and in age.
//!
//! Invariant: this only reads objects already in the clone (no fetch, no write), and a walk
//! never goes past its bound: it says where it stopped ([`HistoryEnd`]) instead of guessing.
//! What the blobs mean is the caller's business (`git` knows nothing about YAML).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use git2::{Commit, ErrorCode, ObjectType, Repository, Tree};

use super::{Checkout, GitError, Oid};

/// A commit's author or committer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
}

impl Person {
    fn of(signature: &git2::Signature<'_>) -> Person {
        Person {
            name: signature.name().unwrap_or("").to_string(),
            email: signature.email().unwrap_or("").to_string(),
        }
    }
}

/// A commit as a history read reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMeta {
    pub id: Oid,
    pub author: Person,
    pub committer: Person,
    /// Committer time, Unix seconds.
    pub time: i64,
}

impl CommitMeta {
    fn of(commit: &Commit<'_>) -> CommitMeta {
        CommitMeta {
            id: commit.id(),
            author: Person::of(&commit.author()),
            committer: Person::of(&commit.committer()),
            time: commit.committer().when().seconds(),
        }
    }
}

impl CommitMeta {
    /// A commit made with `signature` as author and committer.
    pub(super) fn of_signature(id: Oid, signature: &git2::Signature<'_>) -> CommitMeta {
        let person = Person::of(signature);
        CommitMeta {
            id,
            author: person.clone(),
            committer: person,
            time: signature.when().seconds(),
        }
    }
}

/// A commit the bot made on its branch ([`Checkout::commit`]), as a first-parent walk over it
/// reads it: so that the history of the bot's own commits need not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCommit {
    pub commit: CommitMeta,
    pub parent: Oid,
    /// The paths (from the work tree's root, `/`-separated) whose entry it changed, each with
    /// its blob from this commit on (`None`: removed).
    pub files: Vec<(String, Option<Oid>)>,
}

/// A first-parent commit that gave the file a new blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    pub commit: CommitMeta,
    /// The file's blob from this commit on; `None`: the commit deleted it.
    pub blob: Option<Oid>,
    /// For a merge commit that took the file as it was on a merged side: the commit on that
    /// side that wrote this blob (who really made the change), when found within the bound.
    pub origin: Option<CommitMeta>,
}

/// Where a walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryEnd {
    /// At the branch's first commit: the versions are the file's whole history.
    Root,
    /// At the bound (commits or age): older versions were not read.
    Bound,
    /// At the commit the caller already knows the history below (`stop_at`).
    Known,
}

/// The bound of a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkBound {
    /// First-parent commits read at most.
    pub max_commits: usize,
    /// Commits older than this (committer time, Unix seconds) are not read.
    pub not_before: Option<i64>,
}

/// One file's versions on a branch, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHistory {
    /// The commit the walk started from.
    pub head: Oid,
    pub versions: Vec<FileVersion>,
    pub end: HistoryEnd,
    /// First-parent commits read.
    pub commits_read: usize,
}

/// Commits read on a merged side to find who wrote a blob there.
const MAX_SIDE_COMMITS: usize = 1000;

impl Checkout {
    /// The branch head and the blob `path` has there (`None`: no such file). Reads no history.
    pub fn head_blob(&self, path: &Path) -> Result<(Oid, Option<Oid>), GitError> {
        let head = self.head()?;
        let result = (|| {
            let commit = self.repo.find_commit(head)?;
            blob_in(&commit, path)
        })();
        let blob = result.map_err(|e| self.local(e))?;
        Ok((head, blob))
    }

    /// The versions of `path` on the branch's first-parent history from the head, newest
    /// first, within `bound`; the walk stops early at `stop_at` (end [`HistoryEnd::Known`]).
    pub fn file_history(
        &self,
        path: &Path,
        bound: WalkBound,
        stop_at: Option<Oid>,
    ) -> Result<FileHistory, GitError> {
        let head = self.head()?;
        self.file_history_from(head, path, bound, stop_at)
    }

    /// [`Checkout::file_history`] from the commit `from` (on the branch) instead of the head.
    pub fn file_history_from(
        &self,
        from: Oid,
        path: &Path,
        bound: WalkBound,
        stop_at: Option<Oid>,
    ) -> Result<FileHistory, GitError> {
        // The one walk for many files, for one: config paths are strings, so nothing is lost.
        let path = path.to_string_lossy();
        let read = walk_many(&self.repo, from, &[path.as_ref()], bound, stop_at)
            .map_err(|e| self.local(e))?;
        read.into_iter()
            .next()
            .ok_or_else(|| self.local(git2::Error::from_str("a walk of one file read none")))
    }

    /// [`Checkout::file_history`] for several files at once, in one walk: a commit costs the
    /// trees on the way to the files it changed, not a lookup per file (see `benches/history.rs`).
    /// One [`FileHistory`] per path, in order.
    pub fn files_history(
        &self,
        paths: &[&str],
        bound: WalkBound,
    ) -> Result<Vec<FileHistory>, GitError> {
        let head = self.head()?;
        self.files_history_since(head, paths, bound, None)
    }

    /// [`Checkout::files_history`] from the commit `from` (on the branch), stopping early at
    /// `stop_at` (end [`HistoryEnd::Known`]): the files' new versions since a commit whose
    /// history is known, in one walk.
    pub fn files_history_since(
        &self,
        from: Oid,
        paths: &[&str],
        bound: WalkBound,
        stop_at: Option<Oid>,
    ) -> Result<Vec<FileHistory>, GitError> {
        walk_many(&self.repo, from, paths, bound, stop_at).map_err(|e| self.local(e))
    }

    /// The commits [`Checkout::commit`] made on the branch since the checkout was last reset
    /// to the remote head, oldest first.
    pub fn own_commits(&self) -> Vec<OwnCommit> {
        self.own.borrow().clone()
    }

    /// The full message of commit `id` (lossy UTF-8).
    pub fn commit_message(&self, id: Oid) -> Result<String, GitError> {
        self.repo
            .find_commit(id)
            .map(|commit| String::from_utf8_lossy(commit.message_bytes()).into_owned())
            .map_err(|e| self.local(e))
    }

    /// The content of a blob of the clone.
    pub fn blob(&self, id: Oid) -> Result<Vec<u8>, GitError> {
        self.repo
            .find_blob(id)
            .map(|blob| blob.content().to_vec())
            .map_err(|e| self.local(e))
    }
}

fn blob_in(commit: &Commit<'_>, path: &Path) -> Result<Option<Oid>, git2::Error> {
    match commit.tree()?.get_path(path) {
        Ok(entry) => Ok(Some(entry.id())),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The wanted paths as a tree of names: each node the path components below it.
#[derive(Default)]
struct PathTrie {
    children: BTreeMap<String, PathTrie>,
    /// The index of the path that ends here.
    leaf: Option<usize>,
}

impl PathTrie {
    fn new(paths: &[&str]) -> PathTrie {
        let mut root = PathTrie::default();
        for (index, path) in paths.iter().enumerate() {
            let mut node = &mut root;
            for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
                node = node.children.entry(part.to_string()).or_default();
            }
            node.leaf = Some(index);
        }
        root
    }
}

/// The id of the entry `name` of a tree, and whether it is a tree.
fn entry_of(tree: Option<&Tree<'_>>, name: &str) -> Entry {
    entry(tree.and_then(|t| t.get_name(name)))
}

/// The id of every wanted path in `tree` (left `None` when missing), opening each subtree on
/// the way once: 5,000 files in one directory cost one read of that directory, not 5,000 (a
/// large tree is not kept in libgit2's object cache, so each lookup read and hashed it again).
fn blobs_in(
    repo: &Repository,
    tree: &Tree<'_>,
    node: &PathTrie,
    out: &mut [Option<Oid>],
) -> Result<(), git2::Error> {
    for (name, child) in &node.children {
        let (id, is_tree) = entry_of(Some(tree), name);
        if let Some(index) = child.leaf {
            out[index] = id;
        }
        if let Some(id) = id.filter(|_| is_tree && !child.children.is_empty()) {
            blobs_in(repo, &repo.find_tree(id)?, child, out)?;
        }
    }
    Ok(())
}

/// Trees opened by a walk, kept for one more commit: a commit's parent's trees are the next
/// commit's own, and a large tree is not kept in libgit2's object cache (its default limit for
/// trees is 4 KiB), so without this each was read, inflated and hashed twice.
struct Trees<'r> {
    repo: &'r Repository,
    /// Opened for the commit being compared.
    current: HashMap<Oid, Tree<'r>>,
    /// Opened for the commit before it.
    previous: HashMap<Oid, Tree<'r>>,
}

impl<'r> Trees<'r> {
    fn new(repo: &'r Repository) -> Trees<'r> {
        Trees {
            repo,
            current: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    fn open(&mut self, id: Oid) -> Result<Tree<'r>, git2::Error> {
        if let Some(tree) = self.current.get(&id) {
            return Ok(tree.clone());
        }
        let tree = match self.previous.remove(&id) {
            Some(tree) => tree,
            None => self.repo.find_tree(id)?,
        };
        self.current.insert(id, tree.clone());
        Ok(tree)
    }

    /// On to the next commit: what was not opened again is let go.
    fn step(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }
}

/// A tree entry as a walk compares it: its id, and whether it is a tree.
type Entry = (Option<Oid>, bool);

fn entry(found: Option<git2::TreeEntry<'_>>) -> Entry {
    match found {
        Some(entry) => (Some(entry.id()), entry.kind() == Some(ObjectType::Tree)),
        None => (None, false),
    }
}

/// A node is compared entry by entry, not by a lookup per wanted name, when its wanted names
/// are at least this fraction of the tree (1 in N): a lookup costs a binary search and an
/// allocation, a step of the scan two short comparisons.
const SCAN_WHEN_ONE_IN: usize = 16;

/// The entries that differ between two trees with the same names in the same order, by
/// position (`None`: the names differ somewhere, so positions say nothing).
fn changed_by_position<'t>(
    new: &'t Tree<'_>,
    old: &'t Tree<'_>,
) -> Option<Vec<(git2::TreeEntry<'t>, git2::TreeEntry<'t>)>> {
    if new.len() != old.len() {
        return None;
    }
    let mut changed = Vec::new();
    for (a, b) in new.iter().zip(old.iter()) {
        if a.name_bytes() != b.name_bytes() {
            return None;
        }
        if a.id() != b.id() {
            changed.push((a, b));
        }
    }
    Some(changed)
}

/// The wanted paths whose entry differs between `new` and `old`, each with its id in `old`:
/// only subtrees whose ids differ are opened.
fn changed_paths<'r>(
    trees: &mut Trees<'r>,
    new: Option<&Tree<'r>>,
    old: Option<&Tree<'r>>,
    node: &PathTrie,
    out: &mut Vec<(usize, Option<Oid>)>,
) -> Result<(), git2::Error> {
    if let (Some(new_tree), Some(old_tree)) = (new, old)
        && node.children.len().saturating_mul(SCAN_WHEN_ONE_IN) >= new_tree.len()
        && let Some(changed) = changed_by_position(new_tree, old_tree)
    {
        for (a, b) in changed {
            let name = std::str::from_utf8(a.name_bytes()).ok();
            // A name that is not UTF-8 is no config path: never wanted.
            if let Some(child) = name.and_then(|name| node.children.get(name)) {
                compare(trees, entry(Some(a)), entry(Some(b)), child, out)?;
            }
        }
        return Ok(());
    }
    for (name, child) in &node.children {
        compare(trees, entry_of(new, name), entry_of(old, name), child, out)?;
    }
    Ok(())
}

/// [`changed_paths`] for one wanted name, given its entries in the new and the old tree.
fn compare<'r>(
    trees: &mut Trees<'r>,
    (new_id, new_is_tree): Entry,
    (old_id, old_is_tree): Entry,
    child: &PathTrie,
    out: &mut Vec<(usize, Option<Oid>)>,
) -> Result<(), git2::Error> {
    if new_id == old_id {
        return Ok(());
    }
    if let Some(index) = child.leaf {
        out.push((index, old_id));
    }
    if !child.children.is_empty() {
        let mut open = |id: Option<Oid>, is_tree: bool| match id {
            Some(id) if is_tree => trees.open(id).map(Some),
            _ => Ok(None),
        };
        let new_sub = open(new_id, new_is_tree)?;
        let old_sub = open(old_id, old_is_tree)?;
        changed_paths(trees, new_sub.as_ref(), old_sub.as_ref(), child, out)?;
    }
    Ok(())
}

fn walk_many(
    repo: &Repository,
    head: Oid,
    paths: &[&str],
    bound: WalkBound,
    stop_at: Option<Oid>,
) -> Result<Vec<FileHistory>, git2::Error> {
    let trie = PathTrie::new(paths);
    let mut commit = repo.find_commit(head)?;
    let distinct = paths.iter().collect::<std::collections::HashSet<_>>().len() == paths.len();
    let mut blobs = if distinct {
        let mut blobs = vec![None; paths.len()];
        blobs_in(repo, &commit.tree()?, &trie, &mut blobs)?;
        blobs
    } else {
        // A path given twice has one leaf in the trie: looked up one by one.
        paths
            .iter()
            .map(|path| blob_in(&commit, Path::new(path)))
            .collect::<Result<Vec<Option<Oid>>, git2::Error>>()?
    };
    let mut versions: Vec<Vec<FileVersion>> = vec![Vec::new(); paths.len()];
    let mut commits_read = 0;
    let mut changed = Vec::new();
    let mut trees = Trees::new(repo);
    let end = loop {
        if Some(commit.id()) == stop_at {
            break HistoryEnd::Known;
        }
        if commits_read >= bound.max_commits
            || bound
                .not_before
                .is_some_and(|t| commit.committer().when().seconds() < t)
        {
            break HistoryEnd::Bound;
        }
        commits_read += 1;
        let Ok(parent) = commit.parent(0) else {
            for (index, blob) in blobs.iter().enumerate() {
                if blob.is_some() {
                    versions[index].push(FileVersion {
                        commit: CommitMeta::of(&commit),
                        blob: *blob,
                        origin: None,
                    });
                }
            }
            break HistoryEnd::Root;
        };
        changed.clear();
        let (tree, parent_tree) = (commit.tree_id(), parent.tree_id());
        if tree != parent_tree {
            let (tree, parent_tree) = (trees.open(tree)?, trees.open(parent_tree)?);
            changed_paths(
                &mut trees,
                Some(&tree),
                Some(&parent_tree),
                &trie,
                &mut changed,
            )?;
        }
        trees.step();
        for &(index, parent_blob) in &changed {
            let blob = blobs[index];
            let origin = match blob {
                Some(blob) if commit.parent_count() > 1 => {
                    merged_origin(&commit, Path::new(paths[index]), blob)?
                }
                _ => None,
            };
            versions[index].push(FileVersion {
                commit: CommitMeta::of(&commit),
                blob,
                origin,
            });
            blobs[index] = parent_blob;
        }
        commit = parent;
    };
    Ok(versions
        .into_iter()
        .map(|versions| FileHistory {
            head,
            versions,
            end,
            commits_read,
        })
        .collect())
}

/// For a merge commit whose file is `blob`, as on one of its merged sides: the commit on that
/// side's first-parent history that wrote `blob`.
fn merged_origin(
    merge: &Commit<'_>,
    path: &Path,
    blob: Oid,
) -> Result<Option<CommitMeta>, git2::Error> {
    for side in merge.parents().skip(1) {
        if blob_in(&side, path)? != Some(blob) {
            continue;
        }
        let mut commit = side;
        for _ in 0..MAX_SIDE_COMMITS {
            let Ok(parent) = commit.parent(0) else {
                return Ok(Some(CommitMeta::of(&commit)));
            };
            if blob_in(&parent, path)? != Some(blob) {
                return Ok(Some(CommitMeta::of(&commit)));
            }
            commit = parent;
        }
        return Ok(None);
    }
    Ok(None)
}
