//! A token endpoint for the token-auth registry: it checks Basic
//! credentials and issues ES256 JWTs granting the requested scopes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use sha2::{Digest as _, Sha256};

use super::mock::{MockResponse, MockServer};

pub const SERVICE: &str = "leak-registry-test";
pub const ISSUER: &str = "leak-registry-test-issuer";

/// DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte point follows.
const P256_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";

pub struct TokenServer {
    pub mock: MockServer,
    /// The scopes of each token request, in order.
    pub scopes: Arc<Mutex<Vec<Vec<String>>>>,
}

impl TokenServer {
    pub fn realm(&self) -> String {
        format!("{}/token", self.mock.base())
    }

    /// Starts the endpoint; it issues tokens only to `username`:`password`.
    pub async fn start(username: &str, password: &str) -> Self {
        let key_der = std::fs::read(super::config_path("token-signing-key.p8.der")).unwrap();
        let key = Arc::new(
            EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &key_der,
                &SystemRandom::new(),
            )
            .unwrap(),
        );
        let kid = libtrust_key_id(key.public_key().as_ref());
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{username}:{password}"))
        );
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let log = scopes.clone();
        let counter = Arc::new(AtomicU64::new(0));
        let username = username.to_owned();
        let mock = MockServer::start(move |request| {
            let requested = request.query_all("scope");
            log.lock().unwrap().push(requested.clone());
            if request.header("authorization") != Some(expected.as_str()) {
                return MockResponse::new(401);
            }
            let id = counter.fetch_add(1, Ordering::Relaxed);
            let token = sign_token(&key, &kid, &username, &requested, id);
            MockResponse::new(200).json(serde_json::json!({ "token": token, "expires_in": 300 }))
        })
        .await;
        TokenServer { mock, scopes }
    }
}

fn sign_token(key: &EcdsaKeyPair, kid: &str, subject: &str, scopes: &[String], id: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .flat_map(|scope| scope.split(' '))
        .filter_map(parse_scope)
        .collect();
    let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "kid": kid });
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": subject, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("token-{id}"), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let signature = key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .unwrap();
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

/// Splits `repository:NAME:pull,push` into a JWT access entry.
fn parse_scope(scope: &str) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').collect();
    Some(serde_json::json!({ "type": kind, "name": name, "actions": actions }))
}

/// Computes the key id that distribution's libtrust derives from a public
/// key: base32 of the first 30 bytes of the SHA-256 of the DER
/// SubjectPublicKeyInfo, in colon-separated groups of four.
fn libtrust_key_id(point: &[u8]) -> String {
    let mut spki = hex::decode(P256_SPKI_PREFIX).unwrap();
    spki.extend_from_slice(point);
    let hash = Sha256::digest(&spki);
    let encoded = base32(&hash[..30]);
    encoded
        .as_bytes()
        .chunks(4)
        .map(|group| std::str::from_utf8(group).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut output = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            output.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        output.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    output
}
