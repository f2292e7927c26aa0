//! Kustomize `images:` entries.
//!
//! Owns: finding the entries of a kustomization's top-level `images:` list that name an image,
//! by `name` or by `newName`, compared normalised (`nginx` = `docker.io/library/nginx`).
//!
//! Invariant: read-only over the tree; it designates slots, the caller edits them.
//!
//! Design choice: a kustomization is recognised by its data (a top-level `images:` sequence), not
//! by its file name, so the same rule serves `kustomization.yaml`, `Kustomization` and tests.

use super::error::EditError;
use super::index::{ImagesList, Index};
use super::slot::{Slot, names};
use super::tree::{Kind, NodeId, Tree, line_col};
use crate::reference::ImageRef;

/// The `images:` list of document `root`, when it is a kustomization (a top-level `images:`
/// sequence), from the document's index.
fn images_list<'i>(
    src: &str,
    tree: &Tree,
    index: &'i Index,
    root: NodeId,
) -> Option<&'i ImagesList> {
    index.kustomize(tree, root, |entry| {
        Ok([
            single(src, tree, entry, "name")?,
            single(src, tree, entry, "newName")?,
        ])
    })
}

/// True when document `root` has a top-level `images:` sequence.
pub fn is_kustomization(src: &str, tree: &Tree, index: &Index, root: NodeId) -> bool {
    images_list(src, tree, index, root).is_some()
}

/// Entries naming `image` in every kustomization document.
pub fn slots(
    src: &str,
    tree: &Tree,
    index: &Index,
    image: Option<&[ImageRef]>,
) -> Result<Vec<Slot>, EditError> {
    let mut out = Vec::new();
    for &root in &tree.roots {
        out.extend(slots_in(src, tree, index, root, image)?);
    }
    Ok(out)
}

/// The one value of `key` in `map`, refusing duplicates.
fn single(src: &str, tree: &Tree, map: NodeId, key: &str) -> Result<Option<NodeId>, EditError> {
    // Without collecting: this runs for every entry of the list, for every image matched.
    let mut all = tree
        .map(map)
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| tree.scalar(*k) == Some(key));
    let first = all.next().copied();
    if let Some((second, _)) = all.next() {
        let (line, col) = line_col(src, tree.nodes[*second].start);
        return Err(EditError::Ambiguous {
            line,
            col,
            what: format!("key {key}"),
            reason: "it appears twice in this images: entry".into(),
        });
    }
    let Some((_, value)) = first else {
        return Ok(None);
    };
    let value = tree.resolve(value);
    if tree.scalar(value).is_none() {
        let (line, col) = line_col(src, tree.nodes[value].start);
        return Err(EditError::NotScalar {
            line,
            col,
            what: format!("{key} of this images: entry"),
            found: match tree.nodes[value].kind {
                Kind::Seq(_) => "sequence",
                Kind::Map(_) => "mapping",
                _ => "alias",
            },
        });
    }
    Ok(Some(value))
}

/// Entries naming `image` in the kustomization document `root` (none when it is not one).
///
/// The entries are walked in list order, and the walk stops at the first entry it cannot read
/// or at a second entry naming the image. With images given, only the entries the index says
/// may name one of them are walked (and the first unreadable entry): the others would be
/// passed over.
pub fn slots_in(
    src: &str,
    tree: &Tree,
    index: &Index,
    root: NodeId,
    image: Option<&[ImageRef]>,
) -> Result<Vec<Slot>, EditError> {
    let Some(list) = images_list(src, tree, index, root) else {
        return Ok(Vec::new());
    };
    let candidates;
    let entries = match image {
        Some(images) => {
            candidates = list.walk(images);
            &candidates[..]
        }
        None => &list.entries[..],
    };
    let mut out = Vec::new();
    for &entry in entries {
        let name = single(src, tree, entry, "name")?;
        let new_name = single(src, tree, entry, "newName")?;
        let matches = |node: Option<NodeId>| {
            node.and_then(|n| tree.scalar(n))
                .is_some_and(|v| names(v, image))
        };
        if !(matches(name) || matches(new_name)) {
            continue;
        }
        if image.is_some() && !out.is_empty() {
            let (line, col) = line_col(src, tree.nodes[entry].start);
            return Err(EditError::Ambiguous {
                line,
                col,
                what: "the images: entry".into(),
                reason: "another entry of this list names the same image".into(),
            });
        }
        out.push(Slot::Kustomize {
            entry,
            name,
            new_name,
            new_tag: single(src, tree, entry, "newTag")?,
            digest: single(src, tree, entry, "digest")?,
        });
    }
    Ok(out)
}
