//! The forge clients against the GitHub, GitLab and Gitea stand-ins: every scenario runs on
//! all three forges (see the `for_each_forge!` list at the bottom).
#![allow(clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imagebump::forge::{
    Action, ChangeRow, Forge, ForgeError, ForgeKind, ForgeSettings, PrState, decide, fingerprint,
    render_body, render_title,
};
use reqwest::Method;

use crate::support::forge::{Fault, StandIn, TOKEN, TOKEN_ENV};

const HEAD: &str = "imagebump/shop";
const BASE: &str = "main";

fn rows(to: &str) -> Vec<ChangeRow> {
    vec![
        ChangeRow {
            image: "ghcr.io/acme/shop-api".to_string(),
            name: "api".to_string(),
            file: "charts/shop/values-staging.yaml".to_string(),
            from: "1.4.2".to_string(),
            to: to.to_string(),
            digest: None,
            reason: "semver ~1.4: newest of 4 matching tags".to_string(),
            tag: to.to_string(),
        },
        ChangeRow {
            image: "ghcr.io/acme/shop-api".to_string(),
            name: "api".to_string(),
            file: "charts/shop/values-prod.yaml".to_string(),
            from: "1.4.1".to_string(),
            to: to.to_string(),
            digest: None,
            reason: "semver ~1.4: newest of 4 matching tags".to_string(),
            tag: to.to_string(),
        },
    ]
}

/// What one pass of the write-back engine did with the forge.
#[derive(Debug, PartialEq)]
enum Outcome {
    Created(u64),
    Updated(u64),
    UpToDate(u64),
    Skipped(u64),
}

/// One pass as the lead's engine runs it: find, decide, act.
async fn pass(forge: &Forge, to: &str) -> Result<Outcome, ForgeError> {
    let changes = rows(to);
    let title = render_title(None, "shop", &changes)?;
    let body = render_body(None, "shop", &changes)?;
    let found = forge.find_pull_requests(HEAD, BASE).await?;
    Ok(match decide(&found, &fingerprint(&changes)) {
        Action::Create => {
            let created = forge.create(HEAD, BASE, &title, &body).await?;
            assert!(created.problems.is_empty(), "{:?}", created.problems);
            Outcome::Created(created.pull_request.number)
        }
        Action::Update(pr) => Outcome::Updated(forge.update(&pr, &title, &body).await?.number),
        Action::UpToDate(pr) => Outcome::UpToDate(pr.number),
        Action::Skip { pr, .. } => Outcome::Skipped(pr.number),
    })
}

fn forge_for(stand: &StandIn, edit: impl FnOnce(&mut ForgeSettings)) -> Forge {
    let mut settings = stand.settings();
    edit(&mut settings);
    Forge::new(settings).expect("forge settings")
}

fn assert_clean(stand: &StandIn) {
    assert!(
        stand.violations().is_empty(),
        "protocol violations: {:#?}",
        stand.violations()
    );
}

fn expected_create_requests(kind: ForgeKind) -> Vec<&'static str> {
    match kind {
        ForgeKind::Github => vec![
            "GET /repos/acme/shop-config/pulls",
            "POST /repos/acme/shop-config/pulls",
            "POST /repos/acme/shop-config/issues/1/labels",
            "POST /repos/acme/shop-config/pulls/1/requested_reviewers",
            "POST /repos/acme/shop-config/issues/1/assignees",
        ],
        ForgeKind::Gitlab => vec![
            "GET /api/v4/projects/acme%2Fplatform%2Fshop-config/merge_requests",
            "GET /api/v4/users",
            "GET /api/v4/users",
            "POST /api/v4/projects/acme%2Fplatform%2Fshop-config/merge_requests",
        ],
        ForgeKind::Gitea => vec![
            "GET /api/v1/repos/acme/shop-config/pulls",
            "GET /api/v1/repos/acme/shop-config/pulls",
            "GET /api/v1/repos/acme/shop-config/labels",
            "POST /api/v1/repos/acme/shop-config/pulls",
            "POST /api/v1/repos/acme/shop-config/pulls/1/requested_reviewers",
        ],
    }
}

async fn find_none_then_create_with_labels_reviewers_assignees_draft(kind: ForgeKind) {
    let stand = StandIn::start(kind).await;
    let forge = forge_for(&stand, |s| {
        s.labels = vec!["images".to_string(), "bot".to_string()];
        s.reviewers = vec!["alice".to_string()];
        s.assignees = vec!["bob".to_string()];
        s.draft = true;
    });
    let changes = rows("1.4.3");
    let found = forge.find_pull_requests(HEAD, BASE).await.expect("find");
    assert!(found.is_empty());
    assert_eq!(decide(&found, &fingerprint(&changes)), Action::Create);

    let title = render_title(None, "shop", &changes).expect("title");
    let body = render_body(None, "shop", &changes).expect("body");
    let created = forge
        .create(HEAD, BASE, &title, &body)
        .await
        .expect("create");
    assert!(created.problems.is_empty(), "{:?}", created.problems);
    let pr = created.pull_request;
    assert_eq!((pr.number, pr.state), (1, PrState::Open));
    assert_eq!((pr.head.as_str(), pr.base.as_str()), (HEAD, BASE));
    assert_eq!(pr.body, body);
    assert!(pr.url.starts_with("https://"), "{}", pr.url);

    let stored = stand.pr(1);
    assert_eq!(stored.labels, ["images", "bot"]);
    assert_eq!(stored.reviewers, ["alice"]);
    assert_eq!(stored.assignees, ["bob"]);
    assert!(stored.draft, "draft flag not sent as documented");
    let want_title = match kind {
        ForgeKind::Github => title.clone(),
        ForgeKind::Gitlab => format!("Draft: {title}"),
        ForgeKind::Gitea => format!("WIP: {title}"),
    };
    assert_eq!(stored.title, want_title);
    assert_eq!(stand.request_lines(), expected_create_requests(kind));

    let list = &stand.requests()[0];
    match kind {
        ForgeKind::Github => {
            assert_eq!(list.query_value("head"), Some("acme:imagebump/shop"));
            assert_eq!(list.query_value("base"), Some(BASE));
            assert_eq!(list.query_value("state"), Some("all"));
        }
        ForgeKind::Gitlab => {
            assert_eq!(list.query_value("source_branch"), Some(HEAD));
            assert_eq!(list.query_value("target_branch"), Some(BASE));
        }
        ForgeKind::Gitea => {
            assert_eq!(list.query_value("state"), Some("open"));
            assert_eq!(stand.requests()[1].query_value("state"), Some("closed"));
        }
    }
    assert_clean(&stand);
}

async fn three_passes_with_the_same_tag_open_one_pr(kind: ForgeKind) {
    let stand = StandIn::start(kind).await;
    let forge = forge_for(&stand, |_| {});
    assert_eq!(
        pass(&forge, "1.4.3").await.expect("pass 1"),
        Outcome::Created(1)
    );
    assert_eq!(
        pass(&forge, "1.4.3").await.expect("pass 2"),
        Outcome::UpToDate(1)
    );
    assert_eq!(
        pass(&forge, "1.4.3").await.expect("pass 3"),
        Outcome::UpToDate(1)
    );
    assert_eq!(stand.prs().len(), 1);
    let creates = stand
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(creates, 1);
    assert_clean(&stand);
}

async fn open_pr_is_updated_in_place(kind: ForgeKind) {
    let stand = StandIn::start(kind).await;
    let forge = forge_for(&stand, |s| s.draft = true);
    assert_eq!(
        pass(&forge, "1.4.3").await.expect("create"),
        Outcome::Created(1)
    );

    let newer = rows("1.4.4");
    let found = forge.find_pull_requests(HEAD, BASE).await.expect("find");
    let open = match decide(&found, &fingerprint(&newer)) {
        Action::Update(pr) => pr,
        other => panic!("expected Update, got {other:?}"),
    };
    let title = render_title(None, "shop", &newer).expect("title");
    let body = render_body(None, "shop", &newer).expect("body");
    let updated = forge.update(&open, &title, &body).await.expect("update");
    assert_eq!(updated.number, 1);
    assert_eq!(updated.body, body);
    assert!(updated.body.contains("`1.4.4`"));
    // The draft marker survives the update on the forges that keep it in the title.
    let want_title = match kind {
        ForgeKind::Github => title.clone(),
        ForgeKind::Gitlab => format!("Draft: {title}"),
        ForgeKind::Gitea => format!("WIP: {title}"),
    };
    assert_eq!(updated.title, want_title);
    assert_eq!(stand.pr(1).title, want_title);
    assert!(stand.pr(1).draft);
    assert_eq!(stand.prs().len(), 1);

    let update_line = stand.request_lines().pop().expect("a request");
    let want = match kind {
        ForgeKind::Github => "PATCH /repos/acme/shop-config/pulls/1",
        ForgeKind::Gitlab => "PUT /api/v4/projects/acme%2Fplatform%2Fshop-config/merge_requests/1",
        ForgeKind::Gitea => "PATCH /api/v1/repos/acme/shop-config/pulls/1",
    };
    assert_eq!(update_line, want);
    assert_eq!(
        pass(&forge, "1.4.4").await.expect("again"),
        Outcome::UpToDate(1)
    );
    assert_clean(&stand);
}

async fn merged_pr_is_followed_by_a_fresh_one(kind: ForgeKind) {
    let stand = StandIn::start(kind).await;
    let forge = forge_for(&stand, |_| {});
    assert_eq!(
        pass(&forge, "1.4.3").await.expect("create"),
        Outcome::Created(1)
    );
    stand.merge(1);

    let found = forge.find_pull_requests(HEAD, BASE).await.expect("find");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].state, PrState::Merged);
    assert_eq!(decide(&found, &fingerprint(&rows("1.4.4"))), Action::Create);
    assert_eq!(
        pass(&forge, "1.4.4").await.expect("fresh"),
        Outcome::Created(2)
    );

    let found = forge.find_pull_requests(HEAD, BASE).await.expect("find");
    let states: Vec<(u64, PrState)> = found.iter().map(|p| (p.number, p.state)).collect();
    assert_eq!(states, [(2, PrState::Open), (1, PrState::Merged)]);
    assert_clean(&stand);
}

async fn closed_pr_is_not_reopened_for_the_same_versions(kind: ForgeKind) {
    let stand = StandIn::start(kind).await;
    let forge = forge_for(&stand, |_| {});
    assert_eq!(
        pass(&forge, "1.4.3").await.expect("create"),
        Outcome::Created(1)
    );
    stand.close(1);

    let found = forge.find_pull_requests(HEAD, BASE).await.expect("find");
    assert_eq!(found[0].state, PrState::Closed);
    match decide(&found, &fingerprint(&rows("1.4.3"))) {
        Action::Skip { pr, reason } => {
            assert_eq!(pr.number, 1);
            assert!(reason.contains("closed without merging"), "{reason}");
        }
        other => panic!("expected Skip, got {other:?}"),
    }
    stand.clear_requests();
    assert_eq!(
        pass(&forge, "1.4.3").await.expect("skip"),
        Outcome::Skipped(1)
    );
    assert!(
        stand.requests().iter().all(|r| r.method == "GET"),
        "{:?}",
        stand.request_lines()
    );
    assert_eq!(stand.prs().len(), 1);

    assert_eq!(
        pass(&forge, "1.4.4").await.expect("newer"),
        Outcome::Created(2)
    );
    assert!(!stand.pr(1).open, "the closed pull request was reopened");
    assert_clean(&stand);
}

async fn duplicate_create_reports_the_api_message(kind: ForgeKind) {
    let stand = StandIn::start(kind).await;
    let forge = forge_for(&stand, |_| {});
    forge
        .create(HEAD, BASE, "one", "body")
        .await
        .expect("first");
    let err = forge
        .create(HEAD, BASE, "two", "body")
        .await
        .expect_err("second");
    let (status, fragment) = match kind {
        ForgeKind::Github => (
            422,
            "A pull request already exists for acme:imagebump/shop.",
        ),
        ForgeKind::Gitlab => (
            409,
            "Another open merge request already exists for this source branch: !1",
        ),
        ForgeKind::Gitea => (409, "pull request already exists for these targets"),
    };
    match &err {
        ForgeError::Rejected { status: got, .. } => assert_eq!(*got, status),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(err.to_string().contains(fragment), "{err}");
    assert_eq!(stand.prs().len(), 1);
    assert_clean(&stand);
}

async fn refused_extras_are_reported_and_the_pr_is_kept(kind: ForgeKind) {
    let stand = StandIn::start(kind).await;
    let forge = forge_for(&stand, |s| match kind {
        ForgeKind::Github => s.reviewers = vec!["mallory".to_string()],
        ForgeKind::Gitlab => s.assignees = vec!["mallory".to_string(), "bob".to_string()],
        ForgeKind::Gitea => s.labels = vec!["images".to_string(), "no-such-label".to_string()],
    });
    let created = forge
        .create(HEAD, BASE, "title", "body")
        .await
        .expect("create");
    assert_eq!(created.pull_request.number, 1);
    assert_eq!(created.problems.len(), 1, "{:?}", created.problems);
    let problem = created.problems[0].to_string();
    let fragment = match kind {
        ForgeKind::Github => "Reviews may only be requested from collaborators",
        ForgeKind::Gitlab => "GitLab has no user named \"mallory\"",
        ForgeKind::Gitea => "Gitea has no label named \"no-such-label\"",
    };
    assert!(problem.contains(fragment), "{problem}");
    match kind {
        ForgeKind::Gitlab => assert_eq!(stand.pr(1).assignees, ["bob"]),
        ForgeKind::Gitea => assert_eq!(stand.pr(1).labels, ["images"]),
        ForgeKind::Github => assert!(stand.pr(1).reviewers.is_empty()),
    }
    // GitHub's 422 on the reviewer request is the documented answer, not a protocol violation.
    assert_clean(&stand);
}

/// Captured log output of the current thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

fn assert_no_token(err: &ForgeError) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(TOKEN), "token leaked: {shown}");
}

/// The tests that capture logs take turns.
static LOG_CAPTURE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// With a single live dispatcher, tracing-core computes a new callsite's interest from the
/// registering thread's default, so a callsite first hit by a test on another thread would be
/// cached as "never" and missing from our capture. A second dispatcher, kept alive for the
/// whole run, makes tracing ask every live dispatcher instead.
static SECOND_DISPATCHER: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();

async fn every_error_class_is_typed_and_clear(kind: ForgeKind) {
    let _turn = LOG_CAPTURE.lock().await;
    SECOND_DISPATCHER.get_or_init(|| tracing::Dispatch::new(tracing_subscriber::registry()));
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let stand = StandIn::start(kind).await;
    let forge = forge_for(&stand, |_| {});
    let name = kind.to_string();
    let project = stand.project();

    // A real 401: the token is wrong.
    let wrong = forge_for(&stand, |s| {
        s.token = imagebump::forge::Secret::new("wrong-token")
    });
    let err = wrong.find_pull_requests(HEAD, BASE).await.expect_err("401");
    assert!(matches!(err, ForgeError::Unauthorized { .. }), "{err:?}");
    let find_action = match kind {
        ForgeKind::Github => "list the pull requests of the bot branch",
        ForgeKind::Gitlab => "list the merge requests of the bot branch",
        ForgeKind::Gitea => "list the pull requests",
    };
    assert_eq!(
        err.to_string(),
        format!(
            "token rejected by {name} (HTTP 401) while trying to {find_action}: check {TOKEN_ENV}"
        )
    );
    assert_no_token(&err);

    let cases: Vec<(Fault, Option<Method>)> = vec![
        (Fault::Unauthorized, None),
        (Fault::Forbidden, None),
        (Fault::NotFound, None),
        (Fault::Validation, Some(Method::POST)),
        (Fault::RateLimited { retry_after: 17 }, None),
        (
            Fault::SecondaryRateLimit {
                retry_after: Some(30),
            },
            None,
        ),
        (Fault::SecondaryRateLimit { retry_after: None }, None),
        (Fault::QuotaSpent, None),
    ];
    for (fault, only) in cases {
        stand.set_fault(Some(fault.clone()), only.clone());
        let err = match only {
            Some(_) => forge
                .create(HEAD, BASE, "t", "b")
                .await
                .expect_err("create fails"),
            None => forge
                .find_pull_requests(HEAD, BASE)
                .await
                .expect_err("find fails"),
        };
        assert_no_token(&err);
        let text = err.to_string();
        match fault {
            Fault::Unauthorized => {
                assert!(matches!(err, ForgeError::Unauthorized { .. }), "{err:?}");
                assert!(
                    text.contains(&format!("token rejected by {name}")) && text.contains(TOKEN_ENV),
                    "{text}"
                );
            }
            Fault::Forbidden => {
                assert!(matches!(err, ForgeError::Forbidden { .. }), "{err:?}");
                assert!(
                    text.contains("HTTP 403") && text.contains(&project),
                    "{text}"
                );
            }
            Fault::NotFound => {
                assert!(matches!(err, ForgeError::NotFound { .. }), "{err:?}");
                assert!(
                    text.contains(&format!(
                        "project {project} not found or the token lacks access"
                    )),
                    "{text}"
                );
            }
            Fault::Validation => {
                assert!(
                    matches!(err, ForgeError::Rejected { status: 422, .. }),
                    "{err:?}"
                );
                let api_text = match kind {
                    ForgeKind::Github => "No commits between main and imagebump/shop",
                    ForgeKind::Gitlab => "This merge request already exists",
                    ForgeKind::Gitea => "There are no changes between the head and the base",
                };
                assert!(text.contains(api_text), "{text}");
            }
            Fault::RateLimited { .. } => {
                assert_eq!(err.retry_after(), Some(Duration::from_secs(17)), "{err:?}");
                assert!(
                    text.contains("rate limit hit") && text.contains("retry after 17 s"),
                    "{text}"
                );
            }
            Fault::SecondaryRateLimit { retry_after } => {
                let want = Duration::from_secs(retry_after.unwrap_or(60));
                assert_eq!(err.retry_after(), Some(want), "{err:?}");
            }
            Fault::QuotaSpent => {
                let wait = err.retry_after().expect("a wait").as_secs();
                assert!((1..=60).contains(&wait), "{wait}");
            }
            Fault::Hang => unreachable!(),
        }
    }

    // The next pass after the fault clears works: nothing was lost.
    stand.set_fault(None, None);
    assert_eq!(
        pass(&forge, "1.4.3").await.expect("healed"),
        Outcome::Created(1)
    );

    // No answer in time: a transport error, not a hang.
    let impatient = forge_for(&stand, |s| s.timeout = Duration::from_millis(300));
    stand.set_fault(Some(Fault::Hang), None);
    let err = impatient
        .find_pull_requests(HEAD, BASE)
        .await
        .expect_err("timeout");
    assert!(matches!(err, ForgeError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("no answer within 300ms"), "{err}");
    assert_no_token(&err);

    let logs = logs.text();
    assert!(
        logs.contains("forge API error"),
        "logs not captured: {logs}"
    );
    assert!(!logs.contains(TOKEN), "token in logs");
    assert_clean(&stand);
}

async fn unreachable_forge_is_a_transport_error(kind: ForgeKind) {
    let port = crate::support::free_port();
    let mut settings = ForgeSettings::new(
        kind,
        format!("http://127.0.0.1:{port}/api"),
        imagebump::forge::Secret::new(TOKEN),
        TOKEN_ENV,
        "acme/shop-config",
    );
    settings.timeout = Duration::from_secs(2);
    let err = Forge::new(settings)
        .expect("forge")
        .find_pull_requests(HEAD, BASE)
        .await
        .expect_err("down");
    assert!(matches!(err, ForgeError::Transport { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!(
            "cannot reach {kind} at http://127.0.0.1:{port}/api"
        )),
        "{err}"
    );
    assert_no_token(&err);
}

/// Gitea cannot filter the list by branch: the bot's open pull request must be found even
/// when many others were updated after it.
#[tokio::test]
async fn gitea_finds_the_open_pr_beyond_the_first_page() {
    let stand = StandIn::start(ForgeKind::Gitea).await;
    let forge = forge_for(&stand, |_| {});
    assert_eq!(
        pass(&forge, "1.4.3").await.expect("create"),
        Outcome::Created(1)
    );
    for i in 0..60 {
        stand.seed_pr(&format!("feature-{i}"), BASE, "a human's change");
    }
    let closed = stand.seed_pr("old-feature", BASE, "closed");
    stand.close(closed);
    stand.clear_requests();

    let found = forge.find_pull_requests(HEAD, BASE).await.expect("find");
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].number, found[0].state), (1, PrState::Open));
    let lines: Vec<String> = stand
        .requests()
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r.query_value("state").unwrap_or_default(),
                r.query_value("page").unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(lines, ["open:1", "open:2", "closed:1"]);
    assert_eq!(
        pass(&forge, "1.4.3").await.expect("again"),
        Outcome::UpToDate(1)
    );
    assert_clean(&stand);
}

macro_rules! for_each_forge {
    ($($scenario:ident),* $(,)?) => {
        mod github {
            $( #[tokio::test] async fn $scenario() { super::$scenario(imagebump::forge::ForgeKind::Github).await } )*
        }
        mod gitlab {
            $( #[tokio::test] async fn $scenario() { super::$scenario(imagebump::forge::ForgeKind::Gitlab).await } )*
        }
        mod gitea {
            $( #[tokio::test] async fn $scenario() { super::$scenario(imagebump::forge::ForgeKind::Gitea).await } )*
        }
    };
}

for_each_forge!(
    find_none_then_create_with_labels_reviewers_assignees_draft,
    three_passes_with_the_same_tag_open_one_pr,
    open_pr_is_updated_in_place,
    merged_pr_is_followed_by_a_fresh_one,
    closed_pr_is_not_reopened_for_the_same_versions,
    duplicate_create_reports_the_api_message,
    refused_extras_are_reported_and_the_pr_is_kept,
    every_error_class_is_typed_and_clear,
    unreachable_forge_is_a_transport_error,
);
