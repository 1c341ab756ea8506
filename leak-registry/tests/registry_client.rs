//! Client tests against a real `docker-registry` (distribution 2.8) on
//! 127.0.0.1, anonymous, with htpasswd basic auth, and with token auth.

mod common;

use std::io::Read as _;

use common::{Flavor, PASSWORD, Registry, SEEDED_REPOSITORIES, USERNAME, seed};
use leak_registry::{Credential, DockerConfig, Error, ManifestKind, RegistryClient};

#[tokio::test]
async fn catalog_pages_to_the_end() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    seed(&client).await;
    let paged = RegistryClient::builder(registry.address.clone())
        .with_insecure(true)
        .with_page_size(2)
        .build()
        .unwrap();
    let before = paged.stats().requests;
    let repositories = paged.catalog().await.unwrap();
    assert_eq!(repositories, SEEDED_REPOSITORIES);
    // Seven repositories in pages of two take four requests.
    assert_eq!(paged.stats().requests - before, 4);
}

#[tokio::test]
async fn tags_listed_completely() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    seed(&client).await;
    let mut tags = client.tags("fixtures/app").await.unwrap();
    tags.sort();
    assert_eq!(tags, ["1.0", "1.1", "1.2"]);
    let mut mirror = client.tags("mirror/app").await.unwrap();
    mirror.sort();
    assert_eq!(mirror, ["1.0", "stable"]);
}

#[tokio::test]
async fn unknown_repository_not_found() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let error = client.tags("no/such").await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
}

#[tokio::test]
async fn manifest_verified_and_cached() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let by_tag = client.manifest("fixtures/app", "1.0").await.unwrap();
    assert_eq!(by_tag.digest, seeded.app_1_0);
    assert!(matches!(by_tag.kind, ManifestKind::Image(_)));
    let before = client.stats().requests;
    let by_digest = client
        .manifest("fixtures/app", seeded.app_1_0.as_ref())
        .await
        .unwrap();
    assert_eq!(by_digest.digest, seeded.app_1_0);
    assert_eq!(
        client.stats().requests,
        before,
        "a cached digest costs no request"
    );
    let head = client
        .manifest_digest("mirror/app", "stable")
        .await
        .unwrap();
    assert_eq!(head, seeded.app_1_0);
}

#[tokio::test]
async fn index_walks_every_platform() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let resolved = client.resolve_images("multi/app", "latest").await.unwrap();
    assert_eq!(resolved.root_digest, seeded.index);
    assert_eq!(resolved.attestations_skipped, 1);
    let mut platforms: Vec<(String, String)> = resolved
        .images
        .iter()
        .map(|image| {
            (
                image.platform.clone().unwrap(),
                image.manifest.digest.to_string(),
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(
        platforms,
        [
            ("linux/amd64".to_owned(), seeded.fixed.to_string()),
            ("linux/arm64".to_owned(), seeded.env.to_string()),
        ]
    );
    assert!(
        resolved
            .images
            .iter()
            .all(|image| image.index_digest.as_ref() == Some(&seeded.index))
    );
}

#[tokio::test]
async fn blob_streams_with_digest_check() {
    let registry = Registry::start(Flavor::Anonymous).await;
    let client = registry.client(Credential::Anonymous);
    let seeded = seed(&client).await;
    let manifest = client
        .manifest("fixtures/env", seeded.env.as_ref())
        .await
        .unwrap();
    let ManifestKind::Image(image) = &manifest.kind else {
        panic!("expected an image manifest");
    };
    let layer = image.layers()[0].clone();
    let reader = client.blob_reader("fixtures/env", layer.digest(), Some(layer.size()));
    let body = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut body = Vec::new();
        reader.read_to_end(&mut body).map(|_| body)
    })
    .await
    .unwrap()
    .unwrap();
    let expected = std::fs::read(common::blob_path(
        &common::fixtures_dir().join("oci/env"),
        layer.digest(),
    ))
    .unwrap();
    assert_eq!(body.len(), expected.len());
    assert!(body == expected);
    let config = client
        .blob_bytes(
            "fixtures/env",
            image.config().digest(),
            Some(image.config().size()),
        )
        .await
        .unwrap();
    assert_eq!(config.len() as u64, image.config().size());
}

#[tokio::test]
async fn basic_auth_required_and_accepted() {
    let registry = Registry::start(Flavor::Basic).await;
    let anonymous = registry.client(Credential::Anonymous);
    let error = anonymous.catalog().await.unwrap_err();
    assert!(
        matches!(error, Error::AccessDenied { status: 401, .. }),
        "{error}"
    );

    let wrong = registry.client(Credential::basic(USERNAME, "sentinel-wrong-password"));
    let error = wrong.catalog().await.unwrap_err();
    assert!(matches!(error, Error::AccessDenied { .. }), "{error}");
    assert!(!format!("{error} {error:?} {wrong:?}").contains("sentinel-wrong-password"));

    let client = registry.client(Credential::basic(USERNAME, PASSWORD));
    seed(&client).await;
    assert_eq!(client.catalog().await.unwrap(), SEEDED_REPOSITORIES);
}

#[tokio::test]
async fn docker_config_credentials_used() {
    use base64::Engine as _;
    let registry = Registry::start(Flavor::Basic).await;
    let directory = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"));
    let config = serde_json::json!({ "auths": { format!("http://{}", registry.address): { "auth": auth } } });
    std::fs::write(directory.path().join("config.json"), config.to_string()).unwrap();
    let config = DockerConfig::load(&directory.path().join("config.json")).unwrap();
    let client = RegistryClient::builder(registry.address.clone())
        .with_insecure(true)
        .with_docker_config(config)
        .build()
        .unwrap();
    client.ping().await.unwrap();
}

#[tokio::test]
async fn token_auth_uses_operation_scopes() {
    let tokens = common::token::TokenServer::start(USERNAME, PASSWORD).await;
    let registry = Registry::start(Flavor::Token {
        realm: tokens.realm(),
    })
    .await;
    let client = registry.client(Credential::basic(USERNAME, PASSWORD));
    seed(&client).await;
    assert_eq!(client.catalog().await.unwrap(), SEEDED_REPOSITORIES);
    let mut tags = client.tags("fixtures/app").await.unwrap();
    tags.sort();
    assert_eq!(tags, ["1.0", "1.1", "1.2"]);
    let scopes = tokens.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&vec!["registry:catalog:*".to_owned()]),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&vec!["repository:fixtures/app:pull".to_owned()]),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&vec!["repository:fixtures/app:pull,push".to_owned()]),
        "{scopes:?}"
    );
}

#[tokio::test]
async fn token_cached_between_requests() {
    let tokens = common::token::TokenServer::start(USERNAME, PASSWORD).await;
    let registry = Registry::start(Flavor::Token {
        realm: tokens.realm(),
    })
    .await;
    let client = registry.client(Credential::basic(USERNAME, PASSWORD));
    seed(&client).await;
    let fresh = registry.client(Credential::basic(USERNAME, PASSWORD));
    let before = tokens.scopes.lock().unwrap().len();
    for _ in 0..3 {
        fresh.tags("fixtures/env").await.unwrap();
    }
    let fetched = tokens.scopes.lock().unwrap().len() - before;
    assert_eq!(
        fetched, 1,
        "one token fetch for three requests of one scope"
    );
}

#[tokio::test]
async fn token_auth_rejects_wrong_password() {
    let tokens = common::token::TokenServer::start(USERNAME, PASSWORD).await;
    let registry = Registry::start(Flavor::Token {
        realm: tokens.realm(),
    })
    .await;
    let client = registry.client(Credential::basic(USERNAME, "sentinel-wrong-password"));
    let error = client.catalog().await.unwrap_err();
    assert!(matches!(error, Error::AccessDenied { .. }), "{error}");
    assert!(!format!("{error:?}").contains("sentinel-wrong-password"));
}
