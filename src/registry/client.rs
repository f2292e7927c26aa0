//! The client: per-registry state (HTTP client, limits, auth scheme, tokens) and the three
//! questions (tags, digest, creation time).
//!
//! Invariant: every HTTP request goes through [`Client::execute`], which applies the registry's
//! rate limiter and concurrency limit, retries transient failures, counts the request and opens
//! its tracing span. Auth lives one level up in [`Client::request`]; the questions above that.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::{OnceCell, Semaphore};
use tracing::Instrument;

use super::auth::{CachedToken, Scheme, TokenCache, parse_challenge, parse_token_response};
use super::cache::BoundedCache;
use super::docker_config::{self, Credentials};
use super::limits::{Breaker, RateLimiter, backoff, parse_retry_after};
use super::manifest::{self, MANIFEST_ACCEPT, Manifest};
use super::{
    ClientOptions, Outcome, RegistryAuth, RegistryError, RegistrySettings, RegistryStats, Secret,
    Stats, TagListBudget,
};
use crate::reference::{ImageRef, is_valid_digest, is_valid_tag, normalize_registry};

/// A shareable registry client (`Clone` is cheap: one `Arc`).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.inner.entries.len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    entries: Vec<Entry>,
    fallback: Entry,
    options: ClientOptions,
    registries: Mutex<HashMap<RegistryKey, Arc<RegistryState>>>,
    created: BoundedCache<String, Option<OffsetDateTime>>,
    /// The canonical platforms a manifest digest has images for (content-addressed).
    platforms: BoundedCache<String, Vec<String>>,
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
struct RegistryState {
    /// Canonical registry name (`docker.io`), for messages and counters.
    name: String,
    base: Url,
    settings: RegistrySettings,
    http: reqwest::Client,
    permits: Semaphore,
    limiter: RateLimiter,
    /// The auth scheme, once learnt. Locked during the very first request so that concurrent
    /// callers don't each pay for a challenge.
    scheme: tokio::sync::Mutex<Option<Scheme>>,
    /// The first request failed before learning the scheme (registry down?).
    discovery_failed: AtomicBool,
    credentials: OnceCell<Option<Credentials>>,
    tokens: TokenCache,
    page_size: AtomicUsize,
    /// Leaves the registry alone while it keeps failing.
    breaker: Breaker,
}

/// What a request is for (a bounded label for spans and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tags,
    Manifest,
    Blob,
    Token,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Tags => "tags",
            Kind::Manifest => "manifest",
            Kind::Blob => "blob",
            Kind::Token => "token",
        }
    }
}

/// One request to send (auth headers already set).
struct Call<'a> {
    method: Method,
    url: &'a Url,
    headers: HeaderMap,
    /// A form body (`application/x-www-form-urlencoded`).
    form: Option<Vec<(&'a str, &'a str)>>,
    kind: Kind,
}

/// A complete response.
struct Fetched {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

enum AttemptError {
    Http(reqwest::Error),
    TooLarge,
}

/// The auth a request carried, to decide what a 401 means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Nothing,
    Basic,
    StaticToken,
    Token(Secret),
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

/// The message of an HTTP error and its causes, without the URL.
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out (limit {}s)", timeout.as_secs_f64());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The TLS error (rustls') behind an HTTP error, if any: walked through the causes, looking
/// inside `io::Error`s too (their `source()` skips the error they wrap, and the connector
/// wraps one `io::Error` in another).
fn tls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = next {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    None
}

/// What to tell the user about a TLS failure that is a configuration mistake (classified by
/// the error's type): a plain-HTTP registry asked over HTTPS, or a server certificate that is
/// marked as a CA (a self-signed certificate made the quick way), typically given as its own
/// `ca_file`. `None`: not one of these.
fn tls_mistake(error: &rustls::Error, ca_file: Option<&std::path::Path>) -> Option<String> {
    match error {
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => Some(
            "the registry answered plain HTTP to a TLS (HTTPS) request; if it serves plain \
             HTTP, set `insecure: true` for it (`--insecure` on the command line)"
                .to_string(),
        ),
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            let file = match ca_file {
                Some(path) => format!(
                    "ca_file {} is most likely the server's own certificate (a self-signed \
                     leaf), not a CA that signed it",
                    path.display()
                ),
                None => "the server's own certificate is a CA certificate".to_string(),
            };
            Some(format!(
                "the registry's certificate is marked as a CA (basicConstraints CA:TRUE, as \
                 `openssl req -x509` makes it), and TLS refuses a CA certificate as a server's \
                 own certificate: {file}; sign the registry's certificate with a CA (CA:FALSE \
                 on the server's certificate) and set ca_file to that CA, or re-create the \
                 self-signed certificate with basicConstraints CA:FALSE"
            ))
        }
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut scratch = Url::parse("http://form.invalid/").unwrap_or_else(|_| unreachable!());
    scratch.query_pairs_mut().extend_pairs(pairs);
    scratch.query().unwrap_or_default().to_string()
}

fn sha256_digest(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

fn outcome_of(status: StatusCode) -> Outcome {
    match status.as_u16() {
        401 | 403 => Outcome::Unauthorized,
        404 => Outcome::NotFound,
        429 => Outcome::RateLimited,
        400..=499 => Outcome::ClientError,
        500..=599 => Outcome::ServerError,
        _ => Outcome::Ok,
    }
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let Some(target) = parts.next() else { continue };
            let target = target.trim();
            let is_next = parts.any(|param| {
                let param = param.trim().replace(' ', "");
                param.eq_ignore_ascii_case("rel=\"next\"") || param.eq_ignore_ascii_case("rel=next")
            });
            if is_next && target.starts_with('<') && target.ends_with('>') {
                return Some(target[1..target.len() - 1].to_string());
            }
        }
    }
    None
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `url` with its `n` query parameter set to `page`.
fn with_page_size(url: &Url, page: usize) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "n")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut next = url.clone();
    next.set_query(None);
    {
        let mut query = next.query_pairs_mut();
        query.append_pair("n", &page.to_string());
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
    }
    next
}

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Client {
    /// Build a client for these registry settings (validated here: prefixes, limits, CA files).
    pub fn new(
        settings: Vec<RegistrySettings>,
        options: ClientOptions,
    ) -> Result<Self, RegistryError> {
        let mut entries = Vec::with_capacity(settings.len());
        for settings in settings {
            entries.push(Self::entry(settings, &options)?);
        }
        let fallback = Self::entry(RegistrySettings::new("*"), &options)?;
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

    fn entry(settings: RegistrySettings, options: &ClientOptions) -> Result<Entry, RegistryError> {
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
        let mut builder = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .redirect(reqwest::redirect::Policy::limited(5));
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

    fn record(&self, registry: &str, update: impl FnOnce(&mut RegistryStats)) {
        let mut stats = lock(&self.inner.stats);
        update(stats.entry(registry.to_string()).or_default());
    }

    /// The state of the registry serving `image` (created on first use).
    fn registry_for(&self, image: &ImageRef) -> Result<Arc<RegistryState>, RegistryError> {
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

    /// Send one request with retries on 5xx, 429, timeouts and connection errors. Any other
    /// status is returned to the caller.
    async fn execute(
        &self,
        reg: &RegistryState,
        repository: &str,
        call: Call<'_>,
    ) -> Result<Fetched, RegistryError> {
        let Call {
            method,
            url,
            headers,
            form,
            kind,
        } = call;
        let options = &self.inner.options;
        let mut attempt: u32 = 0;
        loop {
            // Checked before every attempt: a retry stops as soon as the registry is given up.
            if let Err(open) = reg.breaker.check(Instant::now()) {
                return Err(RegistryError::Unavailable {
                    registry: reg.name.clone(),
                    repository: repository.to_string(),
                    failures: open.failures,
                    last_error: open.last_error,
                    retry_in: open.remaining,
                });
            }
            reg.limiter.acquire().await;
            let permit = reg.permits.acquire().await;
            let span = tracing::debug_span!(
                "registry_request",
                registry = %reg.name,
                repository = %repository,
                kind = kind.as_str(),
                method = %method,
                attempt,
                status = tracing::field::Empty,
                duration_ms = tracing::field::Empty,
            );
            let started = Instant::now();
            let result = async {
                let mut request = reg
                    .http
                    .request(method.clone(), url.clone())
                    .headers(headers.clone());
                if let Some(form) = &form {
                    request = request
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(form_body(form));
                }
                let mut response = request.send().await.map_err(AttemptError::Http)?;
                let status = response.status();
                let headers = response.headers().clone();
                let mut body = Vec::new();
                if method != Method::HEAD {
                    while let Some(chunk) = response.chunk().await.map_err(AttemptError::Http)? {
                        if body.len() + chunk.len() > options.max_body_bytes {
                            return Err(AttemptError::TooLarge);
                        }
                        body.extend_from_slice(&chunk);
                    }
                }
                Ok(Fetched {
                    status,
                    headers,
                    body,
                })
            }
            .instrument(span.clone())
            .await;
            drop(permit);
            let elapsed = started.elapsed();
            let outcome = match &result {
                Ok(fetched) => outcome_of(fetched.status),
                Err(AttemptError::TooLarge) => Outcome::Ok,
                Err(AttemptError::Http(_)) => Outcome::ConnectionError,
            };
            if let Ok(fetched) = &result {
                span.record("status", fetched.status.as_u16());
            }
            span.record("duration_ms", elapsed.as_millis() as u64);
            span.in_scope(|| tracing::debug!(outcome = outcome.as_str(), "registry request"));
            self.record(&reg.name, |stats| {
                stats.requests += 1;
                if attempt > 0 {
                    stats.retries += 1;
                }
                match kind {
                    Kind::Token => stats.token_requests += 1,
                    Kind::Tags => stats.tag_pages += 1,
                    Kind::Manifest | Kind::Blob => {}
                }
                *stats.by_outcome.entry(outcome).or_default() += 1;
            });
            let exhausted = attempt >= options.retries;
            let delay = match result {
                Ok(fetched) if fetched.status == StatusCode::TOO_MANY_REQUESTS => {
                    // Rate limited, but up.
                    reg.breaker.success();
                    let retry_after = fetched
                        .headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc()));
                    if exhausted {
                        return Err(RegistryError::RateLimited {
                            registry: reg.name.clone(),
                            repository: repository.to_string(),
                            retry_after,
                        });
                    }
                    match retry_after {
                        Some(wait) => wait.min(options.max_retry_after),
                        None => backoff(attempt, options.initial_backoff, options.max_backoff),
                    }
                }
                Ok(fetched) if fetched.status.is_server_error() => {
                    if exhausted {
                        self.give_up(reg, &format!("HTTP {}", fetched.status));
                        return Err(RegistryError::BadResponse {
                            registry: reg.name.clone(),
                            repository: repository.to_string(),
                            detail: format!(
                                "HTTP {} on {} after {} attempts; the registry is failing, retry later",
                                fetched.status,
                                kind.as_str(),
                                attempt + 1
                            ),
                        });
                    }
                    backoff(attempt, options.initial_backoff, options.max_backoff)
                }
                Ok(fetched)
                    if fetched.status == StatusCode::BAD_REQUEST
                        && url.scheme() == "http"
                        && serde_json::from_slice::<serde_json::Value>(&fetched.body).is_err()
                        && self.speaks_tls(reg).await =>
                {
                    return Err(Self::tls_registry_over_http(reg, repository));
                }
                Ok(fetched) => {
                    reg.breaker.success();
                    return Ok(fetched);
                }
                Err(AttemptError::TooLarge) => {
                    return Err(RegistryError::BadResponse {
                        registry: reg.name.clone(),
                        repository: repository.to_string(),
                        detail: format!(
                            "{} response larger than {} bytes",
                            kind.as_str(),
                            options.max_body_bytes
                        ),
                    });
                }
                Err(AttemptError::Http(error)) => {
                    if let Some(mistake) = tls_error(&error)
                        .and_then(|tls| tls_mistake(tls, reg.settings.ca_file.as_deref()))
                    {
                        // A configuration mistake: the same answer every time, no retry.
                        return Err(RegistryError::Unreachable {
                            registry: reg.name.clone(),
                            repository: repository.to_string(),
                            detail: format!("{mistake} (after 1 attempt)"),
                        });
                    }
                    if url.scheme() == "http"
                        && !error.is_timeout()
                        && attempt == 0
                        && self.speaks_tls(reg).await
                    {
                        return Err(Self::tls_registry_over_http(reg, repository));
                    }
                    let detail = describe(&error, options.request_timeout);
                    // A refused certificate will be refused again: not worth a retry.
                    let transient = (error.is_timeout()
                        || error.is_connect()
                        || error.is_request()
                        || error.is_body()
                        || error.is_decode())
                        && !detail.to_lowercase().contains("certificate");
                    if exhausted || !transient {
                        if transient {
                            self.give_up(reg, &detail);
                        }
                        return Err(RegistryError::Unreachable {
                            registry: reg.name.clone(),
                            repository: repository.to_string(),
                            detail: format!(
                                "{detail} after {} attempt{}{}",
                                attempt + 1,
                                if attempt == 0 { "" } else { "s" },
                                if transient {
                                    ""
                                } else if detail.to_lowercase().contains("certificate") {
                                    "; if the registry uses a private CA, set its ca_file"
                                } else {
                                    ""
                                }
                            ),
                        });
                    }
                    backoff(attempt, options.initial_backoff, options.max_backoff)
                }
            };
            tracing::warn!(
                registry = %reg.name,
                repository = %repository,
                kind = kind.as_str(),
                attempt = attempt + 1,
                delay_ms = delay.as_millis() as u64,
                "registry request failed, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Whether `reg` (asked over plain HTTP) speaks TLS on its port: an HTTPS request gets an
    /// answer, or fails on the certificate (so the handshake got that far). Asked only after a
    /// plain-HTTP request failed in a way a TLS server causes (a non-JSON 400, a dropped
    /// connection).
    async fn speaks_tls(&self, reg: &RegistryState) -> bool {
        let mut url = reg.base.clone();
        if url.set_scheme("https").is_err() {
            return false;
        }
        let url = url.join("v2/").unwrap_or(url);
        match reg
            .http
            .get(url)
            .timeout(self.inner.options.connect_timeout)
            .send()
            .await
        {
            Ok(_) => true,
            Err(error) => matches!(
                tls_error(&error),
                Some(rustls::Error::InvalidCertificate(_) | rustls::Error::AlertReceived(_))
            ),
        }
    }

    fn tls_registry_over_http(reg: &RegistryState, repository: &str) -> RegistryError {
        RegistryError::Unreachable {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail: "the registry answered with TLS (HTTPS), but `insecure: true` \
                     (`--insecure` on the command line) has imagebump ask it over plain HTTP: \
                     remove insecure, and set ca_file (`--ca-file`) if its certificate is \
                     signed by a private CA"
                .to_string(),
        }
    }

    /// A request to `reg` failed for good: tell its breaker, and say so when it opens.
    fn give_up(&self, reg: &RegistryState, error: &str) {
        if let Some(cooldown) = reg.breaker.failure(Instant::now(), error) {
            tracing::warn!(
                registry = %reg.name,
                cooldown_s = cooldown.as_secs(),
                last_error = error,
                "registry keeps failing; not asking it again until the cooldown ends or it sends a webhook"
            );
        }
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

    async fn credentials(&self, reg: &RegistryState) -> Result<Option<Credentials>, RegistryError> {
        reg.credentials
            .get_or_try_init(|| async {
                match &reg.settings.auth {
                    RegistryAuth::Anonymous => Ok(None),
                    RegistryAuth::Basic { username, password } => Ok(Some(Credentials::Basic {
                        username: username.clone(),
                        password: password.clone(),
                    })),
                    RegistryAuth::Token(token) => Ok(Some(Credentials::Bearer(token.clone()))),
                    RegistryAuth::DockerConfig(path) => docker_config::credentials(path, &reg.name)
                        .await
                        .map_err(|detail| RegistryError::Credentials {
                            registry: reg.name.clone(),
                            detail,
                        }),
                }
            })
            .await
            .cloned()
    }

    /// A bearer token for `scope`, from the cache or the realm. `stale` is a token the registry
    /// just rejected: it is not reused.
    #[allow(clippy::too_many_arguments)]
    async fn bearer_token(
        &self,
        reg: &RegistryState,
        repository: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
        stale: Option<&Secret>,
    ) -> Result<Secret, RegistryError> {
        let key = format!("{realm}|{}|{scope}", service.unwrap_or(""));
        let slot = reg.tokens.slot(&key);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref()
            && token.is_fresh(Instant::now())
            && Some(&token.token) != stale
        {
            return Ok(token.token.clone());
        }
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail,
        };
        let mut url = Url::parse(realm)
            .map_err(|_| unauthorized(format!("the token realm {realm:?} is not a URL")))?;
        let mut headers = HeaderMap::new();
        let (method, form) = match credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose()),
                    ("client_id", "imagebump"),
                    ("scope", scope),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                (Method::POST, Some(form))
            }
            other => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    query.append_pair("scope", scope);
                }
                if let Some(Credentials::Basic { username, password }) = other {
                    headers.insert(AUTHORIZATION, basic_header(reg, username, password)?);
                }
                (Method::GET, None)
            }
        };
        let fetched_at = Instant::now();
        let fetched = self
            .execute(
                reg,
                repository,
                Call {
                    method,
                    url: &url,
                    headers,
                    form,
                    kind: Kind::Token,
                },
            )
            .await?;
        match fetched.status {
            status if status.is_success() => {
                let (token, lifetime) = parse_token_response(&fetched.body).map_err(|detail| {
                    RegistryError::BadResponse {
                        registry: reg.name.clone(),
                        repository: repository.to_string(),
                        detail,
                    }
                })?;
                *cached = Some(CachedToken::new(token.clone(), lifetime, fetched_at));
                Ok(token)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(unauthorized(if credentials.is_some() {
                    format!(
                        "the token service rejected the credentials (HTTP {})",
                        fetched.status.as_u16()
                    )
                } else {
                    format!(
                        "the token service refused anonymous access (HTTP {}); configure credentials",
                        fetched.status.as_u16()
                    )
                }))
            }
            status => Err(RegistryError::BadResponse {
                registry: reg.name.clone(),
                repository: repository.to_string(),
                detail: format!("the token service answered HTTP {status}"),
            }),
        }
    }

    /// An authenticated request: the scheme learnt from the registry's challenge is applied up
    /// front; a 401 learns it (first request) or refreshes a rejected token once.
    async fn request(
        &self,
        reg: &RegistryState,
        repository: &str,
        method: Method,
        url: &Url,
        accept: &str,
        kind: Kind,
    ) -> Result<Fetched, RegistryError> {
        let credentials = self.credentials(reg).await?;
        let mut scope = format!("repository:{repository}:pull");
        let mut refreshed = false;
        let mut stale: Option<Secret> = None;
        let mut challenges = 0;
        loop {
            let mut discovery = None;
            let known = {
                let guard = reg.scheme.lock().await;
                let known = guard.clone();
                // Learn the scheme with one request while the others wait, unless that
                // already failed: then nobody waits for a registry that may be down.
                if known.is_none() && !reg.discovery_failed.load(Ordering::Relaxed) {
                    discovery = Some(guard);
                }
                known
            };
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(accept) {
                headers.insert(ACCEPT, value);
            }
            let sent = match (&known, &credentials) {
                (_, Some(Credentials::Bearer(token))) => {
                    headers.insert(AUTHORIZATION, bearer_header(reg, token)?);
                    Sent::StaticToken
                }
                (Some(Scheme::Bearer { realm, service }), _) => {
                    let token = self
                        .bearer_token(
                            reg,
                            repository,
                            realm,
                            service.as_deref(),
                            &scope,
                            credentials.as_ref(),
                            stale.as_ref(),
                        )
                        .await?;
                    headers.insert(AUTHORIZATION, bearer_header(reg, &token)?);
                    Sent::Token(token)
                }
                (Some(Scheme::Basic), Some(Credentials::Basic { username, password })) => {
                    headers.insert(AUTHORIZATION, basic_header(reg, username, password)?);
                    Sent::Basic
                }
                _ => Sent::Nothing,
            };
            let fetched = self
                .execute(
                    reg,
                    repository,
                    Call {
                        method: method.clone(),
                        url,
                        headers,
                        form: None,
                        kind,
                    },
                )
                .await;
            let fetched = match fetched {
                Ok(fetched) => fetched,
                Err(error) => {
                    if discovery.is_some() {
                        reg.discovery_failed.store(true, Ordering::Relaxed);
                    }
                    return Err(error);
                }
            };
            let unauthorized = |detail: &str| RegistryError::Unauthorized {
                registry: reg.name.clone(),
                repository: repository.to_string(),
                detail: detail.to_string(),
            };
            if fetched.status != StatusCode::UNAUTHORIZED {
                // No challenge: the registry takes what we sent (nothing, or a static token).
                match discovery {
                    Some(mut guard) => *guard = Some(Scheme::Anonymous),
                    None if known.is_none() => {
                        let mut guard = reg.scheme.lock().await;
                        if guard.is_none() {
                            *guard = Some(Scheme::Anonymous);
                        }
                    }
                    None => {}
                }
                if fetched.status == StatusCode::FORBIDDEN {
                    return Err(unauthorized(
                        "access denied (HTTP 403): the credentials lack pull access",
                    ));
                }
                return Ok(fetched);
            }
            challenges += 1;
            let challenge = fetched
                .headers
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            let Some(challenge) = challenge else {
                return Err(unauthorized(
                    "the registry answered 401 without a usable WWW-Authenticate challenge",
                ));
            };
            let learnt = challenge.scheme.clone();
            match discovery {
                Some(mut guard) => *guard = Some(learnt.clone()),
                None => *reg.scheme.lock().await = Some(learnt.clone()),
            }
            if challenges > 3 {
                return Err(unauthorized("the registry keeps asking for credentials"));
            }
            match (learnt, sent) {
                (Scheme::Bearer { .. }, Sent::Token(token)) => {
                    if refreshed {
                        return Err(unauthorized("the registry rejected a fresh token"));
                    }
                    refreshed = true;
                    stale = Some(token);
                    if let Some(asked) = challenge.scope {
                        scope = asked;
                    }
                }
                (Scheme::Bearer { .. }, Sent::Nothing | Sent::Basic) => {
                    if let Some(asked) = challenge.scope {
                        scope = asked;
                    }
                }
                (Scheme::Basic, Sent::Nothing)
                    if matches!(credentials, Some(Credentials::Basic { .. })) => {}
                (Scheme::Basic, Sent::Nothing) => {
                    return Err(unauthorized(
                        "the registry asks for a username and password and none is configured",
                    ));
                }
                (Scheme::Basic, Sent::Basic) => {
                    return Err(unauthorized(
                        "the registry rejected the username or password",
                    ));
                }
                (_, Sent::StaticToken) => {
                    return Err(unauthorized("the registry rejected the configured token"));
                }
                (Scheme::Anonymous, _) | (Scheme::Basic, Sent::Token(_)) => {
                    return Err(unauthorized("unexpected authentication challenge"));
                }
            }
        }
    }

    /// Every tag of `image`'s repository, in the registry's order, each once; tags that are not
    /// valid OCI tags are dropped. Follows `Link` pages; halves the page size when the registry
    /// answers 400 to it (and remembers the size that works).
    /// The whole listing is bounded by the registry's [`TagListBudget`] (pages, tags, bytes,
    /// time): past a cap it fails naming the cap, never answering from a partial list.
    pub async fn list_tags(&self, image: &ImageRef) -> Result<Vec<String>, RegistryError> {
        let reg = self.registry_for(image)?;
        let budget = reg.settings.tag_list;
        match tokio::time::timeout(budget.timeout, self.list_tags_within(&reg, image, budget)).await
        {
            Ok(result) => result,
            Err(_) => Err(RegistryError::TagListTooLarge {
                registry: reg.name.clone(),
                repository: image.repository.clone(),
                cap: format!("{}s", budget.timeout.as_secs_f64()),
                key: "timeout",
            }),
        }
    }

    async fn list_tags_within(
        &self,
        reg: &Arc<RegistryState>,
        image: &ImageRef,
        budget: TagListBudget,
    ) -> Result<Vec<String>, RegistryError> {
        let reg = Arc::clone(reg);
        let repository = image.repository.as_str();
        let too_large = |cap: String, key: &'static str| RegistryError::TagListTooLarge {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            cap,
            key,
        };
        let mut bytes = 0usize;
        let mut pages = 0usize;
        let bad = |detail: String| RegistryError::BadResponse {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail,
        };
        let first = reg
            .base
            .join(&format!("v2/{repository}/tags/list"))
            .map_err(|e| bad(format!("cannot build the tags URL: {e}")))?;
        let mut url = with_page_size(&first, reg.page_size.load(Ordering::Relaxed));
        let mut tags = Vec::new();
        let mut seen = HashSet::new();
        let mut visited = HashSet::new();
        let mut dropped = 0usize;
        let options = &self.inner.options;
        // Attempts of the current page that answered 200 with a body that does not decode.
        let mut undecodable = 0u32;
        loop {
            if pages >= budget.max_pages {
                return Err(too_large(
                    format!("{} pages", budget.max_pages),
                    "max_pages",
                ));
            }
            if !visited.insert(url.to_string()) {
                return Err(bad(format!(
                    "tag list pagination does not end (page {url} again)"
                )));
            }
            let fetched = self
                .request(
                    &reg,
                    repository,
                    Method::GET,
                    &url,
                    "application/json",
                    Kind::Tags,
                )
                .await?;
            match fetched.status {
                StatusCode::OK => {}
                StatusCode::BAD_REQUEST => {
                    let asked = url
                        .query_pairs()
                        .find(|(k, _)| k == "n")
                        .and_then(|(_, v)| v.parse::<usize>().ok());
                    match asked {
                        Some(n) if n > 1 => {
                            let smaller = n / 2;
                            tracing::info!(
                                registry = %reg.name,
                                page_size = smaller,
                                "registry refused the tags page size, halving it"
                            );
                            reg.page_size.store(smaller, Ordering::Relaxed);
                            visited.remove(url.as_str());
                            url = with_page_size(&url, smaller);
                            continue;
                        }
                        _ => return Err(bad("the tags list answered HTTP 400".to_string())),
                    }
                }
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound {
                        registry: reg.name.clone(),
                        repository: repository.to_string(),
                        what: "repository".to_string(),
                    });
                }
                status => return Err(bad(format!("the tags list answered HTTP {status}"))),
            }
            pages += 1;
            bytes = bytes.saturating_add(fetched.body.len());
            if bytes > budget.max_bytes {
                return Err(too_large(
                    format!("{} bytes", budget.max_bytes),
                    "max_bytes",
                ));
            }
            // A 200 that does not decode (cut short by a flaky proxy, garbled) is retried like a
            // 5xx, a bounded number of times; the pages read so far are never an answer.
            let page: TagList = match serde_json::from_slice(&fetched.body) {
                Ok(page) => page,
                Err(e) => {
                    undecodable += 1;
                    if undecodable > options.retries {
                        let detail = format!(
                            "the tags list is not valid JSON after {undecodable} attempts ({e}); the registry or a proxy in front of it sends broken responses"
                        );
                        self.give_up(&reg, &detail);
                        return Err(bad(detail));
                    }
                    let delay = backoff(
                        undecodable - 1,
                        options.initial_backoff,
                        options.max_backoff,
                    );
                    tracing::warn!(
                        registry = %reg.name,
                        repository = %repository,
                        attempt = undecodable,
                        delay_ms = delay.as_millis() as u64,
                        error = %e,
                        "the tags list page is not valid JSON, retrying"
                    );
                    self.record(&reg.name, |stats| stats.retries += 1);
                    tokio::time::sleep(delay).await;
                    visited.remove(url.as_str());
                    continue;
                }
            };
            undecodable = 0;
            let page_tags = page.tags.unwrap_or_default();
            if tags.len() + dropped + page_tags.len() > budget.max_tags {
                return Err(too_large(format!("{} tags", budget.max_tags), "max_tags"));
            }
            for tag in page_tags {
                if !is_valid_tag(&tag) {
                    dropped += 1;
                } else if seen.insert(tag.clone()) {
                    tags.push(tag);
                }
            }
            let Some(next) = next_link(&fetched.headers) else {
                break;
            };
            let next = url
                .join(&next)
                .map_err(|e| bad(format!("invalid Link header {next:?}: {e}")))?;
            if !same_origin(&next, &reg.base) {
                return Err(bad(format!(
                    "the next tags page is on another host ({}), not followed",
                    next.host_str().unwrap_or("?")
                )));
            }
            url = next;
        }
        if dropped > 0 {
            tracing::warn!(
                registry = %reg.name,
                repository = %repository,
                dropped,
                "dropped tags that are not valid OCI tags"
            );
        }
        Ok(tags)
    }

    /// The digest `tag` points at: `HEAD` and `Docker-Content-Digest`, else `GET` and the
    /// sha256 of the body.
    pub async fn digest(&self, image: &ImageRef, tag: &str) -> Result<String, RegistryError> {
        let reg = self.registry_for(image)?;
        let repository = image.repository.as_str();
        if !is_valid_tag(tag) && !is_valid_digest(tag) {
            return Err(RegistryError::NotFound {
                registry: reg.name.clone(),
                repository: repository.to_string(),
                what: format!("tag {tag:?} (not a valid OCI tag)"),
            });
        }
        let url = self.manifest_url(&reg, repository, tag)?;
        let head = self
            .request(
                &reg,
                repository,
                Method::HEAD,
                &url,
                MANIFEST_ACCEPT,
                Kind::Manifest,
            )
            .await?;
        if head.status == StatusCode::NOT_FOUND {
            return Err(not_found(&reg, repository, tag));
        }
        if head.status.is_success()
            && let Some(digest) = header_digest(&head.headers)
        {
            return Ok(digest);
        }
        let (_, digest) = self.get_manifest(&reg, repository, tag).await?;
        Ok(digest)
    }

    fn manifest_url(
        &self,
        reg: &RegistryState,
        repository: &str,
        reference: &str,
    ) -> Result<Url, RegistryError> {
        reg.base
            .join(&format!("v2/{repository}/manifests/{reference}"))
            .map_err(|e| RegistryError::BadResponse {
                registry: reg.name.clone(),
                repository: repository.to_string(),
                detail: format!("cannot build the manifest URL: {e}"),
            })
    }

    /// GET a manifest: its parsed body and its digest.
    async fn get_manifest(
        &self,
        reg: &RegistryState,
        repository: &str,
        reference: &str,
    ) -> Result<(Manifest, String), RegistryError> {
        let url = self.manifest_url(reg, repository, reference)?;
        let fetched = self
            .request(
                reg,
                repository,
                Method::GET,
                &url,
                MANIFEST_ACCEPT,
                Kind::Manifest,
            )
            .await?;
        let bad = |detail: String| RegistryError::BadResponse {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail,
        };
        match fetched.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(not_found(reg, repository, reference)),
            status => {
                return Err(bad(format!("manifest {reference} answered HTTP {status}")));
            }
        }
        let computed = sha256_digest(&fetched.body);
        if is_valid_digest(reference) && reference.starts_with("sha256:") && reference != computed {
            return Err(bad(format!(
                "manifest {reference} has content with digest {computed}"
            )));
        }
        let digest = match header_digest(&fetched.headers) {
            Some(header) if !header.starts_with("sha256:") => header,
            _ => computed,
        };
        let manifest = Manifest::parse(&fetched.body)
            .map_err(|e| bad(format!("manifest {reference}: {e}")))?;
        Ok((manifest, digest))
    }

    /// When the image behind `tag_or_digest` was built, for this registry's platform: the
    /// config blob's `created`, else the `org.opencontainers.image.created` annotation.
    /// Cached by digest for good, so an unchanged tag costs one `HEAD`.
    pub async fn created(
        &self,
        image: &ImageRef,
        tag_or_digest: &str,
    ) -> Result<Option<OffsetDateTime>, RegistryError> {
        let reg = self.registry_for(image)?;
        let repository = image.repository.as_str();
        let digest = if is_valid_digest(tag_or_digest) {
            tag_or_digest.to_string()
        } else {
            self.digest(image, tag_or_digest).await?
        };
        let platform = reg.settings.platform.to_string();
        let key = format!("{platform} {digest}");
        if let Some(created) = self.inner.created.get(&key) {
            return Ok(created);
        }
        let (manifest, _) = self.get_manifest(&reg, repository, &digest).await?;
        let created = match manifest {
            Manifest::Image { ref config, .. } => {
                let from_config = self
                    .config_created(&reg, repository, &config.digest)
                    .await?;
                from_config.or_else(|| manifest.created_annotation())
            }
            Manifest::Index { ref manifests, .. } => {
                let child = manifest::select_platform(manifests, &reg.settings.platform)
                    .ok_or_else(|| RegistryError::NotFound {
                        registry: reg.name.clone(),
                        repository: repository.to_string(),
                        what: format!("platform {platform} in {tag_or_digest}"),
                    })?;
                let child_key = format!("{platform} {}", child.digest);
                let from_child = match self.inner.created.get(&child_key) {
                    Some(created) => created,
                    None => {
                        let (child_manifest, _) =
                            self.get_manifest(&reg, repository, &child.digest).await?;
                        let Manifest::Image { ref config, .. } = child_manifest else {
                            return Err(RegistryError::BadResponse {
                                registry: reg.name.clone(),
                                repository: repository.to_string(),
                                detail: format!(
                                    "the {platform} entry of {tag_or_digest} is an index, not an image"
                                ),
                            });
                        };
                        let created = self
                            .config_created(&reg, repository, &config.digest)
                            .await?
                            .or_else(|| child_manifest.created_annotation());
                        self.inner.created.insert(child_key, created);
                        created
                    }
                };
                from_child.or_else(|| manifest.created_annotation())
            }
        };
        self.inner.created.insert(key, created);
        Ok(created)
    }

    /// The platforms (canonical `os/arch[/variant]`, see
    /// [`manifest::canonical_platform`]) the manifest `digest` has images for: an index's
    /// entries, or the platform an image's config states. One manifest request (plus the config
    /// blob for a single image), cached by digest for good.
    pub async fn platforms(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let reg = self.registry_for(image)?;
        let repository = image.repository.as_str();
        if let Some(platforms) = self.inner.platforms.get(&digest.to_string()) {
            return Ok(platforms);
        }
        let (manifest, _) = self.get_manifest(&reg, repository, digest).await?;
        let platforms = match manifest {
            Manifest::Index { ref manifests, .. } => manifest::index_platforms(manifests),
            Manifest::Image { ref config, .. } => {
                let body = self.config_blob(&reg, repository, &config.digest).await?;
                manifest::config_platform(&body)
                    .map_err(|detail| RegistryError::BadResponse {
                        registry: reg.name.clone(),
                        repository: repository.to_string(),
                        detail,
                    })?
                    .into_iter()
                    .collect()
            }
        };
        self.inner
            .platforms
            .insert(digest.to_string(), platforms.clone());
        Ok(platforms)
    }

    async fn config_created(
        &self,
        reg: &RegistryState,
        repository: &str,
        digest: &str,
    ) -> Result<Option<OffsetDateTime>, RegistryError> {
        let body = self.config_blob(reg, repository, digest).await?;
        manifest::config_created(&body).map_err(|detail| RegistryError::BadResponse {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail,
        })
    }

    /// An image config blob, its digest checked.
    async fn config_blob(
        &self,
        reg: &RegistryState,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let bad = |detail: String| RegistryError::BadResponse {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail,
        };
        if !is_valid_digest(digest) {
            return Err(bad(format!("invalid config digest {digest:?}")));
        }
        let url = reg
            .base
            .join(&format!("v2/{repository}/blobs/{digest}"))
            .map_err(|e| bad(format!("cannot build the blob URL: {e}")))?;
        let fetched = self
            .request(reg, repository, Method::GET, &url, "*/*", Kind::Blob)
            .await?;
        match fetched.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    registry: reg.name.clone(),
                    repository: repository.to_string(),
                    what: format!("config blob {digest}"),
                });
            }
            status => return Err(bad(format!("config blob {digest} answered HTTP {status}"))),
        }
        if digest.starts_with("sha256:") && sha256_digest(&fetched.body) != digest {
            return Err(bad(format!(
                "config blob {digest} has content with another digest"
            )));
        }
        Ok(fetched.body)
    }
}

fn not_found(reg: &RegistryState, repository: &str, reference: &str) -> RegistryError {
    RegistryError::NotFound {
        registry: reg.name.clone(),
        repository: repository.to_string(),
        what: if is_valid_digest(reference) {
            format!("manifest {reference}")
        } else {
            format!("tag {reference}")
        },
    }
}

fn header_digest(headers: &HeaderMap) -> Option<String> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|d| is_valid_digest(d))
        .map(str::to_string)
}

fn basic_header(
    reg: &RegistryState,
    username: &str,
    password: &Secret,
) -> Result<HeaderValue, RegistryError> {
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{username}:{}", password.expose()));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
        RegistryError::Credentials {
            registry: reg.name.clone(),
            detail: "the username cannot be sent in an HTTP header".to_string(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn bearer_header(reg: &RegistryState, token: &Secret) -> Result<HeaderValue, RegistryError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        RegistryError::Credentials {
            registry: reg.name.clone(),
            detail: "the token contains characters not allowed in an HTTP header".to_string(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(link: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::LINK, HeaderValue::from_str(link).unwrap());
        headers
    }

    #[test]
    fn client_is_shareable_across_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Client>();
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(&headers(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#)).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(&headers(
                r#"<https://r/v2/a/tags/list?last=b>; rel="prev", <https://r/x>; rel=next"#
            ))
            .as_deref(),
            Some("https://r/x")
        );
        assert_eq!(next_link(&headers(r#"</x>; rel="prev""#)), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn page_size_rewrite_keeps_other_params() {
        let url = Url::parse("https://r/v2/a/tags/list?n=100&last=v1").unwrap();
        assert_eq!(
            with_page_size(&url, 50).as_str(),
            "https://r/v2/a/tags/list?n=50&last=v1"
        );
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
