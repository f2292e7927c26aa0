//! Configuration: the global file and one file per app.
//!
//! Owns: reading `imagebump.yaml` and the apps directory, validating every value, and reporting
//! **all** problems at once as `file:line:col: message`. The result is plain data: other modules
//! turn it into their own settings, so no module depends on the YAML shape.
//!
//! Invariant: no secret is ever read here. Secrets are named by reference (`*_env`, `*_file`)
//! and resolved by the stage that uses them, so a config dump or an error never carries one.
//!
//! Design choice: a positioned YAML tree ([`yaml`]) checked by hand ([`read`]) instead of serde:
//! serde stops at the first error and loses positions; here every key is checked, unknown keys
//! get a "did you mean" hint, and a broken app file is reported without hiding the others.

pub mod read;
mod receiver;
pub mod repo_url;
pub mod yaml;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use read::{Diagnostic, Diagnostics, Fields, Refs, TemplateKind, TemplateRef, list, string};
use yaml::Node;

use crate::edit::HelmField;
use crate::forge::ForgeKind;
use crate::reference::{ImageRef, is_valid_tag};

/// Default poll interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(120);

/// A loaded configuration: the global settings and every app that validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of the global file.
    pub file: PathBuf,
    pub global: Global,
    /// Apps that validated, sorted by name.
    pub apps: Vec<App>,
}

/// The global file.
#[derive(Debug, Clone)]
pub struct Global {
    /// Directory of app files (resolved against the global file's directory).
    pub apps_dir: PathBuf,
    pub schedule: Schedule,
    /// Clone cache directory.
    pub workdir: PathBuf,
    pub git: GitConfig,
    pub registries: Vec<RegistryConfig>,
    pub webhook: Option<WebhookConfig>,
    /// `http.listen`: where health, readiness, metrics and status are served. `None`: on the
    /// webhook listener, with everything else.
    pub http_listen: Option<SocketAddr>,
    /// Checks the daemon runs at once (default 4).
    pub max_concurrent_checks: Option<u32>,
    /// How long a registry that keeps failing is left alone.
    pub registry_breaker: BreakerConfig,
}

/// `registry_breaker`: after 3 requests in a row to a registry fail for good, it is left alone
/// for `cooldown`, doubling while it stays down up to `max_cooldown`. A zero `cooldown` turns
/// this off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
        }
    }
}

pub use crate::schedule::Schedule;
pub use receiver::{ReceiverKind, UnknownReceiverKind};

/// Default of `git.workdir_wait`.
pub const DEFAULT_WORKDIR_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct GitConfig {
    pub author_name: String,
    pub author_email: String,
    pub credentials: Vec<GitCredential>,
    /// How many times a rejected push is retried on top of the new remote head.
    pub push_retries: u32,
    /// One commit per branch per pass for every app that changed (as Flux's automation does),
    /// instead of one commit per app.
    pub group_commits: bool,
    /// Message template of a grouped commit (apps' own `commit_message` do not apply to it).
    pub group_commit_message: Option<String>,
    /// An unencrypted OpenSSH Ed25519 private key that signs every commit.
    pub signing_key_file: Option<PathBuf>,
    /// How long a pass waits for another process working in the same clone (60s by default).
    pub workdir_wait: Duration,
}

/// Credentials for the repositories whose URL starts with `url` (longest prefix wins).
#[derive(Debug, Clone, Default)]
pub struct GitCredential {
    pub url: String,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ssh_key_file: Option<PathBuf>,
    pub ssh_passphrase_env: Option<String>,
    pub known_hosts_file: Option<PathBuf>,
}

/// Settings for the registries whose host (or host/path) starts with `prefix`.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    pub prefix: String,
    pub docker_config: Option<PathBuf>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub token_env: Option<String>,
    pub requests_per_second: Option<f64>,
    pub max_concurrency: Option<u32>,
    pub insecure: bool,
    pub ca_file: Option<PathBuf>,
    /// `os/arch[/variant]` used to pick an image from a multi-platform index (the first of
    /// `platforms`).
    pub platform: Option<String>,
    /// `platform` as written (a string or a list): every tag the policy picks must have an
    /// image for each of these; empty = no platform filter.
    pub platforms: Vec<String>,
    /// `tag_list`: caps on one tags listing; `None` keeps the default of each.
    pub tag_list: TagListCaps,
}

/// `registries[].tag_list`: caps on one tags listing (all pages). Unset fields keep the
/// registry client's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TagListCaps {
    pub max_pages: Option<u32>,
    pub max_tags: Option<u32>,
    pub max_mib: Option<u32>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub listen: SocketAddr,
    pub receivers: Vec<ReceiverConfig>,
    /// Quiet period before a webhook-triggered check (default 100 ms).
    pub debounce: Option<Duration>,
    /// Longest wait after the first event of a burst (default 5 s).
    pub debounce_max: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub kind: ReceiverKind,
    /// Environment variable holding the shared secret, token or HMAC key.
    pub secret_env: String,
    /// Treat every event of this receiver as coming from this registry host (when the registry
    /// names itself differently from the `image:` references, e.g. an internal host name).
    pub registry: Option<String>,
}

/// One app: a config repo branch and the images whose tags it carries.
#[derive(Debug, Clone)]
pub struct App {
    /// The app file.
    pub file: PathBuf,
    pub name: String,
    pub repo: String,
    pub branch: String,
    pub write: WriteMode,
    pub pull_request: Option<PullRequestConfig>,
    pub commit_message: Option<String>,
    /// Per-app schedule; `None` means the global one.
    pub schedule: Option<Schedule>,
    pub images: Vec<ImageConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Commit,
    PullRequest,
}

#[derive(Debug, Clone)]
pub struct PullRequestConfig {
    /// `github`, `gitlab` or `gitea`.
    pub forge: ForgeKind,
    pub api_url: Option<String>,
    /// `owner/repo` (or GitLab path); derived from the repo URL when absent.
    pub project: Option<String>,
    pub token_env: String,
    /// Bot branch name template; default `imagebump/{{ app }}`.
    pub branch: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub draft: bool,
}

/// One image of an app.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// Short name used in messages and templates.
    pub name: String,
    /// The repository, without tag or digest.
    pub image: ImageRef,
    pub policy: PolicyConfig,
    pub include: Option<String>,
    pub exclude: Vec<String>,
    pub extract: Option<String>,
    pub pin_digest: bool,
    pub allow_downgrade: bool,
    pub min_age: Option<Duration>,
    /// The first of `platforms`.
    pub platform: Option<String>,
    /// `platform` (a string or a list): the tags the policy may pick must have an image for
    /// each; overrides the registry's.
    pub platforms: Vec<String>,
    pub targets: Vec<TargetConfig>,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PolicyConfig {
    Semver { range: String, strict: bool },
    Alphabetical { descending: bool },
    Numerical { descending: bool },
    NewestBuild,
    Digest { tag: String },
}

/// Where in the config repo an image's tag is written.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// Path relative to the repo root.
    pub file: String,
    /// Helm values path (`api.image.tag`).
    pub path: Option<String>,
    /// What the Helm value holds: `tag` (default), `repository`, `ref` or `digest`.
    pub field: Option<HelmField>,
    /// A Flux `$imagepolicy` marker name (`ns:name`).
    pub marker: Option<String>,
    pub line: usize,
}

/// Errors that keep a configuration from loading at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", format_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
}

fn format_diagnostics(list: &[Diagnostic]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A configuration with the problems found in it. The global file must be valid; a broken app
/// file is left out of `config.apps` and reported in `problems`.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub problems: Vec<Diagnostic>,
    /// The templates and secret references of every file, for the stages that use them to
    /// check (see [`Loaded::with_problems`]).
    pub refs: Refs,
}

impl Loaded {
    /// Add the problems later stages found in the files (a template that does not render, a
    /// secret variable that is not set). One in the global file rejects the configuration, as
    /// any global problem does; one in an app file leaves that app out and is reported with the
    /// other broken app files.
    pub fn with_problems(mut self, extra: Vec<Diagnostic>) -> Result<Loaded, ConfigError> {
        if extra.iter().any(|p| p.file == self.config.file) {
            let mut all = extra;
            all.extend(self.problems);
            return Err(ConfigError::Invalid(all));
        }
        self.config
            .apps
            .retain(|app| !extra.iter().any(|p| p.file == app.file));
        self.problems.extend(extra);
        read::sort(&mut self.problems, &self.config.file);
        Ok(self)
    }
}

/// Load the global file and every app file (`*.yaml`, `*.yml`) of its apps directory. A broken
/// global file fails the load, listing its problems and every app file's.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let checked = check(path)?;
    match checked.global {
        Some(global) => Ok(Loaded {
            config: Config {
                file: path.to_path_buf(),
                global,
                apps: checked.apps,
            },
            problems: checked.problems,
            refs: checked.refs,
        }),
        None => Err(ConfigError::Invalid(checked.problems)),
    }
}

/// Every file of a configuration read, with every problem of every file.
#[derive(Debug)]
pub struct Checked {
    /// The global settings, when the global file has no problem.
    pub global: Option<Global>,
    /// The apps whose file has no problem, sorted by name.
    pub apps: Vec<App>,
    /// Every problem: the global file's first, then each app file's in file order.
    pub problems: Vec<Diagnostic>,
    /// The templates and secret references of every file, broken ones included.
    pub refs: Refs,
}

/// Read the global file and every app file, reporting the problems of all of them at once: a
/// broken global file does not hide the app files' problems (they are read from the apps
/// directory it names, or `apps` beside it), and a broken app file still claims its name, so a
/// later file with the same name is reported too. Only an unreadable global file is an error.
pub fn check(path: &Path) -> Result<Checked, ConfigError> {
    let text = read_file(path)?;
    let mut diags = Diagnostics::new(path);
    let parsed = parse_global(path, &text, &mut diags);
    let global_ok = diags.list.is_empty();
    let mut problems = diags.list;
    let mut refs = diags.refs;
    let apps_dir = match &parsed {
        Some(global) => global.apps_dir.clone(),
        None => apps_dir_of(path, &text),
    };
    let mut apps: Vec<App> = Vec::new();
    let files = match std::fs::read_dir(&apps_dir) {
        Ok(entries) => {
            let mut files = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect::<Vec<_>>();
            files.sort();
            files
        }
        // With a broken global file the apps directory may be a guess: say nothing more.
        Err(_) if !global_ok => Vec::new(),
        Err(source) => {
            return Err(ConfigError::Read {
                path: apps_dir,
                source,
            });
        }
    };
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let text = match read_file(&file) {
            Ok(text) => text,
            Err(e) => {
                problems.push(Diagnostic {
                    file: file.clone(),
                    line: 1,
                    col: 1,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut diags = Diagnostics::new(&file);
        let app = parse_app(&file, &text, &mut diags);
        if let Some((name, line, col)) = app_name(&text) {
            match seen.get(&name) {
                Some(other) => diags.at(
                    line,
                    col,
                    format!("app name `{name}` is already used by {}", other.display()),
                ),
                None => {
                    seen.insert(name, file.clone());
                }
            }
        }
        refs.extend(diags.refs);
        match app {
            Some(app) if diags.list.is_empty() => apps.push(app),
            _ => problems.extend(diags.list),
        }
    }
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Checked {
        global: parsed.filter(|_| global_ok),
        apps,
        problems,
        refs,
    })
}

/// The apps directory a global file names, read without validating the rest (for a global file
/// with problems): its `apps` string, else `apps` beside it.
fn apps_dir_of(path: &Path, text: &str) -> PathBuf {
    let base = path.parent().unwrap_or(Path::new("."));
    let named = yaml::parse(text).ok().flatten().and_then(|root| {
        let mut ignored = Diagnostics::new(path);
        let fields = Fields::new(&root, "", GLOBAL_KEYS, &mut ignored)?;
        fields.opt_str("apps", &mut ignored)
    });
    base.join(named.unwrap_or_else(|| "apps".into()))
}

/// The `name` of an app file and its position, if the file is a mapping with a string `name`,
/// whatever else is wrong with it.
fn app_name(text: &str) -> Option<(String, usize, usize)> {
    let root = yaml::parse(text).ok().flatten()?;
    let mut ignored = Diagnostics::new(Path::new(""));
    let fields = Fields::new(&root, "", APP_KEYS, &mut ignored)?;
    let node = fields.get("name")?;
    let name = string(node, "name", &mut ignored)?;
    Some((name, node.line, node.col))
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_root(text: &str, diags: &mut Diagnostics) -> Option<Node> {
    match yaml::parse(text) {
        Ok(Some(root)) => Some(root),
        Ok(None) => {
            diags.at(1, 1, "the file is empty: expected a mapping");
            None
        }
        Err(e) => {
            diags.at(e.line, e.col, format!("invalid YAML: {}", e.message));
            None
        }
    }
}

const GLOBAL_KEYS: &[&str] = &[
    "apps",
    "interval",
    "schedule",
    "workdir",
    "git",
    "registries",
    "webhook",
    "http",
    "max_concurrent_checks",
    "registry_breaker",
];

/// Parse the global file's text. `path` locates the apps directory and names the file in
/// diagnostics.
pub fn parse_global(path: &Path, text: &str, diags: &mut Diagnostics) -> Option<Global> {
    let root = parse_root(text, diags)?;
    let fields = Fields::new(&root, "the global config", GLOBAL_KEYS, diags)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let apps_dir = base.join(
        fields
            .opt_str("apps", diags)
            .unwrap_or_else(|| "apps".into()),
    );
    let schedule = parse_schedule(&fields, diags).unwrap_or(Schedule::Interval(DEFAULT_INTERVAL));
    let workdir = fields
        .opt_str("workdir", diags)
        .map(|w| base.join(w))
        .unwrap_or_else(|| base.join(".imagebump"));
    let git = match fields.get("git") {
        Some(node) => parse_git(node, diags),
        None => Some(GitConfig {
            author_name: "imagebump".into(),
            author_email: "imagebump@localhost".into(),
            credentials: Vec::new(),
            push_retries: 5,
            group_commits: false,
            group_commit_message: None,
            signing_key_file: None,
            workdir_wait: DEFAULT_WORKDIR_WAIT,
        }),
    };
    let registries = fields
        .get("registries")
        .map(|node| {
            list(node, "registries", diags)
                .iter()
                .filter_map(|item| parse_registry(item, base, diags))
                .collect()
        })
        .unwrap_or_default();
    let webhook = fields.get("webhook").and_then(|n| parse_webhook(n, diags));
    let http_listen = fields.get("http").and_then(|n| parse_http(n, diags));
    let max_concurrent_checks = fields.opt_u32("max_concurrent_checks", diags);
    let registry_breaker = fields
        .get("registry_breaker")
        .and_then(|node| parse_breaker(node, diags))
        .unwrap_or_default();
    Some(Global {
        max_concurrent_checks,
        registry_breaker,
        apps_dir,
        schedule,
        workdir,
        git: git?,
        registries,
        webhook,
        http_listen,
    })
}

fn parse_schedule(fields: &Fields<'_>, diags: &mut Diagnostics) -> Option<Schedule> {
    let interval = fields.opt_duration("interval", diags);
    let cron = fields.get("schedule");
    match (interval, cron) {
        (Some(_), Some(node)) => {
            diags.node(node, "set either `interval` or `schedule`, not both");
            None
        }
        (Some(d), None) if d.is_zero() => {
            diags.node(fields.node(), "`interval` must be longer than zero");
            None
        }
        (Some(d), None) => Some(Schedule::Interval(d)),
        (None, Some(node)) => {
            let text = string(node, "schedule", diags)?;
            if text.split_whitespace().count() != 5 {
                diags.node(
                    node,
                    format!("`schedule` must be a 5-field cron expression (minute hour day month weekday), found `{text}`"),
                );
                return None;
            }
            match Schedule::cron(&text) {
                Ok(schedule) => Some(schedule),
                Err(e) => {
                    diags.node(node, format!("invalid cron expression `{text}`: {e}"));
                    None
                }
            }
        }
        (None, None) => None,
    }
}

fn parse_breaker(node: &Node, diags: &mut Diagnostics) -> Option<BreakerConfig> {
    let fields = Fields::new(
        node,
        "`registry_breaker`",
        &["cooldown", "max_cooldown"],
        diags,
    )?;
    let default = BreakerConfig::default();
    let cooldown = fields
        .opt_duration("cooldown", diags)
        .unwrap_or(default.cooldown);
    let max_cooldown = fields
        .opt_duration("max_cooldown", diags)
        .unwrap_or(default.max_cooldown.max(cooldown));
    if max_cooldown < cooldown {
        diags.node(
            fields.get("max_cooldown").unwrap_or(node),
            "`max_cooldown` must be at least `cooldown`",
        );
    }
    Some(BreakerConfig {
        cooldown,
        max_cooldown,
    })
}

fn parse_tag_list(node: &Node, diags: &mut Diagnostics) -> Option<TagListCaps> {
    let fields = Fields::new(
        node,
        "`tag_list`",
        &["max_pages", "max_tags", "max_mib", "timeout"],
        diags,
    )?;
    let caps = TagListCaps {
        max_pages: fields.opt_u32("max_pages", diags),
        max_tags: fields.opt_u32("max_tags", diags),
        max_mib: fields.opt_u32("max_mib", diags),
        timeout: fields.opt_duration("timeout", diags),
    };
    // (`opt_u32` already refuses 0 for the counts.)
    if caps.timeout == Some(Duration::ZERO) {
        diags.node(
            fields.get("timeout").unwrap_or(node),
            "`timeout` must be above 0 (it bounds one whole tags listing)",
        );
    }
    Some(caps)
}

fn parse_git(node: &Node, diags: &mut Diagnostics) -> Option<GitConfig> {
    let fields = Fields::new(
        node,
        "`git`",
        &[
            "author",
            "credentials",
            "push_retries",
            "group_commits",
            "group_commit_message",
            "signing_key_file",
            "workdir_wait",
        ],
        diags,
    )?;
    let (mut author_name, mut author_email) =
        ("imagebump".to_string(), "imagebump@localhost".to_string());
    if let Some(author) = fields.get("author")
        && let Some(a) = Fields::new(author, "`git.author`", &["name", "email"], diags)
    {
        if let Some(name) = a.opt_str("name", diags) {
            author_name = name;
        }
        if let Some(email) = a.opt_str("email", diags) {
            if !email.contains('@') {
                diags.node(
                    author,
                    format!("`git.author.email` must be an email address, found `{email}`"),
                );
            }
            author_email = email;
        }
    }
    let credentials = fields
        .get("credentials")
        .map(|node| {
            list(node, "credentials", diags)
                .iter()
                .filter_map(|item| parse_git_credential(item, diags))
                .collect()
        })
        .unwrap_or_default();
    let group_commit_message = fields.opt_str("group_commit_message", diags);
    if let (Some(template), Some(at)) = (&group_commit_message, fields.get("group_commit_message"))
    {
        check_template(
            template,
            TemplateKind::GroupCommitMessage,
            "git.group_commit_message",
            at,
            diags,
        );
    }
    Some(GitConfig {
        author_name,
        author_email,
        credentials,
        push_retries: fields.opt_u32("push_retries", diags).unwrap_or(5),
        group_commits: fields.opt_bool("group_commits", diags).unwrap_or(false),
        group_commit_message,
        signing_key_file: fields.opt_str("signing_key_file", diags).map(PathBuf::from),
        workdir_wait: fields
            .opt_duration("workdir_wait", diags)
            .unwrap_or(DEFAULT_WORKDIR_WAIT),
    })
}

fn parse_git_credential(node: &Node, diags: &mut Diagnostics) -> Option<GitCredential> {
    let fields = Fields::new(
        node,
        "a git credential",
        &[
            "url",
            "username",
            "password_env",
            "password_file",
            "ssh_key_file",
            "ssh_passphrase_env",
            "known_hosts_file",
        ],
        diags,
    )?;
    let credential = GitCredential {
        url: fields.required_str("url", "a git credential", diags)?,
        username: fields.opt_str("username", diags),
        password_env: fields.opt_env("password_env", diags),
        password_file: fields.opt_str("password_file", diags).map(PathBuf::from),
        ssh_key_file: fields.opt_str("ssh_key_file", diags).map(PathBuf::from),
        ssh_passphrase_env: fields.opt_env("ssh_passphrase_env", diags),
        known_hosts_file: fields.opt_str("known_hosts_file", diags).map(PathBuf::from),
    };
    let https = credential.password_env.is_some() || credential.password_file.is_some();
    let ssh = credential.ssh_key_file.is_some();
    if https && ssh {
        diags.node(node, "a git credential is either a password (`password_env`/`password_file`) or an SSH key (`ssh_key_file`), not both");
    } else if !https && !ssh {
        diags.node(
            node,
            "a git credential needs `password_env`, `password_file` or `ssh_key_file`",
        );
    }
    if ssh && credential.known_hosts_file.is_none() {
        diags.node(
            node,
            "an SSH credential needs `known_hosts_file` (unknown hosts are rejected)",
        );
    }
    Some(credential)
}

fn parse_registry(node: &Node, base: &Path, diags: &mut Diagnostics) -> Option<RegistryConfig> {
    let fields = Fields::new(
        node,
        "a registry",
        &[
            "prefix",
            "docker_config",
            "username",
            "password_env",
            "token_env",
            "requests_per_second",
            "max_concurrency",
            "insecure",
            "ca_file",
            "platform",
            "tag_list",
        ],
        diags,
    )?;
    let tag_list = fields
        .get("tag_list")
        .and_then(|node| parse_tag_list(node, diags))
        .unwrap_or_default();
    let platforms = fields.opt_str_list("platform", diags);
    let registry = RegistryConfig {
        prefix: fields.required_str("prefix", "a registry", diags)?,
        docker_config: fields.opt_str("docker_config", diags).map(|p| base.join(p)),
        username: fields.opt_str("username", diags),
        password_env: fields.opt_env("password_env", diags),
        token_env: fields.opt_env("token_env", diags),
        requests_per_second: fields.opt_f64("requests_per_second", diags),
        max_concurrency: fields.opt_u32("max_concurrency", diags),
        insecure: fields.opt_bool("insecure", diags).unwrap_or(false),
        ca_file: fields.opt_str("ca_file", diags).map(|p| base.join(p)),
        platform: platforms.first().cloned(),
        platforms,
        tag_list,
    };
    if registry.username.is_some() != registry.password_env.is_some() {
        diags.node(node, "`username` and `password_env` go together");
    }
    let methods = [
        registry.docker_config.is_some(),
        registry.password_env.is_some(),
        registry.token_env.is_some(),
    ];
    if methods.iter().filter(|m| **m).count() > 1 {
        diags.node(
            node,
            "choose one of `docker_config`, `username`+`password_env` or `token_env`",
        );
    }
    for platform in &registry.platforms {
        check_platform(platform, fields.get("platform").unwrap_or(node), diags);
    }
    Some(registry)
}

fn check_platform(platform: &str, node: &Node, diags: &mut Diagnostics) {
    let parts: Vec<&str> = platform.split('/').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
        diags.node(
            node,
            format!("`platform` must be os/arch or os/arch/variant, found `{platform}`"),
        );
    }
}

/// `http: {listen: ADDR}`: the listener for health, readiness, metrics and status.
fn parse_http(node: &Node, diags: &mut Diagnostics) -> Option<SocketAddr> {
    let fields = Fields::new(node, "`http`", &["listen"], diags)?;
    let Some(text) = fields.opt_str("listen", diags) else {
        diags.node(
            node,
            "`http` needs `listen`, such as 127.0.0.1:9090 (or the pod IP's 0.0.0.0:9090)",
        );
        return None;
    };
    match text.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            diags.node(
                fields.get("listen").unwrap_or(node),
                format!("`listen` must be an address such as 127.0.0.1:9090, found `{text}`"),
            );
            None
        }
    }
}

fn parse_webhook(node: &Node, diags: &mut Diagnostics) -> Option<WebhookConfig> {
    let fields = Fields::new(
        node,
        "`webhook`",
        &["listen", "receivers", "debounce", "debounce_max"],
        diags,
    )?;
    let debounce = fields.opt_duration("debounce", diags);
    let debounce_max = fields.opt_duration("debounce_max", diags);
    let listen_text = fields
        .opt_str("listen", diags)
        .unwrap_or_else(|| "0.0.0.0:8080".into());
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            let at = fields.get("listen").unwrap_or(node);
            diags.node(
                at,
                format!("`listen` must be an address such as 0.0.0.0:8080, found `{listen_text}`"),
            );
            None
        }
    };
    let mut receivers = Vec::new();
    if let Some(list_node) = fields.get("receivers") {
        for item in list(list_node, "receivers", diags) {
            let Some(r) = Fields::new(
                item,
                "a webhook receiver",
                &["type", "secret_env", "token_env", "registry"],
                diags,
            ) else {
                continue;
            };
            let names = ReceiverKind::ALL.map(ReceiverKind::as_str);
            let kind = r
                .required_str("type", "a webhook receiver", diags)
                .and_then(|kind| match kind.parse::<ReceiverKind>() {
                    Ok(kind) => Some(kind),
                    Err(_) => {
                        let hint = read::did_you_mean(&kind, &names)
                            .map(|s| format!("; did you mean `{s}`?"))
                            .unwrap_or_default();
                        diags.node(
                            item,
                            format!(
                                "unknown receiver type `{kind}`{hint} (expected one of: {})",
                                names.join(", ")
                            ),
                        );
                        None
                    }
                });
            let secret = r
                .opt_env("secret_env", diags)
                .or_else(|| r.opt_env("token_env", diags));
            if secret.is_none() {
                diags.node(item, "a webhook receiver needs `secret_env` (or `token_env`): every receiver is authenticated");
            }
            if let (Some(kind), Some(secret_env)) = (kind, secret) {
                receivers.push(ReceiverConfig {
                    kind,
                    secret_env,
                    registry: r
                        .opt_str("registry", diags)
                        .map(|h| crate::reference::normalize_registry(&h)),
                });
            }
        }
    }
    Some(WebhookConfig {
        listen: listen?,
        receivers,
        debounce,
        debounce_max,
    })
}

const APP_KEYS: &[&str] = &[
    "name",
    "repo",
    "branch",
    "write",
    "pull_request",
    "commit_message",
    "interval",
    "schedule",
    "images",
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
    Some(App {
        file: path.to_path_buf(),
        name: name?,
        repo: repo?,
        branch,
        write,
        pull_request,
        commit_message,
        schedule,
        images,
    })
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// Check a template's syntax; a template that parses is recorded in `diags.refs` for the stage
/// that renders it to try against its context (`engine::check`).
fn check_template(
    template: &str,
    kind: TemplateKind,
    key: &str,
    node: &Node,
    diags: &mut Diagnostics,
) {
    let env = minijinja::Environment::new();
    match env.template_from_str(template) {
        Ok(_) => {
            let at = diags.position(node);
            diags.refs.templates.push(TemplateRef {
                kind,
                key: key.to_string(),
                text: template.to_string(),
                at,
            });
        }
        Err(e) => diags.node(node, format!("`{key}` is not a valid template: {e}")),
    }
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
    Some(target)
}

#[cfg(test)]
mod tests;
