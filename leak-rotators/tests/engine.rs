//! Engine tests against the in-memory provider double, which has the
//! behaviour of real IAM that moto lacks: inactive keys are rejected and a
//! new key takes time to verify.

use std::sync::Arc;
use std::time::Duration;

use leak_rotators::conformance::{MemoryFixture, MemoryRotator, MemorySink, run_conformance};
use leak_rotators::{
    CredentialStatus, Engine, Error, LeakedCredential, Outcome, PlanOptions, Strategy, VerifyPolicy,
};

fn fast_policy() -> VerifyPolicy {
    VerifyPolicy {
        new_key_timeout: Some(Duration::from_secs(3)),
        revoked_timeout: Duration::from_millis(300),
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_millis(200),
    }
}

fn engine(rotator: &MemoryRotator, sink: &MemorySink, dir: &std::path::Path) -> Engine {
    Engine::builder(Arc::new(rotator.clone()))
        .with_sink(Arc::new(sink.clone()))
        .with_journal_dir(dir)
        .with_verify_policy(fast_policy())
        .build()
        .unwrap()
}

fn key_id(leaked: &LeakedCredential) -> String {
    leaked.key_id.clone().unwrap()
}

#[tokio::test]
async fn memory_rotator_passes_conformance() {
    let rotator = MemoryRotator::new().with_propagation(Duration::from_millis(300));
    let fixture = MemoryFixture::new(rotator.clone());
    let report = run_conformance(Arc::new(rotator), &fixture).await.unwrap();
    assert!(report.passed.contains(&"create, verify, revoke"));
}

#[tokio::test]
async fn revoke_only_rotator_passes_conformance() {
    let rotator = MemoryRotator::new().with_revoke_only();
    let fixture = MemoryFixture::new(rotator.clone());
    let report = run_conformance(Arc::new(rotator), &fixture).await.unwrap();
    assert!(report.passed.contains(&"create not supported"));
}

#[tokio::test]
async fn rotation_waits_for_propagation() {
    let dir = tempfile::tempdir().unwrap();
    let rotator = MemoryRotator::new().with_propagation(Duration::from_millis(700));
    let sink = MemorySink::new();
    let leaked = rotator.plant_key("alice");
    let engine = engine(&rotator, &sink, dir.path());

    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    let report = engine.execute(&plan, Some(&leaked)).await.unwrap();

    assert_eq!(report.outcome, Outcome::Rotated);
    assert_eq!(report.leaked_dead_confirmed, Some(true));
    let current = sink.current().expect("new secret promoted");
    assert_eq!(Some(current.id.clone()), report.new_key_id);
    assert!(rotator.accepts(&current.id, &current.secret));
    let keys = rotator.keys("alice");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, current.id);
}

#[tokio::test]
async fn never_live_key_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let rotator = MemoryRotator::new().with_new_keys_never_live();
    let sink = MemorySink::new();
    let leaked = rotator.plant_key("alice");
    let engine = engine(&rotator, &sink, dir.path());

    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    let error = engine.execute(&plan, Some(&leaked)).await.unwrap_err();

    assert!(matches!(error, Error::NewKeyNotLive { .. }), "{error}");
    let keys = rotator.keys("alice");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, key_id(&leaked));
    assert_eq!(keys[0].status, CredentialStatus::Active);
    assert!(sink.pending().is_none());
    assert!(sink.current().is_none());
    assert!(engine.unfinished().unwrap().is_empty());
}

#[tokio::test]
async fn changed_state_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let rotator = MemoryRotator::new().with_limit(3);
    let sink = MemorySink::new();
    let leaked = rotator.plant_key("alice");
    let engine = engine(&rotator, &sink, dir.path());

    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    rotator.plant_key("alice");
    let error = engine.execute(&plan, Some(&leaked)).await.unwrap_err();

    assert!(matches!(error, Error::StateChanged { .. }), "{error}");
    assert_eq!(rotator.created_count(), 0);
}

#[tokio::test]
async fn limit_with_inactive_other_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let rotator = MemoryRotator::new();
    let sink = MemorySink::new();
    let leaked = rotator.plant_key("alice");
    let inactive = rotator.plant_inactive_key("alice");
    let engine = engine(&rotator, &sink, dir.path());

    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.strategy, Strategy::DeleteInactiveThenRotate);
    engine.execute(&plan, Some(&leaked)).await.unwrap();

    let keys = rotator.keys("alice");
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].id, inactive);
    assert_ne!(keys[0].id, key_id(&leaked));
}

#[tokio::test]
async fn limit_with_active_other_needs_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let rotator = MemoryRotator::new();
    let sink = MemorySink::new();
    let leaked = rotator.plant_key("alice");
    let other = rotator.plant_key("alice");
    let engine = engine(&rotator, &sink, dir.path());

    let error = engine
        .plan(&leaked, &PlanOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::CredentialLimit { .. }), "{error}");
    assert!(error.to_string().contains(&key_id(&other)));

    let options = PlanOptions {
        allow_revoke_first: true,
    };
    let plan = engine.plan(&leaked, &options).await.unwrap();
    assert!(plan.outage);
    engine.execute(&plan, Some(&leaked)).await.unwrap();
    let ids: Vec<String> = rotator.keys("alice").into_iter().map(|k| k.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&key_id(&other)));
    assert!(!ids.contains(&key_id(&leaked)));
}

#[tokio::test]
async fn revoke_only_leaves_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let rotator = MemoryRotator::new().with_revoke_only();
    let sink = MemorySink::new();
    let leaked = rotator.plant_key("alice");
    let engine = engine(&rotator, &sink, dir.path());

    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    let report = engine.execute(&plan, Some(&leaked)).await.unwrap();

    assert_eq!(report.outcome, Outcome::Revoked);
    assert!(rotator.keys("alice").is_empty());
    assert!(sink.current().is_none());
}

#[tokio::test]
async fn lost_create_response_orphan_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let rotator = MemoryRotator::new();
    let sink = MemorySink::new();
    let leaked = rotator.plant_key("alice");
    let engine = engine(&rotator, &sink, dir.path());

    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    rotator.lose_create_responses(1);
    assert!(engine.execute(&plan, Some(&leaked)).await.is_err());
    assert_eq!(rotator.keys("alice").len(), 2);

    let journals = engine.unfinished().unwrap();
    assert_eq!(journals.len(), 1);
    let report = engine.resume(&journals[0], Some(&leaked)).await.unwrap();

    assert_eq!(report.outcome, Outcome::Rotated);
    let keys = rotator.keys("alice");
    assert_eq!(keys.len(), 1);
    assert_eq!(Some(keys[0].id.clone()), sink.current().map(|c| c.id));
    assert_eq!(rotator.created_count(), 2);
}

#[tokio::test]
async fn journal_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let rotator = MemoryRotator::new();
    let sink = MemorySink::new();
    let leaked = rotator.plant_key("alice");
    let engine = engine(&rotator, &sink, dir.path());

    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    let report = engine.execute(&plan, Some(&leaked)).await.unwrap();

    let journal = std::fs::read_to_string(&report.journal).unwrap();
    let new_secret = sink.current().unwrap().secret;
    assert!(!journal.contains(new_secret.expose_str().unwrap()));
    assert!(!journal.contains(leaked.secret.as_ref().unwrap().expose_str().unwrap()));
    assert!(journal.contains(new_secret.fingerprint().as_str()));
    assert!(journal.lines().last().unwrap().contains("\"finished\""));
}

#[test]
fn debug_output_hides_sentinel() {
    let sentinel = "sentinel-secret-value-4242";
    let leaked = LeakedCredential::aws(
        "AKIAEXAMPLEEXAMPLE00",
        Some(leak_core::Secret::new(sentinel)),
    );
    let credential = leak_rotators::Credential {
        id: "KEY".to_owned(),
        secret: leak_core::Secret::new(sentinel),
    };
    for text in [format!("{leaked:?}"), format!("{credential:?}")] {
        assert!(!text.contains(sentinel), "{text}");
    }
}

#[tokio::test]
async fn second_rotation_of_owner_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let rotator = MemoryRotator::new().with_propagation(Duration::from_millis(800));
    let sink = MemorySink::new();
    let leaked = rotator.plant_key("alice");
    let first = engine(&rotator, &sink, dir.path());
    let second = engine(&rotator, &sink, dir.path());
    let plan = first.plan(&leaked, &PlanOptions::default()).await.unwrap();

    let running = first.execute(&plan, Some(&leaked));
    let competing = async {
        // Let the first rotation take the lock and start polling.
        tokio::time::sleep(Duration::from_millis(200)).await;
        second.execute(&plan, Some(&leaked)).await
    };
    let (first_result, second_result) = tokio::join!(running, competing);

    assert_eq!(first_result.unwrap().outcome, Outcome::Rotated);
    assert!(
        matches!(second_result, Err(Error::OwnerLocked { .. })),
        "{second_result:?}"
    );
    assert_eq!(rotator.created_count(), 1);
}
