//! Times `git::commit_and_push` against a real `file://` remote: one commit per edited file
//! (one per app, as the write-back makes them) and a single push, for 1, 50, 300 and 1,000
//! edits (the repo holds 300 files, or as many as the edits when there are more).
//! "cold" includes the first clone into an empty cache; "warm" is a later pass on the cache
//! (fetch, reset, edit, commit, push), the daemon's steady state. Prints a table with wall
//! time and, because the machine may be shared, the process CPU time (user + system) of the
//! median warm pass too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imagebump::git::{Author, CloneCache, GitSettings, RetryOptions, commit_and_push};

/// Files in the repo (at least; a row with more edits has one file per edit).
const FILES: usize = 300;

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

fn settings() -> GitSettings {
    GitSettings {
        author: Author {
            name: "imagebump".into(),
            email: "imagebump@example.com".into(),
        },
        credentials: vec![],
        accept_unknown_hosts: false,
        signing_key: None,
    }
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, clock ticks of
/// 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of the stat line; `fields` starts at field 3.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// One pass: edit `edits` files to `tag`, one commit each, one push. Returns (wall, cpu).
fn pass(cache: &CloneCache, url: &str, edits: usize, tag: &str) -> (Duration, Duration) {
    let start = Instant::now();
    let cpu_start = cpu_time();
    let report = commit_and_push(cache, url, "main", &RetryOptions::default(), |checkout| {
        let mut commits = 0;
        for i in 0..edits {
            let rel = PathBuf::from(format!("apps/app-{i}.yaml"));
            let path = checkout.workdir().join(&rel);
            let text = std::fs::read_to_string(&path).unwrap();
            let line = text.lines().last().unwrap().to_string();
            std::fs::write(&path, text.replace(&line, &format!("  tag: {tag}"))).unwrap();
            if checkout
                .commit(&[rel], &format!("chore(app-{i}): bump to {tag}"))?
                .is_some()
            {
                commits += 1;
            }
        }
        Ok::<_, imagebump::git::GitError>(commits)
    })
    .unwrap();
    assert!(report.pushed && report.attempts == 1);
    (start.elapsed(), cpu_time() - cpu_start)
}

fn main() {
    println!("git commit_and_push over file://");
    println!(
        "{:>6}  {:>6}  {:>10}  {:>10}  {:>14}  {:>12}",
        "edits", "files", "cold ms", "warm ms", "warm ms/edit", "warm cpu ms"
    );
    for edits in [1usize, 50, 300, 1000] {
        let files = edits.max(FILES);
        let root = tempfile::tempdir().unwrap();
        let url = seed(root.path(), files);
        let cache = CloneCache::new(root.path().join("cache"), settings());
        let (cold, _) = pass(&cache, &url, edits, "1.0.1");
        let mut warm: Vec<(Duration, Duration)> = (0..5)
            .map(|round| pass(&cache, &url, edits, &format!("1.1.{round}")))
            .collect();
        warm.sort();
        let (median, median_cpu) = warm[warm.len() / 2];
        println!(
            "{edits:>6}  {files:>6}  {:>10.1}  {:>10.1}  {:>14.2}  {:>12.0}",
            cold.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3 / edits as f64,
            median_cpu.as_secs_f64() * 1e3
        );
    }
}
