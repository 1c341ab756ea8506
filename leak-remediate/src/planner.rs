//! Building a remediation plan: scan or audit, group by credential, check
//! liveness, plan rotations and registry actions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use leak_core::{Coverage, Finding, Fingerprint, Scanner};
use leak_registry::{Audit, Carrier, Reference, RegistryClient};
use leak_rotators::mapping::{MappedCredential, map_findings};
use leak_rotators::{Credential, LeakedCredential, Verification, plan_rotation};

use crate::error::{Error, Result};
use crate::manual::manual_rotation;
use crate::plan::{
    CredentialPlan, ExposurePlace, Liveness, PreparedPlan, RegistryAction, RemediationPlan,
    Rotation,
};
use crate::remediation::Remediation;
use crate::scope::Scope;

/// Findings of a scan or audit, before grouping.
#[derive(Debug, Default)]
struct Scanned {
    /// Findings with their secrets in memory.
    findings: Vec<Finding>,
    /// Every place, one per finding and carrying repository.
    places: Vec<ExposurePlace>,
    /// Registry carriers of each fingerprint.
    carriers: BTreeMap<Fingerprint, Vec<Carrier>>,
    coverage: Coverage,
}

pub(crate) async fn plan(remediation: &Remediation, scope: &Scope) -> Result<PreparedPlan> {
    let client = remediation.registry_client(scope)?;
    let scanned = match (scope, &client) {
        (Scope::Image { path }, _) => scan_image(path).await?,
        (_, Some(client)) => audit(client, scope).await?,
        (_, None) => return Err(Error::config("scope", "a registry scope names no registry")),
    };
    let mapped = map_findings(&scanned.findings);

    let mut credentials = Vec::new();
    let mut leaked = BTreeMap::new();
    for credential in mapped.credentials {
        let planned = plan_credential(remediation, &credential, &scanned).await;
        leaked.insert(planned.id.clone(), credential.leaked);
        credentials.push(planned);
    }
    for skipped in mapped.skipped {
        credentials.push(skipped_credential(&skipped, &scanned));
    }

    let registry_actions = match &client {
        Some(client) => plan_registry(remediation, client, &credentials, &scanned).await?,
        None => Vec::new(),
    };
    let plan = RemediationPlan {
        scope: scope.to_string(),
        registry: scope.registry().map(str::to_owned),
        credentials,
        registry_actions,
        coverage_complete: scanned.coverage.complete,
        gaps: scanned.coverage.gaps,
    };
    Ok(PreparedPlan {
        scope: scope.clone(),
        plan,
        leaked,
    })
}

async fn scan_image(path: &Path) -> Result<Scanned> {
    let owned = path.to_owned();
    let scanned =
        tokio::task::spawn_blocking(move || Scanner::builder().build()?.scan_path(&owned))
            .await
            .map_err(|error| Error::Task {
                what: format!("scanning {}", path.display()),
                reason: error.to_string(),
            })?;
    let report = scanned.map_err(|source| Error::scan(path, source))?;
    let places = report
        .findings
        .iter()
        .map(|finding| place(finding, None, Vec::new()))
        .collect();
    Ok(Scanned {
        findings: report.findings,
        places,
        carriers: BTreeMap::new(),
        coverage: report.coverage,
    })
}

async fn audit(client: &RegistryClient, scope: &Scope) -> Result<Scanned> {
    let registry = client.registry().to_owned();
    let failed = |source| Error::registry(&registry, source);
    let (repositories, selected) = match scope {
        Scope::Registry { repositories, .. } => (repositories.clone(), None),
        Scope::Reference { reference, .. } => {
            let reference = Reference::parse(reference).map_err(failed)?;
            let resolved = client
                .resolve_images(reference.repository(), &reference.manifest_reference())
                .await
                .map_err(failed)?;
            let digests: BTreeSet<String> = resolved
                .images
                .iter()
                .map(|image| image.manifest.digest.to_string())
                .collect();
            (Some(vec![reference.repository().to_owned()]), Some(digests))
        }
        Scope::Image { .. } => (None, None),
    };
    let mut builder = Audit::builder(client.clone());
    if let Some(repositories) = repositories {
        builder = builder.with_repositories(repositories);
    }
    let report = builder
        .build()
        .map_err(failed)?
        .run()
        .await
        .map_err(failed)?;

    let selected_fingerprints: Option<BTreeSet<Fingerprint>> = selected.map(|digests| {
        report
            .findings
            .iter()
            .filter(|f| {
                f.finding
                    .manifest_digest
                    .as_ref()
                    .is_some_and(|d| digests.contains(d))
            })
            .map(|f| f.finding.fingerprint.clone())
            .collect()
    });
    let keep = |fingerprint: &Fingerprint| {
        selected_fingerprints
            .as_ref()
            .is_none_or(|selected| selected.contains(fingerprint))
    };

    let mut scanned = Scanned {
        coverage: report.coverage,
        ..Scanned::default()
    };
    for audited in report.findings {
        if !keep(&audited.finding.fingerprint) {
            continue;
        }
        scanned.places.push(place(
            &audited.finding,
            Some(audited.repository),
            audited.tags,
        ));
        scanned.findings.push(audited.finding);
    }
    for exposure in report.exposures {
        if keep(&exposure.fingerprint) {
            scanned
                .carriers
                .entry(exposure.fingerprint)
                .or_default()
                .extend(exposure.carriers);
        }
    }
    Ok(scanned)
}

fn place(finding: &Finding, repository: Option<String>, tags: Vec<String>) -> ExposurePlace {
    ExposurePlace {
        fingerprint: finding.fingerprint.clone(),
        kind: finding.kind.clone(),
        image: finding.image.clone(),
        repository,
        tags,
        manifest_digest: finding.manifest_digest.clone(),
        platform: finding.platform.clone(),
        location: finding.location.clone(),
        encoding: finding.encoding,
    }
}

fn places_of(scanned: &Scanned, fingerprints: &[Fingerprint]) -> Vec<ExposurePlace> {
    scanned
        .places
        .iter()
        .filter(|place| fingerprints.contains(&place.fingerprint))
        .cloned()
        .collect()
}

fn redacted_of(scanned: &Scanned, fingerprint: &Fingerprint) -> String {
    scanned
        .findings
        .iter()
        .find(|finding| &finding.fingerprint == fingerprint)
        .map(|finding| finding.redacted.clone())
        .unwrap_or_default()
}

async fn plan_credential(
    remediation: &Remediation,
    credential: &MappedCredential,
    scanned: &Scanned,
) -> CredentialPlan {
    let leaked = &credential.leaked;
    let id = credential.fingerprints[0].clone();
    let (liveness, rotation) = match remediation.rotators.get(&leaked.kind) {
        Some(rotator) => {
            let liveness = if remediation.check_liveness {
                check_liveness(rotator.as_ref(), leaked).await
            } else {
                Liveness::NotChecked {
                    reason: "the liveness check is turned off".to_owned(),
                }
            };
            let rotation = match plan_rotation(rotator.as_ref(), leaked, &remediation.plan_options)
                .await
            {
                Ok(plan) => Rotation::Rotator {
                    rotator: rotator.name().to_owned(),
                    plan,
                },
                Err(error) => {
                    tracing::warn!(rotator = rotator.name(), credential = %id, %error, "rotation planning failed");
                    Rotation::PlanFailed {
                        rotator: rotator.name().to_owned(),
                        error: error.to_string(),
                    }
                }
            };
            (liveness, rotation)
        }
        None => (
            Liveness::NotChecked {
                reason: match leaked.kind.as_str() {
                    // Kinds with a built-in rotator: enabling it checks them.
                    "aws-access-key-id" | "aws-secret-access-key" | "gcp-service-account" => {
                        format!(
                            "no rotator is configured for {}; enable it in --rotators to check it",
                            leaked.kind
                        )
                    }
                    _ => format!(
                        "no built-in rotator for {}; an [[http]] rotator in --rotators can check it if the service has an API for it",
                        leaked.kind
                    ),
                },
            },
            Rotation::Manual {
                reason: format!("no rotator is configured for {}", leaked.kind),
                instructions: manual_rotation(&leaked.kind, leaked.key_id.as_deref()),
            },
        ),
    };
    CredentialPlan {
        id: id.clone(),
        kind: leaked.kind.clone(),
        redacted: redacted_of(scanned, &id),
        fingerprints: credential.fingerprints.clone(),
        key_id: leaked.key_id.clone(),
        exposures: places_of(scanned, &credential.fingerprints),
        liveness,
        rotation,
    }
}

async fn check_liveness(
    rotator: &dyn leak_rotators::Rotator,
    leaked: &LeakedCredential,
) -> Liveness {
    let Some(secret) = leaked.secret.clone() else {
        return Liveness::NotChecked {
            reason: "only the key id was found, not its secret, so it cannot be tested".to_owned(),
        };
    };
    let identity = match rotator.identify(leaked).await {
        Ok(identity) => identity,
        Err(error) => {
            return Liveness::NotChecked {
                reason: format!("the rotator could not identify the key: {error}"),
            };
        }
    };
    let credential = Credential {
        id: identity.leaked_key_id,
        secret,
    };
    match rotator.verify(&identity.owner, &credential).await {
        Ok(Verification::Live) => Liveness::Live,
        Ok(Verification::Dead { reason }) => Liveness::Dead { reason },
        Ok(Verification::Indeterminate { reason }) => Liveness::Indeterminate { reason },
        Err(error) => Liveness::NotChecked {
            reason: format!("the rotator cannot test this credential: {error}"),
        },
    }
}

fn skipped_credential(
    skipped: &leak_rotators::mapping::Skipped,
    scanned: &Scanned,
) -> CredentialPlan {
    let fingerprints = vec![skipped.fingerprint.clone()];
    CredentialPlan {
        id: skipped.fingerprint.clone(),
        kind: skipped.kind.clone(),
        redacted: redacted_of(scanned, &skipped.fingerprint),
        exposures: places_of(scanned, &fingerprints),
        fingerprints,
        key_id: None,
        liveness: Liveness::NotChecked {
            reason: skipped.reason.clone(),
        },
        rotation: Rotation::Manual {
            reason: skipped.reason.clone(),
            instructions: manual_rotation(&skipped.kind, None),
        },
    }
}

/// Returns the digests whose removal takes a carrier's image out of a
/// repository: the indexes that list it, then the image manifest itself,
/// which a tag may also name directly and which stays pullable by digest
/// after its index is gone.
fn root_digests(carrier: &Carrier) -> Vec<String> {
    let mut digests = carrier.index_digests.clone();
    digests.push(carrier.manifest_digest.clone());
    digests
}

/// Leaking roots and tags per repository, with the credentials each carries.
#[derive(Debug, Default)]
struct Leaking {
    roots: BTreeMap<(String, String), BTreeSet<Fingerprint>>,
    tags: BTreeMap<(String, String), BTreeSet<Fingerprint>>,
    digests: BTreeSet<String>,
    /// Digests of indexes that list a leaking image.
    indexes: BTreeSet<String>,
}

fn leaking(credentials: &[CredentialPlan], scanned: &Scanned) -> Leaking {
    let mut leaking = Leaking::default();
    for credential in credentials {
        for fingerprint in &credential.fingerprints {
            for carrier in scanned.carriers.get(fingerprint).into_iter().flatten() {
                leaking.digests.insert(carrier.manifest_digest.clone());
                leaking
                    .indexes
                    .extend(carrier.index_digests.iter().cloned());
                for root in root_digests(carrier) {
                    leaking.digests.insert(root.clone());
                    let key = (carrier.repository.clone(), root);
                    leaking
                        .roots
                        .entry(key)
                        .or_default()
                        .insert(credential.id.clone());
                }
                for tag in &carrier.tags {
                    let key = (carrier.repository.clone(), tag.clone());
                    leaking
                        .tags
                        .entry(key)
                        .or_default()
                        .insert(credential.id.clone());
                }
            }
        }
    }
    leaking
}

async fn plan_registry(
    remediation: &Remediation,
    client: &RegistryClient,
    credentials: &[CredentialPlan],
    scanned: &Scanned,
) -> Result<Vec<RegistryAction>> {
    let leaking = leaking(credentials, scanned);
    let mut actions = Vec::new();
    if let Some(fixed) = &remediation.replace_with {
        actions.extend(plan_replacements(client, fixed, &leaking, credentials).await?);
    }
    let replacing = remediation.replace_with.is_some();
    // Indexes go before the image manifests they list, so no index is left
    // pointing at a deleted child while the run is under way.
    let mut roots: Vec<_> = leaking.roots.iter().collect();
    roots.sort_by_key(|((_, digest), _)| !leaking.indexes.contains(digest));
    for ((repository, digest), ids) in roots {
        let action = if replacing {
            RegistryAction::Delete {
                repository: repository.clone(),
                digest: digest.clone(),
                tags_removed: Vec::new(),
                indexes_referencing: Vec::new(),
                credentials: ids.iter().cloned().collect(),
            }
        } else {
            plan_delete(client, repository, digest, ids).await?
        };
        actions.push(action);
    }
    Ok(actions)
}

async fn plan_delete(
    client: &RegistryClient,
    repository: &str,
    digest: &str,
    ids: &BTreeSet<Fingerprint>,
) -> Result<RegistryAction> {
    let failed = |source| Error::registry(client.registry(), source);
    let parsed = leak_registry::parse_digest(digest).map_err(failed)?;
    let plan = client
        .plan_delete(repository, &parsed)
        .await
        .map_err(failed)?;
    Ok(RegistryAction::Delete {
        repository: repository.to_owned(),
        digest: digest.to_owned(),
        tags_removed: plan.tags_removed,
        indexes_referencing: plan.indexes_referencing,
        credentials: ids.iter().cloned().collect(),
    })
}

/// Resolves the fixed image for a repository: `TAG` or `sha256:DIGEST`
/// there, or `REPOSITORY:TAG` / `REPOSITORY@sha256:DIGEST` of the same
/// registry, with or without the registry host in front.
pub(crate) fn fixed_reference(registry: &str, repository: &str, fixed: &str) -> Result<Reference> {
    let fixed = fixed
        .strip_prefix(registry)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(fixed);
    let text = if fixed.starts_with("sha256:") {
        format!("{registry}/{repository}@{fixed}")
    } else if fixed.contains(':') || fixed.contains('@') || fixed.contains('/') {
        format!("{registry}/{fixed}")
    } else {
        format!("{registry}/{repository}:{fixed}")
    };
    Reference::parse(&text).map_err(|source| Error::registry(registry, source))
}

async fn plan_replacements(
    client: &RegistryClient,
    fixed: &str,
    leaking: &Leaking,
    credentials: &[CredentialPlan],
) -> Result<Vec<RegistryAction>> {
    let registry = client.registry().to_owned();
    let failed = |source| Error::registry(&registry, source);
    let fingerprints: BTreeSet<&Fingerprint> = credentials
        .iter()
        .flat_map(|credential| credential.fingerprints.iter())
        .collect();
    let scanner = Scanner::builder()
        .build()
        .map_err(|source| Error::scan(fixed, source))?;
    let scanner = Arc::new(scanner);
    let mut checked = BTreeSet::new();
    let mut actions = Vec::new();
    for ((repository, tag), ids) in &leaking.tags {
        let source = fixed_reference(&registry, repository, fixed)?;
        let target = Reference::new(&registry, repository, Some(tag)).map_err(failed)?;
        let plan = client
            .plan_replace(&target, &source)
            .await
            .map_err(failed)?;
        if checked.insert(plan.new_digest.clone()) {
            let leaks_known = leaking.digests.contains(&plan.new_digest);
            let report = leak_registry::scan_reference(client, &source, scanner.clone())
                .await
                .map_err(failed)?;
            let leaks_scanned = report
                .findings
                .iter()
                .any(|finding| fingerprints.contains(&finding.fingerprint));
            if leaks_known || leaks_scanned {
                return Err(Error::FixedImageLeaks {
                    image: source.to_string(),
                    digest: plan.new_digest,
                });
            }
        }
        actions.push(RegistryAction::Replace {
            repository: repository.clone(),
            tag: tag.clone(),
            old_digest: plan.old_digest,
            fixed_image: plan.source,
            new_digest: plan.new_digest,
            credentials: ids.iter().cloned().collect(),
        });
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::fixed_reference;

    const REGISTRY: &str = "127.0.0.1:5000";

    #[test]
    fn fixed_reference_forms() {
        let cases = [
            ("1.2", "app", "1.2"),
            ("app:1.2", "app", "1.2"),
            ("shop/app:fixed", "shop/app", "fixed"),
            ("127.0.0.1:5000/app:1.2", "app", "1.2"),
            ("other:clean", "other", "clean"),
        ];
        for (fixed, repository, tag) in cases {
            let reference = fixed_reference(REGISTRY, "app", fixed)
                .unwrap_or_else(|error| panic!("{fixed}: {error}"));
            assert_eq!(reference.repository(), repository, "{fixed}");
            assert_eq!(reference.tag(), Some(tag), "{fixed}");
        }
    }

    #[test]
    fn fixed_reference_by_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let reference = fixed_reference(REGISTRY, "app", &digest).expect("digest form parses");
        assert_eq!(reference.repository(), "app");
        assert_eq!(reference.digest().map(ToString::to_string), Some(digest));
    }
}
