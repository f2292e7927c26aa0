//! One `imagebump run` daemon of several (issue 17's replicas): its own config dir and workdir,
//! its own listen port, stopped by its pid when dropped; plus plain HTTP/1.0 calls to it.

use std::io::{Read as _, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use imagebump::daemon::status::StatusResponse;

use super::config::ConfigDir;
use super::git::BareRepo;
use super::imagebump::Process;
use super::registry::{ImageSpec, TestRegistry};

/// A running daemon this test started.
pub struct Daemon {
    /// The process (to `kill -9` it); its drop stops the daemon by its pid.
    pub child: Process,
    pub port: u16,
    pub dir: ConfigDir,
}

impl Daemon {
    /// Starts `imagebump run --log-level debug ARGS` on `dir` (whose global file listens on
    /// `port`) with `env`, its log in `dir/daemon.log`, and waits until it is ready (its first
    /// cycle ended).
    pub fn start(dir: ConfigDir, port: u16, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_logging("debug", dir, port, args, env)
    }

    /// [`Daemon::start`] with another `--log-level` (a benchmark's daemon logs little).
    pub fn start_logging(
        level: &str,
        dir: ConfigDir,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let log = std::fs::File::create(dir.path().join("daemon.log")).expect("daemon.log");
        let child = dir
            .imagebump(["run", "--log-level", level])
            .args(args)
            .envs(env.iter().copied())
            .spawn(Stdio::null(), log);
        let mut daemon = Daemon { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(120);
        while daemon.get("/readyz").map(|(status, _)| status) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "never ready; log:\n{}",
                daemon.log()
            );
            if let Some(status) = daemon.child.try_wait() {
                panic!(
                    "exited ({status}) before it was ready; log:\n{}",
                    daemon.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// `GET path`: the status code and body, `None` if the daemon does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request(&format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
    }

    /// `POST path` with `headers` (`Name: value` lines) and `body`: the status code and body.
    pub fn post(&self, path: &str, headers: &[&str], body: &str) -> Option<(u16, String)> {
        let mut request = format!("POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.request(&request)
    }

    fn request(&self, request: &str) -> Option<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())?;
        Some((status, body))
    }

    /// `/api/v1/status`, parsed.
    pub fn status(&self) -> StatusResponse {
        let (code, body) = self.get("/api/v1/status").expect("status answered");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("status JSON")
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
}

/// The replica tests' apps: a repo with `app-0.yaml` … `app-{apps - 1}.yaml` at tag 1.0.0 on
/// `main`, and in `registry` tags 1.0.0 and 1.1.0 of each image `team/app-N`.
pub async fn apps_fixture(registry: &TestRegistry, apps: usize) -> BareRepo {
    let pusher = registry.pusher();
    for i in 0..apps {
        for (tag, created) in [
            ("1.0.0", "2026-01-01T00:00:00Z"),
            ("1.1.0", "2026-01-02T00:00:00Z"),
        ] {
            pusher
                .push_image(&format!("team/app-{i}"), tag, &ImageSpec::new(created))
                .await;
        }
    }
    let files: Vec<(String, &str)> = (0..apps)
        .map(|i| (format!("app-{i}.yaml"), "image:\n  tag: 1.0.0\n"))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(f, t)| (f.as_str(), *t)).collect();
    BareRepo::with_files("main", &files)
}

/// Round `round` (2 or more) of new tags: `1.{round}.0` of every image `team/app-N`, created on
/// day `round + 1`. Returns the tag.
pub async fn push_round(registry: &TestRegistry, apps: usize, round: u32) -> String {
    let tag = format!("1.{round}.0");
    let spec = ImageSpec::new(&format!("2026-01-{:02}T00:00:00Z", round + 1));
    let pusher = registry.pusher();
    for i in 0..apps {
        pusher
            .push_image(&format!("team/app-{i}"), &tag, &spec)
            .await;
    }
    tag
}

/// The config every replica of a test shares but its listen `port`: apps `app-0` …
/// `app-{apps - 1}` in `repo`, each with its own image `team/app-N` (policy `^1`) and file
/// `app-N.yaml` (`image.tag`), the app keys `app_keys` (whole lines) added to each; git
/// credentials from `GIT_PASSWORD` for `http://127.0.0.1`, a distribution receiver with the
/// secret in `WEBHOOK_TOKEN`.
pub fn replica_config(
    registry: &str,
    repo: &str,
    interval: &str,
    port: u16,
    apps: usize,
    app_keys: &str,
) -> ConfigDir {
    let mut dir = ConfigDir::with_global(&format!(
        "apps: apps\nworkdir: cache\ngit:\n  author: {{name: imagebump, email: bot@imagebump.test}}\n  credentials:\n    - url: http://127.0.0.1\n      username: tester\n      password_env: GIT_PASSWORD\ninterval: {interval}\nwebhook:\n  listen: 127.0.0.1:{port}\n  receivers:\n    - type: distribution\n      secret_env: WEBHOOK_TOKEN\nregistries:\n  - prefix: {registry}\n    insecure: true\n"
    ));
    for i in 0..apps {
        dir = dir.app(
            &format!("app-{i}"),
            &format!(
                "name: app-{i}\nrepo: {repo}\n{app_keys}images:\n  - name: api\n    image: {registry}/team/app-{i}\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: app-{i}.yaml, path: image.tag}}\n"
            ),
        );
    }
    dir
}
