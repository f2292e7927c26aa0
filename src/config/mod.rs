//! Configuration: the global file and one file per app.
//!
//! Owns: reading `imagebump.yaml` and the apps directory, validating every value, and reporting
//! **all** problems at once as `file:line:col: message`. The result is plain data: other modules
//! turn it into their own settings, so no module depends on the YAML shape.
//!
//! Invariant: no secret is ever read here. Secrets are named by reference (`*_env`, `*_file`)
//! and resolved by the stage that uses them, so a config dump or an error never carries one.
//!
//! Design choice: a positioned YAML tree ([`yaml`]) checked by hand ([`read`]) instead of serde:
//! serde stops at the first error and loses positions; here every key is checked, unknown keys
//! get a "did you mean" hint, and a broken app file is reported without hiding the others.
//!
//! Files: [`model`] (the plain data), [`global`] (the global file), [`app`] (an app file),
//! `notify` (the `notifications:` section and an app's `notify:` list),
//! [`read`] (positioned readers shared by both), [`yaml`] (the positioned tree), `receiver`
//! (the webhook receiver kinds), [`repo_url`] (config repository URLs); this file loads a
//! directory and reports every problem at once.

mod app;
mod global;
mod model;
mod notify;
mod promote;
pub mod read;
mod receiver;
pub mod repo_url;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use app::APP_KEYS;
use global::GLOBAL_KEYS;
use read::{Diagnostic, Diagnostics, Fields, Refs, string};

use crate::edit::HelmField;
use crate::forge::ForgeKind;
use crate::reference::{ImageRef, is_valid_tag};

pub use crate::schedule::Schedule;
pub use app::parse_app;
pub use global::parse_global;
pub use model::*;
pub use receiver::{ReceiverKind, UnknownReceiverKind};

/// Errors that keep a configuration from loading at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", format_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
}

fn format_diagnostics(list: &[Diagnostic]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A configuration with the problems found in it. The global file must be valid; a broken app
/// file is left out of `config.apps` and reported in `problems`.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub problems: Vec<Diagnostic>,
    /// The templates and secret references of every file, for the stages that use them to
    /// check (see [`Loaded::with_problems`]).
    pub refs: Refs,
}

impl Loaded {
    /// Add the problems later stages found in the files (a template that does not render, a
    /// secret variable that is not set). One in the global file rejects the configuration, as
    /// any global problem does; one in an app file leaves that app out and is reported with the
    /// other broken app files.
    pub fn with_problems(mut self, extra: Vec<Diagnostic>) -> Result<Loaded, ConfigError> {
        if extra.iter().any(|p| p.file == self.config.file) {
            let mut all = extra;
            all.extend(self.problems);
            return Err(ConfigError::Invalid(all));
        }
        self.config
            .apps
            .retain(|app| !extra.iter().any(|p| p.file == app.file));
        self.problems.extend(extra);
        read::sort(&mut self.problems, &self.config.file);
        Ok(self)
    }
}

/// Load the global file and every app file (`*.yaml`, `*.yml`) of its apps directory. A broken
/// global file fails the load, listing its problems and every app file's.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let checked = check(path)?;
    match checked.global {
        Some(global) => Ok(Loaded {
            config: Config {
                file: path.to_path_buf(),
                global,
                apps: checked.apps,
            },
            problems: checked.problems,
            refs: checked.refs,
        }),
        None => Err(ConfigError::Invalid(checked.problems)),
    }
}

/// Every file of a configuration read, with every problem of every file.
#[derive(Debug)]
pub struct Checked {
    /// The global settings, when the global file has no problem.
    pub global: Option<Global>,
    /// The apps whose file has no problem, sorted by name.
    pub apps: Vec<App>,
    /// Every problem: the global file's first, then each app file's in file order.
    pub problems: Vec<Diagnostic>,
    /// The templates and secret references of every file, broken ones included.
    pub refs: Refs,
    /// What is allowed but probably not meant (`validate` prints them).
    pub warnings: Vec<Diagnostic>,
}

/// Read the global file and every app file, reporting the problems of all of them at once: a
/// broken global file does not hide the app files' problems (they are read from the apps
/// directory it names, or `apps` beside it), and a broken app file still claims its name, so a
/// later file with the same name is reported too. Only an unreadable global file is an error.
pub fn check(path: &Path) -> Result<Checked, ConfigError> {
    let text = read_file(path)?;
    let mut diags = Diagnostics::new(path);
    let parsed = parse_global(path, &text, &mut diags);
    let global_ok = diags.list.is_empty();
    let mut problems = diags.list;
    let mut refs = diags.refs;
    let apps_dir = match &parsed {
        Some(global) => global.apps_dir.clone(),
        None => apps_dir_of(path, &text),
    };
    let mut apps: Vec<App> = Vec::new();
    let files = match std::fs::read_dir(&apps_dir) {
        Ok(entries) => {
            let mut files = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect::<Vec<_>>();
            files.sort();
            files
        }
        // With a broken global file the apps directory may be a guess: say nothing more.
        Err(_) if !global_ok => Vec::new(),
        Err(source) => {
            return Err(ConfigError::Read {
                path: apps_dir,
                source,
            });
        }
    };
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut warnings = diags.warnings;
    for file in files {
        let text = match read_file(&file) {
            Ok(text) => text,
            Err(e) => {
                problems.push(Diagnostic {
                    file: file.clone(),
                    line: 1,
                    col: 1,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut diags = Diagnostics::new(&file);
        let app = parse_app(&file, &text, &mut diags);
        if let Some(global) = parsed.as_ref().filter(|_| global_ok) {
            let unknown = notify::check_app_sinks(&diags.refs.sinks, global);
            diags.list.extend(unknown);
        }
        if let Some((name, line, col)) = app_name(&text) {
            match seen.get(&name) {
                Some(other) => diags.at(
                    line,
                    col,
                    format!("app name `{name}` is already used by {}", other.display()),
                ),
                None => {
                    seen.insert(name, file.clone());
                }
            }
        }
        refs.extend(diags.refs);
        warnings.extend(diags.warnings);
        match app {
            Some(app) if diags.list.is_empty() => apps.push(app),
            _ => problems.extend(diags.list),
        }
    }
    promote::check(&mut apps, &seen, &mut problems);
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Checked {
        global: parsed.filter(|_| global_ok),
        apps,
        problems,
        refs,
        warnings,
    })
}

/// The apps directory a global file names, read without validating the rest (for a global file
/// with problems): its `apps` string, else `apps` beside it.
fn apps_dir_of(path: &Path, text: &str) -> PathBuf {
    let base = path.parent().unwrap_or(Path::new("."));
    let named = yaml::parse(text).ok().flatten().and_then(|root| {
        let mut ignored = Diagnostics::new(path);
        let fields = Fields::new(&root, "", GLOBAL_KEYS, &mut ignored)?;
        fields.opt_str("apps", &mut ignored)
    });
    base.join(named.unwrap_or_else(|| "apps".into()))
}

/// The `name` of an app file and its position, if the file is a mapping with a string `name`,
/// whatever else is wrong with it.
fn app_name(text: &str) -> Option<(String, usize, usize)> {
    let root = yaml::parse(text).ok().flatten()?;
    let mut ignored = Diagnostics::new(Path::new(""));
    let fields = Fields::new(&root, "", APP_KEYS, &mut ignored)?;
    let node = fields.get("name")?;
    let name = string(node, "name", &mut ignored)?;
    Some((name, node.line, node.col))
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
