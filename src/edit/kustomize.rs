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
use super::slot::{Slot, names};
use super::tree::{Kind, NodeId, Tree, line_col};
use crate::reference::ImageRef;

/// True when document `root` has a top-level `images:` sequence.
pub fn is_kustomization(tree: &Tree, root: NodeId) -> bool {
    tree.get(root, "images")
        .is_some_and(|images| tree.seq(images).is_some())
}

/// Entries naming `image` in every kustomization document.
pub fn slots(src: &str, tree: &Tree, image: Option<&[ImageRef]>) -> Result<Vec<Slot>, EditError> {
    let mut out = Vec::new();
    for &root in &tree.roots {
        if is_kustomization(tree, root) {
            out.extend(slots_in(src, tree, root, image)?);
        }
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

/// Entries naming `image` in the kustomization document `root`.
pub fn slots_in(
    src: &str,
    tree: &Tree,
    root: NodeId,
    image: Option<&[ImageRef]>,
) -> Result<Vec<Slot>, EditError> {
    let Some(images) = tree.get(root, "images") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for &entry in tree.seq(images).unwrap_or_default() {
        let entry = tree.resolve(entry);
        if tree.map(entry).is_none() {
            continue;
        }
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
