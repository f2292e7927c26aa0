//! One `once` pass over 1, 50 and 300 apps that share one config repo, against the real
//! `docker-registry` and a real git remote (a bare repo over `file://`, and the same over smart
//! HTTP through `git http-backend` behind basic auth). Each app has its own values file.
//!
//! Three passes per row, each with a fresh [`Engine`] (as `imagebump once` makes one per run;
//! the clone cache on disk is kept between them): `first` (clone, one commit per app, one
//! push), `nothing new` (fetch and plan, no commit, no push) and `new tag` (a newer allowed tag
//! was pushed: one commit per app, one push). Then 1,000 apps over `file://`, with one commit
//! per app and with `git.group_commits` (one commit per pass). The library is called in-process, so the time is
//! config load + engine + pass, without process startup. No timed assertion: it prints a table
//! (target for 300 apps: under 5 s on loopback).
//!
//! Run: `cargo bench --bench once`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use imagebump::engine::{Engine, PassOptions, PassReport};
use support::git::{BareRepo, GitHttpServer};
use support::registry::{ImageSpec, TestRegistry};

const SIZES: [usize; 3] = [1, 50, 300];
const HTTP_PASSWORD: &str = "bench-http-password";

fn values(host: &str, repository: &str, tag: &str) -> String {
    format!(
        "# Default values\nreplicaCount: 2\n\napi:\n  image:\n    repository: {host}/{repository}\n    tag: {tag}\n    pullPolicy: IfNotPresent\n"
    )
}

/// A config dir (global file + one app file per app) whose apps all live in `repo_url`.
fn write_config(
    dir: &Path,
    host: &str,
    repository: &str,
    repo_url: &str,
    apps: usize,
    password_file: Option<&Path>,
    grouped: bool,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    let credentials = match password_file {
        Some(file) => format!(
            "  credentials:\n    - url: {repo_url}\n      username: bot\n      password_file: {}\n",
            file.display()
        ),
        None => String::new(),
    };
    let global = dir.join("imagebump.yaml");
    std::fs::write(
        &global,
        format!(
            "apps: apps\nworkdir: cache\ngit:\n  author: {{name: imagebump, email: bot@imagebump.test}}\n  group_commits: {grouped}\n{credentials}registries:\n  - prefix: {host}\n    insecure: true\n"
        ),
    )
    .unwrap();
    for i in 0..apps {
        std::fs::write(
            dir.join(format!("apps/app{i:03}.yaml")),
            format!(
                "name: app{i:03}\nrepo: {repo_url}\nbranch: main\nimages:\n  - name: api\n    image: {host}/{repository}\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: apps/app{i:03}/values.yaml, path: api.image.tag}}\n"
            ),
        )
        .unwrap();
    }
    global
}

async fn pass(config: &Path) -> (Duration, PassReport) {
    let started = Instant::now();
    let loaded = imagebump::config::load(config).expect("config");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let engine = Engine::new(loaded.config).expect("engine");
    let report = engine.run_pass(&PassOptions::default()).await;
    let elapsed = started.elapsed();
    assert!(!report.failed(), "pass failed: {:?}", report.apps[0].errors);
    (elapsed, report)
}

struct Row {
    apps: usize,
    transport: &'static str,
    mode: &'static str,
    kind: &'static str,
    wall: Duration,
    /// Apps whose changes were committed.
    committed: usize,
    /// Distinct commits.
    commits: usize,
    pushes: usize,
    registry_requests: u64,
}

async fn scenario(
    registry: &TestRegistry,
    apps: usize,
    http: bool,
    grouped: bool,
    rows: &mut Vec<Row>,
) {
    let host = registry.host();
    let transport = if http { "http" } else { "file" };
    let mode = if grouped { "grouped" } else { "per-app" };
    // Each scenario has an image repository of its own, so a new tag in one does not leak
    // into the next: 1.0.0 (deployed), 1.1.0 and 1.2.0 exist, 2.0.0 is out of policy.
    let repository = format!("bench/{transport}-{apps}-{mode}");
    let pusher = registry.pusher();
    let first = pusher
        .push_image(
            &repository,
            "1.0.0",
            &ImageSpec::new("2026-01-01T00:00:00Z"),
        )
        .await;
    for tag in ["1.1.0", "1.2.0", "2.0.0"] {
        pusher
            .push_manifest(&repository, tag, &first.media_type, &first.body)
            .await;
    }
    let files: Vec<(String, String)> = (0..apps)
        .map(|i| {
            (
                format!("apps/app{i:03}/values.yaml"),
                values(&host, &repository, "1.0.0"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let repo = BareRepo::with_files("main", &refs);
    let dir = tempfile::tempdir().unwrap();
    let server;
    let (url, password_file) = if http {
        server = GitHttpServer::start(repo.root(), "bot", HTTP_PASSWORD);
        let file = dir.path().join("git-password");
        std::fs::write(&file, HTTP_PASSWORD).unwrap();
        (server.url("repo.git"), Some(file))
    } else {
        (repo.file_url(), None)
    };
    let config = write_config(
        dir.path(),
        &host,
        &repository,
        &url,
        apps,
        password_file.as_deref(),
        grouped,
    );

    let mut record = |kind, (wall, report): (Duration, PassReport)| {
        let commits: std::collections::BTreeSet<&str> = report
            .apps
            .iter()
            .filter_map(|a| a.commit.as_deref())
            .collect();
        rows.push(Row {
            apps,
            transport,
            mode,
            kind,
            wall,
            committed: report.apps.iter().filter(|a| a.commit.is_some()).count(),
            commits: commits.len(),
            pushes: report.pushes,
            registry_requests: report.registry_requests,
        });
    };
    record("first", pass(&config).await);
    record("nothing new", pass(&config).await);
    pusher
        .push_manifest(&repository, "1.3.0", &first.media_type, &first.body)
        .await;
    record("new tag", pass(&config).await);
    // The remote holds the initial commit plus two commits per app (or per pass, grouped).
    let per_pass = if grouped { 1 } else { apps };
    assert_eq!(repo.log("main").len(), 1 + 2 * per_pass);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = runtime.block_on(async {
        let registry = TestRegistry::start_plain().await;
        let mut rows = Vec::new();
        for http in [false, true] {
            for apps in SIZES {
                scenario(&registry, apps, http, false, &mut rows).await;
            }
        }
        for grouped in [false, true] {
            scenario(&registry, 1000, false, grouped, &mut rows).await;
        }
        rows
    });
    println!(
        "imagebump once, in-process (config load + Engine::new + run_pass), real docker-registry, one config repo"
    );
    println!(
        "{:>5}  {:<6}  {:<8}  {:<12}  {:>10}  {:>9}  {:>8}  {:>7}  {:>9}",
        "apps",
        "remote",
        "commits",
        "pass",
        "wall ms",
        "committed",
        "commits",
        "pushes",
        "registry"
    );
    for row in &rows {
        println!(
            "{:>5}  {:<6}  {:<8}  {:<12}  {:>10.1}  {:>9}  {:>8}  {:>7}  {:>9}",
            row.apps,
            row.transport,
            row.mode,
            row.kind,
            row.wall.as_secs_f64() * 1e3,
            row.committed,
            row.commits,
            row.pushes,
            row.registry_requests
        );
    }
    let worst = rows
        .iter()
        .filter(|r| r.apps == 300)
        .map(|r| r.wall)
        .max()
        .unwrap_or_default();
    println!(
        "slowest 300-app pass: {:.2} s ({} the 5 s target)",
        worst.as_secs_f64(),
        if worst < Duration::from_secs(5) {
            "within"
        } else {
            "over"
        }
    );
}
