//! `imagebump import`: migration from Flux image automation and Argo CD Image Updater.
//!
//! Reads Flux or Argo CD objects (YAML text: files, `kind: List`, multi-document streams) and
//! produces imagebump configuration text: one app file per app and a global file, plus a report
//! of what was translated, approximated or has no equivalent, each with the source object and
//! field.
//!
//! Invariant: no network and no git. The only files read are the inputs and, when asked, a local
//! checkout of the config repo (to list the files that carry Flux markers); the only files
//! written are the output directory's, all at once (a temporary directory renamed at the end),
//! and only after the written configuration passed the same checks as `imagebump validate`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use saphyr_parser::{Event, Parser};
use yaml_serde::Value;

use crate::config::yaml;

pub mod argo;
pub mod flux;
mod render;
pub mod selector;

pub use render::{AppOut, GlobalOut, ImageOut, PullRequestOut, RegistryOut, TargetOut};

/// How well a source field made it into the imagebump config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Same behaviour.
    Translated,
    /// Close, with a difference the user should know about.
    Approximated,
    /// Not carried over.
    NoEquivalent,
}

impl Outcome {
    fn heading(self) -> &'static str {
        match self {
            Outcome::Translated => "translated",
            Outcome::Approximated => "approximated",
            Outcome::NoEquivalent => "no equivalent",
        }
    }
}

/// One line of the report: a field of a source object and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub outcome: Outcome,
    /// `flux.yaml:23`: the input file and the line of the field (or of the object).
    pub place: String,
    /// `ImagePolicy flux-system/podinfo`.
    pub object: String,
    /// `spec.policy.semver.range`.
    pub field: String,
    pub message: String,
}

/// What an import produced: the files to write (relative paths) and the report.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub global: GlobalOut,
    pub apps: Vec<AppOut>,
    pub notes: Vec<Note>,
}

impl Imported {
    /// Would `--check` fail: anything approximated or dropped.
    pub fn lossy(&self) -> bool {
        self.notes.iter().any(|n| n.outcome != Outcome::Translated)
    }

    /// The files to write, relative to the output directory: `imagebump.yaml` and
    /// `apps/NAME.yaml`.
    pub fn files(&self, tool: &str) -> Vec<(PathBuf, String)> {
        let mut files = vec![(PathBuf::from("imagebump.yaml"), self.global.render(tool))];
        for app in &self.apps {
            files.push((
                Path::new("apps").join(format!("{}.yaml", app.name)),
                app.render(tool),
            ));
        }
        files
    }

    /// The report, grouped by outcome (translated first), one line per note.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for outcome in [
            Outcome::Translated,
            Outcome::Approximated,
            Outcome::NoEquivalent,
        ] {
            let notes: Vec<&Note> = self.notes.iter().filter(|n| n.outcome == outcome).collect();
            if notes.is_empty() {
                continue;
            }
            out.push_str(&format!("{} ({}):\n", outcome.heading(), notes.len()));
            for note in notes {
                out.push_str(&format!(
                    "  {}: {} {}: {}\n",
                    note.place, note.object, note.field, note.message
                ));
            }
        }
        out
    }

    /// Turn the `translated` notes of `object` (an id, `ImagePolicy ns/name`) into `no
    /// equivalent` ones saying why they were not written, but for the `keep` fields: the report
    /// never claims a field made it into a file that is not written.
    pub(crate) fn not_written(&mut self, object: &str, keep: &[&str], why: &str) {
        self.not_written_if(why, |note| {
            note.object == object && !keep.contains(&note.field.as_str())
        });
    }

    /// Turn the `translated` notes `which` picks into `no equivalent` ones saying why they were
    /// not written.
    pub(crate) fn not_written_if(&mut self, why: &str, which: impl Fn(&Note) -> bool) {
        for note in &mut self.notes {
            if note.outcome == Outcome::Translated && which(note) {
                note.outcome = Outcome::NoEquivalent;
                note.message = format!("{}: not written, {why}", note.message);
            }
        }
    }

    /// With no app at all nothing is written: no note may say `translated`.
    pub(crate) fn nothing_written(&mut self) {
        if !self.apps.is_empty() {
            return;
        }
        for note in &mut self.notes {
            if note.outcome == Outcome::Translated {
                note.outcome = Outcome::NoEquivalent;
                note.message = format!("{}: not written, there is no app to write", note.message);
            }
        }
    }

    pub(crate) fn note(
        &mut self,
        outcome: Outcome,
        object: &Object,
        field: &str,
        message: impl Into<String>,
    ) {
        self.notes.push(Note {
            outcome,
            place: object.origin.place(field),
            object: object.id(),
            field: field.to_string(),
            message: message.into(),
        });
    }
}

/// Why an import failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// `place` is `file:line:col` (`file:line` of the document when the YAML library names no
    /// position).
    #[error("{place}: not YAML: {message}")]
    Yaml { place: String, message: String },
    /// `place` is `file:line:col` of the field's value where it is present, else `file:line`
    /// of the nearest part of it that is (or of the object).
    #[error("{place}: {object}: `{field}`: {message}")]
    Field {
        place: String,
        /// `ImagePolicy flux-system/podinfo`, or `(document)` before the object is known.
        object: String,
        field: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(
        "the imported configuration does not validate (a bug in `imagebump import`, please report it):\n{0}"
    )]
    Invalid(String),
}

/// Where an object is in the input: the file, the line the object starts on, and the
/// positions of its document's nodes, so a field can be named with its own line.
///
/// The values the import reads come from `yaml_serde`, which keeps no positions; the lines come
/// from the configuration loader's tree ([`crate::config::yaml`]) of the same document.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `flux.yaml`, `<stdin>`.
    pub file: String,
    /// The object's first line (1-based).
    pub line: usize,
    /// The document's tree; `None` when the document is too large for the loader's bound (the
    /// object's line is then its document's, and `route` is shown beside it).
    tree: Option<Arc<Tree>>,
    /// Where the object is inside its document: empty, `items[2]` (a `kind: List` item),
    /// `spec.template` (an Application an ApplicationSet generates).
    route: String,
    /// For an object the input does not hold as such: what it was made from
    /// (`ApplicationSet argocd/apps spec.generators[0].list.elements[1]`).
    pub via: Option<String>,
}

/// One document's positions.
#[derive(Debug)]
struct Tree {
    root: yaml::Node,
    /// The document's lines in `root` count from the first line of its text: add this.
    offset: usize,
    /// The document's text, for the positions inside the YAML a block scalar holds.
    text: String,
}

/// Where a field is (lines of a document's text, or of the stream).
struct Position {
    /// The line of the field's key, or of the nearest enclosing key present.
    line: usize,
    /// The line and column of the field's value, when the field is present.
    value: Option<(usize, usize)>,
}

impl Tree {
    /// Where `route` is inside the YAML text that `node`, the value of the key on line
    /// `key_line`, holds when it is a literal block scalar (`|`): its lines are the header's
    /// line plus their line in the text, their columns shifted by the block's indentation.
    /// The header is the line (from the key's on) after which the source's lines are the text's
    /// lines, indented. `None` for any other scalar (folded or quoted text has no line of its
    /// own for each of its lines), text that is not YAML, or a route not in it.
    fn embedded(&self, key_line: usize, node: &yaml::Node, route: &str) -> Option<Position> {
        let yaml::Value::Scalar { text, .. } = &node.value else {
            return None;
        };
        let root = yaml::parse(text).ok().flatten()?;
        let found = resolve(&root, route);
        if found.depth == 0 {
            return None;
        }
        let (header, indent) = self.block(key_line, node)?;
        Some(Position {
            line: header + found.line,
            value: found
                .complete
                .then_some((header + found.node.line, found.node.col + indent)),
        })
    }

    /// The header line of the literal block scalar `node` (the value of the key on line
    /// `key_line`) and its indentation: the line (from the key's on) holding `|` after which
    /// the source's lines are the scalar's lines, indented. `None` for any other node.
    fn block(&self, key_line: usize, node: &yaml::Node) -> Option<(usize, usize)> {
        let yaml::Value::Scalar { text, .. } = &node.value else {
            return None;
        };
        let source: Vec<&str> = self.text.lines().collect();
        let value: Vec<&str> = text.lines().collect();
        let (first, first_line) = value
            .iter()
            .enumerate()
            .find(|(_, line)| !line.trim().is_empty())?;
        let spaces = |line: &str| line.len() - line.trim_start_matches(' ').len();
        // `header` counts from 1: the text's line `i` (from 0) is `source[header + i]`.
        (key_line..=node.line).find_map(|header| {
            if !source.get(header.checked_sub(1)?)?.contains('|') {
                return None;
            }
            let indent = spaces(source.get(header + first)?).checked_sub(spaces(first_line))?;
            let same = value.iter().enumerate().all(|(i, line)| {
                source.get(header + i).is_some_and(|src| {
                    if line.is_empty() {
                        src.trim().is_empty()
                    } else {
                        spaces(src) >= indent && src.get(indent..) == Some(*line)
                    }
                })
            });
            same.then_some((header, indent))
        })
    }
}

impl Origin {
    /// `file:line` of `field` (a dotted path, `[n]` for list items: `spec.generators[0].list`)
    /// of the object: the line of the field's key, or of the nearest enclosing key present (so
    /// a missing `spec.policy.semver.range` names the `semver:` line). An annotation key names
    /// its line under `metadata.annotations`. A field inside YAML text embedded in a literal
    /// block scalar is written `KEY: ROUTE` (`data.registries.conf: registries[2].prefix`) and
    /// names its own line in the file.
    pub fn place(&self, field: &str) -> String {
        match &self.tree {
            Some(_) => format!("{}:{}", self.file, self.line_of(field)),
            None => self.to_string(),
        }
    }

    /// `file:line:col` of the value of `field`, as `imagebump validate` names a config file's
    /// values; when the field is not present, [`Origin::place`] (the nearest key's line).
    pub fn value_place(&self, field: &str) -> String {
        match (&self.tree, self.position(field).value) {
            (Some(_), Some((line, col))) => format!("{}:{line}:{col}", self.file),
            _ => self.place(field),
        }
    }

    /// The line `place` names.
    pub fn line_of(&self, field: &str) -> usize {
        self.position(field).line
    }

    /// Where `field` is, in lines of the stream.
    fn position(&self, field: &str) -> Position {
        let object = Position {
            line: self.line,
            value: None,
        };
        let Some(tree) = &self.tree else {
            return object;
        };
        if field.is_empty() {
            return object;
        }
        let (outer, embedded) = match field.split_once(": ") {
            Some((outer, inner)) => (outer, Some(inner)),
            None => (field, None),
        };
        let Some(found) = self.find(tree, outer) else {
            return object;
        };
        let inside = match embedded {
            Some(route) if found.complete => tree.embedded(found.line, found.node, route),
            _ => None,
        };
        let position = inside.unwrap_or(Position {
            line: found.line,
            value: found.complete.then_some((found.node.line, found.node.col)),
        });
        Position {
            line: position.line + tree.offset,
            value: position.value.map(|(line, col)| (line + tree.offset, col)),
        }
    }

    /// How far `field` goes in the object: `None` when not even its first step is there.
    fn find<'t>(&self, tree: &'t Tree, field: &str) -> Option<Found<'t>> {
        let own = resolve(&tree.root, &self.route).depth;
        let direct = resolve(&tree.root, &join_route(&self.route, field));
        if direct.depth > own {
            return Some(direct);
        }
        let annotation = format!("metadata.annotations.{field}");
        let annotation = resolve(&tree.root, &join_route(&self.route, &annotation));
        annotation.complete.then_some(annotation)
    }

    /// `file:line:col` of a position (`line` and `col` from 1) inside the YAML text that the
    /// value of `field` holds, when that value is a literal block scalar; else `None`. The end
    /// of the text, after its last newline (where a parser stops at the end of its input), is
    /// named as the end of the block's last line: the line after it is not the block's.
    pub fn place_inside(&self, field: &str, line: usize, col: usize) -> Option<String> {
        let tree = self.tree.as_ref()?;
        let found = self.find(tree, field).filter(|found| found.complete)?;
        let (header, indent) = tree.block(found.line, found.node)?;
        let (line, col) = match &found.node.value {
            yaml::Value::Scalar { text, .. } if line > text.lines().count() => {
                let last = text.lines().last().unwrap_or_default();
                (text.lines().count().max(1), last.chars().count() + 1)
            }
            _ => (line, col),
        };
        Some(format!(
            "{}:{}:{}",
            self.file,
            header + line + tree.offset,
            col + indent
        ))
    }

    /// The origin of the part of this object at `route` (`items[2]`).
    fn at_route(&self, route: &str) -> Origin {
        let route = join_route(&self.route, route);
        let line = match &self.tree {
            Some(tree) => {
                let found = resolve(&tree.root, &route);
                if found.complete {
                    found.line + tree.offset
                } else {
                    self.line
                }
            }
            None => self.line,
        };
        Origin {
            line,
            route,
            ..self.clone()
        }
    }

    /// The origin of an object made from the part of this one at `route` (the template of an
    /// ApplicationSet): its fields' lines are looked up under `route`, its own line is that of
    /// `from` (the list element that made it), and `via` says what it was made from.
    pub fn generated(&self, route: &str, from: &str, via: String) -> Origin {
        Origin {
            line: self.line_of(from),
            route: join_route(&self.route, route),
            via: Some(via),
            ..self.clone()
        }
    }
}

impl fmt::Display for Origin {
    /// `flux.yaml:12`; without a tree, the route too (`flux.yaml:1 (items[36])`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if self.tree.is_none() && !self.route.is_empty() {
            write!(f, " ({})", self.route)?;
        }
        Ok(())
    }
}

fn join_route(route: &str, field: &str) -> String {
    match (route.is_empty(), field.is_empty() || field.starts_with('[')) {
        (true, _) => field.to_string(),
        (false, true) => format!("{route}{field}"),
        (false, false) => format!("{route}.{field}"),
    }
}

/// How far a route went in a tree.
struct Found<'n> {
    /// The line of the last key (or list item) matched.
    line: usize,
    /// The node reached: the value of the last key (or the list item) matched.
    node: &'n yaml::Node,
    /// How many steps matched (a key holding dots counts as many).
    depth: usize,
    /// Every step matched.
    complete: bool,
}

/// `spec.generators[0].list` -> `spec`, `generators`, `[0]`, `list`. A key may itself hold dots
/// (`registries.conf`, annotation keys): [`resolve`] matches keys against the text, not these
/// steps; they are only counted.
fn steps(route: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for part in route.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        while let Some(open) = rest.find('[') {
            if open > 0 {
                out.push(&rest[..open]);
            }
            let close = rest[open..].find(']').map_or(rest.len(), |c| open + c + 1);
            out.push(&rest[open..close]);
            rest = &rest[close..];
        }
        if !rest.is_empty() {
            out.push(rest);
        }
    }
    out
}

/// Follow `route` from `node` as far as it goes. At a mapping the longest key that `route`
/// starts with (followed by `.`, `[` or the end) is taken, so keys holding dots match whole.
fn resolve<'n>(node: &'n yaml::Node, route: &str) -> Found<'n> {
    let mut node = node;
    let mut rest = route;
    let mut found = Found {
        line: node.line,
        node,
        depth: 0,
        complete: false,
    };
    loop {
        rest = rest.strip_prefix('.').unwrap_or(rest);
        if rest.is_empty() {
            found.complete = true;
            return found;
        }
        match &node.value {
            yaml::Value::Map(entries) => {
                let matched = entries
                    .iter()
                    .filter_map(|(key, value)| match &key.value {
                        yaml::Value::Scalar { text, .. }
                            if rest.strip_prefix(text.as_str()).is_some_and(|after| {
                                after.is_empty() || after.starts_with(['.', '[', ':'])
                            }) =>
                        {
                            Some((text.len(), key, value))
                        }
                        _ => None,
                    })
                    .max_by_key(|(len, _, _)| *len);
                let Some((len, key, value)) = matched else {
                    return found;
                };
                found.line = key.line;
                found.node = value;
                found.depth += steps(&rest[..len]).len();
                rest = &rest[len..];
                node = value;
            }
            yaml::Value::Seq(items) => {
                let item = rest
                    .strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .and_then(|(n, after)| Some((items.get(n.parse::<usize>().ok()?)?, after)));
                let Some((item, after)) = item else {
                    return found;
                };
                found.line = item.line;
                found.node = item;
                found.depth += 1;
                rest = after;
                node = item;
            }
            _ => return found,
        }
    }
}

/// One Kubernetes object of the input, with where it came from.
#[derive(Debug, Clone)]
pub struct Object {
    /// Where it is in the input.
    pub origin: Origin,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub value: Value,
}

impl Object {
    /// `ImagePolicy flux-system/podinfo`.
    pub fn id(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// `ns/name`.
    pub fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }

    /// An error about `field` of this object, naming where it came from.
    pub fn error(&self, field: &str, message: impl Into<String>) -> ImportError {
        self.error_at(self.origin.value_place(field), field, message)
    }

    fn error_at(&self, place: String, field: &str, message: impl Into<String>) -> ImportError {
        ImportError::Field {
            place,
            object: match &self.origin.via {
                Some(via) => format!("{} (from {via})", self.id()),
                None => self.id(),
            },
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// `field`'s value is YAML text (`registries.conf`) that `yaml_serde` refused with `error`:
    /// the error, named by its line and column in the file where the parser can say where and
    /// the value is a literal block scalar, else by the value's own place.
    pub fn not_yaml(&self, field: &str, text: &str, error: &yaml_serde::Error) -> ImportError {
        let scanned = Parser::new_from_str(text).find_map(|event| event.err());
        if let Some(scanned) = scanned
            && let Some(place) =
                self.origin
                    .place_inside(field, scanned.marker().line(), scanned.marker().col() + 1)
        {
            return self.error_at(place, field, format!("not YAML: {}", scanned.info()));
        }
        self.error(field, format!("not YAML: {error}"))
    }

    /// The value at a dotted path (`spec.policy.semver`), if present and not null.
    pub fn at(&self, path: &str) -> Option<&Value> {
        at(&self.value, path)
    }

    /// A string field: `None` when absent, an error when present but not a string.
    pub fn str(&self, path: &str) -> Result<Option<String>, ImportError> {
        match self.at(path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(self.error(path, "expected a string")),
        }
    }

    /// A required string field.
    pub fn required(&self, path: &str) -> Result<String, ImportError> {
        match self.str(path)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(self.error(path, "is empty")),
            None => Err(self.error(path, "is required but missing")),
        }
    }

    /// A boolean field (`true`/`false`, also as strings).
    pub fn bool(&self, path: &str) -> Result<Option<bool>, ImportError> {
        match self.at(path) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(self.error(path, "expected true or false")),
        }
    }

    /// A list of strings.
    pub fn strings(&self, path: &str) -> Result<Vec<String>, ImportError> {
        match self.at(path) {
            None => Ok(Vec::new()),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.error(path, "expected a list of strings")),
                })
                .collect(),
            Some(_) => Err(self.error(path, "expected a list of strings")),
        }
    }

    /// The keys of the mapping at `path` (empty when absent or not a mapping).
    pub fn keys(&self, path: &str) -> Vec<String> {
        let node = if path.is_empty() {
            Some(&self.value)
        } else {
            self.at(path)
        };
        match node {
            Some(Value::Mapping(map)) => map
                .keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The string-to-string mapping at `path` (labels, annotations).
    pub fn string_map(&self, path: &str) -> Result<Vec<(String, String)>, ImportError> {
        match self.at(path) {
            None => Ok(Vec::new()),
            Some(Value::Mapping(map)) => map
                .iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    (Some(k), Value::String(v)) => Ok((k.to_string(), v.clone())),
                    (Some(k), Value::Bool(b)) => Ok((k.to_string(), b.to_string())),
                    (Some(k), Value::Number(n)) => Ok((k.to_string(), n.to_string())),
                    _ => Err(self.error(path, "expected a mapping of strings")),
                })
                .collect(),
            Some(_) => Err(self.error(path, "expected a mapping of strings")),
        }
    }
}

fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let found = path
        .split('.')
        .try_fold(value, |node, key| node.as_mapping()?.get(key))?;
    (!found.is_null()).then_some(found)
}

impl fmt::Display for Object {
    /// `ImagePolicy flux-system/podinfo (flux.yaml:12)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id(), self.origin)
    }
}

/// Every object of a YAML text: each document, and each item of a `kind: List`. Empty
/// documents are skipped. `namespace` is used for objects that name none.
pub fn read_objects(
    source_name: &str,
    text: &str,
    namespace: &str,
) -> Result<Vec<Object>, ImportError> {
    let mut objects = Vec::new();
    for document in documents(source_name, text)? {
        let value: Value = yaml_serde::from_str(document.text).map_err(|e| {
            let place = match e.location() {
                Some(l) => format!(
                    "{source_name}:{}:{}",
                    document.offset + l.line(),
                    l.column()
                ),
                None => format!("{source_name}:{}", document.line),
            };
            ImportError::Yaml {
                place,
                message: shift_lines(&e.to_string(), document.offset),
            }
        })?;
        if value.is_null() {
            continue;
        }
        // The loader's tree of the same text, for the lines of fields; past its bound on nodes
        // (a very large `kind: List`) objects are named by their document's line.
        let tree = yaml::parse(document.text).ok().flatten().map(|root| Tree {
            root,
            offset: document.offset,
            text: document.text.to_string(),
        });
        let origin = Origin {
            file: source_name.to_string(),
            line: tree
                .as_ref()
                .map_or(document.line, |t| t.root.line + t.offset),
            tree: tree.map(Arc::new),
            route: String::new(),
            via: None,
        };
        let object = object(origin, value, namespace)?;
        if object.kind == "List" {
            let items = match object.value.get("items") {
                Some(Value::Sequence(items)) => items.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(object.error("items", "expected a list of objects")),
            };
            for (index, item) in items.into_iter().enumerate() {
                let origin = object.origin.at_route(&format!("items[{index}]"));
                objects.push(self::object(origin, item, namespace)?);
            }
        } else {
            objects.push(object);
        }
    }
    Ok(objects)
}

/// One document of a YAML stream.
struct Document<'t> {
    /// Its text, from the end of the previous document (directives and comments included).
    text: &'t str,
    /// The line of the stream `text` starts on, less one: add it to a line of `text`.
    offset: usize,
    /// The line the document starts on (its `---`, or its first node).
    line: usize,
}

/// Split a YAML stream into its documents, with the parser's events (which carry positions).
/// A syntax error is named with its line and column.
fn documents<'t>(source_name: &str, text: &'t str) -> Result<Vec<Document<'t>>, ImportError> {
    let mut found = Vec::new();
    // Where the next document's text starts: (char index, line), and its byte offset.
    let mut cut = (0, 1, 0);
    let mut start = 1;
    // Markers count characters; a cursor turns them into byte offsets as they grow.
    let mut cursor = (0, 0);
    let mut byte_at = |char_index: usize| {
        let (chars, bytes) = &mut cursor;
        for c in text[*bytes..].chars() {
            if *chars >= char_index {
                break;
            }
            *chars += 1;
            *bytes += c.len_utf8();
        }
        *bytes
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| ImportError::Yaml {
            place: format!(
                "{source_name}:{}:{}",
                e.marker().line(),
                e.marker().col() + 1
            ),
            message: e.info().to_string(),
        })?;
        match event {
            Event::DocumentStart(_) => start = span.start.line(),
            Event::DocumentEnd => {
                // An implicit end's span is the next document's `---`, which belongs to it;
                // an explicit `...` ends this one.
                let from = byte_at(span.start.index());
                let to = byte_at(span.end.index());
                let end = if text[from..to].starts_with("...") {
                    (span.end.index(), span.end.line(), to)
                } else {
                    (span.start.index(), span.start.line(), from)
                };
                found.push(Document {
                    text: &text[cut.2..end.2],
                    offset: cut.1 - 1,
                    line: start,
                });
                cut = end;
            }
            _ => {}
        }
    }
    Ok(found)
}

/// A `yaml_serde` message about one document's text, its `line N` made lines of the stream.
fn shift_lines(message: &str, offset: usize) -> String {
    // A constant pattern: it always compiles.
    #[allow(clippy::expect_used)]
    let pattern = regex::Regex::new(r"\bline (\d+)").expect("a valid pattern");
    pattern
        .replace_all(message, |c: &regex::Captures<'_>| {
            let line: usize = c[1].parse().unwrap_or(0);
            format!("line {}", line + offset)
        })
        .into_owned()
}

fn object(origin: Origin, value: Value, namespace: &str) -> Result<Object, ImportError> {
    let missing = |field: &str| ImportError::Field {
        place: origin.value_place(field),
        object: "(document)".to_string(),
        field: field.to_string(),
        message: "is required but missing (is this a Kubernetes object?)".to_string(),
    };
    if !value.is_mapping() {
        return Err(ImportError::Field {
            place: origin.to_string(),
            object: "(document)".to_string(),
            field: "(document)".to_string(),
            message: "expected a Kubernetes object (a mapping with apiVersion, kind, metadata)"
                .to_string(),
        });
    }
    let text = |path: &str| at(&value, path).and_then(Value::as_str).map(str::to_string);
    let api_version = text("apiVersion").ok_or_else(|| missing("apiVersion"))?;
    let kind = text("kind").ok_or_else(|| missing("kind"))?;
    let name = if kind == "List" {
        String::new()
    } else {
        text("metadata.name").ok_or_else(|| missing("metadata.name"))?
    };
    let namespace = text("metadata.namespace").unwrap_or_else(|| namespace.to_string());
    Ok(Object {
        origin,
        api_version,
        kind,
        name,
        namespace,
        value,
    })
}

/// Every YAML file under `dir` (recursively, sorted, never following symlinks, skipping
/// hidden directories such as `.git`), as paths relative to `dir`.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let mut found = Vec::new();
    walk(dir, Path::new(""), &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(root: &Path, relative: &Path, found: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    let dir = root.join(relative);
    let io = |e: std::io::Error| ImportError::Io {
        path: dir.clone(),
        message: e.to_string(),
    };
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let kind = entry.file_type().map_err(io)?;
        let child = relative.join(&name);
        if kind.is_symlink() {
            continue;
        }
        if kind.is_dir() {
            if !name.to_string_lossy().starts_with('.') {
                walk(root, &child, found)?;
            }
        } else if kind.is_file() && is_yaml_name(&name.to_string_lossy()) {
            found.push(child);
        }
    }
    Ok(())
}

fn is_yaml_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Read every input: `-` is stdin, a directory is every YAML file under it.
pub fn read_inputs(inputs: &[PathBuf], namespace: &str) -> Result<Vec<Object>, ImportError> {
    let mut objects = Vec::new();
    let stdin = [PathBuf::from("-")];
    let inputs = if inputs.is_empty() {
        &stdin[..]
    } else {
        inputs
    };
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
                ImportError::Io {
                    path: PathBuf::from("<stdin>"),
                    message: e.to_string(),
                }
            })?;
            objects.extend(read_objects("<stdin>", &text, namespace)?);
            continue;
        }
        let meta = std::fs::metadata(input).map_err(|e| ImportError::Io {
            path: input.clone(),
            message: e.to_string(),
        })?;
        let files = if meta.is_dir() {
            yaml_files(input)?
                .into_iter()
                .map(|f| input.join(f))
                .collect()
        } else {
            vec![input.clone()]
        };
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| ImportError::Io {
                path: file.clone(),
                message: e.to_string(),
            })?;
            objects.extend(read_objects(&file.display().to_string(), &text, namespace)?);
        }
    }
    Ok(objects)
}

/// Write the files into `dir` all at once: into a temporary directory beside it, checked with
/// the configuration loader, then renamed to `dir`. `dir` must not exist or be empty.
pub fn write_dir(dir: &Path, files: &[(PathBuf, String)]) -> Result<(), ImportError> {
    let io = |path: &Path, e: std::io::Error| ImportError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(ImportError::Io {
                path: dir.to_path_buf(),
                message: "exists and is not empty: choose a new output directory".to_string(),
            });
        }
    } else if dir.exists() {
        return Err(ImportError::Io {
            path: dir.to_path_buf(),
            message: "exists and is not a directory".to_string(),
        });
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| io(&parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".imagebump-import-")
        .tempdir_in(&parent)
        .map_err(|e| io(&parent, e))?;
    for (relative, text) in files {
        let path = tmp.path().join(relative);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| io(p, e))?;
        }
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    let global = tmp.path().join("imagebump.yaml");
    let checked = crate::config::check(&global).map_err(|e| ImportError::Invalid(e.to_string()))?;
    if !checked.problems.is_empty() {
        let text: Vec<String> = checked.problems.iter().map(|p| p.to_string()).collect();
        return Err(ImportError::Invalid(text.join("\n")));
    }
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(|e| io(dir, e))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        io(dir, e)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lists_and_documents_become_objects_with_their_lines() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: a/v1\n  kind: K\n  metadata: {name: x, namespace: ns}\n---\n---\napiVersion: b/v1\nkind: J\nmetadata: {name: y}\n";
        let objects = read_objects("in.yaml", text, "default").unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].origin.to_string(), "in.yaml:4");
        assert_eq!(objects[0].id(), "K ns/x");
        assert_eq!(objects[1].origin.to_string(), "in.yaml:9");
        assert_eq!(objects[1].id(), "J default/y");
        assert_eq!(objects[0].to_string(), "K ns/x (in.yaml:4)");
    }

    /// A field is named by the line of its key, or of the nearest enclosing key present; list
    /// items, keys holding dots and annotation keys too.
    #[test]
    fn fields_are_named_with_their_lines() {
        let text = "# flux export\n---\napiVersion: a/v1\nkind: K\nmetadata:\n  name: x\n  annotations:\n    example.io/image-list: web=nginx\nspec:\n  policy:\n    semver:\n      rnage: 1.x\n  refs:\n  - name: a\n  - name: b\n    labels: {team: web}\ndata:\n  registries.conf: |\n    registries: []\n";
        let objects = read_objects("in.yaml", text, "default").unwrap();
        let origin = &objects[0].origin;
        for (field, line) in [
            ("", 3),
            ("kind", 4),
            ("spec.policy.semver.rnage", 12),
            // Missing: the nearest key present.
            ("spec.policy.semver.range", 11),
            ("spec.suspend", 9),
            ("spec.refs[1]", 15),
            ("spec.refs[1].labels.team", 16),
            ("spec.refs[7].name", 13),
            ("data.registries.conf", 18),
            // Inside the block: the nearest key present in its text, `registries:`.
            ("data.registries.conf: registries[0].prefix", 19),
            ("example.io/image-list", 8),
            ("nothing.here", 3),
        ] {
            assert_eq!(origin.line_of(field), line, "{field}");
        }
        assert_eq!(origin.place("kind"), "in.yaml:4");
    }

    /// A field inside the YAML text of a literal block scalar is named by its own line and
    /// column in the file (after a header with a comment and a blank first line); inside a
    /// folded one, whose lines are not the file's, by the key's line.
    #[test]
    fn fields_inside_a_literal_block_are_named_with_their_own_lines() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  a.conf: |-  # a comment\n\n      x:\n        - {y: 1}\n        - y: 2\n  b.conf: >\n    x:\n      - y: 1\n";
        let objects = read_objects("in.yaml", text, "default").unwrap();
        let origin = &objects[0].origin;
        assert_eq!(origin.line_of("data.a.conf: x"), 7);
        assert_eq!(origin.line_of("data.a.conf: x[0]"), 8);
        assert_eq!(origin.value_place("data.a.conf: x[1].y"), "in.yaml:9:14");
        assert_eq!(origin.value_place("data.a.conf: x[0].y"), "in.yaml:8:15");
        // Missing: the nearest key present inside the block.
        assert_eq!(origin.value_place("data.a.conf: x[1].z"), "in.yaml:9");
        assert_eq!(origin.line_of("data.b.conf: x[0].y"), 10);
        // A position inside the text (a parser's error), in the file; none in a folded block.
        assert_eq!(
            origin.place_inside("data.a.conf", 3, 5).as_deref(),
            Some("in.yaml:8:11")
        );
        assert_eq!(origin.place_inside("data.b.conf", 1, 1), None);
        // The end of the text (a parser stopped by the end of its input, after the last
        // newline): the end of the block's last line, not the line after the block.
        assert_eq!(
            origin.place_inside("data.a.conf", 5, 1).as_deref(),
            Some("in.yaml:9:15")
        );
    }

    /// Documents after the first (after `...` and a directive too) are named with the lines of
    /// the whole stream, not of their own text.
    #[test]
    fn later_documents_count_lines_from_the_top_of_the_stream() {
        let text = "a: 1\n...\n%YAML 1.2\n---\napiVersion: v1\nkind: K\nmetadata: {name: x}\n---\n\n\napiVersion: v1\nkind: J\nmetadata:\n  name: y\nspec:\n  é: ü\n  bad: 1\n";
        let err = read_objects("in.yaml", text, "d").unwrap_err();
        assert_eq!(
            err.to_string(),
            "in.yaml:1: (document): `apiVersion`: is required but missing (is this a Kubernetes object?)"
        );
        let objects = read_objects("in.yaml", &text[text.find("%YAML").unwrap()..], "d").unwrap();
        // The text now starts at `%YAML`: its lines count from there.
        assert_eq!(objects[0].origin.to_string(), "in.yaml:3");
        assert_eq!(objects[1].origin.to_string(), "in.yaml:9");
        assert_eq!(objects[1].origin.line_of("spec.bad"), 15);
        assert_eq!(
            objects[1].error("spec.bad", "no").to_string(),
            "in.yaml:15:8: J d/y: `spec.bad`: no"
        );
    }

    /// A document past the loader's bound on nodes (a very large `kind: List`) still imports;
    /// its items are named by the document's line and their place in it.
    #[test]
    fn a_document_too_large_for_positions_names_items_by_route() {
        let mut text = String::from("apiVersion: v1\nkind: List\nitems:\n");
        for i in 0..12_000 {
            text.push_str(&format!(
                "- apiVersion: a/v1\n  kind: K\n  metadata: {{name: x{i}, namespace: ns}}\n"
            ));
        }
        let objects = read_objects("in.yaml", &text, "default").unwrap();
        assert_eq!(objects.len(), 12_000);
        let last = &objects[11_999];
        assert_eq!(last.origin.to_string(), "in.yaml:1 (items[11999])");
        assert_eq!(
            last.error("spec", "no").to_string(),
            "in.yaml:1 (items[11999]): K ns/x11999: `spec`: no"
        );
    }

    #[test]
    fn not_yaml_and_missing_fields_name_the_line() {
        let err = read_objects("in.yaml", "a: 1\n---\nb: [\n", "default").unwrap_err();
        assert!(
            err.to_string().starts_with("in.yaml:4:1: not YAML: "),
            "{err}"
        );
        let err = read_objects("in.yaml", "---\nkind: K\nmetadata: {name: x}\n", "d").unwrap_err();
        assert_eq!(
            err.to_string(),
            "in.yaml:2: (document): `apiVersion`: is required but missing (is this a Kubernetes object?)"
        );
        let object = "apiVersion: v1\nkind: K\nmetadata: {name: x}\n---\n";
        let err = read_objects("in.yaml", &format!("{object}- a\n"), "d").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("in.yaml:5: (document): `(document)`: expected a Kubernetes object"),
            "{err}"
        );
        // A key the parser accepts and yaml_serde refuses: the line is the stream's.
        let err = read_objects("in.yaml", &format!("{object}b: 1\nb: 2\n"), "d").unwrap_err();
        // (yaml_serde places it at the mapping's first key.)
        assert_eq!(
            err.to_string(),
            "in.yaml:5:1: not YAML: duplicate entry with key \"b\" at line 5 column 1"
        );
    }
}
