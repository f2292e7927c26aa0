//! Issue 18's side-by-side with Renovate: the same real `docker-registry` and the same config
//! repo (half the images Kustomize `images:` entries of one `kustomization.yaml`, half Helm
//! paths `svcNNNN.image.tag` of one `values.yaml`), at 100 and 1,000 images, each image its own
//! repository deployed at `1.0.0` with `1.1.0` and `2.0.0` in the registry.
//!
//! - imagebump: `imagebump once --dry-run --output json` (the release binary), policy
//!   `semver: "^1"`, config repo over `file://`; three runs, the middle wall time is shown (the
//!   first run also clones the config repo into its cache).
//! - Renovate: `renovate --platform=local --dry-run=lookup` in a checkout of the same files,
//!   managers `kustomize` and `helm-values`, updates limited to `1.x` (as the imagebump policy),
//!   the registry reached over plain HTTP through a `registryUrls` package rule, a fresh cache
//!   directory per run (no tag list served from an earlier run); three runs, the middle one.
//!
//! Before every measured run of every tool the bench waits (at most 30 s) for half a second
//! with 90% of the machine's CPU idle, so that no run starts in the wake of the previous one.
//!
//! Each row shows wall time, the child's CPU (user + system), the registry requests it sent
//! (counted in the registry's access log) and how many images it found an update for (both
//! must find all of them). No timed assertion. A third row per size is the floor: `curl`
//! fetching the same tag lists over 8 keep-alive connections and nothing else, with Renovate's
//! wall time over it, the best ratio any client could show against this registry on this
//! machine (the registry shares its cores with the client).
//!
//! Renovate is not a dependency of this project: install it outside the repository and point
//! `RENOVATE_BIN` at it, e.g. `npm install --prefix /work/renovate renovate@39` then
//! `RENOVATE_BIN=/work/renovate/node_modules/.bin/renovate cargo bench --bench renovate`.
//! Without it the bench says so and exits. `RENOVATE_SIZES=10,100` runs other sizes.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::git::BareRepo;
use support::imagebump::BIN;
use support::registry::{ImageSpec, RegistryConfig, TestRegistry};

const RUNS: usize = 3;

/// The Renovate executable: `RENOVATE_BIN`, else `renovate` on `PATH`.
fn renovate_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("RENOVATE_BIN") {
        return Some(PathBuf::from(bin));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("renovate"))
            .find(|candidate| candidate.is_file())
    })
}

/// `kustomization.yaml`, `values.yaml` and the imagebump app file for `n` images.
fn files(n: usize, host: &str) -> (String, String, String) {
    let image = |i: usize| format!("{host}/scale/r{i:04}");
    let half = n / 2;
    let mut kustomization =
        String::from("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n");
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
    (kustomization, values, app)
}

/// The user and system CPU of this process's waited-for children, in seconds.
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // cutime and cstime: fields 16 and 17 of the line, 14 and 15 after the command name.
    let ticks: u64 = fields[13].parse::<u64>().unwrap() + fields[14].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux (`getconf CLK_TCK`).
    ticks as f64 / 100.0
}

/// Requests the registry has answered so far (its access log has one line per request).
fn registry_requests(registry: &TestRegistry) -> usize {
    registry.log().matches(" HTTP/1.1\" ").count()
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .next()
        .unwrap_or("?")
        .to_string()
}

/// The share of the machine's CPU time that was idle over `window` (from `/proc/stat`).
fn idle_share(window: Duration) -> f64 {
    let sample = || -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // idle + iowait, and the total.
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        (idle, fields.iter().sum())
    };
    let (idle_before, total_before) = sample();
    std::thread::sleep(window);
    let (idle_after, total_after) = sample();
    let total = total_after.saturating_sub(total_before).max(1);
    idle_after.saturating_sub(idle_before) as f64 / total as f64
}

/// Wait (at most 30 s) for a quiet machine: half a second with 90% of the CPU idle, so that
/// no tool is measured in the wake of the previous one (Renovate's 30 s of CPU, the fixture's
/// setup) or of another process. Every tool, every run, gets the same wait.
fn wait_quiet() {
    let deadline = Instant::now() + Duration::from_secs(30);
    while idle_share(Duration::from_millis(500)) < 0.9 && Instant::now() < deadline {}
}

/// One measured run of a child: (wall, CPU s, registry requests, stdout+stderr).
fn measure(registry: &TestRegistry, command: &mut Command) -> (Duration, f64, usize, String) {
    // The registry writes its log line after the response; let the previous run's settle.
    std::thread::sleep(Duration::from_millis(300));
    wait_quiet();
    let requests_before = registry_requests(registry);
    let cpu_before = children_cpu();
    let started = Instant::now();
    let out = command.output().unwrap();
    let wall = started.elapsed();
    let cpu = children_cpu() - cpu_before;
    std::thread::sleep(Duration::from_millis(300));
    let requests = registry_requests(registry) - requests_before;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    (wall, cpu, requests, text)
}

/// The floor any client meets on this registry: `curl` fetching the same `n` tag lists over
/// as many keep-alive connections as imagebump opens (`max_concurrency`, 8), nothing else
/// (no config, no git, no planning). Three runs, the middle one; `None` without `curl`.
fn curl_floor(registry: &TestRegistry, host: &str, n: usize) -> Option<(Duration, f64, usize)> {
    Command::new("curl").arg("--version").output().ok()?;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("urls.cfg");
    let mut text = String::new();
    for i in 0..n {
        writeln!(
            text,
            "url = \"http://{host}/v2/scale/r{i:04}/tags/list?n=100\"\noutput = \"/dev/null\""
        )
        .unwrap();
    }
    std::fs::write(&list, text).unwrap();
    let mut runs: Vec<(Duration, f64, usize)> = (0..RUNS)
        .map(|_| {
            let (wall, cpu, requests, _) = measure(
                registry,
                Command::new("curl")
                    .args(["--silent", "--fail", "--parallel", "--parallel-max", "8"])
                    .arg("--config")
                    .arg(&list),
            );
            (wall, cpu, requests)
        })
        .collect();
    runs.sort_by_key(|run| run.0);
    Some(runs[RUNS / 2])
}

/// Images Renovate's report lists with an update to 1.1.0.
fn renovate_updates(report: &Path) -> usize {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let mut found = 0;
    for repository in report["repositories"].as_object().into_iter().flatten() {
        for files in repository.1["packageFiles"]
            .as_object()
            .into_iter()
            .flatten()
        {
            for file in files.1.as_array().into_iter().flatten() {
                for dep in file["deps"].as_array().into_iter().flatten() {
                    let updates = dep["updates"].as_array();
                    if updates.is_some_and(|u| u.iter().any(|u| u["newValue"] == "1.1.0")) {
                        found += 1;
                    }
                }
            }
        }
    }
    found
}

fn main() {
    let Some(renovate) = renovate_bin() else {
        println!(
            "renovate: skipped, Renovate not found (set RENOVATE_BIN, or put `renovate` on PATH; \
             e.g. `npm install --prefix /work/renovate renovate@39` and \
             RENOVATE_BIN=/work/renovate/node_modules/.bin/renovate)"
        );
        return;
    };
    let version = Command::new(&renovate)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    let sizes: Vec<usize> = std::env::var("RENOVATE_SIZES")
        .ok()
        .map(|sizes| {
            sizes
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![100, 1_000]);
    let largest = sizes.iter().copied().max().unwrap_or(0);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = runtime.block_on(TestRegistry::start(RegistryConfig {
        access_log: true,
        ..RegistryConfig::default()
    }));
    let host = registry.host();
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
        "imagebump once --dry-run against Renovate {version} --platform=local --dry-run=lookup: one real docker-registry ({largest} repositories), the same files"
    );
    println!(
        "  {:>6}  {:<18}  {:>8}  {:>7}  {:>9}  {:>8}  {:>12}  {:>5}  goal (1,000 images)",
        "images", "tool", "wall s", "CPU s", "requests", "updates", "wall ratio", "load"
    );
    for n in sizes {
        let (kustomization, values, app) = files(n, &host);
        // imagebump: a config repo over file://, three runs.
        let repo = BareRepo::with_files(
            "main",
            &[
                ("kustomization.yaml", &kustomization),
                ("values.yaml", &values),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("apps")).unwrap();
        std::fs::write(
            dir.path().join("imagebump.yaml"),
            format!(
                "apps: apps\nworkdir: cache\ninterval: 1h\ngit:\n  author: {{name: imagebump, email: bot@imagebump.test}}\nregistries:\n  - prefix: {host}\n    insecure: true\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("apps/shop.yaml"),
            app.replace("REPO", &repo.file_url()),
        )
        .unwrap();
        let config = dir.path().join("imagebump.yaml");
        let load_before = load();
        let mut runs: Vec<(Duration, f64, usize, usize)> = (0..RUNS)
            .map(|_| {
                let (wall, cpu, requests, text) = measure(
                    &registry,
                    Command::new(BIN)
                        .args(["once", "--dry-run", "--output", "json", "--config"])
                        .arg(&config)
                        .env_remove("RUST_LOG"),
                );
                let updates = text.matches("\"to\":\"1.1.0\"").count()
                    + text.matches("\"to\": \"1.1.0\"").count();
                (wall, cpu, requests, updates)
            })
            .collect();
        runs.sort_by_key(|run| run.0);
        let imagebump = runs[RUNS / 2];

        // Renovate: a git checkout of the same two files, a fresh cache.
        let checkout = tempfile::tempdir().unwrap();
        std::fs::write(checkout.path().join("kustomization.yaml"), &kustomization).unwrap();
        std::fs::write(checkout.path().join("values.yaml"), &values).unwrap();
        for args in [
            vec!["init", "-q", "-b", "main"],
            vec!["add", "."],
            vec![
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@imagebump.test",
                "commit",
                "-q",
                "-m",
                "config",
            ],
        ] {
            let status = Command::new("git")
                .args(&args)
                .current_dir(checkout.path())
                .status()
                .unwrap();
            assert!(status.success(), "git {args:?}");
        }
        let config_dir = tempfile::tempdir().unwrap();
        let renovate_config = config_dir.path().join("config.json");
        std::fs::write(
            &renovate_config,
            serde_json::json!({
                "extends": [],
                "onboarding": false,
                "requireConfig": "ignored",
                "enabledManagers": ["kustomize", "helm-values"],
                "packageRules": [{
                    "matchDatasources": ["docker"],
                    "registryUrls": [format!("http://{host}")],
                    "allowedVersions": "/^1\\./"
                }]
            })
            .to_string(),
        )
        .unwrap();
        // Three runs, each with a fresh cache (no tag list served from an earlier run); the
        // middle wall time is shown, as for imagebump.
        let mut renovate_runs: Vec<(Duration, f64, usize, usize, String)> = (0..RUNS)
            .map(|_| {
                let scratch = tempfile::tempdir().unwrap();
                let report = scratch.path().join("report.json");
                let (wall, cpu, requests, text) = measure(
                    &registry,
                    Command::new(&renovate)
                        .args(["--platform=local", "--dry-run=lookup", "--report-type=file"])
                        .arg(format!("--report-path={}", report.display()))
                        .current_dir(checkout.path())
                        .env("RENOVATE_CONFIG_FILE", &renovate_config)
                        .env("RENOVATE_CACHE_DIR", scratch.path().join("cache"))
                        .env("RENOVATE_BASE_DIR", scratch.path().join("base"))
                        .env("LOG_LEVEL", "info"),
                );
                (wall, cpu, requests, renovate_updates(&report), text)
            })
            .collect();
        renovate_runs.sort_by_key(|run| run.0);
        let (wall, cpu, requests, updates, text) = renovate_runs.swap_remove(RUNS / 2);
        if updates != n {
            println!(
                "  Renovate found {updates} of {n} updates; its output:\n{}",
                &text[text.len().saturating_sub(4000)..]
            );
        }
        let ratio = wall.as_secs_f64() / imagebump.0.as_secs_f64();
        let floor = curl_floor(&registry, &host, n);
        println!(
            "  {:>6}  {:<18}  {:>8.2}  {:>7.2}  {:>9}  {:>8}  {:>12}  {:>5}",
            n,
            "imagebump",
            imagebump.0.as_secs_f64(),
            imagebump.1,
            imagebump.2,
            imagebump.3,
            "",
            load_before
        );
        let goal = match (n, ratio >= 40.0) {
            (1_000, true) => "≥ 40× met",
            (1_000, false) => "≥ 40× MISSED",
            _ => "",
        };
        println!(
            "  {:>6}  {:<18}  {:>8.2}  {:>7.2}  {:>9}  {:>8}  {:>12}  {:>5}  {goal}",
            n,
            "Renovate",
            wall.as_secs_f64(),
            cpu,
            requests,
            updates,
            format!("{ratio:.1}×"),
            load()
        );
        match floor {
            Some((floor_wall, floor_cpu, floor_requests)) => println!(
                "  {:>6}  {:<18}  {:>8.2}  {:>7.2}  {:>9}  {:>8}  {:>12}  {:>5}  the best ratio any client gets here",
                n,
                "curl, tag lists",
                floor_wall.as_secs_f64(),
                floor_cpu,
                floor_requests,
                "-",
                format!("{:.1}×", wall.as_secs_f64() / floor_wall.as_secs_f64()),
                load()
            ),
            None => println!("  {n:>6}  curl, tag lists: skipped, `curl` not found"),
        }
    }
}
