//! [`AwsRotator`]: IAM access keys, and its builder.

use std::time::Duration;

use async_trait::async_trait;
use leak_core::Secret;
use url::Url;

use super::credentials::{self, AwsCredentials};
use super::request::{AwsClient, ROTATOR, Service, parse_response};
use crate::client::{HttpClient, Idempotency, RetryPolicy};
use crate::error::{Error, Result};
use crate::rotator::{
    Capabilities, Credential, CredentialInfo, CredentialStatus, Identity, LeakedCredential, Owner,
    Rotator, Verification,
};

/// Rotates IAM user access keys through the IAM and STS Query APIs.
///
/// The owner of a leaked key is found with `GetAccessKeyLastUsed`, keys
/// are listed, created, deactivated and deleted with the IAM access-key
/// calls, and a key is verified with `sts:GetCallerIdentity` signed by that
/// key. IAM allows two keys per user, inactive keys included; the engine's
/// plan handles that limit.
///
/// Temporary keys (`ASIA...`) are rejected with
/// [`Error::TemporaryCredential`], whose message explains what to do instead.
#[derive(Debug, Clone)]
pub struct AwsRotator {
    client: AwsClient,
    credentials: AwsCredentials,
}

/// Builds an [`AwsRotator`].
#[derive(Debug, Default)]
pub struct AwsRotatorBuilder {
    credentials: Option<AwsCredentials>,
    endpoint: Option<String>,
    iam_endpoint: Option<String>,
    sts_endpoint: Option<String>,
    region: Option<String>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    use_env: bool,
}

impl AwsRotatorBuilder {
    /// Starts an empty builder: credentials and endpoints must be set.
    pub fn new() -> Self {
        AwsRotatorBuilder::default()
    }

    /// Starts a builder that reads what is not set explicitly from the
    /// environment at [`build`](Self::build): the credential chain (see
    /// [`crate::aws`]), `AWS_REGION`, `AWS_ENDPOINT_URL`,
    /// `AWS_ENDPOINT_URL_IAM` and `AWS_ENDPOINT_URL_STS`.
    pub fn from_env() -> Self {
        AwsRotatorBuilder {
            use_env: true,
            ..AwsRotatorBuilder::default()
        }
    }

    /// Sets the rotator's own credentials.
    pub fn with_credentials(mut self, credentials: AwsCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sets one endpoint for both IAM and STS, as `AWS_ENDPOINT_URL` does.
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets the IAM endpoint.
    pub fn with_iam_endpoint(mut self, url: impl Into<String>) -> Self {
        self.iam_endpoint = Some(url.into());
        self
    }

    /// Sets the STS endpoint.
    pub fn with_sts_endpoint(mut self, url: impl Into<String>) -> Self {
        self.sts_endpoint = Some(url.into());
        self
    }

    /// Sets the region used for STS (IAM is always signed for `us-east-1`).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
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
    /// [`Error::MissingCredentials`] when no credentials were set or found,
    /// and [`Error::InvalidConfig`] for an invalid endpoint URL.
    pub fn build(self) -> Result<AwsRotator> {
        self.build_with_env(&|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    fn build_with_env(self, env: &dyn Fn(&str) -> Option<String>) -> Result<AwsRotator> {
        let none = |_: &str| None;
        let env: &dyn Fn(&str) -> Option<String> = if self.use_env { env } else { &none };
        let resolved = credentials::resolve(env)?;

        let region = self
            .region
            .or(resolved.region)
            .unwrap_or_else(|| "us-east-1".to_owned());
        let shared = self.endpoint.or_else(|| env("AWS_ENDPOINT_URL"));
        let iam = self
            .iam_endpoint
            .or_else(|| env("AWS_ENDPOINT_URL_IAM"))
            .or_else(|| shared.clone())
            .unwrap_or_else(|| "https://iam.amazonaws.com/".to_owned());
        let sts = self
            .sts_endpoint
            .or_else(|| env("AWS_ENDPOINT_URL_STS"))
            .or(shared)
            .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com/"));

        let credentials = match self.credentials.or(resolved.credentials) {
            Some(credentials) => credentials,
            None => {
                let tried = if self.use_env {
                    resolved.tried.join(", ")
                } else {
                    "none: call with_credentials or start from AwsRotatorBuilder::from_env"
                        .to_owned()
                };
                return Err(Error::MissingCredentials {
                    rotator: ROTATOR.to_owned(),
                    reason: format!("no AWS access key found; sources tried: {tried}"),
                });
            }
        };
        let http = HttpClient::new(
            ROTATOR,
            self.timeout.unwrap_or(Duration::from_secs(30)),
            self.retry.unwrap_or_default(),
        )?;
        Ok(AwsRotator {
            client: AwsClient {
                http,
                iam_endpoint: parse_endpoint("iam_endpoint", &iam)?,
                sts_endpoint: parse_endpoint("sts_endpoint", &sts)?,
                region,
            },
            credentials,
        })
    }
}

fn parse_endpoint(field: &str, text: &str) -> Result<Url> {
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

impl AwsRotator {
    /// Starts a builder that reads the environment; see
    /// [`AwsRotatorBuilder::from_env`].
    pub fn from_env() -> AwsRotatorBuilder {
        AwsRotatorBuilder::from_env()
    }

    /// Starts an empty builder.
    pub fn builder() -> AwsRotatorBuilder {
        AwsRotatorBuilder::new()
    }

    async fn iam(
        &self,
        action: &str,
        params: &[(&str, &str)],
        idempotency: Idempotency,
    ) -> Result<super::xml::Element> {
        self.client
            .call(Service::Iam, action, params, &self.credentials, idempotency)
            .await?
            .map_err(|e| e.into_error(action))
    }

    async fn update_status(&self, owner: &Owner, key_id: &str, status: &str) -> Result<()> {
        let params = [
            ("UserName", owner.id.as_str()),
            ("AccessKeyId", key_id),
            ("Status", status),
        ];
        self.iam("UpdateAccessKey", &params, Idempotency::Idempotent)
            .await?;
        tracing::info!(rotator = ROTATOR, owner = %owner.id, %key_id, %status, "updated access key status");
        Ok(())
    }
}

/// Checks the shape of an access key id: 20 upper-case letters and digits.
fn check_key_id(key_id: &str) -> Result<()> {
    let valid = key_id.len() == 20
        && key_id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if key_id.starts_with("ASIA") {
        return Err(Error::TemporaryCredential {
            key_id: key_id.to_owned(),
        });
    }
    if !valid {
        return Err(Error::InvalidLeakedCredential {
            rotator: ROTATOR.to_owned(),
            reason: format!(
                "{key_id:?} is not an access key id (20 upper-case letters and digits)"
            ),
        });
    }
    Ok(())
}

#[async_trait]
impl Rotator for AwsRotator {
    fn name(&self) -> &str {
        ROTATOR
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kind: "aws-access-key-id".to_owned(),
            max_credentials: Some(2),
            can_deactivate: true,
            can_create: true,
            max_propagation: Duration::from_secs(60),
        }
    }

    async fn identify(&self, leaked: &LeakedCredential) -> Result<Identity> {
        let key_id = leaked
            .key_id
            .as_deref()
            .ok_or_else(|| Error::InvalidLeakedCredential {
                rotator: ROTATOR.to_owned(),
                reason: "the access key id is required to find the key's owner".to_owned(),
            })?;
        check_key_id(key_id)?;
        let root = match self
            .client
            .call(
                Service::Iam,
                "GetAccessKeyLastUsed",
                &[("AccessKeyId", key_id)],
                &self.credentials,
                Idempotency::Idempotent,
            )
            .await?
        {
            Ok(root) => root,
            Err(error) if error.code == "NoSuchEntity" => {
                return Err(Error::KeyNotFound {
                    rotator: ROTATOR.to_owned(),
                    key_id: key_id.to_owned(),
                });
            }
            Err(error) => return Err(error.into_error("GetAccessKeyLastUsed")),
        };
        let user = root
            .text_of("UserName")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::UnexpectedResponse {
                rotator: ROTATOR.to_owned(),
                operation: "GetAccessKeyLastUsed".to_owned(),
                reason: "no UserName in the response (a root account key cannot be rotated here)"
                    .to_owned(),
            })?;
        Ok(Identity {
            owner: Owner::new(user),
            leaked_key_id: key_id.to_owned(),
        })
    }

    async fn list(&self, owner: &Owner) -> Result<Vec<CredentialInfo>> {
        let params = [("UserName", owner.id.as_str()), ("MaxItems", "100")];
        let root = self
            .iam("ListAccessKeys", &params, Idempotency::Idempotent)
            .await?;
        let Some(list) = root.find("AccessKeyMetadata") else {
            return Ok(Vec::new());
        };
        let mut keys = Vec::new();
        for member in list.children_named("member") {
            let id = member.text_of("AccessKeyId").unwrap_or_default().to_owned();
            let status = match member.text_of("Status") {
                Some("Active") => CredentialStatus::Active,
                _ => CredentialStatus::Inactive,
            };
            keys.push(CredentialInfo {
                id,
                status,
                created_at: member.text_of("CreateDate").map(str::to_owned),
            });
        }
        Ok(keys)
    }

    async fn verify(&self, _owner: &Owner, credential: &Credential) -> Result<Verification> {
        let candidate = AwsCredentials::new(credential.id.clone(), credential.secret.clone());
        let response = match self
            .client
            .send(
                Service::Sts,
                "GetCallerIdentity",
                &[],
                &candidate,
                Idempotency::Idempotent,
            )
            .await
        {
            Ok(response) => response,
            Err(error) => return Ok(Verification::indeterminate(error.to_string())),
        };
        Ok(classify_caller_identity(&response))
    }

    async fn create(&self, owner: &Owner) -> Result<Credential> {
        let root = self
            .iam(
                "CreateAccessKey",
                &[("UserName", owner.id.as_str())],
                Idempotency::NotIdempotent,
            )
            .await?;
        let missing = || Error::UnexpectedResponse {
            rotator: ROTATOR.to_owned(),
            operation: "CreateAccessKey".to_owned(),
            reason: "AccessKeyId or SecretAccessKey missing".to_owned(),
        };
        let id = root.text_of("AccessKeyId").ok_or_else(missing)?.to_owned();
        let secret = Secret::new(root.text_of("SecretAccessKey").ok_or_else(missing)?);
        tracing::info!(rotator = ROTATOR, owner = %owner.id, key_id = %id, "created access key");
        Ok(Credential { id, secret })
    }

    async fn deactivate(&self, owner: &Owner, key_id: &str) -> Result<()> {
        self.update_status(owner, key_id, "Inactive").await
    }

    async fn reactivate(&self, owner: &Owner, key_id: &str) -> Result<()> {
        self.update_status(owner, key_id, "Active").await
    }

    async fn revoke(&self, owner: &Owner, key_id: &str) -> Result<()> {
        let params = [("UserName", owner.id.as_str()), ("AccessKeyId", key_id)];
        let outcome = self
            .client
            .call(
                Service::Iam,
                "DeleteAccessKey",
                &params,
                &self.credentials,
                Idempotency::Idempotent,
            )
            .await?;
        match outcome {
            Ok(_) => {
                tracing::info!(rotator = ROTATOR, owner = %owner.id, %key_id, "deleted access key")
            }
            Err(error) if error.code == "NoSuchEntity" => {
                tracing::info!(rotator = ROTATOR, owner = %owner.id, %key_id, "access key was already deleted");
            }
            Err(error) => return Err(error.into_error("DeleteAccessKey")),
        }
        Ok(())
    }
}

/// Error codes with which STS rejects the signing key itself.
const REJECTED_KEY_CODES: [&str; 4] = [
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "UnrecognizedClientException",
];

/// Turns a `GetCallerIdentity` response into a verification result.
fn classify_caller_identity(response: &crate::client::Response) -> Verification {
    match parse_response("GetCallerIdentity", response) {
        Ok(Ok(root)) if root.text_of("Arn").is_some_and(|a| a.starts_with("arn:")) => {
            Verification::Live
        }
        Ok(Ok(_)) => {
            Verification::indeterminate(format!("HTTP {} without an Arn", response.status))
        }
        Ok(Err(error)) if REJECTED_KEY_CODES.contains(&error.code.as_str()) => {
            Verification::dead(error.code)
        }
        Ok(Err(error)) => {
            Verification::indeterminate(format!("HTTP {} {}", error.status, error.code))
        }
        Err(error) => Verification::indeterminate(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Response;

    fn response(status: u16, content_type: &str, body: &str) -> Response {
        Response {
            status,
            content_type: Some(content_type.to_owned()),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn html_page_is_indeterminate() {
        let page = response(200, "text/html", "<html><body>Sign in</body></html>");
        assert!(matches!(
            classify_caller_identity(&page),
            Verification::Indeterminate { .. }
        ));
    }

    #[test]
    fn invalid_token_is_dead() {
        let body = "<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>bad</Message></Error></ErrorResponse>";
        let rejected = response(403, "text/xml", body);
        assert_eq!(
            classify_caller_identity(&rejected),
            Verification::dead("InvalidClientTokenId")
        );
    }

    #[test]
    fn throttling_is_indeterminate() {
        let body = "<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>";
        let throttled = response(400, "text/xml", body);
        assert!(matches!(
            classify_caller_identity(&throttled),
            Verification::Indeterminate { .. }
        ));
    }

    #[test]
    fn temporary_key_rejected() {
        let error = check_key_id("ASIAXXXXXXXXXXXXXXXX").unwrap_err();
        assert!(matches!(error, Error::TemporaryCredential { .. }));
        assert!(error.to_string().contains("Revoke"));
    }

    #[test]
    fn endpoint_env_overrides_default() {
        let env = |name: &str| match name {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:1/".to_owned()),
            "AWS_ACCESS_KEY_ID" => Some("AKIDTEST".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("sentinel-rotator-secret".to_owned()),
            _ => None,
        };
        let rotator = AwsRotatorBuilder::from_env().build_with_env(&env).unwrap();
        assert_eq!(rotator.client.iam_endpoint.as_str(), "http://127.0.0.1:1/");
        assert_eq!(rotator.client.sts_endpoint.as_str(), "http://127.0.0.1:1/");
        assert!(!format!("{rotator:?}").contains("sentinel-rotator-secret"));
    }

    #[test]
    fn missing_credentials_named() {
        let error = AwsRotatorBuilder::from_env()
            .build_with_env(&|_| None)
            .unwrap_err();
        assert!(matches!(error, Error::MissingCredentials { .. }), "{error}");
    }
}
