//! The Dockerfile, `.dockerignore` and the CI scripts, checked by reading (no Docker engine
//! here): the final stage's contract with the Helm chart (uid, entrypoint, config path, port), a
//! build context that holds what cargo needs and nothing heavy, and scripts that never end
//! processes by name.

use std::path::Path;

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The instructions of the last stage (from its `FROM` on), continuation lines joined.
fn final_stage(dockerfile: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let lines: Vec<String> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    lines[last_from..].to_vec()
}

#[test]
fn the_final_stage_is_distroless_nonroot_and_matches_the_chart() {
    let stage = final_stage(&read("Dockerfile"));
    let has = |line: &str| stage.iter().any(|l| l == line);
    assert!(
        has("FROM gcr.io/distroless/cc-debian12:nonroot"),
        "{stage:#?}"
    );
    assert!(has("USER 65532:65532"), "{stage:#?}");
    assert!(has("EXPOSE 8080"), "{stage:#?}");
    assert!(
        has(r#"ENTRYPOINT ["/usr/local/bin/imagebump"]"#),
        "{stage:#?}"
    );
    assert!(
        has(r#"CMD ["run", "--config", "/etc/imagebump/imagebump.yaml"]"#),
        "{stage:#?}"
    );
    assert!(has("ARG VERSION=dev"), "{stage:#?}");
    assert!(
        !stage.iter().any(|l| l.starts_with("RUN ")),
        "no shell in the final stage"
    );
    let labels = stage.iter().find(|l| l.starts_with("LABEL ")).unwrap();
    for key in [
        "title",
        "description",
        "version",
        "revision",
        "source",
        "licenses",
    ] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{key}=")),
            "label {key} missing"
        );
    }
    assert!(labels.contains(r#"org.opencontainers.image.version="${VERSION}""#));

    // The chart runs the same binary, config path, uid and port.
    let deployment = read("charts/imagebump/templates/deployment.yaml");
    assert!(deployment.contains("- /etc/imagebump/imagebump.yaml\n"));
    assert!(deployment.contains("mountPath: /etc/imagebump\n"));
    let values = read("charts/imagebump/values.yaml");
    assert!(values.contains("runAsUser: 65532\n"));
    assert!(values.contains("listen: 0.0.0.0:8080\n"));
    assert!(values.contains("port: 8080\n"));
}

#[test]
fn the_builder_is_locked_release_and_guards_shared_libraries() {
    let dockerfile = read("Dockerfile");
    let builds = dockerfile
        .matches("cargo build --release --locked --bin imagebump")
        .count();
    assert_eq!(builds, 2, "a dependency layer, then the crate");
    assert!(dockerfile.contains("COPY Cargo.toml Cargo.lock ./"));
    assert!(dockerfile.contains("LIBZ_SYS_STATIC=1"));
    assert!(dockerfile.contains("! ldd /out/imagebump | grep -v -E"));
    assert!(read("Cargo.toml").contains("[[bin]]\nname = \"imagebump\""));
}

#[test]
fn the_build_context_keeps_sources_and_drops_heavy_dirs() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for heavy in ["target/", ".git/", "fuzz/"] {
        assert!(patterns.contains(&heavy), "{heavy} not ignored");
    }
    for needed in ["src", "Cargo.toml", "Cargo.lock", "benches"] {
        assert!(
            !patterns
                .iter()
                .any(|p| p.trim_end_matches('/') == needed || *p == "*" || *p == "**"),
            "{needed} would be left out of the build context"
        );
    }
}

/// Issue 12: `.ci/run` ran `pkill -x docker-registry`, which killed every registry on the machine
/// (other suites', other people's). No script the project ships may end processes by name.
#[test]
fn no_script_kills_processes_by_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut scripts = vec![root.join(".ci/run")];
    for entry in std::fs::read_dir(root.join("scripts")).unwrap() {
        scripts.push(entry.unwrap().path());
    }
    for script in scripts {
        let text = std::fs::read_to_string(&script).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or("");
            let words: Vec<&str> = code
                .split(|c: char| c.is_whitespace() || ";|&()`$".contains(c))
                .collect();
            for killer in ["pkill", "killall", "pgrep"] {
                assert!(
                    !words.contains(&killer),
                    "{}:{}: {killer} ends processes by name: {line}",
                    script.display(),
                    n + 1
                );
            }
        }
    }
}
