//! Human rollbacks stick (issue 19, part 1): the real registry, a real git remote, people
//! working in their own clones with the git CLI, and `imagebump once` as users run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagebump::forge::ForgeKind;

use crate::support::config::ConfigDir;
use crate::support::forge::{StandIn, TOKEN, TOKEN_ENV};
use crate::support::git::{BareRepo, git};
use crate::support::imagebump::text;
use crate::support::registry::TestRegistry;

const VALUES: &str = "\
# prod values
replicaCount: 2
api:
  image:
    repository: REGISTRY/team/api
    tag: 1.1.0
";

/// A person's clone of the config repo: commits with the git CLI under their own name.
struct Person {
    _dir: tempfile::TempDir,
    work: PathBuf,
    email: String,
}

impl Person {
    fn clone_of(repo: &BareRepo, email: &str) -> Person {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let person = Person {
            work: work.clone(),
            email: email.to_string(),
            _dir: dir,
        };
        person.git(
            dir_of(&work),
            &["clone", "-q", &repo.path().display().to_string(), "work"],
        );
        person
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "Jane")
            .env("GIT_AUTHOR_EMAIL", &self.email)
            .env("GIT_COMMITTER_NAME", "Jane")
            .env("GIT_COMMITTER_EMAIL", &self.email)
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

    /// `git ARGS` in the clone.
    fn run(&self, args: &[&str]) -> String {
        self.git(&self.work, args)
    }

    /// Fetch and reset to the remote's main.
    fn pull(&self) {
        self.run(&["fetch", "-q", "origin"]);
        self.run(&["checkout", "-q", "-B", "main", "origin/main"]);
    }

    /// Pull, revert the head commit, push; the revert's short id.
    fn revert_head(&self) -> String {
        self.pull();
        self.run(&["revert", "--no-edit", "HEAD"]);
        self.run(&["push", "-q", "origin", "HEAD:main"]);
        self.run(&["rev-parse", "--short=7", "HEAD"])
    }

    /// Pull, replace `from` with `to` in `file`, commit, push.
    fn edit(&self, file: &str, from: &str, to: &str) {
        self.pull();
        let path = self.work.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        self.run(&["commit", "-q", "-am", &format!("edit {file}")]);
        self.run(&["push", "-q", "origin", "HEAD:main"]);
    }
}

fn dir_of(path: &Path) -> &Path {
    path.parent().unwrap()
}

struct Case {
    registry: TestRegistry,
    repo: BareRepo,
    dir: ConfigDir,
    jane: Person,
}

impl Case {
    /// Tags 1.1.0 and 1.2.0, the repo at 1.1.0, one app with `extra` image keys.
    async fn new(extra: &str) -> Case {
        Case::with_app_keys("", extra).await
    }

    /// Like [`Case::new`], with `app_keys` (whole lines) in the app file.
    async fn with_app_keys(app_keys: &str, extra: &str) -> Case {
        let registry = TestRegistry::start_plain().await;
        let host = registry.host();
        let case_repo = BareRepo::with_files(
            "main",
            &[("values.yaml", &VALUES.replace("REGISTRY", &host))],
        );
        let dir = ConfigDir::new(&host, "").app(
            "shop",
            &format!(
                "name: shop\nrepo: {}\n{app_keys}images:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n{extra}    targets:\n      - {{file: values.yaml, path: api.image.tag}}\n",
                case_repo.file_url()
            ),
        );
        let jane = Person::clone_of(&case_repo, "jane@example.com");
        let case = Case {
            registry,
            repo: case_repo,
            dir,
            jane,
        };
        case.push_tags(&["1.1.0", "1.2.0"]).await;
        case
    }

    async fn push_tags(&self, tags: &[&str]) {
        let pusher = self.registry.pusher();
        for tag in tags {
            let spec = crate::support::registry::ImageSpec::new("2026-01-01T00:00:00Z");
            pusher.push_image("team/api", tag, &spec).await;
        }
    }

    fn once(&self, extra: &[&str]) -> Output {
        let out = self
            .dir
            .imagebump(["once"])
            .args(extra)
            .env(TOKEN_ENV, TOKEN)
            .output();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        out
    }

    /// A pass with `--output json`; the image's `why`.
    fn why(&self) -> serde_json::Value {
        let out = self.once(&["--output", "json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["apps"][0]["images"][0]["why"].clone()
    }

    fn deployed(&self) -> String {
        let values = self.repo.show("main", "values.yaml");
        values
            .lines()
            .find_map(|l| l.trim().strip_prefix("tag: "))
            .unwrap()
            .to_string()
    }
}

/// The scenario: imagebump commits 1.2.0, a person `git revert`s it, and the next pass
/// must not commit 1.2.0 again (it did before the fix).
#[tokio::test(flavor = "multi_thread")]
async fn a_reverted_update_stays_reverted() {
    let case = Case::new("").await;
    case.once(&[]);
    assert_eq!(case.deployed(), "1.2.0");
    let revert = case.jane.revert_head();
    assert_eq!(case.deployed(), "1.1.0");
    let commits = case.repo.log("main").len();

    // The sentence, in `once` and `explain` text.
    let held = format!(
        "held: 1.2.0 rolled back by jane@example.com in {revert} on {}; waiting for a tag newer than 1.2.0",
        time::OffsetDateTime::now_utc().date()
    );
    let out = case.once(&[]);
    assert!(text(&out).contains(&held), "{}", text(&out));
    let out = case.dir.imagebump(["explain", "shop"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("why: {held}")),
        "{}",
        text(&out)
    );
    for _ in 0..2 {
        let why = case.why();
        assert_eq!(case.deployed(), "1.1.0", "{why}");
        assert_eq!(case.repo.log("main").len(), commits);
        assert_eq!(why["kind"], "held", "{why}");
        assert_eq!(why["tag"], "1.2.0");
        assert_eq!(why["by"], "jane@example.com");
        assert_eq!(why["commit"], revert.as_str());
        assert_eq!(why["until"], "newer_tag");
    }

    // `explain` decides as a pass does: held, nothing to write (issue 15).
    let out = case
        .dir
        .imagebump(["explain", "shop", "--output", "json"])
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let explained: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let decision = &explained["images"][0]["decisions"][0];
    assert_eq!(decision["why"]["kind"], "held", "{decision}");
    assert_eq!(decision["keep_current"], true, "{decision}");
    let rollback = decision["rollback"].as_str().unwrap_or_default();
    assert!(
        rollback.starts_with(&format!(
            "jane@example.com rolled 1.2.0 back to 1.1.0 in {revert} (on_rollback: skip-version): tags up to 1.2.0"
        )),
        "{decision}"
    );
    assert_eq!(case.repo.log("main").len(), commits);
}

/// A person editing the value to an older tag by hand is a rollback too.
#[tokio::test(flavor = "multi_thread")]
async fn a_manual_edit_to_an_older_tag_is_held() {
    let case = Case::new("").await;
    case.once(&[]);
    assert_eq!(case.deployed(), "1.2.0");
    case.jane.edit("values.yaml", "tag: 1.2.0", "tag: 1.1.0");
    let why = case.why();
    assert_eq!(case.deployed(), "1.1.0", "{why}");
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["tag"], "1.2.0");
}

/// Moving the value forward by hand, or editing another line, is not a rollback: the next
/// newer tag is proposed as usual.
#[tokio::test(flavor = "multi_thread")]
async fn a_manual_edit_to_a_newer_tag_or_another_line_is_not_a_rollback() {
    let case = Case::new("").await;
    case.once(&[]);
    case.push_tags(&["1.3.0"]).await;
    case.jane.edit("values.yaml", "tag: 1.2.0", "tag: 1.3.0");
    let why = case.why();
    assert_eq!(why["kind"], "up_to_date", "{why}");
    assert_eq!(case.deployed(), "1.3.0");

    // The bot writes 1.4.0; a person edits another line; 1.5.0 is still proposed.
    case.push_tags(&["1.4.0"]).await;
    case.once(&[]);
    assert_eq!(case.deployed(), "1.4.0");
    case.jane
        .edit("values.yaml", "replicaCount: 2", "replicaCount: 3");
    case.push_tags(&["1.5.0"]).await;
    let why = case.why();
    assert_eq!(why["kind"], "newer", "{why}");
    assert_eq!(case.deployed(), "1.5.0");
}

/// `skip-version` (the default): tags not newer than the rolled-back one stay out, a newer one
/// is proposed; `hold`: nothing until a person changes the value again.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_rollback_only_a_newer_tag_is_proposed_and_hold_waits_for_a_person() {
    let skip = Case::new("").await;
    let hold = Case::new("    on_rollback: hold\n").await;
    for case in [&skip, &hold] {
        case.once(&[]);
        case.jane.revert_head();
        // A tag between the deployed and the rolled-back one is not proposed either.
        case.push_tags(&["1.1.5"]).await;
        let why = case.why();
        assert_eq!(why["kind"], "held", "{why}");
        assert_eq!(case.deployed(), "1.1.0");
        case.push_tags(&["1.2.1"]).await;
    }

    let why = skip.why();
    assert_eq!(why["kind"], "newer", "{why}");
    assert_eq!(skip.deployed(), "1.2.1");

    let why = hold.why();
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["until"], "person_changes", "{why}");
    assert_eq!(hold.deployed(), "1.1.0");
    // A person changes the value again: the hold is over.
    hold.jane.edit("values.yaml", "tag: 1.1.0", "tag: 1.1.5");
    let why = hold.why();
    assert_eq!(why["kind"], "newer", "{why}");
    assert_eq!(hold.deployed(), "1.2.1");
}

/// A rollback that reached the branch as a squash merge, or through a merge commit, is held
/// the same way; a revert of the revert lifts the hold.
#[tokio::test(flavor = "multi_thread")]
async fn squash_and_merge_commit_rollbacks_hold_and_a_revert_of_the_revert_lifts_it() {
    let case = Case::new("").await;
    case.once(&[]);
    let jane = &case.jane;

    // Squash: a branch with the revert, squashed onto main as one commit.
    jane.pull();
    jane.run(&["checkout", "-q", "-b", "rollback"]);
    jane.run(&["revert", "--no-edit", "HEAD"]);
    jane.run(&["checkout", "-q", "main"]);
    jane.run(&["merge", "-q", "--squash", "rollback"]);
    jane.run(&["commit", "-q", "-m", "Roll back api (#12)"]);
    jane.run(&["push", "-q", "origin", "HEAD:main"]);
    let squash = jane.run(&["rev-parse", "--short=7", "HEAD"]);
    let why = case.why();
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["commit"], squash.as_str());
    assert_eq!(case.deployed(), "1.1.0");

    // Revert of the revert: 1.2.0 is back by a person's hand, moving forward: no hold.
    jane.revert_head();
    assert_eq!(case.deployed(), "1.2.0");
    let why = case.why();
    assert_eq!(why["kind"], "up_to_date", "{why}");

    // The bot writes 1.3.0; a rollback on a branch comes in by a merge commit: held, and
    // the rollback is the branch's commit (its author), not the merge.
    case.push_tags(&["1.3.0"]).await;
    case.once(&[]);
    assert_eq!(case.deployed(), "1.3.0");
    jane.pull();
    jane.run(&["checkout", "-q", "-B", "undo", "main"]);
    jane.run(&["revert", "--no-edit", "HEAD"]);
    let revert = jane.run(&["rev-parse", "--short=7", "HEAD"]);
    jane.run(&["checkout", "-q", "main"]);
    jane.run(&["commit", "-q", "--allow-empty", "-m", "unrelated"]);
    jane.run(&["merge", "-q", "--no-ff", "-m", "Merge undo", "undo"]);
    jane.run(&["push", "-q", "origin", "HEAD:main"]);
    assert_eq!(case.deployed(), "1.2.0");
    let why = case.why();
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["tag"], "1.3.0");
    assert_eq!(why["commit"], revert.as_str());
}

/// Pull-request mode: imagebump's pull request merged by a person (a merge commit), then the
/// merge reverted on the base branch: no new pull request for 1.2.0, and the hold says why.
#[tokio::test(flavor = "multi_thread")]
async fn in_pull_request_mode_a_reverted_merge_is_not_proposed_again() {
    let forge = StandIn::start(ForgeKind::Github).await;
    let keys = format!(
        "write: pull-request\npull_request: {{forge: github, api_url: {}, project: {}, token_env: {TOKEN_ENV}}}\n",
        forge.api_url(),
        forge.project()
    );
    let case = Case::with_app_keys(&keys, "").await;
    case.once(&[]);
    let prs = forge.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert!(prs[0].body.contains("1.2.0"), "{}", prs[0].body);

    // A person merges it with a merge commit, then reverts the merge.
    let jane = &case.jane;
    jane.pull();
    jane.run(&["fetch", "-q", "origin", &prs[0].head]);
    jane.run(&[
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge pull request #1",
        "FETCH_HEAD",
    ]);
    jane.run(&["push", "-q", "origin", "HEAD:main"]);
    forge.merge(prs[0].number);
    assert_eq!(case.deployed(), "1.2.0");
    jane.run(&["revert", "--no-edit", "-m", "1", "HEAD"]);
    jane.run(&["push", "-q", "origin", "HEAD:main"]);
    let revert = jane.run(&["rev-parse", "--short=7", "HEAD"]);
    assert_eq!(case.deployed(), "1.1.0");

    let why = case.why();
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["commit"], revert.as_str());
    assert_eq!(
        forge.prs().len(),
        1,
        "no new pull request: {:?}",
        forge.prs()
    );
    assert!(forge.prs().iter().all(|p| !p.open));

    // A newer tag is proposed as usual.
    case.push_tags(&["1.2.1"]).await;
    case.once(&[]);
    let open: Vec<_> = forge.prs().into_iter().filter(|p| p.open).collect();
    assert_eq!(open.len(), 1, "{:?}", forge.prs());
    assert!(open[0].body.contains("1.2.1"), "{}", open[0].body);
    assert!(forge.violations().is_empty(), "{:?}", forge.violations());
}

/// The app keys of pull-request mode on `forge`.
fn pull_request_keys(forge: &StandIn, kind: ForgeKind) -> String {
    let name = match kind {
        ForgeKind::Github => "github",
        ForgeKind::Gitlab => "gitlab",
        ForgeKind::Gitea => "gitea",
    };
    format!(
        "write: pull-request\npull_request: {{forge: {name}, api_url: {}, project: {}, token_env: {TOKEN_ENV}}}\n",
        forge.api_url(),
        forge.project()
    )
}

/// A person merges imagebump's open pull request `pr` with a merge commit (and the forge
/// marks it merged).
fn merge_pull_request(case: &Case, forge: &StandIn, pr: &crate::support::forge::StoredPr) {
    let jane = &case.jane;
    jane.pull();
    jane.run(&["fetch", "-q", "origin", &pr.head]);
    jane.run(&[
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge pull request",
        "FETCH_HEAD",
    ]);
    jane.run(&["push", "-q", "origin", "HEAD:main"]);
    forge.merge(pr.number);
}

/// Issue 19, gap: after a rollback, imagebump's open pull request still proposed what the
/// rules now refuse, and stayed open. Under `hold` it is closed with a comment naming the
/// rollback (who, which commit) and not opened again for the same versions; under
/// `skip-version` a newer tag stays proposed. On the GitHub, GitLab and Gitea stand-ins.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_rollback_the_open_pull_request_is_closed_when_nothing_is_allowed() {
    for kind in [ForgeKind::Github, ForgeKind::Gitlab, ForgeKind::Gitea] {
        let forge = StandIn::start(kind).await;
        let hold =
            Case::with_app_keys(&pull_request_keys(&forge, kind), "    on_rollback: hold\n").await;
        hold.once(&[]);
        let first = forge.prs();
        assert_eq!(first.len(), 1, "{kind:?}: {first:?}");
        merge_pull_request(&hold, &forge, &first[0]);
        assert_eq!(hold.deployed(), "1.2.0");
        // A newer tag: imagebump's second pull request, open.
        hold.push_tags(&["1.3.0"]).await;
        hold.once(&[]);
        let open: Vec<_> = forge.prs().into_iter().filter(|p| p.open).collect();
        assert_eq!(open.len(), 1, "{kind:?}: {:?}", forge.prs());
        assert!(open[0].body.contains("1.3.0"), "{}", open[0].body);
        let number = open[0].number;

        // A person reverts the merge of 1.2.0 on the base branch: under `hold` nothing may be
        // proposed, so the open pull request for 1.3.0 is closed, saying why.
        hold.jane.run(&["revert", "--no-edit", "-m", "1", "HEAD"]);
        hold.jane.run(&["push", "-q", "origin", "HEAD:main"]);
        let revert = hold.jane.run(&["rev-parse", "--short=7", "HEAD"]);
        let out = hold.once(&[]);
        let closed = forge.pr(number);
        assert!(
            !closed.open,
            "{kind:?}: still open after the rollback: {closed:?}"
        );
        assert!(!closed.merged);
        let comment = closed.comments.join("\n");
        assert!(
            comment.contains("jane@example.com") && comment.contains(&revert),
            "{kind:?}: {comment}"
        );
        assert!(comment.contains("held: 1.2.0 rolled back"), "{comment}");
        assert!(
            text(&out).contains("closed: rolled back on main: api: held: 1.2.0"),
            "{}",
            text(&out)
        );
        assert_eq!(hold.deployed(), "1.1.0");

        // Never opened again for the same versions.
        let why = hold.why();
        assert_eq!(why["kind"], "held", "{why}");
        assert_eq!(forge.prs().len(), 2, "{kind:?}: {:?}", forge.prs());
        assert!(forge.prs().iter().all(|p| !p.open), "{:?}", forge.prs());
        assert!(
            forge.violations().is_empty(),
            "{kind:?}: {:?}",
            forge.violations()
        );
    }

    // `skip-version`: 1.3.0 is newer than the rolled-back 1.2.0, so its pull request stays.
    let forge = StandIn::start(ForgeKind::Github).await;
    let skip = Case::with_app_keys(&pull_request_keys(&forge, ForgeKind::Github), "").await;
    skip.once(&[]);
    merge_pull_request(&skip, &forge, &forge.prs()[0]);
    skip.push_tags(&["1.3.0"]).await;
    skip.once(&[]);
    skip.jane.run(&["revert", "--no-edit", "-m", "1", "HEAD"]);
    skip.jane.run(&["push", "-q", "origin", "HEAD:main"]);
    skip.once(&[]);
    let open: Vec<_> = forge.prs().into_iter().filter(|p| p.open).collect();
    assert_eq!(open.len(), 1, "{:?}", forge.prs());
    assert!(open[0].body.contains("1.3.0"), "{}", open[0].body);
    assert!(open[0].comments.is_empty(), "{:?}", open[0].comments);
    assert!(forge.violations().is_empty(), "{:?}", forge.violations());
}

/// Regression: the pull request imagebump closed itself after a rollback (under `hold`) kept
/// its versions from being proposed once the hold was over: its comment says a person changing
/// the value opens a new pull request, but the closed one counted as a person's "no" ("closed
/// without merging") and the same versions were skipped, silently, until a newer tag.
#[tokio::test(flavor = "multi_thread")]
async fn a_pull_request_imagebump_closed_after_a_rollback_does_not_block_its_versions_once_the_hold_ends()
 {
    let forge = StandIn::start(ForgeKind::Github).await;
    let hold = Case::with_app_keys(
        &pull_request_keys(&forge, ForgeKind::Github),
        "    on_rollback: hold\n",
    )
    .await;
    hold.once(&[]);
    merge_pull_request(&hold, &forge, &forge.prs()[0]);
    hold.push_tags(&["1.3.0"]).await;
    hold.once(&[]);
    let number = forge.prs().iter().find(|p| p.open).unwrap().number;
    hold.jane.run(&["revert", "--no-edit", "-m", "1", "HEAD"]);
    hold.jane.run(&["push", "-q", "origin", "HEAD:main"]);
    hold.once(&[]);
    assert!(!forge.pr(number).open, "{:?}", forge.prs());

    // A person changes the value: the hold is over, and 1.3.0 is proposed again.
    hold.jane.edit("values.yaml", "tag: 1.1.0", "tag: 1.1.5");
    let out = hold.once(&[]);
    let open: Vec<_> = forge.prs().into_iter().filter(|p| p.open).collect();
    assert_eq!(open.len(), 1, "{}\n{:?}", text(&out), forge.prs());
    assert!(open[0].body.contains("1.3.0"), "{}", open[0].body);
    assert!(open[0].number > number);
    assert!(forge.violations().is_empty(), "{:?}", forge.violations());
}

/// A forge's squash merge of imagebump's pull request records the person merging as author
/// and committer; the message still says it is imagebump's change (GitHub's `Co-authored-by:`
/// trailer, or the pull request's description with its fingerprint). GitLab's squash keeps the
/// merge request's author (the bot) as the commit's author, with the title alone as message. A later revert of that
/// tag is a rollback (it was missed: the squash counted as the person's own edit, and the
/// reverted tag was proposed again).
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_of_a_squash_merged_pull_request_of_imagebump_is_held() {
    let forge = StandIn::start(ForgeKind::Github).await;
    let case = Case::with_app_keys(&pull_request_keys(&forge, ForgeKind::Github), "").await;
    let jane = &case.jane;
    let squash_merge = |pr: &crate::support::forge::StoredPr, message: &str, author: &str| {
        jane.pull();
        jane.run(&["fetch", "-q", "origin", &pr.head]);
        jane.run(&["merge", "-q", "--squash", "FETCH_HEAD"]);
        jane.run(&["commit", "-q", "-m", message, "--author", author]);
        jane.run(&["push", "-q", "origin", "HEAD:main"]);
        forge.merge(pr.number);
    };

    // GitHub's default squash message for one commit: its message, and a co-author trailer.
    case.once(&[]);
    let first = forge.prs().remove(0);
    squash_merge(
        &first,
        &format!(
            "{} (#{})\n\nCo-authored-by: imagebump <bot@imagebump.test>",
            first.title, first.number
        ),
        "Jane <jane@example.com>",
    );
    assert_eq!(case.deployed(), "1.2.0");
    let revert = jane.revert_head();
    let why = case.why();
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["tag"], "1.2.0", "{why}");
    assert_eq!(why["commit"], revert.as_str(), "{why}");
    assert!(
        forge.prs().iter().all(|p| !p.open),
        "1.2.0 proposed again: {:?}",
        forge.prs()
    );

    // A squash message made of the pull request's title and description (GitLab's squash
    // commit template `%{title}\n\n%{description}`, which the README recommends).
    case.push_tags(&["1.3.0"]).await;
    case.once(&[]);
    let second = forge.prs().into_iter().find(|p| p.open).unwrap();
    squash_merge(
        &second,
        &format!("{}\n\n{}", second.title, second.body),
        "Jane <jane@example.com>",
    );
    assert_eq!(case.deployed(), "1.3.0");
    jane.revert_head();
    let why = case.why();
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["tag"], "1.3.0", "{why}");
    assert!(forge.prs().iter().all(|p| !p.open), "{:?}", forge.prs());

    // GitLab's default: the title alone, the merge request's author (the bot's account, with
    // the `git.author` email) as the squash commit's author and the person as its committer.
    case.push_tags(&["1.4.0"]).await;
    case.once(&[]);
    let third = forge.prs().into_iter().find(|p| p.open).unwrap();
    squash_merge(&third, &third.title, "imagebump <bot@imagebump.test>");
    assert_eq!(case.deployed(), "1.4.0");
    jane.revert_head();
    let why = case.why();
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["tag"], "1.4.0", "{why}");
    assert!(forge.violations().is_empty(), "{:?}", forge.violations());
}

/// After a rollback, an open pull request that proposes the held image and another one is
/// updated in place to the other image alone: what the rules still allow.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_rollback_the_open_pull_request_is_updated_to_what_is_still_allowed() {
    let forge = StandIn::start(ForgeKind::Github).await;
    let values =
        format!("{VALUES}web:\n  image:\n    repository: REGISTRY/team/web\n    tag: 2.0.0\n");
    let case = Case::custom(
        &[("values.yaml", &values)],
        &format!(
            "  - name: api\n    image: REGISTRY/team/api\n    policy: {{semver: \"^1\"}}\n    on_rollback: hold\n    targets:\n      - {{file: values.yaml, path: api.image.tag}}\n  - name: web\n    image: REGISTRY/team/web\n    policy: {{semver: \"^2\"}}\n    targets:\n      - {{file: values.yaml, path: web.image.tag}}\n{}",
            pull_request_keys(&forge, ForgeKind::Github)
        ),
    )
    .await;
    let pusher = case.registry.pusher();
    let spec = crate::support::registry::ImageSpec::new("2026-01-01T00:00:00Z");
    pusher.push_image("team/web", "2.0.0", &spec).await;
    case.push_tags(&["1.1.0", "1.2.0"]).await;
    case.once(&[]);
    merge_pull_request(&case, &forge, &forge.prs()[0]);
    assert_eq!(case.deployed(), "1.2.0");

    case.push_tags(&["1.3.0"]).await;
    pusher.push_image("team/web", "2.1.0", &spec).await;
    case.once(&[]);
    let open = forge.prs().into_iter().find(|p| p.open).unwrap();
    assert!(
        open.body.contains("1.3.0") && open.body.contains("2.1.0"),
        "{}",
        open.body
    );

    case.jane.run(&["revert", "--no-edit", "-m", "1", "HEAD"]);
    case.jane.run(&["push", "-q", "origin", "HEAD:main"]);
    let out = case.once(&[]);
    assert!(
        text(&out).contains("pull request updated"),
        "{}",
        text(&out)
    );
    let updated = forge.pr(open.number);
    assert!(updated.open, "{updated:?}");
    assert!(
        updated.body.contains("2.1.0") && !updated.body.contains("1.3.0"),
        "{}",
        updated.body
    );
    assert_eq!(forge.prs().len(), 2, "{:?}", forge.prs());
    assert!(forge.violations().is_empty(), "{:?}", forge.violations());
}

/// `on_rollback: ignore` reads no history: the reverted tag is proposed again, as before.
#[tokio::test(flavor = "multi_thread")]
async fn on_rollback_ignore_proposes_the_reverted_tag_again() {
    let case = Case::new("    on_rollback: ignore\n").await;
    case.once(&[]);
    case.jane.revert_head();
    assert_eq!(case.deployed(), "1.1.0");
    let why = case.why();
    assert_eq!(why["kind"], "newer", "{why}");
    assert_eq!(case.deployed(), "1.2.0");
}

/// A long-lived engine (the daemon's) reads none of its own round's commits back on the next
/// pass, and a revert a person pushes after that is still seen: one commit read, the tag held.
#[tokio::test(flavor = "multi_thread")]
async fn after_its_own_round_a_long_lived_engine_reads_only_the_commits_of_others() {
    use imagebump::engine::{Engine, PassOptions};

    let case = Case::new("").await;
    let loaded = imagebump::config::load(&case.dir.global()).unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let engine = Engine::new(loaded.config).unwrap();
    let round = engine.run_pass(&PassOptions::default()).await;
    assert!(round.apps[0].pushed, "{round:?}");
    assert_eq!(case.deployed(), "1.2.0");
    let (read, _) = engine.history_cost();

    let steady = engine.run_pass(&PassOptions::default()).await;
    assert!(!steady.failed() && !steady.apps[0].pushed, "{steady:?}");
    assert_eq!(
        engine.history_cost().0,
        read,
        "the pass after the round read the round's commit back"
    );

    case.jane.revert_head();
    let after = engine.run_pass(&PassOptions::default()).await;
    assert!(!after.failed() && !after.apps[0].pushed, "{after:?}");
    assert_eq!(engine.history_cost().0, read + 1, "the revert, only");
    assert_eq!(case.deployed(), "1.1.0");
}

/// A clone of `repo`'s main in a clone cache of its own (kept while the directory lives).
fn bot_checkout(repo: &BareRepo) -> (tempfile::TempDir, imagebump::git::Checkout) {
    use imagebump::git::{Author, CloneCache, GitSettings};

    let workdir = tempfile::tempdir().unwrap();
    let settings = GitSettings {
        author: Author {
            name: "imagebump".into(),
            email: "bot@imagebump.test".into(),
        },
        credentials: vec![],
        accept_unknown_hosts: false,
        signing_key: None,
    };
    let cache = CloneCache::new(workdir.path().to_path_buf(), settings);
    let checkout = cache.checkout(&repo.file_url(), "main").unwrap();
    (workdir, checkout)
}

/// The one walk a pass makes for all of a branch's target files (`files_history`) reads the
/// same versions as a walk per file: edits in nested folders, a merge from a side branch, a
/// file deleted and created again, commits that touch none of them.
#[test]
fn one_walk_for_many_files_reads_what_a_walk_per_file_reads() {
    use imagebump::git::WalkBound;

    let repo = BareRepo::with_files(
        "main",
        &[
            ("a.yaml", "v: 1\n"),
            ("apps/x/b.yaml", "v: 1\n"),
            ("apps/y/c.yaml", "v: 1\n"),
        ],
    );
    let jane = Person::clone_of(&repo, "jane@example.com");
    let write = |file: &str, text: &str| {
        let path = jane.work.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        jane.run(&["add", "-A"]);
        jane.run(&["commit", "-q", "-m", file]);
    };
    jane.pull();
    write("apps/x/b.yaml", "v: 2\n");
    write("README.md", "notes\n");
    jane.run(&["checkout", "-q", "-b", "side"]);
    write("apps/y/c.yaml", "v: 2\n");
    write("apps/y/c.yaml", "v: 3\n");
    jane.run(&["checkout", "-q", "main"]);
    write("a.yaml", "v: 2\n");
    jane.run(&["merge", "-q", "--no-ff", "-m", "merge side", "side"]);
    jane.run(&["rm", "-q", "apps/x/b.yaml"]);
    jane.run(&["commit", "-q", "-m", "remove b"]);
    write("apps/x/b.yaml", "v: 4\n");
    jane.run(&["push", "-q", "origin", "HEAD:main"]);

    let (_workdir, checkout) = bot_checkout(&repo);
    let bound = WalkBound {
        max_commits: 100,
        not_before: None,
    };
    let paths = ["a.yaml", "apps/x/b.yaml", "apps/y/c.yaml", "missing.yaml"];
    let together = checkout.files_history(&paths, bound).unwrap();
    for (path, together) in paths.iter().zip(together) {
        let alone = checkout
            .file_history(std::path::Path::new(path), bound, None)
            .unwrap();
        assert_eq!(together.versions, alone.versions, "{path}");
        assert_eq!(together.end, alone.end, "{path}");
    }
    let c = checkout
        .file_history(std::path::Path::new("apps/y/c.yaml"), bound, None)
        .unwrap();
    assert_eq!(c.versions.len(), 2, "the merge and the first commit: {c:?}");
    let origin = c.versions[0]
        .origin
        .as_ref()
        .expect("the merged side's commit");
    assert_ne!(origin.id, c.versions[0].commit.id);
    let b = checkout
        .file_history(std::path::Path::new("apps/x/b.yaml"), bound, None)
        .unwrap();
    assert_eq!(b.versions.len(), 4, "{b:?}");
    assert_eq!(b.versions[1].blob, None, "the deletion");

    // From the head down to a known commit (what a pass reads after the bot's own commits):
    // one walk for the files reads the same new versions as a walk per file, and both stop
    // there.
    let known = git2::Repository::open_bare(repo.path())
        .unwrap()
        .revparse_single("main~2")
        .unwrap()
        .id();
    let together = checkout
        .files_history_since(checkout.head().unwrap(), &paths, bound, Some(known))
        .unwrap();
    for (path, together) in paths.iter().zip(together) {
        let alone = checkout
            .file_history(std::path::Path::new(path), bound, Some(known))
            .unwrap();
        assert_eq!(together.versions, alone.versions, "{path}");
        assert_eq!(together.end, alone.end, "{path}");
        assert_eq!(together.end, imagebump::git::HistoryEnd::Known, "{path}");
    }

    // A smaller bound stops both the same way.
    let short = WalkBound {
        max_commits: 3,
        not_before: None,
    };
    let together = checkout.files_history(&paths, short).unwrap();
    for (path, together) in paths.iter().zip(together) {
        let alone = checkout
            .file_history(std::path::Path::new(path), short, None)
            .unwrap();
        assert_eq!(together.versions, alone.versions, "{path}");
        assert_eq!(together.end, alone.end, "{path}");
    }
}

/// The one walk finds, for every file, the commits `git log --first-parent -- FILE` lists and
/// the blobs `git rev-parse COMMIT:FILE` names, in large folders compared entry by entry (many
/// wanted files) and name by name (few), with files added, deleted and renamed beside the
/// wanted ones (the entry-by-entry comparison then has nothing to line up).
#[test]
fn the_walk_finds_the_commits_and_blobs_git_log_finds() {
    use imagebump::git::WalkBound;

    let repo = BareRepo::with_files("main", &[("seed.yaml", "v: 1\n")]);
    let jane = Person::clone_of(&repo, "jane@example.com");
    jane.pull();
    let write = |files: &[(&str, &str)], message: &str| {
        for (file, text) in files {
            let path = jane.work.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        jane.run(&["add", "-A"]);
        jane.run(&["commit", "-q", "--allow-empty", "-m", message]);
    };
    let names: Vec<String> = (0..60).map(|i| format!("f{i:02}.yaml")).collect();
    let all = |dir: &str, v: &str| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (format!("{dir}/{n}"), format!("v: {v}\n")))
            .collect()
    };
    let many = all("apps/many", "1");
    let few = all("apps/few", "1");
    for (files, message) in [(&many, "many"), (&few, "few")] {
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        write(&files, message);
    }
    write(
        &[
            ("apps/many/f03.yaml", "v: 2\n"),
            ("apps/few/f10.yaml", "v: 2\n"),
        ],
        "bump",
    );
    write(&[("apps/many/f40.yaml", "v: 2\n")], "unwanted neighbour");
    write(
        &[
            ("apps/many/g.yaml", "new\n"),
            ("apps/many/f01.yaml", "v: 3\n"),
        ],
        "add beside",
    );
    jane.run(&["rm", "-q", "apps/many/f02.yaml"]);
    jane.run(&["mv", "apps/many/f04.yaml", "apps/many/z.yaml"]);
    write(&[("apps/few/f10.yaml", "v: 3\n")], "delete, rename, bump");
    write(&[("apps/many/f02.yaml", "v: back\n")], "f02 back");
    write(&[("apps/many/f00.yaml", "v: 1\n")], "same bytes: no change");
    write(&[], "empty");
    jane.run(&["checkout", "-q", "-b", "side"]);
    write(&[("apps/many/f05.yaml", "v: side\n")], "side");
    jane.run(&["checkout", "-q", "main"]);
    write(&[("apps/few/f59.yaml", "v: main\n")], "main");
    jane.run(&["merge", "-q", "--no-ff", "-m", "merge side", "side"]);
    jane.run(&["push", "-q", "origin", "HEAD:main"]);

    let (_workdir, checkout) = bot_checkout(&repo);
    let bound = WalkBound {
        max_commits: 100,
        not_before: None,
    };
    // Six of apps/many's entries are wanted (compared entry by entry), one of apps/few's
    // (looked up by name).
    let paths = [
        "seed.yaml",
        "apps/many/f00.yaml",
        "apps/many/f01.yaml",
        "apps/many/f02.yaml",
        "apps/many/f03.yaml",
        "apps/many/f04.yaml",
        "apps/many/f05.yaml",
        "apps/few/f10.yaml",
        "apps/few/f59.yaml",
    ];
    let walked = checkout.files_history(&paths, bound).unwrap();
    let bare = repo.path();
    for (path, history) in paths.iter().zip(walked) {
        let listed = git(
            bare,
            &["log", "--first-parent", "--format=%H", "main", "--", path],
        );
        let listed: Vec<&str> = listed.lines().collect();
        let found: Vec<String> = history
            .versions
            .iter()
            .map(|v| v.commit.id.to_string())
            .collect();
        assert_eq!(found, listed, "{path}");
        for version in &history.versions {
            let blob = version.blob.map(|b| b.to_string());
            let named = Command::new("git")
                .args(["rev-parse", "-q", "--verify"])
                .arg(format!("{}:{path}", version.commit.id))
                .current_dir(bare)
                .output()
                .unwrap();
            let named = String::from_utf8_lossy(&named.stdout).trim().to_string();
            assert_eq!(
                blob.unwrap_or_default(),
                named,
                "{path} at {}",
                version.commit.id
            );
        }
    }
}

/// The daemon shows the hold in `/api/v1/status` and on the status page, and commits nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_shows_the_hold_in_its_status_and_page() {
    use std::io::{Read as _, Write as _};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let case = Case::new("").await;
    case.once(&[]);
    let revert = case.jane.revert_head();
    let commits = case.repo.log("main").len();

    let port = crate::support::free_port();
    let host = case.registry.host();
    let dir = ConfigDir::new(
        &host,
        &format!(
            "interval: 1s\nwebhook:\n  listen: 127.0.0.1:{port}\n  receivers:\n    - type: distribution\n      secret_env: WEBHOOK_TOKEN\n"
        ),
    )
    .app(
        "shop",
        &format!(
            "name: shop\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: values.yaml, path: api.image.tag}}\n",
            case.repo.file_url()
        ),
    );
    let log = dir.path().join("daemon.log");
    let mut daemon = dir
        .imagebump(["run"])
        .env("WEBHOOK_TOKEN", "a-webhook-token-of-32-characters")
        .spawn(Stdio::null(), std::fs::File::create(&log).unwrap());
    let get = |path: &str| -> Option<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    };
    let held = format!("held: 1.2.0 rolled back by jane@example.com in {revert} on ");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(body) = get("/api/v1/status")
            && body.contains(&held)
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no hold in the status; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let image = &status["apps"][0]["images"][0];
    assert_eq!(image["why"]["kind"], "held", "{status}");
    assert_eq!(image["deployed"], "1.1.0", "{status}");
    let page = get("/").unwrap();
    assert!(page.contains(&held), "{page}");
    daemon.stop();
    assert_eq!(case.repo.log("main").len(), commits, "nothing committed");
    assert_eq!(case.deployed(), "1.1.0");
}

/// A directory target: a revert of imagebump's commit to two files of the directory is held
/// for both (each file's history is read, in one walk).
#[tokio::test(flavor = "multi_thread")]
async fn a_reverted_update_of_a_directory_target_stays_reverted() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    for tag in ["1.1.0", "1.2.0"] {
        let spec = crate::support::registry::ImageSpec::new("2026-01-01T00:00:00Z");
        pusher.push_image("team/api", tag, &spec).await;
    }
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n  - name: {host}/team/api\n    newTag: 1.1.0\n"
    );
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: {host}/team/api:1.1.0\n"
    );
    let repo = BareRepo::with_files(
        "main",
        &[
            ("clusters/prod/kustomization.yaml", &kustomization),
            ("clusters/prod/deployment.yaml", &deployment),
        ],
    );
    let dir = ConfigDir::new(&host, "").app(
        "shop",
        &format!(
            "name: shop\nrepo: {}\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - file: clusters/prod/\n",
            repo.file_url()
        ),
    );
    let once = || {
        let out = dir.imagebump(["once", "--output", "json"]).output();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["apps"][0]["images"][0]["why"].clone()
    };
    let both = |tag: &str| {
        repo.show("main", "clusters/prod/kustomization.yaml")
            .contains(&format!("newTag: {tag}"))
            && repo
                .show("main", "clusters/prod/deployment.yaml")
                .contains(&format!("team/api:{tag}"))
    };
    once();
    assert!(both("1.2.0"));
    let jane = Person::clone_of(&repo, "jane@example.com");
    let revert = jane.revert_head();
    assert!(both("1.1.0"));
    let commits = repo.log("main").len();
    let why = once();
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["commit"], revert.as_str());
    assert!(both("1.1.0"));
    assert_eq!(repo.log("main").len(), commits);
}

impl Case {
    /// A case of its own: the repo holds `files` (`REGISTRY` replaced by the registry's host),
    /// the app has `images` (its `images:` list, `REGISTRY` replaced too, `REPO` by the repo),
    /// and the registry nothing yet.
    async fn custom(files: &[(&str, &str)], images: &str) -> Case {
        let registry = TestRegistry::start_plain().await;
        let host = registry.host();
        let files: Vec<(&str, String)> = files
            .iter()
            .map(|(name, text)| (*name, text.replace("REGISTRY", &host)))
            .collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let repo = BareRepo::with_files("main", &refs);
        let dir = ConfigDir::new(&host, "").app(
            "shop",
            &format!(
                "name: shop\nrepo: {}\nimages:\n{}",
                repo.file_url(),
                images.replace("REGISTRY", &host)
            ),
        );
        let jane = Person::clone_of(&repo, "jane@example.com");
        Case {
            registry,
            repo,
            dir,
            jane,
        }
    }

    /// Push `tag` of team/api built at `created`; its digest.
    async fn push_built(&self, tag: &str, created: &str) -> String {
        let spec = crate::support::registry::ImageSpec::new(created);
        let pushed = self
            .registry
            .pusher()
            .push_image("team/api", tag, &spec)
            .await;
        pushed.digest
    }
}

/// `newest_build` ranks by build time, not by the tag: a person's revert of imagebump's
/// newest-build tag is held (a tag built before the rolled-back one is not proposed either),
/// and a tag built after it is.
#[tokio::test(flavor = "multi_thread")]
async fn a_reverted_newest_build_tag_is_held_until_a_newer_build() {
    let case = Case::custom(
        &[("values.yaml", VALUES)],
        "  - name: api\n    image: REGISTRY/team/api\n    policy: {newest_build: {}}\n    targets:\n      - {file: values.yaml, path: api.image.tag}\n",
    )
    .await;
    case.push_built("1.1.0", "2026-01-01T00:00:00Z").await;
    case.push_built("1.2.0", "2026-02-01T00:00:00Z").await;
    case.once(&[]);
    assert_eq!(case.deployed(), "1.2.0");
    let revert = case.jane.revert_head();
    assert_eq!(case.deployed(), "1.1.0");

    // Built between the deployed and the rolled-back tag: not newer than the rolled-back build.
    case.push_built("1.1.5", "2026-01-15T00:00:00Z").await;
    let why = case.why();
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["tag"], "1.2.0", "{why}");
    assert_eq!(why["commit"], revert.as_str(), "{why}");
    assert_eq!(case.deployed(), "1.1.0");

    // Built after it: proposed as usual.
    case.push_built("0.9.0", "2026-03-01T00:00:00Z").await;
    let why = case.why();
    assert_eq!(why["kind"], "newer", "{why}");
    assert_eq!(case.deployed(), "0.9.0");
}

/// `digest` (a mutable tag): imagebump pins the digest `latest` has; a person reverts the pin
/// back to the previous digest. The next pass holds it while `latest` still points at the
/// rolled-back digest, and pins a new digest once `latest` moves on.
#[tokio::test(flavor = "multi_thread")]
async fn a_reverted_digest_pin_is_held_until_the_tag_moves_on() {
    let case = Case::custom(
        &[(
            "kustomization.yaml",
            "images:\n  - name: REGISTRY/team/api\n    newTag: latest\n",
        )],
        "  - name: api\n    image: REGISTRY/team/api\n    policy: {digest: latest}\n    targets: [{file: kustomization.yaml}]\n",
    )
    .await;
    let pinned = || case.repo.show("main", "kustomization.yaml");
    let first = case.push_built("latest", "2026-01-01T00:00:00Z").await;
    case.once(&[]);
    assert!(
        pinned().contains(&format!("digest: {first}")),
        "{}",
        pinned()
    );
    let second = case.push_built("latest", "2026-01-02T00:00:00Z").await;
    case.once(&[]);
    assert!(
        pinned().contains(&format!("digest: {second}")),
        "{}",
        pinned()
    );

    let revert = case.jane.revert_head();
    assert!(
        pinned().contains(&format!("digest: {first}")),
        "{}",
        pinned()
    );
    let why = case.why();
    assert_eq!(why["kind"], "held", "{why}");
    assert_eq!(why["commit"], revert.as_str(), "{why}");
    assert!(
        why["tag"].as_str().unwrap().contains(&second),
        "the rolled-back value names its digest: {why}"
    );
    assert!(
        pinned().contains(&format!("digest: {first}")),
        "{}",
        pinned()
    );

    let third = case.push_built("latest", "2026-01-03T00:00:00Z").await;
    let why = case.why();
    assert_eq!(why["kind"], "new_digest", "{why}");
    assert!(
        pinned().contains(&format!("digest: {third}")),
        "{}",
        pinned()
    );
}

/// After a first pass wrote 1.2.0 and Jane reverted it: the blob imagebump wrote (1.2.0) is
/// removed from imagebump's clone (its objects unpacked, that one deleted). Returns the number
/// of commits on main and the clone's path.
fn damage_the_clone(case: &Case) -> (usize, PathBuf) {
    case.once(&[]);
    assert_eq!(case.deployed(), "1.2.0");
    let blob = crate::support::git::git(case.repo.path(), &["rev-parse", "main:values.yaml"]);
    let blob = blob.trim();
    case.jane.revert_head();
    let commits = case.repo.log("main").len();
    let clones = case.dir.clones();
    assert_eq!(clones.len(), 1, "{clones:?}");
    let objects = clones[0].join(".git/objects");
    // Its objects are packed: unpack them all (loose), then remove that one blob.
    let packs: Vec<PathBuf> = std::fs::read_dir(objects.join("pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect();
    for pack in packs {
        let bytes = std::fs::read(&pack).unwrap();
        std::fs::remove_file(&pack).unwrap();
        std::fs::remove_file(pack.with_extension("idx")).unwrap();
        let mut child = Command::new("git")
            .args(["unpack-objects", "-q"])
            .current_dir(&clones[0])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &bytes).unwrap();
        assert!(child.wait().unwrap().success());
    }
    std::fs::remove_file(objects.join(&blob[..2]).join(&blob[2..])).unwrap();
    (commits, clones[0].clone())
}

/// When the target's history cannot be read (a blob of an old version is gone from
/// imagebump's clone), the image fails loudly, naming the file, and nothing is written: it is
/// never updated as if no rollback had happened. The read-ahead that runs while the registry
/// answers reads the history at the clone's last-fetched head, and would have the clone
/// rebuilt at once on meeting the damage (next test): that head is set back to the commit
/// before the damaged version, so only the round, after its fetch, meets it.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_history_fails_the_image_and_writes_nothing() {
    let case = Case::new("").await;
    let (commits, clone) = damage_the_clone(&case);
    crate::support::git::git(
        &clone,
        &["update-ref", "refs/remotes/origin/main", "HEAD~1"],
    );

    let out = case
        .dir
        .imagebump(["once", "--output", "json"])
        .env(TOKEN_ENV, TOKEN)
        .output();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = &report["apps"][0]["images"][0];
    let error = image["error"].to_string();
    assert!(
        error.contains("reading the history of values.yaml"),
        "{image}"
    );
    assert_eq!(case.deployed(), "1.1.0");
    assert_eq!(case.repo.log("main").len(), commits, "nothing committed");
}

/// The same damage met by the read-ahead (the clone's last-fetched head is the version whose
/// blob is gone): the read-ahead says so at warn and marks the clone damaged, the round clones
/// it again (at warn too), reads the whole history and keeps Jane's rollback. Nothing is
/// written.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_clone_met_while_reading_ahead_is_cloned_again_in_the_same_pass() {
    let case = Case::new("").await;
    let (commits, _) = damage_the_clone(&case);

    let out = case
        .dir
        .imagebump(["once", "--output", "json"])
        .env(TOKEN_ENV, TOKEN)
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reading ahead: the target's history cannot be read")
            && stderr.contains("reading the history of values.yaml")
            && stderr.contains("clone was found damaged by an earlier read; cloning again"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = &report["apps"][0]["images"][0];
    assert_eq!(image["error"], serde_json::Value::Null, "{image}");
    assert_eq!(image["why"]["kind"], "held", "{image}");
    assert_eq!(case.deployed(), "1.1.0");
    assert_eq!(case.repo.log("main").len(), commits, "nothing committed");
}
