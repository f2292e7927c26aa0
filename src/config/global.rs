//! Parsing and validating the global file (`imagebump.yaml`): schedule, git, registries,
//! webhooks, the HTTP listener and limits.
//!
//! Invariant: every problem is recorded with its position and parsing carries on, so one run
//! reports them all; a value that does not validate is left out, never guessed.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::read::{
    self, Diagnostics, Fields, TemplateKind, check_platform, check_template, list, parse_root,
    parse_schedule,
};
use super::yaml::Node;
use super::*;

pub(super) const GLOBAL_KEYS: &[&str] = &[
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
    "notifications",
    "history",
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
        Some(node) => parse_git(node, base, diags),
        None => Some(GitConfig {
            author_name: "imagebump".into(),
            author_email: "imagebump@localhost".into(),
            credentials: Vec::new(),
            push_retries: 5,
            group_commits: false,
            group_commit_message: None,
            signing_key_file: None,
            workdir_wait: DEFAULT_WORKDIR_WAIT,
            maintenance: MaintenanceConfig::default(),
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
    let notifications = fields
        .get("notifications")
        .and_then(|node| super::notify::parse_notifications(node, base, diags));
    let history = fields
        .get("history")
        .and_then(|node| parse_history(node, diags))
        .unwrap_or_default();
    Some(Global {
        history,
        notifications,
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

/// `history: {max_commits, max_age}`: how far back a target's history is read.
fn parse_history(node: &Node, diags: &mut Diagnostics) -> Option<HistoryBound> {
    let fields = Fields::new(node, "`history`", &["max_commits", "max_age"], diags)?;
    let default = HistoryBound::default();
    let max_age = fields
        .opt_duration("max_age", diags)
        .unwrap_or(default.max_age);
    if max_age.is_zero() {
        diags.node(
            fields.get("max_age").unwrap_or(node),
            "`max_age` must be longer than 0s",
        );
    }
    Some(HistoryBound {
        max_commits: fields
            .opt_u32("max_commits", diags)
            .unwrap_or(default.max_commits),
        max_age,
    })
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

fn parse_git(node: &Node, base: &Path, diags: &mut Diagnostics) -> Option<GitConfig> {
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
            "maintenance",
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
                .filter_map(|item| parse_git_credential(item, base, diags))
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
        signing_key_file: fields.opt_file("signing_key_file", base, diags),
        workdir_wait: fields
            .opt_duration("workdir_wait", diags)
            .unwrap_or(DEFAULT_WORKDIR_WAIT),
        maintenance: fields
            .get("maintenance")
            .and_then(|node| parse_maintenance(node, diags))
            .unwrap_or_default(),
    })
}

/// `git.maintenance: {max_packs, max_loose_objects}`: when a cached clone is repacked; 0 turns
/// a limit off. `max_packs` stays below [`REBUILD_PAST_PACKS`], where the clone is cloned again.
fn parse_maintenance(node: &Node, diags: &mut Diagnostics) -> Option<MaintenanceConfig> {
    if let super::yaml::Value::Scalar { text, .. } = &node.value {
        diags.node(
            node,
            format!(
                "`git.maintenance` is a mapping such as `{{max_packs: 50, max_loose_objects: 5000}}` (`{{max_packs: 0, max_loose_objects: 0}}` never repacks), found `{text}`"
            ),
        );
        return None;
    }
    let fields = Fields::new(
        node,
        "`git.maintenance`",
        &["max_packs", "max_loose_objects"],
        diags,
    )?;
    let default = MaintenanceConfig::default();
    let max_packs = whole_or_off(&fields, "max_packs", "it", diags).unwrap_or(default.max_packs);
    if max_packs >= REBUILD_PAST_PACKS {
        diags.node(
            fields.get("max_packs").unwrap_or(node),
            format!(
                "`max_packs` must be below {REBUILD_PAST_PACKS} (past {REBUILD_PAST_PACKS} packs a clone is deleted and cloned again, never repacked), or 0 to turn it off; found `{max_packs}`"
            ),
        );
    }
    Some(MaintenanceConfig {
        max_packs,
        max_loose_objects: whole_or_off(&fields, "max_loose_objects", "it", diags)
            .unwrap_or(default.max_loose_objects),
    })
}

/// An optional whole number where 0 means off (`opt_u32` refuses 0); `off` says what 0 turns
/// off, for the error (`it`, `retries`).
fn whole_or_off(fields: &Fields<'_>, key: &str, off: &str, diags: &mut Diagnostics) -> Option<u32> {
    let at = fields.get(key)?;
    let (parsed, found) = match &at.value {
        super::yaml::Value::Scalar {
            text,
            quoted: false,
        } => (text.parse::<u32>().ok(), text.clone()),
        super::yaml::Value::Scalar { text, .. } => (None, format!("\"{text}\"")),
        _ => (None, "a list or mapping".to_string()),
    };
    if parsed.is_none() {
        diags.node(
            at,
            format!("`{key}` must be a whole number (0 turns {off} off), found `{found}`"),
        );
    }
    parsed
}

fn parse_git_credential(
    node: &Node,
    base: &Path,
    diags: &mut Diagnostics,
) -> Option<GitCredential> {
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
        password_file: fields.opt_file("password_file", base, diags),
        ssh_key_file: fields.opt_file("ssh_key_file", base, diags),
        ssh_passphrase_env: fields.opt_env("ssh_passphrase_env", diags),
        known_hosts_file: fields.opt_file("known_hosts_file", base, diags),
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
        docker_config: fields.opt_file("docker_config", base, diags),
        username: fields.opt_str("username", diags),
        password_env: fields.opt_env("password_env", diags),
        token_env: fields.opt_env("token_env", diags),
        requests_per_second: fields.opt_f64("requests_per_second", diags),
        max_concurrency: fields.opt_u32("max_concurrency", diags),
        insecure: fields.opt_bool("insecure", diags).unwrap_or(false),
        ca_file: fields.opt_file("ca_file", base, diags),
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

/// `webhook.retry: {max_attempts, initial, max}`: retries of a targeted check that failed
/// transiently. `max_attempts: 0` turns them off; `max` defaults to the larger of 5m and
/// `initial`.
fn parse_retry(node: &Node, diags: &mut Diagnostics) -> Option<RetryConfig> {
    let fields = Fields::new(node, "`retry`", &["max_attempts", "initial", "max"], diags)?;
    let default = RetryConfig::default();
    let max_attempts =
        whole_or_off(&fields, "max_attempts", "retries", diags).unwrap_or(default.max_attempts);
    let initial = fields
        .opt_duration("initial", diags)
        .unwrap_or(default.initial);
    if initial.is_zero() {
        diags.node(
            fields.get("initial").unwrap_or(node),
            "`initial` must be longer than 0s (it is the wait before the first retry)",
        );
    }
    let max = fields
        .opt_duration("max", diags)
        .unwrap_or(default.max.max(initial));
    if max < initial {
        diags.node(
            fields.get("max").unwrap_or(node),
            "`max` must be at least `initial`",
        );
    }
    Some(RetryConfig {
        max_attempts,
        initial,
        max,
    })
}

fn parse_webhook(node: &Node, diags: &mut Diagnostics) -> Option<WebhookConfig> {
    let fields = Fields::new(
        node,
        "`webhook`",
        &["listen", "receivers", "debounce", "debounce_max", "retry"],
        diags,
    )?;
    let retry = fields
        .get("retry")
        .and_then(|node| parse_retry(node, diags))
        .unwrap_or_default();
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
                .opt_daemon_env("secret_env", diags)
                .or_else(|| r.opt_daemon_env("token_env", diags));
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
        retry,
    })
}
