//! A secret value (password, token, key passphrase, webhook key).
//!
//! Invariant: `Debug` and `Display` print `***`, so a secret cannot reach a log line, an error
//! message or a `Debug` dump by accident; only [`Secret::expose`] gives the value, at the one
//! place that hands it to a protocol. Every stage uses this one type.

use std::fmt;

/// A secret string. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Fewest bytes a webhook secret may have (the docs recommend 32 random bytes).
pub const MIN_SECRET_BYTES: usize = 16;

/// Why `secret` is too weak to authenticate webhooks, or `None`. For a whole `Authorization`
/// header value (`Bearer …`, `Basic …`) the credential after the scheme is what counts. Says
/// only the length, never the secret.
pub fn weak_secret(secret: &str) -> Option<String> {
    let credential = match secret.split_once(' ') {
        Some((scheme, rest)) if scheme.chars().all(|c| c.is_ascii_alphabetic()) => rest.trim(),
        _ => secret,
    };
    let bytes = credential.len();
    (bytes < MIN_SECRET_BYTES).then(|| {
        format!(
            "it is {bytes} bytes long; use at least {MIN_SECRET_BYTES} (32 random bytes are recommended: `openssl rand -hex 32`)"
        )
    })
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_webhook_secrets_are_weak_whatever_their_scheme() {
        assert!(weak_secret("x").is_some());
        assert!(weak_secret("Bearer 123456789012345").is_some());
        assert!(weak_secret("0123456789abcdef").is_none());
        assert!(weak_secret("Bearer 0123456789abcdef").is_none());
        let why = weak_secret("Bearer short").unwrap_or_default();
        assert!(why.contains("5 bytes") && !why.contains("short"), "{why}");
    }

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }
}
