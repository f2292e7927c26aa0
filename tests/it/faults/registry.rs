//! Fault suite: registry faults (see docs/reliability.md).
//!
//! Every test here talks to a real `docker-registry`, through the fault-injecting proxy
//! (`support::registry::FaultProxy`) for what a real registry cannot be made to do. Each is
//! bounded in time: the client's timeouts and retries are short, and every listing either
//! completes with the whole tag list or fails with an error naming the repository, never with
//! part of the list.

use std::time::{Duration, Instant};

use imagebump::reference::ImageRef;
use imagebump::registry::{Client, ClientOptions, RegistryError, RegistrySettings, TagListBudget};

use crate::support::registry::{Fault, FaultProxy, ImageSpec, TestRegistry};

/// Short timeouts and backoffs, so a fault costs milliseconds.
fn options() -> ClientOptions {
    ClientOptions {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        max_retry_after: Duration::from_millis(300),
        request_timeout: Duration::from_secs(5),
        breaker_cooldown: Duration::ZERO,
        // Ten tags a page: a listing of a few dozen tags is several pages.
        page_size: 10,
        ..ClientOptions::default()
    }
}

fn settings(host: &str) -> RegistrySettings {
    let mut settings = RegistrySettings::new(host);
    settings.insecure = true;
    settings
}

fn client(host: &str) -> Client {
    Client::new(vec![settings(host)], options()).expect("client")
}

fn image(name: &str) -> ImageRef {
    ImageRef::parse(name).expect("image reference")
}

/// A registry with `count` tags `1.0.N` on `repository`, behind a proxy paginating by `page`.
async fn registry_with_tags(
    repository: &str,
    count: usize,
    page: usize,
) -> (TestRegistry, FaultProxy, Vec<String>) {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    let first = pusher
        .push_image(repository, "1.0.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let mut tags: Vec<String> = (0..count).map(|i| format!("1.0.{i}")).collect();
    registry.seed_tags(repository, &first, &tags[1..]);
    tags.sort();
    let proxy = FaultProxy::start(&registry.url()).await;
    proxy.paginate(page);
    (registry, proxy, tags)
}

fn sorted(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags
}

/// Issue 12 item 12: a 200 whose JSON is cut short (a flaky proxy) is retried like a 5xx, so a
/// multi-page listing completes; when it never decodes, the listing fails, never returning the
/// pages read so far.
#[tokio::test]
async fn a_truncated_tags_page_is_retried_and_never_decides_from_a_partial_list() {
    let (_registry, proxy, tags) = registry_with_tags("cut/app", 25, 10).await;
    let client = client(&proxy.host());
    let app = image(&proxy.image("cut/app"));

    let started = Instant::now();
    assert_eq!(sorted(client.list_tags(&app).await.unwrap()), tags);
    assert_eq!(proxy.count("/tags/list"), 3);
    proxy.clear();
    // The next two pages sent are cut in half (with a matching Content-Length): a 200 whose
    // JSON does not decode.
    proxy.fault("/tags/list", Fault::Truncate, 2);
    assert_eq!(sorted(client.list_tags(&app).await.unwrap()), tags);
    // Three pages, two of them sent again.
    assert_eq!(proxy.count("/tags/list"), 5);
    let stats = client.stats().registry(&proxy.host());
    assert!(stats.retries >= 2, "{stats:?}");

    // Always cut: a bounded number of attempts, then an error naming the repository.
    proxy.clear();
    proxy.fault("/tags/list", Fault::Truncate, 1000);
    let err = client.list_tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::BadResponse { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&proxy.host())
            && message.contains("cut/app")
            && message.contains("not valid JSON")
            && message.contains("4 attempts"),
        "{message}"
    );
    assert_eq!(proxy.count("/tags/list"), 4);
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// Issue 12 item 7: a registry that sends `Link` pages forever used to be followed for up to
/// 100,000 pages (206 MB, ~40 minutes a pass). A listing now stops at its budget (pages, tags,
/// bytes, time: defaults 1,000 / 200,000 / 64 MiB / 5 min, configurable per registry) with an
/// error naming the cap and the key that raises it, and never answers from the pages read.
#[tokio::test]
async fn endless_or_oversized_tag_listings_stop_at_their_budget_and_never_decide_from_part() {
    let (_registry, proxy, tags) = registry_with_tags("loop/app", 200, 10).await;
    let app = image(&proxy.image("loop/app"));

    // Endless Link pages, default budget: exactly 1,000 pages are asked for, then an error.
    let started = Instant::now();
    proxy.fault("/tags/list", Fault::EndlessLinks, 100_000);
    let err = client(&proxy.host()).list_tags(&app).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::TagListTooLarge { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("loop/app")
            && message.contains("1000 pages")
            && message.contains("tag_list.max_pages")
            && message.contains("partial"),
        "{message}"
    );
    assert_eq!(proxy.count("/tags/list"), 1000);
    assert!(started.elapsed() < Duration::from_secs(60));

    // The other caps, each set low on an honest 200-tag, 20-page listing.
    let capped = |budget: TagListBudget| {
        let mut settings = settings(&proxy.host());
        settings.tag_list = budget;
        Client::new(vec![settings], options()).expect("client")
    };
    let defaults = TagListBudget::default();
    proxy.clear_faults();
    proxy.clear();
    let whole = capped(defaults).list_tags(&app).await.unwrap();
    assert_eq!(sorted(whole), tags, "the default budget lists everything");
    for (budget, key) in [
        (
            TagListBudget {
                max_pages: 5,
                ..defaults
            },
            "max_pages",
        ),
        (
            TagListBudget {
                max_tags: 50,
                ..defaults
            },
            "max_tags",
        ),
        (
            TagListBudget {
                max_bytes: 1024,
                ..defaults
            },
            "max_bytes",
        ),
    ] {
        let err = capped(budget).list_tags(&app).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::TagListTooLarge { key: k, .. } if k == key),
            "{key}: {err:?}"
        );
    }

    // Slow pages: the whole listing is bounded in time, however each page behaves.
    proxy.clear_faults();
    proxy.fault("/tags/list", Fault::Delay(Duration::from_millis(300)), 1000);
    let started = Instant::now();
    let err = capped(TagListBudget {
        timeout: Duration::from_secs(1),
        ..defaults
    })
    .list_tags(&app)
    .await
    .unwrap_err();
    assert!(
        matches!(err, RegistryError::TagListTooLarge { key: "timeout", .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Connections reset mid-response (after the headers and half the body): retried like any
/// transient failure, so one reset costs one more request; a registry that always resets fails
/// the request after the bounded attempts, naming registry and repository, never answering
/// from the half that arrived.
#[tokio::test]
async fn a_connection_reset_mid_response_is_retried_then_a_clear_error() {
    let (_registry, proxy, tags) = registry_with_tags("reset/app", 25, 10).await;
    let client = client(&proxy.host());
    let app = image(&proxy.image("reset/app"));

    // The second page is reset once: the listing completes, the page asked twice.
    proxy.fault("/tags/list", Fault::Reset, 1);
    assert_eq!(sorted(client.list_tags(&app).await.unwrap()), tags);
    assert_eq!(proxy.count("/tags/list"), 4);
    proxy.clear();
    proxy.fault("/manifests/", Fault::Reset, 1);
    let digest = client.digest(&app, "1.0.0").await.unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");

    // Always reset: four attempts, then Unreachable naming registry and repository.
    proxy.clear();
    proxy.fault("/tags/list", Fault::Reset, 1000);
    let err = client.list_tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&proxy.host())
            && message.contains("reset/app")
            && message.contains("4 attempts"),
        "{message}"
    );
    assert_eq!(proxy.count("/tags/list"), 4);
    proxy.clear_faults();
    proxy.clear();
    proxy.fault("/manifests/", Fault::Reset, 1000);
    let err = client.created(&app, "1.0.0").await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("reset/app"), "{err}");
}

/// A 100 MB tags page or manifest (a broken proxy, a hostile registry): the client stops
/// reading at its per-response cap (16 MiB by default) and fails that request with an error
/// naming the cap, without retrying it and without holding 100 MB.
#[tokio::test]
async fn a_100_mb_tags_page_or_manifest_is_refused_at_the_body_cap() {
    let (_registry, proxy, _tags) = registry_with_tags("huge/app", 5, 10).await;
    let client = client(&proxy.host());
    let app = image(&proxy.image("huge/app"));
    let cap = imagebump::registry::ClientOptions::default().max_body_bytes;
    const HUNDRED_MB: usize = 100 * 1024 * 1024;

    proxy.fault("/tags/list", Fault::Huge(HUNDRED_MB), 1000);
    let err = client.list_tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::BadResponse { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&proxy.host())
            && message.contains("huge/app")
            && message.contains(&format!("larger than {cap} bytes")),
        "{message}"
    );
    assert_eq!(
        proxy.count("/tags/list"),
        1,
        "a body too large is not asked again"
    );

    proxy.clear_faults();
    proxy.clear();
    proxy.fault("/manifests/", Fault::Huge(HUNDRED_MB), 1000);
    let err = client.created(&app, "1.0.0").await.unwrap_err();
    assert!(matches!(err, RegistryError::BadResponse { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("huge/app")
            && message.contains("manifest")
            && message.contains(&format!("larger than {cap} bytes")),
        "{message}"
    );

    // The registry is fine again: so is the client.
    proxy.clear_faults();
    assert_eq!(client.list_tags(&app).await.unwrap().len(), 5);
}

/// A body that trickles (one byte every 150 ms: each byte on time, the whole never): every
/// request is bounded by the request timeout, which covers reading the body, so the request
/// fails as timed out after the bounded attempts; a trickle once is retried and the listing
/// completes.
#[tokio::test]
async fn a_trickling_body_is_bounded_by_the_request_timeout() {
    let (_registry, proxy, tags) = registry_with_tags("drip/app", 5, 10).await;
    let impatient = Client::new(
        vec![settings(&proxy.host())],
        ClientOptions {
            request_timeout: Duration::from_secs(1),
            ..options()
        },
    )
    .expect("client");
    let app = image(&proxy.image("drip/app"));

    proxy.fault("/tags/list", Fault::Trickle(Duration::from_millis(150)), 1);
    assert_eq!(sorted(impatient.list_tags(&app).await.unwrap()), tags);
    assert_eq!(proxy.count("/tags/list"), 2);

    proxy.clear();
    let started = Instant::now();
    proxy.fault(
        "/tags/list",
        Fault::Trickle(Duration::from_millis(150)),
        1000,
    );
    let err = impatient.list_tags(&app).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("drip/app")
            && message.contains("timed out")
            && message.contains("4 attempts"),
        "{message}"
    );
    assert_eq!(proxy.count("/tags/list"), 4);
    assert!(started.elapsed() < Duration::from_secs(15));

    proxy.clear_faults();
    proxy.clear();
    proxy.fault(
        "/manifests/",
        Fault::Trickle(Duration::from_millis(150)),
        1000,
    );
    let err = impatient.created(&app, "1.0.0").await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
}
