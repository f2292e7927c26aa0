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
    /// A person rolled the image back from `tag` (a value imagebump wrote) to the deployed one:
    /// `until` says what lifts the hold (`on_rollback`).
    Held {
        /// The rolled-back tag (`tag@digest` when the digest was the change).
        tag: String,
        /// Who made the rollback (the commit's author email).
        by: String,
        /// The rollback commit, abbreviated.
        commit: String,
        /// Its day (committer time, UTC), `YYYY-MM-DD`.
        date: String,
        until: HeldUntil,
    },
    /// The image is promoted from another app (`promote.from`): what its history says.
    Promotion {
        /// The source app.
        source: String,
        #[serde(flatten)]
        step: Box<Promotion>,
    },
}

/// Where a promotion stands, by kind (`promotion` in JSON). Times are RFC 3339, UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "promotion", rename_all = "snake_case")]
pub enum Promotion {
    /// `tag` soaked in the source and is proposed.
    Promoted {
        tag: String,
        /// When the source got it (committer time of the first-parent commit).
        since: String,
        /// How long the source has held it (`29h`, `2d 3h`).
        soaked: String,
        /// That commit, abbreviated.
        commit: String,
    },
    /// The newest tag of the source has not soaked yet (and no older one is newer than the
    /// deployed tag).
    Soaking {
        tag: String,
        since: String,
        /// When it will have soaked.
        ready: String,
    },
    /// The source moved from `tag` to an older tag: `tag` is never promoted.
    RolledBack { tag: String },
    /// `promote.trust: bot` and `tag` was written by someone else.
    Untrusted { tag: String, by: String },
    /// `promote.trust: signed` and the commit that brought `tag` (abbreviated) is not signed by
    /// a key of `allowed_signers`.
    Unsigned { tag: String, commit: String },
    /// The source's target never held a tag.
    NothingSoaked,
    /// The source's history reaches past `history` before the change that matters.
    TooDeep {
        /// The bound, `5000 commits or 90d`.
        bound: String,
    },
    /// `tag` soaked, but this app's own policy does not allow it.
    NotAllowed { tag: String, policy: String },
    /// `tag` soaked, but the registry now gives another digest than the source pinned.
    DigestChanged {
        tag: String,
        pinned: String,
        registry: String,
    },
    /// `tag` soaked, but the registry has no such tag.
    NotInRegistry { tag: String },
}

/// `2026-12-04T10:12:00Z` as `2026-12-04 10:12 UTC`.
fn minute(rfc3339: &str) -> String {
    match rfc3339.get(..16) {
        Some(text) if rfc3339.len() >= 17 => format!("{} UTC", text.replace('T', " ")),
        _ => rfc3339.to_string(),
    }
}

impl std::fmt::Display for Promotion {
    /// The sentence after `… in <source>`-style subjects; see [`Why`]'s `Display`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sentence("the source"))
    }
}

impl Promotion {
    /// A sentence naming the source app.
    pub fn sentence(&self, source: &str) -> String {
        match self {
            Promotion::Promoted {
                tag,
                since,
                soaked,
                commit,
            } => format!(
                "{tag} promoted from {source}: there since {} ({commit}), soaked {soaked}",
                minute(since)
            ),
            Promotion::Soaking { tag, since, ready } => format!(
                "{tag} soaking in {source} since {} (ready at {})",
                minute(since),
                minute(ready)
            ),
            Promotion::RolledBack { tag } => {
                format!("{source} rolled back from {tag}: it is never promoted")
            }
            Promotion::Untrusted { tag, by } => {
                format!("{tag} in {source} was written by {by}, not imagebump (promote.trust: bot)")
            }
            Promotion::Unsigned { tag, commit } => format!(
                "{tag} came to {source} in {commit}, which no key of promote.allowed_signers signed (promote.trust: signed)"
            ),
            Promotion::NothingSoaked => format!("nothing soaked yet in {source}"),
            Promotion::TooDeep { bound } => format!(
                "{source}'s history is deeper than the bound ({bound}): when it got its tag is unknown; raise `history` or wait for a new tag there"
            ),
            Promotion::NotAllowed { tag, policy } => {
                format!(
                    "{tag} soaked in {source}, but this app's policy ({policy}) does not allow it"
                )
            }
            Promotion::DigestChanged {
                tag,
                pinned,
                registry,
            } => format!(
                "{tag} soaked in {source} as {pinned}, but the registry now gives {registry}: not promoted"
            ),
            Promotion::NotInRegistry { tag } => {
                format!("{tag} soaked in {source}, but the registry has no such tag")
            }
        }
    }
}

/// What ends a hold after a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldUntil {
    /// `on_rollback: skip-version`: a tag newer than the rolled-back one.
    NewerTag,
    /// `on_rollback: hold`: a person changing the value again.
    PersonChanges,
}

impl std::fmt::Display for Skipped {
    /// `1.5.0 (younger than min_age), 1.6.0 (no linux/arm64 image)`, each list capped.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 3;
        let mut parts: Vec<String> = Vec::new();
        let mut add = |tags: Vec<String>, why: &dyn Fn(&str) -> String| {
            let more = tags.len().saturating_sub(SHOWN);
            parts.extend(tags.iter().take(SHOWN).map(|t| why(t)));
            if more > 0 {
                parts.push(format!("{more} more"));
            }
        };
        add(self.young.clone(), &|t| {
            format!("{t} (younger than min_age)")
        });
        add(self.unknown_age.clone(), &|t| {
            format!("{t} (creation time unknown)")
        });
        let lacking: Vec<String> = self
            .lacking_platforms
            .iter()
            .map(|l| format!("{} (no {} image)", l.tag, l.platforms.join(", ")))
            .collect();
        add(lacking, &|t| t.to_string());
        f.write_str(&parts.join(", "))
    }
}

/// A short sentence for people: what happened and, when something was passed over, what.
impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let skipped = |f: &mut std::fmt::Formatter<'_>, skipped: &Skipped| {
            if skipped.is_empty() {
                Ok(())
            } else {
                write!(f, "; skipped {skipped}")
            }
        };
        match self {
            Why::UpToDate {
                current,
                skipped: s,
            } => {
                write!(f, "up to date: {current} is the best the policy allows")?;
                skipped(f, s)
            }
            Why::Newer { tag, skipped: s } => {
                write!(f, "{tag} is newer and allowed")?;
                skipped(f, s)
            }
            Why::NotDowngrading { current, best } => write!(
                f,
                "deployed {current} is newer than every candidate (best {best}); not downgrading"
            ),
            Why::Waiting {
                current,
                skipped: s,
            } => {
                write!(f, "keeping {current}: no newer tag is eligible yet")?;
                skipped(f, s)
            }
            Why::NoTagMatches { tags } => {
                write!(f, "none of the {tags} tags matches the policy")
            }
            Why::NoneEligible { skipped: s } => {
                write!(f, "no candidate is eligible yet")?;
                skipped(f, s)
            }
            Why::NewDigest { tag, digest } => write!(f, "{tag} points to a new digest {digest}"),
            Why::SameDigest { tag, .. } => {
                write!(f, "up to date: {tag} still points to the deployed digest")
            }
            Why::DigestWaiting {
                tag, skipped: s, ..
            } => {
                write!(f, "{tag} points to a new digest that is not eligible yet")?;
                skipped(f, s)
            }
            Why::MissingTag { tag } => write!(f, "the repository has no tag {tag}"),
            Why::NoDigest { tag } => write!(f, "the registry gave no digest for {tag}"),
            Why::Held {
                tag,
                by,
                commit,
                date,
                until,
            } => {
                write!(f, "held: {tag} rolled back by {by} in {commit} on {date}; ")?;
                match until {
                    HeldUntil::NewerTag => write!(f, "waiting for a tag newer than {tag}"),
                    HeldUntil::PersonChanges => {
                        f.write_str("on_rollback is hold: waiting for a person to change it")
                    }
                }
            }
            Why::Promotion { source, step } => f.write_str(&step.sentence(source)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{HeldUntil, Why};

    #[test]
    fn a_hold_says_what_was_rolled_back_by_whom_and_what_lifts_it() {
        let held = |until| Why::Held {
            tag: "1.2.0".into(),
            by: "jane@example.com".into(),
            commit: "cd7292a".into(),
            date: "2026-12-03".into(),
            until,
        };
        assert_eq!(
            held(HeldUntil::NewerTag).to_string(),
            "held: 1.2.0 rolled back by jane@example.com in cd7292a on 2026-12-03; waiting for a tag newer than 1.2.0"
        );
        assert_eq!(
            held(HeldUntil::PersonChanges).to_string(),
            "held: 1.2.0 rolled back by jane@example.com in cd7292a on 2026-12-03; on_rollback is hold: waiting for a person to change it"
        );
        let json = serde_json::to_value(held(HeldUntil::NewerTag)).unwrap();
        assert_eq!(json["kind"], "held");
        assert_eq!(json["until"], "newer_tag");
    }

    #[test]
    fn a_promotion_says_where_the_tag_soaks_and_when_it_is_ready() {
        let why = Why::Promotion {
            source: "shop-staging".into(),
            step: Box::new(super::Promotion::Soaking {
                tag: "1.5.0".into(),
                since: "2026-12-04T10:12:00Z".into(),
                ready: "2026-12-05T10:12:00Z".into(),
            }),
        };
        assert_eq!(
            why.to_string(),
            "1.5.0 soaking in shop-staging since 2026-12-04 10:12 UTC (ready at 2026-12-05 10:12 UTC)"
        );
        let json = serde_json::to_value(&why).unwrap();
        assert_eq!(json["kind"], "promotion");
        assert_eq!(json["promotion"], "soaking");
        assert_eq!(json["source"], "shop-staging");
        assert_eq!(json["ready"], "2026-12-05T10:12:00Z");
        let back: Why = serde_json::from_value(json).unwrap();
        assert_eq!(back, why);
        let rolled = Why::Promotion {
            source: "shop-staging".into(),
            step: Box::new(super::Promotion::RolledBack {
                tag: "1.5.0".into(),
            }),
        };
        assert_eq!(
            rolled.to_string(),
            "shop-staging rolled back from 1.5.0: it is never promoted"
        );
    }
}
