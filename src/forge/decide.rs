//! The pure decision: given the pull requests found for the bot branch and the fingerprint of
//! the wanted change set, create a new one, update the open one, or leave things alone.
//!
//! Invariant: pure and total: every list of found pull requests gets exactly one action, and a
//! pull request a person closed is never reopened for the same versions.

use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

use super::{ChangeRow, PrState, PullRequest};

/// The hidden marker every body we write carries: `<!-- imagebump:fingerprint=<sha256> -->`.
// The pattern is a literal exercised by the tests below, so `expect` cannot fire.
#[allow(clippy::expect_used)]
static FINGERPRINT_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<!--\s*imagebump:fingerprint=([0-9a-f]{64})\s*-->").expect("valid regex")
});

/// The marker [`super::Forge::close`] adds to the body of a pull request imagebump closes
/// itself (a rollback left nothing to propose): a person's "no" blocks its versions, this does
/// not, once the rules allow them again.
pub const CLOSED_BY_IMAGEBUMP: &str = "<!-- imagebump:closed-by=imagebump -->";

/// Whether imagebump closed the pull request with this body itself ([`CLOSED_BY_IMAGEBUMP`]).
pub fn closed_by_imagebump(body: &str) -> bool {
    body.contains(CLOSED_BY_IMAGEBUMP)
}

/// What to do about the pull request of one app and base branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No open pull request: open one.
    Create,
    /// An open pull request shows another change set: push the branch and update title/body.
    Update(PullRequest),
    /// The open pull request already shows exactly this change set: nothing to do.
    UpToDate(PullRequest),
    /// A human closed a pull request for exactly this change set without merging it: do not
    /// push or reopen it for the same versions. (One imagebump closed itself does not count.)
    Skip { pr: PullRequest, reason: String },
}

/// The fingerprint of a change set: sha256 (hex) of its sorted, de-duplicated `image=tag`
/// lines (`image=tag@digest` when pinned, so a new digest under the same tag is a new
/// proposal). The files and the old tags don't enter it: the same new versions are the same
/// proposal, whatever was there before.
pub fn fingerprint(changes: &[ChangeRow]) -> String {
    let mut lines: Vec<String> = changes
        .iter()
        .map(|c| match &c.digest {
            Some(digest) => format!("{}={}@{digest}", c.image, c.to),
            None => format!("{}={}", c.image, c.to),
        })
        .collect();
    lines.sort();
    lines.dedup();
    // JSON-encoded, so no image or tag text can fake a line boundary.
    let canonical = serde_json::Value::from(lines).to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// The fingerprint hidden in a pull request body, if imagebump wrote it.
pub fn fingerprint_in_body(body: &str) -> Option<&str> {
    FINGERPRINT_MARKER
        .captures(body)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

/// Decides from the pull requests found for the bot branch (any order) and the fingerprint of
/// the wanted change set.
///
/// - an open one exists (the newest, if several): [`Action::UpToDate`] when it carries this
///   fingerprint, else [`Action::Update`];
/// - else, the newest closed-or-merged one carrying this fingerprint decides: closed without
///   merging by a person → [`Action::Skip`] (a human said no to these versions); merged, or
///   closed by imagebump itself after a rollback ([`CLOSED_BY_IMAGEBUMP`]; the rules that
///   closed it now allow the versions again) → [`Action::Create`];
/// - else [`Action::Create`] (a merged pull request is followed by a fresh one).
pub fn decide(prs: &[PullRequest], fingerprint: &str) -> Action {
    let mut newest_first: Vec<&PullRequest> = prs.iter().collect();
    newest_first.sort_by_key(|pr| std::cmp::Reverse(pr.number));

    if let Some(open) = newest_first.iter().find(|pr| pr.state == PrState::Open) {
        return if fingerprint_in_body(&open.body) == Some(fingerprint) {
            Action::UpToDate((*open).clone())
        } else {
            Action::Update((*open).clone())
        };
    }
    let same_versions = newest_first
        .iter()
        .find(|pr| fingerprint_in_body(&pr.body) == Some(fingerprint));
    match same_versions {
        Some(pr) if pr.state == PrState::Closed && !closed_by_imagebump(&pr.body) => Action::Skip {
            pr: (*pr).clone(),
            reason: format!(
                "#{} proposing these same versions was closed without merging; waiting for newer \
                 images",
                pr.number
            ),
        },
        _ => Action::Create,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn row(image: &str, to: &str) -> ChangeRow {
        ChangeRow {
            image: image.to_string(),
            name: "api".to_string(),
            file: "values.yaml".to_string(),
            from: "1.0.0".to_string(),
            to: to.to_string(),
            digest: None,
            reason: "semver ~1".to_string(),
            tag: to.rsplit(':').next().unwrap_or(to).to_string(),
        }
    }

    fn pr(number: u64, state: PrState, fp: &str) -> PullRequest {
        PullRequest {
            number,
            url: format!("https://forge/pr/{number}"),
            state,
            head: "imagebump/shop".to_string(),
            base: "main".to_string(),
            title: "t".to_string(),
            body: format!("table\n\n<!-- imagebump:fingerprint={fp} -->\n"),
        }
    }

    #[test]
    fn fingerprint_ignores_order_duplicates_and_old_tags() {
        let a = fingerprint(&[row("ghcr.io/a", "1.1.0"), row("ghcr.io/b", "2.0.0")]);
        let mut b_rows = vec![
            row("ghcr.io/b", "2.0.0"),
            row("ghcr.io/a", "1.1.0"),
            row("ghcr.io/a", "1.1.0"),
        ];
        b_rows[0].from = "0.9.0".to_string();
        b_rows[2].file = "other.yaml".to_string();
        assert_eq!(a, fingerprint(&b_rows));
        assert_ne!(
            a,
            fingerprint(&[row("ghcr.io/a", "1.1.1"), row("ghcr.io/b", "2.0.0")])
        );
        assert_eq!(a.len(), 64);
        // Text inside a value cannot fake a line boundary.
        assert_ne!(
            fingerprint(&[row("x", "1\ny=2")]),
            fingerprint(&[row("x", "1"), row("y", "2")])
        );
    }

    #[test]
    fn a_new_digest_under_the_same_tag_is_a_new_fingerprint() {
        let mut pinned = row("ghcr.io/a", "latest");
        pinned.digest = Some(format!("sha256:{}", "1".repeat(64)));
        let mut repinned = pinned.clone();
        repinned.digest = Some(format!("sha256:{}", "2".repeat(64)));
        let plain = row("ghcr.io/a", "latest");
        assert_ne!(fingerprint(&[pinned.clone()]), fingerprint(&[repinned]));
        assert_ne!(fingerprint(&[pinned]), fingerprint(&[plain]));
    }

    #[test]
    fn fingerprint_found_in_body() {
        let fp = fingerprint(&[row("a", "1")]);
        let body = format!("hello\n<!-- imagebump:fingerprint={fp} -->");
        assert_eq!(fingerprint_in_body(&body), Some(fp.as_str()));
        assert_eq!(fingerprint_in_body("edited by a human"), None);
        assert_eq!(
            fingerprint_in_body("<!-- imagebump:fingerprint=abc -->"),
            None
        );
    }

    #[test]
    fn nothing_found_creates() {
        assert_eq!(decide(&[], &"a".repeat(64)), Action::Create);
    }

    #[test]
    fn open_pr_is_updated_or_left_up_to_date() {
        let (old, new) = ("a".repeat(64), "b".repeat(64));
        let open = pr(3, PrState::Open, &old);
        assert_eq!(
            decide(std::slice::from_ref(&open), &new),
            Action::Update(open.clone())
        );
        assert_eq!(
            decide(std::slice::from_ref(&open), &old),
            Action::UpToDate(open)
        );
    }

    #[test]
    fn open_pr_wins_over_closed_ones_and_newest_open_is_chosen() {
        let fp = "a".repeat(64);
        let prs = [
            pr(1, PrState::Closed, &fp),
            pr(5, PrState::Open, "0"),
            pr(4, PrState::Open, "0"),
        ];
        assert_eq!(decide(&prs, &fp), Action::Update(prs[1].clone()));
    }

    #[test]
    fn merged_pr_is_followed_by_a_fresh_one() {
        let (old, new) = ("a".repeat(64), "b".repeat(64));
        assert_eq!(
            decide(&[pr(2, PrState::Merged, &old)], &new),
            Action::Create
        );
        assert_eq!(
            decide(&[pr(2, PrState::Merged, &new)], &new),
            Action::Create
        );
    }

    #[test]
    fn closed_pr_is_not_reopened_for_the_same_versions() {
        let (old, new) = ("a".repeat(64), "b".repeat(64));
        let closed = pr(7, PrState::Closed, &old);
        match decide(std::slice::from_ref(&closed), &old) {
            Action::Skip { pr, reason } => {
                assert_eq!(pr, closed);
                assert!(reason.contains("#7"), "{reason}");
            }
            other => panic!("expected Skip, got {other:?}"),
        }
        assert_eq!(decide(&[closed], &new), Action::Create);
    }

    #[test]
    fn newest_pr_with_the_same_versions_decides() {
        let fp = "a".repeat(64);
        // Closed, then proposed again and merged (after a revert): propose again.
        let prs = [pr(1, PrState::Closed, &fp), pr(2, PrState::Merged, &fp)];
        assert_eq!(decide(&prs, &fp), Action::Create);
        // Merged long ago, then the same versions proposed again and closed: respect that.
        let prs = [pr(1, PrState::Merged, &fp), pr(2, PrState::Closed, &fp)];
        assert!(matches!(decide(&prs, &fp), Action::Skip { .. }));
    }

    /// A pull request imagebump closed itself (a rollback left nothing to propose) does not
    /// block its versions once the rules allow them again; a person's close does.
    #[test]
    fn a_pull_request_imagebump_closed_itself_does_not_block_its_versions() {
        let fp = fingerprint(&[row("ghcr.io/a", "1.3.0")]);
        let mut closed = pr(4, PrState::Closed, &fp);
        assert!(matches!(
            decide(&[closed.clone()], &fp),
            Action::Skip { .. }
        ));
        closed.body = format!("{}\n{CLOSED_BY_IMAGEBUMP}\n", closed.body);
        assert_eq!(decide(&[closed], &fp), Action::Create);
    }

    #[test]
    fn closed_pr_without_marker_does_not_block() {
        let mut closed = pr(1, PrState::Closed, "x");
        closed.body = "a human rewrote this".to_string();
        assert_eq!(decide(&[closed], &"a".repeat(64)), Action::Create);
    }
}
