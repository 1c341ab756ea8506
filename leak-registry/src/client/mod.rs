//! The registry client: configuration, shared state and request counters.

mod retry;
mod transport;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use url::Url;

use crate::auth::{Auth, Credential, DockerConfig};
use crate::error::{Error, Result};
use crate::manifest::ManifestCache;

pub use retry::RetryPolicy;
pub(crate) use transport::{Reply, Request};

/// Default number of requests in flight to one registry.
const DEFAULT_MAX_CONCURRENCY: usize = 8;

/// Default `n` for catalog and tag-list pages.
const DEFAULT_PAGE_SIZE: usize = 1000;
/// Default maximum number of pages in one catalog or tag listing.
const DEFAULT_MAX_PAGES: usize = 100_000;

/// Builder for [`RegistryClient`].
///
/// `registry` is a host with optional port (`127.0.0.1:5000`), or a URL
/// with `https://`, or with `http://` when the registry is marked insecure.
#[derive(Debug)]
pub struct ClientBuilder {
    registry: String,
    insecure: bool,
    credential: Option<Credential>,
    docker_config: Option<DockerConfig>,
    retry: RetryPolicy,
    max_concurrency: usize,
    page_size: usize,
    max_pages: usize,
    timeout: Duration,
}

/// An OCI distribution client for one registry.
///
/// Cloning is cheap and shares the token cache, the manifest cache, the
/// concurrency limit and the request counters.
#[derive(Clone, Debug)]
pub struct RegistryClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) registry: String,
    pub(crate) base: Url,
    pub(crate) insecure: bool,
    pub(crate) http: reqwest::Client,
    pub(crate) auth: Auth,
    pub(crate) retry: RetryPolicy,
    pub(crate) limit: Arc<Semaphore>,
    pub(crate) page_size: usize,
    pub(crate) max_pages: usize,
    pub(crate) stats: Stats,
    pub(crate) manifests: ManifestCache,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RegistryClient")
            .field("registry", &self.registry)
            .field("base", &self.base.as_str())
            .field("insecure", &self.insecure)
            .field("auth", &self.auth)
            .field("retry", &self.retry)
            .field("page_size", &self.page_size)
            .field("max_pages", &self.max_pages)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Starts a builder for `registry`.
    pub fn new(registry: impl Into<String>) -> Self {
        ClientBuilder {
            registry: registry.into(),
            insecure: false,
            credential: None,
            docker_config: None,
            retry: RetryPolicy::default(),
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            page_size: DEFAULT_PAGE_SIZE,
            max_pages: DEFAULT_MAX_PAGES,
            timeout: Duration::from_secs(60),
        }
    }

    /// Allows plain `http://` for this registry; without it only `https://` is used.
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Uses these credentials; they take precedence over a docker config.
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Looks the registry's credentials up in this docker config at build time.
    pub fn with_docker_config(mut self, config: DockerConfig) -> Self {
        self.docker_config = Some(config);
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the maximum number of requests in flight to this registry (default 8).
    pub fn with_max_concurrency(mut self, requests: usize) -> Self {
        self.max_concurrency = requests;
        self
    }

    /// Sets `n` for catalog and tag-list pages (default 1000).
    pub fn with_page_size(mut self, entries: usize) -> Self {
        self.page_size = entries;
        self
    }

    /// Sets the maximum number of pages one catalog or tag listing may take
    /// (default 100,000). A registry that sends more fails the listing with
    /// [`Error::InvalidLink`](crate::Error::InvalidLink) instead of paging forever.
    pub fn with_max_pages(mut self, pages: usize) -> Self {
        self.max_pages = pages;
        self
    }

    /// Sets the connect and read timeout of each request (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::InsecureNotAllowed`] for `http://` without [`with_insecure`](Self::with_insecure),
    /// [`Error::InvalidConfig`] for an unusable address, a zero concurrency or page size,
    /// and the docker-config errors of [`DockerConfig::credential_for`].
    pub fn build(self) -> Result<RegistryClient> {
        let (registry, base) = parse_registry(&self.registry, self.insecure)?;
        if self.max_concurrency == 0 {
            return Err(invalid_config("max concurrency must be at least 1"));
        }
        if self.page_size == 0 {
            return Err(invalid_config("page size must be at least 1"));
        }
        let credential = match (self.credential, &self.docker_config) {
            (Some(credential), _) => credential,
            (None, Some(config)) => config.credential_for(&registry)?,
            (None, None) => Credential::Anonymous,
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.timeout)
            .read_timeout(self.timeout)
            .user_agent(concat!("leak-registry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| invalid_config(&format!("HTTP client: {error}")))?;
        let inner = Inner {
            auth: Auth::new(&registry, credential, self.insecure),
            registry,
            base,
            insecure: self.insecure,
            http,
            retry: self.retry,
            limit: Arc::new(Semaphore::new(self.max_concurrency)),
            page_size: self.page_size,
            max_pages: self.max_pages,
            stats: Stats::default(),
            manifests: ManifestCache::default(),
        };
        Ok(RegistryClient {
            inner: Arc::new(inner),
        })
    }
}

impl RegistryClient {
    /// Starts a [`ClientBuilder`].
    pub fn builder(registry: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(registry)
    }

    /// The registry host, with port when one was given.
    pub fn registry(&self) -> &str {
        &self.inner.registry
    }

    /// Request and byte counters since the client was built.
    pub fn stats(&self) -> RequestStats {
        self.inner.stats.snapshot()
    }

    /// Checks that `/v2/` responds, authenticating when the registry requests it.
    ///
    /// # Errors
    ///
    /// [`Error::AccessDenied`] when the credentials are rejected, and the
    /// transport errors of every request.
    pub async fn ping(&self) -> Result<()> {
        let request = Request::get(self.url("/v2/")?, "GET /v2/", Vec::new());
        let reply = self.execute(&request).await?;
        self.expect_success(&request, reply).await.map(drop)
    }

    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.inner
            .base
            .join(path)
            .map_err(|error| invalid_config(&format!("cannot build URL for {path}: {error}")))
    }
}

/// Counters shared by every request of one client.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    requests: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
}

/// A snapshot of a client's request counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RequestStats {
    /// HTTP requests sent, token requests, redirects and retries included.
    pub requests: u64,
    /// Response body bytes received.
    pub bytes: u64,
    /// Requests that were sent again after a retryable failure.
    pub retries: u64,
}

impl Stats {
    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RequestStats {
        RequestStats {
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// Returns true when the URL's host is a link-local address, such as a cloud
/// metadata endpoint; the client never sends requests there.
pub(crate) fn is_link_local(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(address)) => IpAddr::V4(address).is_link_local_addr(),
        Some(url::Host::Ipv6(address)) => IpAddr::V6(address).is_link_local_addr(),
        _ => false,
    }
}

trait LinkLocal {
    fn is_link_local_addr(&self) -> bool;
}

impl LinkLocal for IpAddr {
    fn is_link_local_addr(&self) -> bool {
        match self {
            IpAddr::V4(address) => address.is_link_local(),
            IpAddr::V6(address) => (address.segments()[0] & 0xffc0) == 0xfe80,
        }
    }
}

fn parse_registry(text: &str, insecure: bool) -> Result<(String, Url)> {
    let trimmed = text.trim().trim_end_matches('/');
    let (scheme, host) = match trimmed.split_once("://") {
        Some((scheme, host)) => (scheme.to_ascii_lowercase(), host),
        None if insecure => ("http".to_owned(), trimmed),
        None => ("https".to_owned(), trimmed),
    };
    if scheme == "http" && !insecure {
        return Err(Error::InsecureNotAllowed {
            registry: host.to_owned(),
        });
    }
    if scheme != "http" && scheme != "https" {
        return Err(invalid_config(&format!(
            "registry {text:?} must use https:// (or http:// when insecure)"
        )));
    }
    if host.is_empty() || host.contains('/') {
        return Err(invalid_config(&format!(
            "registry {text:?} must be a host with optional port, without a path"
        )));
    }
    let base = Url::parse(&format!("{scheme}://{host}/"))
        .map_err(|error| invalid_config(&format!("registry {text:?}: {error}")))?;
    if is_link_local(&base) {
        return Err(invalid_config(&format!(
            "registry {text:?} is a link-local address"
        )));
    }
    Ok((host.to_owned(), base))
}

fn invalid_config(reason: &str) -> Error {
    Error::InvalidConfig {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_requires_insecure() {
        let error = ClientBuilder::new("http://127.0.0.1:5000")
            .build()
            .unwrap_err();
        assert!(matches!(error, Error::InsecureNotAllowed { .. }));
    }

    #[test]
    fn insecure_host_uses_http() {
        let client = ClientBuilder::new("127.0.0.1:5000")
            .with_insecure(true)
            .build()
            .unwrap();
        assert_eq!(client.inner.base.as_str(), "http://127.0.0.1:5000/");
    }

    #[test]
    fn secure_host_uses_https() {
        let client = ClientBuilder::new("registry.example").build().unwrap();
        assert_eq!(client.inner.base.as_str(), "https://registry.example/");
    }

    #[test]
    fn rejects_metadata_address() {
        assert!(
            ClientBuilder::new("169.254.169.254")
                .with_insecure(true)
                .build()
                .is_err()
        );
    }

    #[test]
    fn rejects_zero_concurrency() {
        let error = ClientBuilder::new("127.0.0.1:1")
            .with_max_concurrency(0)
            .build()
            .unwrap_err();
        assert!(matches!(error, Error::InvalidConfig { .. }));
    }

    #[test]
    fn debug_hides_credentials() {
        let client = ClientBuilder::new("127.0.0.1:1")
            .with_insecure(true)
            .with_credential(Credential::basic("user", "sentinel-pass-789"))
            .build()
            .unwrap();
        assert!(!format!("{client:?}").contains("sentinel-pass-789"));
    }
}
