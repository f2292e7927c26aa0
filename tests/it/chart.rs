//! The Helm chart `charts/imagebump`, tested without a helm binary or a cluster.
//!
//! - the real Helm v4 engine (PyPI `helm-python-sdk`, a Python binding around Helm's Go code)
//!   lints the chart strictly and renders it, with the defaults and with every option on; the
//!   rendered ConfigMap, laid out by the rendered volume `items`, passes `imagebump validate`;
//! - `values.yaml` validates against `values.schema.json` (Debian's python3-jsonschema), and a
//!   misspelt key fails it;
//! - the imagebump config the chart renders by default (assembled here exactly as the ConfigMap
//!   template lays it out) passes `imagebump validate`, and every `*_env` it names is provided;
//! - `yamllint` is clean on the chart's plain YAML files;
//! - the templates are structurally sound: balanced actions and blocks, and every `.Values.x.y`
//!   they use exists in `values.yaml`;
//! - the README's values table lists every value; the security invariants hold (one replica
//!   unless asked, no RBAC, no API token, restricted pod security);
//! - the quickstarts work as written: the `kubectl create secret` commands of README.md,
//!   docs/deploy.md and the chart README, read from the files, create every Secret and key the
//!   pod rendered from docs/deploy.md's values reads, every file the config names is in a
//!   mounted Secret, and the rendered config validates without a warning.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::imagebump::Imagebump;

/// Python interpreter with `jsonschema` (Debian package python3-jsonschema).
const PYTHON: &str = "/usr/bin/python3";

const CHECK_SCHEMA: &str = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator.check_schema(schema)
values = json.load(open(sys.argv[2]))
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(values), key=lambda e: list(e.path))
for e in errors:
    print("/".join(map(str, e.path)) or "<root>", ":", e.message)
sys.exit(1 if errors else 0)
"#;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/imagebump")
}

fn values() -> Value {
    let text = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    yaml_serde::from_str(&text).unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Validate `values` against the chart's schema; `Err` carries the validator's messages.
fn check_schema(values: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.json");
    std::fs::write(&file, serde_json::to_vec(values).unwrap()).unwrap();
    let out = Command::new(PYTHON)
        .args(["-c", CHECK_SCHEMA])
        .arg(chart().join("values.schema.json"))
        .arg(&file)
        .output()
        .expect("run /usr/bin/python3 (install python3-jsonschema)");
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(text(&out)),
        _ => panic!("the schema check itself failed: {}", text(&out)),
    }
}

#[test]
fn default_values_validate_against_the_schema() {
    if let Err(e) = check_schema(&values()) {
        panic!("values.yaml does not match values.schema.json:\n{e}");
    }
}

#[test]
fn a_misspelt_value_fails_the_schema() {
    use serde_json::json;
    // (what, JSON pointer of the parent object, key, value set there)
    let cases = [
        (
            "top-level typo",
            "",
            "serviceMonitr",
            json!({"enabled": true}),
        ),
        ("nested typo", "/persistence", "enabeld", json!(true)),
        ("global config typo", "/config", "intervall", json!("1m")),
        ("app typo", "/apps/shop-dev", "brnach", json!("main")),
        ("apps dir moved", "/config", "apps", json!("elsewhere/")),
        ("relative workdir", "/config", "workdir", json!("cache")),
        (
            "interval and schedule",
            "/config",
            "schedule",
            json!("*/5 * * * *"),
        ),
        (
            "secret without key",
            "/envFromSecrets",
            "X_TOKEN",
            json!({"secretName": "s"}),
        ),
        ("unknown log format", "", "logFormat", json!("yaml")),
    ];
    for (what, parent, key, value) in cases {
        let mut v = values();
        let object = v.pointer_mut(parent).and_then(Value::as_object_mut);
        object.expect(what).insert(key.to_string(), value);
        let err = check_schema(&v).expect_err(what);
        assert!(!err.trim().is_empty(), "{what}: no message");
    }
}

#[test]
fn every_optional_global_key_passes_the_schema_and_validates() {
    use serde_json::json;
    let mut v = values();
    let config = v
        .pointer_mut("/config")
        .and_then(Value::as_object_mut)
        .expect("config");
    config.insert("max_concurrent_checks".into(), json!(2));
    config.insert(
        "history".into(),
        json!({"max_commits": 2000, "max_age": "30d"}),
    );
    config.insert(
        "registry_breaker".into(),
        json!({"cooldown": "1m", "max_cooldown": "20m"}),
    );
    config
        .get_mut("webhook")
        .and_then(Value::as_object_mut)
        .expect("webhook")
        .insert(
            "retry".into(),
            json!({"max_attempts": 3, "initial": "5s", "max": "2m"}),
        );
    let git = config
        .get_mut("git")
        .and_then(Value::as_object_mut)
        .expect("git");
    git.insert("push_retries".into(), json!(3));
    git.insert("group_commits".into(), json!(true));
    git.insert(
        "group_commit_message".into(),
        json!("bump {{ apps|join(',') }}"),
    );
    git.insert("signing_key_file".into(), json!("/secrets/ssh/signing"));
    git.insert("workdir_wait".into(), json!("2m"));
    git.insert(
        "maintenance".into(),
        json!({"max_packs": 20, "max_loose_objects": 0}),
    );
    if let Err(e) = check_schema(&v) {
        panic!("the schema refuses a valid global key:\n{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = validate(&render_config(&v, dir.path()));
    assert!(out.status.success(), "{}", text(&out));
}

/// `imagebump validate --config GLOBAL`.
fn validate(global: &Path) -> Output {
    Imagebump::new(["validate"]).config(global).output()
}

/// Lay the chart's config out as the ConfigMap + volume `items` do: `imagebump.yaml` and
/// `apps/<name>.yaml` (with `name` defaulting to the map key), `workdir` moved into `dir`.
fn render_config(values: &Value, dir: &Path) -> PathBuf {
    let mut config = values["config"].clone();
    config["workdir"] = Value::String(dir.join("cache").display().to_string());
    let global = dir.join("imagebump.yaml");
    std::fs::write(&global, yaml_serde::to_string(&config).unwrap()).unwrap();
    let apps_dir = dir.join(config["apps"].as_str().unwrap());
    std::fs::create_dir_all(&apps_dir).unwrap();
    for (name, app) in values["apps"].as_object().unwrap() {
        let mut app = app.clone();
        if app.get("name").is_none() {
            app["name"] = Value::String(name.clone());
        }
        let file = apps_dir.join(format!("{name}.yaml"));
        std::fs::write(file, yaml_serde::to_string(&app).unwrap()).unwrap();
    }
    global
}

#[test]
fn the_config_the_chart_renders_by_default_validates() {
    let values = values();
    let apps = values["apps"].as_object().unwrap();
    assert!(!apps.is_empty(), "the default values carry an example app");
    let images: usize = apps
        .values()
        .map(|a| a["images"].as_array().unwrap().len())
        .sum();
    let dir = tempfile::tempdir().unwrap();
    let global = render_config(&values, dir.path());
    let out = validate(&global);
    assert!(out.status.success(), "{}", text(&out));
    let expected = format!("ok ({} apps, {images} images)", apps.len());
    assert!(text(&out).contains(&expected), "{}", text(&out));
}

#[test]
fn a_broken_app_in_values_fails_validation() {
    let mut values = values();
    values["apps"]["shop-dev"]["images"][0]["policy"] =
        serde_json::json!({"semver": "~1.4", "numerical": "asc"});
    let dir = tempfile::tempdir().unwrap();
    let global = render_config(&values, dir.path());
    let out = validate(&global);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("shop-dev.yaml:"), "{}", text(&out));
}

/// Every string under a key ending in `_env`.
fn env_refs(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k.ends_with("_env") => {
                        found.insert(s.clone());
                    }
                    _ => env_refs(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| env_refs(v, found)),
        _ => {}
    }
}

#[test]
fn every_env_named_by_the_default_config_is_provided() {
    let values = values();
    let mut wanted = BTreeSet::new();
    env_refs(&values["config"], &mut wanted);
    env_refs(&values["apps"], &mut wanted);
    assert!(!wanted.is_empty());
    for name in wanted {
        assert!(
            values["envFromSecrets"].get(&name).is_some() || values["env"].get(&name).is_some(),
            "{name} is named in config/apps but neither envFromSecrets nor env provides it"
        );
    }
}

/// The chart's plain YAML files: everything outside templates/ ending in .yaml/.yml, plus
/// the .yamllint config itself.
fn plain_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().unwrap() != "templates" {
                plain_yaml_files(&path, out);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) || path.file_name().unwrap() == ".yamllint"
        {
            out.push(path);
        }
    }
}

#[test]
fn yamllint_is_clean_on_the_charts_yaml() {
    let mut files = Vec::new();
    plain_yaml_files(&chart(), &mut files);
    let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap()).collect();
    for expected in ["Chart.yaml", "values.yaml", ".yamllint"] {
        assert!(names.iter().any(|n| *n == expected), "{names:?}");
    }
    let out = Command::new("yamllint")
        .arg("--strict")
        .arg("-c")
        .arg(chart().join(".yamllint"))
        .args(&files)
        .output()
        .expect("run yamllint (apt install yamllint)");
    assert!(out.status.success(), "{}", text(&out));
}

fn templates() -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = std::fs::read_dir(chart().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    list.sort();
    list
}

/// Check that `{{ }}` actions are closed and `if/range/with/define` blocks balanced by `end`.
fn check_template(source: &str) -> Result<usize, String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut actions = 0;
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(len) = after.find("}}") else {
            return Err(format!("unclosed action at `{}`", &rest[start..]));
        };
        let inner = &after[..len];
        if inner.contains("{{") {
            return Err(format!("nested `{{{{` in `{inner}`"));
        }
        actions += 1;
        let body = inner.trim_start_matches('-').trim_end_matches('-').trim();
        let keyword = body.split_whitespace().next().unwrap_or("");
        match keyword {
            "if" | "range" | "with" | "define" | "block" => stack.push(keyword),
            "end" => {
                stack.pop().ok_or("`end` without an open block")?;
            }
            "else" if stack.is_empty() => return Err("`else` outside a block".into()),
            _ => {}
        }
        rest = &after[len + 2..];
    }
    if rest.contains("}}") {
        return Err("`}}` without `{{`".into());
    }
    match stack.last() {
        Some(open) => Err(format!("`{open}` block never closed")),
        None => Ok(actions),
    }
}

#[test]
fn the_template_checker_catches_broken_templates() {
    assert_eq!(
        check_template("a: {{ .Values.x }}\n{{- if .y }}b{{ end }}"),
        Ok(3)
    );
    assert!(check_template("{{ if .x }}a").is_err());
    assert!(check_template("{{ .x }").is_err());
    assert!(check_template("a }}").is_err());
    assert!(check_template("{{ end }}").is_err());
}

#[test]
fn every_template_is_non_empty_and_balanced() {
    let all = templates();
    for expected in [
        "_helpers.tpl",
        "deployment.yaml",
        "configmap.yaml",
        "serviceaccount.yaml",
        "service.yaml",
        "ingress.yaml",
        "servicemonitor.yaml",
        "networkpolicy.yaml",
        "pvc.yaml",
        "pdb.yaml",
        "NOTES.txt",
    ] {
        assert!(all.iter().any(|(n, _)| n == expected), "missing {expected}");
    }
    for (name, source) in &all {
        assert!(!source.trim().is_empty(), "{name} is empty");
        match check_template(source) {
            Ok(actions) => assert!(actions > 0, "{name} has no template action"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

#[test]
fn every_value_a_template_uses_exists_in_values_yaml() {
    let values = values();
    let re = regex::Regex::new(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let mut used = 0;
    for (name, source) in templates() {
        for cap in re.captures_iter(&source) {
            used += 1;
            let mut node = &values;
            for key in cap[1].trim_start_matches('.').split('.') {
                node = node.get(key).unwrap_or_else(|| {
                    panic!("{name}: `.Values{}` is not in values.yaml", &cap[1])
                });
            }
        }
    }
    assert!(used > 30, "only {used} value references found");
}

/// Value paths documented one by one: recursion stops at free-form maps and lists.
fn value_paths(prefix: &str, value: &Value, out: &mut Vec<String>) {
    const OPAQUE: &[&str] = &[
        "config",
        "apps",
        "env",
        "envFromSecrets",
        "podSecurityContext",
        "securityContext",
        "resources",
        "probes",
    ];
    match value {
        Value::Object(map) if !map.is_empty() && !OPAQUE.contains(&prefix) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                value_paths(&path, v, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn the_chart_readme_documents_every_value() {
    let readme = std::fs::read_to_string(chart().join("README.md")).unwrap();
    let mut paths = Vec::new();
    value_paths("", &values(), &mut paths);
    assert!(paths.len() > 40, "{paths:?}");
    let missing: Vec<_> = paths
        .iter()
        .filter(|p| !readme.contains(&format!("| `{p}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the README's values table: {missing:?}"
    );
}

#[test]
fn security_invariants_hold() {
    let all = templates();
    for (name, source) in &all {
        for kind in ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"] {
            assert!(
                !source.contains(&format!("kind: {kind}\n")),
                "{name} creates a {kind}"
            );
        }
    }
    let get = |n: &str| &all.iter().find(|(name, _)| name == n).unwrap().1;
    let deployment = get("deployment.yaml");
    for needle in [
        "replicas: {{ .Values.replicaCount }}\n",
        "type: Recreate\n",
        "automountServiceAccountToken: false\n",
        "path: /healthz\n",
        "path: /readyz\n",
        "mountPath: /tmp\n",
        "checksum/config:",
    ] {
        assert!(deployment.contains(needle), "deployment lacks {needle:?}");
    }
    assert!(get("serviceaccount.yaml").contains("automountServiceAccountToken: false\n"));
    let v = values();
    assert_eq!(v["replicaCount"], 1, "one replica unless asked");
    let pod = &v["podSecurityContext"];
    let c = &v["securityContext"];
    assert_eq!(pod["runAsNonRoot"], true);
    assert_eq!(pod["runAsUser"], 65532);
    assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c["readOnlyRootFilesystem"], true);
    assert_eq!(c["allowPrivilegeEscalation"], false);
    assert_eq!(c["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(v["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(v["resources"]["limits"]["memory"], "256Mi");
}

// ---- Rendering with the real Helm engine ----------------------------------------------------
//
// There is no helm binary here, but PyPI's `helm-python-sdk` ships Helm v4 as a shared library
// (libhelm_c.so). .ci/run installs it in a venv at /opt/imagebump-helm; IMAGEBUMP_HELM_PYTHON
// overrides the interpreter.

const HELM_PYTHON_DEFAULT: &str = "/opt/imagebump-helm/bin/python";

const HELM_RENDER: &str = r#"
import json, sys
from helm_python import chart as hc
path, values = sys.argv[1], json.loads(sys.argv[2])
c = hc.Chart.load(path)
out = {"schema_error": None, "lint": None, "manifests": None}
try:
    c.validate_schema(values)
except Exception as e:
    out["schema_error"] = str(e) or type(e).__name__
    print(json.dumps(out)); sys.exit(0)
out["lint"] = hc.lint(path, values, strict=True, kube_version="v1.30.0")
try:
    out["manifests"] = c.render(values, name="ib", namespace="tools", is_install=True)
except Exception as e:
    out["render_error"] = str(e) or type(e).__name__
print(json.dumps(out))
"#;

/// Lint and render the chart with `values` (overrides merged onto values.yaml by Helm).
fn helm(values: &Value) -> Value {
    let python = std::env::var("IMAGEBUMP_HELM_PYTHON").unwrap_or(HELM_PYTHON_DEFAULT.into());
    let out = Command::new(&python)
        .args(["-c", HELM_RENDER])
        .arg(chart())
        .arg(values.to_string())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{python}: {e}. Install the Helm engine: python3 -m venv /opt/imagebump-helm && \
                 /opt/imagebump-helm/bin/pip install helm-python-sdk==0.2.2"
            )
        });
    assert!(out.status.success(), "helm render script: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Rendered manifests by kind (empty templates left out), each parsed as YAML.
fn rendered(values: &Value) -> Vec<Value> {
    let result = helm(values);
    assert_eq!(result["schema_error"], Value::Null, "{result:#}");
    let lint = &result["lint"];
    assert_eq!(lint["errors"], serde_json::json!([]), "{lint:#}");
    for message in lint["messages"].as_array().unwrap() {
        // 1 = info (such as "icon is recommended"); warnings and errors fail.
        assert!(
            message["severity"].as_u64().unwrap() <= 1,
            "helm lint: {message}"
        );
    }
    let mut docs = Vec::new();
    for (path, manifest) in result["manifests"].as_object().unwrap() {
        if path.ends_with("NOTES.txt") {
            continue;
        }
        let manifest = manifest.as_str().unwrap();
        if manifest.trim().is_empty() {
            continue;
        }
        let doc: Value = yaml_serde::from_str(manifest)
            .unwrap_or_else(|e| panic!("{path} is not YAML: {e}\n{manifest}"));
        docs.push(doc);
    }
    docs
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap()
}

/// Lay out the rendered ConfigMap as the Deployment's volume `items` do, then validate it.
fn validate_rendered_config(docs: &[Value]) -> Output {
    let deployment = find(docs, "Deployment");
    let configmap = find(docs, "ConfigMap");
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let config = volumes.iter().find(|v| v["name"] == "config").unwrap();
    assert_eq!(config["configMap"]["name"], configmap["metadata"]["name"]);
    let dir = tempfile::tempdir().unwrap();
    for item in config["configMap"]["items"].as_array().unwrap() {
        let key = item["key"].as_str().unwrap();
        let mut content = configmap["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("item {key} is not in the ConfigMap"))
            .to_string();
        if key == "imagebump.yaml" {
            // The cache volume lives at workdir in the pod; here it goes to the temp dir.
            let mut global: Value = yaml_serde::from_str(&content).unwrap();
            global["workdir"] = Value::String(dir.path().join("cache").display().to_string());
            content = yaml_serde::to_string(&global).unwrap();
        }
        let file = dir.path().join(item["path"].as_str().unwrap());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let data_keys = configmap["data"].as_object().unwrap().len();
    let items = config["configMap"]["items"].as_array().unwrap().len();
    assert_eq!(data_keys, items, "every ConfigMap key is mounted");
    validate(&dir.path().join("imagebump.yaml"))
}

#[test]
fn helm_renders_the_defaults_and_the_rendered_config_validates() {
    let docs = rendered(&serde_json::json!({}));
    let expected: BTreeSet<String> = ["ConfigMap", "Deployment", "Service", "ServiceAccount"]
        .map(String::from)
        .into();
    assert_eq!(kinds(&docs), expected);
    let out = validate_rendered_config(&docs);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok (1 apps, 1 images)"),
        "{}",
        text(&out)
    );

    let deployment = find(&docs, "Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    // Issue 12 item 13: probes, metrics and status on their own port; the webhook port (the
    // one the Ingress routes) serves webhooks only.
    assert_eq!(container["ports"][1]["name"], "metrics");
    assert_eq!(container["ports"][1]["containerPort"], 9090);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    let service = find(&docs, "Service");
    let names: Vec<&str> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http", "metrics"]);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["/etc/imagebump", "/var/lib/imagebump", "/tmp"]);
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["GHCR_WEBHOOK_SECRET", "GITHUB_TOKEN"]);
}

#[test]
fn helm_renders_every_optional_object_and_user_apps() {
    let docs = rendered(&serde_json::json!({
        "apps": {
            "shop-dev": null,
            "billing": {"repo": "https://example.com/billing.git", "images": [{
                "image": "registry.example.com/billing/api",
                "policy": {"semver": "^2.0"},
                "targets": [{"file": "values.yaml", "path": "api.image.tag"}]}]},
            "search": {"repo": "https://gitlab.example.com/acme/search.git", "write": "pull-request",
                "pull_request": {"forge": "gitlab", "token_env": "GITLAB_TOKEN"},
                "images": [{"image": "registry.example.com/search", "policy": {"numerical": "asc"},
                    "targets": [{"file": "k8s/deploy.yaml"}]}]}
        },
        "envFromSecrets": {"GITLAB_TOKEN": {"secretName": "gitlab", "key": "token"}},
        "secretMounts": [{"name": "ssh", "secretName": "imagebump-ssh", "mountPath": "/secrets/ssh"}],
        "ingress": {"enabled": true, "className": "nginx",
            "tls": [{"secretName": "imagebump-tls", "hosts": ["imagebump.example.com"]}]},
        "serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}},
        "networkPolicy": {"enabled": true,
            "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 443}]}]},
        "persistence": {"enabled": true}
    }));
    let expected: BTreeSet<String> = [
        "ConfigMap",
        "Deployment",
        "Ingress",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds(&docs), expected);
    let out = validate_rendered_config(&docs);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok (2 apps, 2 images)"),
        "{}",
        text(&out)
    );

    let ingress = find(&docs, "Ingress");
    let paths = &ingress["spec"]["rules"][0]["http"]["paths"];
    assert_eq!(paths.as_array().unwrap().len(), 1);
    assert_eq!(paths[0]["path"], "/webhook");
    assert_eq!(paths[0]["backend"]["service"]["port"]["name"], "http");
    let spec = &find(&docs, "Deployment")["spec"]["template"]["spec"];
    let cache = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "cache")
        .unwrap();
    assert_eq!(
        cache["persistentVolumeClaim"]["claimName"],
        find(&docs, "PersistentVolumeClaim")["metadata"]["name"]
    );
    let monitor = find(&docs, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let policy = find(&docs, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
}

/// Issue 17: several replicas, unsharded (a Deployment) and sharded (a StatefulSet whose pod
/// index is the shard), each with a PodDisruptionBudget and spread across nodes.
#[test]
fn helm_renders_several_replicas_in_either_mode() {
    let docs = rendered(&serde_json::json!({"replicaCount": 3}));
    let deployment = find(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        spec["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let env = spec["containers"][0]["env"].as_array().unwrap();
    assert!(
        !env.iter().any(|e| e["name"] == "IMAGEBUMP_SHARD"),
        "{env:?}"
    );
    let pdb = find(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        spec["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
    );

    let docs = rendered(&serde_json::json!({
        "replicaCount": 3,
        "sharding": {"enabled": true, "safetyNet": "15m"},
        "persistence": {"enabled": true}
    }));
    let expected: BTreeSet<String> = [
        "ConfigMap",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds(&docs), expected, "no shared claim, no Deployment");
    let set = find(&docs, "StatefulSet");
    assert_eq!(set["spec"]["replicas"], 3);
    assert_eq!(
        set["spec"]["serviceName"],
        find(&docs, "Service")["metadata"]["name"]
    );
    let spec = &set["spec"]["template"]["spec"];
    let env = spec["containers"][0]["env"].as_array().unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
            .clone()
    };
    assert_eq!(
        value("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(value("IMAGEBUMP_SHARD")["value"], "$(POD_NAME)/3");
    assert_eq!(value("IMAGEBUMP_SHARD_SAFETY_NET")["value"], "15m");
    // The daemon takes what Kubernetes makes of `$(POD_NAME)/3` for pod ib-imagebump-2.
    let dir = tempfile::tempdir().unwrap();
    let out = Imagebump::new(["run", "--config"])
        .arg(dir.path().join("missing.yaml"))
        .env("IMAGEBUMP_SHARD", "ib-imagebump-2/3")
        .output();
    assert!(!text(&out).contains("invalid shard"), "{}", text(&out));
    // Each replica's own clone cache.
    let claims = set["spec"]["volumeClaimTemplates"].as_array().unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["metadata"]["name"], "cache");
    let volumes = spec["volumes"].as_array().unwrap();
    assert!(!volumes.iter().any(|v| v["name"] == "cache"), "{volumes:?}");
    let mounts = spec["containers"][0]["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().any(|m| m["name"] == "cache"), "{mounts:?}");

    // Sharded without persistence: an emptyDir per pod.
    let docs = rendered(&serde_json::json!({"replicaCount": 2, "sharding": {"enabled": true}}));
    let spec = &find(&docs, "StatefulSet")["spec"]["template"]["spec"];
    let cache = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "cache")
        .unwrap();
    assert!(cache["emptyDir"].is_object(), "{cache}");

    // Several unsharded replicas cannot share one ReadWriteOnce claim: refused with the fix.
    let result = helm(&serde_json::json!({"replicaCount": 2, "persistence": {"enabled": true}}));
    assert_eq!(result["manifests"], Value::Null, "{result:#}");
    let error = result["render_error"].as_str().unwrap_or_default();
    assert!(error.contains("needs sharding.enabled"), "{result:#}");
}

#[test]
fn helm_rejects_a_misspelt_value_too() {
    let result = helm(&serde_json::json!({"serviceMonitor": {"enabeld": true}}));
    let error = result["schema_error"].as_str().expect("a schema error");
    assert!(error.contains("enabeld"), "{error}");
}

#[test]
fn a_config_change_rolls_the_pod() {
    let checksum = |values: Value| {
        let docs = rendered(&values);
        find(&docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = checksum(serde_json::json!({}));
    assert_eq!(before.len(), 64);
    assert_ne!(
        before,
        checksum(serde_json::json!({"config": {"interval": "5m"}}))
    );
}

#[test]
fn the_deploy_guides_example_values_render_and_validate() {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy.md"))
            .unwrap();
    // The first ```yaml block that sets `config:` is the guide's my-values.yaml.
    let block = guide
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|b| b.trim_start().starts_with("config:"))
        .expect("docs/deploy.md has a my-values.yaml example");
    let indent = block.len() - block.trim_start().len();
    let unindented: String = block
        .lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    let values: Value = yaml_serde::from_str(&unindented).unwrap();
    let docs = rendered(&values);
    let out = validate_rendered_config(&docs);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok (1 apps, 1 images)"),
        "{}",
        text(&out)
    );
}

/// The Secrets `kubectl create secret generic` commands create: name -> keys. Reads every
/// ```sh block of `section` (from its heading to the next heading of the same level).
fn secrets_created(
    markdown: &str,
    heading: &str,
) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let start = markdown
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}` section"));
    let level = heading.split(' ').next().unwrap().len();
    let rest = &markdown[start + heading.len()..];
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            let line = &rest[i..];
            let hashes = line.len() - line.trim_start_matches('#').len();
            hashes > 0 && hashes <= level && line[hashes..].starts_with(' ')
        })
        .unwrap_or(rest.len());
    let section = &rest[..end];
    let mut created = std::collections::BTreeMap::new();
    for block in section.split("```sh\n").skip(1) {
        let block = block.split("```").next().unwrap();
        let joined = block.replace("\\\n", " ");
        for line in joined.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(at) = words
                .windows(3)
                .position(|w| w == ["create", "secret", "generic"])
            else {
                continue;
            };
            let name = words[at + 3].to_string();
            let keys: &mut BTreeSet<String> = created.entry(name).or_default();
            for word in &words[at + 4..] {
                if let Some(literal) = word.strip_prefix("--from-literal=") {
                    keys.insert(literal.split('=').next().unwrap().to_string());
                } else if let Some(file) = word.strip_prefix("--from-file=") {
                    let key = match file.split_once('=') {
                        Some((key, _)) => key,
                        None => file.rsplit('/').next().unwrap(),
                    };
                    keys.insert(key.to_string());
                }
            }
        }
    }
    created
}

/// The ```yaml blocks of a markdown file, unindented, in order.
fn yaml_blocks(markdown: &str) -> Vec<Value> {
    markdown
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter_map(|block| {
            let indent = block.len() - block.trim_start().len();
            let text: String = block
                .lines()
                .map(|l| l.get(indent..).unwrap_or("").trim_end())
                .collect::<Vec<_>>()
                .join("\n");
            yaml_serde::from_str(&text).ok()
        })
        .collect()
}

/// Merge `over` onto `base` as Helm merges values files: maps key by key, anything else
/// replaced.
fn helm_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(slot) => helm_merge(slot, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

/// Every absolute file path the imagebump config names (`*_file`, `docker_config`).
fn config_files(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if let (true, Some(path)) =
                    (key.ends_with("_file") || key == "docker_config", v.as_str())
                {
                    out.push(path.to_string());
                }
                config_files(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| config_files(v, out)),
        _ => {}
    }
}

/// Check a rendered chart against the Secrets some instructions create: every Secret name and
/// key the pod references exists, every file the config names is in a mounted Secret, and the
/// rendered config validates (no warning) with the pod's environment variables set.
fn check_instructions(
    what: &str,
    docs: &[Value],
    created: &std::collections::BTreeMap<String, BTreeSet<String>>,
) {
    let spec = &find(docs, "Deployment")["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let mut env_names = Vec::new();
    for env in container["env"].as_array().into_iter().flatten() {
        env_names.push(env["name"].as_str().unwrap().to_string());
        let Some(secret) = env["valueFrom"].get("secretKeyRef") else {
            continue;
        };
        let (name, key) = (
            secret["name"].as_str().unwrap(),
            secret["key"].as_str().unwrap(),
        );
        let keys = created.get(name).unwrap_or_else(|| {
            panic!("{what}: the pod reads Secret `{name}` (env {}), which the instructions never create (they create {created:?})", env["name"])
        });
        assert!(
            keys.contains(key),
            "{what}: the pod reads key `{key}` of Secret `{name}`, which the instructions create with keys {keys:?}"
        );
    }
    assert!(
        container["envFrom"].as_array().is_none_or(|e| e.is_empty()),
        "{what}: envFrom is not checked here"
    );
    // Mounted Secrets: mount path -> files in it.
    let mut mounted: Vec<String> = Vec::new();
    for volume in spec["volumes"].as_array().unwrap() {
        let Some(secret) = volume.get("secret") else {
            continue;
        };
        let name = secret["secretName"].as_str().unwrap();
        let keys = created.get(name).unwrap_or_else(|| {
            panic!("{what}: the pod mounts Secret `{name}`, which the instructions never create (they create {created:?})")
        });
        let mount = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume["name"])
            .unwrap_or_else(|| panic!("{what}: volume {} is not mounted", volume["name"]));
        let path = mount["mountPath"].as_str().unwrap().trim_end_matches('/');
        match secret["items"].as_array() {
            Some(items) => {
                for item in items {
                    let key = item["key"].as_str().unwrap();
                    assert!(
                        keys.contains(key),
                        "{what}: Secret `{name}` has no key `{key}`"
                    );
                    mounted.push(format!("{path}/{}", item["path"].as_str().unwrap()));
                }
            }
            None => mounted.extend(keys.iter().map(|k| format!("{path}/{k}"))),
        }
    }
    let configmap = find(docs, "ConfigMap");
    let mut files = Vec::new();
    for (_, content) in configmap["data"].as_object().unwrap() {
        let parsed: Value = yaml_serde::from_str(content.as_str().unwrap()).unwrap();
        config_files(&parsed, &mut files);
    }
    for file in &files {
        assert!(
            mounted.contains(file),
            "{what}: the config names {file}, which no mounted Secret holds (mounted: {mounted:?})"
        );
    }
    // The rendered config validates with the pod's variables set, without a warning.
    let dir = tempfile::tempdir().unwrap();
    let global = {
        let volumes = spec["volumes"].as_array().unwrap();
        let config = volumes.iter().find(|v| v["name"] == "config").unwrap();
        for item in config["configMap"]["items"].as_array().unwrap() {
            let key = item["key"].as_str().unwrap();
            let mut content = configmap["data"][key].as_str().unwrap().to_string();
            if key == "imagebump.yaml" {
                let mut global: Value = yaml_serde::from_str(&content).unwrap();
                global["workdir"] = Value::String(dir.path().join("cache").display().to_string());
                content = yaml_serde::to_string(&global).unwrap();
            }
            let file = dir.path().join(item["path"].as_str().unwrap());
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        dir.path().join("imagebump.yaml")
    };
    let out = Imagebump::new(["validate"])
        .config(&global)
        .envs(
            env_names
                .iter()
                .map(|name| (name, "0123456789abcdef0123456789abcdef")),
        )
        .output();
    assert!(out.status.success(), "{what}: {}", text(&out));
    // The only warnings allowed: files the pod mounts (checked above) that this machine lacks.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines() {
        let mounted_file = line
            .split_once(" names ")
            .and_then(|(_, rest)| rest.split_once(", which does not exist"))
            .is_some_and(|(file, _)| mounted.iter().any(|m| m == file));
        assert!(mounted_file, "{what}: validate warns: {}", text(&out));
    }
}

#[test]
fn the_readme_and_deploy_quickstarts_create_every_secret_and_file_the_pod_needs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let guide = std::fs::read_to_string(root.join("docs/deploy.md")).unwrap();
    let blocks = yaml_blocks(&guide);
    let guide_values = blocks
        .iter()
        .find(|b| b.get("config").is_some())
        .expect("docs/deploy.md has a my-values.yaml example")
        .clone();
    let docs = rendered(&guide_values);

    // The README's cluster quickstart with the guide's values.
    let readme_secrets = secrets_created(&readme, "## Quickstart: cluster");
    check_instructions("README quickstart", &docs, &readme_secrets);
    // The guide's own quickstart.
    let guide_secrets = secrets_created(&guide, "## Quickstart");
    check_instructions("docs/deploy.md quickstart", &docs, &guide_secrets);
    assert_eq!(
        readme_secrets, guide_secrets,
        "README and docs/deploy.md create the same Secrets"
    );
    // The chart's README, with the guide's values.
    let chart_readme = std::fs::read_to_string(chart().join("README.md")).unwrap();
    let chart_secrets = secrets_created(&chart_readme, "# imagebump Helm chart");
    check_instructions("chart README", &docs, &chart_secrets);

    // The guide's files section: its Secrets on top, its values file merged by Helm.
    let mut with_files = guide_secrets.clone();
    with_files.extend(secrets_created(&guide, "## Files from Secrets"));
    let extra = blocks
        .iter()
        .find(|b| b.get("secretMounts").is_some() && b.get("apps").is_none())
        .expect("docs/deploy.md's files section has a values file");
    let mut merged = guide_values.clone();
    helm_merge(&mut merged, extra);
    let docs = rendered(&merged);
    let mut files = Vec::new();
    config_files(&merged["config"], &mut files);
    assert!(
        files.len() >= 4,
        "the files section names its files: {files:?}"
    );
    check_instructions("docs/deploy.md files section", &docs, &with_files);

    // The chart's defaults name the same Secrets and keys.
    let defaults = values();
    for (var, r) in defaults["envFromSecrets"].as_object().unwrap() {
        let (name, key) = (
            r["secretName"].as_str().unwrap(),
            r["key"].as_str().unwrap(),
        );
        assert!(
            readme_secrets.get(name).is_some_and(|k| k.contains(key)),
            "the chart's default {var} reads {name}/{key}, which the README does not create"
        );
    }
}
