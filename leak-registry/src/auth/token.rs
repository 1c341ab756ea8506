//! Authorization headers per request: Basic, and bearer tokens fetched from
//! the challenge's realm and cached with their expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use leak_core::Secret;
use serde::Deserialize;
use url::Url;

use super::{Challenge, Credential, Scope};
use crate::client::Stats;
use crate::error::{Error, Result};

/// Token lifetime that the distribution token specification has clients
/// assume when `expires_in` is missing.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Tokens are refreshed this long before they expire, capped at a tenth of
/// their lifetime.
const REFRESH_MARGIN: Duration = Duration::from_secs(10);

/// Largest token response read; real ones are a few kilobytes, and a
/// realm that never ends its body must not grow memory without bound.
const MAX_TOKEN_RESPONSE_BYTES: usize = 1 << 20;

/// Reads a response body, or returns `None` once it exceeds `limit` bytes.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> std::result::Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Per-registry authentication state shared by all requests of one client.
pub(crate) struct Auth {
    registry: String,
    credential: Credential,
    insecure: bool,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, CachedToken>>,
}

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

/// The client's next step after a 401, 403 or 400.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenFetch {
    /// New credentials are available: send the request again.
    Retry,
    /// Nothing would change: report the denial.
    GiveUp,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Auth")
            .field("registry", &self.registry)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub(crate) fn new(registry: &str, credential: Credential, insecure: bool) -> Self {
        Auth {
            registry: registry.to_owned(),
            credential,
            insecure,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the `Authorization` value for a request needing `scopes`, fetching a token when
    /// the registry asked for bearer auth and no valid one is cached.
    pub(crate) async fn authorization(
        &self,
        http: &reqwest::Client,
        stats: &Stats,
        scopes: &[Scope],
    ) -> Result<Option<Secret>> {
        if let Credential::Bearer(token) = &self.credential {
            return Ok(Some(bearer_header(token)));
        }
        let challenge = lock(&self.challenge).clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credential.basic_header()),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scope_key(scopes);
                if let Some(token) = self.cached(&key) {
                    return Ok(Some(bearer_header(&token)));
                }
                let (token, lifetime) = self
                    .fetch_token(http, stats, &realm, service.as_deref(), scopes)
                    .await?;
                let header = bearer_header(&token);
                self.store(key, token, lifetime);
                Ok(Some(header))
            }
        }
    }

    /// Records a 401 challenge and drops the cached token for `scopes`.
    ///
    /// `sent` is true when the failed request carried an `Authorization` header.
    pub(crate) fn on_unauthorized(
        &self,
        header: Option<&str>,
        scopes: &[Scope],
        sent: bool,
    ) -> TokenFetch {
        let Some(challenge) = header.and_then(Challenge::parse) else {
            return TokenFetch::GiveUp;
        };
        let previous = lock(&self.challenge).replace(challenge.clone());
        match challenge {
            Challenge::Basic => {
                let can_send = self.credential.basic_header().is_some();
                let first_time = previous != Some(Challenge::Basic) || !sent;
                if can_send && first_time {
                    TokenFetch::Retry
                } else {
                    TokenFetch::GiveUp
                }
            }
            Challenge::Bearer { .. } => {
                if matches!(self.credential, Credential::Bearer(_)) {
                    return TokenFetch::GiveUp;
                }
                self.invalidate(scopes);
                TokenFetch::Retry
            }
        }
    }

    /// Drops the cached token for `scopes`, so the next request fetches a new one.
    ///
    /// Returns true when a token was cached, that is when a fresh token could help.
    pub(crate) fn invalidate(&self, scopes: &[Scope]) -> bool {
        lock(&self.tokens).remove(&scope_key(scopes)).is_some()
    }

    fn cached(&self, key: &str) -> Option<Secret> {
        let tokens = lock(&self.tokens);
        let cached = tokens.get(key)?;
        (Instant::now() < cached.refresh_at).then(|| cached.token.clone())
    }

    fn store(&self, key: String, token: Secret, lifetime: Duration) {
        let margin = REFRESH_MARGIN.min(lifetime / 10);
        let refresh_at = Instant::now() + lifetime.saturating_sub(margin);
        lock(&self.tokens).insert(key, CachedToken { token, refresh_at });
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        stats: &Stats,
        realm: &str,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> Result<(Secret, Duration)> {
        let url = self.realm_url(realm)?;
        let request = self.token_request(http, url, service, scopes);
        stats.count_request();
        tracing::debug!(registry = %self.registry, realm, scopes = ?scopes, "fetching registry token");
        let response = request
            .send()
            .await
            .map_err(|error| self.token_error(realm, error))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(Error::AccessDenied {
                registry: self.registry.clone(),
                operation: format!("token request for {}", scope_key(scopes)),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(self.token_failure(realm, format!("HTTP {status}")));
        }
        let body = read_limited(response, MAX_TOKEN_RESPONSE_BYTES)
            .await
            .map_err(|error| self.token_error(realm, error))?
            .ok_or_else(|| {
                self.token_failure(
                    realm,
                    format!("response is larger than {MAX_TOKEN_RESPONSE_BYTES} bytes"),
                )
            })?;
        stats.count_bytes(body.len() as u64);
        parse_token(&body).ok_or_else(|| {
            self.token_failure(
                realm,
                "response has neither token nor access_token".to_owned(),
            )
        })
    }

    fn token_request(
        &self,
        http: &reqwest::Client,
        mut url: Url,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> reqwest::RequestBuilder {
        if let Credential::IdentityToken(refresh) = &self.credential {
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("client_id", "leak-registry".to_owned()),
                (
                    "refresh_token",
                    String::from_utf8_lossy(refresh.expose()).into_owned(),
                ),
            ];
            form.extend(service.map(|service| ("service", service.to_owned())));
            form.push(("scope", scope_key(scopes)));
            return http.post(url).form(&form);
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope.as_str());
            }
        }
        let request = http.get(url);
        match self.credential.basic_header() {
            Some(header) => {
                request.header(reqwest::header::AUTHORIZATION, sensitive_header(&header))
            }
            None => request,
        }
    }

    /// Parses the realm and rejects plain HTTP for secure registries and
    /// link-local hosts (cloud metadata addresses).
    fn realm_url(&self, realm: &str) -> Result<Url> {
        let invalid = |reason: &str| Error::InvalidChallenge {
            registry: self.registry.clone(),
            reason: reason.to_owned(),
        };
        let url = Url::parse(realm).map_err(|_| invalid("the realm is not an absolute URL"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.insecure => {}
            "http" => {
                return Err(invalid(
                    "the realm uses http:// but the registry is not marked insecure",
                ));
            }
            _ => return Err(invalid("the realm must use https://")),
        }
        if crate::client::is_link_local(&url) {
            return Err(invalid("the realm points at a link-local address"));
        }
        Ok(url)
    }

    fn token_error(&self, realm: &str, error: reqwest::Error) -> Error {
        self.token_failure(realm, format!("{}", error.without_url()))
    }

    fn token_failure(&self, realm: &str, reason: String) -> Error {
        Error::TokenRequest {
            registry: self.registry.clone(),
            realm: strip_query(realm),
            reason,
        }
    }
}

fn parse_token(body: &[u8]) -> Option<(Secret, Duration)> {
    let response: TokenResponse = serde_json::from_slice(body).ok()?;
    let token = response
        .token
        .filter(|token| !token.is_empty())
        .or(response.access_token)?;
    let lifetime = response
        .expires_in
        .filter(|seconds| *seconds > 0)
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
    Some((Secret::new(token), lifetime))
}

fn bearer_header(token: &Secret) -> Secret {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(token.expose());
    Secret::new(value)
}

/// Builds a header value marked sensitive, so reqwest and hyper never print it.
pub(crate) fn sensitive_header(secret: &Secret) -> reqwest::header::HeaderValue {
    match reqwest::header::HeaderValue::from_bytes(secret.expose()) {
        Ok(mut value) => {
            value.set_sensitive(true);
            value
        }
        // A token with control characters cannot be sent; an empty value fails auth visibly.
        Err(_) => reqwest::header::HeaderValue::from_static(""),
    }
}

fn scope_key(scopes: &[Scope]) -> String {
    let mut names: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
    names.sort_unstable();
    names.dedup();
    names.join(" ")
}

fn strip_query(realm: &str) -> String {
    realm.split(['?', '#']).next().unwrap_or(realm).to_owned()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_token_defaults_lifetime() {
        let (token, lifetime) = parse_token(br#"{"token":"abc"}"#).unwrap();
        assert_eq!(token.expose(), b"abc");
        assert_eq!(lifetime, DEFAULT_TOKEN_LIFETIME);
    }

    #[test]
    fn parse_token_accepts_access_token() {
        let (token, lifetime) = parse_token(br#"{"access_token":"xyz","expires_in":300}"#).unwrap();
        assert_eq!(token.expose(), b"xyz");
        assert_eq!(lifetime, Duration::from_secs(300));
    }

    #[test]
    fn scope_key_is_order_independent() {
        let a = [Scope::pull("a"), Scope::push("b")];
        let b = [Scope::push("b"), Scope::pull("a")];
        assert_eq!(scope_key(&a), scope_key(&b));
    }

    #[test]
    fn basic_challenge_retried_once() {
        let auth = Auth::new("r", Credential::basic("u", "p"), true);
        let header = Some(r#"Basic realm="x""#);
        assert_eq!(auth.on_unauthorized(header, &[], false), TokenFetch::Retry);
        assert_eq!(auth.on_unauthorized(header, &[], true), TokenFetch::GiveUp);
    }

    #[test]
    fn realm_rejects_link_local() {
        let auth = Auth::new("r", Credential::Anonymous, true);
        assert!(auth.realm_url("http://169.254.169.254/token").is_err());
        assert!(auth.realm_url("http://127.0.0.1:1/token").is_ok());
    }

    #[test]
    fn realm_rejects_http_when_secure() {
        let auth = Auth::new("r", Credential::Anonymous, false);
        assert!(auth.realm_url("http://127.0.0.1:1/token").is_err());
    }
}
