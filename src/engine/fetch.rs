//! What a pass asks the registries: one tag list per image repository, and the metadata
//! (digest, build time, platforms) of the tags a policy asks about, each asked once per pass.
//!
//! Invariant: a decision is settled here, in one async loop that owns the policy's metadata
//! steps: [`decide`] calls [`Policy::select`], fetches what it asks for and calls it again,
//! asking every tag at most once; it never picks on missing data. The tag lists are read-only
//! once fetched; the metadata memo only grows during a pass and is dropped with it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinSet;

use super::progress::Progress;
use crate::policy::{Current, Decision, Policy, Step, TagMeta};
use crate::reference::ImageRef;
use crate::registry::{self, RegistryError};
use crate::report::ImageError;

/// The tag lists of one pass, by repository name (`registry/repository`).
#[derive(Debug, Default)]
pub(crate) struct TagLists {
    /// `Err` holds why the listing failed; a repository whose listing job panicked is absent.
    pub by_repository: HashMap<String, Result<Arc<Vec<String>>, RegistryError>>,
    /// How long each listing took, by registry host.
    pub durations: Vec<(String, Duration)>,
}

impl TagLists {
    /// The tags of `repository`, or why there are none.
    pub fn of(&self, repository: &str) -> Result<Arc<Vec<String>>, ImageError> {
        match self.by_repository.get(repository) {
            Some(Ok(tags)) => Ok(Arc::clone(tags)),
            Some(Err(e)) => Err(ImageError::Registry(e.clone())),
            None => Err(ImageError::NotListed {
                repository: repository.to_string(),
            }),
        }
    }
}

/// List every repository's tags, all at once (the client bounds the concurrency per registry).
pub(crate) async fn tag_lists(
    client: &registry::Client,
    images: &BTreeMap<String, ImageRef>,
    progress: &dyn Progress,
) -> TagLists {
    let mut jobs = JoinSet::new();
    for (name, image) in images {
        let client = client.clone();
        let (name, image) = (name.clone(), image.clone());
        jobs.spawn(async move {
            let started = std::time::Instant::now();
            let result = client.list_tags(&image).await;
            (name, image.registry, started.elapsed(), result)
        });
    }
    let mut lists = TagLists::default();
    while let Some(joined) = jobs.join_next().await {
        let Ok((name, registry, elapsed, result)) = joined else {
            continue;
        };
        lists.durations.push((registry, elapsed));
        progress.listed(&name);
        let entry = match result {
            Ok(tags) => {
                tracing::debug!(repository = %name, tags = tags.len(), "listed tags");
                Ok(Arc::new(tags))
            }
            Err(e) => {
                tracing::warn!(repository = %name, error = %e, "cannot list tags");
                Err(e)
            }
        };
        lists.by_repository.insert(name, entry);
    }
    lists
}

/// The tag metadata a pass fetched, by repository and tag, shared by every app of the pass so
/// that a tag is asked about once. Only [`decide`] reads and writes it.
#[derive(Debug, Default)]
pub(crate) struct MetaMemo {
    by_repository: Mutex<HashMap<String, HashMap<String, TagMeta>>>,
}

impl MetaMemo {
    /// The metadata fetched so far for `repository`.
    pub(super) fn of(&self, repository: &str) -> HashMap<String, TagMeta> {
        self.by_repository
            .lock()
            .map(|m| m.get(repository).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn insert(&self, repository: &str, tag: String, meta: TagMeta) {
        if let Ok(mut all) = self.by_repository.lock() {
            all.entry(repository.to_string())
                .or_default()
                .insert(tag, meta);
        }
    }
}

/// Settle the policy's decision for an image whose target deploys `current`: select, fetch the
/// metadata the policy asks for, select again, until it decides. Each tag is fetched at most
/// once per call, so the loop ends; a tag the registry would not describe is an error (the next
/// pass asks again), never a guess.
pub(crate) async fn decide(
    client: &registry::Client,
    memo: &MetaMemo,
    image: &ImageRef,
    policy: &Policy,
    tags: &[String],
    current: Current<'_>,
    now: OffsetDateTime,
) -> Result<Decision, ImageError> {
    let repository = image.name();
    let want_platforms = !policy.platforms.is_empty();
    let mut asked: BTreeSet<String> = BTreeSet::new();
    loop {
        let meta = memo.of(&repository);
        match policy.select(tags, current, &meta, now) {
            Ok(Step::Decided(decision)) => return Ok(decision),
            Ok(Step::NeedMetadata(wanted)) => {
                let new: Vec<String> = wanted
                    .iter()
                    .filter(|tag| !asked.contains(*tag))
                    .cloned()
                    .collect();
                if new.is_empty() {
                    return Err(ImageError::MetadataMissing { tags: wanted });
                }
                for tag in new {
                    let meta = tag_meta(client, image, &tag, want_platforms).await;
                    memo.insert(&repository, tag.clone(), meta);
                    asked.insert(tag);
                }
            }
            Err(error) => {
                return Err(ImageError::NoMatch {
                    repository,
                    error: Box::new(error),
                });
            }
        }
    }
}

/// A tag's creation time, from the pass's memo or else asked once (and kept in the memo);
/// `None` when the registry could not tell.
pub(crate) async fn created(
    client: &registry::Client,
    memo: &MetaMemo,
    image: &ImageRef,
    tag: &str,
) -> Option<OffsetDateTime> {
    let repository = image.name();
    if let Some(meta) = memo.of(&repository).get(tag) {
        return meta.created;
    }
    let meta = tag_meta(client, image, tag, false).await;
    let created = meta.created;
    memo.insert(&repository, tag.to_string(), meta);
    created
}

/// A tag's digest, from the pass's memo or else asked once (and kept in the memo); `None`
/// when the registry could not tell.
pub(crate) async fn digest(
    client: &registry::Client,
    memo: &MetaMemo,
    image: &ImageRef,
    tag: &str,
) -> Option<String> {
    let repository = image.name();
    if let Some(meta) = memo.of(&repository).get(tag) {
        return meta.digest.clone();
    }
    let meta = tag_meta(client, image, tag, false).await;
    let digest = meta.digest.clone();
    memo.insert(&repository, tag.to_string(), meta);
    digest
}

/// A tag's digest and creation time, and with `want_platforms` the platforms it has images for
/// (`None` when the registry failed to say: the policy then asks again, and the tag is never
/// picked on a guess).
async fn tag_meta(
    client: &registry::Client,
    image: &ImageRef,
    tag: &str,
    want_platforms: bool,
) -> TagMeta {
    let digest = match client.digest(image, tag).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(image = %image.name(), tag, error = %e, "cannot read the digest");
            return TagMeta::default();
        }
    };
    let created = client.created(image, &digest).await.unwrap_or_else(|e| {
        tracing::warn!(image = %image.name(), tag, error = %e, "cannot read the creation time");
        None
    });
    let platforms = if want_platforms {
        match client.platforms(image, &digest).await {
            Ok(platforms) => Some(platforms),
            Err(e) => {
                tracing::warn!(image = %image.name(), tag, error = %e, "cannot read the platforms");
                None
            }
        }
    } else {
        None
    };
    TagMeta {
        digest: Some(digest),
        created,
        platforms,
    }
}
