//! Registry webhook receivers: authenticate, parse, and turn a push into a targeted check.
//!
//! Invariant: nothing happens before a request is authenticated and fully parsed — an
//! unauthenticated, oversized, mistyped or malformed request gets a 4xx and schedules nothing.
//! A payload's tag is only a hint and is never written anywhere: an accepted event queues a
//! [`Scope::Repository`] check and the worker asks the registry again; the queue only uses the
//! tag to tell a new push (checked at once) from one it already knows of.
//!
//! Design choice: every receiver is `POST /webhook/<type>` (or `/webhook/<type>/<secret>` for
//! registries that can only put a secret in the URL: Docker Hub and Quay). Secrets are compared in
//! constant time (tokens through SHA-256 digests, HMAC signatures through `hmac`'s `verify_slice`).
//! Events are matched against the repositories the worker's apps use; unknown repositories are
//! answered 202 and counted, but not checked.

pub use crate::secret::Secret;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::Scope;
use super::queue::{CheckQueue, Requested};
use crate::reference::{canonical_name, split_loose};

/// Webhook bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Bytes of webhook bodies being read or processed at once, over all requests. A request whose
/// body does not fit (its `Content-Length`, or [`BODY_LIMIT`] when it declares none) is answered
/// 503 at once, before anything is read: a flood costs at most this much memory.
pub const BODY_BUDGET: usize = 16 * 1024 * 1024;

/// Webhook requests handled at once; more are answered 503 at once.
pub const MAX_CONCURRENT_WEBHOOKS: usize = 64;

/// Time allowed to read a webhook body; a slower sender gets 408.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook listener's shared limits: the in-flight body budget (in KiB) and the request
/// slots. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WebhookLimits {
    body_kib: Arc<Semaphore>,
    requests: Arc<Semaphore>,
}

impl Default for WebhookLimits {
    fn default() -> Self {
        WebhookLimits {
            body_kib: Arc::new(Semaphore::new(BODY_BUDGET / 1024)),
            requests: Arc::new(Semaphore::new(MAX_CONCURRENT_WEBHOOKS)),
        }
    }
}

/// The `Content-Type` of CNCF distribution registry notifications.
pub const DISTRIBUTION_EVENTS_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.events.v1+json";

pub use crate::config::ReceiverKind;

// The receiver kinds are the configuration's vocabulary (one list, in `config`); how each one
// authenticates is this module's.
impl ReceiverKind {
    /// Whether the secret travels in the URL path (`/webhook/<type>/<secret>`).
    pub fn secret_in_path(self) -> bool {
        matches!(self, ReceiverKind::DockerHub | ReceiverKind::Quay)
    }
}

/// One configured receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    pub kind: ReceiverKind,
    /// The token, path secret or HMAC key, already read from its environment variable.
    pub secret: Secret,
    /// Treat every event of this receiver as coming from this registry host (e.g. when the
    /// registry knows itself by an internal name, as the distribution registry's `request.host`).
    pub registry: Option<String>,
}

/// Constant-time equality: compares SHA-256 digests, so neither content nor length leaks.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let a = Sha256::digest(a);
    let b = Sha256::digest(b);
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

/// Checks `sha256=<hex>` against the HMAC-SHA256 of `body` under `key`, in constant time.
pub fn verify_hmac_sha256(key: &[u8], body: &[u8], signature_header: &[u8]) -> bool {
    let Some(hex_signature) = signature_header.strip_prefix(b"sha256=") else {
        return false;
    };
    let Ok(signature) = hex::decode(hex_signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// Why a request was refused. Each maps to a 4xx/5xx status and a metrics outcome.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    NotConfigured,
    Unauthorized,
    TooLarge,
    UnsupportedMediaType,
    Malformed(String),
    ShuttingDown,
    /// Too many webhook requests or body bytes in flight.
    Busy,
    /// The body did not arrive within [`BODY_TIMEOUT`].
    SlowBody,
}

impl Rejection {
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Rejection::NotConfigured => "not_configured",
            Rejection::Unauthorized => "unauthorized",
            Rejection::TooLarge => "too_large",
            Rejection::UnsupportedMediaType => "unsupported_media_type",
            Rejection::Malformed(_) => "malformed",
            Rejection::ShuttingDown => "shutting_down",
            Rejection::Busy => "busy",
            Rejection::SlowBody => "slow_body",
        }
    }

    pub(crate) fn into_response(self) -> Response {
        match self {
            Rejection::NotConfigured => {
                (StatusCode::NOT_FOUND, "no such webhook receiver\n").into_response()
            }
            Rejection::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "missing or wrong webhook credentials\n",
            )
                .into_response(),
            Rejection::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "webhook body larger than 1 MiB\n",
            )
                .into_response(),
            Rejection::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unexpected Content-Type: send JSON\n",
            )
                .into_response(),
            Rejection::Malformed(reason) => (
                StatusCode::BAD_REQUEST,
                format!("malformed webhook payload: {reason}\n"),
            )
                .into_response(),
            Rejection::ShuttingDown => {
                (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
            }
            Rejection::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "too many webhook requests at once; retry\n",
            )
                .into_response(),
            Rejection::SlowBody => (
                StatusCode::REQUEST_TIMEOUT,
                "the webhook body did not arrive in time\n",
            )
                .into_response(),
        }
    }
}

/// A push the payload announced: a registry host, a repository path, a tag hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushHint {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
}

/// What an authenticated, well-formed payload contained.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub pushes: Vec<PushHint>,
    /// Events that don't announce a new tag (pulls, blob pushes, pings, deletions).
    pub ignored: usize,
}

/// What an accepted webhook did.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    /// `(registry, repository)` of every push it announced for a registry some app uses (the
    /// status page shows each registry's last webhook; other hosts are not kept, so a sender
    /// cannot grow the status without bound).
    pub pushes: Vec<(String, String)>,
    pub scheduled: usize,
    pub coalesced: usize,
    pub unknown: usize,
    pub ignored: usize,
}

impl Accepted {
    pub(crate) fn outcome(&self) -> &'static str {
        if self.scheduled + self.coalesced > 0 {
            "accepted"
        } else if self.unknown > 0 {
            "unknown_repository"
        } else {
            "ignored"
        }
    }
}

/// Authenticate, read, parse and queue one webhook request of receiver type `kind`.
pub(crate) async fn accept(
    checks: &dyn CheckQueue,
    receivers: &[Receiver],
    limits: &WebhookLimits,
    kind: ReceiverKind,
    path_secret: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, Rejection> {
    let receivers: Vec<Receiver> = receivers
        .iter()
        .filter(|receiver| receiver.kind == kind)
        .cloned()
        .collect();
    if receivers.is_empty() || (path_secret.is_some() && !kind.secret_in_path()) {
        return Err(Rejection::NotConfigured);
    }
    let _slot = limits
        .requests
        .clone()
        .try_acquire_owned()
        .map_err(|_| Rejection::Busy)?;
    // Credentials that do not depend on the body are checked before a byte of it is read; an
    // HMAC receiver at least needs its signature header. Nothing unauthenticated is buffered
    // beyond the shared budget.
    let by_headers = authenticate_without_body(&receivers, path_secret.as_deref(), headers);
    let hmac = matches!(kind, ReceiverKind::Ghcr | ReceiverKind::GenericHmac);
    if !hmac && by_headers.is_none() {
        return Err(Rejection::Unauthorized);
    }
    if hmac
        && !receivers
            .iter()
            .any(|r| has_signature_header(r.kind, headers))
    {
        return Err(Rejection::Unauthorized);
    }
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > BODY_LIMIT as u64) {
        return Err(Rejection::TooLarge);
    }
    let reserve = declared_length.map_or(BODY_LIMIT, |length| length as usize);
    let kib = u32::try_from(reserve.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let _budget = limits
        .body_kib
        .clone()
        .try_acquire_many_owned(kib)
        .map_err(|_| Rejection::Busy)?;
    let body = tokio::time::timeout(BODY_TIMEOUT, read_limited(body, reserve.min(BODY_LIMIT)))
        .await
        .map_err(|_| Rejection::SlowBody)??;
    let receiver = match by_headers {
        Some(receiver) => receiver,
        None => authenticate(&receivers, path_secret.as_deref(), headers, &body)
            .ok_or(Rejection::Unauthorized)?,
    };
    check_media_type(kind, headers)?;
    let parsed = parse(kind, receiver.registry.as_deref(), headers, &body)?;
    if checks.shutting_down() {
        return Err(Rejection::ShuttingDown);
    }
    let known = checks.repositories();
    let mut accepted = Accepted {
        ignored: parsed.ignored,
        ..Accepted::default()
    };
    // Each scope once, with the tags announced for it (hints: they decide when to check).
    let mut scopes: Vec<(Scope, Vec<String>)> = Vec::new();
    for push in &parsed.pushes {
        let matched = matching_scopes(&known, &push.registry, &push.repository);
        if known.iter().any(|(registry, _)| *registry == push.registry) {
            accepted
                .pushes
                .push((push.registry.clone(), push.repository.clone()));
        }
        if matched.is_empty() {
            accepted.unknown += 1;
            tracing::info!(
                receiver = kind.as_str(),
                registry = %push.registry,
                repository = %push.repository,
                "webhook for a repository no app uses"
            );
        }
        for scope in matched {
            if !scopes.iter().any(|(seen, _)| *seen == scope) {
                scopes.push((scope.clone(), Vec::new()));
            }
            if let (Some(tag), Some((_, tags))) = (
                &push.tag,
                scopes.iter_mut().find(|(seen, _)| *seen == scope),
            ) {
                tags.push(tag.clone());
            }
        }
    }
    for (scope, tags) in scopes {
        match checks.request(scope.clone(), &tags) {
            Requested::Scheduled => {
                tracing::info!(receiver = kind.as_str(), %scope, "webhook scheduled a check");
                accepted.scheduled += 1;
            }
            Requested::Coalesced => accepted.coalesced += 1,
            Requested::Refused => return Err(Rejection::ShuttingDown),
        }
    }
    Ok(accepted)
}

async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, Rejection> {
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(Bytes::from(buffer)),
            Some(Err(_)) => return Err(Rejection::Malformed("the body could not be read".into())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buffer.len() + data.len() > limit {
                        return Err(Rejection::TooLarge);
                    }
                    buffer.extend_from_slice(&data);
                }
            }
        }
    }
}

fn header_bytes<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get(name).map(|value| value.as_bytes())
}

/// The receiver whose header or path secret the request proves, before any body is read
/// (`None` for HMAC receivers, whose proof needs the body).
fn authenticate_without_body<'r>(
    receivers: &'r [Receiver],
    path_secret: Option<&str>,
    headers: &HeaderMap,
) -> Option<&'r Receiver> {
    receivers.iter().find(|receiver| {
        let secret = receiver.secret.expose().as_bytes();
        match receiver.kind {
            ReceiverKind::DockerHub | ReceiverKind::Quay => {
                path_secret.is_some_and(|given| ct_eq(given.as_bytes(), secret))
            }
            ReceiverKind::Distribution | ReceiverKind::Harbor => {
                header_bytes(headers, "authorization").is_some_and(|given| ct_eq(given, secret))
            }
            ReceiverKind::Gitlab => {
                header_bytes(headers, "x-gitlab-token").is_some_and(|given| ct_eq(given, secret))
            }
            ReceiverKind::Ghcr | ReceiverKind::GenericHmac => false,
        }
    })
}

/// The header carrying an HMAC receiver's signature (`None` for the other receivers).
fn signature_header(kind: ReceiverKind) -> Option<&'static str> {
    match kind {
        ReceiverKind::Ghcr => Some("x-hub-signature-256"),
        ReceiverKind::GenericHmac => Some("x-signature"),
        _ => None,
    }
}

/// Whether an HMAC receiver's signature header is there at all.
fn has_signature_header(kind: ReceiverKind, headers: &HeaderMap) -> bool {
    signature_header(kind).is_some_and(|name| headers.contains_key(name))
}

/// The receiver whose secret the request proves, if any.
fn authenticate<'r>(
    receivers: &'r [Receiver],
    path_secret: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<&'r Receiver> {
    authenticate_without_body(receivers, path_secret, headers).or_else(|| {
        receivers.iter().find(|receiver| {
            let secret = receiver.secret.expose().as_bytes();
            let Some(header) = signature_header(receiver.kind) else {
                return false;
            };
            header_bytes(headers, header)
                .is_some_and(|given| verify_hmac_sha256(secret, body, given))
        })
    })
}

/// A declared `Content-Type` must be JSON (for `distribution` and `gitlab`, also the
/// distribution events type). A missing one is tolerated — not every sender sets it — and the
/// body must then parse as JSON all the same.
fn check_media_type(kind: ReceiverKind, headers: &HeaderMap) -> Result<(), Rejection> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .ok_or(Rejection::UnsupportedMediaType)?;
    let json = essence == "application/json";
    let ok = match kind {
        ReceiverKind::Distribution | ReceiverKind::Gitlab => {
            json || essence == DISTRIBUTION_EVENTS_MEDIA_TYPE
        }
        _ => json,
    };
    if ok {
        Ok(())
    } else {
        Err(Rejection::UnsupportedMediaType)
    }
}

/// Parses an authenticated body of receiver type `kind`. `registry` overrides the host.
fn parse(
    kind: ReceiverKind,
    registry: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Parsed, Rejection> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| Rejection::Malformed(format!("invalid JSON ({error})")))?;
    if !value.is_object() {
        return Err(Rejection::Malformed("expected a JSON object".into()));
    }
    match kind {
        ReceiverKind::Distribution => parse_distribution(&value, registry),
        ReceiverKind::DockerHub => parse_dockerhub(&value, registry),
        ReceiverKind::Quay => parse_quay(&value, registry),
        ReceiverKind::Harbor => parse_harbor(&value, registry),
        ReceiverKind::Ghcr => {
            let event = headers
                .get("x-github-event")
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| Rejection::Malformed("no X-GitHub-Event header".into()))?;
            parse_ghcr(event, &value, registry)
        }
        ReceiverKind::Gitlab => {
            if value.get("events").is_some() {
                parse_distribution(&value, registry)
            } else {
                parse_generic(&value, registry)
            }
        }
        ReceiverKind::GenericHmac => parse_generic(&value, registry),
    }
}

fn str_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut current = value;
    for key in path {
        current = current.get(key)?;
    }
    current.as_str().filter(|text| !text.is_empty())
}

fn missing(field: &str) -> Rejection {
    Rejection::Malformed(format!("missing string field {field}"))
}

fn parse_distribution(value: &Value, registry: Option<&str>) -> Result<Parsed, Rejection> {
    let events = value
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| Rejection::Malformed("missing events array".into()))?;
    let mut parsed = Parsed::default();
    for event in events {
        let is_push = str_at(event, &["action"]) == Some("push");
        let tag = str_at(event, &["target", "tag"]);
        let manifest = str_at(event, &["target", "mediaType"]).is_none_or(|media_type| {
            media_type.contains("manifest") || media_type.contains("image.index")
        });
        let repository = str_at(event, &["target", "repository"]);
        let host = registry.or_else(|| str_at(event, &["request", "host"]));
        match (is_push && manifest, tag, repository, host) {
            (true, Some(tag), Some(repository), Some(host)) => parsed.pushes.push(PushHint {
                registry: host.to_string(),
                repository: repository.to_string(),
                tag: Some(tag.to_string()),
            }),
            _ => parsed.ignored += 1,
        }
    }
    Ok(parsed)
}

fn parse_dockerhub(value: &Value, registry: Option<&str>) -> Result<Parsed, Rejection> {
    let name = str_at(value, &["repository", "repo_name"])
        .ok_or_else(|| missing("repository.repo_name"))?;
    let tag = str_at(value, &["push_data", "tag"]).map(str::to_string);
    Ok(Parsed {
        pushes: vec![PushHint {
            registry: registry.unwrap_or("docker.io").to_string(),
            repository: name.to_string(),
            tag,
        }],
        ignored: 0,
    })
}

fn parse_quay(value: &Value, registry: Option<&str>) -> Result<Parsed, Rejection> {
    let (host, repository) = match (
        str_at(value, &["docker_url"]),
        str_at(value, &["repository"]),
    ) {
        (Some(url), _) => {
            let (host, path, _) = split_loose(url);
            (host, path)
        }
        (None, Some(repository)) => ("quay.io".to_string(), repository.to_string()),
        (None, None) => return Err(missing("docker_url")),
    };
    let tag = value
        .get("updated_tags")
        .and_then(Value::as_array)
        .and_then(|tags| tags.first())
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Parsed {
        pushes: vec![PushHint {
            registry: registry.map_or(host, str::to_string),
            repository,
            tag,
        }],
        ignored: 0,
    })
}

fn parse_harbor(value: &Value, registry: Option<&str>) -> Result<Parsed, Rejection> {
    let event_type = str_at(value, &["type"]).ok_or_else(|| missing("type"))?;
    if !matches!(event_type, "PUSH_ARTIFACT" | "pushImage") {
        return Ok(Parsed {
            pushes: Vec::new(),
            ignored: 1,
        });
    }
    let full_name = str_at(value, &["event_data", "repository", "repo_full_name"]);
    let resources = value
        .pointer("/event_data/resources")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut parsed = Parsed::default();
    for resource in resources {
        let Some(url) = str_at(resource, &["resource_url"]) else {
            parsed.ignored += 1;
            continue;
        };
        let (host, path, tag) = split_loose(url);
        let tag = str_at(resource, &["tag"]).map(str::to_string).or(tag);
        parsed.pushes.push(PushHint {
            registry: registry.map_or(host, str::to_string),
            repository: full_name.map_or(path, str::to_string),
            tag,
        });
    }
    if parsed.pushes.is_empty() {
        match (registry, full_name) {
            (Some(host), Some(name)) => parsed.pushes.push(PushHint {
                registry: host.to_string(),
                repository: name.to_string(),
                tag: None,
            }),
            _ => return Err(missing("event_data.resources[].resource_url")),
        }
    }
    Ok(parsed)
}

fn parse_ghcr(event: &str, value: &Value, registry: Option<&str>) -> Result<Parsed, Rejection> {
    let key = match event {
        "package" => "package",
        "registry_package" => "registry_package",
        // `ping` (sent when the webhook is created) and any other event: nothing to check.
        _ => {
            return Ok(Parsed {
                pushes: Vec::new(),
                ignored: 1,
            });
        }
    };
    let package = value
        .get(key)
        .filter(|package| package.is_object())
        .ok_or_else(|| missing(key))?;
    let action = str_at(value, &["action"]).unwrap_or("published");
    let container = str_at(package, &["package_type"]).is_some_and(|kind| {
        kind.eq_ignore_ascii_case("container") || kind.eq_ignore_ascii_case("docker")
    });
    if !container || !matches!(action, "published" | "updated") {
        return Ok(Parsed {
            pushes: Vec::new(),
            ignored: 1,
        });
    }
    let name = str_at(package, &["name"]).ok_or_else(|| missing(&format!("{key}.name")))?;
    let namespace = str_at(package, &["namespace"])
        .or_else(|| str_at(package, &["owner", "login"]))
        .ok_or_else(|| missing(&format!("{key}.namespace")))?;
    let version = package.get("package_version");
    let tag_value = version.and_then(|version| version.pointer("/container_metadata/tag/name"));
    // A version pushed without a tag (a platform manifest of a multi-arch image): no new tag.
    if tag_value.is_some_and(|tag| tag.as_str() == Some("")) {
        return Ok(Parsed {
            pushes: Vec::new(),
            ignored: 1,
        });
    }
    Ok(Parsed {
        pushes: vec![PushHint {
            registry: registry.unwrap_or("ghcr.io").to_string(),
            repository: format!("{namespace}/{name}").to_ascii_lowercase(),
            tag: tag_value.and_then(Value::as_str).map(str::to_string),
        }],
        ignored: 0,
    })
}

fn parse_generic(value: &Value, registry: Option<&str>) -> Result<Parsed, Rejection> {
    let reference = str_at(value, &["repository"]).ok_or_else(|| missing("repository"))?;
    let (host, path, _) = split_loose(reference);
    Ok(Parsed {
        pushes: vec![PushHint {
            registry: registry.map_or(host, str::to_string),
            repository: path,
            tag: str_at(value, &["tag"]).map(str::to_string),
        }],
        ignored: 0,
    })
}

/// The scopes (as the worker spelled them) of the known repositories equal to `host/path`.
pub fn matching_scopes(known: &[(String, String)], host: &str, path: &str) -> Vec<Scope> {
    let name = canonical_name(host, path);
    known
        .iter()
        .filter(|(known_host, known_path)| canonical_name(known_host, known_path) == name)
        .map(|(registry, repository)| Scope::Repository {
            registry: registry.clone(),
            repository: repository.clone(),
        })
        .collect()
}

/// Shared list of receivers, replaced on reload.
pub(crate) type Receivers = Arc<Vec<Receiver>>;

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"token", b"token"));
        assert!(!ct_eq(b"token", b"tokem"));
        assert!(!ct_eq(b"token", b"token "));
        assert!(!ct_eq(b"", b"x"));
    }

    #[test]
    fn hmac_signature() {
        // The well-known HMAC-SHA256 example: key "key", the quick brown fox message.
        let body = b"The quick brown fox jumps over the lazy dog";
        let good = b"sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
        assert!(verify_hmac_sha256(b"key", body, good));
        assert!(!verify_hmac_sha256(b"other", body, good));
        assert!(!verify_hmac_sha256(b"key", b"tampered", good));
        assert!(!verify_hmac_sha256(b"key", body, &good[7..]));
        assert!(!verify_hmac_sha256(b"key", body, b"sha256=zz"));
        assert!(!verify_hmac_sha256(
            b"key",
            body,
            b"sha1=f7bc83f430538424b13298e6aa6fb143ef4d59a1"
        ));
    }

    #[test]
    fn matching_normalizes_docker_hub_and_case() {
        let known = vec![
            ("docker.io".to_string(), "library/nginx".to_string()),
            ("registry-1.docker.io".to_string(), "acme/app".to_string()),
            ("ghcr.io".to_string(), "acme/api".to_string()),
            ("127.0.0.1:5000".to_string(), "demo/app".to_string()),
        ];
        let repo = |registry: &str, repository: &str| Scope::Repository {
            registry: registry.into(),
            repository: repository.into(),
        };
        assert_eq!(
            matching_scopes(&known, "docker.io", "nginx"),
            vec![repo("docker.io", "library/nginx")]
        );
        assert_eq!(
            matching_scopes(&known, "index.docker.io", "acme/app"),
            vec![repo("registry-1.docker.io", "acme/app")]
        );
        assert_eq!(
            matching_scopes(&known, "ghcr.io", "Acme/API"),
            vec![repo("ghcr.io", "acme/api")]
        );
        assert_eq!(
            matching_scopes(&known, "127.0.0.1:5000", "demo/app"),
            vec![repo("127.0.0.1:5000", "demo/app")]
        );
        assert!(matching_scopes(&known, "127.0.0.1:5001", "demo/app").is_empty());
        assert!(matching_scopes(&known, "ghcr.io", "acme/other").is_empty());
    }

    #[test]
    fn distribution_keeps_only_tagged_manifest_pushes() {
        let body = serde_json::json!({"events": [
            {"action": "push", "target": {"mediaType": "application/octet-stream", "repository": "demo/app", "digest": "sha256:aa"}, "request": {"host": "r:5000"}},
            {"action": "push", "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "repository": "demo/app", "tag": "1.2.3"}, "request": {"host": "r:5000"}},
            {"action": "pull", "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "repository": "demo/app", "tag": "1.2.3"}, "request": {"host": "r:5000"}},
            {"action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "demo/app", "digest": "sha256:bb"}, "request": {"host": "r:5000"}}
        ]});
        let parsed = parse_distribution(&body, None).map_err(|e| format!("{e:?}"));
        assert_eq!(
            parsed,
            Ok(Parsed {
                pushes: vec![PushHint {
                    registry: "r:5000".into(),
                    repository: "demo/app".into(),
                    tag: Some("1.2.3".into())
                }],
                ignored: 3,
            })
        );
        let overridden =
            parse_distribution(&body, Some("registry.example.com")).map_err(|e| format!("{e:?}"));
        assert_eq!(
            overridden.map(|p| p.pushes[0].registry.clone()),
            Ok("registry.example.com".to_string())
        );
        assert!(parse_distribution(&serde_json::json!({"event": []}), None).is_err());
    }

    #[test]
    fn ghcr_events() {
        let published = serde_json::json!({"action": "published", "package": {
            "name": "API", "namespace": "Acme", "package_type": "CONTAINER",
            "package_version": {"container_metadata": {"tag": {"name": "v1.2.3", "digest": "sha256:aa"}}}}});
        let parsed = parse_ghcr("package", &published, None).map_err(|e| format!("{e:?}"));
        assert_eq!(
            parsed.map(|p| p.pushes),
            Ok(vec![PushHint {
                registry: "ghcr.io".into(),
                repository: "acme/api".into(),
                tag: Some("v1.2.3".into())
            }])
        );
        let npm = serde_json::json!({"action": "published", "registry_package": {"name": "x", "namespace": "acme", "package_type": "npm"}});
        assert_eq!(
            parse_ghcr("registry_package", &npm, None).map(|p| p.ignored),
            Ok(1)
        );
        assert_eq!(
            parse_ghcr("ping", &serde_json::json!({"zen": "x"}), None).map(|p| p.ignored),
            Ok(1)
        );
        assert!(parse_ghcr("package", &serde_json::json!({"action": "published"}), None).is_err());
    }
}
