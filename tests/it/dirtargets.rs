//! Directory targets end to end (issue 16): `file: clusters/prod/` scans every YAML file under
//! the directory on a real git remote, against the real registry, through the binary.

use std::process::Command;

use crate::support::config::ConfigDir;
use crate::support::git::{BareRepo, git};
use crate::support::imagebump::text;
use crate::support::registry::{ImageSpec, TestRegistry};

const KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - apps/
images:
  - name: REGISTRY/team/api
    newTag: 1.0.0   # kept comment
";

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  template:
    spec:
      containers:
        - name: api
          image: \"REGISTRY/team/api:1.0.0\"
        - name: proxy
          image: nginx:1.25
";

const NESTED: &str = "\
images:
- name: REGISTRY/team/api
  newTag: '1.0.0'
";

const RELEASE: &str = "\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: api
spec:
  values:
    image:
      repository: REGISTRY/team/api # {\"$imagepolicy\": \"flux-system:api:name\"}
      tag: 1.0.0 # {\"$imagepolicy\": \"flux-system:api:tag\"}
";

/// Line 3 does not parse.
const BROKEN: &str = "\
apiVersion: v1
kind: ConfigMap
data: {a: [1, 2}
image: REGISTRY/team/api:1.0.0
";

const UNRELATED: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  image: REGISTRY/team/api:1.0.0
";

/// Outside the directory target, reached only through symbolic links inside it.
const OUTSIDE: &str = "\
apiVersion: v1
kind: Pod
spec:
  containers:
    - name: api
      image: REGISTRY/team/api:1.0.0
";

/// Commits `files` and `links` (path, link target) on `main` of `repo` with the git CLI.
fn push_tree(repo: &BareRepo, files: &[(&str, String)], links: &[(&str, &str)]) {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    git(work, &["init", "-q", "-b", "main"]);
    for (name, content) in files {
        let path = work.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    for (name, target) in links {
        let path = work.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &path).unwrap();
    }
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", "config"]);
    let url = repo.path().display().to_string();
    git(work, &["push", "-q", &url, "HEAD:refs/heads/main"]);
}

/// The bytes of `file` at the tip of `main` (no trimming).
fn blob(repo: &BareRepo, file: &str) -> Vec<u8> {
    let out = Command::new("git")
        .args(["cat-file", "blob", &format!("main:{file}")])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{file}: {out:?}");
    out.stdout
}

/// The files the last commit of `main` changed.
fn changed_by_last_commit(repo: &BareRepo) -> Vec<String> {
    let names = git(
        repo.path(),
        &["diff", "--name-only", "main~1", "main", "--"],
    );
    names.lines().map(str::to_string).collect()
}

async fn registry_with_api_tags() -> TestRegistry {
    let registry = TestRegistry::start_plain().await;
    let pusher = registry.pusher();
    for (i, tag) in ["1.0.0", "1.1.0", "2.0.0"].iter().enumerate() {
        let spec = ImageSpec::new(&format!("2026-01-0{}T00:00:00Z", i + 1));
        pusher.push_image("team/api", tag, &spec).await;
    }
    registry
}

fn app(name: &str, repo: &BareRepo, host: &str, targets: &str) -> String {
    format!(
        "name: {name}\nrepo: {}\nbranch: main\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: \"^1.0\"}}\n    targets:\n{targets}",
        repo.file_url()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_target_edits_every_matching_file_and_reports_the_broken_one() {
    let registry = registry_with_api_tags().await;
    let host = registry.host();
    let fill = |text: &str| text.replace("REGISTRY", &host);
    let repo = BareRepo::empty("main");
    let files = [
        ("clusters/prod/kustomization.yaml", fill(KUSTOMIZATION)),
        ("clusters/prod/apps/deployment.yaml", fill(DEPLOYMENT)),
        ("clusters/prod/apps/nested/kustomization.yml", fill(NESTED)),
        ("clusters/prod/flux/release.yaml", fill(RELEASE)),
        ("clusters/prod/broken.yaml", fill(BROKEN)),
        ("clusters/prod/zz-settings.yaml", fill(UNRELATED)),
        (
            "clusters/prod/README.md",
            fill("image: REGISTRY/team/api:1.0.0\n"),
        ),
        ("outside/pod.yaml", fill(OUTSIDE)),
    ];
    push_tree(
        &repo,
        &files,
        &[
            ("clusters/prod/link.yaml", "../../outside/pod.yaml"),
            ("clusters/prod/shared", "../../outside"),
        ],
    );
    // The directory's Kustomize entries and containers, and its Flux markers of
    // `flux-system:api` (the HelmRelease's tag-only marker, which only a marker target finds).
    let setup = ConfigDir::new(&host, "").app(
        "prod",
        &app(
            "prod",
            &repo,
            &host,
            "      - file: clusters/prod/\n      - file: clusters/prod/\n        marker: flux-system:api\n",
        ),
    );
    let changed = [
        "clusters/prod/apps/deployment.yaml",
        "clusters/prod/apps/nested/kustomization.yml",
        "clusters/prod/flux/release.yaml",
        "clusters/prod/kustomization.yaml",
    ];

    // Dry run: every file that would change, in path order, and the broken file with its line.
    let before = repo.head("main");
    let out = setup
        .imagebump(["once", "--dry-run", "--output", "json"])
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned: Vec<(&str, &str, &str)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["file"].as_str().unwrap(),
                c["from"].as_str().unwrap(),
                c["to"].as_str().unwrap(),
            )
        })
        .collect();
    let api = format!("{host}/team/api");
    assert_eq!(
        planned,
        [
            (
                changed[0],
                &*format!("{api}:1.0.0"),
                &*format!("{api}:1.1.0")
            ),
            (changed[1], "1.0.0", "1.1.0"),
            (changed[3], "1.0.0", "1.1.0"),
            (changed[2], "1.0.0", "1.1.0"),
        ],
        "{plan:#}"
    );
    let out = setup.imagebump(["once", "--dry-run"]).output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in changed {
        assert!(stdout.contains(&format!("  {file}:")), "{file}: {stdout}");
        assert!(
            stdout.contains(&format!("--- a/{file}\n")),
            "{file}: {stdout}"
        );
    }
    let broken: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("broken.yaml"))
        .collect();
    assert_eq!(broken.len(), 1, "reported once: {stdout}");
    assert!(
        broken[0].contains("clusters/prod/broken.yaml:3:"),
        "{stdout}"
    );
    assert!(broken[0].contains("skipped"), "{stdout}");
    for untouched in ["link.yaml", "shared", "README.md", "zz-settings.yaml"] {
        assert!(
            !stdout.contains(&format!("a/clusters/prod/{untouched}")),
            "{stdout}"
        );
    }
    assert_eq!(repo.head("main"), before, "a dry run must not push");

    // The pass: one commit with exactly the matching files, each changed only in its tag.
    let out = setup.imagebump(["once"]).output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("  commit "), "{stdout}");
    assert!(stdout.contains("clusters/prod/broken.yaml:3:"), "{stdout}");
    assert_eq!(changed_by_last_commit(&repo), changed);
    let expect = |file: &str, from: &str, to: &str| {
        let (_, text) = files.iter().find(|(name, _)| *name == file).unwrap();
        assert_eq!(
            String::from_utf8(blob(&repo, file)).unwrap(),
            text.replacen(from, to, 1),
            "{file}"
        );
    };
    expect(changed[0], "api:1.0.0", "api:1.1.0");
    expect(changed[1], "'1.0.0'", "'1.1.0'");
    expect(changed[2], "tag: 1.0.0", "tag: 1.1.0");
    expect(changed[3], "newTag: 1.0.0", "newTag: 1.1.0");
    for (file, text) in &files {
        if !changed.contains(file) {
            assert_eq!(blob(&repo, file), text.as_bytes(), "{file}");
        }
    }
    assert_eq!(
        git(
            repo.path(),
            &["cat-file", "-t", "main:clusters/prod/link.yaml"]
        ),
        "blob"
    );
    assert_eq!(
        blob(&repo, "clusters/prod/link.yaml"),
        b"../../outside/pod.yaml",
        "the link itself is not rewritten"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_that_mentions_the_image_nowhere_is_one_problem() {
    let registry = registry_with_api_tags().await;
    let host = registry.host();
    let repo = BareRepo::empty("main");
    let other = "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: b\n".to_string();
    push_tree(
        &repo,
        &[
            ("clusters/staging/one.yaml", other.clone()),
            ("clusters/staging/deep/two.yml", other.clone()),
            (
                "clusters/staging/notes.txt",
                format!("image: {host}/team/api:1.0.0\n"),
            ),
        ],
        &[("clusters/staging/elsewhere.yaml", "../../nowhere.yaml")],
    );
    // A trailing slash, and an existing directory without one: both are directory targets.
    let setup = ConfigDir::new(&host, "").apps(&[
        (
            "slash",
            app("slash", &repo, &host, "      - file: clusters/staging/\n"),
        ),
        (
            "plain",
            app("plain", &repo, &host, "      - file: clusters/staging\n"),
        ),
    ]);
    let out = setup.imagebump(["once", "--output", "json"]).output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for app in report["apps"].as_array().unwrap() {
        let errors = app["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{app:#}");
        assert_eq!(errors[0]["kind"], "not_found");
        let message = errors[0]["message"].as_str().unwrap();
        let dir = if app["name"] == "slash" {
            "clusters/staging/"
        } else {
            "clusters/staging"
        };
        assert!(
            message.starts_with(&format!(
                "api: {dir}: no reference to {host}/team/api found in 2 YAML files (1 symbolic \
                 link not followed)"
            )),
            "{message}"
        );
        assert!(
            message.contains(&format!("apps/{}.yaml:", app["name"].as_str().unwrap())),
            "{message}"
        );
    }
    assert_eq!(repo.log("main").len(), 1, "nothing committed");
}

/// A directory target written without the trailing slash has no value history of its own: the
/// read-ahead before the tag lists skips it, as the round does. It read the directory's path as
/// a file once (session 8), which failed and marked the clone damaged: every second pass cloned
/// the repository again.
#[tokio::test(flavor = "multi_thread")]
async fn a_directory_target_without_a_slash_is_not_read_ahead_as_a_file() {
    let registry = registry_with_api_tags().await;
    let host = registry.host();
    let repo = BareRepo::empty("main");
    let deploy = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: {host}/team/api:1.0.0\n"
    );
    push_tree(&repo, &[("clusters/dev/api.yaml", deploy)], &[]);
    let setup = ConfigDir::new(&host, "").apps(&[(
        "plain",
        app("plain", &repo, &host, "      - file: clusters/dev\n"),
    )]);
    for pass in 1..=3 {
        let out = setup.imagebump(["once"]).output();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(0), "pass {pass}: {all}");
        assert!(
            !all.contains("reading ahead") && !all.contains("cloning again"),
            "pass {pass}: {all}"
        );
    }
    assert!(blob(&repo, "clusters/dev/api.yaml").ends_with(b"team/api:1.1.0\n"));
}
