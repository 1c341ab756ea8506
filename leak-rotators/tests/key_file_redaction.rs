//! GCP key material from hostile or malformed key files: the parsed key,
//! the auth and rotator that hold it, and every parse error must print no
//! part of the private key or of the other secrets in the file.

use leak_core::Secret;
use leak_rotators::gcp::{GcpAuth, GcpRotator, ServiceAccountKey};

const SENTINEL: &str = "sentinel-key-material-5d21e8";

fn assert_hidden(label: &str, text: &str) {
    assert!(
        !text.contains(SENTINEL),
        "{label} printed the sentinel: {text}"
    );
}

fn key_file(kind: &str) -> Secret {
    Secret::new(
        serde_json::json!({
            "type": kind,
            "project_id": "demo",
            "private_key_id": "0123456789abcdef",
            "private_key": format!("-----BEGIN PRIVATE KEY-----\n{SENTINEL}\n-----END PRIVATE KEY-----\n"),
            "client_email": "svc@demo.iam.gserviceaccount.com",
            "client_secret": SENTINEL,
            "refresh_token": SENTINEL,
        })
        .to_string(),
    )
}

#[test]
fn service_account_debug_hides_key() {
    let key = ServiceAccountKey::parse(&key_file("service_account")).unwrap();
    let auth = GcpAuth::from_file_bytes(key_file("service_account")).unwrap();
    let rotator = GcpRotator::builder()
        .with_auth(auth.clone())
        .with_iam_base_url("http://127.0.0.1:9/v1/")
        .with_token_url("http://127.0.0.1:9/token")
        .build()
        .unwrap();

    assert_hidden("ServiceAccountKey", &format!("{key:?}"));
    assert_hidden("GcpAuth::ServiceAccount", &format!("{auth:?}"));
    assert_hidden("GcpRotator", &format!("{rotator:?}"));
}

#[test]
fn key_file_errors_hide_key() {
    let malformed = [
        key_file("external_account"),
        Secret::new(format!(
            r#"{{"type":"service_account","private_key":"{SENTINEL}""#
        )),
        Secret::new(format!(
            r#"{{"type":"service_account","private_key":["{SENTINEL}"]}}"#
        )),
        Secret::new(format!(r#"{{"type":["{SENTINEL}"]}}"#)),
        Secret::new(format!(
            r#"{{"type":"authorized_user","client_secret":"{SENTINEL}"}}"#
        )),
    ];
    for file in &malformed {
        if let Err(error) = ServiceAccountKey::parse(file) {
            assert_hidden("ServiceAccountKey::parse error", &error.to_string());
            assert_hidden("ServiceAccountKey::parse error", &format!("{error:?}"));
        }
        if let Err(error) = GcpAuth::from_file_bytes(file.clone()) {
            assert_hidden("GcpAuth::from_file_bytes error", &error.to_string());
            assert_hidden("GcpAuth::from_file_bytes error", &format!("{error:?}"));
        }
    }
}
