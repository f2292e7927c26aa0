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
//! - [`history`]: a target's value history on its branch (bounded, cached), and rollbacks.
//! - [`promote`]: pure promotion decisions: the tag another app's history says soaked.
//! - [`forge`]: merge requests on GitHub, GitLab and Gitea.
//! - [`report`]: what a pass reports per app, with typed errors (the engine fills it, the daemon records it).
//! - [`engine`]: the write-back spine that runs one pass over the apps (`imagebump once`).
//! - [`daemon`]: scheduler, webhooks, metrics, health and status.
//! - [`atomic`]: the one atomic file write (temp file, fsync, rename).
//! - [`backoff`]: the one doubling wait after failures in a row (check retries, repacks).
//! - [`secret`]: the one secret type, never printed.
//! - [`schedule`]: the one schedule (`interval`, cron) and duration grammar, for config and daemon.
//! - [`shutdown`]: the shutdown signal the daemon triggers and the engine obeys.
//! - [`reference`]: the image reference and OCI tag grammar, shared by every stage.
//! - [`notify`]: Slack and signed JSON webhook notifications of updates and failures, never
//!   slowing a pass.
//! - [`import`]: Flux and Argo CD Image Updater objects translated to imagebump config text.
//! - [`shard`]: which replica polls which app (rendezvous hashing), without a coordinator.
//! - [`service`]: the composition root of `imagebump run` (engine + daemon + settings).
//! - [`cli`]: argument parsing and output for the binary.

pub mod atomic;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod edit;
pub mod engine;
pub mod forge;
pub mod git;
pub mod history;
pub mod import;
pub mod notify;
pub mod policy;
pub mod promote;
pub mod reference;
pub mod registry;
pub mod report;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod shard;
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

    /// The top-level modules a source file's code (not its comments or tests) names.
    fn named_modules(text: &str, prefix: &str) -> std::collections::BTreeSet<String> {
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
        let mut names = std::collections::BTreeSet::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices(prefix) {
                let rest = &line[i + prefix.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        }
        names
    }

    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Layers point one way (README, "Development"): no stage imports `engine`, `daemon`,
    /// `service` or `cli`; `engine` and `daemon` do not import each other; and inside a module
    /// folder no two files import each other.
    #[test]
    fn layers_point_one_way_and_no_two_files_import_each_other() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files);
        let upper = ["engine", "daemon", "service", "cli"];
        let mut siblings: std::collections::BTreeSet<(String, String)> = Default::default();
        for file in &files {
            let relative = file.strip_prefix(&root).unwrap_or(file);
            let parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            let Some(top) = parts.first() else { continue };
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let named = named_modules(&text, "crate::");
            let forbidden: &[&str] = match top.as_str() {
                "lib" | "main" | "cli" | "service" => &[],
                "engine" => &["daemon", "service", "cli"],
                "daemon" => &["engine", "service", "cli"],
                // Pure: reads a history it is given, asks nothing of a registry or a forge.
                "promote" => &[
                    "engine", "daemon", "service", "cli", "registry", "forge", "notify",
                ],
                _ => &upper,
            };
            for name in &named {
                assert!(
                    !forbidden.contains(&name.as_str()),
                    "{} imports crate::{name}",
                    relative.display()
                );
            }
            if parts.len() == 2 && parts[1] != "mod" {
                for name in named_modules(&text, "super::") {
                    siblings.insert((format!("{top}::{}", parts[1]), format!("{top}::{name}")));
                }
            }
        }
        for (a, b) in &siblings {
            assert!(
                !siblings.contains(&(b.clone(), a.clone())) || a == b,
                "{a} and {b} import each other"
            );
        }
    }
}
