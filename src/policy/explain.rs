//! Every tag's verdict under a policy: what `imagebump explain` prints.
//!
//! Invariant: pure, like the rest of the policy, and built from the very steps
//! [`Policy::select`] takes (the same candidate test, the same walk over the ranked candidates),
//! so a verdict never disagrees with the decision. It needs the metadata the selection
//! fetched: call it once [`Policy::select`] has decided (or refused).
//!
//! Design choice: one verdict per tag, candidates best first (each above the walk's stop says
//! why it was passed over, each below says what it ranks under), then the tags that were never
//! candidates, by reason (versions outside the range highest first).

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::{Current, Kind, Policy, Reject, Skip, TagMeta};

/// What a policy made of every tag of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// Tags in the repository.
    pub tags: usize,
    /// Tags the policy could rank (after the filters and the range).
    pub candidates: usize,
    /// One per tag: the candidates best first, then the others.
    pub verdicts: Vec<TagVerdict>,
}

/// One tag and what the policy made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagVerdict {
    pub tag: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The verdict in words.
    pub text: String,
}

/// What ruled a tag in or out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The tag the policy moves to: it ranks above the deployed one and is eligible.
    Chosen,
    /// The deployed tag, and the best eligible one: it stays.
    Deployed,
    /// Ranks above the stop but is younger than `min_age`.
    TooYoung {
        min_age_secs: i64,
        ready_in_secs: i64,
    },
    /// Ranks above the stop, but its creation time is unknown and `min_age` needs it.
    AgeUnknown,
    /// Ranks above the stop but has no image for these required platforms.
    LackingPlatforms { platforms: Vec<String> },
    /// Ranks at or below the deployed tag, and downgrades are refused.
    NotNewer { deployed: String },
    /// Ranks below the tag chosen (or kept).
    BelowChosen { chosen: String },
    /// A version outside the semver range.
    OutsideRange { range: String },
    /// Not a version (semver) or not a number (numerical).
    Unparsed { expected: &'static str },
    /// `newest_build` without a known creation time.
    NoCreationTime,
    /// Not matched by `tags.include`.
    NotIncluded,
    /// Matched by a `tags.exclude` pattern.
    Excluded,
    /// `tags.extract` gives an empty value.
    EmptyExtract,
    /// A cosign signature, attestation or SBOM tag.
    Cosign,
    /// Not a valid OCI tag.
    InvalidTag,
    /// The tag the `digest` policy follows.
    Followed,
    /// Another tag than the one the `digest` policy follows.
    NotFollowed { followed: String },
}

impl Verdict {
    /// A label shared by every tag with this kind of verdict, for counts: `outside ~1.4`,
    /// `younger than min_age 1 h`.
    pub fn group(&self) -> String {
        match self {
            Verdict::TooYoung { min_age_secs, .. } => {
                format!("younger than min_age {}", words(*min_age_secs))
            }
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Chosen => f.write_str("chosen: newer than the deployed tag and eligible"),
            Verdict::Deployed => f.write_str("deployed, and the best eligible tag"),
            Verdict::TooYoung {
                min_age_secs,
                ready_in_secs,
            } => write!(
                f,
                "younger than min_age {} (ready in {})",
                words(*min_age_secs),
                words(*ready_in_secs)
            ),
            Verdict::AgeUnknown => f.write_str("creation time unknown, and min_age needs it"),
            Verdict::LackingPlatforms { platforms } => {
                write!(f, "has no {} image", platforms.join(", "))
            }
            Verdict::NotNewer { deployed } => {
                write!(f, "not newer than deployed {deployed}; not downgrading")
            }
            Verdict::BelowChosen { chosen } => write!(f, "ranks below {chosen}"),
            Verdict::OutsideRange { range } => write!(f, "outside {range}"),
            Verdict::Unparsed { expected } => write!(f, "not {expected}"),
            Verdict::NoCreationTime => {
                f.write_str("creation time unknown, and newest_build ranks by it")
            }
            Verdict::NotIncluded => f.write_str("not matched by tags.include"),
            Verdict::Excluded => f.write_str("excluded by tags.exclude"),
            Verdict::EmptyExtract => f.write_str("tags.extract gives an empty value"),
            Verdict::Cosign => f.write_str("a cosign signature/attestation tag"),
            Verdict::InvalidTag => f.write_str("not a valid OCI tag"),
            Verdict::Followed => f.write_str("the tag the digest policy follows"),
            Verdict::NotFollowed { followed } => {
                write!(f, "not followed (the digest policy follows {followed})")
            }
        }
    }
}

/// `45 s`, `23 min`, `1 h`, `1 h 5 min`, `2 d 3 h` (rounded up to the unit shown, so a tag is
/// never said to be ready sooner than it is).
fn words(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 60 {
        return format!("{secs} s");
    }
    let minutes = (secs + 59) / 60;
    if minutes < 60 {
        return format!("{minutes} min");
    }
    let (hours, minutes) = (minutes / 60, minutes % 60);
    if hours < 24 {
        return match minutes {
            0 => format!("{hours} h"),
            m => format!("{hours} h {m} min"),
        };
    }
    match (hours / 24, hours % 24) {
        (days, 0) => format!("{days} d"),
        (days, h) => format!("{days} d {h} h"),
    }
}

impl Policy {
    /// Every tag's verdict, with the metadata the selection fetched (`meta`) and the same
    /// `current` and `now`. `Err`: metadata the walk needs is still missing (the selection
    /// did not finish); the tags named.
    pub fn explain(
        &self,
        tags: &[String],
        current: Current<'_>,
        meta: &HashMap<String, TagMeta>,
        now: OffsetDateTime,
    ) -> Result<Explanation, Vec<String>> {
        if let Kind::Digest { tag } = &self.kind {
            return Ok(explain_digest(tag, tags));
        }
        // The walk consumes its candidates; a second, fully sorted set names every one.
        let (cands, _, current_key) = self.ranked_candidates(tags, current, meta)?;
        let walk = self.walk(cands, current, current_key.as_ref(), meta, now)?;
        let (mut ranked, _, _) = self.ranked_candidates(tags, current, meta)?;
        ranked.sort_unstable_by(|a, b| self.cmp_candidates(b, a));
        let candidates = ranked.len();

        let chosen = walk.chosen.as_ref().map(|c| c.tag);
        let deployed = current.tag.unwrap_or_default().to_owned();
        let min_age = self.min_age.unwrap_or(Duration::ZERO);
        let mut verdicts = Vec::with_capacity(tags.len());
        let mut below: Option<Verdict> = None;
        for c in &ranked {
            let verdict = if let Some(after) = &below {
                after.clone()
            } else if Some(c.tag) == chosen {
                let kept = current.tag == Some(c.tag);
                below = Some(if kept && !self.allow_downgrade {
                    Verdict::NotNewer {
                        deployed: deployed.clone(),
                    }
                } else {
                    Verdict::BelowChosen {
                        chosen: c.tag.to_owned(),
                    }
                });
                if kept {
                    Verdict::Deployed
                } else {
                    Verdict::Chosen
                }
            } else if Some(c.tag) == walk.blocked_by {
                let verdict = Verdict::NotNewer {
                    deployed: deployed.clone(),
                };
                below = Some(verdict.clone());
                verdict
            } else if let Some(lacking) = walk.lacking.iter().find(|l| l.tag == c.tag) {
                Verdict::LackingPlatforms {
                    platforms: lacking.platforms.clone(),
                }
            } else if walk.young.contains(&c.tag) {
                let age = meta
                    .get(c.tag)
                    .and_then(|m| m.created)
                    .map_or(Duration::ZERO, |t| now - t);
                Verdict::TooYoung {
                    min_age_secs: min_age.whole_seconds(),
                    ready_in_secs: (min_age - age).whole_seconds(),
                }
            } else {
                // The walk passes over a candidate only as too young, lacking platforms or of
                // unknown age; what is left is the last of these.
                Verdict::AgeUnknown
            };
            verdicts.push(verdict_of(c.tag, verdict));
        }

        let mut others: Vec<(&str, Verdict, Option<super::Version>)> = Vec::new();
        for tag in tags {
            let (verdict, version) = match self.candidate(tag) {
                Ok(_) => {
                    // A candidate the walk did not rank: `newest_build` without a time.
                    if ranked.iter().any(|c| c.tag == tag) {
                        continue;
                    }
                    (Verdict::NoCreationTime, None)
                }
                Err(Reject::Outside(version)) => {
                    let range = match &self.kind {
                        Kind::Semver { range, .. } => range.to_string(),
                        _ => String::new(),
                    };
                    (Verdict::OutsideRange { range }, Some(version))
                }
                Err(Reject::Unparsed) => {
                    let expected = match self.kind {
                        Kind::Numerical(_) => "a number",
                        _ => "a version",
                    };
                    (Verdict::Unparsed { expected }, None)
                }
                Err(Reject::Filtered(skip)) => (
                    match skip {
                        Skip::InvalidTag => Verdict::InvalidTag,
                        Skip::Cosign => Verdict::Cosign,
                        Skip::NotIncluded => Verdict::NotIncluded,
                        Skip::Excluded => Verdict::Excluded,
                        Skip::EmptyExtract => Verdict::EmptyExtract,
                    },
                    None,
                ),
            };
            others.push((tag, verdict, version));
        }
        // Grouped by reason in a fixed order; versions outside the range highest first.
        others.sort_by(|(ta, va, a), (tb, vb, b)| {
            rank(va).cmp(&rank(vb)).then_with(|| match (a, b) {
                (Some(a), Some(b)) => b.precedence(a).then_with(|| tb.cmp(ta)),
                _ => Ordering::Equal,
            })
        });
        verdicts.extend(others.into_iter().map(|(t, v, _)| verdict_of(t, v)));
        Ok(Explanation {
            tags: tags.len(),
            candidates,
            verdicts,
        })
    }
}

/// The order of the groups of tags that are not candidates.
fn rank(verdict: &Verdict) -> u8 {
    match verdict {
        Verdict::OutsideRange { .. } => 0,
        Verdict::NoCreationTime => 1,
        Verdict::Unparsed { .. } => 2,
        Verdict::NotIncluded | Verdict::Excluded | Verdict::EmptyExtract => 3,
        Verdict::Cosign => 4,
        _ => 5,
    }
}

fn verdict_of(tag: &str, verdict: Verdict) -> TagVerdict {
    TagVerdict {
        tag: tag.to_owned(),
        text: verdict.to_string(),
        verdict,
    }
}

/// The `digest` policy looks at one tag; every other is not followed.
fn explain_digest(followed: &str, tags: &[String]) -> Explanation {
    let mut verdicts: Vec<TagVerdict> = tags
        .iter()
        .filter(|t| *t == followed)
        .map(|t| verdict_of(t, Verdict::Followed))
        .collect();
    verdicts.extend(tags.iter().filter(|t| *t != followed).map(|t| {
        verdict_of(
            t,
            Verdict::NotFollowed {
                followed: followed.to_owned(),
            },
        )
    }));
    Explanation {
        tags: tags.len(),
        candidates: usize::from(tags.iter().any(|t| t == followed)),
        verdicts,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::policy::{Filter, Parsing, Range, Step};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-04 10:00 UTC);

    fn semver(range: &str) -> Policy {
        Policy {
            min_age: None,
            ..Policy::new(Kind::Semver {
                range: Range::parse(range).unwrap(),
                parsing: Parsing::Loose,
            })
        }
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    fn built(minutes_ago: i64) -> TagMeta {
        TagMeta {
            digest: Some("sha256:00".into()),
            created: Some(NOW - Duration::minutes(minutes_ago)),
            platforms: Some(vec!["linux/amd64".into()]),
        }
    }

    /// Runs the selection to its end (the metadata comes from `known`), then explains; each
    /// verdict as `tag: text`.
    fn check(
        policy: &Policy,
        list: &[&str],
        current: Option<&str>,
        known: &HashMap<String, TagMeta>,
    ) -> Vec<String> {
        let tags = tags(list);
        let current = Current {
            tag: current,
            digest: None,
        };
        let mut meta = HashMap::new();
        while let Ok(Step::NeedMetadata(wanted)) = policy.select(&tags, current, &meta, NOW) {
            for tag in wanted {
                let m = known.get(&tag).cloned().unwrap_or_default();
                meta.insert(tag, m);
            }
        }
        let explanation = policy.explain(&tags, current, &meta, NOW).unwrap();
        assert_eq!(explanation.verdicts.len(), tags.len());
        explanation
            .verdicts
            .iter()
            .map(|v| format!("{}: {}", v.tag, v.text))
            .collect()
    }

    #[test]
    fn up_to_date_names_what_ranks_below_and_what_is_outside() {
        let policy = semver("~1.4");
        let got = check(
            &policy,
            &["1.4.0", "1.4.5", "2.0.0", "1.5.0", "latest", "1.4.2"],
            Some("1.4.5"),
            &HashMap::new(),
        );
        assert_eq!(
            got,
            [
                "1.4.5: deployed, and the best eligible tag",
                "1.4.2: not newer than deployed 1.4.5; not downgrading",
                "1.4.0: not newer than deployed 1.4.5; not downgrading",
                "2.0.0: outside ~1.4",
                "1.5.0: outside ~1.4",
                "latest: not a version",
            ]
        );
    }

    #[test]
    fn too_young_says_when_it_is_ready_and_the_next_one_is_chosen() {
        let policy = Policy {
            min_age: Some(Duration::hours(1)),
            ..semver("^1")
        };
        let known = HashMap::from([
            ("1.5.0".to_owned(), built(37)),
            ("1.4.9".to_owned(), built(600)),
        ]);
        let got = check(&policy, &["1.4.0", "1.4.9", "1.5.0"], Some("1.4.0"), &known);
        assert_eq!(
            got,
            [
                "1.5.0: younger than min_age 1 h (ready in 23 min)",
                "1.4.9: chosen: newer than the deployed tag and eligible",
                "1.4.0: ranks below 1.4.9",
            ]
        );
    }

    #[test]
    fn lacking_platform_and_no_downgrade_below_a_newer_deployed_tag() {
        let policy = Policy {
            platforms: vec!["linux/arm64".into()],
            ..semver("~1.4")
        };
        let arm = TagMeta {
            platforms: Some(vec!["linux/amd64".into(), "linux/arm64".into()]),
            ..built(600)
        };
        let known = HashMap::from([("1.4.6".to_owned(), built(600)), ("1.4.5".to_owned(), arm)]);
        let got = check(&policy, &["1.4.5", "1.4.6", "1.4.1"], Some("1.4.2"), &known);
        assert_eq!(
            got,
            [
                "1.4.6: has no linux/arm64 image",
                "1.4.5: chosen: newer than the deployed tag and eligible",
                "1.4.1: ranks below 1.4.5",
            ]
        );
        // Deployed 1.12.0 is outside ~1.4 and newer than every candidate.
        let got = check(
            &semver("~1.4"),
            &["1.4.5", "1.4.1", "1.12.0"],
            Some("1.12.0"),
            &HashMap::new(),
        );
        assert_eq!(
            got,
            [
                "1.4.5: not newer than deployed 1.12.0; not downgrading",
                "1.4.1: not newer than deployed 1.12.0; not downgrading",
                "1.12.0: outside ~1.4",
            ]
        );
    }

    #[test]
    fn filters_cosign_and_outside_versions_highest_first() {
        let policy = Policy {
            filter: Filter::new(None, &["-rc"], None).unwrap(),
            ..semver("~1.4")
        };
        let got = check(
            &policy,
            &[
                "1.4.1",
                "1.9.0",
                "3.0.0",
                "1.4.2-rc",
                "sha256-ab.sig",
                "1.10.0",
            ],
            None,
            &HashMap::new(),
        );
        assert_eq!(
            got,
            [
                "1.4.1: chosen: newer than the deployed tag and eligible",
                "3.0.0: outside ~1.4",
                "1.10.0: outside ~1.4",
                "1.9.0: outside ~1.4",
                "1.4.2-rc: excluded by tags.exclude",
                "sha256-ab.sig: a cosign signature/attestation tag",
            ]
        );
    }

    #[test]
    fn digest_policy_follows_one_tag() {
        let policy = Policy::new(Kind::Digest {
            tag: "latest".into(),
        });
        let got = policy
            .explain(
                &tags(&["1.0", "latest"]),
                Current::default(),
                &HashMap::new(),
                NOW,
            )
            .unwrap();
        assert_eq!(got.candidates, 1);
        assert_eq!(got.verdicts[0].verdict, Verdict::Followed);
        assert_eq!(
            got.verdicts[1].text,
            "not followed (the digest policy follows latest)"
        );
    }

    #[test]
    fn durations_in_words_round_up() {
        assert_eq!(words(45), "45 s");
        assert_eq!(words(61), "2 min");
        assert_eq!(words(3600), "1 h");
        assert_eq!(words(3600 + 300), "1 h 5 min");
        assert_eq!(words(2 * 86_400 + 3 * 3600), "2 d 3 h");
        assert_eq!(words(-5), "0 s");
    }
}
