//! Manifests: fetching with the full `Accept` list, digest verification,
//! the cache by digest, and walking indexes to every platform.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest, Platform};
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::auth::Scope;
use crate::client::{RegistryClient, Request};
use crate::digest::{digest_like, parse_digest, sha256_digest};
use crate::error::{Error, Result};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` header of every manifest request. Without it distribution
/// converts manifests to schema 1 and returns 404 for indexes.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests larger than this are rejected; the distribution limit is 4 MiB.
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Index nesting followed before giving up.
const MAX_INDEX_DEPTH: usize = 4;

/// Annotation buildkit puts on attestation manifests inside an index.
const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";

/// A manifest fetched and verified against its digest.
#[derive(Debug)]
pub struct Manifest {
    /// The digest of the exact bytes received.
    pub digest: Digest,
    /// The media type from the body, or from `Content-Type` when the body has none.
    pub media_type: String,
    /// The raw bytes, as needed to push the manifest elsewhere unchanged.
    pub bytes: Bytes,
    /// The parsed manifest.
    pub kind: ManifestKind,
}

/// An image manifest or an index.
#[derive(Debug)]
#[non_exhaustive]
pub enum ManifestKind {
    /// An OCI image manifest or Docker schema 2 manifest.
    Image(Box<ImageManifest>),
    /// An OCI index or Docker manifest list.
    Index(Box<ImageIndex>),
}

/// One image reached from a tag or digest, directly or through indexes.
#[derive(Clone, Debug)]
pub struct PlatformImage {
    /// The image manifest.
    pub manifest: Arc<Manifest>,
    /// `os/arch[/variant]` from the index entry, when reached through an index.
    pub platform: Option<String>,
    /// The index that listed this image, when there was one.
    pub index_digest: Option<Digest>,
}

/// Everything one reference leads to.
#[derive(Clone, Debug)]
pub struct ResolvedImages {
    /// The digest the reference points at (an image or an index).
    pub root_digest: Digest,
    /// Every image manifest reached, one per platform.
    pub images: Vec<PlatformImage>,
    /// Attestation manifests skipped inside indexes.
    pub attestations_skipped: usize,
}

/// Manifests cached by digest, shared by all repositories of one client.
#[derive(Debug, Default)]
pub(crate) struct ManifestCache {
    entries: Mutex<HashMap<String, Arc<Manifest>>>,
}

impl ManifestCache {
    fn get(&self, digest: &str) -> Option<Arc<Manifest>> {
        self.lock().get(digest).cloned()
    }

    fn insert(&self, manifest: Arc<Manifest>) {
        self.lock().insert(manifest.digest.to_string(), manifest);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Manifest>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl RegistryClient {
    /// Fetches a manifest by tag or digest and verifies its bytes.
    ///
    /// A digest reference is checked against the hash of the body; a tag is
    /// checked against `Docker-Content-Digest`, or gets the sha256 of the body
    /// when that header is missing. Results are cached by digest, so a digest
    /// reference seen before costs no request.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::DigestMismatch`], [`Error::InvalidManifest`]
    /// for schema 1 or unparseable bodies, and the transport errors.
    pub async fn manifest(&self, repository: &str, reference: &str) -> Result<Arc<Manifest>> {
        let requested = match reference.contains(':') {
            true => Some(parse_digest(reference)?),
            false => None,
        };
        if let Some(cached) = requested
            .as_ref()
            .and_then(|d| self.inner.manifests.get(d.as_ref()))
        {
            return Ok(cached);
        }
        let request = self.manifest_request(Method::GET, repository, reference);
        let reply = self.execute(&request).await?;
        let reply = self.expect_success(&request, reply).await?;
        let header_digest = reply.header_str("docker-content-digest").map(str::to_owned);
        let content_type = reply.header_str("content-type").map(str::to_owned);
        if reply_too_large(reply.header_str("content-length")) {
            return Err(self.invalid_manifest(repository, reference, "larger than 4 MiB"));
        }
        let bytes = match reply.bytes(&request.operation, MAX_MANIFEST_BYTES).await {
            Err(Error::ResponseTooLarge { .. }) => {
                return Err(self.invalid_manifest(repository, reference, "larger than 4 MiB"));
            }
            other => other?,
        };
        let digest =
            self.verify_manifest(repository, requested, header_digest.as_deref(), &bytes)?;
        let manifest =
            Arc::new(self.parse_manifest(repository, reference, digest, content_type, bytes)?);
        self.inner.manifests.insert(manifest.clone());
        Ok(manifest)
    }

    /// Returns the digest a tag points at, with a HEAD request; falls back to
    /// a GET and hashing the body when `Docker-Content-Digest` is missing.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown tag, and the errors of [`manifest`](Self::manifest).
    pub async fn manifest_digest(&self, repository: &str, reference: &str) -> Result<Digest> {
        let request = self.manifest_request(Method::HEAD, repository, reference);
        let reply = self.execute(&request).await?;
        let reply = self.expect_success(&request, reply).await?;
        match reply.header_str("docker-content-digest").map(parse_digest) {
            Some(Ok(digest)) => Ok(digest),
            _ => Ok(self.manifest(repository, reference).await?.digest.clone()),
        }
    }

    /// Resolves a tag or digest to every image it carries: the image itself,
    /// or each platform of an index (nested indexes included). Attestation
    /// manifests are skipped and counted.
    ///
    /// # Errors
    ///
    /// The errors of [`manifest`](Self::manifest), and
    /// [`Error::InvalidManifest`] for indexes nested too deep.
    pub async fn resolve_images(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<ResolvedImages> {
        let root = self.manifest(repository, reference).await?;
        let mut resolved = ResolvedImages {
            root_digest: root.digest.clone(),
            images: Vec::new(),
            attestations_skipped: 0,
        };
        let mut pending = vec![(root, None::<String>, None::<Digest>, 0usize)];
        while let Some((manifest, platform, index_digest, depth)) = pending.pop() {
            let index = match &manifest.kind {
                ManifestKind::Image(_) => {
                    resolved.images.push(PlatformImage {
                        manifest,
                        platform,
                        index_digest,
                    });
                    continue;
                }
                ManifestKind::Index(index) => index,
            };
            if depth >= MAX_INDEX_DEPTH {
                return Err(self.invalid_manifest(
                    repository,
                    manifest.digest.as_ref(),
                    "indexes nested too deep",
                ));
            }
            for entry in index.manifests().iter().rev() {
                if is_attestation(entry) {
                    resolved.attestations_skipped += 1;
                    tracing::debug!(registry = %self.registry(), repository, digest = %entry.digest(), "skipping attestation manifest");
                    continue;
                }
                let child = self.manifest(repository, entry.digest().as_ref()).await?;
                let child_platform = entry
                    .platform()
                    .as_ref()
                    .map(platform_name)
                    .or_else(|| platform.clone());
                pending.push((
                    child,
                    child_platform,
                    Some(manifest.digest.clone()),
                    depth + 1,
                ));
            }
        }
        Ok(resolved)
    }

    pub(crate) fn manifest_request(
        &self,
        method: Method,
        repository: &str,
        reference: &str,
    ) -> Request {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let operation = format!("{method} manifest {repository}:{reference}");
        // The path was validated when the repository and reference were parsed.
        let url = url.unwrap_or_else(|_| self.inner.base.clone());
        Request::get(url, operation, vec![Scope::pull(repository)])
            .with_method(method, true)
            .with_header(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT))
            .with_target(repository, format!("manifest {reference}"))
    }

    fn verify_manifest(
        &self,
        repository: &str,
        requested: Option<Digest>,
        header: Option<&str>,
        bytes: &[u8],
    ) -> Result<Digest> {
        let expected = match (requested, header) {
            (Some(requested), _) => requested,
            (None, Some(header)) => parse_digest(header)?,
            (None, None) => {
                tracing::debug!(registry = %self.registry(), repository, "no Docker-Content-Digest header; hashing the manifest body");
                return sha256_digest(bytes);
            }
        };
        let actual = digest_like(&expected, bytes);
        if actual != expected.as_ref() {
            return Err(Error::DigestMismatch {
                registry: self.registry().to_owned(),
                repository: repository.to_owned(),
                what: "manifest".to_owned(),
                expected: expected.to_string(),
                actual,
            });
        }
        Ok(expected)
    }

    fn parse_manifest(
        &self,
        repository: &str,
        reference: &str,
        digest: Digest,
        content_type: Option<String>,
        bytes: Bytes,
    ) -> Result<Manifest> {
        let invalid = |reason: String| self.invalid_manifest(repository, reference, &reason);
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|error| invalid(format!("not JSON: {error}")))?;
        let media_type = value
            .get("mediaType")
            .and_then(|value| value.as_str())
            .map(str::to_owned)
            .or(content_type.map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            }))
            .unwrap_or_default();
        if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
            return Err(invalid(
                "Docker schema 1 manifests are not supported".to_owned(),
            ));
        }
        let is_index = media_type == OCI_INDEX
            || media_type == DOCKER_LIST
            || (value.get("manifests").is_some() && value.get("layers").is_none());
        let kind = if is_index {
            ManifestKind::Index(
                serde_json::from_value(value)
                    .map_err(|error| invalid(format!("invalid index: {error}")))?,
            )
        } else {
            ManifestKind::Image(
                serde_json::from_value(value)
                    .map_err(|error| invalid(format!("invalid image manifest: {error}")))?,
            )
        };
        Ok(Manifest {
            digest,
            media_type,
            bytes,
            kind,
        })
    }

    fn invalid_manifest(&self, repository: &str, reference: &str, reason: &str) -> Error {
        Error::InvalidManifest {
            registry: self.registry().to_owned(),
            repository: repository.to_owned(),
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

fn reply_too_large(content_length: Option<&str>) -> bool {
    content_length
        .and_then(|value| value.parse::<usize>().ok())
        .is_some_and(|length| length > MAX_MANIFEST_BYTES)
}

/// Returns true for attestation manifests (buildkit provenance and SBOMs)
/// inside an index: annotated as such, or listed with platform `unknown/unknown`.
pub(crate) fn is_attestation(entry: &Descriptor) -> bool {
    let annotated = entry
        .annotations()
        .as_ref()
        .and_then(|annotations| annotations.get(REFERENCE_TYPE_ANNOTATION))
        .is_some_and(|value| value == "attestation-manifest");
    let unknown_platform = entry.platform().as_ref().is_some_and(|platform| {
        platform.os().to_string() == "unknown" && platform.architecture().to_string() == "unknown"
    });
    annotated || unknown_platform
}

/// Formats a platform as `os/arch[/variant]`.
pub fn platform_name(platform: &Platform) -> String {
    let mut name = format!("{}/{}", platform.os(), platform.architecture());
    if let Some(variant) = platform.variant() {
        name.push('/');
        name.push_str(variant);
    }
    name
}

/// Returns the status that means "deletion is disabled" on registries.
pub(crate) fn is_deletion_disabled(status: StatusCode) -> bool {
    status == StatusCode::BAD_REQUEST || status == StatusCode::METHOD_NOT_ALLOWED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attestation_by_annotation() {
        let entry: Descriptor = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1,"annotations":{"vnd.docker.reference.type":"attestation-manifest"}}"#,
        )
        .unwrap();
        assert!(is_attestation(&entry));
    }

    #[test]
    fn attestation_by_unknown_platform() {
        let entry: Descriptor = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1,"platform":{"os":"unknown","architecture":"unknown"}}"#,
        )
        .unwrap();
        assert!(is_attestation(&entry));
    }

    #[test]
    fn platform_with_variant() {
        let platform: Platform =
            serde_json::from_str(r#"{"os":"linux","architecture":"arm","variant":"v7"}"#).unwrap();
        assert_eq!(platform_name(&platform), "linux/arm/v7");
    }
}
