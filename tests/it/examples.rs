//! Every example configuration under `config/` passes `imagebump validate`, and a broken one
//! fails with every problem listed.

use std::path::Path;
use std::process::Command;

fn validate(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imagebump"))
        .args(["validate", "--config"])
        .arg(config)
        .output()
        .expect("run imagebump validate")
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
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("apps")).unwrap();
    std::fs::write(dir.path().join("imagebump.yaml"), "apps: apps\n").unwrap();
    std::fs::write(
        dir.path().join("apps/a.yaml"),
        "name: a\nrepo: r\nimagez: []\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("apps/b.yaml"),
        "name: b\nrepo: r\nimages:\n  - image: Bad/Name\n    policy: {semver: '*'}\n    targets: [{file: x.yaml}]\n",
    )
    .unwrap();
    let out = validate(&dir.path().join("imagebump.yaml"));
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
