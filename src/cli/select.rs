//! `imagebump select`: offline tag selection over the tags on stdin.
//!
//! Invariant: reads stdin, calls `policy`, prints; no registry access. Design choice: the same
//! [`PolicyFlags`] as `imagebump tags`, so a policy can be tried on a saved tag list first.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use time::OffsetDateTime;

use super::policy_flags::PolicyFlags;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::policy::{Current, Step};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// The tag deployed now: a lower-ranked tag is never chosen (see --allow-downgrade).
    #[arg(long, value_name = "TAG")]
    pub current: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    let policy = match args.policy.to_policy() {
        Ok(p) => p,
        Err(e) => return e.exit(),
    };
    let mut tags = Vec::new();
    for line in std::io::stdin().lock().lines() {
        match line {
            Ok(l) => {
                let t = l.trim();
                if !t.is_empty() {
                    tags.push(t.to_owned());
                }
            }
            Err(e) => {
                eprintln!("error: reading tags from stdin: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let current = Current {
        tag: args.current.as_deref(),
        digest: None,
    };
    // The clock is irrelevant offline (no min_age) but select takes it explicitly.
    let step = policy.select(
        &tags,
        current,
        &Default::default(),
        OffsetDateTime::now_utc(),
    );
    match step {
        Ok(Step::Decided(d)) => {
            if d.keep_current {
                eprintln!("{}", d.reason);
            }
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{}", d.tag).is_err() {
                return ExitCode::from(EXIT_FAILED);
            }
            ExitCode::from(EXIT_OK)
        }
        Ok(Step::NeedMetadata(tags)) => {
            eprintln!(
                "error: this policy needs registry metadata for {}; use `imagebump tags`",
                tags.join(", ")
            );
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("no match: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
