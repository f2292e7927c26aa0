//! Issue 17's cost of replicas: 1, 3 and 5 sharded `imagebump run` daemons (the release
//! binary, each with its own workdir, the same config, `--shard i/n`) over 1,000 apps against
//! the real `docker-registry`: 1,000 image repositories (one image pushed, copied 999 times in
//! the registry's storage), 1,000 apps with one image each in one config repo over `file://`,
//! every app already at its newest tag (steady cycles: nothing to write).
//!
//! Per row, after every replica's first cycle: two more poll cycles of each replica, read from
//! its own `/metrics` (`imagebump_registry_requests_total` and
//! `imagebump_check_duration_seconds{scope="all"}` before and after), and each process's peak
//! resident memory (`VmHWM` in `/proc/PID/status`) at the end. Prints registry requests per
//! cycle per replica beside the goal (about 1/n of one replica's), the wall time of a
//! cycle, the peak memory, and the machine's load average. No timed assertion.
//!
//! Run: `cargo bench --bench replicas`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::free_port;
use support::git::BareRepo;
use support::registry::{ImageSpec, TestRegistry};
use support::replica::{Daemon, replica_config};

const APPS: usize = 1_000;
const REPLICAS: [u32; 3] = [1, 3, 5];
/// Poll cycles measured per replica after its first.
const CYCLES: u64 = 2;
const INTERVAL: &str = "3s";

/// A sample of one replica's metrics.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    requests: f64,
    cycles: u64,
    cycle_seconds: f64,
}

fn metric_sum(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn sample(replica: &Daemon) -> Sample {
    let (status, metrics) = replica.get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    Sample {
        requests: metric_sum(&metrics, "imagebump_registry_requests_total{", ""),
        cycles: metric_sum(
            &metrics,
            "imagebump_check_duration_seconds_count{",
            "scope=\"all\"",
        ) as u64,
        cycle_seconds: metric_sum(
            &metrics,
            "imagebump_check_duration_seconds_sum{",
            "scope=\"all\"",
        ),
    }
}

/// A `/proc/PID/status` field in KiB (0 when unavailable).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field)?.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Row {
    replicas: u32,
    owned: (usize, usize),
    requests: Vec<f64>,
    cycle_ms: Vec<f64>,
    peak_mib: Vec<f64>,
    load: (String, String),
}

/// Starts `n` sharded replicas at once, waits for two more cycles of each, and stops them.
fn measure(host: &str, repo: &str, n: u32) -> Row {
    let load_before = load_average();
    let starts: Vec<_> = (0..n)
        .map(|i| {
            let (host, repo) = (host.to_string(), repo.to_string());
            std::thread::spawn(move || {
                let port = free_port();
                let dir = replica_config(&host, &repo, INTERVAL, port, APPS, "");
                let shard = format!("{i}/{n}");
                let args = ["--shard", &shard, "--shard-safety-net", "1h"];
                let env = [
                    ("WEBHOOK_TOKEN", "Bearer bench-webhook-token-0123456789"),
                    ("GIT_PASSWORD", "unused"),
                ];
                Daemon::start_logging("warn", dir, port, &args, &env)
            })
        })
        .collect();
    let replicas: Vec<Daemon> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    let before: Vec<Sample> = replicas.iter().map(sample).collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let after: Vec<Sample> = replicas
        .iter()
        .zip(&before)
        .map(|(replica, before)| {
            loop {
                let now = sample(replica);
                if now.cycles >= before.cycles + CYCLES {
                    break now;
                }
                assert!(
                    Instant::now() < deadline,
                    "no cycles; log:\n{}",
                    replica.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .collect();
    let owned: Vec<usize> = replicas
        .iter()
        .map(|r| r.status().shard.map_or(APPS, |s| s.owned.len()))
        .collect();
    let mut row = Row {
        replicas: n,
        owned: (*owned.iter().min().unwrap(), *owned.iter().max().unwrap()),
        requests: Vec::new(),
        cycle_ms: Vec::new(),
        peak_mib: Vec::new(),
        load: (load_before, load_average()),
    };
    for ((replica, before), after) in replicas.iter().zip(&before).zip(&after) {
        let cycles = (after.cycles - before.cycles) as f64;
        row.requests
            .push((after.requests - before.requests) / cycles);
        row.cycle_ms
            .push((after.cycle_seconds - before.cycle_seconds) / cycles * 1e3);
        row.peak_mib
            .push(status_kib(replica.child.pid(), "VmHWM:") as f64 / 1024.0);
    }
    drop(replicas);
    row
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let setup = Instant::now();
    let registry = runtime.block_on(async {
        let registry = TestRegistry::start_plain().await;
        registry
            .pusher()
            .push_image(
                "team/app-0",
                "1.0.0",
                &ImageSpec::new("2026-01-01T00:00:00Z"),
            )
            .await;
        registry
    });
    for i in 1..APPS {
        registry.clone_repository("team/app-0", &format!("team/app-{i}"));
    }
    let files: Vec<(String, &str)> = (0..APPS)
        .map(|i| (format!("app-{i}.yaml"), "image:\n  tag: 1.0.0\n"))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(f, t)| (f.as_str(), *t)).collect();
    let repo = BareRepo::with_files("main", &files);
    let host = registry.host();
    println!(
        "replicas: {APPS} apps with one image each (each its own repository, already at its newest tag), one config repo over file://, sharded `imagebump run` daemons polling every {INTERVAL}; {CYCLES} cycles per replica after its first (setup {:.1} s, {} cores)",
        setup.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  {:>8}  {:>13}  {:>26}  {:>12}  {:>21}  {:>14}  {:>16}",
        "replicas",
        "apps owned",
        "registry requests/cycle",
        "goal ≈ 1/n",
        "wall ms/cycle",
        "peak RSS MiB",
        "load (1 5 15 min)"
    );
    println!(
        "  {:>8}  {:>13}  {:>26}  {:>12}  {:>21}  {:>14}  {:>16}",
        "",
        "min-max",
        "per replica: mean (max)",
        "",
        "mean (max)",
        "max per replica",
        "before → after"
    );
    let mut one = None;
    for n in REPLICAS {
        let row = measure(&host, &repo.file_url(), n);
        let single = *one.get_or_insert(mean(&row.requests));
        println!(
            "  {:>8}  {:>13}  {:>26}  {:>12}  {:>21}  {:>14.1}  {:>16}",
            row.replicas,
            format!("{}-{}", row.owned.0, row.owned.1),
            format!("{:.0} ({:.0})", mean(&row.requests), max(&row.requests)),
            format!("{:.0}", single / f64::from(n)),
            format!("{:.0} ({:.0})", mean(&row.cycle_ms), max(&row.cycle_ms)),
            max(&row.peak_mib),
            format!("{} → {}", row.load.0, row.load.1),
        );
    }
    assert_eq!(repo.log("main").len(), 1, "steady cycles write nothing");
}
