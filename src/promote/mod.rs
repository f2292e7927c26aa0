//! Promotion between environments (issue 19, part 2): which tag an image takes from another
//! app (`promote: {from, soak}`), read from that app's value history on its branch.
//!
//! The candidate is the newest tag the source's target held **continuously for at least
//! `soak`**, measured from the committer time of the first-parent commit that brought the tag
//! to the source's branch. A tag the source moved away from to an older one (a rollback) is
//! never the candidate, even if the source takes it again later. When the source's history ends
//! at the bound before the answer is known, there is no candidate and the reason says so.
//!
//! Invariant: pure. The history, the time, the rules and what "older" means come in; a
//! [`Outcome`] (the candidate with its evidence, and why no newer tag is) goes out. No git, no
//! registry, no clock: the engine reads the history and applies the destination's own policy
//! on top.
//!
//! Design choice: the reasons are [`crate::policy::Promotion`] values, so they travel the
//! same way every other "why" does (once output, explain, status, the page).

use std::collections::BTreeSet;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::config::PromoteTrust;
use crate::git::{CommitMeta, Oid};
use crate::history::rollback::{Older, by_bot};
use crate::history::{TargetHistory, TargetValue};
use crate::policy::Promotion;

/// The rules of one promoted image.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// How long the source must have held a tag.
    pub soak: Duration,
    pub trust: PromoteTrust,
    /// The bot's email (for `trust: bot`).
    pub bot: &'a str,
    /// The history bound, as said in a reason (`5000 commits or 90d`).
    pub bound: &'a str,
    /// Under `trust: signed`, the source's first-parent commits whose signature verified.
    pub verified: Option<&'a BTreeSet<Oid>>,
}

/// A tag that soaked in the source, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub tag: String,
    /// What the source held: the tag and the digest it pinned, if it pinned one.
    pub value: TargetValue,
    /// The first-parent commit that brought the value to the source's branch (the clock).
    pub commit: CommitMeta,
    /// Who wrote it: for a merge, the commit on the merged side.
    pub by: CommitMeta,
    /// When the source got it (the commit's committer time).
    pub since: OffsetDateTime,
    /// How long the source held it (until now, or until its next value).
    pub soaked: Duration,
}

impl Candidate {
    /// The evidence as the reasons say it.
    pub fn why(&self) -> Promotion {
        let id = self.commit.id.to_string();
        Promotion::Promoted {
            tag: self.tag.clone(),
            since: rfc3339(self.since),
            soaked: span(self.soaked),
            commit: id.get(..7).unwrap_or(&id).to_string(),
        }
    }
}

/// What the source's history gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The tag to promote, if one soaked.
    pub candidate: Option<Candidate>,
    /// Why no newer tag of the source is the candidate (the newest one's reason), or, without a
    /// candidate, why there is none.
    pub newer: Option<Promotion>,
}

/// The promotion a source's history gives at `now`. `older(to, from)` says whether the value
/// `to` ranks below `from` (see [`Older`]); a move to an older value is a rollback of `from`.
pub fn choose(
    history: &TargetHistory,
    rules: &Rules<'_>,
    now: OffsetDateTime,
    older: Older<'_>,
) -> Outcome {
    let changes = &history.changes;
    let rolled_back = rolled_back(history, older);
    let mut newer: Option<Promotion> = None;
    for (i, change) in changes.iter().enumerate() {
        let Some(value) = &change.value else { continue };
        let Some(tag) = &value.tag else { continue };
        if rolled_back.contains(tag.as_str()) {
            newer.get_or_insert_with(|| Promotion::RolledBack { tag: tag.clone() });
            continue;
        }
        if rules.trust == PromoteTrust::Bot && !by_bot(&change.by, rules.bot) {
            newer.get_or_insert_with(|| Promotion::Untrusted {
                tag: tag.clone(),
                by: change.by.author.email.clone(),
            });
            continue;
        }
        if rules.trust == PromoteTrust::Signed
            && !rules
                .verified
                .is_some_and(|verified| verified.contains(&change.landed.id))
        {
            let id = change.landed.id.to_string();
            newer.get_or_insert_with(|| Promotion::Unsigned {
                tag: tag.clone(),
                commit: id.get(..7).unwrap_or(&id).to_string(),
            });
            continue;
        }
        let since = time_of(change.landed.time);
        let until = match i.checked_sub(1).and_then(|j| changes.get(j)) {
            Some(next) => time_of(next.landed.time),
            None => now,
        };
        let soaked = until - since;
        if soaked >= rules.soak {
            // A newer tag the source rolled back from, older in its history, is still why
            // that one is not promoted.
            let newer = newer.or_else(|| {
                changes.iter().skip(i + 1).find_map(|c| {
                    let gone = c.value.as_ref()?;
                    let gone_tag = gone.tag.as_deref()?;
                    (rolled_back.contains(gone_tag) && older(value, gone) == Some(true)).then(
                        || Promotion::RolledBack {
                            tag: gone_tag.to_string(),
                        },
                    )
                })
            });
            return Outcome {
                candidate: Some(Candidate {
                    tag: tag.clone(),
                    value: value.clone(),
                    commit: change.landed.clone(),
                    by: change.by.clone(),
                    since,
                    soaked,
                }),
                newer,
            };
        }
        newer.get_or_insert_with(|| Promotion::Soaking {
            tag: tag.clone(),
            since: rfc3339(since),
            ready: rfc3339(since + rules.soak),
        });
    }
    let reason = if history.complete {
        newer.unwrap_or(Promotion::NothingSoaked)
    } else {
        Promotion::TooDeep {
            bound: rules.bound.to_string(),
        }
    };
    Outcome {
        candidate: None,
        newer: Some(reason),
    }
}

/// The tags the source moved away from to an older value (newest changes first in `history`).
fn rolled_back<'h>(history: &'h TargetHistory, older: Older<'_>) -> BTreeSet<&'h str> {
    let mut tags = BTreeSet::new();
    let changes = &history.changes;
    for (i, pair) in changes.windows(2).enumerate() {
        let (Some(to), Some(from)) = (&pair[0].value, &pair[1].value) else {
            continue;
        };
        let Some(from_tag) = from.tag.as_deref() else {
            continue;
        };
        if to.tag.as_deref() == Some(from_tag) {
            continue;
        }
        let is_older = older(to, from).unwrap_or_else(|| {
            changes
                .iter()
                .skip(i + 2)
                .any(|c| c.value.as_ref() == Some(to))
        });
        if is_older {
            tags.insert(from_tag);
        }
    }
    tags
}

fn time_of(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A time as RFC 3339, UTC, to the second.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// A duration for people: `2d 5h`, `29h` under three days is `1d 5h`, `3h 12m`, `12m`.
pub fn span(d: Duration) -> String {
    let minutes = d.whole_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{mins}m"),
        (0, _) => format!("{hours}h {mins}m"),
        _ => format!("{days}d {hours}h"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::git::{Oid, Person};
    use crate::history::ValueChange;

    const BOT: &str = "bot@imagebump.test";
    const NOW: i64 = 1_796_400_000;
    const HOUR: i64 = 3600;

    fn meta(n: u8, email: &str, time: i64) -> CommitMeta {
        let person = Person {
            name: "x".into(),
            email: email.into(),
        };
        CommitMeta {
            id: Oid::from_bytes(&[n; 20]).unwrap(),
            author: person.clone(),
            committer: person,
            time,
        }
    }

    /// Changes newest first: (tag, hours ago, who).
    fn history(list: &[(&str, i64, &str)], complete: bool) -> TargetHistory {
        let changes = list
            .iter()
            .enumerate()
            .map(|(i, (tag, ago, who))| {
                let m = meta(u8::try_from(i + 1).unwrap(), who, NOW - ago * HOUR);
                ValueChange {
                    value: Some(TargetValue {
                        tag: Some((*tag).into()),
                        digest: None,
                    }),
                    by: m.clone(),
                    landed: m,
                }
            })
            .collect();
        TargetHistory { changes, complete }
    }

    fn semver_ish(to: &TargetValue, from: &TargetValue) -> Option<bool> {
        Some(to.tag < from.tag)
    }

    fn rules(trust: PromoteTrust) -> Rules<'static> {
        Rules {
            soak: Duration::hours(24),
            trust,
            bot: BOT,
            bound: "5000 commits or 90d",
            verified: None,
        }
    }

    /// The candidate's tag and soak, and the reason, as text.
    fn check(list: &[(&str, i64, &str)], complete: bool, trust: PromoteTrust) -> String {
        let now = time_of(NOW);
        let outcome = choose(&history(list, complete), &rules(trust), now, &semver_ish);
        let candidate = outcome
            .candidate
            .map(|c| format!("{} after {}", c.tag, span(c.soaked)))
            .unwrap_or_else(|| "none".into());
        let newer = outcome
            .newer
            .map(|w| w.sentence("staging"))
            .unwrap_or_else(|| "-".into());
        format!("{candidate}; {newer}")
    }

    const ANY: PromoteTrust = PromoteTrust::Any;

    #[test]
    fn a_tag_held_longer_than_the_soak_is_the_candidate() {
        assert_eq!(
            check(&[("1.5.0", 25, BOT)], true, ANY),
            "1.5.0 after 1d 1h; -"
        );
    }

    #[test]
    fn a_young_tag_is_soaking_and_says_when_it_is_ready() {
        assert_eq!(
            check(&[("1.5.0", 1, BOT)], true, ANY),
            "none; 1.5.0 soaking in staging since 2026-12-04 15:00 UTC (ready at 2026-12-05 15:00 UTC)"
        );
    }

    #[test]
    fn the_previous_soaked_tag_is_taken_while_a_newer_one_soaks() {
        assert_eq!(
            check(&[("1.5.0", 1, BOT), ("1.4.0", 30, BOT)], true, ANY),
            "1.4.0 after 1d 5h; 1.5.0 soaking in staging since 2026-12-04 15:00 UTC (ready at 2026-12-05 15:00 UTC)"
        );
        // A value held only briefly in between does not count; the one before it does.
        assert_eq!(
            check(
                &[("1.5.0", 1, BOT), ("1.4.0", 3, BOT), ("1.3.0", 50, BOT)],
                true,
                ANY
            ),
            "1.3.0 after 1d 23h; 1.5.0 soaking in staging since 2026-12-04 15:00 UTC (ready at 2026-12-05 15:00 UTC)"
        );
    }

    #[test]
    fn a_tag_the_source_rolled_back_from_is_never_promoted() {
        // 1.4.0 → 1.5.0 (held 26 h) → back to 1.4.0.
        assert_eq!(
            check(
                &[
                    ("1.4.0", 40, "jane@x"),
                    ("1.5.0", 66, BOT),
                    ("1.4.0", 90, BOT)
                ],
                true,
                ANY
            ),
            "1.4.0 after 1d 16h; staging rolled back from 1.5.0: it is never promoted"
        );
        // ... and then 1.5.0 again, 25 h ago: still not.
        assert_eq!(
            check(
                &[
                    ("1.5.0", 25, "jane@x"),
                    ("1.4.0", 40, "jane@x"),
                    ("1.5.0", 66, BOT),
                    ("1.4.0", 90, BOT)
                ],
                true,
                ANY
            ),
            "1.4.0 after 1d 0h; staging rolled back from 1.5.0: it is never promoted"
        );
        // Without that older 1.4.0 that soaked, nothing is.
        assert_eq!(
            check(
                &[
                    ("1.5.0", 25, "jane@x"),
                    ("1.4.0", 40, "jane@x"),
                    ("1.5.0", 66, BOT)
                ],
                false,
                ANY
            ),
            "none; staging's history is deeper than the bound (5000 commits or 90d): when it got its tag is unknown; raise `history` or wait for a new tag there"
        );
    }

    #[test]
    fn under_trust_bot_a_persons_value_is_not_promoted() {
        assert_eq!(
            check(
                &[("1.5.0", 30, "jane@x"), ("1.4.0", 60, BOT)],
                true,
                PromoteTrust::Bot
            ),
            "1.4.0 after 1d 6h; 1.5.0 in staging was written by jane@x, not imagebump (promote.trust: bot)"
        );
        assert_eq!(
            check(&[("1.5.0", 30, "jane@x")], true, ANY),
            "1.5.0 after 1d 6h; -"
        );
    }

    #[test]
    fn under_trust_signed_only_verified_commits_count() {
        let history = history(&[("1.5.0", 30, BOT), ("1.4.0", 60, BOT)], true);
        let verified: BTreeSet<Oid> = [history.changes[1].landed.id].into();
        let rules = Rules {
            trust: PromoteTrust::Signed,
            verified: Some(&verified),
            ..rules(ANY)
        };
        let outcome = choose(&history, &rules, time_of(NOW), &semver_ish);
        assert_eq!(outcome.candidate.map(|c| c.tag), Some("1.4.0".into()));
        assert_eq!(
            outcome.newer.map(|w| w.sentence("staging")),
            Some("1.5.0 came to staging in 0101010, which no key of promote.allowed_signers signed (promote.trust: signed)".into())
        );
    }

    #[test]
    fn a_history_cut_by_the_bound_gives_a_reason_not_a_guess() {
        // Nothing changed within the bound: when the value came is unknown.
        assert_eq!(
            check(&[], false, ANY),
            "none; staging's history is deeper than the bound (5000 commits or 90d): when it got its tag is unknown; raise `history` or wait for a new tag there"
        );
        // The newest soaks, and what came before is past the bound.
        assert!(
            check(&[("1.5.0", 1, BOT)], false, ANY)
                .starts_with("none; staging's history is deeper")
        );
        // Within the bound, a soaked value is known.
        assert_eq!(
            check(&[("1.5.0", 30, BOT)], false, ANY),
            "1.5.0 after 1d 6h; -"
        );
    }

    #[test]
    fn a_source_that_never_held_a_tag_has_nothing_soaked() {
        assert_eq!(check(&[], true, ANY), "none; nothing soaked yet in staging");
    }

    #[test]
    fn spans_read_as_days_hours_and_minutes() {
        assert_eq!(span(Duration::minutes(12)), "12m");
        assert_eq!(span(Duration::minutes(192)), "3h 12m");
        assert_eq!(span(Duration::hours(53)), "2d 5h");
    }
}
