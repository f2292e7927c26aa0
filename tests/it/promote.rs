//! Promotion between environments (issue 19, part 2): prod takes what staging has run for its
//! soak, read from staging's history on its branch. A real registry, real git remotes whose
//! history is made with back-dated commits (`GIT_COMMITTER_DATE`), the forge stand-ins for the
//! pull requests, and `imagebump once` / `validate` / `explain` as users run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagebump::forge::ForgeKind;

use crate::support::config::ConfigDir;
use crate::support::forge::{StandIn, TOKEN, TOKEN_ENV};
use crate::support::git::BareRepo;
use crate::support::imagebump::text;
use crate::support::registry::{ImageSpec, TestRegistry};

const BOT: &str = "bot@imagebump.test";

/// A values file holding `tag` of REGISTRY/team/api (the tag on line 4).
fn values(host: &str, tag: &str) -> String {
    format!("api:\n  image:\n    repository: {host}/team/api\n    tag: {tag}\n")
}

/// Someone's clone of a config repo, committing with back-dated times.
struct Writer {
    _dir: tempfile::TempDir,
    work: PathBuf,
}

impl Writer {
    fn clone_of(repo: &BareRepo) -> Writer {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let writer = Writer {
            work: work.clone(),
            _dir: dir,
        };
        writer.git_in(
            work.parent().unwrap(),
            &["clone", "-q", &repo.path().display().to_string(), "work"],
            0,
            "jane@example.com",
        );
        writer
    }

    fn git_in(&self, dir: &Path, args: &[&str], hours_ago: i64, email: &str) -> String {
        let when = time::OffsetDateTime::now_utc() - time::Duration::hours(hours_ago);
        let date = format!("@{} +0000", when.unix_timestamp());
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "Someone")
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_COMMITTER_NAME", "Someone")
            .env("GIT_COMMITTER_EMAIL", email)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Write `files`, commit them `hours_ago` as `email`, push to main; the commit id.
    fn commit(&self, files: &[(&str, &str)], hours_ago: i64, email: &str) -> String {
        let _ = self.git_in(&self.work, &["fetch", "-q", "origin"], 0, email);
        let remote = Command::new("git")
            .args(["rev-parse", "-q", "--verify", "origin/main"])
            .current_dir(&self.work)
            .output()
            .unwrap();
        if remote.status.success() {
            self.git_in(
                &self.work,
                &["checkout", "-q", "-B", "main", "origin/main"],
                0,
                email,
            );
        }
        for (name, content) in files {
            let path = self.work.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            self.git_in(&self.work, &["add", name], 0, email);
        }
        let message = format!("{hours_ago} hours ago");
        self.git_in(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", &message],
            hours_ago,
            email,
        );
        self.git_in(&self.work, &["push", "-q", "origin", "HEAD:main"], 0, email);
        self.git_in(&self.work, &["rev-parse", "HEAD"], 0, email)
    }
}

/// An app file: `name` deploying `file` of `repo`, with `keys` (whole lines) at app level and
/// `image_keys` under its image.
fn app_file(
    name: &str,
    repo: &str,
    host: &str,
    file: &str,
    keys: &str,
    image_keys: &str,
) -> String {
    format!(
        "name: {name}\nrepo: {repo}\n{keys}images:\n  - name: api\n    image: {host}/team/api\n{image_keys}    targets:\n      - {{file: {file}, path: api.image.tag}}\n"
    )
}

/// The `write: pull-request` keys for a forge stand-in.
fn pr_keys(forge: &StandIn, kind: &str) -> String {
    format!(
        "pull_request: {{forge: {kind}, api_url: {}, project: {}, token_env: {TOKEN_ENV}}}\n",
        forge.api_url(),
        forge.project()
    )
}

struct Case {
    registry: TestRegistry,
    repo: BareRepo,
    writer: Writer,
    forge: StandIn,
}

impl Case {
    /// Tags 1.3.0, 1.4.0, 1.5.0 and an empty config repo.
    async fn new(kind: ForgeKind) -> Case {
        let registry = TestRegistry::start_plain().await;
        let pusher = registry.pusher();
        for tag in ["1.3.0", "1.4.0", "1.5.0"] {
            pusher
                .push_image("team/api", tag, &ImageSpec::new("2026-01-01T00:00:00Z"))
                .await;
        }
        let repo = BareRepo::empty("main");
        let writer = Writer::clone_of(&repo);
        Case {
            registry,
            repo,
            writer,
            forge: StandIn::start(kind).await,
        }
    }

    fn host(&self) -> String {
        self.registry.host()
    }

    /// staging/values.yaml gets each (tag, hours ago) in turn (prod/values.yaml holds `prod`
    /// from the first commit on).
    fn staging(&self, prod: &str, history: &[(&str, i64)]) {
        let host = self.host();
        for (i, (tag, ago)) in history.iter().enumerate() {
            let staging = values(&host, tag);
            let prod = values(&host, prod);
            let mut files = vec![("staging/values.yaml", staging.as_str())];
            if i == 0 {
                files.push(("prod/values.yaml", prod.as_str()));
            }
            self.writer.commit(&files, *ago, BOT);
        }
    }

    /// The usual two apps: shop-staging (the registry's newest under `~1.3`, so a pass leaves
    /// it alone) and shop-prod promoted from it with `promote` (the keys inside `{}`) and
    /// `policy`.
    fn config(&self, kind: &str, promote: &str, policy: &str, global: &str) -> ConfigDir {
        let (host, url) = (self.host(), self.repo.file_url());
        ConfigDir::new(&host, global)
            .app(
                "shop-staging",
                &app_file(
                    "shop-staging",
                    &url,
                    &host,
                    "staging/values.yaml",
                    "",
                    "    policy: {semver: \"~1.3\"}\n    on_rollback: ignore\n",
                ),
            )
            .app(
                "shop-prod",
                &app_file(
                    "shop-prod",
                    &url,
                    &host,
                    "prod/values.yaml",
                    &pr_keys(&self.forge, kind),
                    &format!("    policy: {{semver: \"{policy}\"}}\n    promote: {{{promote}}}\n"),
                ),
            )
    }
}

fn once(dir: &ConfigDir, args: &[&str]) -> Output {
    let out = dir
        .imagebump(["once"])
        .args(args)
        .env(TOKEN_ENV, TOKEN)
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    out
}

/// `once --app APP --output json`: the image's `why`.
fn why(dir: &ConfigDir, app: &str) -> serde_json::Value {
    let out = once(dir, &["--app", app, "--output", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["apps"][0]["images"][0]["why"].clone()
}

fn tag_in(values: &str) -> String {
    values
        .lines()
        .find_map(|l| l.trim().strip_prefix("tag: "))
        .unwrap()
        .to_string()
}

/// Staging got 1.5.0 25 h ago: prod's pull request proposes it with the evidence (source app,
/// file and line, the commit, when, how long, the digest), on every forge stand-in.
#[tokio::test(flavor = "multi_thread")]
async fn a_tag_staging_held_for_its_soak_is_proposed_to_prod_with_the_evidence() {
    for (kind, name) in [
        (ForgeKind::Github, "github"),
        (ForgeKind::Gitlab, "gitlab"),
        (ForgeKind::Gitea, "gitea"),
    ] {
        let case = Case::new(kind).await;
        case.staging("1.3.0", &[("1.3.0", 100)]);
        let commit = case.writer.commit(
            &[("staging/values.yaml", &values(&case.host(), "1.5.0"))],
            25,
            BOT,
        );
        let dir = case.config(name, "from: shop-staging, soak: 24h", "^1", "");
        let out = once(&dir, &["--app", "shop-prod"]);
        assert!(
            text(&out).contains("1.5.0 promoted from shop-staging"),
            "{}",
            text(&out)
        );
        let prs = case.forge.prs();
        assert_eq!(prs.len(), 1, "{name}: {prs:?}");
        let body = &prs[0].body;
        for needed in [
            "`1.5.0` from **shop-staging**",
            "`staging/values.yaml:4`",
            &commit[..7],
            "soaked 1d 1h",
            "sha256:",
        ] {
            assert!(body.contains(needed), "{name}: {needed} not in\n{body}");
        }
        let proposed = case.repo.show(&prs[0].head, "prod/values.yaml");
        assert_eq!(tag_in(&proposed), "1.5.0");
        assert_eq!(tag_in(&case.repo.show("main", "prod/values.yaml")), "1.3.0");
        assert!(
            case.forge.violations().is_empty(),
            "{:?}",
            case.forge.violations()
        );
    }
}

/// Staging got 1.5.0 an hour ago: nothing for prod, and the reason says since when and when
/// it is ready (in `once` JSON and text, and in `explain`).
#[tokio::test(flavor = "multi_thread")]
async fn a_tag_staging_got_an_hour_ago_waits_and_says_until_when() {
    let case = Case::new(ForgeKind::Github).await;
    case.staging("1.3.0", &[("1.3.0", 1)]);
    case.writer.commit(
        &[("staging/values.yaml", &values(&case.host(), "1.5.0"))],
        1,
        BOT,
    );
    let dir = case.config("github", "from: shop-staging", "^1", "");
    let why = why(&dir, "shop-prod");
    assert_eq!(why["kind"], "promotion", "{why}");
    assert_eq!(why["promotion"], "soaking", "{why}");
    assert_eq!(why["tag"], "1.5.0");
    let since = time::OffsetDateTime::parse(
        why["since"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ready = time::OffsetDateTime::parse(
        why["ready"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(ready - since, time::Duration::hours(24));
    let ago = time::OffsetDateTime::now_utc() - since;
    assert!(
        ago > time::Duration::minutes(59) && ago < time::Duration::minutes(70),
        "{ago}"
    );
    assert!(case.forge.prs().is_empty(), "{:?}", case.forge.prs());

    for args in [
        &["--app", "shop-prod"][..],
        &["--app", "shop-prod", "--dry-run"],
    ] {
        let out = once(&dir, args);
        assert!(
            text(&out).contains("1.5.0 soaking in shop-staging since"),
            "{}",
            text(&out)
        );
    }
    let out = dir
        .imagebump(["explain", "shop-prod"])
        .env(TOKEN_ENV, TOKEN)
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("1.5.0 soaking in shop-staging since")
            && text(&out).contains("ready at"),
        "{}",
        text(&out)
    );
}

/// Staging moved 1.4.0 (30 h ago) → 1.5.0 (1 h ago): prod gets 1.4.0, and the reason names
/// the one still soaking.
#[tokio::test(flavor = "multi_thread")]
async fn while_a_newer_tag_soaks_prod_gets_the_previous_soaked_one() {
    let case = Case::new(ForgeKind::Github).await;
    case.staging("1.3.0", &[("1.3.0", 100), ("1.4.0", 30), ("1.5.0", 1)]);
    let dir = case.config("github", "from: shop-staging, soak: 24h", "^1", "");
    once(&dir, &["--app", "shop-prod"]);
    let prs = case.forge.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert_eq!(
        tag_in(&case.repo.show(&prs[0].head, "prod/values.yaml")),
        "1.4.0"
    );
    assert!(prs[0].body.contains("soaked 1d 5h"), "{}", prs[0].body);
    assert!(!prs[0].body.contains("1.5.0"), "{}", prs[0].body);
}

/// Staging rolled back 1.5.0 → 1.4.0: 1.5.0 is never promoted, not even when staging takes it
/// again later; the reason says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_tag_staging_rolled_back_from_is_never_promoted() {
    let case = Case::new(ForgeKind::Github).await;
    case.staging("1.4.0", &[("1.3.0", 200), ("1.4.0", 150), ("1.5.0", 100)]);
    let host = case.host();
    case.writer.commit(
        &[("staging/values.yaml", &values(&host, "1.4.0"))],
        60,
        "jane@example.com",
    );
    let dir = case.config("github", "from: shop-staging", "^1", "");
    let why_now = why(&dir, "shop-prod");
    assert_eq!(why_now["promotion"], "rolled_back", "{why_now}");
    assert_eq!(why_now["tag"], "1.5.0");
    // Staging takes 1.5.0 again, 30 h ago: still not promoted.
    case.writer.commit(
        &[("staging/values.yaml", &values(&host, "1.5.0"))],
        30,
        "jane@example.com",
    );
    let out = once(&dir, &["--app", "shop-prod"]);
    assert!(
        text(&out).contains("shop-staging rolled back from 1.5.0"),
        "{}",
        text(&out)
    );
    assert!(case.forge.prs().is_empty(), "{:?}", case.forge.prs());
    assert_eq!(tag_in(&case.repo.show("main", "prod/values.yaml")), "1.4.0");
}

/// dev → staging → prod, each link with its own soak: one pass proposes dev's 1.5.0 (2 h,
/// soak 1h) to staging and staging's 1.4.0 (30 h, soak 24h) to prod.
#[tokio::test(flavor = "multi_thread")]
async fn a_three_link_chain_promotes_each_link_by_its_own_soak() {
    let case = Case::new(ForgeKind::Github).await;
    let (host, url) = (case.host(), case.repo.file_url());
    case.writer.commit(
        &[
            ("dev/values.yaml", &values(&host, "1.3.0")),
            ("staging/values.yaml", &values(&host, "1.3.0")),
            ("prod/values.yaml", &values(&host, "1.3.0")),
        ],
        100,
        BOT,
    );
    case.writer
        .commit(&[("staging/values.yaml", &values(&host, "1.4.0"))], 30, BOT);
    case.writer
        .commit(&[("dev/values.yaml", &values(&host, "1.5.0"))], 2, BOT);
    let keys = pr_keys(&case.forge, "github");
    let dir = ConfigDir::new(&host, "")
        .app(
            "shop-dev",
            &app_file(
                "shop-dev",
                &url,
                &host,
                "dev/values.yaml",
                "",
                "    policy: {semver: \"^1\"}\n",
            ),
        )
        .app(
            "shop-staging",
            &app_file(
                "shop-staging",
                &url,
                &host,
                "staging/values.yaml",
                &keys,
                "    policy: {semver: \"^1\"}\n    promote: {from: shop-dev, soak: 1h}\n",
            ),
        )
        .app(
            "shop-prod",
            &app_file(
                "shop-prod",
                &url,
                &host,
                "prod/values.yaml",
                &keys,
                "    policy: {semver: \"^1\"}\n    promote: {from: shop-staging, soak: 24h}\n",
            ),
        );
    let out = once(&dir, &[]);
    let mut prs = case.forge.prs();
    prs.sort_by(|a, b| a.head.cmp(&b.head));
    assert_eq!(prs.len(), 2, "{prs:?}\n{}", text(&out));
    assert_eq!(prs[0].head, "imagebump/shop-prod");
    assert_eq!(
        tag_in(&case.repo.show(&prs[0].head, "prod/values.yaml")),
        "1.4.0"
    );
    assert_eq!(prs[1].head, "imagebump/shop-staging");
    assert_eq!(
        tag_in(&case.repo.show(&prs[1].head, "staging/values.yaml")),
        "1.5.0"
    );
    assert!(prs[1].body.contains("from **shop-dev**"), "{}", prs[1].body);
}

/// The source app lives in another config repository: its history is read from its own clone.
#[tokio::test(flavor = "multi_thread")]
async fn the_source_may_live_in_another_repository() {
    let case = Case::new(ForgeKind::Github).await;
    let host = case.host();
    // prod's repo: only prod/values.yaml.
    case.writer
        .commit(&[("prod/values.yaml", &values(&host, "1.3.0"))], 100, BOT);
    let staging_repo = BareRepo::empty("main");
    let staging = Writer::clone_of(&staging_repo);
    staging.commit(&[("values.yaml", &values(&host, "1.3.0"))], 100, BOT);
    staging.commit(&[("values.yaml", &values(&host, "1.5.0"))], 26, BOT);
    let dir = ConfigDir::new(&host, "")
        .app(
            "shop-staging",
            &app_file(
                "shop-staging",
                &staging_repo.file_url(),
                &host,
                "values.yaml",
                "",
                "    policy: {semver: \"~1.3\"}\n    on_rollback: ignore\n",
            ),
        )
        .app(
            "shop-prod",
            &app_file(
                "shop-prod",
                &case.repo.file_url(),
                &host,
                "prod/values.yaml",
                &pr_keys(&case.forge, "github"),
                "    policy: {semver: \"^1\"}\n    promote: {from: shop-staging}\n",
            ),
        );
    once(&dir, &["--app", "shop-prod"]);
    let prs = case.forge.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert_eq!(
        tag_in(&case.repo.show(&prs[0].head, "prod/values.yaml")),
        "1.5.0"
    );
    assert!(prs[0].body.contains("`values.yaml:4`"), "{}", prs[0].body);
}

/// A cycle in `from:` is refused by `validate`, at each app's `from`, with file:line:col; an
/// unknown source app and an image it lacks too.
#[tokio::test(flavor = "multi_thread")]
async fn validate_refuses_a_cycle_an_unknown_app_and_a_missing_image() {
    let case = Case::new(ForgeKind::Github).await;
    let (host, url) = (case.host(), case.repo.file_url());
    let keys = pr_keys(&case.forge, "github");
    let promoted = |from: &str| {
        format!("    policy: {{semver: \"^1\"}}\n    promote: {{from: {from}, soak: 1h}}\n")
    };
    let dir = ConfigDir::new(&host, "")
        .app(
            "a",
            &app_file("a", &url, &host, "a.yaml", &keys, &promoted("b")),
        )
        .app(
            "b",
            &app_file("b", &url, &host, "b.yaml", &keys, &promoted("a")),
        )
        .app(
            "c",
            &app_file("c", &url, &host, "c.yaml", &keys, &promoted("shop-stagin")),
        )
        .app(
            "d",
            &app_file("d", &url, &host, "d.yaml", &keys, &promoted("a")).replace(
                "    promote: {from: a, soak: 1h}",
                "    promote: {from: a, image: web}",
            ),
        );
    let out = dir.imagebump(["validate"]).output();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (a, b, c, d) = (
        dir.path().join("apps/a.yaml"),
        dir.path().join("apps/b.yaml"),
        dir.path().join("apps/c.yaml"),
        dir.path().join("apps/d.yaml"),
    );
    for line in [
        format!(
            "{}:8:21: `promote.from` makes a cycle: a/api → b/api → a/api",
            a.display()
        ),
        format!(
            "{}:8:21: `promote.from` makes a cycle: b/api → a/api → b/api",
            b.display()
        ),
        format!(
            "{}:8:21: `promote.from`: no app named `shop-stagin`",
            c.display()
        ),
        format!(
            "{}:8:21: `promote`: app `a` has no image named `web` (its images: api)",
            d.display()
        ),
    ] {
        assert!(stderr.contains(&line), "{line}\nnot in:\n{stderr}");
    }
}

/// An explicit `write: commit` on a promoted app is allowed, with a warning.
#[tokio::test(flavor = "multi_thread")]
async fn validate_warns_about_a_promoted_app_that_commits() {
    let case = Case::new(ForgeKind::Github).await;
    let (host, url) = (case.host(), case.repo.file_url());
    let dir = case.config("github", "from: shop-staging", "^1", "").app(
        "shop-qa",
        &app_file(
            "shop-qa",
            &url,
            &host,
            "qa/values.yaml",
            "write: commit\n",
            "    policy: {semver: \"^1\"}\n    promote: {from: shop-staging}\n",
        ),
    );
    let out = dir.imagebump(["validate"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let qa = dir.path().join("apps/shop-qa.yaml");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "{}:3:8: warning: image `api` is promoted and `write: commit` pushes it without a review",
            qa.display()
        )),
        "{}",
        text(&out)
    );
}

/// Prod's own range forbids the tag that soaked: nothing, and the reason says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_soaked_tag_outside_prods_range_is_not_promoted() {
    let case = Case::new(ForgeKind::Github).await;
    case.staging("1.4.0", &[("1.4.0", 100), ("1.5.0", 30)]);
    let dir = case.config("github", "from: shop-staging", "~1.4", "");
    let why = why(&dir, "shop-prod");
    assert_eq!(why["promotion"], "not_allowed", "{why}");
    assert_eq!(why["tag"], "1.5.0");
    assert!(case.forge.prs().is_empty(), "{:?}", case.forge.prs());
    let out = once(&dir, &["--app", "shop-prod"]);
    assert!(
        text(&out).contains("1.5.0 soaked in shop-staging, but this app's policy (semver ~1.4"),
        "{}",
        text(&out)
    );
}

/// Staging's last change is older than the history bound (`history.max_commits`): no guess,
/// a reason naming the bound.
#[tokio::test(flavor = "multi_thread")]
async fn a_history_deeper_than_the_bound_gives_a_clear_reason() {
    let case = Case::new(ForgeKind::Github).await;
    case.staging("1.3.0", &[("1.3.0", 100), ("1.5.0", 50)]);
    for ago in [40, 35, 30, 25] {
        case.writer
            .commit(&[("README.md", &format!("{ago}\n"))], ago, BOT);
    }
    let bounded = "history: {max_commits: 3}\n";
    let dir = case.config("github", "from: shop-staging", "^1", bounded);
    let why = why(&dir, "shop-prod");
    assert_eq!(why["promotion"], "too_deep", "{why}");
    assert_eq!(why["bound"], "3 commits or 90d", "{why}");
    assert!(case.forge.prs().is_empty(), "{:?}", case.forge.prs());
    // With the default bound, 1.5.0 (50 h) is promoted.
    let dir = case.config("github", "from: shop-staging", "^1", "");
    once(&dir, &["--app", "shop-prod"]);
    assert_eq!(case.forge.prs().len(), 1, "{:?}", case.forge.prs());
}

/// Staging pinned 1.5.0 by digest: prod (`pin_digest`) gets the same digest; once the tag is
/// pushed again with another image, it is not promoted (the registry no longer gives what
/// staging ran).
#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_digest_must_still_be_the_registrys() {
    let case = Case::new(ForgeKind::Github).await;
    let pusher = case.registry.pusher();
    let ran = pusher
        .push_image("team/api", "1.5.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await
        .digest;
    case.staging("1.3.0", &[("1.3.0", 100), (&format!("1.5.0@{ran}"), 30)]);
    let dir = case.config("github", "from: shop-staging", "^1", "").app(
        "shop-prod",
        &app_file(
            "shop-prod",
            &case.repo.file_url(),
            &case.host(),
            "prod/values.yaml",
            &pr_keys(&case.forge, "github"),
            "    policy: {semver: \"^1\"}\n    pin_digest: true\n    promote: {from: shop-staging}\n",
        ),
    );
    let out = once(&dir, &["--app", "shop-prod", "--dry-run"]);
    assert!(
        text(&out).contains(&format!("1.5.0@{ran}")),
        "{}",
        text(&out)
    );
    // The tag moves to another image: staging's digest is no longer what 1.5.0 gives.
    let moved = pusher
        .push_image("team/api", "1.5.0", &ImageSpec::new("2026-02-01T00:00:00Z"))
        .await
        .digest;
    assert_ne!(moved, ran);
    let why = why(&dir, "shop-prod");
    assert_eq!(why["promotion"], "digest_changed", "{why}");
    assert_eq!(why["pinned"], ran.as_str());
    assert_eq!(why["registry"], moved.as_str());
    assert!(case.forge.prs().is_empty(), "{:?}", case.forge.prs());
}

/// Prod already runs something newer than what soaked in staging: no downgrade.
#[tokio::test(flavor = "multi_thread")]
async fn a_soaked_tag_older_than_prods_is_not_proposed() {
    let case = Case::new(ForgeKind::Github).await;
    case.staging("1.5.0", &[("1.3.0", 100), ("1.4.0", 50)]);
    let dir = case.config("github", "from: shop-staging", "^1", "");
    let why = why(&dir, "shop-prod");
    assert_eq!(why["kind"], "not_downgrading", "{why}");
    assert!(case.forge.prs().is_empty(), "{:?}", case.forge.prs());
}

/// A person rolled prod back from 1.5.0 (which imagebump wrote): 1.5.0 soaked in staging is not
/// proposed again (prod's own `on_rollback`, skip-version by default).
#[tokio::test(flavor = "multi_thread")]
async fn prods_own_rollback_holds_against_the_promotion() {
    let case = Case::new(ForgeKind::Github).await;
    let host = case.host();
    case.staging("1.4.0", &[("1.4.0", 100), ("1.5.0", 50)]);
    case.writer
        .commit(&[("prod/values.yaml", &values(&host, "1.5.0"))], 10, BOT);
    case.writer.commit(
        &[("prod/values.yaml", &values(&host, "1.4.0"))],
        5,
        "jane@example.com",
    );
    let dir = case.config("github", "from: shop-staging", "^1", "");
    let why = why(&dir, "shop-prod");
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["tag"], "1.5.0", "{why}");
    assert!(case.forge.prs().is_empty(), "{:?}", case.forge.prs());
}

/// `trust: bot`: a value a person wrote in staging is not promoted, and the reason says who.
#[tokio::test(flavor = "multi_thread")]
async fn under_trust_bot_a_persons_tag_in_staging_is_not_promoted() {
    let case = Case::new(ForgeKind::Github).await;
    case.staging("1.3.0", &[("1.3.0", 100)]);
    case.writer.commit(
        &[("staging/values.yaml", &values(&case.host(), "1.5.0"))],
        30,
        "jane@example.com",
    );
    let dir = case.config("github", "from: shop-staging, trust: bot", "^1", "");
    let why = why(&dir, "shop-prod");
    assert_eq!(why["promotion"], "untrusted", "{why}");
    assert_eq!(why["by"], "jane@example.com", "{why}");
    assert!(case.forge.prs().is_empty(), "{:?}", case.forge.prs());
    // Under the default, `any`, it is.
    let dir = case.config("github", "from: shop-staging", "^1", "");
    once(&dir, &["--app", "shop-prod"]);
    assert_eq!(case.forge.prs().len(), 1, "{:?}", case.forge.prs());
}

/// The clock is the first-parent commit: a tag committed 50 h ago on a side branch and merged
/// an hour ago has soaked an hour.
#[tokio::test(flavor = "multi_thread")]
async fn the_clock_is_the_merge_on_the_source_branch_not_the_side_commit() {
    let case = Case::new(ForgeKind::Github).await;
    case.staging("1.3.0", &[("1.3.0", 100)]);
    let w = &case.writer;
    let work = w.work.clone();
    w.git_in(&work, &["checkout", "-q", "-b", "feature"], 0, BOT);
    std::fs::write(
        work.join("staging/values.yaml"),
        values(&case.host(), "1.5.0"),
    )
    .unwrap();
    w.git_in(
        &work,
        &["commit", "-q", "-am", "1.5.0 on a side branch"],
        50,
        BOT,
    );
    w.git_in(&work, &["checkout", "-q", "main"], 0, BOT);
    w.git_in(
        &work,
        &["merge", "-q", "--no-ff", "-m", "merge feature", "feature"],
        1,
        "jane@example.com",
    );
    w.git_in(&work, &["push", "-q", "origin", "HEAD:main"], 0, BOT);
    let dir = case.config("github", "from: shop-staging", "^1", "");
    let why = why(&dir, "shop-prod");
    assert_eq!(why["promotion"], "soaking", "{why}");
    assert_eq!(why["tag"], "1.5.0", "{why}");
    assert!(case.forge.prs().is_empty(), "{:?}", case.forge.prs());
}

/// The docs' YAML is the example's: every `yaml` block of docs/promotion.md is a part of one of
/// the app files of config/promotion/ (which `every_example_config_validates` checks).
#[test]
fn the_docs_yaml_is_the_validated_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/promotion.md")).unwrap();
    let apps = root.join("config/promotion/apps");
    let examples: Vec<String> = std::fs::read_dir(&apps)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let blocks: Vec<&str> = docs
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(!blocks.is_empty());
    for block in blocks {
        assert!(
            examples.iter().any(|e| e.contains(block)),
            "not in config/promotion/apps:\n{block}"
        );
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme.split("\n## Promotion\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    for block in section
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
    {
        assert!(
            examples.iter().any(|e| e.contains(block)),
            "README block not in config/promotion/apps:\n{block}"
        );
    }
}

/// `trust: signed`: only a tag whose first-parent commit in staging carries an SSH signature by
/// a key of the allowed-signers file is promoted; an unsigned newer one is passed over, and with
/// another key nothing is promoted, the reason naming the commit.
#[tokio::test(flavor = "multi_thread")]
async fn under_trust_signed_only_a_signed_commits_tag_is_promoted() {
    let case = Case::new(ForgeKind::Github).await;
    let keys = tempfile::tempdir().unwrap();
    let keygen = |name: &str| {
        let key = keys.path().join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(status.success());
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        (key, public.trim().to_string())
    };
    let (ops_key, ops_public) = keygen("ops");
    let (_, other_public) = keygen("other");
    let signers = keys.path().join("allowed_signers");
    std::fs::write(&signers, format!("ops@example.com {ops_public}\n")).unwrap();
    let others = keys.path().join("other_signers");
    std::fs::write(&others, format!("other@example.com {other_public}\n")).unwrap();

    case.staging("1.3.0", &[("1.3.0", 100)]);
    let host = case.host();
    // 1.4.0 in a signed commit 60 h ago, 1.5.0 unsigned 30 h ago.
    let w = &case.writer;
    std::fs::write(w.work.join("staging/values.yaml"), values(&host, "1.4.0")).unwrap();
    let key = ops_key.display().to_string();
    w.git_in(
        &w.work,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={key}"),
            "commit",
            "-q",
            "-S",
            "-am",
            "1.4.0, signed",
        ],
        60,
        BOT,
    );
    w.git_in(&w.work, &["push", "-q", "origin", "HEAD:main"], 0, BOT);
    let unsigned = w.commit(&[("staging/values.yaml", &values(&host, "1.5.0"))], 30, BOT);

    let trust = |file: &Path| {
        format!(
            "from: shop-staging, trust: signed, allowed_signers: {}",
            file.display()
        )
    };
    let dir = case.config("github", &trust(&others), "^1", "");
    let why = why(&dir, "shop-prod");
    assert_eq!(why["promotion"], "unsigned", "{why}");
    assert_eq!(why["tag"], "1.5.0", "{why}");
    assert_eq!(why["commit"], &unsigned[..7], "{why}");
    assert!(case.forge.prs().is_empty(), "{:?}", case.forge.prs());

    let dir = case.config("github", &trust(&signers), "^1", "");
    once(&dir, &["--app", "shop-prod"]);
    let prs = case.forge.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert_eq!(
        tag_in(&case.repo.show(&prs[0].head, "prod/values.yaml")),
        "1.4.0"
    );
}
