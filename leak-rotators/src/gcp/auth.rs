//! The rotator's own OAuth2 access token.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use leak_core::Secret;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::key_file::{ROTATOR, ServiceAccountKey};
use crate::client::{HttpClient, Idempotency, truncate};
use crate::error::{Error, Result};

/// OAuth2 scope for IAM calls.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Source of the rotator's own access token.
///
/// Tokens are always requested from the rotator's configured token
/// endpoint, never from a `token_uri` inside a file.
#[derive(Clone)]
pub enum GcpAuth {
    /// A service-account key: JWT bearer grant (RFC 7523).
    ServiceAccount(ServiceAccountKey),
    /// An `authorized_user` file written by `gcloud auth
    /// application-default login`: refresh-token grant.
    ///
    /// NOTE: the refresh-token grant is not exercised by any test, because
    /// the loopback token server implements only the JWT bearer grant.
    AuthorizedUser {
        /// OAuth client id.
        client_id: String,
        /// OAuth client secret.
        client_secret: Secret,
        /// Refresh token.
        refresh_token: Secret,
    },
    /// A fixed access token.
    AccessToken(Secret),
}

impl fmt::Debug for GcpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GcpAuth::ServiceAccount(key) => f.debug_tuple("ServiceAccount").field(key).finish(),
            GcpAuth::AuthorizedUser { client_id, .. } => f
                .debug_struct("AuthorizedUser")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            GcpAuth::AccessToken(_) => f.write_str("AccessToken(REDACTED)"),
        }
    }
}

#[derive(Deserialize)]
struct AdcFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

impl GcpAuth {
    /// Reads Application Default Credentials: the file named by
    /// `GOOGLE_APPLICATION_CREDENTIALS`, else
    /// `~/.config/gcloud/application_default_credentials.json`.
    ///
    /// The metadata server of GCE and GKE is not supported and never
    /// contacted.
    ///
    /// # Errors
    ///
    /// [`Error::MissingCredentials`] when no file is found or it is neither
    /// a `service_account` nor an `authorized_user` file.
    pub fn from_adc() -> Result<Self> {
        let path = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| {
                    PathBuf::from(h).join(".config/gcloud/application_default_credentials.json")
                })
            })
            .ok_or_else(|| {
                missing("GOOGLE_APPLICATION_CREDENTIALS is not set and HOME is unknown".to_owned())
            })?;
        let bytes = std::fs::read(&path)
            .map_err(|e| missing(format!("cannot read {}: {e}", path.display())))?;
        Self::from_file_bytes(Secret::new(bytes))
            .map_err(|e| missing(format!("{}: {e}", path.display())))
    }

    /// Parses a credentials file: `service_account` or `authorized_user`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingCredentials`] for any other content.
    pub fn from_file_bytes(file: Secret) -> Result<Self> {
        let adc: AdcFile = serde_json::from_slice(file.expose())
            .map_err(|_| missing("not a JSON credentials file".to_owned()))?;
        match adc.kind.as_deref() {
            Some("service_account") => {
                Ok(GcpAuth::ServiceAccount(ServiceAccountKey::parse(&file)?))
            }
            Some("authorized_user") => {
                match (adc.client_id, adc.client_secret, adc.refresh_token) {
                    (Some(client_id), Some(secret), Some(refresh)) => Ok(GcpAuth::AuthorizedUser {
                        client_id,
                        client_secret: Secret::new(secret),
                        refresh_token: Secret::new(refresh),
                    }),
                    _ => Err(missing(
                        "the authorized_user file lacks client_id, client_secret or refresh_token"
                            .to_owned(),
                    )),
                }
            }
            _ => Err(missing(
                "the credentials type is neither service_account nor authorized_user".to_owned(),
            )),
        }
    }
}

fn missing(reason: String) -> Error {
    Error::MissingCredentials {
        rotator: ROTATOR.to_owned(),
        reason,
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Builds the JWT bearer assertion for `key`, addressed to `token_url`.
pub(crate) fn assertion(key: &ServiceAccountKey, token_url: &str) -> Result<String> {
    let now = unix_now();
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": token_url,
        "iat": now,
        "exp": now + 3600,
    });
    key.sign_jwt(&claims)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// Fetches and caches the rotator's access token.
pub(crate) struct TokenCache {
    auth: GcpAuth,
    token_url: String,
    cached: Mutex<Option<(Secret, Instant)>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("auth", &self.auth)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub(crate) fn new(auth: GcpAuth, token_url: String) -> Self {
        TokenCache {
            auth,
            token_url,
            cached: Mutex::new(None),
        }
    }

    /// Returns a token valid for at least another minute.
    pub(crate) async fn token(&self, http: &HttpClient) -> Result<Secret> {
        if let GcpAuth::AccessToken(token) = &self.auth {
            return Ok(token.clone());
        }
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && *expires > Instant::now() + Duration::from_secs(60)
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch(http).await?;
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    async fn fetch(&self, http: &HttpClient) -> Result<(Secret, Duration)> {
        let form: Vec<(&str, String)> = match &self.auth {
            GcpAuth::ServiceAccount(key) => vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                ),
                ("assertion", assertion(key, &self.token_url)?),
            ],
            GcpAuth::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
            } => vec![
                ("grant_type", "refresh_token".to_owned()),
                ("client_id", client_id.clone()),
                (
                    "client_secret",
                    client_secret.expose_str().unwrap_or_default().to_owned(),
                ),
                (
                    "refresh_token",
                    refresh_token.expose_str().unwrap_or_default().to_owned(),
                ),
            ],
            GcpAuth::AccessToken(token) => return Ok((token.clone(), Duration::from_secs(3600))),
        };
        let response = http
            .send("token", Idempotency::Idempotent, |client| {
                Ok(client.post(&self.token_url).form(&form))
            })
            .await?;
        if !response.is_success() || response.is_html() {
            return Err(Error::Provider {
                rotator: ROTATOR.to_owned(),
                operation: "token".to_owned(),
                status: response.status,
                code: "token request rejected".to_owned(),
                message: truncate(&oauth_error(&response.body), 300),
            });
        }
        let parsed: TokenResponse = response.json(ROTATOR, "token")?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        Ok((Secret::new(parsed.access_token), lifetime))
    }
}

/// Extracts `error` and `error_description` from an OAuth2 error body.
pub(crate) fn oauth_error(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OauthError {
        error: Option<String>,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OauthError>(body) {
        Ok(e) => format!(
            "{}: {}",
            e.error.unwrap_or_default(),
            e.error_description.unwrap_or_default()
        ),
        Err(_) => "non-JSON error body".to_owned(),
    }
}
