//! Argo CD Image Updater -> imagebump config: `Application`s and `ApplicationSet`s
//! (`argoproj.io/v1alpha1`) configured by `argocd-image-updater.argoproj.io/*` annotations,
//! v1 `ImageUpdater` resources (`argocd-image-updater.argoproj.io/v1alpha1`) with the
//! Applications they select, and the updater's `argocd-image-updater-config` ConfigMap
//! (`registries.conf`, `git.user`, `git.email`, `git.commit-message-template`).
//!
//! One app per Argo CD Application that has updater settings, named after it; one image per
//! image-list entry (or `images[]` item), named after its alias. Where Argo writes is read
//! from the Application: its source's repo URL, path and target revision, overridden by the
//! `git-repository`, `git-branch` and `write-back-target` settings. Argo's default targets
//! (the Application itself, or a `.argocd-source-<app>.yaml` override file) have no
//! imagebump equivalent: imagebump edits the Helm values file or the kustomization in place,
//! and the report says so.
//!
//! Design choice: annotations and `ImageUpdater` fields are first gathered into one shape
//! ([`AppSettings`]), each value with the object and field it came from, so both inputs are
//! translated, and reported, by the same code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use yaml_serde::Value;

use super::flux::SECRETS_DIR;
use super::selector::LabelSelector;
use super::{
    AppOut, ImageOut, ImportError, Imported, Object, Outcome, PullRequestOut, RegistryOut,
    TargetOut, render::q,
};
use crate::reference::ImageRef;

/// The annotation prefix of Argo CD Image Updater.
pub const PREFIX: &str = "argocd-image-updater.argoproj.io/";
const ARGO_API: &str = "argoproj.io/v1alpha1";
const UPDATER_API: &str = "argocd-image-updater.argoproj.io/v1alpha1";
const CONFIG_MAP: &str = "argocd-image-updater-config";

/// Options of `imagebump import argo`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A local checkout of the config repo: tells Helm from Kustomize sources when the
    /// Application does not say, and finds the kustomization file's name.
    pub repo_dir: Option<PathBuf>,
}

/// Where a setting came from: the object and its field, for the report and errors.
#[derive(Debug, Clone)]
struct At<'a> {
    object: &'a Object,
    field: String,
}

impl<'a> At<'a> {
    fn new(object: &'a Object, field: impl Into<String>) -> Self {
        At {
            object,
            field: field.into(),
        }
    }

    fn note(&self, out: &mut Imported, outcome: Outcome, message: impl Into<String>) {
        out.note(outcome, self.object, &self.field, message);
    }

    fn error(&self, message: impl Into<String>) -> ImportError {
        self.object.error(&self.field, message)
    }
}

/// A setting's value and where it came from.
#[derive(Debug, Clone)]
struct Setting<'a> {
    value: String,
    at: At<'a>,
}

/// The update settings of one image (`commonUpdateSettings`, or the per-alias annotations).
#[derive(Debug, Clone, Default)]
struct UpdateSettings<'a> {
    strategy: Option<Setting<'a>>,
    force_update: Option<Setting<'a>>,
    allow_tags: Option<Setting<'a>>,
    /// Each glob; the list's origin.
    ignore_tags: Option<(Vec<String>, At<'a>)>,
    pull_secret: Option<Setting<'a>>,
    platforms: Option<(Vec<String>, At<'a>)>,
}

impl<'a> UpdateSettings<'a> {
    /// `self`, with the fields it lacks taken from `defaults`.
    fn or(self, defaults: &UpdateSettings<'a>) -> UpdateSettings<'a> {
        UpdateSettings {
            strategy: self.strategy.or_else(|| defaults.strategy.clone()),
            force_update: self.force_update.or_else(|| defaults.force_update.clone()),
            allow_tags: self.allow_tags.or_else(|| defaults.allow_tags.clone()),
            ignore_tags: self.ignore_tags.or_else(|| defaults.ignore_tags.clone()),
            pull_secret: self.pull_secret.or_else(|| defaults.pull_secret.clone()),
            platforms: self.platforms.or_else(|| defaults.platforms.clone()),
        }
    }
}

/// One image to update.
#[derive(Debug, Clone)]
struct ImageSettings<'a> {
    alias: String,
    /// The image-list entry or `imageName`.
    at: At<'a>,
    image: ImageRef,
    /// The image as written, without the constraint.
    written: String,
    /// `image:constraint`'s constraint.
    constraint: Option<String>,
    update: UpdateSettings<'a>,
    helm_name: Option<Setting<'a>>,
    helm_tag: Option<Setting<'a>>,
    helm_spec: Option<Setting<'a>>,
    kustomize_name: Option<Setting<'a>>,
}

/// Where and how updates are written.
#[derive(Debug, Clone, Default)]
struct WriteSettings<'a> {
    method: Option<Setting<'a>>,
    branch: Option<Setting<'a>>,
    repository: Option<Setting<'a>>,
    target: Option<Setting<'a>>,
    /// `gitConfig.pullRequest`'s forge (`github`, `gitlab`, …).
    pull_request: Option<Setting<'a>>,
}

impl<'a> WriteSettings<'a> {
    fn or(self, defaults: &WriteSettings<'a>) -> WriteSettings<'a> {
        WriteSettings {
            method: self.method.or_else(|| defaults.method.clone()),
            branch: self.branch.or_else(|| defaults.branch.clone()),
            repository: self.repository.or_else(|| defaults.repository.clone()),
            target: self.target.or_else(|| defaults.target.clone()),
            pull_request: self.pull_request.or_else(|| defaults.pull_request.clone()),
        }
    }
}

/// Everything the updater knows of one Application.
#[derive(Debug, Clone)]
struct AppSettings<'a> {
    images: Vec<ImageSettings<'a>>,
    write: WriteSettings<'a>,
    /// The `ImageUpdater` that selected the app, if any (else its annotations).
    updater: Option<&'a Object>,
}

/// Translate Argo CD and Argo CD Image Updater objects.
pub fn translate(objects: &[Object], options: &Options) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    for object in objects {
        check_version(object)?;
    }
    let mut commit_message = None;
    for object in objects.iter().filter(|o| o.kind == "ConfigMap") {
        commit_message = config_map(object, &mut out)?.or(commit_message);
    }
    let mut applications: Vec<Object> = Vec::new();
    for object in objects {
        match object.kind.as_str() {
            "Application" => applications.push(object.clone()),
            "ApplicationSet" => applications.extend(application_set(object, &mut out)?),
            _ => {}
        }
    }
    let updaters: Vec<&Object> = objects
        .iter()
        .filter(|o| o.kind == "ImageUpdater")
        .collect();
    // Which ImageUpdater (and which of its applicationRefs) selects each Application.
    let mut selected: BTreeMap<usize, (&Object, usize)> = BTreeMap::new();
    let mut selections = Vec::new();
    for updater in &updaters {
        selections.extend(select(updater, &applications, &mut selected, &mut out)?);
    }
    // The Applications an app is written for.
    let mut written = BTreeSet::new();
    let mut apps: Vec<(AppOut, &Object)> = Vec::new();
    for (index, application) in applications.iter().enumerate() {
        let settings = match selected.get(&index) {
            Some((updater, reference)) => {
                if has_annotations(application)? && !uses_annotations(updater, *reference) {
                    out.note(
                        Outcome::NoEquivalent,
                        application,
                        "metadata.annotations",
                        format!(
                            "ignored: {} selects this Application, and the updater reads its settings instead",
                            updater.id()
                        ),
                    );
                }
                updater_settings(updater, *reference, application, &mut out)?
            }
            None => match annotation_settings(application, &mut out)? {
                Some(settings) => settings,
                None => continue,
            },
        };
        match build_app(application, &settings, options, &mut out)? {
            Some(mut app) => {
                if let Some(message) = &commit_message {
                    app.commit_message = Some(message.clone());
                }
                written.insert(index);
                apps.push((app, application));
            }
            // What was read for it (its source, images, the updater's settings for it) is
            // written nowhere: the report must not say `translated`.
            None => {
                let id = application.id();
                let updater = settings.updater.map(Object::id);
                // The updater's notes about this Application: `Application NAME: …` or
                // `Application NAME, image …: …`.
                let about = format!("Application {}", application.name);
                out.not_written_if("no app is written for the Application", |note| {
                    note.object == id
                        || (Some(&note.object) == updater.as_ref()
                            && note
                                .message
                                .strip_prefix(&about)
                                .is_some_and(|rest| rest.starts_with([':', ','])))
                });
            }
        }
    }
    let mut names: BTreeMap<String, &Object> = BTreeMap::new();
    for (app, application) in &apps {
        if let Some(first) = names.insert(app.name.clone(), application) {
            return Err(application.error(
                "metadata.name",
                format!(
                    "app `{}` is also imported from {first}: give the input each Application once",
                    app.name
                ),
            ));
        }
    }
    for selection in &selections {
        selection.report(&applications, &selected, &written, &mut out);
    }
    out.apps = apps.into_iter().map(|(app, _)| app).collect();
    out.apps.sort_by(|a, b| a.name.cmp(&b.name));
    out.nothing_written();
    Ok(out)
}

fn check_version(object: &Object) -> Result<(), ImportError> {
    let expected = match object.kind.as_str() {
        "Application" | "ApplicationSet" => ARGO_API,
        "ImageUpdater" => UPDATER_API,
        "ConfigMap" => {
            if object.name != CONFIG_MAP {
                return Err(object.error(
                    "metadata.name",
                    format!(
                        "only the `{CONFIG_MAP}` ConfigMap is read, not `{}`",
                        object.name
                    ),
                ));
            }
            "v1"
        }
        other => {
            return Err(object.error(
                "kind",
                format!(
                    "`{other}` is not an Argo CD Image Updater input: expected Application, ApplicationSet, ImageUpdater or the {CONFIG_MAP} ConfigMap"
                ),
            ));
        }
    };
    if object.api_version != expected {
        return Err(object.error(
            "apiVersion",
            format!(
                "`{}` is not supported: expected {expected}",
                object.api_version
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Small readers over YAML values, with the field path for errors.

fn get<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    value.as_mapping()?.get(key).filter(|v| !v.is_null())
}

fn text_at(object: &Object, value: &Value, field: &str) -> Result<Option<String>, ImportError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(object.error(field, "expected a string")),
    }
}

fn string<'a>(
    object: &'a Object,
    parent: &Value,
    parent_field: &str,
    key: &str,
) -> Result<Option<Setting<'a>>, ImportError> {
    let field = join(parent_field, key);
    let Some(value) = get(parent, key) else {
        return Ok(None);
    };
    Ok(text_at(object, value, &field)?.map(|value| Setting {
        value,
        at: At::new(object, field),
    }))
}

fn strings<'a>(
    object: &'a Object,
    parent: &Value,
    parent_field: &str,
    key: &str,
) -> Result<Option<(Vec<String>, At<'a>)>, ImportError> {
    let field = join(parent_field, key);
    match get(parent, key) {
        None => Ok(None),
        Some(Value::Sequence(items)) => {
            let mut list = Vec::new();
            for item in items {
                match text_at(object, item, &field)? {
                    Some(s) => list.push(s),
                    None => return Err(object.error(&field, "expected a list of strings")),
                }
            }
            Ok(Some((list, At::new(object, field))))
        }
        Some(_) => Err(object.error(&field, "expected a list of strings")),
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Report every key of the mapping at `field` not in `known` as having no equivalent.
fn unknown_keys(object: &Object, value: &Value, field: &str, known: &[&str], out: &mut Imported) {
    if let Some(map) = value.as_mapping() {
        for key in map.keys().filter_map(Value::as_str) {
            if !known.contains(&key) {
                out.note(
                    Outcome::NoEquivalent,
                    object,
                    &join(field, key),
                    "not understood by imagebump import: dropped",
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The ConfigMap: registries.conf and the git settings.

fn config_map(object: &Object, out: &mut Imported) -> Result<Option<String>, ImportError> {
    let data = object.string_map("data")?;
    let mut commit_message = None;
    let mut author = (None, None);
    for (key, value) in &data {
        let field = format!("data.{key}");
        let at = At::new(object, field.clone());
        match key.as_str() {
            "registries.conf" => registries_conf(object, &field, value, out)?,
            "git.user" => author.0 = Some(value.clone()),
            "git.email" => author.1 = Some(value.clone()),
            "git.commit-message-template" => {
                commit_message = commit_template(&at, value, out);
            }
            "log.level" => at.note(
                out,
                Outcome::NoEquivalent,
                "pass `--log-level` to `imagebump run` (the chart's `logLevel`)",
            ),
            "interval" => at.note(
                out,
                Outcome::NoEquivalent,
                format!("set `interval: {value}` in the global file if it is an imagebump duration (`2m`)"),
            ),
            _ => at.note(
                out,
                Outcome::NoEquivalent,
                "not understood by imagebump import: dropped",
            ),
        }
    }
    match author {
        (None, None) => {}
        (name, email) => {
            let name = name.unwrap_or_else(|| "argocd-image-updater".to_string());
            let email = email.unwrap_or_else(|| "noreply@argoproj.io".to_string());
            out.note(
                Outcome::Translated,
                object,
                "data.git.user",
                format!("`git.author: {name} <{email}>` in the global file"),
            );
            out.global.author = Some((name, email));
        }
    }
    Ok(commit_message)
}

fn registries_conf(
    object: &Object,
    field: &str,
    text: &str,
    out: &mut Imported,
) -> Result<(), ImportError> {
    let value: Value = yaml_serde::from_str(text).map_err(|e| object.not_yaml(field, text, &e))?;
    let list = match get(&value, "registries") {
        None => return Ok(()),
        Some(Value::Sequence(list)) => list.clone(),
        Some(_) => return Err(object.error(field, "`registries` must be a list")),
    };
    for (index, entry) in list.iter().enumerate() {
        let entry_field = format!("{field}: registries[{index}]");
        let Some(prefix) = string(object, entry, &entry_field, "prefix")? else {
            return Err(object.error(&entry_field, "`prefix` is required but missing"));
        };
        let prefix = prefix.value;
        let mut registry = RegistryOut {
            prefix: prefix.clone(),
            ..RegistryOut::default()
        };
        let at = |key: &str| At::new(object, format!("{entry_field}.{key}"));
        if let Some(api) = string(object, entry, &entry_field, "api_url")? {
            if api.value.starts_with("http://") {
                registry.insecure = true;
                api.at.note(
                    out,
                    Outcome::Translated,
                    format!("`insecure: true` (plain HTTP) on registries[] `{prefix}`"),
                );
            } else if !api.value.starts_with("https://") {
                return Err(api.at.error("expected an http:// or https:// URL"));
            } else {
                let host = api
                    .value
                    .trim_start_matches("https://")
                    .trim_end_matches('/');
                let outcome = if prefix.starts_with(host) {
                    Outcome::Translated
                } else {
                    Outcome::Approximated
                };
                api.at.note(
                    out,
                    outcome,
                    format!("imagebump asks the registry named in the image (`{prefix}`) itself"),
                );
            }
        }
        if let Some(insecure) = string(object, entry, &entry_field, "insecure")?
            && matches!(insecure.value.as_str(), "yes" | "true")
        {
            insecure.at.note(
                out,
                Outcome::NoEquivalent,
                "imagebump never skips TLS verification: give the registry's CA in `ca_file`",
            );
        }
        if let Some(credentials) = string(object, entry, &entry_field, "credentials")? {
            pull_secret(&credentials, &mut registry, out)?;
        }
        if let Some(limit) = string(object, entry, &entry_field, "limit")? {
            match limit.value.parse::<f64>() {
                Ok(rate) if rate > 0.0 => {
                    registry.requests_per_second = Some(limit.value.clone());
                    limit.at.note(
                        out,
                        Outcome::Translated,
                        format!("`requests_per_second: {}`", limit.value),
                    );
                }
                _ => return Err(limit.at.error("expected a number of requests per second")),
            }
        }
        for (key, why) in [
            (
                "default",
                "imagebump has no default registry: images name their registry (`docker.io` when they name none)",
            ),
            (
                "defaultns",
                "imagebump has no default namespace: images name it (`library/` on docker.io when they name none)",
            ),
            ("credsexpire", "credentials are read on every pass"),
            ("tagsortmode", "imagebump sorts the tags itself"),
        ] {
            if get(entry, key).is_some() {
                at(key).note(out, Outcome::NoEquivalent, why);
            }
        }
        if get(entry, "name").is_some() || get(entry, "ping").is_some() {
            at("name").note(
                out,
                Outcome::Translated,
                format!("registries[] `{prefix}` (name and ping are not needed)"),
            );
        }
        merge_registry(&mut out.global.registries, registry);
    }
    Ok(())
}

fn merge_registry(registries: &mut Vec<RegistryOut>, registry: RegistryOut) {
    let empty = RegistryOut {
        prefix: registry.prefix.clone(),
        ..RegistryOut::default()
    };
    match registries.iter_mut().find(|r| r.prefix == registry.prefix) {
        Some(existing) => {
            existing.insecure |= registry.insecure;
            if registry.docker_config.is_some() {
                existing.docker_config = registry.docker_config;
            }
            if !registry.platforms.is_empty() {
                existing.platforms = registry.platforms;
            }
            if registry.requests_per_second.is_some() {
                existing.requests_per_second = registry.requests_per_second;
            }
        }
        None if registry != empty => registries.push(registry),
        None => {}
    }
}

/// A pull secret (`pullsecret:ns/name`, `secret:ns/name#field`, `env:VAR`, `ext:/path`).
fn pull_secret(
    setting: &Setting,
    registry: &mut RegistryOut,
    out: &mut Imported,
) -> Result<(), ImportError> {
    let value = setting.value.trim();
    let (kind, rest) = value.split_once(':').ok_or_else(|| {
        setting
            .at
            .error("expected pullsecret:NS/NAME, secret:NS/NAME#FIELD, env:VAR or ext:/PATH")
    })?;
    match kind {
        "pullsecret" => {
            let name = rest.rsplit('/').next().unwrap_or(rest);
            let path = format!("{SECRETS_DIR}/{name}/.dockerconfigjson");
            setting.at.note(
                out,
                Outcome::Translated,
                format!(
                    "`docker_config: {path}` on registries[] `{}`: mount Secret {rest} at {SECRETS_DIR}/{name}",
                    registry.prefix
                ),
            );
            registry.docker_config = Some(path);
        }
        "secret" => setting.at.note(
            out,
            Outcome::NoEquivalent,
            format!(
                "`{value}` holds `user:password` in one field; imagebump takes them apart: give registries[] `{}` a `username` and `password_env` (or a `docker_config`)",
                registry.prefix
            ),
        ),
        "env" => setting.at.note(
            out,
            Outcome::NoEquivalent,
            format!(
                "`{rest}` holds `user:password`; imagebump takes them apart: give registries[] `{}` a `username` and `password_env` naming a variable with the password alone",
                registry.prefix
            ),
        ),
        "ext" => setting.at.note(
            out,
            Outcome::NoEquivalent,
            format!(
                "credential scripts are not run by imagebump: give registries[] `{}` a `docker_config` (its `credHelpers` run helpers) or `token_env`",
                registry.prefix
            ),
        ),
        _ => {
            return Err(setting.at.error(format!(
                "`{kind}:` is not a credential source: expected pullsecret:, secret:, env: or ext:"
            )));
        }
    }
    Ok(())
}

/// Argo's commit message template (Go `text/template`) as a minijinja one: plain text is kept
/// and `{{ .AppName }}` becomes `{{ app }}`; anything else gets the default message, noted.
fn commit_template(at: &At, template: &str, out: &mut Imported) -> Option<String> {
    let app_name = regex::Regex::new(r"\{\{-?\s*\.AppName\s*-?\}\}").ok()?;
    let rest = app_name.replace_all(template, "");
    if rest.contains("{{") || rest.contains("{%") || rest.contains("{#") {
        at.note(
            out,
            Outcome::Approximated,
            "uses Go template fields with no one-to-one match (`.AppChanges`): the default message (one line per change) is used; write `commit_message` with `changes` (docs/pull-requests.md)",
        );
        return None;
    }
    at.note(out, Outcome::Translated, "`commit_message` of every app");
    Some(app_name.replace_all(template, "{{ app }}").into_owned())
}

// ---------------------------------------------------------------------------------------------
// ApplicationSets: the list generator is expanded here; other generators need the cluster.

/// What a generator other than `list` needs that an offline import does not have.
fn generator_needs(kinds: &[&str]) -> &'static str {
    match kinds {
        ["git"] => "it reads the repository's directories or files",
        ["clusters"] => "it reads the cluster Secrets Argo CD holds",
        ["matrix" | "merge"] => "it combines other generators' parameters",
        ["scmProvider"] => "it lists repositories on the forge",
        ["pullRequest"] => "it lists open pull requests on the forge",
        ["clusterDecisionResource"] => "it reads a custom resource in the cluster",
        ["plugin"] => "it calls a plugin service",
        _ => "not a generator this import knows",
    }
}

fn application_set(object: &Object, out: &mut Imported) -> Result<Vec<Object>, ImportError> {
    let Some(template) = object.at("spec.template") else {
        return Err(object.error("spec.template", "is required but missing"));
    };
    let generators = match object.at("spec.generators") {
        Some(Value::Sequence(list)) => list.clone(),
        _ => return Err(object.error("spec.generators", "expected a list of generators")),
    };
    let mut apps = Vec::new();
    for (index, generator) in generators.iter().enumerate() {
        let field = format!("spec.generators[{index}]");
        let Some(map) = generator.as_mapping() else {
            return Err(object.error(&field, "expected a generator"));
        };
        let kinds: Vec<&str> = map.keys().filter_map(Value::as_str).collect();
        if kinds != ["list"] {
            out.note(
                Outcome::NoEquivalent,
                object,
                &format!("{field}.{}", kinds.join(",")),
                format!(
                    "{} generator: only list generators are expanded offline ({}): import the Applications this one generates instead (`kubectl get applications -n {} -o yaml`)",
                    kinds.join(","),
                    generator_needs(&kinds),
                    object.namespace
                ),
            );
            continue;
        }
        let elements = match get(generator, "list").and_then(|l| get(l, "elements")) {
            Some(Value::Sequence(elements)) => elements.clone(),
            _ => {
                return Err(object.error(
                    &format!("{field}.list.elements"),
                    "expected a list of parameter mappings",
                ));
            }
        };
        let mut names = Vec::new();
        for (element_index, element) in elements.iter().enumerate() {
            let element_field = format!("{field}.list.elements[{element_index}]");
            let mut params = BTreeMap::new();
            flatten("", element, &mut params);
            let rendered = render_template(template, &params)
                .map_err(|placeholder| {
                    object.error(
                        "spec.template",
                        format!(
                            "`{placeholder}` is not a parameter of {element_field} (this import fills in `{{{{name}}}}`, `{{{{.name}}}}` and `{{{{values.name}}}}`)"
                        ),
                    )
                })?;
            let mut value = yaml_serde::Mapping::new();
            value.insert("apiVersion".into(), ARGO_API.into());
            value.insert("kind".into(), "Application".into());
            if let Some(Value::Mapping(template)) = Some(rendered) {
                for (k, v) in template {
                    value.insert(k, v);
                }
            }
            let value = Value::Mapping(value);
            let name = get(&value, "metadata")
                .and_then(|m| get(m, "name"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    object.error("spec.template.metadata.name", "is required but missing")
                })?;
            let namespace = get(&value, "metadata")
                .and_then(|m| get(m, "namespace"))
                .and_then(Value::as_str)
                .unwrap_or(&object.namespace)
                .to_string();
            names.push(name.clone());
            apps.push(Object {
                origin: object.origin.generated(
                    "spec.template",
                    &element_field,
                    format!("{} {element_field}", object.id()),
                ),
                api_version: ARGO_API.to_string(),
                kind: "Application".to_string(),
                name,
                namespace,
                value,
            });
        }
        out.note(
            Outcome::Translated,
            object,
            &format!("{field}.list"),
            format!("expanded to the Applications {}", names.join(", ")),
        );
    }
    Ok(apps)
}

/// `{"a": {"b": 1}}` -> `a.b = 1`; only scalars become parameters.
fn flatten(prefix: &str, value: &Value, params: &mut BTreeMap<String, String>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                if let Some(k) = k.as_str() {
                    flatten(&join(prefix, k), v, params);
                }
            }
        }
        Value::String(s) => {
            params.insert(prefix.to_string(), s.clone());
        }
        Value::Number(n) => {
            params.insert(prefix.to_string(), n.to_string());
        }
        Value::Bool(b) => {
            params.insert(prefix.to_string(), b.to_string());
        }
        _ => {}
    }
}

/// Fill `{{name}}` / `{{ .name }}` placeholders in every string of `template`; the error is a
/// placeholder with no parameter.
fn render_template(template: &Value, params: &BTreeMap<String, String>) -> Result<Value, String> {
    match template {
        Value::String(s) => Ok(Value::String(fill(s, params)?)),
        Value::Mapping(map) => {
            let mut rendered = yaml_serde::Mapping::new();
            for (k, v) in map {
                let k = match k {
                    Value::String(s) => Value::String(fill(s, params)?),
                    other => other.clone(),
                };
                rendered.insert(k, render_template(v, params)?);
            }
            Ok(Value::Mapping(rendered))
        }
        Value::Sequence(items) => items
            .iter()
            .map(|item| render_template(item, params))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Sequence),
        other => Ok(other.clone()),
    }
}

fn fill(text: &str, params: &BTreeMap<String, String>) -> Result<String, String> {
    let mut result = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + len].trim();
        let key = inner.strip_prefix('.').unwrap_or(inner);
        let value = params
            .get(key)
            .ok_or_else(|| rest[start..start + len + 2].to_string())?;
        result.push_str(&rest[..start]);
        result.push_str(value);
        rest = &rest[start + len + 2..];
    }
    result.push_str(rest);
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Settings from annotations.

fn annotations(application: &Object) -> Result<Vec<(String, String)>, ImportError> {
    application.string_map("metadata.annotations")
}

/// Whether `applicationRefs[reference]` of `updater` reads the Application's annotations.
fn uses_annotations(updater: &Object, reference: usize) -> bool {
    match updater.at("spec.applicationRefs") {
        Some(Value::Sequence(refs)) => {
            refs.get(reference)
                .and_then(|r| get(r, "useAnnotations"))
                .and_then(Value::as_bool)
                == Some(true)
        }
        _ => false,
    }
}

fn has_annotations(application: &Object) -> Result<bool, ImportError> {
    Ok(annotations(application)?
        .iter()
        .any(|(k, _)| k.starts_with(PREFIX)))
}

/// The updater settings in an Application's annotations; `None` without `image-list`.
fn annotation_settings<'a>(
    application: &'a Object,
    out: &mut Imported,
) -> Result<Option<AppSettings<'a>>, ImportError> {
    let all = annotations(application)?;
    let mine: BTreeMap<String, String> = all
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(PREFIX).map(|k| (k.to_string(), v)))
        .collect();
    let setting = |key: &str| {
        mine.get(key).map(|value| Setting {
            value: value.clone(),
            at: At::new(application, format!("{PREFIX}{key}")),
        })
    };
    let Some(list) = setting("image-list") else {
        if !mine.is_empty() {
            out.note(
                Outcome::NoEquivalent,
                application,
                "metadata.annotations",
                format!("no `{PREFIX}image-list`: Argo updates nothing here, nothing imported"),
            );
        }
        return Ok(None);
    };
    let mut used: Vec<String> = vec!["image-list".to_string()];
    let app_wide = update_settings_from(&setting, "", &mut used)?;
    let mut images = Vec::new();
    for entry in list
        .value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (alias, spec) = match entry.split_once('=') {
            Some((alias, spec)) => (Some(alias.trim().to_string()), spec.trim()),
            None => (None, entry),
        };
        let (written, constraint) = split_constraint(spec);
        let image =
            ImageRef::parse(written).map_err(|e| list.at.error(format!("`{entry}`: {e}")))?;
        // Options are keyed by the alias, or the image name, `/` written as `_`.
        let key = alias
            .clone()
            .unwrap_or_else(|| written.to_string())
            .replace('/', "_");
        let prefix = format!("{key}.");
        let update = update_settings_from(&setting, &prefix, &mut used)?.or(&app_wide);
        let mut take = |name: &str| {
            let key = format!("{prefix}{name}");
            used.push(key.clone());
            setting(&key)
        };
        images.push(ImageSettings {
            alias: alias.unwrap_or_else(|| last_part(&image)),
            at: list.at.clone(),
            written: written.to_string(),
            image,
            constraint,
            update,
            helm_name: take("helm.image-name"),
            helm_tag: take("helm.image-tag"),
            helm_spec: take("helm.image-spec"),
            kustomize_name: take("kustomize.image-name"),
        });
    }
    if images.is_empty() {
        return Err(list.at.error("lists no image"));
    }
    let write = WriteSettings {
        method: setting("write-back-method"),
        branch: setting("git-branch"),
        repository: setting("git-repository"),
        target: setting("write-back-target"),
        pull_request: None,
    };
    used.extend(
        [
            "write-back-method",
            "git-branch",
            "git-repository",
            "write-back-target",
        ]
        .map(str::to_string),
    );
    for key in mine.keys() {
        if !used.contains(key) {
            out.note(
                Outcome::NoEquivalent,
                application,
                &format!("{PREFIX}{key}"),
                "not understood by imagebump import (an alias missing from image-list?): dropped",
            );
        }
    }
    Ok(Some(AppSettings {
        images,
        write,
        updater: None,
    }))
}

fn update_settings_from<'a>(
    setting: &impl Fn(&str) -> Option<Setting<'a>>,
    prefix: &str,
    used: &mut Vec<String>,
) -> Result<UpdateSettings<'a>, ImportError> {
    let mut take = |name: &str| {
        let key = format!("{prefix}{name}");
        used.push(key.clone());
        setting(&key)
    };
    let comma_list = |s: Option<Setting<'a>>| {
        s.map(|s| {
            let list = s
                .value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            (list, s.at)
        })
    };
    Ok(UpdateSettings {
        strategy: take("update-strategy"),
        force_update: take("force-update"),
        allow_tags: take("allow-tags"),
        ignore_tags: comma_list(take("ignore-tags")),
        pull_secret: take("pull-secret"),
        platforms: comma_list(take("platforms")),
    })
}

/// `ghcr.io/org/app:~1.4` -> (`ghcr.io/org/app`, `~1.4`); a port's colon is not a constraint.
fn split_constraint(spec: &str) -> (&str, Option<String>) {
    let after_slash = spec.rfind('/').map(|i| i + 1).unwrap_or(0);
    match spec[after_slash..].find(':') {
        Some(i) => {
            let at = after_slash + i;
            let constraint = spec[at + 1..].trim();
            (
                &spec[..at],
                (!constraint.is_empty()).then(|| constraint.to_string()),
            )
        }
        None => (spec, None),
    }
}

fn last_part(image: &ImageRef) -> String {
    image
        .repository
        .rsplit('/')
        .next()
        .unwrap_or(&image.repository)
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Settings from an ImageUpdater.

/// The Applications one `applicationRefs[]` item selects (indices into the Applications).
struct Selection<'a> {
    updater: &'a Object,
    reference: usize,
    matched: Vec<usize>,
}

impl Selection<'_> {
    /// Report what became of each Application the item selects: `translated` only when its app
    /// is written with this item's settings. A more specific item of the same updater (or an
    /// as specific one listed earlier) may select it too (its app has that item's settings),
    /// or no app is written for it.
    fn report(
        &self,
        applications: &[Object],
        selected: &BTreeMap<usize, (&Object, usize)>,
        written: &BTreeSet<usize>,
        out: &mut Imported,
    ) {
        let field = format!("spec.applicationRefs[{}].namePattern", self.reference);
        let mut carried = Vec::new();
        for &index in &self.matched {
            let Some(name) = applications.get(index).map(|a| &a.name) else {
                continue;
            };
            match selected.get(&index) {
                Some((_, first)) if *first != self.reference => {
                    let why = if reference_specificity(self.updater, *first)
                        > reference_specificity(self.updater, self.reference)
                    {
                        "is more specific"
                    } else {
                        "is as specific and listed earlier"
                    };
                    out.note(
                        Outcome::NoEquivalent,
                        self.updater,
                        &field,
                        format!(
                            "selects {name}: not written, spec.applicationRefs[{first}] {why}: its settings apply"
                        ),
                    );
                }
                _ if !written.contains(&index) => out.note(
                    Outcome::NoEquivalent,
                    self.updater,
                    &field,
                    format!("selects {name}: not written, no app is written for the Application"),
                ),
                _ => carried.push(name.as_str()),
            }
        }
        if !carried.is_empty() {
            out.note(
                Outcome::Translated,
                self.updater,
                &field,
                format!("selects {}", carried.join(", ")),
            );
        }
    }
}

/// How specific an `applicationRefs[]` item is, ranked as Argo CD Image Updater ranks them
/// (the most specific item that selects an Application gives its settings): an exact name (no
/// glob character) above any pattern; then labelSelectors, the more labels and expressions the
/// higher; then the number of literal characters in the pattern (a `[...]` set, `*` and `?`
/// count for none). Items of the same rank keep the order they are listed in.
fn specificity(pattern: &str, selector: Option<&Value>) -> u64 {
    let mut score = 0;
    if !pattern.contains(['*', '?', '[', ']']) {
        score += 1_000_000;
    }
    let mut literals = 0u64;
    let mut in_set = false;
    for c in pattern.chars() {
        match c {
            '[' => in_set = true,
            ']' if in_set => in_set = false,
            '*' | '?' => {}
            _ if !in_set => literals += c.len_utf8() as u64,
            _ => {}
        }
    }
    score += literals;
    if let Some(selector) = selector {
        let entries = |key: &str| match get(selector, key) {
            Some(Value::Mapping(map)) => map.len() as u64,
            Some(Value::Sequence(list)) => list.len() as u64,
            _ => 0,
        };
        score += 10_000 + 100 * (entries("matchLabels") + entries("matchExpressions"));
    }
    score
}

/// [`specificity`] of `updater`'s `spec.applicationRefs[reference]` (0 when it is not there).
fn reference_specificity(updater: &Object, reference: usize) -> u64 {
    let Some(Value::Sequence(refs)) = updater.at("spec.applicationRefs") else {
        return 0;
    };
    refs.get(reference).map_or(0, |item| {
        let pattern = get(item, "namePattern")
            .and_then(Value::as_str)
            .unwrap_or_default();
        specificity(pattern, get(item, "labelSelectors"))
    })
}

/// The namespace `updater` searches for Applications: its own (current versions of Argo CD
/// Image Updater have no `spec.namespace`); an older resource's `spec.namespace` when it has
/// one, noted when it differs from its own.
fn updater_namespace(updater: &Object, out: &mut Imported) -> Result<String, ImportError> {
    let Some(namespace) = updater.str("spec.namespace")? else {
        return Ok(updater.namespace.clone());
    };
    if namespace.trim().is_empty() {
        return Err(updater.error("spec.namespace", "is empty"));
    }
    if namespace != updater.namespace {
        out.note(
            Outcome::Approximated,
            updater,
            "spec.namespace",
            format!(
                "searched namespace {namespace}; current versions of Argo CD Image Updater have no spec.namespace and search the updater's own namespace, {}",
                updater.namespace
            ),
        );
    }
    Ok(namespace)
}

/// Where the Applications an item would select are when none is in the updater's `namespace`:
/// `it matches NAMES in namespace NS: ...` with how to point the import at them (`from_spec`:
/// the namespace searched is the updater's `spec.namespace`), or `None` when no Application of
/// the input matches in any namespace.
fn elsewhere(
    applications: &[Object],
    namespace: &str,
    from_spec: bool,
    glob: &regex::Regex,
    selector: &LabelSelector,
) -> Result<Option<String>, ImportError> {
    let mut found: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for application in applications {
        if application.namespace != namespace
            && glob.is_match(&application.name)
            && selector.matches(&application.string_map("metadata.labels")?)
        {
            found
                .entry(application.namespace.as_str())
                .or_default()
                .push(application.name.as_str());
        }
    }
    let named = |names: &[&str]| match names {
        [a, b, c, rest @ ..] if !rest.is_empty() => {
            format!("{a}, {b}, {c} and {} more", rest.len())
        }
        _ => names.join(", "),
    };
    let places: Vec<String> = found
        .iter()
        .map(|(ns, names)| format!("{} in namespace {ns}", named(names)))
        .collect();
    Ok(match found.keys().collect::<Vec<_>>().as_slice() {
        [] => None,
        [only] if from_spec => Some(format!(
            "it matches {}: set the ImageUpdater's `spec.namespace` to {only}",
            places.join("; ")
        )),
        [only] => Some(format!(
            "it matches {}: give the ImageUpdater `metadata.namespace: {only}`, or import with `-n {only}`",
            places.join("; ")
        )),
        _ => Some(format!(
            "it matches {}: give each ImageUpdater the namespace of the Applications it is for",
            places.join("; ")
        )),
    })
}

/// Record which Applications each `applicationRefs[]` item of `updater` selects (the most
/// specific item that selects an Application gives its settings, see [`specificity`]).
fn select<'a>(
    updater: &'a Object,
    applications: &[Object],
    selected: &mut BTreeMap<usize, (&'a Object, usize)>,
    out: &mut Imported,
) -> Result<Vec<Selection<'a>>, ImportError> {
    unknown_keys(
        updater,
        updater.at("spec").unwrap_or(&Value::Null),
        "spec",
        &[
            "namespace",
            "commonUpdateSettings",
            "writeBackConfig",
            "applicationRefs",
        ],
        out,
    );
    let namespace = updater_namespace(updater, out)?;
    let refs = match updater.at("spec.applicationRefs") {
        Some(Value::Sequence(refs)) if !refs.is_empty() => refs,
        _ => {
            return Err(updater.error(
                "spec.applicationRefs",
                "expected a list of at least one application reference",
            ));
        }
    };
    let mut selections = Vec::new();
    for (index, reference) in refs.iter().enumerate() {
        let field = format!("spec.applicationRefs[{index}]");
        let pattern = string(updater, reference, &field, "namePattern")?
            .ok_or_else(|| {
                updater.error(&format!("{field}.namePattern"), "is required but missing")
            })?
            .value;
        let glob = glob_regex(&pattern).map_err(|e| {
            updater.error(&format!("{field}.namePattern"), format!("`{pattern}`: {e}"))
        })?;
        let rank = specificity(&pattern, get(reference, "labelSelectors"));
        let selector = match get(reference, "labelSelectors") {
            None => LabelSelector::default(),
            Some(selector) => {
                LabelSelector::parse_value(updater, selector, &format!("{field}.labelSelectors"))?
            }
        };
        let mut matched = Vec::new();
        for (app_index, application) in applications.iter().enumerate() {
            if application.namespace != namespace || !glob.is_match(&application.name) {
                continue;
            }
            let app_labels = application.string_map("metadata.labels")?;
            if !selector.matches(&app_labels) {
                continue;
            }
            if let Some((other, _)) = selected.get(&app_index)
                && !std::ptr::eq(*other, updater)
            {
                return Err(updater.error(
                    &format!("{field}.namePattern"),
                    format!(
                        "Application {} is also selected by {}: one updater per Application",
                        application.name,
                        other.id()
                    ),
                ));
            }
            // The most specific item gives the settings; of items as specific, the first.
            let outranked = selected
                .get(&app_index)
                .is_some_and(|(_, first)| reference_specificity(updater, *first) >= rank);
            if !outranked {
                selected.insert(app_index, (updater, index));
            }
            matched.push(app_index);
        }
        if matched.is_empty() {
            let from_spec = updater.str("spec.namespace")?.is_some();
            let message = match elsewhere(applications, &namespace, from_spec, &glob, &selector)? {
                Some(found) => format!(
                    "no Application in the input matches `{pattern}` in namespace {namespace}; {found}"
                ),
                None => format!(
                    "no Application in the input matches `{pattern}` in namespace {namespace}: add them (`kubectl get applications -n {namespace} -o yaml`) so their repo and path are known"
                ),
            };
            out.note(
                Outcome::NoEquivalent,
                updater,
                &format!("{field}.namePattern"),
                message,
            );
        } else {
            selections.push(Selection {
                updater,
                reference: index,
                matched,
            });
        }
    }
    Ok(selections)
}

fn updater_settings<'a>(
    updater: &'a Object,
    reference_index: usize,
    application: &'a Object,
    out: &mut Imported,
) -> Result<AppSettings<'a>, ImportError> {
    let spec = updater.at("spec").unwrap_or(&Value::Null);
    let field = format!("spec.applicationRefs[{reference_index}]");
    let reference = match updater.at("spec.applicationRefs") {
        Some(Value::Sequence(refs)) => refs.get(reference_index).unwrap_or(&Value::Null),
        _ => &Value::Null,
    };
    unknown_keys(
        updater,
        reference,
        &field,
        &[
            "namePattern",
            "labelSelectors",
            "commonUpdateSettings",
            "writeBackConfig",
            "images",
            "useAnnotations",
        ],
        out,
    );
    if get(reference, "useAnnotations").and_then(Value::as_bool) == Some(true) {
        let mut settings = annotation_settings(application, out)?.ok_or_else(|| {
            updater.error(
                &format!("{field}.useAnnotations"),
                format!(
                    "Application {} has no `{PREFIX}image-list` annotation to use",
                    application.name
                ),
            )
        })?;
        settings.updater = Some(updater);
        return Ok(settings);
    }
    let global_update = common_settings(updater, spec, "spec", out)?;
    let ref_update = common_settings(updater, reference, &field, out)?.or(&global_update);
    let global_write = write_back_config(updater, spec, "spec", out)?;
    let write = write_back_config(updater, reference, &field, out)?.or(&global_write);
    let items = match get(reference, "images") {
        Some(Value::Sequence(items)) if !items.is_empty() => items,
        _ => {
            return Err(updater.error(
                &format!("{field}.images"),
                "expected a list of at least one image",
            ));
        }
    };
    let mut images = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let item_field = format!("{field}.images[{index}]");
        unknown_keys(
            updater,
            item,
            &item_field,
            &[
                "alias",
                "imageName",
                "commonUpdateSettings",
                "manifestTargets",
            ],
            out,
        );
        let alias = string(updater, item, &item_field, "alias")?.ok_or_else(|| {
            updater.error(&format!("{item_field}.alias"), "is required but missing")
        })?;
        let name = string(updater, item, &item_field, "imageName")?.ok_or_else(|| {
            updater.error(
                &format!("{item_field}.imageName"),
                "is required but missing",
            )
        })?;
        let (written, constraint) = split_constraint(name.value.trim());
        let image = ImageRef::parse(written).map_err(|e| name.at.error(e.to_string()))?;
        let update = common_settings(updater, item, &item_field, out)?.or(&ref_update);
        let targets_field = format!("{item_field}.manifestTargets");
        let targets = get(item, "manifestTargets").unwrap_or(&Value::Null);
        unknown_keys(
            updater,
            targets,
            &targets_field,
            &["helm", "kustomize"],
            out,
        );
        let helm = get(targets, "helm").unwrap_or(&Value::Null);
        let helm_field = format!("{targets_field}.helm");
        let kustomize = get(targets, "kustomize").unwrap_or(&Value::Null);
        let kustomize_field = format!("{targets_field}.kustomize");
        if !helm.is_null() && !kustomize.is_null() {
            return Err(updater.error(
                &targets_field,
                "exactly one of helm or kustomize, as the CRD requires",
            ));
        }
        unknown_keys(updater, helm, &helm_field, &["name", "tag", "spec"], out);
        unknown_keys(updater, kustomize, &kustomize_field, &["name"], out);
        images.push(ImageSettings {
            alias: alias.value,
            at: name.at.clone(),
            written: written.to_string(),
            image,
            constraint,
            update,
            helm_name: string(updater, helm, &helm_field, "name")?,
            helm_tag: string(updater, helm, &helm_field, "tag")?,
            helm_spec: string(updater, helm, &helm_field, "spec")?,
            kustomize_name: string(updater, kustomize, &kustomize_field, "name")?,
        });
    }
    Ok(AppSettings {
        images,
        write,
        updater: Some(updater),
    })
}

fn common_settings<'a>(
    object: &'a Object,
    parent: &Value,
    parent_field: &str,
    out: &mut Imported,
) -> Result<UpdateSettings<'a>, ImportError> {
    let field = join(parent_field, "commonUpdateSettings");
    let Some(settings) = get(parent, "commonUpdateSettings") else {
        return Ok(UpdateSettings::default());
    };
    unknown_keys(
        object,
        settings,
        &field,
        &[
            "updateStrategy",
            "forceUpdate",
            "allowTags",
            "ignoreTags",
            "pullSecret",
            "platforms",
        ],
        out,
    );
    Ok(UpdateSettings {
        strategy: string(object, settings, &field, "updateStrategy")?,
        force_update: string(object, settings, &field, "forceUpdate")?,
        allow_tags: string(object, settings, &field, "allowTags")?,
        ignore_tags: strings(object, settings, &field, "ignoreTags")?,
        pull_secret: string(object, settings, &field, "pullSecret")?,
        platforms: strings(object, settings, &field, "platforms")?,
    })
}

fn write_back_config<'a>(
    object: &'a Object,
    parent: &Value,
    parent_field: &str,
    out: &mut Imported,
) -> Result<WriteSettings<'a>, ImportError> {
    let field = join(parent_field, "writeBackConfig");
    let Some(config) = get(parent, "writeBackConfig") else {
        return Ok(WriteSettings::default());
    };
    unknown_keys(object, config, &field, &["method", "gitConfig"], out);
    let git_field = join(&field, "gitConfig");
    let git = get(config, "gitConfig").unwrap_or(&Value::Null);
    unknown_keys(
        object,
        git,
        &git_field,
        &["repository", "branch", "writeBackTarget", "pullRequest"],
        out,
    );
    let pull_request = match get(git, "pullRequest") {
        None => None,
        Some(Value::Mapping(map)) => {
            let forges: Vec<&str> = map.keys().filter_map(Value::as_str).collect();
            match forges.as_slice() {
                [one] => Some(Setting {
                    value: one.to_string(),
                    at: At::new(object, format!("{git_field}.pullRequest.{one}")),
                }),
                _ => {
                    return Err(object.error(
                        &format!("{git_field}.pullRequest"),
                        "expected one forge: github, gitlab, …",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(object.error(
                &format!("{git_field}.pullRequest"),
                "expected a mapping with one forge",
            ));
        }
    };
    Ok(WriteSettings {
        method: string(object, config, &field, "method")?,
        branch: string(object, git, &git_field, "branch")?,
        repository: string(object, git, &git_field, "repository")?,
        target: string(object, git, &git_field, "writeBackTarget")?,
        pull_request,
    })
}

// ---------------------------------------------------------------------------------------------
// From settings to an app file.

/// What kind of source Argo renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Helm,
    Kustomize,
}

/// The Application's source that Argo writes for.
struct Source {
    field: String,
    repo_url: String,
    path: String,
    target_revision: String,
    /// Helm `valueFiles`.
    value_files: Vec<String>,
    chart: bool,
}

fn build_app(
    application: &Object,
    settings: &AppSettings,
    options: &Options,
    out: &mut Imported,
) -> Result<Option<AppOut>, ImportError> {
    let (source, kind) = match source_of(application, settings, options, out)? {
        Some(found) => found,
        None => return Ok(None),
    };
    let write = &settings.write;
    let updater_note = |message: String| match settings.updater {
        Some(_) => format!("Application {}: {message}", application.name),
        None => message,
    };
    // The repository and branch.
    let repo = match &write.repository {
        Some(repository) => {
            repository.at.note(
                out,
                Outcome::Translated,
                updater_note(format!("`repo: {}`", repository.value)),
            );
            repository.value.clone()
        }
        None => {
            if source.chart {
                return Err(application.error(
                    &format!("{}.repoURL", source.field),
                    format!(
                        "`{}` is a Helm chart repository, not git: set the git-repository annotation (gitConfig.repository) to the repo that holds the values",
                        source.repo_url
                    ),
                ));
            }
            out.note(
                Outcome::Translated,
                application,
                &format!("{}.repoURL", source.field),
                format!("`repo: {}`", source.repo_url),
            );
            source.repo_url.clone()
        }
    };
    let (base, head) = match &write.branch {
        Some(branch) => match branch.value.trim().split_once(':') {
            Some((base, head)) if !head.contains(':') => (
                (!base.is_empty()).then(|| base.to_string()),
                Some(head.to_string()),
            ),
            Some(_) => return Err(branch.at.error("expected BRANCH or BASE:TARGET")),
            None => (Some(branch.value.trim().to_string()), None),
        },
        None => (None, None),
    };
    let branch = match base {
        Some(base) => base,
        None => {
            let revision = source.target_revision.trim();
            let field = format!("{}.targetRevision", source.field);
            if revision.is_empty() || revision == "HEAD" {
                out.note(
                    Outcome::Approximated,
                    application,
                    &field,
                    format!(
                        "`{}` is not a branch: `branch: main` written (set the repository's default branch; Argo asks for the git-branch annotation here)",
                        if revision.is_empty() { "(none)" } else { revision }
                    ),
                );
                "main".to_string()
            } else if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(application.error(
                    &field,
                    format!("`{revision}` is a commit, not a branch: set the git-branch annotation (gitConfig.branch)"),
                ));
            } else {
                out.note(
                    Outcome::Translated,
                    application,
                    &field,
                    format!("`branch: {revision}`"),
                );
                revision.to_string()
            }
        }
    };
    let mut app = AppOut {
        source: match settings.updater {
            Some(updater) => format!("{} and {}", updater.id(), application.id()),
            None => application.id(),
        },
        name: application.name.clone(),
        repo: repo.clone(),
        branch: branch.clone(),
        ..AppOut::default()
    };
    if let Some(branch_setting) = &write.branch
        && head.is_none()
    {
        branch_setting.at.note(
            out,
            Outcome::Translated,
            updater_note(format!("`branch: {branch}`")),
        );
    }
    // Method and credentials.
    let absent_at = match settings.updater {
        Some(updater) => At::new(updater, "spec.writeBackConfig.method"),
        None => At::new(application, format!("{PREFIX}write-back-method")),
    };
    method(write, &absent_at, &repo, &updater_note, out)?;
    // Pull requests.
    if let Some(head) = head {
        let (forge, token_env) = forge_of(&repo);
        let bot_branch = branch_template(&head);
        let at = write.branch.as_ref().map(|b| b.at.clone());
        if let Some(at) = &at {
            at.note(
                out,
                Outcome::Approximated,
                updater_note(format!(
                    "`write: pull-request` into `{branch}` from the bot branch `{}`: Argo pushes that branch without opening a pull request, imagebump opens one (forge {forge}, set {token_env})",
                    bot_branch.as_deref().unwrap_or("imagebump/{{ app }}")
                )),
            );
            if bot_branch.is_none() {
                at.note(
                    out,
                    Outcome::Approximated,
                    updater_note(format!(
                        "the branch template `{head}` uses Go template fields: the default bot branch `imagebump/{{{{ app }}}}` is used"
                    )),
                );
            }
        }
        app.pull_request = Some(PullRequestOut {
            forge: forge.to_string(),
            token_env: token_env.to_string(),
            branch: bot_branch,
        });
    } else if let Some(pr) = &write.pull_request {
        let forge = match pr.value.as_str() {
            "github" | "gitlab" | "gitea" => pr.value.clone(),
            other => {
                pr.at.note(
                    out,
                    Outcome::NoEquivalent,
                    format!("`{other}` pull requests are not supported: imagebump opens them on github, gitlab or gitea"),
                );
                return Ok(None);
            }
        };
        let token_env = format!("{}_TOKEN", forge.to_ascii_uppercase());
        pr.at.note(
            out,
            Outcome::Translated,
            updater_note(format!(
                "`write: pull-request` into `{branch}` (forge {forge}; the token in {token_env}; the bot branch is `imagebump/<app>`)"
            )),
        );
        app.pull_request = Some(PullRequestOut {
            forge,
            token_env,
            branch: None,
        });
    }
    // Images and targets.
    for image in &settings.images {
        app.images.push(image_out(
            application,
            image,
            &source,
            kind,
            settings,
            options,
            out,
        )?);
    }
    Ok(Some(app))
}

/// `write-back-method`: `argocd` (the default), `git`, `git:repocreds`, `git:secret:NS/NAME`.
fn method(
    write: &WriteSettings,
    absent_at: &At,
    repo: &str,
    updater_note: &dyn Fn(String) -> String,
    out: &mut Imported,
) -> Result<(), ImportError> {
    let argocd = |at: &At, out: &mut Imported, what: &str| {
        at.note(
            out,
            Outcome::Approximated,
            updater_note(format!(
                "{what}: Argo sets parameters on the Application; imagebump only writes git: it commits to {repo} (give it push access in `git.credentials`)"
            )),
        );
    };
    let Some(method) = &write.method else {
        argocd(absent_at, out, "not set, so `argocd`");
        return Ok(());
    };
    let value = method.value.trim();
    if value == "argocd" {
        argocd(&method.at, out, "`argocd`");
        return Ok(());
    }
    let credentials = match value.strip_prefix("git") {
        Some("") => "repocreds",
        Some(rest) => match rest.strip_prefix(':') {
            Some(rest) => rest,
            None => return Err(method.at.error("expected argocd, git or git:CREDENTIALS")),
        },
        None => {
            return Err(method.at.error(format!(
                "`{value}` is not a write-back method: expected argocd, git or git:CREDENTIALS"
            )));
        }
    };
    method.at.note(
        out,
        Outcome::Translated,
        updater_note("`git`: imagebump commits and pushes (`write: commit`)".to_string()),
    );
    if credentials == "repocreds" {
        method.at.note(
            out,
            Outcome::NoEquivalent,
            updater_note(format!(
                "Argo CD's repository credentials are not readable by imagebump: add `git.credentials` for {repo}"
            )),
        );
        return Ok(());
    }
    let Some(secret) = credentials.strip_prefix("secret:") else {
        return Err(method.at.error(format!(
            "`{credentials}`: expected repocreds or secret:[NS/]NAME"
        )));
    };
    let name = secret.rsplit('/').next().unwrap_or(secret);
    let dir = format!("{SECRETS_DIR}/{name}");
    let mut credential = vec![("url".to_string(), repo.to_string())];
    if repo.starts_with("https://") || repo.starts_with("http://") {
        credential.push(("username".to_string(), "git".to_string()));
        credential.push(("password_file".to_string(), format!("{dir}/password")));
        method.at.note(
            out,
            Outcome::Approximated,
            updater_note(format!(
                "`git.credentials` with `password_file: {dir}/password` (mount Secret {secret} at {dir}); set `username` to the Secret's username (`git` written)"
            )),
        );
    } else {
        credential.push(("ssh_key_file".to_string(), format!("{dir}/sshPrivateKey")));
        credential.push(("known_hosts_file".to_string(), format!("{dir}/known_hosts")));
        method.at.note(
            out,
            Outcome::Approximated,
            updater_note(format!(
                "`git.credentials` with `ssh_key_file: {dir}/sshPrivateKey` (mount Secret {secret} at {dir}) and `known_hosts_file: {dir}/known_hosts`: add the host keys there (imagebump rejects unknown hosts; Argo's secret has none)"
            )),
        );
    }
    if !out
        .global
        .credentials
        .iter()
        .any(|c| c.first().is_some_and(|(_, u)| u == repo))
    {
        out.global.credentials.push(credential);
    }
    Ok(())
}

/// Argo's write branch template as imagebump's bot branch; `None` when it uses fields other
/// than `.AppName`.
fn branch_template(head: &str) -> Option<String> {
    let app_name = regex::Regex::new(r"\{\{-?\s*\.AppName\s*-?\}\}").ok()?;
    let translated = app_name.replace_all(head, "{{ app }}").into_owned();
    let rest = app_name.replace_all(head, "");
    (!rest.contains("{{")).then_some(translated)
}

/// The forge and token variable of a well-known host (`github` otherwise).
fn forge_of(url: &str) -> (&'static str, &'static str) {
    if url.contains("gitlab") {
        ("gitlab", "GITLAB_TOKEN")
    } else if url.contains("gitea") || url.contains("codeberg.org") {
        ("gitea", "GITEA_TOKEN")
    } else {
        ("github", "GITHUB_TOKEN")
    }
}

/// The source Argo writes for, and whether it is Helm or Kustomize; `None` (noted) for other
/// kinds of source, which Argo does not update either.
fn source_of(
    application: &Object,
    settings: &AppSettings,
    options: &Options,
    out: &mut Imported,
) -> Result<Option<(Source, SourceKind)>, ImportError> {
    let hint = kind_hint(settings);
    let (value, field, status_type): (&Value, String, Option<String>) = match (
        application.at("spec.source"),
        application.at("spec.sources"),
    ) {
        (Some(source), _) => (
            source,
            "spec.source".to_string(),
            application.str("status.sourceType")?,
        ),
        (None, Some(Value::Sequence(sources))) if !sources.is_empty() => {
            let types: Vec<Option<String>> = match application.at("status.sourceTypes") {
                Some(Value::Sequence(types)) => types
                    .iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            let index = pick_source(sources, &types, hint);
            let note = format!(
                "a multi-source Application: source {index} (`{}`) is the one written to",
                get(&sources[index], "repoURL")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            );
            out.note(
                Outcome::Translated,
                application,
                &format!("spec.sources[{index}]"),
                note,
            );
            (
                &sources[index],
                format!("spec.sources[{index}]"),
                types.get(index).cloned().flatten(),
            )
        }
        _ => {
            return Err(application.error("spec.source", "is required but missing"));
        }
    };
    let text = |key: &str| -> Result<String, ImportError> {
        Ok(match get(value, key) {
            Some(v) => text_at(application, v, &format!("{field}.{key}"))?.unwrap_or_default(),
            None => String::new(),
        })
    };
    let repo_url = text("repoURL")?;
    if repo_url.is_empty() {
        return Err(application.error(&format!("{field}.repoURL"), "is required but missing"));
    }
    let value_files = match get(value, "helm").and_then(|h| get(h, "valueFiles")) {
        Some(Value::Sequence(files)) => files
            .iter()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let source = Source {
        field: field.clone(),
        repo_url,
        path: text("path")?,
        target_revision: text("targetRevision")?,
        value_files,
        chart: get(value, "chart").is_some(),
    };
    let explicit = if get(value, "helm").is_some() || source.chart {
        Some(SourceKind::Helm)
    } else if get(value, "kustomize").is_some() {
        Some(SourceKind::Kustomize)
    } else {
        None
    };
    let from_status = match status_type.as_deref() {
        Some("Helm") => Some(SourceKind::Helm),
        Some("Kustomize") => Some(SourceKind::Kustomize),
        Some(other) => {
            out.note(
                Outcome::NoEquivalent,
                application,
                "status.sourceType",
                format!("a `{other}` source: Argo CD Image Updater only updates Helm and Kustomize apps, nothing imported"),
            );
            return Ok(None);
        }
        None => None,
    };
    let from_checkout = options
        .repo_dir
        .as_ref()
        .and_then(|dir| kind_in_checkout(dir, &source.path));
    let kind = from_status
        .or(explicit)
        .or(hint)
        .or(from_checkout)
        .ok_or_else(|| {
            application.error(
                &field,
                "cannot tell whether this is a Helm or a Kustomize source: include the Application's status (`kubectl get applications -o yaml` has status.sourceType), or pass --repo-dir with a checkout of the repo",
            )
        })?;
    Ok(Some((source, kind)))
}

/// What the settings say the source is: Helm or Kustomize parameters, or the write target.
fn kind_hint(settings: &AppSettings) -> Option<SourceKind> {
    if let Some(target) = &settings.write.target {
        if target.value.starts_with("kustomization") {
            return Some(SourceKind::Kustomize);
        }
        if target.value.starts_with("helmvalues") {
            return Some(SourceKind::Helm);
        }
    }
    settings.images.iter().find_map(|image| {
        if image.helm_name.is_some() || image.helm_tag.is_some() || image.helm_spec.is_some() {
            Some(SourceKind::Helm)
        } else if image.kustomize_name.is_some() {
            Some(SourceKind::Kustomize)
        } else {
            None
        }
    })
}

/// The source written to among several: one of the wanted kind (by its `helm:`/`kustomize:`
/// block or the status), else the first git source with a path.
fn pick_source(sources: &[Value], types: &[Option<String>], hint: Option<SourceKind>) -> usize {
    let of_kind = |kind: SourceKind| {
        sources.iter().enumerate().position(|(i, s)| {
            let block = match kind {
                SourceKind::Helm => "helm",
                SourceKind::Kustomize => "kustomize",
            };
            let status = match kind {
                SourceKind::Helm => "Helm",
                SourceKind::Kustomize => "Kustomize",
            };
            get(s, block).is_some() || types.get(i).cloned().flatten().as_deref() == Some(status)
        })
    };
    hint.and_then(of_kind)
        .or_else(|| {
            sources
                .iter()
                .position(|s| get(s, "path").is_some() && get(s, "ref").is_none())
        })
        .unwrap_or(0)
}

fn kind_in_checkout(repo_dir: &Path, path: &str) -> Option<SourceKind> {
    let dir = repo_dir.join(path);
    if dir.join("Chart.yaml").is_file() {
        Some(SourceKind::Helm)
    } else if KUSTOMIZATION_NAMES.iter().any(|n| dir.join(n).is_file()) {
        Some(SourceKind::Kustomize)
    } else {
        None
    }
}

const KUSTOMIZATION_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// `base` joined with `relative` inside the repository, normalised (`./`, `..`); a leading
/// `/` means the repository root. An error when it leaves the repository.
fn repo_path(base: &str, relative: &str) -> Result<String, String> {
    let full = match relative.strip_prefix('/') {
        Some(absolute) => PathBuf::from(absolute),
        None => Path::new(base).join(relative),
    };
    let mut parts: Vec<String> = Vec::new();
    for component in full.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("`{relative}` leaves the repository"));
                }
            }
            Component::Prefix(_) => return Err(format!("`{relative}` is not a repository path")),
        }
    }
    Ok(parts.join("/"))
}

fn image_out(
    application: &Object,
    image: &ImageSettings,
    source: &Source,
    kind: SourceKind,
    settings: &AppSettings,
    options: &Options,
    out: &mut Imported,
) -> Result<ImageOut, ImportError> {
    let context = |message: String| match settings.updater {
        Some(_) => format!(
            "Application {}, image `{}`: {message}",
            application.name, image.alias
        ),
        None => format!("image `{}`: {message}", image.alias),
    };
    let mut result = ImageOut {
        name: image.alias.clone(),
        image: image.written.clone(),
        ..ImageOut::default()
    };
    result.policy = policy(image, &context, out)?;
    let update = &image.update;
    if let Some(allow) = &update.allow_tags {
        let value = allow.value.trim();
        if let Some(pattern) = value.strip_prefix("regexp:") {
            regex::Regex::new(pattern).map_err(|e| {
                allow
                    .at
                    .error(format!("`{pattern}` is not a valid regex: {e}"))
            })?;
            result.include = Some(pattern.to_string());
            allow.at.note(
                out,
                Outcome::Translated,
                context(format!("`tags.include: {}`", q(pattern))),
            );
        } else if value == "any" {
            allow.at.note(
                out,
                Outcome::Translated,
                context("every tag (no `tags.include`)".to_string()),
            );
        } else {
            return Err(allow.at.error(format!(
                "`{value}`: expected regexp:PATTERN or any (Argo matches no tag at all with anything else)"
            )));
        }
    }
    if let Some((globs, at)) = &update.ignore_tags {
        let mut patterns = Vec::new();
        for glob in globs {
            let pattern = glob_pattern(glob).map_err(|e| at.error(format!("`{glob}`: {e}")))?;
            patterns.push(pattern);
        }
        let every = globs.iter().any(|g| g == "*");
        at.note(
            out,
            Outcome::Translated,
            context(format!(
                "`tags.exclude: [{}]`{}",
                patterns.iter().map(|p| q(p)).collect::<Vec<_>>().join(", "),
                if every {
                    " (every tag: the image is held where it is)"
                } else {
                    ""
                }
            )),
        );
        result.exclude = patterns;
    }
    if let Some((platforms, at)) = &update.platforms {
        for platform in platforms {
            let parts: Vec<&str> = platform.split('/').collect();
            if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
                return Err(at.error(format!("`{platform}` is not os/arch[/variant]")));
            }
        }
        at.note(
            out,
            Outcome::Translated,
            context(format!("`platform: [{}]`", platforms.join(", "))),
        );
        result.platforms = platforms.clone();
    }
    if let Some(force) = &update.force_update {
        match force.value.trim() {
            "true" => force.at.note(
                out,
                Outcome::Translated,
                context(
                    "imagebump updates its targets whether or not the image is running".to_string(),
                ),
            ),
            "false" => {}
            other => {
                return Err(force
                    .at
                    .error(format!("expected true or false, found `{other}`")));
            }
        }
    }
    if let Some(secret) = &update.pull_secret {
        let mut registry = RegistryOut {
            prefix: image.image.name(),
            ..RegistryOut::default()
        };
        pull_secret(secret, &mut registry, out)?;
        merge_registry(&mut out.global.registries, registry);
    }
    result.targets = targets(
        application,
        image,
        source,
        kind,
        settings,
        options,
        &context,
        out,
    )?;
    Ok(result)
}

fn policy(
    image: &ImageSettings,
    context: &dyn Fn(String) -> String,
    out: &mut Imported,
) -> Result<String, ImportError> {
    let strategy = image.update.strategy.as_ref();
    let at = strategy
        .map(|s| s.at.clone())
        .unwrap_or_else(|| image.at.clone());
    let name = strategy.map(|s| s.value.trim().to_string());
    let semver = |out: &mut Imported, outcome: Outcome, why: &str| -> Result<String, ImportError> {
        match &image.constraint {
            Some(range) => {
                crate::policy::Range::parse(range).map_err(|e| {
                    image
                        .at
                        .error(format!("`{range}` is not a semver constraint: {e}"))
                })?;
                at.note(
                    out,
                    outcome,
                    context(format!("`policy: {{semver: {}}}`{why}", q(range))),
                );
                Ok(format!("{{semver: {}}}", q(range)))
            }
            None => {
                at.note(
                    out,
                    outcome,
                    context(format!(
                        "`policy: {{semver: \">=0.0.0-0\"}}`: no constraint, so the highest version, pre-releases included, as Argo{why}"
                    )),
                );
                Ok("{semver: \">=0.0.0-0\"}".to_string())
            }
        }
    };
    let ignored = |out: &mut Imported| {
        if let Some(constraint) = &image.constraint {
            image.at.note(
                out,
                Outcome::Translated,
                context(format!(
                    "the constraint `{constraint}` is ignored with this strategy, by Argo too"
                )),
            );
        }
    };
    match name.as_deref() {
        None | Some("semver") => semver(out, Outcome::Translated, ""),
        Some(old @ ("latest" | "newest-build")) => {
            ignored(out);
            let old_name = if old == "latest" {
                " (`latest` is newest-build's old name)"
            } else {
                ""
            };
            at.note(
                out,
                Outcome::Translated,
                context(format!("`policy: {{newest_build: {{}}}}`{old_name}")),
            );
            Ok("{newest_build: {}}".to_string())
        }
        Some(old @ ("name" | "alphabetical")) => {
            ignored(out);
            let old_name = if old == "name" {
                " (`name` is alphabetical's old name)"
            } else {
                ""
            };
            at.note(
                out,
                Outcome::Translated,
                context(format!(
                    "`policy: {{alphabetical: asc}}`: the last tag in byte order{old_name}"
                )),
            );
            Ok("{alphabetical: asc}".to_string())
        }
        Some("digest") => {
            let Some(tag) = &image.constraint else {
                return Err(image.at.error(format!(
                    "the digest strategy follows a tag: write `{}:TAG`",
                    image.written
                )));
            };
            if !crate::reference::is_valid_tag(tag) {
                return Err(image.at.error(format!("`{tag}` is not a tag to follow")));
            }
            at.note(
                out,
                Outcome::Translated,
                context(format!(
                    "`policy: {{digest: {}}}`: written as `{tag}@sha256:…`",
                    q(tag)
                )),
            );
            Ok(format!("{{digest: {}}}", q(tag)))
        }
        Some(other) => semver(
            out,
            Outcome::Approximated,
            &format!(" (`{other}` is not a strategy; Argo falls back to semver, and so does this)"),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn targets(
    application: &Object,
    image: &ImageSettings,
    source: &Source,
    kind: SourceKind,
    settings: &AppSettings,
    options: &Options,
    context: &dyn Fn(String) -> String,
    out: &mut Imported,
) -> Result<Vec<TargetOut>, ImportError> {
    let path_error = |at: &At, e: String| at.error(e);
    let target = settings.write.target.as_ref();
    let default_file = format!(".argocd-source-{}.yaml", application.name);
    // Argo's own file or the Application: imagebump edits the source files in place.
    let git = settings
        .write
        .method
        .as_ref()
        .is_some_and(|m| m.value.trim().starts_with("git"));
    let in_place = |out: &mut Imported, file: &str| {
        let method_at = match &settings.write.method {
            Some(m) => m.at.clone(),
            None => At::new(
                settings.updater.unwrap_or(application),
                match settings.updater {
                    Some(_) => "spec.writeBackConfig.method".to_string(),
                    None => format!("{PREFIX}write-back-method"),
                },
            ),
        };
        let message = if git {
            let (at, override_file) = match target {
                Some(t) => (
                    t.at.clone(),
                    repo_path(&source.path, &t.value).unwrap_or_else(|_| t.value.clone()),
                ),
                None => (method_at, repo_join(&source.path, &default_file)),
            };
            (
                at,
                format!(
                    "Argo writes parameter overrides to `{override_file}`; imagebump edits `{file}` in place instead: once migrated, delete `{override_file}`, which would override it"
                ),
            )
        } else {
            (
                method_at,
                format!(
                    "Argo sets parameters on the Application (method `argocd`); imagebump edits `{file}` in place instead: once migrated, remove the parameters the updater set (spec.source.helm.parameters, spec.source.kustomize.images), which would override it"
                ),
            )
        };
        message
            .0
            .note(out, Outcome::Approximated, context(message.1));
    };
    match kind {
        SourceKind::Helm => {
            let file = match target {
                Some(t) if t.value.starts_with("helmvalues") => {
                    let rest = t.value["helmvalues".len()..].trim_start_matches(':');
                    let file = if rest.is_empty() {
                        repo_path(&source.path, "values.yaml")
                    } else {
                        repo_path(&source.path, rest)
                    }
                    .map_err(|e| path_error(&t.at, e))?;
                    t.at.note(
                        out,
                        Outcome::Translated,
                        context(format!("targets in `{file}`")),
                    );
                    file
                }
                Some(t) if t.value.starts_with("kustomization") => {
                    return Err(t.at.error("a kustomization target on a Helm source"));
                }
                _ => {
                    let file = values_file(application, source)?;
                    in_place(out, &file);
                    file
                }
            };
            let mut targets = Vec::new();
            if let Some(spec) = &image.helm_spec {
                spec.at.note(
                    out,
                    Outcome::Translated,
                    context(format!(
                        "`{file}` at `{}` (the whole `image:tag`)",
                        spec.value
                    )),
                );
                targets.push(TargetOut {
                    file: file.clone(),
                    path: Some(spec.value.clone()),
                    field: Some("ref".to_string()),
                    marker: None,
                });
                for ignored in [&image.helm_name, &image.helm_tag].into_iter().flatten() {
                    ignored.at.note(
                        out,
                        Outcome::Translated,
                        context("ignored when helm.image-spec is set, by Argo too".to_string()),
                    );
                }
                return Ok(targets);
            }
            match &image.helm_tag {
                Some(tag) => {
                    tag.at.note(
                        out,
                        Outcome::Translated,
                        context(format!("`{file}` at `{}`", tag.value)),
                    );
                    targets.push(TargetOut {
                        file: file.clone(),
                        path: Some(tag.value.clone()),
                        ..TargetOut::default()
                    });
                }
                None => {
                    image.at.note(
                        out,
                        Outcome::Translated,
                        context(format!(
                            "`{file}` at `image.tag` (Argo's default parameter)"
                        )),
                    );
                    targets.push(TargetOut {
                        file: file.clone(),
                        path: Some("image.tag".to_string()),
                        ..TargetOut::default()
                    });
                }
            }
            if let Some(name) = &image.helm_name {
                name.at.note(
                    out,
                    Outcome::Translated,
                    context(format!("`{file}` at `{}` (field: repository)", name.value)),
                );
                targets.push(TargetOut {
                    file,
                    path: Some(name.value.clone()),
                    field: Some("repository".to_string()),
                    marker: None,
                });
            }
            Ok(targets)
        }
        SourceKind::Kustomize => {
            let dir = match target {
                Some(t) if t.value.starts_with("kustomization") => {
                    let rest = t.value["kustomization".len()..].trim_start_matches(':');
                    let dir = repo_path(&source.path, if rest.is_empty() { "." } else { rest })
                        .map_err(|e| path_error(&t.at, e))?;
                    t.at.note(
                        out,
                        Outcome::Translated,
                        context(format!(
                            "the kustomization in `{}`",
                            if dir.is_empty() { "." } else { &dir }
                        )),
                    );
                    Some(dir)
                }
                Some(t) if t.value.starts_with("helmvalues") => {
                    return Err(t.at.error("a helmvalues target on a Kustomize source"));
                }
                _ => None,
            };
            let in_place_dir = dir.is_none();
            let dir = match dir {
                Some(dir) => dir,
                None => repo_path(&source.path, ".")
                    .map_err(|e| application.error(&format!("{}.path", source.field), e))?,
            };
            let name = options
                .repo_dir
                .as_ref()
                .and_then(|repo| {
                    KUSTOMIZATION_NAMES
                        .iter()
                        .find(|n| repo.join(&dir).join(n).is_file())
                })
                .copied()
                .unwrap_or("kustomization.yaml");
            let file = repo_join(&dir, name);
            if in_place_dir {
                in_place(out, &file);
            }
            if let Some(kustomize_name) = &image.kustomize_name {
                let same = ImageRef::parse(kustomize_name.value.trim())
                    .map(|k| k.name() == image.image.name())
                    .unwrap_or(false);
                if same {
                    kustomize_name.at.note(
                        out,
                        Outcome::Translated,
                        context(format!(
                            "the `images:` entry named `{}`",
                            kustomize_name.value
                        )),
                    );
                } else {
                    kustomize_name.at.note(
                        out,
                        Outcome::Approximated,
                        context(format!(
                            "imagebump finds the `images:` entry whose name or newName is `{}`: give the entry `name: {}` a `newName: {}` if it has none (Argo's `kustomize edit set image` adds it)",
                            image.written, kustomize_name.value, image.written
                        )),
                    );
                }
            }
            Ok(vec![TargetOut {
                file,
                ..TargetOut::default()
            }])
        }
    }
}

/// The Helm values file imagebump edits when Argo wrote elsewhere: the last plain
/// `valueFiles` entry (Helm lets the last one win), else `values.yaml` in the source path.
fn values_file(application: &Object, source: &Source) -> Result<String, ImportError> {
    let field = format!("{}.path", source.field);
    match source
        .value_files
        .iter()
        .rev()
        .find(|f| !f.starts_with('$') && !f.contains("://"))
    {
        Some(file) => repo_path(&source.path, file).map_err(|e| application.error(&field, e)),
        None => repo_path(&source.path, "values.yaml").map_err(|e| application.error(&field, e)),
    }
}

fn repo_join(dir: &str, file: &str) -> String {
    let dir = dir.trim_matches('/');
    let dir = dir.strip_prefix("./").unwrap_or(dir);
    if dir.is_empty() || dir == "." {
        file.to_string()
    } else {
        format!("{dir}/{file}")
    }
}

/// A Go `filepath.Match` glob as an anchored regex (`*`, `?`, `[...]`, `[^...]`, `\x`).
fn glob_pattern(glob: &str) -> Result<String, String> {
    let mut pattern = String::from("^");
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => pattern.push_str(".*"),
            '?' => pattern.push('.'),
            '\\' => match chars.next() {
                Some(escaped) => pattern.push_str(&regex::escape(&escaped.to_string())),
                None => return Err("ends with a lone `\\`".to_string()),
            },
            '[' => {
                pattern.push('[');
                let mut closed = false;
                let mut first = true;
                for c in chars.by_ref() {
                    match c {
                        ']' if !first => {
                            closed = true;
                            break;
                        }
                        '^' | '!' if first => pattern.push('^'),
                        '\\' | '[' | '&' | '~' => {
                            pattern.push('\\');
                            pattern.push(c);
                        }
                        _ => pattern.push(c),
                    }
                    first = false;
                }
                if !closed {
                    return Err("has a `[` with no `]`".to_string());
                }
                pattern.push(']');
            }
            other => pattern.push_str(&regex::escape(&other.to_string())),
        }
    }
    pattern.push('$');
    regex::Regex::new(&pattern).map_err(|e| e.to_string())?;
    Ok(pattern)
}

/// An Application name glob (`my-app-*`) as a regex.
fn glob_regex(glob: &str) -> Result<regex::Regex, String> {
    let pattern = glob_pattern(glob)?;
    regex::Regex::new(&pattern).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn application_refs_rank_by_exact_name_then_label_selectors_then_literal_characters() {
        let labels: Value = yaml_serde::from_str("{matchLabels: {a: b, c: d}}").unwrap();
        let expression: Value =
            yaml_serde::from_str("{matchExpressions: [{key: a, operator: Exists}]}").unwrap();
        let ranked = [
            specificity("web-prod", None),
            specificity("w*", Some(&labels)),
            specificity("w*", Some(&expression)),
            specificity("web-[a-z]?*", None),
            specificity("w*", None),
            specificity("*", None),
        ];
        assert!(ranked.windows(2).all(|w| w[0] > w[1]), "{ranked:?}");
        // A set, `*` and `?` count for no literal character; a literal bracket-free name is exact.
        assert_eq!(specificity("web-[a-z]?*", None), 4);
        assert_eq!(specificity("web", None), 1_000_003);
        assert_eq!(specificity("w*", Some(&labels)), 10_000 + 200 + 1);
    }

    #[test]
    fn globs_become_anchored_regexes() {
        for (glob, matching, other) in [
            ("*", "anything", ""),
            ("latest", "latest", "latest2"),
            ("dev-*", "dev-1", "x-dev-1"),
            ("v?.0", "v1.0", "v10.0"),
            ("[0-9]*", "1a", "a1"),
            ("[^0-9]*", "a1", "1a"),
            ("a\\*b", "a*b", "axb"),
        ] {
            let re = regex::Regex::new(&glob_pattern(glob).unwrap()).unwrap();
            assert!(re.is_match(matching), "{glob} should match {matching}");
            if !other.is_empty() {
                assert!(!re.is_match(other), "{glob} should not match {other}");
            }
        }
        assert!(glob_pattern("[a-").is_err());
    }

    #[test]
    fn constraints_split_after_the_last_slash() {
        assert_eq!(
            split_constraint("nginx:~1.26"),
            ("nginx", Some("~1.26".into()))
        );
        assert_eq!(
            split_constraint("localhost:5000/team/app"),
            ("localhost:5000/team/app", None)
        );
        assert_eq!(
            split_constraint("localhost:5000/team/app:^1"),
            ("localhost:5000/team/app", Some("^1".into()))
        );
    }

    #[test]
    fn repository_paths_resolve_like_argo() {
        assert_eq!(
            repo_path("config/overlays/foo", "../../base").unwrap(),
            "config/base"
        );
        assert_eq!(
            repo_path("apps/web", "/helm/values.yaml").unwrap(),
            "helm/values.yaml"
        );
        assert_eq!(
            repo_path("./apps", "./values.yaml").unwrap(),
            "apps/values.yaml"
        );
        assert!(repo_path("apps", "../../x").is_err());
    }

    #[test]
    fn list_generator_placeholders_are_filled() {
        let mut params = BTreeMap::new();
        params.insert("cluster".to_string(), "dev".to_string());
        params.insert("values.tier".to_string(), "web".to_string());
        assert_eq!(
            fill("{{cluster}}-{{ .values.tier }}", &params).unwrap(),
            "dev-web"
        );
        assert_eq!(fill("{{nope}}", &params).unwrap_err(), "{{nope}}");
    }
}
