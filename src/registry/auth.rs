//! Registry authentication: `WWW-Authenticate` challenges, token responses, the token cache.
//!
//! Invariant: a token is fetched at most once per (realm, service, scope) until it expires —
//! concurrent callers needing the same scope wait for one fetch instead of each sending one.
//! Design choice: the scheme a registry uses (anonymous, basic, bearer with its realm) is learnt
//! from the first challenge and remembered, so later requests carry the right credentials up
//! front and never pay for another 401.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Secret;

/// Validity assumed when a token response has no `expires_in` (the token spec says 60 s).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// How a registry wants to be authenticated, learnt from its challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// It answered without asking for credentials.
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: Scheme,
    /// The scope the registry asked for, if it said.
    pub scope: Option<String>,
}

/// Parse a `WWW-Authenticate` value such as
/// `Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"`.
/// When several challenges are offered, Bearer wins over Basic.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut best: Option<Challenge> = None;
    let mut rest = header.trim();
    while !rest.is_empty() {
        let (scheme, after) = match rest.find(|c: char| c.is_whitespace() || c == ',') {
            Some(i) => (&rest[..i], rest[i..].trim_start()),
            None => (rest, ""),
        };
        let (params, remaining) = parse_params(after);
        rest = remaining.trim_start_matches([',', ' ', '\t']);
        let challenge = if scheme.eq_ignore_ascii_case("bearer") {
            params.get("realm").map(|realm| Challenge {
                scheme: Scheme::Bearer {
                    realm: realm.clone(),
                    service: params.get("service").cloned(),
                },
                scope: params.get("scope").cloned(),
            })
        } else if scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge {
                scheme: Scheme::Basic,
                scope: None,
            })
        } else {
            None
        };
        match (&best, challenge) {
            (_, None) => {}
            (
                Some(Challenge {
                    scheme: Scheme::Bearer { .. },
                    ..
                }),
                _,
            ) => {}
            (_, Some(found)) => best = Some(found),
        }
        if scheme.is_empty() {
            break;
        }
    }
    best
}

/// Parse `key=value` / `key="quoted"` pairs until the next challenge's scheme; returns the
/// params and the unparsed rest.
fn parse_params(mut input: &str) -> (HashMap<String, String>, &str) {
    let mut params = HashMap::new();
    loop {
        input = input.trim_start_matches([',', ' ', '\t']);
        let Some(eq) = input.find('=') else {
            return (params, input);
        };
        let key = &input[..eq];
        if key.is_empty() || key.contains([' ', ',', '\t']) {
            // A new scheme starts here.
            return (params, input);
        }
        let after = &input[eq + 1..];
        let (value, rest) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    other => value.push(other),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key.to_ascii_lowercase(), value);
        input = rest;
    }
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The token and its lifetime from a token endpoint's JSON answer.
pub(crate) fn parse_token_response(body: &[u8]) -> Result<(Secret, Duration), String> {
    let response: TokenResponse = serde_json::from_slice(body)
        .map_err(|e| format!("the token service answered invalid JSON ({e})"))?;
    let token = response
        .token
        .filter(|t| !t.is_empty())
        .or(response.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| "the token service answered without a token".to_string())?;
    let lifetime = response
        .expires_in
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME);
    Ok((Secret::new(token), lifetime))
}

/// How long before its expiry a token stops being used: a tenth of its life, at most 30 s.
fn slack(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(30))
}

#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub token: Secret,
    valid_until: Instant,
}

impl CachedToken {
    pub(crate) fn new(token: Secret, lifetime: Duration, fetched_at: Instant) -> Self {
        CachedToken {
            token,
            valid_until: fetched_at + lifetime.saturating_sub(slack(lifetime)),
        }
    }

    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        now < self.valid_until
    }
}

/// One slot per (realm, service, scope); callers lock the slot while fetching, so a scope is
/// fetched once even under concurrency.
pub(crate) type TokenSlot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<String, TokenSlot>>,
}

impl TokenCache {
    pub(crate) fn slot(&self, key: &str) -> TokenSlot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(key.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Option<Challenge> {
        Some(Challenge {
            scheme: Scheme::Bearer {
                realm: realm.to_string(),
                service: service.map(str::to_string),
            },
            scope: scope.map(str::to_string),
        })
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/nginx:pull")
            )
        );
        assert_eq!(
            parse_challenge(r#"bearer realm="https://r/t?x=1,2", service=svc"#),
            bearer("https://r/t?x=1,2", Some("svc"), None)
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge {
                scheme: Scheme::Basic,
                scope: None
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x", Bearer realm="https://t",service="s""#),
            bearer("https://t", Some("s"), None)
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm="a\"b""#),
            bearer("a\"b", None, None)
        );
        assert_eq!(parse_challenge("Bearer service=\"no-realm\""), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn token_responses() {
        let (token, life) = parse_token_response(br#"{"token":"t1","expires_in":300}"#).unwrap();
        assert_eq!((token.expose(), life), ("t1", Duration::from_secs(300)));
        let (token, life) = parse_token_response(br#"{"access_token":"t2"}"#).unwrap();
        assert_eq!((token.expose(), life), ("t2", Duration::from_secs(60)));
        assert!(parse_token_response(br#"{"token":""}"#).is_err());
        assert!(parse_token_response(br#"{"tok"#).is_err());
    }

    #[test]
    fn tokens_expire_with_slack() {
        let now = Instant::now();
        let token = CachedToken::new(Secret::new("t"), Duration::from_secs(60), now);
        assert!(token.is_fresh(now + Duration::from_secs(53)));
        assert!(!token.is_fresh(now + Duration::from_secs(54)));
    }
}
