//! Verifying digests while bytes stream past.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// A reader that computes the SHA-256 of everything read through it.
#[derive(Debug)]
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Reads the rest of the stream, then returns the digest as
    /// `sha256:<hex>` and the total length.
    pub(crate) fn finish(&mut self) -> io::Result<(String, u64)> {
        io::copy(self, &mut io::sink())?;
        let digest = self.hasher.finalize_reset();
        Ok((format!("sha256:{}", hex::encode(digest)), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Splits `sha256:<hex>` into algorithm and hex, checking the hex length.
pub(crate) fn parse_digest(digest: &str) -> Option<(&str, &str)> {
    let (algorithm, hex_part) = digest.split_once(':')?;
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return None,
    };
    let valid = hex_part.len() == expected_len && hex_part.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then_some((algorithm, hex_part))
}
