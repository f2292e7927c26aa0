//! Tests of the policy module: fixture tables for the grammar (one loop each, so a new case is
//! one line in `testdata/`), selection scenarios and proptest properties.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

/// Non-comment, non-blank lines of a fixture, split on `;`, fields trimmed of spaces only (so
/// tabs inside a range survive).
fn fixture(text: &str) -> Vec<(usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(n, l)| (n + 1, l.split(';').map(|f| f.trim_matches(' ')).collect()))
        .collect()
}

#[test]
fn ranges_fixture() {
    let cases = fixture(include_str!("testdata/ranges.txt"));
    assert!(cases.len() > 300, "only {} cases", cases.len());
    for (line, f) in cases {
        let [range, version, want] = f[..] else {
            panic!("ranges.txt:{line}: expected 3 fields");
        };
        let r = Range::parse(range).unwrap_or_else(|e| panic!("ranges.txt:{line}: {e}"));
        let v = Version::parse(version, Parsing::Loose)
            .unwrap_or_else(|| panic!("ranges.txt:{line}: bad version {version}"));
        let want = match want {
            "yes" => true,
            "no" => false,
            other => panic!("ranges.txt:{line}: expected yes/no, got {other}"),
        };
        assert_eq!(
            r.matches(&v),
            want,
            "ranges.txt:{line}: {range:?} vs {version}"
        );
    }
}

#[test]
fn invalid_ranges_fixture() {
    let cases = fixture(include_str!("testdata/invalid.txt"));
    assert!(cases.len() >= 30);
    for (line, f) in cases {
        let [range, pos] = f[..] else {
            panic!("invalid.txt:{line}: expected 2 fields");
        };
        let pos: usize = pos.parse().expect("position");
        match Range::parse(range) {
            Ok(r) => panic!("invalid.txt:{line}: {range:?} parsed as {r:?}"),
            Err(e) => {
                assert_eq!(e.pos, pos, "invalid.txt:{line}: {range:?}: {e}");
                assert!(e.to_string().contains(&format!("at byte {pos}")), "{e}");
            }
        }
    }
}

#[test]
fn empty_ranges_are_errors() {
    for r in ["", "   ", "\t"] {
        let e = Range::parse(r).unwrap_err();
        assert_eq!(e.pos, 0);
        assert!(e.message.contains("empty"), "{e}");
    }
}

#[test]
fn range_error_caret_points_at_the_offending_byte() {
    let e = Range::parse(">=1.0 <2.0.x.1").unwrap_err();
    assert_eq!(e.pos, 12);
    assert_eq!(e.caret(), "  >=1.0 <2.0.x.1\n              ^");
}

#[test]
fn versions_fixture() {
    for (line, f) in fixture(include_str!("testdata/versions.txt")) {
        let [tag, loose, strict] = f[..] else {
            panic!("versions.txt:{line}: expected 3 fields");
        };
        for (parsing, want) in [(Parsing::Loose, loose), (Parsing::Strict, strict)] {
            let got = Version::parse(tag, parsing).map_or("-".to_owned(), |v| v.to_string());
            assert_eq!(got, want, "versions.txt:{line}: {tag} {parsing:?}");
        }
    }
}

#[test]
fn precedence_fixture() {
    for (line, f) in fixture(include_str!("testdata/precedence.txt")) {
        let [a, op, b] = f[..] else {
            panic!("precedence.txt:{line}: expected 3 fields");
        };
        let want = match op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            other => panic!("precedence.txt:{line}: bad operator {other}"),
        };
        let a = Version::parse(a, Parsing::Loose).expect("a");
        let b = Version::parse(b, Parsing::Loose).expect("b");
        assert_eq!(a.precedence(&b), want, "precedence.txt:{line}");
        assert_eq!(
            b.precedence(&a),
            want.reverse(),
            "precedence.txt:{line} reversed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Selection.

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn semver(range: &str) -> Policy {
    let mut p = Policy::new(Kind::Semver {
        range: Range::parse(range).expect("range"),
        parsing: Parsing::Loose,
    });
    p.min_age = None;
    p
}

fn offline(kind: Kind) -> Policy {
    let mut p = Policy::new(kind);
    p.min_age = None;
    p
}

fn decide(p: &Policy, list: &[&str], current: Current<'_>) -> Result<Decision, NoMatch> {
    decide_with(p, list, current, &HashMap::new())
}

fn decide_with(
    p: &Policy,
    list: &[&str],
    current: Current<'_>,
    meta: &HashMap<String, TagMeta>,
) -> Result<Decision, NoMatch> {
    match p.select(&tags(list), current, meta, NOW)? {
        Step::Decided(d) => Ok(d),
        Step::NeedMetadata(m) => panic!("unexpected metadata request {m:?}"),
    }
}

/// Drives `select` like the daemon does, answering metadata requests from `registry`;
/// returns the decision and every batch requested.
fn drive(
    p: &Policy,
    list: &[&str],
    current: Current<'_>,
    registry: &HashMap<&str, TagMeta>,
) -> (Result<Decision, NoMatch>, Vec<Vec<String>>) {
    let mut meta = HashMap::new();
    let mut asked = Vec::new();
    for _ in 0..1000 {
        match p.select(&tags(list), current, &meta, NOW) {
            Ok(Step::Decided(d)) => return (Ok(d), asked),
            Err(e) => return (Err(e), asked),
            Ok(Step::NeedMetadata(batch)) => {
                assert!(!batch.is_empty());
                for t in &batch {
                    assert!(!meta.contains_key(t), "asked twice for {t}");
                    let m = registry.get(t.as_str()).cloned().unwrap_or_default();
                    meta.insert(t.clone(), m);
                }
                asked.push(batch);
            }
        }
    }
    panic!("select did not converge");
}

fn built(minutes_ago: i64, digest: &str) -> TagMeta {
    TagMeta {
        digest: Some(digest.to_owned()),
        created: Some(NOW - Duration::minutes(minutes_ago)),
        platforms: None,
    }
}

/// Metadata of a tag whose image has these platforms.
fn on(platforms: &[&str]) -> TagMeta {
    TagMeta {
        digest: Some("sha256:p".to_owned()),
        created: Some(NOW - Duration::days(1)),
        platforms: Some(platforms.iter().map(|p| p.to_string()).collect()),
    }
}

#[test]
fn a_platform_filter_skips_candidates_lacking_a_platform_asking_best_first() {
    let mut p = semver("^1");
    p.platforms = vec!["linux/amd64".into(), "linux/arm64/v8".into()];
    let registry = HashMap::from([
        ("1.3.0", on(&["linux/amd64"])),
        ("1.2.0", on(&["linux/arm64/v8"])),
        (
            "1.1.0",
            on(&["linux/amd64", "linux/arm64/v8", "linux/s390x"]),
        ),
        ("1.0.0", on(&["linux/amd64", "linux/arm64/v8"])),
    ]);
    let list = ["1.0.0", "1.1.0", "1.2.0", "1.3.0"];
    let (d, asked) = drive(&p, &list, Current::default(), &registry);
    let d = d.unwrap();
    assert_eq!(d.tag, "1.1.0");
    // One tag at a time, best first, and 1.0.0 is never asked for.
    assert_eq!(asked, vec![vec!["1.3.0"], vec!["1.2.0"], vec!["1.1.0"]]);
    assert_eq!(
        d.reason,
        "semver ^1: highest of 4 candidates; skipped 1.3.0 (no linux/arm64/v8 image), \
         1.2.0 (no linux/amd64 image) (platform filter linux/amd64, linux/arm64/v8)"
    );

    // Deployed 1.1.0, newer tags lacking a platform: kept, saying why.
    let (d, _) = drive(&p, &list, Current::tag("1.1.0"), &registry);
    let d = d.unwrap();
    assert!(d.keep_current, "{d:?}");
    assert!(d.reason.contains("skipped 1.3.0"), "{}", d.reason);

    // No candidate has them all: no match, naming the skipped ones.
    p.platforms = vec!["linux/riscv64".into()];
    let (d, asked) = drive(&p, &list, Current::default(), &registry);
    let err = d.unwrap_err();
    assert_eq!(asked.len(), 4);
    assert!(
        err.reason.contains("none of 4 candidates is eligible")
            && err.reason.contains("no linux/riscv64 image"),
        "{}",
        err.reason
    );

    // Without a filter, no metadata is asked for.
    p.platforms.clear();
    let (d, asked) = drive(&p, &list, Current::default(), &registry);
    assert_eq!(d.unwrap().tag, "1.3.0");
    assert!(asked.is_empty());
}

#[test]
fn a_platform_filter_asks_again_for_a_tag_whose_platforms_are_unknown() {
    let mut p = semver("^1");
    p.platforms = vec!["linux/arm64/v8".into()];
    let tags = tags(&["1.0.0", "1.1.0"]);
    let mut meta = HashMap::from([("1.1.0".to_string(), built(60, "sha256:1"))]);
    // An entry without platforms (fetched for another policy, or the registry failed) is not a
    // "has it": the policy asks again, never picks on a guess.
    assert_eq!(
        p.select(&tags, Current::default(), &meta, NOW),
        Ok(Step::NeedMetadata(vec!["1.1.0".to_string()]))
    );
    meta.insert("1.1.0".to_string(), on(&["linux/arm64/v8"]));
    let Ok(Step::Decided(d)) = p.select(&tags, Current::default(), &meta, NOW) else {
        panic!("no decision");
    };
    assert_eq!(d.tag, "1.1.0");
}

#[test]
fn the_digest_policy_does_not_move_to_an_image_lacking_a_platform() {
    let mut p = offline(Kind::Digest {
        tag: "latest".into(),
    });
    p.platforms = vec!["linux/arm64/v8".into()];
    let registry = HashMap::from([("latest", on(&["linux/amd64"]))]);
    let (d, _) = drive(&p, &["latest"], Current::default(), &registry);
    let err = d.unwrap_err();
    assert!(
        err.reason.contains("no linux/arm64/v8 image"),
        "{}",
        err.reason
    );
}

#[test]
fn select_fixture() {
    for (line, f) in fixture(include_str!("testdata/select.txt")) {
        let [policy, list, current, want] = f[..] else {
            panic!("select.txt:{line}: expected 4 fields");
        };
        let (name, arg) = policy.split_once(' ').expect("POLICY ARG");
        let p = match name {
            "semver" => semver(arg),
            "strict" => offline(Kind::Semver {
                range: Range::parse(arg).expect("range"),
                parsing: Parsing::Strict,
            }),
            "alphabetical" => offline(Kind::Alphabetical(arg.parse().expect("order"))),
            "numerical" => offline(Kind::Numerical(arg.parse().expect("order"))),
            other => panic!("select.txt:{line}: unknown policy {other}"),
        };
        let list: Vec<&str> = list.split_whitespace().collect();
        let current = match current {
            "-" => Current::default(),
            t => Current::tag(t),
        };
        let got = match decide(&p, &list, current) {
            Ok(d) if d.keep_current => format!("keep {}", d.tag),
            Ok(d) => d.tag,
            Err(_) => "none".to_owned(),
        };
        assert_eq!(got, want, "select.txt:{line}");
    }
}

#[test]
fn the_readme_example() {
    let d = decide(
        &semver("~1.4"),
        &["1.0.0", "1.4.2", "2.0.0"],
        Current::default(),
    )
    .unwrap();
    assert_eq!(d.tag, "1.4.2");
    assert!(!d.keep_current);
    assert_eq!(d.reason, "semver ~1.4: highest of 1 candidate");
}

#[test]
fn semver_picks_highest_and_returns_the_original_tag() {
    let list = ["v1.2.3", "1.10.0", "1.9.9", "v1.10.1-rc.1", "latest", "1.2"];
    let d = decide(&semver(">=1.0"), &list, Current::default()).unwrap();
    assert_eq!(d.tag, "1.10.0");
    let d = decide(&semver(">=1.0.0-0"), &list, Current::default()).unwrap();
    assert_eq!(d.tag, "v1.10.1-rc.1");
}

#[test]
fn semver_tie_break_prefers_the_greater_tag_bytes() {
    let d = decide(
        &semver("*"),
        &["1.2.3", "v1.2.3", "01.2.3"],
        Current::default(),
    )
    .unwrap();
    assert_eq!(d.tag, "v1.2.3");
    let d = decide(
        &semver("*"),
        &["01.2.3", "1.2.3", "1.2"],
        Current::default(),
    )
    .unwrap();
    assert_eq!(d.tag, "1.2.3");
    // `+` is not allowed in an OCI tag, so build metadata never reaches a decision.
    let d = decide(&semver("*"), &["1.2.3+b2", "1.2.3"], Current::default()).unwrap();
    assert_eq!(d.tag, "1.2.3");
}

#[test]
fn strict_parsing_skips_partial_versions() {
    let mut p = semver("*");
    p.kind = Kind::Semver {
        range: Range::parse("*").unwrap(),
        parsing: Parsing::Strict,
    };
    let d = decide(&p, &["1.2.3", "2.0", "v1.9.0", "3"], Current::default()).unwrap();
    assert_eq!(d.tag, "v1.9.0");
    assert_eq!(d.reason, "semver * (strict): highest of 2 candidates");
}

#[test]
fn calver_alpine_tags_are_prereleases_under_loose_parsing() {
    // 1.21-alpine reads as 1.21.0-alpine (a pre-release), as in Masterminds.
    let err = decide(
        &semver("^1.20"),
        &["1.21-alpine", "1.22-alpine"],
        Current::default(),
    )
    .unwrap_err();
    assert!(err.reason.contains("2 outside the range"), "{}", err.reason);
    let d = decide(
        &semver("^1.20.0-0"),
        &["1.21-alpine", "1.22-alpine"],
        Current::default(),
    )
    .unwrap();
    assert_eq!(d.tag, "1.22-alpine");
}

#[test]
fn no_match_reason_counts_what_was_skipped() {
    let p = {
        let mut p = semver("~3");
        p.filter = Filter::new(Some("^v?[0-9]"), &["-rc"], None).unwrap();
        p
    };
    let err = decide(
        &p,
        &["1.0.0", "2.0.0-rc", "latest", "sha256-ab.sig", "9x", "a/b"],
        Current::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.reason,
        "semver ~3: no tag matches (6 tags: 2 left out by the include/exclude filters, \
         1 cosign signature/attestation tags, 1 not valid OCI tags, 1 not versions, 1 outside the range)"
    );
}

#[test]
fn never_downgrade_below_the_deployed_version() {
    let list = ["1.4.0", "1.4.2", "2.0.0"];
    let d = decide(&semver("~1.4"), &list, Current::tag("2.0.0")).unwrap();
    assert!(d.keep_current);
    assert_eq!(d.tag, "2.0.0");
    assert_eq!(
        d.reason,
        "semver ~1.4: keeping current 2.0.0: it ranks at or above the best candidate 1.4.2 (allow_downgrade is off)"
    );
    // Deployed tag not in the registry any more, still no downgrade.
    let d = decide(&semver("~1.4"), &list, Current::tag("1.4.9")).unwrap();
    assert!(d.keep_current);
    assert_eq!(d.tag, "1.4.9");
    let mut p = semver("~1.4");
    p.allow_downgrade = true;
    let d = decide(&p, &list, Current::tag("2.0.0")).unwrap();
    assert_eq!(d.tag, "1.4.2");
    assert!(!d.keep_current);
}

#[test]
fn current_is_best_means_keep_current() {
    let d = decide(&semver("~1.4"), &["1.4.0", "1.4.2"], Current::tag("1.4.2")).unwrap();
    assert!(d.keep_current);
    assert_eq!(
        d.reason,
        "semver ~1.4: current 1.4.2 is the highest of 2 candidates"
    );
    // Same version under another spelling: no churn.
    let d = decide(&semver("~1.4"), &["1.4.0", "v1.4.2"], Current::tag("1.4.2")).unwrap();
    assert!(d.keep_current, "{d:?}");
    assert_eq!(d.tag, "1.4.2");
}

#[test]
fn upgrade_from_current() {
    let d = decide(&semver("^1"), &["1.4.0", "1.5.0"], Current::tag("1.4.0")).unwrap();
    assert_eq!(d.tag, "1.5.0");
    assert!(!d.keep_current);
    // A current tag that is not a version does not block (and the reason says so).
    let d = decide(&semver("^1"), &["1.4.0", "1.5.0"], Current::tag("latest")).unwrap();
    assert_eq!(d.tag, "1.5.0");
    assert!(
        d.reason.contains("current latest does not rank"),
        "{}",
        d.reason
    );
}

#[test]
fn alphabetical_and_numerical() {
    let list = ["b", "a", "c10", "c9", "10", "9", "x.sig"];
    let alpha = |o| {
        decide(&offline(Kind::Alphabetical(o)), &list, Current::default())
            .unwrap()
            .tag
    };
    assert_eq!(alpha(Order::Asc), "c9");
    assert_eq!(alpha(Order::Desc), "10");
    let list = [
        "9",
        "10",
        "1.5",
        "-3",
        "latest",
        "007",
        "20240101123456789",
        "20240101123456788",
    ];
    let num = |o| {
        decide(&offline(Kind::Numerical(o)), &list, Current::default())
            .unwrap()
            .tag
    };
    assert_eq!(num(Order::Asc), "20240101123456789");
    assert_eq!(num(Order::Desc), "1.5");
    let err = decide(
        &offline(Kind::Numerical(Order::Asc)),
        &["latest", "main"],
        Current::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.reason,
        "numerical asc: no tag matches (2 tags: 2 not numbers)"
    );
}

#[test]
fn numerical_downgrade_guard_respects_order() {
    let p = offline(Kind::Numerical(Order::Desc));
    let d = decide(&p, &["5", "7"], Current::tag("3")).unwrap();
    assert!(d.keep_current, "desc prefers lower: 3 beats 5");
    let d = decide(&p, &["5", "2"], Current::tag("3")).unwrap();
    assert_eq!(d.tag, "2");
}

#[test]
fn extract_orders_extracted_values_and_returns_the_tag() {
    let mut p = offline(Kind::Numerical(Order::Asc));
    p.filter = Filter::new(
        Some(r"^main-[0-9a-f]+-(?P<ts>\d+)$"),
        &[] as &[&str],
        Some("$ts"),
    )
    .unwrap();
    let list = [
        "main-aaa-1700000009",
        "main-bbb-1700000010",
        "dev-ccc-1800000000",
        "main-ddd-x",
    ];
    let d = decide(&p, &list, Current::default()).unwrap();
    assert_eq!(d.tag, "main-bbb-1700000010");
    // The deployed tag is ranked through the same template.
    let d = decide(&p, &list, Current::tag("main-fff-1700000011")).unwrap();
    assert!(d.keep_current);

    let mut p = semver("^2");
    p.filter = Filter::new(
        Some(r"^app-(?P<version>.+)$"),
        &[] as &[&str],
        Some("${version}"),
    )
    .unwrap();
    let d = decide(
        &p,
        &["app-2.1.0", "app-2.3.0", "app-3.0.0", "2.9.0"],
        Current::default(),
    )
    .unwrap();
    assert_eq!(d.tag, "app-2.3.0");
}

#[test]
fn invalid_oci_tags_are_never_returned() {
    let p = offline(Kind::Alphabetical(Order::Asc));
    let d = decide(&p, &["a", "zz/../x", "z z", ".z", "b"], Current::default()).unwrap();
    assert_eq!(d.tag, "b");
}

#[test]
fn newest_build_asks_for_every_candidate_once() {
    let mut p = offline(Kind::NewestBuild);
    p.filter = Filter::new(Some("^main-"), &[] as &[&str], None).unwrap();
    let registry = HashMap::from([
        ("main-a", built(60, "sha256:a")),
        ("main-b", built(30, "sha256:b")),
        ("main-c", TagMeta::default()),
        ("dev-x", built(1, "sha256:x")),
    ]);
    let (d, asked) = drive(
        &p,
        &["main-a", "main-b", "main-c", "dev-x"],
        Current::default(),
        &registry,
    );
    let d = d.unwrap();
    assert_eq!(d.tag, "main-b");
    assert_eq!(asked, vec![vec!["main-a", "main-b", "main-c"]]);
}

#[test]
fn newest_build_ties_broken_by_tag_and_no_downgrade() {
    let p = offline(Kind::NewestBuild);
    let registry = HashMap::from([
        ("sha-1", built(60, "sha256:1")),
        ("sha-2", built(60, "sha256:2")),
        ("sha-0", built(10, "sha256:0")),
    ]);
    let (d, _) = drive(&p, &["sha-1", "sha-2"], Current::default(), &registry);
    assert_eq!(d.unwrap().tag, "sha-2");
    // Deployed sha-0 is newer than every candidate: keep it.
    let (d, asked) = drive(&p, &["sha-1", "sha-2"], Current::tag("sha-0"), &registry);
    let d = d.unwrap();
    assert!(d.keep_current);
    assert_eq!(asked, vec![vec!["sha-1", "sha-2", "sha-0"]]);
}

#[test]
fn min_age_asks_only_for_the_top_ranked_until_one_is_old_enough() {
    let mut p = semver("^1");
    p.min_age = Some(Duration::minutes(30));
    let registry = HashMap::from([
        ("1.3.0", built(5, "sha256:3")),
        ("1.2.0", TagMeta::default()),
        ("1.1.0", built(90, "sha256:1")),
        ("1.0.0", built(900, "sha256:0")),
    ]);
    let (d, asked) = drive(
        &p,
        &["1.0.0", "1.1.0", "1.2.0", "1.3.0"],
        Current::default(),
        &registry,
    );
    let d = d.unwrap();
    assert_eq!(d.tag, "1.1.0");
    assert_eq!(asked, vec![vec!["1.3.0"], vec!["1.2.0"], vec!["1.1.0"]]);
    assert_eq!(
        d.reason,
        "semver ^1: highest of 4 candidates; skipped 1.3.0 (younger than min_age 30m); \
         skipped 1.2.0 (creation time unknown, min_age needs it)"
    );
}

#[test]
fn deep_min_age_walk_keeps_rank_order_past_the_linear_scans() {
    // 12 versions, all too young but the lowest: the walk passes the 8 linear scans and
    // continues on the sorted remainder, still asking one tag at a time in rank order.
    let mut p = semver("*");
    p.min_age = Some(Duration::minutes(30));
    let list: Vec<String> = (0..12).map(|i| format!("1.{i}.0")).collect();
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let registry: HashMap<&str, TagMeta> = refs
        .iter()
        .map(|t| (*t, built(if *t == "1.0.0" { 60 } else { 1 }, "sha256:x")))
        .collect();
    let (d, asked) = drive(&p, &refs, Current::default(), &registry);
    assert_eq!(d.unwrap().tag, "1.0.0");
    let want: Vec<Vec<String>> = (0..12).rev().map(|i| vec![format!("1.{i}.0")]).collect();
    assert_eq!(asked, want);
}

#[test]
fn min_age_keeps_current_when_every_newer_tag_is_young() {
    let mut p = semver("^1");
    p.min_age = Some(Duration::minutes(30));
    let registry = HashMap::from([
        ("1.3.0", built(5, "sha256:3")),
        ("1.1.0", built(90, "sha256:1")),
    ]);
    let (d, asked) = drive(&p, &["1.1.0", "1.3.0"], Current::tag("1.1.0"), &registry);
    let d = d.unwrap();
    assert!(d.keep_current);
    assert_eq!(d.tag, "1.1.0");
    assert_eq!(asked, vec![vec!["1.3.0"]]);
    // Nothing deployed and nothing old enough: no match, with the reason.
    let (d, _) = drive(&p, &["1.3.0"], Current::default(), &registry);
    assert_eq!(
        d.unwrap_err().reason,
        "semver ^1: none of 1 candidate is eligible; skipped 1.3.0 (younger than min_age 30m)"
    );
}

#[test]
fn zero_min_age_is_off() {
    let mut p = semver("^1");
    p.min_age = Some(Duration::ZERO);
    // No metadata is asked for, even for a tag "built" in the future (clock skew).
    let d = decide(&p, &["1.0.0", "1.3.0"], Current::default()).unwrap();
    assert_eq!(d.tag, "1.3.0");
}

#[test]
fn pin_digest_with_a_tag_policy() {
    let mut p = semver("~1.4");
    p.pin_digest = true;
    let registry = HashMap::from([
        ("1.4.2", built(60, "sha256:new")),
        ("1.4.1", built(90, "sha256:old")),
    ]);
    let (d, asked) = drive(&p, &["1.4.1", "1.4.2"], Current::default(), &registry);
    let d = d.unwrap();
    assert_eq!(
        (d.tag.as_str(), d.digest.as_deref()),
        ("1.4.2", Some("sha256:new"))
    );
    assert_eq!(asked, vec![vec!["1.4.2"]]);
    // Deployed 1.4.2@sha256:new: keep.
    let cur = Current {
        tag: Some("1.4.2"),
        digest: Some("sha256:new"),
    };
    let (d, _) = drive(&p, &["1.4.1", "1.4.2"], cur, &registry);
    assert!(d.unwrap().keep_current);
    // The tag was re-pushed: same tag, new digest is a change.
    let cur = Current {
        tag: Some("1.4.2"),
        digest: Some("sha256:older"),
    };
    let (d, _) = drive(&p, &["1.4.1", "1.4.2"], cur, &registry);
    let d = d.unwrap();
    assert!(!d.keep_current);
    assert_eq!(d.digest.as_deref(), Some("sha256:new"));
    assert!(
        d.reason
            .ends_with("; pinning 1.4.2 to its digest sha256:new"),
        "{}",
        d.reason
    );
    // No digest from the registry for a new tag: no match rather than an unpinned write.
    let registry = HashMap::from([("1.4.2", TagMeta::default())]);
    let (d, _) = drive(&p, &["1.4.2"], Current::default(), &registry);
    assert!(d.unwrap_err().reason.contains("gave no digest for 1.4.2"));
}

#[test]
fn digest_policy_follows_one_mutable_tag() {
    let p = offline(Kind::Digest {
        tag: "latest".into(),
    });
    let registry = HashMap::from([("latest", built(60, "sha256:l"))]);
    let (d, asked) = drive(&p, &["1.0", "latest"], Current::default(), &registry);
    let d = d.unwrap();
    assert_eq!(
        (d.tag.as_str(), d.digest.as_deref()),
        ("latest", Some("sha256:l"))
    );
    assert_eq!(asked, vec![vec!["latest"]]);
    let cur = Current {
        tag: Some("latest"),
        digest: Some("sha256:l"),
    };
    let (d, _) = drive(&p, &["latest"], cur, &registry);
    assert!(d.unwrap().keep_current);
    let (d, _) = drive(&p, &["1.0"], Current::default(), &registry);
    assert_eq!(
        d.unwrap_err().reason,
        "digest of latest: the repository has no tag latest (1 tags)"
    );
    // min_age applies to the new digest too.
    let mut p = p;
    p.min_age = Some(Duration::hours(2));
    let cur = Current {
        tag: Some("latest"),
        digest: Some("sha256:old"),
    };
    let (d, _) = drive(&p, &["latest"], cur, &registry);
    let d = d.unwrap();
    assert!(d.keep_current);
    assert_eq!(d.digest.as_deref(), Some("sha256:old"));
}

#[test]
fn default_policy_is_safe() {
    let p = Policy::new(Kind::NewestBuild);
    assert_eq!(p.min_age, Some(DEFAULT_MIN_AGE));
    assert!(!p.allow_downgrade);
    assert!(!p.pin_digest);
    assert!(p.filter.exclude_cosign);
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn version_tag() -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        0u64..4,
        0u64..4,
        prop::option::of(0u64..4),
        prop::option::of(prop::sample::select(vec![
            "alpha", "beta.1", "rc.2", "0", "x-y",
        ])),
        prop::option::of(prop::sample::select(vec!["b1", "b2"])),
    )
        .prop_map(|(v, a, b, c, pre, build)| {
            let mut s = format!("{}{a}.{b}", if v { "v" } else { "" });
            if let Some(c) = c {
                s.push_str(&format!(".{c}"));
            }
            if let Some(p) = pre {
                s.push_str(&format!("-{p}"));
            }
            if let Some(b) = build {
                s.push_str(&format!("+{b}"));
            }
            s
        })
}

fn any_tag() -> impl Strategy<Value = String> {
    prop_oneof![version_tag(), "[a-z0-9._/-]{1,6}"]
}

fn range_strategy() -> impl Strategy<Value = String> {
    let cmp = (
        prop::sample::select(vec!["", "=", "!=", ">", "<", ">=", "<=", "~", "^"]),
        prop::sample::select(vec!["0", "1", "1.2", "1.x", "2.0.0", "1.2.3-0", "*", "0.1"]),
    )
        .prop_map(|(op, v)| format!("{op}{v}"));
    prop::collection::vec(
        prop::collection::vec(cmp, 1..3).prop_map(|g| g.join(" ")),
        1..3,
    )
    .prop_map(|gs| gs.join(" || "))
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        range_strategy().prop_map(|r| semver(&r)),
        Just(offline(Kind::Alphabetical(Order::Asc))),
        Just(offline(Kind::Alphabetical(Order::Desc))),
        Just(offline(Kind::Numerical(Order::Asc))),
        Just(offline(Kind::Numerical(Order::Desc))),
    ]
}

proptest! {
    #[test]
    fn precedence_is_a_total_order(a in version_tag(), b in version_tag(), c in version_tag()) {
        let p = |s: &str| Version::parse(s, Parsing::Loose).expect("generated version");
        let (a, b, c) = (p(&a), p(&b), p(&c));
        prop_assert_eq!(a.precedence(&b), b.precedence(&a).reverse());
        prop_assert_eq!(a.precedence(&a), Ordering::Equal);
        if a.precedence(&b) != Ordering::Greater && b.precedence(&c) != Ordering::Greater {
            prop_assert_ne!(a.precedence(&c), Ordering::Greater);
        }
    }

    #[test]
    fn select_returns_a_member_of_the_input(p in policy_strategy(), list in prop::collection::vec(any_tag(), 0..20)) {
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        if let Ok(d) = decide(&p, &refs, Current::default()) {
            prop_assert!(list.contains(&d.tag));
            prop_assert!(filter::is_valid_tag(&d.tag));
        }
    }

    #[test]
    fn selection_does_not_depend_on_input_order(p in policy_strategy(), list in prop::collection::vec(any_tag(), 0..20)) {
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        let mut rev = refs.clone();
        rev.reverse();
        let a = decide(&p, &refs, Current::default()).map(|d| d.tag);
        let b = decide(&p, &rev, Current::default()).map(|d| d.tag);
        prop_assert_eq!(a.is_ok(), b.is_ok());
        if let (Ok(a), Ok(b)) = (a, b) {
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn adding_a_non_matching_tag_never_changes_the_result(
        range in range_strategy(),
        list in prop::collection::vec(version_tag(), 1..20),
        extra in any_tag(),
        current in prop::option::of(version_tag()),
    ) {
        let p = semver(&range);
        let matching = |t: &str| {
            filter::is_valid_tag(t)
                && Version::parse(t, Parsing::Loose).is_some_and(|v| match &p.kind {
                    Kind::Semver { range, .. } => range.matches(&v),
                    _ => false,
                })
        };
        prop_assume!(!matching(&extra));
        let cur = Current { tag: current.as_deref(), digest: None };
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        let mut more = refs.clone();
        more.push(&extra);
        let a = decide(&p, &refs, cur).map(|d| (d.tag, d.keep_current));
        let b = decide(&p, &more, cur).map(|d| (d.tag, d.keep_current));
        prop_assert_eq!(a.is_ok(), b.is_ok());
        if let (Ok(a), Ok(b)) = (a, b) {
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn chosen_version_satisfies_the_range_and_is_maximal(range in range_strategy(), list in prop::collection::vec(version_tag(), 1..20)) {
        let p = semver(&range);
        let r = Range::parse(&range).expect("range");
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        let parse = |s: &str| Version::parse(s, Parsing::Loose).expect("generated version");
        match decide(&p, &refs, Current::default()) {
            Ok(d) => {
                let chosen = parse(&d.tag);
                prop_assert!(r.matches(&chosen));
                for t in list.iter().filter(|t| filter::is_valid_tag(t)) {
                    let v = parse(t);
                    if r.matches(&v) {
                        prop_assert_ne!(v.precedence(&chosen), Ordering::Greater);
                    }
                }
            }
            Err(_) => prop_assert!(list.iter().all(|t| !filter::is_valid_tag(t) || !r.matches(&parse(t)))),
        }
    }

    #[test]
    fn range_parse_never_panics(s in "[ 0-9xX*.,|<>=!~^v+-]{0,16}") {
        let _ = Range::parse(&s);
    }
}

/// The "why not" answers as values: up to date, a newer tag too young, no tag in the range, a
/// newer tag lacking a platform, and a deployed tag newer than every candidate.
#[test]
fn every_outcome_says_why_as_a_value() {
    let p = semver("~1.4");
    let d = decide(&p, &["1.4.4", "1.4.5", "1.5.0"], Current::tag("1.4.5")).unwrap();
    assert_eq!(
        d.why,
        Why::UpToDate {
            current: "1.4.5".into(),
            skipped: Skipped::default()
        }
    );

    let mut young = semver("^1");
    young.min_age = Some(Duration::hours(1));
    let registry = HashMap::from([
        ("1.5.0", built(20, "sha256:5")),
        ("1.4.5", built(600, "sha256:4")),
    ]);
    let (d, _) = drive(
        &young,
        &["1.4.5", "1.5.0"],
        Current::tag("1.4.5"),
        &registry,
    );
    let d = d.unwrap();
    assert!(d.keep_current);
    // Deployed 1.4.5 is the newest eligible tag; 1.5.0 was passed over for its age.
    assert_eq!(
        d.why,
        Why::UpToDate {
            current: "1.4.5".into(),
            skipped: Skipped {
                young: vec!["1.5.0".into()],
                ..Skipped::default()
            }
        }
    );

    let err = decide(&p, &["2.0.0", "1.3.9"], Current::default()).unwrap_err();
    assert_eq!(*err.why, Why::NoTagMatches { tags: 2 });

    let mut arm = semver("^1");
    arm.platforms = vec!["linux/arm64/v8".into()];
    let registry = HashMap::from([
        ("1.6.0", on(&["linux/amd64"])),
        ("1.5.0", on(&["linux/amd64", "linux/arm64/v8"])),
    ]);
    let (d, _) = drive(&arm, &["1.5.0", "1.6.0"], Current::tag("1.5.0"), &registry);
    assert_eq!(
        d.unwrap().why,
        Why::UpToDate {
            current: "1.5.0".into(),
            skipped: Skipped {
                lacking_platforms: vec![Lacking {
                    tag: "1.6.0".into(),
                    platforms: vec!["linux/arm64/v8".into()]
                }],
                ..Skipped::default()
            }
        }
    );

    let d = decide(&p, &["1.4.4", "1.4.5"], Current::tag("1.12.0")).unwrap();
    assert!(d.keep_current);
    assert_eq!(
        d.why,
        Why::NotDowngrading {
            current: "1.12.0".into(),
            best: "1.4.5".into()
        }
    );
    let json = serde_json::to_value(&d.why).unwrap();
    assert_eq!(json["kind"], "not_downgrading");
}
