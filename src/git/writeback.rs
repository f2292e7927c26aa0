//! The write-back loop: plan on the remote head, commit, push; on a rejection start over on
//! the new remote head. Never forced, so a commit someone else pushed meanwhile is kept.
//!
//! Invariant: a push is never forced, and a rejected push is retried only on a fresh plan on the
//! new remote head, at most `max_attempts` times.

use std::time::Duration;

use rand::Rng as _;

use super::{Checkout, CloneCache, GitError, InMemory, Oid, OwnCommit, PushOutcome, redact_url};

/// How often and how patiently [`commit_and_push`] retries a rejected push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOptions {
    /// Attempts in total, the first included (0 is treated as 1).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled on every further retry, with random jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryOptions {
    /// Wait before retry number `retry` (1-based), as [`commit_and_push`] waits.
    pub fn backoff(&self, retry: u32) -> Duration {
        backoff(self, retry)
    }
}

/// What [`commit_and_push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// Planning rounds, 1 when the first push went through (or nothing was to push).
    pub attempts: u32,
    /// The branch head after the call (equal to the remote head).
    pub head: Oid,
    /// Whether a push happened; `false` when the planner made no commit on the last round.
    pub pushed: bool,
    /// The remote head the last round started from.
    pub base: Oid,
    /// The commits the last round made on `base`, oldest first (pushed when `pushed`).
    pub commits: Vec<OwnCommit>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteBackError<E> {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("git {url}: planning the change on `{branch}` failed: {source}")]
    Plan {
        url: String,
        branch: String,
        #[source]
        source: E,
    },
    #[error(
        "git {url}: the remote refused the push to `{branch}` ({reason}); not retried: a \
         hook or branch protection declines it (allow imagebump's pushes, or use \
         `write: pull-request`)"
    )]
    Refused {
        url: String,
        branch: String,
        reason: String,
    },
    #[error(
        "git {url}: push to `{branch}` was rejected {attempts} times (last: {reason}); {}",
        exhausted_hint(reason)
    )]
    Exhausted {
        url: String,
        branch: String,
        attempts: u32,
        reason: String,
    },
}

/// Syncs the clone of `url` to the remote head of `branch`, lets `make_commits` edit files and
/// commit (it returns how many commits it made, and is given a fresh checkout every round),
/// and pushes. When the push is rejected because the branch moved, fetches, resets to the
/// new head and calls `make_commits` again — the new head may already carry the change, or a
/// human's edit the planner must respect — with exponential backoff and jitter, up to
/// `options.max_attempts` rounds. Never force-pushes.
pub fn commit_and_push<E, F>(
    cache: &CloneCache,
    url: &str,
    branch: &str,
    options: &RetryOptions,
    mut make_commits: F,
) -> Result<PushReport, WriteBackError<E>>
where
    F: FnMut(&Checkout) -> Result<usize, E>,
{
    commit_and_push_with(cache, url, branch, options, |checkout, _| {
        make_commits(checkout)
    })
}

/// [`commit_and_push`], with `make_commits` also given the round's in-memory objects, to
/// write them out between commits ([`InMemory::persist_if_large`]) when it makes many.
pub fn commit_and_push_with<E, F>(
    cache: &CloneCache,
    url: &str,
    branch: &str,
    options: &RetryOptions,
    mut make_commits: F,
) -> Result<PushReport, WriteBackError<E>>
where
    F: FnMut(&Checkout, &InMemory<'_>) -> Result<usize, E>,
{
    let max_attempts = options.max_attempts.max(1);
    let checkout = cache.checkout(url, branch)?;
    let mut last_reason = String::new();
    for attempt in 1..=max_attempts {
        if attempt > 1 {
            std::thread::sleep(backoff(options, attempt - 1));
            checkout.refresh()?;
        }
        let base = checkout.head()?;
        checkout
            .with_objects_in_memory(|memory| make_commits(&checkout, memory))?
            .map_err(|source| WriteBackError::Plan {
                url: redact_url(url),
                branch: branch.to_string(),
                source,
            })?;
        let head = checkout.head()?;
        if head == checkout.remote_head()? {
            return Ok(PushReport {
                attempts: attempt,
                head,
                pushed: false,
                base,
                commits: Vec::new(),
            });
        }
        match checkout.push()? {
            PushOutcome::Pushed { head } => {
                return Ok(PushReport {
                    attempts: attempt,
                    head,
                    pushed: true,
                    base,
                    commits: checkout.own_commits(),
                });
            }
            PushOutcome::Refused { reason } => {
                return Err(WriteBackError::Refused {
                    url: redact_url(url),
                    branch: branch.to_string(),
                    reason,
                });
            }
            PushOutcome::Rejected { reason } => {
                tracing::info!(
                    url = %redact_url(url),
                    branch,
                    attempt,
                    %reason,
                    "push rejected; replanning on the new remote head"
                );
                last_reason = reason;
            }
        }
    }
    Err(WriteBackError::Exhausted {
        url: redact_url(url),
        branch: branch.to_string(),
        attempts: max_attempts,
        reason: last_reason,
    })
}

/// What a run of rejections means: the branch kept moving, or (a `file://` remote) its lock
/// file stayed taken, which a writer killed mid-push leaves behind.
fn exhausted_hint(reason: &str) -> &'static str {
    if reason.contains("failed to lock") {
        "the branch's lock file in the remote stays taken: a writer killed mid-push leaves it \
         behind; if no git process is writing to that repository, remove the `.lock` file named \
         above. The next pass will try again"
    } else {
        "another writer keeps moving the branch, the next pass will try again"
    }
}

/// Wait before retry number `retry` (1-based): half the capped exponential delay plus a random
/// part up to the other half, so competing writers spread out.
fn backoff(options: &RetryOptions, retry: u32) -> Duration {
    let factor = 1u32 << (retry - 1).min(16);
    let delay = options
        .initial_backoff
        .saturating_mul(factor)
        .min(options.max_backoff);
    let half = delay / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let options = RetryOptions {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let first = backoff(&options, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff(&options, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = backoff(&options, 30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
        }
    }
}
