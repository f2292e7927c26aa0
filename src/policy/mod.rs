//! Tag selection: which tag (and digest) an image should move to.
//!
//! Owns the policies (semver with Masterminds v3 ranges, alphabetical, numerical, newest build,
//! digest), the tag filters, `pin_digest` and the safety rules (no downgrade below the deployed
//! version, `min_age`).
//!
//! Architecture invariant: policy is pure. No tokio, reqwest, git2, no I/O and no clock reads:
//! the caller passes the tags, the metadata it has fetched so far and `now`.
//!
//! Main design choice: selection is a step function the async caller drives. [`Policy::select`]
//! either decides or answers [`Step::NeedMetadata`] with the few tags whose digest / creation
//! time it needs next; the caller fetches those into the map and calls again. It asks only for
//! what the decision needs: every filtered candidate for `newest_build`, the top-ranked tags one
//! at a time for `min_age` and for a platform filter (best first, stopping at the first that has
//! every platform), the chosen tag for `pin_digest` and `digest`.
//!
//! Tie-break: two tags that rank the same (`v1.2.3` and `1.2.3`, or two tags extracting the same
//! value) are ordered by their bytes and the greater tag wins (`v1.2.3` over `1.2.3` over
//! `01.2.3`). A candidate ranking the same as the deployed tag never replaces
//! it, so the tie-break cannot cause churn.

mod explain;
mod filter;
mod order;
mod rank;
mod semver;
mod why;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use time::{Duration, OffsetDateTime};

pub use explain::{Explanation, TagVerdict, Verdict};
pub use filter::{Filter, FilterError};
pub use order::{Order, OrderError};
pub use semver::{Parsing, Range, RangeError, Version};
pub use why::{HeldUntil, Lacking, Promotion, Skipped, Why};

use filter::Skip;
use order::Decimal;

/// The default `min_age` the config applies: images younger than this are not deployed yet.
pub const DEFAULT_MIN_AGE: Duration = Duration::minutes(30);

/// What a policy ranks tags by.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Highest version satisfying the range.
    Semver { range: Range, parsing: Parsing },
    /// Byte order of the tag (or extracted value); `asc` picks the greatest.
    Alphabetical(Order),
    /// Decimal value of the tag (or extracted value); tags that are not numbers are skipped.
    Numerical(Order),
    /// Most recent image creation time; ties broken by tag.
    NewestBuild,
    /// Follow one mutable tag: the decision is that tag's current digest.
    Digest { tag: String },
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Semver { range, parsing } => {
                write!(f, "semver {range}")?;
                if *parsing == Parsing::Strict {
                    f.write_str(" (strict)")?;
                }
                Ok(())
            }
            Kind::Alphabetical(o) => write!(f, "alphabetical {o}"),
            Kind::Numerical(o) => write!(f, "numerical {o}"),
            Kind::NewestBuild => f.write_str("newest_build"),
            Kind::Digest { tag } => write!(f, "digest of {tag}"),
        }
    }
}

/// A complete policy for one image.
#[derive(Debug, Clone)]
pub struct Policy {
    pub kind: Kind,
    pub filter: Filter,
    /// Permit choosing a version that ranks below the deployed one.
    pub allow_downgrade: bool,
    /// Skip tags whose image is younger than this (needs creation times from the registry).
    /// `None` or a zero duration turns the rule off.
    pub min_age: Option<Duration>,
    /// Decide `tag@digest` instead of the tag alone.
    pub pin_digest: bool,
    /// Platforms (canonical `os/arch[/variant]`, as the caller writes [`TagMeta::platforms`])
    /// every chosen tag must have an image for; a candidate lacking one is skipped with a
    /// reason. Empty: no platform filter.
    pub platforms: Vec<String>,
}

impl Policy {
    /// The policy in words, for people: `semver ~1.4, min_age 30m, pinned by digest`.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.kind.to_string()];
        if let Some(min_age) = self.min_age.filter(|d| d.is_positive()) {
            parts.push(format!("min_age {min_age}"));
        }
        if self.pin_digest {
            parts.push("pinned by digest".to_string());
        }
        if !self.platforms.is_empty() {
            parts.push(format!("platforms {}", self.platforms.join(", ")));
        }
        if self.allow_downgrade {
            parts.push("downgrades allowed".to_string());
        }
        parts.join(", ")
    }

    /// A policy with the safe defaults: default filter (cosign tags excluded), no downgrade,
    /// `min_age` [`DEFAULT_MIN_AGE`], no digest pin.
    pub fn new(kind: Kind) -> Policy {
        Policy {
            kind,
            filter: Filter::default(),
            allow_downgrade: false,
            min_age: Some(DEFAULT_MIN_AGE),
            pin_digest: false,
            platforms: Vec::new(),
        }
    }
}

/// Registry metadata of one tag. Insert an entry for every tag [`Step::NeedMetadata`] asks
/// for, with `None` fields when the registry could not tell: a tag with an entry is never
/// asked for again, except by a policy with a platform filter when its `platforms` is `None`
/// (not fetched, or the registry failed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagMeta {
    /// Manifest digest (`sha256:…`).
    pub digest: Option<String>,
    /// Image creation time from the config blob.
    pub created: Option<OffsetDateTime>,
    /// The platforms the tag's image has (an index's entries, or a single image's own), in the
    /// canonical form of [`Policy::platforms`]; `None`: not known.
    pub platforms: Option<Vec<String>>,
}

/// What is deployed now, as read from the config repo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Current<'a> {
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl<'a> Current<'a> {
    /// Only a tag is deployed (no digest pin).
    pub fn tag(tag: &'a str) -> Current<'a> {
        Current {
            tag: Some(tag),
            digest: None,
        }
    }
}

/// The outcome of a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The tag to deploy (the deployed one when `keep_current`).
    pub tag: String,
    /// The digest to pin, with `pin_digest` or the `digest` policy.
    pub digest: Option<String>,
    /// Why, for logs, dry-run plans and commit messages.
    pub reason: String,
    /// Why, as a value: the kind and the tags it names.
    pub why: Why,
    /// Nothing to change: the deployed tag (and digest) stay.
    pub keep_current: bool,
    /// The best tag the policy allows, whether or not it is deployed (below the deployed tag
    /// when a downgrade is refused); `None` when no candidate is eligible yet (`min_age`).
    pub best: Option<String>,
}

/// One step of a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Decided(Decision),
    /// Fetch these tags' metadata into the map and call [`Policy::select`] again.
    NeedMetadata(Vec<String>),
}

/// No tag can be chosen; `reason` says why in words meant for the user, `why` as a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct NoMatch {
    pub reason: String,
    pub why: Box<Why>,
}

/// The value a candidate is ranked by.
#[derive(Debug)]
enum Key<'a> {
    Version(Version),
    Text(Cow<'a, str>),
    /// Validated by [`Decimal::parse`].
    Number(Cow<'a, str>),
    /// Creation time as Unix nanoseconds (cheaper to compare than `OffsetDateTime`).
    Time(i128),
}

/// The candidates keyed for ranking, the count of the other tags by reason, and the deployed
/// tag's key.
type Prepared<'a> = (Vec<Candidate<'a>>, Tally, Option<Key<'a>>);

/// Why a tag is not a candidate.
#[derive(Debug)]
enum Reject {
    /// Left out by the tag filters (or not a valid tag).
    Filtered(Skip),
    /// Not a version (semver) or not a number (numerical).
    Unparsed,
    /// A version outside the semver range.
    Outside(Version),
}

impl Key<'_> {
    /// The same key, owning its text.
    fn into_owned(self) -> Key<'static> {
        match self {
            Key::Version(v) => Key::Version(v),
            Key::Text(t) => Key::Text(Cow::Owned(t.into_owned())),
            Key::Number(n) => Key::Number(Cow::Owned(n.into_owned())),
            Key::Time(t) => Key::Time(t),
        }
    }
}

#[derive(Debug)]
struct Candidate<'a> {
    tag: &'a str,
    key: Key<'a>,
}

/// Counts of skipped tags, for reasons.
#[derive(Debug, Default)]
struct Tally {
    total: usize,
    invalid: usize,
    cosign: usize,
    filtered: usize,
    unparsed: usize,
    outside: usize,
    no_time: usize,
}

impl Tally {
    fn skip(&mut self, skip: Skip) {
        match skip {
            Skip::InvalidTag => self.invalid += 1,
            Skip::Cosign => self.cosign += 1,
            Skip::NotIncluded | Skip::Excluded | Skip::EmptyExtract => self.filtered += 1,
        }
    }

    fn summary(&self, kind: &Kind) -> String {
        let mut parts = Vec::new();
        let mut add = |n: usize, what: &str| {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        };
        add(self.filtered, "left out by the include/exclude filters");
        add(self.cosign, "cosign signature/attestation tags");
        add(self.invalid, "not valid OCI tags");
        let unparsed = match kind {
            Kind::Numerical(_) => "not numbers",
            _ => "not versions",
        };
        add(self.unparsed, unparsed);
        add(self.outside, "outside the range");
        add(self.no_time, "without a known creation time");
        let tags = if self.total == 1 { "tag" } else { "tags" };
        if parts.is_empty() {
            format!("{} {tags}", self.total)
        } else {
            format!("{} {tags}: {}", self.total, parts.join(", "))
        }
    }
}

/// Where a walk over the ranked candidates stopped, and what it skipped on the way.
#[derive(Debug, Default)]
struct Walk<'a> {
    /// The candidate it stopped at: the current tag or the first eligible one.
    chosen: Option<Candidate<'a>>,
    /// The first candidate that does not rank above the current tag (downgrades refused).
    blocked_by: Option<&'a str>,
    /// Skipped: younger than `min_age`.
    young: Vec<&'a str>,
    /// Skipped: without an image for a required platform.
    lacking: Vec<Lacking>,
    /// Skipped: creation time unknown while `min_age` needs it.
    unknown_age: Vec<&'a str>,
}

impl Walk<'_> {
    /// What the walk passed over, as a value.
    fn skipped(&self) -> Skipped {
        Skipped {
            young: self.young.iter().map(|t| (*t).to_owned()).collect(),
            unknown_age: self.unknown_age.iter().map(|t| (*t).to_owned()).collect(),
            lacking_platforms: self.lacking.clone(),
        }
    }

    fn skipped_any(&self) -> bool {
        !self.young.is_empty() || !self.unknown_age.is_empty() || !self.lacking.is_empty()
    }

    /// The skipped candidates as `; skipped ... (why)` notes for a reason.
    fn notes(&self, policy: &Policy) -> String {
        let mut notes = String::new();
        if !self.young.is_empty() {
            let min_age = policy.min_age.unwrap_or(Duration::ZERO);
            notes.push_str(&format!(
                "; skipped {} (younger than min_age {min_age})",
                list(&self.young)
            ));
        }
        if !self.unknown_age.is_empty() {
            notes.push_str(&format!(
                "; skipped {} (creation time unknown, min_age needs it)",
                list(&self.unknown_age)
            ));
        }
        if !self.lacking.is_empty() {
            let lacking: Vec<String> = self
                .lacking
                .iter()
                .map(|l| format!("{} (no {} image)", l.tag, l.platforms.join(", ")))
                .collect();
            let lacking: Vec<&str> = lacking.iter().map(String::as_str).collect();
            notes.push_str(&format!(
                "; skipped {} (platform filter {})",
                list(&lacking),
                policy.platforms.join(", ")
            ));
        }
        notes
    }
}

/// A reason in words and as a value, from the same facts.
struct Said {
    reason: String,
    why: Why,
}

/// What [`Policy::conclude`] needs besides the walk: the selection's inputs and counts.
struct Selection<'s> {
    tags: &'s [String],
    current: Current<'s>,
    meta: &'s HashMap<String, TagMeta>,
    /// Candidates the walk ranked.
    matching: usize,
    tally: &'s Tally,
    /// The current tag has a key under this policy (else no downgrade check was possible).
    current_ranks: bool,
}

impl Policy {
    /// Ranks `a` against `b` for this policy: `Greater` means `a` is preferred.
    fn cmp_key(&self, a: &Key<'_>, b: &Key<'_>) -> Ordering {
        match (a, b) {
            (Key::Version(x), Key::Version(y)) => x.precedence(y),
            (Key::Text(x), Key::Text(y)) => self.order().rank(x.as_bytes().cmp(y.as_bytes())),
            (Key::Number(x), Key::Number(y)) => {
                let ascending = match (Decimal::parse(x), Decimal::parse(y)) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    // Unreachable: both were validated when the key was built.
                    _ => x.cmp(y),
                };
                self.order().rank(ascending)
            }
            (Key::Time(x), Key::Time(y)) => x.cmp(y),
            // Keys of one selection always have the same variant.
            _ => Ordering::Equal,
        }
    }

    fn order(&self) -> Order {
        match self.kind {
            Kind::Alphabetical(o) | Kind::Numerical(o) => o,
            _ => Order::Asc,
        }
    }

    fn cmp_candidates(&self, a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
        self.cmp_key(&a.key, &b.key)
            .then_with(|| a.tag.as_bytes().cmp(b.tag.as_bytes()))
    }

    /// The key of a value (tag or extracted value) under this policy, if it has one.
    fn key_of<'a>(&self, value: Cow<'a, str>) -> Result<Key<'a>, ()> {
        match &self.kind {
            Kind::Semver { parsing, .. } => {
                Version::parse(&value, *parsing).map(Key::Version).ok_or(())
            }
            Kind::Alphabetical(_) => Ok(Key::Text(value)),
            Kind::Numerical(_) => match Decimal::parse(&value) {
                Some(_) => Ok(Key::Number(value)),
                None => Err(()),
            },
            // Filled from metadata later.
            Kind::NewestBuild | Kind::Digest { .. } => Ok(Key::Time(0)),
        }
    }

    /// One selection step. `tags` is the repository's tag list, `current` what is deployed,
    /// `meta` the metadata fetched so far, `now` the time `min_age` is measured against.
    ///
    /// The steps: keep the tags this policy can rank (`candidates`), give each its
    /// creation time under `newest_build` (`rank_by_time`), walk them best first until
    /// one is eligible (`walk`), then word the decision (`conclude`). Any
    /// step may ask for metadata it lacks instead ([`Step::NeedMetadata`]).
    pub fn select(
        &self,
        tags: &[String],
        current: Current<'_>,
        meta: &HashMap<String, TagMeta>,
        now: OffsetDateTime,
    ) -> Result<Step, NoMatch> {
        if let Kind::Digest { tag } = &self.kind {
            return self.select_digest(tag, tags, current, meta, now);
        }
        let (cands, tally, current_key) = match self.ranked_candidates(tags, current, meta) {
            Ok(ranked) => ranked,
            Err(missing) => return Ok(Step::NeedMetadata(missing)),
        };
        let matching = cands.len();
        let walk = match self.walk(cands, current, current_key.as_ref(), meta, now) {
            Ok(walk) => walk,
            Err(missing) => return Ok(Step::NeedMetadata(missing)),
        };
        let selection = Selection {
            tags,
            current,
            meta,
            matching,
            tally: &tally,
            current_ranks: current_key.is_some(),
        };
        self.conclude(walk, &selection)
    }

    /// The candidates keyed for ranking (by creation time under `newest_build`), the count of
    /// the other tags by reason, and the deployed tag's key. `Err`: the metadata still missing.
    fn ranked_candidates<'a>(
        &self,
        tags: &'a [String],
        current: Current<'_>,
        meta: &HashMap<String, TagMeta>,
    ) -> Result<Prepared<'a>, Vec<String>> {
        let (mut cands, mut tally) = self.candidates(tags);
        let current_key = if matches!(self.kind, Kind::NewestBuild) {
            self.rank_by_time(&mut cands, &mut tally, current, meta)?
        } else {
            current.tag.and_then(|t| {
                self.key_of(self.filter.current_value(t))
                    .ok()
                    .map(Key::into_owned)
            })
        };
        Ok((cands, tally, current_key))
    }

    /// The tags this policy can rank (filtered, parsed, inside the semver range), and the count
    /// of the others by reason.
    fn candidates<'a>(&self, tags: &'a [String]) -> (Vec<Candidate<'a>>, Tally) {
        let mut tally = Tally {
            total: tags.len(),
            ..Tally::default()
        };
        let mut cands = Vec::new();
        for tag in tags {
            match self.candidate(tag) {
                Ok(candidate) => cands.push(candidate),
                Err(Reject::Filtered(skip)) => tally.skip(skip),
                Err(Reject::Unparsed) => tally.unparsed += 1,
                Err(Reject::Outside(_)) => tally.outside += 1,
            }
        }
        (cands, tally)
    }

    /// One tag as a candidate, or why it is not one.
    fn candidate<'a>(&self, tag: &'a str) -> Result<Candidate<'a>, Reject> {
        let value = self.filter.value(tag).map_err(Reject::Filtered)?;
        let key = self.key_of(value).map_err(|()| Reject::Unparsed)?;
        if let (Kind::Semver { range, .. }, Key::Version(v)) = (&self.kind, &key)
            && !range.matches(v)
        {
            return Err(Reject::Outside(v.clone()));
        }
        Ok(Candidate { tag, key })
    }

    /// `newest_build`: keys every candidate by its creation time (dropping those without one)
    /// and returns the current tag's key. `Err`: the tags whose metadata is still missing (the
    /// current tag included when downgrades are refused, as it bounds the choice).
    fn rank_by_time<'a>(
        &self,
        cands: &mut Vec<Candidate<'a>>,
        tally: &mut Tally,
        current: Current<'_>,
        meta: &HashMap<String, TagMeta>,
    ) -> Result<Option<Key<'a>>, Vec<String>> {
        // One map lookup per candidate: the creation time, or a note that it is missing.
        let mut missing: Vec<String> = Vec::new();
        let mut no_time = 0;
        cands.retain_mut(|c| match meta.get(c.tag) {
            None => {
                missing.push(c.tag.to_owned());
                false
            }
            Some(TagMeta {
                created: Some(t), ..
            }) => {
                c.key = Key::Time(t.unix_timestamp_nanos());
                true
            }
            Some(_) => {
                no_time += 1;
                false
            }
        });
        tally.no_time = no_time;
        if let Some(t) = current.tag
            && !self.allow_downgrade
            && !meta.contains_key(t)
            && !missing.iter().any(|m| m == t)
        {
            missing.push(t.to_owned());
        }
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(current
            .tag
            .and_then(|t| meta.get(t))
            .and_then(|m| m.created)
            .map(|t| Key::Time(t.unix_timestamp_nanos())))
    }

    /// Walks the candidates best first and stops at the current tag, at the first one that
    /// does not rank above it (downgrades refused), or at the first eligible one (platforms,
    /// `min_age`), noting every candidate skipped on the way. `Err`: the metadata of the next
    /// candidate is needed to tell.
    fn walk<'a>(
        &self,
        cands: Vec<Candidate<'a>>,
        current: Current<'_>,
        current_key: Option<&Key<'_>>,
        meta: &HashMap<String, TagMeta>,
        now: OffsetDateTime,
    ) -> Result<Walk<'a>, Vec<String>> {
        let mut walk = Walk::default();
        let ranked = Ranked {
            policy: self,
            rest: cands,
            taken: 0,
            sorted: false,
        };
        for c in ranked {
            if Some(c.tag) == current.tag {
                walk.chosen = Some(c);
                break;
            }
            if !self.allow_downgrade
                && let Some(ck) = current_key
                && self.cmp_key(&c.key, ck) != Ordering::Greater
            {
                walk.blocked_by = Some(c.tag);
                break;
            }
            if !self.platforms.is_empty() {
                let Some(offered) = meta.get(c.tag).and_then(|m| m.platforms.as_ref()) else {
                    return Err(vec![c.tag.to_owned()]);
                };
                let missing = self.missing_platforms(offered);
                if !missing.is_empty() {
                    walk.lacking.push(Lacking {
                        tag: c.tag.to_owned(),
                        platforms: missing.into_iter().map(str::to_owned).collect(),
                    });
                    continue;
                }
            }
            if let Some(min_age) = self.min_age.filter(|d| d.is_positive()) {
                match meta.get(c.tag) {
                    None => return Err(vec![c.tag.to_owned()]),
                    Some(TagMeta { created: None, .. }) => {
                        walk.unknown_age.push(c.tag);
                        continue;
                    }
                    Some(TagMeta {
                        created: Some(t), ..
                    }) if now - *t < min_age => {
                        walk.young.push(c.tag);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            walk.chosen = Some(c);
            break;
        }
        Ok(walk)
    }

    /// The decision (or the refusal) a finished walk means, with its reason.
    fn conclude(&self, walk: Walk<'_>, sel: &Selection<'_>) -> Result<Step, NoMatch> {
        let notes = walk.notes(self);
        let matching = sel.matching;
        let what = match self.kind {
            Kind::Semver { .. } => "highest",
            Kind::Alphabetical(Order::Asc) => "last in byte order",
            Kind::Alphabetical(Order::Desc) => "first in byte order",
            Kind::Numerical(Order::Asc) => "highest",
            Kind::Numerical(Order::Desc) => "lowest",
            Kind::NewestBuild | Kind::Digest { .. } => "newest",
        };
        let noun = if matching == 1 {
            "candidate"
        } else {
            "candidates"
        };
        let best = walk
            .chosen
            .as_ref()
            .map(|c| c.tag)
            .or(walk.blocked_by)
            .map(str::to_owned);
        let with_best = |step: Result<Step, NoMatch>| {
            step.map(|step| match step {
                Step::Decided(decision) => Step::Decided(Decision {
                    best: best.clone(),
                    ..decision
                }),
                other => other,
            })
        };
        let finish = |tag: &str, is_current: bool, reason: String, why: Why| {
            with_best(self.finish(tag, is_current, Said { reason, why }, sel))
        };
        let skipped = walk.skipped();
        match (&walk.chosen, sel.current.tag) {
            (Some(c), Some(cur)) if c.tag == cur => {
                let reason = format!(
                    "{}: current {cur} is the {what} of {matching} {noun}{notes}",
                    self.kind
                );
                let why = Why::UpToDate {
                    current: cur.to_owned(),
                    skipped,
                };
                finish(cur, true, reason, why)
            }
            (Some(c), _) => {
                let mut reason = format!("{}: {what} of {matching} {noun}", self.kind);
                if let Some(cur) = sel.current.tag
                    && !sel.current_ranks
                {
                    reason.push_str(&format!(
                        "; current {cur} does not rank under this policy, no downgrade check"
                    ));
                }
                reason.push_str(&notes);
                let why = Why::Newer {
                    tag: c.tag.to_owned(),
                    skipped,
                };
                finish(c.tag, false, reason, why)
            }
            (None, Some(cur)) if walk.blocked_by.is_some() || walk.skipped_any() => {
                let (reason, why) = match walk.blocked_by {
                    Some(best) if notes.is_empty() => (
                        format!(
                            "{}: keeping current {cur}: it ranks at or above the best candidate {best} (allow_downgrade is off)",
                            self.kind
                        ),
                        Why::NotDowngrading {
                            current: cur.to_owned(),
                            best: best.to_owned(),
                        },
                    ),
                    _ => (
                        format!(
                            "{}: keeping current {cur}: no newer candidate is eligible{notes}",
                            self.kind
                        ),
                        Why::Waiting {
                            current: cur.to_owned(),
                            skipped,
                        },
                    ),
                };
                finish(cur, true, reason, why)
            }
            (None, _) => {
                let (reason, why) = if matching == 0 {
                    (
                        format!(
                            "{}: no tag matches ({})",
                            self.kind,
                            sel.tally.summary(&self.kind)
                        ),
                        Why::NoTagMatches {
                            tags: sel.tally.total,
                        },
                    )
                } else {
                    (
                        format!(
                            "{}: none of {matching} {noun} is eligible{notes}",
                            self.kind
                        ),
                        Why::NoneEligible { skipped },
                    )
                };
                Err(NoMatch {
                    reason,
                    why: Box::new(why),
                })
            }
        }
    }

    /// The required platforms `offered` lacks.
    fn missing_platforms(&self, offered: &[String]) -> Vec<&str> {
        self.platforms
            .iter()
            .filter(|p| !offered.contains(p))
            .map(String::as_str)
            .collect()
    }

    /// Completes a decision for `tag`, fetching its digest first under `pin_digest`.
    fn finish(
        &self,
        tag: &str,
        is_current: bool,
        said: Said,
        sel: &Selection<'_>,
    ) -> Result<Step, NoMatch> {
        let Said { reason, why } = said;
        let (current, tags, meta) = (sel.current, sel.tags, sel.meta);
        if !self.pin_digest {
            return Ok(Step::Decided(Decision {
                tag: tag.to_owned(),
                digest: None,
                reason,
                why,
                keep_current: is_current,
                best: None,
            }));
        }
        let keep_as_is = |reason: String| {
            Ok(Step::Decided(Decision {
                tag: tag.to_owned(),
                digest: current.digest.map(str::to_owned),
                reason,
                why: why.clone(),
                keep_current: true,
                best: None,
            }))
        };
        match meta.get(tag).map(|m| m.digest.as_deref()) {
            None if is_current && !tags.iter().any(|t| t == tag) => keep_as_is(format!(
                "{reason}; {tag} is no longer in the registry, digest kept"
            )),
            None => Ok(Step::NeedMetadata(vec![tag.to_owned()])),
            Some(None) if is_current => keep_as_is(format!(
                "{reason}; the registry gave no digest for {tag}, digest kept"
            )),
            Some(None) => Err(NoMatch {
                reason: format!("{reason}, but the registry gave no digest for {tag} to pin"),
                why: Box::new(Why::NoDigest {
                    tag: tag.to_owned(),
                }),
            }),
            Some(Some(digest)) => {
                let keep = is_current && current.digest == Some(digest);
                let reason = if is_current && !keep {
                    format!("{reason}; pinning {tag} to its digest {digest}")
                } else {
                    reason
                };
                Ok(Step::Decided(Decision {
                    tag: tag.to_owned(),
                    digest: Some(digest.to_owned()),
                    reason,
                    why: why.clone(),
                    keep_current: keep,
                    best: None,
                }))
            }
        }
    }

    fn select_digest(
        &self,
        tag: &str,
        tags: &[String],
        current: Current<'_>,
        meta: &HashMap<String, TagMeta>,
        now: OffsetDateTime,
    ) -> Result<Step, NoMatch> {
        let kind = &self.kind;
        if !tags.iter().any(|t| t == tag) {
            return Err(NoMatch {
                reason: format!(
                    "{kind}: the repository has no tag {tag} ({} tags)",
                    tags.len()
                ),
                why: Box::new(Why::MissingTag {
                    tag: tag.to_owned(),
                }),
            });
        }
        let Some(m) = meta.get(tag) else {
            return Ok(Step::NeedMetadata(vec![tag.to_owned()]));
        };
        let Some(digest) = m.digest.as_deref() else {
            return Err(NoMatch {
                reason: format!("{kind}: the registry gave no digest for {tag}"),
                why: Box::new(Why::NoDigest {
                    tag: tag.to_owned(),
                }),
            });
        };
        let keep = |reason: String, why: Why| {
            Ok(Step::Decided(Decision {
                tag: current.tag.unwrap_or(tag).to_owned(),
                digest: current.digest.map(str::to_owned),
                reason,
                why,
                keep_current: true,
                best: None,
            }))
        };
        let waiting = |skipped: Skipped| Why::DigestWaiting {
            tag: tag.to_owned(),
            digest: digest.to_owned(),
            skipped,
        };
        if current.digest == Some(digest) {
            let why = Why::SameDigest {
                tag: tag.to_owned(),
                digest: digest.to_owned(),
            };
            return keep(
                format!("{kind}: {tag} still points to the deployed {digest}"),
                why,
            );
        }
        let blocked = match self.digest_blocked(tag, m, now) {
            Ok(blocked) => blocked,
            Err(missing) => return Ok(Step::NeedMetadata(missing)),
        };
        if let Some((text, skipped)) = blocked {
            let reason = format!("{kind}: not moving to {digest}: {text}");
            let why = waiting(skipped);
            return match current.digest {
                Some(_) => keep(reason, why),
                None => Err(NoMatch {
                    reason,
                    why: Box::new(why),
                }),
            };
        }
        Ok(Step::Decided(Decision {
            tag: tag.to_owned(),
            digest: Some(digest.to_owned()),
            reason: format!("{kind}: {tag} points to {digest}"),
            why: Why::NewDigest {
                tag: tag.to_owned(),
                digest: digest.to_owned(),
            },
            keep_current: false,
            best: Some(tag.to_owned()),
        }))
    }

    /// Why the digest policy may not move to the tag's new image yet (a platform it lacks,
    /// `min_age`), in words and as the skipped tag; `Err`: its platforms must be fetched first.
    fn digest_blocked(
        &self,
        tag: &str,
        m: &TagMeta,
        now: OffsetDateTime,
    ) -> Result<Option<(String, Skipped)>, Vec<String>> {
        if !self.platforms.is_empty() {
            let Some(offered) = m.platforms.as_ref() else {
                return Err(vec![tag.to_owned()]);
            };
            let missing = self.missing_platforms(offered);
            if !missing.is_empty() {
                let text = format!(
                    "it has no {} image (platform filter {})",
                    missing.join(", "),
                    self.platforms.join(", ")
                );
                let skipped = Skipped {
                    lacking_platforms: vec![Lacking {
                        tag: tag.to_owned(),
                        platforms: missing.into_iter().map(str::to_owned).collect(),
                    }],
                    ..Skipped::default()
                };
                return Ok(Some((text, skipped)));
            }
        }
        let Some(min_age) = self.min_age.filter(|d| d.is_positive()) else {
            return Ok(None);
        };
        Ok(match m.created {
            None => Some((
                "its creation time is unknown and min_age needs it".to_owned(),
                Skipped {
                    unknown_age: vec![tag.to_owned()],
                    ..Skipped::default()
                },
            )),
            Some(t) if now - t < min_age => Some((
                format!("it is younger than min_age {min_age}"),
                Skipped {
                    young: vec![tag.to_owned()],
                    ..Skipped::default()
                },
            )),
            Some(_) => None,
        })
    }
}

/// Candidates best first. The walk usually stops at the first, so the first few come from a
/// linear scan each (O(n), no sort of 100,000 tags); only a deeper walk sorts the rest once.
struct Ranked<'p, 'a> {
    policy: &'p Policy,
    rest: Vec<Candidate<'a>>,
    taken: usize,
    sorted: bool,
}

impl<'a> Iterator for Ranked<'_, 'a> {
    type Item = Candidate<'a>;

    fn next(&mut self) -> Option<Candidate<'a>> {
        const SCANS: usize = 8;
        if self.taken < SCANS {
            let rest = &self.rest;
            let best =
                (0..rest.len()).max_by(|&i, &j| self.policy.cmp_candidates(&rest[i], &rest[j]))?;
            self.taken += 1;
            return Some(self.rest.swap_remove(best));
        }
        if !self.sorted {
            // Ascending, so that `pop` yields the best.
            self.rest
                .sort_unstable_by(|a, b| self.policy.cmp_candidates(a, b));
            self.sorted = true;
        }
        self.rest.pop()
    }
}

/// `a, b, c` or `a, b, c and 4 more`.
fn list(tags: &[&str]) -> String {
    const SHOWN: usize = 3;
    let head = tags
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if tags.len() > SHOWN {
        format!("{head} and {} more", tags.len() - SHOWN)
    } else {
        head
    }
}

#[cfg(test)]
mod tests;
