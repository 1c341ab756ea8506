//! The TOML configuration of an [`HttpRotator`](super::HttpRotator).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// A whole HTTP rotator configuration.
///
/// ```toml
/// name = "tokens"                 # rotator name in journals and errors
/// kind = "generic-secret"         # credential kind it rotates
/// allowed_hosts = ["127.0.0.1:8080"]
/// mode = "rotate"                 # or "revoke-only"
/// max_credentials = 5             # optional per-owner limit
///
/// [auth]                          # the rotator's own credential
/// header = "Authorization"
/// env = "TOKENS_ADMIN_TOKEN"      # read from this environment variable
/// prefix = "Bearer "
///
/// [operations.list]
/// items = "/tokens"               # JSON Pointer to the array of keys
/// item_id = "/id"
/// item_active = "/active"         # optional boolean
/// [[operations.list.steps]]
/// method = "GET"
/// url = "http://127.0.0.1:8080/owners/{{owner}}/tokens"
/// ```
///
/// See [`Operation`] and [`StepConfig`] for each operation's fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Rotator name.
    pub name: String,
    /// Credential kind, as in scanner findings.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Hosts (`host` or `host:port`) that requests may go to.
    pub allowed_hosts: Vec<String>,
    /// Whether the service can create credentials.
    #[serde(default)]
    pub mode: Mode,
    /// Maximum credentials per owner, when the service has a limit.
    #[serde(default)]
    pub max_credentials: Option<u32>,
    /// Seconds a new credential may take to work.
    #[serde(default)]
    pub max_propagation_secs: u64,
    /// Owner to use when there is no `identify` operation.
    #[serde(default)]
    pub owner: Option<String>,
    /// The rotator's own credential.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// The operations.
    pub operations: Operations,
}

fn default_kind() -> String {
    "generic-secret".to_owned()
}

/// Whether the service can issue replacements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Create, verify, revoke.
    #[default]
    Rotate,
    /// Revoke only: the API cannot create credentials.
    RevokeOnly,
}

/// Source of the rotator's own credential.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Header name.
    pub header: String,
    /// Environment variable holding the credential.
    pub env: String,
    /// Text put before the credential, such as `Bearer `.
    #[serde(default)]
    pub prefix: String,
}

/// The operations a service supports.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operations {
    /// Find the owner and key id of the leaked secret; extracts `owner` and
    /// `key_id`. Optional: without it the owner is the configured `owner`
    /// and the key id the leaked one's.
    #[serde(default)]
    pub identify: Option<Operation>,
    /// List the owner's keys (required); uses `items`, `item_id` and
    /// `item_active`.
    pub list: Operation,
    /// Check a secret (`{{secret}}`, `{{key_id}}`); uses `live_status` and
    /// `dead_status`.
    #[serde(default)]
    pub verify: Option<Operation>,
    /// Create a key; extracts `key_id` and `secret`.
    #[serde(default)]
    pub create: Option<Operation>,
    /// Deactivate key `{{key_id}}`.
    #[serde(default)]
    pub deactivate: Option<Operation>,
    /// Reactivate key `{{key_id}}`.
    #[serde(default)]
    pub reactivate: Option<Operation>,
    /// Revoke key `{{key_id}}` (required); `gone_status` counts as success.
    pub revoke: Operation,
}

/// One operation: ordered steps plus how to read the last response.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// Requests sent in order; values extracted by a step are variables for
    /// the steps after it.
    pub steps: Vec<StepConfig>,
    /// `list`: JSON Pointer to the array of keys in the last response.
    #[serde(default)]
    pub items: Option<String>,
    /// `list`: JSON Pointer to a key's id inside an item.
    #[serde(default)]
    pub item_id: Option<String>,
    /// `list`: JSON Pointer to a key's boolean "active" flag inside an item.
    #[serde(default)]
    pub item_active: Option<String>,
    /// `verify`: statuses that mean live (default 200).
    #[serde(default)]
    pub live_status: Option<Vec<u16>>,
    /// `verify`: statuses that mean dead (default 401 and 403).
    #[serde(default)]
    pub dead_status: Option<Vec<u16>>,
    /// `revoke`: statuses that mean "already gone" (default 404).
    #[serde(default)]
    pub gone_status: Option<Vec<u16>>,
}

/// One templated request.
///
/// Templates use `{{name}}` for variables: `owner`, `key_id`, `secret`,
/// `leaked_key_id` and anything extracted by an earlier step. In `url`
/// each value is percent-encoded; `json` bodies are built as JSON, so
/// values are escaped.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// URL template.
    pub url: String,
    /// Header templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body template: string values are templates.
    #[serde(default)]
    pub json: Option<toml::Value>,
    /// Form body template.
    #[serde(default)]
    pub form: Option<BTreeMap<String, String>>,
    /// Whether to send the rotator's own auth header (default true).
    #[serde(default = "default_true")]
    pub auth: bool,
    /// Statuses that mean success (default any 2xx). Not used by `verify`.
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    /// JSON Pointer into the response that must equal `expect_value`.
    #[serde(default)]
    pub expect_pointer: Option<String>,
    /// Value expected at `expect_pointer`.
    #[serde(default)]
    pub expect_value: Option<toml::Value>,
    /// Variables to extract from the JSON response: name to JSON Pointer.
    #[serde(default)]
    pub extract: BTreeMap<String, String>,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_true() -> bool {
    true
}

impl HttpConfig {
    /// Parses and checks a TOML configuration.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field at fault.
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: HttpConfig =
            toml::from_str(text).map_err(|e| Error::config("http config", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::config("name", "must not be empty"));
        }
        if self.allowed_hosts.is_empty() {
            return Err(Error::config(
                "allowed_hosts",
                "list at least one host the rotator may call",
            ));
        }
        let operations = &self.operations;
        if self.mode == Mode::Rotate && (operations.create.is_none() || operations.verify.is_none())
        {
            return Err(Error::config(
                "operations",
                "mode \"rotate\" needs operations.create and operations.verify; use mode = \"revoke-only\" otherwise",
            ));
        }
        if operations.deactivate.is_some() != operations.reactivate.is_some() {
            return Err(Error::config(
                "operations",
                "deactivate and reactivate must be configured together",
            ));
        }
        if operations.list.items.is_none() || operations.list.item_id.is_none() {
            return Err(Error::config(
                "operations.list",
                "items and item_id are required",
            ));
        }
        let all = [
            ("identify", operations.identify.as_ref()),
            ("list", Some(&operations.list)),
            ("verify", operations.verify.as_ref()),
            ("create", operations.create.as_ref()),
            ("deactivate", operations.deactivate.as_ref()),
            ("reactivate", operations.reactivate.as_ref()),
            ("revoke", Some(&operations.revoke)),
        ];
        for (name, operation) in all {
            let Some(operation) = operation else { continue };
            if operation.steps.is_empty() {
                return Err(Error::config(
                    &format!("operations.{name}.steps"),
                    "at least one step is required",
                ));
            }
            for step in &operation.steps {
                reqwest::Method::from_bytes(step.method.as_bytes()).map_err(|_| {
                    Error::config(
                        &format!("operations.{name}.steps.method"),
                        format!("{:?} is not an HTTP method", step.method),
                    )
                })?;
                if step.json.is_some() && step.form.is_some() {
                    return Err(Error::config(
                        &format!("operations.{name}.steps"),
                        "set json or form, not both",
                    ));
                }
            }
        }
        if let Some(create) = &operations.create {
            let extracted: Vec<&String> =
                create.steps.iter().flat_map(|s| s.extract.keys()).collect();
            for needed in ["key_id", "secret"] {
                if !extracted.iter().any(|k| k.as_str() == needed) {
                    return Err(Error::config(
                        "operations.create",
                        format!("a step must extract {needed:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}
