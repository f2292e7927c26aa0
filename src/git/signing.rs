//! SSH commit signing, as `git -c gpg.format=ssh commit -S` does: the commit object is signed
//! with an Ed25519 key into an armored `SSH SIGNATURE` (OpenSSH's `sshsig` format, namespace
//! `git`, SHA-512), stored in the commit's `gpgsig` header. `git verify-commit` (with
//! `gpg.ssh.allowedSignersFile`), GitHub, GitLab and Gitea verify it.
//!
//! Owns: reading an unencrypted OpenSSH Ed25519 private key file, and the `sshsig` encoding.
//!
//! Invariant: the key never leaves this module; `Debug` and errors show its fingerprint and the
//! file's path, never key material.
//!
//! Design choice: Ed25519 through aws-lc-rs, which rustls already builds, and the two small
//! binary formats written here from their specifications (OpenSSH's PROTOCOL.key and
//! PROTOCOL.sshsig), instead of a new dependency tree. Library code never spawns `ssh-keygen`.

use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256, Sha512};

const KEY_TYPE: &str = "ssh-ed25519";
const NAMESPACE: &str = "git";

/// An Ed25519 key that signs commits.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    /// The OpenSSH public key blob (`string "ssh-ed25519", string key`).
    public_blob: Vec<u8>,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("path", &self.path)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.public_blob == other.public_blob
    }
}

impl Eq for SigningKey {}

/// Reads the big-endian, length-prefixed fields of the SSH wire format.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(head)
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every field written here is far below 4 GiB (keys, hashes, names).
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl SigningKey {
    /// Read an OpenSSH private key file (`ssh-keygen -t ed25519 -N ''`). Errors name the file
    /// and say what to do; they never quote the file.
    pub fn from_file(path: &Path) -> Result<SigningKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the signing key {}: {e}", path.display()))?;
        SigningKey::from_openssh(&text)
            .map_err(|reason| {
                format!(
                    "the signing key {} cannot be used: {reason}",
                    path.display()
                )
            })
            .map(|mut key| {
                key.path = path.to_path_buf();
                key
            })
    }

    fn from_openssh(text: &str) -> Result<SigningKey, String> {
        const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
        const END: &str = "-----END OPENSSH PRIVATE KEY-----";
        let not_openssh = || {
            "not an OpenSSH private key (expected a file from `ssh-keygen -t ed25519`)".to_string()
        };
        let body = text
            .trim()
            .strip_prefix(BEGIN)
            .and_then(|rest| rest.strip_suffix(END))
            .ok_or_else(not_openssh)?;
        let b64: String = body.split_whitespace().collect();
        let raw = STANDARD.decode(b64).map_err(|_| not_openssh())?;
        let mut r = Reader(
            raw.strip_prefix(b"openssh-key-v1\0".as_slice())
                .ok_or_else(not_openssh)?,
        );
        let truncated = || "the key file is truncated".to_string();
        let cipher = r.bytes().ok_or_else(truncated)?;
        let _kdf = r.bytes().ok_or_else(truncated)?;
        let _kdf_options = r.bytes().ok_or_else(truncated)?;
        if cipher != b"none" {
            return Err(
                "it is protected by a passphrase; imagebump needs an unencrypted key (keep it in a Kubernetes Secret; `ssh-keygen -p -N '' -f FILE` removes the passphrase)"
                    .into(),
            );
        }
        if r.u32() != Some(1) {
            return Err("it holds more than one key".into());
        }
        let public_blob = r.bytes().ok_or_else(truncated)?.to_vec();
        let mut private = Reader(r.bytes().ok_or_else(truncated)?);
        let (check1, check2) = (private.u32(), private.u32());
        if check1.is_none() || check1 != check2 {
            return Err("the key file is corrupt (check values differ)".into());
        }
        let key_type = private.bytes().ok_or_else(truncated)?;
        if key_type != KEY_TYPE.as_bytes() {
            return Err(format!(
                "it is a {} key; commit signing supports ssh-ed25519 keys (`ssh-keygen -t ed25519`)",
                String::from_utf8_lossy(key_type)
            ));
        }
        let public = private.bytes().ok_or_else(truncated)?;
        let secret = private.bytes().ok_or_else(truncated)?;
        if public.len() != 32 || secret.len() != 64 || &secret[32..] != public {
            return Err("the key file is corrupt (Ed25519 key sizes)".into());
        }
        let pair = Ed25519KeyPair::from_seed_and_public_key(&secret[..32], public)
            .map_err(|_| "the key file is corrupt (the Ed25519 key pair does not match)")?;
        let mut expected = Vec::new();
        put_bytes(&mut expected, KEY_TYPE.as_bytes());
        put_bytes(&mut expected, pair.public_key().as_ref());
        if expected != public_blob {
            return Err("the key file is corrupt (public key mismatch)".into());
        }
        Ok(SigningKey {
            pair,
            public_blob,
            path: PathBuf::new(),
        })
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            STANDARD_NO_PAD.encode(Sha256::digest(&self.public_blob))
        )
    }

    /// The public key as an `authorized_keys` / allowed-signers line body (`ssh-ed25519 AAAA…`).
    pub fn public_key(&self) -> String {
        format!("{KEY_TYPE} {}", STANDARD.encode(&self.public_blob))
    }

    /// The armored `SSH SIGNATURE` of `message` in the `git` namespace (no final newline: git2
    /// adds the header's own line ending).
    pub fn sign(&self, message: &[u8]) -> String {
        let hash = Sha512::digest(message);
        let mut signed = b"SSHSIG".to_vec();
        put_bytes(&mut signed, NAMESPACE.as_bytes());
        put_bytes(&mut signed, b"");
        put_bytes(&mut signed, b"sha512");
        put_bytes(&mut signed, &hash);
        let signature = self.pair.sign(&signed);

        let mut sig_blob = Vec::new();
        put_bytes(&mut sig_blob, KEY_TYPE.as_bytes());
        put_bytes(&mut sig_blob, signature.as_ref());
        let mut blob = b"SSHSIG".to_vec();
        blob.extend_from_slice(&1u32.to_be_bytes());
        put_bytes(&mut blob, &self.public_blob);
        put_bytes(&mut blob, NAMESPACE.as_bytes());
        put_bytes(&mut blob, b"");
        put_bytes(&mut blob, b"sha512");
        put_bytes(&mut blob, &sig_blob);

        let b64 = STANDARD.encode(&blob);
        let mut armored = String::from("-----BEGIN SSH SIGNATURE-----\n");
        for chunk in b64.as_bytes().chunks(70) {
            // Base64 output is ASCII, so every chunk is valid UTF-8.
            armored.push_str(&String::from_utf8_lossy(chunk));
            armored.push('\n');
        }
        armored.push_str("-----END SSH SIGNATURE-----");
        armored
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Build an unencrypted OpenSSH private key file around `seed` (the writer side of the
    /// format the reader parses), with `cipher` and `key_type` overridable to test refusals.
    fn key_file(seed: [u8; 32], cipher: &str, key_type: &str) -> String {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let public = pair.public_key().as_ref().to_vec();
        let mut public_blob = Vec::new();
        put_bytes(&mut public_blob, key_type.as_bytes());
        put_bytes(&mut public_blob, &public);
        let mut private = Vec::new();
        private.extend_from_slice(&7u32.to_be_bytes());
        private.extend_from_slice(&7u32.to_be_bytes());
        put_bytes(&mut private, key_type.as_bytes());
        put_bytes(&mut private, &public);
        let mut secret = seed.to_vec();
        secret.extend_from_slice(&public);
        put_bytes(&mut private, &secret);
        put_bytes(&mut private, b"bot@example.com");
        let mut raw = b"openssh-key-v1\0".to_vec();
        put_bytes(&mut raw, cipher.as_bytes());
        put_bytes(&mut raw, b"none");
        put_bytes(&mut raw, b"");
        raw.extend_from_slice(&1u32.to_be_bytes());
        put_bytes(&mut raw, &public_blob);
        put_bytes(&mut raw, &private);
        format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            STANDARD.encode(raw)
        )
    }

    #[test]
    fn signs_verifiably_and_never_shows_the_key() {
        let key = SigningKey::from_openssh(&key_file([9; 32], "none", KEY_TYPE)).unwrap();
        let armored = key.sign(b"tree 0000\n\nmessage\n");
        assert!(armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
        assert!(armored.ends_with("\n-----END SSH SIGNATURE-----"));
        // Decode the blob and check the Ed25519 signature over the sshsig-signed data.
        let b64: String = armored
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let blob = STANDARD.decode(b64).unwrap();
        let mut r = Reader(blob.strip_prefix(b"SSHSIG".as_slice()).unwrap());
        assert_eq!(r.u32(), Some(1));
        assert_eq!(r.bytes().unwrap(), key.public_blob.as_slice());
        assert_eq!(r.bytes().unwrap(), b"git");
        assert_eq!(r.bytes().unwrap(), b"");
        assert_eq!(r.bytes().unwrap(), b"sha512");
        let mut sig = Reader(r.bytes().unwrap());
        assert_eq!(sig.bytes().unwrap(), KEY_TYPE.as_bytes());
        let raw_sig = sig.bytes().unwrap();
        let mut signed = b"SSHSIG".to_vec();
        put_bytes(&mut signed, b"git");
        put_bytes(&mut signed, b"");
        put_bytes(&mut signed, b"sha512");
        put_bytes(&mut signed, &Sha512::digest(b"tree 0000\n\nmessage\n"));
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ED25519,
            key.pair.public_key().as_ref(),
        );
        public.verify(&signed, raw_sig).unwrap();
        assert!(public.verify(b"something else", raw_sig).is_err());

        let shown = format!("{key:?}");
        assert!(shown.contains("SHA256:"), "{shown}");
        assert!(!shown.contains(&STANDARD.encode([9u8; 32])), "{shown}");
        assert!(
            key.public_key()
                .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")
        );
    }

    #[test]
    fn refuses_what_it_cannot_use_with_the_reason() {
        let encrypted = SigningKey::from_openssh(&key_file([1; 32], "aes256-ctr", KEY_TYPE));
        assert!(encrypted.unwrap_err().contains("passphrase"));
        let rsa = SigningKey::from_openssh(&key_file([1; 32], "none", "ssh-rsa"));
        assert!(rsa.unwrap_err().contains("ssh-rsa key"));
        let pem = SigningKey::from_openssh(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        );
        assert!(pem.unwrap_err().contains("not an OpenSSH private key"));
        let good = key_file([1; 32], "none", KEY_TYPE);
        let cut = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            &good.lines().nth(1).unwrap()[..60]
        );
        assert!(SigningKey::from_openssh(&cut).is_err());
        let missing = SigningKey::from_file(Path::new("/nonexistent/signing_key")).unwrap_err();
        assert!(missing.contains("/nonexistent/signing_key"), "{missing}");
    }
}
