//! GCP rotator tests against the loopback IAM and token server in
//! `support/gcp.rs`. No GCP IAM emulator exists, so that server implements
//! the documented subset of the API itself.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use leak_rotators::conformance::{ConformanceFixture, run_conformance};
use leak_rotators::gcp::{GcpAuth, GcpRotator, ServiceAccountKey};
use leak_rotators::{
    Engine, Error, FileSink, LeakedCredential, Outcome, PlanOptions, Rotator, Verification,
    VerifyPolicy,
};
use support::gcp::FakeGcp;

fn rotator(gcp: &FakeGcp) -> GcpRotator {
    let admin = gcp.create_account("rotator-admin");
    GcpRotator::builder()
        .with_auth(GcpAuth::ServiceAccount(
            ServiceAccountKey::parse(&admin).unwrap(),
        ))
        .with_iam_base_url(gcp.iam_base_url())
        .with_token_url(gcp.token_url())
        .build()
        .unwrap()
}

struct Fixture {
    gcp: FakeGcp,
    counter: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl ConformanceFixture for Fixture {
    async fn fresh_leaked_credential(&self) -> LeakedCredential {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        LeakedCredential::gcp_key_file(self.gcp.create_account(&format!("conformance-{n}")))
    }
}

#[tokio::test]
async fn gcp_rotator_passes_conformance() {
    let gcp = FakeGcp::start();
    let fixture = Fixture {
        gcp: gcp.clone(),
        counter: Default::default(),
    };
    let report = run_conformance(Arc::new(rotator(&gcp)), &fixture)
        .await
        .unwrap();
    assert!(report.passed.contains(&"deactivate and reactivate"));
}

#[tokio::test]
async fn gcp_rotation_end_to_end() {
    let gcp = FakeGcp::start();
    let leaked_file = gcp.create_account("leaky");
    let leaked = LeakedCredential::gcp_key_file(leaked_file.clone());
    let leaked_id = ServiceAccountKey::parse(&leaked_file)
        .unwrap()
        .private_key_id;
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::new(dir.path().join("sa.json")).with_raw_secret();
    let engine = Engine::builder(Arc::new(rotator(&gcp)))
        .with_sink(Arc::new(sink.clone()))
        .with_journal_dir(dir.path().join("journal"))
        .with_verify_policy(VerifyPolicy {
            new_key_timeout: Some(Duration::from_secs(5)),
            revoked_timeout: Duration::from_secs(2),
            initial_interval: Duration::from_millis(50),
            max_interval: Duration::from_millis(200),
        })
        .build()
        .unwrap();

    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.owner.attribute("project"), Some(support::gcp::PROJECT));
    let report = engine.execute(&plan, Some(&leaked)).await.unwrap();

    assert_eq!(report.outcome, Outcome::Rotated);
    assert_eq!(report.leaked_dead_confirmed, Some(true));
    let email = FakeGcp::email("leaky");
    let new_id = report.new_key_id.unwrap();
    assert_eq!(gcp.key_ids(&email), vec![new_id.clone()]);
    assert!(!gcp.key_ids(&email).contains(&leaked_id));
    let written = leak_core::Secret::new(std::fs::read(sink.path()).unwrap());
    assert_eq!(
        ServiceAccountKey::parse(&written).unwrap().private_key_id,
        new_id
    );
}

#[tokio::test]
async fn ten_key_limit_reported() {
    let gcp = FakeGcp::start();
    let rotator = rotator(&gcp);
    let leaked = LeakedCredential::gcp_key_file(gcp.create_account("full"));
    let identity = rotator.identify(&leaked).await.unwrap();
    for _ in 0..9 {
        rotator.create(&identity.owner).await.unwrap();
    }
    let error = rotator.create(&identity.owner).await.unwrap_err();
    assert!(
        matches!(error, Error::Provider { status: 400, ref code, .. } if code == "FAILED_PRECONDITION"),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(Arc::new(rotator))
        .with_sink(Arc::new(FileSink::new(dir.path().join("k"))))
        .with_journal_dir(dir.path())
        .build()
        .unwrap();
    let error = engine
        .plan(&leaked, &PlanOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::CredentialLimit { limit: 10, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn missing_key_is_not_found() {
    let gcp = FakeGcp::start();
    let rotator = rotator(&gcp);
    let leaked = LeakedCredential::gcp_key_file(gcp.create_account("gone"));
    let identity = rotator.identify(&leaked).await.unwrap();
    rotator
        .revoke(&identity.owner, &identity.leaked_key_id)
        .await
        .unwrap();
    rotator
        .revoke(&identity.owner, &identity.leaked_key_id)
        .await
        .unwrap();
    let error = rotator.identify(&leaked).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
}

#[tokio::test]
async fn html_token_page_is_indeterminate() {
    let gcp = FakeGcp::start();
    let rotator = rotator(&gcp);
    let file = gcp.create_account("html");
    let identity = rotator
        .identify(&LeakedCredential::gcp_key_file(file.clone()))
        .await
        .unwrap();
    gcp.set_html_token_endpoint(true);
    let credential = leak_rotators::Credential {
        id: identity.leaked_key_id,
        secret: file,
    };
    let result = rotator.verify(&identity.owner, &credential).await.unwrap();
    assert!(
        matches!(result, Verification::Indeterminate { .. }),
        "{result:?}"
    );
}

#[tokio::test]
async fn debug_hides_private_key() {
    let gcp = FakeGcp::start();
    let file = gcp.create_account("debug");
    let key = ServiceAccountKey::parse(&file).unwrap();
    let rotator = rotator(&gcp);
    for text in [
        format!("{key:?}"),
        format!("{rotator:?}"),
        format!("{:?}", GcpAuth::ServiceAccount(key.clone())),
    ] {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }
}
