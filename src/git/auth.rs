//! Credentials and SSH host key checks, as libgit2 remote callbacks.
//!
//! libgit2 calls the credentials callback again every time the remote refuses what it got, so
//! the callback answers once per operation and then fails with "authentication failed". A
//! callback's own error message does not survive libgit2 (it sets its own), so the reason is
//! kept in [`CallbackFailure`] and the caller turns it into the [`GitError`].
//!
//! Invariant: a credential is offered at most once per operation, and an unknown or changed SSH
//! host key is refused unless explicitly allowed.

use std::cell::{Cell, RefCell};

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};
use sha2::Digest as _;

use super::known_hosts::{self, Verdict};
use super::{Credential, GitError, GitSettings, redact_url};

/// Why a callback refused: kept outside libgit2, which replaces callback error messages.
#[derive(Debug, Clone)]
pub(crate) enum CallbackFailure {
    Auth(String),
    HostKey(String),
}

/// Per-operation state shared by the callbacks of one fetch or push.
#[derive(Default)]
pub(crate) struct CallbackState {
    failure: RefCell<Option<CallbackFailure>>,
    credential_calls: Cell<u32>,
}

impl CallbackState {
    fn fail(&self, failure: CallbackFailure) -> git2::Error {
        let message = match &failure {
            CallbackFailure::Auth(m) | CallbackFailure::HostKey(m) => m.clone(),
        };
        *self.failure.borrow_mut() = Some(failure);
        git2::Error::from_str(&message)
    }

    /// Turns a libgit2 error of an operation on `url` into a [`GitError`], preferring the
    /// reason a callback recorded.
    pub(crate) fn error(
        &self,
        settings: &GitSettings,
        url: &str,
        operation: &'static str,
        err: &git2::Error,
    ) -> GitError {
        let shown = redact_url(url);
        match self.failure.borrow().clone() {
            Some(CallbackFailure::Auth(reason)) => GitError::Auth { url: shown, reason },
            Some(CallbackFailure::HostKey(reason)) => GitError::HostKey { url: shown, reason },
            None if err.class() == git2::ErrorClass::Http && err.message().contains("401") => {
                GitError::Auth {
                    url: shown,
                    reason: "the remote refused the credentials (or the repository does not \
                             exist: many forges answer both the same way)"
                        .into(),
                }
            }
            None if err.class() == git2::ErrorClass::Http && err.message().contains("404") => {
                GitError::NotFound { url: shown }
            }
            None => GitError::Remote {
                url: shown,
                operation,
                reason: scrub(settings, url, err.message()),
            },
        }
    }
}

/// Removes every configured secret and the raw URL (which may carry userinfo) from `text`.
pub(crate) fn scrub(settings: &GitSettings, url: &str, text: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    for rule in &settings.credentials {
        let secrets = match &rule.credential {
            Credential::UserPass { password, .. } => vec![password],
            Credential::SshKey {
                passphrase: Some(p),
                ..
            } => vec![p],
            _ => vec![],
        };
        for secret in secrets {
            if !secret.expose().is_empty() {
                out = out.replace(secret.expose(), "***");
            }
        }
    }
    out
}

/// The callbacks for one operation on `url`: credentials from the matching rule, the SSH host
/// key checked against its known_hosts file, TLS left to libgit2's system trust store.
pub(crate) fn callbacks<'a>(
    settings: &'a GitSettings,
    url: &'a str,
    state: &'a CallbackState,
) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |_, username_from_url, allowed| {
        credentials(settings, url, state, username_from_url, allowed)
    });
    callbacks.certificate_check(move |cert, host| {
        let Some(hostkey) = cert.as_hostkey() else {
            // X.509: libgit2 already verified the chain against the system trust store.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(blob) = hostkey.hostkey() else {
            return Err(state.fail(CallbackFailure::HostKey(format!(
                "the SSH server at {host} sent no host key"
            ))));
        };
        match check_host_key(settings, url, host, blob) {
            Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
            Err(reason) => Err(state.fail(CallbackFailure::HostKey(reason))),
        }
    });
    callbacks
}

fn credentials(
    settings: &GitSettings,
    url: &str,
    state: &CallbackState,
    username_from_url: Option<&str>,
    allowed: CredentialType,
) -> Result<Cred, git2::Error> {
    let shown = redact_url(url);
    let rule = settings.credential_for(url);
    let credential = rule.map(|r| &r.credential).unwrap_or(&Credential::None);
    // SSH first asks only for a user name when the URL has none; that is not an attempt.
    if allowed.contains(CredentialType::USERNAME) {
        return Cred::username(username_from_url.unwrap_or("git"));
    }
    let calls = state.credential_calls.get() + 1;
    state.credential_calls.set(calls);
    if calls > 1 {
        return Err(state.fail(CallbackFailure::Auth(format!(
            "the remote refused the credentials of the rule for `{}`; check the username, \
             password/token, or SSH key and its passphrase configured for it (or the URL: \
             many forges answer a repository that does not exist the same way)",
            rule.map(|r| r.url_prefix.as_str()).unwrap_or(&shown)
        ))));
    }
    match credential {
        Credential::UserPass { username, password }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
        {
            Cred::userpass_plaintext(username, password.expose())
        }
        Credential::SshKey {
            key_file,
            passphrase,
            ..
        } if allowed.contains(CredentialType::SSH_KEY) => {
            if let Err(e) = std::fs::metadata(key_file) {
                return Err(state.fail(CallbackFailure::Auth(format!(
                    "cannot read SSH key file {}: {e}",
                    key_file.display()
                ))));
            }
            let public = key_file.with_extension("pub");
            let public = public.is_file().then_some(public.as_path());
            Cred::ssh_key(
                username_from_url.unwrap_or("git"),
                public,
                key_file,
                passphrase.as_ref().map(|p| p.expose()),
            )
        }
        // Forges answer a missing repository like a private one (401), so both are named.
        Credential::None => Err(state.fail(CallbackFailure::Auth(format!(
            "repository {shown} was not found or needs credentials: the server asks for \
             credentials and no `git.credentials` entry matches {shown}; check the URL, and \
             add a credential for it if the repository is private"
        )))),
        other => {
            let configured = match other {
                Credential::UserPass { .. } => "a username/password",
                Credential::SshKey { .. } => "an SSH key",
                Credential::None => "no credential",
            };
            Err(state.fail(CallbackFailure::Auth(format!(
                "the credential configured for {shown} is {configured}, which this remote \
                 does not accept"
            ))))
        }
    }
}

/// Checks an SSH host key against the known_hosts file of the rule for `url`.
fn check_host_key(
    settings: &GitSettings,
    url: &str,
    host: &str,
    blob: &[u8],
) -> Result<(), String> {
    let port = ssh_port(url);
    let name = known_hosts::host_name_form(host, port);
    let fingerprint = format!(
        "SHA256:{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            sha2::Sha256::digest(blob)
        )
    );
    let known_hosts_file = match settings.credential_for(url).map(|r| &r.credential) {
        Some(Credential::SshKey {
            known_hosts_file, ..
        }) => known_hosts_file,
        _ if settings.accept_unknown_hosts => return Ok(()),
        _ => {
            return Err(format!(
                "no known_hosts file is configured for {}, so host {name} (key {fingerprint}) \
                 cannot be verified; add `known_hosts_file` to its credential",
                redact_url(url)
            ));
        }
    };
    let contents = std::fs::read_to_string(known_hosts_file).map_err(|e| {
        format!(
            "cannot read known_hosts file {}: {e}",
            known_hosts_file.display()
        )
    })?;
    match known_hosts::check(&contents, host, port, blob) {
        Verdict::Known => Ok(()),
        Verdict::Unknown if settings.accept_unknown_hosts => Ok(()),
        Verdict::Unknown => Err(format!(
            "unknown host {name} (key {fingerprint}) is not in known_hosts file {}; add its key \
             (ssh-keyscan -p {port} {host}) after checking the fingerprint",
            known_hosts_file.display()
        )),
        Verdict::Mismatch { listed_types } => Err(format!(
            "host {name} presented key {fingerprint}, which does not match the {} key(s) listed \
             for it in {}: possible man-in-the-middle, or the server's key changed",
            listed_types.join(", "),
            known_hosts_file.display()
        )),
        Verdict::Revoked => Err(format!(
            "host {name} presented key {fingerprint}, which is marked @revoked in {}",
            known_hosts_file.display()
        )),
    }
}

/// The SSH port of `url`: `ssh://[user@]host:port/...`, else 22 (also for `user@host:path`).
fn ssh_port(url: &str) -> u16 {
    let Some(rest) = url
        .strip_prefix("ssh://")
        .or_else(|| url.strip_prefix("git+ssh://"))
        .or_else(|| url.strip_prefix("ssh+git://"))
    else {
        return 22;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let port = if host_port.starts_with('[') {
        host_port.rsplit_once("]:").map(|(_, p)| p)
    } else {
        host_port.rsplit_once(':').map(|(_, p)| p)
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(22)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::{Author, CredentialRule, Secret};

    #[test]
    fn ports_from_urls() {
        assert_eq!(ssh_port("ssh://git@127.0.0.1:2222/srv/r.git"), 2222);
        assert_eq!(ssh_port("ssh://git@host/srv/r.git"), 22);
        assert_eq!(ssh_port("ssh://[::1]:2200/r.git"), 2200);
        assert_eq!(ssh_port("git@github.com:acme/r.git"), 22);
    }

    #[test]
    fn scrub_removes_secrets_and_userinfo() {
        let settings = GitSettings {
            author: Author {
                name: "a".into(),
                email: "a@b".into(),
            },
            credentials: vec![CredentialRule {
                url_prefix: "https://h/".into(),
                credential: Credential::UserPass {
                    username: "u".into(),
                    password: Secret::new("s3cret"),
                },
            }],
            accept_unknown_hosts: false,
            signing_key: None,
        };
        let url = "https://u:s3cret@h/r.git";
        let out = scrub(
            &settings,
            url,
            "failed https://u:s3cret@h/r.git with s3cret",
        );
        assert_eq!(out, "failed https://h/r.git with ***");
    }
}
