//! Pushing a checked-out branch: the normal fast-forward-only push and the compare-and-swap
//! push ("force-with-lease") of pull-request mode, with the remote's per-ref answer told apart
//! as a race (fetch and plan again) or a refusal (a hook, a protected branch: final).
//!
//! **Invariant:** the normal push is never forced, and the only forced update checks in
//! libgit2's `push_negotiation` callback that the remote branch is where the caller expects it
//! before anything is sent. A tracking ref moves only after the remote accepted the update.
//! Every branch update is a compare-and-swap on the branch's old value: smart HTTP and SSH
//! servers (`git receive-pack`) check it under the ref's lock; for a `file://` remote, whose
//! refs libgit2's local transport writes without checking again, imagebump copies the missing
//! objects in and moves the ref itself ([`Checkout::push_local`]): a ref never names a commit
//! whose objects are not all in the remote.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;

use git2::{ErrorCode, OdbLookupFlags, PushOptions, Repository, Sort};

use super::auth::{self, CallbackState};
use super::checkout::{Checkout, REMOTE, tracking_ref};
use super::{GitError, Oid};

/// Local ref that holds a commit while [`Checkout::push_with_lease`] pushes it.
const OUTGOING_REF: &str = "refs/imagebump/outgoing";

/// The repository path of a `file://` remote (percent-escapes decoded, as libgit2 does), `None`
/// for any other transport. The config only accepts `file:///ABSOLUTE/PATH` for local remotes
/// (`config::repo_url`), so a plain path never gets here.
fn local_remote_path(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("file://")?;
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    use std::os::unix::ffi::OsStringExt as _;
    Some(PathBuf::from(std::ffi::OsString::from_vec(decoded)))
}

/// How [`Checkout::push_local`] may move the remote branch.
#[derive(Debug, Clone, Copy)]
enum Update {
    /// Only forward: the new commit must descend from wherever the branch is.
    FastForward,
    /// Only from this commit (`None`: the branch must not exist), whatever the new one is.
    Lease(Option<Oid>),
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

impl Checkout {
    /// A refusal is reported per ref as [`PushOutcome::Rejected`], not as success.
    pub fn push(&self) -> Result<PushOutcome, GitError> {
        self.write_pending_head()?;
        let head = self.head()?;
        let dst = format!("refs/heads/{}", self.branch);
        let sent = match local_remote_path(&self.url) {
            Some(path) => self.push_local(&path, head, &dst, Update::FastForward)?,
            None => self.push_refspec(&format!("{dst}:{dst}"), &dst, None)?,
        };
        match sent {
            Sent::Pushed => {
                self.repo
                    .reference(&tracking_ref(&self.branch), head, true, "imagebump: pushed")
                    .map_err(|e| self.local(e))?;
                self.keep_committed_stat();
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
    /// A `file://` remote's branch is moved by [`Self::push_local`], under the ref's lock.
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
        let sent = match local_remote_path(&self.url) {
            Some(path) => self.push_local(&path, commit, &dst, Update::Lease(expected_old))?,
            None => {
                self.push_refspec(&format!("+{OUTGOING_REF}:{dst}"), &dst, Some(expected_old))?
            }
        };
        let outcome = match sent {
            Sent::Pushed => LeaseOutcome::Pushed,
            Sent::Stale { actual } => LeaseOutcome::Stale { actual },
            Sent::Race { reason } | Sent::Refused { reason } => LeaseOutcome::Rejected { reason },
        };
        if outcome == LeaseOutcome::Pushed {
            self.repo
                .reference(&tracking_ref(branch), commit, true, "imagebump: pushed")
                .map_err(|e| self.local(e))?;
        }
        Ok(outcome)
    }

    /// A push to the `file://` remote at `path`: libgit2's local transport checks a
    /// fast-forward (or the lease) against the tip it listed and then writes the ref without
    /// checking again, so two replicas pushing at once could overwrite each other's commits; and
    /// it indexes the whole pack it sends in this process (for a round of 1,000 commits, a
    /// delta cache of 16 MB on top of everything else the round holds). Instead, the objects
    /// `commit` needs that the remote lacks are written into its object database as packs of a
    /// few commits each ([`copy_objects`]), then the branch `dst` moves in the remote repository itself with a
    /// compare-and-swap under its lock file (`git2::Repository::reference_matching`). A branch
    /// that moved in between is a race, answered like a non-fast-forward (fetch and plan again)
    /// or a stale lease. As with libgit2's local transport, a remote with a work tree is
    /// refused: moving its branch would leave the work tree behind it.
    fn push_local(
        &self,
        path: &std::path::Path,
        commit: Oid,
        dst: &str,
        update: Update,
    ) -> Result<Sent, GitError> {
        let remote = Repository::open(path).map_err(|e| self.remote_error(&e))?;
        if !remote.is_bare() {
            return Ok(Sent::Refused {
                reason: format!(
                    "{dst}: {} has a work tree; a file:// remote must be a bare repository",
                    path.display()
                ),
            });
        }
        copy_objects(&self.repo, &remote, commit).map_err(|e| self.remote_error(&e))?;
        swap(&remote, dst, commit, update).map_err(|e| self.remote_error(&e))
    }

    fn remote_error(&self, e: &git2::Error) -> GitError {
        GitError::Remote {
            url: self.display_url(),
            operation: "push",
            reason: auth::scrub(&self.settings, &self.url, e.message()),
        }
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
}

/// Commits per pack [`copy_objects`] writes into a `file://` remote.
const COMMITS_PER_PACK: usize = 50;

/// Copies into `remote`'s object database every object `commit` needs that it lacks, as packs
/// of at most [`COMMITS_PER_PACK`] commits each (oldest first) with the trees and blobs they
/// add. libgit2 indexes each pack as it writes it into the remote (in this process), and
/// resolving a pack's deltas keeps a cache of up to 16 MB of its objects: one pack for a round
/// of 1,000 commits rewriting a 1,000-entry tree filled it, packs of 50 commits keep it to what
/// 50 commits add. (Loose objects, one file each, cost no memory but 2-3 times the time.)
/// Nothing refers to the copied objects until the branch moves. Returns how many packs were
/// written.
fn copy_objects(
    local: &Repository,
    remote: &Repository,
    commit: Oid,
) -> Result<usize, git2::Error> {
    let to = remote.odb()?;
    // The commits the remote lacks, and the ones it has where the walk stopped.
    let mut missing = HashSet::new();
    let mut known = Vec::new();
    let mut stack = vec![commit];
    while let Some(next) = stack.pop() {
        if missing.contains(&next) {
            continue;
        }
        if to.exists_ext(next, OdbLookupFlags::NO_REFRESH) {
            known.push(next);
            continue;
        }
        missing.insert(next);
        stack.extend(local.find_commit(next)?.parent_ids());
    }
    if missing.is_empty() {
        return Ok(0);
    }
    let mut walk = local.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    walk.push(commit)?;
    for oid in &known {
        walk.hide(*oid)?;
    }
    let oldest_first = walk.collect::<Result<Vec<Oid>, _>>()?;
    // The previous pack's newest commit is hidden with the remote's: what it reaches is there.
    // (Only that one: hiding every commit sent makes each walk mark their trees again. With
    // merges, a side commit of an earlier pack may go again; that only repeats an object.)
    let mut previous: Option<Oid> = None;
    let mut packs = 0;
    for chunk in oldest_first.chunks(COMMITS_PER_PACK) {
        let mut walk = local.revwalk()?;
        for oid in chunk {
            walk.push(*oid)?;
        }
        for oid in known.iter().chain(&previous) {
            walk.hide(*oid)?;
        }
        let mut builder = local.packbuilder()?;
        builder.insert_walk(&mut walk)?;
        let mut writer = to.packwriter()?;
        let mut failed = None;
        builder.foreach(|bytes| match writer.write_all(bytes) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        if let Some(e) = failed {
            return Err(git2::Error::from_str(&format!(
                "cannot write a pack into the remote: {e}"
            )));
        }
        writer.commit()?;
        previous = chunk.last().copied();
        packs += 1;
    }
    Ok(packs)
}

/// Moves `dst` in the (local) `remote` repository to `commit` as `update` allows, as a
/// compare-and-swap: the old value is checked while the ref's lock file is held.
fn swap(remote: &Repository, dst: &str, commit: Oid, update: Update) -> Result<Sent, git2::Error> {
    let current = match remote.refname_to_id(dst) {
        Ok(oid) => Some(oid),
        Err(e) if e.code() == ErrorCode::NotFound => None,
        Err(e) => return Err(e),
    };
    let expected = match update {
        Update::Lease(expected) if expected != current => {
            return Ok(Sent::Stale { actual: current });
        }
        Update::Lease(expected) => expected,
        Update::FastForward => {
            if current == Some(commit) {
                return Ok(Sent::Pushed);
            }
            if let Some(current) = current
                && !remote.graph_descendant_of(commit, current)?
            {
                return Ok(Sent::Race {
                    reason: format!("{dst}: non-fast-forward (the branch is at {current})"),
                });
            }
            current
        }
    };
    let result = match expected {
        Some(old) => remote.reference_matching(dst, commit, true, old, "imagebump: push"),
        // `force: false`: the ref must not exist, which the lock file makes atomic too.
        None => remote.reference(dst, commit, false, "imagebump: push"),
    };
    match result {
        Ok(_) => Ok(Sent::Pushed),
        Err(e) if matches!(e.code(), ErrorCode::Modified | ErrorCode::Exists) => {
            let actual = remote.refname_to_id(dst).ok();
            Ok(match update {
                Update::Lease(_) => Sent::Stale { actual },
                Update::FastForward => Sent::Race {
                    reason: format!("{dst}: stale info (the branch moved during the push)"),
                },
            })
        }
        // Another writer holds the ref's lock file right now: a race like the others. (A lock
        // file left by a killed writer keeps failing; the retries end in a reported error.)
        Err(e) if e.code() == ErrorCode::Locked => Ok(Sent::Race {
            reason: format!("{dst}: failed to lock ({})", e.message()),
        }),
        Err(e) => Err(e),
    }
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
    fn only_file_urls_are_pushed_through_the_local_compare_and_swap() {
        assert_eq!(
            local_remote_path("file:///srv/git/my%20repo.git"),
            Some(PathBuf::from("/srv/git/my repo.git"))
        );
        assert_eq!(
            local_remote_path("file:///srv/100%.git"),
            Some(PathBuf::from("/srv/100%.git"))
        );
        for url in [
            "https://host/a.git",
            "ssh://git@host/a.git",
            "git@host:a.git",
        ] {
            assert_eq!(local_remote_path(url), None, "{url}");
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
