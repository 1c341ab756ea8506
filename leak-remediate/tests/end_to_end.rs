//! End to end on loopback. A key issued by moto_server leaks into images
//! pushed to a real docker-registry. Remediation rotates the key, then
//! replaces or deletes every leaking tag, and leaves the clean tags alone.
//!
//! Needs `docker-registry` (`apt-get install -y docker-registry`, or
//! LEAK_DOCKER_REGISTRY) and `moto_server` (`pip install 'moto[server]'`, or
//! LEAK_MOTO_SERVER). The tests fail when either is missing.

mod support;

use leak_remediate::{CredentialStatus, Liveness, RegistryAction, Rotation, Scope};
use support::example::{describe, run_example};
use support::image::{image, layer, push, push_index};
use support::scenario::{Case, Services, assert_not_in_files, assert_report_done};

#[tokio::test(flavor = "multi_thread")]
async fn library_rotates_then_replaces() {
    support::init_tracing();
    let services = Services::start().await;
    let case = Case::seed(&services, "lib").await;
    let remediation = case
        .builder()
        .with_replace_with(format!("{}:fixed", case.shop))
        .build()
        .unwrap();
    let scope = Scope::parse(&case.scope()).unwrap();

    let prepared = remediation.plan(&scope).await.unwrap();

    let plan = &prepared.plan;
    assert_eq!(plan.credentials.len(), 1, "plan: {plan:#?}");
    let credential = &plan.credentials[0];
    assert_eq!(credential.kind, "aws-access-key-id");
    assert_eq!(
        credential.key_id.as_deref(),
        Some(case.leaked.access_key_id.as_str())
    );
    assert_eq!(credential.liveness, Liveness::Live);
    assert!(matches!(credential.rotation, Rotation::Rotator { .. }));
    assert!(credential.exposures.iter().any(|place| matches!(
        &place.location,
        leak_core::Location::Env { key } if key == "AWS_ACCESS_KEY_ID"
    )));
    assert!(credential.exposures.iter().any(|place| matches!(
        &place.location,
        leak_core::Location::Layer { path, .. } if path == "root/.aws/credentials"
    )));
    let replaced = plan
        .registry_actions
        .iter()
        .filter(|action| matches!(action, RegistryAction::Replace { .. }))
        .count();
    let deleted = plan.registry_actions.len() - replaced;
    assert_eq!(replaced, 4, "actions: {:#?}", plan.registry_actions);
    assert_eq!(deleted, 3, "actions: {:#?}", plan.registry_actions);
    assert_eq!(
        case.key_ids().await,
        vec![case.leaked.access_key_id.clone()]
    );

    let report = remediation.execute(&prepared).await.unwrap();

    let new_key = case.assert_rotated().await;
    case.assert_replaced().await;
    assert_report_done(&report, &new_key);
    let leaked_secret = case.leaked.secret_access_key.expose_str().unwrap();
    let (sink_file, entry) = case.sink_entry();
    let new_secret = entry["secret"].as_str().unwrap();
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains(leaked_secret));
    assert!(!json.contains(new_secret));
    assert!(!report.summary().contains(leaked_secret));
    assert_not_in_files(&case.journal_dir(), leaked_secret, &sink_file);
    assert_not_in_files(&case.journal_dir(), new_secret, &sink_file);
}

#[tokio::test(flavor = "multi_thread")]
async fn example_rotates_then_deletes() {
    support::init_tracing();
    let services = Services::start().await;
    let case = Case::seed(&services, "cli").await;
    let config = case.write_config();
    let report_path = case.dir.path().join("report.json");

    let dry_run = run_example(&case, &config, &report_path, false);

    assert_eq!(dry_run.status.code(), Some(1), "{}", describe(&dry_run));
    let stdout = String::from_utf8_lossy(&dry_run.stdout);
    assert!(stdout.contains("DRY RUN"), "{stdout}");
    assert!(stdout.contains("live: YES"), "{stdout}");
    assert_eq!(
        case.key_ids().await,
        vec![case.leaked.access_key_id.clone()]
    );

    let executed = run_example(&case, &config, &report_path, true);

    assert_eq!(executed.status.code(), Some(0), "{}", describe(&executed));
    let new_key = case.assert_rotated().await;
    case.assert_deleted().await;
    let stdout = String::from_utf8_lossy(&executed.stdout);
    assert!(stdout.contains("EXECUTED"), "{stdout}");
    assert!(stdout.contains(&new_key), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["mode"], "execute");
    assert_eq!(report["credentials"][0]["status"], "rotated");
    assert_eq!(report["credentials"][0]["result"]["outcome"], "rotated");
    let actions = report["registry_actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3, "{actions:#?}");
    assert!(
        actions
            .iter()
            .all(|action| action["result"]["status"] == "done")
    );
    let leaked_secret = case.leaked.secret_access_key.expose_str().unwrap();
    assert!(!stdout.contains(leaked_secret));
    assert!(!String::from_utf8_lossy(&executed.stderr).contains(leaked_secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_scope_covers_sibling_tags() {
    support::init_tracing();
    let services = Services::start().await;
    let case = Case::seed(&services, "reference").await;
    let remediation = case.builder().build().unwrap();
    let scope = Scope::parse(&format!(
        "http://{}/{}:1.0-debug",
        services.registry.address, case.shop
    ))
    .unwrap();

    let prepared = remediation.plan(&scope).await.unwrap();

    let plan = &prepared.plan;
    assert_eq!(plan.credentials.len(), 1, "plan: {plan:#?}");
    let mut deleted: Vec<(String, Vec<String>)> = plan
        .registry_actions
        .iter()
        .map(|action| match action {
            RegistryAction::Delete {
                digest,
                tags_removed,
                ..
            } => (digest.clone(), tags_removed.clone()),
            other => panic!("unexpected action {other:?}"),
        })
        .collect();
    deleted.sort();
    let mut expected = vec![
        (
            case.leaking.clone(),
            vec!["1.0".to_owned(), "latest".to_owned()],
        ),
        (case.leaking_debug.clone(), vec!["1.0-debug".to_owned()]),
    ];
    expected.sort();
    assert_eq!(deleted, expected);
    let report = remediation.dry_run_report(&prepared);
    assert!(report.summary().contains("delete"));
    assert_eq!(
        case.key_ids().await,
        vec![case.leaked.access_key_id.clone()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_rotation_leaves_others_done() {
    support::init_tracing();
    let services = Services::start().await;
    let case = Case::seed(&services, "independent").await;
    // A second user at the two-key limit with another active key: the
    // rotation engine will not plan its rotation without revoke-first.
    let crowded_user = "independent-crowded";
    let crowded = services
        .moto
        .create_user_with_key(&services.admin, crowded_user)
        .await;
    services
        .moto
        .create_key(&services.admin, crowded_user)
        .await;
    let env = vec![
        format!("AWS_ACCESS_KEY_ID={}", crowded.access_key_id),
        format!(
            "AWS_SECRET_ACCESS_KEY={}",
            crowded.secret_access_key.expose_str().unwrap()
        ),
    ];
    let crowded_image = image(
        vec![layer(&[("app/v2.txt", b"v2\n".as_slice())])],
        &env,
        &["COPY v2.txt /app/"],
    );
    push(&services.client, &crowded_image, &case.shop, &["2.0"]).await;
    let remediation = case.builder().build().unwrap();
    let scope = Scope::parse(&case.scope()).unwrap();
    let prepared = remediation.plan(&scope).await.unwrap();
    assert_eq!(prepared.plan.credentials.len(), 2);

    let report = remediation.execute(&prepared).await.unwrap();

    let rotated = report
        .credentials
        .iter()
        .filter(|credential| matches!(credential.status, CredentialStatus::Rotated { .. }))
        .count();
    let failed = report
        .credentials
        .iter()
        .filter(|credential| matches!(credential.status, CredentialStatus::Failed { .. }))
        .count();
    assert_eq!(rotated, 1, "{}", report.summary());
    assert_eq!(failed, 1, "{}", report.summary());
    assert!(!report.all_done());
    case.assert_rotated().await;
    let crowded_keys = services.moto.key_ids(&services.admin, crowded_user).await;
    assert_eq!(crowded_keys.len(), 2);
    assert!(crowded_keys.contains(&crowded.access_key_id));
    case.assert_deleted().await;
    assert_eq!(case.tag_digest(&case.shop, "2.0").await, None);
    assert!(
        report
            .manual_steps
            .iter()
            .any(|step| step.contains("failed")),
        "{:?}",
        report.manual_steps
    );
    println!("{}", report.summary());
}

#[tokio::test(flavor = "multi_thread")]
async fn index_then_child_deleted() {
    support::init_tracing();
    let services = Services::start().await;
    let case = Case::seed(&services, "index").await;
    let user = "index-builder";
    let leaked = services
        .moto
        .create_user_with_key(&services.admin, user)
        .await;
    let env = vec![
        format!("AWS_ACCESS_KEY_ID={}", leaked.access_key_id),
        format!(
            "AWS_SECRET_ACCESS_KEY={}",
            leaked.secret_access_key.expose_str().unwrap()
        ),
    ];
    let arm = image(
        vec![layer(&[("app/arm.txt", b"arm\n".as_slice())])],
        &env,
        &["COPY arm.txt /app/"],
    );
    let amd = image(
        vec![layer(&[("app/amd.txt", b"amd\n".as_slice())])],
        &["PATH=/usr/bin".to_owned()],
        &["COPY amd.txt /app/"],
    );
    let repository = "index/multi";
    let index = push_index(
        &services.client,
        &[(&amd, "linux/amd64"), (&arm, "linux/arm64")],
        repository,
        "latest",
    )
    .await;
    let remediation = case.builder().build().unwrap();
    let scope = Scope::parse(&format!(
        "http://{}/{repository}",
        services.registry.address
    ))
    .unwrap();

    let prepared = remediation.plan(&scope).await.unwrap();

    let deleted: Vec<(String, Vec<String>)> = prepared
        .plan
        .registry_actions
        .iter()
        .map(|action| match action {
            RegistryAction::Delete {
                digest,
                tags_removed,
                ..
            } => (digest.clone(), tags_removed.clone()),
            other => panic!("unexpected action {other:?}"),
        })
        .collect();
    assert_eq!(
        deleted,
        vec![
            (index.clone(), vec!["latest".to_owned()]),
            (arm.digest.clone(), Vec::new())
        ]
    );

    let report = remediation.execute(&prepared).await.unwrap();

    assert!(report.all_done(), "{}", report.summary());
    assert_eq!(case.tag_digest(repository, "latest").await, None);
    assert_eq!(case.tag_digest(repository, &arm.digest).await, None);
    let keys = services.moto.key_ids(&services.admin, user).await;
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0], leaked.access_key_id);
}
