//! `imagebump status`: ask a running daemon for its per-app status and print it as a table.
//!
//! Invariant: read-only: it only asks the daemon's status endpoint and prints the answer.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::daemon::status::StatusResponse;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the daemon's HTTP server (its `webhook.listen` address).
    #[arg(long, env = "IMAGEBUMP_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match super::runtime(false) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let url = format!("{}/api/v1/status", args.url.trim_end_matches('/'));
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        eprintln!(
            "error: --url must start with http:// or https:// (got {:?})",
            args.url
        );
        return ExitCode::from(EXIT_USAGE);
    }
    match runtime.block_on(fetch(&url)) {
        Ok(status) => {
            if args.json {
                match serde_json::to_string_pretty(&status) {
                    Ok(text) => println!("{text}"),
                    Err(error) => {
                        eprintln!("error: {error}");
                        return ExitCode::from(EXIT_FAILED);
                    }
                }
            } else {
                print!("{}", render_table(&status));
            }
            ExitCode::from(EXIT_OK)
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn fetch(url: &str) -> Result<StatusResponse, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("imagebump/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| format!("cannot build an HTTP client: {error}"))?;
    let response = client.get(url).send().await.map_err(|error| {
        format!(
            "cannot reach the daemon at {url}: {error} (is `imagebump run` running? check --url)"
        )
    })?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    response
        .json::<StatusResponse>()
        .await
        .map_err(|error| format!("{url} did not answer a status document: {error}"))
}

fn cell(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The longest why shown in a table cell (`--json` has it whole).
const WHY_WIDTH: usize = 60;

/// The status as an aligned table: one row per image (one per app without images).
pub fn render_table(status: &StatusResponse) -> String {
    let header = [
        "APP",
        "IMAGE",
        "DEPLOYED",
        "CANDIDATE",
        "WHY",
        "LAST CHECK",
        "LAST ERROR",
    ];
    let mut rows: Vec<[String; 7]> = Vec::new();
    for app in &status.apps {
        let last_check = cell(app.last_check.as_deref());
        let last_error = app
            .last_error
            .as_deref()
            .map_or_else(|| "-".to_string(), |error| one_line(error, 80));
        if app.images.is_empty() {
            rows.push([
                app.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                last_check.clone(),
                last_error.clone(),
            ]);
        }
        for image in &app.images {
            rows.push([
                app.name.clone(),
                image.name.clone(),
                cell(image.deployed.as_deref()),
                cell(image.candidate.as_deref()),
                image
                    .why_text
                    .as_deref()
                    .map_or_else(|| "-".to_string(), |why| one_line(why, WHY_WIDTH)),
                last_check.clone(),
                last_error.clone(),
            ]);
        }
    }
    let mut widths = header.map(|title| title.chars().count());
    for row in &rows {
        for (width, value) in widths.iter_mut().zip(row.iter()) {
            *width = (*width).max(value.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |values: [&str; 7]| {
        let mut line = String::new();
        for (index, (value, width)) in values.iter().zip(widths.iter()).enumerate() {
            if index + 1 == values.len() {
                line.push_str(value);
            } else {
                line.push_str(value);
                let pad = width - value.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(header);
    for row in &rows {
        push_row([
            &row[0], &row[1], &row[2], &row[3], &row[4], &row[5], &row[6],
        ]);
    }
    if !status.ready {
        out.push_str("(daemon not ready yet: the first check cycle has not ended)\n");
    }
    if !status.retries.is_empty() {
        out.push_str("\nCHECKS WAITING TO BE RETRIED\n");
        for retry in &status.retries {
            let at = retry.at.as_deref().unwrap_or("-");
            out.push_str(&format!(
                "{}: retry {} of {} at {at}\n",
                retry.scope, retry.attempt, retry.max_attempts
            ));
            if let Some(error) = &retry.last_error {
                out.push_str(&format!("  failed with: {}\n", one_line(error, 200)));
            }
        }
    }
    if !status.config_errors.is_empty() {
        out.push_str("\nAPP FILES THAT DO NOT LOAD\n");
        for problem in &status.config_errors {
            let running = match &problem.app {
                Some(app) => format!("{app} runs from its last good version"),
                None => "not running".to_string(),
            };
            let since = problem.since.as_deref().unwrap_or("-");
            out.push_str(&format!(
                "{}: FAILED since {since} ({running})\n",
                problem.file
            ));
            for line in problem.error.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::status::{AppStatus, ConfigProblem, ImageStatus, RetryStatus};

    #[test]
    fn table_has_one_row_per_image() {
        let status = StatusResponse {
            ready: true,
            retries: Vec::new(),
            apps: vec![
                AppStatus {
                    name: "shop".into(),
                    images: vec![ImageStatus {
                        name: "api".into(),
                        repository: "ghcr.io/acme/api".into(),
                        deployed: Some("1.4.2".into()),
                        candidate: Some("1.4.3".into()),
                        why: None,
                        why_text: Some(
                            "1.4.3 is newer and allowed; skipped 1.5.0 (younger than min_age), \
                             1.4.9 (no linux/arm64 image)"
                                .into(),
                        ),
                    }],
                    last_check: Some("2026-01-01T10:00:00Z".into()),
                    last_error: Some("registry ghcr.io\nanswered 500".into()),
                    ..AppStatus::default()
                },
                AppStatus {
                    name: "blog".into(),
                    ..AppStatus::default()
                },
            ],
            config_errors: Vec::new(),
            registries: Vec::new(),
            shard: None,
        };
        let table = render_table(&status);
        let expected = "\
APP   IMAGE  DEPLOYED  CANDIDATE  WHY                                                           LAST CHECK            LAST ERROR
shop  api    1.4.2     1.4.3      1.4.3 is newer and allowed; skipped 1.5.0 (younger than min…  2026-01-01T10:00:00Z  registry ghcr.io answered 500
blog  -      -         -          -                                                             -                     -
";
        assert_eq!(table, expected);
    }

    #[test]
    fn app_files_that_do_not_load_are_listed_with_their_errors() {
        let status = StatusResponse {
            ready: true,
            retries: Vec::new(),
            apps: Vec::new(),
            config_errors: vec![
                ConfigProblem {
                    file: "apps/shop.yaml".into(),
                    error: "apps/shop.yaml:3:1: unknown key `imagez`".into(),
                    app: Some("shop".into()),
                    since: Some("2026-01-01T10:00:00Z".into()),
                },
                ConfigProblem {
                    file: "apps/new.yaml".into(),
                    error: "apps/new.yaml:1:1: invalid YAML: x\napps/new.yaml:2:1: y".into(),
                    app: None,
                    since: None,
                },
            ],
            registries: Vec::new(),
            shard: None,
        };
        let expected = "\
APP  IMAGE  DEPLOYED  CANDIDATE  WHY  LAST CHECK  LAST ERROR

APP FILES THAT DO NOT LOAD
apps/shop.yaml: FAILED since 2026-01-01T10:00:00Z (shop runs from its last good version)
  apps/shop.yaml:3:1: unknown key `imagez`
apps/new.yaml: FAILED since - (not running)
  apps/new.yaml:1:1: invalid YAML: x
  apps/new.yaml:2:1: y
";
        assert_eq!(render_table(&status), expected);
    }

    #[test]
    fn checks_waiting_to_be_retried_are_listed_with_what_they_failed_with() {
        let status = StatusResponse {
            ready: true,
            retries: vec![
                RetryStatus {
                    scope: "repository ghcr.io/acme/api".into(),
                    attempt: 2,
                    max_attempts: 5,
                    at: Some("2026-01-01T10:00:04Z".into()),
                    last_error: Some("shop: registry ghcr.io\nanswered HTTP 503".into()),
                },
                RetryStatus {
                    scope: "app blog".into(),
                    attempt: 1,
                    max_attempts: 5,
                    at: None,
                    last_error: None,
                },
            ],
            apps: Vec::new(),
            config_errors: Vec::new(),
            registries: Vec::new(),
            shard: None,
        };
        let expected = "\
APP  IMAGE  DEPLOYED  CANDIDATE  WHY  LAST CHECK  LAST ERROR

CHECKS WAITING TO BE RETRIED
repository ghcr.io/acme/api: retry 2 of 5 at 2026-01-01T10:00:04Z
  failed with: shop: registry ghcr.io answered HTTP 503
app blog: retry 1 of 5 at -
";
        assert_eq!(render_table(&status), expected);
    }
}
