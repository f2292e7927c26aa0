//! `imagebump validate` against the real binary: every problem of every file in one run, with
//! its position.

use std::path::Path;
use std::process::Output;

use crate::support::config::ConfigDir;
use crate::support::imagebump::Imagebump;

fn validate(global: &Path) -> Output {
    Imagebump::new(["validate"]).config(global).output()
}

/// A config dir with `global` as imagebump.yaml and `apps` as apps/NAME.
fn config(global: &str, apps: &[(&str, &str)]) -> ConfigDir {
    let dir = ConfigDir::with_global(global);
    for (name, text) in apps {
        dir.write(&format!("apps/{name}"), text);
    }
    dir
}

fn app_with_repo(name: &str, repo: &str) -> String {
    format!(
        "name: {name}\nrepo: \"{repo}\"\nimages:\n  - image: nginx\n    policy: {{semver: '^1'}}\n    targets: [{{file: k8s/deploy.yaml}}]\n"
    )
}

#[test]
fn repo_urls_outside_the_documented_forms_are_refused() {
    let refused = [
        (
            "scheme-less",
            "github.com/acme/x.git",
            "has no scheme: write `https://github.com/acme/x.git`",
        ),
        (
            "ext",
            "ext::sh -c touch% /tmp/pwned",
            "whitespace or a control character",
        ),
        ("ext2", "ext::true", "remote-helper syntax `ext::`"),
        ("upload-pack", "--upload-pack=evil", "starts with `-`"),
        ("uhelp", "-uhelp", "starts with `-`"),
        ("ftp", "ftp://example.com/x.git", "scheme `ftp://`"),
        ("etc", "file:///etc", "system directory /etc"),
        ("nul", "file:///srv/x\\0.git", "control character"),
        (
            "token",
            "https://x-access-token:ghp_secret@github.com/a/b.git",
            "`git.credentials`",
        ),
    ];
    let apps: Vec<(String, String)> = refused
        .iter()
        .map(|(name, url, _)| (format!("{name}.yaml"), app_with_repo(name, url)))
        .chain([
            (
                "ok1.yaml".to_string(),
                app_with_repo("ok1", "git@github.com:acme/x.git"),
            ),
            (
                "ok2.yaml".to_string(),
                app_with_repo("ok2", "http://127.0.0.1:9/x.git"),
            ),
        ])
        .collect();
    let refs: Vec<(&str, &str)> = apps.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let dir = config("apps: apps\n", &refs);
    let out = validate(&dir.path().join("imagebump.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for (name, _, message) in refused {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("{name}.yaml:2:7: `repo` ")))
            .unwrap_or_else(|| panic!("{name}: no error in\n{stderr}"));
        assert!(line.contains(message), "{name}: {line}");
    }
    assert!(!stderr.contains("ghp_secret"), "{stderr}");
    assert!(
        !stderr.contains("ok1.yaml") && !stderr.contains("ok2.yaml"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{} problem(s) found", refused.len())),
        "{stderr}"
    );
}

const GOOD_APP: &str = "name: NAME\nrepo: https://example.com/acme/x.git\nimages:\n  - image: nginx\n    policy: {semver: '^1'}\n    targets: [{file: k8s/deploy.yaml}]\n";

fn good_app(name: &str) -> String {
    GOOD_APP.replace("NAME", name)
}

#[test]
fn global_errors_app_errors_and_duplicates_are_all_reported_in_one_run() {
    // A broken global file used to hide every app error; a broken app file used to hide the
    // duplicate name of a later one.
    let broken = "name: shop\nrepo: https://example.com/acme/x.git\nimages:\n  - image: nginx\n    policy: {semvr: '^1'}\n    targets: [{file: k8s/deploy.yaml}]\n";
    let dir = config(
        "apps: apps\ninterval: 5 minutes\ngit: {push_retries: lots}\n",
        &[
            ("a.yaml", broken),
            ("b.yaml", &good_app("shop")),
            ("c.yaml", &good_app("other")),
        ],
    );
    let out = validate(&dir.path().join("imagebump.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "imagebump.yaml:2:11: `interval`: invalid duration `5 minutes`",
        "imagebump.yaml:3:21: `push_retries` must be a positive whole number",
        "a.yaml:5:14: unknown key `semvr` in `policy`; did you mean `semver`?",
        "b.yaml:1:7: app name `shop` is already used by",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in\n{stderr}"
        );
    }
    assert!(!stderr.contains("c.yaml"), "{stderr}");
    assert!(stderr.contains("5 problem(s) found"), "{stderr}");
}

#[test]
fn bad_helm_paths_are_refused_at_validate_time() {
    let app = "name: shop\nrepo: https://example.com/acme/x.git\nimages:\n  - image: nginx\n    policy: {semver: '^1'}\n    targets:\n      - {file: values.yaml, path: api..tag}\n      - {file: values.yaml, path: 'api.tag.'}\n      - {file: values.yaml, path: 'api[x].tag'}\n      - {file: values.yaml, path: api.image.tag}\n";
    let dir = config("apps: apps\n", &[("shop.yaml", app)]);
    let out = validate(&dir.path().join("imagebump.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for line in [7, 8, 9] {
        let prefix = format!("shop.yaml:{line}:");
        let found = stderr
            .lines()
            .find(|l| l.contains(&prefix))
            .unwrap_or_else(|| panic!("no error on line {line} in\n{stderr}"));
        assert!(found.contains("`path`"), "{found}");
    }
    assert!(stderr.contains("3 problem(s) found"), "{stderr}");
}

fn imagebump(args: &[&str], global: &Path, env: &[(&str, &str)]) -> Output {
    Imagebump::new(args)
        .config(global)
        .envs(env.iter().copied())
        .output()
}

#[test]
fn templates_are_rendered_at_validate_time_and_a_typo_fails_validate_and_dry_run() {
    // `{{ chnages }}` rendered as an empty string in a commit message, and failed only when a
    // pull request was opened; now every template is rendered against a sample context with
    // undefined variables as errors, in validate, `once --dry-run` and `run` alike.
    let global = "apps: apps\nworkdir: work\ngit:\n  group_commit_message: \"bump {{ app }}\"\n";
    let commit = "name: commit\nrepo: https://example.com/acme/x.git\ncommit_message: \"chore: {{ chnages }}\"\nimages:\n  - image: nginx\n    policy: {semver: '^1'}\n    targets: [{file: k8s/deploy.yaml}]\n";
    let pr = "name: pr\nrepo: https://github.com/acme/x.git\nwrite: pull-request\npull_request:\n  forge: github\n  token_env: PATH\n  title: \"{% for c in changes %}{{ c.too }}{% endfor %}\"\n  branch: \"bot/{{ ap }}\"\nimages:\n  - image: nginx\n    policy: {semver: '^1'}\n    targets: [{file: k8s/deploy.yaml}]\n";
    let dir = config(global, &[("commit.yaml", commit), ("pr.yaml", pr)]);
    let file = dir.path().join("imagebump.yaml");
    let out = validate(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "imagebump.yaml:4:25: `git.group_commit_message` uses a variable not defined in its context: `app`",
        "commit.yaml:3:17: `commit_message` uses a variable not defined in its context: `chnages`",
        "pr.yaml:7:10: `title` fails when rendered against a sample change: ",
        "pr.yaml:8:11: `branch` uses a variable not defined in its context: `ap`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in\n{stderr}"
        );
    }
    assert!(stderr.contains("4 problem(s) found"), "{stderr}");

    // Without the global file's problem, `once --dry-run` stops on the apps' the same way.
    std::fs::write(&file, "apps: apps\nworkdir: work\n").unwrap();
    let out = imagebump(&["once", "--dry-run"], &file, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("commit.yaml:3:17: `commit_message` uses a variable not defined"),
        "{stderr}"
    );
    assert!(stderr.contains("pr.yaml:8:11: `branch`"), "{stderr}");
}

#[test]
fn an_unset_secret_variable_is_a_warning_under_validate_and_an_error_under_once_and_run() {
    let global = "apps: apps\nworkdir: work\nregistries:\n  - prefix: registry.example.com\n    token_env: IMAGEBUMP_TEST_UNSET_REGISTRY_TOKEN\n";
    let app = "name: pr\nrepo: https://github.com/acme/x.git\nwrite: pull-request\npull_request: {forge: github, token_env: IMAGEBUMP_TEST_UNSET_FORGE_TOKEN}\nimages:\n  - image: nginx\n    policy: {semver: '^1'}\n    targets: [{file: k8s/deploy.yaml}]\n";
    let dir = config(global, &[("pr.yaml", app)]);
    let file = dir.path().join("imagebump.yaml");
    let registry_warning = "imagebump.yaml:5:16: warning: environment variable `IMAGEBUMP_TEST_UNSET_REGISTRY_TOKEN` (`token_env`) is not set";
    let forge_warning = "pr.yaml:4:42: warning: environment variable `IMAGEBUMP_TEST_UNSET_FORGE_TOKEN` (`token_env`) is not set";

    let out = validate(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(registry_warning), "{stderr}");
    assert!(stderr.contains(forge_warning), "{stderr}");
    // Set, there is nothing to say.
    let set = [
        ("IMAGEBUMP_TEST_UNSET_REGISTRY_TOKEN", "x"),
        ("IMAGEBUMP_TEST_UNSET_FORGE_TOKEN", "y"),
    ];
    let out = imagebump(&["validate"], &file, &set);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `once` (even --dry-run) and `run` refuse to start, naming the key's place.
    for args in [&["once", "--dry-run"][..], &["run"][..]] {
        let out = imagebump(args, &file, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&registry_warning.replace("warning: ", "")),
            "{args:?}: {stderr}"
        );
    }
    // With the registry's set, the app whose forge token is missing does not run.
    let out = imagebump(
        &["once", "--dry-run"],
        &file,
        &[("IMAGEBUMP_TEST_UNSET_REGISTRY_TOKEN", "x")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&forge_warning.replace("warning: ", "")),
        "{stderr}"
    );
}

#[test]
fn one_run_lists_a_schemeless_url_a_template_typo_a_bad_path_and_global_and_app_errors() {
    // The done-when, in one config.
    let app = "name: shop\nrepo: github.com/acme/shop.git\ncommit_message: \"{{ chnages }}\"\nimages:\n  - image: nginx\n    policy: {semver: '^1'}\n    min_age: soon\n    targets: [{file: values.yaml, path: api..tag}]\n";
    let dir = config("apps: apps\nintervl: 5m\n", &[("shop.yaml", app)]);
    let out = validate(&dir.path().join("imagebump.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "imagebump.yaml:2:1: unknown key `intervl`",
        "shop.yaml:2:7: `repo` ",
        "shop.yaml:3:17: `commit_message` uses a variable not defined in its context: `chnages`",
        "shop.yaml:7:14: `min_age`: invalid duration `soon`",
        "shop.yaml:8:41: `path`: ",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in\n{stderr}"
        );
    }
    assert!(stderr.contains("5 problem(s) found"), "{stderr}");
}

#[test]
fn what_the_forge_client_needs_is_checked_at_validate_time() {
    // Both failed only when the first pull request was due.
    let gitea = "name: gitea\nrepo: file:///srv/git/acme/x.git\nwrite: pull-request\npull_request: {forge: gitea, token_env: PATH}\nimages:\n  - image: nginx\n    policy: {semver: '^1'}\n    targets: [{file: k8s/deploy.yaml}]\n";
    let shallow = "name: shallow\nrepo: https://github.com/x.git\nwrite: pull-request\npull_request: {forge: github, token_env: PATH}\nimages:\n  - image: nginx\n    policy: {semver: '^1'}\n    targets: [{file: k8s/deploy.yaml}]\n";
    let dir = config(
        "apps: apps\n",
        &[("gitea.yaml", gitea), ("shallow.yaml", shallow)],
    );
    let out = validate(&dir.path().join("imagebump.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("gitea.yaml:4:15: `pull_request`: ")
            && stderr.contains("cannot derive the Gitea API URL"),
        "{stderr}"
    );
    assert!(
        stderr.contains("shallow.yaml:4:15: `pull_request`: ") && stderr.contains("set `project`"),
        "{stderr}"
    );
}
