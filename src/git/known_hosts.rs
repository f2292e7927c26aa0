//! OpenSSH `known_hosts` lookup for the SSH host key check.
//!
//! Pure code: the caller reads the file and hands over the key libssh2 received. Supports plain
//! host names, `[host]:port`, comma-separated patterns with `*`/`?` wildcards and `!` negation,
//! hashed entries (`|1|salt|hash`, HMAC-SHA1) and the `@revoked` marker; `@cert-authority`
//! lines are skipped (imagebump does not do host certificates).
//!
//! Invariant: a host key is accepted only when a matching, non-negated, non-revoked entry holds
//! exactly that key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// What the known_hosts file says about the key a host presented.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A line for this host carries exactly this key.
    Known,
    /// The host is listed, but with other keys: possibly a man in the middle.
    Mismatch { listed_types: Vec<String> },
    /// The key is marked `@revoked`.
    Revoked,
    /// The host is not listed at all.
    Unknown,
}

/// The name under which OpenSSH records `host` on `port`.
pub(crate) fn host_name_form(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Looks up `key_blob` (the SSH wire-format public key) for `host`:`port` in `contents`.
pub(crate) fn check(contents: &str, host: &str, port: u16, key_blob: &[u8]) -> Verdict {
    let name = host_name_form(host, port);
    let mut listed_types = Vec::new();
    let mut known = false;
    for line in contents.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(mut first) = fields.next() else {
            continue;
        };
        let mut revoked = false;
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                _ => continue, // @cert-authority and unknown markers
            }
            let Some(next) = fields.next() else { continue };
            first = next;
        }
        let (Some(key_type), Some(blob_b64)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !patterns_match(first, &name) {
            continue;
        }
        let Ok(blob) = BASE64.decode(blob_b64) else {
            continue;
        };
        let same_key = blob == key_blob;
        if revoked {
            if same_key {
                return Verdict::Revoked;
            }
            continue;
        }
        if same_key {
            known = true;
        } else {
            listed_types.push(key_type.to_string());
        }
    }
    if known {
        Verdict::Known
    } else if listed_types.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Mismatch { listed_types }
    }
}

/// A comma-separated pattern list matches when one positive pattern matches and no negated one.
fn patterns_match(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_matches(hashed, name);
    }
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob_match(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob_match(pattern.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, text_rest)| t.eq_ignore_ascii_case(c) && glob_match(rest, text_rest)),
    }
}

/// `salt|hash` (both base64): hash == HMAC-SHA1(key = salt, message = name).
fn hashed_matches(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt), BASE64.decode(hash)) else {
        return false;
    };
    hmac_sha1(&salt, name.as_bytes()).as_slice() == hash.as_slice()
}

/// HMAC (RFC 2104) over SHA-1; only used to match hashed known_hosts names.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..20].copy_from_slice(&sha1(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Vec::with_capacity(64 + message.len());
    inner.extend(block.iter().map(|b| b ^ 0x36));
    inner.extend_from_slice(message);
    let inner_hash = sha1(&inner);
    let mut outer = Vec::with_capacity(64 + 20);
    outer.extend(block.iter().map(|b| b ^ 0x5c));
    outer.extend_from_slice(&inner_hash);
    sha1(&outer)
}

/// SHA-1 (FIPS 180-4). Written here because the crate set has sha2 but no sha1, and OpenSSH's
/// hashed host names need nothing more than this.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut padded = data.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in padded.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHtmXJ2VnUAoq9cEZkaU3PbViZV6Ji0BKxdu8dUbNz0f";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJ7tQsQhwSJEcIMTUCGpqNcb6AoHcuMYpGjyCBqHhbse";

    fn blob(b64: &str) -> Vec<u8> {
        BASE64.decode(b64).unwrap_or_default()
    }

    #[test]
    fn test_keys_decode() {
        assert_eq!(blob(KEY_A).len(), 51);
        assert_ne!(blob(KEY_A), blob(KEY_B));
    }

    #[test]
    fn sha1_known_vectors() {
        assert_eq!(
            hex::encode(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(sha1(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        // RFC 2202 test case 2.
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn plain_and_bracketed_port_forms() {
        let file = format!(
            "# comment\n\ngithub.com ssh-ed25519 {KEY_A}\n[127.0.0.1]:2222 ssh-ed25519 {KEY_B} x\n"
        );
        assert_eq!(check(&file, "github.com", 22, &blob(KEY_A)), Verdict::Known);
        assert_eq!(
            check(&file, "127.0.0.1", 2222, &blob(KEY_B)),
            Verdict::Known
        );
        assert_eq!(
            check(&file, "127.0.0.1", 22, &blob(KEY_B)),
            Verdict::Unknown
        );
        assert_eq!(
            check(&file, "github.com", 2222, &blob(KEY_A)),
            Verdict::Unknown
        );
        assert_eq!(
            check(&file, "github.com", 22, &blob(KEY_B)),
            Verdict::Mismatch {
                listed_types: vec!["ssh-ed25519".into()]
            }
        );
    }

    #[test]
    fn patterns_wildcards_and_negation() {
        let file = format!("*.example.com,!bad.example.com,git.local ssh-ed25519 {KEY_A}\n");
        assert_eq!(
            check(&file, "a.example.com", 22, &blob(KEY_A)),
            Verdict::Known
        );
        assert_eq!(check(&file, "GIT.local", 22, &blob(KEY_A)), Verdict::Known);
        assert_eq!(
            check(&file, "bad.example.com", 22, &blob(KEY_A)),
            Verdict::Unknown
        );
        assert_eq!(
            check(&file, "example.com", 22, &blob(KEY_A)),
            Verdict::Unknown
        );
    }

    #[test]
    fn hashed_entries() {
        let salt = b"0123456789abcdefghij";
        let hash = hmac_sha1(salt, b"[10.0.0.1]:2200");
        let file = format!(
            "|1|{}|{} ssh-ed25519 {KEY_A}\n",
            BASE64.encode(salt),
            BASE64.encode(hash)
        );
        assert_eq!(check(&file, "10.0.0.1", 2200, &blob(KEY_A)), Verdict::Known);
        assert_eq!(
            check(&file, "10.0.0.2", 2200, &blob(KEY_A)),
            Verdict::Unknown
        );
    }

    #[test]
    fn revoked_and_cert_authority() {
        let file = format!(
            "@cert-authority * ssh-ed25519 {KEY_B}\n@revoked host ssh-ed25519 {KEY_A}\nhost ssh-ed25519 {KEY_A}\n"
        );
        assert_eq!(check(&file, "host", 22, &blob(KEY_A)), Verdict::Revoked);
        assert_eq!(check(&file, "other", 22, &blob(KEY_B)), Verdict::Unknown);
    }
}
