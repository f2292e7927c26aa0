//! Git write-back: a clone cache, incremental fetch, commit, push with conflict retry, and the
//! compare-and-swap push that pull-request mode needs.
//!
//! **Architecture invariant:** `git` knows nothing about YAML, registries, policies or forges.
//! It moves bytes the caller already wrote into the work tree into commits on a remote, and
//! reports per ref what the remote did with them. Everything runs in-process through libgit2
//! (`git2`): no `git` child process is ever spawned, so none can leak.
//!
//! **Main design choice:** the remote is the only source of truth. A [`Checkout`] is always
//! fetched and hard-reset (untracked files removed) to the remote head of exactly one branch
//! before the caller edits anything, and a rejected push is answered by fetching, resetting and
//! asking the caller to plan again ([`commit_and_push`]): a human's commit that landed in the
//! meantime is kept and built upon, never overwritten. The normal path never force-pushes; the
//! only forced update is [`Checkout::push_with_lease`], which first checks (in libgit2's
//! `push_negotiation` callback) that the remote branch is still where the caller expects it.
//!
//! Speed: a pass of [`commit_and_push`] builds its blobs, trees and commits in memory (a
//! libgit2 mempack) and writes them as one pack with one branch-ref update before pushing, so
//! hundreds of one-app commits cost a few files, not four each (see `benches/git.rs`). Memory:
//! a round that writes more than about 4 MB of trees (1,000 commits in a directory of 1,000
//! apps) writes them out as loose objects as it goes ([`InMemory::persist_if_large`]), so it
//! never holds them all.
//!
//! All calls block (libgit2 is synchronous); async callers wrap them in `spawn_blocking`.
//! One [`CloneCache`] directory serves one URL and one [`Checkout`] at a time (a second one is
//! refused with [`GitError::Busy`]); the write-back batches every app of a repository into one
//! pass anyway. Across processes an OS file lock per clone does the same: a second process
//! waits for it (bounded), then fails with [`GitError::WorkdirInUse`] naming the holder's PID.
//!
//! Every file read, written or committed in a clone goes through [`inside_clone`] first: no
//! path component may be a symlink, `..` or `.git`, whatever the config repository holds.
//!
//! Over `file://`, libgit2 would write the remote ref itself after checking the fast-forward
//! against the ref it listed a moment before, so a writer landing in between would be
//! overwritten: the push copies the objects the remote lacks into it and moves the branch
//! with a compare-and-swap in the remote repository instead (`push.rs`). Smart HTTP and SSH remotes
//! check the old value atomically on the server, and that refusal is reported per ref like
//! any other.

mod auth;
mod cache;
mod checkout;
mod history;
mod known_hosts;
mod maintenance;
mod push;
mod signing;
mod tree_path;
mod verify;
mod writeback;

pub use crate::secret::Secret;
use std::path::PathBuf;
use std::sync::Arc;

pub use cache::{CloneCache, DEFAULT_LOCK_WAIT, MAX_PACKS};
pub use checkout::{Checkout, CommitInfo, InMemory};
pub use git2::Oid;
pub use history::{CommitMeta, FileHistory, FileVersion, HistoryEnd, OwnCommit, Person, WalkBound};
pub use maintenance::{Census, Maintenance, RepackBackoff, RepackCounts};
pub use push::{LeaseOutcome, PushOutcome};
pub use signing::SigningKey;
pub use tree_path::{YamlFiles, inside_clone, yaml_files_under};
pub use verify::AllowedSigners;
pub use writeback::{
    PushReport, RetryOptions, WriteBackError, commit_and_push, commit_and_push_with,
};

/// Author and committer of every commit imagebump makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// How to authenticate to a remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// HTTPS basic auth; a token goes in `password` (with the forge's conventional username).
    UserPass { username: String, password: Secret },
    /// An SSH private key (OpenSSH format), the host key checked against `known_hosts_file`.
    /// The user name comes from the URL (`ssh://git@host/...`), `git` when the URL has none.
    SshKey {
        key_file: PathBuf,
        passphrase: Option<Secret>,
        known_hosts_file: PathBuf,
    },
    /// No credentials (public HTTPS remotes, `file://`).
    None,
}

/// A credential for every URL starting with `url_prefix`; the longest matching prefix wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRule {
    pub url_prefix: String,
    pub credential: Credential,
}

/// Everything `git` needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSettings {
    pub author: Author,
    pub credentials: Vec<CredentialRule>,
    /// Accept SSH hosts that are not in the known_hosts file (a changed key is still refused).
    /// Default `false`.
    pub accept_unknown_hosts: bool,
    /// Sign every commit with this SSH key (`gpg.format=ssh` style), when set.
    pub signing_key: Option<Arc<SigningKey>>,
}

impl GitSettings {
    /// The rule with the longest `url_prefix` that `url` starts with.
    pub fn credential_for(&self, url: &str) -> Option<&CredentialRule> {
        self.credentials
            .iter()
            .filter(|rule| url.starts_with(&rule.url_prefix))
            .max_by_key(|rule| rule.url_prefix.len())
    }
}

/// What went wrong, always naming the repository (userinfo stripped) and never a secret.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("authentication failed for {url}: {reason}")]
    Auth { url: String, reason: String },
    #[error("git {url}: SSH host key check failed: {reason}")]
    HostKey { url: String, reason: String },
    /// The server answered 404: the URL names no repository it serves.
    #[error("git {url}: repository {url} was not found (HTTP 404); check the repo URL")]
    NotFound { url: String },
    #[error("git {url}: branch `{branch}` does not exist on the remote")]
    BranchNotFound { url: String, branch: String },
    #[error("git {url}: {operation} failed: {reason}")]
    Remote {
        url: String,
        operation: &'static str,
        reason: String,
    },
    #[error("git {url}: another operation on this repository is still running")]
    Busy { url: String },
    /// A file in a clone that imagebump must not read or write: one of its path components is
    /// a symlink, `..`, `.git`, or not a directory ([`inside_clone`]).
    #[error("{}: `{}` {reason}", file.display(), component.display())]
    UnsafePath {
        file: PathBuf,
        component: PathBuf,
        reason: String,
    },
    /// Another process (a second `once`, `run`, another replica) holds the clone's lock.
    #[error(
        "git {url}: workdir {} is in use by {} (waited {}s); give each imagebump process its \
         own workdir, or let the other one finish",
        path.display(),
        pid.map_or("another process".to_string(), |pid| format!("PID {pid}")),
        waited.as_secs_f64()
    )]
    WorkdirInUse {
        url: String,
        path: PathBuf,
        pid: Option<u32>,
        waited: std::time::Duration,
    },
    #[error("git {url}: local repository {path}: {reason}")]
    Local {
        url: String,
        path: PathBuf,
        reason: String,
    },
}

/// Start libgit2 on a thread of its own and return at once. Its one-time setup loads OpenSSL's
/// CA store (the system bundle, parsed certificate by certificate: about 25 ms of CPU), which
/// would otherwise land on the first repository a pass opens, while the registry is being
/// asked. A command calls this first thing, so the setup overlaps with reading the
/// configuration. A git call made before the setup ends waits for it (it runs once, under a
/// lock); if the thread cannot be started, the first git call does the setup, as it would
/// without this.
pub fn warm_up() {
    let spawned = std::thread::Builder::new()
        .name("git-setup".to_string())
        .spawn(|| {
            // The cheapest call that runs the setup; its result is of no interest.
            let _ = git2::Oid::from_str("0");
        });
    drop(spawned);
}

/// `url` without any `user:password@` part, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        let cred = Credential::UserPass {
            username: "u".into(),
            password: s,
        };
        assert!(!format!("{cred:?}").contains("hunter2"));
    }

    #[test]
    fn redacts_userinfo_only() {
        assert_eq!(
            redact_url("https://x:tok@github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(
            redact_url("ssh://git@host:22/a@b.git"),
            "ssh://host:22/a@b.git"
        );
        assert_eq!(
            redact_url("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
        assert_eq!(redact_url("file:///srv/r.git"), "file:///srv/r.git");
    }

    #[test]
    fn longest_prefix_wins() {
        let rule = |p: &str, user: &str| CredentialRule {
            url_prefix: p.into(),
            credential: Credential::UserPass {
                username: user.into(),
                password: Secret::new("x"),
            },
        };
        let settings = GitSettings {
            author: Author {
                name: "a".into(),
                email: "a@b".into(),
            },
            credentials: vec![
                rule("https://github.com/", "short"),
                rule("https://github.com/acme/", "long"),
                rule("https://gitlab.com/", "other"),
            ],
            accept_unknown_hosts: false,
            signing_key: None,
        };
        let got = |url| match settings.credential_for(url).map(|r| &r.credential) {
            Some(Credential::UserPass { username, .. }) => Some(username.as_str()),
            _ => None,
        };
        assert_eq!(got("https://github.com/acme/x.git"), Some("long"));
        assert_eq!(got("https://github.com/other/x.git"), Some("short"));
        assert_eq!(got("https://example.com/x.git"), None);
    }
}
