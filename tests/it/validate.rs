//! `imagebump validate` against the real binary: every problem of every file in one run, with
//! its position.

use std::path::Path;
use std::process::{Command, Output};

fn validate(global: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagebump"))
        .args(["validate", "--config"])
        .arg(global)
        .env_remove("IMAGEBUMP_CONFIG")
        .output()
        .unwrap()
}

/// A config dir with `global` as imagebump.yaml and `apps` as apps/NAME.
fn config(global: &str, apps: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("imagebump.yaml"), global).unwrap();
    std::fs::create_dir(dir.path().join("apps")).unwrap();
    for (name, text) in apps {
        std::fs::write(dir.path().join("apps").join(name), text).unwrap();
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
