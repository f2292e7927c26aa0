//! The policy flags shared by `imagebump select` and `imagebump tags`.
//!
//! Invariant: flags are only validated and turned into a [`Policy`]; selection lives in
//! `policy`. Design choice: exactly one policy flag; clap rejects two, [`PolicyFlags::to_policy`]
//! rejects none, so a command that only lists tags can check [`PolicyFlags::is_set`] first.

use std::process::ExitCode;

use crate::policy::{Filter, FilterError, Kind, Order, Parsing, Policy, Range, RangeError};

/// Tag policy flags (offline policies only: newest_build and digest need a registry).
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
#[command(group(
    clap::ArgGroup::new("policy")
        .args(["semver", "alphabetical", "numerical"])
        .multiple(false)
))]
pub struct PolicyFlags {
    /// Highest version satisfying a Masterminds/semver v3 range, e.g. '~1.4', '>=1.2 <2', '1.x || 2.3.x'.
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,
    /// With --semver: read tags strictly as X.Y.Z (optional v), as Flux does.
    #[arg(long)]
    pub strict: bool,
    /// Byte order of the tag: asc picks the greatest, desc the smallest.
    #[arg(long, value_name = "asc|desc")]
    pub alphabetical: Option<String>,
    /// Tags as decimal numbers: asc picks the highest, desc the lowest; other tags are skipped.
    #[arg(long, value_name = "asc|desc")]
    pub numerical: Option<String>,
    /// Only consider tags matching this regular expression.
    #[arg(long, value_name = "RE")]
    pub include: Option<String>,
    /// Skip tags matching this regular expression (repeatable).
    #[arg(long, value_name = "RE")]
    pub exclude: Vec<String>,
    /// Rank this template over --include's groups ('$ts', '${version}', '$1') instead of the tag.
    #[arg(long, value_name = "TEMPLATE", requires = "include")]
    pub extract: Option<String>,
    /// Permit choosing a version below the current one (with --current).
    #[arg(long)]
    pub allow_downgrade: bool,
}

/// Invalid policy flags.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFlagsError {
    #[error(
        "choose a policy: one of --semver RANGE, --alphabetical asc|desc, --numerical asc|desc"
    )]
    NoPolicy,
    #[error("--strict only applies to --semver")]
    StrictWithoutSemver,
    #[error("--semver: {0}")]
    Range(#[from] RangeError),
    #[error("--{flag}: {source}")]
    Order {
        flag: &'static str,
        source: crate::policy::OrderError,
    },
    #[error("{0}")]
    Filter(#[from] FilterError),
}

impl PolicyFlagsError {
    /// The message for stderr, with a caret under the offending byte of a bad range.
    pub fn report(&self) -> String {
        match self {
            PolicyFlagsError::Range(e) => format!("error: {self}\n{}", e.caret()),
            _ => format!("error: {self}"),
        }
    }

    /// Prints [`PolicyFlagsError::report`] and returns the usage exit code.
    pub fn exit(&self) -> ExitCode {
        eprintln!("{}", self.report());
        ExitCode::from(super::EXIT_USAGE)
    }
}

impl PolicyFlags {
    /// Whether a policy flag was given.
    pub fn is_set(&self) -> bool {
        self.semver.is_some() || self.alphabetical.is_some() || self.numerical.is_some()
    }

    /// The policy these flags describe. Offline: no `min_age` (creation times need a registry).
    pub fn to_policy(&self) -> Result<Policy, PolicyFlagsError> {
        let order = |flag: &'static str, s: &str| {
            s.parse::<Order>()
                .map_err(|source| PolicyFlagsError::Order { flag, source })
        };
        if self.strict && self.semver.is_none() {
            return Err(PolicyFlagsError::StrictWithoutSemver);
        }
        let kind = if let Some(r) = &self.semver {
            Kind::Semver {
                range: Range::parse(r)?,
                parsing: if self.strict {
                    Parsing::Strict
                } else {
                    Parsing::Loose
                },
            }
        } else if let Some(o) = &self.alphabetical {
            Kind::Alphabetical(order("alphabetical", o)?)
        } else if let Some(o) = &self.numerical {
            Kind::Numerical(order("numerical", o)?)
        } else {
            return Err(PolicyFlagsError::NoPolicy);
        };
        let mut policy = Policy::new(kind);
        policy.filter = Filter::new(
            self.include.as_deref(),
            &self.exclude,
            self.extract.as_deref(),
        )?;
        policy.allow_downgrade = self.allow_downgrade;
        policy.min_age = None;
        Ok(policy)
    }
}
