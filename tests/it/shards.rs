//! Many replicas without a coordinator (issue 17): several `imagebump run` daemons, each with its
//! own workdir, on the same config, one real registry and one real git remote.

use std::time::{Duration, Instant};

use imagebump::shard::owner;

use crate::support::config::ConfigDir;
use crate::support::free_port;
use crate::support::git::{BareRepo, GitHttpServer, git};
use crate::support::registry::{FaultProxy, ImageSpec, TestRegistry};
use crate::support::replica::{Daemon, apps_fixture, replica_config};

const APPS: usize = 6;
const TOKEN: &str = "Bearer webhook-token-for-tests";
const GIT_PASSWORD: &str = "git-password-for-tests";

/// One replica: `imagebump run --shard ...`, stopped by its pid when dropped.
struct Replica(Daemon);

impl Replica {
    /// Starts a replica with its own config dir (the same text as the others') and waits until
    /// it is ready (its first cycle ended).
    fn start(registry: &str, repo: &str, interval: &str, args: &[&str]) -> Replica {
        let port = free_port();
        Replica::start_in(config(registry, repo, interval, port), port, args)
    }

    /// Starts `imagebump run` on the config in `dir`, which listens on `port`.
    fn start_in(dir: ConfigDir, port: u16, args: &[&str]) -> Replica {
        let env = [("WEBHOOK_TOKEN", TOKEN), ("GIT_PASSWORD", GIT_PASSWORD)];
        Replica(Daemon::start(dir, port, args, &env))
    }

    /// The log without its debug lines, for assertion messages.
    fn info_log(&self) -> String {
        self.log()
            .lines()
            .filter(|line| !line.contains(" DEBUG "))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl std::ops::Deref for Replica {
    type Target = Daemon;

    fn deref(&self) -> &Daemon {
        &self.0
    }
}

/// The same config for every replica but the listen port: apps `app-0` … `app-5`, each with
/// its own image `team/app-N` and its own file in one repo.
fn config(registry: &str, repo: &str, interval: &str, port: u16) -> ConfigDir {
    replica_config(registry, repo, interval, port, APPS, "")
}

/// A repo with `app-N.yaml` at tag 1.0.0, and a registry with 1.0.0 and 1.1.0 of each image.
async fn setup(registry: &TestRegistry) -> BareRepo {
    apps_fixture(registry, APPS).await
}

#[tokio::test(flavor = "multi_thread")]
async fn three_shards_poll_each_app_from_exactly_one_replica_and_commit_each_update_once() {
    let registry = TestRegistry::start_plain().await;
    let repo = setup(&registry).await;
    let proxy = FaultProxy::start(&registry.url()).await;
    let host = proxy.host();
    let counts = tokio::task::spawn_blocking(move || {
        let replicas: Vec<Replica> = (0..3)
            .map(|i| {
                Replica::start(
                    &host,
                    &repo.file_url(),
                    "2s",
                    &["--shard", &format!("{i}/3"), "--shard-safety-net", "1h"],
                )
            })
            .collect();
        // Each app's update landed once, whichever replica made it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while repo.log("main").len() < 1 + APPS {
            assert!(Instant::now() < deadline, "{}", replicas[0].log());
            std::thread::sleep(Duration::from_millis(100));
        }
        for i in 0..APPS {
            assert_eq!(
                repo.show("main", &format!("app-{i}.yaml")),
                "image:\n  tag: 1.1.0"
            );
        }
        // Each replica says which shard it is and owns exactly the apps the hash gives it;
        // it checked those and no other.
        let mut owners = vec![0; APPS];
        for (index, replica) in replicas.iter().enumerate() {
            let status = replica.status();
            let shard = status.shard.clone().unwrap();
            assert_eq!((shard.index, shard.count), (index as u32, 3));
            assert_eq!(shard.safety_net, "1h");
            for app in &status.apps {
                let n: usize = app.name.trim_start_matches("app-").parse().unwrap();
                let owned = owner(&app.name, 3) == index as u32;
                assert_eq!(shard.owned.contains(&app.name), owned, "{}", app.name);
                assert_eq!(app.last_check.is_some(), owned, "{} on {index}", app.name);
                if owned {
                    owners[n] += 1;
                }
            }
            let (_, metrics) = replica.get("/metrics").unwrap();
            assert!(
                metrics.contains(&format!("imagebump_shard_index {index}")),
                "{metrics}"
            );
            assert!(metrics.contains("imagebump_shard_count 3"), "{metrics}");
        }
        assert_eq!(owners, vec![1; APPS], "each app has exactly one owner");
        // Count the tag list requests per image over three intervals: one poller each.
        proxy.clear();
        std::thread::sleep(Duration::from_secs(7));
        let counts: Vec<usize> = (0..APPS)
            .map(|i| proxy.count(&format!("/v2/team/app-{i}/tags/list")))
            .collect();
        assert_eq!(repo.log("main").len(), 1 + APPS, "no duplicate commit");
        drop(replicas);
        counts
    })
    .await
    .unwrap();
    // Three replicas polling every app would ask about 3 × 3-4 times per image.
    for (i, count) in counts.iter().enumerate() {
        assert!((1..=5).contains(count), "app-{i}: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_shards_apps_are_updated_by_the_safety_net() {
    let registry = TestRegistry::start_plain().await;
    let repo = setup(&registry).await;
    let host = registry.host();
    tokio::task::spawn_blocking(move || {
        // Shard 2 of 3 never runs; the others poll once an hour and check other shards' apps
        // every 3 s.
        let replicas: Vec<Replica> = (0..2)
            .map(|i| {
                Replica::start(
                    &host,
                    &repo.file_url(),
                    "1h",
                    &["--shard", &format!("{i}/3"), "--shard-safety-net", "3s"],
                )
            })
            .collect();
        let orphans: Vec<usize> = (0..APPS)
            .filter(|i| owner(&format!("app-{i}"), 3) == 2)
            .collect();
        assert!(!orphans.is_empty(), "the test needs an app of shard 2");
        let deadline = Instant::now() + Duration::from_secs(30);
        while orphans.iter().any(|i| {
            repo.show("main", &format!("app-{i}.yaml"))
                .contains("1.0.0")
        }) {
            assert!(
                Instant::now() < deadline,
                "shard 2's apps never updated; log:\n{}",
                replicas[0].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Both safety nets may have raced for them: still one commit per app.
        std::thread::sleep(Duration::from_secs(4));
        for i in 0..APPS {
            assert_eq!(
                repo.show("main", &format!("app-{i}.yaml")),
                "image:\n  tag: 1.1.0"
            );
        }
        assert_eq!(
            repo.log("main").len(),
            1 + APPS,
            "{:?}\n{}",
            repo.log("main"),
            replicas[1].log()
        );
    })
    .await
    .unwrap();
}

#[test]
fn run_refuses_a_bad_shard_with_a_clear_message() {
    let dir = ConfigDir::new("127.0.0.1:1", "");
    for (args, env) in [(vec!["--shard", "3/3"], None), (vec![], Some("web-x/2"))] {
        let mut command = dir.imagebump(["run"]).args(args);
        if let Some(value) = env {
            command = command.env("IMAGEBUMP_SHARD", value);
        }
        let out = command.output();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("INDEX/COUNT"), "{stderr}");
    }
}

/// Active-active: three unsharded replicas, only webhooks drive them (polling once an hour),
/// each registry push announced to all three replicas at once, so they race on the same app. Every update lands exactly once: one commit per (app, update), none undone.
/// Over smart HTTP (git http-backend), the remote's receive-pack updates the branch only if it
/// is still where the push found it.
#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_racing_on_webhooks_commit_each_update_exactly_once() {
    three_replicas_race(Transport::SmartHttp).await;
}

/// The same race on a `file://` remote, where libgit2's local transport checks the fast-forward
/// against the tip it saw and then wrote the ref without checking again: racing pushes
/// overwrote each other (a lost update, seen in 2 runs of 4). The push now moves the branch
/// with a compare-and-swap under the ref's lock file.
#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_racing_on_a_file_remote_lose_no_update() {
    three_replicas_race(Transport::File).await;
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    SmartHttp,
    File,
}

async fn three_replicas_race(transport: Transport) {
    let registry = TestRegistry::start_plain().await;
    let repo = setup(&registry).await;
    let host = registry.host();
    let pusher = registry.pusher();
    let server = match transport {
        Transport::SmartHttp => Some(GitHttpServer::start(repo.root(), "tester", GIT_PASSWORD)),
        Transport::File => None,
    };
    let url = match &server {
        Some(server) => server.url("repo.git"),
        None => repo.file_url(),
    };
    let (repo, replicas) = tokio::task::spawn_blocking(move || {
        let replicas: Vec<Replica> = (0..3)
            .map(|_| Replica::start(&host, &url, "1h", &[]))
            .collect();
        // The first cycle of each (they start one after another) took every app to 1.1.0 once.
        assert_eq!(repo.log("main").len(), 1 + APPS, "{:?}", repo.log("main"));
        (repo, replicas)
    })
    .await
    .unwrap();
    let host = registry.host();
    let mut replicas = replicas;
    let mut repo = repo;
    for round in 2..=4 {
        let tag = format!("1.{round}.0");
        for i in 0..APPS {
            pusher
                .push_image(
                    &format!("team/app-{i}"),
                    &tag,
                    &ImageSpec::new(&format!("2026-01-0{}T00:00:00Z", round + 1)),
                )
                .await;
        }
        let (back_repo, back_replicas) = tokio::task::spawn_blocking({
            let (tag, host) = (tag.clone(), host.clone());
            move || {
                let mut threads = Vec::new();
                for i in 0..APPS {
                    for target in [0, 1, 2] {
                        let port = replicas[target].port;
                        let event = format!(
                            r#"{{"events":[{{"action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"team/app-{i}","tag":"{tag}"}},"request":{{"host":"{host}"}}}}]}}"#
                        );
                        threads.push(std::thread::spawn(move || post_webhook(port, &event)));
                    }
                }
                for thread in threads {
                    assert_eq!(thread.join().unwrap(), Some(202));
                }
                let deadline = Instant::now() + Duration::from_secs(60);
                while (0..APPS).any(|i| !repo.show("main", &format!("app-{i}.yaml")).contains(&tag)) {
                    assert!(
                        Instant::now() < deadline,
                        "round {tag} never landed; logs:\n{}\n{}\n{}",
                        replicas[0].log(),
                        replicas[1].log(),
                        replicas[2].log()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                (repo, replicas)
            }
        })
        .await
        .unwrap();
        repo = back_repo;
        replicas = back_replicas;
    }
    tokio::task::spawn_blocking(move || {
        // Let the losers of each race finish: they must find the work done.
        std::thread::sleep(Duration::from_secs(3));
        let log = repo.log("main");
        assert_eq!(
            log.len(),
            1 + APPS * 4,
            "one commit per (app, update): {log:#?}"
        );
        for i in 0..APPS {
            assert_eq!(
                repo.show("main", &format!("app-{i}.yaml")),
                "image:\n  tag: 1.4.0"
            );
        }
        // A push to a file:// remote copies its objects in one by one: every object the
        // branch reaches is there (git fsck fails on a missing one).
        git(repo.path(), &["fsck", "--full", "--strict"]);
        assert!(
            !repo.any_forced_update("main"),
            "a forced push; reflog:\n{}\nlog: {log:#?}",
            std::fs::read_to_string(repo.path().join("logs/refs/heads/main")).unwrap_or_default()
        );
        for replica in &replicas {
            let status = replica.status();
            for app in &status.apps {
                assert_eq!(app.last_error, None, "{}: {}", app.name, replica.log());
            }
        }
    })
    .await
    .unwrap();
}

/// A registry notification to the `distribution` receiver on `port`; the HTTP status.
fn post_webhook(port: u16, body: &str) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "POST /webhook/distribution HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: {TOKEN}\r\nContent-Type: application/vnd.docker.distribution.events.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

/// A writer killed while it held the branch's lock file on a `file://` remote (`kill -9` in
/// the compare-and-swap, or git itself) leaves `refs/heads/main.lock`: the push is rejected
/// with "failed to lock", retried, and reported as a failure, never as a success and never by
/// overwriting the branch; once the file is gone the next run lands the update.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_lock_file_on_a_file_remote_fails_the_push_and_is_reported() {
    let registry = TestRegistry::start_plain().await;
    let repo = setup(&registry).await;
    let host = registry.host();
    tokio::task::spawn_blocking(move || {
        let dir = config(&host, &repo.file_url(), "1h", free_port());
        let lock = repo.path().join("refs/heads/main.lock");
        std::fs::write(&lock, "left by a killed writer\n").unwrap();
        let once = || {
            dir.imagebump(["once"])
                .env("WEBHOOK_TOKEN", TOKEN)
                .env("GIT_PASSWORD", GIT_PASSWORD)
                .output()
        };
        let out = once();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("failed to lock"), "{stderr}");
        assert!(
            stderr.contains("a writer killed mid-push leaves it behind")
                && !stderr.contains("another writer keeps moving the branch"),
            "{stderr}"
        );
        assert_eq!(repo.log("main").len(), 1, "nothing landed");
        std::fs::remove_file(&lock).unwrap();
        let out = once();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(repo.log("main").len(), 1 + APPS);
        git(repo.path(), &["fsck", "--full", "--strict"]);
    })
    .await
    .unwrap();
}

/// The issue's scenario: 20 apps across two repos, three replicas over smart HTTP.
const SCENARIO_APPS: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Every replica polls every app, every 3 s.
    ActiveActive,
    /// `--shard i/3`, scheduled polls once an hour (so only webhooks and the safety net, every
    /// 3 s, check apps).
    Sharded,
}

/// Three unsharded daemons, 20 apps in 2 repos: 20 registry pushes at varied spacing, each
/// announced to one replica at random, land once each; then `kill -9` of one replica right
/// after it accepted a webhook, in the middle of 20 more pushes, some of them announced to the
/// dead replica (refused, as a load balancer that has not noticed yet): the others' polls
/// land every update.
#[tokio::test(flavor = "multi_thread")]
async fn twenty_apps_two_repos_random_webhooks_and_a_kill_9_active_active() {
    scenario(Mode::ActiveActive).await;
}

/// The same with three shards: the dead shard's apps, whose webhooks went to the dead replica,
/// are landed by the other replicas' safety-net poll.
#[tokio::test(flavor = "multi_thread")]
async fn twenty_apps_two_repos_random_webhooks_and_a_kill_9_sharded() {
    scenario(Mode::Sharded).await;
}

/// The config of the scenario: `app-K` in repo K % 2, image `team/app-K`, file `app-K.yaml`.
fn scenario_config(registry: &str, repos: &[String; 2], interval: &str, port: u16) -> ConfigDir {
    let mut dir = ConfigDir::with_global(&format!(
        "apps: apps\nworkdir: cache\ngit:\n  author: {{name: imagebump, email: bot@imagebump.test}}\n  credentials:\n    - url: http://127.0.0.1\n      username: tester\n      password_env: GIT_PASSWORD\ninterval: {interval}\nwebhook:\n  listen: 127.0.0.1:{port}\n  receivers:\n    - type: distribution\n      secret_env: WEBHOOK_TOKEN\nregistries:\n  - prefix: {registry}\n    insecure: true\n"
    ));
    for k in 0..SCENARIO_APPS {
        dir = dir.app(
            &format!("app-{k}"),
            &format!(
                "name: app-{k}\nrepo: {}\nimages:\n  - name: api\n    image: {registry}/team/app-{k}\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: app-{k}.yaml, path: image.tag}}\n",
                repos[k % 2]
            ),
        );
    }
    dir
}

/// `(app file, tag)` of every commit on `main` after the first, oldest first; a commit that
/// touches anything but one app file fails the test.
fn commits_by_app(repo: &BareRepo) -> Vec<(String, String)> {
    let shas = git(
        repo.path(),
        &["log", "--first-parent", "--reverse", "--format=%H", "main"],
    );
    shas.lines()
        .skip(1)
        .map(|sha| {
            let files = git(
                repo.path(),
                &["diff-tree", "--no-commit-id", "--name-only", "-r", sha],
            );
            let files: Vec<&str> = files.lines().collect();
            assert_eq!(files.len(), 1, "commit {sha} touches {files:?}");
            let text = git(repo.path(), &["show", &format!("{sha}:{}", files[0])]);
            let tag = text.trim().trim_start_matches("image:").trim();
            let tag = tag.trim_start_matches("tag:").trim().to_string();
            (files[0].trim_end_matches(".yaml").to_string(), tag)
        })
        .collect()
}

async fn scenario(mode: Mode) {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    for k in 0..SCENARIO_APPS {
        pusher
            .push_image(
                &format!("team/app-{k}"),
                "1.0.0",
                &ImageSpec::new("2026-01-01T00:00:00Z"),
            )
            .await;
    }
    let repos: Vec<BareRepo> = (0..2)
        .map(|r| {
            let files: Vec<(String, String)> = (0..SCENARIO_APPS)
                .filter(|k| k % 2 == r)
                .map(|k| {
                    (
                        format!("app-{k}.yaml"),
                        "image:\n  tag: 1.0.0\n".to_string(),
                    )
                })
                .collect();
            let files: Vec<(&str, &str)> = files
                .iter()
                .map(|(f, t)| (f.as_str(), t.as_str()))
                .collect();
            BareRepo::with_files("main", &files)
        })
        .collect();
    let servers: Vec<GitHttpServer> = repos
        .iter()
        .map(|repo| GitHttpServer::start(repo.root(), "tester", GIT_PASSWORD))
        .collect();
    let urls = [servers[0].url("repo.git"), servers[1].url("repo.git")];
    let host = registry.host();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let replicas: Vec<Replica> = (0..3)
            .map(|i| {
                let port = free_port();
                let (interval, args) = match mode {
                    Mode::ActiveActive => ("3s", vec![]),
                    Mode::Sharded => (
                        "1h",
                        vec![
                            "--shard".to_string(),
                            format!("{i}/3"),
                            "--shard-safety-net".to_string(),
                            "3s".to_string(),
                        ],
                    ),
                };
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Replica::start_in(scenario_config(&host, &urls, interval, port), port, &args)
            })
            .collect();
        let logs = |replicas: &[Replica]| {
            replicas
                .iter()
                .enumerate()
                .map(|(i, r)| format!("--- replica {i}:\n{}", r.info_log()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let wait_for = |tag: &str, replicas: &[Replica]| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while (0..SCENARIO_APPS).any(|k| {
                !repos[k % 2]
                    .show("main", &format!("app-{k}.yaml"))
                    .contains(tag)
            }) {
                assert!(
                    Instant::now() < deadline,
                    "{tag} never landed everywhere; logs:\n{}",
                    logs(replicas)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        // The victim: in sharded mode a shard that owns apps; its apps' webhooks after the
        // kill go to it (and are refused), so only the safety net can land them.
        let victim = 1;
        let victims_apps: Vec<usize> = (0..SCENARIO_APPS)
            .filter(|k| match mode {
                Mode::Sharded => owner(&format!("app-{k}"), 3) == victim as u32,
                Mode::ActiveActive => k % 3 == 0,
            })
            .collect();
        assert!(!victims_apps.is_empty());
        let mut dead = false;
        let mut refused = 0;
        for (phase, tag) in [(1, "1.1.0"), (2, "1.2.0")] {
            let mut order: Vec<usize> = (0..SCENARIO_APPS).collect();
            rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rand::rng());
            for (step, k) in order.into_iter().enumerate() {
                let spacing = [0, 0, 10, 50, 150, 400][rand::random_range(0..6usize)];
                std::thread::sleep(Duration::from_millis(spacing));
                handle.block_on(pusher.push_image(
                    &format!("team/app-{k}"),
                    tag,
                    &ImageSpec::new(&format!("2026-01-0{}T00:00:00Z", phase + 1)),
                ));
                let target = if dead && victims_apps.contains(&k) {
                    victim
                } else if phase == 2 && step == 9 {
                    // The victim accepts this one and dies right after.
                    victim
                } else {
                    loop {
                        let target = rand::random_range(0..3usize);
                        if !(dead && target == victim) {
                            break target;
                        }
                    }
                };
                let event = format!(
                    r#"{{"events":[{{"action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"team/app-{k}","tag":"{tag}"}},"request":{{"host":"{host}"}}}}]}}"#
                );
                let answer = post_webhook(replicas[target].port, &event);
                if dead && target == victim {
                    assert_eq!(answer, None, "the dead replica answered");
                    refused += 1;
                } else {
                    assert_eq!(answer, Some(202), "app-{k} to replica {target}");
                }
                if phase == 2 && step == 9 {
                    replicas[victim].child.signal("KILL");
                    dead = true;
                }
            }
            wait_for(tag, &replicas);
        }
        assert!(refused > 0, "no webhook went to the dead replica");
        // Let the losers of the last races finish: they must find the work done.
        std::thread::sleep(Duration::from_secs(4));
        for (r, repo) in repos.iter().enumerate() {
            let commits = commits_by_app(repo);
            for k in (0..SCENARIO_APPS).filter(|k| k % 2 == r) {
                let app = format!("app-{k}");
                let tags: Vec<&str> = commits
                    .iter()
                    .filter(|(a, _)| *a == app)
                    .map(|(_, t)| t.as_str())
                    .collect();
                assert_eq!(
                    tags,
                    ["1.1.0", "1.2.0"],
                    "{app}: one commit per update, in order, none undone; all commits \
                     {commits:?}\n{}",
                    logs(&replicas)
                );
                assert_eq!(
                    repo.show("main", &format!("{app}.yaml")),
                    "image:\n  tag: 1.2.0"
                );
            }
            assert!(!repo.any_forced_update("main"), "a forced push in repo {r}");
        }
        // No live replica is left with a failed update: whatever failed was retried to success.
        for (i, replica) in replicas.iter().enumerate().filter(|(i, _)| *i != victim) {
            for app in &replica.status().apps {
                assert_eq!(
                    app.last_error, None,
                    "{} on replica {i}: {}",
                    app.name,
                    replica.info_log()
                );
            }
        }
        let count = |needle: &str| -> usize {
            replicas
                .iter()
                .map(|r| r.log().matches(needle).count())
                .sum()
        };
        eprintln!(
            "{mode:?}: {refused} webhooks refused by the dead replica, {} rejected pushes \
             replanned, {} failed checks, {:.1} s",
            count("push rejected; replanning"),
            count("check failed"),
            started.elapsed().as_secs_f64()
        );
        drop(servers);
    })
    .await
    .unwrap();
}
