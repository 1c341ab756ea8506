//! Formats every public type that can carry key material with a sentinel
//! secret inside and checks that the sentinel never appears.

use std::sync::Arc;

use leak_core::Secret;
use leak_rotators::aws::{AwsCredentials, AwsRotator};
use leak_rotators::gcp::GcpAuth;
use leak_rotators::http::{HttpConfig, HttpRotatorBuilder};
use leak_rotators::{
    Credential, Engine, FileSink, JsonLinesSink, LeakedCredential, Owner, SecretSink, SinkEntry,
};

const SENTINEL: &str = "sentinel-secret-7f3a9c";

fn assert_hidden(label: &str, text: &str) {
    assert!(
        !text.contains(SENTINEL),
        "{label} printed the sentinel: {text}"
    );
}

#[test]
fn public_types_hide_sentinel() {
    let secret = Secret::new(SENTINEL);
    let owner = Owner::new("alice");
    let credential = Credential {
        id: "KEY".to_owned(),
        secret: secret.clone(),
    };
    let leaked = LeakedCredential::aws("AKIAQQQQQQQQQQQQQQQQ", Some(secret.clone()));
    let entry = SinkEntry {
        rotator: "test",
        owner: &owner,
        credential: &credential,
    };
    let aws_credentials =
        AwsCredentials::new("AKID", secret.clone()).with_session_token(secret.clone());
    let aws = AwsRotator::builder()
        .with_endpoint("http://127.0.0.1:9/")
        .with_credentials(aws_credentials.clone())
        .build()
        .unwrap();
    let authorized_user = GcpAuth::AuthorizedUser {
        client_id: "client".to_owned(),
        client_secret: secret.clone(),
        refresh_token: secret.clone(),
    };
    let config = HttpConfig::from_toml(
        r#"
name = "x"
mode = "revoke-only"
allowed_hosts = ["127.0.0.1"]
[auth]
header = "Authorization"
env = "UNUSED"
[operations.list]
items = "/t"
item_id = "/id"
[[operations.list.steps]]
url = "http://127.0.0.1/t"
[operations.revoke]
[[operations.revoke.steps]]
url = "http://127.0.0.1/t"
"#,
    )
    .unwrap();
    let http = HttpRotatorBuilder::new(config)
        .with_auth_value(secret.clone())
        .build()
        .unwrap();
    let lines = JsonLinesSink::new(Vec::new());
    lines.put_pending(&entry).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(Arc::new(aws.clone()))
        .with_sink(Arc::new(FileSink::new(dir.path().join("k"))))
        .with_journal_dir(dir.path())
        .build()
        .unwrap();

    assert_hidden("Secret", &format!("{secret:?}"));
    assert_hidden("Credential", &format!("{credential:?}"));
    assert_hidden("LeakedCredential", &format!("{leaked:?}"));
    assert_hidden("SinkEntry", &format!("{entry:?}"));
    assert_hidden("AwsCredentials", &format!("{aws_credentials:?}"));
    assert_hidden("AwsRotator", &format!("{aws:?}"));
    assert_hidden("GcpAuth::AuthorizedUser", &format!("{authorized_user:?}"));
    assert_hidden(
        "GcpAuth::AccessToken",
        &format!("{:?}", GcpAuth::AccessToken(secret.clone())),
    );
    assert_hidden("HttpRotator", &format!("{http:?}"));
    assert_hidden("JsonLinesSink", &format!("{lines:?}"));
    assert_hidden("Engine", &format!("{engine:?}"));
}
