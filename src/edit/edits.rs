//! Planning: the edits that bring one slot to an [`Update`], as operations on the original
//! text ([`Edit`]), before anything is spliced.
//!
//! Invariant: a slot that already holds the update yields no edit, and an update that would
//! leave a slot half-done (a new tag next to a digest that pins the old image) is refused with
//! the position of that digest, never planned.

use super::error::EditError;
use super::slot::{Field, Slot, same_image, split_reference};
use super::tree::{NodeId, Tree, line_col};
use super::update::Update;
use crate::reference::ImageRef;

/// An operation on the original text.
#[derive(Debug, Clone)]
pub(super) enum Edit {
    /// Replace scalar `node` by `value`.
    Replace { node: NodeId, value: String },
    /// Add `key: value` as the last entry of mapping `map`.
    Insert {
        map: NodeId,
        key: String,
        value: String,
    },
}

/// A name to write, parsed (validated by [`Update::validate`] for a new name).
fn new_ref(name: &str) -> Result<ImageRef, EditError> {
    ImageRef::parse(name).map_err(|e| EditError::InvalidValue {
        value: name.to_string(),
        reason: e.to_string(),
    })
}

/// Edits that bring `slot` to `update` (none when it already is).
pub(super) fn edits_for(
    src: &str,
    tree: &Tree,
    slot: &Slot,
    update: &Update,
) -> Result<Vec<Edit>, EditError> {
    let mut plan = Plan {
        src,
        tree,
        update,
        edits: Vec::new(),
    };
    match slot {
        Slot::Scalar { node, field } => {
            let current = tree.scalar(*node).unwrap_or_default();
            match field {
                Field::Ref => plan.reference(*node, current)?,
                Field::Tag => {
                    if let Some(t) = &update.tag {
                        plan.replace(*node, t.clone());
                    }
                }
                Field::HelmTag { digest } => plan.helm_tag(*node, current, *digest)?,
                Field::Digest => plan.digest(*node, current)?,
                Field::Name => plan.name(*node, current)?,
            }
        }
        Slot::Kustomize {
            entry,
            name,
            new_name,
            new_tag,
            digest,
        } => {
            plan.kustomize_tag_and_digest(*entry, *new_tag, *digest)?;
            // After the digest check: a new name alone keeps a pinned digest (a mirror holds
            // the same content under the same digest).
            plan.kustomize_name(*entry, *name, *new_name)?;
        }
    }
    Ok(plan.edits)
}

/// The edits of one slot, built in order.
struct Plan<'a> {
    src: &'a str,
    tree: &'a Tree,
    update: &'a Update,
    edits: Vec<Edit>,
}

impl Plan<'_> {
    /// Replace `node` by `value` unless it already holds it.
    fn replace(&mut self, node: NodeId, value: String) {
        if self.tree.scalar(node) != Some(value.as_str()) {
            self.edits.push(Edit::Replace { node, value });
        }
    }

    /// A refusal pointing at byte `at`.
    fn unsupported(&self, at: usize, reason: &str) -> EditError {
        let (line, col) = line_col(self.src, at);
        EditError::Unsupported {
            line,
            col,
            reason: reason.into(),
        }
    }

    /// A whole reference `name[:tag][@digest]`.
    fn reference(&mut self, node: NodeId, current: &str) -> Result<(), EditError> {
        let update = self.update;
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
                return Err(self.unsupported(
                    self.tree.nodes[self.tree.resolve(node)].start,
                    "this reference pins a digest; give the new digest too (NAME:TAG@DIGEST), or remove the digest",
                ));
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
        self.replace(node, value);
        Ok(())
    }

    /// The tag of a Helm values path, with its mapping's `digest` sibling when there is one.
    fn helm_tag(
        &mut self,
        node: NodeId,
        current: &str,
        digest: Option<NodeId>,
    ) -> Result<(), EditError> {
        let update = self.update;
        let Some(t) = &update.tag else {
            return Ok(());
        };
        let pinned = digest.filter(|n| self.tree.scalar(*n).is_some_and(|d| !d.is_empty()));
        match (&update.digest, digest) {
            (Some(d), Some(sibling)) => {
                self.replace(node, t.clone());
                self.replace(sibling, d.clone());
            }
            (Some(d), None) => self.replace(node, format!("{t}@{d}")),
            (None, _) => {
                let (old_tag, _) = current.split_once('@').unwrap_or((current, ""));
                if let Some(n) = pinned
                    && old_tag != t
                {
                    return Err(self.unsupported(
                        self.tree.nodes[n].start,
                        "this tag's mapping pins a digest, which the chart uses over the tag; give the new digest too (NAME:TAG@DIGEST, or pin_digest: true) or empty the digest",
                    ));
                }
                self.replace(node, t.clone());
            }
        }
        Ok(())
    }

    /// A digest alone (a `:digest` marker, a digest path).
    fn digest(&mut self, node: NodeId, current: &str) -> Result<(), EditError> {
        let update = self.update;
        match &update.digest {
            Some(d) => self.replace(node, d.clone()),
            // A `:digest` marker (or digest path) next to a tag being bumped alone would
            // keep pulling the old image: never half an update.
            None if update.tag.is_some() && !current.is_empty() => {
                return Err(self.unsupported(
                    self.tree.nodes[self.tree.resolve(node)].start,
                    "this policy pins a digest here; give NAME:TAG@DIGEST so the digest moves with the tag",
                ));
            }
            None => {}
        }
        Ok(())
    }

    /// A repository name alone.
    fn name(&mut self, node: NodeId, current: &str) -> Result<(), EditError> {
        let want = self.update.new_name.as_ref().unwrap_or(&self.update.name);
        if !same_image(current, &new_ref(want)?) {
            self.replace(node, want.clone());
        }
        Ok(())
    }

    /// A Kustomize entry's `newTag` and `digest`, replaced or inserted.
    fn kustomize_tag_and_digest(
        &mut self,
        entry: NodeId,
        new_tag: Option<NodeId>,
        digest: Option<NodeId>,
    ) -> Result<(), EditError> {
        let update = self.update;
        if let Some(t) = &update.tag {
            match new_tag {
                Some(n) => self.replace(n, t.clone()),
                None => self.edits.push(Edit::Insert {
                    map: entry,
                    key: "newTag".into(),
                    value: t.clone(),
                }),
            }
        }
        match (&update.digest, digest) {
            (Some(d), Some(n)) => self.replace(n, d.clone()),
            (Some(d), None) => self.edits.push(Edit::Insert {
                map: entry,
                key: "digest".into(),
                value: d.clone(),
            }),
            (None, Some(n)) if !self.edits.is_empty() => {
                return Err(self.unsupported(
                    self.tree.nodes[n].start,
                    "this images: entry pins a digest, which Kustomize prefers over newTag; give the new digest too (NAME:TAG@DIGEST) or remove the digest line",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// A Kustomize entry's `newName`. The edit goes first, so an inserted newName lands before
    /// an inserted newTag.
    fn kustomize_name(
        &mut self,
        entry: NodeId,
        name: Option<NodeId>,
        new_name: Option<NodeId>,
    ) -> Result<(), EditError> {
        let Some(want) = &self.update.new_name else {
            return Ok(());
        };
        let wanted = new_ref(want)?;
        let named = |node: Option<NodeId>| {
            node.and_then(|n| self.tree.scalar(n))
                .is_some_and(|v| same_image(v, &wanted))
        };
        let rename = match new_name {
            Some(n) if !named(Some(n)) => Some(Edit::Replace {
                node: n,
                value: want.clone(),
            }),
            None if !named(name) => Some(Edit::Insert {
                map: entry,
                key: "newName".into(),
                value: want.clone(),
            }),
            _ => None,
        };
        self.edits.splice(0..0, rename);
        Ok(())
    }
}
