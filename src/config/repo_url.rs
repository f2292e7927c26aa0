//! The config repository URL grammar: which `repo:` values imagebump accepts.
//!
//! Invariant: a URL that passes [`check`] is one of the documented forms, carries no secret and
//! cannot be read by git as an option or a remote helper command. Nothing else ever reaches
//! libgit2, a log line or the clone cache's directory name.
//!
//! Design choice: an allow-list, not a deny-list. The forms are
//! - `https://HOST[:PORT]/PATH` and, spelt out, `http://HOST[:PORT]/PATH`;
//! - `ssh://[USER@]HOST[:PORT]/PATH`;
//! - scp-like `[USER@]HOST:PATH` (what `git clone git@github.com:acme/x.git` takes);
//! - `file:///ABSOLUTE/PATH` (local or mounted repositories, and the tests' remotes), except
//!   under the host's system directories (`/etc`, `/proc`, `/sys`, `/dev`, `/boot`): a config
//!   repo is never there, and reading them through a "repo" is what an attacker would try.
//!
//! Refused, each with a message that names the fix: no scheme (`github.com/acme/x.git`), other
//! schemes (`ftp://`, `git://`), git's remote-helper syntax (`ext::sh -c …`), a leading `-`
//! (read as an option), whitespace and control characters (NUL included), `..` in a `file://`
//! path, and credentials in the URL (`https://user:TOKEN@host/…`, which would be stored in the
//! clone's `.git/config`): those go in `git.credentials`.

use std::fmt;

/// The system directories a `file://` repository may not be under.
const SYSTEM_DIRS: &[&str] = &["/etc", "/proc", "/sys", "/dev", "/boot"];

/// Why a repository URL is refused. Its `Display` is the whole user-facing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoUrlError {
    Empty,
    /// Whitespace or a control character (NUL included) at this byte offset.
    Control(usize),
    LeadingDash,
    /// `transport::address`, git's remote-helper syntax (`ext::`, `fd::`).
    RemoteHelper(String),
    /// A scheme other than https, http, ssh or file.
    Scheme(String),
    /// No scheme at all; the suggested URL when one can be guessed.
    NoScheme(Option<String>),
    /// `scheme://` with no host (or a host that starts with `-`).
    Host,
    /// A password, token or (for http/https) any user name in the URL.
    Credentials,
    /// `file://` with a relative path, a host, or `..`.
    FilePath,
    /// `file://` under a system directory.
    SystemPath(String),
    /// Nothing after the host.
    NoPath,
}

impl fmt::Display for RepoUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FORMS: &str = "https://HOST/PATH, http://HOST/PATH, ssh://[USER@]HOST/PATH, USER@HOST:PATH or file:///PATH";
        match self {
            RepoUrlError::Empty => write!(f, "is empty (expected {FORMS})"),
            RepoUrlError::Control(at) => write!(
                f,
                "has whitespace or a control character at byte {at} (a URL has neither)"
            ),
            RepoUrlError::LeadingDash => write!(
                f,
                "starts with `-`, which git would read as an option (expected {FORMS})"
            ),
            RepoUrlError::RemoteHelper(helper) => write!(
                f,
                "uses git's remote-helper syntax `{helper}::`, which runs programs; expected {FORMS}"
            ),
            RepoUrlError::Scheme(scheme) => {
                write!(f, "has the scheme `{scheme}://`; imagebump accepts {FORMS}")
            }
            RepoUrlError::NoScheme(Some(suggestion)) => {
                write!(f, "has no scheme: write `{suggestion}` (accepted: {FORMS})")
            }
            RepoUrlError::NoScheme(None) => write!(f, "has no scheme (expected {FORMS})"),
            RepoUrlError::Host => write!(f, "has no valid host name (expected {FORMS})"),
            RepoUrlError::Credentials => write!(
                f,
                "carries credentials: they would be stored in plain text in the clone's .git/config. \
                 Remove them from the URL and add a `git.credentials` entry for it in the global \
                 file (`url`, `username`, `password_env` or `password_file`)"
            ),
            RepoUrlError::FilePath => write!(
                f,
                "must be `file:///ABSOLUTE/PATH` (an absolute path, no host, no `..`)"
            ),
            RepoUrlError::SystemPath(dir) => write!(
                f,
                "points into the system directory {dir}; a config repository is never there"
            ),
            RepoUrlError::NoPath => write!(f, "names a host but no repository path"),
        }
    }
}

/// Check a `repo:` value against the accepted forms.
pub fn check(url: &str) -> Result<(), RepoUrlError> {
    if url.is_empty() {
        return Err(RepoUrlError::Empty);
    }
    if let Some(at) = url.find(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(RepoUrlError::Control(at));
    }
    if url.starts_with('-') {
        return Err(RepoUrlError::LeadingDash);
    }
    if let Some((scheme, rest)) = url.split_once("://")
        && !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return match scheme {
            "https" | "http" => check_authority(rest, false),
            "ssh" => check_authority(rest, true),
            "file" => check_file(rest),
            other => Err(RepoUrlError::Scheme(other.to_string())),
        };
    }
    if let Some((helper, _)) = url.split_once("::")
        && !helper.contains('/')
    {
        return Err(RepoUrlError::RemoteHelper(helper.to_string()));
    }
    check_scp_like(url)
}

/// `AUTHORITY/PATH` after `scheme://`.
fn check_authority(rest: &str, user_allowed: bool) -> Result<(), RepoUrlError> {
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            if !user_allowed || userinfo.contains(':') || userinfo.is_empty() {
                return Err(RepoUrlError::Credentials);
            }
            host
        }
        None => authority,
    };
    check_host_port(host_port)?;
    if path.trim_matches('/').is_empty() {
        return Err(RepoUrlError::NoPath);
    }
    Ok(())
}

fn check_host_port(host_port: &str) -> Result<(), RepoUrlError> {
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, port)) if !addr.is_empty() => {
                check_port(port.strip_prefix(':'), port.is_empty())?;
                return Ok(());
            }
            _ => return Err(RepoUrlError::Host),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => {
                check_port(Some(port), false)?;
                host
            }
            None => host_port,
        }
    };
    let valid = !host.is_empty()
        && !host.starts_with(['-', '.'])
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(RepoUrlError::Host)
    }
}

/// `port` is what follows `:` (None: no `:`); `empty_ok` when nothing follows the host.
fn check_port(port: Option<&str>, empty_ok: bool) -> Result<(), RepoUrlError> {
    match port {
        None if empty_ok => Ok(()),
        Some(p) if p.parse::<u16>().is_ok_and(|n| n > 0) => Ok(()),
        _ => Err(RepoUrlError::Host),
    }
}

/// `/ABSOLUTE/PATH` after `file://`.
fn check_file(rest: &str) -> Result<(), RepoUrlError> {
    if !rest.starts_with('/') || rest.split('/').any(|c| c == "..") {
        return Err(RepoUrlError::FilePath);
    }
    let path = rest.trim_end_matches('/');
    if path.is_empty() {
        return Err(RepoUrlError::SystemPath("/".into()));
    }
    // `//etc` and `/./etc` are the same directory as `/etc`.
    let normal: String = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|c| format!("/{c}"))
        .collect();
    match SYSTEM_DIRS
        .iter()
        .find(|dir| normal == **dir || normal.starts_with(&format!("{dir}/")))
    {
        Some(dir) => Err(RepoUrlError::SystemPath((*dir).to_string())),
        None if normal.is_empty() => Err(RepoUrlError::SystemPath("/".into())),
        None => Ok(()),
    }
}

/// `[USER@]HOST:PATH`: git reads a `:` before the first `/` this way.
fn check_scp_like(url: &str) -> Result<(), RepoUrlError> {
    let colon = url.find(':');
    let slash = url.find('/');
    let Some(colon) = colon.filter(|c| slash.is_none_or(|s| *c < s)) else {
        return Err(RepoUrlError::NoScheme(suggest(url)));
    };
    if let Some((userinfo, _)) = url.split_once('@')
        && userinfo.contains(':')
        && !userinfo.contains('/')
    {
        return Err(RepoUrlError::Credentials);
    }
    let (user_host, path) = (&url[..colon], &url[colon + 1..]);
    if user_host.eq_ignore_ascii_case("file") {
        return Err(RepoUrlError::FilePath);
    }
    let host = match user_host.rsplit_once('@') {
        Some(("", _)) => return Err(RepoUrlError::Host),
        Some((_, host)) => host,
        None => user_host,
    };
    // `host:port/path` is not scp-like: git would read the port as a path.
    if path
        .split('/')
        .next()
        .is_some_and(|p| p.parse::<u16>().is_ok())
        && path.contains('/')
    {
        return Err(RepoUrlError::NoScheme(Some(format!("https://{url}"))));
    }
    check_host_port(host)?;
    if path.trim_matches('/').is_empty() {
        return Err(RepoUrlError::NoPath);
    }
    Ok(())
}

/// The URL a scheme-less value most likely means.
fn suggest(url: &str) -> Option<String> {
    if url.starts_with('/') {
        return Some(format!("file://{url}"));
    }
    let host = url.split('/').next()?;
    (host.contains('.') && url.contains('/') && check_host_port(host).is_ok())
        .then(|| format!("https://{url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_forms_are_accepted() {
        for url in [
            "https://github.com/acme/shop-config.git",
            "https://gitlab.example.com:8443/group/sub/repo",
            "http://127.0.0.1:8080/repo.git",
            "http://[::1]:8080/repo.git",
            "ssh://git@github.com/acme/shop-config.git",
            "ssh://git@127.0.0.1:2222/srv/repo.git",
            "ssh://host/repo",
            "git@github.com:acme/shop-config.git",
            "github.com:acme/x.git",
            "file:///srv/git/shop-config.git",
            "file:///tmp/.tmpAbC/remote.git",
            "file:///home/me/etc/repo.git",
        ] {
            assert_eq!(check(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn everything_else_is_refused_with_the_reason() {
        use RepoUrlError::*;
        let cases: &[(&str, RepoUrlError)] = &[
            ("", Empty),
            ("ext::sh -c touch% /tmp/pwned", Control(7)),
            ("ext::sh", RemoteHelper("ext".into())),
            ("fd::17", RemoteHelper("fd".into())),
            ("--upload-pack=touch /tmp/x", Control(19)),
            ("--upload-pack=evil", LeadingDash),
            ("-uhelp", LeadingDash),
            ("ftp://example.com/repo.git", Scheme("ftp".into())),
            ("git://example.com/repo.git", Scheme("git".into())),
            ("HTTPS://example.com/repo.git", Scheme("HTTPS".into())),
            ("file:///etc", SystemPath("/etc".into())),
            ("file:///etc/", SystemPath("/etc".into())),
            ("file:////etc/./passwd", SystemPath("/etc".into())),
            ("file:///proc/self/cwd", SystemPath("/proc".into())),
            ("file:///", SystemPath("/".into())),
            ("file:///srv/../etc", FilePath),
            ("file://host/srv/repo", FilePath),
            ("file:relative/repo", FilePath),
            ("file:///srv/re\0po", Control(14)),
            (
                "github.com/acme/x.git",
                NoScheme(Some("https://github.com/acme/x.git".into())),
            ),
            (
                "/srv/git/x.git",
                NoScheme(Some("file:///srv/git/x.git".into())),
            ),
            ("repo.git", NoScheme(None)),
            (
                "localhost:5000/acme/x.git",
                NoScheme(Some("https://localhost:5000/acme/x.git".into())),
            ),
            (
                "https://x-access-token:ghp_abc@github.com/a/b.git",
                Credentials,
            ),
            ("https://ghp_abc@github.com/a/b.git", Credentials),
            ("http://user:pw@127.0.0.1:8080/r.git", Credentials),
            ("ssh://git:pw@host/repo", Credentials),
            ("user:pw@host:repo", Credentials),
            ("https:///repo.git", Host),
            ("ssh://-oProxyCommand=x/repo", Host),
            ("https://host:0/repo", Host),
            ("https://host:99999/repo", Host),
            ("https://github.com", NoPath),
            ("https://github.com/", NoPath),
            ("git@github.com:", NoPath),
        ];
        for (url, expected) in cases {
            assert_eq!(check(url).as_ref(), Err(expected), "{url:?}");
        }
    }

    #[test]
    fn the_credentials_message_points_at_git_credentials() {
        let message = RepoUrlError::Credentials.to_string();
        assert!(message.contains("`git.credentials`"), "{message}");
        assert!(message.contains(".git/config"), "{message}");
    }
}
