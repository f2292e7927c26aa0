//! Tag filters: which tags a policy may look at, and which value of each it ranks.
//!
//! Owns: the OCI tag syntax check, the default exclusion of cosign signature/attestation/SBOM
//! tags, the `include` / `exclude` regexes and the `extract` template (`$ts`, `${version}`, `$1`
//! over the groups of `include`). Invariant: pure, no I/O. Design choice: the template is
//! validated against the include pattern's groups when the filter is built, so a typo such as
//! `$tss` is a config error instead of every tag silently extracting to nothing.

use regex::Regex;

pub(crate) use crate::reference::is_valid_tag;

/// Suffixes of the tags cosign pushes next to an image (`sha256-<hex>.sig` and friends).
const COSIGN_SUFFIXES: [&str; 3] = [".sig", ".att", ".sbom"];

/// An invalid filter, naming the field to fix.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("tags.include: invalid regular expression {pattern:?}: {source}")]
    Include {
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("tags.exclude[{index}]: invalid regular expression {pattern:?}: {source}")]
    Exclude {
        index: usize,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error(
        "tags.extract needs tags.include: the template {template:?} reads the include pattern's groups"
    )]
    ExtractWithoutInclude { template: String },
    #[error(
        "tags.extract: {template:?} refers to group {group:?}, which tags.include {pattern:?} does not define"
    )]
    UnknownGroup {
        template: String,
        group: String,
        pattern: String,
    },
}

/// Which tags a policy considers, and the value it ranks for each.
#[derive(Debug, Clone)]
pub struct Filter {
    include: Option<Regex>,
    exclude: Vec<Regex>,
    extract: Option<String>,
    /// Skip cosign `.sig` / `.att` / `.sbom` tags (on by default).
    pub exclude_cosign: bool,
}

impl Default for Filter {
    /// No include/exclude/extract; cosign tags excluded.
    fn default() -> Self {
        Filter {
            include: None,
            exclude: Vec::new(),
            extract: None,
            exclude_cosign: true,
        }
    }
}

/// Why a tag was left out, for the decision's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    InvalidTag,
    Cosign,
    NotIncluded,
    Excluded,
    EmptyExtract,
}

impl Filter {
    /// Builds a filter from user strings. Regexes use the `regex` crate syntax (RE2-like, as
    /// Go's `regexp`) and match anywhere in the tag unless anchored with `^...$`.
    pub fn new<S: AsRef<str>>(
        include: Option<&str>,
        exclude: &[S],
        extract: Option<&str>,
    ) -> Result<Filter, FilterError> {
        let include = include
            .map(|p| {
                Regex::new(p).map_err(|source| FilterError::Include {
                    pattern: p.to_owned(),
                    source,
                })
            })
            .transpose()?;
        let exclude = exclude
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let p = p.as_ref();
                Regex::new(p).map_err(|source| FilterError::Exclude {
                    index,
                    pattern: p.to_owned(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(template) = extract {
            let Some(re) = &include else {
                return Err(FilterError::ExtractWithoutInclude {
                    template: template.to_owned(),
                });
            };
            for group in template_groups(template) {
                let known = match group.parse::<usize>() {
                    Ok(n) => n < re.captures_len(),
                    Err(_) => re.capture_names().flatten().any(|n| n == group),
                };
                if !known {
                    return Err(FilterError::UnknownGroup {
                        template: template.to_owned(),
                        group: group.to_owned(),
                        pattern: re.as_str().to_owned(),
                    });
                }
            }
        }
        Ok(Filter {
            include,
            exclude,
            extract: extract.map(str::to_owned),
            exclude_cosign: true,
        })
    }

    /// Whether an `extract` template is set (the ranked value is then not the tag itself).
    pub fn extracts(&self) -> bool {
        self.extract.is_some()
    }

    /// The value to rank for `tag`, or why the tag is skipped.
    pub(crate) fn value<'t>(&self, tag: &'t str) -> Result<std::borrow::Cow<'t, str>, Skip> {
        use std::borrow::Cow;
        if !is_valid_tag(tag) {
            return Err(Skip::InvalidTag);
        }
        if self.exclude_cosign && COSIGN_SUFFIXES.iter().any(|s| tag.ends_with(s)) {
            return Err(Skip::Cosign);
        }
        if self.exclude.iter().any(|re| re.is_match(tag)) {
            return Err(Skip::Excluded);
        }
        let Some(include) = &self.include else {
            return Ok(Cow::Borrowed(tag));
        };
        let Some(template) = &self.extract else {
            return if include.is_match(tag) {
                Ok(Cow::Borrowed(tag))
            } else {
                Err(Skip::NotIncluded)
            };
        };
        let Some(caps) = include.captures(tag) else {
            return Err(Skip::NotIncluded);
        };
        let mut out = String::new();
        caps.expand(template, &mut out);
        if out.is_empty() {
            return Err(Skip::EmptyExtract);
        }
        Ok(Cow::Owned(out))
    }

    /// The value to rank for the currently deployed tag: like [`Filter::value`] but without
    /// the include/exclude verdicts (the deployed tag is compared even if a filter changed).
    pub(crate) fn current_value<'t>(&self, tag: &'t str) -> std::borrow::Cow<'t, str> {
        use std::borrow::Cow;
        match (&self.include, &self.extract) {
            (Some(include), Some(template)) => match include.captures(tag) {
                Some(caps) => {
                    let mut out = String::new();
                    caps.expand(template, &mut out);
                    Cow::Owned(out)
                }
                None => Cow::Borrowed(tag),
            },
            _ => Cow::Borrowed(tag),
        }
    }
}

/// The group names and numbers a template refers to, with the `regex` crate's expansion rules:
/// `$$` is a literal `$`, `${name}` is braced, `$name` takes the longest `[_0-9A-Za-z]` run.
fn template_groups(template: &str) -> Vec<&str> {
    let b = template.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => i += 2,
            Some(b'{') => match template[i + 2..].find('}') {
                Some(close) => {
                    out.push(&template[i + 2..i + 2 + close]);
                    i += close + 3;
                }
                None => i += 1,
            },
            _ => {
                let s = i + 1;
                let mut e = s;
                while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
                    e += 1;
                }
                if e > s {
                    out.push(&template[s..e]);
                }
                i = e.max(i + 1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn oci_tag_syntax() {
        for ok in [
            "latest",
            "v1.2.3",
            "_x",
            "a",
            "1.0-rc.1",
            "A_b.c-d",
            &"a".repeat(128),
        ] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in [
            "",
            ".x",
            "-x",
            "a+b",
            "a/b",
            "a:b",
            "é",
            &"a".repeat(129),
            "a b",
        ] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn include_exclude_and_cosign() {
        let f = Filter::new(Some(r"^v?\d+\.\d+\.\d+"), &["-rc"], None).unwrap();
        assert_eq!(f.value("1.2.3").unwrap(), "1.2.3");
        assert_eq!(f.value("1.2.3-rc.1"), Err(Skip::Excluded));
        assert_eq!(f.value("latest"), Err(Skip::NotIncluded));
        assert_eq!(f.value("sha256-abc.sig"), Err(Skip::Cosign));
        assert_eq!(Filter::default().value("sha256-abc.att"), Err(Skip::Cosign));
        assert_eq!(
            Filter::default().value("sha256-abc.sbom"),
            Err(Skip::Cosign)
        );
        assert_eq!(Filter::default().value("bad/tag"), Err(Skip::InvalidTag));
        let keep = Filter {
            exclude_cosign: false,
            ..Filter::default()
        };
        assert_eq!(keep.value("sha256-abc.sig").unwrap(), "sha256-abc.sig");
    }

    #[test]
    fn extract_templates() {
        let f = Filter::new(
            Some(r"^main-[a-f0-9]+-(?P<ts>\d+)$"),
            &[] as &[&str],
            Some("$ts"),
        )
        .unwrap();
        assert_eq!(f.value("main-abc123-1700000000").unwrap(), "1700000000");
        assert_eq!(f.value("dev-abc-1"), Err(Skip::NotIncluded));
        let f = Filter::new(
            Some(r"^(\d+)\.(\d+)-(?P<version>.*)$"),
            &[] as &[&str],
            Some("${version}-$1"),
        )
        .unwrap();
        assert_eq!(f.value("1.2-x").unwrap(), "x-1");
        let f = Filter::new(Some(r"^a(\d*)$"), &[] as &[&str], Some("$1")).unwrap();
        assert_eq!(f.value("a"), Err(Skip::EmptyExtract));
        assert_eq!(f.current_value("zzz"), "zzz");
        assert_eq!(f.current_value("a7"), "7");
    }

    #[test]
    fn filter_errors_name_the_field() {
        let e = Filter::new(Some("("), &[] as &[&str], None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("tags.include: invalid regular expression \"(\""),
            "{e}"
        );
        let e = Filter::new(None, &["ok", "[z-a]"], None).unwrap_err();
        assert!(e.to_string().starts_with("tags.exclude[1]:"), "{e}");
        let e = Filter::new(None, &[] as &[&str], Some("$ts")).unwrap_err();
        assert!(
            matches!(e, FilterError::ExtractWithoutInclude { .. }),
            "{e}"
        );
        let e = Filter::new(Some(r"(?P<ts>\d+)"), &[] as &[&str], Some("$tss")).unwrap_err();
        assert!(
            matches!(&e, FilterError::UnknownGroup { group, .. } if group == "tss"),
            "{e}"
        );
        let e = Filter::new(Some(r"(\d+)"), &[] as &[&str], Some("${2}")).unwrap_err();
        assert!(
            matches!(&e, FilterError::UnknownGroup { group, .. } if group == "2"),
            "{e}"
        );
        assert!(Filter::new(Some(r"(\d+)"), &[] as &[&str], Some("$$ $1 $0")).is_ok());
    }
}
