//! The client's state: one [`Client`] holds the configured registry entries (each with its own
//! HTTP client), the state of every registry asked so far, the by-digest caches and the
//! request counters. The questions it answers live in [`super::tags`] and [`super::content`];
//! every request they send goes through [`super::session`] (auth) and [`super::transport`]
//! (limits, retries, breaker).
//!
//! Invariant: a registry's [`RegistryState`] is created once per (registry name, settings
//! entry) and never shared with another registry: its rate limiter, concurrency permits,
//! learnt auth scheme, tokens, page size and breaker belong to it alone, so a slow or failing
//! registry never blocks another. Settings are validated when the client is built: a client
//! that exists has only valid entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::Url;
use time::OffsetDateTime;
use tokio::sync::{OnceCell, Semaphore};

use super::auth::{Scheme, TokenCache};
use super::cache::BoundedCache;
use super::docker_config::Credentials;
use super::limits::{Breaker, RateLimiter};
use super::{BreakerStatus, ClientOptions, RegistryError, RegistrySettings, RegistryStats, Stats};
use crate::reference::{ImageRef, normalize_registry};

/// A shareable registry client (`Clone` is cheap: one `Arc`).
#[derive(Clone)]
pub struct Client {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.inner.entries.len())
            .finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    entries: Vec<Entry>,
    fallback: Entry,
    pub(super) options: ClientOptions,
    registries: Mutex<HashMap<RegistryKey, Arc<RegistryState>>>,
    pub(super) created: BoundedCache<String, Option<OffsetDateTime>>,
    /// The canonical platforms a manifest digest has images for (content-addressed).
    pub(super) platforms: BoundedCache<String, Vec<String>>,
    stats: Mutex<BTreeMap<String, RegistryStats>>,
}

/// A registry name and the index of the settings entry that serves it.
type RegistryKey = (String, Option<usize>);

/// One configured settings entry with its HTTP client.
struct Entry {
    settings: RegistrySettings,
    /// The normalised prefix (`docker.io/library`, `localhost:5000`).
    prefix: String,
    http: reqwest::Client,
}

/// Everything one registry needs; never shared with another registry.
pub(super) struct RegistryState {
    /// Canonical registry name (`docker.io`), for messages and counters.
    pub(super) name: String,
    pub(super) base: Url,
    pub(super) settings: RegistrySettings,
    pub(super) http: reqwest::Client,
    pub(super) permits: Semaphore,
    pub(super) limiter: RateLimiter,
    /// The auth scheme, once learnt. Locked during the very first request so that concurrent
    /// callers don't each pay for a challenge.
    pub(super) scheme: tokio::sync::Mutex<Option<Scheme>>,
    /// The first request failed before learning the scheme (registry down?).
    pub(super) discovery_failed: AtomicBool,
    pub(super) credentials: OnceCell<Option<Credentials>>,
    pub(super) tokens: TokenCache,
    pub(super) page_size: AtomicUsize,
    /// Leaves the registry alone while it keeps failing.
    pub(super) breaker: Breaker,
}

/// What a request is for (a bounded label for spans and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Tags,
    Manifest,
    Blob,
    Token,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Tags => "tags",
            Kind::Manifest => "manifest",
            Kind::Blob => "blob",
            Kind::Token => "token",
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `host[/path]` with the host normalised (`index.docker.io/x` = `docker.io/x`).
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    match trimmed.split_once('/') {
        Some((host, path)) => format!("{}/{}", normalize_registry(host), path),
        None => normalize_registry(trimmed),
    }
}

/// The HTTP client every settings entry without a `ca_file` uses, built on a thread of its own
/// ahead of [`Client::with_plain_http`]: the build loads and parses the system's root
/// certificates (about 4 ms), which a command can overlap with reading its configuration.
pub struct PlainHttp {
    /// What the client was built with: it is used only by a client with the same options.
    built_with: (String, std::time::Duration, std::time::Duration),
    build: std::thread::JoinHandle<Option<reqwest::Client>>,
}

impl PlainHttp {
    /// Start building the client `options` call for; `None` when no thread can be started
    /// (the client is then built by [`Client::with_plain_http`], as without this).
    pub fn build_in_background(options: &ClientOptions) -> Option<PlainHttp> {
        let builder = http_builder(options);
        let build = std::thread::Builder::new()
            .name("http-setup".to_string())
            // A failed build is left to `Client::with_plain_http`, which reports it.
            .spawn(move || builder.build().ok())
            .ok()?;
        Some(PlainHttp {
            built_with: built_with(options),
            build,
        })
    }

    /// The client, if it was built for `options`.
    fn take(self, options: &ClientOptions) -> Option<reqwest::Client> {
        if self.built_with != built_with(options) {
            return None;
        }
        self.build.join().ok().flatten()
    }
}

/// The options an HTTP client is built with (see [`http_builder`]).
fn built_with(options: &ClientOptions) -> (String, std::time::Duration, std::time::Duration) {
    (
        options.user_agent.clone(),
        options.connect_timeout,
        options.request_timeout,
    )
}

/// An HTTP client builder with the client-wide options; a `ca_file` is added by the caller.
fn http_builder(options: &ClientOptions) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(options.user_agent.clone())
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .redirect(reqwest::redirect::Policy::limited(5))
}

impl Client {
    /// Build a client for these registry settings (validated here: prefixes, limits, CA files).
    pub fn new(
        settings: Vec<RegistrySettings>,
        options: ClientOptions,
    ) -> Result<Self, RegistryError> {
        Self::with_plain_http(settings, options, None)
    }

    /// [`Client::new`], with the HTTP client of the entries without a `ca_file` taken from
    /// `plain` when it was built for these options.
    pub fn with_plain_http(
        settings: Vec<RegistrySettings>,
        options: ClientOptions,
        plain: Option<PlainHttp>,
    ) -> Result<Self, RegistryError> {
        let mut entries = Vec::with_capacity(settings.len());
        // The HTTP client of every entry without a `ca_file` (the fallback's too): one, since
        // they are built alike, and each build loads the system's root certificates.
        let mut plain = plain.and_then(|plain| plain.take(&options));
        for settings in settings {
            entries.push(Self::entry(settings, &options, &mut plain)?);
        }
        let fallback = Self::entry(RegistrySettings::new("*"), &options, &mut plain)?;
        Ok(Client {
            inner: Arc::new(Inner {
                entries,
                fallback,
                created: BoundedCache::new(options.cache_entries),
                platforms: BoundedCache::new(options.cache_entries),
                options,
                registries: Mutex::new(HashMap::new()),
                stats: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// A settings entry, validated, with its HTTP client: its own if it names a `ca_file`,
    /// else `plain` (built by the first entry that needs it).
    fn entry(
        settings: RegistrySettings,
        options: &ClientOptions,
        plain: &mut Option<reqwest::Client>,
    ) -> Result<Entry, RegistryError> {
        let invalid = |detail: String| RegistryError::Settings {
            prefix: settings.prefix.clone(),
            detail,
        };
        let prefix = normalize_prefix(&settings.prefix);
        if prefix.is_empty() {
            return Err(invalid("the prefix is empty".to_string()));
        }
        if settings.max_concurrency == 0 {
            return Err(invalid("max_concurrency must be at least 1".to_string()));
        }
        if let Some(rps) = settings.requests_per_second
            && !(rps.is_finite() && rps > 0.0)
        {
            return Err(invalid(format!(
                "requests_per_second must be a positive number, not {rps}"
            )));
        }
        if settings.ca_file.is_none()
            && let Some(http) = plain
        {
            let http = http.clone();
            return Ok(Entry {
                settings,
                prefix,
                http,
            });
        }
        let mut builder = http_builder(options);
        if let Some(ca_file) = &settings.ca_file {
            let pem = std::fs::read(ca_file)
                .map_err(|e| invalid(format!("cannot read ca_file {}: {e}", ca_file.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                invalid(format!(
                    "ca_file {} holds no valid PEM certificate: {e}",
                    ca_file.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(invalid(format!(
                    "ca_file {} holds no PEM certificate",
                    ca_file.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        if settings.ca_file.is_none() {
            *plain = Some(http.clone());
        }
        Ok(Entry {
            settings,
            prefix,
            http,
        })
    }

    /// A snapshot of the request counters by registry.
    pub fn stats(&self) -> Stats {
        Stats {
            registries: lock(&self.inner.stats).clone(),
        }
    }

    pub(super) fn record(&self, registry: &str, update: impl FnOnce(&mut RegistryStats)) {
        let mut stats = lock(&self.inner.stats);
        update(stats.entry(registry.to_string()).or_default());
    }

    /// The state of the registry serving `image` (created on first use).
    pub(super) fn registry_for(
        &self,
        image: &ImageRef,
    ) -> Result<Arc<RegistryState>, RegistryError> {
        let name = image.name();
        let index = self
            .inner
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                name == e.prefix
                    || (name.starts_with(&e.prefix) && name[e.prefix.len()..].starts_with('/'))
            })
            .max_by_key(|(_, e)| e.prefix.len())
            .map(|(i, _)| i);
        let key = (image.registry.clone(), index);
        let mut registries = lock(&self.inner.registries);
        if let Some(state) = registries.get(&key) {
            return Ok(state.clone());
        }
        let entry = index.map_or(&self.inner.fallback, |i| &self.inner.entries[i]);
        let scheme = if entry.settings.insecure {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{}/", image.api_host())).map_err(|e| {
            RegistryError::Settings {
                prefix: image.registry.clone(),
                detail: format!("invalid registry address: {e}"),
            }
        })?;
        let settings = entry.settings.clone();
        let state = Arc::new(RegistryState {
            name: image.registry.clone(),
            base,
            http: entry.http.clone(),
            permits: Semaphore::new(settings.max_concurrency),
            limiter: RateLimiter::new(settings.requests_per_second),
            scheme: tokio::sync::Mutex::new(None),
            discovery_failed: AtomicBool::new(false),
            credentials: OnceCell::new(),
            tokens: TokenCache::default(),
            page_size: AtomicUsize::new(self.inner.options.page_size.max(1)),
            breaker: Breaker::new(
                self.inner.options.breaker_cooldown,
                self.inner.options.max_breaker_cooldown,
            ),
            settings,
        });
        registries.insert(key, state.clone());
        Ok(state)
    }

    /// Every registry asked so far, and whether it is being left alone now (its last requests
    /// failed for good; see [`ClientOptions::breaker_cooldown`]).
    pub fn given_up(&self) -> BTreeMap<String, bool> {
        let now = Instant::now();
        let mut out: BTreeMap<String, bool> = BTreeMap::new();
        for ((registry, _), state) in lock(&self.inner.registries).iter() {
            *out.entry(registry.clone()).or_default() |= state.breaker.is_open(now);
        }
        out
    }

    /// Every registry asked so far, with its circuit breaker's state (of several entries for
    /// one host, the one given up longest, else the one with the most failures in a row).
    pub fn breakers(&self) -> BTreeMap<String, BreakerStatus> {
        let now = Instant::now();
        let mut out: BTreeMap<String, BreakerStatus> = BTreeMap::new();
        for ((registry, _), state) in lock(&self.inner.registries).iter() {
            let status = state.breaker.status(now);
            let entry = out.entry(registry.clone()).or_default();
            if (status.given_up_for, status.failures) > (entry.given_up_for, entry.failures) {
                *entry = status;
            }
        }
        out
    }

    /// The registry `name` is up (it just sent a webhook): ask it again at once, whatever its
    /// recent failures.
    pub fn note_alive(&self, name: &str) {
        let name = normalize_registry(name);
        for ((registry, _), state) in lock(&self.inner.registries).iter() {
            if *registry == name {
                state.breaker.success();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_prebuilt_http_client_is_used_only_for_the_options_it_was_built_with() {
        let options = ClientOptions::default();
        let built = PlainHttp::build_in_background(&options).unwrap();
        assert!(built.take(&options).is_some());
        let built = PlainHttp::build_in_background(&options).unwrap();
        let other = ClientOptions {
            user_agent: "someone-else/1".to_string(),
            ..ClientOptions::default()
        };
        assert!(built.take(&other).is_none());
        // A client built with a prebuilt one still validates its settings.
        let built = PlainHttp::build_in_background(&options);
        let mut zero = RegistrySettings::new("a.example");
        zero.max_concurrency = 0;
        assert!(Client::with_plain_http(vec![zero], options, built).is_err());
    }

    #[test]
    fn client_is_shareable_across_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Client>();
    }

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalize_prefix("https://index.docker.io/"), "docker.io");
        assert_eq!(normalize_prefix("ghcr.io/acme"), "ghcr.io/acme");
        assert_eq!(normalize_prefix("LOCALHOST:5000"), "localhost:5000");
    }

    #[test]
    fn settings_are_validated() {
        let mut zero = RegistrySettings::new("ghcr.io");
        zero.max_concurrency = 0;
        let err = Client::new(vec![zero], ClientOptions::default()).unwrap_err();
        assert!(err.to_string().contains("ghcr.io"), "{err}");
        let mut rps = RegistrySettings::new("ghcr.io");
        rps.requests_per_second = Some(0.0);
        assert!(Client::new(vec![rps], ClientOptions::default()).is_err());
        let mut ca = RegistrySettings::new("ghcr.io");
        ca.ca_file = Some("/nonexistent/ca.pem".into());
        let err = Client::new(vec![ca], ClientOptions::default()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn longest_prefix_wins() {
        let mut org = RegistrySettings::new("ghcr.io/acme");
        org.max_concurrency = 2;
        let client = Client::new(
            vec![RegistrySettings::new("ghcr.io"), org],
            ClientOptions::default(),
        )
        .unwrap();
        let acme = client
            .registry_for(&ImageRef::parse("ghcr.io/acme/app").unwrap())
            .unwrap();
        assert_eq!(acme.settings.prefix, "ghcr.io/acme");
        let other = client
            .registry_for(&ImageRef::parse("ghcr.io/acmecorp/app").unwrap())
            .unwrap();
        assert_eq!(other.settings.prefix, "ghcr.io");
        let hub = client
            .registry_for(&ImageRef::parse("nginx").unwrap())
            .unwrap();
        assert_eq!(hub.base.as_str(), "https://registry-1.docker.io/");
    }
}
