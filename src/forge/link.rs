//! Links into the public forges' web pages, from a repository URL.
//!
//! Invariant: pure string work, no I/O; a link is given only for hosts whose URL layout is known
//! (github.com, gitlab.com), never guessed for a self-hosted one.

/// A link to a commit on the public forges whose commit URLs are known (GitHub, GitLab), from
/// an `https://`, `ssh://git@` or `git@host:` repository URL; `None` for any other host, and for
/// a sha that is empty or not hexadecimal.
pub fn commit_url(repo: &str, sha: &str) -> Option<String> {
    let rest = repo
        .strip_prefix("https://")
        .or_else(|| repo.strip_prefix("ssh://git@"))
        .or_else(|| repo.strip_prefix("git@"))?;
    let (host, path) = rest.split_once(['/', ':'])?;
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    if path.is_empty() || sha.is_empty() || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match host {
        "github.com" => Some(format!("https://github.com/{path}/commit/{sha}")),
        "gitlab.com" => Some(format!("https://gitlab.com/{path}/-/commit/{sha}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_links_only_for_known_forges() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            commit_url("https://github.com/acme/deploy.git", sha).as_deref(),
            Some("https://github.com/acme/deploy/commit/0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(
            commit_url("git@gitlab.com:acme/ops/deploy.git", sha).as_deref(),
            Some(
                "https://gitlab.com/acme/ops/deploy/-/commit/0123456789abcdef0123456789abcdef01234567"
            )
        );
        assert_eq!(commit_url("https://git.acme.internal/a/b.git", sha), None);
        assert_eq!(commit_url("file:///srv/git/deploy.git", sha), None);
        assert_eq!(commit_url("https://github.com/acme/deploy.git", ""), None);
        assert_eq!(
            commit_url("https://github.com/acme/deploy.git", "main"),
            None
        );
    }
}
