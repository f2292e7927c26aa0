//! Gitea v1 (Forgejo): https://docs.gitea.com/api/ (swagger: repoListPullRequests,
//! repoCreatePullRequest, repoEditPullRequest, issueListLabels, repoCreatePullReviewRequests)

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::*;

pub(super) fn gitea_pr_json(base_url: &str, pr: &StoredPr) -> Value {
    let user = |login: &str| json!({ "id": 1, "login": login, "username": login });
    json!({
        "id": 3000 + pr.number,
        "url": format!("{base_url}/{OWNER}/{REPO}/pulls/{}", pr.number),
        "number": pr.number,
        "user": user("imagebump-bot"),
        "title": pr.title,
        "body": pr.body,
        "labels": pr.labels.iter().map(|name| {
            let id = GITEA_LABELS.iter().find(|(_, l)| l == name).map_or(0, |(id, _)| *id);
            json!({ "id": id, "name": name, "color": "ededed" })
        }).collect::<Vec<_>>(),
        "assignees": pr.assignees.iter().map(|a| user(a)).collect::<Vec<_>>(),
        "requested_reviewers": pr.reviewers.iter().map(|a| user(a)).collect::<Vec<_>>(),
        "state": if pr.open { "open" } else { "closed" },
        "draft": pr.draft,
        "html_url": format!("https://gitea.example/{OWNER}/{REPO}/pulls/{}", pr.number),
        "mergeable": true,
        "merged": pr.merged,
        "merged_at": if pr.merged { Value::from("2026-11-25T10:00:00Z") } else { Value::Null },
        "base": { "label": pr.base, "ref": pr.base, "sha": "1".repeat(40) },
        "head": { "label": pr.head, "ref": pr.head, "sha": "0".repeat(40) },
    })
}

pub(super) fn gitea(inner: &mut Inner, request: &Request) -> Response {
    let kind = inner.kind;
    let Some(rest) = request.path.strip_prefix("/api/v1/") else {
        return unknown_route(inner, request);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let ["repos", owner, repo, rest @ ..] = segments.as_slice() else {
        return unknown_route(inner, request);
    };
    if (*owner, *repo) != (OWNER, REPO) {
        return not_found(kind);
    }
    let base_url = inner.base_url.clone();
    let page_of = |request: &Request, inner: &mut Inner| -> (usize, usize) {
        let page: usize = query(request, "page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let limit: usize = query(request, "limit")
            .and_then(|p| p.parse().ok())
            .unwrap_or(30);
        if limit > 50 {
            // Gitea caps pages at MAX_RESPONSE_ITEMS (50 by default).
            inner
                .violations
                .push(format!("limit {limit} above the default maximum of 50"));
        }
        (page.max(1), limit.clamp(1, 50))
    };
    match (&request.method, rest) {
        (&Method::GET, ["pulls"]) => {
            check_query(
                inner,
                request,
                &[
                    "state",
                    "sort",
                    "milestone",
                    "labels",
                    "poster",
                    "page",
                    "limit",
                ],
            );
            let state = query(request, "state").unwrap_or("open");
            if !["open", "closed", "all"].contains(&state) {
                inner.violations.push(format!("bad state {state}"));
            }
            let (page, limit) = page_of(request, inner);
            let mut found: Vec<&StoredPr> = inner
                .prs
                .iter()
                .filter(|p| match state {
                    "open" => p.open,
                    "closed" => !p.open,
                    _ => true,
                })
                .collect();
            if query(request, "sort") == Some("recentupdate") {
                found.sort_by_key(|p| std::cmp::Reverse(p.updated));
            }
            let list: Vec<Value> = found
                .iter()
                .skip((page - 1) * limit)
                .take(limit)
                .map(|p| gitea_pr_json(&base_url, p))
                .collect();
            json_answer(StatusCode::OK, Value::from(list))
        }
        (&Method::GET, ["labels"]) => {
            check_query(inner, request, &["page", "limit"]);
            let (page, limit) = page_of(request, inner);
            let list: Vec<Value> = GITEA_LABELS
                .iter()
                .skip((page - 1) * limit)
                .take(limit)
                .map(|(id, name)| json!({ "id": id, "name": name, "color": "ededed", "description": "", "exclusive": false }))
                .collect();
            json_answer(StatusCode::OK, Value::from(list))
        }
        (&Method::POST, ["pulls"]) => {
            let fields = [
                ("assignee", Ty::Str),
                ("assignees", Ty::StrList),
                ("base", Ty::Str),
                ("body", Ty::Str),
                ("due_date", Ty::Str),
                ("head", Ty::Str),
                ("labels", Ty::IntList),
                ("milestone", Ty::Int),
                ("title", Ty::Str),
                ("reviewers", Ty::StrList),
                ("team_reviewers", Ty::StrList),
            ];
            let map = match check_body(&request.body, &fields, &["head", "base", "title"]) {
                Ok(map) => map.clone(),
                Err(problem) => return body_problem(inner, request, problem),
            };
            let s = |k: &str| {
                map.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (head, base) = (s("head"), s("base"));
            another_client_opens_first(inner, &head, &base);
            if let Some(open) = inner
                .prs
                .iter()
                .find(|p| p.open && p.head == head && p.base == base)
            {
                return error(
                    kind,
                    StatusCode::CONFLICT,
                    &format!(
                        "pull request already exists for these targets [id: {}, issue_id: {}, head_repo_id: 1, base_repo_id: 1, head_branch: {head}, base_branch: {base}]",
                        3000 + open.number,
                        open.number
                    ),
                );
            }
            let mut labels = Vec::new();
            for id in map
                .get("labels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
            {
                match GITEA_LABELS.iter().find(|(i, _)| *i == id) {
                    Some((_, name)) => labels.push(name.to_string()),
                    None => {
                        return error(
                            kind,
                            StatusCode::UNPROCESSABLE_ENTITY,
                            &format!("label does not exist [label_id: {id}]"),
                        );
                    }
                }
            }
            let assignees = strings(map.get("assignees"));
            if let Some(unknown) = assignees
                .iter()
                .find(|a| !USERS.iter().any(|(_, u)| u == *a))
            {
                return error(
                    kind,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("user does not exist [uid: 0, name: {unknown}]"),
                );
            }
            let index = new_pr(inner, &head, &base, &s("title"), &s("body"));
            let pr = &mut inner.prs[index];
            pr.labels = labels;
            pr.assignees = assignees;
            pr.draft = pr.title.starts_with("WIP:") || pr.title.starts_with("[WIP]");
            json_answer(StatusCode::CREATED, gitea_pr_json(&base_url, pr))
        }
        (&Method::PATCH, ["pulls", number]) => {
            let fields = [
                ("title", Ty::Str),
                ("body", Ty::Str),
                ("base", Ty::Str),
                ("assignee", Ty::Str),
                ("assignees", Ty::StrList),
                ("labels", Ty::IntList),
                ("milestone", Ty::Int),
                ("state", Ty::Str),
                ("due_date", Ty::Str),
                ("unset_due_date", Ty::Bool),
                ("allow_maintainer_edit", Ty::Bool),
            ];
            let map = match check_body(&request.body, &fields, &[]) {
                Ok(map) => map.clone(),
                Err(problem) => return body_problem(inner, request, problem),
            };
            let Some(index) = pr_index(inner, number) else {
                return not_found(kind);
            };
            inner.clock += 1;
            let clock = inner.clock;
            let pr = &mut inner.prs[index];
            if let Some(title) = map.get("title").and_then(Value::as_str) {
                pr.title = title.to_string();
                pr.draft = title.starts_with("WIP:") || title.starts_with("[WIP]");
            }
            if let Some(body) = map.get("body").and_then(Value::as_str) {
                pr.body = body.to_string();
            }
            apply_state(pr, &map);
            pr.updated = clock;
            // Gitea documents 201 for an edited pull request.
            json_answer(StatusCode::CREATED, gitea_pr_json(&base_url, pr))
        }
        (&Method::POST, ["issues", number, "comments"]) => {
            let number = number.to_string();
            comment(
                inner,
                request,
                &number,
                &[("body", Ty::Str)],
                |id, body| json!({ "id": id, "body": body, "html_url": format!("https://gitea.example/{OWNER}/{REPO}/pulls/{number}#issuecomment-{id}"), "user": { "login": "imagebump" } }),
            )
        }
        (&Method::POST, ["pulls", number, "requested_reviewers"]) => {
            let fields = [("reviewers", Ty::StrList), ("team_reviewers", Ty::StrList)];
            let map = match check_body(&request.body, &fields, &[]) {
                Ok(map) => map.clone(),
                Err(problem) => return body_problem(inner, request, problem),
            };
            let Some(index) = pr_index(inner, number) else {
                return not_found(kind);
            };
            let reviewers = strings(map.get("reviewers"));
            if let Some(unknown) = reviewers
                .iter()
                .find(|r| !USERS.iter().any(|(_, u)| u == *r))
            {
                return error(
                    kind,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("user does not exist [uid: 0, name: {unknown}]"),
                );
            }
            let reviews: Vec<Value> = reviewers
                .iter()
                .enumerate()
                .map(|(i, r)| json!({ "id": i + 1, "user": { "login": r }, "state": "REQUEST_REVIEW", "pull_request_url": format!("https://gitea.example/{OWNER}/{REPO}/pulls/{number}") }))
                .collect();
            inner.prs[index].reviewers.extend(reviewers);
            json_answer(StatusCode::CREATED, Value::from(reviews))
        }
        _ => unknown_route(inner, request),
    }
}
