//! AWS rotator tests against a real moto_server on 127.0.0.1, started by
//! each test. They fail, with the install command, when moto_server is
//! missing.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use leak_rotators::aws::{AwsCredentials, AwsRotator};
use leak_rotators::conformance::{ConformanceFixture, run_conformance};
use leak_rotators::{
    Engine, Error, FileSink, LeakedCredential, Outcome, PlanOptions, Rotator, Strategy,
    VerifyPolicy,
};
use support::moto::{Moto, dummy_credentials};

fn rotator(moto: &Moto, credentials: AwsCredentials) -> AwsRotator {
    AwsRotator::builder()
        .with_endpoint(&moto.url)
        .with_credentials(credentials)
        .build()
        .unwrap()
}

fn policy() -> VerifyPolicy {
    VerifyPolicy {
        new_key_timeout: Some(Duration::from_secs(10)),
        revoked_timeout: Duration::from_secs(1),
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_millis(500),
    }
}

fn leaked(key: &AwsCredentials) -> LeakedCredential {
    LeakedCredential::aws(
        key.access_key_id.clone(),
        Some(key.secret_access_key.clone()),
    )
}

async fn rotate_end_to_end(moto: &Moto, admin: AwsCredentials, expect_confirmed: bool) {
    let leaky = moto.create_user_with_key(&admin, "leaky").await;
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::new(dir.path().join("aws-key.json"));
    let engine = Engine::builder(Arc::new(rotator(moto, admin.clone())))
        .with_sink(Arc::new(sink.clone()))
        .with_journal_dir(dir.path().join("journal"))
        .with_verify_policy(policy())
        .build()
        .unwrap();

    let leaked = leaked(&leaky);
    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.owner.id, "leaky");
    assert_eq!(plan.strategy, Strategy::CreateThenRevoke);
    let report = engine.execute(&plan, Some(&leaked)).await.unwrap();

    assert_eq!(report.outcome, Outcome::Rotated);
    assert_eq!(report.leaked_dead_confirmed, Some(expect_confirmed));
    let keys = moto.key_ids(&admin, "leaky").await;
    assert_eq!(keys, vec![report.new_key_id.clone().unwrap()]);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sink.path()).unwrap()).unwrap();
    assert_eq!(written["key_id"], report.new_key_id.unwrap());
    assert_eq!(
        written["fingerprint"],
        report.new_fingerprint.unwrap().as_str()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sink.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let journal = std::fs::read_to_string(&report.journal).unwrap();
    assert!(journal.lines().last().unwrap().contains("\"finished\""));
    assert!(!journal.contains(leaky.secret_access_key.expose_str().unwrap()));
}

#[tokio::test]
async fn rotate_without_auth() {
    let moto = Moto::start(false).await;
    // Without auth moto accepts any secret, so the dead check cannot confirm.
    rotate_end_to_end(&moto, dummy_credentials(), false).await;
}

#[tokio::test]
async fn rotate_with_auth() {
    let moto = Moto::start(true).await;
    let admin = moto.create_admin().await;
    rotate_end_to_end(&moto, admin, true).await;
}

struct MotoFixture<'a> {
    moto: &'a Moto,
    admin: AwsCredentials,
    counter: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl ConformanceFixture for MotoFixture<'_> {
    async fn fresh_leaked_credential(&self) -> LeakedCredential {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = self
            .moto
            .create_user_with_key(&self.admin, &format!("conformance-{n}"))
            .await;
        leaked(&key)
    }
}

#[tokio::test]
async fn aws_rotator_passes_conformance_with_auth() {
    let moto = Moto::start(true).await;
    let admin = moto.create_admin().await;
    let fixture = MotoFixture {
        moto: &moto,
        admin: admin.clone(),
        counter: Default::default(),
    };
    let report = run_conformance(Arc::new(rotator(&moto, admin)), &fixture)
        .await
        .unwrap();
    assert!(report.passed.contains(&"verify wrong secret"));
}

#[tokio::test]
async fn two_key_limit_handled() {
    let moto = Moto::start(true).await;
    let admin = moto.create_admin().await;
    let leaky = moto.create_user_with_key(&admin, "leaky").await;
    let other = moto.create_key(&admin, "leaky").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(Arc::new(rotator(&moto, admin.clone())))
        .with_sink(Arc::new(FileSink::new(dir.path().join("key.json"))))
        .with_journal_dir(dir.path())
        .with_verify_policy(policy())
        .build()
        .unwrap();

    let error = engine
        .plan(&leaked(&leaky), &PlanOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::CredentialLimit { .. }), "{error}");
    assert!(error.to_string().contains(&other.access_key_id));

    moto.set_status(&admin, "leaky", &other.access_key_id, "Inactive")
        .await;
    let plan = engine
        .plan(&leaked(&leaky), &PlanOptions::default())
        .await
        .unwrap();
    assert_eq!(plan.strategy, Strategy::DeleteInactiveThenRotate);
    let report = engine.execute(&plan, Some(&leaked(&leaky))).await.unwrap();
    assert_eq!(
        moto.key_ids(&admin, "leaky").await,
        vec![report.new_key_id.unwrap()]
    );
}

#[tokio::test]
async fn unknown_key_is_not_found() {
    let moto = Moto::start(true).await;
    let admin = moto.create_admin().await;
    let rotator = rotator(&moto, admin);
    let unknown = LeakedCredential::aws("AKIAZZZZZZZZZZZZZZZZ", None);
    let error = rotator.identify(&unknown).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
}

#[tokio::test]
async fn wrong_rotator_secret_rejected_without_leaking() {
    let moto = Moto::start(true).await;
    let admin = moto.create_admin().await;
    let wrong = AwsCredentials::new(
        admin.access_key_id.clone(),
        leak_core::Secret::new("sentinel-wrong-secret-value"),
    );
    let rotator = rotator(&moto, wrong);
    let error = rotator
        .list(&leak_rotators::Owner::new("rotator-admin"))
        .await
        .unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(!text.contains("sentinel-wrong-secret-value"));
}
