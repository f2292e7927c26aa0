//! Format-preserving edits of image references in YAML files: Kustomize `images:` entries, Helm
//! values by path, Kubernetes manifests (`image:` of every container) and Flux setter markers.
//!
//! Architecture invariant: `edit` is pure. Bytes in, bytes out, plus a list of changes with line
//! numbers. No file I/O, no network, no git: the caller reads and writes files.
//!
//! Design choice (the shape of zizmor's yamlpatch): an edit is a route to a scalar plus an
//! operation. The new text is spliced into the original bytes, so every other byte (comments,
//! blank lines, CRLF, BOM, indentation, anchors, block scalars) stays identical. The result is
//! parsed again and its data compared with the original's: equal everywhere except at the
//! intended nodes, or the edit is refused and nothing is returned ([`verify`]).
//!
//! Modules: [`scan`] builds the positioned tree, [`scalar`] holds the quoting rules, one module
//! per target ([`kustomize`], [`manifest`], [`helm`], [`marker`]) finds the slots, and this file
//! turns slots plus an [`Update`] into edits.

mod helm;
mod kustomize;
mod manifest;
mod marker;
mod quick;
pub mod scalar;
pub mod scan;
mod verify;

use std::collections::HashSet;
use std::fmt;

use crate::reference::{ImageRef, is_valid_digest, is_valid_tag};

pub use helm::{HelmField, PathSegment, ValuePath, parse_value_path};
use scan::{Kind, NodeId, Style, Tree, line_col};

/// What to look for in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Kustomize `images:` entries (documents with a top-level `images:` list).
    Kustomize,
    /// `image:` of containers, initContainers and ephemeralContainers in every document.
    Manifest,
    /// One Helm-values scalar by path.
    Helm { path: ValuePath, field: HelmField },
    /// Scalars carrying a Flux setter marker `# {"$imagepolicy": "ns:name[:tag|name|digest]"}`
    /// for this policy (`ns:name`).
    Marker { policy: String },
    /// A file-only target: Kustomize entries in a kustomization document, container images in
    /// other documents, plus whole-reference Flux markers whose value names the image.
    Auto,
}

/// A reference to the image found in a file: what is deployed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// 1-based line of the scalar.
    pub line: usize,
    /// 1-based column (in characters) of the scalar.
    pub column: usize,
    /// The image name as written in the file (without tag or digest), when the slot has one.
    pub name: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// What to write: the repository to match, and its new tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Repository to match (tag and digest ignored when matching).
    pub image: ImageRef,
    /// The name as the caller spells it, written where a file has no name of its own.
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// A new repository name (no tag, no digest): written as a Kustomize entry's `newName`
    /// (inserted when missing), as the name part of whole references (`NEWNAME:TAG`) and as
    /// `:name` marker values. Slots naming it already match too, so a rerun is a no-op.
    pub new_name: Option<String>,
}

impl Update {
    /// Parse `NAME[:TAG][@DIGEST]`; tag and digest come from the reference.
    pub fn parse(reference: &str) -> Result<Update, EditError> {
        let image = ImageRef::parse(reference).map_err(|e| EditError::InvalidValue {
            value: reference.to_string(),
            reason: e.to_string(),
        })?;
        let (name, _, _) = split_reference(reference);
        Ok(Update {
            name: name.to_string(),
            tag: image.tag.clone(),
            digest: image.digest.clone(),
            image,
            new_name: None,
        })
    }

    /// The same update, also renaming the image to `new_name` (a repository without tag or
    /// digest).
    pub fn with_new_name(mut self, new_name: &str) -> Result<Update, EditError> {
        self.new_name = Some(new_name.to_string());
        self.validate()?;
        Ok(self)
    }

    /// The repositories a slot may name to be updated: the image, and its new name.
    fn names(&self) -> Vec<ImageRef> {
        let mut out = vec![self.image.clone()];
        if let Some(n) = self
            .new_name
            .as_deref()
            .and_then(|n| ImageRef::parse(n).ok())
        {
            out.push(n);
        }
        out
    }

    /// An update of `name` (any spelling) to `tag` and/or `digest`.
    pub fn new(name: &str, tag: Option<&str>, digest: Option<&str>) -> Result<Update, EditError> {
        let mut update = Update::parse(name)?;
        update.name = split_reference(name).0.to_string();
        update.tag = tag.map(str::to_string);
        update.digest = digest.map(str::to_string);
        update.validate()?;
        Ok(update)
    }

    fn validate(&self) -> Result<(), EditError> {
        if let Some(tag) = &self.tag
            && !is_valid_tag(tag)
        {
            return Err(EditError::InvalidValue {
                value: tag.clone(),
                reason:
                    "not a valid OCI tag (1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-')"
                        .into(),
            });
        }
        if let Some(digest) = &self.digest
            && !is_valid_digest(digest)
        {
            return Err(EditError::InvalidValue {
                value: digest.clone(),
                reason: "not a valid digest (expected sha256:<64 lowercase hex>)".into(),
            });
        }
        if let Some(new_name) = &self.new_name {
            let bad = |reason: String| EditError::InvalidValue {
                value: new_name.clone(),
                reason,
            };
            let parsed = ImageRef::parse(new_name).map_err(|e| bad(e.to_string()))?;
            if parsed.tag.is_some() || parsed.digest.is_some() {
                return Err(bad(
                    "a new name is a repository alone: give the tag and digest with the image"
                        .into(),
                ));
            }
        }
        if self.tag.is_none() && self.digest.is_none() && self.new_name.is_none() {
            return Err(EditError::InvalidValue {
                value: self.name.clone(),
                reason: "nothing to write: give a tag, a digest, a new name or several".into(),
            });
        }
        Ok(())
    }
}

/// One change made to a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// 1-based line of the edited (or inserted) scalar in the original file.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// Old value (empty for an inserted key, and for an empty value filled in).
    pub old: String,
    /// New value.
    pub new: String,
    /// The key was inserted (it was not in the file), rather than its value replaced.
    pub inserted: bool,
}

/// The edited bytes and what changed. `changes` is empty (and `bytes` equal to the input) when
/// the file is already up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub bytes: Vec<u8>,
    pub changes: Vec<Change>,
}

/// Why an edit was refused. Positions are 1-based line:column of the original file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the file is not UTF-8 text")]
    NotUtf8,
    #[error("{line}:{col}: not valid YAML: {message}")]
    Parse {
        line: usize,
        col: usize,
        message: String,
    },
    #[error("the file is {size} bytes; the editor accepts at most {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("{line}:{col}: nesting deeper than {limit} levels")]
    TooDeep {
        line: usize,
        col: usize,
        limit: usize,
    },
    #[error("invalid path {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("path {path} not found: {reason}")]
    PathNotFound { path: String, reason: String },
    #[error("{line}:{col}: {what} is a {found}, expected a scalar")]
    NotScalar {
        line: usize,
        col: usize,
        what: String,
        found: &'static str,
    },
    #[error("{line}:{col}: {what} is ambiguous: {reason}")]
    Ambiguous {
        line: usize,
        col: usize,
        what: String,
        reason: String,
    },
    #[error("invalid value {value:?}: {reason}")]
    InvalidValue { value: String, reason: String },
    #[error("{line}:{col}: cannot edit this value: {reason}")]
    Unsupported {
        line: usize,
        col: usize,
        reason: String,
    },
    #[error("{line}:{col}: edit refused by the safety check: {reason}")]
    Verify {
        line: usize,
        col: usize,
        reason: String,
    },
}

impl EditError {
    /// Line and column the error points at, when it has one.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            EditError::Parse { line, col, .. }
            | EditError::TooDeep { line, col, .. }
            | EditError::NotScalar { line, col, .. }
            | EditError::Ambiguous { line, col, .. }
            | EditError::Unsupported { line, col, .. }
            | EditError::Verify { line, col, .. } => Some((*line, *col)),
            _ => None,
        }
    }
}

/// Which part of an image reference a scalar holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `name[:tag][@digest]`
    Ref,
    Tag,
    /// The tag of a Helm values path (`api.image.tag`), with its mapping's `digest` sibling
    /// when there is one (the Bitnami layout). A digest to write goes into that sibling, else
    /// into the tag value as `TAG@sha256:…`: never dropped.
    HelmTag {
        digest: Option<NodeId>,
    },
    Digest,
    /// The repository name alone.
    Name,
}

/// A place in the document that holds (part of) an image reference.
#[derive(Debug, Clone)]
enum Slot {
    /// One scalar holding `field`.
    Scalar { node: NodeId, field: Field },
    /// A Kustomize `images:` entry.
    Kustomize {
        entry: NodeId,
        name: Option<NodeId>,
        new_name: Option<NodeId>,
        new_tag: Option<NodeId>,
        digest: Option<NodeId>,
    },
}

/// An operation on the original text.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace scalar `node` by `value`.
    Replace { node: NodeId, value: String },
    /// Add `key: value` as the last entry of mapping `map`.
    Insert {
        map: NodeId,
        key: String,
        value: String,
    },
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Ref => "image reference",
            Field::Tag | Field::HelmTag { .. } => "tag",
            Field::Digest => "digest",
            Field::Name => "image name",
        })
    }
}

/// Split a reference as written into (name, tag, digest) without normalising anything.
pub fn split_reference(reference: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].find(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(&rest[last_slash + i + 1..]),
            digest,
        ),
        None => (rest, None, digest),
    }
}

/// The text of a document without the UTF-8 check repeated everywhere.
fn text(src: &[u8]) -> Result<&str, EditError> {
    std::str::from_utf8(src).map_err(|_| EditError::NotUtf8)
}

fn same_image(value: &str, image: &ImageRef) -> bool {
    ImageRef::parse(value).is_ok_and(|r| r.same_repository(image))
}

/// True when `value` names one of `images` (any value when `images` is `None`).
fn names(value: &str, images: Option<&[ImageRef]>) -> bool {
    images.is_none_or(|images| {
        ImageRef::parse(value).is_ok_and(|r| images.iter().any(|i| r.same_repository(i)))
    })
}

/// Every slot the target designates, deduplicated by node. `image` filters by repository
/// (Helm and marker targets name their slots themselves and ignore it where it cannot apply).
fn slots(
    src: &str,
    tree: &Tree,
    target: &Target,
    image: Option<&[ImageRef]>,
) -> Result<Vec<Slot>, EditError> {
    let mut out = match target {
        Target::Kustomize => kustomize::slots(src, tree, image)?,
        Target::Manifest => manifest::slots(tree, image),
        Target::Helm { path, field } => vec![helm::slot(src, tree, path, *field)?],
        Target::Marker { policy } => marker::slots(src, tree, Some(policy), image),
        Target::Auto => {
            let mut all = Vec::new();
            for &root in &tree.roots {
                if kustomize::is_kustomization(tree, root) {
                    all.extend(kustomize::slots_in(src, tree, root, image)?);
                } else {
                    all.extend(manifest::slots_in(tree, root, image));
                }
            }
            all.extend(marker::slots(src, tree, None, image));
            all
        }
    };
    let mut seen = HashSet::new();
    out.retain(|slot| match slot {
        Slot::Scalar { node, .. } => seen.insert(tree.resolve(*node)),
        Slot::Kustomize { entry, .. } => seen.insert(*entry),
    });
    Ok(out)
}

fn found(src: &str, tree: &Tree, slot: &Slot) -> Found {
    let at = |node: NodeId| line_col(src, tree.nodes[tree.resolve(node)].start);
    let value = |node: Option<NodeId>| node.and_then(|n| tree.scalar(n)).map(str::to_string);
    match slot {
        Slot::Scalar { node, field } => {
            let (line, column) = at(*node);
            let v = tree.scalar(*node).unwrap_or_default();
            let (name, tag, digest) = match field {
                Field::Ref => {
                    let (n, t, d) = split_reference(v);
                    (Some(n), t, d)
                }
                Field::Tag => (None, Some(v), None),
                Field::HelmTag { digest } => match v.split_once('@') {
                    Some((tag, inline)) => (None, Some(tag), Some(inline)),
                    None => (
                        None,
                        Some(v),
                        digest
                            .and_then(|n| tree.scalar(n))
                            .filter(|d| !d.is_empty()),
                    ),
                },
                Field::Digest => (None, None, Some(v)),
                Field::Name => (Some(v), None, None),
            };
            Found {
                line,
                column,
                name: name.map(str::to_string),
                tag: tag.map(str::to_string),
                digest: digest.map(str::to_string),
            }
        }
        Slot::Kustomize {
            entry,
            name,
            new_name,
            new_tag,
            digest,
        } => {
            let (line, column) = at(name.or(*new_name).unwrap_or(*entry));
            Found {
                line,
                column,
                name: value(*new_name).or_else(|| value(*name)),
                tag: value(*new_tag),
                digest: value(*digest),
            }
        }
    }
}

/// A file parsed once, for callers that [`Document::find`] and then [`Document::apply`] on the
/// same bytes (the free functions parse on every call). Edits are still verified by a fresh parse
/// of the edited text.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    text: &'a str,
    tree: Tree,
}

impl<'a> Document<'a> {
    /// Parse `src`: refused when it is not UTF-8, not valid YAML, too large or too deep.
    pub fn parse(src: &'a [u8]) -> Result<Document<'a>, EditError> {
        let text = text(src)?;
        let tree = scan::parse(text)?;
        Ok(Document { text, tree })
    }

    /// What is deployed now for `image`: one [`Found`] per slot (see [`find`]).
    pub fn find(&self, target: &Target, image: &ImageRef) -> Result<Vec<Found>, EditError> {
        let slots = slots(
            self.text,
            &self.tree,
            target,
            Some(std::slice::from_ref(image)),
        )?;
        Ok(slots
            .iter()
            .map(|s| found(self.text, &self.tree, s))
            .collect())
    }

    /// Apply `update` to every slot of every target (see [`apply_all`]).
    pub fn apply_all(&self, targets: &[Target], update: &Update) -> Result<Edited, EditError> {
        update.validate()?;
        let (text, tree) = (self.text, &self.tree);
        let names = update.names();
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        for target in targets {
            for slot in slots(text, tree, target, Some(&names))? {
                let key = match &slot {
                    Slot::Scalar { node, .. } => tree.resolve(*node),
                    Slot::Kustomize { entry, .. } => *entry,
                };
                if seen.insert(key) {
                    all.extend(edits_for(text, tree, &slot, update)?);
                }
            }
        }
        splice(text, tree, all)
    }

    /// Apply `update` to every slot `target` designates (see [`apply`]).
    pub fn apply(&self, target: &Target, update: &Update) -> Result<Edited, EditError> {
        self.apply_all(std::slice::from_ref(target), update)
    }
}

/// What is deployed now for `image` in this file: one [`Found`] per slot.
pub fn find(src: &[u8], target: &Target, image: &ImageRef) -> Result<Vec<Found>, EditError> {
    Document::parse(src)?.find(target, image)
}

/// A name to write, parsed (validated by [`Update::validate`] for a new name).
fn new_ref(name: &str) -> Result<ImageRef, EditError> {
    ImageRef::parse(name).map_err(|e| EditError::InvalidValue {
        value: name.to_string(),
        reason: e.to_string(),
    })
}

/// Edits that bring `slot` to `update` (none when it already is).
fn edits_for(src: &str, tree: &Tree, slot: &Slot, update: &Update) -> Result<Vec<Edit>, EditError> {
    let mut edits = Vec::new();
    let replace = |edits: &mut Vec<Edit>, node: NodeId, value: String| {
        if tree.scalar(node) != Some(value.as_str()) {
            edits.push(Edit::Replace { node, value });
        }
    };
    match slot {
        Slot::Scalar { node, field } => {
            let current = tree.scalar(*node).unwrap_or_default();
            match field {
                Field::Ref => {
                    let (name, tag, digest) = split_reference(current);
                    // The file's spelling is kept when it already names the image to write.
                    let want = update.new_name.as_ref().unwrap_or(&update.name);
                    let name = if same_image(current, &new_ref(want)?) {
                        name
                    } else {
                        want.as_str()
                    };
                    // What follows the name in the update replaces what follows it in the file
                    // (as `kustomize edit set image`): `NAME@DIGEST` drops the old tag rather
                    // than write a tag next to a digest it does not name.
                    let new_tag = match (&update.tag, &update.digest) {
                        (Some(t), _) => Some(t.as_str()),
                        (None, Some(_)) => None,
                        (None, None) => tag,
                    };
                    let new_digest = match (&update.digest, &update.tag) {
                        (Some(d), _) => Some(d.as_str()),
                        // A new tag without a digest where a digest pins the image: the old
                        // digest would keep the old image running, and dropping it would unpin
                        // silently. Refused, as for Kustomize entries and `:digest` markers.
                        (None, Some(t)) if Some(t.as_str()) != tag && digest.is_some() => {
                            let (line, col) = line_col(src, tree.nodes[tree.resolve(*node)].start);
                            return Err(EditError::Unsupported {
                                line,
                                col,
                                reason: "this reference pins a digest; give the new digest too (NAME:TAG@DIGEST), or remove the digest".into(),
                            });
                        }
                        (None, _) => digest,
                    };
                    let mut value = name.to_string();
                    if let Some(t) = new_tag {
                        value.push(':');
                        value.push_str(t);
                    }
                    if let Some(d) = new_digest {
                        value.push('@');
                        value.push_str(d);
                    }
                    replace(&mut edits, *node, value);
                }
                Field::Tag => {
                    if let Some(t) = &update.tag {
                        replace(&mut edits, *node, t.clone());
                    }
                }
                Field::HelmTag { digest } => {
                    if let Some(t) = &update.tag {
                        let pinned =
                            digest.filter(|n| tree.scalar(*n).is_some_and(|d| !d.is_empty()));
                        match (&update.digest, digest) {
                            (Some(d), Some(sibling)) => {
                                replace(&mut edits, *node, t.clone());
                                replace(&mut edits, *sibling, d.clone());
                            }
                            (Some(d), None) => replace(&mut edits, *node, format!("{t}@{d}")),
                            (None, _) => {
                                let (old_tag, _) = current.split_once('@').unwrap_or((current, ""));
                                if let Some(n) = pinned
                                    && old_tag != t
                                {
                                    let (line, col) = line_col(src, tree.nodes[n].start);
                                    return Err(EditError::Unsupported {
                                        line,
                                        col,
                                        reason: "this tag's mapping pins a digest, which the chart uses over the tag; give the new digest too (NAME:TAG@DIGEST, or pin_digest: true) or empty the digest".into(),
                                    });
                                }
                                replace(&mut edits, *node, t.clone());
                            }
                        }
                    }
                }
                Field::Digest => match &update.digest {
                    Some(d) => replace(&mut edits, *node, d.clone()),
                    // A `:digest` marker (or digest path) next to a tag being bumped alone would
                    // keep pulling the old image: never half an update.
                    None if update.tag.is_some() && !current.is_empty() => {
                        let (line, col) = line_col(src, tree.nodes[tree.resolve(*node)].start);
                        return Err(EditError::Unsupported {
                            line,
                            col,
                            reason: "this policy pins a digest here; give NAME:TAG@DIGEST so the digest moves with the tag".into(),
                        });
                    }
                    None => {}
                },
                Field::Name => {
                    let want = update.new_name.as_ref().unwrap_or(&update.name);
                    if !same_image(current, &new_ref(want)?) {
                        replace(&mut edits, *node, want.clone());
                    }
                }
            }
        }
        Slot::Kustomize {
            entry,
            name,
            new_name,
            new_tag,
            digest,
        } => {
            if let Some(t) = &update.tag {
                match new_tag {
                    Some(n) => replace(&mut edits, *n, t.clone()),
                    None => edits.push(Edit::Insert {
                        map: *entry,
                        key: "newTag".into(),
                        value: t.clone(),
                    }),
                }
            }
            match (&update.digest, digest) {
                (Some(d), Some(n)) => replace(&mut edits, *n, d.clone()),
                (Some(d), None) => edits.push(Edit::Insert {
                    map: *entry,
                    key: "digest".into(),
                    value: d.clone(),
                }),
                (None, Some(n)) if !edits.is_empty() => {
                    let (line, col) = line_col(src, tree.nodes[*n].start);
                    return Err(EditError::Unsupported {
                        line,
                        col,
                        reason: "this images: entry pins a digest, which Kustomize prefers over newTag; give the new digest too (NAME:TAG@DIGEST) or remove the digest line".into(),
                    });
                }
                _ => {}
            }
            // After the digest check: a new name alone keeps a pinned digest (a mirror holds
            // the same content under the same digest).
            // The newName edit goes first, so an inserted newName lands before an inserted newTag.
            if let Some(want) = &update.new_name {
                let wanted = new_ref(want)?;
                let named = |node: Option<NodeId>| {
                    node.and_then(|n| tree.scalar(n))
                        .is_some_and(|v| same_image(v, &wanted))
                };
                let rename = match new_name {
                    Some(n) if !named(Some(*n)) => Some(Edit::Replace {
                        node: *n,
                        value: want.clone(),
                    }),
                    None if !named(*name) => Some(Edit::Insert {
                        map: *entry,
                        key: "newName".into(),
                        value: want.clone(),
                    }),
                    _ => None,
                };
                edits.splice(0..0, rename);
            }
        }
    }
    Ok(edits)
}

/// Apply `update` to every slot `target` designates. `Ok` with no changes when already up to
/// date, and also when nothing in the file names the image: call [`find`] to tell them apart.
/// On `Err` nothing is returned, so the caller's file stays as it was.
pub fn apply(src: &[u8], target: &Target, update: &Update) -> Result<Edited, EditError> {
    apply_all(src, std::slice::from_ref(target), update)
}

/// Like [`apply`], for several targets at once (slots found by more than one are edited once).
pub fn apply_all(src: &[u8], targets: &[Target], update: &Update) -> Result<Edited, EditError> {
    // The update is checked before the file, as it always was.
    update.validate()?;
    Document::parse(src)?.apply_all(targets, update)
}

/// Set one Helm-values scalar to `value` (validated for `field`).
pub fn set_value(
    src: &[u8],
    path: &ValuePath,
    field: HelmField,
    value: &str,
) -> Result<Edited, EditError> {
    helm::validate_value(field, value)?;
    let text = text(src)?;
    let tree = scan::parse(text)?;
    let slot = helm::slot(text, &tree, path, field)?;
    let mut edits = Vec::new();
    if let Slot::Scalar { node, .. } = slot
        && tree.scalar(node) != Some(value)
    {
        edits.push(Edit::Replace {
            node,
            value: value.to_string(),
        });
    }
    splice(text, &tree, edits)
}

/// The line ending used by the line containing byte `at` (or the file's first one).
fn line_ending(src: &str, at: usize) -> &'static str {
    let from_here = src[at..].find('\n').map(|i| at + i);
    let any = from_here.or_else(|| src.find('\n'));
    match any {
        Some(i) if i > 0 && src.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// Turn edits into byte replacements, apply them, and verify the result.
fn splice(src: &str, tree: &Tree, edits: Vec<Edit>) -> Result<Edited, EditError> {
    // (start, end, text, change)
    let mut pieces: Vec<(usize, usize, String, Change)> = Vec::new();
    let mut expect = verify::Expectations::default();
    for edit in edits {
        match edit {
            Edit::Replace { node, value } => {
                let node = tree.resolve(node);
                let n = &tree.nodes[node];
                let (line, column) = line_col(src, n.start);
                let Kind::Scalar {
                    value: old, style, ..
                } = &n.kind
                else {
                    return Err(EditError::NotScalar {
                        line,
                        col: column,
                        what: "the target".into(),
                        found: "collection",
                    });
                };
                let original = &src[n.start..n.end];
                if *style == Style::Block || original.contains('\n') {
                    return Err(EditError::Unsupported {
                        line,
                        col: column,
                        reason:
                            "the value is a block or multi-line scalar; write it on one line first"
                                .into(),
                    });
                }
                // Two targets reaching one scalar (a Kustomize entry's newTag that also carries
                // a `:tag` marker, an anchor and its alias): the same new value is one edit,
                // different ones are refused.
                match expect.values.get(&node) {
                    Some(earlier) if *earlier == value => continue,
                    Some(earlier) => {
                        return Err(EditError::Ambiguous {
                            line,
                            col: column,
                            what: "the value".into(),
                            reason: format!(
                                "two targets reach it and want different values, {earlier:?} and {value:?} (a marker and an entry of different images, or an anchor and its alias?)"
                            ),
                        });
                    }
                    None => {}
                }
                let mut text = scalar::render(*style, &value);
                if original.is_empty() {
                    // An empty value right after its key's colon.
                    text.insert(0, ' ');
                }
                pieces.push((
                    n.start,
                    n.end,
                    text,
                    Change {
                        line,
                        column,
                        old: old.clone(),
                        new: value.clone(),
                        inserted: false,
                    },
                ));
                expect.values.insert(node, value);
            }
            Edit::Insert { map, key, value } => {
                let (at, text) = insertion(src, tree, map, &key, &value)?;
                let (line, column) = line_col(src, at);
                let line = if text.starts_with(['\r', '\n']) {
                    line + 1
                } else {
                    line
                };
                pieces.push((
                    at,
                    at,
                    text,
                    Change {
                        line,
                        column,
                        old: String::new(),
                        new: value.clone(),
                        inserted: true,
                    },
                ));
                expect.inserts.entry(map).or_default().push((key, value));
            }
        }
    }
    if pieces.is_empty() {
        return Ok(Edited {
            bytes: src.as_bytes().to_vec(),
            changes: Vec::new(),
        });
    }
    pieces.sort_by_key(|p| (p.0, p.1));
    let mut out = String::with_capacity(src.len() + 64);
    let mut cursor = 0;
    let mut changes = Vec::new();
    for (start, end, text, change) in pieces {
        if start < cursor {
            return Err(EditError::Ambiguous {
                line: change.line,
                col: change.column,
                what: "the value".into(),
                reason: "two edits overlap".into(),
            });
        }
        out.push_str(&src[cursor..start]);
        out.push_str(&text);
        cursor = end;
        changes.push(change);
    }
    out.push_str(&src[cursor..]);
    verify::check(src, tree, &out, &expect)?;
    changes.sort_by_key(|c| (c.line, c.column));
    Ok(Edited {
        bytes: out.into_bytes(),
        changes,
    })
}

/// Where and what to insert to add `key: value` as the last entry of mapping `map`.
fn insertion(
    src: &str,
    tree: &Tree,
    map: NodeId,
    key: &str,
    value: &str,
) -> Result<(usize, String), EditError> {
    let node = &tree.nodes[map];
    let (line, col) = line_col(src, node.start);
    let entries = tree.map(map).unwrap_or_default();
    let Some(&(first_key, _)) = entries.first() else {
        return Err(EditError::Unsupported {
            line,
            col,
            reason: format!("cannot add {key} to an empty mapping"),
        });
    };
    let Some(&(_, last_value)) = entries.last() else {
        return Err(EditError::Unsupported {
            line,
            col,
            reason: format!("cannot add {key} to an empty mapping"),
        });
    };
    let rendered = scalar::render(Style::Plain, value);
    let last_end = tree.nodes[last_value].end;
    if node.flow {
        return Ok((last_end, format!(", {key}: {rendered}")));
    }
    let last = &tree.nodes[last_value];
    if matches!(
        last.kind,
        Kind::Scalar {
            style: Style::Block,
            ..
        }
    ) || matches!(last.kind, Kind::Seq(_) | Kind::Map(_)) && !last.flow
    {
        return Err(EditError::Unsupported {
            line,
            col,
            reason: format!("the entry ends with a nested block; add {key} by hand"),
        });
    }
    let key_start = tree.nodes[first_key].start;
    let (_, key_col) = line_col(src, key_start);
    let indent = " ".repeat(key_col - 1);
    let eol = line_ending(src, last_end);
    match src[last_end..].find('\n') {
        Some(i) => Ok((last_end + i + 1, format!("{indent}{key}: {rendered}{eol}"))),
        None => Ok((src.len(), format!("{eol}{indent}{key}: {rendered}"))),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
