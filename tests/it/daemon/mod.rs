//! The daemon against a recording fake worker (the engine is another module), one file per
//! concern: [`webhooks`] (every receiver, accepted, and refused without side effect, and no
//! secret in the logs), [`queue`] (debounce, caps, follow-ups, concurrency with a long poll,
//! shutdown, panics), [`status`] (metrics, status, health), [`serve`] (the whole daemon on a
//! real port: non-overlapping cycles, schedules, reload, shutdown) and [`registry`] (the real
//! `docker-registry` sending its notifications). This file holds the fake worker and the
//! harnesses they share.

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

mod queue;
mod registry;
mod retry;
mod serve;
mod status;
mod webhooks;

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
    /// Its checks write nothing (as one that listed the tags before the pushed one was stored).
    writes_nothing: bool,
    /// The tags its checks list for every repository (kept once a check ran, as the engine's
    /// worker keeps them).
    listing: Vec<String>,
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

    /// A worker whose checks write nothing.
    fn writing_nothing(repositories: &[(&str, &str)]) -> Recorder {
        let recorder = Recorder::new(repositories);
        Recorder(Arc::new(Record {
            repositories: recorder.0.repositories.clone(),
            apps: recorder.0.apps.clone(),
            writes_nothing: true,
            ..Record::default()
        }))
    }

    /// A worker whose checks take `delay` and list `tags`.
    fn listing(repositories: &[(&str, &str)], delay: Duration, tags: Vec<String>) -> Recorder {
        let recorder = Recorder::with(repositories, Duration::ZERO, delay);
        Recorder(Arc::new(Record {
            repositories: recorder.0.repositories.clone(),
            apps: recorder.0.apps.clone(),
            other_delay: delay,
            listing: tags,
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
            why: None,
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
                apps: if record.writes_nothing {
                    Vec::new()
                } else {
                    vec![updated_app("shop")]
                },
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

    fn listed(&self, _registry: &str, _repository: &str) -> Option<Arc<Vec<String>>> {
        let checked = !self.calls().is_empty();
        (checked && !self.0.listing.is_empty()).then(|| Arc::new(self.0.listing.clone()))
    }
}

/// Waits until `condition` holds, at most `limit` (then the caller's assertion reports it).
/// On tokio's clock, so a test on the paused clock waits in virtual time.
async fn eventually(limit: Duration, condition: impl Fn() -> bool) {
    let start = tokio::time::Instant::now();
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

/// A harness whose burst wait is capped at ten debounce periods.
fn harness(worker: Recorder, debounce: Duration) -> Harness {
    harness_capped(worker, debounce, debounce * 10)
}

fn harness_capped(worker: Recorder, debounce: Duration, debounce_max: Duration) -> Harness {
    let metrics = Arc::new(Metrics::new());
    let shutdown = Shutdown::new();
    let checks = Checks::new(
        Arc::new(worker.clone()),
        CheckOptions {
            debounce,
            debounce_max,
            max_concurrent: 4,
            ..CheckOptions::default()
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
