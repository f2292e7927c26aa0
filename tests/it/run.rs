//! `imagebump run` end to end: the real `docker-registry` notifies the daemon of pushes, the
//! daemon commits to a real git remote; signals reload and stop it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::config::ConfigDir;
use crate::support::free_port;
use crate::support::git::BareRepo;
use crate::support::imagebump::Process;
use crate::support::registry::{
    ImageSpec, NotificationEndpoint, Pushed, RegistryConfig, TestRegistry,
};

const TOKEN: &str = "Bearer webhook-token-for-tests";

pub(crate) const VALUES: &str = "\
# values
api:
  image:
    repository: REGISTRY/team/api
    tag: 1.0.0
";

/// `imagebump run`, stopped by its pid when dropped.
pub(crate) struct Daemon {
    child: Process,
    port: u16,
    dir: ConfigDir,
    log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(dir: ConfigDir, port: u16) -> Daemon {
        Daemon::start_env(dir, port, &[])
    }

    /// [`Daemon::start`] with more environment variables.
    fn start_env(dir: ConfigDir, port: u16, env: &[(&str, &str)]) -> Daemon {
        let log = dir.path().join("daemon.log");
        let mut command = dir
            .imagebump(["run", "--log-level", "info"])
            .env("WEBHOOK_TOKEN", TOKEN);
        for (name, value) in env {
            command = command.env(name, value);
        }
        let child = command.spawn(Stdio::null(), std::fs::File::create(&log).unwrap());
        let daemon = Daemon {
            child,
            port,
            dir,
            log,
        };
        daemon.wait_for("/readyz", 200, Duration::from_secs(30));
        daemon
    }

    /// A registry notification to the `distribution` receiver; the HTTP status.
    pub(crate) fn post_webhook(&self, body: &str) -> Option<u16> {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
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

    /// A plain HTTP/1.0 GET (the test threads are blocking).
    pub(crate) fn get(&self, path: &str) -> Option<(u16, String)> {
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

    /// Polls `done` every 50 ms until it holds; past `timeout`, fails saying `what` (and the
    /// daemon's log).
    pub(crate) fn wait_until(
        &self,
        timeout: Duration,
        what: impl Fn() -> String,
        mut done: impl FnMut() -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{}; daemon log:\n{}",
                what(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, path: &str, status: u16, timeout: Duration) {
        self.wait_until(
            timeout,
            || format!("{path} never answered {status}"),
            || self.get(path).is_some_and(|(got, _)| got == status),
        );
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub(crate) fn wait_for_log(&self, needle: &str) {
        self.wait_until(
            Duration::from_secs(15),
            || format!("the log never said {needle:?}"),
            || self.log().contains(needle),
        );
    }

    /// The value of a metric line that starts with `prefix` (0 when absent).
    pub(crate) fn metric(&self, prefix: &str) -> f64 {
        let (_, text) = self.get("/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn signal(&self, signal: &str) {
        self.child.signal(signal);
    }

    fn config_dir(&self) -> &Path {
        self.dir.path()
    }
}

fn setup(registry: &TestRegistry, repo: &BareRepo, port: u16, interval: &str) -> ConfigDir {
    let host = registry.host();
    let dir = ConfigDir::new(
        &host,
        &format!(
            "interval: {interval}\nwebhook:\n  listen: 127.0.0.1:{port}\n  receivers:\n    - type: distribution\n      secret_env: WEBHOOK_TOKEN\n"
        ),
    );
    dir.write(
        "apps/shop.yaml",
        &format!(
            "name: shop\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: values.yaml, path: api.image.tag}}\n",
            repo.file_url()
        ),
    );
    dir
}

async fn notifying_registry(port: u16) -> TestRegistry {
    let mut endpoint = NotificationEndpoint::new(
        "imagebump",
        &format!("http://127.0.0.1:{port}/webhook/distribution"),
    );
    endpoint
        .headers
        .push(("Authorization".into(), TOKEN.into()));
    endpoint.timeout = Duration::from_millis(500);
    endpoint.backoff = Duration::from_millis(200);
    TestRegistry::start(RegistryConfig {
        notifications: vec![endpoint],
        ..RegistryConfig::default()
    })
    .await
}

fn wait_for_commits(repo: &BareRepo, count: usize, daemon: &Daemon, timeout: Duration) {
    daemon.wait_until(
        timeout,
        || format!("expected {count} commits"),
        || repo.log("main").len() >= count,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_push_makes_a_commit_without_polling_and_a_burst_makes_one() {
    let port = free_port();
    let registry = notifying_registry(port).await;
    let host = registry.host();
    let (first, repo) = api_at_1_0_0(&registry, &host).await;
    let pusher = registry.pusher();
    // Polling once an hour: only the webhook can explain a commit.
    let daemon = tokio::task::spawn_blocking({
        let dir = setup(&registry, &repo, port, "1h");
        move || Daemon::start(dir, port)
    })
    .await
    .unwrap();
    assert_eq!(
        repo.log("main").len(),
        1,
        "nothing to do on the first cycle"
    );

    pusher
        .push_manifest("team/api", "1.1.0", &first.media_type, &first.body)
        .await;
    let d = tokio::task::spawn_blocking(move || {
        wait_for_commits(&repo, 2, &daemon, Duration::from_secs(15));
        assert!(repo.show("main", "values.yaml").contains("tag: 1.1.0"));
        // The check pushes before it records itself: wait for its "check done" line (logged
        // after its metrics) before taking the count the burst is measured from.
        daemon.wait_for_log("updated=1");
        (repo, daemon)
    })
    .await
    .unwrap();
    let (repo, daemon) = d;
    let repository_checks =
        daemon.metric("imagebump_checks_total{scope=\"repository\",outcome=\"ok\"}");
    assert!(repository_checks >= 1.0, "{}", daemon.log());

    // A burst of 100 tags pushed at once (as a CI job tagging many builds), the newest first:
    // one commit, and one check plus at most a follow-up for the events that arrive while it
    // runs (the registry delivers 100 notifications one after another).
    pusher
        .push_manifest("team/api", "1.2.99", &first.media_type, &first.body)
        .await;
    let mut pushes = tokio::task::JoinSet::new();
    for i in 0..99 {
        let (pusher, first) = (pusher.clone(), first.clone());
        pushes.spawn(async move {
            pusher
                .push_manifest(
                    "team/api",
                    &format!("1.2.{i}"),
                    &first.media_type,
                    &first.body,
                )
                .await;
        });
    }
    while let Some(done) = pushes.join_next().await {
        done.unwrap();
    }
    let (repo, daemon) = tokio::task::spawn_blocking(move || {
        wait_for_commits(&repo, 3, &daemon, Duration::from_secs(15));
        // Let any straggling notification be handled before counting.
        std::thread::sleep(Duration::from_secs(2));
        (repo, daemon)
    })
    .await
    .unwrap();
    assert_eq!(
        repo.log("main").len(),
        3,
        "one commit for the burst; log:\n{}",
        daemon.log()
    );
    assert!(repo.show("main", "values.yaml").contains("tag: 1.2.99"));
    let after = daemon.metric("imagebump_checks_total{scope=\"repository\",outcome=\"ok\"}");
    // 1.2.99 was pushed (and answered) before the other 99: its notification is checked at
    // once, and may be seen as a lone push when the others' notifications come more than half
    // a debounce later on a loaded machine. Then the burst: one check and at most one follow-up
    // for the notifications that arrived while it ran. On a machine loaded by other suites the
    // registry's 99 notifications (sent one after another) can also pause longer than half a
    // debounce once more, and a pause with the repository idle is a leading edge by design
    // (seen: 4 checks, twice, with five suites on two cores). So a handful, never one per push
    // (the strict "100 at once cost at most 2" is tested on the paused clock in
    // daemon::queue and measured by the daemon bench).
    let burst_checks = after - repository_checks;
    assert!(
        (1.0..=5.0).contains(&burst_checks),
        "{burst_checks} checks for one burst; log:\n{}",
        daemon.log()
    );
    assert!(
        !daemon.log().contains(TOKEN),
        "the webhook token leaked into the logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_with_a_broken_config_keeps_the_old_one_and_sigterm_stops_cleanly() {
    let port = free_port();
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    pusher
        .push_image("team/api", "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await;
    pusher
        .push_image("team/api", "1.1.0", &ImageSpec::new("2026-01-02T00:00:00Z"))
        .await;
    let repo = BareRepo::with_files(
        "main",
        &[("values.yaml", &VALUES.replace("REGISTRY", &host))],
    );
    let dir = setup(&registry, &repo, port, "1h");
    let config = dir.global();
    tokio::task::spawn_blocking(move || {
        let mut daemon = Daemon::start(dir, port);
        // The first cycle already converged (readiness waits for it).
        assert_eq!(repo.log("main").len(), 2, "{}", daemon.log());

        // Break the global file, then SIGHUP: rejected, the daemon keeps serving.
        std::fs::write(&config, "interval: [not a duration\n").unwrap();
        daemon.signal("HUP");
        daemon.wait_until(
            Duration::from_secs(10),
            || "reload not rejected".to_string(),
            || daemon.metric("imagebump_config_reloads_total{outcome=\"rejected\"}") >= 1.0,
        );
        let (status, body) = daemon.get("/api/v1/status").unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("\"shop\""), "{body}");
        assert!(daemon.config_dir().join("cache").exists());

        // SIGTERM: a clean exit well within 10 s.
        let started = Instant::now();
        daemon.signal("TERM");
        let status = loop {
            if let Some(status) = daemon.child.try_wait() {
                break status;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status:?}\n{}", daemon.log());
    })
    .await
    .unwrap();
}

/// A repack that fails in the daemon is logged once and counted (`failed`); a check within
/// its backoff does not try it again (`skipped_backoff`, although it would succeed now) and
/// still commits. Regression: every check tried the whole repack again, and nothing counted it.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_repack_is_counted_once_and_put_off_by_the_daemon_which_goes_on_committing() {
    let port = free_port();
    let registry = notifying_registry(port).await;
    let host = registry.host();
    let (first, repo) = api_at_1_0_0(&registry, &host).await;
    let pusher = registry.pusher();
    let dir = setup(&registry, &repo, port, "1h");
    dir.edit_global(|text| text.replace("git:\n", "git:\n  maintenance: {max_packs: 1}\n"));
    let (daemon, unwritable) = tokio::task::spawn_blocking(move || {
        // The clone, past its limit, with a pack directory the repack cannot write to.
        let out = dir.imagebump(["once", "--dry-run"]).output();
        assert!(
            out.status.success(),
            "{}",
            crate::support::imagebump::text(&out)
        );
        let clone = dir.clones().remove(0);
        crate::repack::pile_packs(&clone, 2);
        let unwritable = crate::repack::Unwritable::new(&clone.join(".git/objects/pack"));
        let daemon = Daemon::start(dir, port);
        wait_for_metric(
            &daemon,
            "imagebump_cache_repacks_total{outcome=\"failed\"}",
            1.0,
        );
        (daemon, unwritable)
    })
    .await
    .unwrap();
    drop(unwritable);
    pusher
        .push_manifest("team/api", "1.1.0", &first.media_type, &first.body)
        .await;
    tokio::task::spawn_blocking(move || {
        wait_for_commits(&repo, 2, &daemon, Duration::from_secs(15));
        wait_for_metric(
            &daemon,
            "imagebump_cache_repacks_total{outcome=\"skipped_backoff\"}",
            1.0,
        );
        for (outcome, count) in [("failed", 1.0), ("repacked", 0.0)] {
            assert_eq!(
                daemon.metric(&format!(
                    "imagebump_cache_repacks_total{{outcome=\"{outcome}\"}}"
                )),
                count,
                "{outcome}: {}",
                daemon.log()
            );
        }
        let log = daemon.log();
        assert_eq!(log.matches("repack failed").count(), 1, "{log}");
        assert!(
            log.contains(&repo.file_url()),
            "the log names the clone: {log}"
        );
    })
    .await
    .unwrap();
}

/// Waits until the metric line starting with `prefix` reaches `at_least`.
fn wait_for_metric(daemon: &Daemon, prefix: &str, at_least: f64) {
    daemon.wait_until(
        Duration::from_secs(15),
        || format!("{prefix} never reached {at_least}"),
        || daemon.metric(prefix) >= at_least,
    );
}

/// Regression (issue 12 item 6): a typo saved in a live app file switched that app off while the
/// reload counted as `ok`, the status kept the old entry without an error and the app's webhooks
/// counted as unknown. Now the app keeps running from its last good version (a registry push
/// still lands), the reload counts as `rejected`, and the status names the file, line and error
/// until the file is fixed; a new broken file shows as not running.
#[tokio::test(flavor = "multi_thread")]
async fn a_typo_in_a_live_app_file_keeps_its_last_good_version_running_and_is_shown() {
    let port = free_port();
    let registry = notifying_registry(port).await;
    let host = registry.host();
    let (first, repo) = api_at_1_0_0(&registry, &host).await;
    let pusher = registry.pusher();
    let daemon = tokio::task::spawn_blocking({
        let dir = setup(&registry, &repo, port, "1h");
        move || Daemon::start(dir, port)
    })
    .await
    .unwrap();
    let shop = daemon.config_dir().join("apps/shop.yaml");
    let good = std::fs::read_to_string(&shop).unwrap();
    // The typo: `imagez:` for `images:` on line 3.
    std::fs::write(&shop, good.replace("images:", "imagez:")).unwrap();
    daemon.signal("HUP");
    wait_for_metric(
        &daemon,
        "imagebump_config_reloads_total{outcome=\"rejected\"}",
        1.0,
    );
    assert_eq!(daemon.metric("imagebump_config_problems"), 1.0);
    let (_, body) = daemon.get("/api/v1/status").unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let problems = status["config_errors"].as_array().expect("config_errors");
    assert_eq!(problems.len(), 1, "{body}");
    assert!(
        problems[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("apps/shop.yaml"),
        "{body}"
    );
    assert!(
        problems[0]["error"]
            .as_str()
            .unwrap()
            .contains("shop.yaml:3:"),
        "the error names file and line: {body}"
    );
    assert_eq!(problems[0]["app"], "shop", "{body}");
    let apps = status["apps"].as_array().unwrap();
    assert_eq!(apps[0]["name"], "shop", "{body}");
    assert!(apps[0]["config_error"].is_string(), "{body}");
    assert!(
        daemon.log().contains("apps/shop.yaml:3:"),
        "{}",
        daemon.log()
    );

    // The last good version still acts on a registry push.
    pusher
        .push_manifest("team/api", "1.1.0", &first.media_type, &first.body)
        .await;
    let (repo, daemon) = tokio::task::spawn_blocking(move || {
        wait_for_commits(&repo, 2, &daemon, Duration::from_secs(15));
        (repo, daemon)
    })
    .await
    .unwrap();
    assert!(repo.show("main", "values.yaml").contains("tag: 1.1.0"));

    // A new broken file: nothing old to keep, shown as not running.
    let new = daemon.config_dir().join("apps/new.yaml");
    std::fs::write(&new, "name: [blog\n").unwrap();
    daemon.signal("HUP");
    wait_for_metric(
        &daemon,
        "imagebump_config_reloads_total{outcome=\"rejected\"}",
        2.0,
    );
    let (_, body) = daemon.get("/api/v1/status").unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let problems = status["config_errors"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{body}");
    let new_problem = problems
        .iter()
        .find(|p| p["file"].as_str().unwrap().ends_with("apps/new.yaml"))
        .expect("the new file is listed");
    assert!(new_problem["app"].is_null(), "{body}");

    // Fixed: the problems are gone and the reload counts as ok.
    std::fs::write(&shop, &good).unwrap();
    std::fs::remove_file(&new).unwrap();
    daemon.signal("HUP");
    wait_for_metric(
        &daemon,
        "imagebump_config_reloads_total{outcome=\"ok\"}",
        1.0,
    );
    let (_, body) = daemon.get("/api/v1/status").unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["config_errors"], serde_json::json!([]), "{body}");
    assert!(status["apps"][0]["config_error"].is_null(), "{body}");
    assert_eq!(daemon.metric("imagebump_config_problems"), 0.0);
}

/// Regression (issue 12 item 10): a 1-character webhook secret was accepted. `run` refuses a
/// secret shorter than 16 bytes (the credential after `Bearer ` for a whole header value), at
/// start and on reload, naming the variable and the length, never the secret.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_secret_shorter_than_16_bytes_is_refused() {
    let registry = TestRegistry::start_plain().await;
    let repo = BareRepo::with_files("main", &[("values.yaml", VALUES)]);
    let dir = setup(&registry, &repo, free_port(), "1h");
    for weak in ["Zq", "Bearer Zq9abc"] {
        let child = dir
            .imagebump(["run"])
            .env("WEBHOOK_TOKEN", weak)
            .spawn(Stdio::null(), Stdio::piped());
        let Some(out) = child.wait_timeout(Duration::from_secs(10)) else {
            panic!("`run` started with the weak secret {weak:?}");
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{weak:?}: {stderr}");
        assert!(
            stderr.contains("`WEBHOOK_TOKEN`")
                && stderr.contains("at least 16")
                && !stderr.contains(weak),
            "{weak:?}: {stderr}"
        );
    }
}

/// A template typo saved in a live app file (`{{ chnages }}` in `commit_message`) is found at
/// reload like any other problem of the file: the reload is rejected, the app keeps its last
/// good version, and the status names the file, line and variable.
#[tokio::test(flavor = "multi_thread")]
async fn a_template_typo_in_a_live_app_file_is_a_rejected_reload_naming_the_variable() {
    let port = free_port();
    let registry = TestRegistry::start_plain().await;
    let repo = BareRepo::with_files("main", &[("values.yaml", VALUES)]);
    let daemon = tokio::task::spawn_blocking({
        let dir = setup(&registry, &repo, port, "1h");
        move || Daemon::start(dir, port)
    })
    .await
    .unwrap();
    let shop = daemon.config_dir().join("apps/shop.yaml");
    let good = std::fs::read_to_string(&shop).unwrap();
    std::fs::write(
        &shop,
        good.replace("images:", "commit_message: \"bump {{ chnages }}\"\nimages:"),
    )
    .unwrap();
    daemon.signal("HUP");
    wait_for_metric(
        &daemon,
        "imagebump_config_reloads_total{outcome=\"rejected\"}",
        1.0,
    );
    let (_, body) = daemon.get("/api/v1/status").unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let problems = status["config_errors"].as_array().expect("config_errors");
    assert_eq!(problems.len(), 1, "{body}");
    let error = problems[0]["error"].as_str().unwrap();
    assert!(
        error.contains(
            "shop.yaml:3:17: `commit_message` uses a variable not defined in its context: `chnages`"
        ),
        "{body}"
    );
    assert_eq!(
        problems[0]["app"], "shop",
        "the last good version runs: {body}"
    );
    assert_eq!(status["apps"][0]["name"], "shop", "{body}");
}

/// Regression (issue 13): `imagebump_tag_list_duration_seconds` was documented but never
/// emitted, and per-app and per-registry series appeared only after a first event. Every metric
/// docs/daemon.md lists (read from the file) has a sample on a running daemon after its first
/// cycle (with a notification sink and as shard 0 of 1, so that their series exist too).
#[tokio::test(flavor = "multi_thread")]
async fn every_documented_metric_is_exported_by_a_running_daemon() {
    let port = free_port();
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let (_, repo) = api_at_1_0_0(&registry, &host).await;
    let dir = setup(&registry, &repo, port, "1h");
    // A sink nothing is sent to: the pass finds the app up to date.
    dir.write("sink-url", "http://127.0.0.1:9/hook\n");
    dir.edit_global(|text| {
        format!("{text}notifications:\n  sinks:\n    - {{name: team, type: slack, url_file: sink-url}}\n")
    });
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/daemon.md")).unwrap();
    let documented: Vec<String> = docs
        .lines()
        .filter_map(|line| line.strip_prefix("| `imagebump_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("imagebump_{name}"))
        .collect();
    assert!(documented.len() >= 14, "{documented:?}");
    tokio::task::spawn_blocking(move || {
        let daemon = Daemon::start_env(dir, port, &[("IMAGEBUMP_SHARD", "0/1")]);
        let (_, text) = daemon.get("/metrics").unwrap();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let missing: Vec<&String> = documented
            .iter()
            .filter(|name| {
                !samples.iter().any(|line| {
                    line.strip_prefix(name.as_str()).is_some_and(|rest| {
                        rest.starts_with(['{', ' '])
                            || rest.starts_with("_bucket")
                            || rest.starts_with("_count")
                    })
                })
            })
            .collect();
        assert!(missing.is_empty(), "not exported: {missing:?}\n{text}");
        assert!(
            text.contains("imagebump_app_errors_total{app=\"shop\"} 0"),
            "{text}"
        );
    })
    .await
    .unwrap();
}

/// Runs headless Chromium (Debian's `chromium`) on `url` with `args`, for at most a minute,
/// and returns its stdout. Stopped by its pid if it hangs.
/// `team/api:1.0.0` pushed to `registry`, and a config repo whose `values.yaml` ([`VALUES`])
/// deploys it from `host` (the registry's own, or a proxy's in front of it): what was pushed
/// (to tag it again) and the repo.
pub(crate) async fn api_at_1_0_0(registry: &TestRegistry, host: &str) -> (Pushed, BareRepo) {
    let first = registry
        .pusher()
        .push_image("team/api", "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await;
    let repo = BareRepo::with_files(
        "main",
        &[("values.yaml", &VALUES.replace("REGISTRY", host))],
    );
    (first, repo)
}

pub(crate) fn chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium is installed (.ci/run installs it)");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    use std::io::Read as _;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// Issue 15: the status page, loaded in a real browser against a daemon that committed to a
/// real repo from a real registry: the rendered DOM names the apps, the deployed and candidate
/// tags, the reason a younger tag was passed over, the update written, and a failing app's
/// error; a screenshot is taken (and kept in docs/ with IMAGEBUMP_SCREENSHOT_DIR=docs).
#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_in_a_real_browser_shows_versions_reasons_and_errors() {
    let port = free_port();
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    for tag in ["1.0.0", "1.1.0"] {
        pusher
            .push_image("team/api", tag, &ImageSpec::new("2026-01-01T00:00:00Z"))
            .await;
    }
    // Built just now: younger than the app's min_age (1 h), so passed over, saying so.
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    pusher
        .push_image("team/api", "1.2.0", &ImageSpec::new(&now))
        .await;
    let repo = BareRepo::with_files(
        "main",
        &[("values.yaml", &VALUES.replace("REGISTRY", &host))],
    );
    let dir = setup(&registry, &repo, port, "1h");
    dir.write(
        "apps/shop.yaml",
        &format!(
            "name: shop\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    min_age: 1h\n    targets:\n      - {{file: values.yaml, path: api.image.tag}}\n",
            repo.file_url()
        ),
    );
    let dead = format!("127.0.0.1:{}", free_port());
    dir.write(
        "apps/blog.yaml",
        &format!(
            "name: blog\nrepo: {}\nimages:\n  - name: web\n    image: {dead}/team/web\n    policy: {{semver: \"^2\"}}\n    targets:\n      - {{file: values.yaml, path: web.image.tag}}\n",
            repo.file_url()
        ),
    );
    let shots = std::env::var_os("IMAGEBUMP_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let daemon = Daemon::start(dir, port);
        wait_for_commits(&repo, 2, &daemon, Duration::from_secs(30));
        // A registry webhook: the registry section shows when it came and what it named.
        let event = format!(
            r#"{{"events":[{{"action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"team/api","tag":"1.1.0"}},"request":{{"host":"{host}"}}}}]}}"#
        );
        assert_eq!(daemon.post_webhook(&event), Some(202), "{}", daemon.log());
        let url = format!("http://127.0.0.1:{port}/");
        let dom = chromium(&url, &["--dump-dom"]);
        for expected in [
            "<h1>imagebump</h1>",
            "shop <span class=\"state ok\">OK</span>",
            "<td class=\"deployed\"><code>1.1.0</code></td>",
            "<td class=\"candidate\"><code>1.1.0</code></td>",
            "1.2.0 (younger than min_age)",
            "semver ^1, min_age 1h",
            "values.yaml (path api.image.tag)",
            "blog <span class=\"state failed\">FAILING</span>",
            "role=\"alert\"",
            "<caption>Last updates of shop</caption>",
            "<h2 id=\"registries-title\">Registries</h2>",
            "<span class=\"state ok\">ASKED</span>",
            "(team/api)</td>",
        ] {
            assert!(
                dom.contains(expected),
                "the rendered page lacks {expected:?}:\n{dom}\ndaemon log:\n{}",
                daemon.log()
            );
        }
        // The blog app's error names the registry it cannot reach.
        assert!(dom.contains(&dead), "{dom}");
        // Both registries have a row: requests counted, the dead one's failures too.
        let row = |name: &str| -> String {
            let start = dom
                .find(&format!("<tr class=\"registry\"><th scope=\"row\"><code>{name}</code>"))
                .unwrap_or_else(|| panic!("no registry row for {name}:\n{dom}"));
            let rest = &dom[start..];
            rest[..rest.find("</tr>").unwrap()].to_string()
        };
        let number = |row: &str, class: &str| -> u64 {
            let open = format!("<td class=\"{class}\">");
            let start = row.find(&open).unwrap() + open.len();
            row[start..start + row[start..].find('<').unwrap()].parse().unwrap()
        };
        let live = row(&host);
        assert!(number(&live, "requests") > 0, "{live}");
        assert_eq!(number(&live, "failures"), 0, "{live}");
        let down = row(&dead);
        assert!(number(&down, "failures") > 0, "{down}");
        assert!(down.contains("none received"), "{down}");
        let shot = shots.join("status-page.png");
        chromium(
            &url,
            &[
                "--window-size=1200,1400",
                &format!("--screenshot={}", shot.display()),
            ],
        );
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{}",
            png.len()
        );
    })
    .await
    .unwrap();
}
