//! Many replicas without a coordinator (issue 17): several `imagebump run` daemons, each with its
//! own workdir, on the same config, one real registry and one real git remote.

use std::process::Stdio;
use std::time::{Duration, Instant};

use imagebump::daemon::status::StatusResponse;
use imagebump::shard::owner;

use crate::support::config::ConfigDir;
use crate::support::free_port;
use crate::support::git::{BareRepo, GitHttpServer, git};
use crate::support::imagebump::Process;
use crate::support::registry::{FaultProxy, ImageSpec, TestRegistry};

const APPS: usize = 6;
const TOKEN: &str = "Bearer webhook-token-for-tests";
const GIT_PASSWORD: &str = "git-password-for-tests";

/// One replica: `imagebump run --shard ...`, stopped by its pid when dropped.
struct Replica {
    /// Kept for its drop, which stops the daemon by its pid.
    _child: Process,
    port: u16,
    dir: ConfigDir,
}

impl Replica {
    /// Starts a replica with its own config dir (the same text as the others') and waits until
    /// it is ready (its first cycle ended).
    fn start(registry: &str, repo: &str, interval: &str, args: &[&str]) -> Replica {
        let port = free_port();
        let dir = config(registry, repo, interval, port);
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = dir
            .imagebump(["run", "--log-level", "debug"])
            .args(args)
            .env("WEBHOOK_TOKEN", TOKEN)
            .env("GIT_PASSWORD", GIT_PASSWORD)
            .spawn(Stdio::null(), log);
        let replica = Replica {
            _child: child,
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while replica.get("/readyz").map(|(status, _)| status) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "never ready; log:\n{}",
                replica.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        replica
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())?;
        Some((status, body))
    }

    fn status(&self) -> StatusResponse {
        let (code, body) = self.get("/api/v1/status").unwrap();
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
}

/// The same config for every replica but the listen port: apps `app-0` … `app-5`, each with
/// its own image `team/app-N` and its own file in one repo.
fn config(registry: &str, repo: &str, interval: &str, port: u16) -> ConfigDir {
    let mut dir = ConfigDir::with_global(&format!(
        "apps: apps\nworkdir: cache\ngit:\n  author: {{name: imagebump, email: bot@imagebump.test}}\n  credentials:\n    - url: http://127.0.0.1\n      username: tester\n      password_env: GIT_PASSWORD\ninterval: {interval}\nwebhook:\n  listen: 127.0.0.1:{port}\n  receivers:\n    - type: distribution\n      secret_env: WEBHOOK_TOKEN\nregistries:\n  - prefix: {registry}\n    insecure: true\n"
    ));
    for i in 0..APPS {
        dir = dir.app(
            &format!("app-{i}"),
            &format!(
                "name: app-{i}\nrepo: {repo}\nimages:\n  - name: api\n    image: {registry}/team/app-{i}\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: app-{i}.yaml, path: image.tag}}\n"
            ),
        );
    }
    dir
}

/// A repo with `app-N.yaml` at tag 1.0.0, and a registry with 1.0.0 and 1.1.0 of each image.
async fn setup(registry: &TestRegistry) -> BareRepo {
    let pusher = registry.pusher();
    for i in 0..APPS {
        for (tag, created) in [
            ("1.0.0", "2026-01-01T00:00:00Z"),
            ("1.1.0", "2026-01-02T00:00:00Z"),
        ] {
            pusher
                .push_image(&format!("team/app-{i}"), tag, &ImageSpec::new(created))
                .await;
        }
    }
    let files: Vec<(String, String)> = (0..APPS)
        .map(|i| {
            (
                format!("app-{i}.yaml"),
                "image:\n  tag: 1.0.0\n".to_string(),
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .collect();
    BareRepo::with_files("main", &files)
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
        // A push to a file:// remote parks its objects on a temporary ref: none is left.
        let refs = git(repo.path(), &["for-each-ref", "refs/imagebump/incoming"]);
        assert_eq!(refs, "", "temporary refs left in the remote");
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
        assert_eq!(repo.log("main").len(), 1, "nothing landed");
        std::fs::remove_file(&lock).unwrap();
        let out = once();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(repo.log("main").len(), 1 + APPS);
        let refs = git(repo.path(), &["for-each-ref", "refs/imagebump/incoming"]);
        assert_eq!(refs, "", "temporary refs left in the remote");
    })
    .await
    .unwrap();
}
