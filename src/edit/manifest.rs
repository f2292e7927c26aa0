//! Kubernetes manifests: the `image:` of every container.
//!
//! Owns: finding `containers`, `initContainers` and `ephemeralContainers` lists in pod specs of
//! any kind (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, `List` items and
//! custom kinds with a pod template), in every document of a stream.
//!
//! Invariant: read-only over the tree; it designates slots, the caller edits them.
//!
//! Design choice: a pod spec is recognised by shape, not by kind: a mapping that is the value of
//! a `spec` key and holds one of the container lists. This covers every kind with a pod
//! template, wherever the template sits (`spec.template.spec`, `spec.jobTemplate.spec.template.spec`).

use super::index::Index;
use super::slot::{Field, Slot, names};
use super::tree::{Kind, NodeId, Tree};
use crate::reference::ImageRef;

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Container images naming `image` in every document.
pub fn slots(tree: &Tree, index: &Index, image: Option<&[ImageRef]>) -> Vec<Slot> {
    tree.roots
        .iter()
        .flat_map(|&root| slots_in(tree, index, root, image))
        .collect()
}

/// Container images naming `image` in the document `root`, in node order. With images given,
/// only the `image:` scalars the index says may name one of them are parsed.
pub fn slots_in(tree: &Tree, index: &Index, root: NodeId, image: Option<&[ImageRef]>) -> Vec<Slot> {
    let Some(containers) = index.containers(tree, root, |root| container_images(tree, root)) else {
        return Vec::new();
    };
    let candidates;
    let nodes = match image {
        Some(images) => {
            candidates = containers.candidates(images);
            &candidates[..]
        }
        None => &containers.images[..],
    };
    nodes
        .iter()
        .filter(|&&node| tree.scalar(node).is_some_and(|v| names(v, image)))
        .map(|&node| Slot::Scalar {
            node,
            field: Field::Ref,
        })
        .collect()
}

/// The `image:` value of every container of document `root` (aliases resolved; scalars or
/// not), in node order.
fn container_images(tree: &Tree, root: NodeId) -> Vec<NodeId> {
    let mut out = Vec::new();
    // Only real nodes are walked (aliases are not followed), so each node is seen once.
    let mut stack = vec![(root, false)];
    while let Some((id, is_spec)) = stack.pop() {
        match &tree.nodes[id].kind {
            Kind::Map(entries) => {
                for &(key, value) in entries {
                    let key = tree.scalar(key);
                    if is_spec && key.is_some_and(|k| CONTAINER_LISTS.contains(&k)) {
                        for &container in tree.seq(value).unwrap_or_default() {
                            let Some(node) = tree.get(container, "image") else {
                                continue;
                            };
                            out.push(tree.resolve(node));
                        }
                    } else {
                        stack.push((value, key == Some("spec")));
                    }
                }
            }
            Kind::Seq(items) => stack.extend(items.iter().map(|&i| (i, false))),
            _ => {}
        }
    }
    // Stable: a node reached twice (through aliases) stays twice, as the walk found it.
    out.sort();
    out
}
