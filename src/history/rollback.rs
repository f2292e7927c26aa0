//! Telling a person's rollback from a target's history (issue 19, part 1).
//!
//! A rollback is: the latest change of the target's value was not made by imagebump (neither
//! its author nor its committer is the bot's identity), the change before it was (so the value
//! it replaced is one imagebump wrote: by its identity, or a squash merge of its pull request
//! whose message says so, [`squashed_from_bot`]), and it moved the value to an older one. A person moving
//! the value forward, to a value the policy cannot rank, or editing another line (no value
//! change) is not a rollback; neither is a revert of a rollback (it moves forward).
//!
//! Invariant: pure. The caller says what "older" means under the image's policy
//! ([`Older`]); when the policy cannot tell (it ranks by registry metadata), a value the
//! target already held before the replaced one counts as older, which is what a revert does.

use time::OffsetDateTime;

use super::{TargetValue, ValueChange};
use crate::git::CommitMeta;

/// A person's rollback of a value imagebump wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rollback {
    /// The value imagebump wrote and the person rolled back from.
    pub from: TargetValue,
    /// The value the person rolled back to (what is deployed now).
    pub to: TargetValue,
    /// The person: the rollback commit's author email.
    pub by: String,
    /// The rollback commit (on a merged side when it came in by a merge), abbreviated.
    pub commit: String,
    /// Its committer time, Unix seconds.
    pub time: i64,
}

impl Rollback {
    /// The rollback's day (UTC), `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        OffsetDateTime::from_unix_timestamp(self.time)
            .map(|t| t.date().to_string())
            .unwrap_or_else(|_| self.time.to_string())
    }
}

/// How the image's policy compares the value rolled back to (`to`) with the one it replaced
/// (`from`): `Some(true)` when `to` is older, `Some(false)` when not (newer, equal, or a value
/// the policy would not pick), `None` when the policy cannot tell from the values alone.
pub type Older<'a> = &'a dyn Fn(&TargetValue, &TargetValue) -> Option<bool>;

/// Whether `meta` is a commit made by imagebump (`bot` is its configured email).
pub fn by_bot(meta: &CommitMeta, bot: &str) -> bool {
    meta.author.email.eq_ignore_ascii_case(bot) || meta.committer.email.eq_ignore_ascii_case(bot)
}

/// Whether a commit message says the commit carries imagebump's own change, though a person
/// made it (a forge's squash merge of imagebump's pull request records the merger as author
/// and committer): it holds the fingerprint marker of imagebump's pull request bodies (a
/// squash message built from the pull request's description), or a `Co-authored-by:` trailer
/// with the bot's email (GitHub adds one per author of the squashed commits).
pub fn squashed_from_bot(message: &str, bot: &str) -> bool {
    message.contains("<!-- imagebump:fingerprint=")
        || message.lines().any(|line| {
            line.trim()
                .strip_prefix("Co-authored-by:")
                .and_then(|who| who.rsplit_once('<'))
                .and_then(|(_, email)| email.trim().strip_suffix('>'))
                .is_some_and(|email| email.trim().eq_ignore_ascii_case(bot))
        })
}

/// Tells imagebump's changes: [`by_bot`], else, for a change a person made, whether its
/// commit message says it is imagebump's squash-merged change ([`squashed_from_bot`]).
pub type IsBot<'a> = &'a dyn Fn(&CommitMeta) -> bool;

/// The rollback the latest change of a target is, if it is one. `changes` are the target's
/// value changes, newest first.
pub fn detect(changes: &[ValueChange], is_bot: IsBot<'_>, older: Older<'_>) -> Option<Rollback> {
    let [latest, replaced, earlier @ ..] = changes else {
        return None;
    };
    let (to, from) = (latest.value.as_ref()?, replaced.value.as_ref()?);
    let is_older = match older(to, from) {
        Some(answer) => answer,
        None => earlier.iter().any(|c| c.value.as_ref() == Some(to)),
    };
    // Who made the two changes is asked last: `is_bot` may read a commit.
    if !is_older || is_bot(&latest.by) || !is_bot(&replaced.by) {
        return None;
    }
    let id = latest.by.id.to_string();
    Some(Rollback {
        from: from.clone(),
        to: to.clone(),
        by: latest.by.author.email.clone(),
        commit: id.get(..7).unwrap_or(&id).to_string(),
        time: latest.by.time,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::git::{Oid, Person};

    const BOT: &str = "bot@imagebump.test";

    fn meta(n: u8, email: &str) -> CommitMeta {
        let person = Person {
            name: "x".into(),
            email: email.into(),
        };
        CommitMeta {
            id: Oid::from_bytes(&[n; 20]).unwrap(),
            author: person.clone(),
            committer: person,
            time: 1_796_256_000 + i64::from(n),
        }
    }

    fn tag(t: &str) -> TargetValue {
        TargetValue {
            tag: Some(t.into()),
            digest: None,
        }
    }

    /// Changes newest first: (value, who).
    fn changes(list: &[(&str, &str)]) -> Vec<ValueChange> {
        list.iter()
            .enumerate()
            .map(|(i, (value, who))| {
                let m = meta(u8::try_from(100 - i).unwrap(), who);
                ValueChange {
                    value: Some(tag(value)),
                    by: m.clone(),
                    landed: m,
                }
            })
            .collect()
    }

    /// Semver-ish for these tests: compare the strings.
    fn by_text(to: &TargetValue, from: &TargetValue) -> Option<bool> {
        Some(to.tag < from.tag)
    }

    fn cannot_tell(_: &TargetValue, _: &TargetValue) -> Option<bool> {
        None
    }

    fn check(list: &[(&str, &str)], older: Older<'_>) -> Option<(String, String)> {
        detect(&changes(list), &|meta| by_bot(meta, BOT), older)
            .map(|r| (r.from.to_string(), format!("{} {}", r.to, r.by)))
    }

    #[test]
    fn a_person_moving_a_bot_value_back_is_a_rollback() {
        let found = check(
            &[("1.1.0", "jane@x"), ("1.2.0", BOT), ("1.1.0", BOT)],
            &by_text,
        );
        assert_eq!(found, Some(("1.2.0".into(), "1.1.0 jane@x".into())));
    }

    #[test]
    fn forward_moves_bot_changes_and_human_values_are_not_rollbacks() {
        // Forward (a revert of the revert).
        assert_eq!(
            check(
                &[("1.2.0", "jane@x"), ("1.1.0", "jane@x"), ("1.2.0", BOT)],
                &by_text
            ),
            None
        );
        // The latest change is the bot's.
        assert_eq!(
            check(&[("1.2.0", BOT), ("1.1.0", "jane@x")], &by_text),
            None
        );
        // The replaced value was a person's, not imagebump's.
        assert_eq!(
            check(&[("1.0.0", "jane@x"), ("1.1.0", "joe@x")], &by_text),
            None
        );
        // A value the policy would not pick.
        assert_eq!(
            check(&[("0.9.0", "jane@x"), ("1.2.0", BOT)], &|_, _| Some(false)),
            None
        );
        // Too little history to tell.
        assert_eq!(check(&[("1.1.0", "jane@x")], &by_text), None);
    }

    #[test]
    fn a_policy_that_cannot_rank_counts_a_return_to_an_earlier_value() {
        let list = [("a", "jane@x"), ("b", BOT), ("a", BOT)];
        assert!(check(&list, &cannot_tell).is_some());
        let list = [("c", "jane@x"), ("b", BOT), ("a", BOT)];
        assert_eq!(check(&list, &cannot_tell), None);
    }

    #[test]
    fn the_bot_is_known_by_author_or_committer() {
        let mut squashed = meta(1, "jane@x");
        squashed.committer.email = "BOT@imagebump.test".into();
        assert!(by_bot(&squashed, BOT));
        assert!(!by_bot(&meta(1, "jane@x"), BOT));
    }

    #[test]
    fn a_squash_merge_of_the_bots_pull_request_is_known_by_its_message() {
        let github = "chore(shop): update api to 1.2.0 (#7)\n\n* chore(shop): update api to 1.2.0\n\nCo-authored-by: imagebump <BOT@imagebump.test>\n";
        assert!(squashed_from_bot(github, BOT));
        let described = "Update api (#7)\n\nimagebump proposes new image tags\n\n<!-- imagebump:fingerprint=abc -->\n";
        assert!(squashed_from_bot(described, BOT));
        let person = "Roll back api\n\nCo-authored-by: joe <joe@example.com>\n";
        assert!(!squashed_from_bot(person, BOT));
        assert!(!squashed_from_bot(
            "mentions bot@imagebump.test in passing",
            BOT
        ));
    }
}
