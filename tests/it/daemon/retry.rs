//! Retries of failed webhook checks, on tokio's paused clock: a transient failure is checked
//! again after 2 s, 4 s, 8 s ... up to the cap; attempts stop at `max_attempts` (counted as
//! exhausted); a full cycle or a new request cancels a waiting retry; a failure that needs a
//! person is not retried; with retries off, a failed webhook check is still confirmed once.
//! The status page shows a retry waiting (headless Chromium). End to end, `imagebump run` with
//! the real `docker-registry` behind a proxy answering 503 and a real git remote commits a
//! pushed tag through the retries, without a poll.

use std::future::Future;

use imagebump::daemon::RetryOptions;
use imagebump::registry::RegistryError;
use imagebump::report::{AppError, ImageError, SettingsError};

use super::*;

/// A worker whose repository checks fail the first `failures` times (with `error`), and whose
/// full cycles succeed. Records when each check started, on tokio's clock.
#[derive(Clone)]
struct Flaky {
    failures: usize,
    retryable: bool,
    /// The error of a failed check, instead of [`error`]'s.
    failing_with: Option<AppError>,
    /// An app with its own schedule: in the reports of repository checks, not of full cycles.
    own_schedule: Option<&'static str>,
    calls: Arc<Mutex<Vec<(Scope, Duration)>>>,
    start: tokio::time::Instant,
}

impl Flaky {
    fn new(failures: usize, retryable: bool) -> Flaky {
        Flaky {
            failures,
            retryable,
            failing_with: None,
            own_schedule: None,
            calls: Arc::default(),
            start: tokio::time::Instant::now(),
        }
    }

    fn failing_with(mut self, error: AppError) -> Flaky {
        self.failing_with = Some(error);
        self
    }

    /// When each check of `scope` started, in whole seconds since the worker was made.
    fn starts(&self, scope: &Scope) -> Vec<u64> {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|(s, _)| s == scope)
            .map(|(_, at)| at.as_secs())
            .collect()
    }
}

fn error(retryable: bool) -> AppError {
    if retryable {
        AppError::Image {
            image: "api".into(),
            error: Box::new(ImageError::Registry(RegistryError::Unreachable {
                registry: "ghcr.io".into(),
                repository: "acme/api".into(),
                detail: "HTTP 503 from <edge-proxy>".into(),
            })),
        }
    } else {
        AppError::Settings(SettingsError::MissingEnv {
            var: "GHCR_TOKEN".into(),
            what: "registry password".into(),
        })
    }
}

impl Worker for Flaky {
    fn check(&self, scope: Scope) -> impl Future<Output = CycleReport> + Send {
        let this = self.clone();
        async move {
            let failed = {
                let mut calls = this.calls.lock().expect("calls");
                calls.push((scope.clone(), this.start.elapsed()));
                scope != Scope::All
                    && calls.iter().filter(|(s, _)| *s != Scope::All).count() <= this.failures
            };
            let mut apps = vec![updated_app("shop")];
            if let Some(name) = this.own_schedule
                && scope != Scope::All
            {
                apps.push(updated_app(name));
            }
            for app in apps.iter_mut().filter(|_| failed) {
                app.errors = vec![
                    this.failing_with
                        .clone()
                        .unwrap_or_else(|| error(this.retryable)),
                ];
                app.changes.clear();
                app.pushed = false;
            }
            CycleReport {
                apps,
                duration: Duration::from_millis(1),
            }
        }
    }

    fn repositories(&self) -> Vec<(String, String)> {
        vec![("ghcr.io".into(), "acme/api".into())]
    }
}

fn api() -> Scope {
    Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    }
}

fn queue(worker: &Flaky, max_attempts: u32) -> (Arc<Checks<Flaky>>, Arc<Metrics>, Shutdown) {
    queue_with(
        worker,
        RetryOptions {
            max_attempts,
            initial: Duration::from_secs(2),
            max: Duration::from_secs(5),
        },
    )
}

fn queue_with(worker: &Flaky, retry: RetryOptions) -> (Arc<Checks<Flaky>>, Arc<Metrics>, Shutdown) {
    let metrics = Arc::new(Metrics::new());
    let shutdown = Shutdown::new();
    let checks = Checks::new(
        Arc::new(worker.clone()),
        CheckOptions {
            debounce: Duration::from_millis(100),
            debounce_max: Duration::from_secs(1),
            max_concurrent: 4,
            retry,
        },
        metrics.clone(),
        Arc::new(StatusStore::new()),
        shutdown.clone(),
    );
    (checks, metrics, shutdown)
}

fn retries(metrics: &Metrics, outcome: &str) -> u64 {
    let wanted = format!("imagebump_check_retries_total{{outcome=\"{outcome}\"}} ");
    metrics
        .encode()
        .lines()
        .find_map(|line| line.strip_prefix(&wanted).map(|n| n.parse().unwrap_or(0)))
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_is_retried_with_doubling_delays_up_to_the_cap() {
    let worker = Flaky::new(3, true);
    let (checks, metrics, _shutdown) = queue(&worker, 5);
    assert_eq!(checks.request_debounced(api()), Requested::Scheduled);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pending = checks.pending_retries();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!((pending[0].0.clone(), pending[0].1), (api(), 1));
    // The status JSON shows it.
    let status = serde_json::to_value(checks.status().snapshot(true)).expect("json");
    assert_eq!(status["retries"][0]["scope"], "repository ghcr.io/acme/api");
    assert_eq!(status["retries"][0]["attempt"], 1);
    assert_eq!(status["retries"][0]["max_attempts"], 5);
    assert!(status["retries"][0]["at"].is_string(), "{status}");
    assert_eq!(
        status["retries"][0]["last_error"],
        "shop: api: cannot reach ghcr.io (repository acme/api): HTTP 503 from <edge-proxy>"
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    // Failed at 0 s, retried at 2 s (+2), 6 s (+4), 11 s (+8 capped at 5), which succeeded.
    assert_eq!(worker.starts(&api()), [0, 2, 6, 11]);
    assert_eq!(retries(&metrics, "scheduled"), 3);
    assert_eq!(retries(&metrics, "exhausted"), 0);
    assert!(checks.pending_retries().is_empty());
    assert!(checks.status().snapshot(true).retries.is_empty());
}

fn registry_error(error: RegistryError) -> AppError {
    AppError::Image {
        image: "api".into(),
        error: Box::new(ImageError::Registry(error)),
    }
}

/// Regression: a registry whose requests kept failing is left alone by its circuit breaker for
/// a cooldown, and a check meanwhile fails with `Unavailable`, which ended the retries (it was
/// not deemed transient): a webhook's push then waited for the next poll. The retry now comes
/// when the breaker lets requests through again; a registry's `Retry-After` is waited for the
/// same way; a wait longer than `max` is cut to `max`.
#[tokio::test(start_paused = true)]
async fn a_retry_waits_for_the_registry_breaker_or_its_retry_after_instead_of_giving_up() {
    let unavailable = |retry_in: u64| {
        registry_error(RegistryError::Unavailable {
            registry: "ghcr.io".into(),
            repository: "acme/api".into(),
            failures: 3,
            last_error: "HTTP 503".into(),
            retry_in: Duration::from_secs(retry_in),
        })
    };
    let options = RetryOptions {
        max_attempts: 5,
        initial: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };
    // Left alone for 30 s: retried after 30 s (the backoff alone said 2, then 4).
    let worker = Flaky::new(2, true).failing_with(unavailable(30));
    let (checks, metrics, _shutdown) = queue_with(&worker, options.clone());
    checks.request_debounced(api());
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(worker.starts(&api()), [0, 30, 60]);
    assert_eq!(retries(&metrics, "scheduled"), 2);
    assert_eq!(retries(&metrics, "cancelled"), 0);
    // Rate limited with Retry-After: 10 s.
    let worker = Flaky::new(1, true).failing_with(registry_error(RegistryError::RateLimited {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
        retry_after: Some(Duration::from_secs(10)),
    }));
    let (checks, _metrics, _shutdown) = queue_with(&worker, options.clone());
    checks.request_debounced(api());
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(worker.starts(&api()), [0, 10]);
    // A cooldown of 10 minutes: the retry comes at `max`.
    let worker = Flaky::new(1, true).failing_with(unavailable(600));
    let (checks, _metrics, _shutdown) = queue_with(&worker, options);
    checks.request_debounced(api());
    tokio::time::sleep(Duration::from_secs(900)).await;
    assert_eq!(worker.starts(&api()), [0, 60]);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_max_attempts_and_say_so() {
    let worker = Flaky::new(usize::MAX, true);
    let (checks, metrics, _shutdown) = queue(&worker, 2);
    checks.request_debounced(api());
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(worker.starts(&api()), [0, 2, 6]);
    assert_eq!(retries(&metrics, "scheduled"), 2);
    assert_eq!(retries(&metrics, "exhausted"), 1);
    assert!(checks.pending_retries().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_full_cycle_cancels_a_waiting_retry() {
    let worker = Flaky::new(usize::MAX, true);
    let (checks, metrics, _shutdown) = queue(&worker, 5);
    checks.request_debounced(api());
    tokio::time::sleep(Duration::from_secs(1)).await;
    checks.request_now(Scope::All);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(worker.starts(&api()), [0]);
    assert_eq!(worker.starts(&Scope::All), [1]);
    assert_eq!(retries(&metrics, "cancelled"), 1);
}

/// The safety-net poll of other shards' apps is a poll: not retried (their owners poll them,
/// and its own next tick comes).
#[tokio::test(start_paused = true)]
async fn the_other_shards_safety_net_is_not_retried() {
    let worker = Flaky::new(usize::MAX, true);
    let (checks, metrics, _shutdown) = queue(&worker, 5);
    checks.request_now(Scope::OtherShards);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(worker.starts(&Scope::OtherShards), [0]);
    assert_eq!(retries(&metrics, "scheduled"), 0);
}

/// Regression: a full cycle cancelled a waiting repository retry although the retried check
/// had failed on an app the cycle left out (one with its own schedule, or another shard's):
/// that app's pushed tag then waited for its own next tick, possibly a day away with a cron.
/// The retry is kept when the cycle left out a failing app, and cancelled when it checked them
/// all.
#[tokio::test(start_paused = true)]
async fn a_full_cycle_keeps_a_repository_retry_for_the_apps_it_left_out() {
    let mut worker = Flaky::new(1, true);
    worker.own_schedule = Some("nightly");
    let (checks, metrics, _shutdown) = queue(&worker, 5);
    checks.request_debounced(api());
    tokio::time::sleep(Duration::from_secs(1)).await;
    checks.request_now(Scope::All);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(worker.starts(&Scope::All), [1]);
    assert_eq!(worker.starts(&api()), [0, 2]);
    assert_eq!(retries(&metrics, "cancelled"), 0);
    assert!(checks.pending_retries().is_empty());
}

/// An app with its own schedule is left out of full cycles: its scheduled check is retried,
/// and a full cycle meanwhile does not cancel that retry.
#[tokio::test(start_paused = true)]
async fn a_full_cycle_keeps_the_retry_of_an_app_with_its_own_schedule() {
    let worker = Flaky::new(1, true);
    let (checks, metrics, _shutdown) = queue(&worker, 5);
    let app = Scope::App("shop".into());
    checks.request_now(app.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    checks.request_now(Scope::All);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(worker.starts(&app), [0, 2]);
    assert_eq!(worker.starts(&Scope::All), [1]);
    assert_eq!(retries(&metrics, "scheduled"), 1);
    assert_eq!(retries(&metrics, "cancelled"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_new_request_replaces_a_waiting_retry_and_restarts_the_count() {
    let worker = Flaky::new(2, true);
    let (checks, metrics, _shutdown) = queue(&worker, 5);
    checks.request_debounced(api());
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The retry due at 2 s is cancelled; the request is checked at once (fails, retried 2 s
    // later, at 3 s, which succeeds): no check at 2 s.
    checks.request_debounced(api());
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(worker.starts(&api()), [0, 1, 3]);
    assert_eq!(retries(&metrics, "cancelled"), 1);
    assert_eq!(retries(&metrics, "scheduled"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failure_needing_a_person_is_not_retried() {
    let worker = Flaky::new(usize::MAX, false);
    let (checks, metrics, _shutdown) = queue(&worker, 5);
    // Announcing a tag the check lists: no confirmation check either.
    checks.request_announced(api(), &["1.4.3".to_string()]);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(worker.starts(&api()), [0]);
    assert_eq!(retries(&metrics, "scheduled"), 0);
}

/// With retries off (`max_attempts: 0`), a webhook check that failed transiently is confirmed
/// once a debounce later, as any leading check that wrote nothing (before retries existed):
/// turning retries off must not take that away.
#[tokio::test(start_paused = true)]
async fn with_retries_off_a_transient_failure_is_still_confirmed_once() {
    let worker = Flaky::new(usize::MAX, true);
    let (checks, metrics, _shutdown) = queue(&worker, 0);
    checks.request_debounced(api());
    tokio::time::sleep(Duration::from_secs(600)).await;
    let starts = worker.calls.lock().expect("calls").len();
    assert_eq!(starts, 2, "the check and its confirmation");
    assert_eq!(retries(&metrics, "scheduled"), 0);
    assert_eq!(retries(&metrics, "exhausted"), 0);
    assert!(checks.pending_retries().is_empty());
}

#[tokio::test(start_paused = true)]
async fn no_retry_fires_after_shutdown() {
    let worker = Flaky::new(usize::MAX, true);
    let (checks, _metrics, shutdown) = queue(&worker, 5);
    checks.request_debounced(api());
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.trigger();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(worker.starts(&api()), [0]);
}

/// The status page, loaded in headless Chromium from the daemon's router on a real port, lists
/// the retry waiting: its scope, attempt n of max, when it is due and what the check failed
/// with, escaped (the error names `<edge-proxy>`: text, never an element).
#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_in_a_real_browser_lists_the_retries_waiting() {
    let worker = Flaky::new(usize::MAX, true);
    // A long first delay: the retry still waits while the browser loads the page.
    let (checks, _metrics, shutdown) = queue_with(
        &worker,
        RetryOptions {
            max_attempts: 5,
            initial: Duration::from_secs(120),
            max: Duration::from_secs(300),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = router(HttpState::new(&checks, Vec::new(), true));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    checks.request_debounced(api());
    eventually(Duration::from_secs(10), || {
        !checks.pending_retries().is_empty()
    })
    .await;
    let status = checks.status().snapshot(true);
    assert_eq!(status.retries.len(), 1, "{status:?}");
    let due = status.retries[0].at.clone().expect("a due time");
    let url = format!("http://127.0.0.1:{port}/");
    let dom = tokio::task::spawn_blocking(move || crate::run::chromium(&url, &["--dump-dom"]))
        .await
        .expect("chromium");
    for expected in [
        "<h2 id=\"retries-title\">Retries waiting</h2>".to_string(),
        "<th scope=\"row\"><code>repository ghcr.io/acme/api</code></th>".to_string(),
        "<td class=\"attempt\">1 of 5</td>".to_string(),
        format!("<td class=\"due\"><time datetime=\"{due}\">{due}</time></td>"),
        "<td class=\"last-error\">shop: api: cannot reach ghcr.io (repository acme/api): HTTP 503 from &lt;edge-proxy&gt;</td>".to_string(),
    ] {
        assert!(
            dom.contains(&expected),
            "the rendered page lacks {expected:?}:\n{dom}"
        );
    }
    assert!(!dom.contains("<edge-proxy>"), "{dom}");
    shutdown.trigger();
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// End to end: `imagebump run`, the real `docker-registry` behind a fault-injecting proxy, a real
// git remote.

/// A registry notification announcing `repository:tag` pushed to `host`.
fn push_event(host: &str, repository: &str, tag: &str) -> String {
    format!(
        r#"{{"events":[{{"action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"{repository}","tag":"{tag}"}},"request":{{"host":"{host}"}}}}]}}"#
    )
}

/// The daemon polls once an hour; a webhook announces a new tag while the registry answers 503
/// to tag lists (a load balancer in front of it failing for a few seconds): the webhook check
/// fails (after the registry client's own 4 attempts), its confirmation would too, the first
/// retry 2 s later still fails, and the second, 4 s after that, lists the tag and commits it.
/// No poll ran meanwhile: only the retries can explain the commit (without them, nothing is
/// committed before the next poll, an hour later). The metric counts the two retries, the
/// status showed the retry waiting with the error and the configured `max_attempts`, and shows
/// none once it succeeded.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_check_that_failed_transiently_is_retried_and_commits_without_a_poll() {
    use crate::run::{Daemon, api_at_1_0_0};
    use crate::support::config::ConfigDir;
    use crate::support::registry::{Fault, FaultProxy};

    let port = support::free_port();
    let registry = TestRegistry::start_plain().await;
    let proxy = FaultProxy::start(&registry.url()).await;
    let host = proxy.host();
    let (first, repo) = api_at_1_0_0(&registry, &host).await;
    let pusher = registry.pusher();
    let dir = ConfigDir::new(
        &host,
        &format!(
            "interval: 1h\nwebhook:\n  listen: 127.0.0.1:{port}\n  retry: {{max_attempts: 3, initial: 2s}}\n  receivers:\n    - type: distribution\n      secret_env: WEBHOOK_TOKEN\n"
        ),
    )
    .app(
        "shop",
        &format!(
            "name: shop\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: values.yaml, path: api.image.tag}}\n",
            repo.file_url()
        ),
    );
    let daemon = tokio::task::spawn_blocking(move || Daemon::start(dir, port))
        .await
        .unwrap();
    assert_eq!(
        repo.log("main").len(),
        1,
        "nothing to do on the first cycle"
    );

    pusher
        .push_manifest("team/api", "1.1.0", &first.media_type, &first.body)
        .await;
    // Two checks' worth of 503s: each tags list is tried 4 times by the registry client.
    proxy.fault(
        "/tags/list",
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        8,
    );
    let event = push_event(&host, "team/api", "1.1.0");
    tokio::task::spawn_blocking(move || {
        assert_eq!(daemon.post_webhook(&event), Some(202), "{}", daemon.log());
        // The status shows the retry waiting, with what the check failed with.
        let deadline = Instant::now() + Duration::from_secs(20);
        let waiting = loop {
            let (_, body) = daemon.get("/api/v1/status").unwrap_or_default();
            let status: Value = serde_json::from_str(&body).unwrap_or_default();
            if status["retries"][0].is_object() {
                break status["retries"][0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "no retry shown; log:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(waiting["scope"], format!("repository {host}/team/api"));
        // As `webhook.retry` says.
        assert_eq!(waiting["max_attempts"], 3, "{waiting}");
        assert!(
            waiting["last_error"]
                .as_str()
                .is_some_and(|e| e.starts_with("shop: ") && e.contains("HTTP 503")),
            "{waiting}"
        );
        // `imagebump status` prints it too (the first retry waits 2 s, the second 4 s more).
        let out = crate::support::imagebump::Imagebump::new([
            "status",
            "--url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .output();
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{table}");
        let shown = format!("CHECKS WAITING TO BE RETRIED\nrepository {host}/team/api: retry ");
        assert!(
            table.contains(&shown)
                && table.contains(" of 3 at ")
                && table.contains("  failed with: shop: "),
            "{table}"
        );

        daemon.wait_until(
            Duration::from_secs(30),
            || "the retry never committed".to_string(),
            || repo.log("main").len() >= 2,
        );
        assert!(repo.show("main", "values.yaml").contains("tag: 1.1.0"));
        // The retry pushes before it records itself and ends: wait for its "check done" line.
        daemon.wait_for_log("updated=1");
        assert_eq!(
            daemon.metric("imagebump_check_retries_total{outcome=\"scheduled\"}"),
            2.0,
            "{}",
            daemon.log()
        );
        assert_eq!(
            daemon.metric("imagebump_check_retries_total{outcome=\"exhausted\"}"),
            0.0
        );
        // The only full cycle is the first one: no poll made the commit.
        assert_eq!(daemon.metric("imagebump_checks_total{scope=\"all\""), 1.0);
        // A retry that fired is no longer listed: the status shows the retries waiting.
        let (_, body) = daemon.get("/api/v1/status").unwrap();
        let status: Value = serde_json::from_str(&body).unwrap();
        assert!(status.get("retries").is_none(), "{status}");
        assert_eq!(status["apps"][0]["last_error"], Value::Null, "{status}");
        assert!(
            daemon
                .log()
                .contains("check failed transiently; retry scheduled"),
            "{}",
            daemon.log()
        );
    })
    .await
    .unwrap();
}
