//! The token session: authenticated requests. The auth scheme a registry uses is learnt from
//! its first challenge and then applied up front; bearer tokens come from the per-scope token
//! cache or the realm; a 401 either teaches the scheme or refreshes a rejected token once.
//!
//! Invariant: the scheme of a registry is learnt by one request while concurrent ones wait
//! (unless that discovery already failed: nobody waits for a registry that may be down), a
//! token the registry rejected is never sent again, and one request answers at most three
//! challenges. Credentials are read once per registry and only ever sent in headers marked
//! sensitive.

use std::sync::atomic::Ordering;
use std::time::Instant;

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::auth::{CachedToken, Challenge, Scheme, parse_challenge, parse_token_response};
use super::client::{Client, Kind, RegistryState};
use super::docker_config::{self, Credentials};
use super::transport::{Call, Fetched};
use super::{RegistryAuth, RegistryError, Secret};

/// The auth a request carried, to decide what a 401 means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Nothing,
    Basic,
    StaticToken,
    Token(Secret),
}

/// Where a bearer token comes from and what it is for.
struct TokenScope<'a> {
    realm: &'a str,
    service: Option<&'a str>,
    scope: &'a str,
}

/// The auth state of one request across the challenges it answers.
struct Session {
    credentials: Option<Credentials>,
    /// The scope asked of the token realm (the registry's challenge may name another).
    scope: String,
    /// A token was already refreshed once after a rejection.
    refreshed: bool,
    /// The token the registry just rejected: never reused.
    stale: Option<Secret>,
    challenges: u32,
}

impl Session {
    fn new(credentials: Option<Credentials>, repository: &str) -> Self {
        Session {
            credentials,
            scope: format!("repository:{repository}:pull"),
            refreshed: false,
            stale: None,
            challenges: 0,
        }
    }

    /// Answers a 401 carrying `challenge` to a request that sent `sent`: `Ok` to send again
    /// (with a new scope or a fresh token), `Err` with why the registry refuses for good.
    fn answer(&mut self, challenge: Challenge, sent: Sent) -> Result<(), &'static str> {
        self.challenges += 1;
        if self.challenges > 3 {
            return Err("the registry keeps asking for credentials");
        }
        match (challenge.scheme, sent) {
            (Scheme::Bearer { .. }, Sent::Token(token)) => {
                if self.refreshed {
                    return Err("the registry rejected a fresh token");
                }
                self.refreshed = true;
                self.stale = Some(token);
                if let Some(asked) = challenge.scope {
                    self.scope = asked;
                }
                Ok(())
            }
            (Scheme::Bearer { .. }, Sent::Nothing | Sent::Basic) => {
                if let Some(asked) = challenge.scope {
                    self.scope = asked;
                }
                Ok(())
            }
            (Scheme::Basic, Sent::Nothing)
                if matches!(self.credentials, Some(Credentials::Basic { .. })) =>
            {
                Ok(())
            }
            (Scheme::Basic, Sent::Nothing) => {
                Err("the registry asks for a username and password and none is configured")
            }
            (Scheme::Basic, Sent::Basic) => Err("the registry rejected the username or password"),
            (_, Sent::StaticToken) => Err("the registry rejected the configured token"),
            (Scheme::Anonymous, _) | (Scheme::Basic, Sent::Token(_)) => {
                Err("unexpected authentication challenge")
            }
        }
    }
}

/// The scheme as known now, and the lock on it when this request is the one to learn it.
type Discovery<'r> = (
    Option<Scheme>,
    Option<tokio::sync::MutexGuard<'r, Option<Scheme>>>,
);

impl Client {
    /// An authenticated request: the scheme learnt from the registry's challenge is applied up
    /// front; a 401 learns it (first request) or refreshes a rejected token once.
    pub(super) async fn request(
        &self,
        reg: &RegistryState,
        repository: &str,
        method: Method,
        url: &Url,
        accept: &str,
        kind: Kind,
    ) -> Result<Fetched, RegistryError> {
        let mut session = Session::new(self.credentials(reg).await?, repository);
        let unauthorized = |detail: &str| RegistryError::Unauthorized {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail: detail.to_string(),
        };
        loop {
            let (known, discovery) = known_scheme(reg).await;
            let (headers, sent) = self
                .authorize(reg, repository, &session, known.as_ref(), accept)
                .await?;
            let call = Call {
                method: method.clone(),
                url,
                headers,
                form: None,
                kind,
            };
            let fetched = match self.execute(reg, repository, call).await {
                Ok(fetched) => fetched,
                Err(error) => {
                    if discovery.is_some() {
                        reg.discovery_failed.store(true, Ordering::Relaxed);
                    }
                    return Err(error);
                }
            };
            if fetched.status != StatusCode::UNAUTHORIZED {
                // No challenge: the registry takes what we sent (nothing, or a static token).
                learn_anonymous(reg, known.is_none(), discovery).await;
                if fetched.status == StatusCode::FORBIDDEN {
                    return Err(unauthorized(
                        "access denied (HTTP 403): the credentials lack pull access",
                    ));
                }
                return Ok(fetched);
            }
            let challenge = fetched
                .headers
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            let Some(challenge) = challenge else {
                return Err(unauthorized(
                    "the registry answered 401 without a usable WWW-Authenticate challenge",
                ));
            };
            match discovery {
                Some(mut guard) => *guard = Some(challenge.scheme.clone()),
                None => *reg.scheme.lock().await = Some(challenge.scheme.clone()),
            }
            session.answer(challenge, sent).map_err(unauthorized)?;
        }
    }

    /// The headers of the next attempt (`Accept` and the auth the known scheme calls for), and
    /// what auth they carry.
    async fn authorize(
        &self,
        reg: &RegistryState,
        repository: &str,
        session: &Session,
        known: Option<&Scheme>,
        accept: &str,
    ) -> Result<(HeaderMap, Sent), RegistryError> {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(accept) {
            headers.insert(ACCEPT, value);
        }
        let sent = match (known, &session.credentials) {
            (_, Some(Credentials::Bearer(token))) => {
                headers.insert(AUTHORIZATION, bearer_header(reg, token)?);
                Sent::StaticToken
            }
            (Some(Scheme::Bearer { realm, service }), _) => {
                let scope = TokenScope {
                    realm,
                    service: service.as_deref(),
                    scope: &session.scope,
                };
                let token = self
                    .bearer_token(
                        reg,
                        repository,
                        &scope,
                        session.credentials.as_ref(),
                        session.stale.as_ref(),
                    )
                    .await?;
                headers.insert(AUTHORIZATION, bearer_header(reg, &token)?);
                Sent::Token(token)
            }
            (Some(Scheme::Basic), Some(Credentials::Basic { username, password })) => {
                headers.insert(AUTHORIZATION, basic_header(reg, username, password)?);
                Sent::Basic
            }
            _ => Sent::Nothing,
        };
        Ok((headers, sent))
    }

    async fn credentials(&self, reg: &RegistryState) -> Result<Option<Credentials>, RegistryError> {
        reg.credentials
            .get_or_try_init(|| async {
                match &reg.settings.auth {
                    RegistryAuth::Anonymous => Ok(None),
                    RegistryAuth::Basic { username, password } => Ok(Some(Credentials::Basic {
                        username: username.clone(),
                        password: password.clone(),
                    })),
                    RegistryAuth::Token(token) => Ok(Some(Credentials::Bearer(token.clone()))),
                    RegistryAuth::DockerConfig(path) => docker_config::credentials(path, &reg.name)
                        .await
                        .map_err(|detail| RegistryError::Credentials {
                            registry: reg.name.clone(),
                            detail,
                        }),
                }
            })
            .await
            .cloned()
    }

    /// A bearer token for `scope`, from the cache or the realm. `stale` is a token the registry
    /// just rejected: it is not reused.
    async fn bearer_token(
        &self,
        reg: &RegistryState,
        repository: &str,
        scope: &TokenScope<'_>,
        credentials: Option<&Credentials>,
        stale: Option<&Secret>,
    ) -> Result<Secret, RegistryError> {
        let key = format!(
            "{}|{}|{}",
            scope.realm,
            scope.service.unwrap_or(""),
            scope.scope
        );
        let slot = reg.tokens.slot(&key);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref()
            && token.is_fresh(Instant::now())
            && Some(&token.token) != stale
        {
            return Ok(token.token.clone());
        }
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            registry: reg.name.clone(),
            repository: repository.to_string(),
            detail,
        };
        let realm = scope.realm;
        let mut url = Url::parse(realm)
            .map_err(|_| unauthorized(format!("the token realm {realm:?} is not a URL")))?;
        let fetched_at = Instant::now();
        let call = token_request(reg, &mut url, scope, credentials)?;
        let fetched = self.execute(reg, repository, call).await?;
        match fetched.status {
            status if status.is_success() => {
                let (token, lifetime) = parse_token_response(&fetched.body).map_err(|detail| {
                    RegistryError::BadResponse {
                        registry: reg.name.clone(),
                        repository: repository.to_string(),
                        detail,
                    }
                })?;
                *cached = Some(CachedToken::new(token.clone(), lifetime, fetched_at));
                Ok(token)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(unauthorized(if credentials.is_some() {
                    format!(
                        "the token service rejected the credentials (HTTP {})",
                        fetched.status.as_u16()
                    )
                } else {
                    format!(
                        "the token service refused anonymous access (HTTP {}); configure credentials",
                        fetched.status.as_u16()
                    )
                }))
            }
            status => Err(RegistryError::BadResponse {
                registry: reg.name.clone(),
                repository: repository.to_string(),
                detail: format!("the token service answered HTTP {status}"),
            }),
        }
    }
}

/// The scheme of `reg` as known now. When it is unknown and no discovery has failed yet, this
/// request learns it: the lock is kept (returned) so concurrent requests wait for the answer.
async fn known_scheme(reg: &RegistryState) -> Discovery<'_> {
    let guard = reg.scheme.lock().await;
    let known = guard.clone();
    if known.is_none() && !reg.discovery_failed.load(Ordering::Relaxed) {
        (known, Some(guard))
    } else {
        (known, None)
    }
}

/// A request without a challenge succeeded: the registry takes what was sent. When the
/// scheme was unknown, it is anonymous (unless another request learnt it meanwhile).
async fn learn_anonymous(
    reg: &RegistryState,
    unknown: bool,
    discovery: Option<tokio::sync::MutexGuard<'_, Option<Scheme>>>,
) {
    match discovery {
        Some(mut guard) => *guard = Some(Scheme::Anonymous),
        None if unknown => {
            let mut guard = reg.scheme.lock().await;
            if guard.is_none() {
                *guard = Some(Scheme::Anonymous);
            }
        }
        None => {}
    }
}

/// How to ask the token realm `url` for `scope`: a refresh-token `POST` form for an identity
/// token, else a `GET` with `service` and `scope` in the query and basic auth if configured.
fn token_request<'a>(
    reg: &RegistryState,
    url: &'a mut Url,
    scope: &TokenScope<'a>,
    credentials: Option<&'a Credentials>,
) -> Result<Call<'a>, RegistryError> {
    let mut headers = HeaderMap::new();
    match credentials {
        Some(Credentials::IdentityToken(refresh)) => {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose()),
                ("client_id", "imagebump"),
                ("scope", scope.scope),
            ];
            if let Some(service) = scope.service {
                form.push(("service", service));
            }
            Ok(Call {
                method: Method::POST,
                url,
                headers,
                form: Some(form),
                kind: Kind::Token,
            })
        }
        other => {
            {
                let mut query = url.query_pairs_mut();
                if let Some(service) = scope.service {
                    query.append_pair("service", service);
                }
                query.append_pair("scope", scope.scope);
            }
            if let Some(Credentials::Basic { username, password }) = other {
                headers.insert(AUTHORIZATION, basic_header(reg, username, password)?);
            }
            Ok(Call {
                method: Method::GET,
                url,
                headers,
                form: None,
                kind: Kind::Token,
            })
        }
    }
}

fn basic_header(
    reg: &RegistryState,
    username: &str,
    password: &Secret,
) -> Result<HeaderValue, RegistryError> {
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{username}:{}", password.expose()));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
        RegistryError::Credentials {
            registry: reg.name.clone(),
            detail: "the username cannot be sent in an HTTP header".to_string(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn bearer_header(reg: &RegistryState, token: &Secret) -> Result<HeaderValue, RegistryError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        RegistryError::Credentials {
            registry: reg.name.clone(),
            detail: "the token contains characters not allowed in an HTTP header".to_string(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}
