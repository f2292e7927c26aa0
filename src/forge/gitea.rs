//! Gitea v1, also served by Forgejo (`https://HOST/api/v1`): pulls of `owner/repo`. Labels are
//! sent by id in the create call (ids looked up by name in the repository's labels), assignees
//! by username, reviewers through `requested_reviewers`, and a draft is a `WIP: ` title prefix
//! (Gitea's default work-in-progress prefix). The list endpoint cannot filter by branch, so
//! `find` reads every open pull request (up to 1000) and the 100 most recently updated closed
//! ones, and filters by head and base itself.
//!
//! Invariant: every request shape follows the documented v1 API; the token travels only in the
//! `Authorization` header.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::http::Api;
use super::{
    Created, ForgeError, ForgeKind, ForgeSettings, PrState, PullRequest, keep_draft_prefix,
};

const DRAFT_PREFIXES: &[&str] = &["WIP:", "[WIP]"];
/// Gitea's default maximum page size (`MAX_RESPONSE_ITEMS`).
const PAGE_SIZE: usize = 50;
const MAX_PAGES: usize = 5;
const MAX_OPEN_PAGES: usize = 20;
const MAX_CLOSED_PAGES: usize = 2;

#[derive(Deserialize)]
struct GtPull {
    number: u64,
    html_url: String,
    state: String,
    #[serde(default)]
    merged: bool,
    head: GtRef,
    base: GtRef,
    title: String,
    body: Option<String>,
}

#[derive(Deserialize)]
struct GtRef {
    #[serde(rename = "ref")]
    name: String,
}

#[derive(Deserialize)]
struct GtLabel {
    id: u64,
    name: String,
}

impl From<GtPull> for PullRequest {
    fn from(p: GtPull) -> Self {
        let state = match (p.state.as_str(), p.merged) {
            ("open", _) => PrState::Open,
            (_, true) => PrState::Merged,
            _ => PrState::Closed,
        };
        PullRequest {
            number: p.number,
            url: p.html_url,
            state,
            head: p.head.name,
            base: p.base.name,
            title: p.title,
            body: p.body.unwrap_or_default(),
        }
    }
}

pub(super) async fn find(
    api: &Api,
    settings: &ForgeSettings,
    head: &str,
    base: &str,
) -> Result<Vec<PullRequest>, ForgeError> {
    // Every open pull request (they are few, and the bot's one must never be missed, or the
    // next create would be refused as a duplicate), then the recently updated closed ones.
    let mut found = list(api, settings, "open", MAX_OPEN_PAGES, head, base).await?;
    found.extend(list(api, settings, "closed", MAX_CLOSED_PAGES, head, base).await?);
    Ok(found)
}

async fn list(
    api: &Api,
    settings: &ForgeSettings,
    state: &str,
    max_pages: usize,
    head: &str,
    base: &str,
) -> Result<Vec<PullRequest>, ForgeError> {
    let (owner, repo) = super::owner_repo(settings);
    let mut found = Vec::new();
    for page in 1..=max_pages {
        let mut url = api.url(&["repos", owner, repo, "pulls"]);
        url.query_pairs_mut()
            .append_pair("state", state)
            .append_pair("sort", "recentupdate")
            .append_pair("page", &page.to_string())
            .append_pair("limit", &PAGE_SIZE.to_string());
        let pulls: Vec<GtPull> = api
            .call(Method::GET, url, None, "list the pull requests")
            .await?;
        let last = pulls.len() < PAGE_SIZE;
        found.extend(
            pulls
                .into_iter()
                .map(PullRequest::from)
                .filter(|p| p.head == head && p.base == base),
        );
        if last {
            break;
        }
    }
    Ok(found)
}

/// Label ids of the configured label names; an unknown name becomes a problem.
async fn label_ids(
    api: &Api,
    settings: &ForgeSettings,
    problems: &mut Vec<ForgeError>,
) -> Result<Vec<u64>, ForgeError> {
    if settings.labels.is_empty() {
        return Ok(Vec::new());
    }
    let (owner, repo) = super::owner_repo(settings);
    let mut known: Vec<GtLabel> = Vec::new();
    for page in 1..=MAX_PAGES {
        let mut url = api.url(&["repos", owner, repo, "labels"]);
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("limit", &PAGE_SIZE.to_string());
        let labels: Vec<GtLabel> = api.call(Method::GET, url, None, "list labels").await?;
        let last = labels.len() < PAGE_SIZE;
        known.extend(labels);
        if last {
            break;
        }
    }
    let mut ids = Vec::new();
    for name in &settings.labels {
        match known.iter().find(|l| &l.name == name) {
            Some(label) => ids.push(label.id),
            None => problems.push(ForgeError::UnknownName {
                forge: ForgeKind::Gitea,
                what: "label",
                name: name.clone(),
                project: settings.project.clone(),
            }),
        }
    }
    Ok(ids)
}

pub(super) async fn create(
    api: &Api,
    settings: &ForgeSettings,
    head: &str,
    base: &str,
    title: &str,
    body: &str,
) -> Result<Created, ForgeError> {
    let (owner, repo) = super::owner_repo(settings);
    let mut problems = Vec::new();
    let labels = label_ids(api, settings, &mut problems).await?;
    let title = if settings.draft {
        keep_draft_prefix(DRAFT_PREFIXES[0], title, DRAFT_PREFIXES)
    } else {
        title.to_string()
    };
    let mut request = json!({ "head": head, "base": base, "title": title, "body": body });
    if !labels.is_empty() {
        request["labels"] = json!(labels);
    }
    if !settings.assignees.is_empty() {
        request["assignees"] = json!(settings.assignees);
    }
    let created: GtPull = api
        .call(
            Method::POST,
            api.url(&["repos", owner, repo, "pulls"]),
            Some(request),
            "open a pull request",
        )
        .await?;
    let pull_request = PullRequest::from(created);
    if !settings.reviewers.is_empty() {
        let number = pull_request.number.to_string();
        let url = api.url(&[
            "repos",
            owner,
            repo,
            "pulls",
            &number,
            "requested_reviewers",
        ]);
        let request = json!({ "reviewers": settings.reviewers });
        let result: Result<serde_json::Value, _> = api
            .call(Method::POST, url, Some(request), "request reviewers")
            .await;
        problems.extend(result.err());
    }
    Ok(Created {
        pull_request,
        problems,
    })
}

pub(super) async fn update(
    api: &Api,
    settings: &ForgeSettings,
    pr: &PullRequest,
    title: &str,
    body: &str,
) -> Result<PullRequest, ForgeError> {
    let (owner, repo) = super::owner_repo(settings);
    let title = keep_draft_prefix(&pr.title, title, DRAFT_PREFIXES);
    let number = pr.number.to_string();
    let updated: GtPull = api
        .call(
            Method::PATCH,
            api.url(&["repos", owner, repo, "pulls", &number]),
            Some(json!({ "title": title, "body": body })),
            "update the pull request",
        )
        .await?;
    Ok(updated.into())
}

/// Comments `comment` on an open pull request, then closes it with `body`: the same paths as
/// GitHub's.
pub(super) async fn close(
    api: &Api,
    settings: &ForgeSettings,
    pr: &PullRequest,
    comment: &str,
    body: &str,
) -> Result<PullRequest, ForgeError> {
    super::github::close_as::<GtPull>(api, settings, pr, comment, body).await
}
