//! Slots: the places in a document that hold (part of) an image reference, as the target
//! finders ([`super::kustomize`], [`super::manifest`], [`super::helm`], [`super::marker`]) report
//! them, and the name matching they share.
//!
//! Invariant: a slot names nodes of one [`Tree`](super::tree::Tree) and says what each holds;
//! it is found, never edited, here.

use std::fmt;

use super::tree::NodeId;
use crate::reference::ImageRef;

/// Which part of an image reference a scalar holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
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
pub(super) enum Slot {
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

pub(super) fn same_image(value: &str, image: &ImageRef) -> bool {
    ImageRef::parse(value).is_ok_and(|r| r.same_repository(image))
}

/// True when `value` names one of `images` (any value when `images` is `None`).
pub(super) fn names(value: &str, images: Option<&[ImageRef]>) -> bool {
    images.is_none_or(|images| {
        ImageRef::parse(value).is_ok_and(|r| images.iter().any(|i| r.same_repository(i)))
    })
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
