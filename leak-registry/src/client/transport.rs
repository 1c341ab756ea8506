//! Sending one request: authorization, redirects, retries and the
//! concurrency limit.

use bytes::Bytes;
use reqwest::header::{
    AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use tokio::sync::OwnedSemaphorePermit;
use url::Url;

use super::RegistryClient;
use super::retry::{is_retryable_error, is_retryable_status, retry_after};
use crate::auth::{Scope, TokenFetch};
use crate::error::{Error, Result};

/// Redirects followed for one request before giving up.
const MAX_REDIRECTS: usize = 5;

/// Error bodies longer than this are not read for an error code.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// One request to the registry, kept so it can be sent again.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    pub(crate) scopes: Vec<Scope>,
    /// The operation name for logs and errors, such as `GET manifest app:1.0`.
    pub(crate) operation: String,
    /// Whether sending it twice has the same effect as sending it once.
    pub(crate) idempotent: bool,
    /// Repository and object named in a 404 error.
    pub(crate) target: Option<(String, String)>,
}

impl Request {
    pub(crate) fn get(url: Url, operation: impl Into<String>, scopes: Vec<Scope>) -> Self {
        Request {
            method: Method::GET,
            url,
            headers: HeaderMap::new(),
            body: None,
            scopes,
            operation: operation.into(),
            idempotent: true,
            target: None,
        }
    }

    pub(crate) fn with_method(mut self, method: Method, idempotent: bool) -> Self {
        self.method = method;
        self.idempotent = idempotent;
        self
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    pub(crate) fn with_body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn with_target(mut self, repository: &str, what: impl Into<String>) -> Self {
        self.target = Some((repository.to_owned(), what.into()));
        self
    }
}

/// A response, with the concurrency permit held until its body is read.
#[derive(Debug)]
pub(crate) struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    url: Url,
    body: ReplyBody,
    client: RegistryClient,
    _permit: Option<OwnedSemaphorePermit>,
}

#[derive(Debug)]
enum ReplyBody {
    Streaming(reqwest::Response),
    Buffered(Option<Bytes>),
}

impl Reply {
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Returns the URL that produced this response, after redirects.
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Reads the next body chunk, counting its bytes.
    pub(crate) async fn chunk(&mut self) -> std::result::Result<Option<Bytes>, reqwest::Error> {
        let chunk = match &mut self.body {
            ReplyBody::Streaming(response) => response.chunk().await?,
            ReplyBody::Buffered(bytes) => bytes.take(),
        };
        if let Some(chunk) = &chunk {
            self.client.inner.stats.count_bytes(chunk.len() as u64);
        }
        Ok(chunk)
    }

    /// Reads the whole body, failing with [`Error::ResponseTooLarge`] as
    /// soon as it exceeds `limit` bytes, so that a body without (or with a
    /// false) `Content-Length` cannot grow memory without bound.
    pub(crate) async fn bytes(mut self, operation: &str, limit: usize) -> Result<Bytes> {
        let mut body = Vec::new();
        loop {
            match self.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > limit => {
                    return Err(Error::ResponseTooLarge {
                        registry: self.client.inner.registry.clone(),
                        operation: operation.to_owned(),
                        limit,
                    });
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => return Ok(Bytes::from(body)),
                Err(error) => return Err(self.client.http_error(operation, error)),
            }
        }
    }

    /// Reads at most `limit` bytes of the body; for error bodies.
    async fn bytes_limited(&mut self, limit: usize) -> Bytes {
        let mut body = Vec::new();
        while body.len() < limit {
            match self.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        Bytes::from(body)
    }
}

impl RegistryClient {
    /// Sends `request`, retrying idempotent requests on 5xx, 408, 429 and
    /// connection errors, and returns the first final response.
    pub(crate) async fn execute(&self, request: &Request) -> Result<Reply> {
        let policy = &self.inner.retry;
        let mut attempt = 0;
        loop {
            let permit = self.acquire().await?;
            let outcome = self.send_authorized(request).await;
            let can_retry = request.idempotent && attempt < policy.max_retries();
            let wait = match outcome {
                Ok(mut reply) if can_retry && is_retryable_status(reply.status) => {
                    let wait = self.retry_wait(request, &reply.headers, attempt)?;
                    tracing::info!(
                        registry = %self.inner.registry,
                        operation = %request.operation,
                        status = reply.status.as_u16(),
                        attempt = attempt + 1,
                        wait_ms = wait.as_millis() as u64,
                        "retrying request"
                    );
                    drop(reply.bytes_limited(MAX_ERROR_BODY).await);
                    wait
                }
                Ok(mut reply) => {
                    reply._permit = Some(permit);
                    return Ok(reply);
                }
                Err(Transport::Http(error)) if can_retry && is_retryable_error(&error) => {
                    let wait = policy.backoff(attempt);
                    tracing::info!(
                        registry = %self.inner.registry,
                        operation = %request.operation,
                        error = %error.without_url(),
                        attempt = attempt + 1,
                        wait_ms = wait.as_millis() as u64,
                        "retrying request after a connection error"
                    );
                    wait
                }
                Err(Transport::Http(error)) => {
                    return Err(self.http_error(&request.operation, error));
                }
                Err(Transport::Other(error)) => return Err(*error),
            };
            drop(permit);
            self.inner.stats.count_retry();
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Maps a non-success status to an error, or returns the reply.
    pub(crate) async fn expect_success(
        &self,
        request: &Request,
        mut reply: Reply,
    ) -> Result<Reply> {
        let status = reply.status;
        if status.is_success() {
            return Ok(reply);
        }
        let registry = self.inner.registry.clone();
        match (status, &request.target) {
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => Err(Error::AccessDenied {
                registry,
                operation: request.operation.clone(),
                status: status.as_u16(),
            }),
            (StatusCode::NOT_FOUND, Some((repository, what))) => Err(Error::NotFound {
                registry,
                repository: repository.clone(),
                what: what.clone(),
            }),
            _ => {
                let body = reply.bytes_limited(MAX_ERROR_BODY).await;
                Err(Error::UnexpectedStatus {
                    registry,
                    operation: request.operation.clone(),
                    status: status.as_u16(),
                    detail: error_code(&body)
                        .map(|code| format!(": {code}"))
                        .unwrap_or_default(),
                })
            }
        }
    }

    pub(crate) fn http_error(&self, operation: &str, error: reqwest::Error) -> Error {
        Error::Http {
            registry: self.inner.registry.clone(),
            operation: operation.to_owned(),
            source: error.without_url(),
        }
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit> {
        self.inner
            .limit
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Task {
                what: format!("requests to {}", self.inner.registry),
                reason: "the concurrency limit was closed".to_owned(),
            })
    }

    fn retry_wait(
        &self,
        request: &Request,
        headers: &HeaderMap,
        attempt: u32,
    ) -> Result<std::time::Duration> {
        let policy = &self.inner.retry;
        let Some(wait) = retry_after(headers) else {
            return Ok(policy.backoff(attempt));
        };
        if wait > policy.max_retry_after() {
            return Err(Error::RateLimited {
                registry: self.inner.registry.clone(),
                operation: request.operation.clone(),
                retry_after: wait,
                max_wait: policy.max_retry_after(),
            });
        }
        Ok(wait)
    }

    /// Sends once with authorization, fetching a new token once when the
    /// registry returns 401, or 403/400 with a body stating that the token expired.
    async fn send_authorized(&self, request: &Request) -> std::result::Result<Reply, Transport> {
        let inner = &self.inner;
        let mut refreshed = false;
        loop {
            let authorization = inner
                .auth
                .authorization(&inner.http, &inner.stats, &request.scopes)
                .await?;
            let sent = authorization.is_some();
            let header = authorization.as_ref().map(crate::auth::sensitive_header);
            let mut reply = self.send_following_redirects(request, header).await?;
            if refreshed {
                return Ok(reply);
            }
            match reply.status {
                StatusCode::UNAUTHORIZED => {
                    let challenge = reply
                        .header_str(WWW_AUTHENTICATE.as_str())
                        .map(str::to_owned);
                    let decision =
                        inner
                            .auth
                            .on_unauthorized(challenge.as_deref(), &request.scopes, sent);
                    if decision == TokenFetch::GiveUp {
                        return Ok(reply);
                    }
                }
                StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST if sent => {
                    let body = reply.bytes_limited(MAX_ERROR_BODY).await;
                    if !says_token_expired(&body) || !inner.auth.invalidate(&request.scopes) {
                        reply.body = ReplyBody::Buffered(Some(body));
                        return Ok(reply);
                    }
                    tracing::info!(
                        registry = %inner.registry,
                        operation = %request.operation,
                        status = reply.status.as_u16(),
                        "token expired; fetching a new one"
                    );
                }
                _ => return Ok(reply),
            }
            refreshed = true;
        }
    }

    /// Sends the request and follows redirects by hand, so the
    /// `Authorization` header goes only to the registry's own origin.
    async fn send_following_redirects(
        &self,
        request: &Request,
        authorization: Option<HeaderValue>,
    ) -> std::result::Result<Reply, Transport> {
        let mut method = request.method.clone();
        let mut body = request.body.clone();
        let mut url = request.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let same_origin = url.origin() == self.inner.base.origin();
            let mut builder = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .headers(request.headers.clone());
            if let (true, Some(value)) = (same_origin, &authorization) {
                builder = builder.header(AUTHORIZATION, value.clone());
            }
            if let Some(body) = &body {
                builder = builder.body(body.clone());
            }
            self.inner.stats.count_request();
            let response = builder.send().await.map_err(Transport::Http)?;
            let status = response.status();
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                return Ok(self.reply(response, url));
            }
            let next = self.redirect_target(request, &url, response.headers())?;
            if status == StatusCode::SEE_OTHER {
                method = Method::GET;
                body = None;
            }
            tracing::debug!(registry = %self.inner.registry, operation = %request.operation, same_origin = next.origin() == self.inner.base.origin(), "following redirect");
            url = next;
        }
        Err(Transport::from(Error::InvalidRedirect {
            registry: self.inner.registry.clone(),
            operation: request.operation.clone(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        }))
    }

    fn redirect_target(
        &self,
        request: &Request,
        current: &Url,
        headers: &HeaderMap,
    ) -> std::result::Result<Url, Transport> {
        let invalid = |reason: &str| {
            Transport::from(Error::InvalidRedirect {
                registry: self.inner.registry.clone(),
                operation: request.operation.clone(),
                reason: reason.to_owned(),
            })
        };
        let location = headers
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| invalid("the redirect has no Location header"))?;
        let next = current
            .join(location)
            .map_err(|_| invalid("the Location header is not a valid URL"))?;
        match next.scheme() {
            "https" => {}
            "http" if self.inner.insecure => {}
            "http" => return Err(invalid("the redirect downgrades to plain http://")),
            _ => return Err(invalid("the redirect uses a scheme other than http(s)")),
        }
        if super::is_link_local(&next) {
            return Err(invalid("the redirect points at a link-local address"));
        }
        Ok(next)
    }

    fn reply(&self, response: reqwest::Response, url: Url) -> Reply {
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            url,
            body: ReplyBody::Streaming(response),
            client: self.clone(),
            _permit: None,
        }
    }
}

/// A failure inside one attempt: transport errors may be retried, others not.
enum Transport {
    Http(reqwest::Error),
    Other(Box<Error>),
}

impl From<Error> for Transport {
    fn from(error: Error) -> Self {
        Transport::Other(Box::new(error))
    }
}

/// Returns true when an error body states that the token expired. Some
/// registries reject an expired token with 403 or 400 instead of a 401 challenge.
fn says_token_expired(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    text.contains("token expired")
        || text.contains("token has expired")
        || text.contains("token is expired")
}

/// Extracts the first `errors[].code` of a distribution error body.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("errors")?.get(0)?.get("code")?.as_str()?;
    let printable = code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (printable && code.len() <= 64).then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_reads_first_code() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(error_code(body).as_deref(), Some("MANIFEST_UNKNOWN"));
    }

    #[test]
    fn error_code_rejects_odd_codes() {
        assert_eq!(error_code(br#"{"errors":[{"code":"a b"}]}"#), None);
        assert_eq!(error_code(b"not json"), None);
    }

    #[test]
    fn token_expired_messages() {
        assert!(says_token_expired(
            br#"{"errors":[{"message":"Token expired"}]}"#
        ));
        assert!(says_token_expired(b"the token has expired"));
        assert!(!says_token_expired(b"denied"));
    }
}
