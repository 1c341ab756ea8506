//! HTTP rotator tests against a loopback server for a made-up token
//! service (no real component exists for a generic HTTP API).

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use leak_core::Secret;
use leak_rotators::conformance::{ConformanceFixture, run_conformance};
use leak_rotators::http::{HttpConfig, HttpRotator, HttpRotatorBuilder};
use leak_rotators::{
    Engine, Error, FileSink, LeakedCredential, Outcome, PlanOptions, Rotator, Strategy,
    VerifyPolicy,
};
use support::tokens::{ADMIN_TOKEN, TokenService};

fn rotator(service: &TokenService, revoke_only: bool) -> HttpRotator {
    let config = HttpConfig::from_toml(&service.config(revoke_only)).unwrap();
    HttpRotatorBuilder::new(config)
        .with_auth_value(Secret::new(ADMIN_TOKEN))
        .build()
        .unwrap()
}

fn leaked(secret: Secret) -> LeakedCredential {
    LeakedCredential::new("generic-secret", None, Some(secret))
}

struct Fixture {
    service: TokenService,
    counter: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl ConformanceFixture for Fixture {
    async fn fresh_leaked_credential(&self) -> LeakedCredential {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (_, secret) = self.service.issue(&format!("owner-{n}"));
        leaked(secret)
    }
}

#[tokio::test]
async fn http_rotator_passes_conformance() {
    let service = TokenService::start();
    let fixture = Fixture {
        service: service.clone(),
        counter: Default::default(),
    };
    run_conformance(Arc::new(rotator(&service, false)), &fixture)
        .await
        .unwrap();
}

#[tokio::test]
async fn revoke_only_passes_conformance() {
    let service = TokenService::start();
    let fixture = Fixture {
        service: service.clone(),
        counter: Default::default(),
    };
    let report = run_conformance(Arc::new(rotator(&service, true)), &fixture)
        .await
        .unwrap();
    assert!(report.passed.contains(&"create not supported"));
}

fn engine(rotator: HttpRotator, dir: &std::path::Path) -> (Engine, FileSink) {
    let sink = FileSink::new(dir.join("token.json"));
    let engine = Engine::builder(Arc::new(rotator))
        .with_sink(Arc::new(sink.clone()))
        .with_journal_dir(dir.join("journal"))
        .with_verify_policy(VerifyPolicy {
            new_key_timeout: Some(Duration::from_secs(3)),
            revoked_timeout: Duration::from_secs(1),
            initial_interval: Duration::from_millis(50),
            max_interval: Duration::from_millis(200),
        })
        .build()
        .unwrap();
    (engine, sink)
}

#[tokio::test]
async fn http_rotation_end_to_end() {
    let service = TokenService::start();
    let (leaked_id, secret) = service.issue("team-a");
    let dir = tempfile::tempdir().unwrap();
    let (engine, sink) = engine(rotator(&service, false), dir.path());
    let leaked = leaked(secret.clone());

    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.owner.id, "team-a");
    assert_eq!(plan.leaked_key_id, leaked_id);
    let report = engine.execute(&plan, Some(&leaked)).await.unwrap();

    assert_eq!(report.outcome, Outcome::Rotated);
    assert_eq!(report.leaked_dead_confirmed, Some(true));
    assert_eq!(
        service.ids("team-a"),
        vec![report.new_key_id.clone().unwrap()]
    );
    assert!(!service.accepts(secret.expose_str().unwrap()));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sink.path()).unwrap()).unwrap();
    assert!(service.accepts(written["secret"].as_str().unwrap()));
}

#[tokio::test]
async fn revoke_only_rotation() {
    let service = TokenService::start();
    let (_, secret) = service.issue("team-b");
    let dir = tempfile::tempdir().unwrap();
    let (engine, sink) = engine(rotator(&service, true), dir.path());
    let leaked = leaked(secret);

    let plan = engine.plan(&leaked, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.strategy, Strategy::RevokeOnly);
    let report = engine.execute(&plan, Some(&leaked)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Revoked);
    assert!(service.ids("team-b").is_empty());
    assert!(!sink.path().exists());
}

#[tokio::test]
async fn host_outside_allow_list_rejected() {
    let service = TokenService::start();
    let text = service.config(false).replace(
        &format!(
            "allowed_hosts = [\"{}\"]",
            service.url.trim_start_matches("http://")
        ),
        "allowed_hosts = [\"127.0.0.2:1\"]",
    );
    let rotator = HttpRotatorBuilder::new(HttpConfig::from_toml(&text).unwrap())
        .with_auth_value(Secret::new(ADMIN_TOKEN))
        .build()
        .unwrap();
    let (_, secret) = service.issue("team-c");
    let error = rotator.identify(&leaked(secret)).await.unwrap_err();
    assert!(matches!(error, Error::HostNotAllowed { .. }), "{error}");
}

#[tokio::test]
async fn html_page_never_live() {
    let service = TokenService::start();
    let text = service
        .config(false)
        .replace("/tokens/self\"\nheaders", "/login\"\nheaders");
    let rotator = HttpRotatorBuilder::new(HttpConfig::from_toml(&text).unwrap())
        .with_auth_value(Secret::new(ADMIN_TOKEN))
        .build()
        .unwrap();
    let (id, secret) = service.issue("team-d");
    let credential = leak_rotators::Credential { id, secret };
    let result = rotator
        .verify(&leak_rotators::Owner::new("team-d"), &credential)
        .await
        .unwrap();
    assert!(
        matches!(result, leak_rotators::Verification::Indeterminate { .. }),
        "{result:?}"
    );
}

#[test]
fn rotate_mode_without_create_rejected() {
    let text = r#"
name = "x"
allowed_hosts = ["127.0.0.1"]
[operations.list]
items = "/t"
item_id = "/id"
[[operations.list.steps]]
url = "http://127.0.0.1/t"
[operations.revoke]
[[operations.revoke.steps]]
url = "http://127.0.0.1/t"
"#;
    let error = HttpConfig::from_toml(text).unwrap_err();
    assert!(error.to_string().contains("revoke-only"), "{error}");
}

#[test]
fn missing_auth_env_named() {
    let service_config = r#"
name = "x"
mode = "revoke-only"
allowed_hosts = ["127.0.0.1"]
[auth]
header = "Authorization"
env = "LEAK_TEST_VARIABLE_THAT_IS_NEVER_SET"
[operations.list]
items = "/t"
item_id = "/id"
[[operations.list.steps]]
url = "http://127.0.0.1/t"
[operations.revoke]
[[operations.revoke.steps]]
url = "http://127.0.0.1/t"
"#;
    let error = HttpRotatorBuilder::new(HttpConfig::from_toml(service_config).unwrap())
        .build()
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("LEAK_TEST_VARIABLE_THAT_IS_NEVER_SET"),
        "{error}"
    );
}

#[test]
fn debug_hides_admin_token() {
    let service = TokenService::start();
    let rotator = rotator(&service, false);
    assert!(!format!("{rotator:?}").contains(ADMIN_TOKEN));
}
