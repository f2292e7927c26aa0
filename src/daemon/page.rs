//! The status page: `GET /` on the operator listener, one server-rendered HTML page.
//!
//! Invariant: built only from the status snapshot `/api/v1/status` serves and the notification
//! sinks' counts the metrics keep (nothing is asked of the worker or a registry to draw it), and every value is HTML-escaped by the template engine
//! (minijinja auto-escapes `.html` templates). No JavaScript and no external asset: it works in
//! an air-gapped cluster and refreshes itself with a meta refresh.

use std::time::Duration;

use serde::Serialize;

use super::metrics::SinkStatus;
use super::status::{
    AppStatus, ConfigProblem, RegistryStatus, RetryStatus, StatusResponse, Update,
};
use crate::forge;

/// Seconds between two refreshes of the page.
pub const REFRESH_SECS: u64 = 15;

const TEMPLATE: &str = include_str!("page.html");

#[derive(Serialize)]
struct Page<'a> {
    now: String,
    ready: bool,
    refresh: u64,
    config_errors: &'a [ConfigProblem],
    apps: Vec<AppView<'a>>,
    notifications: Vec<SinkView<'a>>,
    registries: &'a [RegistryStatus],
    shard: Option<&'a super::status::ShardStatus>,
    retries: &'a [RetryStatus],
}

/// One notification sink's line (section "Notifications").
#[derive(Serialize)]
struct SinkView<'a> {
    sink: &'a str,
    delivered: u64,
    retried: u64,
    failed: u64,
    dropped: u64,
    /// Some event was given up or dropped.
    failing: bool,
    last_delivered_at: Option<&'a str>,
    last_problem: Option<&'a str>,
    last_problem_at: Option<&'a str>,
}

fn sink_view(sink: &SinkStatus) -> SinkView<'_> {
    let count = |outcome: &str| {
        sink.counts
            .iter()
            .find(|(o, _)| *o == outcome)
            .map_or(0, |(_, n)| *n)
    };
    SinkView {
        sink: &sink.sink,
        delivered: count("delivered"),
        retried: count("retried"),
        failed: count("failed"),
        dropped: count("dropped"),
        failing: count("failed") + count("dropped") > 0,
        last_delivered_at: sink.last_delivered_at.as_deref(),
        last_problem: sink.last_problem.as_deref(),
        last_problem_at: sink.last_problem_at.as_deref(),
    }
}

#[derive(Serialize)]
struct AppView<'a> {
    name: &'a str,
    state: &'static str,
    state_class: &'static str,
    file: Option<&'a str>,
    repo: Option<&'a str>,
    branch: Option<&'a str>,
    write: Option<&'a str>,
    last_check: Option<&'a str>,
    last_duration: Option<String>,
    last_commit: Option<&'a str>,
    commit_url: Option<String>,
    pull_request: Option<&'a str>,
    last_error: Option<&'a str>,
    error_since: Option<&'a str>,
    config_error: Option<&'a str>,
    images: Vec<ImageView<'a>>,
    history: &'a [Update],
}

#[derive(Serialize)]
struct ImageView<'a> {
    name: &'a str,
    repository: &'a str,
    policy: &'a str,
    deployed: Option<&'a str>,
    candidate: Option<&'a str>,
    why: Option<&'a str>,
    targets: Vec<&'a str>,
}

/// The page for `status`, as of `now` (RFC 3339).
pub fn render(status: &StatusResponse, now: &str) -> Result<String, minijinja::Error> {
    render_with_notifications(status, &[], now)
}

/// The page for `status` with the notification sinks' outcomes (from the metrics).
pub fn render_with_notifications(
    status: &StatusResponse,
    notifications: &[SinkStatus],
    now: &str,
) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.add_template("status.html", TEMPLATE)?;
    let page = Page {
        now: now.to_string(),
        ready: status.ready,
        refresh: REFRESH_SECS,
        config_errors: &status.config_errors,
        apps: status.apps.iter().map(app_view).collect(),
        notifications: notifications.iter().map(sink_view).collect(),
        registries: &status.registries,
        shard: status.shard.as_ref(),
        retries: &status.retries,
    };
    env.get_template("status.html")?.render(&page)
}

fn app_view(app: &AppStatus) -> AppView<'_> {
    let details = app.details.as_ref();
    let (state, state_class) = match (&app.last_check, &app.last_error) {
        (None, _) => ("NOT CHECKED YET", "unknown"),
        (Some(_), Some(_)) => ("FAILING", "failed"),
        (Some(_), None) => ("OK", "ok"),
    };
    let images = app
        .images
        .iter()
        .map(|image| {
            let configured = details.and_then(|d| d.images.iter().find(|i| i.name == image.name));
            ImageView {
                name: &image.name,
                repository: &image.repository,
                policy: configured.map_or("", |c| c.policy.as_str()),
                deployed: image.deployed.as_deref(),
                candidate: image.candidate.as_deref(),
                why: image.why_text.as_deref(),
                targets: configured
                    .map(|c| c.targets.iter().map(String::as_str).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    AppView {
        name: &app.name,
        state,
        state_class,
        file: details.map(|d| d.file.as_str()),
        repo: details.map(|d| d.repo.as_str()),
        branch: details.map(|d| d.branch.as_str()),
        write: details.map(|d| d.write.as_str()),
        last_check: app.last_check.as_deref(),
        last_duration: app
            .last_duration_ms
            .map(|ms| humantime(Duration::from_millis(ms))),
        last_commit: app.last_commit.as_deref(),
        commit_url: match (details, &app.last_commit) {
            (Some(d), Some(sha)) => forge::commit_url(&d.repo, sha),
            _ => None,
        },
        pull_request: app.pull_request.as_deref(),
        last_error: app.last_error.as_deref(),
        error_since: app.error_since.as_deref(),
        config_error: app.config_error.as_deref(),
        images,
        history: &app.history,
    }
}

/// `850 ms`, `2.4 s`, `3 min 5 s`.
fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::daemon::status::{AppDetails, ImageDetails, ImageStatus};

    #[test]
    fn values_are_escaped_and_errors_shown() {
        let status = StatusResponse {
            ready: true,
            retries: Vec::new(),
            apps: vec![AppStatus {
                name: "shop".into(),
                images: vec![ImageStatus {
                    name: "api".into(),
                    repository: "ghcr.io/acme/api".into(),
                    deployed: Some("1.4.2".into()),
                    candidate: Some("1.4.3".into()),
                    why: None,
                    why_text: Some("1.4.3 is newer <and> allowed".into()),
                }],
                details: Some(AppDetails {
                    name: "shop".into(),
                    file: "apps/shop.yaml".into(),
                    repo: "https://github.com/acme/deploy.git".into(),
                    branch: "main".into(),
                    write: "commit".into(),
                    images: vec![ImageDetails {
                        name: "api".into(),
                        repository: "ghcr.io/acme/api".into(),
                        policy: "semver ~1.4".into(),
                        targets: vec!["values.yaml (path api.image.tag)".into()],
                    }],
                }),
                last_check: Some("2026-12-04T05:00:00Z".into()),
                last_error: Some("registry <script>alert(1)</script> failed".into()),
                error_since: Some("2026-12-04T04:00:00Z".into()),
                ..AppStatus::default()
            }],
            config_errors: Vec::new(),
            registries: Vec::new(),
            shard: None,
        };
        let html = render(&status, "2026-12-04T05:00:01Z").unwrap();
        assert!(
            html.contains("1.4.3 is newer &lt;and&gt; allowed"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("FAILING") && html.contains("role=\"alert\""));
        assert!(html.contains("semver ~1.4") && html.contains("values.yaml (path api.image.tag)"));
        assert!(html.contains("<th scope=\"col\">Why</th>"));
        assert!(
            !html.contains("Registries"),
            "no registry asked yet: no section"
        );
    }

    #[test]
    fn registries_show_traffic_a_given_up_breaker_and_the_last_webhook() {
        let status = StatusResponse {
            ready: true,
            retries: Vec::new(),
            registries: vec![
                RegistryStatus {
                    name: "ghcr.io".into(),
                    requests: 40,
                    failures: 5,
                    failures_in_a_row: 3,
                    given_up_until: Some("2026-12-04T10:42:00Z".into()),
                    last_error: Some("cannot reach <ghcr.io>".into()),
                    ..RegistryStatus::default()
                },
                RegistryStatus {
                    name: "registry.acme.test".into(),
                    requests: 7,
                    last_webhook: Some("2026-12-04T10:30:00Z".into()),
                    last_webhook_repository: Some("team/api".into()),
                    ..RegistryStatus::default()
                },
            ],
            ..StatusResponse::default()
        };
        let html = render(&status, "2026-12-04T10:31:00Z").unwrap();
        assert!(
            html.contains("<h2 id=\"registries-title\">Registries</h2>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"state failed\">GIVEN UP</span> until <time datetime=\"2026-12-04T10:42:00Z\">2026-12-04T10:42:00Z</time> after 3 failures in a row: cannot reach &lt;ghcr.io&gt;"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"requests\">40</td><td class=\"failures\">5</td>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"state ok\">ASKED</span>"),
            "{html}"
        );
        assert!(
            // minijinja escapes `/` too.
            html.contains("2026-12-04T10:30:00Z</time> (team&#x2f;api)"),
            "{html}"
        );
        assert!(html.contains("none received"), "{html}");
    }

    #[test]
    fn notification_sinks_are_listed_with_their_problems_escaped() {
        let sinks = [SinkStatus {
            sink: "team".into(),
            counts: vec![
                ("delivered", 4),
                ("retried", 1),
                ("failed", 1),
                ("dropped", 0),
            ],
            last_problem: Some("failed: the sink answered <HTTP 500>".into()),
            last_problem_at: Some("2026-12-04T05:00:00Z".into()),
            last_delivered_at: Some("2026-12-04T04:00:00Z".into()),
        }];
        let status = StatusResponse::default();
        let html = render_with_notifications(&status, &sinks, "2026-12-04T05:00:01Z").unwrap();
        assert!(
            html.contains("<h2 id=\"notifications\">Notifications</h2>"),
            "{html}"
        );
        assert!(html.contains("<th scope=\"row\">team</th><td>4</td><td>1</td><td class=\"error\">1</td><td class=\"\">0</td>"), "{html}");
        assert!(
            html.contains("failed: the sink answered &lt;HTTP 500&gt;"),
            "{html}"
        );
        // Without sinks, no section.
        assert!(
            !render(&status, "2026-12-04T05:00:01Z")
                .unwrap()
                .contains("Notifications")
        );
    }

    #[test]
    fn retries_waiting_are_listed_with_their_errors_escaped() {
        let mut status = StatusResponse {
            ready: true,
            ..StatusResponse::default()
        };
        let html = render(&status, "2026-12-04T10:00:00Z").unwrap();
        assert!(
            !html.contains("id=\"retries\""),
            "no retry waiting: no section"
        );
        status.retries = vec![crate::daemon::status::RetryStatus {
            scope: "repository ghcr.io/acme/api".into(),
            attempt: 2,
            max_attempts: 5,
            at: Some("2026-12-04T10:00:04Z".into()),
            last_error: Some("shop: registry <ghcr.io> answered HTTP 503".into()),
        }];
        let html = render(&status, "2026-12-04T10:00:00Z").unwrap();
        assert!(
            html.contains("<h2 id=\"retries-title\">Retries waiting</h2>"),
            "{html}"
        );
        assert!(
            html.contains("<tr class=\"retry\"><th scope=\"row\"><code>repository ghcr.io&#x2f;acme&#x2f;api</code></th><td class=\"attempt\">2 of 5</td><td class=\"due\"><time datetime=\"2026-12-04T10:00:04Z\">2026-12-04T10:00:04Z</time></td><td class=\"last-error\">shop: registry &lt;ghcr.io&gt; answered HTTP 503</td></tr>"),
            "{html}"
        );
    }

    #[test]
    fn a_sharded_replica_says_which_shard_it_is_in_the_header() {
        let app = |name: &str| AppStatus {
            name: name.into(),
            ..AppStatus::default()
        };
        let mut status = StatusResponse {
            ready: true,
            apps: vec![app("blog"), app("shop"), app("web")],
            ..StatusResponse::default()
        };
        let html = render(&status, "2026-12-04T10:00:00Z").unwrap();
        assert!(!html.contains("id=\"shard\""), "not sharded: no shard");
        status.shard = Some(crate::daemon::status::ShardStatus {
            index: 1,
            count: 3,
            owned: vec!["shop".into()],
            safety_net: "2m30s".into(),
        });
        let html = render(&status, "2026-12-04T10:00:00Z").unwrap();
        assert!(
            html.contains("shard 1/3, polling 1 of 3 apps (other shards' apps every 2m30s)"),
            "{html}"
        );
    }
}
