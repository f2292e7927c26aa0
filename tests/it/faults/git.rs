//! Fault suite: git faults (see docs/reliability.md).
//!
//! Real remotes only: bare repositories over `file://` and smart HTTP (`git http-backend`)
//! with hooks; the `imagebump` binary as users run it.

use std::path::Path;
use std::process::Command;

use crate::support::config::ConfigDir;
use crate::support::git::{BareRepo, GitHttpServer, git};
pub(super) use crate::support::imagebump::text;
use crate::support::registry::{ImageSpec, TestRegistry};

/// A values file whose `api.image.tag` is `tag`.
pub(super) fn values(registry: &str, tag: &str) -> String {
    format!("api:\n  image:\n    repository: {registry}/team/api\n    tag: \"{tag}\"\n")
}

/// An app following `^1` of `REGISTRY/team/api` in the Helm values files `files`.
pub(super) fn app(name: &str, repo: &str, registry: &str, files: &[&str]) -> String {
    let targets: String = files
        .iter()
        .map(|f| format!("      - {{file: {f}, path: api.image.tag}}\n"))
        .collect();
    format!(
        "name: {name}\nrepo: {repo}\nbranch: main\nimages:\n  - name: api\n    image: {registry}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n{targets}"
    )
}

/// A config dir of `apps` on `registry`; `extra_global` goes right after the git author (so
/// indented lines are more `git` keys).
pub(super) fn config_dir(registry: &str, extra_global: &str, apps: &[(&str, String)]) -> ConfigDir {
    ConfigDir::new(registry, extra_global).apps(apps)
}

/// A registry with `team/api` at 1.0.0 and 1.1.0.
pub(super) async fn registry() -> TestRegistry {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    for (tag, day) in [("1.0.0", "01"), ("1.1.0", "02")] {
        let spec = ImageSpec::new(&format!("2026-01-{day}T00:00:00Z"));
        pusher.push_image("team/api", tag, &spec).await;
    }
    registry
}

/// Commits a symlink `name -> target` on `main` of `repo` with the git CLI.
fn push_symlink(repo: &BareRepo, name: &str, target: &Path) {
    let work = tempfile::tempdir().unwrap();
    let path = repo.path().display().to_string();
    git(work.path(), &["clone", "-q", &path, "w"]);
    let w = work.path().join("w");
    std::os::unix::fs::symlink(target, w.join(name)).unwrap();
    git(&w, &["add", name]);
    git(&w, &["commit", "-q", "-m", &format!("link {name}")]);
    git(&w, &["push", "-q", "origin", "HEAD:main"]);
}

/// Issue 12 item 1: a committed directory symlink (`linkdir -> /outside`) made `once` overwrite
/// the file outside the clone and push its content; `etclink -> /etc` made it read `/etc`.
/// Every component of every target is checked: nothing outside the clone is read or written,
/// nothing is pushed, and the error names the file, the component and why.
#[tokio::test(flavor = "multi_thread")]
async fn a_committed_symlink_never_lets_a_target_read_or_write_outside_the_clone() {
    let registry = registry().await;
    let host = registry.host();
    let outside = tempfile::tempdir().unwrap();
    let outside_values = outside.path().join("values.yaml");
    std::fs::write(&outside_values, values(&host, "1.0.0")).unwrap();
    let repo = BareRepo::with_files(
        "main",
        &[("apps/real/values.yaml", &values(&host, "1.0.0"))],
    );
    push_symlink(&repo, "linkdir", outside.path());
    push_symlink(&repo, "inner", Path::new("apps/real"));
    let head = repo.head("main");
    let url = repo.file_url();
    let config = config_dir(
        &host,
        "",
        &[
            (
                "outside",
                app("outside", &url, &host, &["linkdir/values.yaml"]),
            ),
            ("inner", app("inner", &url, &host, &["inner/values.yaml"])),
        ],
    );

    let out = config.imagebump(["once"]).output();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("linkdir/values.yaml: `linkdir` is a symbolic link"),
        "{all}"
    );
    assert!(
        all.contains("inner/values.yaml: `inner` is a symbolic link"),
        "{all}"
    );
    assert_eq!(
        std::fs::read_to_string(&outside_values).unwrap(),
        values(&host, "1.0.0"),
        "the file outside the clone was written"
    );
    assert_eq!(repo.head("main"), head, "something was pushed");
    let clone = &config.clones()[0];
    assert!(
        std::fs::symlink_metadata(clone.join("linkdir"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symlink in the clone was replaced"
    );
}
/// `git fsck --full` in `dir`: `Err(output)` when git finds a problem.
pub(super) fn fsck(dir: &Path) -> Result<(), String> {
    let out = Command::new("git")
        .args(["fsck", "--full", "--no-progress"])
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && !all.contains("error") && !all.contains("missing") {
        Ok(())
    } else {
        Err(all)
    }
}

/// The password of every [`http_remote`].
pub(super) const HTTP_PASSWORD: &str = "s3cret-http-pass";

/// Smart HTTP in front of `repo`, and the global-file lines that give imagebump its credential
/// (the password in `TEST_GIT_PASSWORD`, set by the callers of `once`).
pub(super) fn http_remote(repo: &BareRepo) -> (GitHttpServer, String, String) {
    let server = GitHttpServer::start(repo.root(), "bot", HTTP_PASSWORD);
    let url = server.url("repo.git");
    let credentials = format!(
        "  credentials:\n    - url: {url}\n      username: bot\n      password_env: TEST_GIT_PASSWORD\n"
    );
    (server, url, credentials)
}

/// Issue 12 item 5: after a push that lost a race inside the server was replanned and pushed
/// again, the cache's branch pointed at a commit whose objects never reached the cache's disk
/// (`git fsck`: invalid sha1 pointer), and the next pass re-cloned. The cache stays whole.
#[tokio::test(flavor = "multi_thread")]
async fn the_clone_cache_is_whole_after_a_retried_push() {
    let registry = registry().await;
    let host = registry.host();
    let repo = BareRepo::with_files("main", &[("values.yaml", &values(&host, "1.0.0"))]);
    let (_server, url, credentials) = http_remote(&repo);
    let config = config_dir(
        &host,
        &credentials,
        &[("shop", app("shop", &url, &host, &["values.yaml"]))],
    );
    repo.sneak_in_commit_during_next_push("main");

    let out = config
        .imagebump(["once"])
        .env("TEST_GIT_PASSWORD", HTTP_PASSWORD)
        .env("RUST_LOG", "info")
        .output();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("push rejected; replanning"), "no retry: {all}");
    let subjects: Vec<String> = repo.log("main").into_iter().map(|c| c.1).collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert_eq!(subjects[1], "sneaky human", "{subjects:?}");
    assert!(repo.show("main", "values.yaml").contains("1.1.0"));

    let clone = &config.clones()[0];
    assert_eq!(
        git(clone, &["rev-parse", "refs/heads/main"]),
        repo.head("main").unwrap()
    );
    if let Err(problems) = fsck(clone) {
        panic!("the clone cache is damaged after a retried push:\n{problems}");
    }
    // The next pass uses the cache as it is: no "damaged; cloning again".
    let out = config
        .imagebump(["once"])
        .env("TEST_GIT_PASSWORD", HTTP_PASSWORD)
        .output();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("cloning again"), "{all}");
}

/// Issue 12 item 8: a push the remote declines for good (a `pre-receive` hook, as a protected
/// branch is) was retried 5 times and reported as "another writer keeps moving the branch".
/// It is sent once and reported with the remote's own message; a race is still retried
/// ([`the_clone_cache_is_whole_after_a_retried_push`]).
#[tokio::test(flavor = "multi_thread")]
async fn a_push_the_remote_declines_is_not_retried_and_shows_the_remote_message() {
    let registry = registry().await;
    let host = registry.host();
    let repo = BareRepo::with_files("main", &[("values.yaml", &values(&host, "1.0.0"))]);
    let head = repo.head("main");
    let attempts = repo.path().join("declined.log");
    let hook = repo.path().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat >/dev/null\necho x >> '{}'\necho 'GL-HOOK-ERR: main is a protected branch; ask a maintainer' >&2\nexit 1\n",
            attempts.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (_server, url, credentials) = http_remote(&repo);
    let config = config_dir(
        &host,
        &credentials,
        &[("shop", app("shop", &url, &host, &["values.yaml"]))],
    );

    let out = config
        .imagebump(["once"])
        .env("TEST_GIT_PASSWORD", HTTP_PASSWORD)
        .output();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("the remote refused the push to `main`"),
        "{all}"
    );
    assert!(all.contains("pre-receive hook declined"), "{all}");
    assert!(
        all.contains("main is a protected branch; ask a maintainer"),
        "the remote's message is missing: {all}"
    );
    assert!(!all.contains("another writer"), "{all}");
    let sent = std::fs::read_to_string(&attempts).unwrap_or_default();
    assert_eq!(sent.lines().count(), 1, "the declined push was retried");
    assert_eq!(repo.head("main"), head);
}

/// Issue 13: a config repository that does not exist, over HTTP, was reported as "the remote
/// asks for credentials but no git.credentials entry matches". The message says whether the
/// repository was not found, or was not found or needs credentials, and what to check.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_repository_over_http_is_named_as_not_found_or_needing_credentials() {
    let registry = registry().await;
    let host = registry.host();
    let repo = BareRepo::with_files("main", &[("values.yaml", &values(&host, "1.0.0"))]);
    let (server, _url, _credentials) = http_remote(&repo);
    let missing = server.url("missing.git");

    // With a credential the server accepts: it answers 404.
    let with_credential = format!(
        "  credentials:\n    - url: {missing}\n      username: bot\n      password_env: TEST_GIT_PASSWORD\n"
    );
    let config = config_dir(
        &host,
        &with_credential,
        &[("shop", app("shop", &missing, &host, &["values.yaml"]))],
    );
    let out = config
        .imagebump(["once"])
        .env("TEST_GIT_PASSWORD", HTTP_PASSWORD)
        .output();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("repository {missing} was not found (HTTP 404)")),
        "{all}"
    );

    // Without one: the server asks for credentials, as forges do for a missing repository.
    let config = config_dir(
        &host,
        "",
        &[("shop", app("shop", &missing, &host, &["values.yaml"]))],
    );
    let out = config.imagebump(["once"]).output();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!(
            "repository {missing} was not found or needs credentials"
        )),
        "{all}"
    );
    assert!(all.contains("no `git.credentials` entry matches"), "{all}");
}

/// A human rewinds the branch (a force push back to an older commit), then the remote
/// disappears for a while: imagebump follows the remote as the only truth. After the rewind
/// it plans again on the rewound head (it never pushes its cached commit back); while the
/// remote is gone the app fails with its URL and nothing else changes; once it is back the
/// next pass works on the same clone.
#[tokio::test(flavor = "multi_thread")]
async fn a_rewound_or_vanished_remote_is_followed_never_overwritten() {
    let registry = registry().await;
    let host = registry.host();
    let repo = BareRepo::with_files("main", &[("values.yaml", &values(&host, "1.0.0"))]);
    let initial = repo.head("main").unwrap();
    let url = repo.file_url();
    let config = config_dir(
        &host,
        "",
        &[("shop", app("shop", &url, &host, &["values.yaml"]))],
    );
    let out = config.imagebump(["once"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ours = repo.head("main").unwrap();
    assert_ne!(ours, initial);

    // The rewind: main goes back to the initial commit, plus a human's commit on top.
    git(repo.path(), &["update-ref", "refs/heads/main", &initial]);
    let human = repo.push_files("main", &[("README.md", "hello\n")], "human after rewind");
    let out = config.imagebump(["once"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = repo.log("main");
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[1].0, human, "the human's commit is the parent: {log:?}");
    assert!(
        !log.iter().any(|c| c.0 == ours),
        "the cached commit was pushed back"
    );
    assert!(repo.show("main", "values.yaml").contains("1.1.0"));
    assert_eq!(repo.show("main", "README.md"), "hello");

    // The remote vanishes: the app fails naming it; the clone and the remote are unchanged.
    let moved = repo.root().join("moved.git");
    std::fs::rename(repo.path(), &moved).unwrap();
    let out = config.imagebump(["once"]).output();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(&url), "{all}");
    let clone = &config.clones()[0];
    fsck(clone).unwrap();
    std::fs::rename(&moved, repo.path()).unwrap();
    let head = repo.head("main");
    let out = config.imagebump(["once"]).output();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("cloning again"), "{all}");
    assert_eq!(repo.head("main"), head, "nothing new to push");
}
