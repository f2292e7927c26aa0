//! Registry client benchmark: list every tag of 1, 100 and 1,000 repositories on a local
//! `docker-registry` in token mode (the costliest auth), through the paging proxy.
//!
//! Prints requests sent, wall time and peak memory (VmHWM of this process: client, proxy and
//! token server; the registry is a child process). The request count is checked against the
//! minimum: one tags request per repository, plus one per extra page, plus one token per
//! scope (repository), plus the one challenge that teaches the client the registry's realm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::Instant;

use imagebump::reference::ImageRef;
use imagebump::registry::{Client, ClientOptions, RegistryAuth, RegistrySettings, Secret};
use support::registry::{AuthMode, FaultProxy, ImageSpec, TestRegistry};

/// Every tenth repository has this many tags (three pages of 100); the others have one.
const BIG_REPO_TAGS: usize = 250;
const PAGE: usize = 100;

fn peak_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Row {
    repositories: usize,
    tags: usize,
    extra_pages: usize,
    tokens: u64,
    requests: u64,
    expected: u64,
    wall_ms: u128,
    peak_kib: u64,
}

async fn run(repositories: usize) -> Row {
    let registry = TestRegistry::start_with_auth(AuthMode::token("bench", "bench-password")).await;
    let pusher = registry.pusher();
    let seed = pusher
        .push_image("bench/r0", "1.0.0", &ImageSpec::new("2024-01-01T00:00:00Z"))
        .await;
    let big_tags: Vec<String> = (0..BIG_REPO_TAGS).map(|i| format!("2.0.{i}")).collect();
    let mut expected_tags = 0;
    let mut extra_pages = 0;
    for i in 0..repositories {
        let name = format!("bench/r{i}");
        if i > 0 {
            registry.clone_repository("bench/r0", &name);
        }
        if i % 10 == 9 {
            registry.seed_tags(&name, &seed, &big_tags);
            expected_tags += BIG_REPO_TAGS + 1;
            extra_pages += (BIG_REPO_TAGS + 1).div_ceil(PAGE) - 1;
        } else {
            expected_tags += 1;
        }
    }
    let proxy = FaultProxy::start(&registry.url()).await;
    proxy.paginate(PAGE);

    let mut settings = RegistrySettings::new(proxy.host());
    settings.insecure = true;
    settings.max_concurrency = 16;
    settings.auth = RegistryAuth::Basic {
        username: "bench".to_string(),
        password: Secret::new("bench-password"),
    };
    let client = Client::new(
        vec![settings],
        ClientOptions {
            page_size: PAGE,
            ..ClientOptions::default()
        },
    )
    .unwrap();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..repositories {
        let client = client.clone();
        let image = ImageRef::parse(&proxy.image(&format!("bench/r{i}"))).unwrap();
        tasks.push(tokio::spawn(async move { client.list_tags(&image).await }));
    }
    let mut tags = 0;
    for task in tasks {
        tags += task.await.unwrap().unwrap().len();
    }
    let wall_ms = started.elapsed().as_millis();
    assert_eq!(tags, expected_tags);

    let stats = client.stats().registry(&proxy.host());
    let expected = (repositories + extra_pages + repositories + 1) as u64;
    Row {
        repositories,
        tags,
        extra_pages,
        tokens: stats.token_requests,
        requests: stats.requests,
        expected,
        wall_ms,
        peak_kib: peak_memory_kib(),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:>6} {:>7} {:>6} {:>7} {:>9} {:>9} {:>9} {:>10}",
        "repos", "tags", "extra", "tokens", "requests", "expected", "wall_ms", "peak_KiB"
    );
    let mut ok = true;
    for repositories in [1, 100, 1000] {
        let row = runtime.block_on(run(repositories));
        println!(
            "{:>6} {:>7} {:>6} {:>7} {:>9} {:>9} {:>9} {:>10}",
            row.repositories,
            row.tags,
            row.extra_pages,
            row.tokens,
            row.requests,
            row.expected,
            row.wall_ms,
            row.peak_kib
        );
        ok &= row.requests == row.expected;
    }
    println!("expected = repositories + extra pages + one token per scope + one challenge");
    if !ok {
        eprintln!("request count differs from the expected minimum");
        std::process::exit(1);
    }
}
