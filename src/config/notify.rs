//! Parsing the global file's `notifications:` section (the sinks, the events they get, the
//! failure threshold and the delivery bounds) and an app's `notify:` list.
//!
//! Invariant: a sink's URL and HMAC key are secrets and are only ever named (`url_env`,
//! `url_file`, `secret_env`, `secret_file`); an inline `url:` or `secret:` is refused with its
//! position, so no secret is ever written in a config file or read here.

use std::path::Path;
use std::time::Duration;

use super::read::{Diagnostics, Fields, list};
use super::yaml::Node;
use super::*;

/// Parse `notifications:` (`base` resolves `*_file` paths).
pub(super) fn parse_notifications(
    node: &Node,
    base: &Path,
    diags: &mut Diagnostics,
) -> Option<NotificationsConfig> {
    let fields = Fields::new(
        node,
        "`notifications`",
        &[
            "sinks", "notify", "failures", "queue", "attempts", "timeout",
        ],
        diags,
    )?;
    let defaults = NotificationsConfig::default();
    let mut sinks: Vec<SinkConfig> = Vec::new();
    if let Some(list_node) = fields.get("sinks") {
        for item in list(list_node, "sinks", diags) {
            if let Some(sink) = parse_sink(item, base, diags) {
                if sinks.iter().any(|s| s.name == sink.name) {
                    diags.node(
                        item,
                        format!("notification sink name `{}` is used twice", sink.name),
                    );
                }
                sinks.push(sink);
            }
        }
    }
    let notify = fields.opt_str_list("notify", diags);
    if let Some(at) = fields.get("notify") {
        for name in &notify {
            if !sinks.iter().any(|s| &s.name == name) {
                diags.node(at, unknown_sink(name, &sinks));
            }
        }
    }
    let timeout = fields
        .opt_duration("timeout", diags)
        .unwrap_or(defaults.timeout);
    if timeout == Duration::ZERO {
        diags.node(
            fields.get("timeout").unwrap_or(node),
            "`timeout` must be above 0 (it bounds one delivery attempt)",
        );
    }
    Some(NotificationsConfig {
        sinks,
        notify,
        failures: fields
            .opt_u32("failures", diags)
            .unwrap_or(defaults.failures),
        queue: fields.opt_u32("queue", diags).unwrap_or(defaults.queue),
        attempts: fields
            .opt_u32("attempts", diags)
            .unwrap_or(defaults.attempts),
        timeout,
    })
}

fn unknown_sink(name: &str, sinks: &[SinkConfig]) -> String {
    let names: Vec<&str> = sinks.iter().map(|s| s.name.as_str()).collect();
    let hint = super::read::did_you_mean(name, &names)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    if names.is_empty() {
        format!(
            "unknown notification sink `{name}`: `notifications.sinks` in the global file names none"
        )
    } else {
        format!(
            "unknown notification sink `{name}`{hint} (the global file's `notifications.sinks` are: {})",
            names.join(", ")
        )
    }
}

fn parse_sink(node: &Node, base: &Path, diags: &mut Diagnostics) -> Option<SinkConfig> {
    let fields = Fields::new(
        node,
        "a notification sink",
        &[
            "name",
            "type",
            "url_env",
            "url_file",
            "secret_env",
            "secret_file",
            "events",
            // Refused below with a clear message rather than "unknown key".
            "url",
            "secret",
        ],
        diags,
    )?;
    for key in ["url", "secret"] {
        if let Some(at) = fields.get(key) {
            diags.node(
                at,
                format!(
                    "a notification sink's `{key}` is a secret and is never written in the config: \
                     name the environment variable (`{key}_env`) or file (`{key}_file`) holding it"
                ),
            );
        }
    }
    let name = fields.required_str("name", "a notification sink", diags);
    if let (Some(name), Some(at)) = (&name, fields.get("name"))
        && !is_sink_name(name)
    {
        diags.node(
            at,
            format!(
                "sink name `{name}` must be 1-63 of [a-z0-9-_], starting with a letter or digit"
            ),
        );
    }
    let kind = match fields
        .required_str("type", "a notification sink", diags)
        .as_deref()
    {
        Some("slack") => Some(SinkKind::Slack),
        Some("webhook") => Some(SinkKind::Webhook),
        Some(other) => {
            diags.node(
                fields.get("type").unwrap_or(node),
                format!("unknown sink type `{other}` (expected one of: slack, webhook)"),
            );
            None
        }
        None => None,
    };
    let url = secret_ref(&fields, "url", base, diags);
    if url.is_none() && fields.get("url").is_none() {
        diags.node(node, "a notification sink needs `url_env` or `url_file`");
    }
    let secret = secret_ref(&fields, "secret", base, diags);
    match (kind, &secret) {
        (Some(SinkKind::Webhook), None) if fields.get("secret").is_none() => diags.node(
            node,
            "a `webhook` sink needs `secret_env` or `secret_file`: the HMAC key that signs every delivery",
        ),
        (Some(SinkKind::Slack), Some(_)) => diags.node(
            node,
            "a `slack` sink takes no secret: the incoming webhook URL is the secret",
        ),
        _ => {}
    }
    let mut events = Vec::new();
    for event in fields.opt_str_list("events", diags) {
        match NotifyEvent::from_name(&event) {
            Some(e) => events.push(e),
            None => diags.node(
                fields.get("events").unwrap_or(node),
                format!(
                    "unknown notification event `{event}` (expected one of: {})",
                    NotifyEvent::ALL.map(NotifyEvent::as_str).join(", ")
                ),
            ),
        }
    }
    if events.is_empty() {
        events = NotifyEvent::ALL.to_vec();
    }
    Some(SinkConfig {
        name: name?,
        kind: kind?,
        url: url?,
        secret,
        events,
    })
}

/// `KEY_env` or `KEY_file` (exactly one).
fn secret_ref(
    fields: &Fields<'_>,
    key: &str,
    base: &Path,
    diags: &mut Diagnostics,
) -> Option<SecretRef> {
    let env = fields.opt_daemon_env(&format!("{key}_env"), diags);
    let file = fields.opt_daemon_file(&format!("{key}_file"), base, diags);
    match (env, file) {
        (Some(_), Some(_)) => {
            diags.node(
                fields.node(),
                format!("choose one of `{key}_env` and `{key}_file`"),
            );
            None
        }
        (Some(var), None) => Some(SecretRef::Env(var)),
        (None, Some(path)) => Some(SecretRef::File(path)),
        (None, None) => None,
    }
}

fn is_sink_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

/// An app's `notify: [SINK, ...]`: the names, each recorded with its place so the loader can
/// check them against the global file's sinks.
pub(super) fn parse_app_notify(fields: &Fields<'_>, diags: &mut Diagnostics) -> Vec<String> {
    let Some(node) = fields.get("notify") else {
        return Vec::new();
    };
    let names = fields.opt_str_list("notify", diags);
    let items: Vec<&Node> = match &node.value {
        super::yaml::Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    for (name, at) in names.iter().zip(items) {
        let position = diags.position(at);
        diags.refs.sinks.push(super::read::SinkRef {
            name: name.clone(),
            at: position,
        });
    }
    names
}

/// The problems of the sink names an app file uses (`refs`) that the global file does not
/// define.
pub(super) fn check_app_sinks(
    refs: &[super::read::SinkRef],
    global: &Global,
) -> Vec<super::read::Diagnostic> {
    let sinks = global
        .notifications
        .as_ref()
        .map(|n| n.sinks.as_slice())
        .unwrap_or_default();
    refs.iter()
        .filter(|r| !sinks.iter().any(|s| s.name == r.name))
        .map(|r| r.at.problem(unknown_sink(&r.name, sinks)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::read::Diagnostics;

    fn global(text: &str) -> (Option<Global>, Vec<String>) {
        let path = Path::new("/etc/imagebump/imagebump.yaml");
        let mut diags = Diagnostics::new(path);
        let g = parse_global(path, text, &mut diags);
        (g, diags.list.iter().map(ToString::to_string).collect())
    }

    const FULL: &str = "\
notifications:
  failures: 2
  queue: 10
  attempts: 3
  timeout: 5s
  notify: [team]
  sinks:
    - name: team
      type: slack
      url_env: SLACK_WEBHOOK_URL
      events: [committed, failed, recovered]
    - name: audit
      type: webhook
      url_file: secrets/audit-url
      secret_env: AUDIT_HMAC_KEY
";

    #[test]
    fn a_full_section_parses() {
        let (g, errors) = global(FULL);
        assert_eq!(errors, Vec::<String>::new());
        let n = g.unwrap().notifications.unwrap();
        assert_eq!((n.failures, n.queue, n.attempts), (2, 10, 3));
        assert_eq!(n.timeout, Duration::from_secs(5));
        assert_eq!(n.notify, vec!["team"]);
        assert_eq!(n.sinks[0].kind, SinkKind::Slack);
        assert_eq!(n.sinks[0].url, SecretRef::Env("SLACK_WEBHOOK_URL".into()));
        assert!(!n.sinks[0].events.contains(&NotifyEvent::PullRequest));
        assert_eq!(
            n.sinks[1].url,
            SecretRef::File("/etc/imagebump/secrets/audit-url".into())
        );
        assert_eq!(n.sinks[1].events, NotifyEvent::ALL.to_vec());
        assert_eq!(
            n.sinks[1].secret,
            Some(SecretRef::Env("AUDIT_HMAC_KEY".into()))
        );
    }

    #[test]
    fn inline_secrets_are_refused_with_their_line() {
        let (_, errors) = global(
            "notifications:\n  sinks:\n    - name: team\n      type: slack\n      url: https://hooks.slack.com/services/T0/B0/xyz\n    - name: audit\n      type: webhook\n      url_env: AUDIT_URL\n      secret: hunter2hunter2hunter2\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "/etc/imagebump/imagebump.yaml:5:12: a notification sink's `url` is a secret"
            ),
            "{errors:?}"
        );
        assert!(
            errors[1].contains(":9:15: a notification sink's `secret` is a secret"),
            "{errors:?}"
        );
        // The secret itself is never repeated.
        assert!(!errors.join("\n").contains("hunter2") && !errors.join("\n").contains("xyz"));
    }

    #[test]
    fn sinks_need_their_secrets_and_known_names() {
        let (_, errors) = global(
            "notifications:\n  notify: [teams]\n  sinks:\n    - name: team\n      type: slack\n      url_env: A\n      secret_env: B\n    - name: audit\n      type: webhook\n      url_env: C\n      events: [comitted]\n    - name: x\n      type: email\n",
        );
        let all = errors.join("\n");
        for expected in [
            ":2:11: unknown notification sink `teams`; did you mean `team`?",
            ":4:7: a `slack` sink takes no secret",
            ":8:7: a `webhook` sink needs `secret_env` or `secret_file`",
            ":11:15: unknown notification event `comitted`",
            ":13:13: unknown sink type `email` (expected one of: slack, webhook)",
            ":12:7: a notification sink needs `url_env` or `url_file`",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
    }

    #[test]
    fn an_app_naming_an_unknown_sink_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("apps")).unwrap();
        std::fs::write(
            dir.path().join("imagebump.yaml"),
            "notifications:\n  sinks:\n    - {name: team, type: slack, url_env: SLACK_URL}\n",
        )
        .unwrap();
        let app = "name: APP\nrepo: https://example.com/r.git\nnotify: [SINK]\nimages:\n  - image: nginx\n    policy: {semver: '*'}\n    targets: [{file: a.yaml}]\n";
        std::fs::write(
            dir.path().join("apps/good.yaml"),
            app.replace("APP", "good").replace("SINK", "team"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("apps/bad.yaml"),
            app.replace("APP", "bad").replace("SINK", "teams"),
        )
        .unwrap();
        let loaded = crate::config::load(&dir.path().join("imagebump.yaml")).unwrap();
        assert_eq!(loaded.config.apps.len(), 1);
        assert_eq!(loaded.config.apps[0].notify, vec!["team"]);
        let problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].ends_with("bad.yaml:3:10: unknown notification sink `teams`; did you mean `team`? (the global file's `notifications.sinks` are: team)"),
            "{problems:?}"
        );
    }
}
