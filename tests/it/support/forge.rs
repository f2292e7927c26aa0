//! Stand-ins for the GitHub, GitLab and Gitea REST APIs, one axum server per test on a free
//! 127.0.0.1 port.
//!
//! Each follows the documented endpoints and answer shapes of its forge, keeps pull requests in
//! memory, and checks every request: method and path, the auth header and `Accept` the API
//! documents, a `User-Agent`, the query keys, and the JSON body (unknown fields, missing
//! required fields and wrong types are answered with that forge's documented error shape and
//! recorded as violations, which the tests assert to be empty). Every request is recorded.
//! A [`Fault`] switches a server to answer errors (401, 403, 404, 422, 429, rate limits, or no
//! answer at all).
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use imagebump::forge::{ForgeKind, ForgeSettings, Secret};
use serde_json::{Map, Value, json};

/// The only token the stand-ins accept.
pub const TOKEN: &str = "tok-5ecr3t-forge-test-0123";
pub const TOKEN_ENV: &str = "FORGE_TEST_TOKEN";
pub const OWNER: &str = "acme";
pub const REPO: &str = "shop-config";
/// A nested GitLab group, so the `%2F` encoding of the project path is exercised.
pub const GITLAB_PROJECT: &str = "acme/platform/shop-config";
/// Users known to every stand-in (GitHub collaborators, GitLab users with these ids, Gitea
/// users).
pub const USERS: &[(u64, &str)] = &[(11, "alice"), (12, "bob"), (13, "carol")];
/// Labels of the Gitea repository (GitHub and GitLab create labels on the fly).
pub const GITEA_LABELS: &[(u64, &str)] = &[(1, "images"), (2, "bot"), (3, "dependencies")];

/// An error answer the server gives instead of doing the work.
#[derive(Debug, Clone)]
pub enum Fault {
    Unauthorized,
    Forbidden,
    NotFound,
    Validation,
    /// 429 with `Retry-After`.
    RateLimited {
        retry_after: u64,
    },
    /// GitHub: 403 "secondary rate limit", with or without `Retry-After`.
    SecondaryRateLimit {
        retry_after: Option<u64>,
    },
    /// 403 with `x-ratelimit-remaining: 0` and a reset time one minute ahead.
    QuotaSpent,
    /// Never answers in time (3 s).
    Hang,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The raw (still percent-encoded) path.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Recorded {
    /// `"POST /repos/acme/shop-config/pulls"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One pull request held by a stand-in.
#[derive(Debug, Clone)]
pub struct StoredPr {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub open: bool,
    pub merged: bool,
    pub draft: bool,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub reviewers: Vec<String>,
    updated: u64,
}

struct Inner {
    kind: ForgeKind,
    prs: Vec<StoredPr>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
    fault: Option<(Fault, Option<Method>)>,
    clock: u64,
    base_url: String,
}

type Shared = Arc<Mutex<Inner>>;

/// A running stand-in; the server task stops when this is dropped.
pub struct StandIn {
    kind: ForgeKind,
    addr: SocketAddr,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// Starts a stand-in for `kind` on a free port (call from inside a tokio runtime).
    pub async fn start(kind: ForgeKind) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let inner = Arc::new(Mutex::new(Inner {
            kind,
            prs: Vec::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            fault: None,
            clock: 0,
            base_url: format!("http://{addr}"),
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("stand-in server");
        });
        Self {
            kind,
            addr,
            inner,
            task,
        }
    }

    /// The API base URL the client is configured with.
    pub fn api_url(&self) -> String {
        match self.kind {
            ForgeKind::Github => format!("http://{}", self.addr),
            ForgeKind::Gitlab => format!("http://{}/api/v4", self.addr),
            ForgeKind::Gitea => format!("http://{}/api/v1", self.addr),
        }
    }

    pub fn project(&self) -> String {
        match self.kind {
            ForgeKind::Gitlab => GITLAB_PROJECT.to_string(),
            _ => format!("{OWNER}/{REPO}"),
        }
    }

    /// Settings for this stand-in with the right token and a short timeout.
    pub fn settings(&self) -> ForgeSettings {
        let mut settings = ForgeSettings::new(
            self.kind,
            self.api_url(),
            Secret::new(TOKEN),
            TOKEN_ENV,
            self.project(),
        );
        settings.timeout = Duration::from_secs(5);
        settings
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("stand-in state")
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// `"METHOD /path"` of every request so far.
    pub fn request_lines(&self) -> Vec<String> {
        self.lock().requests.iter().map(Recorded::line).collect()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Requests that broke the documented protocol (should stay empty).
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    pub fn prs(&self) -> Vec<StoredPr> {
        self.lock().prs.clone()
    }

    pub fn pr(&self, number: u64) -> StoredPr {
        self.prs()
            .into_iter()
            .find(|p| p.number == number)
            .expect("no such pull request")
    }

    /// A pull request somebody else opened (another branch), for paging tests.
    pub fn seed_pr(&self, head: &str, base: &str, title: &str) -> u64 {
        let mut inner = self.lock();
        let index = new_pr(&mut inner, head, base, title, "");
        inner.prs[index].number
    }

    /// What a human merging the pull request in the web UI does.
    pub fn merge(&self, number: u64) {
        self.edit(number, |pr| {
            pr.open = false;
            pr.merged = true;
        });
    }

    /// What a human closing the pull request without merging does.
    pub fn close(&self, number: u64) {
        self.edit(number, |pr| pr.open = false);
    }

    fn edit(&self, number: u64, change: impl FnOnce(&mut StoredPr)) {
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let pr = inner
            .prs
            .iter_mut()
            .find(|p| p.number == number)
            .expect("no such pull request");
        change(pr);
        pr.updated = clock;
    }

    /// Answers every request (or only those with `method`) with `fault`; `None` heals.
    pub fn set_fault(&self, fault: Option<Fault>, method: Option<Method>) {
        self.lock().fault = fault.map(|f| (f, method));
    }
}

// ---------------------------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------------------------

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = {
        let mut inner = shared.lock().expect("state");
        let url = reqwest::Url::parse(&format!("http://stand-in{uri}")).expect("uri");
        let query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let parsed_body = if body.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(v) => Some(v),
                Err(err) => {
                    inner
                        .violations
                        .push(format!("{method} {}: body is not JSON: {err}", uri.path()));
                    Some(Value::Null)
                }
            }
        };
        inner.requests.push(Recorded {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: query.clone(),
            body: parsed_body.clone(),
        });
        if let Some(answer) = check_headers(&mut inner, &method, &headers, body.is_empty()) {
            return answer;
        }
        let fault = inner
            .fault
            .clone()
            .filter(|(_, only)| only.as_ref().is_none_or(|m| *m == method))
            .map(|(f, _)| f);
        match fault {
            Some(Fault::Hang) => Some(Fault::Hang),
            Some(fault) => return fault_answer(inner.kind, &fault),
            None => {
                let request = Request {
                    method: method.clone(),
                    path: uri.path().to_string(),
                    query,
                    body: parsed_body,
                };
                return route(&mut inner, &request);
            }
        }
    };
    if fault.is_some() {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    (StatusCode::GATEWAY_TIMEOUT, "too late").into_response()
}

struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks User-Agent, Accept, API version and auth; answers when the request must stop here.
fn check_headers(
    inner: &mut Inner,
    method: &Method,
    headers: &HeaderMap,
    empty_body: bool,
) -> Option<Response> {
    let kind = inner.kind;
    let user_agent = header(headers, "user-agent").unwrap_or_default();
    if !user_agent.starts_with("imagebump/") {
        inner
            .violations
            .push(format!("{method}: User-Agent {user_agent:?}"));
        // GitHub documents a 403 for requests without a User-Agent.
        return Some(error(
            kind,
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        ));
    }
    let (accept, auth_name, auth_value) = match kind {
        ForgeKind::Github => (
            "application/vnd.github+json",
            "authorization",
            format!("Bearer {TOKEN}"),
        ),
        ForgeKind::Gitlab => ("application/json", "private-token", TOKEN.to_string()),
        ForgeKind::Gitea => (
            "application/json",
            "authorization",
            format!("token {TOKEN}"),
        ),
    };
    if header(headers, "accept") != Some(accept) {
        inner
            .violations
            .push(format!("{method}: Accept {:?}", header(headers, "accept")));
    }
    if kind == ForgeKind::Github && header(headers, "x-github-api-version") != Some("2022-11-28") {
        inner
            .violations
            .push(format!("{method}: missing X-GitHub-Api-Version"));
    }
    if !empty_body && header(headers, "content-type") != Some("application/json") {
        inner.violations.push(format!(
            "{method}: Content-Type {:?}",
            header(headers, "content-type")
        ));
    }
    match header(headers, auth_name) {
        Some(value) if value == auth_value => None,
        Some(_) => Some(unauthorized(kind)),
        None => {
            inner
                .violations
                .push(format!("{method}: no {auth_name} header"));
            Some(unauthorized(kind))
        }
    }
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// An error in the forge's documented shape: GitHub `{message, documentation_url}`, GitLab
/// `{message}`, Gitea `{message, url}`.
fn error(kind: ForgeKind, status: StatusCode, message: &str) -> Response {
    let body = match kind {
        ForgeKind::Github => json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_u16().to_string(),
        }),
        ForgeKind::Gitlab => json!({ "message": message }),
        ForgeKind::Gitea => {
            json!({ "message": message, "url": "https://gitea.example/api/swagger" })
        }
    };
    json_answer(status, body)
}

fn unauthorized(kind: ForgeKind) -> Response {
    match kind {
        ForgeKind::Github => error(kind, StatusCode::UNAUTHORIZED, "Bad credentials"),
        ForgeKind::Gitlab => error(kind, StatusCode::UNAUTHORIZED, "401 Unauthorized"),
        ForgeKind::Gitea => error(
            kind,
            StatusCode::UNAUTHORIZED,
            "user does not exist [uid: 0, name: ]",
        ),
    }
}

fn not_found(kind: ForgeKind) -> Response {
    match kind {
        ForgeKind::Github => error(kind, StatusCode::NOT_FOUND, "Not Found"),
        ForgeKind::Gitlab => error(kind, StatusCode::NOT_FOUND, "404 Project Not Found"),
        ForgeKind::Gitea => json_answer(
            StatusCode::NOT_FOUND,
            json!({ "errors": null, "message": "The target couldn't be found.", "url": "https://gitea.example/api/swagger" }),
        ),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn fault_answer(kind: ForgeKind, fault: &Fault) -> Response {
    match fault {
        Fault::Unauthorized => unauthorized(kind),
        Fault::NotFound => not_found(kind),
        Fault::Forbidden => match kind {
            ForgeKind::Github => error(
                kind,
                StatusCode::FORBIDDEN,
                "Resource not accessible by personal access token",
            ),
            ForgeKind::Gitlab => error(kind, StatusCode::FORBIDDEN, "403 Forbidden"),
            ForgeKind::Gitea => error(
                kind,
                StatusCode::FORBIDDEN,
                "user should have a permission to write to the target branch",
            ),
        },
        Fault::Validation => match kind {
            ForgeKind::Github => json_answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "message": "Validation Failed",
                    "errors": [{ "resource": "PullRequest", "code": "custom", "message": "No commits between main and imagebump/shop" }],
                    "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                    "status": "422",
                }),
            ),
            ForgeKind::Gitlab => json_answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "message": ["Validate branches Cannot Create: This merge request already exists"] }),
            ),
            ForgeKind::Gitea => error(
                kind,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid PullRequest: There are no changes between the head and the base",
            ),
        },
        Fault::RateLimited { retry_after } => {
            let mut answer = match kind {
                ForgeKind::Gitlab => (StatusCode::TOO_MANY_REQUESTS, "Retry later").into_response(),
                _ => error(
                    kind,
                    StatusCode::TOO_MANY_REQUESTS,
                    "API rate limit exceeded",
                ),
            };
            answer
                .headers_mut()
                .insert("retry-after", HeaderValue::from(*retry_after));
            answer
        }
        Fault::SecondaryRateLimit { retry_after } => {
            let mut answer = error(
                kind,
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            if let Some(secs) = retry_after {
                answer
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(*secs));
            }
            answer
        }
        Fault::QuotaSpent => {
            let mut answer = error(
                kind,
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1.",
            );
            let headers = answer.headers_mut();
            headers.insert("x-ratelimit-limit", HeaderValue::from(5000));
            headers.insert("x-ratelimit-remaining", HeaderValue::from(0));
            headers.insert("x-ratelimit-reset", HeaderValue::from(now() + 60));
            answer
        }
        Fault::Hang => (StatusCode::GATEWAY_TIMEOUT, "unreachable").into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Body and query checks
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Ty {
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

enum BodyProblem {
    NotObject,
    Unknown(String),
    Missing(String),
    WrongType(String, &'static str),
}

fn check_body<'a>(
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
fn body_problem(inner: &mut Inner, request: &Request, problem: BodyProblem) -> Response {
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
fn check_query(inner: &mut Inner, request: &Request, allowed: &[&str]) {
    for (key, _) in &request.query {
        if !allowed.contains(&key.as_str()) {
            inner.violations.push(format!(
                "{} {}: unknown query parameter {key}",
                request.method, request.path
            ));
        }
    }
}

fn query<'a>(request: &'a Request, key: &str) -> Option<&'a str> {
    request
        .query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn new_pr(inner: &mut Inner, head: &str, base: &str, title: &str, body: &str) -> usize {
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
        updated: inner.clock,
    });
    inner.prs.len() - 1
}

fn pr_index(inner: &Inner, number: &str) -> Option<usize> {
    let number: u64 = number.parse().ok()?;
    inner.prs.iter().position(|p| p.number == number)
}

fn unknown_route(inner: &mut Inner, request: &Request) -> Response {
    inner.violations.push(format!(
        "no such endpoint: {} {}",
        request.method, request.path
    ));
    not_found(inner.kind)
}

fn route(inner: &mut Inner, request: &Request) -> Response {
    match inner.kind {
        ForgeKind::Github => github(inner, request),
        ForgeKind::Gitlab => gitlab(inner, request),
        ForgeKind::Gitea => gitea(inner, request),
    }
}

// ---------------------------------------------------------------------------------------------
// GitHub REST: https://docs.github.com/en/rest/pulls/pulls, issues/labels, issues/assignees,
// pulls/review-requests
// ---------------------------------------------------------------------------------------------

fn github_pr_json(base_url: &str, pr: &StoredPr) -> Value {
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

fn github(inner: &mut Inner, request: &Request) -> Response {
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
            pr.updated = clock;
            json_answer(StatusCode::OK, github_pr_json(&base_url, pr))
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

// ---------------------------------------------------------------------------------------------
// GitLab v4: https://docs.gitlab.com/api/merge_requests/, /users
// ---------------------------------------------------------------------------------------------

fn gitlab_mr_json(pr: &StoredPr) -> Value {
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

fn gitlab(inner: &mut Inner, request: &Request) -> Response {
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
            pr.updated = clock;
            json_answer(StatusCode::OK, gitlab_mr_json(pr))
        }
        _ => unknown_route(inner, request),
    }
}

// ---------------------------------------------------------------------------------------------
// Gitea v1 (Forgejo): https://docs.gitea.com/api/ (swagger: repoListPullRequests,
// repoCreatePullRequest, repoEditPullRequest, issueListLabels, repoCreatePullReviewRequests)
// ---------------------------------------------------------------------------------------------

fn gitea_pr_json(base_url: &str, pr: &StoredPr) -> Value {
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

fn gitea(inner: &mut Inner, request: &Request) -> Response {
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
            pr.updated = clock;
            // Gitea documents 201 for an edited pull request.
            json_answer(StatusCode::CREATED, gitea_pr_json(&base_url, pr))
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
