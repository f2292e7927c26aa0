//! Reading typed values out of a [`Node`] tree while collecting every problem.
//!
//! Validation never stops at the first error: each reader records what is wrong (with its
//! position) and returns `None`, and the caller carries on with the next key.
//!
//! Invariant: a reader either returns a value that satisfies what its key documents or records a
//! problem at the node's position and returns `None`; it never guesses a default for a bad value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::yaml::{self, Node, Value};
use crate::schedule::Schedule;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Sort problems for reading: the global file's first, then by file, line and column.
pub fn sort(problems: &mut [Diagnostic], global: &Path) {
    problems.sort_by(|a, b| {
        (a.file != global, &a.file, a.line, a.col).cmp(&(b.file != global, &b.file, b.line, b.col))
    });
}

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl Position {
    /// A problem at this place.
    pub fn problem(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: self.line,
            col: self.col,
            message: message.into(),
        }
    }
}

/// Which template a [`TemplateRef`] is: each sees its own context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    /// An app's `commit_message`.
    CommitMessage,
    /// `git.group_commit_message`.
    GroupCommitMessage,
    /// `pull_request.branch`.
    PullRequestBranch,
    /// `pull_request.title`.
    PullRequestTitle,
    /// `pull_request.body`.
    PullRequestBody,
}

/// A template of the config (its syntax already checked), for the stage that renders it to try
/// against its context: the config knows where it is, not what it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    pub kind: TemplateKind,
    /// The key as written (`commit_message`, `title`, ...).
    pub key: String,
    pub text: String,
    pub at: Position,
}

/// A `*_env` key: the name of an environment variable holding a secret (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRef {
    /// The key as written (`password_env`, `token_env`, ...).
    pub key: String,
    pub var: String,
    pub at: Position,
    /// Read only by `imagebump run` (notification sinks, webhook receivers): `once` neither
    /// notifies nor listens, so it does not need the variable.
    pub daemon_only: bool,
}

/// A `*_file` key (or `docker_config`, `ca_file`): a path the configuration reads a secret or
/// key from, resolved against the global file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The key as written (`password_file`, `ssh_key_file`, ...).
    pub key: String,
    pub path: PathBuf,
    pub at: Position,
    /// Read only by `imagebump run` (see [`EnvRef::daemon_only`]).
    pub daemon_only: bool,
}

/// A notification sink an app file names (`notify:`), checked against the global file's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRef {
    pub name: String,
    pub at: Position,
}

/// What another stage must check in a file: its templates and secret references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    pub templates: Vec<TemplateRef>,
    pub env: Vec<EnvRef>,
    pub files: Vec<FileRef>,
    pub sinks: Vec<SinkRef>,
}

impl Refs {
    pub fn extend(&mut self, other: Refs) {
        self.templates.extend(other.templates);
        self.env.extend(other.env);
        self.files.extend(other.files);
        self.sinks.extend(other.sinks);
    }
}

/// The problems found in one file, and the references in it that later stages check.
#[derive(Debug)]
pub struct Diagnostics {
    file: PathBuf,
    pub list: Vec<Diagnostic>,
    pub refs: Refs,
    /// What is allowed but probably not meant (`validate` prints them; they fail nothing).
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: &Path) -> Self {
        Diagnostics {
            file: file.to_path_buf(),
            list: Vec::new(),
            refs: Refs::default(),
            warnings: Vec::new(),
        }
    }

    /// The position of `node` in this file.
    pub fn position(&self, node: &Node) -> Position {
        Position {
            file: self.file.clone(),
            line: node.line,
            col: node.col,
        }
    }

    pub fn at(&mut self, line: usize, col: usize, message: impl Into<String>) {
        self.list.push(Diagnostic {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        });
    }

    pub fn node(&mut self, node: &Node, message: impl Into<String>) {
        self.at(node.line, node.col, message);
    }

    /// A warning at `node`.
    pub fn warn(&mut self, node: &Node, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            file: self.file.clone(),
            line: node.line,
            col: node.col,
            message: message.into(),
        });
    }
}

/// The keys of one mapping, checked against the keys it may have.
pub struct Fields<'a> {
    node: &'a Node,
    entries: Vec<(&'a str, &'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    /// Read `node` as a mapping whose keys must be among `allowed`. Unknown and duplicate keys
    /// are reported (with a "did you mean" hint); a non-mapping is reported and yields `None`.
    pub fn new(
        node: &'a Node,
        what: &str,
        allowed: &[&str],
        diags: &mut Diagnostics,
    ) -> Option<Fields<'a>> {
        let Value::Map(map) = &node.value else {
            diags.node(
                node,
                format!("expected {what} (a mapping), found {}", node.kind()),
            );
            return None;
        };
        let mut entries: Vec<(&'a str, &'a Node, &'a Node)> = Vec::new();
        for (key, value) in map {
            let Value::Scalar { text, .. } = &key.value else {
                diags.node(
                    key,
                    format!("expected a plain key in {what}, found {}", key.kind()),
                );
                continue;
            };
            if !allowed.contains(&text.as_str()) {
                let hint = did_you_mean(text, allowed)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                diags.node(
                    key,
                    format!(
                        "unknown key `{text}` in {what}{hint} (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            if entries.iter().any(|(k, _, _)| k == text) {
                diags.node(key, format!("duplicate key `{text}` in {what}"));
                continue;
            }
            entries.push((text.as_str(), key, value));
        }
        Some(Fields { node, entries })
    }

    /// The value of `key`, unless absent or null.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, v)| *k == key && v.value != Value::Null)
            .map(|(_, _, v)| *v)
    }

    /// The mapping node itself (for "missing key" positions).
    pub fn node(&self) -> &'a Node {
        self.node
    }

    /// A required string.
    pub fn required_str(&self, key: &str, what: &str, diags: &mut Diagnostics) -> Option<String> {
        match self.get(key) {
            Some(node) => string(node, key, diags),
            None => {
                diags.node(self.node, format!("missing required key `{key}` in {what}"));
                None
            }
        }
    }

    /// An optional string.
    pub fn opt_str(&self, key: &str, diags: &mut Diagnostics) -> Option<String> {
        self.get(key).and_then(|node| string(node, key, diags))
    }

    /// An optional `*_env` key: the variable's name, recorded in `diags.refs` with its place.
    pub fn opt_env(&self, key: &str, diags: &mut Diagnostics) -> Option<String> {
        self.env_ref(key, false, diags)
    }

    /// An optional `*_env` key that only the daemon reads (see [`EnvRef::daemon_only`]).
    pub fn opt_daemon_env(&self, key: &str, diags: &mut Diagnostics) -> Option<String> {
        self.env_ref(key, true, diags)
    }

    fn env_ref(&self, key: &str, daemon_only: bool, diags: &mut Diagnostics) -> Option<String> {
        let node = self.get(key)?;
        let var = string(node, key, diags)?;
        let at = diags.position(node);
        diags.refs.env.push(EnvRef {
            key: key.to_string(),
            var: var.clone(),
            at,
            daemon_only,
        });
        Some(var)
    }

    /// An optional path key (`*_file`, `docker_config`, `ca_file`), resolved against `base`
    /// (the global file's folder; an absolute path stays as written) and recorded in
    /// `diags.refs` with its place.
    pub fn opt_file(&self, key: &str, base: &Path, diags: &mut Diagnostics) -> Option<PathBuf> {
        self.file_ref(key, base, false, diags)
    }

    /// An optional path key that only the daemon reads (see [`EnvRef::daemon_only`]).
    pub fn opt_daemon_file(
        &self,
        key: &str,
        base: &Path,
        diags: &mut Diagnostics,
    ) -> Option<PathBuf> {
        self.file_ref(key, base, true, diags)
    }

    fn file_ref(
        &self,
        key: &str,
        base: &Path,
        daemon_only: bool,
        diags: &mut Diagnostics,
    ) -> Option<PathBuf> {
        let node = self.get(key)?;
        let path = base.join(string(node, key, diags)?);
        let at = diags.position(node);
        diags.refs.files.push(FileRef {
            key: key.to_string(),
            path: path.clone(),
            at,
            daemon_only,
        });
        Some(path)
    }

    /// A required `*_env` key (see [`Fields::opt_env`]).
    pub fn required_env(&self, key: &str, what: &str, diags: &mut Diagnostics) -> Option<String> {
        if self.get(key).is_none() {
            diags.node(self.node, format!("missing required key `{key}` in {what}"));
        }
        self.opt_env(key, diags)
    }

    /// An optional boolean (`true`/`false`).
    pub fn opt_bool(&self, key: &str, diags: &mut Diagnostics) -> Option<bool> {
        let node = self.get(key)?;
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } if text == "true" => Some(true),
            Value::Scalar {
                text,
                quoted: false,
            } if text == "false" => Some(false),
            _ => {
                diags.node(node, format!("`{key}` must be true or false"));
                None
            }
        }
    }

    /// An optional number.
    pub fn opt_f64(&self, key: &str, diags: &mut Diagnostics) -> Option<f64> {
        let node = self.get(key)?;
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } => match text.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Some(v),
                _ => {
                    diags.node(
                        node,
                        format!("`{key}` must be a positive number, found `{text}`"),
                    );
                    None
                }
            },
            _ => {
                diags.node(node, format!("`{key}` must be a positive number"));
                None
            }
        }
    }

    /// An optional positive integer.
    pub fn opt_u32(&self, key: &str, diags: &mut Diagnostics) -> Option<u32> {
        let node = self.get(key)?;
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } => match text.parse::<u32>() {
                Ok(v) if v > 0 => Some(v),
                _ => {
                    diags.node(
                        node,
                        format!("`{key}` must be a positive whole number, found `{text}`"),
                    );
                    None
                }
            },
            _ => {
                diags.node(node, format!("`{key}` must be a positive whole number"));
                None
            }
        }
    }

    /// An optional duration such as `30s`, `2m`, `1h30m`.
    pub fn opt_duration(&self, key: &str, diags: &mut Diagnostics) -> Option<Duration> {
        let node = self.get(key)?;
        let text = string(node, key, diags)?;
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                diags.node(node, format!("`{key}`: {e}"));
                None
            }
        }
    }

    /// An optional list of strings (a single string is accepted as a one-item list).
    pub fn opt_str_list(&self, key: &str, diags: &mut Diagnostics) -> Vec<String> {
        let Some(node) = self.get(key) else {
            return Vec::new();
        };
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|item| string(item, key, diags))
                .collect(),
            Value::Scalar { .. } => string(node, key, diags).into_iter().collect(),
            _ => {
                diags.node(node, format!("`{key}` must be a list of strings"));
                Vec::new()
            }
        }
    }
}

/// A scalar as a string (numbers and booleans are taken as written).
pub fn string(node: &Node, key: &str, diags: &mut Diagnostics) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => {
            diags.node(
                node,
                format!("`{key}` must be a string, found {}", node.kind()),
            );
            None
        }
    }
}

/// The items of a list (reported and empty if the node is not one).
pub fn list<'a>(node: &'a Node, key: &str, diags: &mut Diagnostics) -> &'a [Node] {
    match &node.value {
        Value::Seq(items) => items,
        _ => {
            diags.node(
                node,
                format!("`{key}` must be a list, found {}", node.kind()),
            );
            &[]
        }
    }
}

/// Parse `90s`, `2m`, `1h30m`, `1d`, `500ms`. Units are required. The grammar is the daemon's
/// interval grammar (one parser, with overflow checks); only the message is the config's.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::schedule::parse_duration(text).map_err(|_| {
        format!("invalid duration `{text}`: expected a number with a unit, such as 30s, 2m, 1h30m")
    })
}

/// The allowed word closest to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|candidate| (levenshtein(word, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(word.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}

pub fn parse_root(text: &str, diags: &mut Diagnostics) -> Option<Node> {
    match yaml::parse(text) {
        Ok(Some(root)) => Some(root),
        Ok(None) => {
            diags.at(1, 1, "the file is empty: expected a mapping");
            None
        }
        Err(e) => {
            diags.at(e.line, e.col, format!("invalid YAML: {}", e.message));
            None
        }
    }
}

pub fn check_platform(platform: &str, node: &Node, diags: &mut Diagnostics) {
    let parts: Vec<&str> = platform.split('/').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
        diags.node(
            node,
            format!("`platform` must be os/arch or os/arch/variant, found `{platform}`"),
        );
    }
}

/// Check a template's syntax; a template that parses is recorded in `diags.refs` for the stage
/// that renders it to try against its context (`engine::check`).
pub fn check_template(
    template: &str,
    kind: TemplateKind,
    key: &str,
    node: &Node,
    diags: &mut Diagnostics,
) {
    let env = minijinja::Environment::new();
    match env.template_from_str(template) {
        Ok(_) => {
            let at = diags.position(node);
            diags.refs.templates.push(TemplateRef {
                kind,
                key: key.to_string(),
                text: template.to_string(),
                at,
            });
        }
        Err(e) => diags.node(node, format!("`{key}` is not a valid template: {e}")),
    }
}

pub fn parse_schedule(fields: &Fields<'_>, diags: &mut Diagnostics) -> Option<Schedule> {
    let interval = fields.opt_duration("interval", diags);
    let cron = fields.get("schedule");
    match (interval, cron) {
        (Some(_), Some(node)) => {
            diags.node(node, "set either `interval` or `schedule`, not both");
            None
        }
        (Some(d), None) if d.is_zero() => {
            diags.node(fields.node(), "`interval` must be longer than zero");
            None
        }
        (Some(d), None) => Some(Schedule::Interval(d)),
        (None, Some(node)) => {
            let text = string(node, "schedule", diags)?;
            if text.split_whitespace().count() != 5 {
                diags.node(
                    node,
                    format!("`schedule` must be a 5-field cron expression (minute hour day month weekday), found `{text}`"),
                );
                return None;
            }
            match Schedule::cron(&text) {
                Ok(schedule) => Some(schedule),
                Err(e) => {
                    diags.node(node, format!("invalid cron expression `{text}`: {e}"));
                    None
                }
            }
        }
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        for bad in ["", "5", "m", "5x", "1.5h", "-1s", "18446744073709551615s1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("brnach", &["branch", "repo"]), Some("branch"));
        assert_eq!(did_you_mean("imgaes", &["images", "name"]), Some("images"));
        assert_eq!(did_you_mean("zzzzzz", &["images", "name"]), None);
    }
}
