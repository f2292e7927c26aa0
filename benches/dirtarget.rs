//! A directory target over a 5,000-file tree (issue 16): one `once` pass, in-process, against
//! the real `docker-registry` and a bare git repo over `file://`.
//!
//! The tree: 50 folders of 100 Deployment manifests each (`clusters/cNN/appNNN.yaml`), every
//! one naming some image; 20 of them name `api`, 20 others `worker`. Rows:
//! - `dir, 1 image`: `file: ./` (the whole tree) for `api`;
//! - `dir, 2 images`: `file: ./` for `api` and for `worker` (the tree is read once per pass
//!   for both);
//! - `20 files`: the same 20 `api` files as file targets (what the directory costs on top).
//!
//! Passes per row, each with a fresh [`Engine`] (as `imagebump once` makes one per run; the
//! clone cache is kept): `first` (clone, commit, push), `nothing new` (fetch, plan, nothing
//! written), `new tag` (a newer tag was pushed: commit, push). No timed assertion: it prints a
//! table.
//!
//! Run: `cargo bench --bench dirtarget`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use imagebump::engine::{Engine, PassOptions, PassReport};
use support::git::{BareRepo, git};
use support::registry::{ImageSpec, TestRegistry};

const FOLDERS: usize = 50;
const PER_FOLDER: usize = 100;
/// Files naming `api` (and as many naming `worker`).
const MATCHING: usize = 20;

fn manifest(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  labels:\n    team: shop\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {image}\n          ports:\n            - containerPort: 8080\n          resources:\n            limits: {{cpu: 500m, memory: 256Mi}}\n"
    )
}

/// Relative paths of the tree, and which image each names.
fn tree(host: &str, api: &str, worker: &str) -> Vec<(String, String)> {
    let total = FOLDERS * PER_FOLDER;
    (0..total)
        .map(|i| {
            let path = format!("clusters/c{:02}/app{i:04}.yaml", i / PER_FOLDER);
            // Spread the matching files over the tree.
            let image = if i % (total / MATCHING) == 0 {
                format!("{host}/{api}:1.0.0")
            } else if i % (total / MATCHING) == 1 {
                format!("{host}/{worker}:1.0.0")
            } else {
                format!("{host}/bench/other-{}:1.0.0", i % 50)
            };
            (path, manifest(&image))
        })
        .collect()
}

/// One commit with every file, pushed with one `git add -A`.
fn push_tree(repo: &BareRepo, files: &[(String, String)]) {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    git(work, &["init", "-q", "-b", "main"]);
    for (name, content) in files {
        let path = work.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", "tree"]);
    let url = repo.path().display().to_string();
    git(work, &["push", "-q", &url, "HEAD:refs/heads/main"]);
}

fn write_config(dir: &Path, host: &str, repo_url: &str, images: &[(&str, String)]) -> PathBuf {
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    let global = dir.join("imagebump.yaml");
    std::fs::write(
        &global,
        format!(
            "apps: apps\nworkdir: cache\ngit:\n  author: {{name: imagebump, email: bot@imagebump.test}}\nregistries:\n  - prefix: {host}\n    insecure: true\n"
        ),
    )
    .unwrap();
    let images: String = images
        .iter()
        .map(|(repository, targets)| {
            format!(
                "  - image: {host}/{repository}\n    policy: {{semver: \"^1\"}}\n    targets:\n{targets}"
            )
        })
        .collect();
    std::fs::write(
        dir.join("apps/tree.yaml"),
        format!("name: tree\nrepo: {repo_url}\nbranch: main\nimages:\n{images}"),
    )
    .unwrap();
    global
}

async fn pass(config: &Path) -> (Duration, PassReport) {
    let started = Instant::now();
    let loaded = imagebump::config::load(config).expect("config");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let engine = Engine::new(loaded.config).expect("engine");
    let report = engine.run_pass(&PassOptions::default()).await;
    let elapsed = started.elapsed();
    assert!(!report.failed(), "pass failed: {:?}", report.apps[0].errors);
    (elapsed, report)
}

struct Row {
    targets: &'static str,
    kind: &'static str,
    wall: Duration,
    changes: usize,
    pushes: usize,
}

async fn scenario(registry: &TestRegistry, name: &'static str, rows: &mut Vec<Row>) {
    let host = registry.host();
    let slug = name.replace([' ', ','], "-");
    let (api, worker) = (format!("bench/api-{slug}"), format!("bench/worker-{slug}"));
    let pusher = registry.pusher();
    for repository in [&api, &worker] {
        let first = pusher
            .push_image(repository, "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
            .await;
        pusher
            .push_manifest(repository, "1.1.0", &first.media_type, &first.body)
            .await;
    }
    let files = tree(&host, &api, &worker);
    let repo = BareRepo::empty("main");
    push_tree(&repo, &files);
    let whole = "      - file: ./\n".to_string();
    let images = match name {
        "dir, 1 image" => vec![(api.as_str(), whole)],
        "dir, 2 images" => vec![(api.as_str(), whole.clone()), (worker.as_str(), whole)],
        _ => {
            let listed: String = files
                .iter()
                .filter(|(_, text)| text.contains(&format!("{api}:")))
                .map(|(path, _)| format!("      - file: {path}\n"))
                .collect();
            vec![(api.as_str(), listed)]
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &host, &repo.file_url(), &images);
    let mut record = |kind, (wall, report): (Duration, PassReport)| {
        rows.push(Row {
            targets: name,
            kind,
            wall,
            changes: report.changes().count(),
            pushes: report.pushes,
        });
    };
    record("first", pass(&config).await);
    record("nothing new", pass(&config).await);
    pusher
        .push_image(&api, "1.2.0", &ImageSpec::new("2026-01-02T00:00:00Z"))
        .await;
    record("new tag", pass(&config).await);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = runtime.block_on(async {
        let registry = TestRegistry::start_plain().await;
        let mut rows = Vec::new();
        for name in ["dir, 1 image", "dir, 2 images", "20 files"] {
            scenario(&registry, name, &mut rows).await;
        }
        rows
    });
    println!(
        "imagebump once, in-process (config load + Engine::new + run_pass), {} YAML files, file:// remote",
        FOLDERS * PER_FOLDER
    );
    println!(
        "{:<14}  {:<12}  {:>10}  {:>8}  {:>7}",
        "targets", "pass", "wall ms", "changes", "pushes"
    );
    for row in &rows {
        println!(
            "{:<14}  {:<12}  {:>10.1}  {:>8}  {:>7}",
            row.targets,
            row.kind,
            row.wall.as_secs_f64() * 1e3,
            row.changes,
            row.pushes
        );
    }
}
