//! Client behaviours that distribution 2.8 cannot show, against a scripted
//! loopback server. A comment on each test states why it needs the mock, and each test fails when the
//! code that handles its case is removed.

mod common;

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::mock::{MockRequest, MockResponse, MockServer};
use leak_registry::{Credential, Error, RegistryClient, RetryPolicy, reader_error, sha256_digest};
use sha2::{Digest as _, Sha256};

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;

fn client(server: &MockServer) -> RegistryClient {
    builder(server).build().unwrap()
}

fn builder(server: &MockServer) -> leak_registry::ClientBuilder {
    RegistryClient::builder(server.address.clone())
        .with_insecure(true)
        .with_retry(RetryPolicy::new().with_base_delay(Duration::from_millis(10)))
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn tags_page(tags: &[&str]) -> MockResponse {
    MockResponse::new(200).json(serde_json::json!({ "name": "app", "tags": tags }))
}

fn tag_requests(server: &MockServer) -> Vec<MockRequest> {
    server
        .requests()
        .into_iter()
        .filter(|request| request.path() == "/v2/app/tags/list")
        .collect()
}

// Mock: distribution 2.8 ignores `n` on tag lists and never sends a Link header for them.
#[tokio::test]
async fn tags_follow_relative_link() {
    let server = MockServer::start(|request| match request.query("last").as_deref() {
        None => {
            tags_page(&["a", "b"]).header("Link", r#"</v2/app/tags/list?n=2&last=b>; rel="next""#)
        }
        Some("b") => tags_page(&["c"]),
        Some(_) => MockResponse::new(500),
    })
    .await;
    assert_eq!(client(&server).tags("app").await.unwrap(), ["a", "b", "c"]);
}

// Mock: distribution 2.8 sends no Link header on tag lists, let alone one to another origin.
#[tokio::test]
async fn tags_reject_other_origin_link() {
    let other = MockServer::start(|_| tags_page(&["z"])).await;
    let other_base = other.base();
    let server = MockServer::start(move |_| {
        tags_page(&["a"]).header(
            "Link",
            &format!("<{other_base}/v2/app/tags/list?page=2>; rel=\"next\""),
        )
    })
    .await;
    let error = client(&server).tags("app").await.unwrap_err();
    assert!(matches!(error, Error::InvalidLink { .. }), "{error}");
    assert!(
        other.requests().is_empty(),
        "nothing may be sent to the other origin"
    );
}

// Mock: an absolute Link to the registry's own origin needs a registry that sends absolute links.
#[tokio::test]
async fn tags_follow_absolute_same_origin_link() {
    let origin = Arc::new(std::sync::Mutex::new(String::new()));
    let seen = origin.clone();
    let server = MockServer::start(move |request| match request.query("page").as_deref() {
        None => {
            let base = seen.lock().unwrap().clone();
            tags_page(&["a"]).header(
                "Link",
                &format!("<{base}/v2/app/tags/list?page=2>; rel=\"next\""),
            )
        }
        Some(_) => tags_page(&["z"]),
    })
    .await;
    *origin.lock().unwrap() = server.base();
    assert_eq!(client(&server).tags("app").await.unwrap(), ["a", "z"]);
}

// Mock: opaque cursors come from registries other than distribution 2.8.
#[tokio::test]
async fn tags_follow_opaque_cursor() {
    let server = MockServer::start(|request| match request.query("cursor").as_deref() {
        None => tags_page(&["a", "b"])
            .header("Link", r#"</v2/app/tags/list?cursor=Zm9vYmFy>; rel="next""#),
        Some("Zm9vYmFy") => tags_page(&["c", "d"]),
        Some(_) => MockResponse::new(400),
    })
    .await;
    let paged = builder(&server).with_page_size(2).build().unwrap();
    assert_eq!(paged.tags("app").await.unwrap(), ["a", "b", "c", "d"]);
    let requests = tag_requests(&server);
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|request| request.query("last").is_none()),
        "last= is used only without a Link"
    );
}

// Mock: a cyclic Link needs a misbehaving registry.
#[tokio::test]
async fn tags_stop_on_cyclic_link() {
    let server = MockServer::start(|request| match request.query("cursor").as_deref() {
        None | Some("one") => {
            tags_page(&["a"]).header("Link", r#"</v2/app/tags/list?cursor=two>; rel="next""#)
        }
        Some(_) => {
            tags_page(&["b"]).header("Link", r#"</v2/app/tags/list?cursor=one>; rel="next""#)
        }
    })
    .await;
    assert_eq!(client(&server).tags("app").await.unwrap(), ["a", "b"]);
    assert!(
        tag_requests(&server).len() <= 4,
        "the loop must stop on a repeated cursor"
    );
}

// Mock: distribution 2.8 never returns 413 for a large `n`.
#[tokio::test]
async fn tags_halve_page_size_on_413() {
    let server = MockServer::start(|request| {
        let n: usize = request.query("n").and_then(|n| n.parse().ok()).unwrap_or(0);
        if n > 100 {
            MockResponse::new(413)
        } else {
            tags_page(&["a", "b"])
        }
    })
    .await;
    assert_eq!(client(&server).tags("app").await.unwrap(), ["a", "b"]);
    let sizes: Vec<String> = tag_requests(&server)
        .iter()
        .filter_map(|request| request.query("n"))
        .collect();
    assert_eq!(sizes, ["1000", "500", "250", "125", "62"]);
}

// Mock: distribution 2.8 ignores `last` on tag lists, so the fallback cannot be shown there.
#[tokio::test]
async fn tags_use_last_without_link() {
    let server = MockServer::start(|request| match request.query("last").as_deref() {
        None => tags_page(&["a", "b"]),
        Some("b") => tags_page(&["c", "d"]),
        Some("d") => tags_page(&["e"]),
        Some(_) => MockResponse::new(500),
    })
    .await;
    let paged = builder(&server).with_page_size(2).build().unwrap();
    assert_eq!(paged.tags("app").await.unwrap(), ["a", "b", "c", "d", "e"]);
}

// Mock: distribution 2.8 never lists null or digest-shaped tags.
#[tokio::test]
async fn tags_skip_null_and_digests() {
    let server = MockServer::start(|_| {
        MockResponse::new(200).json(serde_json::json!({
            "name": "app",
            "tags": [null, "v1", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "v2"]
        }))
    })
    .await;
    assert_eq!(client(&server).tags("app").await.unwrap(), ["v1", "v2"]);
}

fn rate_limited_once(retry_after: String) -> impl Fn(&MockRequest) -> MockResponse {
    let calls = AtomicUsize::new(0);
    move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            MockResponse::new(429).header("Retry-After", &retry_after)
        } else {
            tags_page(&["a"])
        }
    }
}

// Mock: distribution 2.8 never returns 429.
#[tokio::test]
async fn retry_after_seconds_honoured() {
    let server = MockServer::start(rate_limited_once("1".to_owned())).await;
    let started = Instant::now();
    assert_eq!(client(&server).tags("app").await.unwrap(), ["a"]);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 2);
}

// Mock: distribution 2.8 never returns 429.
#[tokio::test]
async fn retry_after_http_date_honoured() {
    let when = SystemTime::now() + Duration::from_secs(2);
    let server = MockServer::start(rate_limited_once(httpdate::fmt_http_date(when))).await;
    let started = Instant::now();
    assert_eq!(client(&server).tags("app").await.unwrap(), ["a"]);
    // HTTP dates have whole seconds, so the wait is between one and two seconds.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

// Mock: distribution 2.8 never returns 429.
#[tokio::test]
async fn retry_after_beyond_maximum_fails() {
    let server = MockServer::start(|_| MockResponse::new(429).header("Retry-After", "3600")).await;
    let error = client(&server).tags("app").await.unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error}");
    assert_eq!(server.requests().len(), 1);
}

// Mock: the real registry does not fail on cue with 5xx.
#[tokio::test]
async fn server_errors_retried_for_get_only() {
    let calls = AtomicUsize::new(0);
    let server = MockServer::start(move |request| {
        if request.method == "POST" {
            return MockResponse::new(503);
        }
        match calls.fetch_add(1, Ordering::SeqCst) {
            0 => MockResponse::new(503),
            1 => MockResponse::new(408),
            _ => tags_page(&["a"]),
        }
    })
    .await;
    let client = client(&server);
    assert_eq!(client.tags("app").await.unwrap(), ["a"]);
    assert_eq!(client.stats().retries, 2);

    let digest = sha256_digest(b"x").unwrap();
    let error = client
        .mount_blob("app", "other", &digest)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::UnexpectedStatus { status: 503, .. }),
        "{error}"
    );
    let posts = server
        .requests()
        .iter()
        .filter(|request| request.method == "POST")
        .count();
    assert_eq!(posts, 1, "a POST is not idempotent and must not be retried");
}

// Mock: the real registry cannot be made to drop a connection on cue.
#[tokio::test]
async fn connection_errors_retried() {
    let calls = AtomicUsize::new(0);
    let server = MockServer::start(move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            MockResponse::dropped()
        } else {
            tags_page(&["a"])
        }
    })
    .await;
    let client = client(&server);
    assert_eq!(client.tags("app").await.unwrap(), ["a"]);
    assert_eq!(client.stats().retries, 1);
}

// Mock: distribution 2.8 cannot issue a token that expires within a second.
#[tokio::test]
async fn token_refreshed_after_expiry() {
    let issued = AtomicUsize::new(0);
    let server = MockServer::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        if request.path() == "/token" {
            let id = issued.fetch_add(1, Ordering::SeqCst) + 1;
            return MockResponse::new(200)
                .json(serde_json::json!({ "token": format!("token-{id}"), "expires_in": 1 }));
        }
        match request.header("authorization") {
            Some(value) if value.starts_with("Bearer token-") => tags_page(&["a"]),
            _ => MockResponse::new(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://{host}/token",service="mock""#),
            ),
        }
    })
    .await;
    let client = client(&server);
    client.tags("app").await.unwrap();
    client.tags("app").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.tags("app").await.unwrap();
    let tokens: Vec<String> = server
        .requests()
        .iter()
        .filter(|request| request.path() != "/token")
        .filter_map(|request| request.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        tokens,
        ["Bearer token-1", "Bearer token-1", "Bearer token-2"]
    );
}

// Mock: distribution 2.8 always sends Docker-Content-Digest.
#[tokio::test]
async fn missing_digest_header_hashes_body() {
    let server = MockServer::start(|_| {
        MockResponse::new(200)
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(MANIFEST)
    })
    .await;
    let manifest = client(&server).manifest("app", "1.0").await.unwrap();
    assert_eq!(manifest.digest.to_string(), sha256(MANIFEST.as_bytes()));
}

// Mock: distribution 2.8 never serves a body that differs from its digest.
#[tokio::test]
async fn wrong_digest_header_rejected() {
    let server = MockServer::start(|_| {
        MockResponse::new(200)
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .header("Docker-Content-Digest", &sha256(b"something else"))
            .body(MANIFEST)
    })
    .await;
    let error = client(&server).manifest("app", "1.0").await.unwrap_err();
    assert!(matches!(error, Error::DigestMismatch { .. }), "{error}");
}

// Mock: distribution 2.8 never serves a body that differs from its digest.
#[tokio::test]
async fn manifest_by_digest_verified() {
    let server = MockServer::start(|_| {
        MockResponse::new(200)
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(MANIFEST)
    })
    .await;
    let wrong = sha256(b"another manifest");
    let error = client(&server).manifest("app", &wrong).await.unwrap_err();
    assert!(matches!(error, Error::DigestMismatch { .. }), "{error}");
}

fn blob_body() -> Vec<u8> {
    (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect()
}

fn read_blob(client: &RegistryClient, digest: &str, size: u64) -> std::io::Result<Vec<u8>> {
    let digest = leak_registry::parse_digest(digest).unwrap();
    let mut reader = client.blob_reader("app", &digest, Some(size));
    let mut body = Vec::new();
    reader.read_to_end(&mut body).map(|_| body)
}

// Mock: the real registry never breaks a connection mid-body on cue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_blob_resumed_with_range() {
    let body = blob_body();
    let digest = sha256(&body);
    let served = body.clone();
    let server = MockServer::start(move |request| match request.header("range") {
        None => MockResponse::new(200)
            .body(served.clone())
            .truncated(300_000),
        Some(range) => {
            let start: usize = range
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap();
            MockResponse::new(206)
                .header(
                    "Content-Range",
                    &format!("bytes {start}-{}/{}", served.len() - 1, served.len()),
                )
                .body(served[start..].to_vec())
        }
    })
    .await;
    let client = client(&server);
    let size = body.len() as u64;
    let received = tokio::task::spawn_blocking(move || read_blob(&client, &digest, size))
        .await
        .unwrap()
        .unwrap();
    assert!(received == body, "resumed body differs");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("range"), Some("bytes=300000-"));
}

// Mock: the real registry never serves a blob that differs from its digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_with_wrong_digest_fails() {
    let body = blob_body();
    let digest = sha256(b"not this body");
    let server = MockServer::start(move |_| MockResponse::new(200).body(body.clone())).await;
    let client = client(&server);
    let error = tokio::task::spawn_blocking(move || read_blob(&client, &digest, 800_000))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(reader_error(&error), Some(Error::DigestMismatch { .. })),
        "{error}"
    );
}

// Mock: distribution 2.8 lets tokens live 60 s past `exp` and cannot expire one on cue.
#[tokio::test]
async fn expired_token_401_refreshed() {
    let server = MockServer::start(expire_second_use(|host| {
        MockResponse::new(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="http://{host}/token",service="mock",scope="repository:app:pull",error="invalid_token""#),
        )
    }))
    .await;
    assert_refreshes(&server).await;
}

// Mock: some registries reject an expired token with 403; distribution 2.8 does not.
#[tokio::test]
async fn expired_token_403_refreshed() {
    let server = MockServer::start(expire_second_use(|_| {
        MockResponse::new(403)
            .json(serde_json::json!({"errors":[{"code":"DENIED","message":"token expired"}]}))
    }))
    .await;
    assert_refreshes(&server).await;
}

// Mock: some registries reject an expired token with 400; distribution 2.8 does not.
#[tokio::test]
async fn expired_token_400_refreshed() {
    let server = MockServer::start(expire_second_use(|_| {
        MockResponse::new(400)
            .json(serde_json::json!({"errors":[{"code":"UNAUTHORIZED","message":"Token expired"}]}))
    }))
    .await;
    assert_refreshes(&server).await;
}

/// Builds a registry whose token endpoint issues `token-N`. The first token
/// works once, and its second use gets the `expired` response.
fn expire_second_use(
    expired: impl Fn(&str) -> MockResponse + Send + Sync + 'static,
) -> impl Fn(&MockRequest) -> MockResponse {
    let issued = AtomicUsize::new(0);
    let first_token_uses = AtomicUsize::new(0);
    move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        if request.path() == "/token" {
            let id = issued.fetch_add(1, Ordering::SeqCst) + 1;
            return MockResponse::new(200)
                .json(serde_json::json!({ "token": format!("token-{id}"), "expires_in": 3600 }));
        }
        match request.header("authorization") {
            Some("Bearer token-1") => {
                if first_token_uses.fetch_add(1, Ordering::SeqCst) == 0 {
                    tags_page(&["a"])
                } else {
                    expired(&host)
                }
            }
            Some("Bearer token-2") => tags_page(&["a"]),
            _ => MockResponse::new(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://{host}/token",service="mock",scope="repository:app:pull""#),
            ),
        }
    }
}

async fn assert_refreshes(server: &MockServer) {
    let client = client(server);
    assert_eq!(client.tags("app").await.unwrap(), ["a"]);
    assert_eq!(
        client.tags("app").await.unwrap(),
        ["a"],
        "the expired token must be replaced"
    );
    let token_requests = server
        .requests()
        .iter()
        .filter(|request| request.path() == "/token")
        .count();
    assert_eq!(token_requests, 2);
}

// Mock: distribution 2.8 with filesystem storage serves blobs itself and never redirects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_other_host_drops_credentials() {
    let body = b"layer bytes".to_vec();
    let digest = sha256(&body);
    let served = body.clone();
    let storage = MockServer::start(move |_| MockResponse::new(200).body(served.clone())).await;
    let location = format!("{}/storage/blob", storage.base());
    let registry = MockServer::start(move |request| match request.header("authorization") {
        None => MockResponse::new(401).header("WWW-Authenticate", r#"Basic realm="mock""#),
        Some(_) => MockResponse::new(307).header("Location", &location),
    })
    .await;
    let client = builder(&registry)
        .with_credential(Credential::basic("user", "sentinel-redirect-password"))
        .build()
        .unwrap();
    let size = body.len() as u64;
    let received = tokio::task::spawn_blocking(move || read_blob(&client, &digest, size))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received, body);
    let storage_requests = storage.requests();
    assert_eq!(storage_requests.len(), 1);
    assert_eq!(storage_requests[0].header("authorization"), None);
    assert!(
        registry
            .requests()
            .iter()
            .any(|request| request.header("authorization").is_some())
    );
}

// Mock: counting requests in flight needs a server that can delay its responses.
#[tokio::test]
async fn concurrency_limited_per_registry() {
    let server = MockServer::start(|_| tags_page(&["a"]).delayed(Duration::from_millis(100))).await;
    let client = builder(&server).with_max_concurrency(2).build().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move { client.tags("app").await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 2);
}

// Mock: distribution 2.8 always serves a catalog.
#[tokio::test]
async fn missing_catalog_explained() {
    let server = MockServer::start(|_| MockResponse::new(404)).await;
    let error = client(&server).catalog().await.unwrap_err();
    assert!(matches!(error, Error::CatalogUnavailable { .. }), "{error}");
    assert!(error.to_string().contains("name the repositories"));
}

/// Collects formatted log lines in memory.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Mock: a token endpoint that rejects the password, plus a 403 "token expired",
// both on cue, to drive every logged auth path in one test.
#[tokio::test]
async fn logs_never_contain_credentials() {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start(expire_second_use(|_| {
        MockResponse::new(403)
            .json(serde_json::json!({"errors":[{"code":"DENIED","message":"token expired"}]}))
    }))
    .await;
    let client = builder(&server)
        .with_credential(Credential::basic("user", "sentinel-log-password"))
        .build()
        .unwrap();
    client.tags("app").await.unwrap();
    client.tags("app").await.unwrap();

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("token expired"),
        "the test must exercise the refresh path: {logs}"
    );
    assert!(!logs.contains("sentinel-log-password"));
    assert!(!logs.contains("token-1"), "tokens must not be logged");
    assert!(
        !logs.contains("dXNlcjpzZW50aW5lbC1sb2ctcGFzc3dvcmQ"),
        "the Basic header must not be logged"
    );
}
