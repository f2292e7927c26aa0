//! The check queue: a lone push is checked at once, so is a push of a new tag right after a
//! fast check, a burst (also of new tags) is one check and at most one
//! follow-up after the debounce window, a never-quiet registry is still checked at the cap,
//! pushes during a check make one follow-up, webhook checks run beside
//! a long poll cycle, nothing starts after shutdown began, a panicking check frees its scope.
//!
//! On tokio's paused clock (`start_paused`): every sleep is virtual and exact, so the windows are
//! asserted to the millisecond and the file runs in a fraction of a second.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_burst_of_100_pushes_makes_one_check_at_once() {
    // The window is wide: the burst is not waited for, its first push is checked at once.
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
    // The 100 requests came before the check started (no time passed on the paused clock), so
    // one check covers them all, and it starts without waiting for the 2 s window.
    let pushed = tokio::time::Instant::now();
    // Let the queue's task run, without letting the paused clock move.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(pushed.elapsed(), Duration::ZERO);
    assert_eq!(h.worker.calls().len(), 1, "{:?}", h.worker.calls());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.worker.calls().len(), 1, "{:?}", h.worker.calls());
}

#[tokio::test(start_paused = true)]
async fn a_push_right_after_the_previous_check_is_checked_at_once() {
    // Each check takes 50 ms (as a pass that commits); the next push comes 30 ms after it ended
    // (as a CI job that waits for the commit, then pushes the next tag). Every push is a new
    // one (80 ms apart, more than half the 100 ms debounce): each is checked at once, none
    // waits for a quiet period.
    let worker = Recorder::with(REPOS, Duration::ZERO, Duration::from_millis(50));
    let h = harness(worker, Duration::from_millis(100));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    for push in 1..=5 {
        let requested = tokio::time::Instant::now();
        assert_eq!(
            h.checks.request_debounced(scope.clone()),
            Requested::Scheduled
        );
        eventually(Duration::from_secs(10), || {
            h.worker.events().len() == push * 2
        })
        .await;
        // Started at once, ended after its 50 ms (seen at the end of the 10 ms step).
        assert!(
            requested.elapsed() <= Duration::from_millis(60),
            "push {push}: {:?}",
            requested.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(h.worker.count(&scope), 5);
}

/// A ghcr `package` webhook announcing `tag` for ghcr.io/acme/api.
fn ghcr_push(tag: &str) -> Request<Body> {
    let case = &cases()[4];
    let mut body = case.body.clone();
    body["package"]["package_version"]["container_metadata"]["tag"]["name"] = json!(tag);
    build(
        case,
        serde_json::to_vec(&body).expect("json"),
        Creds::Good,
        case.content_type,
    )
}

#[tokio::test(start_paused = true)]
async fn a_push_of_a_new_tag_right_after_a_fast_check_is_checked_at_once() {
    // Each check takes 13 ms (as the daemon bench's pass that commits); the next push comes
    // 7 ms after the check ended (a CI job that pushes as soon as it sees the commit): 20 ms
    // after the previous push, less than half the 100 ms debounce, which timing alone takes
    // for a burst's tail. Its tag is one the daemon does not know for the repository (the last
    // check deployed 1.4.2 and wrote 1.4.3): each push is checked at once.
    let worker = Recorder::with(REPOS, Duration::ZERO, Duration::from_millis(13));
    let h = harness(worker, Duration::from_millis(100));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    for push in 1..=5 {
        let requested = tokio::time::Instant::now();
        let (status, answer) = send(&h.router, ghcr_push(&format!("1.5.{push}"))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(
            serde_json::from_str::<Value>(&answer).expect("json")["scheduled"],
            json!(1),
            "{answer}"
        );
        eventually(Duration::from_secs(10), || {
            h.worker.events().len() == push * 2
        })
        .await;
        // Started at once, ended after its 13 ms (seen at the end of the 10 ms step).
        assert_eq!(
            requested.elapsed(),
            Duration::from_millis(20),
            "push {push}"
        );
    }
    assert_eq!(h.worker.count(&scope), 5);
    // A notification of a tag the last check wrote (late, or sent twice), even a second
    // later: no news, so it waits for one debounce of quiet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requested = tokio::time::Instant::now();
    let (status, _) = send(&h.router, ghcr_push("1.4.3")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep_until(requested + Duration::from_millis(99)).await;
    assert_eq!(h.worker.count(&scope), 5, "no news, checked too early");
    eventually(Duration::from_secs(5), || h.worker.count(&scope) == 6).await;
    assert!(
        requested.elapsed() <= Duration::from_millis(110),
        "{:?}",
        requested.elapsed()
    );
    // A request without a tag, 20 ms after a new tag's (checked at once), is timed the same
    // way.
    eventually(Duration::from_secs(5), || h.worker.events().len() == 12).await;
    let (status, _) = send(&h.router, ghcr_push("1.6.0")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually(Duration::from_secs(5), || h.worker.events().len() == 14).await;
    assert_eq!(h.worker.count(&scope), 7);
    let requested = tokio::time::Instant::now();
    assert_eq!(
        h.checks.request_debounced(scope.clone()),
        Requested::Scheduled
    );
    tokio::time::sleep_until(requested + Duration::from_millis(99)).await;
    assert_eq!(h.worker.count(&scope), 7, "no tag, checked too early");
    eventually(Duration::from_secs(5), || h.worker.count(&scope) == 8).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.worker.count(&scope), 8);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_new_tags_still_makes_one_check_and_one_follow_up() {
    // 100 pushes of new tags 2 ms apart (the daemon bench's burst took 140 ms), each check
    // 13 ms: the first is checked at once, the pushes during it are a burst, whose follow-up
    // waits for ten debounce periods (1 s) of quiet after the last push (the wait is capped at
    // 5 s, `webhook.debounce_max`'s default). New tags do not break a burst up.
    let worker = Recorder::with(REPOS, Duration::ZERO, Duration::from_millis(13));
    let h = harness_capped(worker, Duration::from_millis(100), Duration::from_secs(5));
    let mut last = tokio::time::Instant::now();
    for push in 0..100 {
        let (status, _) = send(&h.router, ghcr_push(&format!("2.0.{push}"))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        last = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(h.worker.calls().len(), 1, "{:?}", h.worker.calls());
    tokio::time::sleep_until(last + Duration::from_millis(999)).await;
    assert_eq!(h.worker.calls().len(), 1, "follow-up before 1 s of quiet");
    eventually(Duration::from_secs(5), || h.worker.calls().len() == 2).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.worker.calls().len(), 2, "{:?}", h.worker.calls());
}

#[tokio::test(start_paused = true)]
async fn notifications_of_tags_the_last_check_listed_are_no_news() {
    // 100 tags pushed at once, the newest first; the registry delivers one more notification
    // while the first check (13 ms) runs, and the other 98 one by one, 20 ms apart, after it
    // ended. That check listed all 100 tags: the one during it needs no check of its own, and
    // the late ones are no news: timed like a burst's tail, they wait for one debounce of
    // quiet and make one check, not one each.
    let tags: Vec<String> = (0..100).map(|i| format!("2.1.{i}")).collect();
    let worker = Recorder::listing(REPOS, Duration::from_millis(13), tags);
    let h = harness_capped(worker, Duration::from_millis(100), Duration::from_secs(5));
    let (status, _) = send(&h.router, ghcr_push("2.1.99")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, answer) = send(&h.router, ghcr_push("2.1.98")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).expect("json")["coalesced"],
        json!(1),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(15)).await;
    assert_eq!(h.worker.events().len(), 2, "{:?}", h.worker.events());
    let mut last = tokio::time::Instant::now();
    for i in 0..98 {
        let (status, _) = send(&h.router, ghcr_push(&format!("2.1.{i}"))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        last = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.worker.calls().len(), 1, "{:?}", h.worker.calls());
    eventually(Duration::from_secs(5), || h.worker.calls().len() == 2).await;
    assert!(
        last.elapsed() <= Duration::from_millis(110),
        "{:?}",
        last.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.worker.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn one_push_during_a_check_is_checked_right_after_it() {
    // A CI job pushes the next tag as soon as it sees the previous commit, while the check
    // that made it is still finishing: the one request that came during the check makes the
    // next check start as soon as it ends, not after a burst's quiet period.
    let worker = Recorder::with(REPOS, Duration::ZERO, Duration::from_millis(50));
    let h = harness(worker, Duration::from_millis(100));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    let pushed = tokio::time::Instant::now();
    assert_eq!(
        h.checks.request_debounced(scope.clone()),
        Requested::Scheduled
    );
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(
        h.checks.request_debounced(scope.clone()),
        Requested::Coalesced
    );
    eventually(Duration::from_secs(5), || h.worker.events().len() == 3).await;
    // The second check started when the first ended, at 50 ms (seen at the 10 ms step).
    assert!(
        pushed.elapsed() <= Duration::from_millis(60),
        "{:?}",
        pushed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.worker.count(&scope), 2);
}

#[tokio::test(start_paused = true)]
async fn a_leading_check_that_wrote_nothing_is_confirmed_once_a_debounce_later() {
    // The registry announced the tag before it could be listed: the check at once finds
    // nothing to write, so it runs once more 100 ms later, and no more.
    let h = harness(Recorder::writing_nothing(REPOS), Duration::from_millis(100));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    let pushed = tokio::time::Instant::now();
    assert_eq!(
        h.checks.request_debounced(scope.clone()),
        Requested::Scheduled
    );
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(h.worker.calls().len(), 1, "the check at once");
    tokio::time::sleep_until(pushed + Duration::from_millis(99)).await;
    assert_eq!(h.worker.calls().len(), 1, "confirmed too early");
    eventually(Duration::from_secs(5), || h.worker.calls().len() == 2).await;
    assert!(
        pushed.elapsed() <= Duration::from_millis(110),
        "{:?}",
        pushed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.worker.calls(), vec![scope.clone(), scope]);
}

#[tokio::test(start_paused = true)]
async fn a_leading_check_that_listed_the_announced_tag_is_not_confirmed() {
    // The check at once writes nothing (the tag is not an update for the policy) but listed
    // the announced tag: nothing to confirm. A tag it did not list (announced before the
    // registry stored it) is confirmed a debounce later, as before.
    let recorder = Recorder::new(REPOS);
    let worker = Recorder(Arc::new(Record {
        repositories: recorder.0.repositories.clone(),
        apps: recorder.0.apps.clone(),
        writes_nothing: true,
        listing: vec!["3.0.0".into()],
        ..Record::default()
    }));
    let h = harness(worker, Duration::from_millis(100));
    let (status, _) = send(&h.router, ghcr_push("3.0.0")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.worker.calls().len(), 1, "confirmed a listed tag");
    let pushed = tokio::time::Instant::now();
    let (status, _) = send(&h.router, ghcr_push("3.0.1")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep_until(pushed + Duration::from_millis(99)).await;
    assert_eq!(h.worker.calls().len(), 2, "the check at once");
    eventually(Duration::from_secs(5), || h.worker.calls().len() == 3).await;
    assert!(
        pushed.elapsed() <= Duration::from_millis(110),
        "{:?}",
        pushed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.worker.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn pushes_closer_than_half_the_debounce_make_one_check_and_one_follow_up_after_quiet() {
    // Debounce 200 ms: pushes 50 ms apart are a burst; the follow-up waits for 200 ms of quiet
    // (the 20 s cap is not reached).
    let h = harness_capped(
        Recorder::new(REPOS),
        Duration::from_millis(200),
        Duration::from_secs(20),
    );
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    let mut last = tokio::time::Instant::now();
    for _ in 0..24 {
        h.checks.request_debounced(scope.clone());
        last = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 1.2 s of pushes: the first was checked at once, the rest wait for the burst to end.
    assert_eq!(h.worker.calls().len(), 1, "{:?}", h.worker.calls());
    // Nothing more 1 ms before 200 ms have passed since the last push; the follow-up comes then.
    tokio::time::sleep_until(last + Duration::from_millis(199)).await;
    assert_eq!(
        h.worker.calls().len(),
        1,
        "follow-up before 200 ms of quiet"
    );
    eventually(Duration::from_secs(10), || h.worker.calls().len() == 2).await;
    assert!(
        last.elapsed() <= Duration::from_millis(210),
        "{:?}",
        last.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.worker.calls(), vec![scope.clone(), scope]);
}

#[tokio::test(start_paused = true)]
async fn a_registry_that_never_goes_quiet_is_still_checked_at_the_cap() {
    // Debounce 300 ms (a burst: requests less than 150 ms apart), capped at 10 × 300 ms = 3 s;
    // requests every 50 ms for 4 s.
    let h = harness(Recorder::new(REPOS), Duration::from_millis(300));
    let scope = Scope::Repository {
        registry: "ghcr.io".into(),
        repository: "acme/api".into(),
    };
    let start = tokio::time::Instant::now();
    let mut checks_at = Vec::new();
    while start.elapsed() < Duration::from_secs(4) {
        h.checks.request_debounced(scope.clone());
        tokio::time::sleep(Duration::from_millis(50)).await;
        if h.worker.calls().len() > checks_at.len() {
            checks_at.push(start.elapsed());
        }
    }
    // The first request is checked at once; the burst behind it waits for quiet, which never
    // comes, so the cap starts the next check 3 s after the wait began (the second request, at
    // 50 ms), seen at the end of the 50 ms step it falls in.
    assert_eq!(checks_at.len(), 2, "{checks_at:?}");
    assert_eq!(checks_at[0], Duration::from_millis(50));
    assert!(
        (Duration::from_millis(3050)..=Duration::from_millis(3100)).contains(&checks_at[1]),
        "{checks_at:?}"
    );
    // After the requests stop, one more check once they are quiet, and no other.
    eventually(Duration::from_secs(10), || h.worker.calls().len() >= 3).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.worker.calls().len(), 3);
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
