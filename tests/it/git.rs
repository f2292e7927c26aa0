//! `git` against real remotes: bare repos over file://, smart HTTP (git http-backend behind
//! basic auth) and SSH (a private sshd with a generated host key and user key).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use imagebump::git::{
    Author, Checkout, CloneCache, Credential, CredentialRule, GitError, GitSettings, LeaseOutcome,
    Oid, PushOutcome, RetryOptions, Secret, WriteBackError, commit_and_push, commit_and_push_with,
};

use crate::support::git::{BareRepo, GitHttpServer, KEY_PASSPHRASE, SshServer};

const BOT_EMAIL: &str = "imagebump@example.com";
const PASSWORD: &str = "pa55-w0rd-xyz";

fn settings(credentials: Vec<CredentialRule>) -> GitSettings {
    GitSettings {
        author: Author {
            name: "imagebump".into(),
            email: BOT_EMAIL.into(),
        },
        credentials,
        accept_unknown_hosts: false,
        signing_key: None,
    }
}

fn userpass(prefix: &str, password: &str) -> CredentialRule {
    CredentialRule {
        url_prefix: prefix.into(),
        credential: Credential::UserPass {
            username: "tester".into(),
            password: Secret::new(password),
        },
    }
}

fn ssh_rule(prefix: &str, key_file: PathBuf, known_hosts_file: PathBuf) -> CredentialRule {
    CredentialRule {
        url_prefix: prefix.into(),
        credential: Credential::SshKey {
            key_file,
            passphrase: None,
            known_hosts_file,
        },
    }
}

fn fast_retry(max_attempts: u32) -> RetryOptions {
    RetryOptions {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

fn write(checkout: &Checkout, file: &str, content: &str) -> PathBuf {
    let path = checkout.workdir().join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    PathBuf::from(file)
}

/// A clone cache with the default settings in a new temporary directory (removed when the
/// returned guard drops).
fn clone_cache() -> (tempfile::TempDir, CloneCache) {
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), settings(vec![]));
    (work, cache)
}

fn read(checkout: &Checkout, file: &str) -> String {
    std::fs::read_to_string(checkout.workdir().join(file)).unwrap()
}

/// Clone, edit, commit (twice: the second has nothing to commit), push, and check the remote.
fn round_trip(url: &str, settings: GitSettings, bare: &BareRepo) {
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), settings);
    let checkout = cache.checkout(url, "main").unwrap();
    assert_eq!(read(&checkout, "app.yaml"), "tag: 1.0.0\n");
    assert_eq!(
        checkout.head().unwrap().to_string(),
        bare.head("main").unwrap()
    );

    let file = write(&checkout, "app.yaml", "tag: 1.1.0\n");
    let commit = checkout
        .commit(std::slice::from_ref(&file), "bump app to 1.1.0")
        .unwrap();
    let commit = commit.expect("a change was committed");
    assert_eq!(checkout.commit(&[file], "again").unwrap(), None);

    let outcome = checkout.push().unwrap();
    assert_eq!(outcome, PushOutcome::Pushed { head: commit });
    assert_eq!(bare.head("main").unwrap(), commit.to_string());
    assert_eq!(bare.show("main", "app.yaml"), "tag: 1.1.0");
    let log = bare.log("main");
    assert_eq!(log[0].1, "bump app to 1.1.0");
    assert_eq!(log[0].2, BOT_EMAIL);
    assert_eq!(log.len(), 2);
    assert!(!bare.any_forced_update("main"));
}

fn seeded() -> BareRepo {
    BareRepo::with_files(
        "main",
        &[("app.yaml", "tag: 1.0.0\n"), ("README", "config\n")],
    )
}

#[test]
fn file_remote_round_trip() {
    let bare = seeded();
    round_trip(&bare.file_url(), settings(vec![]), &bare);
    // libgit2 writes file:// refs directly: the reflog still sees the update.
    assert_eq!(bare.ref_updates("main"), 2);
}

#[test]
fn fetches_only_the_configured_branch() {
    let bare = seeded();
    bare.push_files_from("main", "feature", &[("x", "1")], "other branch");
    let (_work, cache) = clone_cache();
    let checkout = cache.checkout(&bare.file_url(), "main").unwrap();
    let repo = git2::Repository::open(checkout.workdir()).unwrap();
    assert!(repo.find_reference("refs/remotes/origin/main").is_ok());
    assert!(repo.find_reference("refs/remotes/origin/feature").is_err());
    assert!(repo.find_reference("refs/heads/feature").is_err());
}

#[test]
fn missing_branch_is_a_clear_error() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let err = cache.checkout(&bare.file_url(), "nope").unwrap_err();
    assert!(matches!(err, GitError::BranchNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("`nope`"), "{err}");
}

#[test]
fn stale_local_state_is_discarded() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let url = bare.file_url();
    let first = cache.checkout(&url, "main").unwrap();
    let dir = first.workdir().to_path_buf();
    // Leftovers of a crashed pass: a local unpushed commit, an edit, an untracked file.
    let file = write(&first, "app.yaml", "tag: 9.9.9\n");
    first.commit(&[file], "never pushed").unwrap().unwrap();
    write(&first, "README", "edited\n");
    write(&first, "junk/untracked.txt", "x");
    drop(first);
    let theirs = bare.push_files("main", &[("other.yaml", "a: 1\n")], "human change");

    let second = cache.checkout(&url, "main").unwrap();
    assert_eq!(second.workdir(), dir, "the clone is reused");
    assert_eq!(second.head().unwrap().to_string(), theirs);
    assert_eq!(read(&second, "app.yaml"), "tag: 1.0.0\n");
    assert_eq!(read(&second, "README"), "config\n");
    assert_eq!(read(&second, "other.yaml"), "a: 1\n");
    assert!(!dir.join("junk/untracked.txt").exists());
    assert!(!dir.join("junk").exists());
}

/// Regression: after the bot's own pushed commits, the next checkout left the index without
/// stat data for the files they changed (their content was already right, so the reset did not
/// write them, and rebuilt their entries from the tree), and every later checkout hashed those
/// files again: 1,000 files per pass after a round of 1,000 commits.
#[test]
fn after_the_bots_own_commits_the_index_knows_the_files_stat_again() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let url = bare.file_url();
    let first = cache.checkout(&url, "main").unwrap();
    let files = ["app.yaml", "apps/api/values.yaml"];
    for file in files {
        write_by_rename(&first, file, "tag: 1.1.0\n");
    }
    let paths: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    first.commit(&paths, "bump").unwrap().unwrap();
    assert!(matches!(first.push().unwrap(), PushOutcome::Pushed { .. }));
    drop(first);

    let second = cache.checkout(&url, "main").unwrap();
    let repo = git2::Repository::open(second.workdir()).unwrap();
    let index = repo.index().unwrap();
    let unknown: Vec<String> = index
        .iter()
        .filter(|entry| entry.ino == 0 && entry.mtime.seconds() == 0)
        .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
        .collect();
    assert!(unknown.is_empty(), "entries without stat data: {unknown:?}");
    for file in files {
        assert_eq!(read(&second, file), "tag: 1.1.0\n");
    }
    let status = repo.statuses(None).unwrap();
    assert!(status.is_empty(), "the work tree is the pushed head");
}

/// As the engine writes a file: to a temporary file, renamed over it.
fn write_by_rename(checkout: &Checkout, file: &str, content: &str) {
    let path = checkout.workdir().join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, content).unwrap();
    std::fs::rename(&temporary, &path).unwrap();
}

/// The checkout keeps the stat data of the files it committed, to spare the next reset from
/// hashing them. A file written again after its commit (same size, by rename as the engine
/// writes, or in place) and a commit that never reached the remote must still leave the work
/// tree exactly at the remote head after the next checkout.
#[test]
fn a_committed_file_written_again_or_never_pushed_is_reset_to_the_remote_head() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let url = bare.file_url();
    let first = cache.checkout(&url, "main").unwrap();
    write_by_rename(&first, "app.yaml", "tag: 1.1.0\n");
    write_by_rename(&first, "README", "config, changed\n");
    let paths = [PathBuf::from("app.yaml"), PathBuf::from("README")];
    first.commit(&paths, "bump").unwrap().unwrap();
    // Written again after the commit, not committed: by rename at the same size (a new
    // inode), and in place at another size.
    write_by_rename(&first, "app.yaml", "tag: 9.9.9\n");
    std::fs::write(first.workdir().join("README"), "config, changed again\n").unwrap();
    assert!(matches!(first.push().unwrap(), PushOutcome::Pushed { .. }));
    drop(first);

    let second = cache.checkout(&url, "main").unwrap();
    assert_eq!(read(&second, "app.yaml"), "tag: 1.1.0\n");
    assert_eq!(read(&second, "README"), "config, changed\n");
    let repo = git2::Repository::open(second.workdir()).unwrap();
    assert!(repo.statuses(None).unwrap().is_empty());
    // A commit that is never pushed: the next checkout is the remote head again.
    write_by_rename(&second, "app.yaml", "tag: 1.2.0\n");
    second
        .commit(&[PathBuf::from("app.yaml")], "bump")
        .unwrap()
        .unwrap();
    drop(second);
    let third = cache.checkout(&url, "main").unwrap();
    assert_eq!(read(&third, "app.yaml"), "tag: 1.1.0\n");
    assert_eq!(
        third.head().unwrap().to_string(),
        bare.head("main").unwrap()
    );
    assert!(repo.statuses(None).unwrap().is_empty());
}

/// Regression: `kill -9` during a fetch or commit leaves git's own lock files (`*.lock` next to a
/// ref, the index, packed-refs) in the clone; the next pass failed with "failed to lock file
/// ... for writing" for every app of the repository, forever. They are stale by construction
/// (the clone's OS lock is ours) and are removed.
#[test]
fn git_lock_files_left_by_a_killed_process_do_not_block_the_next_pass() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let url = bare.file_url();
    let dir = cache
        .checkout(&url, "main")
        .unwrap()
        .workdir()
        .to_path_buf();
    // Killed during the first fetch: the tracking ref was never written, its lock file was.
    crate::support::git::git(&dir, &["update-ref", "-d", "refs/remotes/origin/main"]);
    for stale in [
        ".git/refs/remotes/origin/main.lock",
        ".git/refs/heads/main.lock",
        ".git/index.lock",
        ".git/packed-refs.lock",
        ".git/HEAD.lock",
    ] {
        std::fs::create_dir_all(dir.join(stale).parent().unwrap()).unwrap();
        std::fs::write(dir.join(stale), "").unwrap();
    }
    let theirs = bare.push_files("main", &[("other.yaml", "a: 1\n")], "human change");
    let checkout = cache.checkout(&url, "main").unwrap();
    assert_eq!(checkout.head().unwrap().to_string(), theirs);
    let file = write(&checkout, "app.yaml", "tag: 1.1.0\n");
    checkout
        .commit(std::slice::from_ref(&file), "bump")
        .unwrap()
        .expect("a change was committed");
    assert!(!dir.join(".git/index.lock").exists());
}

#[test]
fn a_broken_cache_dir_is_recreated() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let dir = cache.dir_for(&bare.file_url());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("garbage"), "not a repo").unwrap();
    let checkout = cache.checkout(&bare.file_url(), "main").unwrap();
    assert_eq!(read(&checkout, "app.yaml"), "tag: 1.0.0\n");
    assert!(!dir.join("garbage").exists());
}

#[test]
fn cache_dirs_are_per_url_and_readable() {
    let cache = CloneCache::new(PathBuf::from("/cache"), settings(vec![]));
    let a = cache.dir_for("https://github.com/acme/shop-config.git");
    let b = cache.dir_for("https://gitlab.com/acme/shop-config.git");
    assert_ne!(a, b);
    assert!(a.to_string_lossy().ends_with("-shop-config"), "{a:?}");
    assert_eq!(a.parent(), Some(Path::new("/cache")));
    // Userinfo does not change the directory (and never appears in it).
    assert_eq!(
        cache.dir_for("https://x:token@github.com/acme/shop-config.git"),
        a
    );
}

/// The remote moved between our fetch and our push: the push must be reported as rejected.
fn check_rejection_detected(url: &str, settings: GitSettings, bare: &BareRepo) {
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), settings);
    let checkout = cache.checkout(url, "main").unwrap();
    let theirs = bare.push_files("main", &[("human.txt", "hi\n")], "human");
    let file = write(&checkout, "app.yaml", "tag: 2.0.0\n");
    checkout.commit(&[file], "ours").unwrap().unwrap();
    let outcome = checkout.push().unwrap();
    assert!(
        matches!(outcome, PushOutcome::Rejected { ref reason } if reason.contains("refs/heads/main")),
        "{outcome:?}"
    );
    assert_eq!(bare.head("main").unwrap(), theirs, "their commit survives");
}

#[test]
fn file_push_rejection_is_detected() {
    let bare = seeded();
    check_rejection_detected(&bare.file_url(), settings(vec![]), &bare);
}

#[test]
fn http_push_rejection_is_detected() {
    let bare = seeded();
    let server = GitHttpServer::start(bare.root(), "tester", PASSWORD);
    let url = server.url("repo.git");
    check_rejection_detected(&url, settings(vec![userpass(&url, PASSWORD)]), &bare);
}

#[test]
fn http_hook_refusal_is_a_rejection_not_success() {
    // Remote::push returns Ok here; only the per-ref status tells the truth.
    let bare = seeded();
    bare.refuse_pushes();
    let server = GitHttpServer::start(bare.root(), "tester", PASSWORD);
    let url = server.url("repo.git");
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(
        work.path().to_path_buf(),
        settings(vec![userpass(&url, PASSWORD)]),
    );
    let checkout = cache.checkout(&url, "main").unwrap();
    let before = bare.head("main").unwrap();
    let file = write(&checkout, "app.yaml", "tag: 2.0.0\n");
    checkout.commit(&[file], "ours").unwrap().unwrap();
    let outcome = checkout.push().unwrap();
    assert!(
        matches!(outcome, PushOutcome::Refused { ref reason } if reason.contains("refs/heads/main") && reason.contains("branch is protected")),
        "{outcome:?}"
    );
    assert_eq!(bare.head("main").unwrap(), before);
}

#[test]
fn http_round_trip_with_basic_auth() {
    let bare = seeded();
    let server = GitHttpServer::start(bare.root(), "tester", PASSWORD);
    let url = server.url("repo.git");
    let prefix = url.trim_end_matches("repo.git").to_string();
    // A longer, more specific rule wins over the generic one with a wrong password.
    let rules = vec![
        userpass("http://127.0.0.1", "wrong"),
        userpass(&prefix, PASSWORD),
    ];
    round_trip(&url, settings(rules), &bare);
    assert_eq!(
        bare.hook_pushes(),
        2,
        "seed push + our push, counted by the hook"
    );
    assert_eq!(server.receive_packs(), 1);
}

#[test]
fn http_wrong_password_is_a_clear_error_without_the_secret() {
    let bare = seeded();
    let server = GitHttpServer::start(bare.root(), "tester", PASSWORD);
    let url = server.url("repo.git");
    let wrong = "wr0ng-s3cret-value";
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(
        work.path().to_path_buf(),
        settings(vec![userpass(&url, wrong)]),
    );
    // Userinfo in the URL must not show up in the message either.
    let url_with_userinfo = url.replace("http://", &format!("http://tester:{wrong}@"));
    for target in [&url, &url_with_userinfo] {
        let err = cache.checkout(target, "main").unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
        assert!(message.contains("authentication failed for"), "{message}");
        assert!(message.contains(&url), "{message}");
        assert!(!message.contains(wrong), "{message}");
        assert!(!format!("{err:?}").contains(wrong));
    }
}

#[test]
fn http_without_credentials_names_the_missing_config() {
    let bare = seeded();
    let server = GitHttpServer::start(bare.root(), "tester", PASSWORD);
    let url = server.url("repo.git");
    let (_work, cache) = clone_cache();
    let err = cache.checkout(&url, "main").unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("no `git.credentials` entry matches"),
        "{err}"
    );
}

#[test]
fn ssh_known_host_round_trip() {
    let bare = seeded();
    let sshd = SshServer::start();
    let url = sshd.url(bare.path());
    let rules = vec![ssh_rule("ssh://", sshd.user_key(), sshd.known_hosts())];
    round_trip(&url, settings(rules), &bare);
    assert_eq!(bare.hook_pushes(), 2);
}

#[test]
fn ssh_unknown_host_is_rejected_by_default() {
    let bare = seeded();
    let sshd = SshServer::start();
    let url = sshd.url(bare.path());
    let known_hosts = sshd.unrelated_known_hosts();
    let work = tempfile::tempdir().unwrap();
    let rules = vec![ssh_rule("ssh://", sshd.user_key(), known_hosts.clone())];
    let cache = CloneCache::new(work.path().to_path_buf(), settings(rules.clone()));
    let err = cache.checkout(&url, "main").unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, GitError::HostKey { .. }), "{err:?}");
    assert!(
        message.contains(&format!("unknown host [127.0.0.1]:{}", sshd.port())),
        "{message}"
    );
    assert!(
        message.contains(&known_hosts.display().to_string()),
        "{message}"
    );

    // Opting in to unknown hosts lets it through.
    let mut lenient = settings(rules);
    lenient.accept_unknown_hosts = true;
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), lenient);
    assert!(cache.checkout(&url, "main").is_ok());
}

#[test]
fn ssh_changed_host_key_is_rejected_even_when_unknown_hosts_are_accepted() {
    let bare = seeded();
    let sshd = SshServer::start();
    let url = sshd.url(bare.path());
    let mut lenient = settings(vec![ssh_rule(
        "ssh://",
        sshd.user_key(),
        sshd.wrong_known_hosts(),
    )]);
    lenient.accept_unknown_hosts = true;
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), lenient);
    let err = cache.checkout(&url, "main").unwrap_err();
    assert!(matches!(err, GitError::HostKey { .. }), "{err:?}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn ssh_wrong_user_key_is_an_auth_error() {
    let bare = seeded();
    let sshd = SshServer::start();
    let url = sshd.url(bare.path());
    let rules = vec![ssh_rule("ssh://", sshd.other_key(), sshd.known_hosts())];
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), settings(rules));
    let err = cache.checkout(&url, "main").unwrap_err();
    assert!(
        matches!(err, GitError::Auth { .. }),
        "{err:?} / {}",
        sshd.log()
    );
    assert!(
        err.to_string().contains("authentication failed for"),
        "{err}"
    );
}

#[derive(Debug, thiserror::Error)]
#[error("planner failed")]
struct PlanError;

/// Appends `line` to `ours.txt` unless it is already there; commits. Returns commits made.
fn append_line(checkout: &Checkout, line: &str) -> Result<usize, PlanError> {
    let path = checkout.workdir().join("ours.txt");
    let mut content = std::fs::read_to_string(&path).unwrap_or_default();
    if content.lines().any(|l| l == line) {
        return Ok(0);
    }
    content.push_str(line);
    content.push('\n');
    std::fs::write(&path, content).unwrap();
    let made = checkout
        .commit(&[PathBuf::from("ours.txt")], &format!("imagebump: {line}"))
        .unwrap();
    Ok(usize::from(made.is_some()))
}

/// Loose objects (`objects/xx/yyyy…`) under `dir`, at any depth.
fn loose_objects(dir: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if name.len() == 38
                && dir.file_name().is_some_and(|d| d.len() == 2)
                && dir.parent().is_some_and(|p| p.ends_with("objects"))
            {
                count += 1;
            }
        }
    }
    count
}

/// A round of many commits in a large directory (300 commits rewriting a 400-entry tree:
/// 120,000 tree entries) writes its objects out between commits instead of holding them all in
/// memory (issue 18): every commit and file still reaches the remote, and the next round reads
/// them back from the clone.
#[test]
fn a_round_of_many_commits_writes_its_objects_out_as_it_goes() {
    let files: Vec<(String, String)> = (0..400)
        .map(|i| (format!("apps/a{i:03}.yaml"), "v: 0\n".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let bare = BareRepo::with_files("main", &refs);
    let (work, cache) = clone_cache();
    let (packs_before, loose_before) = (pack_files(bare.path()), loose_objects(bare.path()));
    let report = commit_and_push_with(
        &cache,
        &bare.file_url(),
        "main",
        &fast_retry(1),
        |checkout, memory| {
            for i in 0..300 {
                let file = PathBuf::from(format!("apps/a{i:03}.yaml"));
                std::fs::write(checkout.workdir().join(&file), "v: 1\n").unwrap();
                checkout.commit(&[file], &format!("app {i}")).unwrap();
                memory.persist_if_large();
            }
            Ok::<_, PlanError>(300)
        },
    )
    .unwrap();
    assert!(report.pushed);
    assert!(
        loose_objects(work.path()) > 0,
        "the round's objects were written out before its end"
    );
    assert_eq!(bare.log("main").len(), 301);
    for i in [0, 150, 299] {
        assert_eq!(bare.show("main", &format!("apps/a{i:03}.yaml")), "v: 1");
    }
    assert_eq!(bare.show("main", "apps/a399.yaml"), "v: 0");
    // Over file://, the objects the remote lacked were written into it as packs of 50 commits
    // each, not as one pack of the whole round (which this process would index with a cache
    // of up to 16 MB), and no loose object.
    assert_eq!(pack_files(bare.path()) - packs_before, 300 / 50);
    assert_eq!(loose_objects(bare.path()), loose_before);
    crate::support::git::git(bare.path(), &["fsck", "--full", "--strict"]);
    // The next round builds on the objects written out (read back from the clone).
    let report = commit_and_push(&cache, &bare.file_url(), "main", &fast_retry(1), |c| {
        append_line(c, "after")
    })
    .unwrap();
    assert!(report.pushed);
    assert_eq!(bare.log("main").len(), 302);
    assert_eq!(bare.show("main", "apps/a299.yaml"), "v: 1");
    assert_eq!(pack_files(bare.path()), packs_before + 300 / 50 + 1);
}

fn pack_files(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("objects/pack"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
        .count()
}

/// A `file://` remote with a work tree is refused, and says what it needs: moving its branch
/// would leave the files checked out there behind it (libgit2's local transport refuses it too).
#[test]
fn a_file_remote_with_a_work_tree_is_refused_by_name() {
    use crate::support::git::git;
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("app.yaml"), "tag: 1.0.0\n").unwrap();
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-q", "-m", "seed"]);
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    let url = format!("file://{}", dir.path().display());
    let (_work, cache) = clone_cache();
    let checkout = cache.checkout(&url, "main").unwrap();
    let file = write(&checkout, "app.yaml", "tag: 1.1.0\n");
    checkout.commit(&[file], "bump").unwrap().unwrap();
    match checkout.push().unwrap() {
        PushOutcome::Refused { reason } => {
            assert!(reason.contains("bare repository"), "{reason}");
            assert!(
                reason.contains(&dir.path().display().to_string()),
                "{reason}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        git(dir.path(), &["rev-parse", "HEAD"]),
        head,
        "the branch did not move"
    );
}

/// 20 rounds; in each, another writer pushes between our fetch and our push. Every one of our
/// updates lands on top, every one of theirs survives, nothing is ever force-pushed.
fn race(url: &str, settings: GitSettings, bare: &BareRepo) {
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), settings);
    for round in 0..20 {
        let calls = Cell::new(0);
        let report = commit_and_push(&cache, url, "main", &fast_retry(5), |checkout| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                // The other writer wins the race on our first attempt.
                let name = format!("theirs-{round}.txt");
                bare.push_files(
                    "main",
                    &[(name.as_str(), "human\n")],
                    &format!("human {round}"),
                );
            }
            append_line(checkout, &format!("ours-{round}"))
        })
        .unwrap();
        assert!(report.pushed);
        assert_eq!(report.attempts, 2, "round {round}");
        assert_eq!(bare.head("main").unwrap(), report.head.to_string());
        let log = bare.log("main");
        assert_eq!(
            log[0].1,
            format!("imagebump: ours-{round}"),
            "ours lands on top"
        );
        assert_eq!(log[1].1, format!("human {round}"));
    }
    let ours = bare.show("main", "ours.txt");
    for round in 0..20 {
        assert!(ours.lines().any(|l| l == format!("ours-{round}")));
        assert_eq!(bare.show("main", &format!("theirs-{round}.txt")), "human");
    }
    assert_eq!(bare.log("main").len(), 1 + 40);
    assert!(!bare.any_forced_update("main"));
}

#[test]
fn race_with_another_writer_over_file() {
    let bare = seeded();
    race(&bare.file_url(), settings(vec![]), &bare);
}

#[test]
fn race_with_another_writer_over_http() {
    let bare = seeded();
    let server = GitHttpServer::start(bare.root(), "tester", PASSWORD);
    let url = server.url("repo.git");
    race(&url, settings(vec![userpass(&url, PASSWORD)]), &bare);
    assert_eq!(
        server.receive_packs(),
        20,
        "exactly one accepted push per round"
    );
}

#[test]
fn replanning_sees_that_the_change_already_landed() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let calls = Cell::new(0);
    let report = commit_and_push(
        &cache,
        &bare.file_url(),
        "main",
        &fast_retry(5),
        |checkout| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                // Someone else pushes the very change we are about to make.
                bare.push_files("main", &[("ours.txt", "ours-x\n")], "human did it");
            }
            append_line(checkout, "ours-x")
        },
    )
    .unwrap();
    assert_eq!(report.attempts, 2);
    assert!(!report.pushed);
    assert_eq!(bare.log("main")[0].1, "human did it");
    assert_eq!(report.head.to_string(), bare.head("main").unwrap());
}

#[test]
fn nothing_to_change_makes_no_push() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let before = bare.ref_updates("main");
    let report = commit_and_push(&cache, &bare.file_url(), "main", &fast_retry(3), |_| {
        Ok::<_, PlanError>(0)
    })
    .unwrap();
    assert!(!report.pushed);
    assert_eq!(report.attempts, 1);
    assert_eq!(bare.ref_updates("main"), before);
}

#[test]
fn retries_are_bounded_and_never_lose_their_commits() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let calls = Cell::new(0);
    let err = commit_and_push(
        &cache,
        &bare.file_url(),
        "main",
        &fast_retry(3),
        |checkout| {
            calls.set(calls.get() + 1);
            let name = format!("theirs-{}.txt", calls.get());
            bare.push_files("main", &[(name.as_str(), "x\n")], "busy human");
            append_line(checkout, "ours")
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, WriteBackError::Exhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(calls.get(), 3);
    let log = bare.log("main");
    assert_eq!(log.len(), 4);
    assert!(
        log.iter()
            .take(3)
            .all(|(_, subject, _)| subject == "busy human")
    );
}

#[test]
fn planner_errors_are_passed_through() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let err = commit_and_push(&cache, &bare.file_url(), "main", &fast_retry(3), |_| {
        Err::<usize, _>(PlanError)
    })
    .unwrap_err();
    assert!(matches!(err, WriteBackError::Plan { .. }), "{err:?}");
}

/// Pull-request mode: a bot branch updated only by compare-and-swap.
fn lease(url: &str, settings: GitSettings, bare: &BareRepo) {
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), settings);
    let checkout = cache.checkout(url, "main").unwrap();
    let base = checkout.head().unwrap();
    let bot = "imagebump/shop";
    assert_eq!(checkout.fetch_remote_branch(bot).unwrap(), None);

    let file = write(&checkout, "app.yaml", "tag: 1.1.0\n");
    let first = checkout
        .commit_on(base, std::slice::from_ref(&file), "bump 1.1.0")
        .unwrap()
        .unwrap();
    assert_eq!(
        checkout.head().unwrap(),
        base,
        "the checked-out branch did not move"
    );
    assert_eq!(
        checkout.push_with_lease(first, bot, None).unwrap(),
        LeaseOutcome::Pushed
    );
    assert_eq!(bare.head(bot).unwrap(), first.to_string());
    assert_eq!(bare.head("main").unwrap(), base.to_string());
    // "Must not exist" fails now that it does.
    assert_eq!(
        checkout.push_with_lease(first, bot, None).unwrap(),
        LeaseOutcome::Stale {
            actual: Some(first)
        }
    );

    // Rewrite the bot branch (a newer tag, again on top of base) while it is where we expect.
    write(&checkout, "app.yaml", "tag: 1.2.0\n");
    let second = checkout
        .commit_on(base, std::slice::from_ref(&file), "bump 1.2.0")
        .unwrap()
        .unwrap();
    assert_eq!(
        checkout.push_with_lease(second, bot, Some(first)).unwrap(),
        LeaseOutcome::Pushed
    );
    assert_eq!(bare.head(bot).unwrap(), second.to_string());
    assert_eq!(bare.show(bot, "app.yaml"), "tag: 1.2.0");

    // A human pushes to the bot branch: our next CAS fails and their commit stays.
    let human = bare.push_files(bot, &[("notes.txt", "please wait\n")], "human fix");
    let tip = checkout.fetch_remote_branch(bot).unwrap().unwrap();
    assert_eq!(tip.to_string(), human);
    let commits = checkout.commits_between(base, tip).unwrap();
    let emails: Vec<&str> = commits.iter().map(|c| c.author_email.as_str()).collect();
    assert_eq!(emails, vec!["human@example.com", BOT_EMAIL]);
    assert_eq!(commits[1].id, second);

    write(&checkout, "app.yaml", "tag: 1.3.0\n");
    let third = checkout
        .commit_on(base, &[file], "bump 1.3.0")
        .unwrap()
        .unwrap();
    let outcome = checkout.push_with_lease(third, bot, Some(second)).unwrap();
    assert_eq!(
        outcome,
        LeaseOutcome::Stale {
            actual: Some(Oid::from_str(&human).unwrap())
        }
    );
    assert_eq!(bare.head(bot).unwrap(), human);
    assert_eq!(bare.head("main").unwrap(), base.to_string());
}

#[test]
fn lease_push_over_file() {
    let bare = seeded();
    lease(&bare.file_url(), settings(vec![]), &bare);
}

#[test]
fn lease_push_over_http() {
    let bare = seeded();
    let server = GitHttpServer::start(bare.root(), "tester", PASSWORD);
    let url = server.url("repo.git");
    lease(&url, settings(vec![userpass(&url, PASSWORD)]), &bare);
}

#[test]
fn commit_on_reports_no_change_and_file_at_reads_trees() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let checkout = cache.checkout(&bare.file_url(), "main").unwrap();
    let base = checkout.head().unwrap();
    assert_eq!(
        checkout
            .commit_on(base, &[PathBuf::from("app.yaml")], "noop")
            .unwrap(),
        None
    );
    assert_eq!(
        checkout
            .file_at(base, Path::new("app.yaml"))
            .unwrap()
            .as_deref(),
        Some(b"tag: 1.0.0\n".as_slice())
    );
    assert_eq!(checkout.file_at(base, Path::new("missing")).unwrap(), None);
    // Paths must stay inside the work tree.
    assert!(checkout.commit(&[PathBuf::from("../x")], "escape").is_err());
    // Deleting a file is a change.
    std::fs::remove_file(checkout.workdir().join("README")).unwrap();
    let removed = checkout
        .commit(&[PathBuf::from("README")], "remove")
        .unwrap()
        .unwrap();
    assert_eq!(
        checkout.file_at(removed, Path::new("README")).unwrap(),
        None
    );
}

/// A `tracing` writer that keeps everything in memory, to check what reaches the logs.
#[derive(Clone, Default)]
struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn http_race_inside_the_server_is_retried() {
    // The branch moves after our push saw the advertisement: receive-pack's own
    // compare-and-swap refuses, Remote::push returns Ok, push_update_reference says no.
    let bare = seeded();
    let server = GitHttpServer::start(bare.root(), "tester", PASSWORD);
    let url = server.url("repo.git");
    // The password travels in the URL too: it must reach neither logs nor errors.
    let url_with_userinfo = url.replace("http://", &format!("http://tester:{PASSWORD}@"));
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(
        work.path().to_path_buf(),
        settings(vec![userpass(&url, PASSWORD)]),
    );
    bare.sneak_in_commit_during_next_push("main");
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let report = tracing::subscriber::with_default(subscriber, || {
        commit_and_push(
            &cache,
            &url_with_userinfo,
            "main",
            &fast_retry(5),
            |checkout| append_line(checkout, "ours"),
        )
    })
    .unwrap();
    assert!(report.pushed);
    assert_eq!(report.attempts, 2);
    let subjects: Vec<String> = bare.log("main").into_iter().map(|(_, s, _)| s).collect();
    assert_eq!(
        subjects,
        vec!["imagebump: ours", "sneaky human", "initial commit"]
    );
    assert!(!bare.any_forced_update("main"));
    let logs = logs.text();
    assert!(logs.contains("push rejected"), "{logs}");
    assert!(logs.contains(&url), "{logs}");
    assert!(!logs.contains(PASSWORD), "{logs}");
}

#[test]
fn ssh_lease_lost_inside_the_server_is_not_pushed() {
    let bare = seeded();
    let sshd = SshServer::start();
    let url = sshd.url(bare.path());
    let rules = vec![ssh_rule("ssh://", sshd.user_key(), sshd.known_hosts())];
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), settings(rules));
    let checkout = cache.checkout(&url, "main").unwrap();
    let base = checkout.head().unwrap();
    let bot = "imagebump/shop";
    let file = write(&checkout, "app.yaml", "tag: 1.1.0\n");
    let first = checkout
        .commit_on(base, std::slice::from_ref(&file), "bump 1.1.0")
        .unwrap()
        .unwrap();
    assert_eq!(
        checkout.push_with_lease(first, bot, None).unwrap(),
        LeaseOutcome::Pushed
    );

    bare.sneak_in_commit_during_next_push(bot);
    write(&checkout, "app.yaml", "tag: 1.2.0\n");
    let second = checkout
        .commit_on(base, &[file], "bump 1.2.0")
        .unwrap()
        .unwrap();
    let outcome = checkout.push_with_lease(second, bot, Some(first)).unwrap();
    assert!(
        matches!(outcome, LeaseOutcome::Rejected { .. }),
        "{outcome:?}"
    );
    let log = bare.log(bot);
    assert_eq!(log[0].1, "sneaky human");
    assert_eq!(log[1].0, first.to_string());
}

#[test]
fn ssh_key_with_passphrase() {
    let bare = seeded();
    let sshd = SshServer::start();
    let url = sshd.url(bare.path());
    let rule = |passphrase: &str| CredentialRule {
        url_prefix: "ssh://".into(),
        credential: Credential::SshKey {
            key_file: sshd.passphrase_key(),
            passphrase: Some(Secret::new(passphrase)),
            known_hosts_file: sshd.known_hosts(),
        },
    };
    round_trip(&url, settings(vec![rule(KEY_PASSPHRASE)]), &bare);

    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(
        work.path().to_path_buf(),
        settings(vec![rule("not-it-123")]),
    );
    let err = cache.checkout(&url, "main").unwrap_err();
    let message = format!("{err} {err:?}");
    assert!(!message.contains("not-it-123"), "{message}");
    assert!(
        message.contains(&url.replace(&format!("{}@", whoami_from(&url)), "")),
        "{message}"
    );
}

/// The user part of an ssh:// URL.
fn whoami_from(url: &str) -> &str {
    url.trim_start_matches("ssh://").split('@').next().unwrap()
}

#[test]
fn one_checkout_per_repository_at_a_time() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let first = cache.checkout(&bare.file_url(), "main").unwrap();
    let err = cache
        .clone()
        .checkout(&bare.file_url(), "main")
        .unwrap_err();
    assert!(matches!(err, GitError::Busy { .. }), "{err:?}");
    drop(first);
    assert!(cache.checkout(&bare.file_url(), "main").is_ok());
}

#[test]
fn ssh_missing_key_file_is_named() {
    let bare = seeded();
    let sshd = SshServer::start();
    let url = sshd.url(bare.path());
    let missing = PathBuf::from("/nonexistent/id_ed25519");
    let rules = vec![ssh_rule("ssh://", missing, sshd.known_hosts())];
    let work = tempfile::tempdir().unwrap();
    let cache = CloneCache::new(work.path().to_path_buf(), settings(rules));
    let err = cache.checkout(&url, "main").unwrap_err();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("cannot read SSH key file /nonexistent/id_ed25519"),
        "{err}"
    );
}

#[test]
fn a_clone_with_lost_objects_is_rebuilt() {
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let dir = cache
        .checkout(&bare.file_url(), "main")
        .unwrap()
        .workdir()
        .to_path_buf();
    // A disk problem or an interrupted write: every object of the clone is gone.
    let objects = dir.join(".git/objects");
    std::fs::remove_dir_all(&objects).unwrap();
    std::fs::create_dir_all(objects.join("pack")).unwrap();
    std::fs::create_dir_all(objects.join("info")).unwrap();
    let theirs = bare.push_files("main", &[("new.txt", "n\n")], "human");
    // The damage may surface in the first pass (which then fails with a local error and marks
    // the clone); the pass after it works on a fresh clone.
    let first_pass = cache
        .checkout(&bare.file_url(), "main")
        .and_then(|checkout| {
            let file = write(&checkout, "app.yaml", "tag: 3.0.0\n");
            checkout.commit(&[file], "first pass")
        });
    if let Err(err) = &first_pass {
        assert!(matches!(err, GitError::Local { .. }), "{err:?}");
    }
    let checkout = cache.checkout(&bare.file_url(), "main").unwrap();
    assert_eq!(checkout.head().unwrap().to_string(), theirs);
    assert_eq!(read(&checkout, "new.txt"), "n\n");
    assert_eq!(read(&checkout, "README"), "config\n");
    let file = write(&checkout, "app.yaml", "tag: 3.0.0\n");
    checkout.commit(&[file], "after repair").unwrap().unwrap();
    assert!(matches!(
        checkout.push().unwrap(),
        PushOutcome::Pushed { .. }
    ));
    assert_eq!(bare.show("main", "README"), "config");
}

#[test]
fn a_pass_leaves_a_consistent_clone_on_disk() {
    // Commits of a pass are built in memory and written as one pack; the branch ref is written
    // once. Afterwards the clone on disk must be complete and point at the pushed head.
    let bare = seeded();
    let (_work, cache) = clone_cache();
    let url = bare.file_url();
    let report = commit_and_push(&cache, &url, "main", &fast_retry(3), |checkout| {
        let mut made = 0;
        for i in 0..3 {
            made += append_line(checkout, &format!("line-{i}"))?;
        }
        Ok::<_, PlanError>(made)
    })
    .unwrap();
    assert!(report.pushed);
    assert_eq!(bare.log("main").len(), 4);
    let dir = cache.dir_for(&url);
    assert_eq!(
        crate::support::git::git(&dir, &["rev-parse", "refs/heads/main"]),
        report.head.to_string()
    );
    crate::support::git::git(&dir, &["fsck", "--no-dangling", "--strict"]);
    assert_eq!(
        crate::support::git::git(&dir, &["show", "HEAD:ours.txt"]),
        "line-0\nline-1\nline-2"
    );
}

/// The tree git itself writes for `paths` of the work tree on top of `parent` (a scratch index:
/// read `parent`, update the paths with `--add --remove --replace`, write the tree).
fn tree_by_git_cli(dir: &Path, parent: Oid, paths: &[&str]) -> String {
    let index = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_INDEX_FILE", index.path().join("index"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", index.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    run(&["read-tree", &parent.to_string()]);
    let mut update = vec!["update-index", "--add", "--remove", "--replace", "--"];
    update.extend_from_slice(paths);
    run(&update);
    run(&["write-tree"])
}

#[test]
fn commits_write_the_same_trees_as_git() {
    // Commits rewrite only the trees along the listed paths; the result must be the tree git
    // writes from an index for the same paths: nested edits, new directories, executables,
    // removals that empty a directory, a file replacing a directory, repeated paths.
    let bare = BareRepo::with_files(
        "main",
        &[
            ("README", "config\n"),
            ("apps/a/values.yaml", "tag: 1.0.0\n"),
            ("apps/b/values.yaml", "tag: 1.0.0\n"),
            ("apps/c/values.yaml", "tag: 1.0.0\n"),
            ("apps/c/extra.yaml", "x: 1\n"),
        ],
    );
    let (_work, cache) = clone_cache();
    let checkout = cache.checkout(&bare.file_url(), "main").unwrap();
    let dir = checkout.workdir().to_path_buf();
    let step = |paths: &[&str]| {
        let parent = checkout.head().unwrap();
        let expected = tree_by_git_cli(&dir, parent, paths);
        let listed: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        let commit = checkout.commit(&listed, "step").unwrap().expect("a change");
        let tree = crate::support::git::git(&dir, &["rev-parse", &format!("{commit}^{{tree}}")]);
        assert_eq!(tree, expected, "tree after committing {paths:?}");
    };

    write(&checkout, "apps/a/values.yaml", "tag: 1.1.0\n");
    step(&["apps/a/values.yaml"]);

    write(&checkout, "apps/d/deep/values.yaml", "tag: 2.0.0\n");
    write(&checkout, "bin/run.sh", "#!/bin/sh\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let script = dir.join("bin/run.sh");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    step(&[
        "apps/d/deep/values.yaml",
        "bin/run.sh",
        "apps/d/deep/values.yaml",
    ]);

    std::fs::remove_file(dir.join("apps/b/values.yaml")).unwrap();
    step(&["apps/b/values.yaml"]);
    let head = checkout.head().unwrap();
    assert_eq!(checkout.file_at(head, Path::new("apps/b")).unwrap(), None);

    std::fs::remove_dir_all(dir.join("apps/c")).unwrap();
    write(&checkout, "apps/c", "now a file\n");
    step(&["apps/c"]);

    write(&checkout, "bin/run.sh", "#!/bin/sh\necho hi\n");
    step(&["bin/run.sh"]);

    for file in ["apps/a/values.yaml", "apps/c", "apps/d/deep/values.yaml"] {
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    step(&["apps/a/values.yaml", "apps/c", "apps/d/deep/values.yaml"]);
    let head = checkout.head().unwrap();
    let listing = crate::support::git::git(&dir, &["ls-tree", "--name-only", &head.to_string()]);
    assert_eq!(listing, "README\nbin");

    // A path that is neither in the work tree nor in the head changes nothing.
    assert_eq!(
        checkout
            .commit(&[PathBuf::from("apps/none/values.yaml")], "nothing")
            .unwrap(),
        None
    );
    crate::support::git::git(&dir, &["fsck", "--no-dangling", "--strict"]);
}
