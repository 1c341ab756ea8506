//! Content digests: parsing, and hashing bytes as they stream.

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};

/// Parses `ALGORITHM:HEX` and rejects algorithms this crate cannot verify.
///
/// # Errors
///
/// [`Error::InvalidDigest`] when the text is malformed or the algorithm is
/// neither `sha256` nor `sha512`.
pub fn parse_digest(text: &str) -> Result<Digest> {
    let digest: Digest = text.parse().map_err(|error| Error::InvalidDigest {
        digest: text.to_owned(),
        reason: format!("{error}"),
    })?;
    match digest.algorithm() {
        DigestAlgorithm::Sha256 | DigestAlgorithm::Sha512 => Ok(digest),
        other => Err(Error::InvalidDigest {
            digest: text.to_owned(),
            reason: format!(
                "algorithm {} is not supported; use sha256 or sha512",
                other.as_ref()
            ),
        }),
    }
}

/// Returns true when `text` has the shape `sha256:<64 hex>` or another digest.
///
/// Tag lists use this to skip entries that are digests rather than tags.
pub(crate) fn looks_like_digest(text: &str) -> bool {
    text.contains(':') && text.parse::<Digest>().is_ok()
}

/// Incremental hasher for one digest algorithm.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Hasher::Sha256(_) => "sha256",
            Hasher::Sha512(_) => "sha512",
        };
        formatter.debug_tuple("Hasher").field(&name).finish()
    }
}

impl Hasher {
    /// Creates a hasher for the algorithm of `digest`; unsupported algorithms fall back to sha256,
    /// which then fails verification instead of passing it.
    pub(crate) fn for_digest(digest: &Digest) -> Self {
        match digest.algorithm() {
            DigestAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
            _ => Hasher::Sha256(Sha256::new()),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(hasher) => hasher.update(bytes),
            Hasher::Sha512(hasher) => hasher.update(bytes),
        }
    }

    /// Finishes hashing and returns `ALGORITHM:HEX`.
    pub(crate) fn finish(self) -> String {
        match self {
            Hasher::Sha256(hasher) => format!("sha256:{}", hex::encode(hasher.finalize())),
            Hasher::Sha512(hasher) => format!("sha512:{}", hex::encode(hasher.finalize())),
        }
    }
}

/// Hashes `bytes` with the algorithm of `like`.
pub(crate) fn digest_like(like: &Digest, bytes: &[u8]) -> String {
    let mut hasher = Hasher::for_digest(like);
    hasher.update(bytes);
    hasher.finish()
}

/// Hashes `bytes` with sha256 and returns the digest.
///
/// # Errors
///
/// Never in practice: a sha256 hex string always parses as a digest.
pub fn sha256_digest(bytes: &[u8]) -> Result<Digest> {
    let text = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    parse_digest(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_unknown_algorithm() {
        let error = parse_digest("md5:d41d8cd98f00b204e9800998ecf8427e").unwrap_err();
        assert!(matches!(error, Error::InvalidDigest { .. }));
    }

    #[test]
    fn sha256_of_empty_input() {
        let digest = sha256_digest(b"").unwrap();
        assert_eq!(
            digest.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digest_shaped_tags_detected() {
        assert!(looks_like_digest(
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ));
        assert!(!looks_like_digest("latest"));
        assert!(!looks_like_digest("sha256-abc.sig"));
    }
}
