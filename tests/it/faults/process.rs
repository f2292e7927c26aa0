//! Fault suite: process faults (see docs/reliability.md).
//!
//! Real `imagebump` processes on one workdir, real remotes (`file://`, smart HTTP), and
//! `kill -9` sent by pid to the processes these tests started, never by name.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::git::{HTTP_PASSWORD, app, config_dir, fsck, http_remote, registry, text, values};
use crate::support::config::ConfigDir;
use crate::support::git::{BareRepo, git};
use crate::support::imagebump::Process;
use crate::support::registry::ImageSpec;

const APPS: usize = 30;

/// A repository whose `main` holds `APPS` values files at 1.0.0.
fn many_apps_repo(host: &str) -> BareRepo {
    let repo = BareRepo::empty("main");
    let files: Vec<(String, String)> = (0..APPS)
        .map(|i| (format!("apps/app{i:02}/values.yaml"), values(host, "1.0.0")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    repo.push_files("main", &refs, "apps");
    repo
}

/// `APPS` app files, each following its own values file in the repository at `url`.
fn many_apps(host: &str, url: &str) -> Vec<(String, String)> {
    (0..APPS)
        .map(|i| {
            let name = format!("app{i:02}");
            let file = format!("apps/{name}/values.yaml");
            let text = app(&name, url, host, &[&file]);
            (name, text)
        })
        .collect()
}

/// A config of `apps` (the names borrowed as `config` wants them).
fn config_of(host: &str, extra_global: &str, apps: &[(String, String)]) -> ConfigDir {
    let apps: Vec<(&str, String)> = apps.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
    config_dir(host, extra_global, &apps)
}

/// Every app's file on the remote is at `tag`, and every commit imagebump made changes
/// exactly one app's file, and no change was committed twice.
fn assert_remote_complete(repo: &BareRepo, tag: &str) {
    for i in 0..APPS {
        let file = format!("apps/app{i:02}/values.yaml");
        let content = repo.show("main", &file);
        assert!(
            content.contains(&format!("tag: \"{tag}\"")),
            "{file} is not at {tag}:\n{content}"
        );
    }
    let mut touched = Vec::new();
    for (sha, subject, author) in repo.log("main") {
        if author != "bot@imagebump.test" {
            continue;
        }
        let files = git(repo.path(), &["show", "--format=", "--name-only", &sha]);
        let files: Vec<&str> = files.lines().collect();
        assert_eq!(files.len(), 1, "commit {sha} ({subject}) touches {files:?}");
        touched.push(format!("{} {subject}", files[0]));
    }
    touched.sort();
    let before = touched.len();
    touched.dedup();
    assert_eq!(
        touched.len(),
        before,
        "a change was committed twice: {touched:?}"
    );
}

/// Issue 12 item 2: two `imagebump once` at the same moment on one workdir lost updates while
/// both reported success (or failed on raw libgit2 lock errors). With the clone lock, the
/// second waits for the first: every target ends at the new tag, each in one whole commit,
/// and neither process fails or claims work it did not do.
#[tokio::test(flavor = "multi_thread")]
async fn two_processes_on_one_workdir_take_turns_and_lose_nothing() {
    let registry = registry().await;
    let host = registry.host();
    let repo = many_apps_repo(&host);
    let config = config_of(&host, "", &many_apps(&host, &repo.file_url()));

    let spawn = || {
        config
            .imagebump(["once", "--output", "json"])
            .spawn(Stdio::piped(), Stdio::piped())
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output(), b.wait_with_output());
    for out in [&a, &b] {
        assert_eq!(out.status.code(), Some(0), "{}", text(out));
    }
    assert_remote_complete(&repo, "1.1.0");
    // Exactly one of them did the work; the other found every app up to date.
    let commits = |out: &std::process::Output| -> usize {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["apps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|app| app["commit"].is_string())
            .count()
    };
    let (ca, cb) = (commits(&a), commits(&b));
    assert_eq!(
        (ca + cb, ca.min(cb)),
        (APPS, 0),
        "{}\n{}",
        text(&a),
        text(&b)
    );
    for clone in config.clones() {
        fsck(&clone).unwrap();
    }
}

/// Issue 12 item 2: a process that cannot get the clone within `git.workdir_wait` fails
/// loudly, naming the PID that holds it, and does nothing; once the holder is gone, the next
/// pass does the work.
#[tokio::test(flavor = "multi_thread")]
async fn a_workdir_held_by_another_process_fails_naming_its_pid() {
    let registry = registry().await;
    let host = registry.host();
    let repo = many_apps_repo(&host);
    let config = config_of(
        &host,
        "  workdir_wait: 1s\n",
        &many_apps(&host, &repo.file_url()),
    );
    let out = config.imagebump(["once"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_remote_complete(&repo, "1.1.0");

    let spec = ImageSpec::new("2026-01-03T00:00:00Z");
    registry
        .pusher()
        .push_image("team/api", "1.2.0", &spec)
        .await;
    let clone = &config.clones()[0];
    let lock_path = format!("{}.lock", clone.display());
    let mut holder = std::fs::File::options()
        .write(true)
        .open(&lock_path)
        .unwrap();
    holder.lock().unwrap();
    std::io::Write::write_all(&mut holder, b"4242\n").unwrap();
    let head = repo.head("main");

    let started = Instant::now();
    let out = config.imagebump(["once"]).output();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!(
            "workdir {} is in use by PID 4242",
            clone.display()
        )),
        "{all}"
    );
    assert!(!all.contains("updated"), "{all}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not stop waiting"
    );
    assert_eq!(repo.head("main"), head, "it pushed without the lock");

    drop(holder);
    let out = config.imagebump(["once"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_remote_complete(&repo, "1.2.0");
}

/// Sends SIGKILL to `child` (a process this test started, by its pid) and reaps it.
fn kill_9(child: &mut Process) {
    child.stop();
}

/// Process faults: `kill -9` at different moments of a pass (while cloning, planning,
/// committing, pushing over smart HTTP), then a normal restart. The restart recovers the clone
/// (or re-clones it), finishes the work, and the remote never holds a half commit.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_pass_then_restart_recovers() {
    let registry = registry().await;
    let host = registry.host();
    let repo = many_apps_repo(&host);
    let (_server, url, credentials) = http_remote(&repo);
    let config = config_of(&host, &credentials, &many_apps(&host, &url));
    let spawn = || {
        config
            .imagebump(["once"])
            .env("TEST_GIT_PASSWORD", HTTP_PASSWORD)
            .spawn(Stdio::null(), Stdio::null())
    };

    let tags = ["1.2.0", "1.3.0", "1.4.0", "1.5.0"];
    let delays_ms = [40u64, 120, 250, 400, 700];
    for (round, tag) in tags.iter().enumerate() {
        let spec = ImageSpec::new(&format!("2026-02-0{}T00:00:00Z", round + 1));
        registry.pusher().push_image("team/api", tag, &spec).await;
        for delay in delays_ms {
            let mut child = spawn();
            std::thread::sleep(Duration::from_millis(delay + 13 * round as u64));
            kill_9(&mut child);
            // Whatever the kill interrupted, the remote holds only whole commits.
            assert_remote_partial_is_whole(&repo);
        }
        let out = config
            .imagebump(["once"])
            .env("TEST_GIT_PASSWORD", HTTP_PASSWORD)
            .output();
        assert_eq!(out.status.code(), Some(0), "round {round}: {}", text(&out));
        assert_remote_complete_at_least(&repo, tag);
        for clone in config.clones() {
            if let Err(problems) = fsck(&clone) {
                panic!("round {round}: the clone is damaged after a restart:\n{problems}");
            }
        }
    }
}

/// Every imagebump commit on the remote changes exactly one app file.
fn assert_remote_partial_is_whole(repo: &BareRepo) {
    for (sha, subject, author) in repo.log("main") {
        if author != "bot@imagebump.test" {
            continue;
        }
        let files = git(repo.path(), &["show", "--format=", "--name-only", &sha]);
        assert_eq!(
            files.lines().count(),
            1,
            "commit {sha} ({subject}): {files}"
        );
        let file = files.trim();
        let content = git(repo.path(), &["show", &format!("{sha}:{file}")]);
        let to = subject.rsplit(' ').next().unwrap_or("");
        assert!(
            content.contains(&format!("tag: \"{to}\"")),
            "commit {sha} ({subject}) does not hold its change:\n{content}"
        );
    }
}

/// Every app file is at `tag` on the remote, and the history holds whole commits only.
fn assert_remote_complete_at_least(repo: &BareRepo, tag: &str) {
    for i in 0..APPS {
        let file = format!("apps/app{i:02}/values.yaml");
        let content = repo.show("main", &file);
        assert!(
            content.contains(&format!("tag: \"{tag}\"")),
            "{file} is not at {tag}:\n{content}"
        );
    }
    assert_remote_partial_is_whole(repo);
}
