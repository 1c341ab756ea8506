//! Signed AWS Query API calls (IAM and STS) over the shared HTTP client.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use url::Url;

use super::credentials::AwsCredentials;
use super::xml::{self, Element};
use crate::client::{HttpClient, Idempotency, Response, truncate};
use crate::error::{Error, Result};

pub(crate) const ROTATOR: &str = "aws-iam";

/// An AWS service reached through the Query API.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Service {
    Iam,
    Sts,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Sts => "sts",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Service::Iam => "2010-05-08",
            Service::Sts => "2011-06-15",
        }
    }
}

/// Endpoints, region and HTTP client for IAM and STS calls.
#[derive(Debug, Clone)]
pub(crate) struct AwsClient {
    pub(crate) http: HttpClient,
    pub(crate) iam_endpoint: Url,
    pub(crate) sts_endpoint: Url,
    pub(crate) region: String,
}

/// An AWS error response.
#[derive(Debug)]
pub(crate) struct AwsError {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
}

impl AwsError {
    pub(crate) fn into_error(self, action: &str) -> Error {
        Error::Provider {
            rotator: ROTATOR.to_owned(),
            operation: action.to_owned(),
            status: self.status,
            code: self.code,
            message: self.message,
        }
    }
}

impl AwsClient {
    /// Sends a signed Query API call and returns the raw response.
    pub(crate) async fn send(
        &self,
        service: Service,
        action: &str,
        params: &[(&str, &str)],
        credentials: &AwsCredentials,
        idempotency: Idempotency,
    ) -> Result<Response> {
        let endpoint = match service {
            Service::Iam => &self.iam_endpoint,
            Service::Sts => &self.sts_endpoint,
        };
        let body = form_body(action, service, params);
        // IAM is a global service signed for us-east-1.
        let region = match service {
            Service::Iam => "us-east-1",
            Service::Sts => self.region.as_str(),
        };

        self.http
            .send(action, idempotency, |client| {
                let headers = sign_headers(endpoint, &body, service, region, credentials)?;
                let mut request = client.post(endpoint.clone()).body(body.clone());
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                Ok(request)
            })
            .await
    }

    /// Sends a call and parses a successful XML response; error statuses
    /// become `Err(Ok(AwsError))`.
    pub(crate) async fn call(
        &self,
        service: Service,
        action: &str,
        params: &[(&str, &str)],
        credentials: &AwsCredentials,
        idempotency: Idempotency,
    ) -> Result<std::result::Result<Element, AwsError>> {
        let mut attempt = 1;
        loop {
            let response = self
                .send(service, action, params, credentials, idempotency)
                .await?;
            let parsed = parse_response(action, &response)?;
            let throttled =
                matches!(&parsed, Err(error) if THROTTLING_CODES.contains(&error.code.as_str()));
            if !throttled
                || idempotency == Idempotency::NotIdempotent
                || attempt >= THROTTLING_ATTEMPTS
            {
                return Ok(parsed);
            }

            let delay = Duration::from_millis(500 * 2u64.pow(attempt - 1));
            tracing::info!(
                rotator = ROTATOR,
                operation = action,
                attempt,
                delay_ms = delay.as_millis() as u64,
                "throttled by AWS, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// AWS reports throttling with HTTP 400 and one of these codes, which the
/// shared client's status-based retry does not catch.
const THROTTLING_CODES: [&str; 3] = ["Throttling", "ThrottlingException", "RequestLimitExceeded"];

/// Maximum attempts of an idempotent call that AWS throttles.
const THROTTLING_ATTEMPTS: u32 = 4;

/// Encodes the Query API form body.
fn form_body(action: &str, service: Service, params: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", action);
    form.append_pair("Version", service.api_version());
    for (key, value) in params {
        form.append_pair(key, value);
    }
    form.finish()
}

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Computes the SigV4 headers for a form POST.
fn sign_headers(
    endpoint: &Url,
    body: &str,
    service: Service,
    region: &str,
    credentials: &AwsCredentials,
) -> Result<Vec<(String, String)>> {
    let signing_error = |reason: String| Error::UnexpectedResponse {
        rotator: ROTATOR.to_owned(),
        operation: "sign request".to_owned(),
        reason,
    };
    let secret = credentials
        .secret_access_key
        .expose_str()
        .ok_or_else(|| signing_error("the secret access key is not UTF-8".to_owned()))?;
    let session_token = credentials
        .session_token
        .as_ref()
        .and_then(|t| t.expose_str());
    let identity: Identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        secret.to_owned(),
        session_token.map(str::to_owned),
        None,
        "leak-rotators",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service.signing_name())
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing_error(e.to_string()))?
        .into();
    let headers = [("content-type", CONTENT_TYPE)];
    let signable = SignableRequest::new(
        "POST",
        endpoint.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| signing_error(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| signing_error(e.to_string()))?
        .into_parts();

    let mut out = vec![("content-type".to_owned(), CONTENT_TYPE.to_owned())];
    out.extend(
        instructions
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
    );
    Ok(out)
}

/// Splits a response into a parsed success or an [`AwsError`].
pub(crate) fn parse_response(
    action: &str,
    response: &Response,
) -> Result<std::result::Result<Element, AwsError>> {
    let unexpected = |reason: String| Error::UnexpectedResponse {
        rotator: ROTATOR.to_owned(),
        operation: action.to_owned(),
        reason,
    };
    if response.is_html() {
        return Err(unexpected(format!(
            "HTTP {} with an HTML page instead of XML",
            response.status
        )));
    }
    let root = xml::parse(&response.body)
        .map_err(|e| unexpected(format!("HTTP {}: invalid XML: {e}", response.status)));
    if response.is_success() {
        return root.map(Ok);
    }
    let root = root.ok();
    let field = |name: &str| {
        root.as_ref()
            .and_then(|r| r.text_of(name))
            .map(str::to_owned)
    };
    Ok(Err(AwsError {
        status: response.status,
        code: field("Code").unwrap_or_else(|| "unknown".to_owned()),
        message: truncate(&field("Message").unwrap_or_default(), 300),
    }))
}
