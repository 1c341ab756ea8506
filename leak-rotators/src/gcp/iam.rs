//! IAM v1 REST calls for service-account keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use leak_core::Secret;
use serde::Deserialize;
use url::Url;

use super::auth::TokenCache;
use super::key_file::ROTATOR;
use crate::client::{HttpClient, Idempotency, Response, truncate};
use crate::error::{Error, Result};
use crate::rotator::{Credential, CredentialInfo, CredentialStatus, Owner};

/// A key as the IAM API returns it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyResource {
    name: String,
    #[serde(default)]
    disabled: bool,
    valid_after_time: Option<String>,
    private_key_data: Option<String>,
}

#[derive(Deserialize)]
struct KeyList {
    #[serde(default)]
    keys: Vec<KeyResource>,
}

#[derive(Deserialize)]
struct GoogleError {
    error: GoogleErrorBody,
}

#[derive(Deserialize)]
struct GoogleErrorBody {
    code: Option<u16>,
    message: Option<String>,
    status: Option<String>,
}

/// The IAM API for one rotator: base URL, HTTP client and token.
#[derive(Debug)]
pub(crate) struct IamApi {
    pub(crate) http: HttpClient,
    pub(crate) base: Url,
    pub(crate) tokens: TokenCache,
}

/// The outcome of an IAM call: success, 404, or another error.
pub(crate) enum Reply {
    Ok(Response),
    NotFound,
}

impl IamApi {
    /// Builds `BASE/projects/P/serviceAccounts/EMAIL/keys[/ID[:VERB]]`.
    fn keys_url(&self, owner: &Owner, key: Option<&str>) -> Result<Url> {
        let project = owner
            .attribute("project")
            .ok_or_else(|| Error::InvalidLeakedCredential {
                rotator: ROTATOR.to_owned(),
                reason: format!("owner {} has no project attribute", owner.id),
            })?;
        let mut url = self.base.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| Error::config("iam_base_url", "cannot be a base URL"))?;
            segments.pop_if_empty();
            segments.extend(["projects", project, "serviceAccounts", &owner.id, "keys"]);
            if let Some(key) = key {
                segments.push(key);
            }
        }
        Ok(url)
    }

    async fn send(
        &self,
        operation: &str,
        method: reqwest::Method,
        url: Url,
        body: Option<serde_json::Value>,
        idempotency: Idempotency,
    ) -> Result<Reply> {
        let token = self.tokens.token(&self.http).await?;
        let bearer = format!("Bearer {}", token.expose_str().unwrap_or_default());
        let response = self
            .http
            .send(operation, idempotency, |client| {
                let mut request = client
                    .request(method.clone(), url.clone())
                    .header("authorization", &bearer);
                if let Some(body) = &body {
                    request = request.json(body);
                }
                Ok(request)
            })
            .await?;
        if response.status == 404 && !response.is_html() {
            return Ok(Reply::NotFound);
        }
        if response.is_success() && !response.is_html() {
            return Ok(Reply::Ok(response));
        }
        Err(google_error(operation, &response))
    }

    pub(crate) async fn get(&self, owner: &Owner, key_id: &str) -> Result<Reply> {
        let url = self.keys_url(owner, Some(key_id))?;
        self.send(
            "keys.get",
            reqwest::Method::GET,
            url,
            None,
            Idempotency::Idempotent,
        )
        .await
    }

    pub(crate) async fn list(&self, owner: &Owner) -> Result<Vec<CredentialInfo>> {
        let mut url = self.keys_url(owner, None)?;
        url.query_pairs_mut()
            .append_pair("keyTypes", "USER_MANAGED");
        let Reply::Ok(response) = self
            .send(
                "keys.list",
                reqwest::Method::GET,
                url,
                None,
                Idempotency::Idempotent,
            )
            .await?
        else {
            return Err(Error::KeyNotFound {
                rotator: ROTATOR.to_owned(),
                key_id: format!("service account {}", owner.id),
            });
        };
        let list: KeyList = response.json(ROTATOR, "keys.list")?;
        Ok(list.keys.into_iter().map(info).collect())
    }

    pub(crate) async fn create(&self, owner: &Owner) -> Result<Credential> {
        let url = self.keys_url(owner, None)?;
        let body = serde_json::json!({
            "privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
            "keyAlgorithm": "KEY_ALG_RSA_2048",
        });
        let reply = self
            .send(
                "keys.create",
                reqwest::Method::POST,
                url,
                Some(body),
                Idempotency::NotIdempotent,
            )
            .await?;
        let Reply::Ok(response) = reply else {
            return Err(Error::KeyNotFound {
                rotator: ROTATOR.to_owned(),
                key_id: format!("service account {}", owner.id),
            });
        };
        let key: KeyResource = response.json(ROTATOR, "keys.create")?;
        let unexpected = |reason: &str| Error::UnexpectedResponse {
            rotator: ROTATOR.to_owned(),
            operation: "keys.create".to_owned(),
            reason: reason.to_owned(),
        };
        let data = key
            .private_key_data
            .ok_or_else(|| unexpected("no privateKeyData"))?;
        let file = STANDARD
            .decode(data)
            .map_err(|_| unexpected("privateKeyData is not base64"))?;
        Ok(Credential {
            id: key_id(&key.name).to_owned(),
            secret: Secret::new(file),
        })
    }

    /// Sends `:disable` or `:enable`.
    pub(crate) async fn set_enabled(
        &self,
        owner: &Owner,
        key_id: &str,
        enabled: bool,
    ) -> Result<()> {
        let verb = if enabled { "enable" } else { "disable" };
        let url = self.keys_url(owner, Some(&format!("{key_id}:{verb}")))?;
        let operation = format!("keys.{verb}");
        match self
            .send(
                &operation,
                reqwest::Method::POST,
                url,
                Some(serde_json::json!({})),
                Idempotency::Idempotent,
            )
            .await?
        {
            Reply::Ok(_) => Ok(()),
            Reply::NotFound => Err(Error::KeyNotFound {
                rotator: ROTATOR.to_owned(),
                key_id: key_id.to_owned(),
            }),
        }
    }

    /// Deletes a key; a missing key is success.
    pub(crate) async fn delete(&self, owner: &Owner, key_id: &str) -> Result<bool> {
        let url = self.keys_url(owner, Some(key_id))?;
        let reply = self
            .send(
                "keys.delete",
                reqwest::Method::DELETE,
                url,
                None,
                Idempotency::Idempotent,
            )
            .await?;
        Ok(matches!(reply, Reply::Ok(_)))
    }
}

/// Returns the last segment of `projects/P/serviceAccounts/E/keys/ID`.
fn key_id(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn info(key: KeyResource) -> CredentialInfo {
    CredentialInfo {
        id: key_id(&key.name).to_owned(),
        status: if key.disabled {
            CredentialStatus::Inactive
        } else {
            CredentialStatus::Active
        },
        created_at: key.valid_after_time,
    }
}

fn google_error(operation: &str, response: &Response) -> Error {
    if response.is_html() {
        return Error::UnexpectedResponse {
            rotator: ROTATOR.to_owned(),
            operation: operation.to_owned(),
            reason: format!("HTTP {} with an HTML page instead of JSON", response.status),
        };
    }
    let parsed: Option<GoogleError> = serde_json::from_slice(&response.body).ok();
    let (code, message) = match parsed {
        Some(GoogleError { error }) => (
            error
                .status
                .unwrap_or_else(|| error.code.unwrap_or(response.status).to_string()),
            error.message.unwrap_or_default(),
        ),
        None => ("unknown".to_owned(), String::new()),
    };
    Error::Provider {
        rotator: ROTATOR.to_owned(),
        operation: operation.to_owned(),
        status: response.status,
        code,
        message: truncate(&message, 300),
    }
}
