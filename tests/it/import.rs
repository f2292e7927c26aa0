//! `imagebump import flux` against the real binary, on inputs written after the Flux docs'
//! own examples (the podinfo image automation guide): the files it writes pass `validate`,
//! the report names every object and field, and bad input writes nothing.

use std::path::Path;

use crate::support::imagebump::{Imagebump, text};

/// The image automation guide's objects, as `flux export` prints them (multi-document).
const PODINFO: &str = r#"---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  secretRef:
    name: flux-system
  url: ssh://git@github.com/acme/fleet-infra
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  image: ghcr.io/stefanprodan/podinfo
  interval: 5m0s
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata:
  name: podinfo
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: podinfo
  policy:
    semver:
      range: 5.0.x
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 30m0s
  sourceRef:
    kind: GitRepository
    name: flux-system
  git:
    checkout:
      ref:
        branch: main
    commit:
      author:
        email: fluxcdbot@users.noreply.github.com
        name: fluxcdbot
      messageTemplate: 'chore: image update by {{ .AutomationObject }}'
    push:
      branch: main
  update:
    path: ./clusters/my-cluster
    strategy: Setters
"#;

/// The guide's podinfo Deployment with its marker, plus files the scan must skip or ignore.
fn fleet_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |relative: &str, text: &str| {
        let path = dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "clusters/my-cluster/podinfo-deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n      - name: podinfod\n        image: ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n",
    );
    write(
        "clusters/my-cluster/apps/values.yml",
        "image:\n  repository: ghcr.io/stefanprodan/podinfo # {\"$imagepolicy\": \"flux-system:podinfo:name\"}\n  tag: 5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n",
    );
    write(
        "clusters/my-cluster/README.md",
        "# {\"$imagepolicy\": \"flux-system:podinfo\"} in a non-YAML file is not a target\n",
    );
    write(
        "clusters/other/deploy.yaml",
        "image: ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n",
    );
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn the_podinfo_guide_imports_to_files_that_validate() {
    let fleet = fleet_checkout();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let run = Imagebump::new(["import", "flux", "-", "--repo-dir"])
        .arg(fleet.path())
        .arg("-o")
        .arg(&target)
        .stdin(PODINFO)
        .output();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(
            "ImagePolicy flux-system/podinfo spec.policy.semver.range: `policy: {semver: \"5.0.x\", strict: true}`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("ImageUpdateAutomation flux-system/flux-system spec.sourceRef: `repo: ssh://git@github.com/acme/fleet-infra`"),
        "{stderr}"
    );
    assert!(!stderr.contains("approximated"), "{stderr}");

    let app = read(&target.join("apps/flux-system.yaml"));
    assert_eq!(
        app,
        "# Imported by `imagebump import flux` from ImageUpdateAutomation flux-system/flux-system.
name: \"flux-system\"
repo: \"ssh://git@github.com/acme/fleet-infra\"
branch: \"main\"
interval: \"30m0s\"
commit_message: \"chore: image update by {{ app }}\"
images:
  - name: \"podinfo\"
    image: \"ghcr.io/stefanprodan/podinfo\"
    policy: {semver: \"5.0.x\", strict: true}
    targets:
      - {file: \"clusters/my-cluster/\", marker: \"flux-system:podinfo\"}
"
    );
    let global = read(&target.join("imagebump.yaml"));
    assert!(
        global.contains(
            "author: {name: \"fluxcdbot\", email: \"fluxcdbot@users.noreply.github.com\"}"
        ),
        "{global}"
    );
    assert!(
        global.contains("ssh_key_file: \"/var/run/secrets/imagebump/flux-system/identity\""),
        "{global}"
    );
    let validate = Imagebump::new(["validate"])
        .config(target.join("imagebump.yaml"))
        .output();
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));
    assert!(
        String::from_utf8_lossy(&validate.stdout).contains("ok (1 apps, 1 images)"),
        "{}",
        text(&validate)
    );
    // Only the output directory was created: no temp directory is left beside it.
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["imported"]);
}

/// `kubectl get … -o yaml` output: a `kind: List`, here with the other policy kinds, a tag
/// filter with extract, digest reflection, a label selector and a Go message template.
const KUBECTL_LIST: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: source.toolkit.fluxcd.io/v1
  kind: GitRepository
  metadata: {name: apps, namespace: apps}
  spec:
    url: https://github.com/acme/apps
    ref: {branch: main}
- apiVersion: image.toolkit.fluxcd.io/v1
  kind: ImageRepository
  metadata: {name: web, namespace: apps}
  spec:
    image: registry.acme.test:5000/acme/web
    interval: 1m
    insecure: true
    secretRef: {name: regcred}
    exclusionList: ['^.*\.sig$', '^dev-']
- apiVersion: image.toolkit.fluxcd.io/v1
  kind: ImagePolicy
  metadata:
    name: web
    namespace: apps
    labels: {team: web}
  spec:
    imageRepositoryRef: {name: web}
    filterTags:
      pattern: '^main-[a-fA-F0-9]+-(?P<ts>.*)'
      extract: '$ts'
    policy:
      numerical: {order: asc}
    digestReflectionPolicy: IfNotPresent
- apiVersion: image.toolkit.fluxcd.io/v1
  kind: ImagePolicy
  metadata: {name: docs, namespace: apps}
  spec:
    imageRepositoryRef: {name: web}
    policy:
      alphabetical: {order: desc}
- apiVersion: image.toolkit.fluxcd.io/v1
  kind: ImageUpdateAutomation
  metadata: {name: web-staging, namespace: apps}
  spec:
    interval: 5m
    sourceRef: {kind: GitRepository, name: apps}
    policySelector:
      matchLabels: {team: web}
    git:
      checkout: {ref: {branch: main}}
      push: {branch: image-updates}
      commit:
        author: {name: fluxbot, email: fluxbot@acme.test}
        messageTemplate: |
          Automated image update

          {{ range .Changed.Changes -}}
          - {{ .OldValue }} -> {{ .NewValue }}
          {{ end -}}
    update: {path: ./staging, strategy: Setters}
"#;

fn apps_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("staging")).unwrap();
    std::fs::write(
        dir.path().join("staging/web.yaml"),
        "image: registry.acme.test:5000/acme/web:main-abc-1 # {\"$imagepolicy\": \"apps:web\"}\ndocs: registry.acme.test:5000/acme/web:a # {\"$imagepolicy\": \"apps:docs\"}\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_kubectl_list_imports_with_its_approximations_reported() {
    let checkout = apps_checkout();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let run = Imagebump::new(["import", "flux", "--pull-request", "--repo-dir"])
        .arg(checkout.path())
        .arg("-o")
        .arg(&target)
        .stdin(KUBECTL_LIST)
        .output();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    for expected in [
        "approximated (2):",
        "ImagePolicy apps/web spec.digestReflectionPolicy: `pin_digest: true`; unlike IfNotPresent",
        "ImageUpdateAutomation apps/web-staging spec.git.commit.messageTemplate: uses Go template fields",
        "no equivalent (2):",
        "ImagePolicy apps/docs spec.policy.alphabetical: `policy: {alphabetical: desc}`: not written, no app uses the policy",
        "ImagePolicy apps/docs metadata.name: no ImageUpdateAutomation in the input writes this policy's markers",
        "ImageRepository apps/web spec.secretRef: `docker_config: /var/run/secrets/imagebump/regcred/.dockerconfigjson`",
        "ImageUpdateAutomation apps/web-staging spec.git.push.branch: `write: pull-request` from `image-updates` into `main`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    let app = read(&target.join("apps/web-staging.yaml"));
    assert_eq!(
        app,
        "# Imported by `imagebump import flux` from ImageUpdateAutomation apps/web-staging.
name: \"web-staging\"
repo: \"https://github.com/acme/apps\"
branch: \"main\"
interval: \"5m\"
write: pull-request
pull_request:
  forge: \"github\"
  token_env: \"GITHUB_TOKEN\"
  branch: \"image-updates\"
images:
  - name: \"web\"
    image: \"registry.acme.test:5000/acme/web\"
    policy: {numerical: asc}
    tags:
      include: \"^main-[a-fA-F0-9]+-(?P<ts>.*)\"
      exclude: [\"^.*\\\\.sig$\", \"^dev-\"]
      extract: \"$ts\"
    pin_digest: true
    targets:
      - {file: \"staging/\", marker: \"apps:web\"}
"
    );
    let global = read(&target.join("imagebump.yaml"));
    assert!(
        global.contains("  - prefix: \"registry.acme.test:5000/acme/web\"\n    insecure: true\n    docker_config: \"/var/run/secrets/imagebump/regcred/.dockerconfigjson\"\n"),
        "{global}"
    );
    let validate = Imagebump::new(["validate"])
        .config(target.join("imagebump.yaml"))
        .output();
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));

    // --check: the same input would approximate, so exit 1 and write nothing.
    let check_target = out.path().join("checked");
    let check = Imagebump::new(["import", "flux", "--check", "--repo-dir"])
        .arg(checkout.path())
        .arg("-o")
        .arg(&check_target)
        .stdin(KUBECTL_LIST)
        .output();
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(!check_target.exists());
    // The podinfo guide translates fully: --check exits 0.
    let fleet = fleet_checkout();
    let check = Imagebump::new(["import", "flux", "--check", "--repo-dir"])
        .arg(fleet.path())
        .stdin(PODINFO)
        .output();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
}

#[test]
fn files_and_directories_are_inputs_too() {
    let fleet = fleet_checkout();
    let inputs = tempfile::tempdir().unwrap();
    let (first, rest) = PODINFO.split_at(
        PODINFO
            .find("---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy")
            .unwrap(),
    );
    std::fs::create_dir_all(inputs.path().join("flux/nested")).unwrap();
    std::fs::write(inputs.path().join("flux/a.yaml"), first).unwrap();
    std::fs::write(inputs.path().join("flux/nested/b.yml"), rest).unwrap();
    std::fs::write(inputs.path().join("flux/notes.txt"), "not: [yaml").unwrap();
    let target = inputs.path().join("out");
    let run = Imagebump::new(["import", "flux"])
        .arg(inputs.path().join("flux"))
        .arg("--repo-dir")
        .arg(fleet.path())
        .arg("-o")
        .arg(&target)
        .output();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(target.join("apps/flux-system.yaml").is_file());
}

#[test]
fn bad_input_names_the_line_and_field_and_writes_nothing() {
    let fleet = fleet_checkout();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let cases = [
        ("a: [\n", "<stdin>:2:1: not YAML"),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
            "<stdin>:2:7: Deployment default/web: `kind`: `Deployment` is not a Flux image automation object",
        ),
        (
            "apiVersion: image.toolkit.fluxcd.io/v1alpha1\nkind: ImagePolicy\nmetadata: {name: p}\n",
            "<stdin>:1:13: ImagePolicy default/p: `apiVersion`: `image.toolkit.fluxcd.io/v1alpha1` is not supported: expected image.toolkit.fluxcd.io/v1beta1",
        ),
        (
            &PODINFO.replace("      range: 5.0.x\n", "      rnage: 5.0.x\n"),
            // Missing: the line of the nearest key present, `semver:`.
            "<stdin>:33: ImagePolicy flux-system/podinfo: `spec.policy.semver.range`: is required but missing",
        ),
        (
            &PODINFO.replace(
                "    name: podinfo\n  policy:",
                "    name: podinfoo\n  policy:",
            ),
            "<stdin>:31:11: ImagePolicy flux-system/podinfo: `spec.imageRepositoryRef.name`: ImageRepository flux-system/podinfoo is not in the input",
        ),
        (
            &PODINFO[PODINFO.find("---\napiVersion: image.toolkit").unwrap()..],
            "<stdin>:32:11: ImageUpdateAutomation flux-system/flux-system: `spec.sourceRef.name`: GitRepository flux-system/flux-system is not in the input",
        ),
    ];
    for (input, expected) in cases {
        let run = Imagebump::new(["import", "flux", "--repo-dir"])
            .arg(fleet.path())
            .arg("-o")
            .arg(&target)
            .stdin(input)
            .output();
        assert_eq!(run.status.code(), Some(2), "{}", text(&run));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
        assert!(stderr.contains("nothing was written"), "{stderr}");
        assert!(!target.exists(), "{input}");
    }
    // Without a checkout the automation's path is a directory target all the same.
    let unchecked = out.path().join("unchecked");
    let run = Imagebump::new(["import", "flux", "-o"])
        .arg(&unchecked)
        .stdin(PODINFO)
        .output();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        read(&unchecked.join("apps/flux-system.yaml")).contains(
            "    targets:\n      - {file: \"clusters/my-cluster/\", marker: \"flux-system:podinfo\"}\n"
        ),
        "{}",
        text(&run)
    );
    // An output directory that holds files is refused, its files untouched.
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep.yaml"), "mine").unwrap();
    let run = Imagebump::new(["import", "flux", "--repo-dir"])
        .arg(fleet.path())
        .arg("-o")
        .arg(&target)
        .stdin(PODINFO)
        .output();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("exists and is not empty"));
    assert_eq!(read(&target.join("keep.yaml")), "mine");
}

/// The podinfo guide imported without a checkout, then planned by `once --dry-run` against a
/// real registry and the fleet repo on a real git remote: the `update.path` directory target
/// finds the markers Flux's setters would rewrite (the Deployment's whole reference and the
/// values file's `:tag`), and nothing outside the path or in a non-YAML file.
#[tokio::test(flavor = "multi_thread")]
async fn an_imported_automation_plans_the_updates_flux_would_make() {
    use crate::support::git::BareRepo;
    use crate::support::registry::{ImageSpec, TestRegistry};

    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    for (i, tag) in ["5.0.0", "5.0.3", "5.1.0"].iter().enumerate() {
        let spec = ImageSpec::new(&format!("2026-01-0{}T00:00:00Z", i + 1));
        pusher.push_image("stefanprodan/podinfo", tag, &spec).await;
    }
    let fleet = fleet_checkout();
    let mut files = Vec::new();
    for relative in [
        "clusters/my-cluster/podinfo-deployment.yaml",
        "clusters/my-cluster/apps/values.yml",
        "clusters/my-cluster/README.md",
        "clusters/other/deploy.yaml",
    ] {
        let text = read(&fleet.path().join(relative)).replace(
            "ghcr.io/stefanprodan/podinfo",
            &format!("{host}/stefanprodan/podinfo"),
        );
        files.push((relative, text));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let repo = BareRepo::with_files("main", &refs);
    let input = PODINFO
        .replace("  secretRef:\n    name: flux-system\n", "")
        .replace("ssh://git@github.com/acme/fleet-infra", &repo.file_url())
        .replace(
            "  image: ghcr.io/stefanprodan/podinfo\n",
            &format!("  image: {host}/stefanprodan/podinfo\n  insecure: true\n"),
        );
    // The README's "Migrating from Flux" commands, in a working directory holding flux.yaml.
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("flux.yaml"), input).unwrap();
    let run = Imagebump::new(["import", "flux", "flux.yaml", "-o", "imported/"])
        .current_dir(out.path())
        .output();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    // The README's example report line.
    assert!(
        String::from_utf8_lossy(&run.stderr).contains(
            "\n  flux.yaml:33: ImagePolicy flux-system/podinfo spec.policy.semver.range: "
        ),
        "{}",
        text(&run)
    );
    let validate = Imagebump::new(["validate", "-c", "imported/imagebump.yaml"])
        .current_dir(out.path())
        .output();
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));
    let dry_run = Imagebump::new(["once", "-c", "imported/imagebump.yaml", "--dry-run"])
        .current_dir(out.path())
        .output();
    assert_eq!(dry_run.status.code(), Some(0), "{}", text(&dry_run));
    let shown = String::from_utf8_lossy(&dry_run.stdout);
    let image = format!("{host}/stefanprodan/podinfo");
    for line in [
        format!("+        image: {image}:5.0.3 # {{\"$imagepolicy\": \"flux-system:podinfo\"}}\n"),
        "+  tag: 5.0.3 # {\"$imagepolicy\": \"flux-system:podinfo:tag\"}\n".to_string(),
    ] {
        assert!(shown.contains(&line), "{line}{shown}");
    }

    let plan = Imagebump::new(["once", "--dry-run", "--output", "json"])
        .config(out.path().join("imported/imagebump.yaml"))
        .output();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let planned: Vec<(String, String, String)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap().to_string();
            (field("file"), field("from"), field("to"))
        })
        .collect();
    assert_eq!(
        planned,
        [
            (
                "clusters/my-cluster/apps/values.yml".to_string(),
                "5.0.0".to_string(),
                "5.0.3".to_string()
            ),
            (
                "clusters/my-cluster/podinfo-deployment.yaml".to_string(),
                format!("{image}:5.0.0"),
                format!("{image}:5.0.3")
            ),
        ],
        "{plan:#}"
    );

    // --repo-dir: a policy with no marker under the path in that checkout is left out, as
    // Flux would change nothing for it.
    let unmarked = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(unmarked.path().join("clusters/my-cluster")).unwrap();
    std::fs::write(
        unmarked.path().join("clusters/my-cluster/deploy.yaml"),
        format!("image: {image}:5.0.0\n"),
    )
    .unwrap();
    let run = Imagebump::new(["import", "flux", "flux.yaml", "--check", "--repo-dir"])
        .arg(unmarked.path())
        .current_dir(out.path())
        .output();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("no app to write"), "{stderr}");
    assert!(
        stderr.contains(
            "no `$imagepolicy: flux-system:podinfo` marker under `./clusters/my-cluster`"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("no app written"), "{stderr}");
}

/// The report lines under one heading (`translated`, `approximated`, `no equivalent`).
fn section<'a>(report: &'a str, heading: &str) -> Vec<&'a str> {
    report
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{heading} (")))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect()
}

/// Regression: an automation that writes no app (its selector picks no policy, or no policy
/// has a marker under its path) was reported as translated (`spec.update.path`, its source,
/// branch, interval, ...), and so were the policies no app uses: every such line now says it
/// was not written.
#[test]
fn an_automation_that_writes_no_app_is_not_reported_as_translated() {
    let fleet = fleet_checkout();
    let out = tempfile::tempdir().unwrap();
    let other = PODINFO[PODINFO.rfind("---\napiVersion: image.toolkit").unwrap()..]
        .replace("name: flux-system\n  namespace", "name: other\n  namespace")
        .replace(
            "  update:\n",
            "  policySelector:\n    matchLabels:\n      team: nobody\n  update:\n",
        );
    let orphan = "---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: orphan\n  namespace: elsewhere\nspec:\n  imageRepositoryRef:\n    name: podinfo\n    namespace: flux-system\n  policy:\n    semver:\n      range: 6.x\n";
    let run = Imagebump::new(["import", "flux", "-", "--repo-dir"])
        .arg(fleet.path())
        .arg("-o")
        .arg(out.path().join("imported"))
        .stdin(format!("{PODINFO}{other}{orphan}"))
        .output();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    let translated = section(&stderr, "translated");
    assert!(
        translated
            .iter()
            .any(|l| l.contains("ImageUpdateAutomation flux-system/flux-system spec.update.path")),
        "{stderr}"
    );
    for gone in [
        "ImageUpdateAutomation flux-system/other",
        "ImagePolicy elsewhere/orphan",
    ] {
        assert!(
            !translated.iter().any(|l| l.contains(gone)),
            "{gone} is not written but reported as translated:\n{stderr}"
        );
    }
    let dropped = section(&stderr, "no equivalent");
    for line in [
        "<stdin>:86: ImageUpdateAutomation flux-system/other spec.update.path: no policy selected (policySelector matches none in flux-system): no app written",
        "<stdin>:68: ImageUpdateAutomation flux-system/other spec.sourceRef: `repo: ssh://git@github.com/acme/fleet-infra`: not written, the automation has no app",
        "<stdin>:100: ImagePolicy elsewhere/orphan spec.policy.semver.range: `policy: {semver: \"6.x\", strict: true}` (Flux parses tags as strictly): not written, no app uses the policy",
    ] {
        assert!(
            dropped.contains(&format!("  {line}").as_str()),
            "missing {line:?} in:\n{stderr}"
        );
    }
    assert!(!out.path().join("imported/apps/other.yaml").exists());

    // Every selected policy left out for want of a marker: the same.
    let unmarked = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(unmarked.path().join("clusters/my-cluster")).unwrap();
    let run = Imagebump::new(["import", "flux", "-", "--check", "--repo-dir"])
        .arg(unmarked.path())
        .stdin(PODINFO)
        .output();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(section(&stderr, "translated").is_empty(), "{stderr}");
    assert!(
        section(&stderr, "no equivalent").contains(&"  <stdin>:58: ImageUpdateAutomation flux-system/flux-system spec.update.path: no marker of a selected policy under `./clusters/my-cluster`: no app written"),
        "{stderr}"
    );
}

/// `policySelector.matchExpressions` (Flux's docs: the same selectors as
/// `Deployment.spec.selector`) picks the policies as Kubernetes would, on `kubectl get -o yaml`
/// output; a malformed expression is bad input naming its field.
#[test]
fn policy_selector_expressions_pick_the_policies_flux_would() {
    let checkout = apps_checkout();
    let out = tempfile::tempdir().unwrap();
    let selecting = |expressions: &str| {
        KUBECTL_LIST.replace(
            "      matchLabels: {team: web}\n",
            &format!("      matchExpressions: {expressions}\n"),
        )
    };
    for (index, (expressions, images, selector)) in [
        (
            "[{key: team, operator: In, values: [web, ops]}]",
            vec!["web"],
            "team in (web, ops)",
        ),
        (
            "[{key: team, operator: DoesNotExist}]",
            vec!["docs"],
            "!team",
        ),
        (
            "[{key: team, operator: NotIn, values: [ops]}]",
            vec!["docs", "web"],
            "team notin (ops)",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let target = out.path().join(index.to_string());
        let run = Imagebump::new(["import", "flux", "--repo-dir"])
            .arg(checkout.path())
            .arg("-o")
            .arg(&target)
            .stdin(selecting(expressions))
            .output();
        assert_eq!(run.status.code(), Some(0), "{expressions}: {}", text(&run));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            section(&stderr, "translated").iter().any(|l| l.ends_with(&format!(
                "ImageUpdateAutomation apps/web-staging spec.policySelector: only the policies it selects ({selector}) become images"
            ))),
            "{stderr}"
        );
        let app = read(&target.join("apps/web-staging.yaml"));
        let named: Vec<&str> = app
            .lines()
            .filter_map(|l| l.strip_prefix("  - name: \""))
            .map(|l| l.trim_end_matches('"'))
            .collect();
        assert_eq!(named, images, "{expressions}:\n{app}");
    }
    let target = out.path().join("bad");
    let run = Imagebump::new(["import", "flux", "-o"])
        .arg(&target)
        .stdin(selecting("[{key: team, operator: Exists, values: [web]}]"))
        .output();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr
            .contains("`spec.policySelector.matchExpressions[0].values`: `Exists` takes no values"),
        "{stderr}"
    );
    assert!(!target.exists());
}

/// `imagebump import flux flux.yaml -o imported/` over PODINFO with `from` replaced by `to`:
/// asserts it fails with exit 2 and writes nothing; returns its stderr.
fn import_podinfo_fails(from: &str, to: &str) -> String {
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("flux.yaml"), PODINFO.replace(from, to)).unwrap();
    let run = Imagebump::new(["import", "flux", "flux.yaml", "-o", "imported/"])
        .current_dir(out.path())
        .output();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(!out.path().join("imported").exists());
    String::from_utf8_lossy(&run.stderr).into_owned()
}

/// Errors and report lines name `file:line`: a bad field in the third document of a
/// multi-document file is named with its own line (counted from the top of the file, not of
/// its document), and so is one in an item of a `kind: List`.
#[test]
fn errors_and_report_lines_name_the_file_and_line() {
    // PODINFO's third document is the ImagePolicy; the new line is line 35 of the file.
    let stderr = import_podinfo_fails(
        "      range: 5.0.x\n",
        "      range: 5.0.x\n  digestReflectionPolicy: Sometimes\n",
    );
    assert_eq!(
        stderr,
        "imagebump import flux: flux.yaml:35:27: ImagePolicy flux-system/podinfo: `spec.digestReflectionPolicy`: expected Never, IfNotPresent or Always, found `Sometimes`\nnothing was written\n"
    );
    let out = tempfile::tempdir().unwrap();

    // The third item of a List: its field's line in the whole text.
    let run = Imagebump::new(["import", "flux", "-o", "imported/"])
        .current_dir(out.path())
        .stdin(KUBECTL_LIST.replace(
            "digestReflectionPolicy: IfNotPresent",
            "digestReflectionPolicy: Sometimes",
        ))
        .output();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr).starts_with(
            "imagebump import flux: <stdin>:32:29: ImagePolicy apps/web: `spec.digestReflectionPolicy`: expected"
        ),
        "{}",
        text(&run)
    );

    // The report: each line with the line of its field (or of the object, for a field it
    // has not got).
    let run = Imagebump::new(["import", "flux", "--check"])
        .stdin(KUBECTL_LIST)
        .output();
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        section(&stderr, "approximated"),
        [
            "  <stdin>:32: ImagePolicy apps/web spec.digestReflectionPolicy: `pin_digest: true`; unlike IfNotPresent, a re-pushed tag's new digest is written too (as Always)",
            "  <stdin>:50: ImageUpdateAutomation apps/web-staging spec.git.push.branch: commits go to `image-updates`, which must exist (Flux branches it from `main`); pass --pull-request to open pull requests from it instead",
            "  <stdin>:53: ImageUpdateAutomation apps/web-staging spec.git.commit.messageTemplate: uses Go template fields with no one-to-one match: the default message (one line per change) is used; write `commit_message` with `changes`/`images` (docs/pull-requests.md)",
        ],
        "{stderr}"
    );
    assert!(
        section(&stderr, "no equivalent").contains(
            &"  <stdin>:35: ImagePolicy apps/docs metadata.name: no ImageUpdateAutomation in the input writes this policy's markers: not imported"
        ),
        "{stderr}"
    );
}

/// Regression: an error about a field's value named only its line; it names the value's line
/// and column, as `validate` does (here a value in a flow mapping, far from the line's start).
/// A bad semver range was not even named in the input: it reached the written file and failed
/// there as "a bug in `imagebump import`". The first error is the README's example.
#[test]
fn a_bad_value_is_named_by_its_line_and_column() {
    // The ImagePolicy's `semver:` is line 33 of PODINFO; the range's value (its quote) is at column 21.
    let stderr = import_podinfo_fails(
        "    semver:\n      range: 5.0.x\n",
        "    semver: {range: \">=5.0 <<6\"}\n",
    );
    assert_eq!(
        stderr,
        "imagebump import flux: flux.yaml:33:21: ImagePolicy flux-system/podinfo: `spec.policy.semver.range`: `>=5.0 <<6` is not a semver constraint: invalid semver range \">=5.0 <<6\" at byte 7: expected a version, found '<'\nnothing was written\n"
    );

    // A value of the wrong type: a list where a string is expected, named where the list
    // starts (its `-` on line 22).
    let stderr = import_podinfo_fails(
        "  image: ghcr.io/stefanprodan/podinfo\n",
        "  image:\n    - ghcr.io/stefanprodan/podinfo\n",
    );
    assert_eq!(
        stderr,
        "imagebump import flux: flux.yaml:22:5: ImageRepository flux-system/podinfo: `spec.image`: expected a string\nnothing was written\n"
    );
}

/// An ImageRepository's cloud `provider` has no built-in login in imagebump, but a docker
/// `config.json` whose `credHelpers` names the provider's helper logs in the same way (workload
/// identity included): the report names that helper instead of a dead end.
#[test]
fn a_cloud_provider_is_reported_with_the_credential_helper_that_replaces_it() {
    let checkout = apps_checkout();
    let out = tempfile::tempdir().unwrap();
    for (provider, helper) in [
        ("aws", "`ecr-login` (docker-credential-ecr-login)"),
        ("gcp", "`gcr` (docker-credential-gcr)"),
        ("azure", "`acr-env` (docker-credential-acr-env)"),
    ] {
        let target = out.path().join(provider);
        let input = KUBECTL_LIST.replace(
            "    secretRef: {name: regcred}\n",
            &format!("    provider: {provider}\n"),
        );
        let run = Imagebump::new(["import", "flux", "--repo-dir"])
            .arg(checkout.path())
            .arg("-o")
            .arg(&target)
            .stdin(&input)
            .output();
        assert_eq!(run.status.code(), Some(0), "{}", text(&run));
        let expected = format!(
            "ImageRepository apps/web spec.provider: `{provider}`: no built-in cloud login; give the registry a `docker_config` whose `credHelpers` names {helper} for registry.acme.test:5000, with the helper in imagebump's container"
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}
