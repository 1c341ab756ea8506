//! The error type of this crate.

use std::time::Duration;

/// Result alias with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from the registry client, the audit and the remediation steps.
///
/// No variant carries a password, token or other credential: registries are
/// named by host, and response bodies are never copied into an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry address or a reference could not be parsed.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text that was parsed.
        reference: String,
        /// The reason it is invalid.
        reason: String,
    },

    /// A builder was given an invalid or contradictory setting.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// The problem and how to fix it.
        reason: String,
    },

    /// A plain-HTTP address was given for a registry not marked insecure.
    #[error(
        "registry {registry} uses http:// but is not marked insecure; call with_insecure(true) (or pass --insecure) to allow plain HTTP"
    )]
    InsecureNotAllowed {
        /// The registry host.
        registry: String,
    },

    /// Sending a request failed after all retries.
    #[error("request to registry {registry} failed ({operation}): {source}")]
    Http {
        /// The registry host.
        registry: String,
        /// The operation, such as `GET manifest library/app:1.0`.
        operation: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The registry returned a status the operation cannot continue from.
    #[error("registry {registry} returned HTTP {status} for {operation}{detail}")]
    UnexpectedStatus {
        /// The registry host.
        registry: String,
        /// The operation, such as `GET tags library/app`.
        operation: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's error code, when the body carried one (for example `: MANIFEST_UNKNOWN`).
        detail: String,
    },

    /// The requested repository, tag, manifest or blob does not exist.
    #[error("{what} not found in repository {repository} on registry {registry}")]
    NotFound {
        /// The registry host.
        registry: String,
        /// The repository name.
        repository: String,
        /// The object looked up, such as `manifest sha256:...` or `tag 1.0`.
        what: String,
    },

    /// The registry rejected the credentials, or none were configured.
    #[error(
        "registry {registry} denied access for {operation} (HTTP {status}); check the credentials for this registry in the docker config or pass them to the client"
    )]
    AccessDenied {
        /// The registry host.
        registry: String,
        /// The operation that was denied.
        operation: String,
        /// The HTTP status (401 or 403).
        status: u16,
    },

    /// The token endpoint failed or returned no token.
    #[error("token endpoint {realm} for registry {registry} failed: {reason}")]
    TokenRequest {
        /// The registry host.
        registry: String,
        /// The token endpoint URL from the challenge.
        realm: String,
        /// The failure: a status or parse error, never the response body.
        reason: String,
    },

    /// The registry's `WWW-Authenticate` header could not be used.
    #[error("registry {registry} sent an unusable WWW-Authenticate challenge: {reason}")]
    InvalidChallenge {
        /// The registry host.
        registry: String,
        /// The reason it is invalid.
        reason: String,
    },

    /// The registry does not serve `/v2/_catalog`.
    #[error(
        "registry {registry} does not serve a catalog (HTTP {status}); name the repositories to audit instead"
    )]
    CatalogUnavailable {
        /// The registry host.
        registry: String,
        /// The HTTP status the catalog request returned.
        status: u16,
    },

    /// A `Link` header pointed at another origin or could not be parsed.
    #[error("registry {registry} sent an invalid Link header for {operation}: {reason}")]
    InvalidLink {
        /// The registry host.
        registry: String,
        /// The listing being paged.
        operation: String,
        /// The reason the link is invalid.
        reason: String,
    },

    /// A redirect could not be followed.
    #[error("registry {registry} redirected {operation} to an invalid target: {reason}")]
    InvalidRedirect {
        /// The registry host.
        registry: String,
        /// The operation that was redirected.
        operation: String,
        /// The reason the redirect was not followed.
        reason: String,
    },

    /// Content did not hash to the digest it was requested or served under.
    #[error(
        "digest mismatch for {what} in repository {repository} on registry {registry}: expected {expected}, got {actual}"
    )]
    DigestMismatch {
        /// The registry host.
        registry: String,
        /// The repository name.
        repository: String,
        /// The object fetched, such as `manifest` or `blob`.
        what: String,
        /// The digest that was expected.
        expected: String,
        /// The digest of the received bytes.
        actual: String,
    },

    /// A digest string is malformed or uses an unsupported algorithm.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The digest text.
        digest: String,
        /// The reason it is invalid.
        reason: String,
    },

    /// A manifest body could not be parsed.
    #[error(
        "invalid manifest {reference} in repository {repository} on registry {registry}: {reason}"
    )]
    InvalidManifest {
        /// The registry host.
        registry: String,
        /// The repository name.
        repository: String,
        /// The tag or digest.
        reference: String,
        /// The reason it is invalid.
        reason: String,
    },

    /// A response body was larger than the client reads for that request.
    #[error(
        "registry {registry} sent more than {limit} bytes for {operation}; the response was rejected"
    )]
    ResponseTooLarge {
        /// The registry host.
        registry: String,
        /// The request, such as `GET catalog`.
        operation: String,
        /// The maximum body size in bytes.
        limit: usize,
    },

    /// A blob stream ended early and could not be resumed.
    #[error(
        "blob {digest} in repository {repository} on registry {registry} was truncated at {received} of {expected} bytes after {attempts} attempts"
    )]
    TruncatedBlob {
        /// The registry host.
        registry: String,
        /// The repository name.
        repository: String,
        /// The blob digest.
        digest: String,
        /// Bytes received.
        received: u64,
        /// Bytes expected.
        expected: u64,
        /// Attempts made, resumes included.
        attempts: u32,
    },

    /// The registry asked to wait longer than the client's maximum.
    #[error(
        "registry {registry} rate-limited {operation} and asked to wait {retry_after:?}, longer than the maximum of {max_wait:?}"
    )]
    RateLimited {
        /// The registry host.
        registry: String,
        /// The operation.
        operation: String,
        /// The wait the registry asked for.
        retry_after: Duration,
        /// The configured maximum wait.
        max_wait: Duration,
    },

    /// DELETE returned 400 or 405.
    #[error(
        "deletion is not enabled on registry {registry} (HTTP {status} for DELETE {repository}@{digest}); enable storage deletion on the registry or use replace instead"
    )]
    DeletionDisabled {
        /// The registry host.
        registry: String,
        /// The repository name.
        repository: String,
        /// The manifest digest.
        digest: String,
        /// The HTTP status (400 or 405).
        status: u16,
    },

    /// The tags accepted by the caller differ from the tags the deletion removes.
    #[error(
        "deleting {repository}@{digest} on registry {registry} removes tags {current:?}, but the caller accepted {accepted:?}; plan the deletion again and accept the new list"
    )]
    SiblingTagsChanged {
        /// The registry host.
        registry: String,
        /// The repository name.
        repository: String,
        /// The manifest digest.
        digest: String,
        /// Tags the caller accepted.
        accepted: Vec<String>,
        /// Tags that point at the digest now.
        current: Vec<String>,
    },

    /// A docker credential helper failed.
    #[error("docker credential helper {helper} failed for registry {registry}: {reason}")]
    CredentialHelper {
        /// The helper program name, such as `docker-credential-pass`.
        helper: String,
        /// The registry host.
        registry: String,
        /// The failure: an exit status or parse error, never the helper output.
        reason: String,
    },

    /// The docker config file could not be read or parsed.
    #[error("invalid docker config {path}: {reason}")]
    DockerConfig {
        /// The config file path.
        path: String,
        /// The reason it is invalid.
        reason: String,
    },

    /// The leak-core scanner could not be built.
    #[error("cannot build the scanner: {source}")]
    Scanner {
        /// The scanner error.
        #[source]
        source: leak_core::ScanError,
    },

    /// Reading or writing the on-disk layer cache failed.
    #[error("layer cache {path}: {source}")]
    Cache {
        /// The cache file or directory.
        path: String,
        /// The I/O or parse error.
        #[source]
        source: std::io::Error,
    },

    /// A background task panicked or was cancelled.
    #[error("background task for {what} failed: {reason}")]
    Task {
        /// The work the task was doing.
        what: String,
        /// The join error.
        reason: String,
    },
}
