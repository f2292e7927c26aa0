//! GitHub REST v3 (also GitHub Enterprise Server, `https://HOST/api/v3`): pulls for the
//! pull request itself; labels and assignees through the issues API, as GitHub documents
//! ("pull requests are issues").
//!
//! Invariant: every request shape follows the documented REST API; the token travels only in the
//! `Authorization` header.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::http::Api;
use super::{Created, ForgeError, ForgeSettings, PrState, PullRequest};

#[derive(Deserialize)]
struct GhPull {
    number: u64,
    html_url: String,
    state: String,
    merged_at: Option<String>,
    head: GhRef,
    base: GhRef,
    title: String,
    body: Option<String>,
}

#[derive(Deserialize)]
struct GhRef {
    #[serde(rename = "ref")]
    name: String,
}

impl From<GhPull> for PullRequest {
    fn from(p: GhPull) -> Self {
        let state = match (p.state.as_str(), p.merged_at.is_some()) {
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
    let (owner, repo) = super::owner_repo(settings);
    let mut url = api.url(&["repos", owner, repo, "pulls"]);
    url.query_pairs_mut()
        .append_pair("head", &format!("{owner}:{head}"))
        .append_pair("base", base)
        .append_pair("state", "all")
        .append_pair("sort", "created")
        .append_pair("direction", "desc")
        .append_pair("per_page", "50");
    let pulls: Vec<GhPull> = api
        .call(
            Method::GET,
            url,
            None,
            "list the pull requests of the bot branch",
        )
        .await?;
    Ok(pulls
        .into_iter()
        .map(PullRequest::from)
        .filter(|p| p.head == head && p.base == base)
        .collect())
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
    let request = json!({
        "title": title,
        "head": head,
        "base": base,
        "body": body,
        "draft": settings.draft,
    });
    let created: GhPull = api
        .call(
            Method::POST,
            api.url(&["repos", owner, repo, "pulls"]),
            Some(request),
            "open a pull request",
        )
        .await?;
    let pull_request = PullRequest::from(created);
    let number = pull_request.number.to_string();
    let mut problems = Vec::new();

    if !settings.labels.is_empty() {
        let url = api.url(&["repos", owner, repo, "issues", &number, "labels"]);
        let result: Result<serde_json::Value, _> = api
            .call(
                Method::POST,
                url,
                Some(json!({ "labels": settings.labels })),
                "add labels",
            )
            .await;
        problems.extend(result.err());
    }
    if !settings.reviewers.is_empty() {
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
    if !settings.assignees.is_empty() {
        let url = api.url(&["repos", owner, repo, "issues", &number, "assignees"]);
        let request = json!({ "assignees": settings.assignees });
        let result: Result<serde_json::Value, _> = api
            .call(Method::POST, url, Some(request), "add assignees")
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
    let number = pr.number.to_string();
    let updated: GhPull = api
        .call(
            Method::PATCH,
            api.url(&["repos", owner, repo, "pulls", &number]),
            Some(json!({ "title": title, "body": body })),
            "update the pull request",
        )
        .await?;
    Ok(updated.into())
}

/// Comments `comment` on an open pull request, then closes it with `body` (the comment first,
/// so a closed pull request always says why).
pub(super) async fn close(
    api: &Api,
    settings: &ForgeSettings,
    pr: &PullRequest,
    comment: &str,
    body: &str,
) -> Result<PullRequest, ForgeError> {
    close_as::<GhPull>(api, settings, pr, comment, body).await
}

/// [`close`] for a forge with GitHub's paths (Gitea's are the same), reading its own pull
/// request shape `P`.
pub(super) async fn close_as<P: serde::de::DeserializeOwned + Into<PullRequest>>(
    api: &Api,
    settings: &ForgeSettings,
    pr: &PullRequest,
    comment: &str,
    body: &str,
) -> Result<PullRequest, ForgeError> {
    let (owner, repo) = super::owner_repo(settings);
    let number = pr.number.to_string();
    let _: serde_json::Value = api
        .call(
            Method::POST,
            api.url(&["repos", owner, repo, "issues", &number, "comments"]),
            Some(json!({ "body": comment })),
            "comment on the pull request",
        )
        .await?;
    let closed: P = api
        .call(
            Method::PATCH,
            api.url(&["repos", owner, repo, "pulls", &number]),
            Some(json!({ "state": "closed", "body": body })),
            "close the pull request",
        )
        .await?;
    Ok(closed.into())
}
