//! Exposure audit, registry scan, delete and replace against a real
//! `docker-registry` (distribution 2.8) on 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{Flavor, PASSWORD, Registry, Seeded, USERNAME, seed};
use leak_core::{Fingerprint, KnownValues, Scanner, Secret};
use leak_registry::{
    Audit, AuditReport, Credential, Error, Execution, Reference, RegistryClient, scan_reference,
};

/// (repository, tags, manifest digest, platform) of one carrier.
type Row = (String, Vec<String>, String, Option<String>);

fn ground_truth_value(name: &str) -> String {
    let path = common::fixtures_dir().join("ground_truth.json");
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    truth["all_values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|value| value["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from the ground truth"))["value"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn base_layer_digest() -> String {
    let path = common::fixtures_dir().join("ground_truth.json");
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    truth["base"]["oci_digest"].as_str().unwrap().to_owned()
}

fn rows(report: &AuditReport) -> BTreeSet<Row> {
    report
        .leaking_carriers()
        .into_iter()
        .map(|carrier| {
            (
                carrier.repository,
                carrier.tags,
                carrier.manifest_digest,
                carrier.platform,
            )
        })
        .collect()
}

fn row(
    repository: &str,
    tags: &[&str],
    digest: &leak_registry::Digest,
    platform: Option<&str>,
) -> Row {
    (
        repository.to_owned(),
        tags.iter().map(|tag| (*tag).to_owned()).collect(),
        digest.to_string(),
        platform.map(str::to_owned),
    )
}

/// Lists every tag, digest and platform that carries a planted secret.
fn expected_leaking(seeded: &Seeded) -> BTreeSet<Row> {
    BTreeSet::from([
        row("fixtures/app", &["1.0"], &seeded.app_1_0, None),
        row("fixtures/app", &["1.1"], &seeded.app_1_1, None),
        row("fixtures/env", &["latest"], &seeded.env, None),
        row("fixtures/gcp-key", &["latest"], &seeded.gcp_key, None),
        row("mirror/app", &["1.0", "stable"], &seeded.app_1_0, None),
        row("multi/app", &["latest"], &seeded.env, Some("linux/arm64")),
    ])
}

async fn audit_all(client: RegistryClient) -> AuditReport {
    Audit::builder(client).build().unwrap().run().await.unwrap()
}

fn assert_exact_carriers(report: &AuditReport, seeded: &Seeded) {
    let found = rows(report);
    let expected = expected_leaking(seeded);
    assert_eq!(found, expected, "leaking carriers differ");
    for clean in [&seeded.app_1_2, &seeded.fixed] {
        assert!(
            !found
                .iter()
                .any(|(_, _, digest, _)| digest == &clean.to_string()),
            "clean image {clean} reported"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_anonymous_exact_carriers() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let report = audit_all(registry.client(Credential::Anonymous)).await;
    assert_exact_carriers(&report, &seeded);
    assert_eq!(report.stats.repositories, 7);
    assert_eq!(report.stats.tags, 10);
    assert_eq!(report.stats.attestations_skipped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_basic_auth_exact_carriers() {
    let registry = Registry::start(Flavor::Basic).await;
    let client = registry.client(Credential::basic(USERNAME, PASSWORD));
    let seeded = seed(&client).await;
    let report = audit_all(registry.client(Credential::basic(USERNAME, PASSWORD))).await;
    assert_exact_carriers(&report, &seeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_token_auth_exact_carriers() {
    let tokens = common::token::TokenServer::start(USERNAME, PASSWORD).await;
    let registry = Registry::start(Flavor::Token {
        realm: tokens.realm(),
    })
    .await;
    let client = registry.client(Credential::basic(USERNAME, PASSWORD));
    let seeded = seed(&client).await;
    let report = audit_all(registry.client(Credential::basic(USERNAME, PASSWORD))).await;
    assert_exact_carriers(&report, &seeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_scans_each_layer_once() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let seeded_client = registry.client(Credential::Anonymous);
    seed(&seeded_client).await;
    let cache = tempfile::tempdir().unwrap();
    let build = || {
        Audit::builder(registry.client(Credential::Anonymous))
            .with_cache_dir(cache.path())
            .build()
            .unwrap()
    };
    let first = build().run().await.unwrap();
    assert!(first.stats.unique_layers > 0);
    assert_eq!(first.stats.layers_scanned, first.stats.unique_layers);
    assert_eq!(first.stats.layers_from_cache, 0);

    let second = build().run().await.unwrap();
    assert_eq!(
        second.stats.layers_scanned, 0,
        "a second audit downloads no layer"
    );
    assert_eq!(
        second.stats.layers_from_disk_cache,
        second.stats.unique_layers
    );
    assert!(second.stats.requests.bytes < first.stats.requests.bytes / 10);
    assert_eq!(rows(&first), rows(&second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_known_value_only() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let mut known = KnownValues::new();
    known.add(Secret::new(ground_truth_value("APP_POSTGRES_URL")));
    let report = Audit::builder(registry.client(Credential::Anonymous))
        .with_builtin_rules(false)
        .with_known_values(known)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let expected = BTreeSet::from([
        row("fixtures/app", &["1.0"], &seeded.app_1_0, None),
        row("fixtures/app", &["1.1"], &seeded.app_1_1, None),
        row("mirror/app", &["1.0", "stable"], &seeded.app_1_0, None),
    ]);
    assert_eq!(rows(&report), expected);
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        !json.contains(&ground_truth_value("APP_POSTGRES_URL")),
        "the report must not carry the secret"
    );
    for finding in &report.findings {
        let prefix = format!("{}/{}:", registry.address, finding.repository);
        assert!(
            finding.finding.image.starts_with(&prefix),
            "{}",
            finding.finding.image
        );
    }
    let finding = &report.findings[0];
    let value = serde_json::to_value(finding).unwrap();
    for field in [
        "repository",
        "tags",
        "manifest_digest",
        "fingerprint",
        "rule",
        "location",
    ] {
        assert!(value.get(field).is_some(), "finding lacks {field}: {value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_filters_by_fingerprint() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let fingerprint = Fingerprint::of(ground_truth_value("ENV_GITHUB_TOKEN").as_bytes());
    let report = Audit::builder(registry.client(Credential::Anonymous))
        .with_repositories(vec![
            "fixtures/env".to_owned(),
            "multi/app".to_owned(),
            "fixtures/app".to_owned(),
        ])
        .with_fingerprints(vec![fingerprint.clone()])
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(
        report
            .findings
            .iter()
            .all(|finding| finding.finding.fingerprint == fingerprint)
    );
    let expected = BTreeSet::from([
        row("fixtures/env", &["latest"], &seeded.env, None),
        row("multi/app", &["latest"], &seeded.env, Some("linux/arm64")),
    ]);
    assert_eq!(rows(&report), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_maps_leaked_layer() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let layer = leak_registry::parse_digest(&base_layer_digest()).unwrap();
    let report = Audit::builder(registry.client(Credential::Anonymous))
        .with_repositories(vec!["multi/app".to_owned()])
        .with_leaked_layers(vec![layer])
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let carriers: BTreeSet<(String, Option<String>)> = report.leaked_layers[0]
        .carriers
        .iter()
        .map(|carrier| (carrier.manifest_digest.clone(), carrier.platform.clone()))
        .collect();
    let expected = BTreeSet::from([
        (seeded.fixed.to_string(), Some("linux/amd64".to_owned())),
        (seeded.env.to_string(), Some("linux/arm64".to_owned())),
    ]);
    assert_eq!(carriers, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_reference_all_platforms() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let scanner = Arc::new(Scanner::builder().build().unwrap());
    let reference = Reference::parse(&format!("{}/multi/app:latest", registry.address)).unwrap();
    let report = scan_reference(&client, &reference, scanner.clone())
        .await
        .unwrap();
    assert!(!report.findings.is_empty());
    for finding in &report.findings {
        assert_eq!(
            finding.manifest_digest.as_deref(),
            Some(seeded.env.as_ref())
        );
        assert_eq!(finding.platform.as_deref(), Some("linux/arm64"));
    }
    assert_eq!(report.coverage.images.len(), 2);

    let by_digest = Reference::parse(&format!(
        "{}/fixtures/app@{}",
        registry.address, seeded.app_1_2
    ))
    .unwrap();
    let clean = scan_reference(&client, &by_digest, scanner).await.unwrap();
    assert!(
        clean.findings.is_empty(),
        "app 1.2 is clean: {:?}",
        clean.findings.iter().map(|f| &f.rule).collect::<Vec<_>>()
    );
    assert!(clean.coverage.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_image_reference_text() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let scanner = Arc::new(Scanner::builder().build().unwrap());
    let text = format!("{}/mirror/app:stable", registry.address);
    let report = leak_registry::scan_image_reference(&text, true, scanner.clone())
        .await
        .unwrap();
    let digests: BTreeSet<Option<String>> = report
        .findings
        .iter()
        .map(|finding| finding.manifest_digest.clone())
        .collect();
    assert_eq!(digests, BTreeSet::from([Some(seeded.app_1_0.to_string())]));
    let error = leak_registry::scan_image_reference("library/app:1", true, scanner)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidReference { .. }), "{error}");
}

#[tokio::test]
async fn delete_names_sibling_tags() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let plan = client
        .plan_delete("mirror/app", &seeded.app_1_0)
        .await
        .unwrap();
    assert_eq!(plan.tags_removed, ["1.0", "stable"]);

    let dry = client
        .delete(plan.clone(), Execution::DryRun)
        .await
        .unwrap();
    assert_eq!(dry.execution, Execution::DryRun);
    assert_eq!(
        client.tags("mirror/app").await.unwrap().len(),
        2,
        "a dry run deletes nothing"
    );

    let error = client
        .delete(plan.clone(), Execution::Execute)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::InvalidConfig { .. }),
        "an unaccepted plan must not run: {error}"
    );
    let error = plan.clone().accept(&["1.0".to_owned()]).unwrap_err();
    assert!(matches!(error, Error::SiblingTagsChanged { .. }), "{error}");

    let accepted = plan
        .accept(&["stable".to_owned(), "1.0".to_owned()])
        .unwrap();
    client.delete(accepted, Execution::Execute).await.unwrap();
    assert!(client.tags("mirror/app").await.unwrap().is_empty());
    assert_eq!(
        client.tags("fixtures/app").await.unwrap().len(),
        3,
        "other repositories keep the digest"
    );
}

#[tokio::test]
async fn delete_with_token_scope() {
    let tokens = common::token::TokenServer::start(USERNAME, PASSWORD).await;
    let registry = Registry::start(Flavor::Token {
        realm: tokens.realm(),
    })
    .await;
    let client = registry.client(Credential::basic(USERNAME, PASSWORD));
    let seeded = seed(&client).await;
    let plan = client
        .plan_delete("fixtures/env", &seeded.env)
        .await
        .unwrap();
    let accepted = plan.accept(&["latest".to_owned()]).unwrap();
    client.delete(accepted, Execution::Execute).await.unwrap();
    assert!(client.tags("fixtures/env").await.unwrap().is_empty());
    let scopes = tokens.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&vec!["repository:fixtures/env:delete".to_owned()]),
        "{scopes:?}"
    );
}

#[tokio::test]
async fn delete_refused_when_tags_change() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let plan = client
        .plan_delete("mirror/app", &seeded.app_1_0)
        .await
        .unwrap();
    let accepted = plan
        .accept(&["1.0".to_owned(), "stable".to_owned()])
        .unwrap();
    common::push_fixture(&client, "app", "1.0", "mirror/app", &["late-tag"]).await;
    let error = client
        .delete(accepted, Execution::Execute)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::SiblingTagsChanged { .. }), "{error}");
    assert_eq!(client.tags("mirror/app").await.unwrap().len(), 3);
}

#[tokio::test]
async fn delete_disabled_explained() {
    let registry = Registry::start(Flavor::Basic).await;
    let client = registry.client(Credential::basic(USERNAME, PASSWORD));
    let seeded = seed(&client).await;
    let plan = client
        .plan_delete("fixtures/env", &seeded.env)
        .await
        .unwrap();
    let accepted = plan.accept(&["latest".to_owned()]).unwrap();
    let error = client
        .delete(accepted, Execution::Execute)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::DeletionDisabled { status: 405, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("deletion is not enabled"));
}

#[tokio::test]
async fn replace_same_repository() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let target = Reference::parse(&format!("{}/fixtures/app:1.0", registry.address)).unwrap();
    let source = Reference::parse(&format!("{}/fixtures/app:1.2", registry.address)).unwrap();

    let dry = client
        .replace(&target, &source, Execution::DryRun)
        .await
        .unwrap();
    assert_eq!(dry.plan.old_digest, seeded.app_1_0.to_string());
    assert_eq!(dry.plan.new_digest, seeded.app_1_2.to_string());
    assert_eq!(
        client.manifest_digest("fixtures/app", "1.0").await.unwrap(),
        seeded.app_1_0,
        "a dry run pushes nothing"
    );

    client
        .replace(&target, &source, Execution::Execute)
        .await
        .unwrap();
    assert_eq!(
        client.manifest_digest("fixtures/app", "1.0").await.unwrap(),
        seeded.app_1_2
    );
}

#[tokio::test]
async fn replace_mounts_across_repositories() {
    let tokens = common::token::TokenServer::start(USERNAME, PASSWORD).await;
    let registry = Registry::start(Flavor::Token {
        realm: tokens.realm(),
    })
    .await;
    let client = registry.client(Credential::basic(USERNAME, PASSWORD));
    let seeded = seed(&client).await;
    let target = Reference::parse(&format!("{}/fixtures/env:latest", registry.address)).unwrap();
    let source = Reference::parse(&format!("{}/fixtures/fixed:latest", registry.address)).unwrap();
    let outcome = client
        .replace(&target, &source, Execution::Execute)
        .await
        .unwrap();
    assert!(
        outcome.blobs_mounted > 0,
        "blobs missing in the target must be mounted"
    );
    assert_eq!(outcome.blobs_uploaded, 0);
    assert_eq!(
        client
            .manifest_digest("fixtures/env", "latest")
            .await
            .unwrap(),
        seeded.fixed
    );

    let report = Audit::builder(registry.client(Credential::basic(USERNAME, PASSWORD)))
        .with_repositories(vec!["fixtures/env".to_owned()])
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "the replaced tag is clean");
}

#[tokio::test]
async fn replace_pushes_index_children() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let target = Reference::parse(&format!("{}/rel/app:current", registry.address)).unwrap();
    let source = Reference::parse(&format!("{}/multi/app:latest", registry.address)).unwrap();
    let outcome = client
        .replace(&target, &source, Execution::Execute)
        .await
        .unwrap();
    assert_eq!(outcome.plan.child_manifests.len(), 3);
    assert_eq!(
        client.manifest_digest("rel/app", "current").await.unwrap(),
        seeded.index
    );
    let resolved = client.resolve_images("rel/app", "current").await.unwrap();
    assert_eq!(resolved.images.len(), 2);
}
