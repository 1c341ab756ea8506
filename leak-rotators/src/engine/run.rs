//! Running plan steps, rollback and resume.

use std::collections::BTreeSet;
use std::path::PathBuf;

use leak_core::Secret;
use tokio::time::{Instant, sleep};

use super::journal::{JournalWriter, NewKey, Outcome, Record, replay};
use super::lock::OwnerLock;
use super::plan::{Plan, Step, Strategy};
use super::{Engine, ExecutionReport};
use crate::error::{Error, Result};
use crate::rotator::{Credential, CredentialInfo, Verification};
use crate::sink::SinkEntry;

/// One rotation in progress: the journal, the replacement's secret while it
/// is in memory, and the owner lock.
struct Run<'a> {
    engine: &'a Engine,
    journal: JournalWriter,
    credential: Option<Credential>,
    leaked_secret: Option<Secret>,
    _lock: OwnerLock,
}

/// Starts a fresh rotation.
pub(super) async fn execute(
    engine: &Engine,
    lock: OwnerLock,
    plan: &Plan,
    leaked_secret: Option<Secret>,
) -> Result<ExecutionReport> {
    let current = engine.rotator.list(&plan.owner).await?;
    check_unchanged(plan, &current)?;

    let path = engine.new_journal_path(&plan.owner);
    let journal = JournalWriter::create(path, plan, engine.stop_after)?;
    tracing::info!(rotator = %plan.rotator, owner = %plan.owner.id, journal = %journal.path().display(), "executing rotation");
    let mut run = Run {
        engine,
        journal,
        credential: None,
        leaked_secret,
        _lock: lock,
    };
    run.run_to_end().await
}

/// Continues an unfinished journal.
pub(super) async fn resume(
    engine: &Engine,
    lock: OwnerLock,
    path: PathBuf,
    leaked_secret: Option<Secret>,
) -> Result<ExecutionReport> {
    let (progress, seq) = replay(&path)?;
    let journal = JournalWriter::reopen(path, progress, seq, engine.stop_after)?;
    let mut run = Run {
        engine,
        journal,
        credential: None,
        leaked_secret,
        _lock: lock,
    };
    if run.journal.progress.finished.is_some() {
        return Ok(run.report());
    }
    tracing::info!(rotator = %run.plan().rotator, owner = %run.plan().owner.id, journal = %run.journal.path().display(), "resuming rotation");
    run.reconcile().await?;
    run.run_to_end().await
}

/// Compares the owner's credentials with those the plan was made from.
fn check_unchanged(plan: &Plan, current: &[CredentialInfo]) -> Result<()> {
    let expected: BTreeSet<(&str, _)> = plan
        .credentials
        .iter()
        .map(|c| (c.id.as_str(), c.status))
        .collect();
    let actual: BTreeSet<(&str, _)> = current.iter().map(|c| (c.id.as_str(), c.status)).collect();
    if expected == actual {
        return Ok(());
    }
    let describe = |set: &BTreeSet<(&str, _)>| {
        set.iter()
            .map(|(id, status)| format!("{id} {status:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(Error::StateChanged {
        rotator: plan.rotator.clone(),
        owner: plan.owner.id.clone(),
        detail: format!(
            "planned [{}], found [{}]",
            describe(&expected),
            describe(&actual)
        ),
    })
}

impl Run<'_> {
    fn plan(&self) -> &Plan {
        &self.journal.progress.plan
    }

    async fn run_to_end(&mut self) -> Result<ExecutionReport> {
        if let Some(reason) = self.journal.progress.rollback.clone() {
            self.rollback(&reason).await?;
            return Ok(self.report());
        }
        for index in 0..self.plan().steps.len() {
            if self.journal.progress.done.contains(&index) {
                continue;
            }
            let step = self.plan().steps[index].clone();
            self.run_step(index, step).await?;
        }
        let outcome = match self.plan().strategy {
            Strategy::RevokeOnly => Outcome::Revoked,
            _ => Outcome::Rotated,
        };
        self.journal.append(Record::Finished { outcome })?;
        tracing::info!(rotator = %self.plan().rotator, owner = %self.plan().owner.id, ?outcome, "rotation finished");
        Ok(self.report())
    }

    fn report(&self) -> ExecutionReport {
        let progress = &self.journal.progress;
        let kept = progress
            .new_key
            .as_ref()
            .filter(|_| !progress.new_key_revoked && progress.promoted);
        ExecutionReport {
            outcome: progress.finished.unwrap_or(Outcome::Aborted),
            rotator: progress.plan.rotator.clone(),
            owner: progress.plan.owner.clone(),
            leaked_key_id: progress.plan.leaked_key_id.clone(),
            new_key_id: kept.map(|k| k.id.clone()),
            new_fingerprint: kept.map(|k| k.fingerprint.clone()),
            leaked_dead_confirmed: progress.leaked_dead_confirmed,
            journal: self.journal.path().to_owned(),
        }
    }

    fn intent(&mut self, index: Option<usize>, step: &Step) -> Result<()> {
        tracing::info!(rotator = %self.plan().rotator, owner = %self.plan().owner.id, ?step, "rotation step starting");
        self.journal.append(Record::Intent {
            index,
            step: step.clone(),
        })
    }

    fn done(
        &mut self,
        index: Option<usize>,
        step: &Step,
        key: Option<&NewKey>,
        detail: Option<String>,
    ) -> Result<()> {
        tracing::info!(rotator = %self.plan().rotator, owner = %self.plan().owner.id, ?step, detail = detail.as_deref().unwrap_or(""), "rotation step done");
        self.journal.append(Record::Done {
            index,
            step: step.clone(),
            key_id: key.map(|k| k.id.clone()),
            fingerprint: key.map(|k| k.fingerprint.clone()),
            detail,
        })
    }

    /// Records a failed step whose side effect is known not to have happened.
    fn failed(&mut self, index: Option<usize>, step: &Step, error: &Error) -> Result<()> {
        tracing::warn!(rotator = %self.plan().rotator, owner = %self.plan().owner.id, ?step, %error, "rotation step failed");
        self.journal.append(Record::Failed {
            index,
            step: step.clone(),
            error: error.to_string(),
        })
    }

    async fn run_step(&mut self, index: usize, step: Step) -> Result<()> {
        self.intent(Some(index), &step)?;
        let owner = self.plan().owner.clone();
        let rotator = self.engine.rotator.clone();
        match &step {
            Step::RevokeOther { key_id } | Step::Revoke { key_id } => {
                rotator.revoke(&owner, key_id).await?;
                self.done(Some(index), &step, None, None)
            }
            Step::Deactivate { key_id } => {
                rotator.deactivate(&owner, key_id).await?;
                self.done(Some(index), &step, None, None)
            }
            Step::Create => self.create(index, &step).await,
            Step::PutPending => {
                let credential = self.replacement()?;
                let entry = SinkEntry {
                    rotator: rotator.name(),
                    owner: &owner,
                    credential: &credential,
                };
                self.engine.sink.put_pending(&entry)?;
                self.done(Some(index), &step, None, None)
            }
            Step::VerifyNew => self.verify_new(index, &step).await,
            Step::Promote => {
                let key = self.new_key()?;
                self.engine.sink.promote(&key.id, &key.fingerprint)?;
                self.done(Some(index), &step, None, None)
            }
            Step::VerifyRevoked { key_id } => {
                let detail = self.confirm_revoked(key_id).await?;
                self.done(Some(index), &step, None, Some(detail))
            }
            Step::RevokeNew { .. }
            | Step::RevokeOrphan { .. }
            | Step::Discard { .. }
            | Step::Reactivate { .. } => Err(Error::JournalCorrupt {
                path: self.journal.path().to_owned(),
                line: 1,
                reason: format!("recovery step {step:?} in the plan"),
            }),
        }
    }

    async fn create(&mut self, index: usize, step: &Step) -> Result<()> {
        let owner = self.plan().owner.clone();
        match self.engine.rotator.create(&owner).await {
            Ok(credential) => {
                let key = NewKey {
                    id: credential.id.clone(),
                    fingerprint: credential.fingerprint(),
                };
                self.credential = Some(credential);
                self.done(Some(index), step, Some(&key), None)
            }
            // A provider error status means nothing was created. Any other
            // failure leaves the intent open, so resume looks for an orphan.
            Err(error @ Error::Provider { .. }) => {
                self.failed(Some(index), step, &error)?;
                self.journal.append(Record::Finished {
                    outcome: Outcome::Aborted,
                })?;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    fn replacement(&self) -> Result<Credential> {
        self.credential
            .clone()
            .ok_or_else(|| Error::JournalCorrupt {
                path: self.journal.path().to_owned(),
                line: 1,
                reason:
                    "the replacement secret is not in memory; resume revokes it and creates another"
                        .to_owned(),
            })
    }

    fn new_key(&self) -> Result<NewKey> {
        self.journal
            .progress
            .new_key
            .clone()
            .ok_or_else(|| Error::JournalCorrupt {
                path: self.journal.path().to_owned(),
                line: 1,
                reason: "no created key is recorded".to_owned(),
            })
    }

    async fn verify_new(&mut self, index: usize, step: &Step) -> Result<()> {
        let credential = self.replacement()?;
        let timeout = self
            .engine
            .verify
            .new_key_timeout
            .unwrap_or_else(|| self.engine.rotator.capabilities().max_propagation);
        let result = self
            .poll(&credential, timeout, |v| matches!(v, Verification::Live))
            .await;
        if result == Verification::Live {
            return self.done(Some(index), step, None, Some("live".to_owned()));
        }

        let error = Error::NewKeyNotLive {
            rotator: self.plan().rotator.clone(),
            key_id: credential.id.clone(),
            reason: result.describe(),
        };
        self.failed(Some(index), step, &error)?;
        self.rollback(&result.describe()).await?;
        Err(error)
    }

    /// Verifies `credential` until `accept` is true or `timeout` passes;
    /// returns the last result. A fresh key often verifies as dead at first,
    /// so a dead result inside the window is not final.
    async fn poll(
        &self,
        credential: &Credential,
        timeout: std::time::Duration,
        accept: impl Fn(&Verification) -> bool,
    ) -> Verification {
        let policy = &self.engine.verify;
        let deadline = Instant::now() + timeout;
        let mut interval = policy.initial_interval;
        let mut attempt = 1u32;
        loop {
            let result = match self
                .engine
                .rotator
                .verify(&self.plan().owner, credential)
                .await
            {
                Ok(result) => result,
                Err(error) => Verification::indeterminate(error.to_string()),
            };
            if accept(&result) || Instant::now() + interval > deadline {
                return result;
            }
            tracing::info!(rotator = %self.plan().rotator, key_id = %credential.id, attempt, result = %result.describe(), delay_ms = interval.as_millis() as u64, "verification not conclusive yet, retrying");
            sleep(interval).await;
            interval = (interval * 2).min(policy.max_interval);
            attempt += 1;
        }
    }

    /// Checks that a revoked key is gone from the provider's list and, when
    /// the leaked secret is known, that it no longer authenticates.
    async fn confirm_revoked(&self, key_id: &str) -> Result<String> {
        let owner = &self.plan().owner;
        let listed = self.engine.rotator.list(owner).await?;
        if listed.iter().any(|c| c.id == key_id) {
            tracing::warn!(rotator = %self.plan().rotator, %key_id, "revoked key is still listed by the provider");
            return Ok("unconfirmed: the provider still lists the key".to_owned());
        }
        let Some(secret) = self
            .leaked_secret
            .clone()
            .filter(|_| key_id == self.plan().leaked_key_id)
        else {
            return Ok("confirmed".to_owned());
        };

        let credential = Credential {
            id: key_id.to_owned(),
            secret,
        };
        let timeout = self.engine.verify.revoked_timeout;
        let result = self
            .poll(&credential, timeout, |v| {
                matches!(v, Verification::Dead { .. })
            })
            .await;
        if let Verification::Dead { .. } = result {
            return Ok("confirmed".to_owned());
        }
        tracing::warn!(rotator = %self.plan().rotator, %key_id, result = %result.describe(), "the provider no longer lists the revoked key but did not reject its secret");
        Ok(format!("unconfirmed: {}", result.describe()))
    }

    /// Undoes a rotation whose replacement never verified.
    async fn rollback(&mut self, reason: &str) -> Result<()> {
        if self.journal.progress.rollback.is_none() {
            tracing::warn!(rotator = %self.plan().rotator, owner = %self.plan().owner.id, %reason, "rolling back rotation");
            self.journal.append(Record::Rollback {
                reason: reason.to_owned(),
            })?;
        }
        self.undo_replacement().await?;
        for key_id in self.journal.progress.deactivated.clone().into_iter().rev() {
            let step = Step::Reactivate {
                key_id: key_id.clone(),
            };
            self.intent(None, &step)?;
            self.engine
                .rotator
                .reactivate(&self.plan().owner, &key_id)
                .await?;
            self.done(None, &step, None, None)?;
        }
        self.journal.append(Record::Finished {
            outcome: Outcome::RolledBack,
        })
    }

    /// Revokes an unpromoted replacement and discards it from the sink.
    async fn undo_replacement(&mut self) -> Result<()> {
        let Some(key) = self.journal.progress.new_key.clone() else {
            return Ok(());
        };
        if !self.journal.progress.new_key_revoked {
            let step = Step::RevokeNew {
                key_id: key.id.clone(),
            };
            self.intent(None, &step)?;
            self.engine
                .rotator
                .revoke(&self.plan().owner, &key.id)
                .await?;
            self.done(None, &step, None, None)?;
        }
        let step = Step::Discard {
            key_id: key.id.clone(),
            fingerprint: key.fingerprint.clone(),
        };
        self.intent(None, &step)?;
        self.engine.sink.discard(&key.id, &key.fingerprint)?;
        self.credential = None;
        self.done(None, &step, None, None)
    }

    /// Brings an interrupted rotation to a state from which its remaining
    /// steps can run, after re-reading the provider's credentials.
    async fn reconcile(&mut self) -> Result<()> {
        if self.journal.progress.rollback.is_some() {
            return Ok(());
        }
        let current = self.engine.rotator.list(&self.plan().owner).await?;
        let known: BTreeSet<&str> = self
            .plan()
            .credentials
            .iter()
            .map(|c| c.id.as_str())
            .chain(self.journal.progress.new_key.iter().map(|k| k.id.as_str()))
            .collect();
        let unknown: Vec<String> = current
            .iter()
            .filter(|c| !known.contains(c.id.as_str()))
            .map(|c| c.id.clone())
            .collect();

        let create_open = matches!(self.journal.progress.open_intent, Some((_, Step::Create)));
        match (create_open, unknown.as_slice()) {
            (_, []) => {}
            (true, [orphan]) => self.revoke_orphan(orphan).await?,
            _ => {
                return Err(Error::StateChanged {
                    rotator: self.plan().rotator.clone(),
                    owner: self.plan().owner.id.clone(),
                    detail: format!(
                        "keys [{}] appeared that this rotation did not create",
                        unknown.join(", ")
                    ),
                });
            }
        }

        // The restart record may be missing even though the replacement was
        // already revoked, when the previous resume stopped in between.
        let progress = &self.journal.progress;
        let create_done = self
            .plan()
            .steps
            .iter()
            .position(|s| *s == Step::Create)
            .is_some_and(|index| progress.done.contains(&index));
        if progress.new_key.is_some() && !progress.promoted && create_done {
            self.restart_from_create().await?;
        }
        Ok(())
    }

    /// Revokes a key created by a create whose outcome was never recorded:
    /// its secret was lost with the crashed process.
    async fn revoke_orphan(&mut self, key_id: &str) -> Result<()> {
        tracing::warn!(rotator = %self.plan().rotator, owner = %self.plan().owner.id, %key_id, "revoking a key created by an interrupted create");
        let step = Step::RevokeOrphan {
            key_id: key_id.to_owned(),
        };
        self.intent(None, &step)?;
        self.engine
            .rotator
            .revoke(&self.plan().owner, key_id)
            .await?;
        self.done(None, &step, None, None)
    }

    /// Revokes a created but unpromoted replacement, whose secret is not in
    /// memory any more, and runs the plan again from its create step.
    async fn restart_from_create(&mut self) -> Result<()> {
        let Some(from) = self.plan().steps.iter().position(|s| *s == Step::Create) else {
            return Ok(());
        };
        self.undo_replacement().await?;
        self.journal.append(Record::Restart {
            from,
            reason: "the replacement was created but never promoted".to_owned(),
        })
    }
}
