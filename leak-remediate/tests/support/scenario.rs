//! The scenario every end-to-end test remediates: an IAM user whose access
//! key leaked into images pushed under several tags of two repositories,
//! next to a clean tag and a fixed image.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use leak_registry::RegistryClient;
use leak_remediate::{RemediationBuilder, RemediationReport};
use leak_rotators::VerifyPolicy;
use leak_rotators::aws::{AwsCredentials, AwsRotator};

use super::image::{image, layer, push};
use super::moto::Moto;
use super::registry::Registry;

/// moto_server (checking signatures) and docker-registry, shared by the
/// cases of one test.
pub struct Services {
    pub moto: Moto,
    pub registry: Registry,
    pub admin: AwsCredentials,
    pub client: RegistryClient,
}

impl Services {
    pub async fn start() -> Services {
        let moto = Moto::start(true).await;
        let admin = moto.create_admin().await;
        let registry = Registry::start().await;
        let client = registry.client();
        Services {
            moto,
            registry,
            admin,
            client,
        }
    }
}

/// One seeded case: its own IAM user, repositories and directories.
pub struct Case<'a> {
    pub services: &'a Services,
    pub user: String,
    pub leaked: AwsCredentials,
    pub shop: String,
    pub mirror: String,
    pub leaking: String,
    pub leaking_debug: String,
    pub clean: String,
    pub fixed: String,
    pub dir: tempfile::TempDir,
}

/// Tags of the shop repository that carry the leaked key.
pub const LEAKING_TAGS: [&str; 3] = ["1.0", "latest", "1.0-debug"];

impl<'a> Case<'a> {
    /// Creates a user with one key, builds images that leak it, and pushes
    /// them: `NAME/shop:1.0` and `:latest` (the key in a file and in `Env`),
    /// `:1.0-debug` (in `Env` only), `:clean`, `:fixed`, and
    /// `NAME/mirror:1.0` (the first leaking image again).
    pub async fn seed(services: &'a Services, name: &str) -> Case<'a> {
        let user = format!("{name}-deployer");
        let leaked = services
            .moto
            .create_user_with_key(&services.admin, &user)
            .await;
        let key_id = leaked.access_key_id.clone();
        let secret = leaked.secret_access_key.expose_str().unwrap().to_owned();
        let credentials =
            format!("[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n");
        let env = vec![
            "PATH=/usr/bin".to_owned(),
            format!("AWS_ACCESS_KEY_ID={key_id}"),
            format!("AWS_SECRET_ACCESS_KEY={secret}"),
        ];
        let base = || layer(&[("etc/os-release", b"NAME=test\n".as_slice())]);
        let leaking = image(
            vec![
                base(),
                layer(&[("root/.aws/credentials", credentials.as_bytes())]),
            ],
            &env,
            &[
                "ADD rootfs.tar /",
                "COPY credentials /root/.aws/credentials",
            ],
        );
        let debug = image(
            vec![
                base(),
                layer(&[("app/debug.txt", b"debug build\n".as_slice())]),
            ],
            &env,
            &["ADD rootfs.tar /", "COPY debug.txt /app/"],
        );
        let clean = image(
            vec![
                base(),
                layer(&[("app/main.txt", b"version 1\n".as_slice())]),
            ],
            &["PATH=/usr/bin".to_owned()],
            &["ADD rootfs.tar /", "COPY main.txt /app/"],
        );
        let fixed = image(
            vec![
                base(),
                layer(&[("app/main.txt", b"version 2\n".as_slice())]),
            ],
            &["PATH=/usr/bin".to_owned()],
            &["ADD rootfs.tar /", "COPY main.txt /app/"],
        );
        let shop = format!("{name}/shop");
        let mirror = format!("{name}/mirror");
        let client = &services.client;
        push(client, &leaking, &shop, &["1.0", "latest"]).await;
        push(client, &debug, &shop, &["1.0-debug"]).await;
        push(client, &clean, &shop, &["clean"]).await;
        push(client, &fixed, &shop, &["fixed"]).await;
        push(client, &leaking, &mirror, &["1.0"]).await;
        Case {
            services,
            user,
            leaked,
            shop,
            mirror,
            leaking: leaking.digest,
            leaking_debug: debug.digest,
            clean: clean.digest,
            fixed: fixed.digest,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Returns the registry scope: both repositories, plain HTTP.
    pub fn scope(&self) -> String {
        format!(
            "http://{}/{},{}",
            self.services.registry.address, self.shop, self.mirror
        )
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    pub fn sink_dir(&self) -> PathBuf {
        self.dir.path().join("sink")
    }

    /// Returns a builder with the AWS rotator on moto, fast verification and this
    /// case's directories.
    pub fn builder(&self) -> RemediationBuilder {
        let rotator = AwsRotator::builder()
            .with_credentials(self.services.admin.clone())
            .with_endpoint(&self.services.moto.url)
            .build()
            .unwrap();
        leak_remediate::Remediation::builder()
            .with_rotator(Arc::new(rotator))
            .with_journal_dir(self.journal_dir())
            .with_sink_dir(self.sink_dir())
            .with_verify_policy(fast_verify())
    }

    /// Writes a `--rotators` file for the example and returns its path.
    pub fn write_config(&self) -> PathBuf {
        let secret_file = self.dir.path().join("admin-secret");
        std::fs::write(&secret_file, self.services.admin.secret_access_key.expose()).unwrap();
        let config = format!(
            "journal_dir = \"journal\"\nsink_dir = \"sink\"\n\n[verify]\nnew_key_timeout_secs = 10\n\
             revoked_timeout_secs = 5\ninitial_interval_ms = 50\nmax_interval_ms = 200\n\n\
             [aws]\nendpoint = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key_file = \"admin-secret\"\n",
            self.services.moto.url, self.services.admin.access_key_id
        );
        let path = self.dir.path().join("rotators.toml");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Lists the user's access key ids at moto.
    pub async fn key_ids(&self) -> Vec<String> {
        self.services
            .moto
            .key_ids(&self.services.admin, &self.user)
            .await
    }

    /// Returns the digest a tag points at, or `None` when the tag is gone.
    pub async fn tag_digest(&self, repository: &str, tag: &str) -> Option<String> {
        match self.services.client.manifest_digest(repository, tag).await {
            Ok(digest) => Some(digest.to_string()),
            Err(leak_registry::Error::NotFound { .. }) => None,
            Err(error) => panic!("cannot read {repository}:{tag}: {error}"),
        }
    }

    /// Returns the single secret file in the sink directory, with its JSON.
    pub fn sink_entry(&self) -> (PathBuf, serde_json::Value) {
        let files: Vec<PathBuf> = std::fs::read_dir(self.sink_dir())
            .unwrap()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        assert_eq!(files.len(), 1, "sink files: {files:?}");
        let text = std::fs::read_to_string(&files[0]).unwrap();
        (files[0].clone(), serde_json::from_str(&text).unwrap())
    }

    /// Checks the rotation: the leaked key is gone, exactly one new key
    /// exists, and it is the one in the sink file (mode 0600).
    pub async fn assert_rotated(&self) -> String {
        let keys = self.key_ids().await;
        assert_eq!(keys.len(), 1, "keys of {}: {keys:?}", self.user);
        assert_ne!(
            keys[0], self.leaked.access_key_id,
            "the leaked key is still there"
        );
        let (path, entry) = self.sink_entry();
        assert_eq!(entry["key_id"], keys[0].as_str());
        assert!(entry["secret"].as_str().is_some_and(|s| s.len() >= 20));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode of {}", path.display());
        keys[0].clone()
    }

    /// Checks that the leaking tags point at the fixed image, the leaking
    /// manifests are deleted, and the clean tags are untouched.
    pub async fn assert_replaced(&self) {
        for tag in LEAKING_TAGS {
            let digest = self.tag_digest(&self.shop, tag).await;
            assert_eq!(
                digest.as_deref(),
                Some(self.fixed.as_str()),
                "{}:{tag}",
                self.shop
            );
        }
        let mirrored = self.tag_digest(&self.mirror, "1.0").await;
        assert_eq!(
            mirrored.as_deref(),
            Some(self.fixed.as_str()),
            "{}:1.0",
            self.mirror
        );
        for (repository, digest) in [
            (&self.shop, &self.leaking),
            (&self.shop, &self.leaking_debug),
            (&self.mirror, &self.leaking),
        ] {
            assert_eq!(
                self.tag_digest(repository, digest).await,
                None,
                "{repository}@{digest}"
            );
        }
        self.assert_clean_untouched().await;
    }

    /// Checks that the leaking tags are gone and the clean tags untouched.
    pub async fn assert_deleted(&self) {
        for tag in LEAKING_TAGS {
            assert_eq!(
                self.tag_digest(&self.shop, tag).await,
                None,
                "{}:{tag}",
                self.shop
            );
        }
        assert_eq!(self.tag_digest(&self.mirror, "1.0").await, None);
        self.assert_clean_untouched().await;
    }

    pub async fn assert_clean_untouched(&self) {
        let clean = self.tag_digest(&self.shop, "clean").await;
        assert_eq!(clean.as_deref(), Some(self.clean.as_str()));
        let fixed = self.tag_digest(&self.shop, "fixed").await;
        assert_eq!(fixed.as_deref(), Some(self.fixed.as_str()));
    }
}

/// Verification timing for moto, which has no propagation delay.
pub fn fast_verify() -> VerifyPolicy {
    VerifyPolicy {
        new_key_timeout: Some(Duration::from_secs(10)),
        revoked_timeout: Duration::from_secs(5),
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_millis(200),
    }
}

/// Checks the report of a fully executed scenario.
pub fn assert_report_done(report: &RemediationReport, new_key: &str) {
    assert!(report.all_done(), "report:\n{}", report.summary());
    assert_eq!(
        report.credentials.len(),
        1,
        "credentials: {:?}",
        report.credentials
    );
    let credential = &report.credentials[0];
    assert_eq!(credential.kind, "aws-access-key-id");
    let leak_remediate::CredentialStatus::Rotated { result } = &credential.status else {
        panic!("not rotated: {:?}", credential.status);
    };
    assert_eq!(result.outcome, leak_rotators::Outcome::Rotated);
    assert_eq!(result.new_key_id.as_deref(), Some(new_key));
    assert_eq!(result.leaked_dead_confirmed, Some(true));
    assert!(!credential.timeline.is_empty());
    let summary = report.summary();
    assert!(summary.contains("Rotated"), "summary:\n{summary}");
    assert!(summary.contains(new_key), "summary:\n{summary}");
}

/// Fails when any file under `dir` contains `needle`.
pub fn assert_not_in_files(dir: &Path, needle: &str, except: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path == except {
            continue;
        }
        if path.is_dir() {
            assert_not_in_files(&path, needle, except);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            assert!(
                !text.contains(needle),
                "{} contains a secret",
                path.display()
            );
        }
    }
}
