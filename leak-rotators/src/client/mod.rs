//! The HTTP layer shared by the built-in rotators: timeouts, bounded
//! response bodies, and retry with exponential backoff for idempotent calls
//! only.
//!
//! Creating a key is not idempotent: a create whose response was lost may
//! still have created a key, and a blind retry would create a second one (and
//! hit AWS's two-key limit). Such calls are sent with
//! [`Idempotency::NotIdempotent`] and are retried only when the connection
//! was never made, because then the request cannot have arrived.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Maximum response body the client reads; longer bodies are cut.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Whether a request may be sent twice with the same effect as once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, updates to a fixed state, deletes: retried on transient failures.
    Idempotent,
    /// Creates: retried only when the connection was never made.
    NotIdempotent,
}

/// When to retry an idempotent request.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Maximum attempts, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; it doubles for each further attempt.
    pub initial_backoff: Duration,
    /// Upper bound of the delay between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Returns the delay before attempt `attempt` (two or more).
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(2));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A buffered HTTP response.
#[derive(Clone, Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header, lower-cased.
    pub content_type: Option<String>,
    /// Body, at most 1 MiB.
    pub body: Vec<u8>,
}

impl Response {
    /// Returns true for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Returns true when the body is an HTML page, which never proves
    /// anything about a credential.
    ///
    /// The body decides: some servers (moto among them) label XML error
    /// documents `text/html`. The content type decides only for a body that
    /// does not start with markup.
    pub fn is_html(&self) -> bool {
        let start = String::from_utf8_lossy(&self.body[..self.body.len().min(64)]).to_lowercase();
        let start = start.trim_start();
        if start.starts_with("<!doctype html") || start.starts_with("<html") {
            return true;
        }
        if start.starts_with('<') {
            return false;
        }
        self.content_type
            .as_deref()
            .is_some_and(|c| c.contains("text/html"))
    }

    /// Returns the body as text, replacing invalid UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Parses the body as JSON.
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedResponse`] when the body is not the expected JSON.
    pub fn json<T: DeserializeOwned>(&self, rotator: &str, operation: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::UnexpectedResponse {
            rotator: rotator.to_owned(),
            operation: operation.to_owned(),
            reason: format!("invalid JSON body: {e}"),
        })
    }
}

/// An HTTP client bound to one rotator, for logs and errors.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    retry: RetryPolicy,
    rotator: String,
}

impl HttpClient {
    /// Builds a client with a per-request timeout and no redirects (a
    /// redirect could carry an auth header to another host).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the TLS backend cannot be set up.
    pub fn new(rotator: &str, timeout: Duration, retry: RetryPolicy) -> Result<Self> {
        let inner = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::config("http_client", e.to_string()))?;
        Ok(HttpClient {
            inner,
            retry,
            rotator: rotator.to_owned(),
        })
    }

    /// Returns the underlying `reqwest` client for building requests.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner
    }

    /// Returns the rotator name this client reports in errors.
    pub fn rotator(&self) -> &str {
        &self.rotator
    }

    /// Sends a request built by `build` (called again for each attempt, so
    /// signatures and timestamps are fresh), retrying as `idempotency` allows.
    ///
    /// Statuses 429, 500, 502, 503 and 504 are retried for idempotent calls;
    /// the last response is returned whatever its status.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when no response arrived after the last attempt.
    pub async fn send(
        &self,
        operation: &str,
        idempotency: Idempotency,
        build: impl Fn(&reqwest::Client) -> Result<reqwest::RequestBuilder>,
    ) -> Result<Response> {
        let mut attempt = 1;
        loop {
            let request = build(&self.inner)?
                .build()
                .map_err(|e| self.transport(operation, "", e))?;
            let host = request.url().host_str().unwrap_or_default().to_owned();
            let outcome = self.inner.execute(request).await;
            let retryable = match &outcome {
                Ok(response) => {
                    idempotency == Idempotency::Idempotent
                        && matches!(response.status().as_u16(), 429 | 500 | 502 | 503 | 504)
                }
                Err(e) => {
                    e.is_connect() || (idempotency == Idempotency::Idempotent && e.is_timeout())
                }
            };
            if !retryable || attempt >= self.retry.max_attempts {
                return match outcome {
                    Ok(response) => read_response(response)
                        .await
                        .map_err(|e| self.transport(operation, &host, e)),
                    Err(e) => Err(self.transport(operation, &host, e)),
                };
            }

            attempt += 1;
            let delay = self.retry.backoff(attempt);
            let cause = match &outcome {
                Ok(response) => format!("HTTP {}", response.status().as_u16()),
                Err(e) => e.without_url_string(),
            };
            tracing::info!(rotator = %self.rotator, operation, %host, attempt, delay_ms = delay.as_millis() as u64, %cause, "retrying request");
            tokio::time::sleep(delay).await;
        }
    }

    fn transport(&self, operation: &str, host: &str, source: reqwest::Error) -> Error {
        Error::Transport {
            rotator: self.rotator.clone(),
            operation: operation.to_owned(),
            host: host.to_owned(),
            source: source.without_url(),
        }
    }
}

/// Formats a `reqwest` error without its URL.
trait WithoutUrlString {
    fn without_url_string(&self) -> String;
}

impl WithoutUrlString for reqwest::Error {
    fn without_url_string(&self) -> String {
        let kind = if self.is_timeout() {
            "timed out"
        } else if self.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        kind.to_owned()
    }
}

/// Reads a response body, cut at [`MAX_BODY_BYTES`].
async fn read_response(
    mut response: reqwest::Response,
) -> std::result::Result<Response, reqwest::Error> {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_lowercase);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_BODY_BYTES {
            break;
        }
    }
    Ok(Response {
        status,
        content_type,
        body,
    })
}

/// Cuts provider text for an error message.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        assert_eq!(policy.backoff(2), Duration::from_millis(100));
        assert_eq!(policy.backoff(3), Duration::from_millis(200));
        assert_eq!(policy.backoff(4), Duration::from_millis(350));
    }

    #[test]
    fn xml_labelled_html_is_not_html() {
        let response = Response {
            status: 403,
            content_type: Some("text/html; charset=utf-8".to_owned()),
            body: b"<ErrorResponse><Error><Code>X</Code></Error></ErrorResponse>".to_vec(),
        };
        assert!(!response.is_html());
    }

    #[test]
    fn html_detected_by_body_start() {
        let response = Response {
            status: 200,
            content_type: None,
            body: b"  <!DOCTYPE html><html>".to_vec(),
        };
        assert!(response.is_html());
    }
}
