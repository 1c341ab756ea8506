//! Key material that never prints, and the two safe ways to talk about it: a
//! fingerprint and a redacted preview.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Secret bytes: a leaked value or a freshly issued credential.
///
/// `Debug` prints only the length and the fingerprint, there is no `Display`,
/// and the type implements neither `Serialize` nor `Deserialize`, so a secret
/// reaches output only through an explicit call to [`Secret::expose`].
/// The bytes are zeroed when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// Returns the secret bytes. Every caller is a place where the secret
    /// can leak: pass them on to the API that needs them and nowhere else.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Returns the secret as UTF-8 text, or `None` when it is not valid UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Returns the number of secret bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns true when the secret has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Computes the fingerprint: `sha256:` and the lowercase hex SHA-256 of
    /// the exact secret bytes.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.0)
    }

    /// Builds a preview that identifies the secret to a person but cannot be
    /// used in its place. See [`redact`].
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(REDACTED, {} bytes)", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Plain zeroing: the compiler may elide it, so this reduces, not
        // removes, the time a secret stays in freed memory.
        for byte in self.0.iter_mut() {
            *byte = 0;
        }
        std::hint::black_box(&self.0);
    }
}

/// `sha256:` followed by the lowercase hex SHA-256 of a secret's bytes.
///
/// Two findings with the same fingerprint are the same secret, wherever they
/// were found and whichever rule found them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Computes the fingerprint of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Fingerprint(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// Parses a fingerprint written as `sha256:` and 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let hex_part = text.strip_prefix("sha256:")?;
        let valid = hex_part.len() == 64
            && hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Fingerprint(text.to_owned()))
    }

    /// Returns the fingerprint as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds a redacted preview of secret bytes.
///
/// The preview keeps at most the first four characters, and at most a sixth
/// of the secret, followed by `…` and the length, for example
/// `AKIA…(20 chars)`. Prefixes such as `AKIA` or `ghp_` tell a reader what
/// the secret is; the rest never appears. Secrets shorter than 12 bytes
/// show no characters at all. Non-printable bytes are never shown.
pub fn redact(bytes: &[u8]) -> String {
    let shown = if bytes.len() < 12 {
        0
    } else {
        (bytes.len() / 6).min(4)
    };
    let prefix: String = bytes[..shown]
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect();
    format!("{prefix}…({} chars)", bytes.len())
}

/// Computes the Shannon entropy of `bytes`, in bits per byte.
pub fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let len = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secret() {
        let secret = Secret::new("hunter2-sentinel-value");
        let printed = format!("{secret:?}");
        assert!(!printed.contains("hunter2"));
        assert!(printed.contains("REDACTED"));
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        let fp = Fingerprint::of(b"abc");
        assert_eq!(
            fp.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Fingerprint::parse(fp.as_str()), Some(fp));
        assert_eq!(Fingerprint::parse("sha256:ABC"), None);
    }

    #[test]
    fn redact_keeps_short_prefix_only() {
        assert_eq!(redact(b"AKIAABCDEFGHIJKLMNOP"), "AKI…(20 chars)");
        assert_eq!(redact(b"short"), "…(5 chars)");
        let long = "ghp_".to_owned() + &"x".repeat(36);
        assert_eq!(redact(long.as_bytes()), "ghp_…(40 chars)");
    }

    #[test]
    fn entropy_of_uniform_and_constant() {
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
