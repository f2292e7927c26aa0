//! The token server of `auth: token` registries: ES256 JWTs signed with an `openssl` key.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::*;

/// The `service` of token-mode registries (the JWT audience).
pub const TOKEN_SERVICE: &str = "imagebump-test-registry";
pub(super) const TOKEN_ISSUER: &str = "imagebump-test-issuer";

/// Signs registry JWTs (ES256) with a key and self-signed certificate made by `openssl`.
pub struct TokenSigner {
    key: aws_lc_rs::signature::EcdsaKeyPair,
    cert_der: Vec<u8>,
    pub cert_pem: PathBuf,
}

impl TokenSigner {
    /// Generate a P-256 key and a self-signed certificate in `dir`.
    pub fn generate(dir: &Path) -> Arc<TokenSigner> {
        let key_pem = dir.join("token-key.pem");
        let cert_pem = dir.join("token-cert.pem");
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:prime256v1")
            .args(["-nodes", "-days", "2", "-subj", "/CN=imagebump-test-token"])
            .arg("-keyout")
            .arg(&key_pem)
            .arg("-out")
            .arg(&cert_pem));
        let key_der = run(Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&key_pem))
        .stdout;
        let cert_der = run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert_pem))
        .stdout;
        let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key_der,
        )
        .expect("parse the openssl P-256 key");
        Arc::new(TokenSigner {
            key,
            cert_der,
            cert_pem,
        })
    }

    /// A JWT granting `access` (`(type, name, actions)`) to `subject` for `lifetime`.
    pub fn sign(
        &self,
        subject: &str,
        access: &[(String, String, Vec<String>)],
        lifetime: Duration,
    ) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let header = serde_json::json!({
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [STANDARD.encode(&self.cert_der)],
        });
        let access: Vec<serde_json::Value> = access
            .iter()
            .map(|(kind, name, actions)| {
                serde_json::json!({"type": kind, "name": name, "actions": actions})
            })
            .collect();
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER,
            "sub": subject,
            "aud": TOKEN_SERVICE,
            "exp": now + lifetime.as_secs() as i64,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("{}", rand::random::<u64>()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json")),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"))
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = self
            .key
            .sign(&rng, signing_input.as_bytes())
            .expect("ES256 signature");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// A push+pull token for `repository`.
    pub fn push_token(&self, repository: &str) -> String {
        self.sign(
            "pusher",
            &[(
                "repository".to_string(),
                repository.to_string(),
                vec!["pull".to_string(), "push".to_string()],
            )],
            Duration::from_secs(300),
        )
    }
}

/// The realm of a token-mode registry: an axum server on a free port that issues JWTs.
pub struct TokenServer {
    pub signer: Arc<TokenSigner>,
    pub port: u16,
    /// Token requests answered (any outcome).
    pub requests: Arc<AtomicUsize>,
    /// `expires_in` of issued tokens, in seconds.
    pub lifetime_secs: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct TokenState {
    signer: Arc<TokenSigner>,
    username: String,
    password: String,
    anonymous_pull: bool,
    requests: Arc<AtomicUsize>,
    lifetime_secs: Arc<AtomicUsize>,
}

impl TokenServer {
    pub async fn start(
        signer: Arc<TokenSigner>,
        username: String,
        password: String,
        anonymous_pull: bool,
    ) -> TokenServer {
        let requests = Arc::new(AtomicUsize::new(0));
        let lifetime_secs = Arc::new(AtomicUsize::new(300));
        let state = TokenState {
            signer: signer.clone(),
            username,
            password,
            anonymous_pull,
            requests: requests.clone(),
            lifetime_secs: lifetime_secs.clone(),
        };
        let app = axum::Router::new()
            .route(
                "/token",
                axum::routing::get(issue_token).post(issue_token_for_refresh_token),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind token server");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenServer {
            signer,
            port,
            requests,
            lifetime_secs,
            task,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

/// The refresh token (docker `identitytoken`) the token server accepts for its user.
pub fn identity_token(password: &str) -> String {
    format!("refresh-{password}")
}

/// The OAuth2 form: `grant_type=refresh_token`, `refresh_token`, `service`, `scope`.
async fn issue_token_for_refresh_token(
    State(state): State<TokenState>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if field("grant_type") != "refresh_token"
        || field("refresh_token") != identity_token(&state.password)
    {
        return (StatusCode::UNAUTHORIZED, "bad refresh token").into_response();
    }
    let scopes: Vec<(String, String)> =
        form.iter().filter(|(k, _)| k == "scope").cloned().collect();
    let user = state.username.clone();
    token_response(&state, Some(user), &scopes)
}

async fn issue_token(
    State(state): State<TokenState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let user = match headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
    {
        Some(pair) if pair == format!("{}:{}", state.username, state.password) => {
            Some(state.username.clone())
        }
        Some(_) => return (StatusCode::UNAUTHORIZED, "bad credentials").into_response(),
        None if state.anonymous_pull => None,
        None => return (StatusCode::UNAUTHORIZED, "credentials required").into_response(),
    };
    token_response(&state, user, &query)
}

fn token_response(
    state: &TokenState,
    user: Option<String>,
    query: &[(String, String)],
) -> Response {
    let mut access = Vec::new();
    for (key, value) in query {
        if key != "scope" {
            continue;
        }
        for scope in value.split(' ') {
            let Some((kind, rest)) = scope.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            let granted: Vec<String> = actions
                .split(',')
                .filter(|a| user.is_some() || *a == "pull")
                .map(str::to_string)
                .collect();
            access.push((kind.to_string(), name.to_string(), granted));
        }
    }
    let lifetime = state.lifetime_secs.load(Ordering::SeqCst) as u64;
    let token = state.signer.sign(
        user.as_deref().unwrap_or(""),
        &access,
        Duration::from_secs(lifetime),
    );
    axum::Json(serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": lifetime,
    }))
    .into_response()
}
