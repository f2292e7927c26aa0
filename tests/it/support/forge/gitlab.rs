//! GitLab v4: https://docs.gitlab.com/api/merge_requests/, /users

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::*;

pub(super) fn gitlab_mr_json(pr: &StoredPr) -> Value {
    let state = match (pr.open, pr.merged) {
        (true, _) => "opened",
        (false, true) => "merged",
        (false, false) => "closed",
    };
    let user = |name: &str| {
        let id = USERS
            .iter()
            .find(|(_, u)| *u == name)
            .map_or(0, |(id, _)| *id);
        json!({ "id": id, "username": name, "name": name, "state": "active" })
    };
    json!({
        "id": 5000 + pr.number,
        "iid": pr.number,
        "project_id": 42,
        "title": pr.title,
        "description": if pr.body.is_empty() { Value::Null } else { Value::from(pr.body.clone()) },
        "state": state,
        "draft": pr.title.starts_with("Draft:"),
        "work_in_progress": pr.title.starts_with("Draft:"),
        "source_branch": pr.head,
        "target_branch": pr.base,
        "labels": pr.labels,
        "assignees": pr.assignees.iter().map(|a| user(a)).collect::<Vec<_>>(),
        "reviewers": pr.reviewers.iter().map(|a| user(a)).collect::<Vec<_>>(),
        "merged_at": if pr.merged { Value::from("2026-11-25T10:00:00.000Z") } else { Value::Null },
        "web_url": format!("https://gitlab.example/{GITLAB_PROJECT}/-/merge_requests/{}", pr.number),
    })
}

pub(super) fn gitlab(inner: &mut Inner, request: &Request) -> Response {
    let kind = inner.kind;
    let Some(rest) = request.path.strip_prefix("/api/v4/") else {
        return unknown_route(inner, request);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.as_slice() == ["users"] && request.method == Method::GET {
        check_query(inner, request, &["username"]);
        let name = query(request, "username").unwrap_or_default();
        let users: Vec<Value> = USERS
            .iter()
            .filter(|(_, u)| *u == name)
            .map(|(id, u)| json!({ "id": id, "username": u, "name": u, "state": "active", "web_url": format!("https://gitlab.example/{u}") }))
            .collect();
        return json_answer(StatusCode::OK, Value::from(users));
    }
    let ["projects", project, rest @ ..] = segments.as_slice() else {
        return unknown_route(inner, request);
    };
    // The project path must come URL-encoded as ONE segment, as the API documents.
    if *project != GITLAB_PROJECT.replace('/', "%2F") {
        if project.contains("%2F") || project.contains("%2f") {
            return not_found(kind);
        }
        inner.violations.push(format!(
            "project id {project:?} is not the URL-encoded path"
        ));
        return not_found(kind);
    }
    match (&request.method, rest) {
        (&Method::GET, ["merge_requests"]) => {
            check_query(
                inner,
                request,
                &[
                    "source_branch",
                    "target_branch",
                    "state",
                    "order_by",
                    "sort",
                    "per_page",
                    "page",
                ],
            );
            let state = query(request, "state").unwrap_or("all");
            if !["opened", "closed", "locked", "merged", "all"].contains(&state) {
                inner.violations.push(format!("bad state {state}"));
            }
            let mut found: Vec<&StoredPr> = inner
                .prs
                .iter()
                .filter(|p| query(request, "source_branch").is_none_or(|b| p.head == b))
                .filter(|p| query(request, "target_branch").is_none_or(|b| p.base == b))
                .filter(|p| match state {
                    "opened" => p.open,
                    "merged" => p.merged,
                    "closed" => !p.open && !p.merged,
                    _ => true,
                })
                .collect();
            found.sort_by_key(|p| std::cmp::Reverse(p.number));
            json_answer(
                StatusCode::OK,
                Value::from(found.iter().map(|p| gitlab_mr_json(p)).collect::<Vec<_>>()),
            )
        }
        (&Method::POST, ["merge_requests"]) => {
            let fields = [
                ("source_branch", Ty::Str),
                ("target_branch", Ty::Str),
                ("title", Ty::Str),
                ("description", Ty::Str),
                ("labels", Ty::Str),
                ("assignee_id", Ty::Int),
                ("assignee_ids", Ty::IntList),
                ("reviewer_ids", Ty::IntList),
                ("milestone_id", Ty::Int),
                ("remove_source_branch", Ty::Bool),
                ("squash", Ty::Bool),
                ("allow_collaboration", Ty::Bool),
                ("target_project_id", Ty::Int),
            ];
            let map = match check_body(
                &request.body,
                &fields,
                &["source_branch", "target_branch", "title"],
            ) {
                Ok(map) => map.clone(),
                Err(problem) => return body_problem(inner, request, problem),
            };
            let s = |k: &str| {
                map.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (head, base) = (s("source_branch"), s("target_branch"));
            another_client_opens_first(inner, &head, &base);
            if let Some(open) = inner.prs.iter().find(|p| p.open && p.head == head) {
                return json_answer(
                    StatusCode::CONFLICT,
                    json!({ "message": [format!("Another open merge request already exists for this source branch: !{}", open.number)] }),
                );
            }
            let ids = |k: &str| -> Vec<String> {
                map.get(k)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_u64)
                            .filter_map(|id| {
                                USERS
                                    .iter()
                                    .find(|(i, _)| *i == id)
                                    .map(|(_, u)| u.to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (assignees, reviewers) = (ids("assignee_ids"), ids("reviewer_ids"));
            let index = new_pr(inner, &head, &base, &s("title"), &s("description"));
            let pr = &mut inner.prs[index];
            pr.labels = s("labels")
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            pr.assignees = assignees;
            pr.reviewers = reviewers;
            pr.draft = pr.title.starts_with("Draft:");
            json_answer(StatusCode::CREATED, gitlab_mr_json(pr))
        }
        (&Method::PUT, ["merge_requests", iid]) => {
            let fields = [
                ("title", Ty::Str),
                ("description", Ty::Str),
                ("target_branch", Ty::Str),
                ("state_event", Ty::Str),
                ("labels", Ty::Str),
                ("add_labels", Ty::Str),
                ("remove_labels", Ty::Str),
                ("assignee_ids", Ty::IntList),
                ("reviewer_ids", Ty::IntList),
                ("remove_source_branch", Ty::Bool),
                ("squash", Ty::Bool),
            ];
            let map = match check_body(&request.body, &fields, &[]) {
                Ok(map) => map.clone(),
                Err(problem) => return body_problem(inner, request, problem),
            };
            if map.is_empty() {
                return json_answer(
                    StatusCode::BAD_REQUEST,
                    json!({ "error": "title, description, ... are missing, at least one parameter must be provided" }),
                );
            }
            let Some(index) = pr_index(inner, iid) else {
                return error(kind, StatusCode::NOT_FOUND, "404 Not found");
            };
            inner.clock += 1;
            let clock = inner.clock;
            let pr = &mut inner.prs[index];
            if let Some(title) = map.get("title").and_then(Value::as_str) {
                pr.title = title.to_string();
                pr.draft = title.starts_with("Draft:");
            }
            if let Some(body) = map.get("description").and_then(Value::as_str) {
                pr.body = body.to_string();
            }
            match map.get("state_event").and_then(Value::as_str) {
                Some("close") => pr.open = false,
                Some("reopen") if !pr.merged => pr.open = true,
                _ => {}
            }
            pr.updated = clock;
            json_answer(StatusCode::OK, gitlab_mr_json(pr))
        }
        (&Method::POST, ["merge_requests", iid, "notes"]) => {
            let fields = [
                ("body", Ty::Str),
                ("internal", Ty::Bool),
                ("created_at", Ty::Str),
                ("merge_request_diff_head_sha", Ty::Str),
            ];
            comment(
                inner,
                request,
                iid,
                &fields,
                |id, body| json!({ "id": id, "body": body, "noteable_type": "MergeRequest", "system": false, "author": { "username": "imagebump" } }),
            )
        }
        _ => unknown_route(inner, request),
    }
}
