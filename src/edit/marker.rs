//! Flux setter markers: `# {"$imagepolicy": "ns:name"}` on a scalar's line.
//!
//! Owns: finding marker comments and the scalar each one marks, byte-compatible with Flux's
//! image automation: `ns:name` marks a whole reference, `ns:name:tag`, `ns:name:name` and
//! `ns:name:digest` mark one part.
//!
//! Invariant: read-only over the text and the tree; a `#` inside a scalar (a block scalar, a
//! quoted string) is never taken for a marker.
//!
//! Design choice: comments are not in the parser's events, so markers are found in the text with
//! a regex and tied to the last scalar that ends before them on the same line.

use std::sync::LazyLock;

use regex::Regex;

use super::index::{Index, Marker};
use super::slot::{Field, Slot, names};
use super::tree::{Kind, NodeId, Tree};
use crate::reference::ImageRef;

static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    // A literal pattern; a failure is a programming error caught by the tests.
    #[allow(clippy::expect_used)]
    Regex::new(r#"#\s*\{\s*"\$imagepolicy"\s*:\s*"([^"]*)"\s*\}"#).expect("marker pattern compiles")
});

/// The scalar whose text ends last before byte `at` on the same line, if `at` is not inside one.
fn marked_scalar(src: &str, tree: &Tree, at: usize) -> Option<NodeId> {
    let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let mut best: Option<NodeId> = None;
    for (id, node) in tree.nodes.iter().enumerate() {
        if !matches!(node.kind, Kind::Scalar { .. }) {
            continue;
        }
        if node.start <= at && at < node.end {
            return None;
        }
        if node.end <= at
            && node.start >= line_start
            && best.is_none_or(|b| tree.nodes[b].end < node.end)
        {
            best = Some(id);
        }
    }
    best
}

/// Every marker of the text that marks a scalar, in text order.
fn all_markers(src: &str, tree: &Tree) -> Vec<Marker> {
    let mut out = Vec::new();
    if !src.contains("$imagepolicy") {
        return out;
    }
    for caps in MARKER.captures_iter(src) {
        let (Some(whole), Some(spec)) = (caps.get(0), caps.get(1)) else {
            continue;
        };
        let parts: Vec<&str> = spec.as_str().split(':').collect();
        let (name, field) = match parts.as_slice() {
            [ns, name] => (format!("{ns}:{name}"), Field::Ref),
            [ns, name, "tag"] => (format!("{ns}:{name}"), Field::Tag),
            [ns, name, "name"] => (format!("{ns}:{name}"), Field::Name),
            [ns, name, "digest"] => (format!("{ns}:{name}"), Field::Digest),
            _ => continue,
        };
        let Some(node) = marked_scalar(src, tree, whole.start()) else {
            continue;
        };
        out.push(Marker {
            policy: name,
            field,
            node,
        });
    }
    out
}

/// Scalars marked for `policy` (any part), or with `policy` = None, whole-reference markers of
/// any policy whose value names `image`. The markers are found once per document (`index`).
pub fn slots(
    src: &str,
    tree: &Tree,
    index: &Index,
    policy: Option<&str>,
    image: Option<&[ImageRef]>,
) -> Vec<Slot> {
    let mut out = Vec::new();
    for &Marker {
        policy: ref name,
        field,
        node,
    } in index.markers(|| all_markers(src, tree))
    {
        let value = tree.scalar(node).unwrap_or_default();
        let wanted = match policy {
            Some(p) => p == name,
            None => field == Field::Ref && names(value, image),
        };
        // Found by image (no policy named): a whole-reference marker must name the image. A
        // named policy governs every scalar it marks, whatever name a whole reference held
        // before (Flux writes NAME:TAG[@DIGEST] there): none of its markers is skipped.
        let names_image = field != Field::Ref || policy.is_some() || names(value, image);
        if wanted && names_image {
            out.push(Slot::Scalar { node, field });
        }
    }
    out
}
