//! Push-to-check latency of the daemon: the real `docker-registry` notifies the daemon, and a
//! stand-in worker notes when its check starts. 50 pushes of new tags, one at a time, for a few
//! debounce settings; prints p50/p99/max. (The engine's own time — tag listing, commit, push —
//! comes on top; plug the real worker in to measure webhook-to-commit.)
//!
//! Run: `cargo bench --bench webhook_latency`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imagebump::daemon::{
    Control, CycleReport, Loaded, Metrics, Receiver, ReceiverKind, Schedule, Scope, Secret,
    Settings, Worker,
};
use support::registry::{ImageSpec, NotificationEndpoint, RegistryConfig, TestRegistry};

const PUSHES: usize = 50;

#[derive(Clone, Default)]
struct Timestamps(Arc<Mutex<Vec<Instant>>>);

struct StartNoter {
    repositories: Vec<(String, String)>,
    starts: Timestamps,
}

impl Worker for StartNoter {
    fn check(&self, scope: Scope) -> impl Future<Output = CycleReport> + Send {
        if matches!(scope, Scope::Repository { .. }) {
            self.starts.0.lock().unwrap().push(Instant::now());
        }
        async { CycleReport::default() }
    }

    fn repositories(&self) -> Vec<(String, String)> {
        self.repositories.clone()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Per push: (from the first blob upload, from the manifest being accepted) to the check start.
async fn measure(debounce: Duration) -> Vec<(Duration, Duration)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut endpoint =
        NotificationEndpoint::new("imagebump", &format!("http://{addr}/webhook/distribution"));
    endpoint
        .headers
        .push(("Authorization".into(), "Bearer bench-token".into()));
    endpoint.timeout = Duration::from_secs(2);
    endpoint.threshold = 5;
    let registry = TestRegistry::start(RegistryConfig {
        notifications: vec![endpoint],
        ..RegistryConfig::default()
    })
    .await;
    let pusher = registry.pusher();
    let spec = ImageSpec::new("2026-01-01T00:00:00Z");
    let starts = Timestamps::default();
    let repositories = vec![(registry.host(), "bench/app".to_string())];
    let control = Control::new();
    let daemon = {
        let starts = starts.clone();
        tokio::spawn(imagebump::daemon::run(
            move || -> Result<Loaded<StartNoter>, String> {
                let mut settings =
                    Settings::new(addr, Schedule::Interval(Duration::from_secs(3600)));
                settings.checks.debounce = debounce;
                settings.receivers = vec![Receiver {
                    kind: ReceiverKind::Distribution,
                    secret: Secret::new("Bearer bench-token"),
                    registry: None,
                }];
                Ok(Loaded {
                    worker: StartNoter {
                        repositories: repositories.clone(),
                        starts: starts.clone(),
                    },
                    settings,
                    problems: Vec::new(),
                })
            },
            Arc::new(Metrics::new()),
            control.clone(),
        ))
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    pusher.push_image("bench/app", "warmup", &spec).await;
    tokio::time::sleep(debounce + Duration::from_millis(500)).await;
    let mut latencies = Vec::with_capacity(PUSHES);
    for index in 0..PUSHES {
        let before = starts.0.lock().unwrap().len();
        let pushed = Instant::now();
        pusher
            .push_image("bench/app", &format!("1.0.{index}"), &spec)
            .await;
        // The manifest PUT, the push's last request, was just accepted.
        let tagged = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(started) = starts.0.lock().unwrap().get(before).copied() {
                latencies.push((
                    started.duration_since(pushed),
                    started.saturating_duration_since(tagged),
                ));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no check 10 s after push {index}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Let the registry's remaining events arrive so the next push starts a fresh window.
        tokio::time::sleep(debounce + Duration::from_millis(100)).await;
    }
    control.shutdown();
    daemon.await.expect("join").expect("daemon");
    latencies
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("docker-registry push → daemon starts the repository check ({PUSHES} pushes per row)");
    println!("  from: 'push' = first blob upload (2 blobs + manifest), 'tag' = manifest accepted");
    println!(
        "{:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}",
        "debounce", "push p50", "push p99", "tag p50", "tag p99", "tag max"
    );
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    for debounce_ms in [0u64, 100, 250] {
        let latencies = runtime.block_on(measure(Duration::from_millis(debounce_ms)));
        let mut from_push: Vec<Duration> = latencies.iter().map(|(push, _)| *push).collect();
        let mut from_tag: Vec<Duration> = latencies.iter().map(|(_, tag)| *tag).collect();
        from_push.sort();
        from_tag.sort();
        println!(
            "{:>8}ms  {:>8.1}ms  {:>8.1}ms  {:>8.1}ms  {:>8.1}ms  {:>8.1}ms",
            debounce_ms,
            ms(percentile(&from_push, 0.50)),
            ms(percentile(&from_push, 0.99)),
            ms(percentile(&from_tag, 0.50)),
            ms(percentile(&from_tag, 0.99)),
            ms(from_tag.last().copied().unwrap_or_default()),
        );
    }
}
