//! [`GcpRotator`]: service-account keys, and its builder.

use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use super::auth::{GcpAuth, TokenCache, assertion, oauth_error};
use super::iam::{IamApi, Reply};
use super::key_file::{ROTATOR, ServiceAccountKey};
use crate::client::{HttpClient, Idempotency, RetryPolicy};
use crate::error::{Error, Result};
use crate::rotator::{
    Capabilities, Credential, CredentialInfo, Identity, LeakedCredential, Owner, Rotator,
    Verification,
};

/// Default IAM API base URL.
pub const DEFAULT_IAM_BASE_URL: &str = "https://iam.googleapis.com/v1/";
/// Default OAuth2 token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// Rotates GCP service-account keys through the IAM v1 REST API.
///
/// The owner is the key file's `client_email` in its `project_id`; the
/// leaked key is its `private_key_id`. A service account has at most 10
/// keys. Verifying a key signs a JWT with it and exchanges it at the
/// rotator's token endpoint; the key file's own `token_uri` is never used.
#[derive(Debug)]
pub struct GcpRotator {
    api: IamApi,
    verify_http: HttpClient,
    token_url: String,
}

/// Builds a [`GcpRotator`].
#[derive(Debug, Default)]
pub struct GcpRotatorBuilder {
    auth: Option<GcpAuth>,
    iam_base_url: Option<String>,
    token_url: Option<String>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
}

impl GcpRotatorBuilder {
    /// Starts an empty builder; [`with_auth`](Self::with_auth) is required.
    pub fn new() -> Self {
        GcpRotatorBuilder::default()
    }

    /// Sets the rotator's own credentials.
    pub fn with_auth(mut self, auth: GcpAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Sets the IAM API base URL (default [`DEFAULT_IAM_BASE_URL`]).
    pub fn with_iam_base_url(mut self, url: impl Into<String>) -> Self {
        self.iam_base_url = Some(url.into());
        self
    }

    /// Sets the OAuth2 token endpoint used for the rotator's own token and
    /// for verifying keys (default [`DEFAULT_TOKEN_URL`]).
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Sets the per-request timeout (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the retry policy for idempotent calls.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Builds the rotator.
    ///
    /// # Errors
    ///
    /// [`Error::MissingCredentials`] without auth, [`Error::InvalidConfig`]
    /// for an invalid URL.
    pub fn build(self) -> Result<GcpRotator> {
        let auth = self.auth.ok_or_else(|| Error::MissingCredentials {
            rotator: ROTATOR.to_owned(),
            reason:
                "call with_auth (a service-account key, GcpAuth::from_adc() or an access token)"
                    .to_owned(),
        })?;
        let base_text = self
            .iam_base_url
            .unwrap_or_else(|| DEFAULT_IAM_BASE_URL.to_owned());
        let base = parse_url("iam_base_url", &base_text)?;
        let token_url = self
            .token_url
            .unwrap_or_else(|| DEFAULT_TOKEN_URL.to_owned());
        parse_url("token_url", &token_url)?;

        let timeout = self.timeout.unwrap_or(Duration::from_secs(30));
        let retry = self.retry.unwrap_or_default();
        let http = HttpClient::new(ROTATOR, timeout, retry.clone())?;
        // Verification makes one attempt per call: the engine polls.
        let single = RetryPolicy {
            max_attempts: 1,
            ..retry
        };
        Ok(GcpRotator {
            api: IamApi {
                http,
                base,
                tokens: TokenCache::new(auth, token_url.clone()),
            },
            verify_http: HttpClient::new(ROTATOR, timeout, single)?,
            token_url,
        })
    }
}

fn parse_url(field: &str, text: &str) -> Result<Url> {
    let url = Url::parse(text)
        .map_err(|e| Error::config(field, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::config(
            field,
            format!("{text:?} must be an http or https URL with a host"),
        ));
    }
    Ok(url)
}

impl GcpRotator {
    /// Starts a builder.
    pub fn builder() -> GcpRotatorBuilder {
        GcpRotatorBuilder::new()
    }

    fn owner_of(key: &ServiceAccountKey) -> Owner {
        Owner::new(key.client_email.clone()).with_attribute("project", key.project_id.clone())
    }
}

#[async_trait]
impl Rotator for GcpRotator {
    fn name(&self) -> &str {
        ROTATOR
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kind: "gcp-service-account".to_owned(),
            max_credentials: Some(10),
            can_deactivate: true,
            can_create: true,
            max_propagation: Duration::from_secs(60),
        }
    }

    async fn identify(&self, leaked: &LeakedCredential) -> Result<Identity> {
        let file = leaked
            .secret
            .as_ref()
            .ok_or_else(|| Error::InvalidLeakedCredential {
                rotator: ROTATOR.to_owned(),
                reason: "the key file's JSON is required".to_owned(),
            })?;
        let key = ServiceAccountKey::parse(file)?;
        let owner = Self::owner_of(&key);
        match self.api.get(&owner, &key.private_key_id).await? {
            Reply::Ok(_) => Ok(Identity {
                owner,
                leaked_key_id: key.private_key_id,
            }),
            Reply::NotFound => Err(Error::KeyNotFound {
                rotator: ROTATOR.to_owned(),
                key_id: key.private_key_id,
            }),
        }
    }

    async fn list(&self, owner: &Owner) -> Result<Vec<CredentialInfo>> {
        self.api.list(owner).await
    }

    async fn verify(&self, _owner: &Owner, credential: &Credential) -> Result<Verification> {
        let key = ServiceAccountKey::parse(&credential.secret)?;
        if key.private_key_id != credential.id {
            return Err(Error::InvalidLeakedCredential {
                rotator: ROTATOR.to_owned(),
                reason: format!(
                    "the key file contains key {}, not {}",
                    key.private_key_id, credential.id
                ),
            });
        }
        let form = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion(&key, &self.token_url)?),
        ];
        let response = match self
            .verify_http
            .send("verify", Idempotency::Idempotent, |client| {
                Ok(client.post(&self.token_url).form(&form))
            })
            .await
        {
            Ok(response) => response,
            Err(error) => return Ok(Verification::indeterminate(error.to_string())),
        };
        if response.is_html() {
            return Ok(Verification::indeterminate(format!(
                "HTTP {} with an HTML page",
                response.status
            )));
        }
        let has_token = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .is_some_and(|v| {
                v.get("access_token")
                    .and_then(|t| t.as_str())
                    .is_some_and(|t| !t.is_empty())
            });
        let error = oauth_error(&response.body);
        Ok(match response.status {
            200 if has_token => Verification::Live,
            400 | 401
                if error.starts_with("invalid_grant") || error.starts_with("invalid_client") =>
            {
                Verification::dead(error)
            }
            status => Verification::indeterminate(format!("HTTP {status}: {error}")),
        })
    }

    async fn create(&self, owner: &Owner) -> Result<Credential> {
        let credential = self.api.create(owner).await?;
        tracing::info!(rotator = ROTATOR, owner = %owner.id, key_id = %credential.id, "created service-account key");
        Ok(credential)
    }

    async fn deactivate(&self, owner: &Owner, key_id: &str) -> Result<()> {
        self.api.set_enabled(owner, key_id, false).await
    }

    async fn reactivate(&self, owner: &Owner, key_id: &str) -> Result<()> {
        self.api.set_enabled(owner, key_id, true).await
    }

    async fn revoke(&self, owner: &Owner, key_id: &str) -> Result<()> {
        if self.api.delete(owner, key_id).await? {
            tracing::info!(rotator = ROTATOR, owner = %owner.id, %key_id, "deleted service-account key");
        } else {
            tracing::info!(rotator = ROTATOR, owner = %owner.id, %key_id, "service-account key was already deleted");
        }
        Ok(())
    }
}
