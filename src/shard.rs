//! Shards: which replica polls which app, without a coordinator.
//!
//! Invariant: for a given shard count `n`, every app name has exactly one owner in `0..n`, and
//! every replica computes the same owner from the name alone (rendezvous hashing with a fixed,
//! version-independent hash: FNV-1a 64 finished by a SplitMix64 mix). Going from `n` to `n + 1`
//! shards moves only the apps the new shard wins, about `1/(n + 1)` of them; no other app changes
//! owner. Pure: no clock, no environment, no I/O (the caller passes the text it read).
//!
//! Sharding only decides who *polls* an app on the schedule. Writes stay safe without it (a git
//! push is a compare-and-swap on the branch, and a pass replans on a rejected push), so any
//! replica may check any app, e.g. on a webhook or on the slower safety-net poll.

use std::fmt;

/// This replica's shard: `index` in `0..count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// A shard text that cannot be used; the message says what to write instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid shard {text:?}: {reason} (write INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/3, or a StatefulSet pod name ending in -INDEX, e.g. imagebump-2/3)"
)]
pub struct ShardError {
    pub text: String,
    pub reason: String,
}

impl Shard {
    /// Parses `i/n`, where `i` is a number or a name ending in `-i` (a StatefulSet pod name such
    /// as `imagebump-2`, so `$(POD_NAME)/3` works from the downward API).
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let error = |reason: &str| ShardError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = text.trim();
        let (index, count) = trimmed
            .rsplit_once('/')
            .ok_or_else(|| error("there is no '/'"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| error("the count after '/' is not a whole number"))?;
        let index = index.trim();
        let digits = if index.bytes().all(|b| b.is_ascii_digit()) {
            index
        } else {
            index
                .rsplit_once('-')
                .filter(|(name, _)| !name.is_empty())
                .map(|(_, digits)| digits)
                .ok_or_else(|| error("the index is neither a number nor a name ending in -N"))?
        };
        let index: u32 = digits
            .parse()
            .map_err(|_| error("the index is neither a number nor a name ending in -N"))?;
        if count == 0 {
            return Err(error("the count must be at least 1"));
        }
        if index >= count {
            return Err(error("the index must be smaller than the count"));
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard polls `app` on the schedule.
    pub fn owns(&self, app: &str) -> bool {
        owner(app, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard in `0..count` that owns `app` (0 when `count` is 0 or 1): the shard whose
/// `score(app, shard)` is highest (ties, which need a 64-bit collision, go to the lower index).
pub fn owner(app: &str, count: u32) -> u32 {
    let mut best = 0;
    let mut best_score = 0;
    for shard in 0..count {
        let score = score(app, shard);
        if shard == 0 || score > best_score {
            best = shard;
            best_score = score;
        }
    }
    best
}

/// The rendezvous weight of (app, shard): FNV-1a over the name, a separator and the shard
/// index, then SplitMix64's finalizer so nearby inputs spread over the whole range.
fn score(app: &str, shard: u32) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in app
        .as_bytes()
        .iter()
        .chain(&[0xff])
        .chain(&shard.to_le_bytes())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("app-{i}")).collect()
    }

    #[test]
    fn each_app_has_exactly_one_owner() {
        for count in 1..=7 {
            let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
            for name in names(1000) {
                let owners = shards.iter().filter(|s| s.owns(&name)).count();
                assert_eq!(owners, 1, "{name} with {count} shards");
            }
        }
    }

    #[test]
    fn the_apps_spread_about_evenly() {
        let mut per_shard = [0usize; 3];
        for name in names(1000) {
            per_shard[owner(&name, 3) as usize] += 1;
        }
        for count in per_shard {
            assert!((250..=420).contains(&count), "{per_shard:?}");
        }
    }

    #[test]
    fn going_from_three_to_four_shards_moves_about_a_quarter_and_only_to_the_new_one() {
        let mut moved = 0;
        for name in names(1000) {
            let before = owner(&name, 3);
            let after = owner(&name, 4);
            if before != after {
                assert_eq!(after, 3, "{name} moved between old shards");
                moved += 1;
            }
        }
        assert!((200..=300).contains(&moved), "moved {moved} of 1000");
    }

    #[test]
    fn the_owner_does_not_depend_on_the_build() {
        // Fixed values: a change of the hash would reshuffle every running deployment.
        let owners: Vec<u32> = ["shop", "blog", "api", "web"]
            .iter()
            .map(|name| owner(name, 3))
            .collect();
        assert_eq!(owners, FIXED_OWNERS);
    }
    const FIXED_OWNERS: [u32; 4] = [2, 0, 0, 2];

    #[test]
    fn shards_parse_from_numbers_and_pod_names() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(
            Shard::parse("imagebump-2/3"),
            Ok(Shard { index: 2, count: 3 })
        );
        assert_eq!(
            Shard::parse(" my-release-imagebump-0 / 4 "),
            Ok(Shard { index: 0, count: 4 })
        );
        assert_eq!(Shard { index: 2, count: 5 }.to_string(), "2/5");
        for bad in [
            "",
            "3",
            "3/3",
            "1/0",
            "a/3",
            "imagebump/3",
            "-1/3",
            "1/x",
            "pod-x/2",
        ] {
            match Shard::parse(bad) {
                Ok(shard) => panic!("{bad:?} parsed as {shard}"),
                Err(error) => assert!(error.to_string().contains("INDEX/COUNT"), "{error}"),
            }
        }
    }
}
