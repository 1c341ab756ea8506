//! [`HttpRotator`]: a rotator driven by templated HTTP requests.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use leak_core::Secret;
use url::Url;

use super::config::{HttpConfig, Mode, Operation, StepConfig};
use super::template::{Escape, Vars};
use crate::client::{HttpClient, Idempotency, Response, RetryPolicy};
use crate::error::{Error, Result};
use crate::rotator::{
    Capabilities, Credential, CredentialInfo, CredentialStatus, Identity, LeakedCredential, Owner,
    Rotator, Verification,
};

/// A rotator for any service with an HTTP API, configured in TOML (see
/// [`HttpConfig`]).
///
/// # Security
///
/// Every rendered URL must point at a host in `allowed_hosts`, checked
/// after templating, so a leaked value cannot redirect a request that
/// carries the rotator's own credential. Redirects are not followed.
/// Errors name the operation, step and host, never the rendered URL,
/// headers or body, because those may contain secrets. Prefer headers or
/// bodies for secrets in templates: `reqwest` and `hyper` may log request
/// URLs when their own debug logging is enabled.
#[derive(Debug)]
pub struct HttpRotator {
    config: HttpConfig,
    http: HttpClient,
    auth_value: Option<Secret>,
}

/// Builds an [`HttpRotator`].
#[derive(Debug)]
pub struct HttpRotatorBuilder {
    config: HttpConfig,
    auth_value: Option<Secret>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
}

impl HttpRotatorBuilder {
    /// Starts a builder from a parsed configuration.
    pub fn new(config: HttpConfig) -> Self {
        HttpRotatorBuilder {
            config,
            auth_value: None,
            timeout: None,
            retry: None,
        }
    }

    /// Sets the rotator's own credential instead of reading `auth.env`.
    pub fn with_auth_value(mut self, value: Secret) -> Self {
        self.auth_value = Some(value);
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

    /// Builds the rotator, reading `auth.env` when no value was set.
    ///
    /// # Errors
    ///
    /// [`Error::MissingCredentials`] when the auth variable is unset.
    pub fn build(self) -> Result<HttpRotator> {
        let auth_value = match (&self.config.auth, self.auth_value) {
            (_, Some(value)) => Some(value),
            (Some(auth), None) => {
                let value = std::env::var(&auth.env)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| Error::MissingCredentials {
                        rotator: self.config.name.clone(),
                        reason: format!("environment variable {} is not set", auth.env),
                    })?;
                Some(Secret::new(value))
            }
            (None, None) => None,
        };
        let http = HttpClient::new(
            &self.config.name,
            self.timeout.unwrap_or(Duration::from_secs(30)),
            self.retry.unwrap_or_default(),
        )?;
        Ok(HttpRotator {
            config: self.config,
            http,
            auth_value,
        })
    }
}

/// A rendered request.
struct Rendered {
    method: reqwest::Method,
    url: Url,
    headers: Vec<(String, String)>,
    body: Option<Body>,
}

enum Body {
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

impl HttpRotator {
    /// Starts a builder from a TOML file.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the file is unreadable or invalid.
    pub fn from_toml_file(path: &Path) -> Result<HttpRotatorBuilder> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                "http config",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Ok(HttpRotatorBuilder::new(HttpConfig::from_toml(&text)?))
    }

    fn name_str(&self) -> &str {
        &self.config.name
    }

    fn step_error(&self, operation: &str, index: usize, reason: String) -> Error {
        Error::UnexpectedResponse {
            rotator: self.config.name.clone(),
            operation: format!("{operation} step {}", index + 1),
            reason,
        }
    }

    fn render(
        &self,
        operation: &str,
        index: usize,
        step: &StepConfig,
        vars: &Vars,
    ) -> Result<Rendered> {
        let invalid = |reason: String| {
            Error::config(&format!("operations.{operation}.steps[{index}]"), reason)
        };
        let url_text = vars.render(&step.url, Escape::Url).map_err(invalid)?;
        let url = Url::parse(&url_text)
            .map_err(|e| invalid(format!("the rendered URL is invalid: {e}")))?;
        self.check_host(&url)?;

        let mut headers = Vec::new();
        for (name, template) in &step.headers {
            let value = vars.render(template, Escape::None).map_err(invalid)?;
            headers.push((name.clone(), value));
        }
        if step.auth
            && let (Some(auth), Some(value)) = (&self.config.auth, &self.auth_value)
        {
            let value = format!("{}{}", auth.prefix, value.expose_str().unwrap_or_default());
            headers.push((auth.header.clone(), value));
        }
        if headers
            .iter()
            .any(|(n, v)| n.contains(['\r', '\n']) || v.contains(['\r', '\n']))
        {
            return Err(invalid(
                "a rendered header contains a line break".to_owned(),
            ));
        }

        let body = match (&step.json, &step.form) {
            (Some(json), _) => Some(Body::Json(render_json(json, vars).map_err(invalid)?)),
            (None, Some(form)) => {
                let mut pairs = Vec::new();
                for (name, template) in form {
                    pairs.push((
                        name.clone(),
                        vars.render(template, Escape::None).map_err(invalid)?,
                    ));
                }
                Some(Body::Form(pairs))
            }
            (None, None) => None,
        };
        let method = reqwest::Method::from_bytes(step.method.as_bytes())
            .map_err(|_| invalid(format!("{:?} is not an HTTP method", step.method)))?;
        Ok(Rendered {
            method,
            url,
            headers,
            body,
        })
    }

    fn check_host(&self, url: &Url) -> Result<()> {
        let host = url.host_str().unwrap_or_default();
        let with_port = match url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let allowed = matches!(url.scheme(), "http" | "https")
            && self
                .config
                .allowed_hosts
                .iter()
                .any(|h| h == host || *h == with_port);
        if allowed {
            return Ok(());
        }
        Err(Error::HostNotAllowed {
            rotator: self.config.name.clone(),
            host: with_port,
        })
    }

    async fn send(
        &self,
        operation: &str,
        rendered: &Rendered,
        idempotency: Idempotency,
    ) -> Result<Response> {
        self.http
            .send(operation, idempotency, |client| {
                let mut request = client.request(rendered.method.clone(), rendered.url.clone());
                for (name, value) in &rendered.headers {
                    request = request.header(name, value);
                }
                request = match &rendered.body {
                    Some(Body::Json(json)) => request.json(json),
                    Some(Body::Form(form)) => request.form(form),
                    None => request,
                };
                Ok(request)
            })
            .await
    }

    /// Runs all steps but the last, then sends the last and returns its
    /// response unchecked.
    async fn run_until_last(
        &self,
        name: &str,
        operation: &Operation,
        vars: &mut Vars,
        idempotency: Idempotency,
    ) -> Result<Response> {
        let last = operation.steps.len() - 1;
        for (index, step) in operation.steps[..last].iter().enumerate() {
            let response = self.send_step(name, index, step, vars, idempotency).await?;
            self.check_and_extract(name, index, step, &response, vars)?;
        }
        self.send_step(name, last, &operation.steps[last], vars, idempotency)
            .await
    }

    async fn send_step(
        &self,
        name: &str,
        index: usize,
        step: &StepConfig,
        vars: &Vars,
        idempotency: Idempotency,
    ) -> Result<Response> {
        let rendered = self.render(name, index, step, vars)?;
        tracing::info!(rotator = %self.config.name, operation = name, step = index + 1, host = rendered.url.host_str().unwrap_or_default(), "sending request");
        self.send(name, &rendered, idempotency).await
    }

    /// Runs every step, checking each response and extracting variables.
    async fn run(
        &self,
        name: &str,
        operation: &Operation,
        vars: &mut Vars,
        idempotency: Idempotency,
    ) -> Result<Option<serde_json::Value>> {
        let response = self
            .run_until_last(name, operation, vars, idempotency)
            .await?;
        let last = operation.steps.len() - 1;
        self.check_and_extract(name, last, &operation.steps[last], &response, vars)
    }

    fn check_and_extract(
        &self,
        name: &str,
        index: usize,
        step: &StepConfig,
        response: &Response,
        vars: &mut Vars,
    ) -> Result<Option<serde_json::Value>> {
        let status_ok = match &step.expect_status {
            Some(statuses) => statuses.contains(&response.status),
            None => response.is_success(),
        };
        if !status_ok || response.is_html() {
            return Err(Error::Provider {
                rotator: self.config.name.clone(),
                operation: format!("{name} step {}", index + 1),
                status: response.status,
                code: if response.is_html() {
                    "html page".to_owned()
                } else {
                    "unexpected status".to_owned()
                },
                message: String::new(),
            });
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
        if !body_matches(step, json.as_ref()) {
            return Err(self.step_error(
                name,
                index,
                format!(
                    "the value at {} is not the expected one",
                    step.expect_pointer.as_deref().unwrap_or("")
                ),
            ));
        }
        for (variable, pointer) in &step.extract {
            let value = json
                .as_ref()
                .and_then(|j| j.pointer(pointer))
                .and_then(scalar_text)
                .ok_or_else(|| {
                    self.step_error(
                        name,
                        index,
                        format!("no value at JSON Pointer {pointer} for {variable}"),
                    )
                })?;
            vars.set(variable, value);
        }
        Ok(json)
    }

    fn operation_vars(&self, owner: &Owner) -> Vars {
        let mut vars = Vars::default();
        vars.set("owner", owner.id.clone());
        vars
    }

    fn not_supported(&self, operation: &str) -> Error {
        Error::NotSupported {
            rotator: self.config.name.clone(),
            operation: operation.to_owned(),
        }
    }

    async fn toggle(
        &self,
        name: &str,
        operation: Option<&Operation>,
        owner: &Owner,
        key_id: &str,
    ) -> Result<()> {
        let operation = operation.ok_or_else(|| self.not_supported(name))?;
        let mut vars = self.operation_vars(owner);
        vars.set("key_id", key_id);
        self.run(name, operation, &mut vars, Idempotency::Idempotent)
            .await?;
        Ok(())
    }
}

fn body_matches(step: &StepConfig, json: Option<&serde_json::Value>) -> bool {
    let Some(pointer) = &step.expect_pointer else {
        return true;
    };
    let expected = step
        .expect_value
        .as_ref()
        .and_then(|v| serde_json::to_value(v).ok());
    let actual = json.and_then(|j| j.pointer(pointer));
    match expected {
        Some(expected) => actual == Some(&expected),
        None => actual.is_some(),
    }
}

fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Converts a TOML body template to JSON, rendering every string.
fn render_json(value: &toml::Value, vars: &Vars) -> std::result::Result<serde_json::Value, String> {
    Ok(match value {
        toml::Value::String(template) => {
            serde_json::Value::String(vars.render(template, Escape::None)?)
        }
        toml::Value::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|v| render_json(v, vars))
                .collect::<std::result::Result<_, _>>()?,
        ),
        toml::Value::Table(table) => {
            let mut object = serde_json::Map::new();
            for (key, value) in table {
                object.insert(key.clone(), render_json(value, vars)?);
            }
            serde_json::Value::Object(object)
        }
        other => serde_json::to_value(other).map_err(|e| e.to_string())?,
    })
}

#[async_trait]
impl Rotator for HttpRotator {
    fn name(&self) -> &str {
        self.name_str()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kind: self.config.kind.clone(),
            max_credentials: self.config.max_credentials,
            can_deactivate: self.config.operations.deactivate.is_some(),
            can_create: self.config.mode == Mode::Rotate,
            max_propagation: Duration::from_secs(self.config.max_propagation_secs),
        }
    }

    async fn identify(&self, leaked: &LeakedCredential) -> Result<Identity> {
        let mut vars = Vars::default();
        if let Some(secret) = &leaked.secret {
            vars.set_secret("secret", secret.clone());
        }
        if let Some(key_id) = &leaked.key_id {
            vars.set("leaked_key_id", key_id.clone());
            vars.set("key_id", key_id.clone());
        }
        if let Some(operation) = &self.config.operations.identify {
            self.run("identify", operation, &mut vars, Idempotency::Idempotent)
                .await?;
        }
        let text = |name: &str| {
            vars.get(name)
                .and_then(|s| s.expose_str())
                .map(str::to_owned)
        };
        let owner = text("owner")
            .or_else(|| self.config.owner.clone())
            .ok_or_else(|| Error::InvalidLeakedCredential {
                rotator: self.config.name.clone(),
                reason:
                    "no owner: configure operations.identify extracting \"owner\", or set owner"
                        .to_owned(),
            })?;
        let key_id = text("key_id").ok_or_else(|| Error::InvalidLeakedCredential {
            rotator: self.config.name.clone(),
            reason: "no key id: pass one or configure operations.identify extracting \"key_id\""
                .to_owned(),
        })?;
        Ok(Identity {
            owner: Owner::new(owner),
            leaked_key_id: key_id,
        })
    }

    async fn list(&self, owner: &Owner) -> Result<Vec<CredentialInfo>> {
        let operation = &self.config.operations.list;
        let mut vars = self.operation_vars(owner);
        let json = self
            .run("list", operation, &mut vars, Idempotency::Idempotent)
            .await?;
        let items_pointer = operation.items.as_deref().unwrap_or("");
        let items = json
            .as_ref()
            .and_then(|j| j.pointer(items_pointer))
            .and_then(|v| v.as_array())
            .ok_or_else(|| {
                self.step_error(
                    "list",
                    operation.steps.len() - 1,
                    format!("no array at JSON Pointer {items_pointer}"),
                )
            })?;
        let id_pointer = operation.item_id.as_deref().unwrap_or("");
        let mut keys = Vec::new();
        for item in items {
            let id = item
                .pointer(id_pointer)
                .and_then(scalar_text)
                .ok_or_else(|| {
                    self.step_error(
                        "list",
                        operation.steps.len() - 1,
                        format!("an item has no id at {id_pointer}"),
                    )
                })?;
            let active = match &operation.item_active {
                Some(pointer) => item
                    .pointer(pointer)
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true),
                None => true,
            };
            keys.push(CredentialInfo {
                id,
                status: if active {
                    CredentialStatus::Active
                } else {
                    CredentialStatus::Inactive
                },
                created_at: None,
            });
        }
        Ok(keys)
    }

    async fn verify(&self, owner: &Owner, credential: &Credential) -> Result<Verification> {
        let operation = self
            .config
            .operations
            .verify
            .as_ref()
            .ok_or_else(|| self.not_supported("verify"))?;
        let mut vars = self.operation_vars(owner);
        vars.set("key_id", credential.id.clone());
        vars.set_secret("secret", credential.secret.clone());

        // Only a broken configuration is an error: any failure to get a
        // response leaves the secret's state unknown.
        let response = match self
            .run_until_last("verify", operation, &mut vars, Idempotency::Idempotent)
            .await
        {
            Ok(response) => response,
            Err(error @ Error::InvalidConfig { .. })
            | Err(error @ Error::HostNotAllowed { .. }) => return Err(error),
            Err(error) => return Ok(Verification::indeterminate(error.to_string())),
        };
        if response.is_html() {
            return Ok(Verification::indeterminate(format!(
                "HTTP {} with an HTML page",
                response.status
            )));
        }

        let live_statuses = operation.live_status.clone().unwrap_or_else(|| vec![200]);
        let dead_statuses = operation
            .dead_status
            .clone()
            .unwrap_or_else(|| vec![401, 403]);
        let last = &operation.steps[operation.steps.len() - 1];
        let json: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
        Ok(
            if live_statuses.contains(&response.status) && body_matches(last, json.as_ref()) {
                Verification::Live
            } else if dead_statuses.contains(&response.status) {
                Verification::dead(format!("HTTP {}", response.status))
            } else {
                Verification::indeterminate(format!("HTTP {}", response.status))
            },
        )
    }

    async fn create(&self, owner: &Owner) -> Result<Credential> {
        let operation = match (&self.config.operations.create, self.config.mode) {
            (Some(operation), Mode::Rotate) => operation,
            _ => return Err(self.not_supported("create")),
        };
        let mut vars = self.operation_vars(owner);
        self.run("create", operation, &mut vars, Idempotency::NotIdempotent)
            .await?;
        let id = vars
            .get("key_id")
            .and_then(|s| s.expose_str())
            .map(str::to_owned)
            .unwrap_or_default();
        let secret = vars
            .get("secret")
            .cloned()
            .unwrap_or_else(|| Secret::new(Vec::new()));
        tracing::info!(rotator = %self.config.name, owner = %owner.id, key_id = %id, "created credential");
        Ok(Credential { id, secret })
    }

    async fn deactivate(&self, owner: &Owner, key_id: &str) -> Result<()> {
        self.toggle(
            "deactivate",
            self.config.operations.deactivate.as_ref(),
            owner,
            key_id,
        )
        .await
    }

    async fn reactivate(&self, owner: &Owner, key_id: &str) -> Result<()> {
        self.toggle(
            "reactivate",
            self.config.operations.reactivate.as_ref(),
            owner,
            key_id,
        )
        .await
    }

    async fn revoke(&self, owner: &Owner, key_id: &str) -> Result<()> {
        let operation = &self.config.operations.revoke;
        let mut vars = self.operation_vars(owner);
        vars.set("key_id", key_id);
        let response = self
            .run_until_last("revoke", operation, &mut vars, Idempotency::Idempotent)
            .await?;
        let gone_statuses = operation.gone_status.clone().unwrap_or_else(|| vec![404]);
        if gone_statuses.contains(&response.status) && !response.is_html() {
            tracing::info!(rotator = %self.config.name, owner = %owner.id, %key_id, "credential was already revoked");
            return Ok(());
        }
        let last = operation.steps.len() - 1;
        self.check_and_extract("revoke", last, &operation.steps[last], &response, &mut vars)?;
        tracing::info!(rotator = %self.config.name, owner = %owner.id, %key_id, "revoked credential");
        Ok(())
    }
}
