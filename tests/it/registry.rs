//! The registry client and `imagebump tags` against a real `docker-registry`, directly and
//! through the paging, fault-injecting proxy.

use std::time::Duration;

use imagebump::reference::ImageRef;
use imagebump::registry::{
    Client, ClientOptions, RegistryAuth, RegistryError, RegistrySettings, Secret,
};
use time::macros::datetime;

use crate::support::registry::{AuthMode, FaultProxy, ImageSpec, TestRegistry};

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
