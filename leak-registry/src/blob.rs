//! Blobs: verified downloads, streamed to a synchronous reader with
//! `Range` resume when a connection breaks.

use std::io::{self, Read};

use bytes::Bytes;
use oci_spec::image::Digest;
use reqwest::StatusCode;
use reqwest::header::{HeaderValue, RANGE};
use tokio::sync::mpsc;

use crate::auth::Scope;
use crate::client::{RegistryClient, Reply, Request};
use crate::digest::Hasher;
use crate::error::{Error, Result};

/// Chunks buffered between the download task and the reader.
const CHANNEL_CHUNKS: usize = 16;

/// Config blobs and other small blobs read whole must be smaller than this.
pub const MAX_SMALL_BLOB_BYTES: u64 = 16 * 1024 * 1024;

/// A blocking reader over a blob download running on the tokio runtime.
///
/// Reads return the bytes as they arrive; the digest is checked when the
/// download ends, and a mismatch or a failed resume surfaces as an
/// [`io::Error`] wrapping [`Error`]. Read it on a blocking thread
/// (`tokio::task::spawn_blocking`), never on a runtime worker.
///
/// NOTE: the download holds one of the client's concurrency permits until
/// the body is read or the reader is dropped. Readers created beyond the
/// limit wait for a permit, so read them in the order they were created,
/// or drop the ones not needed.
#[derive(Debug)]
pub struct BlobReader {
    receiver: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    finished: bool,
}

impl Read for BlobReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.finished {
                return Ok(0);
            }
            match self.receiver.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => {
                    self.finished = true;
                    return Err(error);
                }
                None => self.finished = true,
            }
        }
        let count = buffer.len().min(self.current.len());
        buffer[..count].copy_from_slice(&self.current[..count]);
        let _ = self.current.split_to(count);
        Ok(count)
    }
}

/// Download progress of one blob, kept across resumes.
struct Progress {
    hasher: Hasher,
    received: u64,
    attempts: u32,
}

impl RegistryClient {
    /// Starts downloading a blob and returns a blocking reader over it.
    ///
    /// `size` is the descriptor size: a body that ends before it is resumed
    /// with `Range: bytes=N-`. Must be called inside a tokio runtime.
    pub fn blob_reader(&self, repository: &str, digest: &Digest, size: Option<u64>) -> BlobReader {
        let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
        let client = self.clone();
        let repository = repository.to_owned();
        let digest = digest.clone();
        tokio::spawn(async move {
            let result = client
                .stream_blob(&repository, &digest, size, &sender)
                .await;
            if let Err(error) = result {
                let _ = sender.send(Err(io::Error::other(error))).await;
            }
        });
        BlobReader {
            receiver,
            current: Bytes::new(),
            finished: false,
        }
    }

    /// Downloads a small blob (an image config) whole and verifies it.
    ///
    /// # Errors
    ///
    /// [`Error::DigestMismatch`], [`Error::TruncatedBlob`], [`Error::NotFound`],
    /// [`Error::InvalidManifest`] when `size` exceeds 16 MiB, and the transport errors.
    pub async fn blob_bytes(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<Bytes> {
        if size.is_some_and(|size| size > MAX_SMALL_BLOB_BYTES) {
            return Err(Error::InvalidManifest {
                registry: self.registry().to_owned(),
                repository: repository.to_owned(),
                reference: digest.to_string(),
                reason: "the blob is larger than 16 MiB, too large to read whole".to_owned(),
            });
        }
        let (sender, mut receiver) = mpsc::channel(CHANNEL_CHUNKS);
        let download = async move {
            let result = self.stream_blob(repository, digest, size, &sender).await;
            drop(sender);
            result
        };
        let collect = async move {
            let mut body = Vec::new();
            while let Some(Ok(chunk)) = receiver.recv().await {
                body.extend_from_slice(&chunk);
            }
            body
        };
        let (result, body) = tokio::join!(download, collect);
        result.map(|()| Bytes::from(body))
    }

    /// Sends the blob's bytes to `sender`, resuming with `Range` after a
    /// broken connection, and checks the digest at the end.
    async fn stream_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
        sender: &mpsc::Sender<io::Result<Bytes>>,
    ) -> Result<()> {
        let mut progress = Progress {
            hasher: Hasher::for_digest(digest),
            received: 0,
            attempts: 0,
        };
        let max_attempts = self.inner.retry.max_retries() + 1;
        loop {
            progress.attempts += 1;
            let complete = self
                .blob_attempt(repository, digest, size, &mut progress, sender)
                .await?;
            if complete {
                break;
            }
            if progress.attempts >= max_attempts {
                return Err(Error::TruncatedBlob {
                    registry: self.registry().to_owned(),
                    repository: repository.to_owned(),
                    digest: digest.to_string(),
                    received: progress.received,
                    expected: size.unwrap_or(progress.received),
                    attempts: progress.attempts,
                });
            }
            let wait = self.inner.retry.backoff(progress.attempts - 1);
            tracing::info!(registry = %self.registry(), repository, %digest, received = progress.received, attempt = progress.attempts, "blob download broke; resuming with a Range request");
            tokio::time::sleep(wait).await;
        }
        let actual = progress.hasher.finish();
        if actual != digest.as_ref() {
            return Err(Error::DigestMismatch {
                registry: self.registry().to_owned(),
                repository: repository.to_owned(),
                what: "blob".to_owned(),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(())
    }

    /// Runs one GET; returns Ok(true) when the body ended at the expected size.
    async fn blob_attempt(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
        progress: &mut Progress,
        sender: &mpsc::Sender<io::Result<Bytes>>,
    ) -> Result<bool> {
        let request = self.blob_request(repository, digest, progress.received);
        let reply = self.execute(&request).await?;
        let mut reply = self.expect_success(&request, reply).await?;
        let mut skip = self.bytes_to_skip(&reply, progress.received);
        loop {
            let chunk = match reply.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Ok(size.is_none_or(|size| progress.received >= size)),
                Err(error) => {
                    tracing::debug!(registry = %self.registry(), repository, %digest, error = %error.without_url(), "blob body failed");
                    return Ok(false);
                }
            };
            let chunk = skip_prefix(chunk, &mut skip);
            if chunk.is_empty() {
                continue;
            }
            progress.hasher.update(&chunk);
            progress.received += chunk.len() as u64;
            if size.is_some_and(|size| progress.received > size) {
                return Err(self.oversized_blob(repository, digest, progress));
            }
            if sender.send(Ok(chunk)).await.is_err() {
                // The reader was dropped, so the rest of the body is not needed.
                return Ok(true);
            }
        }
    }

    fn blob_request(&self, repository: &str, digest: &Digest, offset: u64) -> Request {
        let url = self
            .url(&format!("/v2/{repository}/blobs/{digest}"))
            .unwrap_or_else(|_| self.inner.base.clone());
        let request = Request::get(
            url,
            format!("GET blob {repository}@{digest}"),
            vec![Scope::pull(repository)],
        )
        .with_target(repository, format!("blob {digest}"));
        if offset == 0 {
            return request;
        }
        match HeaderValue::from_str(&format!("bytes={offset}-")) {
            Ok(value) => request.with_header(RANGE, value),
            Err(_) => request,
        }
    }

    /// Returns the bytes to skip: a 200 response to a Range request restarts the body from byte 0.
    fn bytes_to_skip(&self, reply: &Reply, offset: u64) -> u64 {
        if offset > 0 && reply.status() != StatusCode::PARTIAL_CONTENT {
            tracing::debug!(registry = %self.registry(), offset, "the registry ignored Range; skipping the bytes already read");
            return offset;
        }
        0
    }

    fn oversized_blob(&self, repository: &str, digest: &Digest, progress: &Progress) -> Error {
        Error::DigestMismatch {
            registry: self.registry().to_owned(),
            repository: repository.to_owned(),
            what: format!(
                "blob (more bytes than the descriptor size, {} received)",
                progress.received
            ),
            expected: digest.to_string(),
            actual: "unknown: the body is longer than declared".to_owned(),
        }
    }
}

fn skip_prefix(mut chunk: Bytes, skip: &mut u64) -> Bytes {
    if *skip == 0 {
        return chunk;
    }
    let count = (*skip).min(chunk.len() as u64) as usize;
    *skip -= count as u64;
    chunk.split_off(count)
}

/// Extracts the crate error from an error returned by [`BlobReader`].
pub fn reader_error(error: &io::Error) -> Option<&Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_prefix_spans_chunks() {
        let mut skip = 5;
        assert!(skip_prefix(Bytes::from_static(b"abc"), &mut skip).is_empty());
        assert_eq!(
            skip_prefix(Bytes::from_static(b"defgh"), &mut skip),
            Bytes::from_static(b"fgh")
        );
        assert_eq!(skip, 0);
    }

    #[test]
    fn reader_returns_chunks_then_end() {
        let (sender, receiver) = mpsc::channel(4);
        sender.try_send(Ok(Bytes::from_static(b"hello "))).unwrap();
        sender.try_send(Ok(Bytes::from_static(b"world"))).unwrap();
        drop(sender);
        let mut reader = BlobReader {
            receiver,
            current: Bytes::new(),
            finished: false,
        };
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello world");
    }
}
