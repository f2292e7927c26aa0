//! Merge requests on GitHub, GitLab and Gitea/Forgejo: find, create and update the one open
//! pull request per app, plus the pure decision of what to do and the title/body templates.
//!
//! Architecture invariant: `forge` knows nothing about git internals, YAML or registries. It gets
//! a head branch (already pushed by the `git` module), a base branch and the rows of the change
//! set; it speaks only the documented REST APIs: GitHub REST v3 (`/repos/{o}/{r}/pulls`, labels
//! and assignees through the issues API), GitLab v4 (`/projects/:id/merge_requests`) and Gitea
//! v1, which Forgejo serves unchanged (`/repos/{o}/{r}/pulls`).
//!
//! Main design choice: plain `reqwest` (rustls) with small hand-written request and response
//! types, one file per forge. `octocrab` and the `gitlab` crate would each bring a heavy
//! dependency tree for the four or five calls we make, and neither covers Gitea, so a third
//! client would be needed anyway; three thin clients over one shared error mapping
//! ([`http`]) keep the behaviour the same on every forge.
//!
//! The split between I/O and decisions: [`Forge`] only talks to the API; [`decide`] (pure) says
//! whether to create, update or leave alone, from the pull requests found for the bot branch
//! and a fingerprint of the wanted change set that is embedded, hidden, in every body we write
//! ([`render_body`]). That is how a pull request a human closed without merging is not
//! reopened for the same versions, while a merged one is followed by a fresh one.
//!
//! Every request carries `User-Agent: imagebump/<version>` (GitHub answers 403 without one) and
//! a timeout. The token travels only in a header marked sensitive; it never appears in an
//! error, a log line or a `Debug` print ([`Secret`]).

mod body;
mod decide;
mod gitea;
mod github;
mod gitlab;
mod http;
mod link;

pub use crate::secret::Secret;
use std::fmt;
use std::time::Duration;

pub use body::{
    ChangeRow, DEFAULT_BODY_TEMPLATE, DEFAULT_TITLE_TEMPLATE, ImageRow, PromotionRow, images,
    render_body, render_promoted_body, render_title,
};
pub use decide::{Action, decide, fingerprint, fingerprint_in_body};
pub use link::commit_url;

/// Which forge API a repository lives on. Forgejo (Codeberg) speaks the Gitea API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForgeKind {
    Github,
    Gitlab,
    Gitea,
}

impl ForgeKind {
    /// The config spelling: `github`, `gitlab`, `gitea` (`forgejo` is accepted as `gitea`).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "github" => Some(Self::Github),
            "gitlab" => Some(Self::Gitlab),
            "gitea" | "forgejo" => Some(Self::Gitea),
            _ => None,
        }
    }

    /// The public instance's API base URL; `None` for Gitea, which is always self-hosted.
    pub fn default_api_url(self) -> Option<&'static str> {
        match self {
            Self::Github => Some("https://api.github.com"),
            Self::Gitlab => Some("https://gitlab.com/api/v4"),
            Self::Gitea => None,
        }
    }

    /// The word used for one merge request on this forge, for messages.
    pub fn request_noun(self) -> &'static str {
        match self {
            Self::Gitlab => "merge request",
            Self::Github | Self::Gitea => "pull request",
        }
    }
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Github => "GitHub",
            Self::Gitlab => "GitLab",
            Self::Gitea => "Gitea",
        })
    }
}

/// Everything needed to talk to one forge project (the resolved form of an app's
/// `pull_request:` config block).
#[derive(Debug, Clone)]
pub struct ForgeSettings {
    pub kind: ForgeKind,
    /// API base URL: `https://api.github.com`, `https://ghe.example.com/api/v3`,
    /// `https://gitlab.example.com/api/v4`, `https://gitea.example.com/api/v1`.
    pub api_url: String,
    pub token: Secret,
    /// Name of the environment variable the token came from, named in "token rejected" errors.
    pub token_env: String,
    /// `owner/repo` (GitHub, Gitea) or the full GitLab path `group/subgroup/project`;
    /// see [`project_from_repo_url`].
    pub project: String,
    pub labels: Vec<String>,
    /// Usernames (logins) asked for a review.
    pub reviewers: Vec<String>,
    /// Usernames (logins) assigned.
    pub assignees: Vec<String>,
    /// Open new pull requests as drafts (GitHub `draft: true`; GitLab `Draft: ` and Gitea
    /// `WIP: ` title prefix, as those APIs document).
    pub draft: bool,
    /// Timeout of each request (connect + answer).
    pub timeout: Duration,
}

impl ForgeSettings {
    /// Settings with no labels, reviewers or assignees, not draft, a 30 s timeout.
    pub fn new(
        kind: ForgeKind,
        api_url: impl Into<String>,
        token: Secret,
        token_env: impl Into<String>,
        project: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            api_url: api_url.into(),
            token,
            token_env: token_env.into(),
            project: project.into(),
            labels: Vec::new(),
            reviewers: Vec::new(),
            assignees: Vec::new(),
            draft: false,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The state of a pull request as the bot cares about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    Open,
    Merged,
    /// Closed without merging.
    Closed,
}

/// One pull/merge request, the same shape on every forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// GitHub/Gitea `number`, GitLab `iid` (the number shown in the UI).
    pub number: u64,
    /// The web page of the pull request.
    pub url: String,
    pub state: PrState,
    pub head: String,
    pub base: String,
    /// The title as the forge holds it (including a `Draft:`/`WIP:` prefix, if any).
    pub title: String,
    pub body: String,
}

/// A pull request just opened, and what could not be applied to it.
#[derive(Debug)]
pub struct Created {
    pub pull_request: PullRequest,
    /// Labels, reviewers or assignees the forge refused (unknown names, no permission).
    pub problems: Vec<ForgeError>,
}

/// What [`Forge::open`] did.
#[derive(Debug)]
pub enum Opened {
    /// A new pull request.
    Created(Created),
    /// The forge refused the create because an open pull request for the same branches already
    /// existed (another replica opened it between our look and our create): that one, its
    /// title and body replaced by ours.
    Adopted(PullRequest),
}

/// Errors of the forge API, classified so the caller can report them and retry next pass.
/// None of them carries the token.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("invalid pull_request settings: {0}")]
    Settings(String),
    #[error("token rejected by {forge} (HTTP 401) while trying to {action}: check {token_env}")]
    Unauthorized {
        forge: ForgeKind,
        action: String,
        token_env: String,
    },
    #[error(
        "{forge} refused to {action} (HTTP 403): {message}; the token needs write access to \
         pull requests of {project}"
    )]
    Forbidden {
        forge: ForgeKind,
        action: String,
        project: String,
        message: String,
    },
    #[error(
        "{forge}: project {project} not found or the token lacks access (HTTP 404 while trying \
         to {action}); check the project path and the token's scopes"
    )]
    NotFound {
        forge: ForgeKind,
        action: String,
        project: String,
    },
    #[error("{forge} rejected the request to {action} (HTTP {status}): {message}")]
    Rejected {
        forge: ForgeKind,
        action: String,
        status: u16,
        message: String,
    },
    #[error("{forge} rate limit hit while trying to {action}; {}", retry_text(.retry_after))]
    RateLimited {
        forge: ForgeKind,
        action: String,
        retry_after: Option<Duration>,
    },
    #[error("{forge} answered HTTP {status} while trying to {action}: {message}")]
    Http {
        forge: ForgeKind,
        action: String,
        status: u16,
        message: String,
    },
    #[error("cannot reach {forge} at {api_url} to {action}: {detail}")]
    Transport {
        forge: ForgeKind,
        action: String,
        api_url: String,
        detail: String,
    },
    #[error("{forge} sent an answer imagebump cannot read while trying to {action}: {detail}")]
    Decode {
        forge: ForgeKind,
        action: String,
        detail: String,
    },
    #[error("{forge} has no {what} named {name:?} in {project}; create it or fix the config")]
    UnknownName {
        forge: ForgeKind,
        what: &'static str,
        name: String,
        project: String,
    },
    #[error("pull request template {template}: {detail}")]
    Template { template: String, detail: String },
}

fn retry_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!("retry after {} s", wait.as_secs()),
        None => "retry later".to_string(),
    }
}

impl ForgeError {
    /// The time the forge asked us to wait, for rate limits.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Scheme, host and port of a git remote URL (`https://host:port/...`, `ssh://git@host/...`,
/// `git@host:path`); `None` for local paths.
fn repo_host(url: &str) -> Option<(&str, &str, Option<&str>)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => {
            let (host, _) = url.split_once(':')?;
            if host.is_empty() || host.contains('/') {
                return None;
            }
            ("ssh", host)
        }
    };
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() {
        return None;
    }
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => (host, Some(port)),
        _ => (host_port, None),
    };
    Some((scheme, host, port))
}

/// The API base URL for a repository on `kind` when `api_url` is not configured: the public
/// instance for github.com and gitlab.com, else the forge's documented API path on the repo's
/// host (`https://HOST/api/v3` for GitHub Enterprise, `https://HOST/api/v4` for GitLab,
/// `https://HOST/api/v1` for Gitea; an `http://` repo URL keeps its scheme and port). A forge
/// served under a sub path needs `api_url` set.
pub fn api_url_for_repo(kind: ForgeKind, repo_url: &str) -> Result<String, ForgeError> {
    let (scheme, host, port) = repo_host(repo_url).ok_or_else(|| {
        ForgeError::Settings(format!(
            "cannot derive the {kind} API URL from repo URL {repo_url:?}; set `api_url`"
        ))
    })?;
    let host = host.to_ascii_lowercase();
    match (kind, host.as_str()) {
        (ForgeKind::Github, "github.com" | "www.github.com") => {
            return Ok("https://api.github.com".to_string());
        }
        (ForgeKind::Gitlab, "gitlab.com") => return Ok("https://gitlab.com/api/v4".to_string()),
        _ => {}
    }
    // Only an http(s) URL says which port serves the web (and API); an SSH port does not.
    let origin = match (scheme, port) {
        ("http", Some(port)) => format!("http://{host}:{port}"),
        ("http", None) => format!("http://{host}"),
        ("https", Some(port)) => format!("https://{host}:{port}"),
        _ => format!("https://{host}"),
    };
    let path = match kind {
        ForgeKind::Github => "/api/v3",
        ForgeKind::Gitlab => "/api/v4",
        ForgeKind::Gitea => "/api/v1",
    };
    Ok(format!("{origin}{path}"))
}

impl ForgeSettings {
    /// Settings for an app's repository: `api_url` and `project` default to what the repo URL
    /// implies ([`api_url_for_repo`], [`project_from_repo_url`]) when not configured.
    pub fn for_repo(
        kind: ForgeKind,
        repo_url: &str,
        api_url: Option<&str>,
        project: Option<&str>,
        token: Secret,
        token_env: &str,
    ) -> Result<Self, ForgeError> {
        let api_url = match api_url {
            Some(url) => url.to_string(),
            None => api_url_for_repo(kind, repo_url)?,
        };
        let project = match project {
            Some(project) => project.to_string(),
            None => project_from_repo_url(kind, repo_url)?,
        };
        Ok(Self::new(kind, api_url, token, token_env, project))
    }
}

/// The forge project (`owner/repo`, or the GitLab `group/sub/project` path) of a git remote
/// URL: `https://github.com/acme/shop-config.git`, `git@github.com:acme/shop-config.git`,
/// `ssh://git@gitlab.example.com:2222/group/sub/project.git`.
///
/// GitHub and Gitea projects are the last two path segments (so a Gitea served under a sub path
/// such as `https://example.com/git/owner/repo` works); GitLab keeps the whole path.
pub fn project_from_repo_url(kind: ForgeKind, url: &str) -> Result<String, ForgeError> {
    let invalid = |why: &str| {
        ForgeError::Settings(format!(
            "cannot derive the project from repo URL {url:?}: {why}; set `project`"
        ))
    };
    let path = if let Some((_, rest)) = url.split_once("://") {
        // scheme://[user@]host[:port]/path
        match rest.split_once('/') {
            Some((_, path)) => path,
            None => return Err(invalid("it has no path")),
        }
    } else if let Some((host, path)) = url.split_once(':') {
        // scp-like: [user@]host:path
        if host.is_empty() || host.contains('/') {
            return Err(invalid("it is neither scheme://host/path nor host:path"));
        }
        path
    } else {
        return Err(invalid("it is neither scheme://host/path nor host:path"));
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.len() < 2 {
        return Err(invalid("its path has fewer than two segments (owner/repo)"));
    }
    let project = match kind {
        ForgeKind::Gitlab => segments.join("/"),
        ForgeKind::Github | ForgeKind::Gitea => segments[segments.len() - 2..].join("/"),
    };
    Ok(project)
}

/// A client for one forge project.
#[derive(Debug, Clone)]
pub struct Forge {
    settings: ForgeSettings,
    api: http::Api,
}

impl Forge {
    /// Checks the settings and builds the HTTP client (no request is sent).
    pub fn new(settings: ForgeSettings) -> Result<Self, ForgeError> {
        let api = http::Api::new(&settings)?;
        Ok(Self { settings, api })
    }

    pub fn settings(&self) -> &ForgeSettings {
        &self.settings
    }

    /// The pull requests whose head is `head_branch` and base is `base`: every open one and the
    /// recent closed or merged ones (newest first, at most one API page on GitHub and GitLab,
    /// a few pages on Gitea, whose list cannot filter by branch).
    pub async fn find_pull_requests(
        &self,
        head_branch: &str,
        base: &str,
    ) -> Result<Vec<PullRequest>, ForgeError> {
        let mut found = match self.settings.kind {
            ForgeKind::Github => github::find(&self.api, &self.settings, head_branch, base).await?,
            ForgeKind::Gitlab => gitlab::find(&self.api, &self.settings, head_branch, base).await?,
            ForgeKind::Gitea => gitea::find(&self.api, &self.settings, head_branch, base).await?,
        };
        found.sort_by_key(|pr| std::cmp::Reverse(pr.number));
        Ok(found)
    }

    /// Opens a pull request from `head_branch` into `base`, then applies the configured labels,
    /// reviewers, assignees and draft flag the way each API documents. Once the pull request
    /// exists, a failure to apply labels, reviewers or assignees does not fail the call: it is
    /// returned in [`Created::problems`] for the log and status (a retry would open a second
    /// pull request, or fail the same way on every pass).
    pub async fn create(
        &self,
        head_branch: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<Created, ForgeError> {
        let title = one_line(title);
        match self.settings.kind {
            ForgeKind::Github => {
                github::create(&self.api, &self.settings, head_branch, base, &title, body).await
            }
            ForgeKind::Gitlab => {
                gitlab::create(&self.api, &self.settings, head_branch, base, &title, body).await
            }
            ForgeKind::Gitea => {
                gitea::create(&self.api, &self.settings, head_branch, base, &title, body).await
            }
        }
    }

    /// Opens a pull request like [`Forge::create`], or adopts the open one another client
    /// opened for the same branches first. Each forge refuses a second open pull request for a
    /// branch in its own words (GitHub 422 "A pull request already exists for …", GitLab 409
    /// "Another open merge request already exists for this source branch", Gitea 409 "pull
    /// request already exists for these targets"); whatever the words, when the create is
    /// refused (HTTP 400, 409 or 422) and an open pull request for `head_branch` into `base`
    /// is then found, that one is adopted: its title and body are replaced by ours. Otherwise
    /// the create's error is returned.
    pub async fn open(
        &self,
        head_branch: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<Opened, ForgeError> {
        let refused = match self.create(head_branch, base, title, body).await {
            Ok(created) => return Ok(Opened::Created(created)),
            Err(refused @ ForgeError::Rejected { .. }) => refused,
            Err(other) => return Err(other),
        };
        let found = match self.find_pull_requests(head_branch, base).await {
            Ok(found) => found,
            Err(error) => {
                tracing::debug!(%error, "no second look after a refused create");
                return Err(refused);
            }
        };
        match found.into_iter().find(|pr| pr.state == PrState::Open) {
            Some(open) => Ok(Opened::Adopted(self.update(&open, title, body).await?)),
            None => Err(refused),
        }
    }

    /// Replaces the title and body of an open pull request. A draft marker in the current title
    /// (GitLab `Draft:`, Gitea `WIP:`) is kept, so an update does not mark it ready.
    pub async fn update(
        &self,
        pr: &PullRequest,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ForgeError> {
        let title = one_line(title);
        match self.settings.kind {
            ForgeKind::Github => github::update(&self.api, &self.settings, pr, &title, body).await,
            ForgeKind::Gitlab => gitlab::update(&self.api, &self.settings, pr, &title, body).await,
            ForgeKind::Gitea => gitea::update(&self.api, &self.settings, pr, &title, body).await,
        }
    }
}

impl Forge {
    /// Comments `comment` on an open pull request, then closes it unmerged (issue 19: a
    /// rollback on the base branch leaves nothing it may propose). Its body keeps its
    /// fingerprint and gets [`decide::CLOSED_BY_IMAGEBUMP`]: while the rollback rules refuse
    /// its versions nothing proposes them, and once they allow them again (a person changed the
    /// value under `hold`) the closed pull request does not count as a person's "no".
    pub async fn close(&self, pr: &PullRequest, comment: &str) -> Result<PullRequest, ForgeError> {
        let body = if decide::closed_by_imagebump(&pr.body) {
            pr.body.clone()
        } else {
            format!(
                "{}\n\n{}\n",
                pr.body.trim_end(),
                decide::CLOSED_BY_IMAGEBUMP
            )
        };
        let (api, settings) = (&self.api, &self.settings);
        match self.settings.kind {
            ForgeKind::Github => github::close(api, settings, pr, comment, &body).await,
            ForgeKind::Gitlab => gitlab::close(api, settings, pr, comment, &body).await,
            ForgeKind::Gitea => gitea::close(api, settings, pr, comment, &body).await,
        }
    }
}

/// `owner` and `repo` of a GitHub or Gitea project (checked to have two parts in `Api::new`).
fn owner_repo(settings: &ForgeSettings) -> (&str, &str) {
    settings
        .project
        .split_once('/')
        .unwrap_or((&settings.project, ""))
}

/// Titles are one line on every forge: newlines and runs of blanks become one space.
fn one_line(title: &str) -> String {
    title.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Keeps a leading draft marker of `current` in front of `wanted`.
fn keep_draft_prefix(current: &str, wanted: &str, prefixes: &[&str]) -> String {
    for prefix in prefixes {
        let has = current
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix));
        if has && !wanted.starts_with(prefix) {
            return format!("{prefix} {wanted}");
        }
    }
    wanted.to_string()
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn project_from_repo_urls() {
        let check = |kind, url: &str, want: &str| {
            assert_eq!(project_from_repo_url(kind, url).expect(url), want, "{url}");
        };
        check(
            ForgeKind::Github,
            "https://github.com/acme/shop-config.git",
            "acme/shop-config",
        );
        check(
            ForgeKind::Github,
            "https://github.com/acme/shop-config",
            "acme/shop-config",
        );
        check(
            ForgeKind::Github,
            "git@github.com:acme/shop-config.git",
            "acme/shop-config",
        );
        check(
            ForgeKind::Github,
            "ssh://git@github.com/acme/shop-config.git",
            "acme/shop-config",
        );
        check(
            ForgeKind::Gitlab,
            "https://gitlab.com/group/sub/project.git",
            "group/sub/project",
        );
        check(
            ForgeKind::Gitlab,
            "ssh://git@gitlab.example.com:2222/group/sub/project.git",
            "group/sub/project",
        );
        check(
            ForgeKind::Gitlab,
            "git@gitlab.com:group/project.git",
            "group/project",
        );
        check(
            ForgeKind::Gitea,
            "https://example.com/git/owner/repo.git/",
            "owner/repo",
        );
        check(
            ForgeKind::Gitea,
            "http://127.0.0.1:3000/owner/repo",
            "owner/repo",
        );
    }

    #[test]
    fn project_from_bad_repo_urls() {
        for url in [
            "https://github.com/acme",
            "shop-config",
            "https://github.com",
            "/tmp/repo",
        ] {
            let err = project_from_repo_url(ForgeKind::Github, url).expect_err(url);
            assert!(err.to_string().contains("set `project`"), "{err}");
        }
    }

    #[test]
    fn secret_never_prints() {
        let settings = ForgeSettings::new(
            ForgeKind::Github,
            "https://api.github.com",
            Secret::new("ghp_verysecret"),
            "GITHUB_TOKEN",
            "acme/shop",
        );
        let printed = format!("{settings:?} {}", settings.token);
        assert!(!printed.contains("ghp_verysecret"), "{printed}");
        assert!(printed.contains("***"));
    }

    #[test]
    fn titles_are_one_line_and_keep_draft_markers() {
        assert_eq!(one_line(" a\n b \t c "), "a b c");
        assert_eq!(
            keep_draft_prefix("Draft: old", "new", &["Draft:"]),
            "Draft: new"
        );
        assert_eq!(
            keep_draft_prefix("draft: old", "new", &["Draft:"]),
            "Draft: new"
        );
        assert_eq!(keep_draft_prefix("old", "new", &["Draft:"]), "new");
        assert_eq!(
            keep_draft_prefix("WIP: old", "WIP: new", &["WIP:"]),
            "WIP: new"
        );
    }

    #[test]
    fn bad_settings_are_refused_before_any_request() {
        let check = |kind, api_url: &str, token: &str, project: &str, want: &str| {
            let settings =
                ForgeSettings::new(kind, api_url, Secret::new(token), "TOKEN_VAR", project);
            let err = Forge::new(settings).expect_err(want);
            assert!(matches!(err, ForgeError::Settings(_)), "{err:?}");
            assert!(err.to_string().contains(want), "{err}");
        };
        check(
            ForgeKind::Github,
            "api.github.com",
            "t",
            "a/b",
            "is not a URL",
        );
        check(
            ForgeKind::Github,
            "ftp://x",
            "t",
            "a/b",
            "must be an http:// or https:// URL",
        );
        check(
            ForgeKind::Github,
            "https://x",
            "",
            "a/b",
            "token is empty (check TOKEN_VAR)",
        );
        check(
            ForgeKind::Github,
            "https://x",
            "t",
            "a/b/c",
            "must be owner/repo",
        );
        check(
            ForgeKind::Gitea,
            "https://x",
            "t",
            "repo",
            "must be owner/repo",
        );
        check(
            ForgeKind::Gitlab,
            "https://x",
            "t",
            "a//b",
            "must be owner/repo",
        );
        check(
            ForgeKind::Gitlab,
            "https://x",
            "bad\ntoken",
            "a/b",
            "not allowed in an HTTP header",
        );
        let ok = ForgeSettings::new(
            ForgeKind::Gitlab,
            "https://x/api/v4",
            Secret::new("t"),
            "T",
            "a/b/c",
        );
        assert!(Forge::new(ok).is_ok());
    }

    #[test]
    fn api_urls_from_repo_urls() {
        let check = |kind, url: &str, want: &str| {
            assert_eq!(api_url_for_repo(kind, url).expect(url), want, "{url}");
        };
        check(
            ForgeKind::Github,
            "https://github.com/acme/shop.git",
            "https://api.github.com",
        );
        check(
            ForgeKind::Github,
            "git@github.com:acme/shop.git",
            "https://api.github.com",
        );
        check(
            ForgeKind::Github,
            "https://ghe.acme.io/acme/shop.git",
            "https://ghe.acme.io/api/v3",
        );
        check(
            ForgeKind::Gitlab,
            "ssh://git@gitlab.com/g/p.git",
            "https://gitlab.com/api/v4",
        );
        check(
            ForgeKind::Gitlab,
            "ssh://git@gitlab.acme.io:2222/g/s/p.git",
            "https://gitlab.acme.io/api/v4",
        );
        check(
            ForgeKind::Gitea,
            "https://user@codeberg.org/acme/shop.git",
            "https://codeberg.org/api/v1",
        );
        check(
            ForgeKind::Gitea,
            "http://127.0.0.1:3000/acme/shop",
            "http://127.0.0.1:3000/api/v1",
        );
        let err = api_url_for_repo(ForgeKind::Gitea, "/srv/git/shop.git").expect_err("local");
        assert!(err.to_string().contains("set `api_url`"), "{err}");
    }

    #[test]
    fn settings_for_repo_apply_defaults_and_overrides() {
        let token = || Secret::new("t");
        let s = ForgeSettings::for_repo(
            ForgeKind::Gitlab,
            "https://gitlab.com/acme/platform/shop.git",
            None,
            None,
            token(),
            "GITLAB_TOKEN",
        )
        .expect("settings");
        assert_eq!(s.api_url, "https://gitlab.com/api/v4");
        assert_eq!(s.project, "acme/platform/shop");
        assert_eq!(s.token_env, "GITLAB_TOKEN");
        let s = ForgeSettings::for_repo(
            ForgeKind::Github,
            "/local/mirror.git",
            Some("https://api.github.com"),
            Some("acme/shop"),
            token(),
            "T",
        )
        .expect("explicit values need no URL parsing");
        assert_eq!(
            (s.api_url.as_str(), s.project.as_str()),
            ("https://api.github.com", "acme/shop")
        );
    }

    #[test]
    fn kinds_parse_and_default_urls() {
        assert_eq!(ForgeKind::parse("forgejo"), Some(ForgeKind::Gitea));
        assert_eq!(ForgeKind::parse("bitbucket"), None);
        assert_eq!(ForgeKind::Gitea.default_api_url(), None);
        assert_eq!(
            ForgeKind::Gitlab.default_api_url(),
            Some("https://gitlab.com/api/v4")
        );
    }
}
