//! The read-only half of a rotation: choosing a strategy and its steps.

use leak_core::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rotator::{Capabilities, CredentialInfo, CredentialStatus, Owner};

/// Choices the caller makes before planning.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// When the owner is at its credential limit and the other credential
    /// is active and not leaked, revoke the leaked credential before
    /// creating its replacement instead of stopping. Consumers of the leaked
    /// credential see an outage until they read the new one.
    pub allow_revoke_first: bool,
}

/// A rotation worked out from the provider's current state.
///
/// A plan is serialisable so a dry run can print it and the journal can
/// store it. It contains key ids and fingerprints, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Rotator that will carry it out.
    pub rotator: String,
    /// Credential kind.
    pub kind: String,
    /// Owner of the leaked credential.
    pub owner: Owner,
    /// Leaked key id.
    pub leaked_key_id: String,
    /// Fingerprint of the leaked secret, when it was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_fingerprint: Option<Fingerprint>,
    /// The owner's credentials when the plan was made.
    pub credentials: Vec<PlannedCredential>,
    /// The order of freeing room, creating and revoking.
    pub strategy: Strategy,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Whether consumers of the leaked credential lose access before a
    /// verified replacement is in the sink.
    pub outage: bool,
    /// Notes for the person reading the plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One of the owner's credentials in a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedCredential {
    /// Provider key id.
    pub id: String,
    /// Status when the plan was made.
    pub status: CredentialStatus,
    /// Whether this is the leaked credential.
    pub leaked: bool,
}

/// The order in which a rotation frees room, creates and revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Create and verify the replacement, then deactivate and revoke the
    /// leaked credential. No outage.
    CreateThenRevoke,
    /// Delete another, inactive credential to make room, then as
    /// [`Strategy::CreateThenRevoke`].
    DeleteInactiveThenRotate,
    /// Revoke the leaked credential first to make room, then create its
    /// replacement. Consumers see an outage.
    RevokeFirst,
    /// The rotator cannot create credentials: revoke only. Consumers see an
    /// outage until someone issues a replacement.
    RevokeOnly,
}

/// One step of a plan, or a recovery step the engine adds during rollback
/// and resume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    /// Delete another credential of the owner to make room.
    RevokeOther {
        /// Key to delete.
        key_id: String,
    },
    /// Create the replacement credential.
    Create,
    /// Store the replacement in the sink as pending.
    PutPending,
    /// Verify the replacement, polling until it is live.
    VerifyNew,
    /// Make the replacement the current secret in the sink.
    Promote,
    /// Deactivate the leaked credential.
    Deactivate {
        /// Leaked key.
        key_id: String,
    },
    /// Revoke the leaked credential.
    Revoke {
        /// Leaked key.
        key_id: String,
    },
    /// Check that the leaked credential no longer works.
    VerifyRevoked {
        /// Leaked key.
        key_id: String,
    },
    /// Recovery: revoke a replacement that was created but not promoted.
    RevokeNew {
        /// Replacement key.
        key_id: String,
    },
    /// Recovery: revoke a key created by a create whose outcome was lost.
    RevokeOrphan {
        /// Key that appeared at the provider.
        key_id: String,
    },
    /// Recovery: drop a pending replacement from the sink.
    Discard {
        /// Replacement key.
        key_id: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// Recovery: reactivate a credential deactivated by this rotation.
    Reactivate {
        /// Key to reactivate.
        key_id: String,
    },
}

/// Builds a plan from the provider's state.
pub(crate) fn build_plan(
    rotator: &str,
    capabilities: &Capabilities,
    owner: Owner,
    leaked_key_id: &str,
    leaked_fingerprint: Option<Fingerprint>,
    credentials: &[CredentialInfo],
    options: &PlanOptions,
) -> Result<Plan> {
    let leaked = credentials
        .iter()
        .find(|c| c.id == leaked_key_id)
        .ok_or_else(|| Error::KeyNotFound {
            rotator: rotator.to_owned(),
            key_id: leaked_key_id.to_owned(),
        })?;
    let planned = credentials
        .iter()
        .map(|c| PlannedCredential {
            id: c.id.clone(),
            status: c.status,
            leaked: c.id == leaked_key_id,
        })
        .collect();
    let mut plan = Plan {
        rotator: rotator.to_owned(),
        kind: capabilities.kind.clone(),
        owner,
        leaked_key_id: leaked_key_id.to_owned(),
        leaked_fingerprint,
        credentials: planned,
        strategy: Strategy::CreateThenRevoke,
        steps: Vec::new(),
        outage: false,
        notes: Vec::new(),
    };
    let deactivate_leaked =
        capabilities.can_deactivate && leaked.status == CredentialStatus::Active;

    if !capabilities.can_create {
        plan.strategy = Strategy::RevokeOnly;
        plan.outage = true;
        plan.notes.push(format!(
            "{rotator} cannot create credentials: issue a replacement to the consumers yourself"
        ));
        plan.steps = revoke_steps(leaked_key_id, deactivate_leaked);
        return Ok(plan);
    }

    let at_limit = capabilities
        .max_credentials
        .is_some_and(|max| credentials.len() >= max as usize);
    if !at_limit {
        plan.steps = rotate_steps(leaked_key_id, deactivate_leaked);
        return Ok(plan);
    }

    let others: Vec<&CredentialInfo> = credentials
        .iter()
        .filter(|c| c.id != leaked_key_id)
        .collect();
    if let Some(inactive) = others
        .iter()
        .find(|c| c.status == CredentialStatus::Inactive)
    {
        plan.strategy = Strategy::DeleteInactiveThenRotate;
        plan.notes.push(format!(
            "the owner is at its limit of {} credentials: inactive key {} is deleted to make room",
            capabilities.max_credentials.unwrap_or_default(),
            inactive.id
        ));
        plan.steps.push(Step::RevokeOther {
            key_id: inactive.id.clone(),
        });
        plan.steps
            .extend(rotate_steps(leaked_key_id, deactivate_leaked));
        return Ok(plan);
    }

    if !options.allow_revoke_first {
        let blocking = others.first().map(|c| c.id.clone()).unwrap_or_default();
        return Err(Error::CredentialLimit {
            rotator: rotator.to_owned(),
            owner: plan.owner.id.clone(),
            limit: capabilities.max_credentials.unwrap_or_default(),
            blocking_key_id: blocking,
        });
    }
    plan.strategy = Strategy::RevokeFirst;
    plan.outage = true;
    plan.notes.push(
        "the owner is at its credential limit: the leaked key is revoked before its replacement exists"
            .to_owned(),
    );
    plan.steps = vec![
        Step::Revoke {
            key_id: leaked_key_id.to_owned(),
        },
        Step::Create,
        Step::PutPending,
        Step::VerifyNew,
        Step::Promote,
        Step::VerifyRevoked {
            key_id: leaked_key_id.to_owned(),
        },
    ];
    Ok(plan)
}

fn rotate_steps(leaked_key_id: &str, deactivate: bool) -> Vec<Step> {
    let mut steps = vec![
        Step::Create,
        Step::PutPending,
        Step::VerifyNew,
        Step::Promote,
    ];
    steps.extend(revoke_steps(leaked_key_id, deactivate));
    steps
}

fn revoke_steps(leaked_key_id: &str, deactivate: bool) -> Vec<Step> {
    let key_id = leaked_key_id.to_owned();
    let mut steps = Vec::new();
    if deactivate {
        steps.push(Step::Deactivate {
            key_id: key_id.clone(),
        });
    }
    steps.push(Step::Revoke {
        key_id: key_id.clone(),
    });
    steps.push(Step::VerifyRevoked { key_id });
    steps
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn caps(max: Option<u32>, can_create: bool) -> Capabilities {
        Capabilities {
            kind: "test".to_owned(),
            max_credentials: max,
            can_deactivate: true,
            can_create,
            max_propagation: Duration::ZERO,
        }
    }

    fn key(id: &str, status: CredentialStatus) -> CredentialInfo {
        CredentialInfo {
            id: id.to_owned(),
            status,
            created_at: None,
        }
    }

    fn plan(max: Option<u32>, keys: &[CredentialInfo], options: &PlanOptions) -> Result<Plan> {
        build_plan(
            "test",
            &caps(max, true),
            Owner::new("alice"),
            "LEAK",
            None,
            keys,
            options,
        )
    }

    #[test]
    fn plan_with_room_creates_then_revokes() {
        let plan = plan(
            Some(2),
            &[key("LEAK", CredentialStatus::Active)],
            &PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(plan.strategy, Strategy::CreateThenRevoke);
        assert!(!plan.outage);
        assert_eq!(plan.steps[0], Step::Create);
        assert!(plan.steps.contains(&Step::Deactivate {
            key_id: "LEAK".into()
        }));
    }

    #[test]
    fn plan_at_limit_deletes_inactive_other() {
        let keys = [
            key("LEAK", CredentialStatus::Active),
            key("OLD", CredentialStatus::Inactive),
        ];
        let plan = plan(Some(2), &keys, &PlanOptions::default()).unwrap();
        assert_eq!(plan.strategy, Strategy::DeleteInactiveThenRotate);
        assert_eq!(
            plan.steps[0],
            Step::RevokeOther {
                key_id: "OLD".into()
            }
        );
    }

    #[test]
    fn plan_at_limit_with_active_other_stops() {
        let keys = [
            key("LEAK", CredentialStatus::Active),
            key("LIVE", CredentialStatus::Active),
        ];
        let error = plan(Some(2), &keys, &PlanOptions::default()).unwrap_err();
        assert!(
            matches!(error, Error::CredentialLimit { ref blocking_key_id, .. } if blocking_key_id == "LIVE")
        );
    }

    #[test]
    fn plan_at_limit_revokes_first_when_allowed() {
        let keys = [
            key("LEAK", CredentialStatus::Active),
            key("LIVE", CredentialStatus::Active),
        ];
        let options = PlanOptions {
            allow_revoke_first: true,
        };
        let plan = plan(Some(2), &keys, &options).unwrap();
        assert_eq!(plan.strategy, Strategy::RevokeFirst);
        assert!(plan.outage);
        assert_eq!(
            plan.steps[0],
            Step::Revoke {
                key_id: "LEAK".into()
            }
        );
    }

    #[test]
    fn plan_without_create_revokes_only() {
        let keys = [key("LEAK", CredentialStatus::Active)];
        let plan = build_plan(
            "t",
            &caps(None, false),
            Owner::new("a"),
            "LEAK",
            None,
            &keys,
            &PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(plan.strategy, Strategy::RevokeOnly);
        assert!(plan.outage);
        assert!(!plan.steps.contains(&Step::Create));
    }

    #[test]
    fn plan_for_unknown_key_is_not_found() {
        let keys = [key("OTHER", CredentialStatus::Active)];
        let error = plan(Some(2), &keys, &PlanOptions::default()).unwrap_err();
        assert!(error.is_not_found());
    }
}
