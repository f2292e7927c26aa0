//! Times the history reads rollback detection makes (`history::History::target`): 300 app
//! files in one config repo with 10,000 first-parent commits of history (each commit bumps one
//! app's tag, alternating between the bot and a person, spread over 60 days), one target per
//! file. Rows: the first read (cold: every file's history, bounded, in one walk of the branch
//! as a pass makes it with `History::prefetch`), a pass on the same head (the daemon's steady
//! state: served from the cache, no commit read), and a pass after one new commit (only the new
//! commit is read, per file). Prints wall time, commits read and blobs parsed. A cold read file
//! by file (no prefetch) walked 5,000 commits per file: 1,500,000 commits, 74 s here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use imagebump::edit::Target;
use imagebump::git::{Author, Checkout, CloneCache, GitSettings};
use imagebump::history::{Bound, History};
use imagebump::reference::ImageRef;
use time::OffsetDateTime;

const FILES: usize = 300;
const COMMITS: usize = 10_000;
const BOT: &str = "imagebump@example.com";

fn kustomization(app: usize, patch: usize) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n  - name: ghcr.io/acme/app-{app}\n    newTag: 1.0.{patch}\n"
    )
}

/// `data` of a fast-import stream.
fn data(out: &mut Vec<u8>, text: &str) {
    writeln!(out, "data {}", text.len()).unwrap();
    out.extend_from_slice(text.as_bytes());
    out.push(b'\n');
}

/// A bare repo whose `main` has the seed commit and `COMMITS` more, written with
/// `git fast-import`; returns its file:// URL.
fn seed(root: &Path, now: i64) -> String {
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
    writeln!(stream, "author seed <seed@example.com> {start} +0000").unwrap();
    writeln!(stream, "committer seed <seed@example.com> {start} +0000").unwrap();
    data(&mut stream, "seed");
    for app in 0..FILES {
        writeln!(stream, "M 100644 inline apps/app-{app}/kustomization.yaml").unwrap();
        data(&mut stream, &kustomization(app, 0));
    }
    for n in 0..COMMITS {
        let app = n % FILES;
        let who = if n % 2 == 0 { BOT } else { "jane@example.com" };
        let when = start + step * (n as i64 + 1);
        writeln!(stream, "commit refs/heads/main\nmark :{}", n + 2).unwrap();
        writeln!(stream, "author x <{who}> {when} +0000").unwrap();
        writeln!(stream, "committer x <{who}> {when} +0000").unwrap();
        data(&mut stream, &format!("bump app-{app}"));
        writeln!(stream, "from :{}", n + 1).unwrap();
        writeln!(stream, "M 100644 inline apps/app-{app}/kustomization.yaml").unwrap();
        data(&mut stream, &kustomization(app, n / FILES + 1));
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

/// One more commit on the remote (a person's edit of another file).
fn push_one(root: &Path, url: &str) {
    let work = root.join("work");
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(&work)
            .env("GIT_AUTHOR_NAME", "jane")
            .env("GIT_AUTHOR_EMAIL", "jane@example.com")
            .env("GIT_COMMITTER_NAME", "jane")
            .env("GIT_COMMITTER_EMAIL", "jane@example.com")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    std::fs::create_dir_all(&work).unwrap();
    git(&["clone", "-q", url, "."]);
    std::fs::write(work.join("README.md"), "notes\n").unwrap();
    git(&["add", "README.md"]);
    git(&["commit", "-q", "-m", "notes"]);
    git(&["push", "-q", "origin", "HEAD:main"]);
}

/// One pass over every file's target: (wall time, commits read, blobs parsed) it added.
fn pass(
    history: &History,
    checkout: &Checkout,
    url: &str,
    now: OffsetDateTime,
) -> (Duration, usize, usize) {
    let (commits, blobs) = history.cost();
    let started = Instant::now();
    let files: Vec<String> = (0..FILES)
        .map(|app| format!("apps/app-{app}/kustomization.yaml"))
        .collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    history.prefetch(checkout, url, &files, now).unwrap();
    for app in 0..FILES {
        let image = ImageRef::parse(&format!("ghcr.io/acme/app-{app}")).unwrap();
        let file = format!("apps/app-{app}/kustomization.yaml");
        let target = history
            .target(checkout, url, &file, &Target::Auto, &image, now)
            .unwrap();
        assert!(!target.changes.is_empty());
    }
    let elapsed = started.elapsed();
    let (commits_after, blobs_after) = history.cost();
    (elapsed, commits_after - commits, blobs_after - blobs)
}

fn main() {
    let now = OffsetDateTime::now_utc();
    let root = tempfile::tempdir().unwrap();
    let url = seed(root.path(), now.unix_timestamp());
    let settings = GitSettings {
        author: Author {
            name: "imagebump".into(),
            email: BOT.into(),
        },
        credentials: vec![],
        accept_unknown_hosts: false,
        signing_key: None,
    };
    let cache = CloneCache::new(root.path().join("cache"), settings);
    let history = History::new(Bound::default());
    println!(
        "history reads: {FILES} targets, {COMMITS} commits of history, bound {:?}",
        Bound::default()
    );
    println!(
        "{:<28}  {:>10}  {:>14}  {:>12}",
        "pass", "ms", "commits read", "blobs parsed"
    );
    let row = |name: &str, (time, commits, blobs): (Duration, usize, usize)| {
        println!(
            "{name:<28}  {:>10.1}  {commits:>14}  {blobs:>12}",
            time.as_secs_f64() * 1e3
        );
    };
    {
        let checkout = cache.checkout(&url, "main").unwrap();
        row("cold (first read)", pass(&history, &checkout, &url, now));
        row(
            "same head (steady state)",
            pass(&history, &checkout, &url, now),
        );
    }
    push_one(root.path(), &url);
    let checkout = cache.checkout(&url, "main").unwrap();
    row("one new commit", pass(&history, &checkout, &url, now));
    row("same head again", pass(&history, &checkout, &url, now));
}
