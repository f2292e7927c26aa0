#![allow(clippy::unwrap_used)]

use super::*;
use std::time::Duration;

fn app(text: &str) -> (Option<App>, Vec<String>) {
    let mut diags = Diagnostics::new(Path::new("apps/shop.yaml"));
    let app = parse_app(Path::new("apps/shop.yaml"), text, &mut diags);
    (app, diags.list.iter().map(ToString::to_string).collect())
}

fn global(text: &str) -> (Option<Global>, Vec<String>) {
    let mut diags = Diagnostics::new(Path::new("/etc/imagebump/imagebump.yaml"));
    let g = parse_global(Path::new("/etc/imagebump/imagebump.yaml"), text, &mut diags);
    (g, diags.list.iter().map(ToString::to_string).collect())
}

const SHOP: &str = r#"name: shop
repo: https://github.com/acme/shop-config.git
branch: main
write: pull-request
pull_request: {forge: github, token_env: GITHUB_TOKEN, labels: [images]}
commit_message: "chore: {% for c in changes %}{{ c.image }}{% endfor %}"
images:
  - name: api
    image: ghcr.io/acme/shop-api
    policy: {semver: "~1.4"}
    tags: {include: '^v?\d+\.\d+\.\d+$', exclude: ['-rc']}
    targets:
      - file: overlays/dev/kustomization.yaml
      - file: charts/shop/values-dev.yaml
        path: api.image.tag
  - image: nginx
    policy:
      newest_build: {}
    pin_digest: true
    min_age: 30m
    targets: [{file: k8s/cronjob.yaml}]
"#;

#[test]
fn a_full_app_parses() {
    let (app, errors) = app(SHOP);
    assert_eq!(errors, Vec::<String>::new());
    let app = app.unwrap();
    assert_eq!(app.name, "shop");
    assert_eq!(app.write, WriteMode::PullRequest);
    assert_eq!(app.pull_request.as_ref().unwrap().labels, vec!["images"]);
    assert_eq!(app.images.len(), 2);
    let api = &app.images[0];
    assert_eq!(
        api.policy,
        PolicyConfig::Semver {
            range: "~1.4".into(),
            strict: false
        }
    );
    assert_eq!(api.exclude, vec!["-rc"]);
    assert_eq!(api.targets[1].path.as_deref(), Some("api.image.tag"));
    assert_eq!(api.targets[1].line, 14);
    let nginx = &app.images[1];
    assert_eq!(nginx.name, "nginx");
    assert_eq!(nginx.image.name(), "docker.io/library/nginx");
    assert_eq!(nginx.policy, PolicyConfig::NewestBuild);
    assert!(nginx.pin_digest);
    assert_eq!(nginx.min_age, Some(Duration::from_secs(1800)));
}

#[test]
fn every_error_is_reported_at_once_with_positions() {
    let text = r#"name: Shop!
repo: x
brnach: main
write: sometimes
images:
  - image: ghcr.io/acme/api:1.0
    policy: {semver: "^1", numerical: asc}
    tags: {include: '(unclosed'}
    targets:
      - file: ../outside.yaml
        field: tag
"#;
    let (_, errors) = app(text);
    let expected = [
        "apps/shop.yaml:1:7: app name `Shop!`",
        "apps/shop.yaml:2:7: `repo` has no scheme",
        "apps/shop.yaml:3:1: unknown key `brnach` in an app; did you mean `branch`?",
        "apps/shop.yaml:4:8: `write` must be `commit` or `pull-request`, found `sometimes`",
        "apps/shop.yaml:6:12: `image` names the repository only",
        "apps/shop.yaml:7:13: `policy` needs exactly one of",
        "apps/shop.yaml:8:21: `include` is not a valid regular expression",
        "apps/shop.yaml:10:15: `file` must be a path inside the repo",
        "apps/shop.yaml:10:9: `field` applies to a Helm values `path`",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn missing_keys_are_named() {
    let (_, errors) = app("name: a\nimages:\n  - image: nginx\n");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("missing required key `repo`")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("missing required key `policy`")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("missing required key `targets`")),
        "{errors:#?}"
    );
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let (app, errors) = app("name: a\nimages: [\n");
    assert!(app.is_none());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("apps/shop.yaml:"), "{errors:#?}");
    assert!(errors[0].contains("invalid YAML"), "{errors:#?}");
}

#[test]
fn global_defaults_and_errors() {
    let (g, errors) = global("apps: apps/\n");
    assert!(errors.is_empty(), "{errors:#?}");
    let g = g.unwrap();
    assert_eq!(g.apps_dir, Path::new("/etc/imagebump/apps/"));
    assert_eq!(g.schedule, Schedule::Interval(DEFAULT_INTERVAL));
    assert_eq!(g.git.push_retries, 5);

    let (_, errors) = global(
        "interval: 2m\nschedule: '*/5 * * * *'\nregistries:\n  - prefix: ghcr.io\n    username: bot\n    insecure: maybe\nwebhook:\n  listen: nowhere\n  receivers:\n    - {type: dockerhub}\n    - {type: distrbution, token_env: T}\n",
    );
    let expected = [
        "set either `interval` or `schedule`",
        "`insecure` must be true or false",
        "`username` and `password_env` go together",
        "`listen` must be an address",
        "needs `secret_env`",
        "unknown receiver type `distrbution`; did you mean `distribution`?",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errors:#?}"
        );
    }
}

#[test]
fn grouped_commits_are_off_by_default_and_their_template_is_checked() {
    let (g, errors) = global("apps: apps/\n");
    assert!(errors.is_empty(), "{errors:#?}");
    let git = g.unwrap().git;
    assert!(!git.group_commits);
    assert_eq!(git.group_commit_message, None);

    let (g, errors) = global(
        "git:\n  group_commits: true\n  group_commit_message: \"bump {{ apps|join(',') }}\"\n",
    );
    assert!(errors.is_empty(), "{errors:#?}");
    let git = g.unwrap().git;
    assert!(git.group_commits);
    assert_eq!(
        git.group_commit_message.as_deref(),
        Some("bump {{ apps|join(',') }}")
    );

    let (_, errors) = global(
        "git:\n  group_commits: sometimes\n  group_commit_message: \"{% for %}\"\n  group_commit: true\n",
    );
    for want in [
        "imagebump.yaml:2:",
        "`group_commits` must be true or false",
        "imagebump.yaml:3:",
        "`git.group_commit_message` is not a valid template",
        "did you mean `group_commits`?",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errors:#?}"
        );
    }
}

#[test]
fn the_registry_breaker_has_defaults_and_is_checked() {
    let (g, errors) = global("apps: apps/\n");
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(g.unwrap().registry_breaker, BreakerConfig::default());

    let (g, errors) = global("registry_breaker: {cooldown: 0s}\n");
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(g.unwrap().registry_breaker.cooldown, Duration::ZERO);

    let (g, errors) = global("registry_breaker: {cooldown: 2m}\n");
    assert!(errors.is_empty(), "{errors:#?}");
    let breaker = g.unwrap().registry_breaker;
    assert_eq!(breaker.cooldown, Duration::from_secs(120));
    assert_eq!(breaker.max_cooldown, Duration::from_secs(600));

    let (_, errors) =
        global("registry_breaker:\n  cooldown: 5m\n  max_cooldown: 1m\n  cooldwn: 1s\n");
    for want in [
        "imagebump.yaml:3:",
        "`max_cooldown` must be at least `cooldown`",
        "did you mean `cooldown`?",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errors:#?}"
        );
    }
}

#[test]
fn git_maintenance_has_defaults_takes_0_for_off_and_is_checked_at_its_line() {
    let (g, errors) = global("apps: apps/\n");
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(g.unwrap().git.maintenance, MaintenanceConfig::default());

    let (g, errors) = global("git:\n  maintenance: {max_packs: 10}\n");
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        g.unwrap().git.maintenance,
        MaintenanceConfig {
            max_packs: 10,
            max_loose_objects: 5_000,
        }
    );

    let (g, errors) = global("git:\n  maintenance:\n    max_packs: 0\n    max_loose_objects: 0\n");
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        g.unwrap().git.maintenance,
        MaintenanceConfig {
            max_packs: 0,
            max_loose_objects: 0,
        }
    );

    for (text, want) in [
        (
            "git:\n  maintenance:\n    max_packs: 200\n",
            "imagebump.yaml:3:16: `max_packs` must be below 200 (past 200 packs a clone is deleted and cloned again, never repacked), or 0 to turn it off; found `200`",
        ),
        (
            "git:\n  author: {name: bot}\n  maintenance:\n    max_loose_objects: -1\n",
            "imagebump.yaml:4:24: `max_loose_objects` must be a whole number (0 turns it off), found `-1`",
        ),
        (
            "git:\n  maintenance: {max_packs: \"50\"}\n",
            "imagebump.yaml:2:28: `max_packs` must be a whole number (0 turns it off), found `\"50\"`",
        ),
        (
            "git:\n  maintenance:\n    max_pack: 10\n",
            "imagebump.yaml:3:",
        ),
        (
            "git:\n  maintenance: off\n",
            "imagebump.yaml:2:16: `git.maintenance` is a mapping such as `{max_packs: 50, max_loose_objects: 5000}` (`{max_packs: 0, max_loose_objects: 0}` never repacks), found `off`",
        ),
    ] {
        let (_, errors) = global(text);
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{text}: missing {want:?} in {errors:#?}"
        );
    }
}

#[test]
fn a_registry_tag_list_budget_is_read_and_checked() {
    let (g, errors) = global(
        "registries:\n  - prefix: ghcr.io\n    tag_list: {max_pages: 50, max_tags: 5000, max_mib: 8, timeout: 1m}\n",
    );
    assert!(errors.is_empty(), "{errors:#?}");
    let caps = g.unwrap().registries[0].tag_list;
    assert_eq!(
        caps,
        TagListCaps {
            max_pages: Some(50),
            max_tags: Some(5000),
            max_mib: Some(8),
            timeout: Some(Duration::from_secs(60)),
        }
    );

    let (_, errors) = global(
        "registries:\n  - prefix: ghcr.io\n    tag_list:\n      max_pages: 0\n      max_pags: 3\n      timeout: 0s\n",
    );
    for want in [
        "imagebump.yaml:4:",
        "`max_pages` must be a positive whole number",
        "did you mean `max_pages`?",
        "`timeout` must be above 0",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errors:#?}"
        );
    }
}

#[test]
fn cron_schedules_are_validated() {
    let (g, errors) = global("schedule: '*/5 * * * *'\n");
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(g.unwrap().schedule, Schedule::cron("*/5 * * * *").unwrap());
    let (_, errors) = global("schedule: '0 */5 * * * *'\n");
    assert!(
        errors.iter().any(|e| e.contains("5-field cron")),
        "{errors:#?}"
    );
    let (_, errors) = global("schedule: '61 * * * *'\n");
    assert!(
        errors.iter().any(|e| e.contains("invalid cron")),
        "{errors:#?}"
    );
}

#[test]
fn load_keeps_good_apps_and_reports_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("apps")).unwrap();
    std::fs::write(dir.path().join("imagebump.yaml"), "apps: apps\n").unwrap();
    std::fs::write(dir.path().join("apps/shop.yaml"), SHOP).unwrap();
    std::fs::write(
        dir.path().join("apps/broken.yaml"),
        "name: broken\nrepo: x\nimages: 3\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("apps/dup.yml"), SHOP).unwrap();
    std::fs::write(dir.path().join("apps/README.md"), "not an app").unwrap();
    let loaded = load(&dir.path().join("imagebump.yaml")).unwrap();
    let names: Vec<&str> = loaded.config.apps.iter().map(|a| a.name.as_str()).collect();
    // `dup.yml` sorts before `shop.yaml`, so it claims the name first.
    assert_eq!(names, vec!["shop"]);
    let problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("broken.yaml:3:9: `images` must be a list")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("shop.yaml") && p.contains("already used")),
        "{problems:#?}"
    );
}

#[test]
fn a_broken_global_file_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("imagebump.yaml"), "interval: soon\n").unwrap();
    let err = load(&dir.path().join("imagebump.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("imagebump.yaml:1:11: `interval`: invalid duration `soon`"),
        "{err}"
    );
}

#[test]
fn ranges_and_extract_templates_are_checked_with_the_policy_grammar() {
    let (_, errors) = app(
        "name: a\nrepo: https://example.com/r.git\nimages:\n  - image: nginx\n    policy: {semver: '>=1.0 <2.x.1.5'}\n    targets: [{file: x.yaml}]\n  - image: redis\n    policy: {numerical: asc}\n    tags: {include: '^main-(?P<ts>\\d+)$', extract: '$stamp'}\n    targets: [{file: x.yaml}]\n",
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("apps/shop.yaml:5:22: `semver`: ")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("apps/shop.yaml:9:52: ") && e.contains("stamp")),
        "{errors:#?}"
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

#[test]
fn a_directory_target_scans_files_and_refuses_a_helm_path() {
    let base = "name: a\nrepo: https://example.test/c.git\nbranch: main\nimages:\n  - image: nginx\n    policy: {semver: '^1'}\n    targets:\n";
    let (parsed, errors) = app(&format!(
        "{base}      - file: clusters/prod/\n      - {{file: ./, marker: 'flux-system:nginx'}}\n"
    ));
    assert!(errors.is_empty(), "{errors:#?}");
    let targets = &parsed.unwrap().images[0].targets;
    assert!(targets[0].names_directory());
    assert_eq!(targets[1].file, "./");
    assert!(targets[1].names_directory());

    let (_, errors) = app(&format!(
        "{base}      - file: clusters/prod/\n        path: image.tag\n"
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("apps/shop.yaml:9:"), "{errors:#?}");
    assert!(
        errors[0].contains("`clusters/prod/` is a directory target"),
        "{errors:#?}"
    );
    let (_, errors) = app(&format!("{base}      - file: ../outside/\n"));
    assert!(
        errors[0].contains("must be a path inside the repo"),
        "{errors:#?}"
    );
}

#[test]
fn on_rollback_is_read_at_app_and_image_level_and_checked() {
    let text = "name: shop\nrepo: https://github.com/acme/c.git\non_rollback: hold\nimages:\n  - image: ghcr.io/acme/api\n    policy: {semver: \"^1\"}\n    on_rollback: ignore\n    targets: [{file: a.yaml}]\n  - image: ghcr.io/acme/web\n    policy: {semver: \"^1\"}\n    targets: [{file: a.yaml}]\n";
    let (parsed, errors) = app(text);
    assert_eq!(errors, Vec::<String>::new());
    let parsed = parsed.unwrap();
    assert_eq!(parsed.on_rollback, Some(OnRollback::Hold));
    assert_eq!(parsed.images[0].on_rollback, Some(OnRollback::Ignore));
    assert_eq!(parsed.images[1].on_rollback, None);
    assert_eq!(OnRollback::default().as_str(), "skip-version");

    let (_, errors) = app(&text.replace("on_rollback: ignore", "on_rollback: revert"));
    assert_eq!(
        errors,
        vec![
            "apps/shop.yaml:7:18: `on_rollback` must be `skip-version`, `hold` or `ignore`, found `revert`"
        ]
    );
}

#[test]
fn promote_is_read_with_its_defaults_and_makes_the_app_open_pull_requests() {
    let text = "name: shop-prod\nrepo: https://github.com/acme/c.git\npull_request: {forge: github, token_env: T}\nimages:\n  - image: ghcr.io/acme/api\n    policy: {semver: \"^1\"}\n    promote: {from: shop-staging}\n    targets: [{file: a.yaml}]\n";
    let (parsed, errors) = app(text);
    assert_eq!(errors, Vec::<String>::new());
    let parsed = parsed.unwrap();
    assert_eq!(parsed.write, WriteMode::PullRequest);
    let promote = parsed.images[0].promote.clone().unwrap();
    assert_eq!(promote.from, "shop-staging");
    assert_eq!(promote.image, "api");
    assert_eq!(promote.soak, DEFAULT_SOAK);
    assert_eq!(promote.trust, PromoteTrust::Any);
    assert_eq!(promote.at, (7, 21));

    let explicit = text.replace(
        "promote: {from: shop-staging}",
        "promote: {from: shop-staging, image: backend, soak: 2h, trust: bot}",
    );
    let promote = app(&explicit).0.unwrap().images[0].promote.clone().unwrap();
    assert_eq!(promote.image, "backend");
    assert_eq!(promote.soak, Duration::from_secs(7200));
    assert_eq!(promote.trust, PromoteTrust::Bot);

    // Without a pull_request section: say what to add, or how to opt out.
    let (_, errors) = app(&text.replace("pull_request: {forge: github, token_env: T}\n", ""));
    assert_eq!(
        errors,
        vec![
            "apps/shop.yaml:1:1: image `api` is promoted, so this app opens pull requests by default: add a `pull_request:` section (forge, token_env), or set `write: commit`"
        ]
    );
    // An explicit `write: commit` is allowed, with a warning.
    let commit = text.replace(
        "pull_request: {forge: github, token_env: T}\n",
        "write: commit\n",
    );
    let mut diags = Diagnostics::new(Path::new("apps/shop.yaml"));
    let parsed = parse_app(Path::new("apps/shop.yaml"), &commit, &mut diags).unwrap();
    assert!(diags.list.is_empty(), "{:?}", diags.list);
    assert_eq!(parsed.write, WriteMode::Commit);
    assert_eq!(diags.warnings.len(), 1);
    assert!(
        diags.warnings[0]
            .to_string()
            .starts_with("apps/shop.yaml:3:8: image `api` is promoted and `write: commit`")
    );

    let (_, errors) =
        app(&text.replace("{from: shop-staging}", "{from: shop-staging, trust: gpg}"));
    assert_eq!(
        errors,
        vec!["apps/shop.yaml:7:42: `trust` must be `any`, `bot` or `signed`, found `gpg`"]
    );
    let signed = text.replace(
        "{from: shop-staging}",
        "{from: shop-staging, trust: signed, allowed_signers: /etc/imagebump/allowed_signers}",
    );
    let promote = app(&signed).0.unwrap().images[0].promote.clone().unwrap();
    assert_eq!(promote.trust, PromoteTrust::Signed);
    assert_eq!(
        promote.allowed_signers.as_deref(),
        Some(Path::new("/etc/imagebump/allowed_signers"))
    );
    let (_, errors) = app(&text.replace(
        "{from: shop-staging}",
        "{from: shop-staging, trust: signed}",
    ));
    assert_eq!(
        errors,
        vec![
            "apps/shop.yaml:7:42: `trust: signed` needs `allowed_signers`: an OpenSSH allowed-signers file (`principals ssh-ed25519 AAAA…` per line)"
        ]
    );
    let (_, errors) = app(&signed.replace("/etc/imagebump/allowed_signers", "signers"));
    assert_eq!(
        errors,
        vec!["apps/shop.yaml:7:67: `allowed_signers` must be an absolute path, found `signers`"]
    );
}

#[test]
fn the_history_bound_is_a_global_key() {
    let (parsed, errors) = global("history: {max_commits: 200, max_age: 30d}\n");
    assert_eq!(errors, Vec::<String>::new());
    let bound = parsed.unwrap().history;
    assert_eq!(bound.max_commits, 200);
    assert_eq!(bound.max_age, Duration::from_secs(30 * 86400));
    let (parsed, _) = global("interval: 2m\n");
    assert_eq!(parsed.unwrap().history, HistoryBound::default());
    let (_, errors) = global("history: {max_commits: 0}\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn webhook_retries_have_defaults_and_are_checked() {
    let retry = |text: &str| {
        let (g, errors) = global(text);
        assert!(errors.is_empty(), "{errors:#?}");
        g.unwrap().webhook.unwrap().retry
    };
    let defaults = RetryConfig {
        max_attempts: 5,
        initial: Duration::from_secs(2),
        max: Duration::from_secs(300),
    };
    assert_eq!(retry("webhook:\n  listen: 127.0.0.1:8080\n"), defaults);
    assert_eq!(RetryConfig::default(), defaults);
    assert_eq!(
        retry("webhook:\n  retry: {max_attempts: 3, initial: 10s, max: 1m}\n"),
        RetryConfig {
            max_attempts: 3,
            initial: Duration::from_secs(10),
            max: Duration::from_secs(60),
        }
    );
    // 0 turns retries off; a longer `initial` than the default `max` raises `max` to it.
    assert_eq!(
        retry("webhook:\n  retry: {max_attempts: 0}\n").max_attempts,
        0
    );
    assert_eq!(
        retry("webhook:\n  retry: {initial: 10m}\n").max,
        Duration::from_secs(600)
    );

    let (_, errors) =
        global("webhook:\n  retry:\n    max_attempts: -1\n    initial: 0s\n    maxx: 1s\n");
    for want in [
        "imagebump.yaml:3:",
        "`max_attempts` must be a whole number (0 turns retries off), found `-1`",
        "imagebump.yaml:4:",
        "`initial` must be longer than 0s",
        "imagebump.yaml:5:",
        "did you mean `max`?",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errors:#?}"
        );
    }
    let (_, errors) = global("webhook:\n  retry:\n    initial: 1m\n    max: 10s\n");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("imagebump.yaml:4:")
                && e.contains("`max` must be at least `initial`")),
        "{errors:#?}"
    );
}
