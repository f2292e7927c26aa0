//! Pull-request mode under the race (issue 17): three `imagebump run` daemons (separate
//! workdirs, the same config) against one real registry, one remote over smart HTTP and the
//! GitHub, GitLab and Gitea stand-ins. Whatever the interleaving, each app has exactly one
//! open pull request, updated in place (never a duplicate, never closed and reopened), its bot
//! branch holds the newest tag, and no replica is left with a failed app.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use imagebump::forge::ForgeKind;

use crate::support::config::ConfigDir;
use crate::support::forge::{StandIn, TOKEN as FORGE_TOKEN, TOKEN_ENV};
use crate::support::free_port;
use crate::support::git::{BareRepo, GitHttpServer};
use crate::support::imagebump::text;
use crate::support::registry::{ImageSpec, TestRegistry};
use crate::support::replica::{Daemon, apps_fixture, push_round, replica_config};

const APPS: usize = 4;
const WEBHOOK_TOKEN: &str = "Bearer webhook-token-for-tests";
const GIT_PASSWORD: &str = "git-password-for-tests";
/// The environment of every replica and `once`: the secrets the config names.
const ENV: [(&str, &str); 3] = [
    ("WEBHOOK_TOKEN", WEBHOOK_TOKEN),
    ("GIT_PASSWORD", GIT_PASSWORD),
    (TOKEN_ENV, FORGE_TOKEN),
];

fn forge_name(kind: ForgeKind) -> &'static str {
    match kind {
        ForgeKind::Github => "github",
        ForgeKind::Gitlab => "gitlab",
        ForgeKind::Gitea => "gitea",
    }
}

fn bot_branch(app: usize) -> String {
    format!("imagebump/app-{app}")
}

/// The config every replica shares (but its listen port): apps `app-0` … in pull-request
/// mode on `forge`, each with its own image `team/app-N` and its own file in one repo.
fn config(
    registry: &str,
    repo: &str,
    forge: &StandIn,
    kind: ForgeKind,
    interval: &str,
    port: u16,
) -> ConfigDir {
    let app_keys = format!(
        "write: pull-request\npull_request:\n  forge: {}\n  api_url: {}\n  project: {}\n  token_env: {TOKEN_ENV}\n  labels: [images]\n",
        forge_name(kind),
        forge.api_url(),
        forge.project(),
    );
    replica_config(registry, repo, interval, port, APPS, &app_keys)
}

/// The three replicas, started at once so their first cycles race too.
fn start_replicas(
    registry: &str,
    url: &str,
    forge: &StandIn,
    kind: ForgeKind,
    sharded: bool,
) -> Vec<Daemon> {
    let starts: Vec<_> = (0..3)
        .map(|i| {
            let port = free_port();
            // Sharded, owners poll every second and every replica checks the others' apps
            // every two: owners and safety nets race on every app. Unsharded, only webhooks.
            let interval = if sharded { "1s" } else { "1h" };
            let dir = config(registry, url, forge, kind, interval, port);
            let args: Vec<String> = if sharded {
                vec![
                    "--shard".into(),
                    format!("{i}/3"),
                    "--shard-safety-net".into(),
                    "2s".into(),
                ]
            } else {
                Vec::new()
            };
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Daemon::start(dir, port, &args, &ENV)
            })
        })
        .collect();
    starts.into_iter().map(|t| t.join().unwrap()).collect()
}

/// A registry push of `tag` announced to `replica`'s distribution receiver.
fn announce(replica: &Daemon, host: &str, app: usize, tag: &str) -> Option<u16> {
    let event = format!(
        r#"{{"events":[{{"action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"team/app-{app}","tag":"{tag}"}},"request":{{"host":"{host}"}}}}]}}"#
    );
    let headers = [
        &format!("Authorization: {WEBHOOK_TOKEN}") as &str,
        "Content-Type: application/vnd.docker.distribution.events.v1+json",
    ];
    replica
        .post("/webhook/distribution", &headers, &event)
        .map(|(status, _)| status)
}

/// Has every app's bot branch and open pull request reached `tag`?
fn proposed_everywhere(repo: &BareRepo, forge: &StandIn, tag: &str) -> bool {
    let prs = forge.prs();
    (0..APPS).all(|i| {
        repo.head(&bot_branch(i)).is_some()
            && repo.show(&bot_branch(i), &format!("app-{i}.yaml"))
                == format!("image:\n  tag: {tag}")
            && prs
                .iter()
                .any(|p| p.open && p.head == bot_branch(i) && p.body.contains(tag))
    })
}

/// What each replica said of its checks and pull requests (not the debug chatter).
fn logs(replicas: &[Daemon]) -> String {
    let mut text = String::new();
    for (i, replica) in replicas.iter().enumerate() {
        text.push_str(&format!("--- replica {i}:\n"));
        for line in replica.log().lines() {
            if line.contains(" WARN ") || line.contains("INFO imagebump::engine") {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

/// Three replicas race on every app: unsharded, each push announced to two replicas at once;
/// sharded, the owners' polls race the other replicas' safety nets. Three rounds of new tags.
async fn race(kind: ForgeKind, sharded: bool) {
    let registry = TestRegistry::start_plain().await;
    let repo = apps_fixture(&registry, APPS).await;
    let main_head = repo.head("main");
    let host = registry.host();
    let server = GitHttpServer::start(repo.root(), "tester", GIT_PASSWORD);
    let url = server.url("repo.git");
    let forge = StandIn::start(kind).await;
    let forge = std::sync::Arc::new(forge);
    let (mut repo, mut replicas) = tokio::task::spawn_blocking({
        let (host, forge) = (host.clone(), forge.clone());
        move || {
            let replicas = start_replicas(&host, &url, &forge, kind, sharded);
            (repo, replicas)
        }
    })
    .await
    .unwrap();
    let mut tags = vec!["1.1.0".to_string()];
    for round in 2..=4 {
        let tag = push_round(&registry, APPS, round).await;
        tags.push(tag.clone());
        (repo, replicas) = tokio::task::spawn_blocking({
            let (host, forge, tags) = (host.clone(), forge.clone(), tags.clone());
            move || {
                if !sharded {
                    std::thread::scope(|scope| {
                        for i in 0..APPS {
                            let first = rand::random_range(0..3usize);
                            let second = (first + rand::random_range(1..3usize)) % 3;
                            for target in [first, second] {
                                let (replica, host, tag) = (&replicas[target], &host, &tag);
                                scope.spawn(move || {
                                    assert_eq!(announce(replica, host, i, tag), Some(202));
                                });
                            }
                        }
                    });
                }
                let deadline = Instant::now() + Duration::from_secs(60);
                while !proposed_everywhere(&repo, &forge, &tag) {
                    assert!(
                        Instant::now() < deadline,
                        "{kind:?}: round {tag} never proposed everywhere (tags so far {tags:?}); \
                         pull requests {:#?}\n{}",
                        forge.prs(),
                        logs(&replicas)
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                (repo, replicas)
            }
        })
        .await
        .unwrap();
    }
    tokio::task::spawn_blocking(move || {
        // Let the losers of each race finish: they must find the work done.
        std::thread::sleep(Duration::from_secs(3));
        let newest = tags.last().unwrap();
        let prs = forge.prs();
        let mut per_app: BTreeMap<String, usize> = BTreeMap::new();
        for pr in &prs {
            *per_app.entry(pr.head.clone()).or_default() += 1;
        }
        for i in 0..APPS {
            assert_eq!(
                per_app.get(&bot_branch(i)),
                Some(&1),
                "{kind:?}: one pull request per app, ever: {prs:#?}\n{}",
                logs(&replicas)
            );
        }
        assert!(
            proposed_everywhere(&repo, &forge, newest),
            "{kind:?}: {prs:#?}"
        );
        assert!(prs.iter().all(|p| p.open && !p.merged), "{prs:#?}");
        // Nobody asked the forge to close or reopen anything.
        for request in forge.requests() {
            let body = request.body.clone().unwrap_or_default();
            assert!(
                body.get("state").is_none() && body.get("state_event").is_none(),
                "{kind:?}: {} {body}",
                request.line()
            );
        }
        // Each proposal pushed once, by one replica: a loser that finds the same change on the
        // bot branch does not push it again.
        for i in 0..APPS {
            assert_eq!(
                repo.ref_updates(&bot_branch(i)),
                tags.len(),
                "{kind:?}: app-{i}'s bot branch pushed once per new tag\n{}",
                logs(&replicas)
            );
        }
        assert_eq!(
            repo.head("main"),
            main_head,
            "pull-request mode never writes main"
        );
        assert!(forge.violations().is_empty(), "{:?}", forge.violations());
        for (index, replica) in replicas.iter().enumerate() {
            for app in &replica.status().apps {
                assert_eq!(
                    app.last_error,
                    None,
                    "{kind:?}: {} on replica {index}\n{}",
                    app.name,
                    logs(&replicas)
                );
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn github_three_replicas_racing_on_webhooks_keep_one_pull_request_per_app() {
    race(ForgeKind::Github, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_three_replicas_racing_on_webhooks_keep_one_merge_request_per_app() {
    race(ForgeKind::Gitlab, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitea_three_replicas_racing_on_webhooks_keep_one_pull_request_per_app() {
    race(ForgeKind::Gitea, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn github_three_shards_and_their_safety_nets_keep_one_pull_request_per_app() {
    race(ForgeKind::Github, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_three_shards_and_their_safety_nets_keep_one_merge_request_per_app() {
    race(ForgeKind::Gitlab, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitea_three_shards_and_their_safety_nets_keep_one_pull_request_per_app() {
    race(ForgeKind::Gitea, true).await;
}

/// The create call loses a race: between imagebump's look for an open pull request and its
/// create, another replica opened one for the same bot branch, and the forge answers as its
/// API documents (GitHub 422 "A pull request already exists", GitLab 409 "Another open merge
/// request already exists", Gitea 409 "pull request already exists"). imagebump adopts that
/// pull request and writes its own title and body into it; it opens no second one.
async fn adopts_the_pull_request_another_replica_opened(kind: ForgeKind) {
    let registry = TestRegistry::start_plain().await;
    let repo = apps_fixture(&registry, APPS).await;
    let forge = StandIn::start(kind).await;
    let dir = config(
        &registry.host(),
        &repo.file_url(),
        &forge,
        kind,
        "1h",
        free_port(),
    );
    forge.race_next_create();
    let out = dir
        .imagebump(["once", "--app", "app-0"])
        .envs(ENV)
        .output_async()
        .await;
    assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", text(&out));
    assert!(
        text(&out).contains("app-0: pull request updated\n"),
        "{kind:?}: {}",
        text(&out)
    );
    let prs = forge.prs();
    assert_eq!(prs.len(), 1, "{kind:?}: {prs:#?}");
    assert!(prs[0].open);
    assert!(
        prs[0].body.contains("1.1.0") && prs[0].body.contains("imagebump:fingerprint="),
        "{kind:?}: the adopted pull request shows imagebump's change: {}",
        prs[0].body
    );
    let lines = forge.request_lines();
    let creates = lines
        .iter()
        .filter(|l| {
            l.starts_with("POST ") && (l.ends_with("/pulls") || l.ends_with("/merge_requests"))
        })
        .count();
    assert_eq!(creates, 1, "{kind:?}: one create, refused: {lines:#?}");
    assert!(forge.violations().is_empty(), "{:?}", forge.violations());
    assert!(repo.show(&bot_branch(0), "app-0.yaml").contains("1.1.0"));
    // The next pass finds it up to date.
    let out = dir
        .imagebump(["once", "--app", "app-0"])
        .envs(ENV)
        .output_async()
        .await;
    assert!(
        text(&out).contains("app-0: already proposed (pull request unchanged)\n"),
        "{kind:?}: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn github_adopts_the_pull_request_another_replica_opened() {
    adopts_the_pull_request_another_replica_opened(ForgeKind::Github).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_adopts_the_merge_request_another_replica_opened() {
    adopts_the_pull_request_another_replica_opened(ForgeKind::Gitlab).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitea_adopts_the_pull_request_another_replica_opened() {
    adopts_the_pull_request_another_replica_opened(ForgeKind::Gitea).await;
}

/// A replica whose tag list is older than another replica's proposal does not replace it: the
/// pass of replica A listed 1.0.0 and 1.1.0; before it looks at the forge, 1.2.0 is pushed to
/// the registry and replica B proposes it (bot branch and pull request). A finds a different
/// proposal on the bot branch, lists the tags again, finds 1.2.0 proposed already, and leaves
/// the branch and the pull request alone (it used to replace them with 1.1.0 until some later
/// pass).
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_with_an_older_tag_list_does_not_replace_a_newer_proposal() {
    let kind = ForgeKind::Github;
    let registry = std::sync::Arc::new(TestRegistry::start_plain().await);
    let repo = apps_fixture(&registry, APPS).await;
    let pushed = registry
        .pusher()
        .push_image(
            "team/app-0",
            "1.1.0",
            &ImageSpec::new("2026-01-02T00:00:00Z"),
        )
        .await;
    let forge = StandIn::start(kind).await;
    let dir = |forge: &StandIn| {
        config(
            &registry.host(),
            &repo.file_url(),
            forge,
            kind,
            "1h",
            free_port(),
        )
    };
    let (a, b) = (dir(&forge), dir(&forge));
    let b_output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    forge.before_next_list({
        let b_output = b_output.clone();
        let registry = registry.clone();
        let seed = move || registry.seed_tags("team/app-0", &pushed, &["1.2.0".to_string()]);
        move || {
            seed();
            let out = b.imagebump(["once", "--app", "app-0"]).envs(ENV).output();
            *b_output.lock().unwrap() = text(&out);
        }
    });
    let out = a
        .imagebump(["once", "--app", "app-0"])
        .envs(ENV)
        .output_async()
        .await;
    let b_output = b_output.lock().unwrap().clone();
    assert!(
        b_output.contains("app-0: pull request opened\n"),
        "replica B proposed 1.2.0: {b_output}"
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        repo.show(&bot_branch(0), "app-0.yaml"),
        "image:\n  tag: 1.2.0",
        "A: {}",
        text(&out)
    );
    assert_eq!(repo.ref_updates(&bot_branch(0)), 1, "only B pushed");
    let prs = forge.prs();
    assert_eq!(prs.len(), 1, "{prs:#?}");
    assert!(prs[0].body.contains("1.2.0"), "{}", prs[0].body);
}
