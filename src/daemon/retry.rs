//! Which failed checks are worth retrying soon, and after how long.
//!
//! Invariant: the decision is made from the errors' types, never from their text. A failure that
//! may go away by itself (a registry or forge that did not answer or answered 5xx/429, a push
//! that lost every race, a remote that could not be reached) is retryable; one that needs a
//! person (settings, policy, a template, a refused push, a token the forge rejects) is not,
//! and neither is a check with no error at all. The delay doubles from `initial` per attempt and
//! never exceeds `max`. A registry left alone by its circuit breaker (its requests kept failing
//! transiently) is retryable too, and so is a rate limit: the retry then waits at least as long
//! as the error says nothing will be asked or answered ([`report_wait`]; at most `max`), so an
//! attempt is not spent on a registry that is not being asked.
//!
//! Which checks are retried ([`retried_scope`]), a decision: a webhook's check of a repository,
//! and the scheduled check of an app with its own `interval`/`schedule`. Such an app is left
//! out of the full cycles, so its next tick is its only safety net, possibly a day away with a
//! cron: a transient failure there is the same "nothing happened" pain as a webhook's, and
//! its retry survives a full cycle. A repository's retry survives one too when the cycle
//! left out an app the retried check failed on (one with its own schedule, another shard's):
//! only the apps the cycle checked are covered by it.
//! Polls are not retried: a full cycle, and a sharded replica's safety net over the other
//! shards' apps (those apps' owners poll them on every interval, and its own next tick
//! comes); retrying them would multiply the requests to a failing registry by the replicas.

use std::time::Duration;

use crate::forge::ForgeError;
use crate::git::{GitError, WriteBackError};
use crate::registry::RegistryError;
use crate::report::{AppError, ImageError, PullRequestError};

use super::{CycleReport, Scope};

/// How failed webhook checks are retried (`webhook.retry` of the global file; the service
/// fills it in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryOptions {
    /// Retries after the first failed check (0: never retried before the next poll).
    pub max_attempts: u32,
    /// The delay before the first retry; each further one doubles it.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_attempts: 5,
            initial: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

impl RetryOptions {
    /// The delay before retry number `attempt` (1 is the first): `initial * 2^(attempt-1)`,
    /// at most `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        crate::backoff::doubling(self.initial, attempt, self.max)
    }
}

/// Whether a check of `scope` that failed transiently is retried: a repository's (webhooks)
/// and an app's (its own schedule), not a poll's.
pub fn retried_scope(scope: &Scope) -> bool {
    matches!(scope, Scope::Repository { .. } | Scope::App(_))
}

/// Whether `report` failed in a way a retry may fix: some app has an error, and every error
/// is retryable (a report that also holds an error needing a person is not retried: the retry
/// would fail again on that one, while the next poll covers the rest).
pub fn report_retryable(report: &CycleReport) -> bool {
    let mut errors = report
        .apps
        .iter()
        .flat_map(|app| app.errors.iter())
        .peekable();
    errors.peek().is_some() && errors.all(retryable)
}

/// The longest wait the errors of `report` ask for before anything is asked again: the time
/// left before a registry's circuit breaker lets a request through, a registry's or forge's
/// `Retry-After` (plus a quarter second, so the retry comes after it, not on its edge).
pub fn report_wait(report: &CycleReport) -> Option<Duration> {
    report
        .apps
        .iter()
        .flat_map(|app| app.errors.iter())
        .filter_map(wait)
        .max()
        .map(|wait| wait + Duration::from_millis(250))
}

/// The wait `error` asks for, if any.
fn wait(error: &AppError) -> Option<Duration> {
    let forge = |error: &ForgeError| error.retry_after();
    match error {
        AppError::Image { error, .. } => match error.as_ref() {
            ImageError::Registry(RegistryError::Unavailable { retry_in, .. }) => Some(*retry_in),
            ImageError::Registry(RegistryError::RateLimited { retry_after, .. }) => *retry_after,
            _ => None,
        },
        AppError::Forge(error) => forge(error),
        AppError::PullRequest(
            PullRequestError::NotOpened { error, .. } | PullRequestError::NotUpdated { error, .. },
        ) => forge(error),
        _ => None,
    }
}

/// Whether `error` may go away by itself.
pub fn retryable(error: &AppError) -> bool {
    match error {
        AppError::Image { error, .. } => match error.as_ref() {
            ImageError::Registry(error) => registry_retryable(error),
            ImageError::MetadataMissing { .. } => true,
            _ => false,
        },
        AppError::Git(error) => git_retryable(error),
        AppError::WriteBack(error) => match error.as_ref() {
            WriteBackError::Exhausted { .. } => true,
            WriteBackError::Git(error) => git_retryable(error),
            WriteBackError::Refused { .. } | WriteBackError::Plan { .. } => false,
        },
        AppError::Forge(error) => forge_retryable(error),
        AppError::PullRequest(error) => match error {
            PullRequestError::Moved { .. } => true,
            PullRequestError::NotOpened { error, .. }
            | PullRequestError::NotUpdated { error, .. } => forge_retryable(error),
            _ => false,
        },
        AppError::Settings(_)
        | AppError::Template(_)
        | AppError::Write { .. }
        | AppError::ShuttingDown(_)
        | AppError::Internal(_) => false,
    }
}

fn registry_retryable(error: &RegistryError) -> bool {
    matches!(
        error,
        RegistryError::RateLimited { .. }
            | RegistryError::Unreachable { .. }
            | RegistryError::BadResponse { .. }
            | RegistryError::Unavailable { .. }
    )
}

fn git_retryable(error: &GitError) -> bool {
    matches!(error, GitError::Remote { .. } | GitError::Busy { .. })
}

fn forge_retryable(error: &ForgeError) -> bool {
    match error {
        ForgeError::RateLimited { .. } | ForgeError::Transport { .. } => true,
        ForgeError::Http { status, .. } => *status >= 500,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn registry(error: RegistryError) -> AppError {
        AppError::Image {
            image: "api".into(),
            error: Box::new(ImageError::Registry(error)),
        }
    }

    #[test]
    fn the_delay_doubles_up_to_the_cap() {
        let options = RetryOptions {
            max_attempts: 10,
            initial: Duration::from_secs(2),
            max: Duration::from_secs(30),
        };
        let delays: Vec<u64> = (1..=6).map(|n| options.delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 30, 30]);
        assert_eq!(options.delay(200), Duration::from_secs(30));
    }

    #[test]
    fn transient_failures_are_retryable_and_those_needing_a_person_are_not() {
        assert!(retryable(&registry(RegistryError::Unreachable {
            registry: "r".into(),
            repository: "a".into(),
            detail: "connection refused".into(),
        })));
        assert!(!retryable(&registry(RegistryError::Unauthorized {
            registry: "r".into(),
            repository: "a".into(),
            detail: "401".into(),
        })));
        assert!(retryable(&AppError::WriteBack(Arc::new(
            WriteBackError::Exhausted {
                url: "u".into(),
                branch: "main".into(),
                attempts: 3,
                reason: "fetch first".into(),
            }
        ))));
        assert!(!retryable(&AppError::WriteBack(Arc::new(
            WriteBackError::Refused {
                url: "u".into(),
                branch: "main".into(),
                reason: "protected branch".into(),
            }
        ))));
        assert!(!retryable(&AppError::Settings(
            crate::report::SettingsError::MissingEnv {
                var: "TOKEN".into(),
                what: "token".into(),
            }
        )));
    }
}
