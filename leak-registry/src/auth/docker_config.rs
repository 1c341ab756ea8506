//! Credentials from docker's `config.json`: `auths`, `credHelpers` and `credsStore`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use leak_core::Secret;
use serde::Deserialize;

use super::Credential;
use crate::error::{Error, Result};

/// A loaded docker `config.json`.
///
/// Lookup order for a registry host: its `credHelpers` entry, then its
/// `auths` entry when that contains a user name and password or an identity
/// token, then the `credsStore` helper. Keys of `auths` may carry a scheme
/// or a path (`https://host/v1/`); only the host is compared.
///
/// # Security
///
/// Helper programs are looked up as `docker-credential-NAME` on `PATH`, or in
/// the directory set with [`DockerConfig::with_helper_dir`]. Their output is
/// parsed, never logged.
#[derive(Clone, Default)]
pub struct DockerConfig {
    path: Option<PathBuf>,
    auths: HashMap<String, AuthEntry>,
    cred_helpers: HashMap<String, String>,
    creds_store: Option<String>,
    helper_dir: Option<PathBuf>,
}

#[derive(Clone, Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hosts: Vec<&String> = self.auths.keys().collect();
        hosts.sort();
        formatter
            .debug_struct("DockerConfig")
            .field("path", &self.path)
            .field("auths_hosts", &hosts)
            .field("cred_helpers", &self.cred_helpers)
            .field("creds_store", &self.creds_store)
            .finish()
    }
}

impl DockerConfig {
    /// Loads `$DOCKER_CONFIG/config.json`, or `$HOME/.docker/config.json`
    /// when `DOCKER_CONFIG` is unset. A missing file gives an empty config.
    ///
    /// # Errors
    ///
    /// [`Error::DockerConfig`] when the file exists but cannot be read or parsed.
    pub fn from_env() -> Result<Self> {
        let directory = match std::env::var_os("DOCKER_CONFIG") {
            Some(directory) => PathBuf::from(directory),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker"),
                None => return Ok(DockerConfig::default()),
            },
        };
        Self::load(&directory.join("config.json"))
    }

    /// Loads one config file; a missing file gives an empty config.
    ///
    /// # Errors
    ///
    /// [`Error::DockerConfig`] when the file exists but cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::DockerConfig {
            path: path.display().to_string(),
            reason,
        };
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig::default());
            }
            Err(error) => return Err(invalid(error.to_string())),
        };
        // serde_json errors name a line and column, never the value.
        let file: ConfigFile =
            serde_json::from_slice(&text).map_err(|error| invalid(error.to_string()))?;
        let auths = file
            .auths
            .into_iter()
            .map(|(key, entry)| (normalize_host(&key), entry))
            .collect();
        Ok(DockerConfig {
            path: Some(path.to_owned()),
            auths,
            cred_helpers: file.cred_helpers,
            creds_store: file.creds_store.filter(|store| !store.is_empty()),
            helper_dir: None,
        })
    }

    /// Runs credential helpers from `directory` instead of searching `PATH`.
    pub fn with_helper_dir(mut self, directory: impl Into<PathBuf>) -> Self {
        self.helper_dir = Some(directory.into());
        self
    }

    /// Returns the credential for `registry` (a host with optional port).
    ///
    /// # Errors
    ///
    /// [`Error::DockerConfig`] for an `auth` field that is not base64 of
    /// `user:password`, [`Error::CredentialHelper`] when a helper fails for a
    /// reason other than "credentials not found".
    pub fn credential_for(&self, registry: &str) -> Result<Credential> {
        let host = normalize_host(registry);
        if let Some(helper) = self.cred_helpers.get(&host) {
            return self.run_helper(helper, &host);
        }
        if let Some(credential) = self.auth_entry(&host)? {
            return Ok(credential);
        }
        match &self.creds_store {
            Some(store) => self.run_helper(store, &host),
            None => Ok(Credential::Anonymous),
        }
    }

    fn auth_entry(&self, host: &str) -> Result<Option<Credential>> {
        let Some(entry) = self.auths.get(host) else {
            return Ok(None);
        };
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(Secret::new(token))));
        }
        if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
            return Ok(Some(Credential::basic(
                username.clone(),
                password.as_bytes(),
            )));
        }
        match entry.auth.as_deref().filter(|auth| !auth.is_empty()) {
            Some(auth) => self.decode_auth(host, auth).map(Some),
            None => Ok(None),
        }
    }

    fn decode_auth(&self, host: &str, auth: &str) -> Result<Credential> {
        let invalid = || Error::DockerConfig {
            path: self.display_path(),
            reason: format!("auths.{host}.auth is not base64 of USER:PASSWORD"),
        };
        let decoded = Secret::new(
            base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| invalid())?,
        );
        let text = decoded.expose_str().ok_or_else(invalid)?;
        let (username, password) = text.split_once(':').ok_or_else(invalid)?;
        Ok(Credential::basic(username, password.as_bytes()))
    }

    fn run_helper(&self, name: &str, host: &str) -> Result<Credential> {
        let program = format!("docker-credential-{name}");
        let failed = |reason: String| Error::CredentialHelper {
            helper: program.clone(),
            registry: host.to_owned(),
            reason,
        };
        let path = match &self.helper_dir {
            Some(directory) => directory.join(&program),
            None => PathBuf::from(&program),
        };
        let mut child = Command::new(&path)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| failed(format!("could not start it: {error}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(host.as_bytes())
                .map_err(|error| failed(format!("could not write the host: {error}")))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|error| failed(format!("could not read its output: {error}")))?;
        let stdout = Secret::new(output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
            let stdout_text = String::from_utf8_lossy(stdout.expose()).to_lowercase();
            if stderr.contains("credentials not found")
                || stdout_text.contains("credentials not found")
            {
                return Ok(Credential::Anonymous);
            }
            return Err(failed(format!("it exited with {}", output.status)));
        }
        let parsed: HelperOutput = serde_json::from_slice(stdout.expose())
            .map_err(|_| failed("its output is not the expected JSON".to_owned()))?;
        Ok(helper_credential(parsed))
    }

    fn display_path(&self) -> String {
        self.path.as_ref().map_or_else(
            || "config.json".to_owned(),
            |path| path.display().to_string(),
        )
    }
}

fn helper_credential(output: HelperOutput) -> Credential {
    let secret = Secret::new(output.secret);
    if secret.is_empty() {
        return Credential::Anonymous;
    }
    // Docker helpers return identity tokens with the user name "<token>".
    if output.username == "<token>" {
        return Credential::IdentityToken(secret);
    }
    Credential::Basic {
        username: output.username,
        password: secret,
    }
}

/// Reduces `https://host:port/v1/` and similar keys to `host:port`.
fn normalize_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(directory: &Path, json: &str) -> PathBuf {
        let path = directory.join("config.json");
        std::fs::write(&path, json).unwrap();
        path
    }

    #[test]
    fn auths_entry_decodes_basic() {
        let directory = tempfile::tempdir().unwrap();
        let path = write_config(
            directory.path(),
            r#"{"auths":{"https://127.0.0.1:5000/v1/":{"auth":"dXNlcjpwYXNz"}}}"#,
        );
        let config = DockerConfig::load(&path).unwrap();
        let Credential::Basic { username, password } =
            config.credential_for("127.0.0.1:5000").unwrap()
        else {
            panic!("expected basic credentials");
        };
        assert_eq!(username, "user");
        assert_eq!(password.expose(), b"pass");
    }

    #[test]
    fn unknown_host_is_anonymous() {
        let directory = tempfile::tempdir().unwrap();
        let path = write_config(directory.path(), r#"{"auths":{}}"#);
        let config = DockerConfig::load(&path).unwrap();
        assert!(config.credential_for("other:1").unwrap().is_anonymous());
    }

    #[test]
    fn invalid_auth_field_rejected() {
        let directory = tempfile::tempdir().unwrap();
        let path = write_config(
            directory.path(),
            r#"{"auths":{"h:1":{"auth":"bm9jb2xvbg=="}}}"#,
        );
        let error = DockerConfig::load(&path)
            .unwrap()
            .credential_for("h:1")
            .unwrap_err();
        assert!(matches!(error, Error::DockerConfig { .. }));
    }

    #[test]
    fn identity_token_entry() {
        let directory = tempfile::tempdir().unwrap();
        let path = write_config(
            directory.path(),
            r#"{"auths":{"h:1":{"identitytoken":"refresh"}}}"#,
        );
        let credential = DockerConfig::load(&path)
            .unwrap()
            .credential_for("h:1")
            .unwrap();
        assert!(matches!(credential, Credential::IdentityToken(_)));
    }

    #[cfg(unix)]
    fn write_helper(directory: &Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let path = directory.join(format!("docker-credential-{name}"));
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn cred_helper_takes_precedence() {
        let directory = tempfile::tempdir().unwrap();
        write_helper(
            directory.path(),
            "fake",
            "#!/bin/sh\nread host\n[ \"$host\" = \"h:1\" ] || exit 1\necho '{\"ServerURL\":\"h:1\",\"Username\":\"helper-user\",\"Secret\":\"helper-pass\"}'\n",
        );
        let path = write_config(
            directory.path(),
            r#"{"auths":{"h:1":{"auth":"dXNlcjpwYXNz"}},"credHelpers":{"h:1":"fake"}}"#,
        );
        let config = DockerConfig::load(&path)
            .unwrap()
            .with_helper_dir(directory.path());
        let Credential::Basic { username, password } = config.credential_for("h:1").unwrap() else {
            panic!("expected basic credentials");
        };
        assert_eq!(username, "helper-user");
        assert_eq!(password.expose(), b"helper-pass");
    }

    #[cfg(unix)]
    #[test]
    fn creds_store_used_and_not_found_is_anonymous() {
        let directory = tempfile::tempdir().unwrap();
        write_helper(
            directory.path(),
            "store",
            "#!/bin/sh\nread host\nif [ \"$host\" = \"h:1\" ]; then echo '{\"Username\":\"<token>\",\"Secret\":\"idtoken\"}'; else echo 'credentials not found in native keychain'; exit 1; fi\n",
        );
        let path = write_config(directory.path(), r#"{"credsStore":"store"}"#);
        let config = DockerConfig::load(&path)
            .unwrap()
            .with_helper_dir(directory.path());
        assert!(matches!(
            config.credential_for("h:1").unwrap(),
            Credential::IdentityToken(_)
        ));
        assert!(config.credential_for("other:2").unwrap().is_anonymous());
    }

    #[cfg(unix)]
    #[test]
    fn helper_failure_names_helper_not_output() {
        let directory = tempfile::tempdir().unwrap();
        write_helper(
            directory.path(),
            "broken",
            "#!/bin/sh\necho sentinel-secret-out\nexit 3\n",
        );
        let path = write_config(directory.path(), r#"{"credsStore":"broken"}"#);
        let config = DockerConfig::load(&path)
            .unwrap()
            .with_helper_dir(directory.path());
        let error = config.credential_for("h:1").unwrap_err().to_string();
        assert!(error.contains("docker-credential-broken"), "{error}");
        assert!(!error.contains("sentinel-secret-out"), "{error}");
    }

    #[test]
    fn debug_hides_auth_values() {
        let directory = tempfile::tempdir().unwrap();
        let path = write_config(
            directory.path(),
            r#"{"auths":{"h:1":{"username":"u","password":"sentinel-pw"}}}"#,
        );
        let config = DockerConfig::load(&path).unwrap();
        assert!(!format!("{config:?}").contains("sentinel-pw"));
    }
}
