//! `imagebump import argo` against the real binary, on inputs written after Argo CD Image
//! Updater's own documentation (the Helm and Kustomize annotation examples, the
//! annotations-to-ImageUpdater migration guide, the multi-source ApplicationSet example): the
//! files it writes pass `validate`, the report names every object and field, an imported
//! config plans the updates Argo would make against a real registry and repo, and bad input
//! writes nothing.

use std::path::Path;

use crate::support::git::BareRepo;
use crate::support::imagebump::{Imagebump, text};
use crate::support::registry::{ImageSpec, TestRegistry};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn import(input: &str, target: &Path) -> std::process::Output {
    Imagebump::new(["import", "argo", "-o"])
        .arg(target)
        .stdin(input)
        .output()
}

fn assert_has(stderr: &str, expected: &[&str]) {
    for line in expected {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
}

fn validate(global: &Path) {
    let run = Imagebump::new(["validate"]).config(global).output();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
}

/// The docs' Helm examples (dex's parameters; two images of one chart), their Kustomize
/// example (Argo CD's own image from another registry, written to the base kustomization) and
/// the "always deploy the latest build" example.
const DOCS_EXAMPLES: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: dex
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: dex=quay.io/dexidp/dex
    argocd-image-updater.argoproj.io/dex.helm.image-name: dex.image.name
    argocd-image-updater.argoproj.io/dex.helm.image-tag: dex.image.tag
    argocd-image-updater.argoproj.io/write-back-method: git:secret:argocd/git-creds
    argocd-image-updater.argoproj.io/write-back-target: helmvalues:/helm/config/test-values.yaml
spec:
  project: default
  source:
    repoURL: https://github.com/example/example.git
    path: helm/dex
    targetRevision: main
    helm:
      valueFiles: [values.yaml]
  destination: {server: https://kubernetes.default.svc, namespace: dex}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: foobar
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: fooalias=foo/bar, baralias=bar/foo
    argocd-image-updater.argoproj.io/fooalias.helm.image-name: foo.image
    argocd-image-updater.argoproj.io/fooalias.helm.image-tag: foo.tag
    argocd-image-updater.argoproj.io/baralias.helm.image-name: bar.image
    argocd-image-updater.argoproj.io/baralias.helm.image-tag: bar.tag
    argocd-image-updater.argoproj.io/write-back-method: git
    argocd-image-updater.argoproj.io/write-back-target: helmvalues
    argocd-image-updater.argoproj.io/git-branch: main:image-updates-{{ .AppName }}
spec:
  source:
    repoURL: https://github.com/example/example.git
    path: charts/foobar
    targetRevision: HEAD
status:
  sourceType: Helm
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: argocd
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: argocd=ghcr.io/argoproj/argocd
    argocd-image-updater.argoproj.io/argocd.kustomize.image-name: quay.io/argoproj/argocd
    argocd-image-updater.argoproj.io/write-back-method: git
    argocd-image-updater.argoproj.io/write-back-target: kustomization:../../base
spec:
  source:
    repoURL: git@github.com:example/example.git
    path: config/overlays/foo
    targetRevision: main
    kustomize: {}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: yourtool
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: yourtool=yourorg/yourimage
    argocd-image-updater.argoproj.io/yourtool.update-strategy: latest
    argocd-image-updater.argoproj.io/yourtool.allow-tags: regexp:^v1.0.0-[0-9a-zA-Z]+$
    argocd-image-updater.argoproj.io/yourtool.ignore-tags: latest, dev-*
    argocd-image-updater.argoproj.io/yourtool.platforms: linux/amd64,linux/arm64
    argocd-image-updater.argoproj.io/yourtool.force-update: "true"
    argocd-image-updater.argoproj.io/yourtool.pull-secret: pullsecret:argocd/dockerhub
spec:
  source:
    repoURL: https://github.com/example/example.git
    path: overlays/yourtool
    targetRevision: main
status:
  sourceType: Kustomize
"#;

#[test]
fn the_docs_helm_and_kustomize_examples_import_to_files_that_validate() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let run = import(DOCS_EXAMPLES, &target);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_has(
        &stderr,
        &[
            "Application argocd/dex argocd-image-updater.argoproj.io/write-back-target: image `dex`: targets in `helm/config/test-values.yaml`",
            "Application argocd/dex argocd-image-updater.argoproj.io/dex.helm.image-tag: image `dex`: `helm/config/test-values.yaml` at `dex.image.tag`",
            "Application argocd/dex argocd-image-updater.argoproj.io/image-list: image `dex`: `policy: {semver: \">=0.0.0-0\"}`: no constraint, so the highest version, pre-releases included, as Argo",
            "Application argocd/foobar argocd-image-updater.argoproj.io/git-branch: `write: pull-request` into `main` from the bot branch `image-updates-{{ app }}`",
            "Application argocd/argocd argocd-image-updater.argoproj.io/argocd.kustomize.image-name: image `argocd`: imagebump finds the `images:` entry whose name or newName is `ghcr.io/argoproj/argocd`",
            "Application argocd/argocd argocd-image-updater.argoproj.io/write-back-target: image `argocd`: the kustomization in `config/base`",
            "Application argocd/yourtool argocd-image-updater.argoproj.io/yourtool.update-strategy: image `yourtool`: `policy: {newest_build: {}}` (`latest` is newest-build's old name)",
            "Application argocd/yourtool argocd-image-updater.argoproj.io/yourtool.ignore-tags: image `yourtool`: `tags.exclude: [\"^latest$\", \"^dev\\\\-.*$\"]`",
            "Application argocd/yourtool argocd-image-updater.argoproj.io/yourtool.pull-secret: `docker_config: /var/run/secrets/imagebump/dockerhub/.dockerconfigjson` on registries[] `docker.io/yourorg/yourimage`",
            "Application argocd/yourtool argocd-image-updater.argoproj.io/write-back-method: not set, so `argocd`",
            // git write-back with Argo CD's own repository credentials: named, not hidden.
            "no equivalent (2):",
            "Application argocd/argocd argocd-image-updater.argoproj.io/write-back-method: Argo CD's repository credentials are not readable by imagebump: add `git.credentials` for git@github.com:example/example.git",
        ],
    );
    let dex = read(&target.join("apps/dex.yaml"));
    assert_eq!(
        dex,
        r#"# Imported by `imagebump import argo` from Application argocd/dex.
name: "dex"
repo: "https://github.com/example/example.git"
branch: "main"
images:
  - name: "dex"
    image: "quay.io/dexidp/dex"
    policy: {semver: ">=0.0.0-0"}
    targets:
      - {file: "helm/config/test-values.yaml", path: "dex.image.tag"}
      - {file: "helm/config/test-values.yaml", path: "dex.image.name", field: "repository"}
"#
    );
    let foobar = read(&target.join("apps/foobar.yaml"));
    assert_eq!(
        foobar,
        r#"# Imported by `imagebump import argo` from Application argocd/foobar.
name: "foobar"
repo: "https://github.com/example/example.git"
branch: "main"
write: pull-request
pull_request:
  forge: "github"
  token_env: "GITHUB_TOKEN"
  branch: "image-updates-{{ app }}"
images:
  - name: "fooalias"
    image: "foo/bar"
    policy: {semver: ">=0.0.0-0"}
    targets:
      - {file: "charts/foobar/values.yaml", path: "foo.tag"}
      - {file: "charts/foobar/values.yaml", path: "foo.image", field: "repository"}
  - name: "baralias"
    image: "bar/foo"
    policy: {semver: ">=0.0.0-0"}
    targets:
      - {file: "charts/foobar/values.yaml", path: "bar.tag"}
      - {file: "charts/foobar/values.yaml", path: "bar.image", field: "repository"}
"#
    );
    let yourtool = read(&target.join("apps/yourtool.yaml"));
    assert!(
        yourtool.contains(
            "    policy: {newest_build: {}}\n    tags:\n      include: \"^v1.0.0-[0-9a-zA-Z]+$\"\n      exclude: [\"^latest$\", \"^dev\\\\-.*$\"]\n    platform: [\"linux/amd64\", \"linux/arm64\"]\n    targets:\n      - {file: \"overlays/yourtool/kustomization.yaml\"}\n"
        ),
        "{yourtool}"
    );
    let global = read(&target.join("imagebump.yaml"));
    assert!(
        global.contains("  - prefix: \"docker.io/yourorg/yourimage\"\n    docker_config: \"/var/run/secrets/imagebump/dockerhub/.dockerconfigjson\"\n"),
        "{global}"
    );
    assert!(
        global.contains("password_file: \"/var/run/secrets/imagebump/git-creds/password\""),
        "{global}"
    );
    validate(&target.join("imagebump.yaml"));
}

#[test]
fn the_digest_strategy_follows_the_tag_it_names() {
    let out = tempfile::tempdir().unwrap();
    let run = import(
        &DOCS_EXAMPLES.replace(
            "argocd=ghcr.io/argoproj/argocd\n",
            "argocd=ghcr.io/argoproj/argocd:latest\n    argocd-image-updater.argoproj.io/argocd.update-strategy: digest\n",
        ),
        &out.path().join("imported"),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let argocd = read(&out.path().join("imported/apps/argocd.yaml"));
    assert!(
        argocd.contains("    image: \"ghcr.io/argoproj/argocd\"\n    policy: {digest: \"latest\"}\n    targets:\n      - {file: \"config/base/kustomization.yaml\"}\n"),
        "{argocd}"
    );
}

/// The migration guide's complete example: the annotations (before) and the ImageUpdater
/// (after), each with the two Applications (their sources added: the guide leaves them out).
const MIGRATION_BEFORE: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: production-app
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: nginx=nginx:1.20,redis=redis:6.2
    argocd-image-updater.argoproj.io/write-back-method: git
    argocd-image-updater.argoproj.io/git-repository: git@github.com:myorg/myrepo.git
    argocd-image-updater.argoproj.io/git-branch: main
    argocd-image-updater.argoproj.io/write-back-target: helmvalues:./values.yaml
    argocd-image-updater.argoproj.io/update-strategy: semver
    argocd-image-updater.argoproj.io/nginx.allow-tags: regexp:^[0-9]+\.[0-9]+$
    argocd-image-updater.argoproj.io/nginx.ignore-tags: latest,dev
    argocd-image-updater.argoproj.io/redis.update-strategy: latest
    argocd-image-updater.argoproj.io/redis.pull-secret: secret:my-namespace/redis-secret#username
spec:
  source: {repoURL: "https://charts.example.com", chart: production, targetRevision: 1.0.0}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: staging-app
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/write-back-method: git
    argocd-image-updater.argoproj.io/git-repository: git@github.com:myorg/myrepo.git
    argocd-image-updater.argoproj.io/git-branch: develop
    argocd-image-updater.argoproj.io/write-back-target: helmvalues:./values.yaml
    argocd-image-updater.argoproj.io/image-list: nginx=nginx:latest
    argocd-image-updater.argoproj.io/nginx.update-strategy: latest
spec:
  source: {repoURL: "https://charts.example.com", chart: staging, targetRevision: 1.0.0}
"#;

const MIGRATION_AFTER: &str = r#"apiVersion: argocd-image-updater.argoproj.io/v1alpha1
kind: ImageUpdater
metadata:
  name: multi-app-image-updater
  namespace: argocd
spec:
  namespace: argocd
  writeBackConfig:
    method: "git"
    gitConfig:
      repository: "git@github.com:myorg/myrepo.git"
      branch: "main"
      writeBackTarget: "helmvalues:./values.yaml"
  applicationRefs:
    - namePattern: "production-app"
      images:
        - alias: "nginx"
          imageName: "nginx:1.20"
          commonUpdateSettings:
            allowTags: "regexp:^[0-9]+\\.[0-9]+$"
            ignoreTags: ["latest", "dev"]
        - alias: "redis"
          imageName: "redis:6.2"
          commonUpdateSettings:
            updateStrategy: "newest-build"
            pullSecret: "secret:my-namespace/redis-secret#username"
    - namePattern: "staging-app"
      writeBackConfig:
        method: "git"
        gitConfig:
          branch: "develop"
      images:
        - alias: "nginx"
          imageName: "nginx"
          commonUpdateSettings:
            updateStrategy: "newest-build"
"#;

/// The Applications alone, without annotations, as the ImageUpdater selects them.
fn plain_applications() -> String {
    MIGRATION_BEFORE
        .lines()
        .filter(|l| !l.contains("argocd-image-updater.argoproj.io/") && *l != "  annotations:")
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_migration_guides_annotations_and_image_updater_import_to_the_same_apps() {
    let out = tempfile::tempdir().unwrap();
    let before = out.path().join("before");
    let run = import(MIGRATION_BEFORE, &before);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let before_report = String::from_utf8_lossy(&run.stderr).into_owned();
    let after = out.path().join("after");
    let run = import(
        &format!("{MIGRATION_AFTER}---\n{}", plain_applications()),
        &after,
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let after_report = String::from_utf8_lossy(&run.stderr).into_owned();
    for app in ["production-app", "staging-app"] {
        let file = format!("apps/{app}.yaml");
        let strip = |text: String| text.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(
            strip(read(&before.join(&file))),
            strip(read(&after.join(&file))),
            "{app}"
        );
    }
    assert_eq!(
        read(&before.join("apps/production-app.yaml")),
        r#"# Imported by `imagebump import argo` from Application argocd/production-app.
name: "production-app"
repo: "git@github.com:myorg/myrepo.git"
branch: "main"
images:
  - name: "nginx"
    image: "nginx"
    policy: {semver: "1.20"}
    tags:
      include: "^[0-9]+\\.[0-9]+$"
      exclude: ["^latest$", "^dev$"]
    targets:
      - {file: "values.yaml", path: "image.tag"}
  - name: "redis"
    image: "redis"
    policy: {newest_build: {}}
    targets:
      - {file: "values.yaml", path: "image.tag"}
"#
    );
    assert_has(
        &before_report,
        &[
            "Application argocd/production-app argocd-image-updater.argoproj.io/redis.pull-secret: `secret:my-namespace/redis-secret#username` holds `user:password` in one field",
            "Application argocd/staging-app argocd-image-updater.argoproj.io/image-list: image `nginx`: the constraint `latest` is ignored with this strategy, by Argo too",
        ],
    );
    assert_has(
        &after_report,
        &[
            "ImageUpdater argocd/multi-app-image-updater spec.applicationRefs[0].namePattern: selects production-app",
            "ImageUpdater argocd/multi-app-image-updater spec.applicationRefs[0].images[1].commonUpdateSettings.pullSecret: `secret:my-namespace/redis-secret#username` holds `user:password` in one field",
            "ImageUpdater argocd/multi-app-image-updater spec.applicationRefs[1].writeBackConfig.gitConfig.branch: Application staging-app: `branch: develop`",
        ],
    );
    validate(&before.join("imagebump.yaml"));
    validate(&after.join("imagebump.yaml"));
}

/// The docs' multi-source example (a Kustomize workload, a Helm chart for redis, a values
/// ref) as an ApplicationSet template over a list generator.
const APPLICATION_SET: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: myapp
  namespace: argocd
spec:
  goTemplate: true
  generators:
    - list:
        elements:
          - env: staging
            branch: main
          - env: production
            branch: release
  template:
    metadata:
      name: 'myapp-{{.env}}'
      annotations:
        argocd-image-updater.argoproj.io/image-list: myapp=ghcr.io/your-org/myapp:^1.0
        argocd-image-updater.argoproj.io/write-back-method: git
        argocd-image-updater.argoproj.io/write-back-target: kustomization
    spec:
      project: default
      sources:
        - repoURL: 'https://github.com/your-org/gitops.git'
          path: ./deployments/myapp/overlays/{{.env}}
          targetRevision: '{{.branch}}'
        - repoURL: 'registry-1.docker.io/bitnamicharts'
          chart: redis
          targetRevision: '20.11.*'
          helm:
            valueFiles:
              - $values/deployments/myapp/base/redis/values.yaml
        - repoURL: 'https://github.com/your-org/gitops.git'
          ref: values
          targetRevision: main
      destination: {server: https://kubernetes.default.svc, namespace: 'myapp-{{.env}}'}
"#;

#[test]
fn an_application_set_list_generator_becomes_one_app_per_element() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let run = import(APPLICATION_SET, &target);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_has(
        &stderr,
        &[
            "ApplicationSet argocd/myapp spec.generators[0].list: expanded to the Applications myapp-staging, myapp-production",
            "Application argocd/myapp-production spec.sources[0]: a multi-source Application: source 0 (`https://github.com/your-org/gitops.git`) is the one written to",
            "Application argocd/myapp-production spec.sources[0].targetRevision: `branch: release`",
        ],
    );
    let production = read(&target.join("apps/myapp-production.yaml"));
    assert_eq!(
        production,
        r#"# Imported by `imagebump import argo` from Application argocd/myapp-production.
name: "myapp-production"
repo: "https://github.com/your-org/gitops.git"
branch: "release"
images:
  - name: "myapp"
    image: "ghcr.io/your-org/myapp"
    policy: {semver: "^1.0"}
    targets:
      - {file: "deployments/myapp/overlays/production/kustomization.yaml"}
"#
    );
    assert!(target.join("apps/myapp-staging.yaml").is_file());
    validate(&target.join("imagebump.yaml"));

    // Every generator that needs the cluster, a forge or a plugin is reported by name, with
    // the line it is on and what to do, and the rest still imports.
    for (generator, needs) in [
        (
            "git: {repoURL: 'https://github.com/your-org/gitops.git', revision: HEAD, directories: [{path: 'apps/*'}]}",
            "it reads the repository's directories or files",
        ),
        ("clusters: {}", "it reads the cluster Secrets Argo CD holds"),
        (
            "matrix: {generators: []}",
            "it combines other generators' parameters",
        ),
        (
            "merge: {mergeKeys: [server], generators: []}",
            "it combines other generators' parameters",
        ),
        (
            "scmProvider: {github: {organization: acme}}",
            "it lists repositories on the forge",
        ),
        (
            "pullRequest: {github: {owner: acme, repo: web}}",
            "it lists open pull requests on the forge",
        ),
        (
            "clusterDecisionResource: {configMapRef: my-configmap}",
            "it reads a custom resource in the cluster",
        ),
        (
            "plugin: {configMapRef: {name: my-plugin}}",
            "it calls a plugin service",
        ),
    ] {
        let kind = &generator[..generator.find(':').unwrap()];
        let input = APPLICATION_SET.replace(
            "  generators:\n",
            &format!("  generators:\n    - {generator}\n"),
        );
        let run = Imagebump::new(["import", "argo", "--check"])
            .stdin(input)
            .output();
        assert_eq!(run.status.code(), Some(1), "{}", text(&run));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_has(
            &stderr,
            &[
                &format!(
                    "<stdin>:9: ApplicationSet argocd/myapp spec.generators[0].{kind}: {kind} generator: only list generators are expanded offline ({needs}): import the Applications this one generates instead"
                ),
                "ApplicationSet argocd/myapp spec.generators[1].list: expanded to the Applications myapp-staging, myapp-production",
            ],
        );
    }
}

const VALUES: &str = "\
# shop chart values
api:
  image:
    repository: REGISTRY/team/api
    tag: 1.0.0 # deployed
";

const KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: REGISTRY/team/worker
    newTag: sha-aaa
";

/// The updater's ConfigMap with the test registry (plain HTTP, so `api_url: http://`), a Helm
/// app written back to its values file and a Kustomize app written back to its
/// kustomization, as Argo CD Image Updater's docs configure them.
fn argo_objects(registry: &str, repo: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-image-updater-config
  namespace: argocd
data:
  git.user: image-bot
  git.email: image-bot@example.com
  registries.conf: |
    registries:
    - name: Test registry
      prefix: {registry}
      api_url: http://{registry}
      ping: yes
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: shop-api
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: api={registry}/team/api:^1.0
    argocd-image-updater.argoproj.io/api.helm.image-name: api.image.repository
    argocd-image-updater.argoproj.io/api.helm.image-tag: api.image.tag
    argocd-image-updater.argoproj.io/write-back-method: git
    argocd-image-updater.argoproj.io/write-back-target: helmvalues:values.yaml
spec:
  source:
    repoURL: {repo}
    path: charts/shop
    targetRevision: main
    helm:
      valueFiles: [values.yaml]
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: shop-worker
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: worker={registry}/team/worker
    argocd-image-updater.argoproj.io/worker.update-strategy: newest-build
    argocd-image-updater.argoproj.io/worker.allow-tags: regexp:^sha-
    argocd-image-updater.argoproj.io/write-back-method: git
    argocd-image-updater.argoproj.io/write-back-target: kustomization
spec:
  source:
    repoURL: {repo}
    path: overlays/dev
    targetRevision: main
status:
  sourceType: Kustomize
"#
    )
}

/// What the README's `kubectl get` lines print is written by the test (no cluster here).
const KUBECTL_FAKED: [&str; 2] = [
    "kubectl get applications,applicationsets,imageupdaters -n argocd -o yaml > argo.yaml",
    "kubectl get configmap argocd-image-updater-config -n argocd -o yaml > argo-config.yaml",
];

/// The command lines of the README's "Migrating from Argo CD Image Updater" block.
fn readme_migration_commands() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Migrating from Argo CD Image Updater")
        .nth(1)
        .expect("the README's Argo migration section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section's sh block");
    assert!(
        section.find("```sh").unwrap() < section.find("|").unwrap(),
        "the section leads with the commands, before the mapping table"
    );
    block.lines().map(str::to_string).collect()
}

/// Documents as `kubectl get A,B -o yaml` prints them: one `kind: List`.
fn kubectl_list(documents: &str) -> String {
    let mut list = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for document in documents.split("---\n") {
        for (i, line) in document.lines().enumerate() {
            list.push_str(if i == 0 { "- " } else { "  " });
            list.push_str(line);
            list.push('\n');
        }
    }
    list
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_migration_plans_the_updates_argo_would_make() {
    let registry = TestRegistry::start_plain().await;
    let host = registry.host();
    let pusher = registry.pusher();
    // semver ^1.0: Argo picks 1.1.0 (2.0.0 is out of range, 1.2.0-rc.1 a pre-release).
    for (tag, created) in [
        ("1.0.0", "2026-01-01T00:00:00Z"),
        ("1.1.0", "2026-01-02T00:00:00Z"),
        ("1.2.0-rc.1", "2026-01-03T00:00:00Z"),
        ("2.0.0", "2026-01-04T00:00:00Z"),
    ] {
        pusher
            .push_image("team/api", tag, &ImageSpec::new(created))
            .await;
    }
    // newest-build with allow-tags ^sha-: Argo picks the most recently built sha- tag,
    // sha-bbb, not the alphabetically last sha-ccc nor the newer `latest`.
    for (tag, created) in [
        ("sha-aaa", "2026-02-01T00:00:00Z"),
        ("sha-bbb", "2026-02-03T00:00:00Z"),
        ("sha-ccc", "2026-02-02T00:00:00Z"),
        ("latest", "2026-02-04T00:00:00Z"),
    ] {
        pusher
            .push_image("team/worker", tag, &ImageSpec::new(created))
            .await;
    }
    let repo = BareRepo::with_files(
        "main",
        &[
            (
                "charts/shop/values.yaml",
                &VALUES.replace("REGISTRY", &host),
            ),
            (
                "overlays/dev/kustomization.yaml",
                &KUSTOMIZATION.replace("REGISTRY", &host),
            ),
        ],
    );
    let before = repo.head("main");
    // The README's migration commands, in a directory holding what its two `kubectl get`
    // commands print: a `kind: List` of the Applications, and the ConfigMap.
    let dir = tempfile::tempdir().unwrap();
    let objects = argo_objects(&host, &repo.file_url());
    let (config_map, applications) = objects.split_once("---\n").unwrap();
    std::fs::write(dir.path().join("argo.yaml"), kubectl_list(applications)).unwrap();
    std::fs::write(dir.path().join("argo-config.yaml"), config_map).unwrap();
    let mut outputs = Vec::new();
    for line in readme_migration_commands() {
        if line.starts_with("kubectl ") {
            assert!(KUBECTL_FAKED.contains(&line.as_str()), "{line}");
            continue;
        }
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        let run = Imagebump::new(args).current_dir(dir.path()).output();
        assert_eq!(run.status.code(), Some(0), "{line}\n{}", text(&run));
        outputs.push((line, run));
    }
    assert_eq!(outputs.len(), 3, "import, validate, once --dry-run");
    assert_has(
        &String::from_utf8_lossy(&outputs[0].1.stderr),
        &[
            &format!(
                "ConfigMap argocd/argocd-image-updater-config data.registries.conf: registries[0].api_url: `insecure: true` (plain HTTP) on registries[] `{host}`"
            ),
            "ConfigMap argocd/argocd-image-updater-config data.git.user: `git.author: image-bot <image-bot@example.com>` in the global file",
        ],
    );
    // The text plan shows the very bytes Argo's write-back would change.
    let stdout = String::from_utf8_lossy(&outputs[2].1.stdout);
    assert!(
        stdout.contains("-    tag: 1.0.0 # deployed\n+    tag: 1.1.0 # deployed\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-    newTag: sha-aaa\n+    newTag: sha-bbb\n"),
        "{stdout}"
    );
    let target = dir.path().join("imported");
    let global = target.join("imagebump.yaml");
    validate(&global);

    let plan = Imagebump::new(["once", "--dry-run", "--output", "json"])
        .config(&global)
        .output();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let mut changes: Vec<(String, String, String, String)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("app"), s("file"), s("from"), s("to"))
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            (
                "shop-api".to_string(),
                "charts/shop/values.yaml".to_string(),
                "1.0.0".to_string(),
                "1.1.0".to_string()
            ),
            (
                "shop-worker".to_string(),
                "overlays/dev/kustomization.yaml".to_string(),
                "sha-aaa".to_string(),
                "sha-bbb".to_string()
            ),
        ]
    );
    assert_eq!(repo.head("main"), before, "a dry run must not push");
}

#[test]
fn bad_input_names_the_line_and_field_and_writes_nothing() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let cases = [
        ("a: [\n", "<stdin>:2:1: not YAML"),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
            "<stdin>:2:7: Deployment default/web: `kind`: `Deployment` is not an Argo CD Image Updater input",
        ),
        (
            "apiVersion: argoproj.io/v1beta1\nkind: Application\nmetadata: {name: web}\n",
            "<stdin>:1:13: Application default/web: `apiVersion`: `argoproj.io/v1beta1` is not supported: expected argoproj.io/v1alpha1",
        ),
        (
            &DOCS_EXAMPLES.replace(
                "    repoURL: https://github.com/example/example.git\n    path: helm/dex\n",
                "    path: helm/dex\n",
            ),
            "<stdin>:14: Application argocd/dex: `spec.source.repoURL`: is required but missing",
        ),
        (
            &DOCS_EXAMPLES.replace("regexp:^v1.0.0-[0-9a-zA-Z]+$", "regexp:^v1.0.0-[0-9a-zA-Z+$"),
            "<stdin>:69:59: Application argocd/yourtool: `argocd-image-updater.argoproj.io/yourtool.allow-tags`: `^v1.0.0-[0-9a-zA-Z+$` is not a valid regex",
        ),
        (
            &DOCS_EXAMPLES.replace(
                "argocd.kustomize.image-name: quay.io/argoproj/argocd\n",
                "argocd.kustomize.image-name: quay.io/argoproj/argocd\n    argocd-image-updater.argoproj.io/argocd.ignore-tags: \"[a-\"\n",
            ),
            "<stdin>:52:58: Application argocd/argocd: `argocd-image-updater.argoproj.io/argocd.ignore-tags`: `[a-`: has a `[` with no `]`",
        ),
        (
            &DOCS_EXAMPLES.replace(
                "argocd=ghcr.io/argoproj/argocd\n",
                "argocd=ghcr.io/argoproj/argocd\n    argocd-image-updater.argoproj.io/argocd.update-strategy: digest\n",
            ),
            "<stdin>:50:50: Application argocd/argocd: `argocd-image-updater.argoproj.io/image-list`: the digest strategy follows a tag: write `ghcr.io/argoproj/argocd:TAG`",
        ),
        (
            &MIGRATION_BEFORE.replace(
                "    argocd-image-updater.argoproj.io/git-repository: git@github.com:myorg/myrepo.git\n    argocd-image-updater.argoproj.io/git-branch: main\n",
                "",
            ),
            "<stdin>:16:21: Application argocd/production-app: `spec.source.repoURL`: `https://charts.example.com` is a Helm chart repository, not git",
        ),
        (
            &MIGRATION_AFTER.replace(
                "  namespace: argocd\n  writeBackConfig",
                "  namespace: \"\"\n  writeBackConfig",
            ),
            "ImageUpdater argocd/multi-app-image-updater: `spec.namespace`: is empty",
        ),
        (
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: ghcr.io/acme/web:~1\nspec:\n  source: {repoURL: 'https://github.com/acme/gitops', path: web, targetRevision: main}\n",
            "<stdin>:8:11: Application default/web: `spec.source`: cannot tell whether this is a Helm or a Kustomize source",
        ),
    ];
    for (input, expected) in cases {
        let run = import(input, &target);
        assert_eq!(run.status.code(), Some(2), "{expected}\n{}", text(&run));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
        assert!(stderr.contains("nothing was written"), "{stderr}");
        assert!(!target.exists(), "{expected}");
    }
}

#[test]
fn a_checkout_tells_helm_from_kustomize() {
    let checkout = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(checkout.path().join("web")).unwrap();
    std::fs::write(
        checkout.path().join("web/kustomization.yml"),
        "images:\n  - name: ghcr.io/acme/web\n    newTag: 1.0.0\n",
    )
    .unwrap();
    let input = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: ghcr.io/acme/web:~1\nspec:\n  source: {repoURL: 'https://github.com/acme/gitops', path: web, targetRevision: main}\n";
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let run = Imagebump::new(["import", "argo", "--repo-dir"])
        .arg(checkout.path())
        .arg("-o")
        .arg(&target)
        .stdin(input)
        .output();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        read(&target.join("apps/web.yaml")).contains("      - {file: \"web/kustomization.yml\"}\n"),
        "{}",
        read(&target.join("apps/web.yaml"))
    );
}

/// The update-methods page's pull request example, with label selection, an Application that
/// keeps its annotations (`useAnnotations`) and a pattern that matches nothing in the input.
const PULL_REQUEST_UPDATER: &str = r#"apiVersion: argocd-image-updater.argoproj.io/v1alpha1
kind: ImageUpdater
metadata:
  name: my-image-updater
  namespace: argocd
spec:
  namespace: argocd
  writeBackConfig:
    method: "git:secret:git-creds"
    gitConfig:
      repository: "https://github.com/example/example.git"
      branch: "main"
      pullRequest:
        github: {}
  applicationRefs:
    - namePattern: "my-app-*"
      labelSelectors:
        matchLabels: {team: web}
      images:
        - alias: "nginx"
          imageName: "nginx:~1.27"
          manifestTargets:
            helm: {name: image.repository, tag: image.tag}
      writeBackConfig:
        method: "git:secret:git-creds"
        gitConfig:
          branch: "main"
          writeBackTarget: "helmvalues:/helm/config/values.yaml"
    - namePattern: "legacy"
      useAnnotations: true
    - namePattern: "other-*"
      images:
        - {alias: api, imageName: "ghcr.io/acme/api"}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: my-app-web, namespace: argocd, labels: {team: web}}
spec:
  source: {repoURL: "https://github.com/example/example.git", path: helm/web, targetRevision: main}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: my-app-db, namespace: argocd, labels: {team: data}}
spec:
  source: {repoURL: "https://github.com/example/example.git", path: helm/db, targetRevision: main}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: legacy
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: app=ghcr.io/acme/legacy:^2
    argocd-image-updater.argoproj.io/write-back-method: git
    argocd-image-updater.argoproj.io/write-back-target: kustomization
spec:
  source: {repoURL: "https://github.com/example/example.git", path: legacy, targetRevision: main}
"#;

#[test]
fn an_image_updater_selects_by_name_and_label_and_opens_pull_requests() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let run = import(PULL_REQUEST_UPDATER, &target);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_has(
        &String::from_utf8_lossy(&run.stderr),
        &[
            "ImageUpdater argocd/my-image-updater spec.applicationRefs[0].namePattern: selects my-app-web\n",
            "ImageUpdater argocd/my-image-updater spec.applicationRefs[1].namePattern: selects legacy\n",
            "ImageUpdater argocd/my-image-updater spec.applicationRefs[2].namePattern: no Application in the input matches `other-*` in namespace argocd",
            "ImageUpdater argocd/my-image-updater spec.writeBackConfig.gitConfig.pullRequest.github: Application my-app-web: `write: pull-request` into `main` (forge github; the token in GITHUB_TOKEN",
            "Application argocd/legacy argocd-image-updater.argoproj.io/write-back-target: Application legacy, image `app`: the kustomization in `legacy`",
        ],
    );
    assert_eq!(
        read(&target.join("apps/my-app-web.yaml")),
        r#"# Imported by `imagebump import argo` from ImageUpdater argocd/my-image-updater and Application argocd/my-app-web.
name: "my-app-web"
repo: "https://github.com/example/example.git"
branch: "main"
write: pull-request
pull_request:
  forge: "github"
  token_env: "GITHUB_TOKEN"
images:
  - name: "nginx"
    image: "nginx"
    policy: {semver: "~1.27"}
    targets:
      - {file: "helm/config/values.yaml", path: "image.tag"}
      - {file: "helm/config/values.yaml", path: "image.repository", field: "repository"}
"#
    );
    // The Application the label leaves out gets no app file.
    assert!(!target.join("apps/my-app-db.yaml").exists());
    // useAnnotations: the annotations are read, not reported as ignored.
    assert!(
        !String::from_utf8_lossy(&run.stderr)
            .contains("Application argocd/legacy metadata.annotations: ignored"),
        "{}",
        text(&run)
    );
    assert!(target.join("apps/legacy.yaml").is_file());
    validate(&target.join("imagebump.yaml"));
}

/// `labelSelectors.matchExpressions` as Kubernetes defines them: In, NotIn, Exists,
/// DoesNotExist, with matchLabels all holding; a malformed expression is an error.
#[test]
fn label_selector_expressions_select_as_kubernetes_does() {
    let out = tempfile::tempdir().unwrap();
    let selecting = |expressions: &str| {
        PULL_REQUEST_UPDATER.replace(
            "        matchLabels: {team: web}\n",
            &format!("        matchExpressions: {expressions}\n"),
        )
    };
    let line = "ImageUpdater argocd/my-image-updater spec.applicationRefs[0].namePattern: ";
    for (index, (expressions, expected)) in [
        ("[{key: team, operator: In, values: [web, ops]}]", "selects my-app-web\n"),
        ("[{key: team, operator: NotIn, values: [web]}]", "selects my-app-db\n"),
        ("[{key: team, operator: Exists}]", "selects my-app-web, my-app-db\n"),
        ("[{key: tier, operator: NotIn, values: [x]}, {key: team, operator: In, values: [data]}]", "selects my-app-db\n"),
        ("[{key: team, operator: DoesNotExist}]", "no Application in the input matches `my-app-*`"),
    ]
    .into_iter()
    .enumerate()
    {
        let run = import(&selecting(expressions), &out.path().join(index.to_string()));
        assert_eq!(run.status.code(), Some(0), "{expressions}: {}", text(&run));
        assert_has(&String::from_utf8_lossy(&run.stderr), &[&format!("{line}{expected}")]);
    }
    let field = "`spec.applicationRefs[0].labelSelectors.matchExpressions[0]";
    for (expressions, expected) in [
        (
            "[{key: team, operator: Has}]",
            format!("{field}.operator`: `Has`: expected In, NotIn, Exists or DoesNotExist"),
        ),
        (
            "[{key: team, operator: In}]",
            format!("{field}.values`: `In` needs at least one value"),
        ),
        (
            "[{key: team, operator: Exists, values: [web]}]",
            format!("{field}.values`: `Exists` takes no values"),
        ),
        (
            "[{operator: Exists}]",
            format!("{field}.key`: is required but missing"),
        ),
    ] {
        let target = out.path().join("bad");
        let run = import(&selecting(expressions), &target);
        assert_eq!(run.status.code(), Some(2), "{expressions}: {}", text(&run));
        assert_has(
            &String::from_utf8_lossy(&run.stderr),
            &[&expected, "nothing was written"],
        );
        assert!(!target.exists());
    }
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

/// Regression: an Application for which no app file is written (here: its updater asks for
/// pull requests on a forge imagebump does not open them on) was still reported as translated
/// (its repo, branch, images...): every such line now says it was not written.
#[test]
fn an_application_that_writes_no_app_is_not_reported_as_translated() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let run = import(
        &PULL_REQUEST_UPDATER.replace("        github: {}\n", "        bitbucketServer: {}\n"),
        &target,
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!target.join("apps/my-app-web.yaml").exists());
    assert!(target.join("apps/legacy.yaml").is_file());
    let translated = section(&stderr, "translated");
    for gone in ["Application argocd/my-app-web ", "Application my-app-web:"] {
        assert!(
            !translated.iter().any(|l| l.contains(gone)),
            "{gone} is not written but reported as translated:\n{stderr}"
        );
    }
    assert!(
        section(&stderr, "no equivalent").iter().any(|l| l.contains(
            "spec.writeBackConfig.gitConfig.pullRequest.bitbucketServer: `bitbucketServer` pull requests are not supported"
        )),
        "{stderr}"
    );
}

/// An error in an Application an ApplicationSet generates names the line in the
/// ApplicationSet's template and the list element that made it.
#[test]
fn an_error_in_a_generated_application_names_the_template_line_and_element() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let run = import(
        &APPLICATION_SET.replace(
            "myapp=ghcr.io/your-org/myapp:^1.0\n",
            "myapp=ghcr.io/your-org/myapp:^1.0\n        argocd-image-updater.argoproj.io/myapp.allow-tags: 'regexp:^v[0-9'\n",
        ),
        &target,
    );
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert_has(
        &String::from_utf8_lossy(&run.stderr),
        &[
            "<stdin>:20:60: Application argocd/myapp-staging (from ApplicationSet argocd/myapp spec.generators[0].list.elements[0]): `argocd-image-updater.argoproj.io/myapp.allow-tags`: `^v[0-9` is not a valid regex",
            "nothing was written",
        ],
    );
    assert!(!target.exists());
}

/// The updater's ConfigMap with three registries in `registries.conf` (a blank line between
/// the first two), and an Application that uses the third.
const REGISTRIES_CONF: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-image-updater-config
  namespace: argocd
data:
  registries.conf: |
    registries:
    - name: Docker Hub
      prefix: docker.io
      api_url: https://registry-1.docker.io
      credentials: pullsecret:argocd/dockerhub

    - name: Quay
      prefix: quay.io
      api_url: https://quay.io
      credsexpire: 2h
    - name: Internal
      prefix: registry.internal:5000
      api_url: https://registry.internal:5000
      limit: 5
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: web=registry.internal:5000/acme/web:~1
    argocd-image-updater.argoproj.io/write-back-method: git
spec:
  source: {repoURL: 'https://github.com/acme/gitops', path: web, targetRevision: main}
status:
  sourceType: Kustomize
"#;

/// Regression: an entry of `registries.conf` was named by the `registries.conf:` line of the
/// ConfigMap; errors and report lines now name the entry's own line in the file (the block
/// scalar's header line plus its line in the embedded text), and errors its value's column.
#[test]
fn a_registries_conf_entry_is_named_by_its_own_line() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let run = import(
        &REGISTRIES_CONF.replace(
            "api_url: https://registry.internal:5000",
            "api_url: ftp://registry.internal:5000",
        ),
        &target,
    );
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        "imagebump import argo: <stdin>:20:16: ConfigMap argocd/argocd-image-updater-config: `data.registries.conf: registries[2].api_url`: expected an http:// or https:// URL\nnothing was written\n"
    );
    // An entry with no prefix: named where the entry starts.
    let run = import(
        &REGISTRIES_CONF.replace("      prefix: registry.internal:5000\n", ""),
        &target,
    );
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        "imagebump import argo: <stdin>:18:7: ConfigMap argocd/argocd-image-updater-config: `data.registries.conf: registries[2]`: `prefix` is required but missing\nnothing was written\n"
    );
    // Text that is not YAML: named where the parser stopped, in the file.
    let run = import(
        &REGISTRIES_CONF.replace("- name: Internal\n", "- name: Internal: 3\n"),
        &target,
    );
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        "imagebump import argo: <stdin>:18:21: ConfigMap argocd/argocd-image-updater-config: `data.registries.conf`: not YAML: mapping values are not allowed in this context\nnothing was written\n"
    );
    // Stopped by the end of the text: named at the end of the block's last line (it was the
    // line after the block, another key's).
    let run = import(
        &REGISTRIES_CONF.replace("      limit: 5\n", "      limit: [5\n"),
        &target,
    );
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        "imagebump import argo: <stdin>:21:16: ConfigMap argocd/argocd-image-updater-config: `data.registries.conf`: not YAML: while parsing a flow sequence, expected ',' or ']'\nnothing was written\n"
    );
    assert!(!target.exists());

    // The report: each entry's field on its own line.
    let run = import(REGISTRIES_CONF, &target);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_has(
        &String::from_utf8_lossy(&run.stderr),
        &[
            "\n  <stdin>:12: ConfigMap argocd/argocd-image-updater-config data.registries.conf: registries[0].credentials: `docker_config: ",
            "\n  <stdin>:17: ConfigMap argocd/argocd-image-updater-config data.registries.conf: registries[1].credsexpire: credentials are read on every pass\n",
            "\n  <stdin>:21: ConfigMap argocd/argocd-image-updater-config data.registries.conf: registries[2].limit: `requests_per_second: 5`\n",
        ],
    );
    validate(&target.join("imagebump.yaml"));
}

/// Regression: an `applicationRefs[]` item's "selects NAME" line said translated when what it
/// selects was not carried over: the Application got no app file (its pull requests are on a
/// forge imagebump does not open them on), or an earlier item of the same updater selected it
/// too and its app took that item's settings. Each selected Application is now reported by
/// what became of it.
#[test]
fn a_selection_that_is_not_written_is_not_reported_as_translated() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let run = import(
        &PULL_REQUEST_UPDATER
            .replace("        github: {}\n", "        bitbucketServer: {}\n")
            .replace("namePattern: \"other-*\"", "namePattern: \"legacy\""),
        &target,
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    let selections = |heading: &str| -> Vec<String> {
        section(&stderr, heading)
            .into_iter()
            .filter(|l| l.contains(".namePattern: "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        selections("translated"),
        [
            "  <stdin>:29: ImageUpdater argocd/my-image-updater spec.applicationRefs[1].namePattern: selects legacy"
        ],
        "{stderr}"
    );
    assert_eq!(
        selections("no equivalent"),
        [
            "  <stdin>:16: ImageUpdater argocd/my-image-updater spec.applicationRefs[0].namePattern: selects my-app-web: not written, no app is written for the Application",
            "  <stdin>:31: ImageUpdater argocd/my-image-updater spec.applicationRefs[2].namePattern: selects legacy: not written, spec.applicationRefs[1] is as specific and listed earlier: its settings apply",
        ],
        "{stderr}"
    );
    // The app written for `legacy` has the annotations' image, not item [2]'s.
    assert!(!read(&target.join("apps/legacy.yaml")).contains("ghcr.io/acme/api"));
    assert!(!target.join("apps/my-app-web.yaml").exists());
}

/// An updater whose `applicationRefs[]` items overlap, written as Argo CD Image Updater v1.x
/// resources are today: no `spec.namespace` (removed from the API; the updater's own namespace
/// is searched).
const OVERLAPPING_REFS: &str = r#"apiVersion: argocd-image-updater.argoproj.io/v1alpha1
kind: ImageUpdater
metadata:
  name: overlapping
  namespace: argocd
spec:
  writeBackConfig:
    method: "git:secret:git-creds"
    gitConfig: {repository: "https://github.com/example/example.git", branch: "main"}
  applicationRefs:
    - namePattern: "*"
      images: [{alias: app, imageName: "ghcr.io/acme/any"}]
    - namePattern: "web-*"
      images: [{alias: app, imageName: "ghcr.io/acme/web"}]
    - namePattern: "web-prod"
      images: [{alias: app, imageName: "ghcr.io/acme/prod"}]
    - namePattern: "d*"
      labelSelectors: {matchLabels: {tier: data}}
      images: [{alias: app, imageName: "ghcr.io/acme/data"}]
    - namePattern: "db*"
      images: [{alias: app, imageName: "ghcr.io/acme/db"}]
"#;

fn overlapping_application(name: &str, namespace: &str, labels: &str) -> String {
    format!(
        "---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{{labels}}}}}\nspec:\n  source: {{repoURL: \"https://github.com/example/example.git\", path: {name}, targetRevision: main}}\nstatus: {{sourceType: Kustomize}}\n"
    )
}

/// The image an imported app file watches.
fn imported_image(target: &Path, app: &str) -> String {
    let text = read(&target.join(format!("apps/{app}.yaml")));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("image: "))
        .unwrap_or_else(|| panic!("no image in {text}"));
    line.trim_start()
        .trim_start_matches("image: ")
        .trim_matches('"')
        .to_string()
}

/// Regression: overlapping `applicationRefs[]` items gave an Application the settings of the
/// first item listed, where Argo CD Image Updater applies the most specific one: an exact name
/// before any pattern, then labelSelectors, then the pattern with more literal characters; the
/// order listed only breaks ties. And an updater without `spec.namespace` (the field is gone
/// from the current API) was refused; it searches its own namespace.
#[test]
fn overlapping_application_refs_give_each_application_the_most_specific_items_settings() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("imported");
    let input = format!(
        "{OVERLAPPING_REFS}{}{}{}{}",
        overlapping_application("web-prod", "argocd", ""),
        overlapping_application("web-dev", "argocd", ""),
        overlapping_application("db", "argocd", "tier: data"),
        overlapping_application("cache", "argocd", ""),
    );
    let run = import(&input, &target);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    for (app, image) in [
        ("web-prod", "ghcr.io/acme/prod"),
        ("web-dev", "ghcr.io/acme/web"),
        ("db", "ghcr.io/acme/data"),
        ("cache", "ghcr.io/acme/any"),
    ] {
        assert_eq!(imported_image(&target, app), image, "{app}\n{}", text(&run));
    }
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_has(
        &stderr,
        &[
            "spec.applicationRefs[0].namePattern: selects cache\n",
            "spec.applicationRefs[0].namePattern: selects web-prod: not written, spec.applicationRefs[2] is more specific: its settings apply\n",
            "spec.applicationRefs[1].namePattern: selects web-dev\n",
            "spec.applicationRefs[4].namePattern: selects db: not written, spec.applicationRefs[3] is more specific: its settings apply\n",
        ],
    );
    validate(&target.join("imagebump.yaml"));

    // An older resource's `spec.namespace` that differs from its own namespace: searched, and
    // the report says which one current versions search instead.
    let input = format!(
        "{}{}{}",
        OVERLAPPING_REFS.replace("spec:\n", "spec:\n  namespace: apps\n"),
        overlapping_application("web-prod", "apps", ""),
        overlapping_application("web-dev", "argocd", ""),
    );
    let target = out.path().join("older");
    let run = import(&input, &target);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(imported_image(&target, "web-prod"), "ghcr.io/acme/prod");
    assert!(!target.join("apps/web-dev.yaml").exists(), "{}", text(&run));
    assert_has(
        &String::from_utf8_lossy(&run.stderr),
        &[
            "ImageUpdater argocd/overlapping spec.namespace: searched namespace apps; current versions of Argo CD Image Updater have no spec.namespace and search the updater's own namespace, argocd\n",
        ],
    );
}

/// An updater exported without its namespace (so read as `-n`'s, `default`) selects nothing
/// in it, while Applications its pattern matches are in the input under another namespace:
/// the report says where they are and how to point the import at them, instead of only
/// "no Application matches".
#[test]
fn an_updater_in_another_namespace_than_its_applications_is_told_where_they_are() {
    let out = tempfile::tempdir().unwrap();
    let input = format!(
        "{}{}",
        OVERLAPPING_REFS.replace("  namespace: argocd\nspec:", "spec:"),
        overlapping_application("web-prod", "argocd", ""),
    );
    let run = import(&input, &out.path().join("imported"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_has(
        &stderr,
        &[
            "ImageUpdater default/overlapping spec.applicationRefs[2].namePattern: no Application in the input matches `web-prod` in namespace default; it matches web-prod in namespace argocd: give the ImageUpdater `metadata.namespace: argocd`, or import with `-n argocd`\n",
        ],
    );
    // An older resource's spec.namespace decides where it searches: that is what to change.
    let input = format!(
        "{}{}{}",
        OVERLAPPING_REFS.replace("spec:\n", "spec:\n  namespace: apps\n"),
        overlapping_application("web-prod", "argocd", ""),
        overlapping_application("web-dev", "argocd", ""),
    );
    let run = import(&input, &out.path().join("older"));
    assert_has(
        &String::from_utf8_lossy(&run.stderr),
        &[
            "ImageUpdater argocd/overlapping spec.applicationRefs[1].namePattern: no Application in the input matches `web-*` in namespace apps; it matches web-prod, web-dev in namespace argocd: set the ImageUpdater's `spec.namespace` to argocd\n",
        ],
    );
}
