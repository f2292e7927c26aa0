//! The real CNCF registry (`docker-registry`) sending its notifications to the daemon.

use super::*;

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
