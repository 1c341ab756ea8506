//! The remediation report: JSON for tools, and a summary for the person
//! handling the incident.

use std::path::{Path, PathBuf};

use leak_core::Fingerprint;
use leak_rotators::{ExecutionReport, JournalEntry, Outcome, Owner, read_journal};
use serde::{Deserialize, Serialize};

use crate::journal::State;
use crate::manual::manual_rotation;
use crate::plan::{CredentialPlan, PreparedPlan, RegistryAction, RemediationPlan, Rotation};

/// Whether the report is of a dry run or an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Nothing was changed.
    DryRun,
    /// The plan was executed.
    Execute,
}

/// The result of one credential's rotation, as the remediation journal
/// stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationResult {
    /// The rotation's end state.
    pub outcome: Outcome,
    /// The rotator that ran it.
    pub rotator: String,
    /// The credential's owner.
    pub owner: Owner,
    /// The leaked key id.
    pub leaked_key_id: String,
    /// The replacement key id, when one was created and kept.
    pub new_key_id: Option<String>,
    /// The replacement secret's fingerprint.
    pub new_fingerprint: Option<Fingerprint>,
    /// Whether the leaked key was confirmed dead after revoking.
    pub leaked_dead_confirmed: Option<bool>,
    /// The file that holds the replacement secret (mode 0600).
    pub sink: PathBuf,
    /// The rotation engine's journal.
    pub journal: PathBuf,
}

impl RotationResult {
    pub(crate) fn new(report: &ExecutionReport, sink: PathBuf) -> Self {
        RotationResult {
            outcome: report.outcome,
            rotator: report.rotator.clone(),
            owner: report.owner.clone(),
            leaked_key_id: report.leaked_key_id.clone(),
            new_key_id: report.new_key_id.clone(),
            new_fingerprint: report.new_fingerprint.clone(),
            leaked_dead_confirmed: report.leaked_dead_confirmed,
            sink,
            journal: report.journal.clone(),
        }
    }
}

/// What happened to one credential.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum CredentialStatus {
    /// Dry run: the plan's rotation would run.
    Planned,
    /// The rotation ran; its outcome says how it ended.
    Rotated {
        /// The result.
        result: RotationResult,
    },
    /// The rotation failed with an error.
    Failed {
        /// The error, which names no secret.
        error: String,
    },
    /// No rotator handles it: a person must rotate it.
    Manual {
        /// Where and how.
        instructions: String,
    },
}

/// One credential in the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CredentialOutcome {
    /// The credential id (a fingerprint).
    pub id: Fingerprint,
    /// The credential kind.
    pub kind: String,
    /// What happened.
    #[serde(flatten)]
    pub status: CredentialStatus,
    /// The rotation's journal records, in order, when a rotation ran.
    pub timeline: Vec<JournalEntry>,
}

/// What happened to one registry action.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ActionStatus {
    /// Dry run: the action would run.
    Planned,
    /// It ran, or was found already done.
    Done {
        /// What happened.
        detail: String,
    },
    /// It failed.
    Failed {
        /// The error.
        error: String,
    },
    /// It was not reached.
    NotRun,
}

/// One registry action in the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// The action.
    pub action: RegistryAction,
    /// What happened.
    pub result: ActionStatus,
}

/// The report of a dry run or an execution.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemediationReport {
    /// Dry run or execution.
    pub mode: Mode,
    /// The plan (for an execution, the journaled plan that ran).
    pub plan: RemediationPlan,
    /// One entry per credential, in plan order.
    pub credentials: Vec<CredentialOutcome>,
    /// One entry per registry action, in plan order.
    pub registry_actions: Vec<ActionOutcome>,
    /// What a person still has to do, in order.
    pub manual_steps: Vec<String>,
    /// The remediation journal, for an execution.
    pub journal: Option<PathBuf>,
}

impl RemediationReport {
    pub(crate) fn dry_run(prepared: &PreparedPlan) -> Self {
        let plan = prepared.plan.clone();
        let credentials = plan
            .credentials
            .iter()
            .map(|credential| CredentialOutcome {
                id: credential.id.clone(),
                kind: credential.kind.clone(),
                status: match &credential.rotation {
                    Rotation::Manual { instructions, .. } => CredentialStatus::Manual {
                        instructions: instructions.clone(),
                    },
                    _ => CredentialStatus::Planned,
                },
                timeline: Vec::new(),
            })
            .collect();
        let registry_actions = plan
            .registry_actions
            .iter()
            .map(|action| ActionOutcome {
                action: action.clone(),
                result: ActionStatus::Planned,
            })
            .collect();
        let mut report = RemediationReport {
            mode: Mode::DryRun,
            plan,
            credentials,
            registry_actions,
            manual_steps: Vec::new(),
            journal: None,
        };
        report.manual_steps = report.collect_manual_steps();
        report
    }

    pub(crate) fn executed(state: &State, journal: &Path) -> Self {
        let plan = state.plan.clone();
        let credentials = plan
            .credentials
            .iter()
            .map(|credential| credential_outcome(state, credential))
            .collect();
        let registry_actions = plan
            .registry_actions
            .iter()
            .enumerate()
            .map(|(index, action)| ActionOutcome {
                action: action.clone(),
                result: match (
                    state.actions_done.get(&index),
                    state.actions_failed.get(&index),
                ) {
                    (Some(detail), _) => ActionStatus::Done {
                        detail: detail.clone(),
                    },
                    (None, Some(error)) => ActionStatus::Failed {
                        error: error.clone(),
                    },
                    (None, None) => ActionStatus::NotRun,
                },
            })
            .collect();
        let mut report = RemediationReport {
            mode: Mode::Execute,
            plan,
            credentials,
            registry_actions,
            manual_steps: Vec::new(),
            journal: Some(journal.to_owned()),
        };
        report.manual_steps = report.collect_manual_steps();
        report
    }

    /// Returns true when every rotation and registry action that ran
    /// succeeded and nothing is left to a person except the steps every
    /// incident has (fixing the build, garbage collection).
    pub fn all_done(&self) -> bool {
        let rotated = self.credentials.iter().all(|credential| {
            matches!(
                &credential.status,
                CredentialStatus::Rotated { result }
                    if matches!(result.outcome, Outcome::Rotated | Outcome::Revoked)
            )
        });
        let cleaned = self
            .registry_actions
            .iter()
            .all(|action| matches!(action.result, ActionStatus::Done { .. }));
        self.mode == Mode::Execute && rotated && cleaned
    }

    fn collect_manual_steps(&self) -> Vec<String> {
        let mut steps = Vec::new();
        for (credential, outcome) in self.plan.credentials.iter().zip(&self.credentials) {
            let label = format!("{} {}", credential.kind, credential.redacted);
            match &outcome.status {
                CredentialStatus::Manual { instructions } => {
                    steps.push(format!("rotate {label} by hand: {instructions}"));
                }
                CredentialStatus::Failed { error } => steps.push(format!(
                    "rotation of {label} failed ({error}); run again to retry, or rotate it by hand: {}",
                    manual_rotation(&credential.kind, credential.key_id.as_deref())
                )),
                CredentialStatus::Rotated { result }
                    if !matches!(result.outcome, Outcome::Rotated | Outcome::Revoked) =>
                {
                    steps.push(format!(
                        "rotation of {label} ended {:?}; the leaked key is still active: see {}",
                        result.outcome,
                        result.journal.display()
                    ));
                }
                CredentialStatus::Rotated { result } => {
                    steps.push(format!(
                        "deploy the new secret of {label} from {} to its consumers, then delete that file",
                        result.sink.display()
                    ));
                    if result.leaked_dead_confirmed == Some(false) {
                        steps.push(format!(
                            "confirm that the leaked key {} of {label} no longer authenticates: it was revoked, but the provider still accepted it at the last check (some providers take minutes to propagate a revocation)",
                            result.leaked_key_id
                        ));
                    }
                }
                CredentialStatus::Planned => {
                    if let Rotation::PlanFailed { error, .. } = &credential.rotation {
                        steps.push(format!(
                            "rotation of {label} cannot be planned ({error}); fix that and run again, or rotate it by hand: {}",
                            manual_rotation(&credential.kind, credential.key_id.as_deref())
                        ));
                    }
                }
            }
        }
        for action in &self.registry_actions {
            if let ActionStatus::Failed { error } = &action.result {
                steps.push(format!(
                    "registry: {} failed ({error}); fix it and run again",
                    action.action.describe()
                ));
            }
        }
        if !self.plan.coverage_complete {
            steps.push(
                "part of the scope was not scanned (see gaps): scan it again once it is readable"
                    .to_owned(),
            );
        }
        if !self.plan.credentials.is_empty() {
            steps.push(
                "fix the build so the next image has no secret: pass secrets with \
                 `RUN --mount=type=secret`, not ARG, ENV or COPY"
                    .to_owned(),
            );
            steps.push(
                "copies already pulled (hosts, CI caches, mirrors, other registries) still hold \
                 the old secret; rotation is what makes them harmless"
                    .to_owned(),
            );
        }
        if self.plan.registry.is_some() && !self.plan.registry_actions.is_empty() {
            steps.push(
                "run the registry's garbage collection: deleted manifests' layer blobs stay \
                 downloadable by digest until it runs"
                    .to_owned(),
            );
        }
        steps
    }

    /// Renders the summary a person reads first: what leaked, where, what
    /// was done, and what is left to do by hand.
    pub fn summary(&self) -> String {
        crate::summary::render(self)
    }
}

fn credential_outcome(state: &State, credential: &CredentialPlan) -> CredentialOutcome {
    let status = if let Some(result) = state.rotations_done.get(&credential.id) {
        CredentialStatus::Rotated {
            result: result.clone(),
        }
    } else if let Some(error) = state.rotations_failed.get(&credential.id) {
        CredentialStatus::Failed {
            error: error.clone(),
        }
    } else {
        match &credential.rotation {
            Rotation::Manual { instructions, .. } => CredentialStatus::Manual {
                instructions: instructions.clone(),
            },
            _ => CredentialStatus::Failed {
                error: "no rotator is configured for this kind in this run".to_owned(),
            },
        }
    };
    let timeline = match &status {
        CredentialStatus::Rotated { result } => timeline(&result.journal),
        _ => Vec::new(),
    };
    CredentialOutcome {
        id: credential.id.clone(),
        kind: credential.kind.clone(),
        status,
        timeline,
    }
}

fn timeline(journal: &Path) -> Vec<JournalEntry> {
    match read_journal(journal) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(journal = %journal.display(), %error, "cannot read the rotation journal for the timeline");
            Vec::new()
        }
    }
}
