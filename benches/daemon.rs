//! The daemon's two costs, in-process (`imagebump::daemon::run` with the engine as its worker,
//! as `imagebump run` wires them, minus process startup and signal handling):
//!
//! 1. **One poll cycle over 1,000 image repositories**: 1,000 repositories on the real
//!    `docker-registry` (one image pushed, a few more tags written into its storage, then the
//!    repository copied 999 times in storage), 1,000 apps with one image each in one config
//!    repo, each with its own values file. Six passes on one long-lived engine: the first
//!    (clone, 1,000 commits, one push), then five in the steady state (nothing new; the first
//!    of them right after the round's commits). Prints registry requests, wall time, the CPU
//!    time of this process and of the registry, each pass's peak memory (VmHWM, reset before
//!    the pass) and the process's. The wall goal is judged on the steady passes' median (one
//!    pass is one sample of a noisy 2-core machine); their slowest is printed beside it.
//! 2. **Webhook-to-commit latency**: the real `docker-registry` notifies the daemon
//!    (`notifications.endpoints`), 50 new tags pushed one at a time per row (one row 1.5 s from
//!    push to push, one 1.5 s from the previous commit to the push, one right after the
//!    previous commit); from the manifest PUT being accepted to the new commit being visible
//!    on the bare remote (its ref read with libgit2 every 5 ms). Prints p50/p90/p99/max beside
//!    the goal, then a burst of 100 pushes back to back and the webhook checks it cost.
//!
//! The poll cycle runs twice, each in a process of its own: with the config repo over
//! `file://` (libgit2 indexes the pushed pack in this process) and over smart HTTP (`git
//! http-backend` does, in its own process, as a forge would).
//!
//! No timed assertion. Run: `cargo bench --bench daemon` (`-- poll`, `-- poll-http` or
//! `-- webhook` for one part).
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imagebump::daemon::{
    Control, Loaded, Metrics, Receiver, ReceiverKind, Schedule, Secret, Settings,
};
use imagebump::engine::{Engine, PassOptions};
use imagebump::service::worker::EngineWorker;
use support::git::{BareRepo, GitHttpServer};
use support::registry::{ImageSpec, NotificationEndpoint, RegistryConfig, TestRegistry};

const REPOSITORIES: usize = 1_000;
const PUSHES: usize = 50;
const BURST: usize = 100;
const TOKEN: &str = "Bearer bench-webhook-token";

fn values(image: &str, tag: &str) -> String {
    format!(
        "# values\nreplicaCount: 1\napi:\n  image:\n    repository: {image}\n    tag: {tag}\n    pullPolicy: IfNotPresent\n"
    )
}

/// A config dir: the global file and one app per `(app, image, file)`, all in `repo_url`.
fn write_config(dir: &Path, host: &str, repo_url: &str, apps: &[(String, String, String)]) {
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    std::fs::write(
        dir.join("imagebump.yaml"),
        format!(
            "apps: apps\nworkdir: cache\ninterval: 1h\ngit:\n  author: {{name: imagebump, email: bot@imagebump.test}}\nregistries:\n  - prefix: {host}\n    insecure: true\n"
        ),
    )
    .unwrap();
    for (name, image, file) in apps {
        std::fs::write(
            dir.join(format!("apps/{name}.yaml")),
            format!(
                "name: {name}\nrepo: {repo_url}\nbranch: main\nimages:\n  - name: api\n    image: {image}\n    policy: {{semver: \"^1\"}}\n    targets:\n      - {{file: {file}, path: api.image.tag}}\n"
            ),
        )
        .unwrap();
    }
}

/// A `/proc/self/status` field in KiB (0 when unavailable).
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field)?.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat` (`self` for this
/// one); zero when unavailable. Clock ticks are taken as 100 Hz, Linux's `USER_HZ`.
fn cpu_ms(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its `)` are plain.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15: the 12th and 13th after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 * 10.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS (Linux `clear_refs`, value 5),
/// so that each pass's own peak can be read; false when the kernel refuses.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Issue 18's memory goal: 60 MB (decimal) of peak RSS for a poll cycle.
const PEAK_GOAL_KIB: u64 = 60_000_000 / 1024;

/// Steady passes (nothing new) after the first; the wall goal is judged on their median.
const STEADY_PASSES: usize = 5;

/// Where the poll-cycle bench's config repo lives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Remote {
    /// `file://`: libgit2 writes the pushed pack into the remote (and indexes it) inside this
    /// process, work a real remote does on its own side.
    File,
    /// Smart HTTP through `git http-backend` (its own process), as a forge serves it.
    Http,
}

async fn poll_cycle(remote: Remote) {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let setup = Instant::now();
    let base = "bench/r0000";
    let pushed = registry
        .pusher()
        .push_image(base, "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await;
    let tags: Vec<String> = ["1.1.0", "1.2.0", "2.0.0", "latest"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    registry.seed_tags(base, &pushed, &tags);
    for i in 1..REPOSITORIES {
        registry.clone_repository(base, &format!("bench/r{i:04}"));
    }
    let apps: Vec<(String, String, String)> = (0..REPOSITORIES)
        .map(|i| {
            (
                format!("app{i:04}"),
                format!("{host}/bench/r{i:04}"),
                format!("apps/app{i:04}/values.yaml"),
            )
        })
        .collect();
    let files: Vec<(String, String)> = apps
        .iter()
        .map(|(_, image, file)| (file.clone(), values(image, "1.0.0")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let repo = BareRepo::with_files("main", &refs);
    let dir = tempfile::tempdir().unwrap();
    let _server;
    let (url, over) = match remote {
        Remote::File => (repo.file_url(), "file://"),
        Remote::Http => {
            let server = GitHttpServer::start(repo.root(), "bot", "bench-git-password");
            let url = server.url("repo.git");
            _server = server;
            (url, "smart HTTP (git http-backend)")
        }
    };
    write_config(dir.path(), &host, &url, &apps);
    if remote == Remote::Http {
        std::fs::write(dir.path().join("git-password"), "bench-git-password").unwrap();
        let global = dir.path().join("imagebump.yaml");
        let text = std::fs::read_to_string(&global).unwrap().replace(
            "git:\n",
            &format!("git:\n  credentials:\n    - {{url: '{url}', username: bot, password_file: git-password}}\n"),
        );
        std::fs::write(global, text).unwrap();
    }
    println!(
        "poll cycle: {REPOSITORIES} image repositories (5 tags each), {REPOSITORIES} apps with one image each, one config repo over {over} (setup {:.1} s)",
        setup.elapsed().as_secs_f64()
    );

    let rss_before = proc_status_kib("VmRSS:");
    let hwm_before = proc_status_kib("VmHWM:");
    let started = Instant::now();
    let loaded = imagebump::config::load(&dir.path().join("imagebump.yaml")).expect("config");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let engine = Engine::new(loaded.config).expect("engine");
    let load = started.elapsed();
    println!(
        "  config load + Engine::new: {:.1} ms; before the passes: RSS {:.1} MiB, peak {:.1} MiB",
        load.as_secs_f64() * 1e3,
        mib(rss_before),
        mib(hwm_before)
    );
    // Peak RSS per pass (VmHWM reset before each) and of the whole process so far; CPU time of
    // this process (the engine, plus libgit2 writing the pack over file://) and of the registry.
    println!(
        "  {:<26}  {:>9}  {:>8}  {:>7}  {:>9}  {:>9}  {:>12}  {:>13}  {:>16}  {:>22}  {:>15}",
        "pass",
        "wall ms",
        "commits",
        "pushes",
        "requests",
        "CPU ms",
        "registry ms",
        "pass peak MiB",
        "process peak MiB",
        "goal ≤ 60 MB (57.2 MiB)",
        "goal ≤ 1 s wall"
    );
    let registry_pid = registry.pid().to_string();
    let mut process_peak = hwm_before.max(proc_status_kib("VmHWM:"));
    let mut steady = Vec::new();
    let passes = std::iter::once("first (clone, 1000 commits)".to_string())
        .chain((1..=STEADY_PASSES).map(|i| format!("steady {i} (nothing new)")));
    for kind in passes {
        let per_pass = reset_peak();
        let (cpu, registry_cpu) = (cpu_ms("self"), cpu_ms(&registry_pid));
        let started = Instant::now();
        let report = engine.run_pass(&PassOptions::default()).await;
        let wall = started.elapsed();
        let (cpu, registry_cpu) = (cpu_ms("self") - cpu, cpu_ms(&registry_pid) - registry_cpu);
        assert!(!report.failed(), "{:?}", report.apps[0].errors);
        let peak = proc_status_kib("VmHWM:");
        process_peak = process_peak.max(peak);
        let first = kind.starts_with("first");
        if !first {
            steady.push(wall);
        }
        println!(
            "  {:<26}  {:>9.1}  {:>8}  {:>7}  {:>9}  {:>9.0}  {:>12.0}  {:>13}  {:>16.1}  {:>22}  {:>15}",
            kind,
            wall.as_secs_f64() * 1e3,
            report.apps.iter().filter(|a| a.commit.is_some()).count(),
            report.pushes,
            report.registry_requests,
            cpu,
            registry_cpu,
            if per_pass {
                format!("{:.1}", mib(peak))
            } else {
                "n/a".to_string()
            },
            mib(process_peak),
            if !per_pass {
                "n/a"
            } else if peak <= PEAK_GOAL_KIB {
                "met"
            } else {
                "MISSED"
            },
            // The goal is a poll cycle's; the first pass also clones and writes 1,000 commits,
            // and a single steady pass is one sample: the goal is judged on their median.
            if first { "n/a (commits)" } else { "" },
        );
    }
    steady.sort();
    let median = steady[steady.len() / 2];
    let slowest = steady[steady.len() - 1];
    for (row, wall, verdict) in [
        (
            "steady, median",
            median,
            if median <= Duration::from_secs(1) {
                "met"
            } else {
                "MISSED"
            },
        ),
        ("steady, slowest", slowest, ""),
    ] {
        println!(
            "  {:<26}  {:>9.1}  {:>8}  {:>7}  {:>9}  {:>9}  {:>12}  {:>13}  {:>16}  {:>22}  {:>15}",
            row,
            wall.as_secs_f64() * 1e3,
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            verdict,
        );
    }
    assert_eq!(repo.log("main").len(), 1 + REPOSITORIES);
}

/// The commit `refs/heads/main` points at in the bare repo (read with libgit2, no process).
/// Webhook checks (`scope="repository"`) the daemon has run so far (outcome ok or error; not
/// the requests coalesced into another check).
fn repository_checks(metrics: &Metrics) -> u64 {
    metrics
        .encode()
        .lines()
        .filter(|line| {
            ["ok", "error"].iter().any(|outcome| {
                line.starts_with(&format!(
                    "imagebump_checks_total{{scope=\"repository\",outcome=\"{outcome}\"}}"
                ))
            })
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn remote_head(path: &Path) -> Option<git2::Oid> {
    git2::Repository::open_bare(path)
        .ok()?
        .refname_to_id("refs/heads/main")
        .ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn webhook_to_commit() {
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut endpoint =
        NotificationEndpoint::new("imagebump", &format!("http://{addr}/webhook/distribution"));
    endpoint
        .headers
        .push(("Authorization".into(), TOKEN.into()));
    endpoint.timeout = Duration::from_millis(500);
    endpoint.backoff = Duration::from_millis(200);
    let registry = TestRegistry::start(RegistryConfig {
        notifications: vec![endpoint],
        ..RegistryConfig::default()
    })
    .await;
    let host = registry.host();
    let pusher = registry.pusher();
    let first = pusher
        .push_image("team/api", "1.0.0", &ImageSpec::new("2026-01-01T00:00:00Z"))
        .await;
    let image = format!("{host}/team/api");
    let repo = BareRepo::with_files("main", &[("values.yaml", &values(&image, "1.0.0"))]);
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &host,
        &repo.file_url(),
        &[("shop".into(), image, "values.yaml".into())],
    );
    let config: PathBuf = dir.path().join("imagebump.yaml");

    let metrics = Arc::new(Metrics::new());
    let control = Control::new();
    let daemon = {
        let metrics = Arc::clone(&metrics);
        let loader_metrics = Arc::clone(&metrics);
        let shutdown = control.shutdown_signal().clone();
        tokio::spawn(imagebump::daemon::run(
            move || -> Result<Loaded<EngineWorker>, String> {
                let loaded = imagebump::config::load(&config).map_err(|e| e.to_string())?;
                let engine = Engine::new(loaded.config)
                    .map_err(|e| e.to_string())?
                    .with_shutdown(shutdown.clone());
                // As `imagebump run` sets it up: polling once an hour (only the webhook can
                // explain a commit), the distribution receiver, a 100 ms quiet period.
                let mut settings =
                    Settings::new(addr, Schedule::Interval(Duration::from_secs(3600)));
                settings.checks.debounce = Duration::from_millis(100);
                settings.receivers = vec![Receiver {
                    kind: ReceiverKind::Distribution,
                    secret: Secret::new(TOKEN),
                    registry: None,
                }];
                Ok(Loaded {
                    worker: EngineWorker::new(engine, Arc::clone(&loader_metrics)),
                    settings,
                    problems: Vec::new(),
                })
            },
            metrics,
            control.clone(),
        ))
    };
    // Ready once the first cycle ran (nothing to do: 1.0.0 is the newest).
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "the daemon never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(repo.log("main").len(), 1);

    // Three spacings: 1.5 s from one push to the next, 1.5 s from one commit to the next push,
    // and the next push right after the commit (a CI job that waits for the previous update).
    let mut rows = Vec::new();
    let mut tag = 0;
    for (label, after_commit, gap) in [
        ("1.5 s push to push", false, Duration::from_millis(1500)),
        ("1.5 s commit to push", true, Duration::from_millis(1500)),
        ("right after the commit", true, Duration::ZERO),
    ] {
        let mut latencies = Vec::with_capacity(PUSHES);
        for _ in 0..PUSHES {
            tag += 1;
            let burst = Instant::now();
            let before = remote_head(repo.path());
            pusher
                .push_manifest(
                    "team/api",
                    &format!("1.0.{tag}"),
                    &first.media_type,
                    &first.body,
                )
                .await;
            let accepted = Instant::now();
            let deadline = accepted + Duration::from_secs(15);
            loop {
                if remote_head(repo.path()) != before {
                    latencies.push(accepted.elapsed());
                    break;
                }
                assert!(Instant::now() < deadline, "no commit 15 s after push {tag}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let next = if after_commit { Instant::now() } else { burst } + gap;
            tokio::time::sleep_until(next.into()).await;
        }
        rows.push((label, latencies));
    }
    let commits_before_burst = 1 + tag;

    // A burst: 100 tags pushed back to back, then quiet until the commit of the last one and
    // for a second more. Counted: the webhook checks it cost, and the commits.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let checks_before = repository_checks(&metrics);
    let burst_started = Instant::now();
    for _ in 0..BURST {
        tag += 1;
        pusher
            .push_manifest(
                "team/api",
                &format!("1.0.{tag}"),
                &first.media_type,
                &first.body,
            )
            .await;
    }
    let burst_pushed = burst_started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !repo
        .show("main", "values.yaml")
        .contains(&format!("tag: 1.0.{tag}"))
    {
        assert!(
            Instant::now() < deadline,
            "the burst's last tag never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let burst_checks = repository_checks(&metrics) - checks_before;
    let burst_commits = repo.log("main").len() - commits_before_burst;
    control.shutdown();
    daemon.await.expect("join").expect("daemon");
    assert!(
        repo.show("main", "values.yaml")
            .contains(&format!("tag: 1.0.{tag}"))
    );

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "webhook → commit: real docker-registry notifications → in-process daemon (100 ms debounce) → pass → push to a file:// bare repo"
    );
    println!(
        "  from the manifest PUT accepted to the new commit on the remote, {PUSHES} pushes per row, one at a time"
    );
    println!(
        "  {:<22}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>18}",
        "spacing", "p50 ms", "p90 ms", "p99 ms", "max ms", "min ms", ">900 ms", "goal p50/p99 ms"
    );
    for (label, latencies) in &rows {
        let mut sorted = latencies.clone();
        sorted.sort();
        let (p50, p99) = (percentile(&sorted, 0.50), percentile(&sorted, 0.99));
        let met = p50 <= Duration::from_millis(100) && p99 <= Duration::from_millis(300);
        println!(
            "  {:<22}  {:>8.1}  {:>8.1}  {:>8.1}  {:>8.1}  {:>8.1}  {:>8}  {:>18}",
            label,
            ms(p50),
            ms(percentile(&sorted, 0.90)),
            ms(p99),
            ms(sorted[sorted.len() - 1]),
            ms(sorted[0]),
            sorted
                .iter()
                .filter(|d| **d > Duration::from_millis(900))
                .count(),
            if met {
                "≤100/≤300 met"
            } else {
                "≤100/≤300 MISSED"
            },
        );
    }
    println!(
        "  burst of {BURST} pushes back to back ({:.0} ms): {burst_checks} webhook checks (goal ≤ 2{}), {burst_commits} commits",
        ms(burst_pushed),
        if burst_checks <= 2 {
            ", met"
        } else {
            ", MISSED"
        },
    );
    for (label, latencies) in &rows {
        let list: Vec<String> = latencies.iter().map(|d| format!("{:.0}", ms(*d))).collect();
        println!("  {label}, in push order (ms): {}", list.join(" "));
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // `cargo bench --bench daemon -- poll` (or `-- webhook`) runs one part; no filter, both.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted =
        |part: &str| filters.is_empty() || filters.iter().any(|f| part.contains(f.as_str()));
    // The poll cycles first, so the peak memory is not the latency run's; each in a process of
    // its own (this bench run again with its name), so that neither starts on memory the other
    // left to the allocator.
    let child = std::env::var_os("IMAGEBUMP_BENCH_CHILD").is_some();
    for (part, remote) in [("poll-file", Remote::File), ("poll-http", Remote::Http)] {
        if !wanted(part) {
            continue;
        }
        if child {
            runtime.block_on(poll_cycle(remote));
        } else {
            let exe = std::env::current_exe().expect("the bench's own path");
            let status = std::process::Command::new(exe)
                .arg(part)
                .env("IMAGEBUMP_BENCH_CHILD", "1")
                .status()
                .expect("run the poll part");
            assert!(status.success(), "{part}: {status}");
        }
        println!();
    }
    if wanted("webhook") {
        runtime.block_on(webhook_to_commit());
    }
}
