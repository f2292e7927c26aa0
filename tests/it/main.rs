//! Integration tests, compiled into one binary (one link instead of one per file).
//!
//! Each module tests one I/O stage against real servers that `support` starts on 127.0.0.1:
//! the CNCF registry (Debian's `docker-registry`), git remotes (file://, smart HTTP, SSH) and
//! local HTTP stand-ins for the forge APIs.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod chart;
mod completions;
mod daemon;
mod dirtargets;
mod dockerfile;
mod examples;
mod explain;
mod faults;
mod forge;
mod git;
mod import;
mod import_argo;
mod notify;
mod once;
mod once_output;
mod promote;
mod pull_request;
mod registry;
mod repack;
mod rollback;
mod run;
mod select;
mod set;
mod shards;
mod shards_pr;
mod support;
mod validate;
