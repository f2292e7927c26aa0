//! Credentials from a docker `config.json`: `auths`, `credHelpers` and `credsStore`.
//!
//! Invariant: secrets read here only ever leave as [`Credentials`]; no error message carries
//! them. Design choice: helpers are run as `docker-credential-<name> get` with the server URL on
//! stdin, exactly as the docker CLI does, so every existing helper (ecr-login, gcr, pass, …)
//! works unchanged.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;

use base64::Engine;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::Secret;
use crate::reference::{DOCKER_HUB, normalize_registry};

/// Credentials for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// Username and password (basic auth, or basic auth to the token realm).
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token for the token realm (`identitytoken`).
    IdentityToken(Secret),
    /// A bearer token sent to the registry as is (`registrytoken`).
    Bearer(Secret),
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: HashMap<String, String>,
    #[serde(rename = "credsStore", default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The registry host a config key names: `https://index.docker.io/v1/` is `docker.io`,
/// `https://host:5000/v2/` is `host:5000`.
fn key_registry(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    normalize_registry(host)
}

/// The server URL a helper expects for `registry`.
fn helper_server_url(registry: &str, keys: &[&String]) -> String {
    if let Some(key) = keys.first() {
        return (*key).clone();
    }
    if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// The credentials `path` holds for `registry` (a canonical registry name), if any.
pub(crate) async fn credentials(
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, String> {
    credentials_in(path, registry, None).await
}

/// [`credentials`], looking helpers up in `helper_path` (a `PATH` value) when given.
async fn credentials_in(
    path: &Path,
    registry: &str,
    helper_path: Option<&OsString>,
) -> Result<Option<Credentials>, String> {
    let text = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read docker config {}: {e}", path.display()))?;
    let config: ConfigFile = serde_json::from_slice(&text)
        .map_err(|e| format!("docker config {} is not valid JSON: {e}", path.display()))?;

    let helper_keys: Vec<&String> = config
        .cred_helpers
        .keys()
        .filter(|key| key_registry(key) == registry)
        .collect();
    if let Some(key) = helper_keys.first() {
        let helper = &config.cred_helpers[*key];
        return run_helper(
            helper,
            &helper_server_url(registry, &helper_keys),
            helper_path,
        )
        .await;
    }

    let mut auth_keys: Vec<&String> = config
        .auths
        .keys()
        .filter(|key| key_registry(key) == registry)
        .collect();
    // Deterministic choice when several spellings name one registry.
    auth_keys.sort();
    for key in &auth_keys {
        if let Some(credentials) = entry_credentials(&config.auths[*key], path)? {
            return Ok(Some(credentials));
        }
    }
    if let Some(store) = &config.creds_store {
        return run_helper(store, &helper_server_url(registry, &auth_keys), helper_path).await;
    }
    Ok(None)
}

fn entry_credentials(entry: &AuthEntry, path: &Path) -> Result<Option<Credentials>, String> {
    if let Some(token) = entry.registrytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::Bearer(Secret::new(token))));
    }
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::IdentityToken(Secret::new(token))));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials::Basic {
            username: username.clone(),
            password: Secret::new(password.clone()),
        }));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| {
                format!(
                    "docker config {}: an `auth` value is not base64",
                    path.display()
                )
            })?;
        let decoded = String::from_utf8(decoded).map_err(|_| {
            format!(
                "docker config {}: an `auth` value is not UTF-8",
                path.display()
            )
        })?;
        let Some((username, password)) = decoded.split_once(':') else {
            return Err(format!(
                "docker config {}: an `auth` value is not base64(username:password)",
                path.display()
            ));
        };
        return Ok(Some(Credentials::Basic {
            username: username.to_string(),
            password: Secret::new(password),
        }));
    }
    Ok(None)
}

/// Run `docker-credential-<helper> get` with `server_url` on stdin.
async fn run_helper(
    helper: &str,
    server_url: &str,
    helper_path: Option<&OsString>,
) -> Result<Option<Credentials>, String> {
    let program = format!("docker-credential-{helper}");
    let mut command = tokio::process::Command::new(&program);
    if let Some(search) = helper_path {
        command.env("PATH", search);
    }
    let mut child = command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run credential helper {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server_url.as_bytes())
            .await
            .map_err(|e| format!("cannot write to credential helper {program}: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("credential helper {program} failed: {e}"))?;
    if !output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        // Helpers answer "credentials not found in native keychain" when they have nothing.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(format!(
            "credential helper {program} exited with {} for {server_url}",
            output.status
        ));
    }
    let parsed: HelperOutput = serde_json::from_slice(&output.stdout)
        .map_err(|_| format!("credential helper {program} printed invalid JSON"))?;
    if parsed.username == "<token>" {
        Ok(Some(Credentials::IdentityToken(Secret::new(parsed.secret))))
    } else {
        Ok(Some(Credentials::Basic {
            username: parsed.username,
            password: Secret::new(parsed.secret),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn creds(json: &str, registry: &str) -> Result<Option<Credentials>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        credentials(&path, registry).await
    }

    fn basic(user: &str, pass: &str) -> Option<Credentials> {
        Some(Credentials::Basic {
            username: user.to_string(),
            password: Secret::new(pass),
        })
    }

    #[tokio::test]
    async fn auths_entries() {
        // base64("alice:s3cr:et")
        let json = r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"YWxpY2U6czNjcjpldA=="},
            "ghcr.io":{"username":"bob","password":"pw"},
            "http://localhost:5000/v2/":{"identitytoken":"refresh"},
            "quay.io":{"registrytoken":"bearer"},
            "empty.io":{}
        }}"#;
        assert_eq!(
            creds(json, "docker.io").await.unwrap(),
            basic("alice", "s3cr:et")
        );
        assert_eq!(creds(json, "ghcr.io").await.unwrap(), basic("bob", "pw"));
        assert_eq!(
            creds(json, "localhost:5000").await.unwrap(),
            Some(Credentials::IdentityToken(Secret::new("refresh")))
        );
        assert_eq!(
            creds(json, "quay.io").await.unwrap(),
            Some(Credentials::Bearer(Secret::new("bearer")))
        );
        assert_eq!(creds(json, "empty.io").await.unwrap(), None);
        assert_eq!(creds(json, "other.io").await.unwrap(), None);
    }

    #[tokio::test]
    async fn bad_files_give_clear_errors_without_secrets() {
        let err = creds(r#"{"auths":{"ghcr.io":{"auth":"!!notbase64"}}}"#, "ghcr.io")
            .await
            .unwrap_err();
        assert!(err.contains("not base64"), "{err}");
        let err = creds("{", "ghcr.io").await.unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        let err = credentials(Path::new("/nonexistent/config.json"), "ghcr.io")
            .await
            .unwrap_err();
        assert!(err.contains("/nonexistent/config.json"), "{err}");
    }

    #[tokio::test]
    async fn credential_helpers_run_with_server_url_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-imagebumptest");
        // The helper echoes the server URL it read back as the username.
        std::fs::write(
            &helper,
            "#!/bin/sh\nread url\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"%s\",\"Secret\":\"helper-secret\"}' \"$url\" \"$url\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let json = r#"{"credHelpers":{"ghcr.io":"imagebumptest"},"credsStore":"imagebumptest"}"#;
        let config = dir.path().join("config.json");
        std::fs::write(&config, json).unwrap();
        let search = std::ffi::OsString::from(dir.path());
        let run = |registry: &'static str| credentials_in(&config, registry, Some(&search));
        assert_eq!(
            run("ghcr.io").await.unwrap(),
            basic("ghcr.io", "helper-secret")
        );
        assert_eq!(
            run("docker.io").await.unwrap(),
            basic("https://index.docker.io/v1/", "helper-secret")
        );
        let err = credentials_in(
            &config,
            "ghcr.io",
            Some(&std::ffi::OsString::from("/nonexistent")),
        )
        .await
        .unwrap_err();
        assert!(err.contains("docker-credential-imagebumptest"), "{err}");
    }
}
