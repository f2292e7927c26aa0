//! `imagebump explain` end to end on a real registry and a real config repo: the five "why
//! not?" cases of issue 15 (up to date, younger than min_age, outside the range, lacking a
//! platform, a deployed tag newer than every candidate), bounded text and full JSON.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::config::ConfigDir;
use crate::support::git::BareRepo;
use crate::support::imagebump::text;
use crate::support::registry::{ImageSpec, TestRegistry};

const OLD: &str = "2026-01-01T00:00:00Z";

const VALUES: &str = "\
current: {image: REGISTRY/team/current, tag: 1.4.5}
young: {image: REGISTRY/team/young, tag: 1.4.0}
outside: {image: REGISTRY/team/outside, tag: 1.4.0}
arm: {image: REGISTRY/team/arm, tag: 1.4.0}
newer: {image: REGISTRY/team/newer, tag: 1.12.0}
";

fn image(name: &str, registry: &str, policy: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    image: {registry}/team/{name}\n    policy: {policy}\n{extra}    targets:\n      - file: values.yaml\n        path: {name}.tag\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_answers_the_five_why_not_cases_tag_by_tag() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    let old = ImageSpec::new(OLD);
    for tag in ["1.4.0", "1.4.5", "2.0.0"] {
        pusher.push_image("team/current", tag, &old).await;
    }
    // Built 37 minutes ago, with min_age 1h: ready in 23 minutes.
    let recent = (OffsetDateTime::now_utc() - time::Duration::minutes(37))
        .replace_nanosecond(0)
        .unwrap()
        .format(&Rfc3339)
        .unwrap();
    pusher.push_image("team/young", "1.4.0", &old).await;
    pusher.push_image("team/young", "1.4.2", &old).await;
    pusher
        .push_image("team/young", "1.5.0", &ImageSpec::new(&recent))
        .await;
    // One tag inside ~1.4 and twenty outside.
    let pushed = pusher.push_image("team/outside", "1.4.0", &old).await;
    let outside: Vec<String> = (0..20).map(|minor| format!("2.{minor}.0")).collect();
    pusher.tag_many("team/outside", &pushed, &outside, 4).await;
    // 1.4.6 has no arm64 image, 1.4.5 has both.
    pusher.push_image("team/arm", "1.4.0", &old).await;
    pusher.push_image("team/arm", "1.4.6", &old).await;
    pusher
        .push_index(
            "team/arm",
            "1.4.5",
            &[
                ImageSpec::new(OLD),
                ImageSpec::new(OLD).platform("linux/arm64"),
            ],
            &[],
        )
        .await;
    for tag in ["1.4.1", "1.4.5"] {
        pusher.push_image("team/newer", tag, &old).await;
    }

    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: {host}/team/current:1.4.0\n"
    );
    let repo = BareRepo::with_files(
        "main",
        &[
            ("values.yaml", &VALUES.replace("REGISTRY", &host)),
            ("k8s/prod/deployment.yaml", &deployment),
        ],
    );
    let app = format!(
        "name: shop\nrepo: {}\nbranch: main\nimages:\n{}{}{}{}{}",
        repo.file_url(),
        image("current", &host, "{semver: \"~1.4\"}", ""),
        image("young", &host, "{semver: \"^1\"}", "    min_age: 1h\n"),
        image("outside", &host, "{semver: \"~1.4\"}", ""),
        image(
            "arm",
            &host,
            "{semver: \"~1.4\"}",
            "    platform: linux/arm64\n"
        ),
        image("newer", &host, "{semver: \"~1.4\"}", ""),
    );
    // A directory target: every YAML file under it that names the image.
    let app = format!(
        "{app}  - name: dir\n    image: {host}/team/current\n    policy: {{semver: \"~1.4\"}}\n    targets:\n      - file: k8s/\n"
    );
    let setup = ConfigDir::new(&host, "").app("shop", &app);
    let before = repo.head("main");

    let out = setup.imagebump(["explain", "shop"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let section = |name: &str| -> String {
        let start = stdout
            .find(&format!("\n{name} ("))
            .unwrap_or_else(|| panic!("no section {name}: {stdout}"));
        let rest = &stdout[start + 1..];
        let end = rest.find("\n\n").map_or(rest.len(), |e| e + 1);
        rest[..end].to_string()
    };

    let current = section("current");
    assert!(current.contains("  policy: semver ~1.4\n"), "{current}");
    assert!(
        current.contains("  deployed at values.yaml:1: 1.4.5  [values.yaml (path current.tag)]"),
        "{current}"
    );
    assert!(
        current.contains("  why: up to date: 1.4.5 is the best"),
        "{current}"
    );
    assert!(
        current.contains("  would write: nothing (the deployed tag stays)"),
        "{current}"
    );
    assert!(
        current.contains("1.4.5  deployed, and the best eligible tag"),
        "{current}"
    );
    assert!(
        current.contains("1.4.0  not newer than deployed 1.4.5; not downgrading"),
        "{current}"
    );
    assert!(current.contains("2.0.0  outside ~1.4"), "{current}");

    let young = section("young");
    assert!(
        young.contains("1.5.0  younger than min_age 1 h (ready in 23 min)"),
        "{young}"
    );
    assert!(
        young.contains("1.4.2  chosen: newer than the deployed tag and eligible"),
        "{young}"
    );
    assert!(young.contains("  would write: 1.4.2\n"), "{young}");
    assert!(
        young.contains("skipped 1.5.0 (younger than min_age)"),
        "{young}"
    );

    // Bounded: three of the twenty, then a count.
    let outside = section("outside");
    assert!(
        outside.contains("  tags: 21 in the repository, 1 candidate\n"),
        "{outside}"
    );
    assert!(outside.contains("2.19.0  outside ~1.4"), "{outside}");
    assert!(
        outside.contains("    ... and 17 more outside ~1.4\n"),
        "{outside}"
    );
    assert!(!outside.contains("2.3.0"), "{outside}");

    let arm = section("arm");
    assert!(arm.contains("1.4.6  has no linux/arm64/v8 image"), "{arm}");
    assert!(arm.contains("1.4.5  chosen"), "{arm}");

    let newer = section("newer");
    assert!(
        newer.contains(
            "  why: deployed 1.12.0 is newer than every candidate (best 1.4.5); not downgrading"
        ),
        "{newer}"
    );
    assert!(
        newer.contains("1.4.5  not newer than deployed 1.12.0; not downgrading"),
        "{newer}"
    );

    let dir = section("dir");
    assert!(
        dir.contains("  deployed at k8s/prod/deployment.yaml:8: 1.4.0  [k8s/]"),
        "{dir}"
    );
    assert!(dir.contains("  would write: 1.4.5\n"), "{dir}");

    // --all prints every tag; --image only one image.
    let out = setup
        .imagebump(["explain", "shop", "--image", "outside", "--all"])
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("outside ~1.4\n").count(), 20, "{stdout}");
    assert!(!stdout.contains("\ncurrent ("), "{stdout}");

    // JSON: every tag's verdict as a value.
    let out = setup
        .imagebump(["explain", "shop", "--image", "young", "--output", "json"])
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let decision = &json["images"][0]["decisions"][0];
    assert_eq!(decision["why"]["kind"], "newer");
    assert_eq!(decision["tag"], "1.4.2");
    let verdicts = decision["tags"]["verdicts"].as_array().unwrap();
    assert_eq!(verdicts[0]["tag"], "1.5.0");
    assert_eq!(verdicts[0]["verdict"], "too_young");
    assert_eq!(verdicts[0]["min_age_secs"], 3600);
    let ready = verdicts[0]["ready_in_secs"].as_i64().unwrap();
    assert!((1300..=1380).contains(&ready), "{ready}");

    // Unknown names are usage errors; nothing was ever written.
    let out = setup
        .imagebump(["explain", "shop", "--image", "nope"])
        .output();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("has no image named `nope`"),
        "{}",
        text(&out)
    );
    let out = setup.imagebump(["explain", "blog"]).output();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(repo.head("main"), before, "explain must not write");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_reports_a_registry_that_fails_and_exits_1() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    drop(listener);
    let repo = BareRepo::with_files(
        "main",
        &[(
            "values.yaml",
            &format!("current: {{image: {host}/team/current, tag: 1.4.5}}\n"),
        )],
    );
    let app = format!(
        "name: shop\nrepo: {}\nbranch: main\nimages:\n{}",
        repo.file_url(),
        image("current", &host, "{semver: \"~1.4\"}", ""),
    );
    let setup = ConfigDir::new(&host, "").app("shop", &app);
    let out = setup.imagebump(["explain", "shop"]).output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("deployed at values.yaml:1: 1.4.5"),
        "{stdout}"
    );
    assert!(stdout.contains("  error: cannot reach"), "{stdout}");
}
