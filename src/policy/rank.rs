//! Comparing two tags under a policy, outside a selection: does one rank above the other?
//! The engine asks it to tell a rollback (a move to a lower-ranked tag) from an upgrade.
//!
//! Invariant: pure, and it answers only what the tags themselves say: policies that rank by
//! registry metadata (`newest_build`, `digest`) and tags the policy cannot rank get `None`,
//! never a guess.

use std::cmp::Ordering;

use super::{Key, Kind, Policy};

impl Policy {
    /// `Some(true)` when `a` ranks strictly above `b` under this policy, `Some(false)` when it
    /// does not, `None` when the policy ranks by metadata or either tag is not a candidate
    /// (filtered out, not parsed, outside the range).
    pub fn ranks_above(&self, a: &str, b: &str) -> Option<bool> {
        if matches!(self.kind, Kind::NewestBuild | Kind::Digest { .. }) {
            return None;
        }
        let (a, b) = (self.tag_key(a)?, self.tag_key(b)?);
        Some(self.cmp_key(&a, &b) == Ordering::Greater)
    }

    /// The key of a tag that is a candidate under this policy.
    fn tag_key<'a>(&self, tag: &'a str) -> Option<Key<'a>> {
        let key = self.key_of(self.filter.value(tag).ok()?).ok()?;
        if let (Kind::Semver { range, .. }, Key::Version(v)) = (&self.kind, &key)
            && !range.matches(v)
        {
            return None;
        }
        Some(key)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{Kind, Parsing, Policy, Range};

    fn semver(range: &str) -> Policy {
        Policy::new(Kind::Semver {
            range: Range::parse(range).unwrap(),
            parsing: Parsing::Loose,
        })
    }

    #[test]
    fn ranks_tags_the_policy_can_rank_and_nothing_else() {
        let policy = semver("^1");
        assert_eq!(policy.ranks_above("1.2.0", "1.1.0"), Some(true));
        assert_eq!(policy.ranks_above("1.1.0", "1.2.0"), Some(false));
        assert_eq!(policy.ranks_above("1.1.0", "1.1.0"), Some(false));
        assert_eq!(
            policy.ranks_above("2.0.0", "1.1.0"),
            None,
            "outside the range"
        );
        assert_eq!(policy.ranks_above("1.2.0", "debug"), None, "not a version");
        assert_eq!(Policy::new(Kind::NewestBuild).ranks_above("b", "a"), None);
    }
}
