//! The check queue: a burst is one check after the debounce window, a never-quiet registry is
//! still checked at the cap, pushes during a check make one follow-up, webhook checks run beside
//! a long poll cycle, nothing starts after shutdown began, a panicking check frees its scope.
//!
//! On tokio's paused clock (`start_paused`): every sleep is virtual and exact, so the windows are
//! asserted to the millisecond and the file runs in a fraction of a second.

use super::*;

#[tokio::test(start_paused = true)]
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
    // On the paused clock the window is exact: nothing 1 ms before it ends, the check at its end.
    let pushed = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1999)).await;
    assert!(h.worker.calls().is_empty(), "checked inside the window");
    eventually(Duration::from_secs(10), || !h.worker.calls().is_empty()).await;
    assert!(
        pushed.elapsed() <= Duration::from_millis(2010),
        "{:?}",
        pushed.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h.worker.calls().len(), 1, "{:?}", h.worker.calls());
}

#[tokio::test(start_paused = true)]
async fn pushes_spread_over_longer_than_the_window_make_one_check_while_gaps_stay_short() {
    let h = harness(Recorder::new(REPOS), Duration::from_millis(800));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    let mut last = tokio::time::Instant::now();
    for _ in 0..12 {
        h.checks.request_debounced(scope.clone());
        last = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 1.2 s of pushes, each within 800 ms of the previous one: still nothing checked.
    assert!(
        h.worker.calls().is_empty(),
        "checked before the pushes went quiet"
    );
    // Nor 1 ms before 800 ms have passed since the last push; the check comes right then.
    tokio::time::sleep_until(last + Duration::from_millis(799)).await;
    assert!(
        h.worker.calls().is_empty(),
        "checked before 800 ms of quiet"
    );
    eventually(Duration::from_secs(10), || !h.worker.calls().is_empty()).await;
    assert!(
        last.elapsed() <= Duration::from_millis(810),
        "{:?}",
        last.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(h.worker.calls(), vec![scope]);
}

#[tokio::test(start_paused = true)]
async fn a_registry_that_never_goes_quiet_is_still_checked_at_the_cap() {
    // Quiet period 300 ms, capped at 10 × 300 ms = 3 s; requests every 50 ms for 4 s.
    let h = harness(Recorder::new(REPOS), Duration::from_millis(300));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    let start = tokio::time::Instant::now();
    let mut first_check = None;
    while start.elapsed() < Duration::from_secs(4) {
        h.checks.request_debounced(scope.clone());
        tokio::time::sleep(Duration::from_millis(50)).await;
        if first_check.is_none() && !h.worker.calls().is_empty() {
            first_check = Some(start.elapsed());
        }
    }
    // The cap is exact on the paused clock: the first check starts 3 s after the first request
    // (seen at the end of the 50 ms step it falls in).
    let first_check = first_check.expect("a check within the 4 s of requests");
    assert!(
        (Duration::from_secs(3)..=Duration::from_millis(3050)).contains(&first_check),
        "{first_check:?}"
    );
    assert!(
        !h.worker.calls().is_empty(),
        "the cap did not start a check"
    );
    eventually(Duration::from_secs(10), || h.worker.calls().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // One check at the cap, one after the quiet period (a third only if the loaded machine
    // stalled this loop for longer than the quiet period, which the paused clock rules out).
    let checks = h.worker.calls().len();
    assert!((2..=3).contains(&checks), "{checks} checks");
    // The paused clock never stalls this loop: exactly the two.
    assert_eq!(checks, 2);
}

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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
