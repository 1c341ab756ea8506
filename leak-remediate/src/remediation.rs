//! The configured remediation and its builder.

use std::path::PathBuf;
use std::sync::Arc;

use leak_registry::{Credential, DockerConfig, RegistryClient};
use leak_rotators::mapping::RotatorRegistry;
use leak_rotators::{PlanOptions, Rotator, VerifyPolicy};

use crate::error::{Error, Result};
use crate::plan::PreparedPlan;
use crate::report::RemediationReport;
use crate::scope::Scope;

/// Builds a [`Remediation`].
#[derive(Debug, Default)]
pub struct RemediationBuilder {
    rotators: RotatorRegistry,
    journal_dir: Option<PathBuf>,
    sink_dir: Option<PathBuf>,
    verify: VerifyPolicy,
    plan_options: PlanOptions,
    registry_credential: Option<Credential>,
    docker_config: Option<DockerConfig>,
    replace_with: Option<String>,
    check_liveness: bool,
    stop_after: Option<usize>,
    rotation_stop_after: Option<usize>,
}

/// Plans and executes remediations: rotate every leaked credential, then
/// clean the registry, journaling each step.
#[derive(Debug)]
pub struct Remediation {
    pub(crate) rotators: RotatorRegistry,
    pub(crate) journal_dir: Option<PathBuf>,
    pub(crate) sink_dir: Option<PathBuf>,
    pub(crate) verify: VerifyPolicy,
    pub(crate) plan_options: PlanOptions,
    pub(crate) registry_credential: Option<Credential>,
    pub(crate) docker_config: Option<DockerConfig>,
    pub(crate) replace_with: Option<String>,
    pub(crate) check_liveness: bool,
    pub(crate) stop_after: Option<usize>,
    pub(crate) rotation_stop_after: Option<usize>,
}

impl RemediationBuilder {
    /// Starts a builder with no rotator: every credential is planned for
    /// rotation by hand until rotators are added.
    pub fn new() -> Self {
        RemediationBuilder {
            check_liveness: true,
            ..RemediationBuilder::default()
        }
    }

    /// Adds a rotator for its credential kind.
    pub fn with_rotator(mut self, rotator: Arc<dyn Rotator>) -> Self {
        self.rotators = self.rotators.with_rotator(rotator);
        self
    }

    /// Adds a rotator for a finding kind other than its own.
    pub fn with_rotator_for_kind(mut self, kind: &str, rotator: Arc<dyn Rotator>) -> Self {
        self.rotators = self.rotators.with_rotator_for_kind(kind, rotator);
        self
    }

    /// Sets the directory for the remediation journal, rotation journals
    /// and locks (required to execute).
    pub fn with_journal_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.journal_dir = Some(dir.into());
        self
    }

    /// Sets the directory new secrets are written to, one file per
    /// credential with mode 0600 (required to execute a rotation).
    pub fn with_sink_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sink_dir = Some(dir.into());
        self
    }

    /// Sets verification timing for the rotation engine.
    pub fn with_verify_policy(mut self, policy: VerifyPolicy) -> Self {
        self.verify = policy;
        self
    }

    /// Sets the rotation engine's planning options.
    pub fn with_plan_options(mut self, options: PlanOptions) -> Self {
        self.plan_options = options;
        self
    }

    /// Sets the registry credential. Without it, and without
    /// [`with_docker_config`](Self::with_docker_config), credentials come
    /// from `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub fn with_registry_credential(mut self, credential: Credential) -> Self {
        self.registry_credential = Some(credential);
        self
    }

    /// Reads registry credentials from this docker config.
    pub fn with_docker_config(mut self, config: DockerConfig) -> Self {
        self.docker_config = Some(config);
        self
    }

    /// Replaces leaking tags with this fixed image instead of deleting
    /// them: `TAG` in the same repository as each leaking tag, or
    /// `REPOSITORY:TAG` in the same registry. The leaking manifests are then
    /// deleted by digest, once no tag points at them.
    pub fn with_replace_with(mut self, image: impl Into<String>) -> Self {
        self.replace_with = Some(image.into());
        self
    }

    /// Turns the liveness check of leaked credentials on or off (on by
    /// default; it calls each rotator's read-only `verify`).
    pub fn with_liveness_check(mut self, enabled: bool) -> Self {
        self.check_liveness = enabled;
        self
    }

    /// Makes execution stop right after the given remediation journal
    /// record (counted from one, per run) is written, returning
    /// [`Error::Stopped`], as a crash at that point would. This is a fault
    /// injection hook for crash tests.
    pub fn with_stop_after_records(mut self, records: usize) -> Self {
        self.stop_after = Some(records);
        self
    }

    /// Passes a stop point to each rotation engine (see
    /// `leak_rotators::EngineBuilder::with_stop_after_records`); a stopped
    /// rotation ends the run with [`Error::RotationStopped`]. This is a
    /// fault injection hook for crash tests.
    pub fn with_rotation_stop_after_records(mut self, records: usize) -> Self {
        self.rotation_stop_after = Some(records);
        self
    }

    /// Builds the remediation.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero stop point or an empty
    /// `--replace-with` image.
    pub fn build(self) -> Result<Remediation> {
        if self.stop_after == Some(0) || self.rotation_stop_after == Some(0) {
            return Err(Error::config(
                "stop_after_records",
                "must be at least 1 (records are counted from one)",
            ));
        }
        if self.replace_with.as_deref().is_some_and(str::is_empty) {
            return Err(Error::config("replace_with", "the fixed image is empty"));
        }
        Ok(Remediation {
            rotators: self.rotators,
            journal_dir: self.journal_dir,
            sink_dir: self.sink_dir,
            verify: self.verify,
            plan_options: self.plan_options,
            registry_credential: self.registry_credential,
            docker_config: self.docker_config,
            replace_with: self.replace_with,
            check_liveness: self.check_liveness,
            stop_after: self.stop_after,
            rotation_stop_after: self.rotation_stop_after,
        })
    }
}

impl Remediation {
    /// Starts a [`RemediationBuilder`].
    pub fn builder() -> RemediationBuilder {
        RemediationBuilder::new()
    }

    /// Scans the scope and plans the remediation. This only reads: it scans,
    /// lists the registry, and calls rotators' read-only operations
    /// (`identify`, `list`, `verify`).
    ///
    /// # Errors
    ///
    /// [`Error::Scan`] when an image file cannot be opened,
    /// [`Error::Registry`] when the audit or a lookup fails, and
    /// [`Error::FixedImageLeaks`] when the fixed image leaks itself.
    pub async fn plan(&self, scope: &Scope) -> Result<PreparedPlan> {
        crate::planner::plan(self, scope).await
    }

    /// Executes a plan: rotations first, then registry actions, each step
    /// journaled. An unfinished remediation of the same scope in the
    /// journal directory is resumed instead, with its journaled plan.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] without a journal directory,
    /// [`Error::Locked`], [`Error::Journal`], [`Error::Registry`] when the
    /// registry client cannot be built, and the fault injection stops. A
    /// failed rotation or registry action is not an error: it is in the
    /// report.
    pub async fn execute(&self, prepared: &PreparedPlan) -> Result<RemediationReport> {
        crate::execute::execute(self, prepared).await
    }

    /// Builds the report of a dry run: the plan, nothing done.
    pub fn dry_run_report(&self, prepared: &PreparedPlan) -> RemediationReport {
        RemediationReport::dry_run(prepared)
    }

    /// Builds a registry client for a registry scope.
    pub(crate) fn registry_client(&self, scope: &Scope) -> Result<Option<RegistryClient>> {
        let Some(registry) = scope.registry() else {
            return Ok(None);
        };
        let mut builder = RegistryClient::builder(registry).with_insecure(scope.insecure());
        if let Some(credential) = &self.registry_credential {
            builder = builder.with_credential(credential.clone());
        } else {
            let config = match &self.docker_config {
                Some(config) => config.clone(),
                None => DockerConfig::from_env().map_err(|e| Error::registry(registry, e))?,
            };
            builder = builder.with_docker_config(config);
        }
        let client = builder.build().map_err(|e| Error::registry(registry, e))?;
        Ok(Some(client))
    }
}
