//! Finding: which slots a target designates in a parsed document, and what each holds now.
//!
//! Invariant: every slot is reported once (deduplicated by the node it edits, aliases resolved),
//! and only slots naming the given images (when any are given) are reported; nothing here
//! changes a byte.

use std::collections::HashSet;

use super::error::EditError;
use super::helm::{HelmField, ValuePath};
use super::index::Index;
use super::slot::{Field, Slot, split_reference};
use super::tree::{NodeId, Tree};
use super::{helm, kustomize, manifest, marker};
use crate::reference::ImageRef;

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

/// Every slot the target designates, deduplicated by node. `image` filters by repository
/// (Helm and marker targets name their slots themselves and ignore it where it cannot apply).
pub(super) fn slots(
    src: &str,
    tree: &Tree,
    index: &Index,
    target: &Target,
    image: Option<&[ImageRef]>,
) -> Result<Vec<Slot>, EditError> {
    let mut out = match target {
        Target::Kustomize => kustomize::slots(src, tree, index, image)?,
        Target::Manifest => manifest::slots(tree, index, image),
        Target::Helm { path, field } => vec![helm::slot(src, tree, index, path, *field)?],
        Target::Marker { policy } => marker::slots(src, tree, index, Some(policy), image),
        Target::Auto => {
            let mut all = Vec::new();
            for &root in &tree.roots {
                if kustomize::is_kustomization(src, tree, index, root) {
                    all.extend(kustomize::slots_in(src, tree, index, root, image)?);
                } else {
                    all.extend(manifest::slots_in(tree, index, root, image));
                }
            }
            all.extend(marker::slots(src, tree, index, None, image));
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

pub(super) fn found(src: &str, tree: &Tree, index: &Index, slot: &Slot) -> Found {
    let at = |node: NodeId| index.line_col(src, tree.nodes[tree.resolve(node)].start);
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
