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
//! Modules, each importing only the ones below it (no two import each other): [`tree`] is the
//! positioned tree and `error` the one error type; [`scan`] (the full parser) and `quick` (the
//! fast reader) build trees, and [`read`] is the door that tries the quick one first; [`scalar`]
//! holds the quoting rules; `slot` says what a slot is, `index` holds the lookups built once per
//! document, one module per target (`kustomize`, `manifest`, `helm`, `marker`) finds slots
//! with them, and `slots` dispatches a [`Target`] to them;
//! `update` validates an [`Update`], `edits` plans the edits of a slot, `splice` applies them
//! and `verify` is the safety net. This file is the public surface: [`Document`] and the free
//! functions.

mod edits;
mod error;
mod helm;
mod index;
mod kustomize;
mod manifest;
mod marker;
mod quick;
pub mod read;
pub mod scalar;
pub mod scan;
mod slot;
mod slots;
mod splice;
pub mod tree;
mod update;
mod verify;

use std::collections::HashSet;

use crate::reference::ImageRef;

pub use error::EditError;
pub use helm::{HelmField, PathSegment, ValuePath, parse_value_path};
pub use slot::split_reference;
pub use slots::{Found, Target};
pub use splice::{Change, Edited};
pub use update::Update;

use edits::{Edit, edits_for};
use slot::Slot;
use slots::{found, slots};
use splice::splice;

/// The text of a document without the UTF-8 check repeated everywhere.
fn text(src: &[u8]) -> Result<&str, EditError> {
    std::str::from_utf8(src).map_err(|_| EditError::NotUtf8)
}

/// A file parsed once, for callers that [`Document::find`] and then [`Document::apply`] on the
/// same bytes (the free functions parse on every call). Edits are still verified by a fresh parse
/// of the edited text.
///
/// Lookups over the tree (entries by image name, keys of large mappings, line starts) are built
/// once, when first needed, and shared by every image looked up, so a file of thousands of
/// images costs each image about the same as a file of one ([`index`]).
#[derive(Debug, Clone)]
pub struct Document<'a> {
    text: &'a str,
    tree: tree::Tree,
    index: index::Index,
}

impl<'a> Document<'a> {
    /// Parse `src`: refused when it is not UTF-8, not valid YAML, too large or too deep.
    pub fn parse(src: &'a [u8]) -> Result<Document<'a>, EditError> {
        let text = text(src)?;
        let tree = read::parse(text)?;
        Ok(Document {
            text,
            tree,
            index: index::Index::default(),
        })
    }

    /// What is deployed now for `image`: one [`Found`] per slot (see [`find`]).
    pub fn find(&self, target: &Target, image: &ImageRef) -> Result<Vec<Found>, EditError> {
        find_in(self.text, &self.tree, &self.index, target, image)
    }

    /// Apply `update` to every slot of every target (see [`apply_all`]).
    pub fn apply_all(&self, targets: &[Target], update: &Update) -> Result<Edited, EditError> {
        update.validate()?;
        let (text, tree, index) = (self.text, &self.tree, &self.index);
        let names = update.names();
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        for target in targets {
            for slot in slots(text, tree, index, target, Some(&names))? {
                if seen.insert(slot_key(tree, &slot)) {
                    all.extend(edits_for(text, tree, &slot, update)?);
                }
            }
        }
        splice(text, tree, index, all)
    }

    /// Apply `update` to every slot `target` designates (see [`apply`]).
    pub fn apply(&self, target: &Target, update: &Update) -> Result<Edited, EditError> {
        self.apply_all(std::slice::from_ref(target), update)
    }

    /// Apply several updates, each to the slots of its own target, in one splice and one
    /// verification (one parse of the result, however many updates): the bytes are those of
    /// applying them one after another when they write different values, and the changes come
    /// per update, in the order given. Two updates that want different values in one scalar
    /// are refused together ([`EditError::Ambiguous`]); the caller can then apply them one by
    /// one to tell which.
    pub fn apply_each(&self, items: &[(&Target, &Update)]) -> Result<EditedEach, EditError> {
        let (text, tree, index) = (self.text, &self.tree, &self.index);
        let mut all = Vec::new();
        for (owner, (target, update)) in items.iter().enumerate() {
            update.validate()?;
            let names = update.names();
            let mut seen = HashSet::new();
            for slot in slots(text, tree, index, target, Some(&names))? {
                if seen.insert(slot_key(tree, &slot)) {
                    all.extend(
                        edits_for(text, tree, &slot, update)?
                            .into_iter()
                            .map(|edit| (owner, edit)),
                    );
                }
            }
        }
        let (bytes, changes) = splice::splice_each(text, tree, index, all, items.len())?;
        Ok(EditedEach { bytes, changes })
    }
}

/// What is deployed for `image` in a parsed text (the body of [`Document::find`]).
fn find_in(
    text: &str,
    tree: &tree::Tree,
    index: &index::Index,
    target: &Target,
    image: &ImageRef,
) -> Result<Vec<Found>, EditError> {
    let slots = slots(text, tree, index, target, Some(std::slice::from_ref(image)))?;
    Ok(slots.iter().map(|s| found(text, tree, index, s)).collect())
}

/// A [`Document`] that owns its text, for a caller that keeps a parsed file to look up one image
/// after another (the rollback history reads every image of a file in the same versions).
#[derive(Debug, Clone)]
pub struct OwnedDocument {
    text: String,
    tree: tree::Tree,
    index: index::Index,
}

impl OwnedDocument {
    /// Parse `src` (refused as [`Document::parse`] refuses it).
    pub fn parse(src: Vec<u8>) -> Result<OwnedDocument, EditError> {
        let text = String::from_utf8(src).map_err(|_| EditError::NotUtf8)?;
        let tree = read::parse(&text)?;
        Ok(OwnedDocument {
            text,
            tree,
            index: index::Index::default(),
        })
    }

    /// What is deployed now for `image` (see [`Document::find`]).
    pub fn find(&self, target: &Target, image: &ImageRef) -> Result<Vec<Found>, EditError> {
        find_in(&self.text, &self.tree, &self.index, target, image)
    }
}

/// The result of [`Document::apply_each`]: the edited bytes, and the changes of each update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditedEach {
    pub bytes: Vec<u8>,
    pub changes: Vec<Vec<Change>>,
}

/// What identifies a slot: the scalar it resolves to, or the Kustomize entry.
fn slot_key(tree: &tree::Tree, slot: &Slot) -> tree::NodeId {
    match slot {
        Slot::Scalar { node, .. } => tree.resolve(*node),
        Slot::Kustomize { entry, .. } => *entry,
    }
}

/// What is deployed now for `image` in this file: one [`Found`] per slot.
pub fn find(src: &[u8], target: &Target, image: &ImageRef) -> Result<Vec<Found>, EditError> {
    Document::parse(src)?.find(target, image)
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
    let tree = read::parse(text)?;
    let index = index::Index::default();
    let slot = helm::slot(text, &tree, &index, path, field)?;
    let mut edits = Vec::new();
    if let Slot::Scalar { node, .. } = slot
        && tree.scalar(node) != Some(value)
    {
        edits.push(Edit::Replace {
            node,
            value: value.to_string(),
        });
    }
    splice(text, &tree, &index, edits)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
