//! A loopback server for a made-up token service, and the HTTP rotator
//! configuration for it. The service: owners hold up to three tokens,
//! admins call it with `Authorization: Bearer ADMIN`, and a token proves
//! itself in an `X-Token` header.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use leak_core::Secret;
use serde_json::json;

use super::http::{Request, Response, serve_in_thread};

pub const ADMIN_TOKEN: &str = "admin-token-for-loopback-tests";
pub const ADMIN_ENV: &str = "LEAK_TEST_TOKENS_ADMIN";
const LIMIT: usize = 3;

struct Token {
    owner: String,
    secret: String,
    active: bool,
}

#[derive(Default)]
struct State {
    tokens: BTreeMap<String, Token>,
    next: u32,
}

#[derive(Clone)]
pub struct TokenService {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl TokenService {
    pub fn start() -> TokenService {
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let url = serve_in_thread(Arc::new(move |request| handle(&handler_state, request)));
        TokenService { url, state }
    }

    /// Issues a token for `owner`; returns its id and secret.
    pub fn issue(&self, owner: &str) -> (String, Secret) {
        let (id, secret) = issue(&mut self.state.lock().unwrap(), owner);
        (id, Secret::new(secret))
    }

    pub fn ids(&self, owner: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .tokens
            .iter()
            .filter(|(_, t)| t.owner == owner)
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn accepts(&self, secret: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .tokens
            .values()
            .any(|t| t.active && t.secret == secret)
    }

    /// Renders the HTTP rotator configuration for this service.
    pub fn config(&self, revoke_only: bool) -> String {
        let host = self.url.trim_start_matches("http://");
        let base = &self.url;
        let mode = if revoke_only { "revoke-only" } else { "rotate" };
        format!(
            r#"
name = "tokens"
kind = "generic-secret"
allowed_hosts = ["{host}"]
mode = "{mode}"
max_credentials = 3

[auth]
header = "Authorization"
env = "{ADMIN_ENV}"
prefix = "Bearer "

[operations.identify]
[[operations.identify.steps]]
method = "GET"
url = "{base}/tokens/self"
headers = {{ "X-Token" = "{{{{secret}}}}" }}
auth = false
extract = {{ owner = "/owner", key_id = "/id" }}

[operations.list]
items = "/tokens"
item_id = "/id"
item_active = "/active"
[[operations.list.steps]]
method = "GET"
url = "{base}/owners/{{{{owner}}}}/tokens"

[operations.verify]
live_status = [200]
dead_status = [401]
[[operations.verify.steps]]
method = "GET"
url = "{base}/tokens/self"
headers = {{ "X-Token" = "{{{{secret}}}}" }}
auth = false
expect_pointer = "/id"

[operations.create]
[[operations.create.steps]]
method = "POST"
url = "{base}/owners/{{{{owner}}}}/tokens"
json = {{ note = "rotated for {{{{owner}}}}" }}
expect_status = [201]
extract = {{ key_id = "/id", secret = "/token" }}

[operations.deactivate]
[[operations.deactivate.steps]]
method = "POST"
url = "{base}/tokens/{{{{key_id}}}}/disable"

[operations.reactivate]
[[operations.reactivate.steps]]
method = "POST"
url = "{base}/tokens/{{{{key_id}}}}/enable"

[operations.revoke]
gone_status = [404]
[[operations.revoke.steps]]
method = "DELETE"
url = "{base}/tokens/{{{{key_id}}}}"
expect_status = [204]
"#
        )
    }
}

fn issue(state: &mut State, owner: &str) -> (String, String) {
    state.next += 1;
    let id = format!("tok_{:04}", state.next);
    let secret = format!("tokensvc_{:04}_{:x}", state.next, 0x5eed_u32 * state.next);
    state.tokens.insert(
        id.clone(),
        Token {
            owner: owner.to_owned(),
            secret: secret.clone(),
            active: true,
        },
    );
    (id, secret)
}

fn handle(state: &Mutex<State>, request: Request) -> Response {
    let mut state = state.lock().unwrap();
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    if segments == ["tokens", "self"] {
        let presented = request.header("x-token").unwrap_or_default();
        return match state
            .tokens
            .iter()
            .find(|(_, t)| t.secret == presented && t.active)
        {
            Some((id, token)) => Response::json(200, json!({"id": id, "owner": token.owner})),
            None => Response::json(401, json!({"error": "invalid token"})),
        };
    }
    // A sign-in page that returns 200 with HTML, as many web front ends do.
    if segments == ["login"] {
        return Response::html(200);
    }
    if request.header("authorization") != Some(&format!("Bearer {ADMIN_TOKEN}")) {
        return Response::json(401, json!({"error": "admin token required"}));
    }
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["owners", owner, "tokens"]) => {
            let tokens: Vec<_> = state
                .tokens
                .iter()
                .filter(|(_, t)| t.owner == *owner)
                .map(|(id, t)| json!({"id": id, "active": t.active}))
                .collect();
            Response::json(200, json!({"tokens": tokens}))
        }
        ("POST", ["owners", owner, "tokens"]) => {
            if state.tokens.values().filter(|t| t.owner == *owner).count() >= LIMIT {
                return Response::json(409, json!({"error": "limit reached"}));
            }
            let (id, secret) = issue(&mut state, owner);
            Response::json(201, json!({"id": id, "token": secret}))
        }
        ("POST", ["tokens", id, action]) => match state.tokens.get_mut(*id) {
            Some(token) => {
                token.active = *action == "enable";
                Response::json(200, json!({}))
            }
            None => Response::json(404, json!({"error": "no such token"})),
        },
        ("DELETE", ["tokens", id]) => match state.tokens.remove(*id) {
            Some(_) => Response {
                status: 204,
                content_type: "application/json",
                body: Vec::new(),
            },
            None => Response::json(404, json!({"error": "no such token"})),
        },
        _ => Response::html(404),
    }
}
