//! `imagebump once` end to end: the real registry as the image source, real git remotes as the
//! config repo, the binary as users run it.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::config::ConfigDir;
use crate::support::git::{BareRepo, GitHttpServer};
use crate::support::imagebump::text;
use crate::support::registry::{FaultProxy, ImageSpec, TestRegistry};

const KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

# dev follows every 1.x release
resources:
  - deployment.yaml

images:
  - name: REGISTRY/team/api   # the API
    newTag: 1.0.0
  - name: nginx
    newTag: \"1.25\"
";

const VALUES: &str = "\
# Default values for shop.
replicaCount: 2

api:
  image:
    repository: REGISTRY/team/api
    tag: '1.0.0'   # quoted on purpose

    pullPolicy: IfNotPresent
";

/// A config dir on `registry` with the given app files.
fn setup(registry: &str, apps: &[(&str, String)]) -> ConfigDir {
    ConfigDir::new(registry, "").apps(apps)
}

/// `imagebump once --config GLOBAL EXTRA...`.
fn once(setup: &ConfigDir, extra: &[&str]) -> Output {
    setup.imagebump(["once"]).args(extra).output()
}

fn app(name: &str, repo: &str, registry: &str, policy: &str) -> String {
    format!(
        "name: {name}\nrepo: {repo}\nbranch: main\nimages:\n  - name: api\n    image: {registry}/team/api\n    policy: {policy}\n    targets:\n      - file: overlays/dev/kustomization.yaml\n      - file: values.yaml\n        path: api.image.tag\n"
    )
}

async fn push_tags(registry: &TestRegistry, repository: &str, tags: &[&str]) {
    let pusher = registry.pusher();
    for (i, tag) in tags.iter().enumerate() {
        let spec = ImageSpec::new(&format!("2026-01-0{}T00:00:00Z", i % 9 + 1));
        pusher.push_image(repository, tag, &spec).await;
    }
}

/// A registry with `team/api` at 1.0.0 and 1.1.0, the seeded repo (at 1.0.0) and one app,
/// `shop`, with `semver: "^1"` on it: one update to make. The registry lives as long as the
/// returned value.
async fn shop_with_one_update() -> (TestRegistry, BareRepo, ConfigDir) {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    push_tags(&registry, "team/api", &["1.0.0", "1.1.0"]).await;
    let repo = seeded_repo(&host);
    let setup = setup(
        &host,
        &[(
            "shop",
            app("shop", &repo.file_url(), &host, "{semver: \"^1\"}"),
        )],
    );
    (registry, repo, setup)
}

fn seeded_repo(registry: &str) -> BareRepo {
    BareRepo::with_files(
        "main",
        &[
            (
                "overlays/dev/kustomization.yaml",
                &KUSTOMIZATION.replace("REGISTRY", registry),
            ),
            ("values.yaml", &VALUES.replace("REGISTRY", registry)),
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn once_commits_the_newest_allowed_tag_and_only_its_bytes() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    push_tags(
        &registry,
        "team/api",
        &["1.0.0", "1.1.0", "2.0.0", "1.1.0-rc.1", "latest"],
    )
    .await;
    let repo = seeded_repo(&host);
    let setup = setup(
        &host,
        &[(
            "shop",
            app("shop", &repo.file_url(), &host, "{semver: \"^1.0\"}"),
        )],
    );

    // Dry run: the plan, nothing written.
    let before = repo.head("main");
    let out = once(&setup, &["--dry-run", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = plan.as_array().unwrap();
    assert_eq!(plan.len(), 2, "{plan:?}");
    assert_eq!(plan[0]["app"], "shop");
    assert_eq!(plan[0]["file"], "overlays/dev/kustomization.yaml");
    assert_eq!(plan[0]["line"], 10);
    assert_eq!(plan[0]["from"], "1.0.0");
    assert_eq!(plan[0]["to"], "1.1.0");
    assert_eq!(plan[1]["file"], "values.yaml");
    assert_eq!(plan[1]["line"], 7);
    assert!(
        plan[1]["reason"].as_str().unwrap().contains("^1.0"),
        "{plan:?}"
    );
    assert_eq!(repo.head("main"), before, "a dry run must not push");
    let out = once(&setup, &["--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("-    newTag: 1.0.0\n+    newTag: 1.1.0\n"),
        "{stdout}"
    );

    // The real pass: one commit, only the tag bytes changed.
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = repo.log("main");
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].1, "chore(shop): update api to 1.1.0");
    assert_eq!(log[0].2, "bot@imagebump.test");
    assert_eq!(
        repo.show("main", "overlays/dev/kustomization.yaml"),
        KUSTOMIZATION
            .replace("REGISTRY", &host)
            .replace("newTag: 1.0.0", "newTag: 1.1.0")
            .trim_end()
    );
    assert_eq!(
        repo.show("main", "values.yaml"),
        VALUES
            .replace("REGISTRY", &host)
            .replace("'1.0.0'", "'1.1.0'")
            .trim_end()
    );

    // Nothing new: no commit, no push.
    let updates = repo.ref_updates("main");
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("shop: up to date"),
        "{}",
        text(&out)
    );
    assert_eq!(repo.log("main").len(), 2);
    assert_eq!(repo.ref_updates("main"), updates);

    // A newer allowed tag: the next pass picks it up.
    push_tags(&registry, "team/api", &["1.2.0"]).await;
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(repo.log("main").len(), 3);
    assert!(repo.show("main", "values.yaml").contains("tag: '1.2.0'"));
    assert!(
        repo.show("main", "overlays/dev/kustomization.yaml")
            .contains("newTag: 1.2.0")
    );
    assert!(!repo.any_forced_update("main"));
}

#[tokio::test(flavor = "multi_thread")]
async fn never_downgrades_a_newer_deployed_tag() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    push_tags(&registry, "team/api", &["1.0.0", "1.1.0"]).await;
    // A human deployed 1.5.0, which the registry no longer lists.
    let repo = BareRepo::with_files(
        "main",
        &[
            (
                "overlays/dev/kustomization.yaml",
                &KUSTOMIZATION
                    .replace("REGISTRY", &host)
                    .replace("1.0.0", "1.5.0"),
            ),
            (
                "values.yaml",
                &VALUES.replace("REGISTRY", &host).replace("1.0.0", "1.5.0"),
            ),
        ],
    );
    let setup = setup(
        &host,
        &[(
            "shop",
            app("shop", &repo.file_url(), &host, "{semver: \"^1.0\"}"),
        )],
    );
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(repo.log("main").len(), 1, "no downgrade commit");
    // The report names things for what they are (regression, issue 13: `candidate` was the
    // kept 1.5.0, a tag outside every candidate).
    let out = once(&setup, &["--output", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let image = &report["apps"][0]["images"][0];
    assert_eq!(image["deployed"], "1.5.0", "{report}");
    assert_eq!(image["candidate"], "1.1.0", "{report}");
    // Why, as a value (issue 14): the deployed tag is newer than every candidate.
    assert_eq!(
        image["why"],
        serde_json::json!({"kind": "not_downgrading", "current": "1.5.0", "best": "1.1.0"}),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_registry_or_repo_does_not_stop_the_other_apps() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    push_tags(&registry, "team/api", &["1.0.0", "1.1.0"]).await;
    let repo = seeded_repo(&host);
    let dead = format!("127.0.0.1:{}", crate::support::free_port());
    let broken_registry = app(
        "broken-registry",
        &repo.file_url(),
        &dead,
        "{semver: \"*\"}",
    )
    .replace(
        "overlays/dev/kustomization.yaml",
        "values.yaml\n        path: other.tag",
    );
    let apps = [
        (
            "good",
            app("good", &repo.file_url(), &host, "{semver: \"^1\"}"),
        ),
        ("broken-registry", broken_registry),
        (
            "broken-repo",
            app(
                "broken-repo",
                "file:///nonexistent/repo.git",
                &host,
                "{semver: \"^1\"}",
            ),
        ),
    ];
    let setup = setup(&host, &apps);
    let out = once(&setup, &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("good: updated"), "{all}");
    assert!(all.contains("broken-registry: FAILED"), "{all}");
    assert!(all.contains("broken-repo: FAILED"), "{all}");
    assert!(all.contains("/nonexistent/repo.git"), "{all}");
    assert_eq!(repo.log("main").len(), 2, "the good app committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_apps_of_one_repo_are_pushed_once_and_each_image_listed_once() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    push_tags(&registry, "team/api", &["1.0.0", "1.1.0"]).await;
    let mut files = Vec::new();
    let mut apps = Vec::new();
    let http_password = "s3cret-http-pass";
    let repo = BareRepo::empty("main");
    let server = GitHttpServer::start(repo.root(), "bot", http_password);
    let url = server.url("repo.git");
    for i in 0..50 {
        files.push((
            format!("apps/app{i:02}/values.yaml"),
            VALUES.replace("REGISTRY", &host),
        ));
        apps.push((
            format!("app{i:02}"),
            format!(
                "name: app{i:02}\nrepo: {url}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: apps/app{i:02}/values.yaml, path: api.image.tag}}\n"
            ),
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    repo.push_files("main", &refs, "fifty apps");
    let app_refs: Vec<(&str, String)> = apps.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
    let setup = setup(&host, &app_refs);
    setup.edit_global(|text| text.replace(
        "git:\n",
        &format!("git:\n  credentials:\n    - url: {url}\n      username: bot\n      password_env: TEST_GIT_PASSWORD\n"),
    ));

    let receive_packs = server.receive_packs();
    let out = setup
        .imagebump(["once", "--output", "json"])
        .env("TEST_GIT_PASSWORD", http_password)
        .env("RUST_LOG", "debug")
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["apps"].as_array().unwrap().len(), 50);
    assert_eq!(report["pushes"], 1);
    // One tag list for the one repository all fifty apps use (the registry needs no token).
    assert_eq!(report["registry_requests"], 1, "{report}");
    assert_eq!(
        server.receive_packs() - receive_packs,
        1,
        "exactly one push"
    );
    assert_eq!(repo.log("main").len(), 51, "one commit per app");
    // A second pass, on the clone the first left: its config repo is fetched once (the history
    // is read from the clone while the registry answers, without a fetch of its own).
    let fetches = server.fetches();
    let again = setup
        .imagebump(["once", "--output", "json"])
        .env("TEST_GIT_PASSWORD", http_password)
        .output();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(server.fetches() - fetches, 1, "one fetch per pass");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(http_password),
        "the password leaked into the logs"
    );
}

/// A pass prepares its config repositories (fetch, history) while its registries answer; a
/// check that needs the same repository meanwhile (a webhook's, during a poll cycle stuck on a
/// registry that does not answer) must not wait for that pass's listing. Regression: the first
/// version of the overlap held the repository's lock from the preparation to the end of the
/// pass, so the webhook's commit came only after the stuck registry's timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_targeted_check_is_not_kept_waiting_by_a_pass_stuck_on_another_registry() {
    use imagebump::engine::{Engine, PassOptions};
    use std::collections::BTreeSet;

    let registry = TestRegistry::start_plain().await;
    push_tags(&registry, "team/api", &["1.0.0"]).await;
    let host = registry.host();
    // A registry that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_host = silent.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let repo = seeded_repo(&host);
    repo.push_files(
        "main",
        &[("slow.yaml", "image:\n  tag: 1.0.0\n")],
        "slow app",
    );
    let setup = setup(
        &host,
        &[
            (
                "shop",
                app("shop", &repo.file_url(), &host, "{semver: \"^1\"}"),
            ),
            (
                "slow",
                format!(
                    "name: slow\nrepo: {}\nbranch: main\nimages:\n  - name: slow\n    image: {silent_host}/team/slow\n    policy: {{semver: \"^1\"}}\n    targets:\n      - file: slow.yaml\n        path: image.tag\n",
                    repo.file_url()
                ),
            ),
        ],
    );
    setup.edit_global(|text| {
        text + &format!(
            "  - prefix: {silent_host}\n    insecure: true\n    tag_list: {{timeout: 8s}}\n"
        )
    });
    let loaded = imagebump::config::load(&setup.global()).unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let engine = Engine::new(loaded.config).unwrap();

    // The poll cycle: stuck listing the silent registry for 8 s.
    let all = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run_pass(&PassOptions::default()).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // A push, and the webhook's check of that one repository, during the stuck cycle.
    push_tags(&registry, "team/api", &["1.1.0"]).await;
    let targeted = engine
        .run_pass(&PassOptions {
            repositories: Some(BTreeSet::from([format!("{host}/team/api")])),
            ..PassOptions::default()
        })
        .await;
    assert!(
        !all.is_finished(),
        "the targeted check ended only after the stuck cycle"
    );
    let shop = targeted.apps.iter().find(|a| a.name == "shop").unwrap();
    assert_eq!(shop.error_text(), None, "{targeted:?}");
    assert!(shop.pushed, "{targeted:?}");
    assert!(repo.show("main", "values.yaml").contains("'1.1.0'"));

    // The cycle still ends, with the silent registry's failure reported and nothing lost.
    let cycle = all.await.unwrap();
    let slow = cycle.apps.iter().find(|a| a.name == "slow").unwrap();
    assert!(slow.error_text().is_some(), "{cycle:?}");
    let shop = cycle.apps.iter().find(|a| a.name == "shop").unwrap();
    assert_eq!(shop.error_text(), None, "{cycle:?}");
    assert!(repo.show("main", "values.yaml").contains("'1.1.0'"));
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_given_up_is_asked_again_at_once_on_its_webhook() {
    use imagebump::daemon::{Metrics, Scope, Worker};
    use imagebump::engine::Engine;
    use imagebump::service::worker::EngineWorker;
    use std::sync::Arc;

    let registry = TestRegistry::start_plain().await;
    push_tags(&registry, "team/api", &["1.0.0"]).await;
    let proxy = FaultProxy::start(&registry.url()).await;
    let host = proxy.host();
    let repo = seeded_repo(&host);
    let setup = setup(
        &host,
        &[(
            "shop",
            app("shop", &repo.file_url(), &host, "{semver: \"^1\"}"),
        )],
    );
    // A cooldown of an hour (the default is 30 s), to see the setting reach the client.
    setup.edit_global(|text| text + "registry_breaker: {cooldown: 1h, max_cooldown: 2h}\n");
    let loaded = imagebump::config::load(&setup.global()).unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    // The daemon's worker, as `imagebump run` builds it.
    let metrics = Arc::new(Metrics::new());
    let worker = EngineWorker::new(Engine::new(loaded.config).unwrap(), metrics.clone());
    let given_up =
        |flag: u8| format!("imagebump_registry_given_up{{registry=\"{host}\"}} {flag}\n");
    proxy.fail_tag_lists();
    for _ in 0..3 {
        let report = worker.check(Scope::All).await;
        let error = report.apps[0].error_text().unwrap_or_default();
        assert!(error.contains("503"), "{error}");
    }
    // Given up: the next poll does not ask it.
    let listed = proxy.count("/tags/list");
    let report = worker.check(Scope::All).await;
    let error = report.apps[0].error_text().unwrap_or_default();
    assert!(error.contains("not being asked"), "{error}");
    assert!(
        error.contains("next try in 3599s") || error.contains("next try in 3600s"),
        "{error}"
    );
    assert_eq!(proxy.count("/tags/list"), listed);
    assert!(
        metrics.encode().contains(&given_up(1)),
        "{}",
        metrics.encode()
    );

    // It is back and a push arrives: the webhook's targeted check asks it at once and commits.
    proxy.clear_faults();
    push_tags(&registry, "team/api", &["1.1.0"]).await;
    let report = worker
        .check(Scope::Repository {
            registry: host.clone(),
            repository: "team/api".into(),
        })
        .await;
    assert_eq!(report.apps[0].error_text(), None, "{report:?}");
    assert!(report.apps[0].commit.is_some(), "{report:?}");
    assert_eq!(proxy.count("/tags/list"), listed + 1);
    assert_eq!(repo.log("main").len(), 2);
    assert!(
        metrics.encode().contains(&given_up(0)),
        "{}",
        metrics.encode()
    );
}

/// A new key at `path` without a passphrase; its public key line.
fn ssh_keygen(key_type: &str, path: &Path) -> String {
    crate::support::git::keygen(path, key_type, "");
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn commits_are_ssh_signed_and_git_verifies_them() {
    let (_registry, repo, setup) = shop_with_one_update().await;
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("signing");
    let public = ssh_keygen("ed25519", &key);
    let other = ssh_keygen("ed25519", &keys.path().join("other"));
    setup.edit_global(|text| {
        text.replace(
            "git:\n",
            &format!("git:\n  signing_key_file: {}\n", key.display()),
        )
    });

    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = repo.log("main");
    assert_eq!(log.len(), 2, "{log:?}");
    let head = &log[0].0;
    // Verified by git itself (ssh-keygen -Y verify underneath), against an allowed-signers file.
    let verify = |signer_key: &str| {
        let allowed = keys.path().join("allowed_signers");
        let key_part: Vec<&str> = signer_key.split_whitespace().take(2).collect();
        std::fs::write(
            &allowed,
            format!("bot@imagebump.test {}\n", key_part.join(" ")),
        )
        .unwrap();
        Command::new("git")
            .arg("-C")
            .arg(repo.path())
            .arg("-c")
            .arg(format!("gpg.ssh.allowedSignersFile={}", allowed.display()))
            .args(["verify-commit", head])
            .output()
            .unwrap()
    };
    let good = verify(&public);
    let said = String::from_utf8_lossy(&good.stderr);
    assert!(good.status.success(), "{said}");
    assert!(
        said.contains("Good \"git\" signature for bot@imagebump.test with ED25519 key"),
        "{said}"
    );
    let bad = verify(&other);
    assert!(!bad.status.success(), "another key verified the commit");
    // The seed commit (not made by imagebump) carries no signature.
    let seed = Command::new("git")
        .arg("-C")
        .arg(repo.path())
        .args(["cat-file", "commit", &log[1].0])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&seed.stdout).contains("gpgsig"));

    // A key imagebump cannot sign with: a clear error naming the file, exit 2, nothing pushed.
    let ecdsa = keys.path().join("ecdsa");
    ssh_keygen("ecdsa", &ecdsa);
    setup
        .edit_global(|text| text.replace(&key.display().to_string(), &ecdsa.display().to_string()));
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&ecdsa.display().to_string()) && said.contains("ecdsa-sha2-nistp256 key"),
        "{said}"
    );
    assert!(!said.contains("PRIVATE KEY"), "{said}");
    assert_eq!(repo.log("main").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn group_commits_put_every_changed_app_of_a_branch_in_one_commit() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    push_tags(&registry, "team/api", &["1.0.0", "1.1.0"]).await;
    let values = VALUES.replace("REGISTRY", &host);
    let current = values.replace("tag: '1.0.0'", "tag: '1.1.0'");
    assert_ne!(values, current, "the seed pins 1.0.0");
    let repo = BareRepo::with_files(
        "main",
        &[
            ("apps/a/values.yaml", &values),
            ("apps/b/values.yaml", &values),
            ("apps/c/values.yaml", &current),
        ],
    );
    let app = |name: &str| {
        format!(
            "name: {name}\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: apps/{name}/values.yaml, path: api.image.tag}}\n",
            repo.file_url()
        )
    };
    let setup = setup(&host, &[("a", app("a")), ("b", app("b")), ("c", app("c"))]);
    setup.edit_global(|text| text.replace("git:\n", "git:\n  group_commits: true\n"));

    let out = once(&setup, &["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pushes"], 1, "{report}");
    // The seed and one commit for a and b; c was up to date.
    let log = repo.log("main");
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].1, "chore: update api to 1.1.0 in 2 apps");
    let body = crate::support::git::git(repo.path(), &["log", "-1", "--format=%B", "main"]);
    assert!(
        body.contains(&format!(
            "- a: {host}/team/api: 1.0.0 -> 1.1.0 in apps/a/values.yaml"
        )) && body.contains(&format!(
            "- b: {host}/team/api: 1.0.0 -> 1.1.0 in apps/b/values.yaml"
        )),
        "{body}"
    );
    let commit_of = |name: &str| {
        report["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["commit"].clone())
            .unwrap()
    };
    assert_eq!(commit_of("a"), serde_json::json!(log[0].0), "{report}");
    assert_eq!(commit_of("b"), serde_json::json!(log[0].0), "{report}");
    assert_eq!(commit_of("c"), serde_json::Value::Null, "{report}");
    for name in ["a", "b", "c"] {
        assert_eq!(
            repo.show("main", &format!("apps/{name}/values.yaml")),
            current.trim_end()
        );
    }

    // Nothing to do: no commit, no push.
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(repo.log("main").len(), 2);

    // A new tag for all three, under a custom message.
    push_tags(&registry, "team/api", &["1.0.0", "1.1.0", "1.2.0"]).await;
    setup.edit_global(|text| text.replace(
        "group_commits: true\n",
        "group_commits: true\n  group_commit_message: \"bump {{ apps|join(',') }} to {{ images[0].to }}\"\n",
    ));
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = repo.log("main");
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0].1, "bump a,b,c to 1.2.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn newest_build_and_digest_pins_use_registry_metadata() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    pusher
        .push_image(
            "team/api",
            "sha-aaaaaaa",
            &ImageSpec::new("2026-01-01T00:00:00Z"),
        )
        .await;
    let newest = pusher
        .push_image(
            "team/api",
            "sha-bbbbbbb",
            &ImageSpec::new("2026-01-03T00:00:00Z"),
        )
        .await;
    pusher
        .push_image(
            "team/api",
            "sha-ccccccc",
            &ImageSpec::new("2026-01-02T00:00:00Z"),
        )
        .await;
    pusher
        .push_image(
            "team/api",
            "latest",
            &ImageSpec::new("2026-01-04T00:00:00Z"),
        )
        .await;
    let kustomization = format!(
        "images:\n  - name: {host}/team/api\n    newTag: sha-aaaaaaa\n  - name: {host}/team/web\n    newTag: latest\n"
    );
    pusher
        .push_image(
            "team/web",
            "latest",
            &ImageSpec::new("2026-01-05T00:00:00Z"),
        )
        .await;
    let web = pusher
        .push_image(
            "team/web",
            "latest",
            &ImageSpec::new("2026-01-06T00:00:00Z"),
        )
        .await;
    let repo = BareRepo::with_files("main", &[("kustomization.yaml", &kustomization)]);
    let app = format!(
        "name: builds\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{newest_build: {{}}}}\n    tags: {{include: '^sha-'}}\n    pin_digest: true\n    targets: [{{file: kustomization.yaml}}]\n  - name: web\n    image: {host}/team/web\n    policy: {{digest: latest}}\n    targets: [{{file: kustomization.yaml}}]\n",
        repo.file_url()
    );
    let setup = setup(&host, &[("builds", app)]);
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let file = repo.show("main", "kustomization.yaml");
    assert!(file.contains("newTag: sha-bbbbbbb"), "{file}");
    assert!(
        file.contains(&format!("digest: {}", newest.digest)),
        "{file}"
    );
    assert!(file.contains(&format!("digest: {}", web.digest)), "{file}");
    // The same digests on the next pass: nothing to do.
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(repo.log("main").len(), 2, "{}", text(&out));
}

/// Log lines written to a pipe or file carry no ANSI colour codes (regression: they did, which
/// garbled log collectors and `kubectl logs`).
#[test]
fn text_logs_off_a_terminal_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    // A registry port nothing listens on and a repo without the branch: warnings are logged.
    let setup = setup("127.0.0.1:9", &[]);
    let remote = dir.path().join("empty.git");
    crate::support::git::git(
        dir.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    let url = format!("file://{}", remote.display());
    std::fs::write(
        setup.path().join("apps/a.yaml"),
        app("a", &url, "127.0.0.1:9", "{semver: \"^1\"}"),
    )
    .unwrap();
    let out = once(&setup, &["--log-level", "info"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN"), "{}", text(&out));
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in piped logs:\n{}",
        text(&out)
    );
}

/// Regression (issue 13): `pin_digest: true` with a Helm `path:` target wrote the tag, dropped
/// the digest, and still showed `(sha256:…)` in the commit message. The digest now goes into
/// the mapping's `digest` key when it has one (Bitnami layout), else into the tag value as
/// `TAG@sha256:…`; the message shows exactly what was written, and a second pass is a no-op.
#[tokio::test(flavor = "multi_thread")]
async fn pin_digest_with_a_helm_path_writes_the_digest_where_the_chart_reads_it() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    pusher
        .push_image("team/api", "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await;
    let new = pusher
        .push_image("team/api", "1.1.0", &ImageSpec::new("2026-01-02T00:00:00Z"))
        .await;
    let values = "\
bitnami:
  image:
    repository: REGISTRY/team/api
    tag: 1.0.0
    digest: \"\"   # set by imagebump
plain:
  image:
    repository: REGISTRY/team/api
    tag: \"1.0.0\"
"
    .replace("REGISTRY", &host);
    let repo = BareRepo::with_files("main", &[("values.yaml", &values)]);
    let app = format!(
        "name: prod\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    pin_digest: true\n    targets:\n      - {{file: values.yaml, path: bitnami.image.tag}}\n      - {{file: values.yaml, path: plain.image.tag}}\n",
        repo.file_url()
    );
    let setup = setup(&host, &[("prod", app)]);
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let file = repo.show("main", "values.yaml");
    let want = values
        .replace(
            "tag: 1.0.0\n    digest: \"\"",
            &format!("tag: 1.1.0\n    digest: \"{}\"", new.digest),
        )
        .replace("tag: \"1.0.0\"", &format!("tag: \"1.1.0@{}\"", new.digest));
    assert_eq!(file.trim_end(), want.trim_end(), "{}", text(&out));
    let message = crate::support::git::git(repo.path(), &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains(&format!("\"\" -> {} in values.yaml", new.digest))
            || message.contains(&format!(" -> {} in values.yaml", new.digest)),
        "{message}"
    );
    assert!(
        message.contains(&format!("1.0.0 -> 1.1.0@{} in values.yaml", new.digest)),
        "{message}"
    );
    assert_eq!(
        message.matches(&new.digest).count(),
        2,
        "each written digest once, no claim beyond: {message}"
    );
    // The digests read back: nothing to do on the next pass.
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(repo.log("main").len(), 2, "{}", text(&out));
}

/// Issue 13: `platform` (registry or image, a string or a list) is a filter: a tag whose image
/// lacks one of the platforms is skipped with a reason, asking for manifests best first and
/// stopping at the first tag that has them all (regression: a semver policy picked a tag with
/// no arm64 image, ImagePullBackOff on arm64 nodes).
#[tokio::test(flavor = "multi_thread")]
async fn a_platform_filter_skips_tags_without_an_image_for_every_platform() {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    let both = [
        ImageSpec::new("2026-01-01T00:00:00Z"),
        ImageSpec::new("2026-01-01T00:00:00Z").platform("linux/arm64"),
    ];
    pusher.push_index("team/api", "1.0.0", &both, &[]).await;
    pusher.push_index("team/api", "1.1.0", &both, &[]).await;
    pusher
        .push_index(
            "team/api",
            "1.2.0",
            &[ImageSpec::new("2026-01-02T00:00:00Z")],
            &[],
        )
        .await;
    // A single image (no index): its config says linux/amd64.
    pusher
        .push_image("team/api", "1.3.0", &ImageSpec::new("2026-01-03T00:00:00Z"))
        .await;
    let proxy = FaultProxy::start(&registry.url()).await;
    let host = proxy.host();
    let repo = BareRepo::with_files(
        "main",
        &[(
            "kustomization.yaml",
            &format!("images:\n  - name: {host}/team/api\n    newTag: 1.0.0\n"),
        )],
    );
    let app = |platform: &str| {
        format!(
            "name: multi\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: '^1'}}\n{platform}    targets: [{{file: kustomization.yaml}}]\n",
            repo.file_url()
        )
    };
    let setup = setup(&host, &[("multi", app(""))]);
    setup.edit_global(|text| {
        text.replace(
            "    insecure: true\n",
            "    insecure: true\n    platform: [linux/amd64, linux/arm64]\n",
        )
    });

    let out = once(&setup, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1.1.0")
            && stdout.contains(
                "skipped 1.3.0 (no linux/arm64/v8 image), 1.2.0 (no linux/arm64/v8 image)"
            ),
        "{}",
        text(&out)
    );
    // Best first, stopping at 1.1.0: the deployed 1.0.0's manifest is never fetched.
    assert_eq!(
        proxy.count("/manifests/1.0.0"),
        0,
        "{:#?}",
        proxy.requests()
    );
    assert!(proxy.count("/manifests/1.3.0") >= 1);

    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let file = repo.show("main", "kustomization.yaml");
    assert!(file.contains("newTag: 1.1.0"), "{file}");

    // The image's own `platform` overrides the registry's: amd64 alone takes 1.3.0.
    std::fs::write(
        setup.path().join("apps/multi.yaml"),
        app("    platform: linux/amd64\n"),
    )
    .unwrap();
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let file = repo.show("main", "kustomization.yaml");
    assert!(file.contains("newTag: 1.3.0"), "{file}");
}

/// Regression (issue 13): the default commit subject counted written forms, not images: one
/// image written as a Kustomize `newTag` and as a container `image:` reference read "update 2
/// images". Templates now get one `images` row per image and new tag, with plain `tag`,
/// `digest` and `ref`.
#[tokio::test(flavor = "multi_thread")]
async fn one_image_in_two_written_forms_is_one_image_in_the_commit_subject() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    push_tags(&registry, "team/api", &["1.0.0", "1.1.0"]).await;
    let deploy = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: {host}/team/api:1.0.0\n"
    );
    let repo = BareRepo::with_files(
        "main",
        &[
            (
                "overlays/dev/kustomization.yaml",
                &KUSTOMIZATION.replace("REGISTRY", &host),
            ),
            ("k8s/deploy.yaml", &deploy),
        ],
    );
    let app = format!(
        "name: shop\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - file: overlays/dev/kustomization.yaml\n      - file: k8s/deploy.yaml\n",
        repo.file_url()
    );
    let setup = setup(&host, &[("shop", app)]);
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = repo.log("main");
    assert_eq!(
        log[0].1,
        "chore(shop): update api to 1.1.0",
        "{}",
        text(&out)
    );
}

/// Every `*_file` in the global file is read relative to that file's folder, as `ca_file`,
/// `docker_config` and the notification files always were: `git.signing_key_file: keys/signing`
/// next to the config signs the commit whatever the working directory. And `validate` names a
/// `*_file` that does not exist, at its line, as a warning (the file may be mounted later).
#[tokio::test(flavor = "multi_thread")]
async fn relative_key_files_are_read_next_to_the_config_and_validate_names_missing_ones() {
    let (_registry, repo, setup) = shop_with_one_update().await;
    std::fs::create_dir(setup.path().join("keys")).unwrap();
    ssh_keygen("ed25519", &setup.path().join("keys/signing"));
    setup.edit_global(|text| {
        text.replace(
            "git:\n",
            "git:\n  signing_key_file: keys/signing\n  credentials:\n    - {url: 'https://git.example.com/', username: bot, password_file: keys/token}\n",
        )
    });

    let out = setup.imagebump(["validate"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    let token = setup.path().join("keys/token");
    assert!(
        said.contains(&format!(
            "imagebump.yaml:6:71: warning: `password_file` names {}, which does not exist; `run` and `once` refuse to start without it",
            token.display()
        )),
        "{said}"
    );
    assert!(!said.contains("keys/signing"), "{said}");

    // `once` reads every credential file at its start: the token must be there.
    std::fs::write(&token, "t0ken\n").unwrap();
    let out = once(&setup, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let head = repo.log("main")[0].0.clone();
    let commit = Command::new("git")
        .arg("-C")
        .arg(repo.path())
        .args(["cat-file", "commit", &head])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&commit.stdout).contains("-----BEGIN SSH SIGNATURE-----"),
        "the commit is not signed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_without_diffs_plans_the_same_changes_and_leaves_the_diffs_out() {
    use imagebump::engine::{Engine, PassOptions};
    let (_registry, repo, setup) = shop_with_one_update().await;
    let loaded = imagebump::config::load(&setup.global()).unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let engine = Engine::new(loaded.config).unwrap();
    let pass = |without_diffs| {
        let engine = engine.clone();
        async move {
            engine
                .run_pass(&PassOptions {
                    dry_run: true,
                    without_diffs,
                    ..PassOptions::default()
                })
                .await
        }
    };
    let with = pass(false).await;
    let without = pass(true).await;
    let (with, without) = (&with.apps[0], &without.apps[0]);
    assert_eq!(with.error_text(), None, "{with:?}");
    assert_eq!(with.changes.len(), 2, "{with:?}");
    assert_eq!(
        format!("{:?}", with.changes),
        format!("{:?}", without.changes)
    );
    assert_eq!(with.diffs.len(), 2, "one diff per changed file: {with:?}");
    assert!(with.diffs[0].contains("+++ b/"), "{:?}", with.diffs);
    assert!(without.diffs.is_empty(), "{without:?}");
    assert_eq!(repo.log("main").len(), 1, "a dry run writes nothing");
}
