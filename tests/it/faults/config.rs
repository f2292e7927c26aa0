//! Fault suite: config faults (see docs/reliability.md).

use std::process::Output;

use crate::support::config::ConfigDir;
use crate::support::git::BareRepo;
use crate::support::imagebump::{Imagebump, text};
use crate::support::registry::{ImageSpec, TestRegistry};

fn imagebump(args: &[&str], config: &std::path::Path) -> Output {
    Imagebump::new(args).config(config).output()
}

/// A template that only fails on the real change set (two rows, which no sample has) passes
/// `validate`; `once --dry-run` must then fail exactly where the real pass does, not print a
/// clean plan and leave the failure to the commit.
#[tokio::test(flavor = "multi_thread")]
async fn dry_run_fails_where_the_real_pass_would_on_a_data_dependent_template() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    for tag in ["1.0.0", "1.1.0"] {
        pusher
            .push_image("team/api", tag, &ImageSpec::new("2026-01-01T00:00:00Z"))
            .await;
    }
    let repo = BareRepo::with_files(
        "main",
        &[
            (
                "k8s/kustomization.yaml",
                &format!("images:\n  - name: {host}/team/api\n    newTag: 1.0.0\n"),
            ),
            ("values.yaml", "api:\n  image:\n    tag: 1.0.0\n"),
        ],
    );
    let dir = ConfigDir::with_global(&format!(
        "apps: apps\nworkdir: cache\nregistries:\n  - prefix: {host}\n    insecure: true\n"
    ));
    let config = dir.global();
    dir.write(
        "apps/shop.yaml",
        &format!(
            "name: shop\nrepo: {}\ncommit_message: \"{{% if changes|length == 2 %}}{{{{ changes[0].nope }}}}{{% endif %}}bump\"\nimages:\n  - name: api\n    image: {host}/team/api\n    policy: {{semver: '^1'}}\n    targets:\n      - file: k8s/kustomization.yaml\n      - {{file: values.yaml, path: api.image.tag}}\n",
            repo.file_url()
        ),
    );
    let out = imagebump(&["validate"], &config);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let before = repo.head("main");
    let dry = imagebump(&["once", "--dry-run"], &config);
    let real = imagebump(&["once"], &config);
    assert_eq!(real.status.code(), Some(1), "{}", text(&real));
    assert!(
        String::from_utf8_lossy(&real.stdout)
            .contains("commit message template of app `shop` failed"),
        "{}",
        text(&real)
    );
    assert_eq!(repo.head("main"), before, "nothing is pushed");
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));
    assert!(
        String::from_utf8_lossy(&dry.stdout)
            .contains("commit message template of app `shop` failed"),
        "{}",
        text(&dry)
    );
}
