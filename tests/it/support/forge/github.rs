//! GitHub REST: https://docs.github.com/en/rest/pulls/pulls, issues/labels, issues/assignees,
//! pulls/review-requests

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::*;

pub(super) fn github_pr_json(base_url: &str, pr: &StoredPr) -> Value {
    let merged_at = pr.merged.then_some("2026-11-25T10:00:00Z");
    let user = |login: &str| json!({ "login": login, "id": 1, "type": "User" });
    json!({
        "url": format!("{base_url}/repos/{OWNER}/{REPO}/pulls/{}", pr.number),
        "id": 1000 + pr.number,
        "html_url": format!("https://github.com/{OWNER}/{REPO}/pull/{}", pr.number),
        "number": pr.number,
        "state": if pr.open { "open" } else { "closed" },
        "locked": false,
        "title": pr.title,
        "body": if pr.body.is_empty() { Value::Null } else { Value::from(pr.body.clone()) },
        "draft": pr.draft,
        "merged_at": merged_at,
        "closed_at": if pr.open { Value::Null } else { Value::from("2026-11-25T10:00:00Z") },
        "user": user("imagebump-bot"),
        "labels": pr.labels.iter().map(|l| json!({ "name": l, "color": "ededed" })).collect::<Vec<_>>(),
        "assignees": pr.assignees.iter().map(|a| user(a)).collect::<Vec<_>>(),
        "requested_reviewers": pr.reviewers.iter().map(|a| user(a)).collect::<Vec<_>>(),
        "head": { "label": format!("{OWNER}:{}", pr.head), "ref": pr.head, "sha": "0".repeat(40) },
        "base": { "label": format!("{OWNER}:{}", pr.base), "ref": pr.base, "sha": "1".repeat(40) },
    })
}

pub(super) fn github(inner: &mut Inner, request: &Request) -> Response {
    let kind = inner.kind;
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let ["repos", owner, repo, rest @ ..] = segments.as_slice() else {
        return unknown_route(inner, request);
    };
    if (*owner, *repo) != (OWNER, REPO) {
        return not_found(kind);
    }
    let base_url = inner.base_url.clone();
    match (&request.method, rest) {
        (&Method::GET, ["pulls"]) => {
            check_query(
                inner,
                request,
                &[
                    "state",
                    "head",
                    "base",
                    "sort",
                    "direction",
                    "per_page",
                    "page",
                ],
            );
            let state = query(request, "state").unwrap_or("open");
            if !["open", "closed", "all"].contains(&state) {
                inner.violations.push(format!("bad state {state}"));
            }
            let head = match query(request, "head") {
                Some(h) => match h.split_once(':') {
                    Some((user, branch)) if user == OWNER => Some(branch.to_string()),
                    _ => {
                        inner
                            .violations
                            .push(format!("head {h:?} is not user:ref-name"));
                        Some(String::new())
                    }
                },
                None => None,
            };
            let mut found: Vec<&StoredPr> = inner
                .prs
                .iter()
                .filter(|p| head.as_ref().is_none_or(|h| &p.head == h))
                .filter(|p| query(request, "base").is_none_or(|b| p.base == b))
                .filter(|p| match state {
                    "open" => p.open,
                    "closed" => !p.open,
                    _ => true,
                })
                .collect();
            found.sort_by_key(|p| std::cmp::Reverse(p.number));
            let list: Vec<Value> = found.iter().map(|p| github_pr_json(&base_url, p)).collect();
            json_answer(StatusCode::OK, Value::from(list))
        }
        (&Method::POST, ["pulls"]) => {
            let fields = [
                ("title", Ty::Str),
                ("head", Ty::Str),
                ("head_repo", Ty::Str),
                ("base", Ty::Str),
                ("body", Ty::Str),
                ("maintainer_can_modify", Ty::Bool),
                ("draft", Ty::Bool),
                ("issue", Ty::Int),
            ];
            let map = match check_body(&request.body, &fields, &["title", "head", "base"]) {
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
            if inner
                .prs
                .iter()
                .any(|p| p.open && p.head == head && p.base == base)
            {
                return json_answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({
                        "message": "Validation Failed",
                        "errors": [{ "resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {OWNER}:{head}.") }],
                        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                        "status": "422",
                    }),
                );
            }
            let index = new_pr(inner, &head, &base, &s("title"), &s("body"));
            inner.prs[index].draft = map.get("draft").and_then(Value::as_bool).unwrap_or(false);
            json_answer(
                StatusCode::CREATED,
                github_pr_json(&base_url, &inner.prs[index]),
            )
        }
        (&Method::PATCH, ["pulls", number]) => {
            let fields = [
                ("title", Ty::Str),
                ("body", Ty::Str),
                ("state", Ty::Str),
                ("base", Ty::Str),
                ("maintainer_can_modify", Ty::Bool),
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
            }
            if let Some(body) = map.get("body").and_then(Value::as_str) {
                pr.body = body.to_string();
            }
            apply_state(pr, &map);
            pr.updated = clock;
            json_answer(StatusCode::OK, github_pr_json(&base_url, pr))
        }
        (&Method::POST, ["issues", number, "comments"]) => {
            let number = number.to_string();
            comment(
                inner,
                request,
                &number,
                &[("body", Ty::Str)],
                |id, body| json!({ "id": id, "body": body, "html_url": format!("https://github.com/{OWNER}/{REPO}/pull/{number}#issuecomment-{id}"), "user": { "login": "imagebump" } }),
            )
        }
        (&Method::POST, ["issues", number, "labels"]) => {
            let map = match check_body(&request.body, &[("labels", Ty::StrList)], &["labels"]) {
                Ok(map) => map.clone(),
                Err(problem) => return body_problem(inner, request, problem),
            };
            let Some(index) = pr_index(inner, number) else {
                return not_found(kind);
            };
            let pr = &mut inner.prs[index];
            for label in strings(map.get("labels")) {
                if !pr.labels.contains(&label) {
                    pr.labels.push(label);
                }
            }
            let labels: Vec<Value> = pr
                .labels
                .iter()
                .enumerate()
                .map(
                    |(i, l)| json!({ "id": i + 1, "name": l, "color": "ededed", "default": false }),
                )
                .collect();
            json_answer(StatusCode::OK, Value::from(labels))
        }
        (&Method::POST, ["issues", number, "assignees"]) => {
            let map = match check_body(&request.body, &[("assignees", Ty::StrList)], &[]) {
                Ok(map) => map.clone(),
                Err(problem) => return body_problem(inner, request, problem),
            };
            let Some(index) = pr_index(inner, number) else {
                return not_found(kind);
            };
            // GitHub silently ignores assignees without access; so does the stand-in.
            let known = strings(map.get("assignees"))
                .into_iter()
                .filter(|a| USERS.iter().any(|(_, u)| u == a));
            inner.prs[index].assignees.extend(known);
            json_answer(
                StatusCode::CREATED,
                github_pr_json(&base_url, &inner.prs[index]),
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
            if reviewers.iter().any(|r| !USERS.iter().any(|(_, u)| u == r)) {
                return json_answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({
                        "message": "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the acme/shop-config repository.",
                        "documentation_url": "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request",
                        "status": "422",
                    }),
                );
            }
            inner.prs[index].reviewers.extend(reviewers);
            json_answer(
                StatusCode::CREATED,
                github_pr_json(&base_url, &inner.prs[index]),
            )
        }
        _ => unknown_route(inner, request),
    }
}
