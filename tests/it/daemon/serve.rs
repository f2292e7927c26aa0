//! The whole daemon on a real port: cycles never overlap, per-app schedules, HTTP and shutdown
//! after the in-flight check, reloads, an invalid initial config.

use super::*;

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

    // The worker counts a check when it starts; the queue records the cycle as ended just after
    // the worker returns, so `/readyz` turns 200 a moment later (under load, after this
    // request: the test was flaky). It must turn 200 within the limit.
    let mut ready = None;
    for _ in 0..500 {
        let status = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status();
        ready = Some(status);
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready.map(|s| s.as_u16()), Some(200));
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
        lines[0].starts_with("APP   IMAGE  DEPLOYED  CANDIDATE  WHY  LAST CHECK"),
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
