//! Shared test support: the real registry process, fixture pushing, a token
//! endpoint and a scriptable mock server.
#![allow(dead_code, unreachable_pub)]

pub mod mock;
pub mod token;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use leak_registry::{Credential, Digest, OCI_INDEX, RegistryClient, parse_digest};

pub const USERNAME: &str = "auditor";
pub const PASSWORD: &str = "leak-registry-test-password";

/// Which registry configuration from `tests/registry/` to run.
pub enum Flavor {
    /// `anonymous.yml`: no auth, deletion enabled.
    Anonymous,
    /// `basic.yml`: htpasswd auth, deletion disabled.
    Basic,
    /// `token.yml`: token auth against the given realm, deletion enabled.
    Token { realm: String },
}

/// A `docker-registry` process on a free loopback port, killed on drop.
pub struct Registry {
    pub address: String,
    child: Child,
    _log: tempfile::NamedTempFile,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    pub async fn start(flavor: Flavor) -> Registry {
        let binary = registry_binary();
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let log = tempfile::NamedTempFile::new().unwrap();
        let (config, envs) = match flavor {
            Flavor::Anonymous => ("anonymous.yml", Vec::new()),
            Flavor::Basic => (
                "basic.yml",
                vec![("REGISTRY_AUTH_HTPASSWD_PATH", config_path("htpasswd"))],
            ),
            Flavor::Token { realm } => (
                "token.yml",
                vec![
                    ("REGISTRY_AUTH_TOKEN_REALM", PathBuf::from(realm)),
                    (
                        "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE",
                        config_path("token-signing-cert.pem"),
                    ),
                ],
            ),
        };
        let child = Command::new(&binary)
            .arg("serve")
            .arg(config_path(config))
            .env("REGISTRY_HTTP_ADDR", &address)
            .envs(envs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let mut registry = Registry {
            address,
            child,
            _log: log,
        };
        registry.wait_ready().await;
        registry
    }

    async fn wait_ready(&mut self) {
        let url = format!("http://{}/v2/", self.address);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self._log.path()).unwrap_or_default();
                panic!("docker-registry exited with {status} before answering:\n{log}");
            }
            if let Ok(response) = http.get(&url).send().await
                && matches!(response.status().as_u16(), 200 | 401)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "docker-registry on {} did not answer /v2/ within 20 s",
            self.address
        );
    }

    /// Builds a client for this registry with the given credentials.
    pub fn client(&self, credential: Credential) -> RegistryClient {
        RegistryClient::builder(self.address.clone())
            .with_insecure(true)
            .with_credential(credential)
            .build()
            .unwrap()
    }
}

/// Finds the registry binary, or fails the test with an install hint.
pub fn registry_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LEAK_DOCKER_REGISTRY") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|directory| directory.join("docker-registry"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "docker-registry not found: install it with `apt-get install -y docker-registry` \
             (distribution 2.8) or set LEAK_DOCKER_REGISTRY to the binary"
        )
    })
}

pub fn config_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/registry")
        .join(name)
}

/// The shared fixture images, or a failed test saying where they belong.
pub fn fixtures_dir() -> PathBuf {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(
        directory.join("oci").is_dir(),
        "fixture images not found at {}: copy the shared fixtures there",
        directory.display()
    );
    directory
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A manifest read from an OCI layout, with the layout it came from.
pub struct LayoutManifest {
    pub layout: PathBuf,
    pub digest: Digest,
    pub bytes: Vec<u8>,
    pub media_type: String,
}

/// Reads the manifest that `index.json` of fixture layout `name` lists under `ref_name`.
pub fn layout_manifest(name: &str, ref_name: &str) -> LayoutManifest {
    let layout = fixtures_dir().join("oci").join(name);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["annotations"]["org.opencontainers.image.ref.name"] == ref_name)
        .unwrap_or_else(|| panic!("no ref {ref_name} in fixture layout {name}"));
    let digest = parse_digest(entry["digest"].as_str().unwrap()).unwrap();
    let bytes = std::fs::read(blob_path(&layout, &digest)).unwrap();
    LayoutManifest {
        layout,
        digest,
        bytes,
        media_type: entry["mediaType"].as_str().unwrap().to_owned(),
    }
}

pub fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    layout.join("blobs").join("sha256").join(digest.digest())
}

/// Uploads the config and layers of a layout manifest, then PUTs the manifest
/// under `reference` (a tag or its digest).
pub async fn push_manifest(
    client: &RegistryClient,
    manifest: &LayoutManifest,
    repository: &str,
    reference: &str,
) -> Digest {
    let parsed: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
    let mut blobs = vec![parsed["config"]["digest"].as_str().unwrap().to_owned()];
    for layer in parsed["layers"].as_array().unwrap() {
        blobs.push(layer["digest"].as_str().unwrap().to_owned());
    }
    for blob in blobs {
        let digest = parse_digest(&blob).unwrap();
        if !client.blob_exists(repository, &digest).await.unwrap() {
            let body = std::fs::read(blob_path(&manifest.layout, &digest)).unwrap();
            client
                .upload_blob(repository, &digest, Bytes::from(body))
                .await
                .unwrap();
        }
    }
    client
        .put_manifest(
            repository,
            reference,
            &manifest.media_type,
            Bytes::from(manifest.bytes.clone()),
        )
        .await
        .unwrap()
}

/// Pushes fixture `name`:`ref_name` to `repository` under each of `tags`.
pub async fn push_fixture(
    client: &RegistryClient,
    name: &str,
    ref_name: &str,
    repository: &str,
    tags: &[&str],
) -> Digest {
    let manifest = layout_manifest(name, ref_name);
    let mut digest = None;
    for tag in tags {
        digest = Some(push_manifest(client, &manifest, repository, tag).await);
    }
    digest.unwrap()
}

/// What [`seed`] pushed.
pub struct Seeded {
    pub app_1_0: Digest,
    pub app_1_1: Digest,
    pub app_1_2: Digest,
    pub env: Digest,
    pub fixed: Digest,
    pub gcp_key: Digest,
    /// The index in `multi/app:latest`.
    pub index: Digest,
}

/// Every repository and tag [`seed`] creates, sorted.
pub const SEEDED_REPOSITORIES: [&str; 7] = [
    "fixtures/app",
    "fixtures/env",
    "fixtures/fixed",
    "fixtures/gcp-key",
    "mirror/app",
    "multi/app",
    "rel/app",
];

/// Pushes the fixture images under several repositories and tags:
///
/// - `fixtures/app:1.0`, `:1.1`, `:1.2`, `fixtures/env:latest`,
///   `fixtures/fixed:latest`, `fixtures/gcp-key:latest`;
/// - `mirror/app:1.0` and `mirror/app:stable`, two tags on the app 1.0 digest;
/// - `rel/app:current` on the app 1.2 digest (clean);
/// - `multi/app:latest`, an OCI index whose linux/amd64 entry is the clean
///   `fixed` image, whose linux/arm64 entry is the leaking `env` image, and
///   whose attestation entry points at the `whiteout` image (skipped).
pub async fn seed(client: &RegistryClient) -> Seeded {
    let app_1_0 = push_fixture(client, "app", "1.0", "fixtures/app", &["1.0"]).await;
    let app_1_1 = push_fixture(client, "app", "1.1", "fixtures/app", &["1.1"]).await;
    let app_1_2 = push_fixture(client, "app", "1.2", "fixtures/app", &["1.2"]).await;
    let env = push_fixture(client, "env", "latest", "fixtures/env", &["latest"]).await;
    let fixed = push_fixture(client, "fixed", "latest", "fixtures/fixed", &["latest"]).await;
    let gcp_key = push_fixture(client, "gcp-key", "latest", "fixtures/gcp-key", &["latest"]).await;
    push_fixture(client, "app", "1.0", "mirror/app", &["1.0", "stable"]).await;
    push_fixture(client, "app", "1.2", "rel/app", &["current"]).await;
    let index = push_multi_platform(client).await;
    Seeded {
        app_1_0,
        app_1_1,
        app_1_2,
        env,
        fixed,
        gcp_key,
        index,
    }
}

async fn push_multi_platform(client: &RegistryClient) -> Digest {
    let repository = "multi/app";
    let amd64 = layout_manifest("fixed", "latest");
    let arm64 = layout_manifest("env", "latest");
    let attestation = layout_manifest("whiteout", "latest");
    for manifest in [&amd64, &arm64, &attestation] {
        push_manifest(client, manifest, repository, manifest.digest.as_ref()).await;
    }
    let entry = |manifest: &LayoutManifest, platform: serde_json::Value| {
        serde_json::json!({
            "mediaType": manifest.media_type,
            "digest": manifest.digest.to_string(),
            "size": manifest.bytes.len(),
            "platform": platform,
        })
    };
    let mut attestation_entry = entry(
        &attestation,
        serde_json::json!({"os": "unknown", "architecture": "unknown"}),
    );
    attestation_entry["annotations"] = serde_json::json!({
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": arm64.digest.to_string(),
    });
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            entry(&amd64, serde_json::json!({"os": "linux", "architecture": "amd64"})),
            entry(&arm64, serde_json::json!({"os": "linux", "architecture": "arm64"})),
            attestation_entry,
        ],
    });
    let body = Bytes::from(serde_json::to_vec(&index).unwrap());
    client
        .put_manifest(repository, "latest", OCI_INDEX, body)
        .await
        .unwrap()
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
