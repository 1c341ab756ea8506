//! A loopback GCP server, written from the public IAM REST reference,
//! because no GCP IAM emulator exists to test against. It serves the OAuth2
//! token endpoint (JWT bearer grant, signature checked) and the IAM v1
//! service-account key calls: list, get, create, disable, enable and
//! delete, with the 10-key limit and 404 for a missing key.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use leak_core::Secret;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde_json::json;

use super::http::{Request, Response, serve_in_thread};

pub const PROJECT: &str = "leak-test-project";
const KEY_LIMIT: usize = 10;

struct FakeKey {
    pem: String,
    public_der: Vec<u8>,
    disabled: bool,
}

#[derive(Default)]
struct State {
    accounts: BTreeMap<String, BTreeMap<String, FakeKey>>,
    tokens: BTreeSet<String>,
    next: u32,
    html_token_endpoint: bool,
    token_url: String,
}

/// A running fake; the server thread lives as long as the test process.
#[derive(Clone)]
pub struct FakeGcp {
    pub url: String,
    state: Arc<Mutex<State>>,
}

fn pool() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gcp-keys");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn der_of(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

impl FakeGcp {
    pub fn start() -> FakeGcp {
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let url = serve_in_thread(Arc::new(move |request| handle(&handler_state, request)));
        state.lock().unwrap().token_url = format!("{url}/token");
        FakeGcp { url, state }
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.url)
    }

    pub fn iam_base_url(&self) -> String {
        format!("{}/v1/", self.url)
    }

    /// Makes the token endpoint return an HTML page.
    pub fn set_html_token_endpoint(&self, html: bool) {
        self.state.lock().unwrap().html_token_endpoint = html;
    }

    /// Creates a service account with one key and returns its key file.
    pub fn create_account(&self, name: &str) -> Secret {
        let email = format!("{name}@{PROJECT}.iam.gserviceaccount.com");
        let mut state = self.state.lock().unwrap();
        state.accounts.entry(email.clone()).or_default();
        let (_, file) = new_key(&mut state, &email);
        Secret::new(file)
    }

    pub fn key_ids(&self, email: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .accounts
            .get(email)
            .map(|keys| keys.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn email(name: &str) -> String {
        format!("{name}@{PROJECT}.iam.gserviceaccount.com")
    }
}

/// Adds a key from the pool to `email`; returns its id and key file JSON.
fn new_key(state: &mut State, email: &str) -> (String, String) {
    let pool = pool();
    state.next += 1;
    let pem = pool[state.next as usize % pool.len()].clone();
    let id = format!("{:040x}", 0xfeed_0000_u64 + u64::from(state.next));
    let pair = RsaKeyPair::from_pkcs8(&der_of(&pem)).unwrap();
    let public_der = pair.public().as_ref().to_vec();
    let file = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": id,
        "private_key": pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        // Never trusted by the rotator: nothing listens on port 9.
        "token_uri": "http://127.0.0.1:9/token",
    })
    .to_string();
    state.accounts.get_mut(email).unwrap().insert(
        id.clone(),
        FakeKey {
            pem,
            public_der,
            disabled: false,
        },
    );
    (id, file)
}

fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        json!({"error": {"code": status, "message": message, "status": code}}),
    )
}

fn handle(state: &Mutex<State>, request: Request) -> Response {
    let mut state = state.lock().unwrap();
    if request.path == "/token" && request.method == "POST" {
        return token(&mut state, &request);
    }
    let authorized = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| state.tokens.contains(t));
    if !authorized {
        return error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    match request.path.strip_prefix("/v1/") {
        Some(path) => iam(&mut state, &request, path),
        None => error(404, "NOT_FOUND", "unknown path"),
    }
}

fn token(state: &mut State, request: &Request) -> Response {
    if state.html_token_endpoint {
        return Response::html(200);
    }
    let form = request.form();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return Response::json(400, json!({"error": "unsupported_grant_type"}));
    }

    let assertion = form.get("assertion").cloned().unwrap_or_default();
    if let Err(description) = check_assertion(state, &assertion) {
        return Response::json(
            400,
            json!({"error": "invalid_grant", "error_description": description}),
        );
    }

    state.next += 1;
    let token = format!("fake-access-token-{}", state.next);
    state.tokens.insert(token.clone());
    Response::json(
        200,
        json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

/// Checks a JWT bearer assertion: RS256 signature by a known, enabled key
/// of the issuing account, this server's token URL as audience, not expired.
fn check_assertion(state: &State, assertion: &str) -> Result<(), &'static str> {
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err("Invalid JWT.");
    }
    let decode = |part: &str| -> serde_json::Value {
        URL_SAFE_NO_PAD
            .decode(part)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    };
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    if header["alg"] != "RS256" {
        return Err("Invalid JWT algorithm.");
    }

    let issuer = claims["iss"].as_str().unwrap_or_default();
    let kid = header["kid"].as_str().unwrap_or_default();
    let Some(key) = state.accounts.get(issuer).and_then(|keys| keys.get(kid)) else {
        return Err("Invalid JWT Signature.");
    };
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    let signed = format!("{}.{}", parts[0], parts[1]);
    let public_key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.public_der);
    if public_key.verify(signed.as_bytes(), &signature).is_err() {
        return Err("Invalid JWT Signature.");
    }

    if claims["aud"].as_str() != Some(state.token_url.as_str()) {
        return Err("Invalid JWT: Failed audience check.");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims["exp"].as_u64().unwrap_or(0) < now {
        return Err(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.",
        );
    }
    if key.disabled {
        return Err("Invalid grant: account not found");
    }
    Ok(())
}

fn key_resource(project: &str, email: &str, id: &str, key: &FakeKey) -> serde_json::Value {
    let mut resource = json!({
        "name": format!("projects/{project}/serviceAccounts/{email}/keys/{id}"),
        "validAfterTime": "2026-01-01T00:00:00Z",
        "validBeforeTime": "9999-12-31T23:59:59Z",
        "keyAlgorithm": "KEY_ALG_RSA_2048",
        "keyOrigin": "GOOGLE_PROVIDED",
        "keyType": "USER_MANAGED",
    });
    if key.disabled {
        resource["disabled"] = json!(true);
    }
    resource
}

fn iam(state: &mut State, request: &Request, path: &str) -> Response {
    let segments: Vec<&str> = path.split('/').collect();
    let (project, email, rest) = match segments.as_slice() {
        [
            "projects",
            project,
            "serviceAccounts",
            email,
            "keys",
            rest @ ..,
        ] => (*project, *email, rest),
        _ => return error(404, "NOT_FOUND", "unknown path"),
    };
    if project != PROJECT || !state.accounts.contains_key(email) {
        return error(
            404,
            "NOT_FOUND",
            &format!("Service account projects/{project}/serviceAccounts/{email} does not exist."),
        );
    }
    match (request.method.as_str(), rest) {
        ("GET", []) => {
            let keys: Vec<_> = state.accounts[email]
                .iter()
                .map(|(id, key)| key_resource(project, email, id, key))
                .collect();
            Response::json(200, json!({"keys": keys}))
        }
        ("POST", []) => {
            if state.accounts[email].len() >= KEY_LIMIT {
                return error(400, "FAILED_PRECONDITION", "Precondition check failed.");
            }
            let (id, file) = new_key(state, email);
            let mut resource = key_resource(project, email, &id, &state.accounts[email][&id]);
            resource["privateKeyType"] = json!("TYPE_GOOGLE_CREDENTIALS_FILE");
            resource["privateKeyData"] = json!(STANDARD.encode(file));
            Response::json(200, resource)
        }
        (method, [key]) => key_call(state, method, project, email, key),
        _ => error(404, "NOT_FOUND", "unknown path"),
    }
}

fn key_call(state: &mut State, method: &str, project: &str, email: &str, key: &str) -> Response {
    let (id, verb) = match key.split_once(':') {
        Some((id, verb)) => (id, Some(verb)),
        None => (key, None),
    };
    let keys = state.accounts.get_mut(email).unwrap();
    if !keys.contains_key(id) {
        return error(
            404,
            "NOT_FOUND",
            &format!("Service account key {id} does not exist."),
        );
    }
    match (method, verb) {
        ("GET", None) => Response::json(200, key_resource(project, email, id, &keys[id])),
        ("DELETE", None) => {
            keys.remove(id);
            Response::json(200, json!({}))
        }
        ("POST", Some("disable")) => {
            keys.get_mut(id).unwrap().disabled = true;
            Response::json(200, json!({}))
        }
        ("POST", Some("enable")) => {
            keys.get_mut(id).unwrap().disabled = false;
            Response::json(200, json!({}))
        }
        _ => error(400, "INVALID_ARGUMENT", "unsupported call"),
    }
}
