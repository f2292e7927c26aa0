//! Flux image automation objects -> imagebump config: `ImageRepository`, `ImagePolicy`,
//! `ImageUpdateAutomation` (`image.toolkit.fluxcd.io` v1beta1, v1beta2, v1) and the
//! `GitRepository` an automation's `sourceRef` names (`source.toolkit.fluxcd.io`).
//!
//! One app per automation, one image per `ImagePolicy` it selects, named after the policy; its
//! target is the automation's `update.path` as a directory target with the policy's marker
//! (`ns:name`, kept as is), so the daemon scans that directory on every pass as Flux does. With
//! `--repo-dir` (a local checkout), the policies without a marker under the path are left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    AppOut, ImageOut, ImportError, Imported, Object, Outcome, PullRequestOut, RegistryOut,
    TargetOut, render::q, selector::LabelSelector,
};
use crate::reference::ImageRef;

const IMAGE_GROUP: &str = "image.toolkit.fluxcd.io/";
const IMAGE_VERSIONS: &[&str] = &["v1beta1", "v1beta2", "v1"];
const SOURCE_GROUP: &str = "source.toolkit.fluxcd.io/";
const SOURCE_VERSIONS: &[&str] = &["v1beta1", "v1beta2", "v1"];

/// Where secrets named by the Flux objects are expected to be mounted.
pub const SECRETS_DIR: &str = "/var/run/secrets/imagebump";

/// Options of `imagebump import flux`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A local checkout of the config repo: only the policies with a marker under
    /// `update.path` become images.
    pub repo_dir: Option<PathBuf>,
    /// A push branch different from the checkout branch becomes a pull request.
    pub pull_request: bool,
}

/// `(namespace, name)` of an object.
type Key = (String, String);

struct Repository {
    image: String,
    exclude: Vec<String>,
}

struct Policy {
    object: Object,
    image: ImageOut,
    labels: Vec<(String, String)>,
}

struct GitSource {
    url: String,
    branch: Option<String>,
}

/// Translate Flux objects.
pub fn translate(objects: &[Object], options: &Options) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    let mut repositories = BTreeMap::new();
    let mut policies: BTreeMap<(String, String), Policy> = BTreeMap::new();
    let mut sources = BTreeMap::new();
    let mut automations = Vec::new();
    for object in objects {
        check_version(object)?;
    }
    for object in objects.iter().filter(|o| o.kind == "ImageRepository") {
        let repository = image_repository(object, &mut out)?;
        repositories.insert(object.key(), repository);
    }
    for object in objects.iter().filter(|o| o.kind == "GitRepository") {
        sources.insert(object.key(), git_repository(object, &mut out)?);
    }
    for object in objects.iter().filter(|o| o.kind == "ImagePolicy") {
        let policy = image_policy(object, &repositories, &mut out)?;
        policies.insert(object.key(), policy);
    }
    for object in objects.iter().filter(|o| o.kind == "ImageUpdateAutomation") {
        automations.push(object);
    }
    let mut used = std::collections::BTreeSet::new();
    let duplicate_names = {
        let mut seen = BTreeMap::new();
        for a in &automations {
            *seen.entry(a.name.clone()).or_insert(0) += 1;
        }
        seen
    };
    for automation in automations {
        let name = if duplicate_names.get(&automation.name).copied().unwrap_or(0) > 1 {
            format!("{}-{}", automation.namespace, automation.name)
        } else {
            automation.name.clone()
        };
        match image_update_automation(
            automation, name, &policies, &sources, options, &mut used, &mut out,
        )? {
            Some(app) => out.apps.push(app),
            // The commit author is in the global file all the same.
            None => out.not_written(
                &automation.id(),
                &["spec.git.commit.author"],
                "the automation has no app",
            ),
        }
    }
    for ((namespace, name), policy) in &policies {
        if used.contains(&(namespace.clone(), name.clone())) {
            continue;
        }
        let id = policy.object.id();
        // An automation that selected it already said why it was left out.
        if !out
            .notes
            .iter()
            .any(|n| n.object == id && n.field == "metadata.name")
        {
            out.note(
                Outcome::NoEquivalent,
                &policy.object,
                "metadata.name",
                "no ImageUpdateAutomation in the input writes this policy's markers: not imported",
            );
        }
        out.not_written(&id, &[], "no app uses the policy");
    }
    // A repository no image uses: its registry settings are in the global file, its image
    // and tag settings nowhere.
    for object in objects.iter().filter(|o| o.kind == "ImageRepository") {
        let image = repositories.get(&object.key()).map(|r| r.image.as_str());
        if !out
            .apps
            .iter()
            .any(|a| a.images.iter().any(|i| Some(i.image.as_str()) == image))
        {
            out.not_written(
                &object.id(),
                &["spec.insecure", "spec.secretRef", "spec.certSecretRef"],
                "no app uses the image",
            );
        }
    }
    out.apps.sort_by(|a, b| a.name.cmp(&b.name));
    out.nothing_written();
    Ok(out)
}

fn check_version(object: &Object) -> Result<(), ImportError> {
    let (group, versions) = match object.kind.as_str() {
        "ImageRepository" | "ImagePolicy" | "ImageUpdateAutomation" => {
            (IMAGE_GROUP, IMAGE_VERSIONS)
        }
        "GitRepository" => (SOURCE_GROUP, SOURCE_VERSIONS),
        other => {
            return Err(object.error(
                "kind",
                format!(
                    "`{other}` is not a Flux image automation object: expected ImageRepository, ImagePolicy, ImageUpdateAutomation or GitRepository"
                ),
            ));
        }
    };
    let version = object.api_version.strip_prefix(group);
    if !version.is_some_and(|v| versions.contains(&v)) {
        return Err(object.error(
            "apiVersion",
            format!(
                "`{}` is not supported: expected {}",
                object.api_version,
                versions
                    .iter()
                    .map(|v| format!("{group}{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(())
}

/// Report every `spec` field not in `known` as having no equivalent.
fn unknown_fields(object: &Object, known: &[&str], out: &mut Imported) {
    for key in object.keys("spec") {
        if !known.contains(&key.as_str()) {
            out.note(
                Outcome::NoEquivalent,
                object,
                &format!("spec.{key}"),
                "not understood by imagebump import: dropped",
            );
        }
    }
}

fn suspended(object: &Object, out: &mut Imported) -> Result<(), ImportError> {
    if object.bool("spec.suspend")? == Some(true) {
        out.note(
            Outcome::Approximated,
            object,
            "spec.suspend",
            "suspended in Flux; the imported config is active (delete or hold back the app file to keep it off)",
        );
    }
    Ok(())
}

fn image_repository(object: &Object, out: &mut Imported) -> Result<Repository, ImportError> {
    unknown_fields(
        object,
        &[
            "image",
            "interval",
            "timeout",
            "exclusionList",
            "insecure",
            "secretRef",
            "certSecretRef",
            "provider",
            "serviceAccountName",
            "suspend",
            "accessFrom",
            "proxySecretRef",
        ],
        out,
    );
    let image = object.required("spec.image")?;
    let reference =
        ImageRef::parse(&image).map_err(|e| object.error("spec.image", e.to_string()))?;
    if reference.tag.is_some() || reference.digest.is_some() {
        return Err(object.error(
            "spec.image",
            format!("`{image}` names a tag or digest; Flux expects the repository alone"),
        ));
    }
    out.note(
        Outcome::Translated,
        object,
        "spec.image",
        format!("`image: {image}`"),
    );
    let mut registry = RegistryOut {
        prefix: format!("{}/{}", reference.registry, reference.repository),
        ..RegistryOut::default()
    };
    if object.bool("spec.insecure")? == Some(true) {
        registry.insecure = true;
        out.note(
            Outcome::Translated,
            object,
            "spec.insecure",
            format!("`insecure: true` on registries[] `{}`", registry.prefix),
        );
    }
    if let Some(secret) = object.str("spec.secretRef.name")? {
        let path = format!("{SECRETS_DIR}/{secret}/.dockerconfigjson");
        out.note(
            Outcome::Translated,
            object,
            "spec.secretRef",
            format!(
                "`docker_config: {path}`: mount Secret {}/{secret} at {SECRETS_DIR}/{secret}",
                object.namespace
            ),
        );
        registry.docker_config = Some(path);
    }
    if let Some(secret) = object.str("spec.certSecretRef.name")? {
        let path = format!("{SECRETS_DIR}/{secret}/ca.crt");
        out.note(
            Outcome::Translated,
            object,
            "spec.certSecretRef",
            format!(
                "`ca_file: {path}`: mount Secret {}/{secret} at {SECRETS_DIR}/{secret} (its `ca.crt`)",
                object.namespace
            ),
        );
        registry.ca_file = Some(path);
    }
    match object.str("spec.provider")?.as_deref() {
        None | Some("generic") => {}
        Some(provider) => {
            // A docker credential helper logs in as the provider's own tools do (workload
            // identity included); imagebump runs helpers as the docker CLI does.
            let helper = match provider {
                "aws" => Some("`ecr-login` (docker-credential-ecr-login)"),
                "gcp" => Some("`gcr` (docker-credential-gcr)"),
                "azure" => Some("`acr-env` (docker-credential-acr-env)"),
                _ => None,
            };
            let message = match helper {
                Some(helper) => format!(
                    "`{provider}`: no built-in cloud login; give the registry a `docker_config` whose `credHelpers` names {helper} for {}, with the helper in imagebump's container",
                    reference.registry
                ),
                None => format!(
                    "`{provider}`: no built-in cloud login; give the registry a `docker_config` (its `credHelpers` run any docker credential helper) or `username` + `password_env`"
                ),
            };
            out.note(Outcome::NoEquivalent, object, "spec.provider", message);
        }
    }
    for (field, why) in [
        (
            "serviceAccountName",
            "image pull secrets of a service account: give the registry `docker_config` instead",
        ),
        (
            "accessFrom",
            "imagebump has no namespaces: every app can use every image",
        ),
        (
            "proxySecretRef",
            "imagebump uses HTTPS_PROXY from its environment",
        ),
    ] {
        if object.at(&format!("spec.{field}")).is_some() {
            out.note(Outcome::NoEquivalent, object, &format!("spec.{field}"), why);
        }
    }
    if object.at("spec.interval").is_some() {
        out.note(
            Outcome::Translated,
            object,
            "spec.interval",
            "tags are listed when an app using the image is checked (the app's interval), once per pass for all apps",
        );
    }
    let exclude = object.strings("spec.exclusionList")?;
    for pattern in &exclude {
        regex::Regex::new(pattern)
            .map_err(|e| object.error("spec.exclusionList", e.to_string()))?;
    }
    if !exclude.is_empty() {
        out.note(
            Outcome::Translated,
            object,
            "spec.exclusionList",
            "`tags.exclude` on every image of this repository (cosign .sig/.att/.sbom tags are always excluded)",
        );
    }
    suspended(object, out)?;
    if registry
        != (RegistryOut {
            prefix: registry.prefix.clone(),
            ..RegistryOut::default()
        })
        && !out
            .global
            .registries
            .iter()
            .any(|r| r.prefix == registry.prefix)
    {
        out.global.registries.push(registry);
    }
    Ok(Repository { image, exclude })
}

fn git_repository(object: &Object, out: &mut Imported) -> Result<GitSource, ImportError> {
    let url = object.required("spec.url")?;
    let branch = object.str("spec.ref.branch")?;
    for other in ["tag", "semver", "name", "commit"] {
        if object.at(&format!("spec.ref.{other}")).is_some() && branch.is_none() {
            out.note(
                Outcome::NoEquivalent,
                object,
                &format!("spec.ref.{other}"),
                "an automation needs a branch: set the automation's git.checkout.ref.branch",
            );
        }
    }
    if let Some(secret) = object.str("spec.secretRef.name")? {
        let dir = format!("{SECRETS_DIR}/{secret}");
        let mut credential = vec![("url".to_string(), url.clone())];
        if url.starts_with("https://") || url.starts_with("http://") {
            credential.push(("username".to_string(), "git".to_string()));
            credential.push(("password_file".to_string(), format!("{dir}/password")));
            out.note(
                Outcome::Approximated,
                object,
                "spec.secretRef",
                format!(
                    "`git.credentials` with `password_file: {dir}/password` (mount Secret {}/{secret} at {dir}); set `username` to the Secret's username",
                    object.namespace
                ),
            );
        } else {
            credential.push(("ssh_key_file".to_string(), format!("{dir}/identity")));
            credential.push(("known_hosts_file".to_string(), format!("{dir}/known_hosts")));
            out.note(
                Outcome::Translated,
                object,
                "spec.secretRef",
                format!(
                    "`git.credentials` with `ssh_key_file: {dir}/identity`, `known_hosts_file: {dir}/known_hosts`: mount Secret {}/{secret} at {dir}",
                    object.namespace
                ),
            );
        }
        if !out
            .global
            .credentials
            .iter()
            .any(|c| c.first().is_some_and(|(_, u)| *u == url))
        {
            out.global.credentials.push(credential);
        }
    }
    Ok(GitSource { url, branch })
}

fn image_policy(
    object: &Object,
    repositories: &BTreeMap<(String, String), Repository>,
    out: &mut Imported,
) -> Result<Policy, ImportError> {
    unknown_fields(
        object,
        &[
            "imageRepositoryRef",
            "policy",
            "filterTags",
            "digestReflectionPolicy",
            "interval",
            "suspend",
        ],
        out,
    );
    let repo_name = object.required("spec.imageRepositoryRef.name")?;
    let repo_namespace = object
        .str("spec.imageRepositoryRef.namespace")?
        .unwrap_or_else(|| object.namespace.clone());
    let repository = repositories
        .get(&(repo_namespace.clone(), repo_name.clone()))
        .ok_or_else(|| {
            object.error(
                "spec.imageRepositoryRef.name",
                format!(
                    "ImageRepository {repo_namespace}/{repo_name} is not in the input (add it: `kubectl get imagerepositories -A -o yaml`)"
                ),
            )
        })?;
    let choices = object.keys("spec.policy");
    let policy = match choices.as_slice() {
        [one] if one == "semver" => {
            let range = object.required("spec.policy.semver.range")?;
            // Checked here, so a bad range is named in the input, not in the written file.
            crate::policy::Range::parse(&range).map_err(|e| {
                object.error(
                    "spec.policy.semver.range",
                    format!("`{range}` is not a semver constraint: {e}"),
                )
            })?;
            out.note(
                Outcome::Translated,
                object,
                "spec.policy.semver.range",
                format!(
                    "`policy: {{semver: {}, strict: true}}` (Flux parses tags as strictly)",
                    q(&range)
                ),
            );
            format!("{{semver: {}, strict: true}}", q(&range))
        }
        [one] if one == "alphabetical" || one == "numerical" => {
            let field = format!("spec.policy.{one}.order");
            let order = object.str(&field)?.unwrap_or_else(|| "asc".to_string());
            if order != "asc" && order != "desc" {
                return Err(object.error(&field, format!("expected asc or desc, found `{order}`")));
            }
            out.note(
                Outcome::Translated,
                object,
                &format!("spec.policy.{one}"),
                format!("`policy: {{{one}: {order}}}`"),
            );
            format!("{{{one}: {order}}}")
        }
        _ => {
            return Err(object.error(
                "spec.policy",
                "expected exactly one of semver, alphabetical, numerical",
            ));
        }
    };
    let include = object.str("spec.filterTags.pattern")?;
    let extract = object.str("spec.filterTags.extract")?;
    if let Some(pattern) = &include {
        regex::Regex::new(pattern)
            .map_err(|e| object.error("spec.filterTags.pattern", e.to_string()))?;
        out.note(
            Outcome::Translated,
            object,
            "spec.filterTags.pattern",
            "`tags.include`",
        );
    }
    if extract.is_some() {
        out.note(
            Outcome::Translated,
            object,
            "spec.filterTags.extract",
            "`tags.extract`",
        );
    }
    let pin_digest = match object.str("spec.digestReflectionPolicy")?.as_deref() {
        None | Some("Never") => false,
        Some("Always") => {
            out.note(
                Outcome::Translated,
                object,
                "spec.digestReflectionPolicy",
                "`pin_digest: true` (a re-pushed tag is a change, as with Always)",
            );
            true
        }
        Some("IfNotPresent") => {
            out.note(
                Outcome::Approximated,
                object,
                "spec.digestReflectionPolicy",
                "`pin_digest: true`; unlike IfNotPresent, a re-pushed tag's new digest is written too (as Always)",
            );
            true
        }
        Some(other) => {
            return Err(object.error(
                "spec.digestReflectionPolicy",
                format!("expected Never, IfNotPresent or Always, found `{other}`"),
            ));
        }
    };
    if object.at("spec.interval").is_some() {
        out.note(
            Outcome::Translated,
            object,
            "spec.interval",
            "digests are read when the app is checked (the app's interval)",
        );
    }
    suspended(object, out)?;
    let image = ImageOut {
        name: object.name.clone(),
        image: repository.image.clone(),
        policy,
        include,
        exclude: repository.exclude.clone(),
        extract,
        pin_digest,
        ..ImageOut::default()
    };
    Ok(Policy {
        object: object.clone(),
        image,
        labels: object.string_map("metadata.labels")?,
    })
}

#[allow(clippy::too_many_arguments)]
fn image_update_automation(
    object: &Object,
    name: String,
    policies: &BTreeMap<(String, String), Policy>,
    sources: &BTreeMap<(String, String), GitSource>,
    options: &Options,
    used: &mut std::collections::BTreeSet<(String, String)>,
    out: &mut Imported,
) -> Result<Option<AppOut>, ImportError> {
    unknown_fields(
        object,
        &[
            "sourceRef",
            "git",
            "interval",
            "update",
            "policySelector",
            "suspend",
        ],
        out,
    );
    let kind = object
        .str("spec.sourceRef.kind")?
        .unwrap_or_else(|| "GitRepository".to_string());
    if kind != "GitRepository" {
        return Err(object.error(
            "spec.sourceRef.kind",
            format!("`{kind}`: only a GitRepository can be written to"),
        ));
    }
    let source_name = object.required("spec.sourceRef.name")?;
    let source_namespace = object
        .str("spec.sourceRef.namespace")?
        .unwrap_or_else(|| object.namespace.clone());
    let source = sources
        .get(&(source_namespace.clone(), source_name.clone()))
        .ok_or_else(|| {
            object.error(
                "spec.sourceRef.name",
                format!(
                    "GitRepository {source_namespace}/{source_name} is not in the input: add it (`flux export source git {source_name} -n {source_namespace}`) so its URL is known"
                ),
            )
        })?;
    out.note(
        Outcome::Translated,
        object,
        "spec.sourceRef",
        format!("`repo: {}`", source.url),
    );
    let checkout = match object.str("spec.git.checkout.ref.branch")? {
        Some(branch) => branch,
        None => match &source.branch {
            Some(branch) => branch.clone(),
            None => {
                return Err(object.error(
                    "spec.git.checkout.ref.branch",
                    format!(
                        "neither it nor GitRepository {source_namespace}/{source_name}'s spec.ref.branch names a branch"
                    ),
                ));
            }
        },
    };
    for other in ["tag", "semver", "name", "commit"] {
        if object
            .at(&format!("spec.git.checkout.ref.{other}"))
            .is_some()
        {
            out.note(
                Outcome::NoEquivalent,
                object,
                &format!("spec.git.checkout.ref.{other}"),
                format!("imagebump checks out a branch: using `{checkout}`"),
            );
        }
    }
    let push = object.str("spec.git.push.branch")?;
    let mut app = AppOut {
        source: object.id(),
        name: name.clone(),
        repo: source.url.clone(),
        branch: checkout.clone(),
        ..AppOut::default()
    };
    match push {
        Some(push) if push != checkout => {
            if options.pull_request {
                let forge = forge_of(&source.url);
                let (forge, token_env) = match forge {
                    Some(pair) => pair,
                    None => {
                        out.note(
                            Outcome::Approximated,
                            object,
                            "spec.git.push.branch",
                            "the forge is not known from the URL: `forge: github` written, set the right one",
                        );
                        ("github", "GITHUB_TOKEN")
                    }
                };
                out.note(
                    Outcome::Translated,
                    object,
                    "spec.git.push.branch",
                    format!(
                        "`write: pull-request` from `{push}` into `{checkout}` (--pull-request); set {token_env}"
                    ),
                );
                app.pull_request = Some(PullRequestOut {
                    forge: forge.to_string(),
                    token_env: token_env.to_string(),
                    branch: Some(push),
                });
            } else {
                out.note(
                    Outcome::Approximated,
                    object,
                    "spec.git.push.branch",
                    format!(
                        "commits go to `{push}`, which must exist (Flux branches it from `{checkout}`); pass --pull-request to open pull requests from it instead"
                    ),
                );
                app.branch = push;
            }
        }
        Some(_) => out.note(
            Outcome::Translated,
            object,
            "spec.git.push.branch",
            format!("`branch: {checkout}`"),
        ),
        None => out.note(
            Outcome::Translated,
            object,
            "spec.git.checkout",
            format!("`branch: {checkout}`"),
        ),
    }
    for field in ["refspec", "options"] {
        if object.at(&format!("spec.git.push.{field}")).is_some() {
            out.note(
                Outcome::NoEquivalent,
                object,
                &format!("spec.git.push.{field}"),
                "imagebump pushes the branch alone",
            );
        }
    }
    author(object, out)?;
    if object.at("spec.git.commit.signingKey").is_some() {
        out.note(
            Outcome::NoEquivalent,
            object,
            "spec.git.commit.signingKey",
            "imagebump signs with an SSH key: set `git.signing_key_file`",
        );
    }
    if let Some(template) = object.str("spec.git.commit.messageTemplate")? {
        app.commit_message = message_template(object, &template, out);
    }
    if object.at("spec.git.commit.messageTemplateValues").is_some() {
        out.note(
            Outcome::NoEquivalent,
            object,
            "spec.git.commit.messageTemplateValues",
            "write the values into `commit_message`",
        );
    }
    if let Some(interval) = object.str("spec.interval")? {
        if crate::schedule::Schedule::interval(&interval).is_ok() {
            app.interval = Some(interval.clone());
            out.note(
                Outcome::Translated,
                object,
                "spec.interval",
                format!("`interval: {interval}`"),
            );
        } else {
            out.note(
                Outcome::Approximated,
                object,
                "spec.interval",
                format!("`{interval}` is not an imagebump duration: the global interval applies"),
            );
        }
    }
    suspended(object, out)?;
    if let Some(strategy) = object.str("spec.update.strategy")?
        && strategy != "Setters"
    {
        return Err(object.error(
            "spec.update.strategy",
            format!("expected Setters, found `{strategy}`"),
        ));
    }
    let path = object
        .str("spec.update.path")?
        .unwrap_or_else(|| "./".to_string());
    let dir = directory_target(&path, object)?;
    let selected = selected_policies(object, policies, out)?;
    let selected_none = selected.is_empty();
    // With a checkout, the policies none of whose markers are under the path are left out (as
    // Flux changes nothing for them); without one, every selected policy is an image.
    let markers = match &options.repo_dir {
        Some(repo_dir) => Some((repo_dir, markers_under(repo_dir, &path, object)?)),
        None => None,
    };
    for (key, policy) in selected {
        let marker = format!("{}:{}", key.0, key.1);
        if let Some((repo_dir, markers)) = &markers
            && !markers.iter().any(|(_, m)| *m == marker)
        {
            out.note(
                Outcome::NoEquivalent,
                &policy.object,
                "metadata.name",
                format!(
                    "no `$imagepolicy: {marker}` marker under `{path}` of {}: not imported (Flux would change nothing for it either)",
                    repo_dir.display()
                ),
            );
            continue;
        }
        used.insert(key.clone());
        let mut image = policy.image.clone();
        image.targets.push(TargetOut {
            file: dir.clone(),
            marker: Some(marker.clone()),
            ..TargetOut::default()
        });
        out.note(
            Outcome::Translated,
            &policy.object,
            "metadata.name",
            format!(
                "image `{}` of app `{name}`, the `{marker}` markers under `{dir}`",
                image.name
            ),
        );
        app.images.push(image);
    }
    if app.images.is_empty() {
        let why = if selected_none {
            match object.at("spec.policySelector") {
                Some(_) => format!(
                    "no policy selected (policySelector matches none in {})",
                    object.namespace
                ),
                None => format!("no ImagePolicy in {} in the input", object.namespace),
            }
        } else {
            format!("no marker of a selected policy under `{path}`")
        };
        out.note(
            Outcome::NoEquivalent,
            object,
            "spec.update.path",
            format!("{why}: no app written"),
        );
        return Ok(None);
    }
    out.note(
        Outcome::Translated,
        object,
        "spec.update.path",
        format!("a directory target `file: {dir}` (every YAML file under it, on every pass)"),
    );
    Ok(Some(app))
}

/// `update.path` as a directory target: relative to the repository root, `/`-terminated
/// (`./clusters/my-cluster` -> `clusters/my-cluster/`, `./` or none -> `./`).
fn directory_target(path: &str, object: &Object) -> Result<String, ImportError> {
    let relative = Path::new(path);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(object.error(
            "spec.update.path",
            format!("`{path}` must be a path inside the repository"),
        ));
    }
    let parts: Vec<String> = relative
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(if parts.is_empty() {
        "./".to_string()
    } else {
        format!("{}/", parts.join("/"))
    })
}

fn selected_policies<'a>(
    object: &Object,
    policies: &'a BTreeMap<(String, String), Policy>,
    out: &mut Imported,
) -> Result<Vec<(&'a Key, &'a Policy)>, ImportError> {
    // Flux: the same selector as `Deployment.spec.selector`, over the ImagePolicies in the
    // automation's namespace; none (or `{}`) selects them all.
    let selector = LabelSelector::parse(object, "spec.policySelector")?;
    if !selector.is_empty() {
        out.note(
            Outcome::Translated,
            object,
            "spec.policySelector",
            format!("only the policies it selects ({selector}) become images"),
        );
    }
    Ok(policies
        .iter()
        .filter(|((namespace, _), policy)| {
            *namespace == object.namespace && selector.matches(&policy.labels)
        })
        .collect())
}

/// Every `(file, "ns:name")` marker in the YAML files under `path` of `repo_dir`; `file` is
/// relative to the repository root.
fn markers_under(
    repo_dir: &Path,
    path: &str,
    object: &Object,
) -> Result<Vec<(String, String)>, ImportError> {
    let relative = Path::new(path);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(object.error(
            "spec.update.path",
            format!("`{path}` must be a path inside the repository"),
        ));
    }
    let base: PathBuf = relative
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    let dir = repo_dir.join(&base);
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| {
        object.error(
            "spec.update.path",
            format!("{}: {e} (is --repo-dir the right checkout?)", dir.display()),
        )
    })?;
    let files = if meta.is_dir() {
        super::yaml_files(&dir)?
            .into_iter()
            .map(|f| base.join(f))
            .collect()
    } else {
        vec![base.clone()]
    };
    let pattern = marker_pattern();
    let mut found = Vec::new();
    for file in files {
        let full = repo_dir.join(&file);
        let Ok(text) = std::fs::read_to_string(&full) else {
            continue;
        };
        let name = file
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        for captures in pattern.captures_iter(&text) {
            let value = &captures[1];
            let mut parts = value.split(':');
            if let (Some(ns), Some(policy)) = (parts.next(), parts.next()) {
                found.push((name.clone(), format!("{ns}:{policy}")));
            }
        }
    }
    Ok(found)
}

fn marker_pattern() -> regex::Regex {
    // A constant pattern, checked by the tests: it always compiles.
    #[allow(clippy::expect_used)]
    regex::Regex::new(r#"\{\s*"\$imagepolicy"\s*:\s*"([^"]+)"\s*\}"#).expect("a valid pattern")
}

fn author(object: &Object, out: &mut Imported) -> Result<(), ImportError> {
    let email = object
        .str("spec.git.commit.author.email")?
        .or(object.str("spec.git.commit.authorEmail")?);
    let Some(email) = email else {
        return Ok(());
    };
    let name = object
        .str("spec.git.commit.author.name")?
        .or(object.str("spec.git.commit.authorName")?)
        .unwrap_or_else(|| "imagebump".to_string());
    match &out.global.author {
        None => {
            out.note(
                Outcome::Translated,
                object,
                "spec.git.commit.author",
                format!("`git.author: {name} <{email}>` in the global file"),
            );
            out.global.author = Some((name, email));
        }
        Some((n, e)) if *n == name && *e == email => {}
        Some((n, e)) => {
            let message = format!(
                "imagebump has one commit author: `{n} <{e}>` (from an earlier automation) is used, not `{name} <{email}>`"
            );
            out.note(
                Outcome::Approximated,
                object,
                "spec.git.commit.author",
                message,
            );
        }
    }
    Ok(())
}

/// A Flux message template as a minijinja one: plain text is kept, `{{ .AutomationObject }}`
/// becomes the app name; anything else (ranges over `.Changed`, `.Updated`) gets the default
/// message, with a note.
fn message_template(object: &Object, template: &str, out: &mut Imported) -> Option<String> {
    let field = "spec.git.commit.messageTemplate";
    let automation = regex::Regex::new(r"\{\{-?\s*\.AutomationObject\s*-?\}\}").ok()?;
    let translated = automation.replace_all(template, "{{ app }}").into_owned();
    let rest = automation.replace_all(template, "");
    if rest.contains("{{") || rest.contains("{%") || rest.contains("{#") {
        out.note(
            Outcome::Approximated,
            object,
            field,
            "uses Go template fields with no one-to-one match: the default message (one line per change) is used; write `commit_message` with `changes`/`images` (docs/pull-requests.md)",
        );
        return None;
    }
    out.note(Outcome::Translated, object, field, "`commit_message`");
    Some(translated)
}

/// The forge and token variable of a well-known host.
fn forge_of(url: &str) -> Option<(&'static str, &'static str)> {
    if url.contains("github.com") {
        Some(("github", "GITHUB_TOKEN"))
    } else if url.contains("gitlab") {
        Some(("gitlab", "GITLAB_TOKEN"))
    } else if url.contains("gitea") || url.contains("codeberg.org") {
        Some(("gitea", "GITEA_TOKEN"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn the_marker_pattern_compiles_and_finds_every_form() {
        let text = r#"image: ghcr.io/a/b:1.0.0 # {"$imagepolicy": "flux-system:podinfo"}
tag: 1.0.0 # {"$imagepolicy": "apps:web:tag"}
"#;
        let found: Vec<String> = super::marker_pattern()
            .captures_iter(text)
            .map(|c| c[1].to_string())
            .collect();
        assert_eq!(found, ["flux-system:podinfo", "apps:web:tag"]);
    }
}
