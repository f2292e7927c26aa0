//! Stand-ins for the GitHub, GitLab and Gitea REST APIs, one axum server per test on a free
//! 127.0.0.1 port: the server, its records and its header checks here, the body and query
//! checks in [`checks`], and one file per forge for its endpoints.
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
use serde_json::{Value, json};

mod checks;
mod gitea;
mod github;
mod gitlab;

use checks::*;
use gitea::gitea;
use github::github;
use gitlab::gitlab;

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
    /// Comments (GitLab notes) posted on it, oldest first.
    pub comments: Vec<String>,
    updated: u64,
}

struct Inner {
    kind: ForgeKind,
    prs: Vec<StoredPr>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
    fault: Option<(Fault, Option<Method>)>,
    /// The next create finds an open pull request for its branches, opened by another client
    /// just before it (see [`StandIn::race_next_create`]).
    race_create: bool,
    /// Runs before the next request that lists pull requests is answered (see
    /// [`StandIn::before_next_list`]).
    before_list: Option<Box<dyn FnOnce() + Send>>,
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
            race_create: false,
            before_list: None,
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

    /// The next request to open a pull request loses a race: just before it, another client
    /// (another replica) opens one for the same head and base, so the forge answers the create
    /// with its documented "already exists" error.
    pub fn race_next_create(&self) {
        self.lock().race_create = true;
    }

    /// Runs `hook` (on a blocking-capable thread, the stand-in unlocked) when the next request
    /// listing pull requests arrives, before it is answered: what another replica does between
    /// this client's planning and its look at the forge.
    pub fn before_next_list(&self, hook: impl FnOnce() + Send + 'static) {
        self.lock().before_list = Some(Box::new(hook));
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
    let lists = method == Method::GET
        && (uri.path().ends_with("/pulls") || uri.path().ends_with("/merge_requests"));
    let hook = lists
        .then(|| shared.lock().expect("state").before_list.take())
        .flatten();
    if let Some(hook) = hook {
        tokio::task::block_in_place(hook);
    }
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

/// When [`StandIn::race_next_create`] asked for it: another client opens a pull request from
/// `head` into `base` first (its body is not imagebump's).
fn another_client_opens_first(inner: &mut Inner, head: &str, base: &str) {
    if std::mem::take(&mut inner.race_create) {
        new_pr(inner, head, base, "opened by another client", "");
    }
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
