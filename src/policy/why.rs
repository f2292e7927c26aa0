//! Why a selection ended as it did, as a value: a kind plus the tags it names.
//!
//! Invariant: every [`super::Decision`] and [`super::NoMatch`] carries one, built from the same
//! walk as its sentence (`reason`), so a program (the JSON output, the status) and a person
//! (logs, commit messages) are told the same thing. Plain data, no I/O.

use serde::{Deserialize, Serialize};

/// Candidates ranked above the one chosen (or above the deployed tag) that were passed over,
/// each list best first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Younger than `min_age`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub young: Vec<String>,
    /// Creation time unknown while `min_age` needs it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_age: Vec<String>,
    /// Without an image for a required platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lacking_platforms: Vec<Lacking>,
}

impl Skipped {
    pub fn is_empty(&self) -> bool {
        self.young.is_empty() && self.unknown_age.is_empty() && self.lacking_platforms.is_empty()
    }
}

/// A tag without an image for some required platforms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lacking {
    pub tag: String,
    pub platforms: Vec<String>,
}

/// The outcome of a selection, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Why {
    /// The deployed tag is the best the policy allows.
    UpToDate { current: String, skipped: Skipped },
    /// `tag` ranks above the deployed one (or nothing is deployed) and is eligible.
    Newer { tag: String, skipped: Skipped },
    /// The deployed tag ranks at or above the best candidate, and downgrades are refused.
    NotDowngrading { current: String, best: String },
    /// Candidates rank above the deployed tag, but none is eligible yet: it stays.
    Waiting { current: String, skipped: Skipped },
    /// No tag passes the filters (and the range): `tags` were looked at.
    NoTagMatches { tags: usize },
    /// Candidates exist, none is eligible, and nothing is deployed to keep.
    NoneEligible { skipped: Skipped },
    /// Digest policy: the followed tag points to a new digest.
    NewDigest { tag: String, digest: String },
    /// Digest policy: the followed tag still points to the deployed digest.
    SameDigest { tag: String, digest: String },
    /// Digest policy: the followed tag points to a new digest that is not eligible yet.
    DigestWaiting {
        tag: String,
        digest: String,
        skipped: Skipped,
    },
    /// Digest policy: the repository has no such tag.
    MissingTag { tag: String },
    /// The registry gave no digest for a tag that needs one.
    NoDigest { tag: String },
}
