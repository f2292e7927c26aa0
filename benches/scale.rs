//! Issue 18's CPU goal for a dry run at scale: `imagebump once --dry-run`, the release binary as
//! a user runs it, over 100, 1,000 and 5,000 images in two layouts, against the real
//! `docker-registry` and a config repo over `file://`:
//!
//! - **two files**: one app whose images are half Kustomize `images:` entries in one
//!   `kustomization.yaml` and half Helm paths (`svcNNNN.image.tag`) in one `values.yaml`;
//! - **a file per image**: one app per image, each with its own values file.
//!
//! Every image is its own repository (one pushed, the rest copied in the registry's storage),
//! deployed at `1.0.0` with `1.1.0` allowed, so every image is planned as an update. The process
//! runs three times per row; the row shows the middle run's CPU (user + system of the child, from
//! `/proc/self/stat`'s `cutime`/`cstime`, in clock ticks) and wall time, CPU per image (flat when
//! the cost is linear), and the goal (≤ 0.3 s of CPU at 1,000 images). No timed assertion.
//!
//! Run: `cargo bench --bench scale` (`-- two` or `-- per` for one layout).
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::git::BareRepo;
use support::imagebump::BIN;
use support::registry::{ImageSpec, TestRegistry};

const SIZES: [usize; 3] = [100, 1_000, 5_000];
const RUNS: usize = 3;

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    TwoFiles,
    FilePerImage,
}

impl Layout {
    fn label(self) -> &'static str {
        match self {
            Layout::TwoFiles => "two files",
            Layout::FilePerImage => "a file per image",
        }
    }
}

fn global(host: &str) -> String {
    format!(
        "apps: apps\nworkdir: cache\ninterval: 1h\ngit:\n  author: {{name: imagebump, email: bot@imagebump.test}}\nregistries:\n  - prefix: {host}\n    insecure: true\n"
    )
}

/// The config repo's files and the app files for `n` images of `host/scale/rNNNN`.
/// `(path, text)` pairs.
type Files = Vec<(String, String)>;

fn layout(layout: Layout, n: usize, host: &str) -> (Files, Files) {
    let image = |i: usize| format!("{host}/scale/r{i:04}");
    match layout {
        Layout::TwoFiles => {
            let half = n / 2;
            let mut kustomization = String::from(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n",
            );
            let mut values = String::from("# values\nreplicaCount: 1\n");
            let mut app = String::from("name: shop\nrepo: REPO\nbranch: main\nimages:\n");
            for i in 0..n {
                if i < half {
                    write!(kustomization, "  - name: {}\n    newTag: 1.0.0\n", image(i)).unwrap();
                    write!(
                        app,
                        "  - name: i{i:04}\n    image: {}\n    policy: {{semver: \"^1\"}}\n    targets: [{{file: kustomization.yaml}}]\n",
                        image(i)
                    )
                    .unwrap();
                } else {
                    write!(
                        values,
                        "svc{i:04}:\n  image:\n    repository: {}\n    tag: 1.0.0\n    pullPolicy: IfNotPresent\n",
                        image(i)
                    )
                    .unwrap();
                    write!(
                        app,
                        "  - name: i{i:04}\n    image: {}\n    policy: {{semver: \"^1\"}}\n    targets: [{{file: values.yaml, path: svc{i:04}.image.tag}}]\n",
                        image(i)
                    )
                    .unwrap();
                }
            }
            let files = vec![
                ("kustomization.yaml".to_string(), kustomization),
                ("values.yaml".to_string(), values),
            ];
            (files, vec![("shop".to_string(), app)])
        }
        Layout::FilePerImage => {
            let mut files = Vec::with_capacity(n);
            let mut apps = Vec::with_capacity(n);
            for i in 0..n {
                let file = format!("apps/app{i:04}/values.yaml");
                files.push((
                    file.clone(),
                    format!(
                        "# values\nreplicaCount: 1\napi:\n  image:\n    repository: {}\n    tag: 1.0.0\n    pullPolicy: IfNotPresent\n",
                        image(i)
                    ),
                ));
                apps.push((
                    format!("app{i:04}"),
                    format!(
                        "name: app{i:04}\nrepo: REPO\nbranch: main\nimages:\n  - name: api\n    image: {}\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: {file}, path: api.image.tag}}\n",
                        image(i)
                    ),
                ));
            }
            (files, apps)
        }
    }
}

/// The user and system CPU of this process's waited-for children, in seconds.
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // cutime and cstime are fields 16 and 17 of the whole line, 14 and 15 after the name.
    let ticks: u64 = fields[13].parse::<u64>().unwrap() + fields[14].parse::<u64>().unwrap();
    // The kernel's USER_HZ is 100 on Linux (what `getconf CLK_TCK` prints).
    ticks as f64 / 100.0
}

/// One dry run: (CPU s, wall) of the child.
fn dry_run(config: &Path, expected: usize) -> (f64, Duration) {
    let cpu_before = children_cpu();
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["once", "--dry-run", "--output", "json", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let wall = started.elapsed();
    let cpu = children_cpu() - cpu_before;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let planned =
        stdout.matches("\"to\":\"1.1.0\"").count() + stdout.matches("\"to\": \"1.1.0\"").count();
    assert_eq!(planned, expected, "{}", &stdout[..stdout.len().min(2000)]);
    (cpu, wall)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = runtime.block_on(TestRegistry::start_plain());
    let host = registry.host();
    let largest = SIZES[SIZES.len() - 1];
    let setup = Instant::now();
    let base = "scale/r0000";
    let pushed = runtime.block_on(registry.pusher().push_image(
        base,
        "1.0.0",
        &ImageSpec::new("2026-01-01T00:00:00Z"),
    ));
    registry.seed_tags(base, &pushed, &["1.1.0".to_string(), "2.0.0".to_string()]);
    for i in 1..largest {
        registry.clone_repository(base, &format!("scale/r{i:04}"));
    }
    println!(
        "imagebump once --dry-run (release binary), real docker-registry ({largest} repositories, setup {:.1} s), config repo over file://",
        setup.elapsed().as_secs_f64()
    );
    println!(
        "  {:<17}  {:>6}  {:>8}  {:>8}  {:>12}  {:>16}",
        "layout", "images", "CPU s", "wall s", "CPU µs/image", "goal (1,000)"
    );
    // `cargo bench --bench scale -- two` (or `-- per`) runs one layout; no filter, both.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |kind: Layout| {
        filters.is_empty() || filters.iter().any(|f| kind.label().contains(f.as_str()))
    };
    for kind in [Layout::TwoFiles, Layout::FilePerImage] {
        if !wanted(kind) {
            continue;
        }
        for n in SIZES {
            let (files, apps) = layout(kind, n, &host);
            let refs: Vec<(&str, &str)> = files
                .iter()
                .map(|(p, t)| (p.as_str(), t.as_str()))
                .collect();
            let repo = BareRepo::with_files("main", &refs);
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("apps")).unwrap();
            std::fs::write(dir.path().join("imagebump.yaml"), global(&host)).unwrap();
            for (name, text) in &apps {
                std::fs::write(
                    dir.path().join(format!("apps/{name}.yaml")),
                    text.replace("REPO", &repo.file_url()),
                )
                .unwrap();
            }
            let config = dir.path().join("imagebump.yaml");
            // Three runs (the first also clones into the cache); the middle CPU is shown.
            let mut runs: Vec<(f64, Duration)> = (0..RUNS).map(|_| dry_run(&config, n)).collect();
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (cpu, wall) = runs[RUNS / 2];
            let goal = if n == 1_000 {
                if cpu <= 0.3 {
                    "≤ 0.3 s met"
                } else {
                    "≤ 0.3 s MISSED"
                }
            } else {
                ""
            };
            println!(
                "  {:<17}  {:>6}  {:>8.2}  {:>8.2}  {:>12.0}  {:>16}",
                kind.label(),
                n,
                cpu,
                wall.as_secs_f64(),
                cpu * 1e6 / n as f64,
                goal
            );
        }
    }
}
