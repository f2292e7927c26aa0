//! Versions and ranges with the meaning Masterminds/semver v3 gives them.
//!
//! Owns: parsing a tag into a [`Version`] (loose like Masterminds' `NewVersion`, or strict
//! `X.Y.Z`), precedence, and the range grammar ([`Range`]): `||` groups, AND by spaces and/or
//! commas, the operators `= != > < >= <= => =< ~ ~> ^`, `x`/`X`/`*` wildcards, partial versions,
//! hyphen ranges and the group-level pre-release rule.
//!
//! Invariant: pure code, no I/O. Design choice: every comparator is lowered at parse time into
//! bounds (a precedence bound such as `>= 1.2.3-0`, or a `major.minor.patch` tuple bound such as
//! "below 1.3.0, pre-releases of 1.3.0 included") so that checking a version is a few integer
//! comparisons; the lowering table is the one place where Masterminds' semantics are encoded.
//! The semantics followed are Masterminds/semver v3.5's, to the letter, degenerate inputs
//! included: `^*` is `0.0.0` only and `<=*` is `0.0.x` (as its predicates compute them, whatever
//! its comments say), and a pre-release in any comparator of a group, even a partial one
//! (`<=1.1-a`), admits pre-releases of every version to that group.

use std::cmp::Ordering;
use std::fmt;

/// How tags are read as versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parsing {
    /// Masterminds `NewVersion`: optional `v`, one to three numeric parts (missing ones are 0),
    /// leading zeros accepted and normalised, optional pre-release and build metadata.
    #[default]
    Loose,
    /// Flux: exactly `X.Y.Z` (optional `v`), no leading zeros, optional pre-release and build.
    Strict,
}

/// A parsed version. Build metadata is kept but ignored by [`Version::precedence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Dot-separated pre-release identifiers without the `-`; empty when none.
    pub pre: String,
    /// Build metadata without the `+`; empty when none.
    pub build: String,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

impl Version {
    /// Parses `s`, or `None` when it is not a version under `parsing`.
    pub fn parse(s: &str, parsing: Parsing) -> Option<Version> {
        let b = s.as_bytes();
        let mut i = usize::from(b.first() == Some(&b'v'));
        let mut parts = [0u64; 3];
        let mut n = 0;
        loop {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return None;
            }
            let digits = &s[start..i];
            if parsing == Parsing::Strict && digits.len() > 1 && digits.starts_with('0') {
                return None;
            }
            parts[n] = digits.parse().ok()?;
            n += 1;
            if n == 3 || b.get(i) != Some(&b'.') {
                break;
            }
            i += 1;
        }
        if parsing == Parsing::Strict && n != 3 {
            return None;
        }
        let mut pre = "";
        if b.get(i) == Some(&b'-') {
            let end = scan_identifiers(b, i + 1)?;
            pre = &s[i + 1..end];
            if !valid_prerelease(pre) {
                return None;
            }
            i = end;
        }
        let mut build = "";
        if b.get(i) == Some(&b'+') {
            let end = scan_identifiers(b, i + 1)?;
            build = &s[i + 1..end];
            i = end;
        }
        if i != b.len() {
            return None;
        }
        Some(Version {
            major: parts[0],
            minor: parts[1],
            patch: parts[2],
            pre: pre.to_owned(),
            build: build.to_owned(),
        })
    }

    /// SemVer 2.0 precedence: numbers, then pre-release (a release ranks above its
    /// pre-releases); build metadata is ignored.
    pub fn precedence(&self, other: &Version) -> Ordering {
        self.tuple()
            .cmp(&other.tuple())
            .then_with(|| compare_prerelease(&self.pre, &other.pre))
    }

    fn tuple(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

/// Index just past dot-separated non-empty `[0-9A-Za-z-]+` identifiers starting at `i`, or
/// `None` when there is no complete identifier list there (empty identifier, trailing dot).
fn scan_identifiers(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
            i += 1;
        }
        if i == start {
            return None;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
        } else {
            return Some(i);
        }
    }
}

/// Numeric pre-release identifiers must not have leading zeros (SemVer 2.0 item 9).
fn valid_prerelease(pre: &str) -> bool {
    pre.split('.')
        .all(|id| !(id.len() > 1 && id.starts_with('0') && id.bytes().all(|c| c.is_ascii_digit())))
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let xn = x.bytes().all(|c| c.is_ascii_digit());
                let yn = y.bytes().all(|c| c.is_ascii_digit());
                let ord = match (xn, yn) {
                    // No leading zeros (validated), so length then bytes is numeric order.
                    (true, true) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// An invalid range, with the byte offset of the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid semver range {input:?} at byte {pos}: {message}")]
pub struct RangeError {
    pub input: String,
    pub pos: usize,
    pub message: String,
}

impl RangeError {
    /// The range on one line and a caret under the offending byte on the next.
    pub fn caret(&self) -> String {
        let width = self
            .input
            .get(..self.pos)
            .map_or(self.pos, |p| p.chars().count());
        format!("  {}\n  {}^", self.input, " ".repeat(width))
    }
}

/// A parsed range: OR of AND groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    source: String,
    groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    comparators: Vec<Comparator>,
    /// A comparator of this group names a pre-release, so pre-release versions may match.
    allows_pre: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Comparator {
    /// Same precedence.
    Eq(Version),
    /// Different precedence.
    Ne(Version),
    /// `!=1` (minor `None`) or `!=1.2`: outside that major / major.minor; with a pre-release on
    /// either side, a differing pre-release also counts as outside (Masterminds' rule).
    NeWildcard {
        major: u64,
        minor: Option<u64>,
        pre: String,
    },
    Bounds {
        lower: Lower,
        upper: Upper,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lower {
    None,
    /// `>=` by precedence.
    Incl(Version),
    /// `>` by precedence.
    Excl(Version),
    /// `major.minor.patch` at least this tuple (pre-releases of the tuple included).
    Tuple(u64, u64, u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Upper {
    None,
    Incl(Version),
    Excl(Version),
    /// `major.minor.patch` below this tuple (so pre-releases of the tuple are excluded too).
    Tuple(u64, u64, u64),
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        match self {
            Comparator::Eq(c) => v.precedence(c) == Ordering::Equal,
            Comparator::Ne(c) => v.precedence(c) != Ordering::Equal,
            Comparator::NeWildcard { major, minor, pre } => match minor {
                None => v.major != *major,
                Some(minor) => {
                    v.major != *major
                        || v.minor != *minor
                        || ((!v.pre.is_empty() || !pre.is_empty()) && v.pre != *pre)
                }
            },
            Comparator::Bounds { lower, upper } => {
                let low_ok = match lower {
                    Lower::None => true,
                    Lower::Incl(c) => v.precedence(c) != Ordering::Less,
                    Lower::Excl(c) => v.precedence(c) == Ordering::Greater,
                    Lower::Tuple(a, b, c) => v.tuple() >= (*a, *b, *c),
                };
                low_ok
                    && match upper {
                        Upper::None => true,
                        Upper::Incl(c) => v.precedence(c) != Ordering::Greater,
                        Upper::Excl(c) => v.precedence(c) == Ordering::Less,
                        Upper::Tuple(a, b, c) => v.tuple() < (*a, *b, *c),
                    }
            }
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Range {
    type Err = RangeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Range::parse(s)
    }
}

impl Range {
    /// Parses a Masterminds v3 constraint string.
    pub fn parse(input: &str) -> Result<Range, RangeError> {
        let err = |pos: usize, message: String| RangeError {
            input: input.to_owned(),
            pos,
            message,
        };
        if input.trim().is_empty() {
            return Err(err(0, "the range is empty (use * for any version)".into()));
        }
        let mut groups = Vec::new();
        let mut start = 0;
        loop {
            let end = input[start..].find("||").map_or(input.len(), |i| start + i);
            let (comparators, allows_pre) =
                parse_group(input, start, end).map_err(|(p, m)| err(p, m))?;
            groups.push(Group {
                comparators,
                allows_pre,
            });
            if end == input.len() {
                break;
            }
            start = end + 2;
        }
        Ok(Range {
            source: input.to_owned(),
            groups,
        })
    }

    /// The range as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `v` satisfies the range. A pre-release version only satisfies a group in which
    /// some comparator carries a pre-release (`>=1.0.0-0`).
    pub fn matches(&self, v: &Version) -> bool {
        self.groups.iter().any(|g| {
            (v.pre.is_empty() || g.allows_pre) && g.comparators.iter().all(|c| c.matches(v))
        })
    }
}

type ParseErr = (usize, String);

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

fn skip_space(b: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && is_space(b[i]) {
        i += 1;
    }
    i
}

/// Parses the AND group `input[start..end]` (bytes), and whether one of its comparators was
/// written with a pre-release (which lets the group admit pre-releases; decided on the written
/// versions, since lowering a partial version to a tuple bound drops its pre-release). Errors
/// carry absolute byte offsets.
fn parse_group(input: &str, start: usize, end: usize) -> Result<(Vec<Comparator>, bool), ParseErr> {
    let b = input.as_bytes();
    let mut i = skip_space(b, start, end);
    if i == end {
        let what = if start == 0 && end == input.len() {
            "the range is empty"
        } else {
            "empty alternative: nothing between `||` separators"
        };
        return Err((start.min(input.len()), what.into()));
    }
    let mut out = Vec::new();
    let mut has_pre = false;
    loop {
        i = parse_comparator(input, i, end, &mut out, &mut has_pre)?;
        let after = skip_space(b, i, end);
        if after == end {
            return Ok((out, has_pre));
        }
        if b[after] == b',' {
            let next = skip_space(b, after + 1, end);
            if next == end {
                return Err((after, "a comma must be followed by a comparator".into()));
            }
            i = next;
        } else if after == i {
            return Err((i, unexpected(input, i, end)));
        } else {
            i = after;
        }
    }
}

fn unexpected(input: &str, i: usize, end: usize) -> String {
    let rest: String = input[i..end].chars().take(12).collect();
    format!("unexpected {rest:?}; separate comparators with a space or a comma")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

fn scan_op(b: &[u8], i: usize, end: usize) -> (Op, usize) {
    let two = if i + 2 <= end { &b[i..i + 2] } else { &[][..] };
    match two {
        b"!=" => return (Op::Ne, i + 2),
        b">=" | b"=>" => return (Op::Ge, i + 2),
        b"<=" | b"=<" => return (Op::Le, i + 2),
        b"~>" => return (Op::Tilde, i + 2),
        _ => {}
    }
    match b.get(i) {
        Some(b'=') if i < end => (Op::Eq, i + 1),
        Some(b'>') if i < end => (Op::Gt, i + 1),
        Some(b'<') if i < end => (Op::Lt, i + 1),
        Some(b'~') if i < end => (Op::Tilde, i + 1),
        Some(b'^') if i < end => (Op::Caret, i + 1),
        _ => (Op::Eq, i),
    }
}

/// How much of a range version was written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Spec {
    /// `*`, `x`, `x.1.2`: the major is a wildcard.
    Any,
    /// `1`, `1.x`: the minor is missing or a wildcard.
    Major,
    /// `1.2`, `1.2.x`: the patch is missing or a wildcard.
    Minor,
    /// `1.2.3`.
    Full,
}

struct RangeVersion {
    spec: Spec,
    /// The version with missing/wildcard parts set to 0 (pre-release kept).
    con: Version,
}

fn is_seg(c: u8) -> bool {
    c.is_ascii_digit() || matches!(c, b'x' | b'X' | b'*')
}

fn scan_range_version(
    input: &str,
    mut i: usize,
    end: usize,
) -> Result<(RangeVersion, usize), ParseErr> {
    let b = input.as_bytes();
    if i < end && b[i] == b'v' {
        i += 1;
    }
    let mut segs: Vec<(usize, &str)> = Vec::with_capacity(3);
    loop {
        let s = i;
        while i < end && is_seg(b[i]) {
            i += 1;
        }
        if i == s {
            let msg = if i == end {
                "expected a version after this point".to_owned()
            } else {
                format!(
                    "expected a version, found {:?}",
                    &input[i..end].chars().next().unwrap_or(' ')
                )
            };
            return Err((i, msg));
        }
        segs.push((s, &input[s..i]));
        if segs.len() == 3 || i + 1 >= end || b[i] != b'.' || !is_seg(b[i + 1]) {
            break;
        }
        i += 1;
    }
    let mut pre = "";
    if i < end
        && b[i] == b'-'
        && let Some(e) = scan_identifiers(&b[..end], i + 1)
    {
        pre = &input[i + 1..e];
        if !valid_prerelease(pre) {
            return Err((
                i + 1,
                format!("pre-release {pre:?} has a number with a leading zero"),
            ));
        }
        i = e;
    }
    let mut build = "";
    if i < end
        && b[i] == b'+'
        && let Some(e) = scan_identifiers(&b[..end], i + 1)
    {
        build = &input[i + 1..e];
        i = e;
    }
    let wild = |s: &str| matches!(s, "x" | "X" | "*");
    let num = |(pos, s): (usize, &str)| -> Result<u64, ParseErr> {
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err((
                pos,
                format!("{s:?} is neither a number nor a wildcard (x, X, *)"),
            ));
        }
        s.parse::<u64>()
            .map_err(|_| (pos, format!("{s} is too large")))
    };
    let seg = |k: usize| segs.get(k).copied();
    let spec = match (seg(0), seg(1), seg(2)) {
        (Some((_, s)), _, _) if wild(s) => Spec::Any,
        (_, None, _) => Spec::Major,
        (_, Some((_, s)), _) if wild(s) => Spec::Major,
        (_, _, None) => Spec::Minor,
        (_, _, Some((_, s))) if wild(s) => Spec::Minor,
        _ => Spec::Full,
    };
    let mut con = Version {
        major: 0,
        minor: 0,
        patch: 0,
        pre: pre.to_owned(),
        build: String::new(),
    };
    // Segments after the first wildcard are ignored, as Masterminds does (`1.x.3` is `1.x`).
    if let (Spec::Major | Spec::Minor | Spec::Full, Some(s)) = (spec, seg(0)) {
        con.major = num(s)?;
    }
    if let (Spec::Minor | Spec::Full, Some(s)) = (spec, seg(1)) {
        con.minor = num(s)?;
    }
    if let (Spec::Full, Some(s)) = (spec, seg(2)) {
        con.patch = num(s)?;
        con.build = build.to_owned();
    }
    Ok((RangeVersion { spec, con }, i))
}

/// `n + 1`, or `None` (no upper bound) on overflow.
fn succ(n: u64) -> Option<u64> {
    n.checked_add(1)
}

fn lower_comparator(op: Op, rv: RangeVersion) -> Comparator {
    let RangeVersion { spec, con } = rv;
    let (maj, min, pat) = (con.major, con.minor, con.patch);
    let bounds = |lower, upper| Comparator::Bounds { lower, upper };
    let below_next_major = || succ(maj).map_or(Upper::None, |m| Upper::Tuple(m, 0, 0));
    let below_next_minor = || succ(min).map_or(below_next_major(), |m| Upper::Tuple(maj, m, 0));
    let tilde = |con: Version| {
        let upper = match spec {
            Spec::Any => Upper::None,
            Spec::Full if (maj, min, pat) == (0, 0, 0) => Upper::None,
            Spec::Major => below_next_major(),
            Spec::Minor | Spec::Full => below_next_minor(),
        };
        bounds(Lower::Incl(con), upper)
    };
    match op {
        Op::Eq if spec == Spec::Full => Comparator::Eq(con),
        Op::Eq | Op::Tilde => tilde(con),
        Op::Caret => {
            let upper = match spec {
                // Masterminds' caretPred on `*` (0.0.0, no dirty minor or patch): `=0.0.0`.
                Spec::Any => Upper::Tuple(0, 0, 1),
                Spec::Major => below_next_major(),
                _ if maj > 0 => below_next_major(),
                Spec::Minor => below_next_minor(),
                Spec::Full if min > 0 => below_next_minor(),
                Spec::Full => succ(pat).map_or(below_next_minor(), |p| Upper::Tuple(0, 0, p)),
            };
            bounds(Lower::Incl(con), upper)
        }
        Op::Gt => {
            let lower = match spec {
                Spec::Any | Spec::Full => Lower::Excl(con),
                Spec::Major => match succ(maj) {
                    Some(m) => Lower::Tuple(m, 0, 0),
                    None => return never(),
                },
                Spec::Minor => match succ(min) {
                    Some(m) => Lower::Tuple(maj, m, 0),
                    None => match succ(maj) {
                        Some(m) => Lower::Tuple(m, 0, 0),
                        None => return never(),
                    },
                },
            };
            bounds(lower, Upper::None)
        }
        Op::Lt => bounds(Lower::None, Upper::Excl(con)),
        Op::Ge => bounds(Lower::Incl(con), Upper::None),
        Op::Le => {
            let upper = match spec {
                // Masterminds' lessThanEqualPred on `*`: major 0 and minor 0, any patch.
                Spec::Any => Upper::Tuple(0, 1, 0),
                Spec::Major => below_next_major(),
                Spec::Minor => below_next_minor(),
                Spec::Full => Upper::Incl(con),
            };
            bounds(Lower::None, upper)
        }
        Op::Ne => match spec {
            Spec::Any | Spec::Full => Comparator::Ne(con),
            Spec::Major => Comparator::NeWildcard {
                major: maj,
                minor: None,
                pre: con.pre,
            },
            Spec::Minor => Comparator::NeWildcard {
                major: maj,
                minor: Some(min),
                pre: con.pre,
            },
        },
    }
}

/// A comparator no version satisfies (`>18446744073709551615`).
fn never() -> Comparator {
    Comparator::Bounds {
        lower: Lower::None,
        upper: Upper::Tuple(0, 0, 0),
    }
}

/// Parses one comparator (or a hyphen range, which yields two) at `i`; returns the index after.
fn parse_comparator(
    input: &str,
    i: usize,
    end: usize,
    out: &mut Vec<Comparator>,
    has_pre: &mut bool,
) -> Result<usize, ParseErr> {
    let b = input.as_bytes();
    let (op, after_op) = scan_op(b, i, end);
    let has_op = after_op != i;
    let vstart = skip_space(b, after_op, end);
    let (rv, after) = scan_range_version(input, vstart, end)?;
    *has_pre |= !rv.con.pre.is_empty();
    // Hyphen range: `A - B` (whitespace on both sides of the hyphen, no operators).
    let ws1 = skip_space(b, after, end);
    if ws1 > after && ws1 < end && b[ws1] == b'-' {
        let ws2 = skip_space(b, ws1 + 1, end);
        if ws2 > ws1 + 1 {
            if has_op {
                return Err((i, "a hyphen range `A - B` takes no operator".into()));
            }
            let (upper, after_upper) = scan_range_version(input, ws2, end)?;
            *has_pre |= !upper.con.pre.is_empty();
            out.push(lower_comparator(Op::Ge, rv));
            out.push(lower_comparator(Op::Le, upper));
            return Ok(after_upper);
        }
    }
    out.push(lower_comparator(op, rv));
    Ok(after)
}
