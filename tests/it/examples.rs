//! Every example configuration under `config/` passes `imagebump validate`, and a broken one
//! fails with every problem listed.

use crate::support::config::ConfigDir;
use crate::support::imagebump::Imagebump;
use std::path::Path;

fn validate(config: &Path) -> std::process::Output {
    Imagebump::new(["validate"]).config(config).output()
}

#[test]
fn every_example_config_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut globals = vec![root.join("imagebump.yaml")];
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("imagebump.yaml").is_file() {
            globals.push(dir.join("imagebump.yaml"));
        }
    }
    assert!(globals.len() >= 2, "{globals:?}");
    for global in globals {
        let out = validate(&global);
        assert!(
            out.status.success(),
            "{}: {}",
            global.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn validate_lists_every_problem_and_exits_2() {
    let dir = ConfigDir::with_global("apps: apps\n")
        .app("a", "name: a\nrepo: r\nimagez: []\n")
        .app(
            "b",
            "name: b\nrepo: r\nimages:\n  - image: Bad/Name\n    policy: {semver: '*'}\n    targets: [{file: x.yaml}]\n",
        );
    let out = validate(&dir.global());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a.yaml:3:1: unknown key `imagez` in an app; did you mean `images`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("b.yaml:4:12: invalid repository path component \"Name\""),
        "{stderr}"
    );
    assert!(stderr.contains("problem(s) found"), "{stderr}");
}
