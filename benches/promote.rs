//! Times a promotion pass (issue 19, part 2): 300 destination apps (`prod-i`), each promoted
//! from its own source app (`staging-i`, soak 24h) in one config repo with 10,000 first-parent
//! commits of history (each commit bumps one staging file's tag, spread over 60 days), against
//! the real `docker-registry`. The pass is `imagebump once --dry-run` over the 300 prod apps
//! (the staging apps are left out), in-process.
//!
//! Rows: `first` (a fresh engine: clone, then every source's history read cold, in one walk of
//! the branch), `same engine, nothing new` (the daemon's steady state: no history read),
//! `fresh engine, clone kept` (as `imagebump once` runs again: the clone is on disk, the
//! history cache is not). Prints wall time, first-parent commits read and blobs parsed. No timed
//! assertion.
//!
//! Run: `cargo bench --bench promote`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use imagebump::engine::{Engine, PassOptions};
use support::registry::{ImageSpec, TestRegistry};

const APPS: usize = 300;
const COMMITS: usize = 10_000;
const BOT: &str = "bot@imagebump.test";

fn values(host: &str, tag: &str) -> String {
    format!("api:\n  image:\n    repository: {host}/team/api\n    tag: {tag}\n")
}

/// `data` of a fast-import stream.
fn data(out: &mut Vec<u8>, text: &str) {
    writeln!(out, "data {}", text.len()).unwrap();
    out.extend_from_slice(text.as_bytes());
    out.push(b'\n');
}

/// A bare repo whose `main` has the seed commit (every staging and prod file at 1.0.0) and
/// `COMMITS` more bumping staging files, written with `git fast-import`; its file:// URL.
fn seed(root: &Path, host: &str, now: i64) -> String {
    let bare = root.join("remote.git");
    std::fs::create_dir_all(&bare).unwrap();
    let status = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .current_dir(&bare)
        .status()
        .unwrap();
    assert!(status.success());
    let start = now - 60 * 86_400;
    let step = 60 * 86_400 / COMMITS as i64;
    let mut stream = Vec::new();
    writeln!(stream, "commit refs/heads/main\nmark :1").unwrap();
    writeln!(stream, "author seed <{BOT}> {start} +0000").unwrap();
    writeln!(stream, "committer seed <{BOT}> {start} +0000").unwrap();
    data(&mut stream, "seed");
    for app in 0..APPS {
        for env in ["staging", "prod"] {
            writeln!(stream, "M 100644 inline {env}/app-{app}/values.yaml").unwrap();
            data(&mut stream, &values(host, "1.0.0"));
        }
    }
    for n in 0..COMMITS {
        let app = n % APPS;
        let when = start + step * (n as i64 + 1);
        writeln!(stream, "commit refs/heads/main\nmark :{}", n + 2).unwrap();
        writeln!(stream, "author x <{BOT}> {when} +0000").unwrap();
        writeln!(stream, "committer x <{BOT}> {when} +0000").unwrap();
        data(&mut stream, &format!("bump staging app-{app}"));
        writeln!(stream, "from :{}", n + 1).unwrap();
        writeln!(stream, "M 100644 inline staging/app-{app}/values.yaml").unwrap();
        data(&mut stream, &values(host, &format!("1.0.{}", n / APPS + 1)));
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&bare)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success());
    format!("file://{}", bare.display())
}

/// The global file and 600 app files.
fn write_config(dir: &Path, host: &str, url: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    let global = dir.join("imagebump.yaml");
    std::fs::write(
        &global,
        format!(
            "apps: apps\nworkdir: cache\ngit:\n  author: {{name: imagebump, email: {BOT}}}\nregistries:\n  - prefix: {host}\n    insecure: true\n"
        ),
    )
    .unwrap();
    for i in 0..APPS {
        std::fs::write(
            dir.join(format!("apps/staging-{i}.yaml")),
            format!(
                "name: staging-{i}\nrepo: {url}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: staging/app-{i}/values.yaml, path: api.image.tag}}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("apps/prod-{i}.yaml")),
            format!(
                "name: prod-{i}\nrepo: {url}\nwrite: commit\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    promote: {{from: staging-{i}, soak: 24h}}\n    targets:\n      - {{file: prod/app-{i}/values.yaml, path: api.image.tag}}\n"
            ),
        )
        .unwrap();
    }
    global
}

fn engine(config: &Path) -> Engine {
    let loaded = imagebump::config::load(config).expect("config");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    Engine::new(loaded.config).expect("engine")
}

/// One dry-run pass over the prod apps: (wall time, commits read, blobs parsed, promoted).
async fn pass(engine: &Engine) -> (Duration, usize, usize, usize) {
    let options = PassOptions {
        dry_run: true,
        exclude: (0..APPS)
            .map(|i| format!("staging-{i}"))
            .collect::<BTreeSet<_>>(),
        ..PassOptions::default()
    };
    let (commits, blobs) = engine.history_cost();
    let started = Instant::now();
    let report = engine.run_pass(&options).await;
    let elapsed = started.elapsed();
    assert!(!report.failed(), "pass failed: {:?}", report.apps[0].errors);
    let promoted = report.apps.iter().filter(|a| !a.changes.is_empty()).count();
    let (commits_after, blobs_after) = engine.history_cost();
    (
        elapsed,
        commits_after - commits,
        blobs_after - blobs,
        promoted,
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let registry = TestRegistry::start_plain().await;
        let host = registry.host();
        let pusher = registry.pusher();
        for patch in 0..=COMMITS / APPS + 1 {
            pusher
                .push_image(
                    "team/api",
                    &format!("1.0.{patch}"),
                    &ImageSpec::new("2026-01-01T00:00:00Z"),
                )
                .await;
        }
        let root = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let url = seed(root.path(), &host, now);
        let config = write_config(&root.path().join("config"), &host, &url);
        println!(
            "promotion pass: {APPS} prod apps promoted from {APPS} staging apps, {COMMITS} commits of history, dry run"
        );
        println!(
            "{:<28}  {:>10}  {:>14}  {:>12}  {:>9}",
            "pass", "ms", "commits read", "blobs parsed", "promoted"
        );
        let row = |name: &str, (time, commits, blobs, promoted): (Duration, usize, usize, usize)| {
            println!(
                "{name:<28}  {:>10.1}  {commits:>14}  {blobs:>12}  {promoted:>9}",
                time.as_secs_f64() * 1e3
            );
        };
        let first = engine(&config);
        row("first (clone, cold)", pass(&first).await);
        row("same engine, nothing new", pass(&first).await);
        let again = engine(&config);
        row("fresh engine, clone kept", pass(&again).await);
    });
}
