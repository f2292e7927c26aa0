//! The configuration as plain data: the global file's settings and one [`App`] per app file,
//! with every value already validated and typed (enums, durations, image references).
//!
//! Invariant: what is here has been checked; other modules turn it into their own settings
//! and never see YAML or a secret's value (secrets are named by reference, `*_env`, `*_file`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ReceiverKind, Schedule};
use crate::edit::HelmField;
use crate::forge::ForgeKind;
use crate::reference::ImageRef;

/// Default poll interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(120);

/// A loaded configuration: the global settings and every app that validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of the global file.
    pub file: PathBuf,
    pub global: Global,
    /// Apps that validated, sorted by name.
    pub apps: Vec<App>,
}

/// The global file.
#[derive(Debug, Clone)]
pub struct Global {
    /// Directory of app files (resolved against the global file's directory).
    pub apps_dir: PathBuf,
    pub schedule: Schedule,
    /// Clone cache directory.
    pub workdir: PathBuf,
    pub git: GitConfig,
    pub registries: Vec<RegistryConfig>,
    pub webhook: Option<WebhookConfig>,
    /// `http.listen`: where health, readiness, metrics and status are served. `None`: on the
    /// webhook listener, with everything else.
    pub http_listen: Option<SocketAddr>,
    /// Checks the daemon runs at once (default 4).
    pub max_concurrent_checks: Option<u32>,
    /// How long a registry that keeps failing is left alone.
    pub registry_breaker: BreakerConfig,
    /// `notifications`: the sinks and when they are told (`None`: no notifications).
    pub notifications: Option<NotificationsConfig>,
    /// `history`: how far back a target's history is read (rollbacks, promotion).
    pub history: HistoryBound,
}

/// `history:` of the global file: a history read stops at whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryBound {
    /// `max_commits`: first-parent commits read at most (default 5,000).
    pub max_commits: u32,
    /// `max_age`: commits older than this are not read (default 90 days).
    pub max_age: Duration,
}

impl Default for HistoryBound {
    fn default() -> Self {
        HistoryBound {
            max_commits: 5000,
            max_age: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// `notifications:` of the global file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationsConfig {
    pub sinks: Vec<SinkConfig>,
    /// Sinks told about every app (an app's own `notify:` adds to these).
    pub notify: Vec<String>,
    /// Consecutive failed checks of an app before `failed` is sent (default 3).
    pub failures: u32,
    /// Events waiting per sink at most; more are dropped and counted (default 100).
    pub queue: u32,
    /// Tries per event, the first included (default 4), with a doubling pause between.
    pub attempts: u32,
    /// Longest wait for one try (default 10s).
    pub timeout: Duration,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            sinks: Vec::new(),
            notify: Vec::new(),
            failures: 3,
            queue: 100,
            attempts: 4,
            timeout: Duration::from_secs(10),
        }
    }
}

/// One notification sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// The name apps use in `notify:`, and the `sink` label of the metrics.
    pub name: String,
    pub kind: SinkKind,
    /// Where the URL is (a secret: Slack's incoming webhook URLs carry their token).
    pub url: SecretRef,
    /// Where the HMAC key is (`webhook` sinks).
    pub secret: Option<SecretRef>,
    /// The events this sink gets (all when the config lists none).
    pub events: Vec<NotifyEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// A Slack incoming webhook (Block Kit message).
    Slack,
    /// A JSON POST signed with HMAC-SHA256.
    Webhook,
}

/// A secret named by the config: an environment variable or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

/// What a sink can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyEvent {
    /// New tags committed and pushed (`write: commit`).
    Committed,
    /// A pull request opened or updated (`write: pull-request`).
    PullRequest,
    /// The app failed `failures` checks in a row.
    Failed,
    /// The app's first good check after `failed`.
    Recovered,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 4] = [
        NotifyEvent::Committed,
        NotifyEvent::PullRequest,
        NotifyEvent::Failed,
        NotifyEvent::Recovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Committed => "committed",
            NotifyEvent::PullRequest => "pull_request",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Recovered => "recovered",
        }
    }

    pub fn from_name(name: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// `registry_breaker`: after 3 requests in a row to a registry fail for good, it is left alone
/// for `cooldown`, doubling while it stays down up to `max_cooldown`. A zero `cooldown` turns
/// this off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
        }
    }
}

/// Default of `git.workdir_wait`.
pub const DEFAULT_WORKDIR_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct GitConfig {
    pub author_name: String,
    pub author_email: String,
    pub credentials: Vec<GitCredential>,
    /// How many times a rejected push is retried on top of the new remote head.
    pub push_retries: u32,
    /// One commit per branch per pass for every app that changed (as Flux's automation does),
    /// instead of one commit per app.
    pub group_commits: bool,
    /// Message template of a grouped commit (apps' own `commit_message` do not apply to it).
    pub group_commit_message: Option<String>,
    /// An unencrypted OpenSSH Ed25519 private key that signs every commit.
    pub signing_key_file: Option<PathBuf>,
    /// How long a pass waits for another process working in the same clone (60s by default).
    pub workdir_wait: Duration,
    /// When a cached clone is repacked.
    pub maintenance: MaintenanceConfig,
}

/// Past this many packs a cached clone is deleted and cloned again instead of repacked (the
/// git module's `MAX_PACKS`; a test of the engine keeps the two equal): `git.maintenance.max_packs`
/// must stay below it.
pub const REBUILD_PAST_PACKS: u32 = 200;

/// `git.maintenance: {max_packs, max_loose_objects}`: a cached clone holding more packs, or more
/// loose objects, than this is repacked by the next pass that writes. 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceConfig {
    pub max_packs: u32,
    pub max_loose_objects: u32,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            max_packs: 50,
            max_loose_objects: 5_000,
        }
    }
}

/// Credentials for the repositories whose URL starts with `url` (longest prefix wins).
#[derive(Debug, Clone, Default)]
pub struct GitCredential {
    pub url: String,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ssh_key_file: Option<PathBuf>,
    pub ssh_passphrase_env: Option<String>,
    pub known_hosts_file: Option<PathBuf>,
}

/// Settings for the registries whose host (or host/path) starts with `prefix`.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    pub prefix: String,
    pub docker_config: Option<PathBuf>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub token_env: Option<String>,
    pub requests_per_second: Option<f64>,
    pub max_concurrency: Option<u32>,
    pub insecure: bool,
    pub ca_file: Option<PathBuf>,
    /// `os/arch[/variant]` used to pick an image from a multi-platform index (the first of
    /// `platforms`).
    pub platform: Option<String>,
    /// `platform` as written (a string or a list): every tag the policy picks must have an
    /// image for each of these; empty = no platform filter.
    pub platforms: Vec<String>,
    /// `tag_list`: caps on one tags listing; `None` keeps the default of each.
    pub tag_list: TagListCaps,
}

/// `registries[].tag_list`: caps on one tags listing (all pages). Unset fields keep the
/// registry client's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TagListCaps {
    pub max_pages: Option<u32>,
    pub max_tags: Option<u32>,
    pub max_mib: Option<u32>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub listen: SocketAddr,
    pub receivers: Vec<ReceiverConfig>,
    /// Quiet period before a webhook-triggered check (default 100 ms).
    pub debounce: Option<Duration>,
    /// Longest wait after the first event of a burst (default 5 s).
    pub debounce_max: Option<Duration>,
    /// `retry`: how a targeted check that failed transiently is retried.
    pub retry: RetryConfig,
}

/// `webhook.retry:` a targeted check (a webhook's) that failed only in ways that may go away by
/// themselves is checked again after `initial`, doubling, never longer than `max`, at most
/// `max_attempts` times (0: never; the next poll is the safety net).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            initial: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub kind: ReceiverKind,
    /// Environment variable holding the shared secret, token or HMAC key.
    pub secret_env: String,
    /// Treat every event of this receiver as coming from this registry host (when the registry
    /// names itself differently from the `image:` references, e.g. an internal host name).
    pub registry: Option<String>,
}

/// One app: a config repo branch and the images whose tags it carries.
#[derive(Debug, Clone)]
pub struct App {
    /// The app file.
    pub file: PathBuf,
    pub name: String,
    pub repo: String,
    pub branch: String,
    pub write: WriteMode,
    pub pull_request: Option<PullRequestConfig>,
    pub commit_message: Option<String>,
    /// Per-app schedule; `None` means the global one.
    pub schedule: Option<Schedule>,
    pub images: Vec<ImageConfig>,
    /// `notify`: notification sinks for this app, on top of `notifications.notify`.
    pub notify: Vec<String>,
    /// `on_rollback`: what a person's rollback of an image means (an image's own overrides).
    pub on_rollback: Option<OnRollback>,
    /// `write` was written in the file (not defaulted): a promoted app defaults to
    /// `pull-request`, and an explicit `commit` is warned about.
    pub write_explicit: bool,
}

/// `on_rollback`: what imagebump does once a person rolled an image back from a tag it wrote
/// (the latest change of the target, by someone else, moved it to an older tag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnRollback {
    /// The rolled-back tag and every tag not newer are not proposed again; a newer one is.
    #[default]
    SkipVersion,
    /// No update for the image until a person changes the value again.
    Hold,
    /// Rollbacks are not looked for.
    Ignore,
}

impl OnRollback {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnRollback::SkipVersion => "skip-version",
            OnRollback::Hold => "hold",
            OnRollback::Ignore => "ignore",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Commit,
    PullRequest,
}

#[derive(Debug, Clone)]
pub struct PullRequestConfig {
    /// `github`, `gitlab` or `gitea`.
    pub forge: ForgeKind,
    pub api_url: Option<String>,
    /// `owner/repo` (or GitLab path); derived from the repo URL when absent.
    pub project: Option<String>,
    pub token_env: String,
    /// Bot branch name template; default `imagebump/{{ app }}`.
    pub branch: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub draft: bool,
}

/// One image of an app.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// Short name used in messages and templates.
    pub name: String,
    /// The repository, without tag or digest.
    pub image: ImageRef,
    pub policy: PolicyConfig,
    pub include: Option<String>,
    pub exclude: Vec<String>,
    pub extract: Option<String>,
    pub pin_digest: bool,
    pub allow_downgrade: bool,
    pub min_age: Option<Duration>,
    /// The first of `platforms`.
    pub platform: Option<String>,
    /// `platform` (a string or a list): the tags the policy may pick must have an image for
    /// each; overrides the registry's.
    pub platforms: Vec<String>,
    pub targets: Vec<TargetConfig>,
    pub line: usize,
    /// `on_rollback` of this image; `None`: the app's.
    pub on_rollback: Option<OnRollback>,
    /// `promote`: take the candidate from another app's history instead of the registry's
    /// newest tag.
    pub promote: Option<PromoteConfig>,
}

/// `promote: {from, image, soak, trust}` of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoteConfig {
    /// The source app's name.
    pub from: String,
    /// The image's name in the source app (default: this image's name).
    pub image: String,
    /// How long the source must have held a tag continuously (default 24h).
    pub soak: Duration,
    pub trust: PromoteTrust,
    /// `allowed_signers`: the OpenSSH allowed-signers file `trust: signed` checks commits
    /// against (an absolute path).
    pub allowed_signers: Option<PathBuf>,
    /// Where `from` is written (line, column), for the cross-app checks.
    pub at: (usize, usize),
}

/// Default of `promote.soak`.
pub const DEFAULT_SOAK: Duration = Duration::from_secs(24 * 3600);

/// `promote.trust`: which commits of the source's history count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PromoteTrust {
    /// Every commit (the clock is the committer time; see docs/promotion.md).
    #[default]
    Any,
    /// Only values written by imagebump's own commits (author or committer is `git.author`).
    Bot,
    /// Only values whose first-parent commit carries an SSH signature by a key of
    /// `allowed_signers`.
    Signed,
}

impl PromoteTrust {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PromoteTrust::Any => "any",
            PromoteTrust::Bot => "bot",
            PromoteTrust::Signed => "signed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PolicyConfig {
    Semver { range: String, strict: bool },
    Alphabetical { descending: bool },
    Numerical { descending: bool },
    NewestBuild,
    Digest { tag: String },
}

/// Where in the config repo an image's tag is written.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// Path relative to the repo root: a file, or a directory (`clusters/prod/`, `./`) whose
    /// YAML files are all scanned.
    pub file: String,
    /// Helm values path (`api.image.tag`).
    pub path: Option<String>,
    /// What the Helm value holds: `tag` (default), `repository`, `ref` or `digest`.
    pub field: Option<HelmField>,
    /// A Flux `$imagepolicy` marker name (`ns:name`).
    pub marker: Option<String>,
    pub line: usize,
}

impl TargetConfig {
    /// True when `file` is written as a directory (a trailing `/`). A `file` without one that is
    /// a directory on the branch is a directory target too; only a pass can tell.
    pub fn names_directory(&self) -> bool {
        self.file.ends_with('/')
    }
}
