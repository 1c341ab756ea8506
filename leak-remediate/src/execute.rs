//! Executing a plan: rotations first, then registry actions, each step
//! journaled so an interrupted run resumes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use leak_core::Fingerprint;
use leak_registry::{Execution, Reference, RegistryClient};
use leak_rotators::{Engine, FileSink, LeakedCredential, Rotator};

use crate::error::{Error, Result};
use crate::journal::{
    JournalWriter, RemediationRecord, ScopeLock, now_ms, scope_prefix, unfinished,
};
use crate::plan::{CredentialPlan, PreparedPlan, RegistryAction};
use crate::remediation::Remediation;
use crate::report::{RemediationReport, RotationResult};

pub(crate) async fn execute(
    remediation: &Remediation,
    prepared: &PreparedPlan,
) -> Result<RemediationReport> {
    let journal_dir = remediation.journal_dir.clone().ok_or_else(|| {
        Error::config(
            "journal_dir",
            "a journal directory is required to execute (with_journal_dir, or journal_dir in --rotators)",
        )
    })?;
    std::fs::create_dir_all(&journal_dir).map_err(|error| Error::Journal {
        path: journal_dir.clone(),
        reason: error.to_string(),
    })?;
    let prefix = scope_prefix(&prepared.plan.scope);
    let _lock = ScopeLock::acquire(journal_dir.join(format!("{prefix}.lock")))?;
    let mut journal = match unfinished(&journal_dir, &prefix)? {
        Some(path) => {
            tracing::warn!(journal = %path.display(), "resuming an unfinished remediation with its journaled plan");
            JournalWriter::reopen(path, remediation.stop_after)?
        }
        None => {
            let path = journal_dir.join(format!("{prefix}-{}.jsonl", now_ms()));
            tracing::info!(journal = %path.display(), scope = %prepared.plan.scope, "executing remediation");
            JournalWriter::create(path, &prepared.plan, remediation.stop_after)?
        }
    };

    let runner = Runner {
        remediation,
        prepared,
        journal_dir,
    };
    runner.rotate_all(&mut journal).await?;
    runner.clean_registry(&mut journal).await?;
    journal.append(RemediationRecord::Finished)?;
    Ok(RemediationReport::executed(&journal.state, journal.path()))
}

/// Runs the steps of one execution.
struct Runner<'a> {
    remediation: &'a Remediation,
    prepared: &'a PreparedPlan,
    journal_dir: PathBuf,
}

impl Runner<'_> {
    async fn rotate_all(&self, journal: &mut JournalWriter) -> Result<()> {
        let credentials = journal.state.plan.credentials.clone();
        for credential in &credentials {
            if journal.state.rotations_done.contains_key(&credential.id) {
                continue;
            }
            let Some(rotator) = self.remediation.rotators.get(&credential.kind) else {
                continue;
            };
            tracing::info!(credential = %credential.id, kind = %credential.kind, rotator = rotator.name(), "rotating credential");
            journal.append(RemediationRecord::RotationIntent {
                credential: credential.id.clone(),
            })?;
            let started_ms = journal.state.started_ms;
            let record = match self.rotate(credential, rotator.clone(), started_ms).await {
                Ok(result) => RemediationRecord::RotationDone {
                    credential: credential.id.clone(),
                    result,
                },
                Err(RotateError::Stopped) => {
                    return Err(Error::RotationStopped {
                        credential: credential.id.to_string(),
                    });
                }
                Err(RotateError::Failed(error)) => {
                    tracing::warn!(credential = %credential.id, kind = %credential.kind, %error, "rotation failed; continuing with the other credentials");
                    RemediationRecord::RotationFailed {
                        credential: credential.id.clone(),
                        error,
                    }
                }
            };
            journal.append(record)?;
        }
        Ok(())
    }

    /// Rotates one credential: resumes its rotation journal from this
    /// remediation when there is one, else plans and executes anew.
    async fn rotate(
        &self,
        credential: &CredentialPlan,
        rotator: Arc<dyn Rotator>,
        started_ms: u64,
    ) -> std::result::Result<RotationResult, RotateError> {
        let dir = rotation_dir(&self.journal_dir, &credential.id);
        let sink_path = self.sink_path(credential).map_err(RotateError::from)?;
        let mut builder = Engine::builder(rotator)
            .with_sink(Arc::new(FileSink::new(&sink_path)))
            .with_journal_dir(&dir)
            .with_verify_policy(self.remediation.verify.clone());
        if let Some(records) = self.remediation.rotation_stop_after {
            builder = builder.with_stop_after_records(records);
        }
        let engine = builder.build().map_err(RotateError::from)?;
        let leaked = self.leaked(credential);

        let report = match journal_since(&dir, started_ms).map_err(RotateError::Failed)? {
            Some(path) => {
                tracing::info!(credential = %credential.id, journal = %path.display(), "resuming rotation from its journal");
                engine.resume(&path, Some(&leaked)).await?
            }
            None => {
                let plan = engine.plan(&leaked, &self.remediation.plan_options).await?;
                engine.execute(&plan, Some(&leaked)).await?
            }
        };
        Ok(RotationResult::new(&report, sink_path))
    }

    /// Returns the leaked credential with its secret from the prepared plan,
    /// or, when this run's scan no longer found it, one built from the key
    /// id alone.
    fn leaked(&self, credential: &CredentialPlan) -> LeakedCredential {
        match self.prepared.leaked(&credential.id) {
            Some(leaked) => leaked.clone(),
            None => LeakedCredential::new(&credential.kind, credential.key_id.clone(), None),
        }
    }

    fn sink_path(&self, credential: &CredentialPlan) -> Result<PathBuf> {
        let dir = self.remediation.sink_dir.as_ref().ok_or_else(|| {
            Error::config(
                "sink_dir",
                "a sink directory for new secrets is required to rotate (with_sink_dir, or sink_dir in --rotators)",
            )
        })?;
        std::fs::create_dir_all(dir).map_err(|error| Error::Journal {
            path: dir.clone(),
            reason: format!("cannot create the sink directory: {error}"),
        })?;
        Ok(dir.join(format!(
            "{}-{}.json",
            credential.kind,
            short_id(&credential.id)
        )))
    }

    async fn clean_registry(&self, journal: &mut JournalWriter) -> Result<()> {
        let actions = journal.state.plan.registry_actions.clone();
        if actions.is_empty() {
            return Ok(());
        }
        let client = self
            .remediation
            .registry_client(&self.prepared.scope)?
            .ok_or_else(|| Error::config("scope", "registry actions need a registry scope"))?;
        for (index, action) in actions.iter().enumerate() {
            if journal.state.actions_done.contains_key(&index) {
                continue;
            }
            tracing::info!(registry = %client.registry(), action = %action.describe(), "running registry action");
            journal.append(RemediationRecord::ActionIntent { index })?;
            let record = match run_action(&client, action).await {
                Ok(detail) => RemediationRecord::ActionDone { index, detail },
                Err(error) => {
                    let error = error.to_string();
                    tracing::warn!(action = %action.describe(), %error, "registry action failed; continuing with the others");
                    RemediationRecord::ActionFailed { index, error }
                }
            };
            journal.append(record)?;
        }
        Ok(())
    }
}

/// The reason one rotation did not finish.
enum RotateError {
    /// The engine's fault injection hook stopped it.
    Stopped,
    /// Any other failure, as text that names no secret.
    Failed(String),
}

impl From<leak_rotators::Error> for RotateError {
    fn from(error: leak_rotators::Error) -> Self {
        match error {
            leak_rotators::Error::Stopped { .. } => RotateError::Stopped,
            error => RotateError::Failed(error.to_string()),
        }
    }
}

impl From<Error> for RotateError {
    fn from(error: Error) -> Self {
        RotateError::Failed(error.to_string())
    }
}

/// Returns the first 16 hex digits of a credential id, for file names.
pub(crate) fn short_id(id: &Fingerprint) -> &str {
    let hex = &id.as_str()["sha256:".len()..];
    &hex[..16.min(hex.len())]
}

/// Returns the rotation journal directory of one credential. Each
/// credential has its own, so its journals are found without reading
/// others'.
pub(crate) fn rotation_dir(journal_dir: &Path, id: &Fingerprint) -> PathBuf {
    journal_dir.join("rotations").join(short_id(id))
}

/// Finds the newest rotation journal in `dir` written since `since_ms`, the
/// time this remediation started: an earlier one belongs to another run.
fn journal_since(dir: &Path, since_ms: u64) -> std::result::Result<Option<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot list {}: {error}", dir.display())),
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stamp = name
                .strip_suffix(".jsonl")?
                .rsplit("--")
                .next()?
                .parse()
                .ok()?;
            (stamp >= since_ms).then(|| (stamp, entry.path()))
        })
        .collect();
    found.sort();
    Ok(found.pop().map(|(_, path)| path))
}

async fn run_action(
    client: &RegistryClient,
    action: &RegistryAction,
) -> std::result::Result<String, leak_registry::Error> {
    match action {
        RegistryAction::Replace {
            repository,
            tag,
            fixed_image,
            new_digest,
            ..
        } => replace(client, repository, tag, fixed_image, new_digest).await,
        RegistryAction::Delete {
            repository,
            digest,
            tags_removed,
            ..
        } => delete(client, repository, digest, tags_removed).await,
    }
}

async fn replace(
    client: &RegistryClient,
    repository: &str,
    tag: &str,
    fixed_image: &str,
    new_digest: &str,
) -> std::result::Result<String, leak_registry::Error> {
    let current = client.manifest_digest(repository, tag).await?;
    if current.as_ref() == new_digest {
        return Ok(format!("{repository}:{tag} already points at {new_digest}"));
    }
    let target = Reference::new(client.registry(), repository, Some(tag))?;
    let source = Reference::parse(&format!("{}/{fixed_image}", client.registry()))?;
    let outcome = client.replace(&target, &source, Execution::Execute).await?;
    if outcome.plan.new_digest != new_digest {
        tracing::warn!(repository, tag, planned = new_digest, pushed = %outcome.plan.new_digest, "the fixed image changed since the plan");
    }
    Ok(format!(
        "{repository}:{tag} now points at {fixed_image} ({})",
        outcome.plan.new_digest
    ))
}

async fn delete(
    client: &RegistryClient,
    repository: &str,
    digest: &str,
    tags_removed: &[String],
) -> std::result::Result<String, leak_registry::Error> {
    let parsed = leak_registry::parse_digest(digest)?;
    match client.manifest_digest(repository, digest).await {
        Ok(_) => {}
        Err(leak_registry::Error::NotFound { .. }) => {
            return Ok(format!("{repository}@{digest} was already deleted"));
        }
        Err(error) => return Err(error),
    }
    let plan = client
        .plan_delete(repository, &parsed)
        .await?
        .accept(tags_removed)?;
    client.delete(plan, Execution::Execute).await?;
    Ok(if tags_removed.is_empty() {
        format!("deleted {repository}@{digest}")
    } else {
        format!(
            "deleted {repository}@{digest} with tags {}",
            tags_removed.join(", ")
        )
    })
}
