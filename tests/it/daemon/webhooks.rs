//! Every webhook receiver through the router: a valid push schedules exactly one check; forged,
//! unsigned, oversized, malformed and mistyped requests are refused without one; no secret
//! reaches the logs.

use super::*;

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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
