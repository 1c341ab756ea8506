//! The rotator's own AWS credentials: a hand-rolled subset of the standard
//! credential chain.
//!
//! Sources, in order: the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the profile named by
//! `AWS_PROFILE` (or `default`) in the shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`) and the shared
//! config file (`AWS_CONFIG_FILE` or `~/.aws/config`).
//!
//! Not supported, unlike the SDK's chain: `credential_process`, SSO,
//! web-identity tokens, assume-role profiles (`role_arn` with
//! `source_profile`), ECS container credentials and the EC2 instance
//! metadata service. None of them is ever contacted; configure static keys
//! or pass credentials to the builder instead.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use leak_core::Secret;

use crate::error::{Error, Result};

/// AWS credentials used to sign requests.
#[derive(Clone)]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"REDACTED")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "REDACTED"),
            )
            .finish()
    }
}

impl AwsCredentials {
    /// Builds static credentials.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: Secret) -> Self {
        AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
        }
    }

    /// Adds a session token.
    pub fn with_session_token(mut self, token: Secret) -> Self {
        self.session_token = Some(token);
        self
    }
}

/// Credentials and region read from the environment and shared files.
#[derive(Debug, Default)]
pub(crate) struct ResolvedConfig {
    pub(crate) credentials: Option<AwsCredentials>,
    pub(crate) region: Option<String>,
    pub(crate) tried: Vec<String>,
}

/// Resolves credentials and region from the environment and shared files.
pub(crate) fn resolve(env: &dyn Fn(&str) -> Option<String>) -> Result<ResolvedConfig> {
    let mut resolved = ResolvedConfig {
        region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
        ..ResolvedConfig::default()
    };
    resolved.tried.push("environment variables".to_owned());
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        let mut credentials = AwsCredentials::new(id, Secret::new(secret));
        credentials.session_token = env("AWS_SESSION_TOKEN").map(Secret::new);
        resolved.credentials = Some(credentials);
    }

    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
    let home = env("HOME").map(PathBuf::from);
    let credentials_file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
    let config_file = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/config")));

    let config_section = if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    };
    for (path, section) in [
        (credentials_file, profile.clone()),
        (config_file, config_section),
    ] {
        let Some(path) = path else { continue };
        resolved
            .tried
            .push(format!("profile {profile} in {}", path.display()));
        let Some(values) = read_section(&path, &section)? else {
            continue;
        };
        if resolved.region.is_none() {
            resolved.region = values.get("region").cloned();
        }
        if resolved.credentials.is_none() {
            resolved.credentials = credentials_from(&values);
        }
    }
    Ok(resolved)
}

fn credentials_from(values: &BTreeMap<String, String>) -> Option<AwsCredentials> {
    let id = values.get("aws_access_key_id")?;
    let secret = values.get("aws_secret_access_key")?;
    let mut credentials = AwsCredentials::new(id.clone(), Secret::new(secret.clone()));
    credentials.session_token = values
        .get("aws_session_token")
        .map(|t| Secret::new(t.clone()));
    Some(credentials)
}

/// Reads one `[section]` of an INI file; `None` when the file or section is
/// missing.
fn read_section(path: &std::path::Path, section: &str) -> Result<Option<BTreeMap<String, String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::MissingCredentials {
                rotator: "aws-iam".to_owned(),
                reason: format!("cannot read {}: {e}", path.display()),
            });
        }
    };
    Ok(parse_section(&text, section))
}

fn parse_section(text: &str, section: &str) -> Option<BTreeMap<String, String>> {
    let mut found = None;
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == section;
            if in_section {
                found.get_or_insert_with(BTreeMap::new);
            }
            continue;
        }
        if !in_section {
            continue;
        }
        if let (Some(values), Some((key, value))) = (found.as_mut(), line.split_once('=')) {
            values.insert(key.trim().to_lowercase(), value.trim().to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_over_files() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDENV".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-secret".to_owned()),
            "AWS_REGION" => Some("eu-west-1".to_owned()),
            _ => None,
        };
        let resolved = resolve(&env).unwrap();
        assert_eq!(resolved.credentials.unwrap().access_key_id, "AKIDENV");
        assert_eq!(resolved.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn named_profile_read_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(&credentials, "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n\n[ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = s\n").unwrap();
        std::fs::write(&config, "[profile ops]\nregion = ap-south-1\n").unwrap();
        let env = |name: &str| match name {
            "AWS_PROFILE" => Some("ops".to_owned()),
            "AWS_SHARED_CREDENTIALS_FILE" => Some(credentials.display().to_string()),
            "AWS_CONFIG_FILE" => Some(config.display().to_string()),
            _ => None,
        };
        let resolved = resolve(&env).unwrap();
        assert_eq!(resolved.credentials.unwrap().access_key_id, "AKIDOPS");
        assert_eq!(resolved.region.as_deref(), Some("ap-south-1"));
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let credentials = AwsCredentials::new("AKID", Secret::new("sentinel-aws-secret"));
        assert!(!format!("{credentials:?}").contains("sentinel"));
    }
}
