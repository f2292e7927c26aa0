//! What the daemon reports: metrics (a shared commit counted once), the status JSON, health
//! and readiness.

use super::*;

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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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
    app["history"][0]["at"] = json!("<time>");
    assert_eq!(
        after,
        json!({"ready": true, "apps": [{
            "name": "shop",
            "images": [{"name": "api", "repository": "ghcr.io/acme/api", "deployed": "1.4.3", "candidate": "1.4.3"}],
            "history": [{"image": "api", "from": "1.4.2", "to": "1.4.3", "at": "<time>",
                "commit": "0123456789abcdef0123456789abcdef01234567", "pull_request": null}],
            "last_check": "<time>", "last_success": "<time>", "last_error": null,
            "last_commit": "0123456789abcdef0123456789abcdef01234567", "last_duration_ms": 12,
            "config_error": null
        }], "config_errors": []})
    );
}

#[tokio::test(start_paused = true)]
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
