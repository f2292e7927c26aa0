//! Pull-request mode end to end, for GitHub, GitLab and Gitea: the real registry, a real git
//! remote, `imagebump once` as users run it, and the forge API stand-ins that check every
//! request against the documented API.

use std::process::Output;

use imagebump::forge::ForgeKind;

use crate::support::config::ConfigDir;
use crate::support::forge::{Fault, StandIn, TOKEN, TOKEN_ENV};
use crate::support::git::{BareRepo, git};
use crate::support::imagebump::text;
use crate::support::registry::{ImageSpec, Pushed, TestRegistry};

const VALUES: &str = "\
# staging values
api:
  image:
    repository: REGISTRY/team/api
    tag: 1.0.0
";

const BOT: &str = "imagebump/shop-staging";

struct Case {
    registry: TestRegistry,
    first: Pushed,
    repo: BareRepo,
    forge: StandIn,
    dir: ConfigDir,
}

impl Case {
    async fn new(kind: ForgeKind) -> Case {
        let registry = TestRegistry::start_plain().await;
        let host = registry.host();
        let pusher = registry.pusher();
        let first = pusher
            .push_image("team/api", "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
            .await;
        pusher
            .push_manifest("team/api", "1.1.0", &first.media_type, &first.body)
            .await;
        let repo = BareRepo::with_files(
            "main",
            &[("values.yaml", &VALUES.replace("REGISTRY", &host))],
        );
        let forge = StandIn::start(kind).await;
        let dir = ConfigDir::new(&host, "");
        let forge_name = match kind {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::Gitea => "gitea",
        };
        dir.write(
            "apps/shop-staging.yaml",
            &format!(
                "name: shop-staging\nrepo: {}\nwrite: pull-request\npull_request:\n  forge: {forge_name}\n  api_url: {}\n  project: {}\n  token_env: {TOKEN_ENV}\n  labels: [images]\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: values.yaml, path: api.image.tag}}\n",
                repo.file_url(),
                forge.api_url(),
                forge.project()
            ),
        );
        Case {
            registry,
            first,
            repo,
            forge,
            dir,
        }
    }

    async fn push_tag(&self, tag: &str) {
        self.registry
            .pusher()
            .push_manifest("team/api", tag, &self.first.media_type, &self.first.body)
            .await;
    }

    async fn once(&self) -> Output {
        self.dir
            .imagebump(["once"])
            .env(TOKEN_ENV, TOKEN)
            .output_async()
            .await
    }

    fn bot_commits(&self) -> usize {
        // Commits on the bot branch that main does not have.
        git(
            self.repo.path(),
            &["rev-list", "--count", &format!("main..{BOT}")],
        )
        .parse()
        .unwrap()
    }
}

async fn lifecycle(kind: ForgeKind) {
    let case = Case::new(kind).await;
    let main_head = case.repo.head("main");

    // Three passes with the same new tag: one pull request, one commit on the bot branch. Each
    // pass says what it did (regression, issue 13: passes that did nothing printed `updated`).
    for pass in 0..3 {
        let out = case.once().await;
        assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", text(&out));
        let want = if pass == 0 {
            ": pull request opened\n"
        } else {
            ": already proposed (pull request unchanged)\n"
        };
        assert!(text(&out).contains(want), "pass {pass}: {}", text(&out));
        assert!(!text(&out).contains(": updated\n"), "{}", text(&out));
        if pass > 0 {
            // The image's line says what it waits for (issue 15).
            assert!(
                text(&out).contains("  api 1.0.0 -> 1.1.0: 1.1.0 is newer and allowed; waiting for pull request http"),
                "{}",
                text(&out)
            );
        }
    }
    // `explain` asks the forge, read-only, and says the same.
    let out = case
        .dir
        .imagebump(["explain", "shop-staging"])
        .env(TOKEN_ENV, TOKEN)
        .output_async()
        .await;
    assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", text(&out));
    assert!(
        text(&out).contains("pull request: waiting for pull request #"),
        "{kind:?}: {}",
        text(&out)
    );
    let prs = case.forge.prs();
    assert_eq!(prs.len(), 1, "{kind:?}: {prs:?}");
    assert!(prs[0].open);
    assert_eq!(prs[0].head, BOT);
    assert_eq!(prs[0].base, "main");
    assert!(prs[0].labels.contains(&"images".to_string()), "{prs:?}");
    assert!(prs[0].body.contains("1.1.0"), "{}", prs[0].body);
    assert_eq!(case.bot_commits(), 1);
    assert_eq!(
        case.repo.ref_updates(BOT),
        1,
        "{kind:?}: the bot branch was pushed once"
    );
    assert_eq!(
        case.repo.head("main"),
        main_head,
        "pull-request mode never writes main"
    );
    assert!(case.repo.show(BOT, "values.yaml").contains("tag: 1.1.0"));
    let number = prs[0].number;

    // A newer tag: the same pull request, a new commit, a new body.
    case.push_tag("1.2.0").await;
    let out = case.once().await;
    assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", text(&out));
    assert!(
        text(&out).contains(": pull request updated\n"),
        "{}",
        text(&out)
    );
    let prs = case.forge.prs();
    assert_eq!(prs.len(), 1, "{kind:?}: {prs:?}");
    assert_eq!(prs[0].number, number);
    assert!(prs[0].body.contains("1.2.0"), "{}", prs[0].body);
    assert_eq!(
        case.bot_commits(),
        1,
        "the bot branch is one commit on top of main"
    );
    assert!(case.repo.show(BOT, "values.yaml").contains("tag: 1.2.0"));

    // Merged: the next newer tag opens a fresh pull request.
    let bot_tip = case.repo.head(BOT).unwrap();
    git(
        case.repo.path(),
        &["update-ref", "refs/heads/main", &bot_tip],
    );
    case.forge.merge(number);
    case.push_tag("1.3.0").await;
    let out = case.once().await;
    assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", text(&out));
    let prs = case.forge.prs();
    assert_eq!(prs.len(), 2, "{kind:?}: {prs:?}");
    let second = prs
        .iter()
        .find(|p| p.open)
        .expect("a new open pull request");
    assert_ne!(second.number, number);
    assert!(second.body.contains("1.3.0"));

    // Closed without merging: not reopened for the same versions.
    case.forge.close(second.number);
    let updates = case.repo.ref_updates(BOT);
    let out = case.once().await;
    assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", text(&out));
    assert!(
        text(&out).contains(": not proposed again\n"),
        "{}",
        text(&out)
    );
    assert_eq!(case.forge.prs().len(), 2, "{kind:?}");
    assert!(case.forge.prs().iter().all(|p| !p.open));
    assert_eq!(
        case.repo.ref_updates(BOT),
        updates,
        "nothing pushed for refused versions"
    );

    // A human commit on the bot branch is never overwritten.
    case.push_tag("1.4.0").await;
    let human = case
        .repo
        .push_files(BOT, &[("NOTES.md", "a human was here\n")], "human fix");
    let out = case.once().await;
    assert_eq!(out.status.code(), Some(1), "{kind:?}: {}", text(&out));
    assert!(
        text(&out).contains("not made by imagebump"),
        "{}",
        text(&out)
    );
    assert_eq!(case.repo.head(BOT).as_deref(), Some(human.as_str()));

    // Forge errors: a clear message, nothing lost, the next pass recovers.
    git(
        case.repo.path(),
        &["update-ref", "-d", &format!("refs/heads/{BOT}")],
    );
    case.forge.set_fault(Some(Fault::Unauthorized), None);
    let out = case.once().await;
    assert_eq!(out.status.code(), Some(1), "{kind:?}: {}", text(&out));
    assert!(!text(&out).contains(TOKEN), "the token leaked");
    assert!(
        text(&out).contains(TOKEN_ENV),
        "the message names the token variable: {}",
        text(&out)
    );
    case.forge.set_fault(None, None);
    let out = case.once().await;
    assert_eq!(out.status.code(), Some(0), "{kind:?}: {}", text(&out));
    let open: Vec<_> = case.forge.prs().into_iter().filter(|p| p.open).collect();
    assert_eq!(open.len(), 1, "{kind:?}");
    assert!(open[0].body.contains("1.4.0"));
    assert!(
        case.forge.violations().is_empty(),
        "{:?}",
        case.forge.violations()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn github_pull_request_lifecycle() {
    lifecycle(ForgeKind::Github).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_merge_request_lifecycle() {
    lifecycle(ForgeKind::Gitlab).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gitea_pull_request_lifecycle() {
    lifecycle(ForgeKind::Gitea).await;
}
