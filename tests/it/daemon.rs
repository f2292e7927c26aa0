//! The daemon against a recording fake worker (the engine is another module): every webhook
//! receiver (accepted, and refused without side effect), debounce, non-overlapping cycles,
//! concurrency with a long poll, metrics, status, reload, shutdown, a real port, and the real
//! `docker-registry` sending its notifications.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hmac::{Hmac, Mac};
use imagebump::daemon::http::{HttpState, router};
use imagebump::daemon::{
    AppReport, CheckOptions, Checks, Control, CycleReport, ImageStatus, Loaded, Metrics,
    PlannedChange, Receiver, ReceiverKind, Requested, Schedule, Scope, Secret, Settings, Shutdown,
    StatusStore, Worker,
};
use serde_json::{Value, json};
use sha2::Sha256;
use tower::ServiceExt;

use crate::support;
use crate::support::imagebump::Imagebump;
use crate::support::registry::{ImageSpec, NotificationEndpoint, RegistryConfig, TestRegistry};

// ---------------------------------------------------------------------------------------------
// A recording fake worker.

#[derive(Default)]
struct Record {
    repositories: Vec<(String, String)>,
    apps: Vec<String>,
    /// How long a check of `Scope::All` takes (other scopes take `other_delay`).
    all_delay: Duration,
    other_delay: Duration,
    calls: Mutex<Vec<Scope>>,
    /// `start <scope>` / `end <scope>` in order.
    events: Mutex<Vec<String>>,
    running: Mutex<HashMap<Scope, usize>>,
    max_same_scope: AtomicUsize,
}

#[derive(Clone)]
struct Recorder(Arc<Record>);

impl Recorder {
    fn new(repositories: &[(&str, &str)]) -> Recorder {
        Recorder::with(repositories, Duration::ZERO, Duration::ZERO)
    }

    fn with(repositories: &[(&str, &str)], all_delay: Duration, other_delay: Duration) -> Recorder {
        Recorder(Arc::new(Record {
            repositories: repositories
                .iter()
                .map(|(registry, repository)| (registry.to_string(), repository.to_string()))
                .collect(),
            apps: vec!["shop".into()],
            all_delay,
            other_delay,
            ..Record::default()
        }))
    }

    fn calls(&self) -> Vec<Scope> {
        self.0.calls.lock().expect("calls").clone()
    }

    fn events(&self) -> Vec<String> {
        self.0.events.lock().expect("events").clone()
    }

    fn count(&self, scope: &Scope) -> usize {
        self.calls().iter().filter(|call| *call == scope).count()
    }
}

/// An app whose `api` image went from 1.4.2 to 1.4.3 in commit `0123…`.
fn updated_app(name: &str) -> AppReport {
    AppReport {
        name: name.into(),
        images: vec![ImageStatus {
            name: "api".into(),
            image: "ghcr.io/acme/api".into(),
            deployed: Some("1.4.2".into()),
            candidate: Some("1.4.3".into()),
            error: None,
        }],
        changes: vec![PlannedChange {
            app: name.into(),
            image: "ghcr.io/acme/api".into(),
            name: "api".into(),
            file: "values.yaml".into(),
            line: 3,
            from: "1.4.2".into(),
            to: "1.4.3".into(),
            digest: None,
            reason: "semver ^1: newest of 2 matching tags".into(),
            tag: "1.4.3".into(),
        }],
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        pushed: true,
        ..AppReport::default()
    }
}

impl Worker for Recorder {
    fn check(&self, scope: Scope) -> impl Future<Output = CycleReport> + Send {
        let record = self.0.clone();
        async move {
            record.calls.lock().expect("calls").push(scope.clone());
            record
                .events
                .lock()
                .expect("events")
                .push(format!("start {scope}"));
            {
                let mut running = record.running.lock().expect("running");
                let count = running.entry(scope.clone()).or_default();
                *count += 1;
                record.max_same_scope.fetch_max(*count, Ordering::SeqCst);
            }
            let delay = if scope == Scope::All {
                record.all_delay
            } else {
                record.other_delay
            };
            tokio::time::sleep(delay).await;
            *record
                .running
                .lock()
                .expect("running")
                .entry(scope.clone())
                .or_default() -= 1;
            record
                .events
                .lock()
                .expect("events")
                .push(format!("end {scope}"));
            CycleReport {
                apps: vec![updated_app("shop")],
                duration: Duration::from_millis(12),
            }
        }
    }

    fn repositories(&self) -> Vec<(String, String)> {
        self.0.repositories.clone()
    }

    fn apps(&self) -> Vec<String> {
        self.0.apps.clone()
    }
}

/// Waits until `condition` holds, at most `limit` (then the caller's assertion reports it).
async fn eventually(limit: Duration, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The router without a socket.

const REPOS: &[(&str, &str)] = &[
    ("127.0.0.1:5000", "demo/app"),
    ("docker.io", "acme/app"),
    ("quay.io", "acme/app"),
    ("harbor.example.com", "proj/app"),
    ("ghcr.io", "acme/api"),
    ("registry.gitlab.com", "group/app"),
    ("registry.example.com", "team/app"),
];

fn receivers() -> Vec<Receiver> {
    let receiver = |kind, secret: &str| Receiver {
        kind,
        secret: Secret::new(secret),
        registry: None,
    };
    vec![
        receiver(ReceiverKind::Distribution, "Bearer dist-token"),
        receiver(ReceiverKind::DockerHub, "hub-path-secret"),
        receiver(ReceiverKind::Quay, "quay-path-secret"),
        receiver(ReceiverKind::Harbor, "Basic aGFyYm9yOnNlY3JldA=="),
        receiver(ReceiverKind::Ghcr, "ghcr-hmac-key"),
        receiver(ReceiverKind::Gitlab, "gitlab-token"),
        receiver(ReceiverKind::GenericHmac, "generic-hmac-key"),
    ]
}

struct Harness {
    worker: Recorder,
    checks: Arc<Checks<Recorder>>,
    metrics: Arc<Metrics>,
    router: Router,
    shutdown: Shutdown,
}

fn harness(worker: Recorder, debounce: Duration) -> Harness {
    let metrics = Arc::new(Metrics::new());
    let shutdown = Shutdown::new();
    let checks = Checks::new(
        Arc::new(worker.clone()),
        CheckOptions {
            debounce,
            debounce_max: debounce * 10,
            max_concurrent: 4,
        },
        metrics.clone(),
        Arc::new(StatusStore::new()),
        shutdown.clone(),
    );
    let state = HttpState::new(&checks, receivers(), true);
    Harness {
        worker,
        checks,
        metrics,
        router: router(state),
        shutdown,
    }
}

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("router answers");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 4 * 1024 * 1024)
        .await
        .expect("response body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(router: &Router, uri: &str) -> (StatusCode, String) {
    send(
        router,
        Request::get(uri).body(Body::empty()).expect("request"),
    )
    .await
}

fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

enum Auth {
    Header(&'static str, &'static str),
    Path(&'static str),
    Hmac(&'static str, &'static str),
}

#[derive(Clone, Copy, PartialEq)]
enum Creds {
    Good,
    Wrong,
    Missing,
}

struct Case {
    kind: &'static str,
    auth: Auth,
    content_type: &'static str,
    extra: &'static [(&'static str, &'static str)],
    body: Value,
    expected: (&'static str, &'static str),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            kind: "distribution",
            auth: Auth::Header("authorization", "Bearer dist-token"),
            content_type: "application/vnd.docker.distribution.events.v1+json",
            extra: &[],
            body: json!({"events": [
                {"id": "1", "action": "push", "target": {"mediaType": "application/octet-stream", "digest": "sha256:aa", "repository": "demo/app"}, "request": {"host": "127.0.0.1:5000"}},
                {"id": "2", "action": "push", "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "sha256:bb", "repository": "demo/app", "tag": "1.2.3"}, "request": {"host": "127.0.0.1:5000"}},
                {"id": "3", "action": "pull", "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "sha256:bb", "repository": "demo/app", "tag": "1.2.3"}, "request": {"host": "127.0.0.1:5000"}}
            ]}),
            expected: ("127.0.0.1:5000", "demo/app"),
        },
        Case {
            kind: "dockerhub",
            auth: Auth::Path("hub-path-secret"),
            content_type: "application/json",
            extra: &[],
            body: json!({"callback_url": "https://registry.hub.docker.com/u/acme/app/hook/x/", "push_data": {"pushed_at": 1417566161, "pusher": "ci", "tag": "v1.0.1"}, "repository": {"name": "app", "namespace": "acme", "repo_name": "acme/app", "status": "Active"}}),
            expected: ("docker.io", "acme/app"),
        },
        Case {
            kind: "quay",
            auth: Auth::Path("quay-path-secret"),
            content_type: "application/json",
            extra: &[],
            body: json!({"repository": "acme/app", "namespace": "acme", "name": "app", "docker_url": "quay.io/acme/app", "homepage": "https://quay.io/repository/acme/app", "updated_tags": ["v1.0.1"]}),
            expected: ("quay.io", "acme/app"),
        },
        Case {
            kind: "harbor",
            auth: Auth::Header("authorization", "Basic aGFyYm9yOnNlY3JldA=="),
            content_type: "application/json",
            extra: &[],
            body: json!({"type": "PUSH_ARTIFACT", "occur_at": 1680501893, "operator": "admin", "event_data": {
                "resources": [{"digest": "sha256:cc", "tag": "v1.0.1", "resource_url": "harbor.example.com/proj/app:v1.0.1"}],
                "repository": {"date_created": 1680501893, "name": "app", "namespace": "proj", "repo_full_name": "proj/app", "repo_type": "private"}}}),
            expected: ("harbor.example.com", "proj/app"),
        },
        Case {
            kind: "ghcr",
            auth: Auth::Hmac("x-hub-signature-256", "ghcr-hmac-key"),
            content_type: "application/json",
            extra: &[("x-github-event", "package")],
            body: json!({"action": "published", "package": {"id": 1, "name": "api", "namespace": "acme", "package_type": "CONTAINER",
                "owner": {"login": "acme"},
                "package_version": {"id": 2, "version": "sha256:dd", "container_metadata": {"tag": {"name": "v1.4.3", "digest": "sha256:dd"}}}}}),
            expected: ("ghcr.io", "acme/api"),
        },
        Case {
            kind: "gitlab",
            auth: Auth::Header("x-gitlab-token", "gitlab-token"),
            content_type: "application/json",
            extra: &[],
            body: json!({"repository": "registry.gitlab.com/group/app", "tag": "v2.0.0"}),
            expected: ("registry.gitlab.com", "group/app"),
        },
        Case {
            kind: "generic-hmac",
            auth: Auth::Hmac("x-signature", "generic-hmac-key"),
            content_type: "application/json",
            extra: &[],
            body: json!({"repository": "registry.example.com/team/app", "tag": "1.0.0"}),
            expected: ("registry.example.com", "team/app"),
        },
    ]
}

fn build(case: &Case, body: Vec<u8>, creds: Creds, content_type: &str) -> Request<Body> {
    let mut uri = format!("/webhook/{}", case.kind);
    let mut headers: Vec<(String, String)> = Vec::new();
    match case.auth {
        Auth::Header(name, value) => match creds {
            Creds::Good => headers.push((name.into(), value.into())),
            Creds::Wrong => headers.push((name.into(), format!("{value}x"))),
            Creds::Missing => {}
        },
        Auth::Path(secret) => match creds {
            Creds::Good => uri = format!("{uri}/{secret}"),
            Creds::Wrong => uri = format!("{uri}/{secret}-guess"),
            Creds::Missing => {}
        },
        Auth::Hmac(name, key) => match creds {
            Creds::Good => headers.push((name.into(), sign(key, &body))),
            Creds::Wrong => headers.push((name.into(), sign("not-the-key", &body))),
            Creds::Missing => {}
        },
    }
    let mut builder = Request::post(uri).header("content-type", content_type);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    for (name, value) in case.extra {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn every_receiver_accepts_a_valid_push_and_schedules_exactly_one_check() {
    for case in cases() {
        let h = harness(Recorder::new(REPOS), Duration::from_millis(20));
        let body = serde_json::to_vec(&case.body).expect("json");
        let (status, answer) = send(
            &h.router,
            build(&case, body, Creds::Good, case.content_type),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{}: {answer}", case.kind);
        let expected = Scope::Repository {
            registry: case.expected.0.to_string(),
            repository: case.expected.1.to_string(),
        };
        eventually(Duration::from_secs(5), || !h.worker.calls().is_empty()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(h.worker.calls(), vec![expected], "{}", case.kind);
        let metrics = h.metrics.encode();
        let line = format!(
            "imagebump_webhook_events_total{{receiver=\"{}\",outcome=\"accepted\"}} 1",
            case.kind
        );
        assert!(metrics.contains(&line), "{}: {metrics}", case.kind);
    }
}

#[tokio::test]
async fn forged_unsigned_oversized_malformed_and_mistyped_requests_are_refused_without_a_check() {
    let big = {
        let mut body = b"{\"repository\": \"".to_vec();
        body.extend(std::iter::repeat_n(b'a', 1024 * 1024));
        body.extend(b"\"}");
        body
    };
    for case in cases() {
        let h = harness(Recorder::new(REPOS), Duration::from_millis(20));
        let good = serde_json::to_vec(&case.body).expect("json");
        let mut attempts: Vec<(&str, Request<Body>, StatusCode)> = vec![
            (
                "no credentials",
                build(&case, good.clone(), Creds::Missing, case.content_type),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "wrong credentials",
                build(&case, good.clone(), Creds::Wrong, case.content_type),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "oversized",
                build(&case, big.clone(), Creds::Good, case.content_type),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                "malformed JSON",
                build(
                    &case,
                    b"{\"events\": [".to_vec(),
                    Creds::Good,
                    case.content_type,
                ),
                StatusCode::BAD_REQUEST,
            ),
            (
                "JSON of the wrong shape",
                build(
                    &case,
                    b"{\"hello\": 1}".to_vec(),
                    Creds::Good,
                    case.content_type,
                ),
                StatusCode::BAD_REQUEST,
            ),
            (
                "not JSON at all",
                build(&case, good.clone(), Creds::Good, "text/plain"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
        ];
        if let Auth::Hmac(name, key) = case.auth {
            // Signed, then tampered with: the signature no longer matches the body.
            let mut request = build(&case, good.clone(), Creds::Missing, case.content_type);
            request.headers_mut().insert(
                name,
                sign(key, b"{\"repository\": \"x\"}")
                    .parse()
                    .expect("header"),
            );
            attempts.push((
                "signature over another body",
                request,
                StatusCode::UNAUTHORIZED,
            ));
        }
        if case.kind == "ghcr" {
            // A `ping`-like event without the event header cannot be understood.
            let mut request = build(&case, good.clone(), Creds::Good, case.content_type);
            request.headers_mut().remove("x-github-event");
            attempts.push(("no X-GitHub-Event", request, StatusCode::BAD_REQUEST));
        }
        for (what, request, expected) in attempts {
            let (status, answer) = send(&h.router, request).await;
            assert_eq!(status, expected, "{} / {what}: {answer}", case.kind);
            assert!(
                !answer.contains("secret") && !answer.contains("token"),
                "{answer}"
            );
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(h.worker.calls(), Vec::<Scope>::new(), "{}", case.kind);
        let metrics = h.metrics.encode();
        assert!(!metrics.contains("outcome=\"accepted\""), "{metrics}");
        assert!(
            metrics.contains(&format!(
                "receiver=\"{}\",outcome=\"unauthorized\"",
                case.kind
            )),
            "{metrics}"
        );
    }
}

/// A `MakeWriter` that appends to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_ever_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = harness(Recorder::new(REPOS), Duration::from_millis(10));
    for case in cases() {
        let body = serde_json::to_vec(&case.body).expect("json");
        for creds in [Creds::Good, Creds::Wrong, Creds::Missing] {
            send(
                &h.router,
                build(&case, body.clone(), creds, case.content_type),
            )
            .await;
        }
    }
    eventually(Duration::from_secs(5), || {
        h.worker.calls().len() == cases().len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let logs =
        String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("utf-8 logs");
    assert!(
        logs.contains("webhook scheduled a check"),
        "nothing captured:\n{logs}"
    );
    // The debug-level "webhook refused" lines are not asserted: tracing caches each callsite's
    // interest process-wide, and with other tests' thread-local subscribers coming and going
    // in parallel a debug callsite is sometimes cached as off (seen failing in one CI-like run).
    // That the refusals happened is asserted on the counters instead.
    let metrics = h.metrics.encode();
    assert!(
        metrics.contains("outcome=\"unauthorized\""),
        "no refusal was counted:\n{metrics}"
    );
    for secret in [
        "dist-token",
        "hub-path-secret",
        "quay-path-secret",
        "aGFyYm9yOnNlY3JldA==",
        "ghcr-hmac-key",
        "gitlab-token",
        "generic-hmac-key",
        "sha256=",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn a_request_without_content_type_is_accepted_if_its_body_is_json() {
    let h = harness(Recorder::new(REPOS), Duration::from_millis(10));
    let case = &cases()[1];
    let mut request = build(
        case,
        serde_json::to_vec(&case.body).expect("json"),
        Creds::Good,
        case.content_type,
    );
    request.headers_mut().remove("content-type");
    assert_eq!(send(&h.router, request).await.0, StatusCode::ACCEPTED);
    let mut request = build(
        case,
        b"repository=acme/app".to_vec(),
        Creds::Good,
        case.content_type,
    );
    request.headers_mut().remove("content-type");
    assert_eq!(send(&h.router, request).await.0, StatusCode::BAD_REQUEST);
    eventually(Duration::from_secs(5), || !h.worker.calls().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.worker.calls().len(), 1);
}

#[tokio::test]
async fn unknown_receivers_and_unconfigured_routes_are_404() {
    let h = harness(Recorder::new(REPOS), Duration::from_millis(20));
    for uri in [
        "/webhook/acr",
        "/webhook/distribution/some-secret",
        "/webhook/ghcr/x",
        "/nope",
    ] {
        let request = Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request");
        let (status, _) = send(&h.router, request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
    let (status, _) = get(&h.router, "/webhook/distribution").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.worker.calls().is_empty());
}

#[tokio::test]
async fn a_push_for_a_repository_no_app_uses_is_accepted_but_not_checked() {
    let h = harness(Recorder::new(REPOS), Duration::from_millis(20));
    let case = &cases()[0];
    let mut body = case.body.clone();
    body["events"][1]["target"]["repository"] = json!("other/app");
    let (status, answer) = send(
        &h.router,
        build(
            case,
            serde_json::to_vec(&body).expect("json"),
            Creds::Good,
            case.content_type,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let answer: Value = serde_json::from_str(&answer).expect("json answer");
    assert_eq!(answer["scheduled"], 0);
    assert_eq!(answer["unknown_repositories"], 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.worker.calls().is_empty());
    assert!(h.metrics.encode().contains(
        "imagebump_webhook_events_total{receiver=\"distribution\",outcome=\"unknown_repository\"} 1"
    ));
}

#[tokio::test]
async fn only_pulls_and_blob_pushes_schedule_nothing() {
    let h = harness(Recorder::new(REPOS), Duration::from_millis(20));
    let case = &cases()[0];
    let mut body = case.body.clone();
    body["events"].as_array_mut().expect("events").remove(1);
    let (status, answer) = send(
        &h.router,
        build(
            case,
            serde_json::to_vec(&body).expect("json"),
            Creds::Good,
            case.content_type,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("json answer");
    assert_eq!(answer["ignored_events"], 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.worker.calls().is_empty());
}

#[tokio::test]
async fn a_burst_of_100_pushes_makes_one_check() {
    // The window is wide so that a slow CI machine still sends the whole burst inside it.
    let h = harness(Recorder::new(REPOS), Duration::from_secs(2));
    let case = &cases()[0];
    let mut answers = Vec::new();
    for tag in 0..100 {
        let mut body = case.body.clone();
        body["events"][1]["target"]["tag"] = json!(format!("1.0.{tag}"));
        let (status, answer) = send(
            &h.router,
            build(
                case,
                serde_json::to_vec(&body).expect("json"),
                Creds::Good,
                case.content_type,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        answers.push(serde_json::from_str::<Value>(&answer).expect("json"));
    }
    let scheduled: u64 = answers
        .iter()
        .map(|answer| answer["scheduled"].as_u64().unwrap_or(0))
        .sum();
    let coalesced: u64 = answers
        .iter()
        .map(|answer| answer["coalesced"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!((scheduled, coalesced), (1, 99));
    eventually(Duration::from_secs(10), || !h.worker.calls().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h.worker.calls().len(), 1, "{:?}", h.worker.calls());
}

#[tokio::test]
async fn pushes_spread_over_longer_than_the_window_make_one_check_while_gaps_stay_short() {
    let h = harness(Recorder::new(REPOS), Duration::from_millis(800));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    for _ in 0..12 {
        h.checks.request_debounced(scope.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 1.2 s of pushes, each within 800 ms of the previous one: still nothing checked.
    assert!(
        h.worker.calls().is_empty(),
        "checked before the pushes went quiet"
    );
    eventually(Duration::from_secs(10), || !h.worker.calls().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(h.worker.calls(), vec![scope]);
}

#[tokio::test]
async fn a_registry_that_never_goes_quiet_is_still_checked_at_the_cap() {
    // Quiet period 300 ms, capped at 10 × 300 ms = 3 s; requests every 50 ms for 4 s.
    let h = harness(Recorder::new(REPOS), Duration::from_millis(300));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        h.checks.request_debounced(scope.clone());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !h.worker.calls().is_empty(),
        "the cap did not start a check"
    );
    eventually(Duration::from_secs(10), || h.worker.calls().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // One check at the cap, one after the quiet period (a third only if the loaded machine
    // stalled this loop for longer than the quiet period).
    let checks = h.worker.calls().len();
    assert!((2..=3).contains(&checks), "{checks} checks");
}

#[tokio::test]
async fn pushes_during_a_running_check_make_exactly_one_follow_up() {
    let worker = Recorder::with(REPOS, Duration::ZERO, Duration::from_millis(300));
    let h = harness(worker, Duration::from_millis(10));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    assert_eq!(
        h.checks.request_debounced(scope.clone()),
        Requested::Scheduled
    );
    eventually(Duration::from_secs(5), || h.worker.events().len() == 1).await;
    for _ in 0..10 {
        assert_eq!(
            h.checks.request_debounced(scope.clone()),
            Requested::Coalesced
        );
    }
    eventually(Duration::from_secs(5), || h.worker.events().len() == 4).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.worker.count(&scope), 2);
    assert_eq!(h.worker.0.max_same_scope.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_webhook_check_runs_while_a_long_poll_cycle_is_still_going() {
    let worker = Recorder::with(
        REPOS,
        Duration::from_millis(1500),
        Duration::from_millis(10),
    );
    let h = harness(worker, Duration::from_millis(10));
    h.checks.request_now(Scope::All);
    eventually(Duration::from_secs(5), || h.worker.events().len() == 1).await;
    let case = &cases()[4];
    let (status, _) = send(
        &h.router,
        build(
            case,
            serde_json::to_vec(&case.body).expect("json"),
            Creds::Good,
            case.content_type,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually(Duration::from_secs(5), || h.worker.events().len() == 4).await;
    assert_eq!(
        h.worker.events(),
        vec![
            "start all apps".to_string(),
            "start repository ghcr.io/acme/api".to_string(),
            "end repository ghcr.io/acme/api".to_string(),
            "end all apps".to_string(),
        ]
    );
}

#[tokio::test]
async fn after_shutdown_began_no_check_starts_and_webhooks_get_503() {
    let h = harness(Recorder::new(REPOS), Duration::from_millis(300));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    assert_eq!(
        h.checks.request_debounced(scope.clone()),
        Requested::Scheduled
    );
    h.shutdown.trigger();
    assert_eq!(
        h.checks.request_debounced(scope.clone()),
        Requested::Refused
    );
    assert_eq!(h.checks.request_now(Scope::All), Requested::Refused);
    let case = &cases()[4];
    let (status, _) = send(
        &h.router,
        build(
            case,
            serde_json::to_vec(&case.body).expect("json"),
            Creds::Good,
            case.content_type,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        get(&h.router, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&h.router, "/healthz").await.0, StatusCode::OK);
    assert!(
        h.checks.drain(Duration::from_secs(5)).await,
        "nothing should be running"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(h.worker.calls().is_empty(), "{:?}", h.worker.calls());
}

/// A worker whose every check updates two apps in one grouped commit.
struct GroupedCommit;

impl Worker for GroupedCommit {
    fn check(&self, _scope: Scope) -> impl Future<Output = CycleReport> + Send {
        let report = CycleReport {
            apps: vec![updated_app("shop-dev"), updated_app("shop-prod")],
            duration: Duration::from_millis(12),
        };
        async move { report }
    }

    fn repositories(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

#[tokio::test]
async fn a_commit_shared_by_two_apps_is_counted_once() {
    let metrics = Arc::new(Metrics::new());
    let checks = Checks::new(
        Arc::new(GroupedCommit),
        CheckOptions::default(),
        metrics.clone(),
        Arc::new(StatusStore::new()),
        Shutdown::new(),
    );
    assert_eq!(checks.request_now(Scope::All), Requested::Scheduled);
    eventually(Duration::from_secs(5), || {
        metrics
            .encode()
            .contains("imagebump_images_updated_total 2")
    })
    .await;
    let text = metrics.encode();
    assert!(text.contains("imagebump_images_updated_total 2"), "{text}");
    assert!(text.contains("imagebump_commits_total 1\n"), "{text}");
}

/// A worker whose first check panics.
struct PanicsOnce(AtomicUsize);

impl Worker for PanicsOnce {
    fn check(&self, _scope: Scope) -> impl Future<Output = CycleReport> + Send {
        let call = self.0.fetch_add(1, Ordering::SeqCst);
        async move {
            assert!(call > 0, "the first check panics (on purpose)");
            CycleReport::default()
        }
    }

    fn repositories(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

#[tokio::test]
async fn a_panicking_check_does_not_block_its_scope() {
    let worker = Arc::new(PanicsOnce(AtomicUsize::new(0)));
    let metrics = Arc::new(Metrics::new());
    let checks = Checks::new(
        worker.clone(),
        CheckOptions::default(),
        metrics.clone(),
        Arc::new(StatusStore::new()),
        Shutdown::new(),
    );
    assert_eq!(checks.request_now(Scope::All), Requested::Scheduled);
    eventually(Duration::from_secs(5), || {
        metrics
            .encode()
            .contains("imagebump_checks_total{scope=\"all\",outcome=\"error\"} 1")
    })
    .await;
    assert!(
        metrics
            .encode()
            .contains("imagebump_checks_total{scope=\"all\",outcome=\"error\"} 1")
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The scope is free again: a new request starts a new check, which succeeds.
    assert_eq!(checks.request_now(Scope::All), Requested::Scheduled);
    eventually(Duration::from_secs(5), || {
        metrics
            .encode()
            .contains("imagebump_checks_total{scope=\"all\",outcome=\"ok\"} 1")
    })
    .await;
    assert!(
        metrics
            .encode()
            .contains("imagebump_checks_total{scope=\"all\",outcome=\"ok\"} 1")
    );
}

#[tokio::test]
async fn status_json_has_the_documented_shape() {
    let h = harness(Recorder::new(REPOS), Duration::from_millis(10));
    let (_, before) = get(&h.router, "/api/v1/status").await;
    let before: Value = serde_json::from_str(&before).expect("json");
    assert_eq!(
        before,
        json!({"ready": false, "apps": [{"name": "shop", "images": [], "last_check": null, "last_success": null, "last_error": null, "last_commit": null, "last_duration_ms": null, "config_error": null}], "config_errors": []})
    );
    h.checks.request_now(Scope::All);
    eventually(Duration::from_secs(5), || h.worker.events().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, after) = get(&h.router, "/api/v1/status").await;
    assert_eq!(status, StatusCode::OK);
    let mut after: Value = serde_json::from_str(&after).expect("json");
    let app = &mut after["apps"][0];
    for field in ["last_check", "last_success"] {
        let time = app[field].as_str().expect("an RFC 3339 time");
        assert!(
            time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{time}"
        );
        app[field] = json!("<time>");
    }
    assert_eq!(
        after,
        json!({"ready": true, "apps": [{
            "name": "shop",
            "images": [{"name": "api", "repository": "ghcr.io/acme/api", "deployed": "1.4.3", "candidate": "1.4.3"}],
            "last_check": "<time>", "last_success": "<time>", "last_error": null,
            "last_commit": "0123456789abcdef0123456789abcdef01234567", "last_duration_ms": 12,
            "config_error": null
        }], "config_errors": []})
    );
}

#[tokio::test]
async fn health_readiness_and_metrics_endpoints() {
    let h = harness(Recorder::new(REPOS), Duration::from_millis(10));
    assert_eq!(get(&h.router, "/healthz").await.0, StatusCode::OK);
    assert_eq!(
        get(&h.router, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.checks.request_now(Scope::All);
    eventually(Duration::from_secs(5), || h.worker.events().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&h.router, "/readyz").await.0, StatusCode::OK);
    h.metrics.registry_request("ghcr.io", "ok");
    h.metrics
        .tag_list_latency("ghcr.io", Duration::from_millis(30));
    h.metrics.push("ok");
    h.metrics.push_retry();
    h.metrics.app_checked("blog", false);
    let (status, _) = send(
        &h.router,
        Request::post("/webhook/gitlab")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, text) = get(&h.router, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for family in [
        "# TYPE imagebump_registry_requests counter",
        "# TYPE imagebump_tag_list_duration_seconds histogram",
        "# TYPE imagebump_check_duration_seconds histogram",
        "# TYPE imagebump_checks counter",
        "# TYPE imagebump_images_checked counter",
        "# TYPE imagebump_images_updated counter",
        "# TYPE imagebump_commits counter",
        "# TYPE imagebump_pushes counter",
        "# TYPE imagebump_push_retries counter",
        "# TYPE imagebump_webhook_events counter",
        "# TYPE imagebump_app_last_success_timestamp_seconds gauge",
        "# TYPE imagebump_app_errors counter",
        "# TYPE imagebump_config_reloads counter",
        "imagebump_images_checked_total 1",
        "imagebump_images_updated_total 1",
        "imagebump_commits_total 1",
        "imagebump_checks_total{scope=\"all\",outcome=\"ok\"} 1",
        "imagebump_app_last_success_timestamp_seconds{app=\"shop\"}",
        "imagebump_app_errors_total{app=\"blog\"} 1",
        "imagebump_webhook_events_total{receiver=\"gitlab\",outcome=\"unauthorized\"} 1",
        "imagebump_config_reloads_total{outcome=\"rejected\"} 0",
    ] {
        assert!(text.contains(family), "missing {family:?} in\n{text}");
    }
    assert!(
        !text.contains("1.4.3"),
        "a tag leaked into a label:\n{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// The whole daemon on a real port.

fn listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], support::free_port()))
}

fn settings(listen: SocketAddr, schedule: Schedule) -> Settings {
    let mut settings = Settings::new(listen, schedule);
    settings.max_jitter = Duration::ZERO;
    settings.checks.debounce = Duration::from_millis(20);
    settings.receivers = receivers();
    settings.shutdown_grace = Duration::from_secs(5);
    settings
}

async fn wait_until_listening(client: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the daemon never listened on {base}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_never_overlap_and_an_overrun_tick_is_coalesced() {
    let worker = Recorder::with(REPOS, Duration::from_millis(300), Duration::ZERO);
    let loaded = worker.clone();
    let addr = listen();
    let control = Control::new();
    let daemon = tokio::spawn(imagebump::daemon::run(
        move || -> Result<Loaded<Recorder>, String> {
            Ok(Loaded {
                worker: loaded.clone(),
                settings: settings(addr, Schedule::Interval(Duration::from_millis(50))),
                problems: Vec::new(),
            })
        },
        Arc::new(Metrics::new()),
        control.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    control.shutdown();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("stops within 10 s")
        .expect("task")
        .expect("daemon ran");
    let cycles = worker.count(&Scope::All);
    assert_eq!(
        worker.0.max_same_scope.load(Ordering::SeqCst),
        1,
        "cycles overlapped"
    );
    // Without coalescing a 50 ms interval would have fired ~26 times in 1.3 s.
    assert!((2..=6).contains(&cycles), "{cycles} cycles");
    let events = worker.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("end all apps"),
        "the in-flight cycle finished: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_with_its_own_schedule_is_checked_on_it() {
    let worker = Recorder::new(REPOS);
    let loaded = worker.clone();
    let addr = listen();
    let control = Control::new();
    let daemon = tokio::spawn(imagebump::daemon::run(
        move || -> Result<Loaded<Recorder>, String> {
            let mut settings = settings(addr, Schedule::Interval(Duration::from_secs(3600)));
            settings.app_schedules = vec![(
                "blog".into(),
                Schedule::Interval(Duration::from_millis(200)),
            )];
            Ok(Loaded {
                worker: loaded.clone(),
                settings,
                problems: Vec::new(),
            })
        },
        Arc::new(Metrics::new()),
        control.clone(),
    ));
    let blog = Scope::App("blog".into());
    eventually(Duration::from_secs(10), || worker.count(&blog) >= 3).await;
    control.shutdown();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("stops within 10 s")
        .expect("task")
        .expect("daemon ran");
    assert!(worker.count(&blog) >= 3, "{:?}", worker.calls());
    assert_eq!(worker.count(&Scope::All), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_http_on_a_real_port_and_shuts_down_after_the_in_flight_check() {
    let worker = Recorder::with(REPOS, Duration::ZERO, Duration::from_millis(700));
    let loaded = worker.clone();
    let addr = listen();
    let control = Control::new();
    let metrics = Arc::new(Metrics::new());
    let daemon = tokio::spawn(imagebump::daemon::run(
        move || -> Result<Loaded<Recorder>, String> {
            Ok(Loaded {
                worker: loaded.clone(),
                settings: settings(addr, Schedule::Interval(Duration::from_secs(3600))),
                problems: Vec::new(),
            })
        },
        metrics.clone(),
        control.clone(),
    ));
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    wait_until_listening(&client, &base).await;
    eventually(Duration::from_secs(5), || worker.count(&Scope::All) == 1).await;

    let ready = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let case = &cases()[6];
    let body = serde_json::to_vec(&case.body).expect("json");
    let answer = client
        .post(format!("{base}/webhook/generic-hmac"))
        .header("content-type", "application/json")
        .header("x-signature", sign("generic-hmac-key", &body))
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(answer.status(), 202);
    let scope = Scope::Repository {
        registry: "registry.example.com".into(),
        repository: "team/app".into(),
    };
    eventually(Duration::from_secs(5), || worker.count(&scope) == 1).await;
    let status: Value = client
        .get(format!("{base}/api/v1/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["apps"][0]["name"], "shop");
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains(
            "imagebump_webhook_events_total{receiver=\"generic-hmac\",outcome=\"accepted\"} 1"
        ),
        "{text}"
    );

    // `imagebump status` prints the same status as a table.
    let status_cli = {
        let base = base.clone();
        Imagebump::new(["status", "--url", &base])
            .output_async()
            .await
    };
    let table = String::from_utf8_lossy(&status_cli.stdout);
    assert!(
        status_cli.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&status_cli.stderr)
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("APP   IMAGE  DEPLOYED  CANDIDATE  LAST CHECK"),
        "{table}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..4], ["shop", "api", "1.4.3", "1.4.3"], "{table}");
    assert_eq!(row.last(), Some(&"-"), "{table}");

    // Shut down while the webhook check (700 ms) is in flight: it finishes, then the daemon exits.
    control.shutdown();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("stops within 10 s")
        .expect("task")
        .expect("daemon ran");
    assert_eq!(
        worker.events().last().map(String::as_str),
        Some("end repository registry.example.com/team/app")
    );
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "still listening after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reload_keeps_the_old_config_and_a_file_change_applies_a_good_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let apps = dir.path().join("apps");
    std::fs::create_dir(&apps).expect("apps dir");
    let config = apps.join("shop.txt");
    // The "config": one repository per line, "broken" makes it invalid.
    std::fs::write(&config, "ghcr.io acme/api\n").expect("write");
    let addr = listen();
    let control = Control::new();
    let metrics = Arc::new(Metrics::new());
    let loads = Arc::new(Mutex::new(Vec::<Recorder>::new()));
    let loader = {
        let config = config.clone();
        let apps = apps.clone();
        let loads = loads.clone();
        move || -> Result<Loaded<Recorder>, String> {
            let text = std::fs::read_to_string(&config).map_err(|error| error.to_string())?;
            if text.contains("broken") {
                return Err(format!("{}:1: not a repository", config.display()));
            }
            let repositories: Vec<(String, String)> = text
                .lines()
                .filter_map(|line| line.split_once(' '))
                .map(|(registry, repository)| (registry.to_string(), repository.to_string()))
                .collect();
            let worker = Recorder(Arc::new(Record {
                repositories,
                apps: vec!["shop".into()],
                ..Record::default()
            }));
            loads.lock().expect("loads").push(worker.clone());
            let mut settings = settings(addr, Schedule::Interval(Duration::from_secs(3600)));
            settings.watch_paths = vec![apps.clone()];
            settings.watch_interval = Duration::from_millis(100);
            Ok(Loaded {
                worker,
                settings,
                problems: Vec::new(),
            })
        }
    };
    let daemon = tokio::spawn(imagebump::daemon::run(
        loader,
        metrics.clone(),
        control.clone(),
    ));
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    wait_until_listening(&client, &base).await;
    let push = |repository: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let body =
                serde_json::to_vec(&json!({"repository": repository, "tag": "1"})).expect("json");
            let answer = client
                .post(format!("{base}/webhook/generic-hmac"))
                .header("content-type", "application/json")
                .header("x-signature", sign("generic-hmac-key", &body))
                .body(body)
                .send()
                .await
                .expect("webhook");
            answer.json::<Value>().await.expect("json")
        }
    };

    // SIGHUP-equivalent with a broken file: rejected, the old worker still serves webhooks.
    std::fs::write(&config, "broken\n").expect("write");
    control.reload();
    eventually(Duration::from_secs(5), || {
        metrics
            .encode()
            .contains("imagebump_config_reloads_total{outcome=\"rejected\"} 1")
    })
    .await;
    assert!(
        metrics
            .encode()
            .contains("imagebump_config_reloads_total{outcome=\"rejected\"} 1")
    );
    assert_eq!(push("ghcr.io/acme/api").await["scheduled"], 1);
    assert_eq!(loads.lock().expect("loads").len(), 1);

    // A valid change in the watched directory is picked up without a signal.
    std::fs::write(&config, "ghcr.io acme/web\n").expect("write");
    eventually(Duration::from_secs(5), || {
        metrics
            .encode()
            .contains("imagebump_config_reloads_total{outcome=\"ok\"} 1")
    })
    .await;
    assert!(
        metrics
            .encode()
            .contains("imagebump_config_reloads_total{outcome=\"ok\"} 1"),
        "{}",
        metrics.encode()
    );
    assert_eq!(push("ghcr.io/acme/web").await["scheduled"], 1);
    assert_eq!(push("ghcr.io/acme/api").await["unknown_repositories"], 1);
    let new_worker = loads
        .lock()
        .expect("loads")
        .last()
        .cloned()
        .expect("a second load");
    let web = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/web".into(),
    };
    eventually(Duration::from_secs(5), || new_worker.count(&web) == 1).await;
    assert_eq!(new_worker.count(&web), 1);

    control.shutdown();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("stops within 10 s")
        .expect("task")
        .expect("daemon ran");
}

#[tokio::test]
async fn an_invalid_initial_config_is_an_error() {
    let result = imagebump::daemon::run(
        || -> Result<Loaded<Recorder>, String> { Err("apps/shop.yaml:3:7: unknown policy".into()) },
        Arc::new(Metrics::new()),
        Control::new(),
    )
    .await;
    let error = result.expect_err("must fail").to_string();
    assert!(
        error.contains("apps/shop.yaml:3:7: unknown policy"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// The real CNCF registry sending its notifications to the daemon.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_registry_notifies_and_one_tag_push_makes_one_check() {
    let addr = listen();
    let mut endpoint =
        NotificationEndpoint::new("imagebump", &format!("http://{addr}/webhook/distribution"));
    endpoint
        .headers
        .push(("Authorization".into(), "Bearer dist-token".into()));
    endpoint.timeout = Duration::from_secs(2);
    endpoint.threshold = 5;
    let registry = TestRegistry::start(RegistryConfig {
        notifications: vec![endpoint],
        ..RegistryConfig::default()
    })
    .await;
    let host = registry.host();
    let pusher = registry.pusher();
    let worker = Recorder::new(&[(host.as_str(), "demo/app"), ("ghcr.io", "acme/api")]);
    let loaded = worker.clone();
    let control = Control::new();
    let metrics = Arc::new(Metrics::new());
    let daemon = tokio::spawn(imagebump::daemon::run(
        move || -> Result<Loaded<Recorder>, String> {
            let mut settings = settings(addr, Schedule::Interval(Duration::from_secs(3600)));
            settings.checks.debounce = Duration::from_millis(100);
            Ok(Loaded {
                worker: loaded.clone(),
                settings,
                problems: Vec::new(),
            })
        },
        metrics.clone(),
        control.clone(),
    ));
    wait_until_listening(&reqwest::Client::new(), &format!("http://{addr}")).await;
    eventually(Duration::from_secs(5), || worker.count(&Scope::All) == 1).await;

    let scope = Scope::Repository {
        registry: host.clone(),
        repository: "demo/app".into(),
    };
    pusher
        .push_image("demo/app", "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await;
    eventually(Duration::from_secs(10), || worker.count(&scope) == 1).await;
    // Blob pushes and the manifest pull that follows must not add a check.
    pusher.pull_manifest("demo/app", "1.0.0").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        worker.count(&scope),
        1,
        "{:?}\nregistry log:\n{}",
        worker.calls(),
        registry.log()
    );
    let text = metrics.encode();
    assert!(
        text.contains(
            "imagebump_webhook_events_total{receiver=\"distribution\",outcome=\"accepted\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "imagebump_webhook_events_total{receiver=\"distribution\",outcome=\"ignored\"}"
        ),
        "{text}"
    );
    assert!(!text.contains("outcome=\"unauthorized\""), "{text}");

    // A later push is a new check.
    pusher
        .push_image("demo/app", "1.0.1", &ImageSpec::new("2026-01-02T00:00:00Z"))
        .await;
    eventually(Duration::from_secs(10), || worker.count(&scope) == 2).await;
    assert_eq!(worker.count(&scope), 2, "registry log:\n{}", registry.log());
    assert_eq!(worker.count(&Scope::All), 1);

    control.shutdown();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("stops within 10 s")
        .expect("task")
        .expect("daemon ran");
}
