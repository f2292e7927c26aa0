//! What a pass reports, per app: its images (deployed, best candidate, problem), the changes
//! planned or applied, the commit or pull request that carries them, and its typed errors
//! ([`error`]). One type for the engine that fills it and the daemon that records it (status,
//! metrics), so neither knows the other.
//!
//! Invariant: plain data; an app whose changes did not reach the remote has `pushed == false`
//! and says why in `errors`, and [`AppReport::written`] never reports a change that was not
//! pushed.

pub mod error;

pub use error::{AppError, ImageError, PullRequestError, ReadError, SettingsError, SkipReason};

use serde::Serialize;

/// One planned or applied change of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    pub app: String,
    /// The image repository (`ghcr.io/acme/api`).
    pub image: String,
    /// The image's name in the app config.
    pub name: String,
    pub file: String,
    pub line: usize,
    pub from: String,
    pub to: String,
    pub digest: Option<String>,
    /// Why the policy chose `to`.
    pub reason: String,
    /// The new tag alone, whatever form `to` has.
    pub tag: String,
}

/// What a pass knows of one image of one app.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageStatus {
    pub name: String,
    pub image: String,
    /// The tag the config repo deploys (first target), if found.
    pub deployed: Option<String>,
    /// The best tag the policy allows, if one is eligible: the new tag when the image is
    /// updated, the deployed one when it already is the best, and a lower one when the
    /// deployed tag is newer than every candidate and is kept (no downgrade).
    pub candidate: Option<String>,
    /// Why the policy decided as it did for the first target it decided for (also when
    /// nothing changes, and when no tag matches): a kind plus the tags it names.
    pub why: Option<crate::policy::Why>,
    pub error: Option<ImageError>,
}

impl ImageStatus {
    /// Why, in words: the policy's reason, else why nothing could be decided (a registry the
    /// circuit breaker gave up says so and when it is asked again).
    pub fn why_text(&self) -> Option<String> {
        if let Some(why) = &self.why {
            return Some(why.to_string());
        }
        Some(match self.error.as_ref()? {
            ImageError::Registry(crate::registry::RegistryError::Unavailable {
                registry,
                failures,
                retry_in,
                ..
            }) => format!(
                "not decided: registry {registry} given up after {failures} failures in a row; asked again in {}s, or at once on a webhook from it",
                retry_in.as_secs().max(1)
            ),
            error => format!("not decided: {error}"),
        })
    }
}

/// The outcome of one pass for one app.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AppReport {
    pub name: String,
    pub images: Vec<ImageStatus>,
    pub changes: Vec<PlannedChange>,
    /// The commit that carries this app's changes (after a successful push).
    pub commit: Option<String>,
    /// The pull request that carries them (pull-request mode).
    pub pull_request: Option<String>,
    /// What this pass did with that pull request (pull-request mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request_action: Option<PullRequestAction>,
    /// Unified diffs of the planned edits (dry run only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<String>,
    pub errors: Vec<AppError>,
    /// Push attempts of the repository/branch this app was written with.
    pub push_attempts: u32,
    pub pushed: bool,
}

impl AppReport {
    pub(crate) fn new(name: &str) -> Self {
        AppReport {
            name: name.to_string(),
            ..AppReport::default()
        }
    }

    /// Every error's message, joined with `; ` (`None` when the app succeeded).
    pub fn error_text(&self) -> Option<String> {
        (!self.errors.is_empty()).then(|| {
            self.errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The change this pass wrote for the image named `image`, if it reached the remote.
    pub fn written(&self, image: &str) -> Option<&PlannedChange> {
        self.changes
            .iter()
            .find(|c| c.name == image)
            .filter(|_| self.pushed)
    }

    /// What the config repo deploys for `image` after this pass: the written tag, else what
    /// was found.
    pub fn deployed_after(&self, image: &ImageStatus) -> Option<String> {
        self.written(&image.name)
            .map(|c| c.to.clone())
            .or_else(|| image.deployed.clone())
    }
}

/// What a pass did with an app's pull request: never reported as an update when nothing was
/// done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "reason")]
pub enum PullRequestAction {
    /// A new pull request was opened.
    Opened,
    /// The open pull request got a new commit, title and body.
    Updated,
    /// The open pull request already proposes exactly these versions: nothing was done.
    Unchanged,
    /// A person closed a pull request for exactly these versions without merging it: they are
    /// not proposed again (the reason says which).
    NotReopened(String),
    /// The open pull request was closed: a person's rollback on the base branch leaves nothing
    /// to propose (the reason names it).
    Closed(String),
}

/// The outcome of one pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub apps: Vec<AppReport>,
    /// Pushes made (one per config repository and branch with changes).
    pub pushes: usize,
    /// Registry requests sent during the pass.
    pub registry_requests: u64,
    /// How long each tags listing of the pass took, by registry host (listings that ended).
    #[serde(skip)]
    pub tag_lists: Vec<(String, std::time::Duration)>,
    /// The tags listed for each repository a pass was limited to (`registry/repository`, the
    /// pass options' `repositories`); empty for a pass that was not limited.
    #[serde(skip)]
    pub listed: Vec<(String, std::sync::Arc<Vec<String>>)>,
}

impl PassReport {
    /// True when any app reported an error.
    pub fn failed(&self) -> bool {
        self.apps.iter().any(|a| !a.errors.is_empty())
    }

    /// Every planned or applied change.
    pub fn changes(&self) -> impl Iterator<Item = &PlannedChange> {
        self.apps.iter().flat_map(|a| a.changes.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryError;

    fn image(why: Option<crate::policy::Why>, error: Option<ImageError>) -> ImageStatus {
        ImageStatus {
            name: "api".into(),
            why,
            error,
            ..ImageStatus::default()
        }
    }

    #[test]
    fn why_text_is_the_policy_reason_else_why_nothing_was_decided() {
        let why = crate::policy::Why::NotDowngrading {
            current: "1.12.0".into(),
            best: "1.4.5".into(),
        };
        assert_eq!(
            image(Some(why), None).why_text().as_deref(),
            Some("deployed 1.12.0 is newer than every candidate (best 1.4.5); not downgrading")
        );
        let given_up = ImageError::Registry(RegistryError::Unavailable {
            registry: "ghcr.io".into(),
            repository: "acme/api".into(),
            failures: 3,
            last_error: "connection refused".into(),
            retry_in: std::time::Duration::from_secs(30),
        });
        assert_eq!(
            image(None, Some(given_up)).why_text().as_deref(),
            Some(
                "not decided: registry ghcr.io given up after 3 failures in a row; asked again in 30s, or at once on a webhook from it"
            )
        );
        let missing = ImageError::NotListed {
            repository: "ghcr.io/acme/api".into(),
        };
        assert!(
            image(None, Some(missing))
                .why_text()
                .is_some_and(|text| text.starts_with("not decided: ")),
        );
        assert_eq!(image(None, None).why_text(), None);
    }
}
