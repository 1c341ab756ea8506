//! From scanner findings to leaked credentials and the rotators that
//! handle them.
//!
//! | finding kind | rotator |
//! |---|---|
//! | `aws-access-key-id` (paired with an `aws-secret-access-key` found at the same place, when there is one) | [`AwsRotator`](crate::aws::AwsRotator) |
//! | `gcp-service-account` (the whole key file) | [`GcpRotator`](crate::gcp::GcpRotator) |
//! | any kind registered with [`RotatorRegistry::with_rotator_for_kind`] | that rotator, such as an [`HttpRotator`](crate::http::HttpRotator) |
//!
//! An `aws-secret-access-key` without an access key id cannot be rotated,
//! because IAM finds a key's owner only by its id; it is reported as
//! skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use leak_core::{Finding, Fingerprint, Location};

use crate::rotator::{LeakedCredential, Rotator};

/// Credential kinds from findings that the built-in rotators handle, and
/// the rotator name for each.
pub const BUILT_IN_KINDS: [(&str, &str); 3] = [
    ("aws-access-key-id", "aws-iam"),
    ("aws-secret-access-key", "aws-iam"),
    ("gcp-service-account", "gcp-iam"),
];

/// Returns the built-in rotator name for a finding kind.
pub fn built_in_rotator(kind: &str) -> Option<&'static str> {
    BUILT_IN_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, rotator)| *rotator)
}

/// A leaked credential derived from one or more findings.
#[derive(Debug, Clone)]
pub struct MappedCredential {
    /// The credential to rotate.
    pub leaked: LeakedCredential,
    /// Fingerprints of the findings it came from.
    pub fingerprints: Vec<Fingerprint>,
}

/// A finding that maps to no rotatable credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Finding kind.
    pub kind: String,
    /// Finding fingerprint.
    pub fingerprint: Fingerprint,
    /// Reason it was skipped.
    pub reason: String,
}

/// The result of [`map_findings`].
#[derive(Debug, Default)]
pub struct Mapped {
    /// Credentials to rotate, one per distinct secret.
    pub credentials: Vec<MappedCredential>,
    /// Findings left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Groups findings into leaked credentials: one per distinct secret, AWS
/// key ids paired with their secret access keys.
///
/// Findings must carry their secret (`Finding::secret`), as findings from
/// a scan in this process do. Findings read back from a JSON report have no
/// secret, so they are skipped with a reason.
pub fn map_findings(findings: &[Finding]) -> Mapped {
    let mut mapped = Mapped::default();
    let mut seen = BTreeSet::new();
    let mut paired_secrets = BTreeSet::new();

    for finding in findings {
        if !seen.insert(finding.fingerprint.clone()) {
            continue;
        }
        let skip = |reason: &str| Skipped {
            kind: finding.kind.clone(),
            fingerprint: finding.fingerprint.clone(),
            reason: reason.to_owned(),
        };
        let Some(secret) = finding.secret.clone() else {
            mapped.skipped.push(skip(
                "the secret is not in memory; scan the image again to read it",
            ));
            continue;
        };
        match finding.kind.as_str() {
            "aws-access-key-id" => {
                let Some(key_id) = secret.expose_str().map(str::to_owned) else {
                    mapped.skipped.push(skip("the access key id is not UTF-8"));
                    continue;
                };
                let partner = aws_partner(finding, findings);
                let mut fingerprints = vec![finding.fingerprint.clone()];
                if let Some(partner) = partner {
                    paired_secrets.insert(partner.fingerprint.clone());
                    fingerprints.push(partner.fingerprint.clone());
                }
                mapped.credentials.push(MappedCredential {
                    leaked: LeakedCredential::aws(key_id, partner.and_then(|p| p.secret.clone())),
                    fingerprints,
                });
            }
            "aws-secret-access-key" => {}
            kind => mapped.credentials.push(MappedCredential {
                leaked: LeakedCredential::new(kind, None, Some(secret)),
                fingerprints: vec![finding.fingerprint.clone()],
            }),
        }
    }

    for finding in findings
        .iter()
        .filter(|f| f.kind == "aws-secret-access-key")
    {
        let already = mapped
            .skipped
            .iter()
            .any(|s| s.fingerprint == finding.fingerprint);
        if !paired_secrets.contains(&finding.fingerprint) && !already {
            mapped.skipped.push(Skipped {
                kind: finding.kind.clone(),
                fingerprint: finding.fingerprint.clone(),
                reason: "no access key id was found with this secret access key; IAM finds a key's owner only by its id"
                    .to_owned(),
            });
            paired_secrets.insert(finding.fingerprint.clone());
        }
    }
    mapped
}

/// Finds the secret access key for an access key id: one found at the same
/// place, else the only one in the same image.
fn aws_partner<'a>(key_id: &Finding, findings: &'a [Finding]) -> Option<&'a Finding> {
    let secrets: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            f.kind == "aws-secret-access-key" && f.image == key_id.image && f.secret.is_some()
        })
        .collect();
    let place = place_of(&key_id.location);
    if let Some(same_place) = secrets.iter().find(|f| place_of(&f.location) == place) {
        return Some(same_place);
    }
    let distinct: BTreeSet<&Fingerprint> = secrets.iter().map(|f| &f.fingerprint).collect();
    if distinct.len() == 1 {
        secrets.first().copied()
    } else {
        None
    }
}

/// Identifies a place in an image: a file in a layer, the config's
/// environment, one history entry.
fn place_of(location: &Location) -> String {
    match location {
        Location::Layer {
            layer_index, path, ..
        } => format!("layer:{layer_index}:{path}"),
        Location::Env { .. } => "env".to_owned(),
        Location::Label { .. } => "labels".to_owned(),
        Location::History { index, .. } => format!("history:{index}"),
        Location::Annotation { digest, .. } => {
            format!("annotation:{}", digest.as_deref().unwrap_or(""))
        }
        Location::Cmd => "cmd".to_owned(),
        Location::Entrypoint => "entrypoint".to_owned(),
    }
}

/// Rotators by credential kind.
#[derive(Debug, Default, Clone)]
pub struct RotatorRegistry {
    by_kind: BTreeMap<String, Arc<dyn Rotator>>,
}

impl RotatorRegistry {
    /// Builds an empty registry.
    pub fn new() -> Self {
        RotatorRegistry::default()
    }

    /// Registers a rotator for its [`Capabilities::kind`](crate::Capabilities::kind)
    /// (and, for the AWS kind, also for `aws-secret-access-key`).
    pub fn with_rotator(self, rotator: Arc<dyn Rotator>) -> Self {
        let kind = rotator.capabilities().kind;
        let mut registry = self.with_rotator_for_kind(&kind, rotator.clone());
        if kind == "aws-access-key-id" {
            registry = registry.with_rotator_for_kind("aws-secret-access-key", rotator);
        }
        registry
    }

    /// Registers a rotator for a finding kind.
    pub fn with_rotator_for_kind(mut self, kind: &str, rotator: Arc<dyn Rotator>) -> Self {
        self.by_kind.insert(kind.to_owned(), rotator);
        self
    }

    /// Returns the rotator for a finding kind.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Rotator>> {
        self.by_kind.get(kind)
    }
}

#[cfg(test)]
mod tests {
    use leak_core::Secret;

    use super::*;

    fn finding(kind: &str, value: &str, location: Location) -> Finding {
        let secret = Secret::new(value);
        serde_json::from_value::<Finding>(serde_json::json!({
            "rule": kind,
            "kind": kind,
            "fingerprint": secret.fingerprint(),
            "redacted": secret.redacted(),
            "image": "app:1",
            "manifest_digest": null,
            "platform": null,
            "location": location,
            "encoding": "raw",
        }))
        .map(|mut f| {
            f.secret = Some(secret);
            f
        })
        .unwrap()
    }

    #[test]
    fn aws_id_paired_with_secret_in_env() {
        let findings = [
            finding(
                "aws-access-key-id",
                "AKIAABCDEFGHIJKLMNOP",
                Location::Env { key: "A".into() },
            ),
            finding(
                "aws-secret-access-key",
                "sentinel/secret/key/value/0000000000000",
                Location::Env { key: "B".into() },
            ),
        ];
        let mapped = map_findings(&findings);
        assert_eq!(mapped.credentials.len(), 1);
        let leaked = &mapped.credentials[0].leaked;
        assert_eq!(leaked.key_id.as_deref(), Some("AKIAABCDEFGHIJKLMNOP"));
        assert!(leaked.secret.is_some());
        assert!(mapped.skipped.is_empty());
    }

    #[test]
    fn lone_aws_secret_skipped() {
        let findings = [finding(
            "aws-secret-access-key",
            "sentinel/secret/key/value/0000000000000",
            Location::Cmd,
        )];
        let mapped = map_findings(&findings);
        assert!(mapped.credentials.is_empty());
        assert_eq!(mapped.skipped.len(), 1);
    }

    #[test]
    fn duplicate_secret_rotated_once() {
        let file = r#"{"type":"service_account"}"#;
        let findings = [
            finding("gcp-service-account", file, Location::Cmd),
            finding("gcp-service-account", file, Location::Entrypoint),
        ];
        assert_eq!(map_findings(&findings).credentials.len(), 1);
    }
}
