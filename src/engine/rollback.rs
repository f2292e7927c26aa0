//! Rollbacks in a pass (issue 19, part 1): per target, whether a person rolled back a value
//! imagebump wrote ([`find`], from [`crate::history`]), and what the image's `on_rollback` makes
//! of it in the decision ([`decide`]).
//!
//! Invariant: a rollback never makes imagebump write more than it would without one. Under
//! `skip-version` the rolled-back tag and every tag not newer are left out of the selection (a
//! strictly newer one is proposed as usual); under `hold` the deployed value stays whatever the
//! registry has; under `ignore` no history is read. A kept value says why ([`Why::Held`]).

use time::OffsetDateTime;

use super::fetch;
use crate::config::{App, ImageConfig, OnRollback};
use crate::edit::Target;
use crate::git::Checkout;
use crate::history::rollback::{self, Rollback};
use crate::history::{History, TargetValue};
use crate::policy::{Current, Decision, HeldUntil, Kind, Policy, Why};
use crate::registry;
use crate::report::ImageError;

/// The `on_rollback` of an image: its own, else its app's, else `skip-version`.
pub(crate) fn setting(app: &App, image: &ImageConfig) -> OnRollback {
    image.on_rollback.or(app.on_rollback).unwrap_or_default()
}

/// What reading rollbacks needs: the engine's history cache, the bot's email, the pass's time.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub history: &'a History,
    pub bot: &'a str,
    pub now: OffsetDateTime,
}

/// The rollback the latest change of one target file is, if any (`None` too under `ignore`);
/// `file` is the target's own, or one file of a directory target.
pub(crate) fn find(
    reader: Reader<'_>,
    checkout: &Checkout,
    app: &App,
    image: &ImageConfig,
    policy: &Policy,
    (file, target): (&str, &Target),
) -> Result<Option<Rollback>, ImageError> {
    if setting(app, image) == OnRollback::Ignore {
        return Ok(None);
    }
    let history = reader
        .history
        .target(checkout, &app.repo, file, target, &image.image, reader.now)
        .map_err(ImageError::History)?;
    let older = |to: &TargetValue, from: &TargetValue| older(policy, to, from);
    // A person's commit is read (its message) only when it is the change a rollback replaced.
    let is_bot = |meta: &crate::git::CommitMeta| {
        rollback::by_bot(meta, reader.bot)
            || checkout
                .commit_message(meta.id)
                .is_ok_and(|message| rollback::squashed_from_bot(&message, reader.bot))
    };
    Ok(rollback::detect(&history.changes, &is_bot, &older))
}

/// Whether `to` is older than `from` under `policy` (see [`rollback::Older`]).
fn older(policy: &Policy, to: &TargetValue, from: &TargetValue) -> Option<bool> {
    match (&policy.kind, to.tag.as_deref(), from.tag.as_deref()) {
        (Kind::NewestBuild | Kind::Digest { .. }, _, _) => None,
        // Same tag, another digest: only the history can tell which is older.
        (_, Some(to), Some(from)) if to == from => None,
        // A tag the policy cannot rank is one it would not pick: not a rollback.
        (_, Some(to), Some(from)) => Some(policy.ranks_above(from, to).unwrap_or(false)),
        _ => Some(false),
    }
}

/// The decision for a target whose deployed value is `current`, with its rollback applied.
pub(crate) async fn decide(
    client: &registry::Client,
    (memo, now): (&fetch::MetaMemo, OffsetDateTime),
    image: &ImageConfig,
    policy: &Policy,
    tags: &[String],
    current: Current<'_>,
    rollback: Option<(&Rollback, OnRollback)>,
) -> Result<Decision, ImageError> {
    let decide = |tags: Vec<String>| async move {
        fetch::decide(client, memo, &image.image, policy, &tags, current, now).await
    };
    let Some((rollback, setting)) = rollback else {
        return decide(tags.to_vec()).await;
    };
    match setting {
        OnRollback::Ignore => decide(tags.to_vec()).await,
        OnRollback::Hold => {
            let decision = decide(tags.to_vec()).await?;
            Ok(held(decision, rollback, current, HeldUntil::PersonChanges))
        }
        OnRollback::SkipVersion => {
            let from = rollback.from.tag.as_deref().unwrap_or_default();
            // Tags the policy ranks at or below the rolled-back one are out at once; under
            // policies that rank by metadata each proposal is checked below instead.
            let mut left: Vec<String> = tags
                .iter()
                .filter(|t| {
                    current.tag == Some(t.as_str()) || policy.ranks_above(t, from) != Some(false)
                })
                .cloned()
                .collect();
            for _ in 0..=tags.len() {
                let decision = decide(left.clone()).await?;
                if decision.keep_current {
                    return Ok(held(decision, rollback, current, HeldUntil::NewerTag));
                }
                if newer(client, memo, image, policy, &decision, rollback).await {
                    return Ok(decision);
                }
                if matches!(policy.kind, Kind::Digest { .. }) {
                    return Ok(held(decision, rollback, current, HeldUntil::NewerTag));
                }
                left.retain(|t| *t != decision.tag);
            }
            // Unreachable: each round leaves one more tag out.
            Err(ImageError::NotListed {
                repository: image.image.name(),
            })
        }
    }
}

/// Whether a proposal is strictly newer than the rolled-back value.
async fn newer(
    client: &registry::Client,
    memo: &fetch::MetaMemo,
    image: &ImageConfig,
    policy: &Policy,
    decision: &Decision,
    rollback: &Rollback,
) -> bool {
    let from = &rollback.from;
    match &policy.kind {
        Kind::Digest { .. } => decision.digest.is_some() && decision.digest != from.digest,
        Kind::NewestBuild => {
            let Some(from_tag) = from.tag.as_deref() else {
                return false;
            };
            let created =
                |tag: String| async move { fetch::created(client, memo, &image.image, &tag).await };
            let (proposed, rolled_back): (Option<OffsetDateTime>, Option<OffsetDateTime>) = (
                created(decision.tag.clone()).await,
                created(from_tag.to_string()).await,
            );
            matches!((proposed, rolled_back), (Some(p), Some(r)) if p > r)
        }
        _ => from
            .tag
            .as_deref()
            .is_some_and(|from| policy.ranks_above(&decision.tag, from) == Some(true)),
    }
}

/// `decision` turned into keeping the deployed value, because of `rollback`.
fn held(
    decision: Decision,
    rollback: &Rollback,
    current: Current<'_>,
    until: HeldUntil,
) -> Decision {
    let why = Why::Held {
        tag: rollback.from.to_string(),
        by: rollback.by.clone(),
        commit: rollback.commit.clone(),
        date: rollback.date(),
        until,
    };
    Decision {
        tag: current.tag.map_or(decision.tag, str::to_owned),
        digest: current.digest.map(str::to_owned),
        reason: why.to_string(),
        why,
        keep_current: true,
        best: decision.best,
    }
}
