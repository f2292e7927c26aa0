//! Notifications against real HTTP receivers on 127.0.0.1 (axum, started by each test): the
//! signed JSON webhook checked the way a receiver would (HMAC over `timestamp.body`, the
//! timestamp's age, the payload's shape), Slack's Block Kit message, retries of a failing sink,
//! and a hanging sink that holds up no pass. The last test runs `imagebump run` against a real
//! registry and git remote.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hmac::{Hmac, Mac};
use imagebump::config::Config;
use imagebump::notify::{Notifier, Observer, Outcome, Retry, State as Failures};
use imagebump::report::{AppError, AppReport, PlannedChange, PullRequestAction};
use serde_json::Value;
use sha2::Sha256;

use crate::support::config::ConfigDir;

const KEY: &str = "a-notification-key-for-the-tests";

/// What a receiver does with each request.
#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    /// 500 for the first N requests, then 200.
    FailFirst(usize),
    AlwaysFail,
    /// Never answers.
    Hang,
    /// 429 with `Retry-After: N` (seconds) for the first request, then 200.
    RateLimited(u64),
}

#[derive(Clone, Debug)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

#[derive(Clone)]
struct ReceiverState {
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// An HTTP receiver on 127.0.0.1:0, serving until the test's runtime ends.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Receiver {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            behaviour,
            seen: Arc::clone(&seen),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (at most 20 s) until `n` requests arrived.
    async fn wait_for(&self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests arrived",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let n = {
        let mut seen = state.seen.lock().unwrap();
        seen.push(Seen {
            headers,
            body,
            at: Instant::now(),
        });
        seen.len()
    };
    match state.behaviour {
        Behaviour::Ok => StatusCode::OK.into_response(),
        Behaviour::FailFirst(k) if n > k => StatusCode::OK.into_response(),
        Behaviour::FailFirst(_) | Behaviour::AlwaysFail => {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Behaviour::Hang => std::future::pending().await,
        Behaviour::RateLimited(_) if n > 1 => StatusCode::OK.into_response(),
        Behaviour::RateLimited(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(axum::http::header::RETRY_AFTER, secs.to_string())],
        )
            .into_response(),
    }
}

/// What a receiver of the `webhook` sink does before trusting a request: the signature over
/// `timestamp.body` with the shared key, and a timestamp no older than 5 minutes.
fn verify(seen: &Seen, key: &str) -> Result<Value, String> {
    let header = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("no {name}"))
    };
    let timestamp: u64 = header("x-imagebump-timestamp")?
        .parse()
        .map_err(|_| "bad timestamp")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(timestamp) > 300 {
        return Err(format!(
            "timestamp {timestamp} is not within 5 minutes of {now}"
        ));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&seen.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    if header("x-imagebump-signature")? != expected {
        return Err("signature mismatch".into());
    }
    serde_json::from_slice(&seen.body).map_err(|e| e.to_string())
}

/// Every outcome the notifier reports, in order.
#[derive(Default)]
struct Outcomes(Mutex<Vec<(String, String, Outcome)>>);

impl Observer for Outcomes {
    fn outcome(&self, sink: &str, event: &str, outcome: Outcome, detail: Option<&str>) {
        if let Some(detail) = detail {
            assert!(!detail.contains("http://"), "a URL in {detail:?}");
        }
        self.0
            .lock()
            .unwrap()
            .push((sink.to_string(), event.to_string(), outcome));
    }
}

impl Outcomes {
    fn of(&self, sink: &str) -> Vec<Outcome> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _, _)| s == sink)
            .map(|(_, _, o)| *o)
            .collect()
    }

    async fn wait_for(&self, sink: &str, n: usize) -> Vec<Outcome> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let outcomes = self.of(sink);
            if outcomes.len() >= n {
                return outcomes;
            }
            assert!(Instant::now() < deadline, "{sink}: only {outcomes:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A config dir whose global file has `notifications` (the sinks' URLs and the key in files
/// beside it) and one app `shop` on a GitHub repository.
fn config(sinks: &[(&str, &str, &Receiver)], settings: &str) -> (ConfigDir, Config) {
    let mut text = format!("notifications:\n{settings}  notify: [");
    text.push_str(
        &sinks
            .iter()
            .map(|(name, _, _)| *name)
            .collect::<Vec<_>>()
            .join(", "),
    );
    text.push_str("]\n  sinks:\n");
    for (name, kind, _) in sinks {
        text.push_str(&format!(
            "    - name: {name}\n      type: {kind}\n      url_file: {name}.url\n"
        ));
        if *kind == "webhook" {
            text.push_str("      secret_file: hmac.key\n");
        }
    }
    let dir = ConfigDir::with_global(&text).app(
        "shop",
        "name: shop\nrepo: https://github.com/acme/deploy.git\nimages:\n  - name: api\n    image: ghcr.io/acme/api\n    policy: {semver: '^1'}\n    targets: [{file: values.yaml, path: api.image.tag}]\n",
    );
    for (name, _, receiver) in sinks {
        dir.write(&format!("{name}.url"), &format!("{}\n", receiver.url));
    }
    dir.write("hmac.key", &format!("{KEY}\n"));
    let loaded = imagebump::config::load(&dir.global()).unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    (dir, loaded.config)
}

fn quick() -> Retry {
    Retry {
        attempts: 3,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    }
}

fn committed() -> AppReport {
    AppReport {
        name: "shop".into(),
        changes: vec![PlannedChange {
            app: "shop".into(),
            image: "ghcr.io/acme/api".into(),
            name: "api".into(),
            file: "values.yaml".into(),
            line: 4,
            from: "1.0.0".into(),
            to: "1.1.0".into(),
            digest: None,
            reason: "1.1.0 is newer".into(),
            tag: "1.1.0".into(),
        }],
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        pushed: true,
        ..AppReport::default()
    }
}

fn failing() -> AppReport {
    AppReport {
        name: "shop".into(),
        errors: vec![AppError::Internal("the registry is down".into())],
        ..AppReport::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_sink_gets_a_signed_event_its_receiver_can_verify() {
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (_dir, config) = config(&[("audit", "webhook", &receiver)], "");
    let outcomes = Arc::new(Outcomes::default());
    let notifier =
        Notifier::start_with(&config, Failures::default(), outcomes.clone(), quick()).unwrap();
    notifier.observe(&[committed()], "2026-12-04T05:00:00Z");

    let seen = receiver.wait_for(1).await;
    let body = verify(&seen[0], KEY).unwrap();
    assert_eq!(body["version"], 1);
    assert_eq!(body["event"], "committed");
    assert_eq!(body["app"], "shop");
    assert_eq!(body["at"], "2026-12-04T05:00:00Z");
    assert_eq!(body["repo"], "https://github.com/acme/deploy.git");
    assert_eq!(body["branch"], "main");
    assert_eq!(
        body["changes"],
        serde_json::json!([{"image": "api", "repository": "ghcr.io/acme/api", "from": "1.0.0", "to": "1.1.0", "file": "values.yaml", "line": 4}])
    );
    assert_eq!(body["commit"], "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(
        body["commit_url"],
        "https://github.com/acme/deploy/commit/0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(body["pull_request"], Value::Null);
    assert_eq!(seen[0].headers["x-imagebump-event"], "committed");
    assert_eq!(
        seen[0].headers["x-imagebump-delivery"].to_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    assert_eq!(seen[0].headers["content-type"], "application/json");
    // The check can fail: another key, or a body changed on the way, is refused.
    assert_eq!(
        verify(&seen[0], "another-key-another-key-another").unwrap_err(),
        "signature mismatch"
    );
    let mut tampered = seen[0].clone();
    tampered.body = Bytes::from(String::from_utf8_lossy(&seen[0].body).replace("1.1.0", "6.6.6"));
    assert_eq!(verify(&tampered, KEY).unwrap_err(), "signature mismatch");
    assert_eq!(
        outcomes.wait_for("audit", 1).await,
        vec![Outcome::Delivered]
    );
    check_the_documented_receiver(&seen[0], &body);
}

/// docs/notifications.md: its example payload has the fields a real one has, and its shell
/// recipe computes the signature the request carries.
fn check_the_documented_receiver(seen: &Seen, body: &Value) {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/notifications.md"),
    )
    .unwrap();
    let block = |fence: &str| {
        docs.split(fence)
            .nth(1)
            .and_then(|rest| rest.split("\n```").next())
            .unwrap_or_else(|| panic!("no {fence} block"))
            .to_string()
    };
    let example: Value = serde_json::from_str(&block("```json\n")).unwrap();
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&example), keys(body));
    assert_eq!(keys(&example["changes"][0]), keys(&body["changes"][0]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body.json"), &seen.body).unwrap();
    let out = std::process::Command::new("sh")
        .args(["-c", &block("```sh\n")])
        .current_dir(dir.path())
        .env(
            "TS",
            seen.headers["x-imagebump-timestamp"].to_str().unwrap(),
        )
        .env("KEY", KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        seen.headers["x-imagebump-signature"].to_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slack_sink_gets_a_block_kit_message() {
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (_dir, config) = config(&[("team", "slack", &receiver)], "");
    let outcomes = Arc::new(Outcomes::default());
    let notifier =
        Notifier::start_with(&config, Failures::default(), outcomes.clone(), quick()).unwrap();
    let mut report = committed();
    report.pull_request = Some("https://github.com/acme/deploy/pull/12".into());
    report.pull_request_action = Some(PullRequestAction::Opened);
    notifier.observe(&[report], "2026-12-04T05:00:00Z");

    let seen = receiver.wait_for(1).await;
    // No signature headers: the incoming webhook URL is Slack's secret.
    assert!(seen[0].headers.get("x-imagebump-signature").is_none());
    let message: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        message["text"],
        "shop: pull request opened (1 image): api 1.0.0 → 1.1.0"
    );
    let blocks = message["blocks"].as_array().unwrap();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["header", "section", "context"]);
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(
        blocks[0]["text"]["text"],
        "shop: pull request opened (1 image)"
    );
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    assert_eq!(
        blocks[1]["text"]["text"],
        "*api* (`ghcr.io/acme/api`): `1.0.0` → `1.1.0`"
    );
    let context = blocks[2]["elements"][0]["text"].as_str().unwrap();
    assert!(
        context.contains("<https://github.com/acme/deploy/pull/12|pull request>"),
        "{context}"
    );
    assert!(
        context.contains("<https://github.com/acme/deploy/commit/0123456789abcdef0123456789abcdef01234567|0123456789ab>"),
        "{context}"
    );
    assert_eq!(outcomes.wait_for("team", 1).await, vec![Outcome::Delivered]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_sink_is_retried_and_given_up_after_its_attempts() {
    let flaky = Receiver::start(Behaviour::FailFirst(1)).await;
    let down = Receiver::start(Behaviour::AlwaysFail).await;
    let (_dir, config) = config(
        &[("flaky", "webhook", &flaky), ("down", "webhook", &down)],
        "",
    );
    let outcomes = Arc::new(Outcomes::default());
    let notifier =
        Notifier::start_with(&config, Failures::default(), outcomes.clone(), quick()).unwrap();
    notifier.observe(&[committed()], "2026-12-04T05:00:00Z");

    assert_eq!(
        outcomes.wait_for("flaky", 2).await,
        vec![Outcome::Retried, Outcome::Delivered]
    );
    assert_eq!(
        outcomes.wait_for("down", 3).await,
        vec![Outcome::Retried, Outcome::Retried, Outcome::Failed]
    );
    // The same event each time (one id), signed anew.
    let seen = flaky.wait_for(2).await;
    let ids: Vec<&str> = seen
        .iter()
        .map(|s| s.headers["x-imagebump-delivery"].to_str().unwrap())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert!(seen.iter().all(|s| verify(s, KEY).is_ok()));
    assert_eq!(down.wait_for(3).await.len(), 3, "attempts: 3");
}

/// A sink that answers 429 with `Retry-After` (as Slack does) is not asked again before that
/// many seconds, though the backoff between tries is 10 ms; the event is then delivered.
#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_sink_is_asked_again_only_after_its_retry_after() {
    let limited = Receiver::start(Behaviour::RateLimited(1)).await;
    let (_dir, config) = config(&[("limited", "slack", &limited)], "");
    let outcomes = Arc::new(Outcomes::default());
    let notifier =
        Notifier::start_with(&config, Failures::default(), outcomes.clone(), quick()).unwrap();
    notifier.observe(&[committed()], "2026-12-04T05:00:00Z");

    assert_eq!(
        outcomes.wait_for("limited", 2).await,
        vec![Outcome::Retried, Outcome::Delivered]
    );
    let seen = limited.wait_for(2).await;
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "asked again after {gap:?}, before the sink's Retry-After of 1 s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_sink_holds_up_no_pass_and_what_does_not_fit_is_dropped_and_counted() {
    let hanging = Receiver::start(Behaviour::Hang).await;
    let healthy = Receiver::start(Behaviour::Ok).await;
    // Two queued events per sink, and an hour to answer: a pass that waited for the hanging
    // sink would not end within the test's life.
    let (_dir, config) = config(
        &[
            ("hanging", "slack", &hanging),
            ("healthy", "webhook", &healthy),
        ],
        "  queue: 2\n  timeout: 1h\n  failures: 2\n",
    );
    let outcomes = Arc::new(Outcomes::default());
    let notifier =
        Notifier::start_with(&config, Failures::default(), outcomes.clone(), quick()).unwrap();

    notifier.observe(&[committed()], "t1");
    // The hanging sink holds the first event in flight...
    hanging.wait_for(1).await;
    // ...the next two wait in its queue (committed, failed), the last two (committed,
    // recovered) find it full. The healthy sink keeps up (each observed pass waits for it here,
    // so its own queue never fills).
    let mut delivered = 1;
    outcomes.wait_for("healthy", delivered).await;
    for (report, events) in [
        (committed(), 1),
        (failing(), 0),
        (failing(), 1),
        (committed(), 2),
    ] {
        notifier.observe(&[report], "t2");
        delivered += events;
        outcomes.wait_for("healthy", delivered).await;
    }
    assert_eq!(
        outcomes.of("hanging"),
        vec![Outcome::Dropped, Outcome::Dropped],
        "the events after the queued ones are dropped and counted"
    );
    // The healthy sink got everything: committed, committed, failed (2 in a row), then
    // committed and recovered.
    let seen = healthy.wait_for(5).await;
    let events: Vec<String> = seen
        .iter()
        .map(|s| {
            verify(s, KEY).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        events,
        ["committed", "committed", "failed", "committed", "recovered"]
    );
    let failed = verify(&seen[2], KEY).unwrap();
    assert_eq!(failed["failures"], 2);
    assert_eq!(failed["error"], "internal error: the registry is down");
    assert_eq!(
        hanging.seen().len(),
        1,
        "one request in flight, never answered"
    );
}

const VALUES: &str = "\
# values
api:
  image:
    repository: REGISTRY/team/api
    tag: 1.0.0
";

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_notifies_each_commit_while_a_hanging_sink_holds_nothing_up() {
    use crate::support::free_port;
    use crate::support::git::BareRepo;
    use crate::support::registry::{ImageSpec, TestRegistry};

    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    let first = pusher
        .push_image("team/api", "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await;
    pusher
        .push_manifest("team/api", "1.1.0", &first.media_type, &first.body)
        .await;
    let repo = BareRepo::with_files(
        "main",
        &[("values.yaml", &VALUES.replace("REGISTRY", &host))],
    );
    let audit = Receiver::start(Behaviour::Ok).await;
    let stuck = Receiver::start(Behaviour::Hang).await;
    let port = free_port();
    let dir = ConfigDir::new(
        &host,
        &format!(
            "interval: 1s\nwebhook:\n  listen: 127.0.0.1:{port}\nnotifications:\n  timeout: 1h\n  attempts: 1\n  queue: 1\n  sinks:\n    - {{name: audit, type: webhook, url_env: AUDIT_URL, secret_env: AUDIT_KEY}}\n    - {{name: stuck, type: slack, url_env: STUCK_URL}}\n"
        ),
    )
    .app(
        "shop",
        &format!(
            "name: shop\nrepo: {}\nnotify: [audit, stuck]\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: values.yaml, path: api.image.tag}}\n",
            repo.file_url()
        ),
    );
    let log = dir.path().join("daemon.log");
    let _daemon = dir
        .imagebump(["run", "--log-level", "info"])
        .env("AUDIT_URL", &audit.url)
        .env("AUDIT_KEY", KEY)
        .env("STUCK_URL", &stuck.url)
        .spawn(
            std::process::Stdio::null(),
            std::fs::File::create(&log).unwrap(),
        );
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let get = |path: &str| {
        let url = format!("http://127.0.0.1:{port}{path}");
        async move {
            match reqwest::get(url).await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        }
    };

    // The first pass commits 1.1.0; the audit sink is told, with the commit that reached the
    // remote. The stuck sink takes the same event and never answers.
    let seen = audit.wait_for(1).await;
    let event = verify(&seen[0], KEY).unwrap();
    assert_eq!(event["event"], "committed", "{}", daemon_log());
    assert_eq!(event["changes"][0]["from"], "1.0.0");
    assert_eq!(event["changes"][0]["to"], "1.1.0");
    assert_eq!(event["commit"].as_str(), repo.head("main").as_deref());
    stuck.wait_for(1).await;

    // Later passes are not held up by it: each new tag is committed and told to the audit sink
    // while the stuck sink still holds its first event (its queue fills, then drops).
    for (n, tag) in [(2, "1.2.0"), (3, "1.3.0")] {
        pusher
            .push_manifest("team/api", tag, &first.media_type, &first.body)
            .await;
        let seen = audit.wait_for(n).await;
        let event = verify(&seen[n - 1], KEY).unwrap();
        assert_eq!(event["changes"][0]["to"], tag, "{}", daemon_log());
        assert!(
            repo.show("main", "values.yaml")
                .contains(&format!("tag: {tag}"))
        );
    }
    assert_eq!(stuck.seen().len(), 1);

    // The outcome is counted once the sink's answer is read, just after the receiver saw it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut metrics = get("/metrics").await;
    while !metrics.contains("imagebump_notifications_total{sink=\"audit\",outcome=\"delivered\"} 3")
    {
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        metrics = get("/metrics").await;
    }
    for expected in [
        "imagebump_notifications_total{sink=\"audit\",outcome=\"delivered\"} 3",
        "imagebump_notifications_total{sink=\"audit\",outcome=\"failed\"} 0",
        "imagebump_notifications_total{sink=\"stuck\",outcome=\"dropped\"} 1",
        "imagebump_notifications_total{sink=\"stuck\",outcome=\"delivered\"} 0",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected:?} in:\n{metrics}"
        );
    }
    let page = get("/").await;
    assert!(
        page.contains("<h2 id=\"notifications\">Notifications</h2>"),
        "{page}"
    );
    assert!(
        page.contains("dropped: the queue was full (the sink is slow or down)"),
        "{page}"
    );
    // The sinks' URLs and the key are secrets: never in the log, the page or the metrics.
    for text in [daemon_log(), page, metrics] {
        for secret in [&audit.url, &stuck.url, &KEY.to_string()] {
            assert!(!text.contains(secret.as_str()), "{secret} leaked:\n{text}");
        }
    }
}

/// `imagebump validate` refuses a sink URL or key written in the config, and an app naming a
/// sink the global file does not define, each with its file and line, never echoing the secret.
#[test]
fn validate_refuses_inline_sink_secrets_and_unknown_sinks_with_their_lines() {
    let dir = ConfigDir::with_global(
        "notifications:\n  sinks:\n    - name: team\n      type: slack\n      url: https://hooks.slack.com/services/T000/B000/sekrit\n    - name: audit\n      type: webhook\n      url_env: AUDIT_URL\n      secret: inline-hmac-key-inline\n",
    )
    .app(
        "shop",
        "name: shop\nrepo: https://example.com/deploy.git\nnotify: [audt]\nimages:\n  - image: nginx\n    policy: {semver: '^1'}\n    targets: [{file: k8s/deploy.yaml}]\n",
    );
    let out = dir.imagebump(["validate"]).output();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("imagebump.yaml:5:12: a notification sink's `url` is a secret and is never written in the config: name the environment variable (`url_env`) or file (`url_file`) holding it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("imagebump.yaml:9:15: a notification sink's `secret` is a secret"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("sekrit") && !stderr.contains("inline-hmac-key"),
        "{stderr}"
    );

    // With the global file fixed, the app's unknown sink is the problem.
    dir.edit_global(|text| {
        text.replace(
            "url: https://hooks.slack.com/services/T000/B000/sekrit",
            "url_env: SLACK_URL",
        )
        .replace("secret: inline-hmac-key-inline", "secret_env: AUDIT_KEY")
    });
    let out = dir.imagebump(["validate"]).output();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "apps/shop.yaml:3:10: unknown notification sink `audt`; did you mean `audit`?"
        ),
        "{stderr}"
    );
}

/// A real failure and recovery through `imagebump run`: the app's target file is missing from
/// its repository (every check fails), so after `failures: 2` checks the sink is told `failed`
/// with the error; once the file is pushed, the next check commits and tells `committed` and
/// `recovered`.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_tells_a_failing_app_once_and_its_recovery() {
    use crate::support::free_port;
    use crate::support::git::BareRepo;
    use crate::support::registry::{ImageSpec, TestRegistry};

    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pushed = registry
        .pusher()
        .push_image("team/api", "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await;
    registry
        .pusher()
        .push_manifest("team/api", "1.1.0", &pushed.media_type, &pushed.body)
        .await;
    let repo = BareRepo::with_files("main", &[("README.md", "config\n")]);
    let audit = Receiver::start(Behaviour::Ok).await;
    let port = free_port();
    let dir = ConfigDir::new(
        &host,
        &format!(
            "interval: 1s\nwebhook:\n  listen: 127.0.0.1:{port}\nnotifications:\n  failures: 2\n  notify: [audit]\n  sinks:\n    - {{name: audit, type: webhook, url_env: AUDIT_URL, secret_file: hmac.key}}\n"
        ),
    )
    .app(
        "shop",
        &format!(
            "name: shop\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: values.yaml, path: api.image.tag}}\n",
            repo.file_url()
        ),
    );
    dir.write("hmac.key", KEY);
    let log = dir.path().join("daemon.log");
    let _daemon = dir
        .imagebump(["run", "--log-level", "info"])
        .env("AUDIT_URL", &audit.url)
        .spawn(
            std::process::Stdio::null(),
            std::fs::File::create(&log).unwrap(),
        );

    let seen = audit.wait_for(1).await;
    let failed = verify(&seen[0], KEY).unwrap();
    assert_eq!(
        failed["event"],
        "failed",
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(failed["failures"], 2);
    assert!(
        failed["error"].as_str().unwrap().contains("values.yaml"),
        "{failed}"
    );

    repo.push_files(
        "main",
        &[("values.yaml", &VALUES.replace("REGISTRY", &host))],
        "add the values",
    );
    let seen = audit.wait_for(3).await;
    let events: Vec<Value> = seen.iter().map(|s| verify(s, KEY).unwrap()).collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // Between the failed event and the fix, more failed checks told nothing.
    assert_eq!(names, ["failed", "committed", "recovered"]);
    assert_eq!(events[1]["changes"][0]["to"], "1.1.0");
    assert!(
        events[2]["failures"].as_u64().unwrap() >= 2,
        "{}",
        events[2]
    );
}

/// `imagebump once` sends no notification and listens for no webhook, so a sink's or a
/// receiver's unset secret variable must not stop it: the pass runs and commits, and the unset
/// variables are named on stderr as unused by `once`. `validate` still names each one, and `run`,
/// which needs them, still refuses to start without them.
#[tokio::test(flavor = "multi_thread")]
async fn once_runs_without_the_daemon_only_secrets_and_run_still_needs_them() {
    use crate::support::git::BareRepo;
    use crate::support::registry::{ImageSpec, TestRegistry};

    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    for tag in ["1.0.0", "1.1.0"] {
        pusher
            .push_image("team/api", tag, &ImageSpec::new("2026-01-01T00:00:00Z"))
            .await;
    }
    let repo = BareRepo::with_files(
        "main",
        &[(
            "values.yaml",
            &format!("image:\n  repository: {host}/team/api\n  tag: 1.0.0\n"),
        )],
    );
    let unset = "IMAGEBUMP_TEST_SURELY_UNSET";
    let dir = ConfigDir::new(
        &host,
        &format!(
            "notifications:\n  sinks:\n    - name: team\n      type: slack\n      url_env: {unset}_SLACK\n    - name: audit\n      type: webhook\n      url_env: {unset}_AUDIT_URL\n      secret_env: {unset}_AUDIT_KEY\nwebhook:\n  receivers:\n    - type: distribution\n      secret_env: {unset}_RECEIVER\n"
        ),
    )
    .app(
        "shop",
        &format!(
            "name: shop\nrepo: {}\nbranch: main\nimages:\n  - image: {host}/team/api\n    policy: {{semver: '^1'}}\n    targets: [{{file: values.yaml, path: image.tag}}]\n",
            repo.file_url()
        ),
    );

    let out = dir.imagebump(["once"]).output();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::imagebump::text(&out)
    );
    assert!(repo.show("main", "values.yaml").contains("tag: 1.1.0"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for var in ["SLACK", "AUDIT_URL", "AUDIT_KEY", "RECEIVER"] {
        assert!(
            stderr.contains(&format!("`{unset}_{var}`")) && stderr.contains("unused by `once`"),
            "{stderr}"
        );
    }

    let out = dir.imagebump(["validate"]).output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for var in ["SLACK", "AUDIT_URL", "AUDIT_KEY", "RECEIVER"] {
        assert!(
            stderr.contains(&format!("environment variable `{unset}_{var}`")),
            "{stderr}"
        );
    }

    let out = dir.imagebump(["run"]).output();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("`{unset}_SLACK`")), "{stderr}");
}
