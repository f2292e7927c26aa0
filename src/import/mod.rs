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

use serde::Deserialize as _;
use yaml_serde::Value;

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
                    "  {} {}: {}\n",
                    note.object, note.field, note.message
                ));
            }
        }
        out
    }

    /// Turn the `translated` notes of `object` (an id, `ImagePolicy ns/name`) into `no
    /// equivalent` ones saying why they were not written, but for the `keep` fields: the report
    /// never claims a field made it into a file that is not written.
    pub(crate) fn not_written(&mut self, object: &str, keep: &[&str], why: &str) {
        for note in &mut self.notes {
            if note.outcome == Outcome::Translated
                && note.object == object
                && !keep.contains(&note.field.as_str())
            {
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
            object: object.id(),
            field: field.to_string(),
            message: message.into(),
        });
    }
}

/// Why an import failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{source_name}: document {document}: not YAML: {message}")]
    Yaml {
        source_name: String,
        document: usize,
        message: String,
    },
    #[error("{object}: `{field}`: {message}")]
    Field {
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

/// One Kubernetes object of the input, with where it came from.
#[derive(Debug, Clone)]
pub struct Object {
    /// `flux.yaml document 2` (or `… item 3` inside a `kind: List`).
    pub origin: String,
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
        ImportError::Field {
            object: format!("{} ({})", self.origin, self.id()),
            field: field.to_string(),
            message: message.into(),
        }
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.origin, self.id())
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
    for (index, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let value = Value::deserialize(document).map_err(|e| ImportError::Yaml {
            source_name: source_name.to_string(),
            document: number,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let origin = format!("{source_name} document {number}");
        let object = object(origin, value, namespace)?;
        if object.kind == "List" {
            let items = match object.value.get("items") {
                Some(Value::Sequence(items)) => items.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(object.error("items", "expected a list of objects")),
            };
            for (item_index, item) in items.into_iter().enumerate() {
                let origin = format!("{} item {}", object.origin, item_index + 1);
                objects.push(self::object(origin, item, namespace)?);
            }
        } else {
            objects.push(object);
        }
    }
    Ok(objects)
}

fn object(origin: String, value: Value, namespace: &str) -> Result<Object, ImportError> {
    let missing = |field: &str| ImportError::Field {
        object: origin.clone(),
        field: field.to_string(),
        message: "is required but missing (is this a Kubernetes object?)".to_string(),
    };
    if !value.is_mapping() {
        return Err(ImportError::Field {
            object: origin,
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
    fn lists_and_documents_become_objects_with_their_origin() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: a/v1\n  kind: K\n  metadata: {name: x, namespace: ns}\n---\n---\napiVersion: b/v1\nkind: J\nmetadata: {name: y}\n";
        let objects = read_objects("in.yaml", text, "default").unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].origin, "in.yaml document 1 item 1");
        assert_eq!(objects[0].id(), "K ns/x");
        assert_eq!(objects[1].origin, "in.yaml document 3");
        assert_eq!(objects[1].id(), "J default/y");
    }

    #[test]
    fn not_yaml_and_missing_fields_name_the_document() {
        let err = read_objects("in.yaml", "a: [\n", "default").unwrap_err();
        assert!(
            err.to_string().starts_with("in.yaml: document 1: not YAML"),
            "{err}"
        );
        let err = read_objects("in.yaml", "---\nkind: K\nmetadata: {name: x}\n", "d").unwrap_err();
        assert_eq!(
            err.to_string(),
            "in.yaml document 1: `apiVersion`: is required but missing (is this a Kubernetes object?)"
        );
    }
}
