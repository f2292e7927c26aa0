//! Parsing and validating one app file: its repo and branch, write mode, pull request, and
//! each image with its policy, filters and targets.
//!
//! Invariant: every problem is recorded with its position and parsing carries on, so one run
//! reports them all; an app with any problem is left out, never half-loaded.

use std::path::{Component, Path};

use super::read::{
    Diagnostics, Fields, TemplateKind, check_platform, check_template, list, parse_root,
    parse_schedule, string,
};
use super::repo_url;
use super::yaml::Node;
use super::*;

pub(super) const APP_KEYS: &[&str] = &[
    "name",
    "repo",
    "branch",
    "write",
    "pull_request",
    "commit_message",
    "interval",
    "schedule",
    "images",
    "on_rollback",
    "notify",
];

/// Parse one app file's text.
pub fn parse_app(path: &Path, text: &str, diags: &mut Diagnostics) -> Option<App> {
    let root = parse_root(text, diags)?;
    let fields = Fields::new(&root, "an app", APP_KEYS, diags)?;
    let name = fields.required_str("name", "an app", diags);
    if let Some(name) = &name
        && !is_valid_name(name)
    {
        let at = fields.get("name").unwrap_or(&root);
        diags.node(
            at,
            format!(
                "app name `{name}` must be 1-63 of [a-z0-9-_.], starting with a letter or digit"
            ),
        );
    }
    let repo = fields.required_str("repo", "an app", diags);
    if let (Some(url), Some(at)) = (&repo, fields.get("repo"))
        && let Err(e) = repo_url::check(url)
    {
        diags.node(at, format!("`repo` {e}"));
    }
    let branch = fields
        .opt_str("branch", diags)
        .unwrap_or_else(|| "main".into());
    let write = match fields.opt_str("write", diags).as_deref() {
        None | Some("commit") => WriteMode::Commit,
        Some("pull-request") => WriteMode::PullRequest,
        Some(other) => {
            let at = fields.get("write").unwrap_or(&root);
            diags.node(
                at,
                format!("`write` must be `commit` or `pull-request`, found `{other}`"),
            );
            WriteMode::Commit
        }
    };
    let pull_request = fields
        .get("pull_request")
        .and_then(|n| parse_pull_request(n, diags));
    // What the forge client needs and can be known now (not only at the first pull request).
    if let (Some(pr), Some(url), Some(at)) = (&pull_request, &repo, fields.get("pull_request")) {
        let kind = pr.forge;
        if pr.api_url.is_none()
            && repo_url::check(url).is_ok()
            && let Err(e) = crate::forge::api_url_for_repo(kind, url)
        {
            diags.node(at, format!("`pull_request`: {e}"));
        }
        if pr.project.is_none()
            && repo_url::check(url).is_ok()
            && let Err(e) = crate::forge::project_from_repo_url(kind, url)
        {
            diags.node(at, format!("`pull_request`: {e}"));
        }
    }
    if write == WriteMode::PullRequest && fields.get("pull_request").is_none() {
        diags.node(
            &root,
            "`write: pull-request` needs a `pull_request:` section (forge, token_env)",
        );
    }
    let write_explicit = fields.get("write").is_some();
    let commit_message = fields.opt_str("commit_message", diags);
    if let (Some(template), Some(node)) = (&commit_message, fields.get("commit_message")) {
        check_template(
            template,
            TemplateKind::CommitMessage,
            "commit_message",
            node,
            diags,
        );
    }
    let schedule = parse_schedule(&fields, diags);
    let on_rollback = parse_on_rollback(&fields, diags);
    let notify = super::notify::parse_app_notify(&fields, diags);
    let mut images = Vec::new();
    match fields.get("images") {
        Some(node) => {
            let items = list(node, "images", diags);
            if items.is_empty() {
                diags.node(node, "`images` is empty: list at least one image");
            }
            for item in items {
                if let Some(image) = parse_image(item, diags) {
                    if images.iter().any(|i: &ImageConfig| i.name == image.name) {
                        diags.node(
                            item,
                            format!("image name `{}` is used twice in this app", image.name),
                        );
                    }
                    images.push(image);
                }
            }
        }
        None => diags.node(&root, "missing required key `images` in an app"),
    }
    // A promotion changes what staging or prod runs: it opens a pull request unless the
    // file says otherwise (and then `validate` warns).
    let mut write = write;
    if let Some(image) = images.iter().find(|i: &&ImageConfig| i.promote.is_some()) {
        match fields.get("write") {
            None if fields.get("pull_request").is_none() => diags.node(
                &root,
                format!(
                    "image `{}` is promoted, so this app opens pull requests by default: add a `pull_request:` section (forge, token_env), or set `write: commit`",
                    image.name
                ),
            ),
            None => write = WriteMode::PullRequest,
            Some(at) if write == WriteMode::Commit => diags.warn(
                at,
                format!(
                    "image `{}` is promoted and `write: commit` pushes it without a review; promotions usually go through a pull request",
                    image.name
                ),
            ),
            Some(_) => {}
        }
    }
    Some(App {
        file: path.to_path_buf(),
        name: name?,
        repo: repo?,
        branch,
        write,
        write_explicit,
        pull_request,
        commit_message,
        schedule,
        images,
        on_rollback,
        notify,
    })
}

/// `on_rollback: skip-version | hold | ignore`, at app or image level.
fn parse_on_rollback(fields: &Fields<'_>, diags: &mut Diagnostics) -> Option<OnRollback> {
    let value = fields.opt_str("on_rollback", diags)?;
    match value.as_str() {
        "skip-version" => Some(OnRollback::SkipVersion),
        "hold" => Some(OnRollback::Hold),
        "ignore" => Some(OnRollback::Ignore),
        other => {
            if let Some(at) = fields.get("on_rollback") {
                diags.node(
                    at,
                    format!(
                        "`on_rollback` must be `skip-version`, `hold` or `ignore`, found `{other}`"
                    ),
                );
            }
            None
        }
    }
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

fn parse_pull_request(node: &Node, diags: &mut Diagnostics) -> Option<PullRequestConfig> {
    let fields = Fields::new(
        node,
        "`pull_request`",
        &[
            "forge",
            "api_url",
            "project",
            "token_env",
            "branch",
            "title",
            "body",
            "labels",
            "reviewers",
            "assignees",
            "draft",
        ],
        diags,
    )?;
    let forge = fields
        .required_str("forge", "`pull_request`", diags)
        .and_then(|forge| {
            let kind = ForgeKind::parse(&forge);
            if kind.is_none() {
                let at = fields.get("forge").unwrap_or(node);
                diags.node(
                    at,
                    format!("`forge` must be github, gitlab or gitea, found `{forge}`"),
                );
            }
            kind
        });
    let token_env = fields.required_env("token_env", "`pull_request`", diags);
    for (key, kind) in [
        ("branch", TemplateKind::PullRequestBranch),
        ("title", TemplateKind::PullRequestTitle),
        ("body", TemplateKind::PullRequestBody),
    ] {
        if let (Some(template), Some(at)) = (fields.opt_str(key, diags), fields.get(key)) {
            check_template(&template, kind, key, at, diags);
        }
    }
    Some(PullRequestConfig {
        forge: forge?,
        api_url: fields.opt_str("api_url", diags),
        project: fields.opt_str("project", diags),
        token_env: token_env?,
        branch: fields.opt_str("branch", diags),
        title: fields.opt_str("title", diags),
        body: fields.opt_str("body", diags),
        labels: fields.opt_str_list("labels", diags),
        reviewers: fields.opt_str_list("reviewers", diags),
        assignees: fields.opt_str_list("assignees", diags),
        draft: fields.opt_bool("draft", diags).unwrap_or(false),
    })
}

const IMAGE_KEYS: &[&str] = &[
    "name",
    "image",
    "policy",
    "tags",
    "pin_digest",
    "allow_downgrade",
    "min_age",
    "platform",
    "targets",
    "on_rollback",
    "promote",
];

fn parse_image(node: &Node, diags: &mut Diagnostics) -> Option<ImageConfig> {
    let fields = Fields::new(node, "an image", IMAGE_KEYS, diags)?;
    let image_text = fields.required_str("image", "an image", diags);
    let image = image_text.as_deref().and_then(|text| {
        let at = fields.get("image").unwrap_or(node);
        match ImageRef::parse(text) {
            Ok(r) if r.tag.is_some() || r.digest.is_some() => {
                diags.node(at, format!("`image` names the repository only, without a tag or digest (found `{text}`); the policy chooses the tag"));
                None
            }
            Ok(r) => Some(r),
            Err(e) => {
                diags.node(at, e.to_string());
                None
            }
        }
    });
    let name = fields.opt_str("name", diags).or_else(|| {
        image
            .as_ref()
            .map(|i| i.repository.rsplit('/').next().unwrap_or("").to_string())
    });
    let policy = match fields.get("policy") {
        Some(p) => parse_policy(p, diags),
        None => {
            diags.node(
                node,
                "missing required key `policy` in an image (e.g. `policy: {semver: \"^1.0\"}`)",
            );
            None
        }
    };
    let (mut include, mut exclude, mut extract) = (None, Vec::new(), None);
    if let Some(tags) = fields.get("tags")
        && let Some(t) = Fields::new(tags, "`tags`", &["include", "exclude", "extract"], diags)
    {
        include = t.opt_str("include", diags);
        if let (Some(re), Some(at)) = (&include, t.get("include")) {
            check_regex(re, "include", at, diags);
        }
        exclude = t.opt_str_list("exclude", diags);
        if let Some(at) = t.get("exclude") {
            for re in &exclude {
                check_regex(re, "exclude", at, diags);
            }
        }
        extract = t.opt_str("extract", diags);
        // The template must name groups the pattern has (checked once the regexes compile).
        if let (Some(template), Some(pattern), Some(at)) = (&extract, &include, t.get("extract"))
            && regex::Regex::new(pattern).is_ok()
            && let Err(e) =
                crate::policy::Filter::new(Some(pattern), &[] as &[&str], Some(template))
        {
            diags.node(at, e.to_string());
        }
        if extract.is_some() && include.is_none() {
            diags.node(
                tags,
                "`extract` uses the groups of `include`: set `include` too",
            );
        }
    }
    let platforms = fields.opt_str_list("platform", diags);
    if let Some(at) = fields.get("platform") {
        for p in &platforms {
            check_platform(p, at, diags);
        }
    }
    let platform = platforms.first().cloned();
    let mut targets = Vec::new();
    match fields.get("targets") {
        Some(t) => {
            let items = list(t, "targets", diags);
            if items.is_empty() {
                diags.node(t, "`targets` is empty: name at least one file");
            }
            targets.extend(items.iter().filter_map(|item| parse_target(item, diags)));
        }
        None => diags.node(node, "missing required key `targets` in an image"),
    }
    let promote = fields
        .get("promote")
        .and_then(|node| parse_promote(node, name.as_deref(), diags));
    Some(ImageConfig {
        name: name?,
        image: image?,
        policy: policy?,
        include,
        exclude,
        extract,
        pin_digest: fields.opt_bool("pin_digest", diags).unwrap_or(false),
        allow_downgrade: fields.opt_bool("allow_downgrade", diags).unwrap_or(false),
        min_age: fields.opt_duration("min_age", diags),
        platform,
        platforms,
        targets,
        line: node.line,
        on_rollback: parse_on_rollback(&fields, diags),
        promote,
    })
}

/// `promote: {from: <app>, image: <name>, soak: 24h, trust: any|bot}`. The checks across apps
/// (an unknown app or image, a cycle) are [`super::promote`]'s.
fn parse_promote(
    node: &Node,
    name: Option<&str>,
    diags: &mut Diagnostics,
) -> Option<PromoteConfig> {
    let fields = Fields::new(
        node,
        "`promote`",
        &["from", "image", "soak", "trust", "allowed_signers"],
        diags,
    )?;
    let from_node = fields.get("from");
    let from = fields.required_str("from", "`promote`", diags);
    let image = fields.opt_str("image", diags).or(name.map(str::to_owned));
    let soak = fields.opt_duration("soak", diags).unwrap_or(DEFAULT_SOAK);
    let trust = match fields.opt_str("trust", diags).as_deref() {
        None | Some("any") => PromoteTrust::Any,
        Some("bot") => PromoteTrust::Bot,
        Some("signed") => PromoteTrust::Signed,
        Some(other) => {
            if let Some(at) = fields.get("trust") {
                diags.node(
                    at,
                    format!("`trust` must be `any`, `bot` or `signed`, found `{other}`"),
                );
            }
            PromoteTrust::Any
        }
    };
    let allowed_signers = fields
        .opt_str("allowed_signers", diags)
        .map(std::path::PathBuf::from);
    match (&allowed_signers, trust, fields.get("allowed_signers")) {
        (Some(file), PromoteTrust::Signed, Some(at)) if !file.is_absolute() => diags.node(
            at,
            format!(
                "`allowed_signers` must be an absolute path, found `{}`",
                file.display()
            ),
        ),
        (None, PromoteTrust::Signed, _) => diags.node(
            fields.get("trust").unwrap_or(node),
            "`trust: signed` needs `allowed_signers`: an OpenSSH allowed-signers file (`principals ssh-ed25519 AAAA…` per line)",
        ),
        (Some(_), PromoteTrust::Any | PromoteTrust::Bot, Some(at)) => diags.node(
            at,
            "`allowed_signers` is read only with `trust: signed`",
        ),
        _ => {}
    }
    let at = from_node.map_or((node.line, node.col), |n| (n.line, n.col));
    Some(PromoteConfig {
        from: from?,
        image: image?,
        soak,
        trust,
        allowed_signers,
        at,
    })
}

fn check_regex(re: &str, key: &str, node: &Node, diags: &mut Diagnostics) {
    if let Err(e) = regex::Regex::new(re) {
        diags.node(
            node,
            format!("`{key}` is not a valid regular expression: {e}"),
        );
    }
}

const POLICIES: &[&str] = &[
    "semver",
    "alphabetical",
    "numerical",
    "newest_build",
    "digest",
];

fn parse_policy(node: &Node, diags: &mut Diagnostics) -> Option<PolicyConfig> {
    let mut allowed = POLICIES.to_vec();
    allowed.push("strict");
    let fields = Fields::new(node, "`policy`", &allowed, diags)?;
    let chosen: Vec<&str> = POLICIES
        .iter()
        .copied()
        .filter(|p| fields.get(p).is_some() || (*p == "newest_build" && has_key(node, p)))
        .collect();
    if chosen.len() != 1 {
        diags.node(
            node,
            format!(
                "`policy` needs exactly one of: {} (found {})",
                POLICIES.join(", "),
                if chosen.is_empty() {
                    "none".to_string()
                } else {
                    chosen.join(", ")
                }
            ),
        );
        return None;
    }
    let strict = fields.opt_bool("strict", diags).unwrap_or(false);
    if strict && chosen[0] != "semver" {
        diags.node(node, "`strict` applies to the semver policy only");
    }
    let order = |key: &str, diags: &mut Diagnostics| -> Option<bool> {
        let at = fields.get(key)?;
        match string(at, key, diags)?.as_str() {
            "asc" => Some(false),
            "desc" => Some(true),
            other => {
                diags.node(
                    at,
                    format!("`{key}` must be `asc` or `desc`, found `{other}`"),
                );
                None
            }
        }
    };
    match chosen[0] {
        "semver" => {
            let at = fields.get("semver")?;
            let range = string(at, "semver", diags)?;
            if let Err(e) = crate::policy::Range::parse(&range) {
                diags.node(at, format!("`semver`: {e}"));
                return None;
            }
            Some(PolicyConfig::Semver { range, strict })
        }
        "alphabetical" => {
            order("alphabetical", diags).map(|descending| PolicyConfig::Alphabetical { descending })
        }
        "numerical" => {
            order("numerical", diags).map(|descending| PolicyConfig::Numerical { descending })
        }
        "newest_build" => Some(PolicyConfig::NewestBuild),
        "digest" => {
            let at = fields.get("digest")?;
            let tag = string(at, "digest", diags)?;
            if !is_valid_tag(&tag) {
                diags.node(
                    at,
                    format!("`digest` names the mutable tag to follow; `{tag}` is not a valid tag"),
                );
                return None;
            }
            Some(PolicyConfig::Digest { tag })
        }
        _ => None,
    }
}

/// True when the mapping has `key` at all (even with a null or `{}` value).
fn has_key(node: &Node, key: &str) -> bool {
    match &node.value {
        yaml::Value::Map(entries) => entries
            .iter()
            .any(|(k, _)| matches!(&k.value, yaml::Value::Scalar { text, .. } if text == key)),
        _ => false,
    }
}

const FIELDS: &[&str] = &["tag", "repository", "ref", "digest"];

fn parse_target(node: &Node, diags: &mut Diagnostics) -> Option<TargetConfig> {
    let fields = Fields::new(
        node,
        "a target",
        &["file", "path", "field", "marker"],
        diags,
    )?;
    let file = fields.required_str("file", "a target", diags)?;
    let path = Path::new(&file);
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir))
    {
        let at = fields.get("file").unwrap_or(node);
        diags.node(
            at,
            format!("`file` must be a path inside the repo, relative to its root (found `{file}`)"),
        );
    }
    let field = fields.opt_str("field", diags).and_then(|f| {
        let field = match f.as_str() {
            "tag" => Some(HelmField::Tag),
            "repository" => Some(HelmField::Repository),
            "ref" => Some(HelmField::Ref),
            "digest" => Some(HelmField::Digest),
            _ => None,
        };
        if field.is_none() {
            let at = fields.get("field").unwrap_or(node);
            diags.node(
                at,
                format!("`field` must be one of {}, found `{f}`", FIELDS.join(", ")),
            );
        }
        field
    });
    let path = fields.opt_str("path", diags);
    if let (Some(p), Some(at)) = (&path, fields.get("path"))
        && let Err(e) = crate::edit::parse_value_path(p)
    {
        diags.node(at, format!("`path`: {e}"));
    }
    let target = TargetConfig {
        file,
        path,
        field,
        marker: fields.opt_str("marker", diags),
        line: node.line,
    };
    if target.field.is_some() && target.path.is_none() {
        diags.node(
            node,
            "`field` applies to a Helm values `path`: set `path` too",
        );
    }
    if target.path.is_some() && target.marker.is_some() {
        diags.node(node, "a target uses either `path` or `marker`, not both");
    }
    if target.names_directory() && target.path.is_some() {
        let at = fields.get("path").unwrap_or(node);
        diags.node(
            at,
            format!(
                "`{}` is a directory target (Kustomize entries, manifests and markers in every \
                 YAML file under it); a Helm values `path` needs one file",
                target.file
            ),
        );
    }
    Some(target)
}
