//! GitLab REST v4 (gitlab.com and self-managed, `https://HOST/api/v4`): merge requests of a
//! project addressed by its URL-encoded path (`group%2Fproject`). Labels go in the create call
//! (comma-separated), assignees and reviewers as user ids looked up by username, and a draft is
//! a `Draft: ` title prefix, as the API documents.
//!
//! Invariant: every request shape follows the documented v4 API; the token travels only in the
//! `PRIVATE-TOKEN` header.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::http::Api;
use super::{
    Created, ForgeError, ForgeKind, ForgeSettings, PrState, PullRequest, keep_draft_prefix,
};

const DRAFT_PREFIX: &str = "Draft:";

#[derive(Deserialize)]
struct GlMergeRequest {
    iid: u64,
    web_url: String,
    state: String,
    source_branch: String,
    target_branch: String,
    title: String,
    description: Option<String>,
}

impl From<GlMergeRequest> for PullRequest {
    fn from(m: GlMergeRequest) -> Self {
        let state = match m.state.as_str() {
            "merged" => PrState::Merged,
            "closed" => PrState::Closed,
            // "opened", and "locked" (transitioning), are open.
            _ => PrState::Open,
        };
        PullRequest {
            number: m.iid,
            url: m.web_url,
            state,
            head: m.source_branch,
            base: m.target_branch,
            title: m.title,
            body: m.description.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct GlUser {
    id: u64,
    username: String,
}

pub(super) async fn find(
    api: &Api,
    settings: &ForgeSettings,
    head: &str,
    base: &str,
) -> Result<Vec<PullRequest>, ForgeError> {
    let mut url = api.url(&["projects", &settings.project, "merge_requests"]);
    url.query_pairs_mut()
        .append_pair("source_branch", head)
        .append_pair("target_branch", base)
        .append_pair("state", "all")
        .append_pair("order_by", "created_at")
        .append_pair("sort", "desc")
        .append_pair("per_page", "50");
    let found: Vec<GlMergeRequest> = api
        .call(
            Method::GET,
            url,
            None,
            "list the merge requests of the bot branch",
        )
        .await?;
    Ok(found
        .into_iter()
        .map(PullRequest::from)
        .filter(|p| p.head == head && p.base == base)
        .collect())
}

/// User ids of `usernames`; a name GitLab does not know becomes a problem, not a failure.
async fn user_ids(
    api: &Api,
    settings: &ForgeSettings,
    usernames: &[String],
    problems: &mut Vec<ForgeError>,
) -> Result<Vec<u64>, ForgeError> {
    let mut ids = Vec::new();
    for name in usernames {
        let mut url = api.url(&["users"]);
        url.query_pairs_mut().append_pair("username", name);
        let users: Vec<GlUser> = api.call(Method::GET, url, None, "look up a user").await?;
        match users.iter().find(|u| u.username.eq_ignore_ascii_case(name)) {
            Some(user) => ids.push(user.id),
            None => problems.push(ForgeError::UnknownName {
                forge: ForgeKind::Gitlab,
                what: "user",
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
    let mut problems = Vec::new();
    let assignee_ids = user_ids(api, settings, &settings.assignees, &mut problems).await?;
    let reviewer_ids = user_ids(api, settings, &settings.reviewers, &mut problems).await?;
    let title = if settings.draft {
        keep_draft_prefix(DRAFT_PREFIX, title, &[DRAFT_PREFIX])
    } else {
        title.to_string()
    };
    let mut request = json!({
        "source_branch": head,
        "target_branch": base,
        "title": title,
        "description": body,
    });
    if !settings.labels.is_empty() {
        request["labels"] = json!(settings.labels.join(","));
    }
    if !assignee_ids.is_empty() {
        request["assignee_ids"] = json!(assignee_ids);
    }
    if !reviewer_ids.is_empty() {
        request["reviewer_ids"] = json!(reviewer_ids);
    }
    let created: GlMergeRequest = api
        .call(
            Method::POST,
            api.url(&["projects", &settings.project, "merge_requests"]),
            Some(request),
            "open a merge request",
        )
        .await?;
    Ok(Created {
        pull_request: created.into(),
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
    let title = keep_draft_prefix(&pr.title, title, &[DRAFT_PREFIX]);
    let iid = pr.number.to_string();
    let updated: GlMergeRequest = api
        .call(
            Method::PUT,
            api.url(&["projects", &settings.project, "merge_requests", &iid]),
            Some(json!({ "title": title, "description": body })),
            "update the merge request",
        )
        .await?;
    Ok(updated.into())
}

/// Comments `comment` on an open merge request (a note), then closes it with `body` as its
/// description.
pub(super) async fn close(
    api: &Api,
    settings: &ForgeSettings,
    pr: &PullRequest,
    comment: &str,
    body: &str,
) -> Result<PullRequest, ForgeError> {
    let iid = pr.number.to_string();
    let _: serde_json::Value = api
        .call(
            Method::POST,
            api.url(&[
                "projects",
                &settings.project,
                "merge_requests",
                &iid,
                "notes",
            ]),
            Some(json!({ "body": comment })),
            "comment on the merge request",
        )
        .await?;
    let closed: GlMergeRequest = api
        .call(
            Method::PUT,
            api.url(&["projects", &settings.project, "merge_requests", &iid]),
            Some(json!({ "state_event": "close", "description": body })),
            "close the merge request",
        )
        .await?;
    Ok(closed.into())
}
