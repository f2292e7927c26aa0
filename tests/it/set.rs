//! `imagebump set` end to end: the editor corpus, exit codes, `--check`, JSON output, atomic
//! writes, refusals that leave files byte-identical, and Kustomize still building the result.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::imagebump::Imagebump;

fn set(dir: &Path, args: &[&str]) -> Output {
    Imagebump::new(["set"]).args(args).current_dir(dir).output()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/edit-corpus")
}

/// Every case of tests/edit-corpus, through the CLI, byte for byte.
#[test]
fn corpus() {
    let mut cases: Vec<PathBuf> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "corpus went missing: {cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let args = fs::read_to_string(case.join("args")).unwrap();
        let args: Vec<&str> = args.split_whitespace().collect();
        let file = args[0];
        let input = fs::read(case.join(file)).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(file), &input).unwrap();
        let out = set(tmp.path(), &args);
        let after = fs::read(tmp.path().join(file)).unwrap();
        if let Ok(expected) = fs::read(case.join("expected.yaml")) {
            if code(&out) != 0 {
                failures.push(format!("{name}: exit {} {}", code(&out), stderr(&out)));
            } else if after != expected {
                failures.push(format!(
                    "{name}: output differs\n--- got ---\n{}\n--- want ---\n{}",
                    String::from_utf8_lossy(&after),
                    String::from_utf8_lossy(&expected)
                ));
            } else {
                // Running again changes nothing: the edit is idempotent.
                let again = set(tmp.path(), &[&args[..], &["--check"]].concat());
                if code(&again) != 0 {
                    failures.push(format!(
                        "{name}: second run would change: {}",
                        stderr(&again)
                    ));
                }
            }
        } else {
            let want = fs::read_to_string(case.join("error")).unwrap();
            let err = stderr(&out);
            if code(&out) != 2 || !err.contains(want.trim()) {
                failures.push(format!(
                    "{name}: want exit 2 and {want:?}, got {} {err}",
                    code(&out)
                ));
            }
            if after != input {
                failures.push(format!("{name}: a refused edit changed the file"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

const VALUES: &str = "image:\n  repository: ghcr.io/acme/api # the API\n  tag: 1.0.0\n";

#[test]
fn check_exits_1_when_a_change_is_due_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("values.yaml"), VALUES).unwrap();
    let out = set(
        tmp.path(),
        &[
            "values.yaml",
            "--path",
            "image.tag",
            "--value",
            "1.1.0",
            "--check",
        ],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(tmp.path().join("values.yaml")).unwrap(),
        VALUES
    );
    let out = set(
        tmp.path(),
        &[
            "values.yaml",
            "--path",
            "image.tag",
            "--value",
            "1.0.0",
            "--check",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn json_output_lists_file_line_old_new() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("values.yaml"), VALUES).unwrap();
    let out = set(
        tmp.path(),
        &[
            "values.yaml",
            "--path",
            "image.tag",
            "--value",
            "1.1.0",
            "--output",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["changed"], true);
    assert_eq!(
        doc["changes"],
        serde_json::json!([{"file": "values.yaml", "line": 3, "column": 8, "old": "1.0.0", "new": "1.1.0"}])
    );
    // Already up to date: exit 0, no changes listed.
    let out = set(
        tmp.path(),
        &[
            "values.yaml",
            "--path",
            "image.tag",
            "--value",
            "1.1.0",
            "--output",
            "json",
        ],
    );
    assert_eq!(code(&out), 0);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["changed"], false);
}

#[test]
fn write_is_atomic_and_keeps_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("values.yaml");
    fs::write(&file, VALUES).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let out = set(
        tmp.path(),
        &["values.yaml", "--path", "image.tag", "--value", "1.1.0"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        VALUES.replace("1.0.0", "1.1.0")
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let names: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["values.yaml"], "no temporary file is left behind");
}

#[test]
fn one_bad_file_means_no_file_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let good = "images:\n- name: ghcr.io/acme/api\n  newTag: 1.0.0\n";
    let bad = "images:\n- name: ghcr.io/acme/api\n  newTag: [1.0.0]\n";
    fs::write(tmp.path().join("a.yaml"), good).unwrap();
    fs::write(tmp.path().join("b.yaml"), bad).unwrap();
    let out = set(
        tmp.path(),
        &["a.yaml", "b.yaml", "--image", "ghcr.io/acme/api:2.0.0"],
    );
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains("b.yaml:3:11:"), "{err}");
    assert!(err.contains("3 |   newTag: [1.0.0]"), "snippet: {err}");
    assert_eq!(fs::read_to_string(tmp.path().join("a.yaml")).unwrap(), good);
    assert_eq!(fs::read_to_string(tmp.path().join("b.yaml")).unwrap(), bad);
}

#[test]
fn unknown_image_missing_file_and_bad_flags_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("values.yaml"), VALUES).unwrap();
    for args in [
        &["values.yaml", "--image", "ghcr.io/acme/other:1.0.0"][..],
        &["missing.yaml", "--image", "ghcr.io/acme/api:1.0.0"],
        &["values.yaml", "--image", "ghcr.io/acme/api"],
        &[
            "values.yaml",
            "--image",
            "ghcr.io/acme/api:1.0",
            "--marker",
            "nocolon",
        ],
        &["values.yaml", "--path", "image..tag", "--value", "1"],
        &["values.yaml"],
    ] {
        let out = set(tmp.path(), args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
    }
    assert_eq!(
        fs::read_to_string(tmp.path().join("values.yaml")).unwrap(),
        VALUES
    );
}

#[test]
fn kustomize_still_builds_the_edited_overlay_with_the_new_image() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let overlay = tmp.path().join("overlays/dev");
    fs::create_dir_all(&base).unwrap();
    fs::create_dir_all(&overlay).unwrap();
    fs::write(
        base.join("deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      - name: api\n        image: ghcr.io/acme/api:0.1.0\n      - name: web\n        image: nginx:1.25\n",
    )
    .unwrap();
    fs::write(
        base.join("kustomization.yaml"),
        "resources:\n- deployment.yaml\n",
    )
    .unwrap();
    let kustomization = "# dev overlay\nresources:\n  - ../../base\nimages:\n  - name: ghcr.io/acme/api\n    newTag: 1.0.0 # bumped by CI\n  - name: nginx\n    newName: mirror.acme.io/nginx\n";
    fs::write(overlay.join("kustomization.yaml"), kustomization).unwrap();

    for image in ["ghcr.io/acme/api:1.4.2", "mirror.acme.io/nginx:1.27.1"] {
        let out = set(&overlay, &["kustomization.yaml", "--image", image]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let edited = fs::read_to_string(overlay.join("kustomization.yaml")).unwrap();
    assert_eq!(
        edited,
        kustomization.replace("1.0.0 #", "1.4.2 #") + "    newTag: 1.27.1\n"
    );
    let rendered = Command::new("kubectl")
        .args(["kustomize"])
        .arg(&overlay)
        .output()
        .expect("run kubectl kustomize");
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    let rendered = String::from_utf8(rendered.stdout).unwrap();
    assert!(
        rendered.contains("image: ghcr.io/acme/api:1.4.2"),
        "{rendered}"
    );
    assert!(
        rendered.contains("image: mirror.acme.io/nginx:1.27.1"),
        "{rendered}"
    );
}

#[test]
fn new_name_renames_kustomize_entries_and_manifests_and_bad_names_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let kustomization = "images:\n  - name: nginx # web\n    newTag: 1.25.0\n";
    let deployment =
        "spec:\n  template:\n    spec:\n      containers:\n        - image: nginx:1.25.0\n";
    fs::write(tmp.path().join("kustomization.yaml"), kustomization).unwrap();
    fs::write(tmp.path().join("deployment.yaml"), deployment).unwrap();
    let args = [
        "kustomization.yaml",
        "deployment.yaml",
        "--image",
        "nginx:1.27.1",
        "--new-name",
        "mirror.acme.io/nginx",
    ];
    for bad in ["mirror.acme.io/nginx:1.0", "Not A Name"] {
        let out = set(tmp.path(), &[&args[..4], &["--new-name", bad]].concat());
        assert_eq!(code(&out), 2, "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--new-name"), "{}", stderr(&out));
    }
    assert_eq!(
        fs::read_to_string(tmp.path().join("kustomization.yaml")).unwrap(),
        kustomization
    );
    let out = set(tmp.path(), &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(tmp.path().join("kustomization.yaml")).unwrap(),
        "images:\n  - name: nginx # web\n    newTag: 1.27.1\n    newName: mirror.acme.io/nginx\n"
    );
    assert_eq!(
        fs::read_to_string(tmp.path().join("deployment.yaml")).unwrap(),
        deployment.replace("nginx:1.25.0", "mirror.acme.io/nginx:1.27.1")
    );
    // A rerun finds both files up to date (the renamed image still matches).
    let out = set(tmp.path(), &[&args[..], &["--check"]].concat());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// Issue 12 item 14: an error on a 200 KB line quotes at most ~120 characters around the column
/// (it echoed the whole line), and the caret still points at the column.
#[test]
fn an_error_on_a_long_line_quotes_a_window_around_the_column() {
    let tmp = tempfile::tempdir().unwrap();
    let filler: String = (0..20_000).map(|i| format!("k{i}: v, ")).collect();
    let line = format!("x: {{{filler}tag: [1]}}\n");
    assert!(line.len() > 200_000);
    fs::write(tmp.path().join("values.yaml"), &line).unwrap();
    let out = set(
        tmp.path(),
        &["values.yaml", "--path", "x.tag", "--value", "1.0.0"],
    );
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains("expected a scalar"), "{err}");
    assert!(err.len() < 600, "{} bytes: {err}", err.len());
    let lines: Vec<&str> = err.lines().collect();
    let quoted = lines
        .iter()
        .find(|l| l.contains("tag: [1]"))
        .expect("quoted line");
    let caret = lines
        .iter()
        .find(|l| l.trim_end().ends_with('^'))
        .expect("caret");
    let body = quoted.split_once(" | ").unwrap().1;
    assert!(body.chars().count() <= 124, "{body}");
    let at = caret.split_once(" | ").unwrap().1.chars().count() - 1;
    assert_eq!(body.chars().nth(at), Some('['), "{quoted}\n{caret}");
}

/// Issue 20 "Also": filling an existing empty value said `(added)`, as if a key had been
/// inserted; overwriting a value that looks like a template (`{{ .Chart.AppVersion }}`) said
/// nothing.
#[test]
fn a_filled_empty_value_is_not_added_and_a_templated_value_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    fs::write(
        &file,
        "image:\n  tag: \"\"\n  digest: \"{{ .Values.pin }}\"\n",
    )
    .unwrap();
    let out = set(
        dir.path(),
        &["values.yaml", "--path", "image.tag", "--value", "1.2.3"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("values.yaml:2: \"\" -> 1.2.3"), "{stdout}");
    assert!(!stdout.contains("(added)"), "{stdout}");
    let digest = format!("sha256:{}", "a".repeat(64));
    let out = set(
        dir.path(),
        &["values.yaml", "--path", "image.digest", "--value", &digest],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("looks like a template") && stderr(&out).contains("values.yaml:3"),
        "{}",
        stderr(&out)
    );
}

/// Regression: with several files, one that could not be written (its directory read-only, a
/// full disk) failed the run after the files before it were written: exit 2 and a half-applied
/// change, against "all are checked before any is written". Now every new content is staged
/// beside its file first, and the files are replaced only when all are staged.
#[test]
fn a_file_that_cannot_be_written_stops_the_run_before_any_file_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let values = "api:\n  image:\n    tag: 1.0.0\n";
    for dir in ["a", "b"] {
        fs::create_dir(tmp.path().join(dir)).unwrap();
        fs::write(tmp.path().join(dir).join("values.yaml"), values).unwrap();
    }
    let unwritable = crate::repack::Unwritable::new(&tmp.path().join("b"));
    let out = set(
        tmp.path(),
        &[
            "a/values.yaml",
            "b/values.yaml",
            "--path",
            "api.image.tag",
            "--value",
            "1.1.0",
        ],
    );
    drop(unwritable);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("b/values.yaml") && err.contains("nothing was written"),
        "{err}"
    );
    for dir in ["a", "b"] {
        let dir = tmp.path().join(dir);
        assert_eq!(fs::read_to_string(dir.join("values.yaml")).unwrap(), values);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["values.yaml"], "a staged file was left behind");
    }
}
