//! The rotation engine: plan, execute, journal, owner lock and resume.
//!
//! [`Engine::plan`] only reads. [`Engine::execute`] re-reads the owner's
//! credentials and rejects the plan if they differ from it. Then it runs
//! the steps: create the replacement, store it in the sink as pending,
//! verify it, promote it, deactivate and revoke the leaked credential, and
//! check that it is dead. Verification polls with backoff, because a fresh
//! AWS key can take up to a minute to authenticate. A replacement that
//! never verifies is rolled back: it is revoked and discarded from the
//! sink, and anything deactivated is reactivated.
//!
//! Every side effect is journaled (see [`Record`]) and the owner is locked
//! for the whole run. [`Engine::resume`] continues an unfinished journal
//! after re-reading the provider's state. A create whose outcome was not
//! recorded is never replayed blindly: a key that appeared at the provider
//! is revoked as an orphan. A replacement that was created but not promoted
//! is revoked and created again, and an interrupted revoke is retried.

mod journal;
mod lock;
mod plan;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use leak_core::{Fingerprint, Secret};
use serde::Serialize;

pub use journal::{JournalEntry, Outcome, Record, read_journal};
pub use plan::{Plan, PlanOptions, PlannedCredential, Step, Strategy};

use crate::error::{Error, Result};
use crate::rotator::{LeakedCredential, Owner, Rotator};
use crate::sink::SecretSink;

/// How long and how often the engine verifies credentials.
#[derive(Clone, Debug)]
pub struct VerifyPolicy {
    /// How long a replacement may take to verify as live before the
    /// rotation is rolled back; `None` uses the rotator's
    /// [`Capabilities::max_propagation`](crate::Capabilities::max_propagation).
    pub new_key_timeout: Option<Duration>,
    /// How long to keep checking that a revoked credential is dead before
    /// recording it as unconfirmed.
    pub revoked_timeout: Duration,
    /// First delay between two checks; it doubles up to `max_interval`.
    pub initial_interval: Duration,
    /// Maximum delay between two checks.
    pub max_interval: Duration,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            new_key_timeout: None,
            revoked_timeout: Duration::from_secs(60),
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(10),
        }
    }
}

/// The result of an executed or resumed rotation.
#[derive(Clone, Debug, Serialize)]
pub struct ExecutionReport {
    /// The rotation's end state.
    pub outcome: Outcome,
    /// Rotator that ran it.
    pub rotator: String,
    /// Owner of the rotated credential.
    pub owner: Owner,
    /// Leaked key id.
    pub leaked_key_id: String,
    /// Replacement key id, when one was created and kept.
    pub new_key_id: Option<String>,
    /// Fingerprint of the replacement secret.
    pub new_fingerprint: Option<Fingerprint>,
    /// Whether the leaked credential was confirmed dead after revoking:
    /// `None` when it was not revoked.
    pub leaked_dead_confirmed: Option<bool>,
    /// Journal of this rotation.
    pub journal: PathBuf,
}

/// Runs rotations for one rotator into one sink.
#[derive(Debug)]
pub struct Engine {
    rotator: Arc<dyn Rotator>,
    sink: Arc<dyn SecretSink>,
    journal_dir: PathBuf,
    verify: VerifyPolicy,
    stop_after: Option<usize>,
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    rotator: Arc<dyn Rotator>,
    sink: Option<Arc<dyn SecretSink>>,
    journal_dir: Option<PathBuf>,
    verify: VerifyPolicy,
    stop_after: Option<usize>,
}

impl EngineBuilder {
    /// Starts a builder for `rotator`.
    pub fn new(rotator: Arc<dyn Rotator>) -> Self {
        EngineBuilder {
            rotator,
            sink: None,
            journal_dir: None,
            verify: VerifyPolicy::default(),
            stop_after: None,
        }
    }

    /// Sets where new secrets go (required).
    pub fn with_sink(mut self, sink: Arc<dyn SecretSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Sets the directory for journals and owner locks (required; created
    /// when missing).
    pub fn with_journal_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.journal_dir = Some(dir.into());
        self
    }

    /// Sets verification timing.
    pub fn with_verify_policy(mut self, policy: VerifyPolicy) -> Self {
        self.verify = policy;
        self
    }

    /// Makes execution stop right after the given journal record (counted
    /// from one, per run) is written, returning [`Error::Stopped`] and doing
    /// nothing more, as a crash at that point would. This is a fault
    /// injection hook for crash tests.
    pub fn with_stop_after_records(mut self, records: usize) -> Self {
        self.stop_after = Some(records);
        self
    }

    /// Builds the engine.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the sink or journal directory is
    /// missing, and [`Error::Journal`] when the directory cannot be created.
    pub fn build(self) -> Result<Engine> {
        let sink = self
            .sink
            .ok_or_else(|| Error::config("sink", "a sink is required (with_sink)"))?;
        let journal_dir = self.journal_dir.ok_or_else(|| {
            Error::config(
                "journal_dir",
                "a journal directory is required (with_journal_dir)",
            )
        })?;
        std::fs::create_dir_all(&journal_dir).map_err(|source| Error::Journal {
            path: journal_dir.clone(),
            source,
        })?;
        if self.verify.initial_interval.is_zero() {
            return Err(Error::config(
                "verify.initial_interval",
                "must be greater than zero",
            ));
        }
        Ok(Engine {
            rotator: self.rotator,
            sink,
            journal_dir,
            verify: self.verify,
            stop_after: self.stop_after,
        })
    }
}

impl Engine {
    /// Starts an [`EngineBuilder`].
    pub fn builder(rotator: Arc<dyn Rotator>) -> EngineBuilder {
        EngineBuilder::new(rotator)
    }

    /// Returns the rotator.
    pub fn rotator(&self) -> &Arc<dyn Rotator> {
        &self.rotator
    }

    /// Plans the rotation of a leaked credential, reading provider state
    /// only.
    ///
    /// # Errors
    ///
    /// The rotator's errors ([`Error::KeyNotFound`],
    /// [`Error::TemporaryCredential`], ...) and [`Error::CredentialLimit`]
    /// when the owner is at its limit with another live credential.
    pub async fn plan(&self, leaked: &LeakedCredential, options: &PlanOptions) -> Result<Plan> {
        plan_rotation(self.rotator.as_ref(), leaked, options).await
    }

    /// Executes a plan. If the owner has an unfinished journal, that
    /// rotation is resumed first and its report returned instead.
    ///
    /// `leaked` supplies the leaked secret for the final dead check; without
    /// a secret the check only confirms that the provider no longer lists
    /// the key.
    ///
    /// # Errors
    ///
    /// [`Error::OwnerLocked`], [`Error::StateChanged`] when the owner's
    /// credentials differ from the plan, [`Error::NewKeyNotLive`] after a
    /// rollback, and provider, sink and journal errors. After an error other
    /// than these three the journal is unfinished and [`Engine::resume`]
    /// continues it.
    pub async fn execute(
        &self,
        plan: &Plan,
        leaked: Option<&LeakedCredential>,
    ) -> Result<ExecutionReport> {
        if plan.rotator != self.rotator.name() {
            return Err(Error::config(
                "plan.rotator",
                format!(
                    "the plan is for rotator {}, not {}",
                    plan.rotator,
                    self.rotator.name()
                ),
            ));
        }
        let lock = self.lock_owner(&plan.owner)?;
        if let Some(path) = self.unfinished_for(&plan.owner)?.into_iter().next() {
            tracing::warn!(rotator = %plan.rotator, owner = %plan.owner.id, journal = %path.display(), "resuming an unfinished rotation instead of starting a new one");
            return run::resume(self, lock, path, leaked_secret(leaked)).await;
        }
        run::execute(self, lock, plan, leaked_secret(leaked)).await
    }

    /// Continues the rotation recorded in an unfinished journal.
    ///
    /// # Errors
    ///
    /// As for [`Engine::execute`], plus [`Error::JournalCorrupt`].
    pub async fn resume(
        &self,
        journal: &Path,
        leaked: Option<&LeakedCredential>,
    ) -> Result<ExecutionReport> {
        let (progress, _) = journal::replay(journal)?;
        let lock = self.lock_owner(&progress.plan.owner)?;
        run::resume(self, lock, journal.to_owned(), leaked_secret(leaked)).await
    }

    /// Lists this rotator's unfinished journals, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] and [`Error::JournalCorrupt`].
    pub fn unfinished(&self) -> Result<Vec<PathBuf>> {
        journal::unfinished(
            &self.journal_dir,
            &format!("{}--", slug(self.rotator.name())),
        )
    }

    fn unfinished_for(&self, owner: &Owner) -> Result<Vec<PathBuf>> {
        journal::unfinished(&self.journal_dir, &format!("{}--", self.owner_stem(owner)))
    }

    fn lock_owner(&self, owner: &Owner) -> Result<lock::OwnerLock> {
        let path = self
            .journal_dir
            .join(format!("{}.lock", self.owner_stem(owner)));
        lock::OwnerLock::acquire(path, &owner.id)
    }

    fn new_journal_path(&self, owner: &Owner) -> PathBuf {
        self.journal_dir.join(format!(
            "{}--{}.jsonl",
            self.owner_stem(owner),
            journal::now_ms()
        ))
    }

    /// Returns the file-name stem shared by an owner's journals and lock:
    /// rotator, readable owner id and a hash of the exact owner id.
    fn owner_stem(&self, owner: &Owner) -> String {
        let exact = serde_json::to_string(owner).unwrap_or_else(|_| owner.id.clone());
        let hash = Fingerprint::of(exact.as_bytes());
        let short = &hash.as_str()["sha256:".len().."sha256:".len() + 12];
        format!("{}--{}-{short}", slug(self.rotator.name()), slug(&owner.id))
    }
}

/// Plans the rotation of a leaked credential with `rotator`, reading
/// provider state only. [`Engine::plan`] does the same; this needs no sink
/// or journal directory, for dry runs that must write nothing.
///
/// # Errors
///
/// As for [`Engine::plan`].
pub async fn plan_rotation(
    rotator: &dyn Rotator,
    leaked: &LeakedCredential,
    options: &PlanOptions,
) -> Result<Plan> {
    let identity = rotator.identify(leaked).await?;
    let credentials = rotator.list(&identity.owner).await?;
    let capabilities = rotator.capabilities();
    let plan = plan::build_plan(
        rotator.name(),
        &capabilities,
        identity.owner,
        &identity.leaked_key_id,
        leaked.fingerprint(),
        &credentials,
        options,
    )?;
    tracing::info!(rotator = %plan.rotator, owner = %plan.owner.id, key_id = %plan.leaked_key_id, strategy = ?plan.strategy, "planned rotation");
    Ok(plan)
}

fn leaked_secret(leaked: Option<&LeakedCredential>) -> Option<Secret> {
    leaked.and_then(|l| l.secret.clone())
}

/// Keeps letters, digits, `.`, `_` and `-`; replaces anything else with `_`.
fn slug(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .replace("--", "_-")
}

#[cfg(all(test, feature = "conformance"))]
mod tests {
    use super::*;
    use crate::conformance::MemoryRotator;

    #[tokio::test]
    async fn plan_rotation_writes_nothing() {
        let provider = MemoryRotator::new();
        let leaked = provider.plant_key("alice");

        let plan = plan_rotation(&provider, &leaked, &PlanOptions::default())
            .await
            .unwrap();

        assert_eq!(plan.owner.id, "alice");
        assert_eq!(plan.strategy, Strategy::CreateThenRevoke);
        assert_eq!(provider.keys("alice").len(), 1);
    }
}
