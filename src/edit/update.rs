//! What to write: the image to match and its new tag, digest and/or name, validated.
//!
//! Invariant: an [`Update`] that passed [`Update::validate`] writes only valid OCI tags and
//! digests, a new name that is a repository alone, and at least one of the three; the editor
//! validates before it reads the file.

use super::error::EditError;
use super::slot::split_reference;
use crate::reference::{ImageRef, is_valid_digest, is_valid_tag};

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
    pub(super) fn names(&self) -> Vec<ImageRef> {
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

    pub(super) fn validate(&self) -> Result<(), EditError> {
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
