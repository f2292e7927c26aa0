//! The clone cache over many passes, without and with maintenance (`git::Maintenance`).
//!
//! `200 rounds`: a bare repo over `file://` with 300 app files; each round another writer
//! commits and pushes (from its own cache), then the bot's pass fetches it, commits one app
//! and pushes, as a daemon on a busy config repo does every poll. `10 large rounds`: each round
//! is one pass of 300 one-app commits in a directory of 400 files, which writes its trees out
//! as loose objects as it goes. For both, the table shows the clone's disk use (whole clone
//! directory, work tree included), packs and loose objects at the end and at their worst
//! during the run, and the median wall time of the bot's last 20 passes (or last 5 large
//! ones), and the slowest pass of the run (with maintenance on, a pass that repacks). "off" is `Maintenance::OFF` (as before maintenance: a clone past 200 packs is
//! deleted and cloned again); "on" is `Maintenance::DEFAULT` (repack past 50 packs or 5,000
//! loose objects, right after a checkout's fetch).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imagebump::git::{
    Author, CloneCache, GitError, GitSettings, Maintenance, RetryOptions, commit_and_push,
    commit_and_push_with,
};

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "seed")
        .env("GIT_AUTHOR_EMAIL", "seed@example.com")
        .env("GIT_COMMITTER_NAME", "seed")
        .env("GIT_COMMITTER_EMAIL", "seed@example.com")
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

/// A bare repo with `files` app files on `main`; returns its file:// URL.
fn seed(root: &Path, files: usize) -> String {
    let bare = root.join("remote.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    let work = root.join("seed");
    std::fs::create_dir_all(work.join("apps")).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    for i in 0..files {
        std::fs::write(
            work.join(format!("apps/app-{i}.yaml")),
            format!("name: app-{i}\nimage:\n  repository: ghcr.io/acme/app-{i}\n  tag: 1.0.0\n"),
        )
        .unwrap();
    }
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "seed"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    format!("file://{}", bare.display())
}

fn settings(email: &str) -> GitSettings {
    GitSettings {
        author: Author {
            name: "imagebump".into(),
            email: email.into(),
        },
        credentials: vec![],
        accept_unknown_hosts: false,
        signing_key: None,
    }
}

/// Bytes of every file under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// Sets `apps/app-{i}.yaml`'s tag for every `i` in `apps`, one commit each, one push.
fn pass(cache: &CloneCache, url: &str, apps: impl Iterator<Item = usize> + Clone, tag: &str) {
    let report = commit_and_push_with(
        cache,
        url,
        "main",
        &RetryOptions::default(),
        |checkout, memory| {
            let mut commits = 0;
            for i in apps.clone() {
                let rel = PathBuf::from(format!("apps/app-{i}.yaml"));
                let path = checkout.workdir().join(&rel);
                let text = std::fs::read_to_string(&path).unwrap();
                let line = text.lines().last().unwrap().to_string();
                std::fs::write(&path, text.replace(&line, &format!("  tag: {tag}"))).unwrap();
                if checkout
                    .commit(&[rel], &format!("bump app-{i} to {tag}"))?
                    .is_some()
                {
                    commits += 1;
                }
                memory.persist_if_large();
            }
            Ok::<_, GitError>(commits)
        },
    )
    .unwrap();
    assert!(report.pushed);
}

struct Row {
    scenario: &'static str,
    maintenance: &'static str,
    bytes: u64,
    packs: usize,
    loose: usize,
    peak_bytes: u64,
    peak_packs: usize,
    peak_loose: usize,
    median: Duration,
    slowest: Duration,
}

fn run(scenario: &'static str, maintenance: Maintenance, label: &'static str) -> Row {
    let large = scenario.starts_with("10");
    let root = tempfile::tempdir().unwrap();
    let url = seed(root.path(), if large { 400 } else { 300 });
    let cache = CloneCache::new(root.path().join("cache"), settings("imagebump@example.com"))
        .with_maintenance(maintenance);
    let other = CloneCache::new(root.path().join("other"), settings("human@example.com"));
    let dir = cache.dir_for(&url);
    let rounds = if large { 10 } else { 200 };
    let timed = if large { 5 } else { 20 };
    let (mut peak_bytes, mut peak_packs, mut peak_loose) = (0, 0, 0);
    let mut times = Vec::new();
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        let tag = format!("2.{round}.0");
        if !large {
            let report = commit_and_push(&other, &url, "main", &RetryOptions::default(), |c| {
                let path = c.workdir().join("human.txt");
                std::fs::write(&path, format!("{round}\n")).unwrap();
                Ok::<_, GitError>(usize::from(
                    c.commit(&[PathBuf::from("human.txt")], "human")?.is_some(),
                ))
            })
            .unwrap();
            assert!(report.pushed);
        }
        let start = Instant::now();
        if large {
            pass(&cache, &url, 0..300, &tag);
        } else {
            pass(&cache, &url, std::iter::once(round % 300), &tag);
        }
        let took = start.elapsed();
        slowest = slowest.max(took);
        if round >= rounds - timed {
            times.push(took);
        }
        let census = cache.census(&url);
        peak_bytes = peak_bytes.max(du(&dir));
        peak_packs = peak_packs.max(census.packs);
        peak_loose = peak_loose.max(census.loose_objects);
    }
    times.sort();
    let census = cache.census(&url);
    Row {
        scenario,
        maintenance: label,
        bytes: du(&dir),
        packs: census.packs,
        loose: census.loose_objects,
        peak_bytes,
        peak_packs,
        peak_loose,
        median: times[times.len() / 2],
        slowest,
    }
}

fn main() {
    println!("clone cache after many passes over file://, without and with maintenance");
    println!(
        "{:<16} {:>4} {:>10} {:>6} {:>6} {:>10} {:>6} {:>6} {:>10} {:>10}",
        "scenario",
        "mnt",
        "KiB",
        "packs",
        "loose",
        "peak KiB",
        "peak",
        "peak",
        "median ms",
        "slowest"
    );
    println!(
        "{:<16} {:>4} {:>10} {:>6} {:>6} {:>10} {:>6} {:>6} {:>10} {:>10}",
        "", "", "", "", "", "", "packs", "loose", "pass", "pass ms"
    );
    for scenario in ["200 rounds", "10 large rounds"] {
        for (label, maintenance) in [("off", Maintenance::OFF), ("on", Maintenance::DEFAULT)] {
            let row = run(scenario, maintenance, label);
            println!(
                "{:<16} {:>4} {:>10} {:>6} {:>6} {:>10} {:>6} {:>6} {:>10.1} {:>10.1}",
                row.scenario,
                row.maintenance,
                row.bytes / 1024,
                row.packs,
                row.loose,
                row.peak_bytes / 1024,
                row.peak_packs,
                row.peak_loose,
                row.median.as_secs_f64() * 1e3,
                row.slowest.as_secs_f64() * 1e3
            );
        }
    }
}
