//! The long-running daemon: schedule, registry webhooks, targeted checks, HTTP endpoints
//! (health, readiness, metrics, status), reload and graceful shutdown.
//!
//! Architecture invariant: the daemon knows nothing of YAML editing, git or registry internals.
//! It decides *when* to check *what* (a [`Scope`]) and calls a [`Worker`], which the engine
//! implements; it records the [`CycleReport`] the worker returns into the status store and the
//! metrics. Anything that could be learned from a webhook payload (a tag, a digest) is only a
//! hint: a webhook schedules a targeted [`Scope::Repository`] check and the worker asks the
//! registry again.
//!
//! Main design choice: every check, scheduled or webhook-triggered, goes through one queue
//! ([`queue::Checks`]) keyed by scope. A scope is either pending (waiting for a slot, or for a
//! debounce window to close), running, or absent; a request for a scope that is pending is
//! absorbed, a request for a scope that is running marks it to run once more afterwards. That one
//! rule gives debounce with a leading edge (a lone push is checked at once, 100 pushes → one
//! check and at most one follow-up), non-overlapping cycles (a tick during a running cycle is coalesced into one
//! follow-up) and bounded concurrency (a semaphore shared by all scopes), so a webhook check runs
//! while a long poll cycle for other repositories is still going.
//!
//! Submodules:
//! - [`queue`]: the check queue described above.
//! - [`webhook`]: the authenticated receivers (`distribution`, `dockerhub`, `quay`, `harbor`,
//!   `ghcr`, `gitlab`, `generic-hmac`).
//! - [`http`]: the axum router (`/healthz`, `/readyz`, `/metrics`, `/api/v1/status`, webhooks).
//! - [`metrics`]: the Prometheus families, with methods the engine calls.
//! - [`page`]: the status page (`GET /` on the operator listener), server-rendered HTML.
//! - [`status`]: the per-app status store and its JSON shape (shared with `imagebump status`).
//! - [`logging`]: tracing subscriber setup (`--log-format`, `--log-level`, `RUST_LOG`).
//! - [`run`]: [`run::run`], which ties it all together with reload and shutdown.

pub mod http;
pub mod logging;
pub mod metrics;
pub mod page;
pub mod queue;
pub mod retry;
pub mod run;
pub mod serve;
pub mod status;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use crate::report::{AppReport, ImageStatus, PlannedChange};
pub use crate::schedule::Schedule;
pub use crate::shutdown::Shutdown;
pub use metrics::Metrics;
pub use queue::{CheckOptions, Checks, Requested};
pub use retry::RetryOptions;
pub use run::{Control, DaemonError, Loaded, Settings, run};
pub use status::{
    AppDetails, ConfigProblem, ImageDetails, RegistryStatus, RetryStatus, ShardStatus, StatusStore,
};
pub use webhook::{Receiver, ReceiverKind, Secret};

/// What to check: everything, one app, or the apps that use one image repository.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every app on the global schedule.
    All,
    /// One app, by its configured name.
    App(String),
    /// The apps other shards own (the safety-net poll of a sharded replica, see
    /// [`crate::shard`]).
    OtherShards,
    /// The apps that use this image repository (a webhook said it changed).
    Repository {
        /// The registry host as the worker reported it in [`Worker::repositories`].
        registry: String,
        /// The repository path inside that registry, e.g. `acme/shop-api`.
        repository: String,
    },
}

impl Scope {
    /// A bounded label for logs and metrics: `all`, `app` or `repository`.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::App(_) => "app",
            Scope::OtherShards => "other-shards",
            Scope::Repository { .. } => "repository",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::All => f.write_str("all apps"),
            Scope::App(name) => write!(f, "app {name}"),
            Scope::OtherShards => f.write_str("other shards' apps"),
            Scope::Repository {
                registry,
                repository,
            } => write!(f, "repository {registry}/{repository}"),
        }
    }
}

/// The engine, implemented outside this module; the daemon only calls it.
///
/// `check` may run concurrently for different scopes (never twice for the same scope), so the
/// implementation must serialize what has to be serialized (e.g. pushes to one git branch).
/// The future may be dropped at an await point when the shutdown grace period runs out.
pub trait Worker: Send + Sync + 'static {
    /// Check the scope: ask the registries, apply the policies, write back; report per app.
    fn check(&self, scope: Scope) -> impl Future<Output = CycleReport> + Send;

    /// Every `(registry host, repository)` some app uses, to match webhook events against.
    fn repositories(&self) -> Vec<(String, String)>;

    /// Every configured app name, so `/api/v1/status` lists apps not checked yet.
    fn apps(&self) -> Vec<String> {
        Vec::new()
    }

    /// What the configuration says of each app (file, repo, policies, targets), for the
    /// status page.
    fn app_details(&self) -> Vec<AppDetails> {
        Vec::new()
    }

    /// Which shard this replica is and the apps it polls on the schedule; `None`: not sharded.
    fn shard(&self) -> Option<ShardStatus> {
        None
    }

    /// Each registry's counters and circuit breaker now, for the status page (asked after
    /// every check).
    fn registries(&self) -> Vec<RegistryStatus> {
        Vec::new()
    }

    /// The tags the last check of [`Scope::Repository`] `registry`/`repository` listed, if
    /// the worker kept them: a webhook announcing one of them brings no news (see
    /// [`queue`]).
    fn listed(&self, registry: &str, repository: &str) -> Option<Arc<Vec<String>>> {
        let _ = (registry, repository);
        None
    }
}

/// What one check did: the report of each app it touched (the one per-app report type,
/// [`crate::report::AppReport`]), and how long the check took.
#[derive(Clone, Debug, Default)]
pub struct CycleReport {
    pub apps: Vec<AppReport>,
    /// How long the check took (every app of it is shown with this duration).
    pub duration: Duration,
}
