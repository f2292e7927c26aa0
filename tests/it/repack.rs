//! Cache maintenance against real remotes (file:// and smart HTTP): a clone whose packs or
//! loose objects pile up is repacked into one pack right after a checkout, `git fsck --full`
//! (the real git) finds it whole, and later passes still commit and push. A repack that cannot
//! write leaves the clone as it was; a clone that has lost an object is cloned again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imagebump::git::{
    Author, CloneCache, Credential, CredentialRule, GitSettings, Maintenance, RepackBackoff,
    RepackCounts, RetryOptions, Secret, commit_and_push, commit_and_push_with,
};

use crate::support::config::ConfigDir;
use crate::support::git::{BareRepo, GitHttpServer, git};
use crate::support::imagebump::text;
use crate::support::registry::{ImageSpec, TestRegistry};

const PASSWORD: &str = "repack-pa55";

fn settings(credentials: Vec<CredentialRule>) -> GitSettings {
    GitSettings {
        author: Author {
            name: "imagebump".into(),
            email: "imagebump@example.com".into(),
        },
        credentials,
        accept_unknown_hosts: false,
        signing_key: None,
    }
}

fn retry() -> RetryOptions {
    RetryOptions {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("planner failed")]
struct PlanError;

/// One pass of the bot: sets `file` to `content` and pushes (one commit).
fn bot_pass(cache: &CloneCache, url: &str, file: &str, content: &str) {
    let report = commit_and_push(cache, url, "main", &retry(), |checkout| {
        let path = checkout.workdir().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        let made = checkout
            .commit(&[PathBuf::from(file)], &format!("bot: {file}"))
            .unwrap();
        Ok::<_, PlanError>(usize::from(made.is_some()))
    })
    .unwrap();
    assert!(report.pushed, "{file}: {content}");
}

/// `git fsck --full` in the clone: panics with git's own output when it finds a problem.
fn fsck(dir: &Path) {
    let output = Command::new("git")
        .args(["fsck", "--full", "--no-progress", "--strict"])
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "git fsck in {}: {said}",
        dir.display()
    );
    for line in said.lines() {
        assert!(
            line.starts_with("dangling ") || line.trim().is_empty(),
            "git fsck in {}: {said}",
            dir.display()
        );
    }
}

/// Packs and loose objects of the clone at `dir`, counted on disk.
fn on_disk(dir: &Path) -> (usize, usize) {
    let objects = dir.join(".git/objects");
    let packs = std::fs::read_dir(objects.join("pack"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .count();
    let mut loose = 0;
    for fanout in std::fs::read_dir(&objects).unwrap().flatten() {
        let name = fanout.file_name().to_string_lossy().to_string();
        if name.len() == 2 && fanout.path().is_dir() {
            loose += std::fs::read_dir(fanout.path()).unwrap().count();
        }
    }
    (packs, loose)
}

/// Passes of a bot and a human both committing pile up packs (one per fetch, one per round of
/// the bot's commits); past `max_packs` the next checkout leaves exactly one pack, the clone
/// is whole, and the passes after it still commit and push on top of the human's commits.
#[test]
fn packs_piled_up_by_passes_over_http_are_repacked_into_one() {
    let bare = BareRepo::with_files(
        "main",
        &[("README", "config\n"), ("app.yaml", "tag: init\n")],
    );
    let server = GitHttpServer::start(bare.root(), "tester", PASSWORD);
    let url = server.url("repo.git");
    let rule = CredentialRule {
        url_prefix: url.clone(),
        credential: Credential::UserPass {
            username: "tester".into(),
            password: Secret::new(PASSWORD),
        },
    };
    let work = tempfile::tempdir().unwrap();
    let limits = Maintenance {
        max_packs: 6,
        max_loose_objects: 5_000,
    };
    let cache =
        CloneCache::new(work.path().to_path_buf(), settings(vec![rule])).with_maintenance(limits);
    let dir = cache.dir_for(&url);
    let mut most = 0;
    let mut repacked_at = None;
    let mut commits = 1;
    for round in 0..8 {
        bare.push_files("main", &[(&format!("human-{round}.txt"), "h\n")], "human");
        bot_pass(&cache, &url, "app.yaml", &format!("tag: {round}\n"));
        commits += 2;
        let (packs, _) = on_disk(&dir);
        if packs < most && repacked_at.is_none() {
            repacked_at = Some(round);
        }
        most = most.max(packs);
        assert!(
            packs <= limits.max_packs + 2,
            "round {round}: {packs} packs"
        );
    }
    assert!(
        repacked_at.is_some(),
        "never repacked (at most {most} packs)"
    );
    // Piled past the limit again (maintenance off for a while), a checkout alone repacks: one
    // pack, nothing loose, git finds the clone whole, and its work tree is the remote head.
    let piling = cache.clone().with_maintenance(Maintenance::OFF);
    while on_disk(&dir).0 <= limits.max_packs {
        let packs = on_disk(&dir).0;
        bare.push_files("main", &[("human.txt", &format!("{packs}\n"))], "human");
        bot_pass(&piling, &url, "app.yaml", &format!("tag: x{packs}\n"));
        commits += 2;
    }
    let head = bare.push_files("main", &[("last.txt", "l\n")], "human");
    commits += 1;
    let checkout = cache.checkout(&url, "main").unwrap();
    assert_eq!(on_disk(&dir), (1, 0));
    assert_eq!(cache.census(&url).packs, 1);
    assert_eq!(checkout.head().unwrap().to_string(), head);
    assert_eq!(
        std::fs::read_to_string(dir.join("last.txt")).unwrap(),
        "l\n"
    );
    drop(checkout);
    fsck(&dir);
    // Later passes build on the repacked clone.
    for round in 0..3 {
        bot_pass(&cache, &url, "app.yaml", &format!("tag: after-{round}\n"));
    }
    assert_eq!(bare.show("main", "app.yaml"), "tag: after-2");
    assert_eq!(bare.show("main", "last.txt"), "l");
    assert_eq!(
        bare.log("main").len(),
        commits + 3,
        "every commit of both writers is kept"
    );
    fsck(&dir);
    assert_eq!(
        git(&dir, &["rev-parse", "HEAD"]),
        bare.head("main").unwrap()
    );
}

/// A round of many commits in a large directory writes its trees out as loose objects as it
/// goes; past `max_loose_objects` the next checkout packs them with the rest and deletes them.
#[test]
fn loose_objects_of_a_large_round_over_file_are_packed_and_deleted() {
    let files: Vec<(String, String)> = (0..400)
        .map(|i| (format!("apps/a{i:03}.yaml"), "v: 0\n".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let bare = BareRepo::with_files("main", &refs);
    let url = bare.file_url();
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), settings(vec![])).with_maintenance(
        Maintenance {
            max_packs: 50,
            max_loose_objects: 20,
        },
    );
    let dir = cache.dir_for(&url);
    let report = commit_and_push_with(&cache, &url, "main", &retry(), |checkout, memory| {
        for i in 0..300 {
            let file = PathBuf::from(format!("apps/a{i:03}.yaml"));
            std::fs::write(checkout.workdir().join(&file), "v: 1\n").unwrap();
            checkout.commit(&[file], &format!("app {i}")).unwrap();
            memory.persist_if_large();
        }
        Ok::<_, PlanError>(300)
    })
    .unwrap();
    assert!(report.pushed);
    let (_, loose) = on_disk(&dir);
    assert!(loose > 20, "the round wrote {loose} loose objects");
    let checkout = cache.checkout(&url, "main").unwrap();
    assert_eq!(on_disk(&dir), (1, 0));
    assert_eq!(
        checkout.head().unwrap().to_string(),
        bare.head("main").unwrap()
    );
    drop(checkout);
    fsck(&dir);
    bot_pass(&cache, &url, "apps/a399.yaml", "v: 2\n");
    assert_eq!(bare.log("main").len(), 302);
    assert_eq!(bare.show("main", "apps/a150.yaml"), "v: 1");
    assert_eq!(bare.show("main", "apps/a399.yaml"), "v: 2");
    fsck(&dir);
}

/// Makes `dir` unwritable for this process (root too: the immutable attribute) until dropped.
pub(crate) struct Unwritable(PathBuf);

impl Unwritable {
    pub(crate) fn new(dir: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let guard = Unwritable(dir.to_path_buf());
        if std::fs::write(dir.join("probe"), b"").is_ok() {
            std::fs::remove_file(dir.join("probe")).unwrap();
            // Root ignores modes: `chattr +i` stops it.
            let status = Command::new("chattr").arg("+i").arg(dir).status();
            assert!(
                status.is_ok_and(|s| s.success())
                    && std::fs::write(dir.join("probe"), b"").is_err(),
                "cannot make {} unwritable here (neither its mode nor chattr +i)",
                dir.display()
            );
        }
        guard
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

/// A repack that cannot install its pack (the pack directory is not writable) fails the
/// checkout of nothing: the old packs stay, the clone reads and git finds it whole. Regression:
/// the next checkout tried the whole repack again, and every one after it (every poll, every
/// webhook) while it kept failing. Now the clone is left alone for its backoff (the next
/// checkout, with the directory writable again, does not repack), and once the backoff has
/// passed the next checkout repacks and passes go on.
#[test]
fn a_repack_that_cannot_write_leaves_the_clone_usable_and_is_not_retried_within_its_backoff() {
    let bare = BareRepo::with_files(
        "main",
        &[("README", "config\n"), ("app.yaml", "tag: init\n")],
    );
    let url = bare.file_url();
    let work = tempfile::tempdir().unwrap();
    let piling = CloneCache::new(work.path().to_path_buf(), settings(vec![]))
        .with_maintenance(Maintenance::OFF);
    let dir = piling.dir_for(&url);
    for round in 0..4 {
        bare.push_files("main", &[("human.txt", &format!("{round}\n"))], "human");
        bot_pass(&piling, &url, "app.yaml", &format!("tag: {round}\n"));
    }
    let (packs, _) = on_disk(&dir);
    assert!(packs >= 5, "{packs} packs");
    // A backoff no test outlasts: the second checkout below falls within it, whatever the load.
    let cache = piling
        .clone()
        .with_maintenance(Maintenance {
            max_packs: 2,
            max_loose_objects: 5_000,
        })
        .with_repack_backoff(RepackBackoff {
            first: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        });
    {
        let _unwritable = Unwritable::new(&dir.join(".git/objects/pack"));
        let checkout = cache.checkout(&url, "main").unwrap();
        let head = checkout.head().unwrap();
        assert_eq!(head.to_string(), bare.head("main").unwrap());
        assert_eq!(
            checkout
                .file_at(head, Path::new("app.yaml"))
                .unwrap()
                .unwrap(),
            b"tag: 3\n" as &[u8]
        );
        assert_eq!(on_disk(&dir), (packs, 0), "nothing was deleted");
        assert!(!dir.join(".git/imagebump-repack").exists());
    }
    assert_eq!(
        cache.repacks(),
        RepackCounts {
            failed: 1,
            ..RepackCounts::default()
        }
    );
    fsck(&dir);
    assert!(
        !dir.join(".git/imagebump-rebuild").exists(),
        "not marked for rebuild"
    );
    // Within the backoff: the pass works, and no repack is tried although it would succeed now.
    bare.push_files("main", &[("human.txt", "again\n")], "human");
    bot_pass(&cache, &url, "app.yaml", "tag: within\n");
    assert_eq!(bare.show("main", "app.yaml"), "tag: within");
    let (packs_within, _) = on_disk(&dir);
    assert!(
        packs_within > packs,
        "repacked within the backoff: {packs_within} packs (had {packs})"
    );
    assert_eq!(
        cache.repacks(),
        RepackCounts {
            failed: 1,
            skipped_backoff: 1,
            ..RepackCounts::default()
        }
    );
    // The backoff has passed (the same record of failures, measured against a backoff of 0).
    let passed = cache.clone().with_repack_backoff(RepackBackoff {
        first: Duration::ZERO,
        max: Duration::ZERO,
    });
    bot_pass(&passed, &url, "app.yaml", "tag: after\n");
    assert_eq!(bare.show("main", "app.yaml"), "tag: after");
    let (packs_after, _) = on_disk(&dir);
    assert!(
        packs_after <= 2,
        "{packs_after} packs after the repack that could write"
    );
    assert_eq!(
        cache.repacks(),
        RepackCounts {
            repacked: 1,
            failed: 1,
            skipped_backoff: 1,
        }
    );
    fsck(&dir);
    // A success forgets the failure: past the limit again, the next checkout repacks at once.
    for round in 0..3 {
        bot_pass(&piling, &url, "app.yaml", &format!("tag: piled-{round}\n"));
    }
    assert!(on_disk(&dir).0 > 2);
    drop(cache.checkout(&url, "main").unwrap());
    assert_eq!(on_disk(&dir), (1, 0));
    assert_eq!(cache.repacks().repacked, 2);
    fsck(&dir);
}

/// Regression: the failures of a clone's repacks were kept in memory only, so a restarted
/// process (a new pod, a crash loop) tried the repack again at once; one that had killed the
/// process (out of memory) would kill every restart. Now each attempt is written down in the
/// clone before it starts (as the failure it becomes if it never returns) and cleared by its
/// success: a new cache over the same clones waits out the backoff, and once it has passed,
/// repacks and forgets.
#[test]
fn a_repack_that_failed_in_an_earlier_process_waits_out_its_backoff_after_a_restart() {
    let bare = BareRepo::with_files("main", &[("app.yaml", "tag: init\n")]);
    let url = bare.file_url();
    let work = tempfile::tempdir().unwrap();
    let limits = Maintenance {
        max_packs: 2,
        max_loose_objects: 5_000,
    };
    let hour = RepackBackoff {
        first: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
    };
    let new_process = || {
        CloneCache::new(work.path().to_path_buf(), settings(vec![]))
            .with_maintenance(limits)
            .with_repack_backoff(hour)
    };
    let piling = CloneCache::new(work.path().to_path_buf(), settings(vec![]))
        .with_maintenance(Maintenance::OFF);
    let dir = piling.dir_for(&url);
    for round in 0..4 {
        bot_pass(&piling, &url, "app.yaml", &format!("tag: {round}\n"));
    }
    let (packs, _) = on_disk(&dir);
    assert!(packs > 2, "{packs} packs");
    {
        let first = new_process();
        let _unwritable = Unwritable::new(&dir.join(".git/objects/pack"));
        drop(first.checkout(&url, "main").unwrap());
        assert_eq!(first.repacks().failed, 1);
    }
    // The next process, the directory writable again: within the backoff, no repack.
    let second = new_process();
    bot_pass(&second, &url, "app.yaml", "tag: restarted\n");
    assert_eq!(bare.show("main", "app.yaml"), "tag: restarted");
    assert_eq!(
        second.repacks(),
        RepackCounts {
            skipped_backoff: 1,
            ..RepackCounts::default()
        }
    );
    assert!(on_disk(&dir).0 > packs, "repacked within the backoff");
    // Past it (a backoff of 0 for the same written record), the next process repacks, and
    // the one after it owes nothing.
    let third = new_process().with_repack_backoff(RepackBackoff {
        first: Duration::ZERO,
        max: Duration::ZERO,
    });
    drop(third.checkout(&url, "main").unwrap());
    assert_eq!(third.repacks().repacked, 1);
    assert_eq!(on_disk(&dir), (1, 0));
    for round in 0..3 {
        bot_pass(&piling, &url, "app.yaml", &format!("tag: piled-{round}\n"));
    }
    let fourth = new_process();
    drop(fourth.checkout(&url, "main").unwrap());
    assert_eq!(
        fourth.repacks().repacked,
        1,
        "a success is forgotten on disk too"
    );
    fsck(&dir);
}

/// A clone that lost an object one of its refs reaches (a disk problem) is found out by the
/// repack, which deletes nothing, and is cloned again at once.
#[test]
fn a_clone_that_lost_an_object_is_cloned_again_instead_of_repacked() {
    let bare = BareRepo::with_files(
        "main",
        &[("README", "config\n"), ("app.yaml", "tag: init\n")],
    );
    let url = bare.file_url();
    let work = tempfile::tempdir().unwrap();
    let piling = CloneCache::new(work.path().to_path_buf(), settings(vec![]))
        .with_maintenance(Maintenance::OFF);
    let dir = piling.dir_for(&url);
    for round in 0..3 {
        bot_pass(&piling, &url, "app.yaml", &format!("tag: {round}\n"));
    }
    // A commit of imagebump's own outgoing ref whose blob is a loose object, then lost.
    std::fs::write(dir.join("lost.txt"), "lost\n").unwrap();
    let blob = git(&dir, &["hash-object", "-w", "lost.txt"]);
    std::fs::remove_file(dir.join("lost.txt")).unwrap();
    let tree = {
        let mut child = Command::new("git")
            .args(["mktree"])
            .current_dir(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        writeln!(child.stdin.take().unwrap(), "100644 blob {blob}\tlost.txt").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let commit = git(
        &dir,
        &["commit-tree", &tree, "-p", "HEAD", "-m", "outgoing"],
    );
    git(&dir, &["update-ref", "refs/imagebump/outgoing", &commit]);
    std::fs::remove_file(dir.join(".git/objects").join(&blob[..2]).join(&blob[2..])).unwrap();

    let cache = piling.clone().with_maintenance(Maintenance {
        max_packs: 0,
        max_loose_objects: 0,
    });
    let checkout = cache.checkout(&url, "main").unwrap();
    assert_eq!(
        checkout.head().unwrap().to_string(),
        bare.head("main").unwrap()
    );
    drop(checkout);
    // Cloned again: the lost object's ref is gone, and the fresh clone was repacked.
    assert!(git(&dir, &["for-each-ref", "refs/imagebump/"]).is_empty());
    assert_eq!(on_disk(&dir), (1, 0));
    fsck(&dir);
    bot_pass(&cache, &url, "app.yaml", "tag: after\n");
    assert_eq!(bare.show("main", "app.yaml"), "tag: after");
    fsck(&dir);
}

/// `git pack-objects` in `dir`, given `input` on stdin: writes one pack of the objects named.
fn pack_objects(dir: &Path, input: &str) {
    use std::io::Write as _;
    let mut child = Command::new("git")
        .args(["pack-objects", "-q", ".git/objects/pack/pack"])
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "git pack-objects: {out:?}");
}

/// Adds `count` packs to the clone at `dir`, one small blob each (as `count` fetches would).
pub(crate) fn pile_packs(dir: &Path, count: usize) {
    let scratch = tempfile::tempdir().unwrap();
    for i in 0..count {
        let file = scratch.path().join(format!("blob-{i}"));
        std::fs::write(&file, format!("piled {i}\n")).unwrap();
        let blob = git(dir, &["hash-object", "-w", file.to_str().unwrap()]);
        pack_objects(dir, &format!("{blob}\n"));
    }
}

/// The file names in the clone's `objects/pack`, sorted.
fn pack_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(".git/objects/pack"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

/// A registry with `team/api:1.1.0`, a config repo deploying 1.0.0 and the app `shop` on it
/// (`^1`: one update to make), with the usual global file.
async fn shop() -> (TestRegistry, BareRepo, ConfigDir) {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    registry
        .pusher()
        .push_image("team/api", "1.1.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await;
    let repo = BareRepo::with_files(
        "main",
        &[(
            "values.yaml",
            &format!("api:\n  image:\n    repository: {host}/team/api\n    tag: 1.0.0\n"),
        )],
    );
    let app = format!(
        "name: shop\nrepo: {}\nbranch: main\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - file: values.yaml\n        path: api.image.tag\n",
        repo.file_url()
    );
    let setup = ConfigDir::new(&host, "").app("shop", &app);
    (registry, repo, setup)
}

/// `imagebump ARGS...` on `setup`, which must exit 0.
fn run(setup: &ConfigDir, args: &[&str]) {
    let out = setup.imagebump(args).output();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
}

/// `imagebump explain` and `once --dry-run` only read: over a clone past the pack limit (the
/// default 50) they leave its packs as they are; a pass that writes repacks it. Regression:
/// both repacked it (they check the clone out as a pass does).
#[tokio::test(flavor = "multi_thread")]
async fn explain_and_a_dry_run_leave_a_clone_past_the_limits_as_it_is_and_a_pass_repacks_it() {
    let (_registry, repo, setup) = shop().await;
    tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| run(&setup, args);
        run(&["once", "--dry-run"]);
        let clones = setup.clones();
        assert_eq!(clones.len(), 1, "{clones:?}");
        let dir = &clones[0];
        let cloned = pack_files(dir);
        pile_packs(dir, 51);
        let piled = pack_files(dir);
        assert!(on_disk(dir).0 > 50, "{piled:?}");
        for args in [
            &["once", "--dry-run"][..],
            &["once", "--dry-run", "--output", "json"],
            &["explain", "shop"],
        ] {
            run(args);
            let now = pack_files(dir);
            assert!(
                now == piled,
                "{args:?} changed the packs: {} files, had {}",
                now.len(),
                piled.len()
            );
        }
        assert_eq!(
            repo.show("main", "values.yaml").lines().last(),
            Some("    tag: 1.0.0")
        );
        run(&["once"]);
        let left = pack_files(dir);
        assert!(
            !left
                .iter()
                .any(|name| piled.contains(name) && !cloned.contains(name))
                && on_disk(dir).0 <= 2,
            "a pass that writes did not repack: {left:?}"
        );
        assert_eq!(
            repo.show("main", "values.yaml").lines().last(),
            Some("    tag: 1.1.0")
        );
        fsck(dir);
    })
    .await
    .unwrap();
}

/// `git.maintenance` in the global file is what the passes repack by: `max_packs: 3` repacks
/// a clone of 5 packs (the default, 50, would not), and `{max_packs: 0, max_loose_objects: 0}`
/// leaves a clone past the default limit as it is.
#[tokio::test(flavor = "multi_thread")]
async fn git_maintenance_in_the_global_file_sets_when_a_pass_repacks() {
    let (_registry, repo, setup) = shop().await;
    tokio::task::spawn_blocking(move || {
        let maintenance = |limits: &str| {
            setup.edit_global(|text| {
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|line| !line.starts_with("  maintenance:"))
                    .collect();
                kept.join("\n")
                    .replace("git:\n", &format!("git:\n  maintenance: {limits}\n"))
                    + "\n"
            });
        };
        maintenance("{max_packs: 3}");
        run(&setup, &["once", "--dry-run"]);
        let dir = &setup.clones()[0];
        let cloned = pack_files(dir);
        pile_packs(dir, 4);
        assert_eq!(on_disk(dir).0, 5);
        let piled = pack_files(dir);
        run(&setup, &["once"]);
        assert_eq!(
            repo.show("main", "values.yaml").lines().last(),
            Some("    tag: 1.1.0")
        );
        let left = pack_files(dir);
        assert!(
            !left
                .iter()
                .any(|name| piled.contains(name) && !cloned.contains(name)),
            "max_packs: 3 did not repack 5 packs: {left:?}"
        );

        maintenance("{max_packs: 0, max_loose_objects: 0}");
        pile_packs(dir, 55);
        let piled = pack_files(dir);
        assert!(on_disk(dir).0 > 55);
        run(&setup, &["once"]);
        let left = pack_files(dir);
        assert!(
            piled.iter().all(|name| left.contains(name)),
            "repacked although git.maintenance is off: {} files left of {}",
            left.len(),
            piled.len()
        );
        fsck(dir);
    })
    .await
    .unwrap();
}
