//! Verifying SSH commit signatures, as `git verify-commit` does with
//! `gpg.ssh.allowedSignersFile`: the commit's `gpgsig` header holds an armored `SSH SIGNATURE`
//! (OpenSSH's `sshsig` format, namespace `git`) over the commit without that header, made by a
//! key listed in an allowed-signers file. Promotion's `trust: signed` reads it.
//!
//! Owns: parsing an allowed-signers file (`principals [options] keytype key [comment]`) and
//! checking one `sshsig` signature. Ed25519 keys only (what imagebump signs with); other key
//! types in the file are skipped and counted.
//!
//! Invariant: a signature counts only when every check passes (format, namespace `git`, a key
//! of the file, the Ed25519 signature over the hash of the signed data); anything else is
//! "not verified", never an error that could be mistaken for a pass.

use std::path::Path;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256, Sha512};

use super::{Checkout, GitError, Oid};

const KEY_TYPE: &str = "ssh-ed25519";
const NAMESPACE: &[u8] = b"git";

/// The Ed25519 keys of an allowed-signers file, with their principals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedSigners {
    /// (principals as written, OpenSSH public key blob).
    keys: Vec<(String, Vec<u8>)>,
    /// Lines with a key of another type, skipped.
    pub skipped: usize,
}

impl AllowedSigners {
    /// Read an allowed-signers file.
    pub fn from_file(path: &Path) -> Result<AllowedSigners, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        AllowedSigners::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse the text of an allowed-signers file: one `principals [options] keytype key` per
    /// line, `#` comments and blank lines ignored.
    pub fn parse(text: &str) -> Result<AllowedSigners, String> {
        let mut signers = AllowedSigners::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(at) = words.iter().position(|w| {
                w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-")
            }) else {
                return Err(format!(
                    "line {}: no key type (expected e.g. `ssh-ed25519 AAAA…`)",
                    number + 1
                ));
            };
            if at == 0 {
                return Err(format!("line {}: no principals before the key", number + 1));
            }
            // An options field that limits namespaces leaves out keys not meant for git.
            let options = &words[1..at];
            if let Some(namespaces) = options
                .iter()
                .flat_map(|o| o.split(','))
                .find_map(|o| o.strip_prefix("namespaces="))
                && !namespaces.trim_matches('"').split(',').any(|n| n == "git")
            {
                continue;
            }
            if words[at] != KEY_TYPE {
                signers.skipped += 1;
                continue;
            }
            let key = words
                .get(at + 1)
                .and_then(|k| STANDARD.decode(k).ok())
                .ok_or_else(|| format!("line {}: the key is not base64", number + 1))?;
            signers.keys.push((words[0].to_string(), key));
        }
        Ok(signers)
    }

    /// The principals of the key that made `armored` over `data`, when it verifies.
    pub fn verify(&self, armored: &str, data: &[u8]) -> Option<&str> {
        let body: String = armored
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----") && !l.is_empty())
            .collect();
        let blob = STANDARD.decode(body).ok()?;
        let mut r = Reader(blob.strip_prefix(b"SSHSIG".as_slice())?);
        if r.u32()? != 1 {
            return None;
        }
        let public = r.bytes()?;
        let namespace = r.bytes()?;
        let reserved = r.bytes()?;
        let algorithm = r.bytes()?;
        let mut signature = Reader(r.bytes()?);
        if namespace != NAMESPACE || signature.bytes()? != KEY_TYPE.as_bytes() {
            return None;
        }
        let raw = signature.bytes()?;
        let (principals, _) = self.keys.iter().find(|(_, key)| key == public)?;
        let mut key = Reader(public);
        if key.bytes()? != KEY_TYPE.as_bytes() {
            return None;
        }
        let key = key.bytes()?;
        let hash = match algorithm {
            b"sha512" => Sha512::digest(data).to_vec(),
            b"sha256" => Sha256::digest(data).to_vec(),
            _ => return None,
        };
        let mut signed = b"SSHSIG".to_vec();
        for part in [NAMESPACE, reserved, algorithm, &hash] {
            put_bytes(&mut signed, part);
        }
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&signed, raw)
            .ok()
            .map(|()| principals.as_str())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_at_checked(4)?;
        self.0 = rest;
        Some(u32::from_be_bytes(head.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // A length that does not fit u32 cannot be a field of these formats; saturate (the
    // signature then fails to verify).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

impl Checkout {
    /// Whether commit `id` carries an SSH signature by a key of `signers` (`Some(principals)`),
    /// or not (`None`: unsigned, another format, or a signature that does not verify).
    pub fn verify_commit(
        &self,
        id: Oid,
        signers: &AllowedSigners,
    ) -> Result<Option<String>, GitError> {
        let (signature, data) = match self.repo.extract_signature(&id, None) {
            Ok(found) => found,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(self.local(e)),
        };
        let (Ok(signature), data) = (signature.as_str(), data.as_ref()) else {
            return Ok(None);
        };
        Ok(signers.verify(signature, data).map(str::to_owned))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::git::signing::SigningKey;

    #[test]
    fn a_signature_by_an_allowed_key_verifies_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let key = SigningKey::from_file(&path).unwrap();
        let signers = AllowedSigners::parse(&format!(
            "# who may\njane@example.com {}\n",
            key.public_key()
        ))
        .unwrap();
        let armored = key.sign(b"tree 0000\n\nmessage\n");
        assert_eq!(
            signers.verify(&armored, b"tree 0000\n\nmessage\n"),
            Some("jane@example.com")
        );
        assert_eq!(signers.verify(&armored, b"tree 0000\n\nother\n"), None);
        assert_eq!(
            AllowedSigners::default().verify(&armored, b"tree 0000\n\nmessage\n"),
            None
        );
        assert_eq!(
            signers.verify(
                "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----",
                b""
            ),
            None
        );
        // Keys limited to other namespaces, and other key types, are left out.
        let limited = AllowedSigners::parse(&format!(
            "jane@example.com namespaces=\"file\" {}\nbob@example.com ssh-rsa AAAAB3NzaC1yc2E=\n",
            key.public_key()
        ))
        .unwrap();
        assert_eq!(limited.verify(&armored, b"tree 0000\n\nmessage\n"), None);
        assert_eq!(limited.skipped, 1);
        assert!(AllowedSigners::parse("ssh-ed25519 AAAA\n").is_err());
    }
}
