//! Body and query checks shared by the forge stand-ins: field types, unknown and missing
//! fields, allowed query keys, and the pull-request store helpers.

use axum::http::StatusCode;
use axum::response::Response;
use imagebump::forge::ForgeKind;
use serde_json::{Map, Value, json};

use super::*;

#[derive(Clone, Copy)]
pub(super) enum Ty {
    Str,
    Bool,
    StrList,
    IntList,
    Int,
}

impl Ty {
    fn matches(self, value: &Value) -> bool {
        match self {
            Ty::Str => value.is_string(),
            Ty::Bool => value.is_boolean(),
            Ty::Int => value.is_u64(),
            Ty::StrList => value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string)),
            Ty::IntList => value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_u64)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Bool => "a boolean",
            Ty::Int => "an integer",
            Ty::StrList => "an array of strings",
            Ty::IntList => "an array of integers",
        }
    }
}

pub(super) enum BodyProblem {
    NotObject,
    Unknown(String),
    Missing(String),
    WrongType(String, &'static str),
}

pub(super) fn check_body<'a>(
    body: &'a Option<Value>,
    fields: &[(&str, Ty)],
    required: &[&str],
) -> Result<&'a Map<String, Value>, BodyProblem> {
    let Some(Value::Object(map)) = body else {
        return Err(BodyProblem::NotObject);
    };
    for (key, value) in map {
        match fields.iter().find(|(name, _)| name == key) {
            None => return Err(BodyProblem::Unknown(key.clone())),
            Some((_, ty)) if !ty.matches(value) => {
                return Err(BodyProblem::WrongType(key.clone(), ty.name()));
            }
            Some(_) => {}
        }
    }
    if let Some(missing) = required.iter().find(|r| !map.contains_key(**r)) {
        return Err(BodyProblem::Missing(missing.to_string()));
    }
    Ok(map)
}

/// The documented answer to a bad body: GitHub 422 "Invalid request", GitLab 400
/// `{"error": ...}`, Gitea 422 `{"message": ..., "url": ...}`.
pub(super) fn body_problem(inner: &mut Inner, request: &Request, problem: BodyProblem) -> Response {
    let text = match &problem {
        BodyProblem::NotObject => "the body is not a JSON object".to_string(),
        BodyProblem::Unknown(key) => format!("\"{key}\" is not a permitted key."),
        BodyProblem::Missing(key) => format!("\"{key}\" wasn't supplied."),
        BodyProblem::WrongType(key, ty) => format!("\"{key}\" is not {ty}."),
    };
    inner
        .violations
        .push(format!("{} {}: {text}", request.method, request.path));
    match inner.kind {
        ForgeKind::Github => error(
            inner.kind,
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Invalid request.\n\n{text}"),
        ),
        ForgeKind::Gitlab => {
            let text = match problem {
                BodyProblem::Missing(key) => format!("{key} is missing"),
                BodyProblem::WrongType(key, _) => format!("{key} is invalid"),
                BodyProblem::Unknown(key) => format!("{key} does not have a valid value"),
                BodyProblem::NotObject => text,
            };
            json_answer(StatusCode::BAD_REQUEST, json!({ "error": text }))
        }
        ForgeKind::Gitea => error(inner.kind, StatusCode::UNPROCESSABLE_ENTITY, &text),
    }
}

/// Records a violation for query keys outside `allowed`.
pub(super) fn check_query(inner: &mut Inner, request: &Request, allowed: &[&str]) {
    for (key, _) in &request.query {
        if !allowed.contains(&key.as_str()) {
            inner.violations.push(format!(
                "{} {}: unknown query parameter {key}",
                request.method, request.path
            ));
        }
    }
}

pub(super) fn query<'a>(request: &'a Request, key: &str) -> Option<&'a str> {
    request
        .query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(super) fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn new_pr(inner: &mut Inner, head: &str, base: &str, title: &str, body: &str) -> usize {
    inner.clock += 1;
    let number = inner.prs.iter().map(|p| p.number).max().unwrap_or(0) + 1;
    inner.prs.push(StoredPr {
        number,
        title: title.to_string(),
        body: body.to_string(),
        head: head.to_string(),
        base: base.to_string(),
        open: true,
        merged: false,
        draft: false,
        labels: Vec::new(),
        assignees: Vec::new(),
        reviewers: Vec::new(),
        comments: Vec::new(),
        updated: inner.clock,
    });
    inner.prs.len() - 1
}

pub(super) fn pr_index(inner: &Inner, number: &str) -> Option<usize> {
    let number: u64 = number.parse().ok()?;
    inner.prs.iter().position(|p| p.number == number)
}

/// A comment posted on pull request `number` (`body` the required text field): stored, and
/// answered `201` with `answer(id, body)`.
pub(super) fn comment(
    inner: &mut Inner,
    request: &Request,
    number: &str,
    fields: &[(&str, Ty)],
    answer: impl Fn(usize, &str) -> Value,
) -> Response {
    let map = match check_body(&request.body, fields, &["body"]) {
        Ok(map) => map.clone(),
        Err(problem) => return body_problem(inner, request, problem),
    };
    let Some(index) = pr_index(inner, number) else {
        return error(inner.kind, StatusCode::NOT_FOUND, "Not Found");
    };
    let body = map.get("body").and_then(Value::as_str).unwrap_or_default();
    inner.prs[index].comments.push(body.to_string());
    let id = inner.prs.iter().map(|p| p.comments.len()).sum::<usize>();
    json_answer(StatusCode::CREATED, answer(id, body))
}

/// `state` of a PATCH body (GitHub and Gitea: `open` or `closed`) applied to `pr`.
pub(super) fn apply_state(pr: &mut StoredPr, map: &Map<String, Value>) {
    match map.get("state").and_then(Value::as_str) {
        Some("closed") => pr.open = false,
        Some("open") if !pr.merged => pr.open = true,
        _ => {}
    }
}
