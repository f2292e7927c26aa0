//! Pushing a checked-out branch: the normal fast-forward-only push and the compare-and-swap
//! push ("force-with-lease") of pull-request mode, with the remote's per-ref answer told apart
//! as a race (fetch and plan again) or a refusal (a hook, a protected branch: final).
//!
//! **Invariant:** the normal push is never forced, and the only forced update checks in
//! libgit2's `push_negotiation` callback that the remote branch is where the caller expects it
//! before anything is sent. A tracking ref moves only after the remote accepted the update.

use std::cell::{Cell, RefCell};

use git2::{ErrorCode, PushOptions};

use super::auth::{self, CallbackState};
use super::checkout::{Checkout, REMOTE, tracking_ref};
use super::{GitError, Oid};

/// Local ref that holds a commit while [`Checkout::push_with_lease`] pushes it.
const OUTGOING_REF: &str = "refs/imagebump/outgoing";

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
