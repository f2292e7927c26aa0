//! Image references: the Docker reference grammar, normalised, and the OCI tag grammar.
//!
//! Owns: parsing `[host[:port]/]path[:tag][@algo:hex]`, normalising Docker Hub spellings
//! (`nginx` = `docker.io/library/nginx`; `index.docker.io` and `registry-1.docker.io` are
//! `docker.io`), and validating tags and digests.
//!
//! Invariant: pure string work, no I/O. Every module that compares or writes an image name
//! (`registry`, `edit`, `policy`, the config) goes through here, so "same image" means one thing.
//!
//! Design choice: a reference keeps its canonical parts only (`registry`, `repository`, `tag`,
//! `digest`); callers that must preserve the user's spelling (the editor) keep the original text
//! themselves and use [`ImageRef::same_repository`] to match.

use std::fmt;

/// The canonical name of Docker Hub.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's distribution API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host, with port if any; Docker Hub is always `docker.io`.
    pub registry: String,
    /// Repository path inside the registry; official Docker Hub images get `library/`.
    pub repository: String,
    /// Tag, if the reference names one.
    pub tag: Option<String>,
    /// Digest (`sha256:…`), if the reference names one.
    pub digest: Option<String>,
}

/// Why a string is not an image reference. The message names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid registry host {host:?} in {input:?}")]
    Host { input: String, host: String },
    #[error(
        "invalid repository path component {component:?} in {input:?}: expected lowercase letters, digits and single separators (. _ __ -)"
    )]
    Component { input: String, component: String },
    #[error(
        "invalid tag {tag:?} in {input:?}: a tag is 1 to 128 of [A-Za-z0-9_.-] and must not start with '.' or '-'"
    )]
    Tag { input: String, tag: String },
    #[error("invalid digest {digest:?} in {input:?}: expected sha256:<64 hex> or algorithm:hex")]
    Digest { input: String, digest: String },
    #[error("image reference {input:?} is too long ({len} > 255 characters in the name)")]
    TooLong { input: String, len: usize },
}

/// True when `tag` matches the OCI tag grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    match bytes.split_first() {
        None => false,
        Some((first, rest)) => {
            bytes.len() <= 128
                && (first.is_ascii_alphanumeric() || *first == b'_')
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
    }
}

/// True when `digest` is `algorithm:encoded` as the OCI image spec defines it; `sha256` and
/// `sha512` encodings must have the exact lowercase-hex length.
pub fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let hex_len = match algorithm {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    let encoded_ok = match hex_len {
        Some(len) => {
            encoded.len() == len
                && encoded
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => {
            encoded.len() >= 32
                && encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
        }
    };
    algorithm_ok && encoded_ok
}

/// Normalise a registry host: the Docker Hub aliases become `docker.io`; hosts are lowercased.
pub fn normalize_registry(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    match lower.as_str() {
        "index.docker.io"
        | "registry-1.docker.io"
        | "registry.hub.docker.com"
        | "hub.docker.com" => DOCKER_HUB.to_string(),
        _ => lower,
    }
}

fn is_valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        // An IPv6 literal is bracketed; its colons are not a port separator.
        Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => (name, Some(port)),
        _ => (host, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if name.starts_with('[') {
        return name.ends_with(']')
            && name.len() > 2
            && name[1..name.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or one or more '-'.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Does the first path component name a registry host (rather than a Docker Hub namespace)?
fn looks_like_host(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

impl ImageRef {
    /// Parse and normalise a reference such as `nginx`, `ghcr.io/org/app:1.2`,
    /// `localhost:5000/app@sha256:…` or `name:tag@sha256:…`.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let err_input = || input.to_string();
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                if !is_valid_digest(digest) {
                    return Err(ReferenceError::Digest {
                        input: err_input(),
                        digest: digest.to_string(),
                    });
                }
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // The tag separator is a ':' after the last '/', so a registry port is never a tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                let colon = last_slash + i;
                let tag = &rest[colon + 1..];
                if !is_valid_tag(tag) {
                    return Err(ReferenceError::Tag {
                        input: err_input(),
                        tag: tag.to_string(),
                    });
                }
                (&rest[..colon], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if name.len() > 255 {
            return Err(ReferenceError::TooLong {
                input: err_input(),
                len: name.len(),
            });
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_host(first) => {
                if !is_valid_host(first) {
                    return Err(ReferenceError::Host {
                        input: err_input(),
                        host: first.to_string(),
                    });
                }
                (normalize_registry(first), path)
            }
            _ => (DOCKER_HUB.to_string(), name),
        };
        for component in path.split('/') {
            if !is_valid_component(component) {
                return Err(ReferenceError::Component {
                    input: err_input(),
                    component: component.to_string(),
                });
            }
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, the canonical name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host that serves this registry's API (`docker.io` is served by
    /// `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// True when both name the same repository (tags and digests are ignored).
    pub fn same_repository(&self, other: &ImageRef) -> bool {
        self.registry == other.registry && self.repository == other.repository
    }

    /// The same repository with another tag and digest.
    pub fn with(&self, tag: Option<&str>, digest: Option<&str>) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits a reference as a webhook or another tool may spell it (`https://host/path:tag@digest`,
/// or `path` for Docker Hub) into host, path and tag, without validating them: a lenient reading
/// for matching hints against known repositories, never for writing.
pub fn split_loose(reference: &str) -> (String, String, Option<String>) {
    let reference = reference
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let (name, tag) = match without_digest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag.to_string())),
        _ => (without_digest, None),
    };
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string(), tag)
        }
        _ => (DOCKER_HUB.to_string(), name.to_string(), tag),
    }
}

/// The canonical `registry/repository` of a host and a path as someone spelled them: scheme
/// and slashes trimmed, lowercased, Docker Hub aliases and `library/` applied (as
/// [`ImageRef::name`] spells a parsed reference).
pub fn canonical_name(host: &str, path: &str) -> String {
    let host = normalize_registry(
        host.trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/'),
    );
    let path = path.trim_matches('/').to_ascii_lowercase();
    if host == DOCKER_HUB && !path.contains('/') {
        format!("{host}/library/{path}")
    } else {
        format!("{host}/{path}")
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn check(input: &str, registry: &str, repository: &str, tag: Option<&str>, digest: bool) {
        let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.registry, registry, "{input}");
        assert_eq!(r.repository, repository, "{input}");
        assert_eq!(r.tag.as_deref(), tag, "{input}");
        assert_eq!(r.digest.is_some(), digest, "{input}");
    }

    #[test]
    fn loose_references() {
        let check = |input: &str, host: &str, path: &str, tag: Option<&str>| {
            assert_eq!(
                split_loose(input),
                (host.to_string(), path.to_string(), tag.map(str::to_string)),
                "{input}"
            );
        };
        check("quay.io/ns/repo", "quay.io", "ns/repo", None);
        check(
            "hub.harbor.com/proj/debian:latest",
            "hub.harbor.com",
            "proj/debian",
            Some("latest"),
        );
        check(
            "localhost:5000/app:1.0",
            "localhost:5000",
            "app",
            Some("1.0"),
        );
        check(
            "127.0.0.1:5000/a/b@sha256:abc",
            "127.0.0.1:5000",
            "a/b",
            None,
        );
        check("nginx", "docker.io", "nginx", None);
        check("acme/app:v1", "docker.io", "acme/app", Some("v1"));
        assert_eq!(
            canonical_name("https://Index.Docker.io/", "/Nginx"),
            "docker.io/library/nginx"
        );
        assert_eq!(
            canonical_name("hub.docker.com", "acme/app"),
            "docker.io/acme/app"
        );
        assert_eq!(canonical_name("ghcr.io", "Acme/API"), "ghcr.io/acme/api");
    }

    #[test]
    fn parses_and_normalises() {
        check("nginx", "docker.io", "library/nginx", None, false);
        check(
            "nginx:1.25",
            "docker.io",
            "library/nginx",
            Some("1.25"),
            false,
        );
        check("docker.io/nginx", "docker.io", "library/nginx", None, false);
        check(
            "docker.io/library/nginx",
            "docker.io",
            "library/nginx",
            None,
            false,
        );
        check(
            "index.docker.io/library/nginx",
            "docker.io",
            "library/nginx",
            None,
            false,
        );
        check(
            "registry-1.docker.io/bitnami/redis:7",
            "docker.io",
            "bitnami/redis",
            Some("7"),
            false,
        );
        check("bitnami/redis", "docker.io", "bitnami/redis", None, false);
        check(
            "ghcr.io/org/app:v1.2.3",
            "ghcr.io",
            "org/app",
            Some("v1.2.3"),
            false,
        );
        check("localhost:5000/app", "localhost:5000", "app", None, false);
        check("localhost/app:1", "localhost", "app", Some("1"), false);
        check(
            "127.0.0.1:5000/a/b/c:x",
            "127.0.0.1:5000",
            "a/b/c",
            Some("x"),
            false,
        );
        check(&format!("app@{D}"), "docker.io", "library/app", None, true);
        check(
            &format!("quay.io/org/app:1.0@{D}"),
            "quay.io",
            "org/app",
            Some("1.0"),
            true,
        );
        check("GHCR.io/org/app", "ghcr.io", "org/app", None, false);
        check(
            "my-registry.example.com:443/team/svc_a__b.c-d",
            "my-registry.example.com:443",
            "team/svc_a__b.c-d",
            None,
            false,
        );
    }

    #[test]
    fn same_repository_ignores_spelling_and_tag() {
        let a = ImageRef::parse("nginx:1").unwrap();
        let b = ImageRef::parse("docker.io/library/nginx:2").unwrap();
        let c = ImageRef::parse("ghcr.io/org/app").unwrap();
        let d = ImageRef::parse("ghcr.io/org/app2").unwrap();
        assert!(a.same_repository(&b));
        assert!(!c.same_repository(&d));
    }

    #[test]
    fn rejects_with_the_bad_part_named() {
        let cases = [
            ("", "empty"),
            ("Nginx", "\"Nginx\""),
            ("nginx:", "tag \"\""),
            ("nginx:-bad", "\"-bad\""),
            ("nginx:.bad", "\".bad\""),
            ("app@sha256:abc", "digest \"sha256:abc\""),
            ("ghcr.io/org//app", "component \"\""),
            ("ghcr.io/org/app-", "\"app-\""),
            ("ghcr.io/org/a...b", "\"a...b\""),
            ("bad_host.io:99999/x", "host \"bad_host.io:99999\""),
        ];
        for (input, needle) in cases {
            let err = ImageRef::parse(input).unwrap_err().to_string();
            assert!(
                err.contains(needle),
                "{input}: {err} should mention {needle}"
            );
        }
        let long_tag = format!("app:{}", "a".repeat(129));
        assert!(matches!(
            ImageRef::parse(&long_tag),
            Err(ReferenceError::Tag { .. })
        ));
    }

    #[test]
    fn tag_grammar() {
        for ok in [
            "1",
            "v1.2.3",
            "_x",
            "a-b.c_d",
            "sha-1a2b3c4",
            &"a".repeat(128),
        ] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "a b",
            "a/b",
            "a:b",
            "é",
            &"a".repeat(129),
            "a\n",
        ] {
            assert!(!is_valid_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn digest_grammar() {
        assert!(is_valid_digest(D));
        assert!(!is_valid_digest(
            "sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
        ));
        assert!(!is_valid_digest("sha256:"));
        assert!(!is_valid_digest("nocolon"));
        assert!(is_valid_digest(&format!("sha512:{}", "a".repeat(128))));
    }

    #[test]
    fn display_round_trips() {
        let r = ImageRef::parse(&format!("localhost:5000/app:1@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("localhost:5000/app:1@{D}"));
        assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r);
        assert_eq!(
            ImageRef::parse("nginx").unwrap().api_host(),
            "registry-1.docker.io"
        );
    }
}
