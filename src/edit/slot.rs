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
    !rules_out(value, std::slice::from_ref(image))
        && ImageRef::parse(value).is_ok_and(|r| r.same_repository(image))
}

/// True when `value` names one of `images` (any value when `images` is `None`).
pub(super) fn names(value: &str, images: Option<&[ImageRef]>) -> bool {
    images.is_none_or(|images| {
        !rules_out(value, images)
            && ImageRef::parse(value).is_ok_and(|r| images.iter().any(|i| r.same_repository(i)))
    })
}

/// A cheap test, without parsing, that `value` names none of `images`: its last path component
/// is a plain one (lowercase letters, digits, `.`, `_`, `-`: what a parsed repository keeps as
/// written) and differs from every image's. Normalising only adds a registry or `library/` in
/// front, so a reference whose last component differs never names the image. Anything else is
/// left to the full parse. A Kustomize list of 500 entries is matched 500 times per pass.
fn rules_out(value: &str, images: &[ImageRef]) -> bool {
    plain_last_component(value).is_some_and(|last| {
        images
            .iter()
            .all(|image| image.repository.rsplit('/').next() != Some(last))
    })
}

/// The last path component of the name in `reference` as written, when it is a plain one
/// (lowercase letters, digits, `.`, `_`, `-`): what [`rules_out`] compares, and what
/// [`super::index`] files references under.
pub(super) fn plain_last_component(reference: &str) -> Option<&str> {
    let (name, _, _) = split_reference(reference);
    let last = name.rsplit('/').next().unwrap_or(name);
    let plain = !last.is_empty()
        && last
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b));
    plain.then_some(last)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn image(reference: &str) -> ImageRef {
        ImageRef::parse(reference).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_quick_test_never_rules_out_a_reference_that_names_the_image() {
        let nginx = image("docker.io/library/nginx");
        for value in [
            "nginx",
            "nginx:1.27",
            "library/nginx:1.27.0",
            "docker.io/library/nginx:1",
            "index.docker.io/library/nginx",
        ] {
            assert!(!rules_out(value, std::slice::from_ref(&nginx)), "{value}");
            assert!(same_image(value, &nginx), "{value}");
        }
        // Same last component, another repository: left to the parse, which tells them apart.
        assert!(!rules_out("ghcr.io/b/nginx", std::slice::from_ref(&nginx)));
        assert!(!same_image("ghcr.io/b/nginx", &nginx));
        // Not a plain component: left to the parse.
        assert!(!rules_out("Nginx", std::slice::from_ref(&nginx)));
        // A plain last component that differs: ruled out without parsing.
        assert!(rules_out(
            "ghcr.io/acme/nginx2:1.0",
            std::slice::from_ref(&nginx)
        ));
        assert!(!names("nginx2", Some(std::slice::from_ref(&nginx))));
        assert!(names("nginx2", None));
    }
}
