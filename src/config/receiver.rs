//! The webhook receiver kinds: the one list of their names, parsed at load time.
//!
//! Invariant: a name is one of [`ReceiverKind::ALL`]'s, spelled as in the config, the URL and
//! the metrics; the daemon's receivers add how each kind authenticates.

use std::str::FromStr;

/// The webhook receiver types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReceiverKind {
    /// CNCF distribution (`registry:2`) notifications; `Authorization` header token.
    Distribution,
    /// Docker Hub; secret in the URL path.
    DockerHub,
    /// Quay; secret in the URL path.
    Quay,
    /// Harbor; `Authorization` header token.
    Harbor,
    /// GitHub `package` / `registry_package` events; `X-Hub-Signature-256` HMAC.
    Ghcr,
    /// GitLab; `X-Gitlab-Token` header.
    Gitlab,
    /// Anything that can sign a small JSON body; `X-Signature: sha256=<hex>` HMAC.
    GenericHmac,
}

impl ReceiverKind {
    /// Every receiver type.
    pub const ALL: [ReceiverKind; 7] = [
        ReceiverKind::Distribution,
        ReceiverKind::DockerHub,
        ReceiverKind::Quay,
        ReceiverKind::Harbor,
        ReceiverKind::Ghcr,
        ReceiverKind::Gitlab,
        ReceiverKind::GenericHmac,
    ];

    /// The name used in the config, the URL and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Distribution => "distribution",
            ReceiverKind::DockerHub => "dockerhub",
            ReceiverKind::Quay => "quay",
            ReceiverKind::Harbor => "harbor",
            ReceiverKind::Ghcr => "ghcr",
            ReceiverKind::Gitlab => "gitlab",
            ReceiverKind::GenericHmac => "generic-hmac",
        }
    }
}

impl std::fmt::Display for ReceiverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A receiver type name that doesn't exist.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown webhook receiver type {0:?}: use one of distribution, dockerhub, quay, harbor, ghcr, gitlab, generic-hmac"
)]
pub struct UnknownReceiverKind(pub String);

impl FromStr for ReceiverKind {
    type Err = UnknownReceiverKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ReceiverKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownReceiverKind(name.to_string()))
    }
}
