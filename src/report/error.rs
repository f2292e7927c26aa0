//! What went wrong for one image or one app in a pass, as values.
//!
//! Invariant: the engine never decides anything from an error's text. Each problem keeps the
//! stage error it came from (registry, edit, git, forge, policy, settings, I/O with its path),
//! its `Display` is the sentence a person reads (naming the file, line, image or registry, never
//! a secret), and [`AppError::kind`] is a small fixed label the metrics, the status and the JSON
//! output use.

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::edit::EditError;
use crate::forge::ForgeError;
use crate::git::{GitError, WriteBackError};
use crate::policy::NoMatch;
use crate::registry::RegistryError;

/// A secret reference that cannot be resolved, or a value another stage refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable `{var}` ({what}) is not set")]
    MissingEnv { var: String, what: String },
    #[error("cannot read {path} ({what}): {reason}")]
    File {
        path: String,
        what: String,
        reason: String,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// Why a target file could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The path leaves the clone or crosses a symlink.
    #[error(transparent)]
    Unsafe(Arc<GitError>),
    #[error("cannot read {file}: {error}")]
    Io {
        file: String,
        error: Arc<std::io::Error>,
    },
    #[error("{file} is not a regular file")]
    NotAFile { file: String },
    #[error("{file} is larger than {limit} bytes")]
    TooLarge { file: String, limit: u64 },
}

/// One image's problem in a pass: the first one found stops that target.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    /// Listing the repository's tags failed.
    #[error(transparent)]
    Registry(RegistryError),
    /// The pass has no tag list for the repository (an internal error).
    #[error("{repository}: tags were not listed")]
    NotListed { repository: String },
    /// Registry metadata the policy needs did not arrive.
    #[error(
        "registry metadata of {} is missing (the registry did not answer); the next pass retries",
        tags.join(", ")
    )]
    MetadataMissing { tags: Vec<String> },
    /// No tag satisfies the policy.
    #[error("{repository}: {error}")]
    NoMatch {
        repository: String,
        error: Box<NoMatch>,
    },
    /// The target's settings are invalid (`at` is `app.yaml:LINE (target FILE)`).
    #[error("{at}: {error}")]
    Target { at: String, error: SettingsError },
    /// The target file cannot be read.
    #[error("{at}: {error}")]
    Read { at: String, error: ReadError },
    /// The target file cannot be parsed, searched or edited.
    #[error("{file}: {error}")]
    Edit { file: String, error: EditError },
    /// The target file does not mention the image.
    #[error("{file}: no reference to {repository} found ({at})")]
    NotFound {
        file: String,
        repository: String,
        at: String,
    },
    /// The chosen tag or digest cannot be written.
    #[error("{repository}: {error}")]
    Update {
        repository: String,
        error: EditError,
    },
    /// No YAML file of a directory target mentions the image.
    #[error(
        "{dir}: no reference to {repository} found in {files} YAML file{}{} ({at})",
        if *files == 1 { "" } else { "s" },
        if *symlinks == 0 { String::new() } else {
            format!(" ({symlinks} symbolic link{} not followed)", if *symlinks == 1 { "" } else { "s" })
        }
    )]
    NothingInDirectory {
        dir: String,
        repository: String,
        /// YAML files scanned.
        files: usize,
        /// Symbolic links passed over.
        symlinks: usize,
        at: String,
    },
    /// One file of a directory target was skipped: it cannot be read, parsed or searched. The
    /// directory's other files were scanned and edited all the same.
    #[error(
        "{}; skipped, the other files of {dir} were scanned",
        skipped_text(file, reason)
    )]
    Skipped {
        file: String,
        /// The directory target, as configured.
        dir: String,
        reason: SkipReason,
    },
    /// The target's history could not be read, so a rollback could not be ruled out: the
    /// image is not updated this pass.
    #[error("{0}; not updating without knowing whether a person rolled it back")]
    History(crate::history::HistoryError),
    /// The source of a promotion (`promote.from`) could not be read: the image is not updated
    /// (never from the registry's newest instead).
    #[error("promote.from {app}: {reason}; not promoting without its history")]
    PromoteSource { app: String, reason: String },
}

/// Why one file of a directory target was skipped.
#[derive(Debug, Clone)]
pub enum SkipReason {
    Read(ReadError),
    Edit(EditError),
    /// Its name is not UTF-8 text, so no target can name it.
    NameNotUtf8,
}

/// `file:line:col: message` when the error points into the file, else `file: message`.
fn skipped_text(file: &str, reason: &SkipReason) -> String {
    match reason {
        SkipReason::Read(error) => error.to_string(),
        SkipReason::Edit(error) if error.position().is_some() => format!("{file}:{error}"),
        SkipReason::Edit(error) => format!("{file}: {error}"),
        SkipReason::NameNotUtf8 => format!("{file}: the file name is not UTF-8"),
    }
}

impl ImageError {
    /// A small fixed label: `registry`, `metadata`, `no_match`, `settings`, `io`, `edit`,
    /// `not_found`, `history`.
    pub fn kind(&self) -> &'static str {
        match self {
            ImageError::Registry(_) | ImageError::NotListed { .. } => "registry",
            ImageError::MetadataMissing { .. } => "metadata",
            ImageError::NoMatch { .. } => "no_match",
            ImageError::Target { .. } => "settings",
            ImageError::Read { .. } => "io",
            ImageError::Edit { .. } | ImageError::Update { .. } => "edit",
            ImageError::NotFound { .. } | ImageError::NothingInDirectory { .. } => "not_found",
            ImageError::Skipped { reason, .. } => match reason {
                SkipReason::Edit(_) => "edit",
                SkipReason::Read(_) | SkipReason::NameNotUtf8 => "io",
            },
            ImageError::History(_) => "history",
            ImageError::PromoteSource { .. } => "promote",
        }
    }
}

/// What a pull request could not do, short of the forge's own errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PullRequestError {
    #[error("`write: pull-request` needs a `pull_request:` section")]
    NotConfigured,
    /// The bot branch template renders no valid branch name.
    #[error("{0}")]
    BotBranchName(String),
    #[error(
        "bot branch `{branch}` has commits not made by imagebump: {}; leaving it alone (merge or delete the branch to resume)",
        commits.join("; ")
    )]
    ForeignCommits {
        branch: String,
        commits: Vec<String>,
    },
    #[error(
        "bot branch `{branch}` moved while imagebump was updating it; the next pass looks again"
    )]
    Moved { branch: String },
    #[error("push of bot branch `{branch}` was rejected: {reason}")]
    Rejected { branch: String, reason: String },
    #[error("bot branch `{branch}` pushed, but opening the pull request failed: {error}")]
    NotOpened {
        branch: String,
        error: Arc<ForgeError>,
    },
    #[error("bot branch `{branch}` pushed, but updating {url} failed: {error}")]
    NotUpdated {
        branch: String,
        url: String,
        error: Arc<ForgeError>,
    },
}

/// One app's problem in a pass.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// One of its images.
    #[error("{image}: {error}")]
    Image {
        image: String,
        error: Box<ImageError>,
    },
    /// Its settings (a missing secret, a bad range): it is not run at all.
    #[error(transparent)]
    Settings(SettingsError),
    /// A commit message, title or body template failed to render.
    #[error("{0}")]
    Template(Arc<dyn std::error::Error + Send + Sync>),
    /// A planned file could not be written into the clone.
    #[error("cannot write {file}: {error}")]
    Write {
        file: String,
        error: Arc<std::io::Error>,
    },
    /// A local git step (checkout, commit) failed.
    #[error(transparent)]
    Git(Arc<GitError>),
    /// Syncing, committing and pushing the branch failed.
    #[error(transparent)]
    WriteBack(Arc<WriteBackError<Infallible>>),
    /// The forge refused or failed a request.
    #[error(transparent)]
    Forge(Arc<ForgeError>),
    /// The pull request or its bot branch.
    #[error(transparent)]
    PullRequest(PullRequestError),
    /// The daemon is shutting down: nothing was committed or updated.
    #[error("{0}")]
    ShuttingDown(&'static str),
    /// A repository job panicked.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// Every value [`AppError::kind`] can take.
    pub const KINDS: &[&'static str] = &[
        "registry",
        "metadata",
        "no_match",
        "settings",
        "io",
        "edit",
        "not_found",
        "template",
        "git",
        "push",
        "forge",
        "pull_request",
        "shutdown",
        "internal",
    ];

    /// A small fixed label: an image's kind (see [`ImageError::kind`]), or `settings`,
    /// `template`, `io`, `git`, `push`, `forge`, `pull_request`, `shutdown`, `internal`.
    pub fn kind(&self) -> &'static str {
        match self {
            AppError::Image { error, .. } => error.kind(),
            AppError::Settings(_) => "settings",
            AppError::Template(_) => "template",
            AppError::Write { .. } => "io",
            AppError::Git(_) => "git",
            AppError::WriteBack(_) if self.is_push() => "push",
            AppError::WriteBack(_) => "git",
            AppError::Forge(_) => "forge",
            AppError::PullRequest(_) if self.is_push() => "push",
            AppError::PullRequest(_) => "pull_request",
            AppError::ShuttingDown(_) => "shutdown",
            AppError::Internal(_) => "internal",
        }
    }

    /// Whether a push was refused or failed (a branch or a bot branch).
    pub fn is_push(&self) -> bool {
        match self {
            AppError::WriteBack(e) => matches!(
                e.as_ref(),
                WriteBackError::Refused { .. }
                    | WriteBackError::Exhausted { .. }
                    | WriteBackError::Git(GitError::Remote {
                        operation: "push",
                        ..
                    })
            ),
            AppError::PullRequest(e) => matches!(
                e,
                PullRequestError::Moved { .. } | PullRequestError::Rejected { .. }
            ),
            _ => false,
        }
    }

    /// A template error, keeping its type as the source.
    pub(crate) fn template(e: impl std::error::Error + Send + Sync + 'static) -> AppError {
        AppError::Template(Arc::new(e))
    }
}

impl From<GitError> for AppError {
    fn from(e: GitError) -> Self {
        AppError::Git(Arc::new(e))
    }
}

impl From<ForgeError> for AppError {
    fn from(e: ForgeError) -> Self {
        AppError::Forge(Arc::new(e))
    }
}

impl From<PullRequestError> for AppError {
    fn from(e: PullRequestError) -> Self {
        AppError::PullRequest(e)
    }
}

impl From<SettingsError> for AppError {
    fn from(e: SettingsError) -> Self {
        AppError::Settings(e)
    }
}

/// `{"kind": "...", "message": "..."}`: the label to act on and the sentence to read.
fn serialize_problem<S: serde::Serializer>(
    serializer: S,
    kind: &'static str,
    message: String,
) -> Result<S::Ok, S::Error> {
    let mut s = serializer.serialize_struct("Problem", 2)?;
    s.serialize_field("kind", kind)?;
    s.serialize_field("message", &message)?;
    s.end()
}

impl Serialize for AppError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_problem(serializer, self.kind(), self.to_string())
    }
}

impl Serialize for ImageError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_problem(serializer, self.kind(), self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_type_and_messages_stay_readable() {
        let refused = AppError::WriteBack(Arc::new(WriteBackError::Refused {
            url: "file:///r".into(),
            branch: "main".into(),
            reason: "hook declined".into(),
        }));
        assert_eq!(refused.kind(), "push");
        assert!(AppError::KINDS.contains(&refused.kind()));
        assert!(refused.to_string().contains("refused the push to `main`"));
        let busy = AppError::WriteBack(Arc::new(WriteBackError::Git(GitError::Busy {
            url: "file:///r".into(),
        })));
        assert_eq!(busy.kind(), "git");
        let image = AppError::Image {
            image: "api".into(),
            error: Box::new(ImageError::MetadataMissing {
                tags: vec!["1.0".into(), "1.1".into()],
            }),
        };
        assert_eq!(image.kind(), "metadata");
        assert_eq!(
            serde_json::to_value(&image).ok(),
            Some(serde_json::json!({
                "kind": "metadata",
                "message": "api: registry metadata of 1.0, 1.1 is missing (the registry did not answer); the next pass retries"
            }))
        );
    }
}
