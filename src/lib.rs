//! imagebump keeps the container image tags in a GitOps config repository up to date.
//!
//! The data path runs through one module per stage, and each module knows nothing of the
//! others' internals:
//!
//! - [`config`]: the global file and one file per app, parsed with positions and validated.
//! - [`registry`]: the OCI distribution client (auth, tags, manifests, rate limits, cache).
//! - [`policy`]: pure tag selection (semver, alphabetical, numerical, newest build, digest).
//! - [`edit`]: pure, format-preserving YAML edits (bytes in, bytes out).
//! - [`git`]: clone cache, fetch, commit, push with conflict retry.
//! - [`forge`]: merge requests on GitHub, GitLab and Gitea.
//! - [`report`]: what a pass reports per app, with typed errors (the engine fills it, the daemon records it).
//! - [`engine`]: the write-back spine that runs one pass over the apps (`imagebump once`).
//! - [`daemon`]: scheduler, webhooks, metrics, health and status.
//! - [`atomic`]: the one atomic file write (temp file, fsync, rename).
//! - [`secret`]: the one secret type, never printed.
//! - [`schedule`]: the one schedule (`interval`, cron) and duration grammar, for config and daemon.
//! - [`shutdown`]: the shutdown signal the daemon triggers and the engine obeys.
//! - [`reference`]: the image reference and OCI tag grammar, shared by every stage.
//! - [`import`]: Flux and Argo CD Image Updater objects translated to imagebump config text.
//! - [`service`]: the composition root of `imagebump run` (engine + daemon + settings).
//! - [`cli`]: argument parsing and output for the binary.

pub mod atomic;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod edit;
pub mod engine;
pub mod forge;
pub mod git;
pub mod import;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod report;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod shutdown;

#[cfg(test)]
mod tests {
    /// The README's module table names every top-level module of this crate, and only those.
    #[test]
    fn the_readme_module_table_matches_the_crate() {
        let lib = include_str!("lib.rs");
        let mut declared: Vec<&str> = lib
            .lines()
            .filter_map(|line| line.strip_prefix("pub mod "))
            .filter_map(|rest| rest.strip_suffix(';'))
            .collect();
        declared.sort_unstable();
        let readme = include_str!("../README.md");
        let table = readme
            .split("| Module | Owns |")
            .nth(1)
            .unwrap_or_default()
            .split("\n\n")
            .next()
            .unwrap_or_default();
        let mut listed: Vec<&str> = table
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        listed.sort_unstable();
        assert_eq!(listed, declared);
    }
}
