//! Pushing: blob existence checks, cross-repository mounts, monolithic
//! uploads and manifest PUTs.

use bytes::Bytes;
use oci_spec::image::Digest;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::auth::Scope;
use crate::client::{RegistryClient, Request};
use crate::digest::{parse_digest, sha256_digest};
use crate::error::{Error, Result};

/// The way a blob reached the target repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobTransfer {
    /// The repository already had it.
    Present,
    /// The registry linked it from another repository.
    Mounted,
    /// Its bytes were uploaded.
    Uploaded,
}

impl RegistryClient {
    /// Returns true when `repository` has the blob.
    ///
    /// # Errors
    ///
    /// Access and transport errors.
    pub async fn blob_exists(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"))?;
        let request = Request::get(
            url,
            format!("HEAD blob {repository}@{digest}"),
            vec![Scope::pull(repository)],
        )
        .with_method(Method::HEAD, true);
        let reply = self.execute(&request).await?;
        if reply.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        self.expect_success(&request, reply).await.map(|_| true)
    }

    /// Asks the registry to link a blob from `from` into `repository`.
    ///
    /// Returns false when the registry declined (it then opened an upload
    /// session, which is left to expire) and the caller must upload.
    ///
    /// # Errors
    ///
    /// Access and transport errors. The request is a POST and is not retried.
    pub async fn mount_blob(&self, repository: &str, from: &str, digest: &Digest) -> Result<bool> {
        let mut url = self.url(&format!("/v2/{repository}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_ref())
            .append_pair("from", from);
        let scopes = vec![Scope::push(repository), Scope::pull(from)];
        let request = Request::get(
            url,
            format!("mount blob {digest} from {from} into {repository}"),
            scopes,
        )
        .with_method(Method::POST, false)
        .with_header(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let reply = self.execute(&request).await?;
        if reply.status() == StatusCode::CREATED {
            return Ok(true);
        }
        self.expect_success(&request, reply).await.map(|_| false)
    }

    /// Uploads a blob in one PUT after opening an upload session.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRedirect`] for an upload location on another origin,
    /// access and transport errors. Neither request is retried.
    pub async fn upload_blob(
        &self,
        repository: &str,
        digest: &Digest,
        body: impl Into<Bytes>,
    ) -> Result<()> {
        let body = body.into();
        let location = self.start_upload(repository).await?;
        let mut url = location;
        url.query_pairs_mut().append_pair("digest", digest.as_ref());
        let request = Request::get(
            url,
            format!("PUT blob {repository}@{digest}"),
            vec![Scope::push(repository)],
        )
        .with_method(Method::PUT, false)
        .with_header(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )
        .with_body(body);
        let reply = self.execute(&request).await?;
        self.expect_success(&request, reply).await.map(drop)
    }

    /// Makes sure `repository` has the blob: present, mounted from `from`, or
    /// copied by downloading it from `from` and uploading it.
    ///
    /// # Errors
    ///
    /// The errors of the steps it takes.
    pub async fn ensure_blob(
        &self,
        repository: &str,
        from: &str,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<BlobTransfer> {
        if self.blob_exists(repository, digest).await? {
            return Ok(BlobTransfer::Present);
        }
        if from != repository && self.mount_blob(repository, from, digest).await? {
            return Ok(BlobTransfer::Mounted);
        }
        // NOTE: the copy keeps the whole blob in memory. Mounts avoid the copy
        // on registries that support them.
        let body = self.blob_bytes_unbounded(from, digest, size).await?;
        self.upload_blob(repository, digest, body).await?;
        Ok(BlobTransfer::Uploaded)
    }

    /// PUTs a manifest under a tag or its digest and returns the digest the
    /// registry stored.
    ///
    /// # Errors
    ///
    /// [`Error::DigestMismatch`] when the registry reports another digest,
    /// access and transport errors.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: impl Into<Bytes>,
    ) -> Result<Digest> {
        let body = body.into();
        let expected = sha256_digest(&body)?;
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"))?;
        let content_type = HeaderValue::from_str(media_type).map_err(|_| Error::InvalidConfig {
            reason: format!("media type {media_type:?} is not a valid header value"),
        })?;
        let request = Request::get(
            url,
            format!("PUT manifest {repository}:{reference}"),
            vec![Scope::push(repository)],
        )
        .with_method(Method::PUT, true)
        .with_header(CONTENT_TYPE, content_type)
        .with_body(body);
        let reply = self.execute(&request).await?;
        let reply = self.expect_success(&request, reply).await?;
        if let Some(Ok(stored)) = reply.header_str("docker-content-digest").map(parse_digest)
            && stored != expected
        {
            return Err(Error::DigestMismatch {
                registry: self.registry().to_owned(),
                repository: repository.to_owned(),
                what: "pushed manifest".to_owned(),
                expected: expected.to_string(),
                actual: stored.to_string(),
            });
        }
        Ok(expected)
    }

    async fn start_upload(&self, repository: &str) -> Result<Url> {
        let url = self.url(&format!("/v2/{repository}/blobs/uploads/"))?;
        let request = Request::get(
            url,
            format!("POST upload {repository}"),
            vec![Scope::push(repository)],
        )
        .with_method(Method::POST, false)
        .with_header(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let reply = self.execute(&request).await?;
        let reply = self.expect_success(&request, reply).await?;
        let location = reply
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                self.bad_upload_location(&request.operation, "the answer has no Location header")
            })?;
        let url = reply.url().join(location).map_err(|_| {
            self.bad_upload_location(&request.operation, "the Location header is not a URL")
        })?;
        if url.origin() != self.inner.base.origin() {
            return Err(self.bad_upload_location(
                &request.operation,
                "the upload location is on another origin",
            ));
        }
        Ok(url)
    }

    async fn blob_bytes_unbounded(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<Bytes> {
        use std::io::Read as _;
        let reader = self.blob_reader(repository, digest, size);
        let what = format!("copying blob {digest}");
        tokio::task::spawn_blocking(move || {
            let mut body = Vec::new();
            let mut reader = reader;
            reader.read_to_end(&mut body).map(|_| Bytes::from(body))
        })
        .await
        .map_err(|error| Error::Task {
            what: what.clone(),
            reason: error.to_string(),
        })?
        .map_err(|error| {
            match error.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(error)) => *error,
                _ => Error::Task {
                    what,
                    reason: "the blob stream failed".to_owned(),
                },
            }
        })
    }

    fn bad_upload_location(&self, operation: &str, reason: &str) -> Error {
        Error::InvalidRedirect {
            registry: self.registry().to_owned(),
            operation: operation.to_owned(),
            reason: reason.to_owned(),
        }
    }
}
