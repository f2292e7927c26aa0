//! The registry client and `imagebump tags` against a real `docker-registry`, directly and
//! through the paging, fault-injecting proxy.

use std::time::Duration;

use imagebump::reference::ImageRef;
use imagebump::registry::{
    Client, ClientOptions, Outcome, RegistryAuth, RegistryError, RegistrySettings, Secret,
};
use time::macros::datetime;

use crate::support::config::ConfigDir;
use crate::support::imagebump::Imagebump;
use crate::support::registry::{
    AuthMode, Fault, FaultProxy, ImageSpec, NotificationEndpoint, RegistryConfig, TestRegistry,
};

const USER: &str = "ci-bot";
const PASSWORD: &str = "pa55-Word-never-logged";

fn options() -> ClientOptions {
    ClientOptions {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        max_retry_after: Duration::from_millis(200),
        request_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

fn settings(host: &str, auth: RegistryAuth) -> RegistrySettings {
    let mut settings = RegistrySettings::new(host);
    settings.insecure = true;
    settings.auth = auth;
    settings
}

fn client(host: &str, auth: RegistryAuth) -> Client {
    Client::new(vec![settings(host, auth)], options()).expect("client")
}

fn basic() -> RegistryAuth {
    RegistryAuth::Basic {
        username: USER.to_string(),
        password: Secret::new(PASSWORD),
    }
}

fn image(name: &str) -> ImageRef {
    ImageRef::parse(name).expect("image reference")
}

fn sorted(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags
}

#[tokio::test]
async fn tags_digest_and_created_without_auth() {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    let v1 = pusher
        .push_image(
            "team/app",
            "v1.0.0",
            &ImageSpec::new("2024-01-02T03:04:05Z"),
        )
        .await;
    let v2 = pusher
        .push_image(
            "team/app",
            "v1.2.0",
            &ImageSpec::new("2024-05-06T07:08:09.123456789Z").docker(),
        )
        .await;
    pusher
        .push_image(
            "team/app",
            "latest",
            &ImageSpec::new("2024-05-06T07:08:09Z"),
        )
        .await;

    // Tags the OCI grammar forbids (a registry's storage can hold them) never come out.
    let too_long = "x".repeat(129);
    registry.seed_tags(
        "team/app",
        &v1,
        &[
            "-dash-first".to_string(),
            ".dot-first".to_string(),
            too_long,
        ],
    );

    let raw = reqwest::get(format!("{}/v2/team/app/tags/list", registry.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.contains("-dash-first") && raw.contains(".dot-first"),
        "{raw}"
    );

    let client = client(&registry.host(), RegistryAuth::Anonymous);
    let app = image(&registry.image("team/app"));
    assert_eq!(
        sorted(client.list_tags(&app).await.unwrap()),
        ["latest", "v1.0.0", "v1.2.0"]
    );
    assert_eq!(client.digest(&app, "v1.0.0").await.unwrap(), v1.digest);
    assert_eq!(client.digest(&app, "v1.2.0").await.unwrap(), v2.digest);
    assert_eq!(
        client.created(&app, "v1.0.0").await.unwrap(),
        Some(datetime!(2024-01-02 03:04:05 UTC))
    );
    assert_eq!(
        client.created(&app, &v2.digest).await.unwrap(),
        Some(datetime!(2024-05-06 07:08:09.123456789 UTC))
    );
    let stats = client.stats().registry(&registry.host());
    // tags 1 + digests 2 HEAD + created(tag): HEAD, GET manifest, GET config + created(digest):
    // GET manifest, GET config.
    assert_eq!(stats.requests, 1 + 2 + 3 + 2, "{stats:?}");
    assert_eq!(stats.token_requests, 0);

    let err = client
        .list_tags(&image(&registry.image("team/missing")))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("team/missing"), "{err}");
    let err = client.digest(&app, "v9").await.unwrap_err();
    assert!(err.to_string().contains("tag v9 not found"), "{err}");
}

#[tokio::test]
async fn token_auth_fetches_one_token_per_scope() {
    let registry = TestRegistry::start_with_auth(AuthMode::token(USER, PASSWORD)).await;
    let pusher = registry.pusher();
    for repo in ["a/one", "a/two"] {
        pusher
            .push_image(repo, "1.0.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
            .await;
    }
    let before = registry.token_requests();
    let client = client(&registry.host(), basic());
    for repo in ["a/one", "a/two", "a/one", "a/two"] {
        assert_eq!(
            client
                .list_tags(&image(&registry.image(repo)))
                .await
                .unwrap(),
            ["1.0.0"]
        );
    }
    assert_eq!(registry.token_requests() - before, 2);
    let stats = client.stats().registry(&registry.host());
    // One challenge (401), two tokens, four tag lists.
    assert_eq!(stats.requests, 1 + 2 + 4, "{stats:?}");
    assert_eq!(stats.token_requests, 2);
}

#[tokio::test]
async fn basic_auth_and_wrong_password() {
    let registry = TestRegistry::start_with_auth(AuthMode::basic(USER, PASSWORD)).await;
    registry
        .pusher()
        .push_image(
            "private/app",
            "2.0.0",
            &ImageSpec::new("2024-01-01T00:00:00Z"),
        )
        .await;
    let app = image(&registry.image("private/app"));

    let good = client(&registry.host(), basic());
    assert_eq!(good.list_tags(&app).await.unwrap(), ["2.0.0"]);
    assert_eq!(good.list_tags(&app).await.unwrap(), ["2.0.0"]);
    // One challenge, then basic credentials up front.
    assert_eq!(good.stats().registry(&registry.host()).requests, 3);

    let wrong = client(
        &registry.host(),
        RegistryAuth::Basic {
            username: USER.to_string(),
            password: Secret::new("wrong-password"),
        },
    );
    let err = wrong.list_tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("authentication failed for {}", registry.host())),
        "{message}"
    );
    assert!(!message.contains("wrong-password"), "{message}");

    let anonymous = client(&registry.host(), RegistryAuth::Anonymous);
    let err = anonymous.list_tags(&app).await.unwrap_err();
    assert!(err.to_string().contains("none is configured"), "{err}");
}

#[tokio::test]
async fn token_auth_wrong_password_and_refresh_after_401() {
    let registry = TestRegistry::start_with_auth(AuthMode::token(USER, PASSWORD)).await;
    registry
        .pusher()
        .push_image("org/svc", "1.0.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let proxy = FaultProxy::start(&registry.url()).await;
    let svc = image(&proxy.image("org/svc"));

    let wrong = client(
        &proxy.host(),
        RegistryAuth::Basic {
            username: USER.to_string(),
            password: Secret::new("nope"),
        },
    );
    let err = wrong.list_tags(&svc).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("token service rejected"), "{err}");

    let client = client(&proxy.host(), basic());
    assert_eq!(client.list_tags(&svc).await.unwrap(), ["1.0.0"]);
    let tokens = registry.token_requests();
    // The registry rejects the cached token once: one refresh, then success.
    proxy.drop_auth(1);
    assert_eq!(client.list_tags(&svc).await.unwrap(), ["1.0.0"]);
    assert_eq!(registry.token_requests(), tokens + 1);
    // Rejected twice in a row: refresh once, then a clear error.
    proxy.drop_auth(2);
    let err = client.list_tags(&svc).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("authentication failed for {}", proxy.host())),
        "{err}"
    );
    assert_eq!(registry.token_requests(), tokens + 2);
}

#[tokio::test]
async fn pagination_lists_2500_tags_exactly_once_per_call() {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    let pushed = pusher
        .push_image("big/repo", "seed", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let mut expected: Vec<String> = (0..2499).map(|i| format!("1.0.{i}")).collect();
    registry.seed_tags("big/repo", &pushed, &expected);
    expected.push("seed".to_string());
    expected.sort();

    let proxy = FaultProxy::start(&registry.url()).await;
    proxy.paginate(100);
    let client = client(&proxy.host(), RegistryAuth::Anonymous);
    let repo = image(&proxy.image("big/repo"));
    for call in 1..=2 {
        let tags = client.list_tags(&repo).await.unwrap();
        assert_eq!(tags.len(), 2500);
        assert_eq!(sorted(tags), expected);
        assert_eq!(proxy.count("/tags/list"), 25 * call);
    }
    assert_eq!(client.stats().registry(&proxy.host()).tag_pages, 50);
    // Seeded tags resolve like pushed ones.
    assert_eq!(
        client.digest(&repo, "1.0.2498").await.unwrap(),
        pushed.digest
    );

    // Absolute next links work the same.
    proxy.clear();
    proxy.absolute_links(true);
    assert_eq!(sorted(client.list_tags(&repo).await.unwrap()), expected);
    assert_eq!(proxy.count("/tags/list"), 25);
}

#[tokio::test]
async fn page_size_adapts_when_the_registry_refuses_it() {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    let pushed = pusher
        .push_image("quay/like", "0", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let tags: Vec<String> = (1..60).map(|i| format!("t{i:02}")).collect();
    pusher.tag_many("quay/like", &pushed, &tags, 8).await;

    let proxy = FaultProxy::start(&registry.url()).await;
    proxy.paginate(1000);
    proxy.max_page(30);
    let client = client(&proxy.host(), RegistryAuth::Anonymous);
    let repo = image(&proxy.image("quay/like"));
    assert_eq!(client.list_tags(&repo).await.unwrap().len(), 60);
    // n=100 and n=50 refused, then three pages of 25.
    let asked: Vec<String> = proxy.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(asked.len(), 5, "{asked:#?}");
    assert!(
        asked[0].ends_with("?n=100") && asked[1].ends_with("?n=50"),
        "{asked:#?}"
    );
    assert!(asked[2].ends_with("?n=25"), "{asked:#?}");
    // The size that works is remembered.
    proxy.clear();
    assert_eq!(client.list_tags(&repo).await.unwrap().len(), 60);
    assert_eq!(proxy.count("/tags/list"), 3);
}

#[tokio::test]
async fn retries_on_500_and_429_then_clear_errors() {
    let registry = TestRegistry::start_plain().await;
    registry
        .pusher()
        .push_image(
            "flaky/app",
            "1.0.0",
            &ImageSpec::new("2024-01-01T00:00:00Z"),
        )
        .await;
    let proxy = FaultProxy::start(&registry.url()).await;
    let client = client(&proxy.host(), RegistryAuth::Anonymous);
    let app = image(&proxy.image("flaky/app"));

    // Two 500s, then success: three requests, two retries.
    proxy.fault(
        "/tags/list",
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        2,
    );
    assert_eq!(client.list_tags(&app).await.unwrap(), ["1.0.0"]);
    assert_eq!(proxy.count("/tags/list"), 3);
    let stats = client.stats().registry(&proxy.host());
    assert_eq!(stats.retries, 2, "{stats:?}");
    assert_eq!(stats.by_outcome[&Outcome::ServerError], 2);

    // A 429 with Retry-After (seconds, then an HTTP date) is waited out (capped) and retried.
    proxy.clear();
    proxy.fault(
        "/tags/list",
        Fault::Status {
            status: 429,
            retry_after: Some("3600".to_string()),
        },
        1,
    );
    proxy.fault(
        "/tags/list",
        Fault::Status {
            status: 429,
            retry_after: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_string()),
        },
        1,
    );
    assert_eq!(client.list_tags(&app).await.unwrap(), ["1.0.0"]);
    assert_eq!(proxy.count("/tags/list"), 3);

    // Always 429: retries + 1 requests, then a RateLimited error naming the registry.
    proxy.clear();
    proxy.fault(
        "/tags/list",
        Fault::Status {
            status: 429,
            retry_after: Some("120".to_string()),
        },
        100,
    );
    let err = client.list_tags(&app).await.unwrap_err();
    assert_eq!(
        err,
        RegistryError::RateLimited {
            registry: proxy.host(),
            repository: "flaky/app".to_string(),
            retry_after: Some(Duration::from_secs(120)),
        }
    );
    assert!(err.to_string().contains("retry after 120s"), "{err}");
    assert_eq!(proxy.count("/tags/list"), 4);

    // Always 503: a BadResponse error after the bounded retries.
    proxy.clear();
    proxy.clear_faults();
    let fresh = client_for_proxy(&proxy);
    proxy.fault(
        "/manifests/",
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        100,
    );
    let err = fresh.digest(&app, "1.0.0").await.unwrap_err();
    assert!(matches!(err, RegistryError::BadResponse { .. }), "{err:?}");
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(proxy.count("/manifests/"), 4);
}

#[tokio::test]
async fn a_registry_that_keeps_failing_is_left_alone_until_it_is_back() {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    pusher
        .push_image("down/app", "1.0.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let proxy = FaultProxy::start(&registry.url()).await;
    // One client for two registries: the proxied one fails, the direct one does not.
    let client = Client::new(
        vec![
            settings(&proxy.host(), RegistryAuth::Anonymous),
            settings(&registry.host(), RegistryAuth::Anonymous),
        ],
        options(),
    )
    .unwrap();
    let down = image(&proxy.image("down/app"));
    let up = image(&registry.image("down/app"));
    proxy.fail_tag_lists();

    // Three requests fail for good, each after its retries (4 attempts).
    for _ in 0..3 {
        let err = client.list_tags(&down).await.unwrap_err();
        assert!(matches!(err, RegistryError::BadResponse { .. }), "{err:?}");
    }
    assert_eq!(proxy.count("/tags/list"), 12);

    // From then on the registry is not asked: an immediate, explicit error.
    let err = client.list_tags(&down).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&proxy.host())
            && message.contains("down/app")
            && message.contains("last 3 requests")
            && message.contains("503")
            && message.contains("next try in"),
        "{message}"
    );
    let err = client.digest(&down, "1.0.0").await.unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err:?}");
    assert_eq!(proxy.count("/tags/list"), 12);
    assert_eq!(proxy.count("/manifests/"), 0);

    // Another registry of the same client is unaffected.
    assert_eq!(client.list_tags(&up).await.unwrap(), ["1.0.0"]);

    // The registry recovers and says so (a webhook): asked again at once.
    proxy.clear_faults();
    client.note_alive(&proxy.host());
    assert_eq!(client.list_tags(&down).await.unwrap(), ["1.0.0"]);
    assert_eq!(proxy.count("/tags/list"), 13);

    // Without the breaker, every request pays its retries.
    let patient = Client::new(
        vec![settings(&proxy.host(), RegistryAuth::Anonymous)],
        ClientOptions {
            breaker_cooldown: Duration::ZERO,
            ..options()
        },
    )
    .unwrap();
    proxy.clear();
    proxy.fail_tag_lists();
    for _ in 0..4 {
        let err = patient.list_tags(&down).await.unwrap_err();
        assert!(matches!(err, RegistryError::BadResponse { .. }), "{err:?}");
    }
    assert_eq!(proxy.count("/tags/list"), 16);
}

fn client_for_proxy(proxy: &FaultProxy) -> Client {
    client(&proxy.host(), RegistryAuth::Anonymous)
}

#[tokio::test]
async fn slow_and_truncated_responses() {
    let registry = TestRegistry::start_plain().await;
    registry
        .pusher()
        .push_image("slow/app", "1.0.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let proxy = FaultProxy::start(&registry.url()).await;
    let impatient = Client::new(
        vec![settings(&proxy.host(), RegistryAuth::Anonymous)],
        ClientOptions {
            request_timeout: Duration::from_millis(500),
            ..options()
        },
    )
    .unwrap();
    let app = image(&proxy.image("slow/app"));

    // A body stalled past the timeout, once: retried, then fine.
    proxy.fault("/tags/list", Fault::SlowBody(Duration::from_secs(3)), 1);
    assert_eq!(impatient.list_tags(&app).await.unwrap(), ["1.0.0"]);
    assert_eq!(proxy.count("/tags/list"), 2);

    // Always too slow: Unreachable, "timed out", after the bounded attempts.
    proxy.clear();
    proxy.fault("/tags/list", Fault::Delay(Duration::from_secs(3)), 100);
    let err = impatient.list_tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(err.to_string().contains("4 attempts"), "{err}");
    assert_eq!(proxy.count("/tags/list"), 4);

    // Truncated JSON: a clear BadResponse naming registry and repository.
    proxy.clear();
    proxy.clear_faults();
    let fresh = client_for_proxy(&proxy);
    proxy.fault("/tags/list", Fault::Truncate, 100);
    let err = fresh.list_tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::BadResponse { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&proxy.host()) && message.contains("slow/app"),
        "{message}"
    );
    assert!(message.contains("not valid JSON"), "{message}");
    proxy.fault("/manifests/", Fault::Truncate, 100);
    let err = fresh.created(&app, "1.0.0").await.unwrap_err();
    assert!(err.to_string().contains("manifest"), "{err}");

    // Nothing listens: Unreachable.
    let closed = format!("127.0.0.1:{}", crate::support::free_port());
    let nowhere = client(&closed, RegistryAuth::Anonymous);
    let err = nowhere
        .list_tags(&image(&format!("{closed}/x")))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&closed), "{err}");
}

/// Issue 13 (platform filter): the platforms a tag has are read with one manifest request (an
/// index's entries; for a single image, its config's platform), cached by digest for good.
#[tokio::test]
async fn the_platforms_of_a_manifest_are_read_once_per_digest() {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    let specs = [
        ImageSpec::new("2024-03-01T00:00:00Z"),
        ImageSpec::new("2024-03-02T00:00:00Z").platform("linux/arm64"),
        ImageSpec::new("2024-03-03T00:00:00Z").platform("linux/arm/v7"),
    ];
    let (index, _) = pusher.push_index("plat/app", "2.0.0", &specs, &[]).await;
    let single = pusher
        .push_image(
            "plat/app",
            "1.0.0",
            &ImageSpec::new("2024-01-01T00:00:00Z").platform("linux/arm64"),
        )
        .await;
    let proxy = FaultProxy::start(&registry.url()).await;
    let client = client(&proxy.host(), RegistryAuth::Anonymous);
    let app = image(&proxy.image("plat/app"));

    // Canonical names: arm64 and arm carry their default variants.
    assert_eq!(
        client.platforms(&app, &index.digest).await.unwrap(),
        ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"]
    );
    assert_eq!(proxy.count("/manifests/"), 1, "{:#?}", proxy.requests());
    assert_eq!(proxy.requests().len(), 1);
    // Cached by digest: no request at all the second time.
    assert_eq!(
        client.platforms(&app, &index.digest).await.unwrap().len(),
        3
    );
    assert_eq!(proxy.requests().len(), 1);

    // A single image: its manifest, then its config.
    proxy.clear();
    assert_eq!(
        client.platforms(&app, &single.digest).await.unwrap(),
        ["linux/arm64/v8"]
    );
    assert_eq!(proxy.requests().len(), 2, "{:#?}", proxy.requests());
}

#[tokio::test]
async fn concurrency_and_rate_limits_hold_per_registry() {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    for i in 0..6 {
        pusher
            .push_image(
                &format!("many/r{i}"),
                "1",
                &ImageSpec::new("2024-01-01T00:00:00Z"),
            )
            .await;
    }
    let slow = FaultProxy::start(&registry.url()).await;
    let fast = FaultProxy::start(&registry.url()).await;
    slow.fault("/tags/list", Fault::Delay(Duration::from_millis(300)), 100);
    let mut slow_settings = settings(&slow.host(), RegistryAuth::Anonymous);
    slow_settings.max_concurrency = 2;
    let mut fast_settings = settings(&fast.host(), RegistryAuth::Anonymous);
    fast_settings.requests_per_second = Some(200.0);
    let shared = Client::new(vec![slow_settings, fast_settings], options()).unwrap();

    let mut slow_tasks = Vec::new();
    for i in 0..6 {
        let client = shared.clone();
        let repo = image(&slow.image(&format!("many/r{i}")));
        slow_tasks.push(tokio::spawn(async move { client.list_tags(&repo).await }));
    }
    // The fast registry answers while the slow one is still busy with its queue.
    for i in 0..6 {
        let repo = image(&fast.image(&format!("many/r{i}")));
        assert_eq!(shared.list_tags(&repo).await.unwrap(), ["1"]);
    }
    assert!(
        slow_tasks.iter().any(|t| !t.is_finished()),
        "the slow registry's queue should still be running"
    );
    for task in slow_tasks {
        assert_eq!(task.await.unwrap().unwrap(), ["1"]);
    }
    assert_eq!(slow.max_in_flight(), 2);
    assert_eq!(slow.count("/tags/list"), 6);
}

#[tokio::test]
async fn multi_arch_index_platform_selection_and_creation_time() {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    let specs = [
        ImageSpec::new("2024-03-01T00:00:00Z"),
        ImageSpec::new("2024-03-02T00:00:00Z").platform("linux/arm64/v8"),
        ImageSpec::new("2024-03-03T00:00:00Z").platform("linux/arm/v7"),
    ];
    let (index, _) = pusher.push_index("multi/app", "2.0.0", &specs, &[]).await;
    let docker_specs: Vec<ImageSpec> = specs.iter().map(|s| s.clone().docker()).collect();
    pusher
        .push_index("multi/app", "2.0.0-docker", &docker_specs, &[])
        .await;
    // An image without `created` in its config but with the OCI annotation.
    pusher
        .push_image(
            "multi/app",
            "annotated",
            &ImageSpec::new("unused")
                .without_created()
                .annotation("org.opencontainers.image.created", "2023-12-24T18:00:00Z"),
        )
        .await;
    let proxy = FaultProxy::start(&registry.url()).await;
    let app = image(&proxy.image("multi/app"));

    let for_platform = |platform: &str| {
        let mut s = settings(&proxy.host(), RegistryAuth::Anonymous);
        s.platform = platform.parse().unwrap();
        Client::new(vec![s], options()).unwrap()
    };
    let amd64 = for_platform("linux/amd64");
    assert_eq!(amd64.digest(&app, "2.0.0").await.unwrap(), index.digest);
    proxy.clear();
    assert_eq!(
        amd64.created(&app, "2.0.0").await.unwrap(),
        Some(datetime!(2024-03-01 00:00 UTC))
    );
    // HEAD, GET index, GET image manifest, GET config.
    assert_eq!(proxy.requests().len(), 4);
    proxy.clear();
    assert_eq!(
        amd64.created(&app, "2.0.0").await.unwrap(),
        Some(datetime!(2024-03-01 00:00 UTC))
    );
    // Cached by digest: only the HEAD that resolves the tag.
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].method, "HEAD");
    assert_eq!(
        amd64.created(&app, &index.digest).await.unwrap(),
        Some(datetime!(2024-03-01 00:00 UTC))
    );
    assert_eq!(proxy.requests().len(), 1);

    let arm64 = for_platform("linux/arm64");
    let arm = for_platform("linux/arm/v7");
    for tag in ["2.0.0", "2.0.0-docker"] {
        assert_eq!(
            arm64.created(&app, tag).await.unwrap(),
            Some(datetime!(2024-03-02 00:00 UTC))
        );
        assert_eq!(
            arm.created(&app, tag).await.unwrap(),
            Some(datetime!(2024-03-03 00:00 UTC))
        );
    }
    let err = for_platform("linux/s390x")
        .created(&app, "2.0.0")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("platform linux/s390x"), "{err}");
    assert_eq!(
        amd64.created(&app, "annotated").await.unwrap(),
        Some(datetime!(2023-12-24 18:00 UTC))
    );
}

#[tokio::test]
async fn digest_by_head_with_get_fallback() {
    let registry = TestRegistry::start_plain().await;
    let pushed = registry
        .pusher()
        .push_image(
            "dig/app",
            "latest",
            &ImageSpec::new("2024-01-01T00:00:00Z").docker(),
        )
        .await;
    let proxy = FaultProxy::start(&registry.url()).await;
    let client = client_for_proxy(&proxy);
    let app = image(&proxy.image("dig/app"));

    assert_eq!(client.digest(&app, "latest").await.unwrap(), pushed.digest);
    let methods: Vec<String> = proxy.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["HEAD"]);

    proxy.clear();
    proxy.strip_digest(true);
    assert_eq!(client.digest(&app, "latest").await.unwrap(), pushed.digest);
    let methods: Vec<String> = proxy.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

async fn imagebump(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Imagebump::new(args)
        .envs(env.iter().copied())
        .output_async()
        .await;
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `imagebump tags IMAGE --insecure --docker-config CONFIG` with `env`.
async fn tags_with_docker_config(
    image: &str,
    config: &std::path::Path,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let config = config.display().to_string();
    imagebump(
        &[
            "tags",
            image,
            "--insecure",
            "--docker-config",
            config.as_str(),
        ],
        env,
    )
    .await
}

#[tokio::test]
async fn cli_tags_in_every_auth_mode() {
    let modes = [
        AuthMode::None,
        AuthMode::basic(USER, PASSWORD),
        AuthMode::token(USER, PASSWORD),
    ];
    for mode in modes {
        let registry = TestRegistry::start_with_auth(mode.clone()).await;
        let pusher = registry.pusher();
        let pushed = pusher
            .push_image("cli/app", "1.10.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
            .await;
        pusher
            .tag_many(
                "cli/app",
                &pushed,
                &[
                    "latest".into(),
                    "1.2.0".into(),
                    "1.2.0-rc.1".into(),
                    "edge".into(),
                ],
                4,
            )
            .await;
        let name = registry.image("cli/app");
        let mut args = vec!["tags", name.as_str(), "--insecure"];
        if mode != AuthMode::None {
            args.extend(["--username", USER, "--password-env", "REGISTRY_PASSWORD"]);
        }
        let (code, stdout, stderr) = imagebump(&args, &[("REGISTRY_PASSWORD", PASSWORD)]).await;
        assert_eq!(code, 0, "{mode:?}: {stderr}");
        assert_eq!(
            stdout, "1.2.0-rc.1\n1.2.0\n1.10.0\nedge\nlatest\n",
            "{mode:?}"
        );

        if mode != AuthMode::None {
            let (code, stdout, stderr) =
                imagebump(&args, &[("REGISTRY_PASSWORD", "wrong-pw-123")]).await;
            assert_eq!(code, 1, "{mode:?}: {stderr}");
            assert!(stdout.is_empty());
            assert!(
                stderr.contains(&format!("authentication failed for {}", registry.host())),
                "{mode:?}: {stderr}"
            );
            assert!(!stderr.contains("wrong-pw-123"), "{stderr}");

            // The same credentials from a docker config.json.
            let config = registry.dir.path().join("docker-config.json");
            let auth = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{USER}:{PASSWORD}"),
            );
            std::fs::write(
                &config,
                format!(
                    r#"{{"auths":{{"http://{}":{{"auth":"{auth}"}}}}}}"#,
                    registry.host()
                ),
            )
            .unwrap();
            let (code, stdout, stderr) = tags_with_docker_config(&name, &config, &[]).await;
            assert_eq!(code, 0, "{mode:?}: {stderr}");
            assert_eq!(stdout.lines().count(), 5);

            // Through a docker credential helper named in `credHelpers` (how a cloud login
            // such as ECR's `ecr-login` works; this one answers with the test user), run from
            // PATH with the server URL on stdin, as the docker CLI runs it.
            let helpers = registry.dir.path().join("helpers");
            std::fs::create_dir_all(&helpers).unwrap();
            let helper = helpers.join("docker-credential-ecr-login");
            std::fs::write(
                &helper,
                format!(
                    "#!/bin/sh\nread url\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$url\"\n"
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
            let helper_config = registry.dir.path().join("helper-config.json");
            std::fs::write(
                &helper_config,
                format!(r#"{{"credHelpers":{{"{}":"ecr-login"}}}}"#, registry.host()),
            )
            .unwrap();
            let path = format!(
                "{}:{}",
                helpers.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let (code, stdout, stderr) =
                tags_with_docker_config(&name, &helper_config, &[("PATH", path.as_str())]).await;
            assert_eq!(code, 0, "{mode:?}: {stderr}");
            assert_eq!(stdout.lines().count(), 5, "{mode:?}: {stdout}");
            assert!(!stderr.contains(PASSWORD), "{stderr}");
        }
    }
}

#[tokio::test]
async fn cli_tags_errors() {
    let closed = format!("127.0.0.1:{}/app", crate::support::free_port());
    let (code, _, stderr) = imagebump(&["tags", closed.as_str(), "--insecure"], &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cannot reach 127.0.0.1:"), "{stderr}");

    let (code, _, stderr) = imagebump(&["tags", "Bad//Name"], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("Bad//Name"), "{stderr}");

    let (code, _, stderr) = imagebump(
        &[
            "tags",
            "localhost:5000/app",
            "--username",
            "u",
            "--password-env",
            "IMAGEBUMP_UNSET_VAR",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("IMAGEBUMP_UNSET_VAR"), "{stderr}");

    let (code, _, stderr) =
        imagebump(&["tags", "localhost:5000/app", "--platform", "linux"], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("os/architecture"), "{stderr}");
}

#[tokio::test]
async fn logs_never_contain_passwords_or_tokens() {
    // The binary logs every request at debug level (IMAGEBUMP_LOG), in its own process, so
    // the capture sees exactly one client's events.
    let token_registry = TestRegistry::start_with_auth(AuthMode::token(USER, PASSWORD)).await;
    let basic_registry = TestRegistry::start_with_auth(AuthMode::basic(USER, PASSWORD)).await;
    let mut logs = String::new();
    for registry in [&token_registry, &basic_registry] {
        registry
            .pusher()
            .push_image("sec/app", "1.0.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
            .await;
        let proxy = FaultProxy::start(&registry.url()).await;
        // A retry (warning), a rejected credential (refresh for tokens), then success.
        proxy.fault(
            "/tags/list",
            Fault::Status {
                status: 500,
                retry_after: None,
            },
            1,
        );
        proxy.drop_auth(1);
        let name = proxy.image("sec/app");
        let args = [
            "tags",
            name.as_str(),
            "--insecure",
            "--username",
            USER,
            "--password-env",
            "REGISTRY_PASSWORD",
        ];
        let env = [("REGISTRY_PASSWORD", PASSWORD), ("IMAGEBUMP_LOG", "trace")];
        let (code, stdout, stderr) = imagebump(&args, &env).await;
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(stdout, "1.0.0\n");
        logs.push_str(&stderr);
        let wrong = [
            ("REGISTRY_PASSWORD", "another-Secret-pw"),
            ("IMAGEBUMP_LOG", "trace"),
        ];
        let (code, _, stderr) = imagebump(&args, &wrong).await;
        assert_eq!(code, 1, "{stderr}");
        logs.push_str(&stderr);
        // Credentials did go over the wire, so the check below is about real values.
        assert!(proxy.requests().iter().any(|r| r.authorization.is_some()));
    }
    assert!(
        logs.contains("registry_request"),
        "no request spans:\n{logs}"
    );
    assert!(logs.contains("retrying"), "{logs}");
    assert!(logs.contains("status=401"), "{logs}");
    let basic_value = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{PASSWORD}"),
    );
    for secret in [
        PASSWORD,
        "another-Secret-pw",
        basic_value.as_str(),
        "eyJ",
        "Bearer ",
        "Basic ",
    ] {
        assert!(
            !logs.contains(secret),
            "the logs contain {secret:?}:\n{logs}"
        );
    }
}

#[tokio::test]
async fn credentials_are_not_sent_to_the_host_a_blob_redirects_to() {
    // The private registry redirects blob downloads to "storage": another host serving the
    // same content (a plain registry holding the same image).
    let private = TestRegistry::start_with_auth(AuthMode::basic(USER, PASSWORD)).await;
    let storage = TestRegistry::start_plain().await;
    let spec = ImageSpec::new("2024-02-03T04:05:06Z");
    private.pusher().push_image("org/app", "1.0.0", &spec).await;
    storage.pusher().push_image("org/app", "1.0.0", &spec).await;
    let front = FaultProxy::start(&private.url()).await;
    let cdn = FaultProxy::start(&storage.url()).await;
    front.fault(
        "/blobs/",
        Fault::Redirect(format!("http://{}", cdn.host())),
        1,
    );

    let client = client(&front.host(), basic());
    let app = image(&front.image("org/app"));
    assert_eq!(
        client.created(&app, "1.0.0").await.unwrap(),
        Some(datetime!(2024-02-03 04:05:06 UTC))
    );
    let redirected = cdn.requests();
    assert_eq!(redirected.len(), 1, "{redirected:#?}");
    assert!(redirected[0].target.contains("/blobs/sha256:"));
    assert_eq!(redirected[0].authorization, None);
    assert!(
        front
            .requests()
            .iter()
            .any(|r| r.target.contains("/blobs/") && r.authorization.is_some())
    );
}

#[tokio::test]
async fn expired_tokens_are_fetched_again() {
    let registry = TestRegistry::start_with_auth(AuthMode::token(USER, PASSWORD)).await;
    registry
        .pusher()
        .push_image("exp/app", "1", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let server = registry.token_server.as_ref().unwrap();
    server
        .lifetime_secs
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let client = client(&registry.host(), basic());
    let app = image(&registry.image("exp/app"));
    let before = registry.token_requests();
    client.list_tags(&app).await.unwrap();
    client.list_tags(&app).await.unwrap();
    assert_eq!(registry.token_requests(), before + 1);
    // Past expires_in (minus slack), the next call fetches a new token up front, without a 401.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    client.list_tags(&app).await.unwrap();
    assert_eq!(registry.token_requests(), before + 2);
    let stats = client.stats().registry(&registry.host());
    assert_eq!(
        stats.by_outcome.get(&Outcome::Unauthorized),
        Some(&1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn https_with_a_custom_ca_file() {
    let registry = TestRegistry::start(RegistryConfig {
        tls: true,
        ..RegistryConfig::default()
    })
    .await;
    registry
        .pusher()
        .push_image("tls/app", "1.0.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let app = image(&registry.image("tls/app"));

    let mut trusted = RegistrySettings::new(registry.host());
    trusted.ca_file = registry.ca_file.clone();
    let client = Client::new(vec![trusted], options()).unwrap();
    assert_eq!(client.list_tags(&app).await.unwrap(), ["1.0.0"]);

    // System roots only: the registry's certificate is refused, clearly and without retries
    // hiding it.
    let untrusted = Client::new(vec![RegistrySettings::new(registry.host())], options()).unwrap();
    let err = untrusted.list_tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(err.to_string().contains("after 1 attempt"), "{err}");
    assert!(err.to_string().contains("ca_file"), "{err}");

    // The CLI takes the CA file too.
    let ca = registry.ca_file.as_ref().unwrap().display().to_string();
    let name = registry.image("tls/app");
    let (code, stdout, stderr) =
        imagebump(&["tags", name.as_str(), "--ca-file", ca.as_str()], &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "1.0.0\n");
}

/// Issue 13: the three TLS mistakes people make get an error that says what is wrong and what
/// to set, instead of rustls' words ("received corrupt message of type InvalidContentType",
/// "CaUsedAsEndEntity ... set its ca_file" while it was set).
#[tokio::test]
async fn tls_mistakes_get_errors_that_say_what_to_change() {
    // A plain-HTTP registry, asked over HTTPS (no `insecure: true`).
    let plain = TestRegistry::start_plain().await;
    let client = Client::new(vec![RegistrySettings::new(plain.host())], options()).unwrap();
    let err = client
        .list_tags(&image(&plain.image("any/app")))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(
        message.contains("answered plain HTTP")
            && message.contains("insecure: true")
            && message.contains("after 1 attempt")
            && !message.contains("InvalidContentType"),
        "{message}"
    );

    // A TLS registry, asked over plain HTTP (`insecure: true`, `--insecure`).
    let tls = TestRegistry::start(RegistryConfig {
        tls: true,
        ..RegistryConfig::default()
    })
    .await;
    let mut insecure = RegistrySettings::new(tls.host());
    insecure.insecure = true;
    let client = Client::new(vec![insecure], options()).unwrap();
    let err = client
        .list_tags(&image(&tls.image("any/app")))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("answered with TLS")
            && message.contains("insecure")
            && message.contains("ca_file"),
        "{message}"
    );
    let name = tls.image("any/app");
    let (code, _, stderr) = imagebump(&["tags", name.as_str(), "--insecure"], &[]).await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("answered with TLS") && stderr.contains("--insecure"),
        "{stderr}"
    );

    // A self-signed server certificate (made as a CA) given as its own ca_file.
    let leaf = TestRegistry::start(RegistryConfig {
        tls: true,
        self_signed: true,
        ..RegistryConfig::default()
    })
    .await;
    let ca_file = leaf.ca_file.clone().unwrap();
    let mut settings = RegistrySettings::new(leaf.host());
    settings.ca_file = Some(ca_file.clone());
    let client = Client::new(vec![settings], options()).unwrap();
    let err = client
        .list_tags(&image(&leaf.image("any/app")))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("server's own certificate")
            && message.contains("not a CA")
            && !message.contains("set its ca_file"),
        "{message}"
    );
}

#[tokio::test]
async fn harness_registry_sends_notifications_with_configured_headers() {
    // The daemon's webhook tests rely on this part of the harness.
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sender = sender.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let _ = sender.send((auth, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut endpoint =
        NotificationEndpoint::new("imagebump", &format!("http://127.0.0.1:{port}/events"));
    endpoint.headers.push((
        "Authorization".to_string(),
        "Token s3cret value".to_string(),
    ));
    endpoint.backoff = Duration::from_millis(100);
    let registry = TestRegistry::start(RegistryConfig {
        notifications: vec![endpoint],
        ..RegistryConfig::default()
    })
    .await;
    registry
        .pusher()
        .push_image("hook/app", "3.1.4", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let Ok(Some((auth, body))) = tokio::time::timeout_at(deadline, received.recv()).await
        else {
            panic!(
                "no notification with the tag; registry log:\n{}\nconfig:\n{}",
                registry.log(),
                std::fs::read_to_string(registry.dir.path().join("config.yml")).unwrap()
            );
        };
        assert_eq!(auth, "Token s3cret value");
        let envelope: serde_json::Value = serde_json::from_str(&body).unwrap();
        let tagged = envelope["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|event| event["action"] == "push" && event["target"]["tag"] == "3.1.4");
        if let Some(event) = tagged {
            assert_eq!(event["target"]["repository"], "hook/app");
            break;
        }
    }
    server.abort();
}

#[tokio::test]
async fn docker_config_identity_token_is_exchanged_at_the_realm() {
    let registry = TestRegistry::start_with_auth(AuthMode::token(USER, PASSWORD)).await;
    registry
        .pusher()
        .push_image("idt/app", "1.0.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let write_config = |token: &str| {
        let path = registry.dir.path().join(format!("config-{token}.json"));
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"{}":{{"identitytoken":"{token}"}}}}}}"#,
                registry.host()
            ),
        )
        .unwrap();
        path
    };
    let good = write_config(&crate::support::registry::identity_token(PASSWORD));
    let client = client(&registry.host(), RegistryAuth::DockerConfig(good));
    let app = image(&registry.image("idt/app"));
    assert_eq!(client.list_tags(&app).await.unwrap(), ["1.0.0"]);

    let bad = write_config("refresh-wrong");
    let client = self::client(&registry.host(), RegistryAuth::DockerConfig(bad));
    let err = client.list_tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("refresh-wrong"), "{err}");

    let missing = registry.dir.path().join("no-such-config.json");
    let client = self::client(&registry.host(), RegistryAuth::DockerConfig(missing));
    let err = client.list_tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::Credentials { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-config.json"), "{err}");
}

#[tokio::test]
async fn concurrent_first_calls_pay_for_one_challenge_and_one_token_per_scope() {
    let registry = TestRegistry::start_with_auth(AuthMode::token(USER, PASSWORD)).await;
    registry
        .pusher()
        .push_image("fleet/r0", "1.0.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    for i in 1..20 {
        registry.clone_repository("fleet/r0", &format!("fleet/r{i}"));
    }
    let client = client(&registry.host(), basic());
    let before = registry.token_requests();
    // Each repository asked for twice, all at once.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = client.clone();
        let repo = image(&registry.image(&format!("fleet/r{}", i % 20)));
        tasks.push(tokio::spawn(async move { client.list_tags(&repo).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), ["1.0.0"]);
    }
    assert_eq!(registry.token_requests() - before, 20);
    let stats = client.stats().registry(&registry.host());
    assert_eq!(stats.requests, 1 + 20 + 40, "{stats:?}");
}

/// `imagebump tags IMAGE --config F --semver RANGE` with `registry`'s entry in a global file
/// (`insecure: true`, then `more`, inside the entry's flow mapping); its stdout, asserting
/// success.
async fn tags_from_config(registry: &TestRegistry, image: &str, more: &str, range: &str) -> String {
    let dir = ConfigDir::with_global(&format!(
        "registries:\n  - {{prefix: '{}', insecure: true{more}}}\n",
        registry.host()
    ));
    let config = dir.global();
    let args = [
        "tags",
        image,
        "--config",
        config.to_str().unwrap(),
        "--semver",
        range,
    ];
    let (code, stdout, stderr) = imagebump(&args, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    stdout
}

#[tokio::test]
async fn tags_marks_the_tag_a_policy_picks() {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    let first = pusher
        .push_image("team/app", "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await;
    for tag in ["1.4.2", "2.0.0", "1.4.10-rc.1", "latest"] {
        pusher
            .push_manifest("team/app", tag, &first.media_type, &first.body)
            .await;
    }
    let image = registry.image("team/app");
    let (code, stdout, stderr) =
        imagebump(&["tags", &image, "--insecure", "--semver", "~1.4"], &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    let marked: Vec<&&str> = lines.iter().filter(|l| l.contains("<-")).collect();
    assert_eq!(marked.len(), 1, "{stdout}");
    assert!(marked[0].starts_with("1.4.2    <- semver ~1.4"), "{stdout}");
    assert_eq!(lines[4], "latest", "{stdout}");

    // The registry settings can come from the global config instead of flags.
    let from_config = tags_from_config(&registry, &image, "", "~1.4").await;
    assert_eq!(from_config, stdout);

    // An invalid range is a usage error with the caret.
    let (code, _, stderr) =
        imagebump(&["tags", &image, "--insecure", "--semver", ">=1 <"], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains('^'), "{stderr}");
}

/// `imagebump tags IMAGE --insecure --semver ^1`, with `--require-platform` for each of
/// `platforms`.
async fn tags_requiring(image: &str, platforms: &[&str]) -> (i32, String, String) {
    let mut args = vec!["tags", image, "--insecure", "--semver", "^1"];
    for platform in platforms {
        args.extend(["--require-platform", platform]);
    }
    imagebump(&args, &[]).await
}

/// `tags --require-platform` (the carried-over "no platform filter in `tags`"): the tag the
/// policy marks is the best one with an image for every platform asked, as a pass picks with
/// an image's `platform:` list, and the reason names the tags skipped; with `--config`, the
/// registry's `platform` list applies too. Without a policy the flag is a usage error.
#[tokio::test]
async fn tags_with_require_platform_marks_the_best_tag_that_has_those_images() {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    let both = [
        ImageSpec::new("2026-01-01T00:00:00Z"),
        ImageSpec::new("2026-01-01T00:00:00Z").platform("linux/arm64"),
    ];
    pusher.push_index("team/multi", "1.0.0", &both, &[]).await;
    pusher.push_index("team/multi", "1.1.0", &both, &[]).await;
    pusher
        .push_index(
            "team/multi",
            "1.2.0",
            &[ImageSpec::new("2026-01-02T00:00:00Z")],
            &[],
        )
        .await;
    pusher
        .push_image(
            "team/multi",
            "1.3.0",
            &ImageSpec::new("2026-01-03T00:00:00Z"),
        )
        .await;
    let image = registry.image("team/multi");
    let marked = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter(|l| l.contains("<-"))
            .map(str::to_string)
            .collect()
    };

    let (code, stdout, stderr) = tags_requiring(&image, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let picked = marked(&stdout);
    assert_eq!(picked.len(), 1, "{stdout}");
    assert!(picked[0].starts_with("1.3.0    <- "), "{stdout}");

    let (code, stdout, stderr) = tags_requiring(&image, &["linux/amd64", "linux/arm64"]).await;
    assert_eq!(code, 0, "{stderr}");
    let picked = marked(&stdout);
    assert_eq!(picked.len(), 1, "{stdout}");
    assert!(picked[0].starts_with("1.1.0    <- "), "{stdout}");
    assert!(
        picked[0]
            .contains("skipped 1.3.0 (no linux/arm64/v8 image), 1.2.0 (no linux/arm64/v8 image)"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().count(),
        4,
        "every tag is still listed: {stdout}"
    );

    // The registry's `platform` list from the global config.
    let from_config = tags_from_config(
        &registry,
        &image,
        ", platform: [linux/amd64, linux/arm64]",
        "^1",
    )
    .await;
    assert_eq!(from_config, stdout);

    // No tag has an s390x image: nothing is marked, and stderr says why.
    let (code, stdout, stderr) = tags_requiring(&image, &["linux/s390x"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(marked(&stdout).is_empty(), "{stdout}");
    assert!(
        stderr.contains("no pick: ") && stderr.contains("linux/s390x"),
        "{stderr}"
    );

    let (code, _, stderr) = imagebump(
        &[
            "tags",
            &image,
            "--insecure",
            "--require-platform",
            "linux/arm64",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("add a policy flag"), "{stderr}");
}
