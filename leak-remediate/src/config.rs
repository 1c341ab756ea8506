//! The `--rotators` TOML file: which rotators run, their endpoints, where
//! new secrets and journals go, and how to reach the registry.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use leak_core::Secret;
use leak_registry::{Credential, DockerConfig};
use leak_rotators::aws::{AwsCredentials, AwsRotator};
use leak_rotators::gcp::{GcpAuth, GcpRotator};
use leak_rotators::http::HttpRotator;
use leak_rotators::{PlanOptions, Rotator, VerifyPolicy};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::remediation::RemediationBuilder;

/// The parsed `--rotators` file.
///
/// ```toml
/// # Directory for the remediation journal, rotation journals and locks.
/// journal_dir = "remediation-journal"
/// # Directory for new secrets: one file per rotated credential, mode 0600.
/// sink_dir = "new-secrets"
/// # At an owner's key limit, revoke the leaked key before creating its
/// # replacement (consumers see an outage). Default false: stop instead.
/// allow_revoke_first = false
///
/// [verify]
/// new_key_timeout_secs = 90   # default: the rotator's maximum propagation delay
/// revoked_timeout_secs = 60
/// initial_interval_ms = 1000
/// max_interval_ms = 10000
///
/// [registry]
/// username = "remediator"          # with password_file; default: docker config.json
/// password_file = "registry-password"
/// docker_config = "config.json"    # instead of $DOCKER_CONFIG/config.json
///
/// [aws]                            # the table enables the AWS IAM rotator
/// endpoint = "http://127.0.0.1:5000"   # IAM and STS; default: the AWS endpoints
/// # iam_endpoint, sts_endpoint, region: set one service apart
/// access_key_id = "AKIA..."        # the rotator's own key; default: the
/// secret_access_key_file = "key"   # standard AWS environment chain
///
/// [gcp]                            # the table enables the GCP IAM rotator
/// auth_file = "rotator-sa.json"    # default: Application Default Credentials
/// iam_url = "https://iam.googleapis.com/v1/"
/// token_url = "https://oauth2.googleapis.com/token"
///
/// [[http]]                         # one table per HTTP rotator
/// config = "service.toml"          # its TOML, as leak_rotators::http reads it
/// ```
///
/// Relative paths are relative to the directory of the configuration file.
/// A rotator runs only when its table is present, so a file without `[aws]`
/// and `[gcp]` never contacts a cloud.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediateConfig {
    /// Directory for journals and locks.
    pub journal_dir: Option<PathBuf>,
    /// Directory for new secrets.
    pub sink_dir: Option<PathBuf>,
    /// Allow revoking the leaked key before its replacement exists.
    #[serde(default)]
    pub allow_revoke_first: bool,
    /// Verification timing.
    #[serde(default)]
    pub verify: VerifyConfig,
    /// Registry access.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// The AWS IAM rotator, when present.
    pub aws: Option<AwsConfig>,
    /// The GCP IAM rotator, when present.
    pub gcp: Option<GcpConfig>,
    /// HTTP rotators.
    #[serde(default)]
    pub http: Vec<HttpConfig>,
    /// The directory of the file, against which relative paths resolve.
    #[serde(skip)]
    base: PathBuf,
}

/// The `[verify]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Seconds a new key may take to verify before the rotation rolls back.
    pub new_key_timeout_secs: Option<u64>,
    /// Seconds to keep checking that a revoked key is dead.
    pub revoked_timeout_secs: Option<u64>,
    /// First delay between checks, in milliseconds.
    pub initial_interval_ms: Option<u64>,
    /// Maximum delay between checks, in milliseconds.
    pub max_interval_ms: Option<u64>,
}

/// The `[registry]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// User name for basic auth or a token endpoint.
    pub username: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// A docker `config.json` to read credentials from.
    pub docker_config: Option<PathBuf>,
}

/// The `[aws]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// One endpoint for IAM and STS.
    pub endpoint: Option<String>,
    /// The IAM endpoint.
    pub iam_endpoint: Option<String>,
    /// The STS endpoint.
    pub sts_endpoint: Option<String>,
    /// The region for STS.
    pub region: Option<String>,
    /// The rotator's own access key id.
    pub access_key_id: Option<String>,
    /// File holding the rotator's own secret access key.
    pub secret_access_key_file: Option<PathBuf>,
}

/// The `[gcp]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpConfig {
    /// The rotator's credentials file (service_account or authorized_user).
    pub auth_file: Option<PathBuf>,
    /// IAM API base URL.
    pub iam_url: Option<String>,
    /// OAuth2 token endpoint.
    pub token_url: Option<String>,
}

/// One `[[http]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The HTTP rotator's TOML file.
    pub config: PathBuf,
}

impl RemediateConfig {
    /// Reads and parses a configuration file.
    ///
    /// # Errors
    ///
    /// [`Error::ConfigFile`] when it cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::ConfigFile {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
        let mut config = Self::from_toml(&text).map_err(|error| Error::ConfigFile {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
        config.base = path.parent().map(Path::to_owned).unwrap_or_default();
        Ok(config)
    }

    /// Parses configuration text; relative paths resolve against the
    /// current directory.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for invalid TOML or unknown keys.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|error| Error::config("rotators config", error.to_string()))
    }

    /// Applies the configuration to a builder: rotators, directories,
    /// verification and registry access.
    ///
    /// # Errors
    ///
    /// [`Error::Rotator`] when a rotator cannot be built,
    /// [`Error::ConfigFile`] when a referenced file cannot be read.
    pub fn apply(&self, mut builder: RemediationBuilder) -> Result<RemediationBuilder> {
        if let Some(dir) = &self.journal_dir {
            builder = builder.with_journal_dir(self.resolve(dir));
        }
        if let Some(dir) = &self.sink_dir {
            builder = builder.with_sink_dir(self.resolve(dir));
        }
        builder = builder
            .with_plan_options(PlanOptions {
                allow_revoke_first: self.allow_revoke_first,
            })
            .with_verify_policy(self.verify.policy());
        builder = self.apply_registry(builder)?;
        if let Some(aws) = &self.aws {
            builder = builder.with_rotator(self.aws_rotator(aws)?);
        }
        if let Some(gcp) = &self.gcp {
            builder = builder.with_rotator(self.gcp_rotator(gcp)?);
        }
        for http in &self.http {
            let rotator = HttpRotator::from_toml_file(&self.resolve(&http.config))
                .and_then(|builder| builder.build())
                .map_err(|source| {
                    Error::rotator(&format!("http ({})", http.config.display()), source)
                })?;
            builder = builder.with_rotator(Arc::new(rotator));
        }
        Ok(builder)
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }

    fn read_secret(&self, path: &Path) -> Result<Secret> {
        let path = self.resolve(path);
        let bytes = std::fs::read(&path).map_err(|error| Error::ConfigFile {
            path: path.clone(),
            reason: error.to_string(),
        })?;
        let text = String::from_utf8_lossy(&bytes);
        Ok(Secret::new(text.trim_end_matches(['\n', '\r']).as_bytes()))
    }

    fn apply_registry(&self, mut builder: RemediationBuilder) -> Result<RemediationBuilder> {
        let registry = &self.registry;
        match (&registry.username, &registry.password_file) {
            (Some(username), Some(file)) => {
                let password = self.read_secret(file)?;
                builder = builder
                    .with_registry_credential(Credential::basic(username, password.expose()));
            }
            (None, None) => {}
            _ => {
                return Err(Error::config(
                    "registry",
                    "username and password_file must be set together",
                ));
            }
        }
        if let Some(path) = &registry.docker_config {
            let path = self.resolve(path);
            let config = DockerConfig::load(&path).map_err(|error| Error::ConfigFile {
                path: path.clone(),
                reason: error.to_string(),
            })?;
            builder = builder.with_docker_config(config);
        }
        Ok(builder)
    }

    fn aws_rotator(&self, aws: &AwsConfig) -> Result<Arc<dyn Rotator>> {
        let mut builder = match (&aws.access_key_id, &aws.secret_access_key_file) {
            (Some(id), Some(file)) => AwsRotator::builder()
                .with_credentials(AwsCredentials::new(id, self.read_secret(file)?)),
            (None, None) => AwsRotator::from_env(),
            _ => {
                return Err(Error::config(
                    "aws",
                    "access_key_id and secret_access_key_file must be set together",
                ));
            }
        };
        if let Some(url) = &aws.endpoint {
            builder = builder.with_endpoint(url);
        }
        if let Some(url) = &aws.iam_endpoint {
            builder = builder.with_iam_endpoint(url);
        }
        if let Some(url) = &aws.sts_endpoint {
            builder = builder.with_sts_endpoint(url);
        }
        if let Some(region) = &aws.region {
            builder = builder.with_region(region);
        }
        let rotator = builder
            .build()
            .map_err(|source| Error::rotator("aws-iam", source))?;
        Ok(Arc::new(rotator))
    }

    fn gcp_rotator(&self, gcp: &GcpConfig) -> Result<Arc<dyn Rotator>> {
        let failed = |source| Error::rotator("gcp-iam", source);
        let auth = match &gcp.auth_file {
            Some(path) => GcpAuth::from_file_bytes(self.read_secret(path)?),
            None => GcpAuth::from_adc(),
        }
        .map_err(failed)?;
        let mut builder = GcpRotator::builder().with_auth(auth);
        if let Some(url) = &gcp.iam_url {
            builder = builder.with_iam_base_url(url);
        }
        if let Some(url) = &gcp.token_url {
            builder = builder.with_token_url(url);
        }
        Ok(Arc::new(builder.build().map_err(failed)?))
    }
}

impl VerifyConfig {
    fn policy(&self) -> VerifyPolicy {
        let defaults = VerifyPolicy::default();
        VerifyPolicy {
            new_key_timeout: self.new_key_timeout_secs.map(Duration::from_secs),
            revoked_timeout: self
                .revoked_timeout_secs
                .map_or(defaults.revoked_timeout, Duration::from_secs),
            initial_interval: self
                .initial_interval_ms
                .map_or(defaults.initial_interval, Duration::from_millis),
            max_interval: self
                .max_interval_ms
                .map_or(defaults.max_interval, Duration::from_millis),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let doc = include_str!("config.rs");
        let start = doc.find("/// ```toml\n").unwrap() + "/// ```toml\n".len();
        let end = start + doc[start..].find("/// ```\n").unwrap();
        let text: String = doc[start..end]
            .lines()
            .map(|line| line.strip_prefix("/// ").unwrap_or("").to_owned() + "\n")
            .collect();

        let config = RemediateConfig::from_toml(&text).unwrap();

        assert_eq!(config.http.len(), 1);
        assert!(config.aws.is_some());
        assert_eq!(config.verify.max_interval_ms, Some(10_000));
    }

    #[test]
    fn empty_config_enables_no_rotator() {
        let config = RemediateConfig::from_toml("").unwrap();
        assert!(config.aws.is_none());
        assert!(config.gcp.is_none());
        assert!(config.http.is_empty());
    }

    #[test]
    fn unknown_key_rejected() {
        let error = RemediateConfig::from_toml("[aws]\nendpont = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("endpont"));
    }

    #[test]
    fn verify_table_sets_policy() {
        let config = RemediateConfig::from_toml(
            "[verify]\ninitial_interval_ms = 50\nrevoked_timeout_secs = 5\n",
        )
        .unwrap();
        let policy = config.verify.policy();
        assert_eq!(policy.initial_interval, Duration::from_millis(50));
        assert_eq!(policy.revoked_timeout, Duration::from_secs(5));
        assert_eq!(policy.new_key_timeout, None);
    }

    #[test]
    fn aws_half_credentials_rejected() {
        let config =
            RemediateConfig::from_toml("[aws]\naccess_key_id = \"AKIAEXAMPLE\"\n").unwrap();
        let error = config
            .aws_rotator(config.aws.as_ref().unwrap())
            .unwrap_err();
        assert!(matches!(error, Error::InvalidConfig { .. }));
    }
}
