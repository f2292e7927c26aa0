//! The HTTP plumbing shared by the three forge clients: headers, URLs, timeouts, and the one
//! mapping from an HTTP answer to a [`ForgeError`] (pure, unit-tested below).
//!
//! Invariant: every forge answer that is not a success becomes one [`ForgeError`] naming the
//! action and the project, never the token.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::{ForgeError, ForgeKind, ForgeSettings};

/// What GitHub documents for an answer with neither `Retry-After` nor a reset time: wait at
/// least one minute.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Longest API message copied into an error.
const MAX_MESSAGE: usize = 400;

/// A configured client for one forge API base URL.
#[derive(Clone)]
pub(super) struct Api {
    client: reqwest::Client,
    base: Url,
    kind: ForgeKind,
    project: String,
    token_env: String,
    token: String,
    timeout: Duration,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base.as_str())
            .field("kind", &self.kind)
            .field("project", &self.project)
            .field("token", &"***")
            .finish()
    }
}

impl Api {
    pub(super) fn new(settings: &ForgeSettings) -> Result<Self, ForgeError> {
        let base = Url::parse(settings.api_url.trim_end_matches('/')).map_err(|err| {
            ForgeError::Settings(format!(
                "api_url {:?} is not a URL: {err}",
                settings.api_url
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ForgeError::Settings(format!(
                "api_url {:?} must be an http:// or https:// URL",
                settings.api_url
            )));
        }
        let parts: Vec<&str> = settings.project.split('/').collect();
        let shape_ok = parts.iter().all(|p| !p.is_empty())
            && match settings.kind {
                ForgeKind::Gitlab => parts.len() >= 2,
                ForgeKind::Github | ForgeKind::Gitea => parts.len() == 2,
            };
        if !shape_ok {
            return Err(ForgeError::Settings(format!(
                "project {:?} must be owner/repo (GitLab: group/project or group/sub/project)",
                settings.project
            )));
        }
        if settings.token.expose().is_empty() {
            return Err(ForgeError::Settings(format!(
                "the {} token is empty (check {})",
                settings.kind, settings.token_env
            )));
        }

        let mut headers = HeaderMap::new();
        let user_agent = concat!("imagebump/", env!("CARGO_PKG_VERSION"));
        headers.insert(USER_AGENT, HeaderValue::from_static(user_agent));
        let (auth_name, auth_value, accept) = match settings.kind {
            ForgeKind::Github => {
                headers.insert(
                    HeaderName::from_static("x-github-api-version"),
                    HeaderValue::from_static("2022-11-28"),
                );
                (
                    AUTHORIZATION,
                    format!("Bearer {}", settings.token.expose()),
                    "application/vnd.github+json",
                )
            }
            ForgeKind::Gitlab => (
                HeaderName::from_static("private-token"),
                settings.token.expose().to_string(),
                "application/json",
            ),
            ForgeKind::Gitea => (
                AUTHORIZATION,
                format!("token {}", settings.token.expose()),
                "application/json",
            ),
        };
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        let mut auth = HeaderValue::from_str(&auth_value).map_err(|_| {
            ForgeError::Settings(format!(
                "the token in {} contains characters not allowed in an HTTP header",
                settings.token_env
            ))
        })?;
        auth.set_sensitive(true);
        headers.insert(auth_name, auth);

        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|err| ForgeError::Settings(format!("cannot build the HTTP client: {err}")))?;
        Ok(Self {
            client,
            base,
            kind: settings.kind,
            project: settings.project.clone(),
            token_env: settings.token_env.clone(),
            token: settings.token.expose().to_string(),
            timeout: settings.timeout,
        })
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment (so a
    /// GitLab project path `group/project` becomes `group%2Fproject`).
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends a request with an optional JSON body and decodes a JSON answer.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
        action: &str,
    ) -> Result<T, ForgeError> {
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|err| self.transport(action, &err))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|err| self.transport(action, &err))?;
        if !status.is_success() {
            tracing::debug!(forge = %self.kind, status = status.as_u16(), action, "forge API error");
            return Err(classify(
                &ErrorContext {
                    kind: self.kind,
                    action,
                    project: &self.project,
                    token_env: &self.token_env,
                    token: &self.token,
                },
                status,
                &headers,
                &text,
            ));
        }
        serde_json::from_str(&text).map_err(|err| ForgeError::Decode {
            forge: self.kind,
            action: action.to_string(),
            detail: err.to_string(),
        })
    }

    fn transport(&self, action: &str, err: &reqwest::Error) -> ForgeError {
        let detail = if err.is_timeout() {
            format!("no answer within {:?}", self.timeout)
        } else if err.is_connect() {
            "connection failed".to_string()
        } else {
            err.to_string()
        };
        ForgeError::Transport {
            forge: self.kind,
            action: action.to_string(),
            api_url: self.base.to_string(),
            detail: scrub(&detail, &self.token),
        }
    }
}

pub(super) struct ErrorContext<'a> {
    pub kind: ForgeKind,
    pub action: &'a str,
    pub project: &'a str,
    pub token_env: &'a str,
    pub token: &'a str,
}

/// Maps a failed HTTP answer to a typed error.
pub(super) fn classify(
    ctx: &ErrorContext<'_>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> ForgeError {
    let message = scrub(&api_message(body), ctx.token);
    let action = ctx.action.to_string();
    let forge = ctx.kind;
    let retry_after = retry_after(headers);
    let quota_spent = header_str(headers, "x-ratelimit-remaining") == Some("0")
        || header_str(headers, "ratelimit-remaining") == Some("0");
    let says_rate_limit = message.to_ascii_lowercase().contains("rate limit");
    match status.as_u16() {
        429 => ForgeError::RateLimited {
            forge,
            action,
            retry_after: retry_after.or(Some(SECONDARY_LIMIT_WAIT)),
        },
        403 if retry_after.is_some() || quota_spent || says_rate_limit => ForgeError::RateLimited {
            forge,
            action,
            retry_after: retry_after.or(Some(SECONDARY_LIMIT_WAIT)),
        },
        401 => ForgeError::Unauthorized {
            forge,
            action,
            token_env: ctx.token_env.to_string(),
        },
        403 => ForgeError::Forbidden {
            forge,
            action,
            project: ctx.project.to_string(),
            message,
        },
        404 => ForgeError::NotFound {
            forge,
            action,
            project: ctx.project.to_string(),
        },
        400 | 409 | 422 => ForgeError::Rejected {
            forge,
            action,
            status: status.as_u16(),
            message,
        },
        code => ForgeError::Http {
            forge,
            action,
            status: code,
            message,
        },
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Retry-After` in seconds, else the time until `x-ratelimit-reset` / `ratelimit-reset`
/// (epoch seconds) when the quota is spent.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(secs) = header_str(headers, "retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    let spent = header_str(headers, "x-ratelimit-remaining") == Some("0")
        || header_str(headers, "ratelimit-remaining") == Some("0");
    if !spent {
        return None;
    }
    let reset = header_str(headers, "x-ratelimit-reset")
        .or_else(|| header_str(headers, "ratelimit-reset"))
        .and_then(|v| v.parse::<u64>().ok())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now).max(1)))
}

/// The human-readable part of an API error body. GitHub: `message` plus `errors[].message`
/// (or `resource`/`field`/`code`); GitLab: `message` (string, list or field map) or `error`;
/// Gitea: `message`. A body that is not JSON is quoted, shortened.
pub(super) fn api_message(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        let text = body.trim();
        return if text.is_empty() {
            "(empty answer)".to_string()
        } else {
            shorten(text)
        };
    };
    let mut parts: Vec<String> = Vec::new();
    for key in ["message", "error"] {
        if let Some(v) = value.get(key) {
            flatten(v, None, &mut parts);
        }
    }
    if let Some(serde_json::Value::Array(errors)) = value.get("errors") {
        for error in errors {
            match error {
                serde_json::Value::Object(map) => {
                    if let Some(msg) = map.get("message").and_then(|m| m.as_str()) {
                        parts.push(msg.to_string());
                    } else {
                        let field = |k: &str| map.get(k).and_then(|v| v.as_str()).unwrap_or("?");
                        parts.push(format!(
                            "{} {} is {}",
                            field("resource"),
                            field("field"),
                            field("code")
                        ));
                    }
                }
                other => flatten(other, None, &mut parts),
            }
        }
    }
    if parts.is_empty() {
        return shorten(body.trim());
    }
    shorten(&parts.join(": "))
}

fn flatten(value: &serde_json::Value, key: Option<&str>, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => match key {
            Some(k) => out.push(format!("{k} {s}")),
            None => out.push(s.clone()),
        },
        serde_json::Value::Array(items) => items.iter().for_each(|v| flatten(v, key, out)),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                flatten(v, Some(k), out);
            }
        }
        serde_json::Value::Null => {}
        other => out.push(other.to_string()),
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE {
        return text.to_string();
    }
    let cut: String = text.chars().take(MAX_MESSAGE).collect();
    format!("{cut}…")
}

/// Removes the token from a text that is about to go into an error.
fn scrub(text: &str, token: &str) -> String {
    if token.len() >= 4 && text.contains(token) {
        text.replace(token, "***")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn ctx() -> ErrorContext<'static> {
        ErrorContext {
            kind: ForgeKind::Github,
            action: "open a pull request",
            project: "acme/shop",
            token_env: "GITHUB_TOKEN",
            token: "ghp_secret",
        }
    }

    fn check(status: u16, headers: &[(&str, &str)], body: &str) -> ForgeError {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        classify(
            &ctx(),
            StatusCode::from_u16(status).expect("status"),
            &map,
            body,
        )
    }

    #[test]
    fn github_validation_message_is_kept() {
        let err = check(
            422,
            &[],
            r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for acme:imagebump/shop."}],"documentation_url":"https://docs.github.com/rest"}"#,
        );
        assert!(
            matches!(err, ForgeError::Rejected { status: 422, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "GitHub rejected the request to open a pull request (HTTP 422): Validation Failed: \
             A pull request already exists for acme:imagebump/shop."
        );
        let err = check(
            422,
            &[],
            r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"base","code":"invalid"}]}"#,
        );
        assert!(
            err.to_string()
                .ends_with("Validation Failed: PullRequest base is invalid"),
            "{err}"
        );
    }

    #[test]
    fn gitlab_messages_of_every_shape() {
        assert_eq!(
            api_message(r#"{"message":["Another open merge request already exists"]}"#),
            "Another open merge request already exists"
        );
        assert_eq!(
            api_message(r#"{"message":{"title":["can't be blank"]}}"#),
            "title can't be blank"
        );
        assert_eq!(
            api_message(r#"{"error":"title is missing"}"#),
            "title is missing"
        );
        assert_eq!(
            api_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(api_message(""), "(empty answer)");
    }

    #[test]
    fn rate_limits() {
        let err = check(429, &[("retry-after", "17")], "{}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(17)));
        let err = check(
            403,
            &[("retry-after", "30")],
            r#"{"message":"You have exceeded a secondary rate limit"}"#,
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
        let err = check(
            403,
            &[],
            r#"{"message":"You have exceeded a secondary rate limit"}"#,
        );
        assert_eq!(err.retry_after(), Some(SECONDARY_LIMIT_WAIT));
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + 120;
        let err = check(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset.to_string()),
            ],
            r#"{"message":"API rate limit exceeded"}"#,
        );
        let wait = err.retry_after().expect("wait").as_secs();
        assert!((100..=120).contains(&wait), "{wait}");
        assert!(
            err.to_string()
                .contains("rate limit hit while trying to open a pull request")
        );
    }

    #[test]
    fn auth_and_access_errors_name_what_to_fix() {
        let err = check(401, &[], r#"{"message":"Bad credentials"}"#);
        assert_eq!(
            err.to_string(),
            "token rejected by GitHub (HTTP 401) while trying to open a pull request: check \
             GITHUB_TOKEN"
        );
        let err = check(
            403,
            &[],
            r#"{"message":"Resource not accessible by integration"}"#,
        );
        assert!(matches!(err, ForgeError::Forbidden { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("Resource not accessible by integration")
        );
        let err = check(404, &[], r#"{"message":"Not Found"}"#);
        assert!(
            err.to_string()
                .contains("project acme/shop not found or the token lacks access")
        );
        let err = check(502, &[], "upstream ghp_secret down");
        assert!(
            matches!(err, ForgeError::Http { status: 502, .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("ghp_secret"), "{err}");
    }
}
