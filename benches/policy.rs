//! Selection over 100,000 tags for each policy; prints milliseconds per selection.
//!
//! Run with `cargo bench --bench policy` (release profile). Target: under 50 ms per selection.
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use imagebump::policy::{Current, Filter, Kind, Order, Parsing, Policy, Range, Step, TagMeta};
use time::{Duration, OffsetDateTime};

const TAGS: usize = 100_000;
const RUNS: usize = 7;
/// The deployed tag every selection compares against (exercises the downgrade check).
const CURRENT: &str = "1.0.0";

fn tags() -> Vec<String> {
    // A realistic mix: versions (some v-prefixed, some pre-releases), CI tags, timestamps,
    // cosign tags and junk.
    (0..TAGS)
        .map(|i| match i % 8 {
            0 => format!("{}.{}.{}", i % 7, (i / 7) % 50, i / 350),
            1 => format!("v{}.{}.{}", i % 5, (i / 5) % 40, i / 200),
            2 => format!("{}.{}.{}-rc.{}", i % 6, (i / 6) % 30, i / 180, i % 4),
            3 => format!("sha-{:07x}", i * 2_654_435_761 % 0xfff_ffff),
            4 => format!("main-{:07x}-{}", i * 40_503 % 0xfff_ffff, 1_700_000_000 + i),
            5 => format!("{}", 20_240_000 + i),
            6 => format!("sha256-{:064x}.sig", i),
            _ => format!("{}.{}-alpine", i % 3, i % 90),
        })
        .collect()
}

fn policy(kind: Kind) -> Policy {
    let mut p = Policy::new(kind);
    p.min_age = None;
    p
}

fn semver(range: &str) -> Kind {
    Kind::Semver {
        range: Range::parse(range).expect("range"),
        parsing: Parsing::Loose,
    }
}

fn main() {
    let tags = tags();
    let now = OffsetDateTime::now_utc();
    let meta: HashMap<String, TagMeta> = tags
        .iter()
        .chain(std::iter::once(&CURRENT.to_owned()))
        .enumerate()
        .map(|(i, t)| {
            let created = now - Duration::minutes((i % 5000) as i64);
            let meta = TagMeta {
                digest: Some(format!("sha256:{i:064x}")),
                created: Some(created),
                platforms: None,
            };
            (t.clone(), meta)
        })
        .collect();

    let mut cases: Vec<(&str, Policy)> = vec![
        ("semver *", policy(semver("*"))),
        ("semver >=1.2 <4 || 5.x", policy(semver(">=1.2 <4 || 5.x"))),
        (
            "semver >=0.0.0-0 (pre-releases)",
            policy(semver(">=0.0.0-0")),
        ),
        (
            "semver ^1 (strict)",
            policy(Kind::Semver {
                range: Range::parse("^1").expect("range"),
                parsing: Parsing::Strict,
            }),
        ),
        ("alphabetical asc", policy(Kind::Alphabetical(Order::Asc))),
        ("alphabetical desc", policy(Kind::Alphabetical(Order::Desc))),
        ("numerical asc", policy(Kind::Numerical(Order::Asc))),
        ("numerical desc", policy(Kind::Numerical(Order::Desc))),
        ("newest_build", policy(Kind::NewestBuild)),
        (
            "digest latest-ish",
            policy(Kind::Digest {
                tag: tags[42].clone(),
            }),
        ),
    ];
    let mut extract = policy(Kind::Numerical(Order::Asc));
    extract.filter = Filter::new(
        Some(r"^main-[0-9a-f]+-(?P<ts>\d+)$"),
        &[] as &[&str],
        Some("$ts"),
    )
    .expect("filter");
    cases.push(("numerical + include/extract $ts", extract));
    let mut safe = policy(semver("*"));
    safe.min_age = Some(Duration::minutes(30));
    safe.pin_digest = true;
    cases.push(("semver * + min_age + pin_digest", safe));

    println!("selection over {TAGS} tags, best and mean of {RUNS} runs (release build)");
    println!("{:<36} {:>10} {:>10}  pick", "policy", "best ms", "mean ms");
    let mut worst: f64 = 0.0;
    for (name, p) in &cases {
        let mut times = Vec::with_capacity(RUNS);
        let mut pick = String::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let step = p.select(black_box(&tags), Current::tag(CURRENT), &meta, now);
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            pick = match step {
                Ok(Step::Decided(d)) => d.tag,
                Ok(Step::NeedMetadata(m)) => format!("needs metadata for {} tags", m.len()),
                Err(e) => format!("no match: {e}"),
            };
        }
        let best = times.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        worst = worst.max(mean);
        println!("{name:<36} {best:>10.2} {mean:>10.2}  {pick}");
    }
    // Context for newest_build: the caller's metadata map costs this much to consult once per tag.
    let start = Instant::now();
    let found = tags
        .iter()
        .filter(|t| meta.contains_key(t.as_str()))
        .count();
    let lookup = start.elapsed().as_secs_f64() * 1000.0;
    println!("(baseline: {found} HashMap<String, TagMeta> lookups take {lookup:.2} ms)");
    let verdict = if worst < 50.0 { "within" } else { "OVER" };
    println!("slowest mean {worst:.2} ms: {verdict} the 50 ms target");
}
