//! Secrets that reach an image encoded: a service-account key file in
//! base64 (as `GOOGLE_CREDENTIALS` often carries it) and a known value in
//! base64. Real key material comes from the shared fixture images'
//! ground-truth file.

use base64::Engine as _;
use leak_core::detect::{Encoding, KnownValues};
use leak_core::{Detector, Fingerprint, RuleSet, Secret};

fn ground_truth_value(name: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/ground_truth.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| {
        panic!("shared fixtures missing at {path} ({error}); place shared/ beside the repository")
    });
    let truth: serde_json::Value = serde_json::from_str(&text).expect("ground_truth.json parses");
    truth["all_values"]
        .as_array()
        .expect("all_values is an array")
        .iter()
        .find(|value| value["name"] == name)
        .and_then(|value| value["value"].as_str())
        .unwrap_or_else(|| panic!("value {name} not in ground_truth.json"))
        .to_owned()
}

fn scan(detector: &Detector, text: &str) -> Vec<leak_core::detect::Match> {
    let mut found = Vec::new();
    detector.scan(text.as_bytes(), 0..text.len(), None, &mut found);
    found
}

#[test]
fn base64_service_account_key_found() {
    let key_file = ground_truth_value("GCP_SA_JSON");
    let detector = Detector::new(RuleSet::builtin(), &KnownValues::new()).expect("detector builds");
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        let text = format!("GOOGLE_CREDENTIALS={}\n", engine.encode(&key_file));
        let found = scan(&detector, &text);
        let account: Vec<_> = found
            .iter()
            .filter(|m| {
                m.rule.map(|r| detector.rule(r).kind.as_str()) == Some("gcp-service-account")
            })
            .collect();
        assert_eq!(account.len(), 1, "service account findings: {found:?}");
        assert_eq!(account[0].encoding, Encoding::Base64);
        assert_eq!(
            account[0].secret.fingerprint(),
            Fingerprint::of(key_file.as_bytes())
        );
    }
}

#[test]
fn known_value_in_base64_config() {
    let value = ground_truth_value("APP_POSTGRES_URL");
    let mut known = KnownValues::new();
    known.add(Secret::new(value.as_bytes().to_vec()));
    let detector = Detector::new(RuleSet::new(), &known).expect("detector builds");
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("url: {value}\n"));
    let found = scan(&detector, &format!("data:\n  config.yaml: {encoded}\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].encoding, Encoding::Base64);
    assert_eq!(
        found[0].secret.fingerprint(),
        Fingerprint::of(value.as_bytes())
    );
}
