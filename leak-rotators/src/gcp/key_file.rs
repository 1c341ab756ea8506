//! Service-account key files and RS256 JWT signing.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use leak_core::Secret;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;

use crate::error::{Error, Result};

pub(crate) const ROTATOR: &str = "gcp-iam";

/// The fields of a service-account key file that rotation uses.
///
/// `token_uri` is deliberately not read: a leaked file's token endpoint is
/// attacker-controlled for all we know, so tokens are always requested from
/// the rotator's configured endpoint.
#[derive(Clone)]
pub struct ServiceAccountKey {
    /// Service account email (`client_email`).
    pub client_email: String,
    /// Project that owns the account (`project_id`).
    pub project_id: String,
    /// Key id (`private_key_id`).
    pub private_key_id: String,
    private_key: Secret,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("project_id", &self.project_id)
            .field("private_key_id", &self.private_key_id)
            .field("private_key", &"REDACTED")
            .finish()
    }
}

#[derive(Deserialize)]
struct RawKeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    client_email: Option<String>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidLeakedCredential {
        rotator: ROTATOR.to_owned(),
        reason: reason.into(),
    }
}

impl ServiceAccountKey {
    /// Parses a key file's JSON.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLeakedCredential`] when the text is not a
    /// service-account key file or a field is missing. The message never
    /// quotes the file.
    pub fn parse(key_file: &Secret) -> Result<Self> {
        let raw: RawKeyFile = serde_json::from_slice(key_file.expose()).map_err(|e| {
            invalid(format!(
                "not a JSON key file (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if raw.kind.as_deref() != Some("service_account") {
            return Err(invalid("the key file's type is not service_account"));
        }
        let field = |value: Option<String>, name: &str| {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(format!("the key file has no {name}")))
        };
        let client_email = field(raw.client_email, "client_email")?;
        let project_id = match raw.project_id.filter(|p| !p.is_empty()) {
            Some(project) => project,
            None => project_from_email(&client_email)
                .ok_or_else(|| invalid("the key file has no project_id"))?,
        };
        Ok(ServiceAccountKey {
            client_email,
            project_id,
            private_key_id: field(raw.private_key_id, "private_key_id")?,
            private_key: Secret::new(field(raw.private_key, "private_key")?),
        })
    }

    /// Signs a JWT (RS256) with this key.
    pub(crate) fn sign_jwt(&self, claims: &serde_json::Value) -> Result<String> {
        let der = pem_to_der(&self.private_key)?;
        let pair = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| invalid(format!("the private key is not a PKCS#8 RSA key: {e}")))?;
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; pair.public().modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| invalid("signing the JWT failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// Takes the project from `NAME@PROJECT.iam.gserviceaccount.com`.
fn project_from_email(email: &str) -> Option<String> {
    let domain = email.split_once('@')?.1;
    domain
        .strip_suffix(".iam.gserviceaccount.com")
        .map(str::to_owned)
}

/// Decodes the base64 body of a `-----BEGIN PRIVATE KEY-----` block.
fn pem_to_der(pem: &Secret) -> Result<Vec<u8>> {
    let text = pem
        .expose_str()
        .ok_or_else(|| invalid("the private key is not text"))?;
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----") && !line.is_empty())
        .collect();
    if !text.contains("BEGIN PRIVATE KEY") {
        return Err(invalid(
            "the private key is not a PKCS#8 PEM block (BEGIN PRIVATE KEY)",
        ));
    }
    STANDARD
        .decode(body)
        .map_err(|_| invalid("the private key's base64 is invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_type_rejected() {
        let file = Secret::new(r#"{"type":"authorized_user","client_email":"a@b"}"#);
        let error = ServiceAccountKey::parse(&file).unwrap_err();
        assert!(error.to_string().contains("service_account"));
    }

    #[test]
    fn project_derived_from_email() {
        assert_eq!(
            project_from_email("sa@my-project.iam.gserviceaccount.com").as_deref(),
            Some("my-project")
        );
    }

    #[test]
    fn parse_error_does_not_quote_file() {
        let file = Secret::new("{\"type\": \"service_account\", sentinel-secret-bytes");
        let error = ServiceAccountKey::parse(&file).unwrap_err();
        assert!(!error.to_string().contains("sentinel"));
    }
}
