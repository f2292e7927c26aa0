//! Transport: one HTTP exchange with a registry, repeated while the retry decision says so.
//!
//! Invariant: every HTTP request goes through [`Client::execute`], which checks the registry's
//! breaker before each attempt, holds its rate limiter and concurrency permit for that attempt
//! only, counts the attempt and opens its tracing span. Whether to retry is decided by one pure
//! function, [`decide`], over what the attempt ended with ([`Ended`]); a transport error is
//! classified by the types in its source chain ([`Failure::of`]), never by its text. Only a
//! request that failed for good after retrying a transient failure counts against the breaker.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use time::OffsetDateTime;
use tracing::Instrument;

use super::client::{Client, Kind, RegistryState};
use super::limits::{backoff, parse_retry_after};
use super::{ClientOptions, Outcome, RegistryError};

/// One request to send (auth headers already set).
pub(super) struct Call<'a> {
    pub(super) method: Method,
    pub(super) url: &'a Url,
    pub(super) headers: HeaderMap,
    /// A form body (`application/x-www-form-urlencoded`).
    pub(super) form: Option<Vec<(&'a str, &'a str)>>,
    pub(super) kind: Kind,
}

/// A complete response.
pub(super) struct Fetched {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

/// Why one attempt got no complete response.
enum AttemptError {
    Http(reqwest::Error),
    /// The body went past [`ClientOptions::max_body_bytes`].
    TooLarge,
}

/// A transport error (no HTTP answer), classified by the types in its source chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// No answer in time (reqwest's timeout, or an I/O `TimedOut`).
    Timeout,
    /// The connection could not be opened, or broke while the request or the response was on
    /// the way (refused, reset, closed early, a body cut short).
    Connection,
    /// TLS refused the certificate (rustls' `InvalidCertificate`, no certificate, a
    /// certificate alert): the same answer every time.
    Certificate,
    /// Another TLS failure during the handshake.
    Tls,
    /// Anything else (a redirect loop, a request that cannot be built).
    Other,
}

impl Failure {
    /// Classifies `error` by walking its causes: a rustls error decides first (a certificate
    /// problem or another TLS failure), then reqwest's own flags, then an I/O error's kind.
    pub(super) fn of(error: &reqwest::Error) -> Failure {
        if let Some(tls) = tls_error(error) {
            return if is_certificate_error(tls) {
                Failure::Certificate
            } else {
                Failure::Tls
            };
        }
        if error.is_timeout() {
            return Failure::Timeout;
        }
        if error.is_connect() || error.is_request() || error.is_body() || error.is_decode() {
            return Failure::Connection;
        }
        match io_error(error).map(std::io::Error::kind) {
            Some(std::io::ErrorKind::TimedOut) => Failure::Timeout,
            Some(
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::NotConnected
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof,
            ) => Failure::Connection,
            _ => Failure::Other,
        }
    }

    /// Can the same request succeed a moment later?
    pub(super) fn is_transient(self) -> bool {
        matches!(self, Failure::Timeout | Failure::Connection | Failure::Tls)
    }
}

/// Is this rustls error about a certificate (ours or the server's)?
fn is_certificate_error(error: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    match error {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::InvalidCertRevocationList(_)
        | rustls::Error::NoCertificatesPresented => true,
        rustls::Error::AlertReceived(alert) => matches!(
            alert,
            A::NoCertificate
                | A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::CertificateUnobtainable
                | A::BadCertificateStatusResponse
                | A::BadCertificateHashValue
                | A::CertificateRequired
        ),
        _ => false,
    }
}

/// The causes of `error`, itself first. An `io::Error`'s `source()` skips the error it wraps
/// (and the connector wraps one `io::Error` in another), so the walk looks inside it instead.
fn causes<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |cause| {
        match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        }
    })
}

/// The TLS error (rustls') behind an HTTP error, if any.
fn tls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    causes(error).find_map(|cause| cause.downcast_ref::<rustls::Error>())
}

/// The innermost I/O error behind an HTTP error, if any.
fn io_error(error: &reqwest::Error) -> Option<&std::io::Error> {
    causes(error)
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .last()
}

/// What one attempt ended with, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// An HTTP answer; `retry_after` is the `Retry-After` of a 429.
    Answer {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// The body went past the size cap.
    TooLarge,
    /// No answer.
    Failed(Failure),
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Hand the response to the caller.
    Deliver,
    /// Send the request again after this delay.
    Retry(Duration),
    /// Stop with an error.
    Stop(Stop),
}

/// Why a request stops without a response for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// 429 on the last attempt.
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// 5xx on the last attempt: the request failed for good.
    ServerError(StatusCode),
    TooLarge,
    /// No answer. `for_good`: a transient failure on the last attempt (it counts against the
    /// breaker); otherwise a failure that would repeat, stopped at once.
    Unreachable {
        failure: Failure,
        for_good: bool,
    },
}

/// The retry decision: retry a 429 (after its `Retry-After`, capped), a 5xx and a transient
/// transport failure until `options.retries` retries are spent; everything else ends the
/// request at once. `attempt` counts from 0.
pub(super) fn decide(ended: Ended, attempt: u32, options: &ClientOptions) -> Verdict {
    let exhausted = attempt >= options.retries;
    let backoff = || backoff(attempt, options.initial_backoff, options.max_backoff);
    match ended {
        Ended::Answer {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after,
        } => {
            if exhausted {
                return Verdict::Stop(Stop::RateLimited { retry_after });
            }
            Verdict::Retry(match retry_after {
                Some(wait) => wait.min(options.max_retry_after),
                None => backoff(),
            })
        }
        Ended::Answer { status, .. } if status.is_server_error() => {
            if exhausted {
                Verdict::Stop(Stop::ServerError(status))
            } else {
                Verdict::Retry(backoff())
            }
        }
        Ended::Answer { .. } => Verdict::Deliver,
        Ended::TooLarge => Verdict::Stop(Stop::TooLarge),
        Ended::Failed(failure) if !failure.is_transient() => Verdict::Stop(Stop::Unreachable {
            failure,
            for_good: false,
        }),
        Ended::Failed(failure) if exhausted => Verdict::Stop(Stop::Unreachable {
            failure,
            for_good: true,
        }),
        Ended::Failed(_) => Verdict::Retry(backoff()),
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
        // Message text only: a cause already quoted by its wrapper is not repeated.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
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

/// What an attempt's result means for [`decide`].
fn ended(result: &Result<Fetched, AttemptError>) -> Ended {
    match result {
        Ok(fetched) => Ended::Answer {
            status: fetched.status,
            retry_after: (fetched.status == StatusCode::TOO_MANY_REQUESTS)
                .then(|| fetched.headers.get(RETRY_AFTER))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc())),
        },
        Err(AttemptError::TooLarge) => Ended::TooLarge,
        Err(AttemptError::Http(error)) => Ended::Failed(Failure::of(error)),
    }
}

impl Client {
    /// Send one request with retries on 5xx, 429, timeouts and connection errors. Any other
    /// status is returned to the caller.
    pub(super) async fn execute(
        &self,
        reg: &RegistryState,
        repository: &str,
        call: Call<'_>,
    ) -> Result<Fetched, RegistryError> {
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
            let result = self.attempt(reg, repository, &call, attempt).await;
            if let Some(mistake) = self
                .misconfigured(reg, repository, call.url, &result, attempt)
                .await
            {
                return Err(mistake);
            }
            let ended = ended(&result);
            if let Ended::Answer { status, .. } = ended
                && !status.is_server_error()
            {
                // Any answer but a 5xx (a 429 included) means the registry is up.
                reg.breaker.success();
            }
            let delay = match (decide(ended, attempt, options), result) {
                (Verdict::Deliver, Ok(fetched)) => return Ok(fetched),
                (Verdict::Retry(delay), _) => delay,
                (Verdict::Stop(stop), result) => {
                    return Err(self.stopped(reg, repository, call.kind, attempt, stop, &result));
                }
                // Infallible: `decide` delivers `Ended::Answer`s only, which come from `Ok`s.
                (Verdict::Deliver, Err(_)) => unreachable!("only answers are delivered"),
            };
            tracing::warn!(
                registry = %reg.name,
                repository = %repository,
                kind = call.kind.as_str(),
                attempt = attempt + 1,
                delay_ms = delay.as_millis() as u64,
                "registry request failed, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt: waits for the rate limiter and a permit, sends, reads the body up to the
    /// cap, and counts the attempt under its span.
    async fn attempt(
        &self,
        reg: &RegistryState,
        repository: &str,
        call: &Call<'_>,
        attempt: u32,
    ) -> Result<Fetched, AttemptError> {
        reg.limiter.acquire().await;
        let permit = reg.permits.acquire().await;
        let span = tracing::debug_span!(
            "registry_request",
            registry = %reg.name,
            repository = %repository,
            kind = call.kind.as_str(),
            method = %call.method,
            attempt,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.send(reg, call).instrument(span.clone()).await;
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
            match call.kind {
                Kind::Token => stats.token_requests += 1,
                Kind::Tags => stats.tag_pages += 1,
                Kind::Manifest | Kind::Blob => {}
            }
            *stats.by_outcome.entry(outcome).or_default() += 1;
        });
        result
    }

    /// Sends `call` and reads the whole response (not the body of a `HEAD`).
    async fn send(&self, reg: &RegistryState, call: &Call<'_>) -> Result<Fetched, AttemptError> {
        let mut request = reg
            .http
            .request(call.method.clone(), call.url.clone())
            .headers(call.headers.clone());
        if let Some(form) = &call.form {
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
        if call.method != Method::HEAD {
            while let Some(chunk) = response.chunk().await.map_err(AttemptError::Http)? {
                if body.len() + chunk.len() > self.inner.options.max_body_bytes {
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

    /// A TLS configuration mistake behind an attempt's result, told as what to change: it gives
    /// the same answer every time, so it ends the request without a retry. Plain HTTP to a TLS
    /// registry shows as a non-JSON 400 or (first attempt only) a dropped connection, and is
    /// confirmed by asking the registry over HTTPS ([`Client::speaks_tls`]).
    async fn misconfigured(
        &self,
        reg: &RegistryState,
        repository: &str,
        url: &Url,
        result: &Result<Fetched, AttemptError>,
        attempt: u32,
    ) -> Option<RegistryError> {
        let over_http = url.scheme() == "http";
        match result {
            Ok(fetched)
                if fetched.status == StatusCode::BAD_REQUEST
                    && over_http
                    && serde_json::from_slice::<serde_json::Value>(&fetched.body).is_err()
                    && self.speaks_tls(reg).await =>
            {
                Some(Self::tls_registry_over_http(reg, repository))
            }
            Ok(_) | Err(AttemptError::TooLarge) => None,
            Err(AttemptError::Http(error)) => {
                if let Some(mistake) = tls_error(error)
                    .and_then(|tls| tls_mistake(tls, reg.settings.ca_file.as_deref()))
                {
                    return Some(RegistryError::Unreachable {
                        registry: reg.name.clone(),
                        repository: repository.to_string(),
                        detail: format!("{mistake} (after 1 attempt)"),
                    });
                }
                if over_http
                    && Failure::of(error) != Failure::Timeout
                    && attempt == 0
                    && self.speaks_tls(reg).await
                {
                    return Some(Self::tls_registry_over_http(reg, repository));
                }
                None
            }
        }
    }

    /// The error a stopped request ends with; a request that failed for good is told to the
    /// breaker.
    fn stopped(
        &self,
        reg: &RegistryState,
        repository: &str,
        kind: Kind,
        attempt: u32,
        stop: Stop,
        result: &Result<Fetched, AttemptError>,
    ) -> RegistryError {
        let options = &self.inner.options;
        let attempts = attempt + 1;
        match stop {
            Stop::RateLimited { retry_after } => RegistryError::RateLimited {
                registry: reg.name.clone(),
                repository: repository.to_string(),
                retry_after,
            },
            Stop::ServerError(status) => {
                self.give_up(reg, &format!("HTTP {status}"));
                RegistryError::BadResponse {
                    registry: reg.name.clone(),
                    repository: repository.to_string(),
                    detail: format!(
                        "HTTP {status} on {} after {attempts} attempts; the registry is failing, retry later",
                        kind.as_str(),
                    ),
                }
            }
            Stop::TooLarge => RegistryError::BadResponse {
                registry: reg.name.clone(),
                repository: repository.to_string(),
                detail: format!(
                    "{} response larger than {} bytes",
                    kind.as_str(),
                    options.max_body_bytes
                ),
            },
            Stop::Unreachable { failure, for_good } => {
                let detail = match result {
                    Err(AttemptError::Http(error)) => describe(error, options.request_timeout),
                    // `decide` stops as unreachable on transport errors only.
                    _ => "no answer".to_string(),
                };
                if for_good {
                    self.give_up(reg, &detail);
                }
                // A refused certificate will be refused again: say what usually fixes it.
                let hint = if failure == Failure::Certificate {
                    "; if the registry uses a private CA, set its ca_file"
                } else {
                    ""
                };
                RegistryError::Unreachable {
                    registry: reg.name.clone(),
                    repository: repository.to_string(),
                    detail: format!(
                        "{detail} after {attempts} attempt{}{hint}",
                        if attempts == 1 { "" } else { "s" },
                    ),
                }
            }
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
    pub(super) fn give_up(&self, reg: &RegistryState, error: &str) {
        if let Some(cooldown) = reg.breaker.failure(Instant::now(), error) {
            tracing::warn!(
                registry = %reg.name,
                cooldown_s = cooldown.as_secs(),
                last_error = error,
                "registry keeps failing; not asking it again until the cooldown ends or it sends a webhook"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ClientOptions {
        ClientOptions {
            retries: 2,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
            ..ClientOptions::default()
        }
    }

    fn answer(status: u16) -> Ended {
        Ended::Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            retry_after: None,
        }
    }

    fn retried(verdict: Verdict) -> bool {
        matches!(verdict, Verdict::Retry(_))
    }

    #[test]
    fn answers_are_delivered_but_5xx_and_429_are_retried_until_the_retries_are_spent() {
        let options = options();
        for status in [200, 301, 400, 401, 403, 404] {
            assert_eq!(decide(answer(status), 0, &options), Verdict::Deliver);
            assert_eq!(decide(answer(status), 2, &options), Verdict::Deliver);
        }
        for status in [500, 502, 503] {
            assert!(retried(decide(answer(status), 0, &options)));
            assert!(retried(decide(answer(status), 1, &options)));
            assert_eq!(
                decide(answer(status), 2, &options),
                Verdict::Stop(Stop::ServerError(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                ))
            );
        }
        assert!(retried(decide(answer(429), 1, &options)));
        assert_eq!(
            decide(answer(429), 2, &options),
            Verdict::Stop(Stop::RateLimited { retry_after: None })
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        let options = options();
        let limited = |secs| Ended::Answer {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            decide(limited(2), 0, &options),
            Verdict::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            decide(limited(3600), 0, &options),
            Verdict::Retry(Duration::from_secs(5))
        );
        assert_eq!(
            decide(limited(2), 2, &options),
            Verdict::Stop(Stop::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            })
        );
    }

    #[test]
    fn transient_failures_are_retried_and_count_against_the_breaker_when_spent() {
        let options = options();
        for failure in [Failure::Timeout, Failure::Connection, Failure::Tls] {
            let ended = Ended::Failed(failure);
            match decide(ended, 0, &options) {
                Verdict::Retry(delay) => {
                    assert!(delay >= Duration::from_millis(50), "{delay:?}");
                    assert!(delay <= Duration::from_millis(100), "{delay:?}");
                }
                other => panic!("{failure:?}: {other:?}"),
            }
            assert_eq!(
                decide(ended, 2, &options),
                Verdict::Stop(Stop::Unreachable {
                    failure,
                    for_good: true
                })
            );
        }
    }

    #[test]
    fn failures_that_would_repeat_stop_at_once_without_blaming_the_registry() {
        let options = options();
        for failure in [Failure::Certificate, Failure::Other] {
            assert_eq!(
                decide(Ended::Failed(failure), 0, &options),
                Verdict::Stop(Stop::Unreachable {
                    failure,
                    for_good: false
                })
            );
        }
        assert_eq!(
            decide(Ended::TooLarge, 0, &options),
            Verdict::Stop(Stop::TooLarge)
        );
    }

    #[test]
    fn certificate_errors_are_told_by_type() {
        use rustls::AlertDescription as A;
        assert!(is_certificate_error(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )));
        assert!(is_certificate_error(
            &rustls::Error::NoCertificatesPresented
        ));
        assert!(is_certificate_error(&rustls::Error::AlertReceived(
            A::BadCertificate
        )));
        assert!(is_certificate_error(&rustls::Error::AlertReceived(
            A::UnknownCA
        )));
        assert!(!is_certificate_error(&rustls::Error::AlertReceived(
            A::HandshakeFailure
        )));
        assert!(!is_certificate_error(&rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
        )));
    }

    /// Real transport errors from reqwest, classified by what their source chains hold.
    #[tokio::test]
    async fn real_transport_errors_are_classified_by_type() {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        // A port nobody listens on (bound, then closed): connection refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = closed.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        drop(closed);
        let refused = http
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .send()
            .await
            .err()
            .unwrap_or_else(|| panic!("a closed port answered"));
        assert_eq!(Failure::of(&refused), Failure::Connection, "{refused:?}");
        assert!(Failure::of(&refused).is_transient());
        // A server that accepts and never answers: timed out.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = silent.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        let held = tokio::spawn(async move {
            let accepted = silent.accept().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(accepted);
        });
        let timed_out = http
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .send()
            .await
            .err()
            .unwrap_or_else(|| panic!("a silent server answered"));
        held.abort();
        assert_eq!(Failure::of(&timed_out), Failure::Timeout, "{timed_out:?}");
        // A TLS client against a plain TCP server that closes at once: not a certificate error.
        let closing = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = closing
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        let closer = tokio::spawn(async move {
            if let Ok((stream, _)) = closing.accept().await {
                drop(stream);
            }
        });
        let cut = http
            .get(format!("https://127.0.0.1:{port}/v2/"))
            .send()
            .await
            .err()
            .unwrap_or_else(|| panic!("a closed connection answered"));
        closer.abort();
        assert_ne!(Failure::of(&cut), Failure::Certificate, "{cut:?}");
        assert!(Failure::of(&cut).is_transient(), "{cut:?}");
    }

    #[test]
    fn causes_look_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let outer = std::io::Error::other(inner);
        let found = causes(&outer).find_map(|c| c.downcast_ref::<rustls::Error>());
        assert!(
            matches!(found, Some(rustls::Error::InvalidCertificate(_))),
            "{found:?}"
        );
    }
}
