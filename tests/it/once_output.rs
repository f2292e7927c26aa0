//! What `imagebump once` prints (issue 15): a line per image with the why, also for apps that
//! are up to date; off a terminal only the per-app result blocks and a summary on stdout,
//! nothing on stderr; on a terminal (a pty from util-linux's `script`) progress on stderr.

use crate::support::config::ConfigDir;
use crate::support::git::BareRepo;
use crate::support::imagebump::text;
use crate::support::registry::{ImageSpec, TestRegistry};

fn app(name: &str, repo: &str, registry: &str, file: &str) -> String {
    format!(
        "name: {name}\nrepo: {repo}\nbranch: main\nimages:\n  - name: api\n    image: {registry}/team/api\n    policy: {{semver: \"^1\"}}\n    targets:\n      - file: {file}\n        path: api.tag\n"
    )
}

async fn setup() -> (TestRegistry, BareRepo, ConfigDir) {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    for tag in ["1.0.0", "1.1.0", "2.0.0"] {
        pusher
            .push_image("team/api", tag, &ImageSpec::new("2026-01-01T00:00:00Z"))
            .await;
    }
    let repo = BareRepo::with_files(
        "main",
        &[
            ("shop.yaml", "api: {tag: 1.0.0}\n"),
            ("blog.yaml", "api: {tag: 1.1.0}\n"),
        ],
    );
    let setup = ConfigDir::new(&host, "").apps(&[
        ("shop", app("shop", &repo.file_url(), &host, "shop.yaml")),
        ("blog", app("blog", &repo.file_url(), &host, "blog.yaml")),
    ]);
    (registry, repo, setup)
}

#[tokio::test(flavor = "multi_thread")]
async fn off_a_terminal_once_prints_each_app_with_its_why_and_a_summary_only() {
    let (_registry, repo, setup) = setup().await;
    let out = setup.imagebump(["once"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no progress off a terminal"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains('\u{1b}'), "no escape codes: {stdout:?}");
    assert!(
        stdout.contains(
            "blog: up to date\n  api 1.1.0: up to date: 1.1.0 is the best the policy allows\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("shop: updated\n  api 1.0.0 -> 1.1.0: 1.1.0 is newer and allowed\n  shop.yaml:1  api  1.0.0 -> 1.1.0  ("),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("2 app(s): 1 up to date, 1 updated; 1 push(es), ")
            && last.ends_with(" registry request(s)"),
        "{stdout}"
    );
    assert_eq!(repo.log("main").len(), 2);

    // A dry run says so in its summary.
    let out = setup.imagebump(["once", "--dry-run"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("shop: up to date\n"), "{stdout}");
    assert!(
        stdout.contains("2 app(s): 2 up to date; dry run, nothing written, "),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_once_shows_progress_on_stderr() {
    let (_registry, _repo, setup) = setup().await;
    let command = setup.imagebump(["once", "--dry-run"]).command();
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    // `script` runs the command on a pseudo-terminal and copies what it shows to stdout.
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("IMAGEBUMP_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run script (util-linux)");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    for bar in ["repositories listed", "apps planned", "config repos done"] {
        assert!(shown.contains(bar), "{bar}: {shown:?}");
    }
    assert!(shown.contains("2/2"), "both apps planned: {shown:?}");
    assert!(shown.contains("shop: would change"), "{shown:?}");
    assert!(shown.contains("2 app(s): "), "{shown:?}");
}
