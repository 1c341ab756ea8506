//! The remediation plan: what leaked, where, whether it is live, how it is
//! rotated and what changes in the registry.

use std::collections::BTreeMap;

use leak_core::detect::Encoding;
use leak_core::{Fingerprint, Gap, Location};
use leak_rotators::LeakedCredential;
use serde::{Deserialize, Serialize};

use crate::scope::Scope;

/// A serialisable remediation plan. It carries fingerprints, redacted
/// previews, key ids and digests, never a secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemediationPlan {
    /// The scope as text, such as `http://127.0.0.1:5000/app`.
    pub scope: String,
    /// The registry host, for registry scopes.
    pub registry: Option<String>,
    /// One entry per leaked credential, in the order they are rotated.
    pub credentials: Vec<CredentialPlan>,
    /// Registry changes, in the order they run (replacements, then
    /// deletions); empty for an image file.
    pub registry_actions: Vec<RegistryAction>,
    /// Whether every image in scope was scanned completely. When false, a
    /// secret may be missing from the plan: see `gaps`.
    pub coverage_complete: bool,
    /// Parts of the scope the scan did not cover, or covered with a caveat.
    pub gaps: Vec<Gap>,
}

/// One leaked credential: its findings, where it is exposed, whether it is
/// live, and how it is rotated.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CredentialPlan {
    /// Fingerprint of the finding that names the credential (for AWS, the
    /// access key id). It identifies the credential in the journal and the
    /// report.
    pub id: Fingerprint,
    /// Credential kind, such as `aws-access-key-id`.
    pub kind: String,
    /// Redacted preview of the secret named by `id`.
    pub redacted: String,
    /// Every fingerprint that belongs to the credential (for AWS, the key id
    /// and the secret access key found with it).
    pub fingerprints: Vec<Fingerprint>,
    /// The provider's key id, when it is known apart from the secret (an AWS
    /// access key id; key ids are identifiers, not secrets).
    pub key_id: Option<String>,
    /// Every place the credential's findings were found.
    pub exposures: Vec<ExposurePlace>,
    /// Whether the leaked credential still authenticates.
    pub liveness: Liveness,
    /// The rotation method and its plan.
    pub rotation: Rotation,
}

/// One place where a secret of a credential was found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExposurePlace {
    /// Fingerprint of the secret found here.
    pub fingerprint: Fingerprint,
    /// Kind of that secret.
    pub kind: String,
    /// The image: a file path, or `REGISTRY/REPOSITORY:TAG`.
    pub image: String,
    /// The repository, for registry scopes.
    pub repository: Option<String>,
    /// Tags of that repository that lead to the image.
    pub tags: Vec<String>,
    /// The image manifest digest, when the image has one.
    pub manifest_digest: Option<String>,
    /// `os/arch[/variant]`, when known.
    pub platform: Option<String>,
    /// The place in the image: a layer and path, an `Env` key, a history step.
    pub location: Location,
    /// The encoding of the secret at that place.
    pub encoding: Encoding,
}

/// Whether a leaked credential still authenticates, as its rotator's
/// `verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Liveness {
    /// The provider accepted the secret: the credential is usable by anyone
    /// who pulls the image.
    Live,
    /// The provider rejected the secret.
    Dead {
        /// The provider's reason.
        reason: String,
    },
    /// The check ran but proved nothing (timeout, rate limit, odd response).
    Indeterminate {
        /// The response or failure received instead.
        reason: String,
    },
    /// No check ran, so nothing is known about whether it is live.
    NotChecked {
        /// Why, such as no rotator configured or no network.
        reason: String,
    },
}

/// The method that rotates a credential.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Rotation {
    /// A configured rotator planned the rotation.
    Rotator {
        /// The rotator's name, such as `aws-iam`.
        rotator: String,
        /// The rotation engine's plan.
        plan: leak_rotators::Plan,
    },
    /// A rotator is configured, but planning failed (the key is unknown, the
    /// owner is at its key limit, the provider is unreachable).
    PlanFailed {
        /// The rotator's name.
        rotator: String,
        /// The error, which names no secret.
        error: String,
    },
    /// No rotator handles this credential: a person rotates it.
    Manual {
        /// The reason no rotator runs.
        reason: String,
        /// Instructions for rotating it by hand: the console page or command.
        instructions: String,
    },
}

/// One change in the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum RegistryAction {
    /// Point a leaking tag at the fixed image.
    Replace {
        /// The repository.
        repository: String,
        /// The tag.
        tag: String,
        /// The leaking digest the tag points at now.
        old_digest: String,
        /// The fixed image, as `REPOSITORY:TAG`.
        fixed_image: String,
        /// The fixed image's digest, which the tag will point at.
        new_digest: String,
        /// Fingerprints of the credentials this removes from the tag.
        credentials: Vec<Fingerprint>,
    },
    /// Delete a leaking manifest (or the index that lists it) by digest.
    Delete {
        /// The repository.
        repository: String,
        /// The digest deleted.
        digest: String,
        /// Every tag that disappears with it: the registry deletes by
        /// digest, so sibling tags on the digest go too. The deletion runs
        /// only if this list is still exact.
        tags_removed: Vec<String>,
        /// Tags whose index lists the digest; they stay but lose the entry.
        indexes_referencing: Vec<String>,
        /// Fingerprints of the credentials this removes.
        credentials: Vec<Fingerprint>,
    },
}

impl RegistryAction {
    /// Describes the action in one line for the summary.
    pub fn describe(&self) -> String {
        match self {
            RegistryAction::Replace {
                repository,
                tag,
                fixed_image,
                new_digest,
                ..
            } => {
                format!("point {repository}:{tag} at the fixed image {fixed_image} ({new_digest})")
            }
            RegistryAction::Delete {
                repository,
                digest,
                tags_removed,
                ..
            } if tags_removed.is_empty() => {
                format!("delete {repository}@{digest} (no tag left on it)")
            }
            RegistryAction::Delete {
                repository,
                digest,
                tags_removed,
                ..
            } => format!(
                "delete {repository}@{digest}, removing tags {}",
                tags_removed.join(", ")
            ),
        }
    }
}

/// A plan together with the leaked secrets needed to execute it, which
/// stay in memory and are never serialised.
#[derive(Debug)]
pub struct PreparedPlan {
    /// The scope it was made for.
    pub scope: Scope,
    /// The plan.
    pub plan: RemediationPlan,
    /// Leaked credentials by credential id, for the rotators.
    pub(crate) leaked: BTreeMap<Fingerprint, LeakedCredential>,
}

impl PreparedPlan {
    /// Returns the leaked credential for a credential id, with its secret.
    pub fn leaked(&self, id: &Fingerprint) -> Option<&LeakedCredential> {
        self.leaked.get(id)
    }
}

#[cfg(test)]
mod tests {
    use leak_core::Secret;

    use super::*;

    const SENTINEL: &str = "sentinel-secret-value-0000000000000000000";

    #[test]
    fn prepared_plan_debug_hides_secrets() {
        let secret = Secret::new(SENTINEL);
        let id = secret.fingerprint();
        let prepared = PreparedPlan {
            scope: Scope::Image {
                path: "image.tar".into(),
            },
            plan: RemediationPlan {
                scope: "image.tar".to_owned(),
                registry: None,
                credentials: Vec::new(),
                registry_actions: Vec::new(),
                coverage_complete: true,
                gaps: Vec::new(),
            },
            leaked: BTreeMap::from([(
                id.clone(),
                LeakedCredential::new("generic-secret", None, Some(secret)),
            )]),
        };

        let printed = format!("{prepared:?}");
        let json = serde_json::to_string(&prepared.plan).unwrap();

        assert!(!printed.contains(SENTINEL));
        assert!(!json.contains(SENTINEL));
        assert!(prepared.leaked(&id).is_some());
    }
}
