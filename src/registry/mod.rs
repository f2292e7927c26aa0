//! The OCI distribution client: which tags exist, what digest a tag has, when an image was built.
//!
//! Owns: talking to registries over HTTP (auth challenges, token caching, tag pagination,
//! manifests and config blobs, retries, rate and concurrency limits per registry, TLS options)
//! and the per-registry request counters the daemon exports.
//!
//! Invariant: `registry` knows nothing about YAML, git, apps or policies. It answers three
//! questions ([`Client::list_tags`], [`Client::digest`], [`Client::created`]) with the fewest
//! requests possible: a bearer token is fetched once per scope and reused until it expires, the
//! auth scheme of a registry is learnt once (one challenge) and then used up front, tag lists
//! follow `Link` pages with an adaptive page size, and everything addressed by a digest is cached
//! for good in a bounded map. Tag lists are never cached.
//!
//! Design choice: the HTTP client is written here on `reqwest` instead of `oci-client`.
//! `oci-client` 0.18 has no `Link` pagination with an adaptive page size, keeps tokens per
//! client and operation instead of per scope with expiry, has no `HEAD` digest with a `GET`
//! fallback and no per-registry rate or concurrency limits; wrapping it would have meant
//! re-implementing every request anyway. The manifest and index types are a few tolerant serde
//! structs in [`manifest`] (only the fields we read), so the crate is not used at all.
//! One `reqwest::Client` exists per configured registry entry (each may have its own CA file),
//! and each registry has its own semaphore and rate limiter: a slow or failing registry never
//! blocks another.

mod auth;
mod cache;
mod client;
mod content;
mod docker_config;
mod limits;
mod manifest;
mod session;
mod tags;
mod transport;

pub use crate::secret::Secret;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use client::{Client, PlainHttp};

pub use manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Platform};

/// How to authenticate to one registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RegistryAuth {
    /// No credentials; bearer challenges are answered with anonymous tokens.
    #[default]
    Anonymous,
    /// Username and password: sent as HTTP basic auth to the registry, or to the token realm.
    Basic { username: String, password: Secret },
    /// A ready bearer token, sent as `Authorization: Bearer` to the registry.
    Token(Secret),
    /// A docker `config.json` (`auths`, `credHelpers`, `credsStore`), read on first use.
    DockerConfig(PathBuf),
}

/// Settings for the registries whose `registry/repository` name starts with `prefix`.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// A registry host (`ghcr.io`, `localhost:5000`) or host/path prefix (`ghcr.io/acme`);
    /// the longest matching prefix wins.
    pub prefix: String,
    pub auth: RegistryAuth,
    /// Requests per second sent to this registry (tokens included); `None` = unlimited.
    pub requests_per_second: Option<f64>,
    /// Requests in flight at once to this registry.
    pub max_concurrency: usize,
    /// Plain HTTP instead of HTTPS (local registries).
    pub insecure: bool,
    /// A PEM file of extra CA certificates trusted for this registry (on top of system roots).
    pub ca_file: Option<PathBuf>,
    /// Platform picked in a multi-arch index.
    pub platform: Platform,
    /// Caps on one tags listing (all its pages).
    pub tag_list: TagListBudget,
}

/// Caps on one tags listing, so a registry that sends endless `Link` pages (or huge ones)
/// costs a bounded amount of time, memory and traffic. Exceeding one is an error for that
/// repository, never a decision from the pages read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagListBudget {
    /// Pages followed.
    pub max_pages: usize,
    /// Tags collected (valid and invalid ones).
    pub max_tags: usize,
    /// Bytes of page bodies read, in all.
    pub max_bytes: usize,
    /// Wall time of the whole listing, retries and rate-limit waits included.
    pub timeout: Duration,
}

impl Default for TagListBudget {
    /// 1,000 pages, 200,000 tags, 64 MiB, 5 minutes: an order of magnitude above the largest
    /// public repositories (a few tens of thousands of tags) and far below what a runaway
    /// registry would cost.
    fn default() -> Self {
        TagListBudget {
            max_pages: 1_000,
            max_tags: 200_000,
            max_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(300),
        }
    }
}

impl RegistrySettings {
    /// Settings for `prefix` with the defaults: anonymous, HTTPS, no rate limit,
    /// 8 concurrent requests, linux/amd64.
    pub fn new(prefix: impl Into<String>) -> Self {
        RegistrySettings {
            prefix: prefix.into(),
            auth: RegistryAuth::Anonymous,
            requests_per_second: None,
            max_concurrency: 8,
            insecure: false,
            ca_file: None,
            platform: Platform::default(),
            tag_list: TagListBudget::default(),
        }
    }
}

/// Client-wide options (the same for every registry).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one whole request, body included.
    pub request_timeout: Duration,
    /// Retries after a 5xx, a 429, a timeout or a connection error (so `retries + 1` attempts).
    pub retries: u32,
    /// First backoff delay; doubled per retry, with jitter, capped by `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a longer one is waited for only up to this.
    pub max_retry_after: Duration,
    pub user_agent: String,
    /// First `n` asked for on a tags list; halved when a registry answers 400 to it.
    pub page_size: usize,
    /// Entries kept in the by-digest cache (creation times).
    pub cache_entries: usize,
    /// Largest response body read (manifests, tag lists, config blobs).
    pub max_body_bytes: usize,
    /// How long a registry is left alone once 3 requests in a row failed for good (no answer,
    /// timeouts, 5xx after every retry): its requests fail at once meanwhile, so a dead
    /// registry costs no timeouts. Doubles while it stays down, up to `max_breaker_cooldown`.
    /// Zero disables this.
    pub breaker_cooldown: Duration,
    pub max_breaker_cooldown: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retries: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            user_agent: format!("imagebump/{}", env!("CARGO_PKG_VERSION")),
            page_size: 100,
            cache_entries: 10_000,
            max_body_bytes: 16 * 1024 * 1024,
            breaker_cooldown: Duration::from_secs(30),
            max_breaker_cooldown: Duration::from_secs(600),
        }
    }
}

/// Why a registry question could not be answered. Messages name the registry and repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "authentication failed for {registry} (repository {repository}): {detail}; check the credentials configured for this registry"
    )]
    Unauthorized {
        registry: String,
        repository: String,
        detail: String,
    },
    #[error("{what} not found in {registry}/{repository}")]
    NotFound {
        registry: String,
        repository: String,
        what: String,
    },
    #[error(
        "{registry} is rate limiting us (429 Too Many Requests) for {repository}{}; lower requests_per_second for this registry or retry later",
        retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default()
    )]
    RateLimited {
        registry: String,
        repository: String,
        retry_after: Option<Duration>,
    },
    #[error("cannot reach {registry} (repository {repository}): {detail}")]
    Unreachable {
        registry: String,
        repository: String,
        detail: String,
    },
    #[error("bad response from {registry} for {repository}: {detail}")]
    BadResponse {
        registry: String,
        repository: String,
        detail: String,
    },
    #[error(
        "{registry} is not being asked for now (repository {repository}): its last {failures} requests failed for good (last: {last_error}); next try in {}s, or at once on a webhook from it",
        retry_in.as_secs().max(1)
    )]
    Unavailable {
        registry: String,
        repository: String,
        failures: u32,
        last_error: String,
        retry_in: Duration,
    },
    #[error(
        "the tags list of {registry}/{repository} goes past {cap} (registries[].tag_list.{key}); nothing is decided from a partial list: raise the cap if the repository really is that large"
    )]
    TagListTooLarge {
        registry: String,
        repository: String,
        /// The cap, with its unit (`1000 pages`).
        cap: String,
        /// Its key under `tag_list`.
        key: &'static str,
    },
    #[error("invalid registry settings for {prefix}: {detail}")]
    Settings { prefix: String, detail: String },
    #[error("cannot get credentials for {registry}: {detail}")]
    Credentials { registry: String, detail: String },
}

/// How one HTTP request ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// 2xx or 3xx.
    Ok,
    /// 401 or 403.
    Unauthorized,
    NotFound,
    RateLimited,
    /// Another 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// No HTTP answer: connection refused, reset, timeout, TLS error.
    ConnectionError,
}

impl Outcome {
    /// A bounded label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Unauthorized => "unauthorized",
            Outcome::NotFound => "not_found",
            Outcome::RateLimited => "rate_limited",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::ConnectionError => "connection_error",
        }
    }
}

/// Counters of one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Every HTTP request sent on behalf of this registry (tokens and retries included).
    pub requests: u64,
    /// Of `requests`, those sent to the token realm.
    pub token_requests: u64,
    /// Of `requests`, those that repeated a failed attempt (5xx, 429, timeout, connection).
    pub retries: u64,
    /// Of `requests`, those that were tag list pages.
    pub tag_pages: u64,
    pub by_outcome: BTreeMap<Outcome, u64>,
}

/// The circuit breaker of one registry, as of when it was asked (the status page shows it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakerStatus {
    /// Requests in a row that failed for good.
    pub failures: u32,
    /// While the registry is given up (not asked): how long until a request is let through.
    pub given_up_for: Option<Duration>,
    /// The last failure's message (empty before any).
    pub last_error: String,
}

/// A snapshot of the counters, by registry name (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub registries: BTreeMap<String, RegistryStats>,
}

impl Stats {
    /// Requests sent to every registry.
    pub fn total_requests(&self) -> u64 {
        self.registries.values().map(|r| r.requests).sum()
    }

    /// The counters of one registry (zero when it was never asked).
    pub fn registry(&self, name: &str) -> RegistryStats {
        self.registries.get(name).cloned().unwrap_or_default()
    }
}
