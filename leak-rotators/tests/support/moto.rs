//! Starts a real `moto_server` (PyPI `moto[server]`) on a free 127.0.0.1
//! port and calls its IAM API to set up users for the tests.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use leak_core::Secret;
use leak_rotators::aws::AwsCredentials;

const INSTALL: &str = "moto_server was not found. Install it with \
    `python3 -m venv /opt/moto && /opt/moto/bin/pip install 'moto[server]'` \
    and set LEAK_MOTO_SERVER=/opt/moto/bin/moto_server (or put moto_server on PATH)";

/// A running moto_server, killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LEAK_MOTO_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "LEAK_MOTO_SERVER={} is not a file. {INSTALL}",
            path.display()
        );
        return path;
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{INSTALL}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts moto; with `auth`, it checks SigV4 signatures and IAM policies
    /// (`INITIAL_NO_AUTH_ACTION_COUNT=0`).
    pub async fn start(auth: bool) -> Moto {
        let binary = moto_binary();
        let port = free_port();
        let mut command = Command::new(&binary);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_remove("AWS_ENDPOINT_URL");
        if auth {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}. {INSTALL}", binary.display()));
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        moto.wait_ready().await;
        moto
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(response) = client.get(format!("{}/moto-api/", self.url)).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("moto_server did not answer on {} within 60 s", self.url);
    }

    async fn reset_auth(&self, count: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.url))
            .header("content-type", "text/plain")
            .body(count.to_owned())
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "reset-auth {count}: {}",
            response.status()
        );
    }

    /// On an auth-checking instance: turns checks off, creates an admin user
    /// with an `Action: *` policy and a key, and turns checks back on.
    pub async fn create_admin(&self) -> AwsCredentials {
        self.reset_auth("inf").await;
        let bootstrap = dummy_credentials();
        self.iam(&bootstrap, "CreateUser", &[("UserName", "rotator-admin")])
            .await;
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        self.iam(
            &bootstrap,
            "PutUserPolicy",
            &[
                ("UserName", "rotator-admin"),
                ("PolicyName", "admin"),
                ("PolicyDocument", policy),
            ],
        )
        .await;
        let admin = self.create_key(&bootstrap, "rotator-admin").await;
        self.reset_auth("0").await;
        admin
    }

    /// Creates a user and one access key for it.
    pub async fn create_user_with_key(&self, admin: &AwsCredentials, user: &str) -> AwsCredentials {
        self.iam(admin, "CreateUser", &[("UserName", user)]).await;
        self.create_key(admin, user).await
    }

    /// Creates an access key for an existing user.
    pub async fn create_key(&self, admin: &AwsCredentials, user: &str) -> AwsCredentials {
        let body = self
            .iam(admin, "CreateAccessKey", &[("UserName", user)])
            .await;
        let id = between(&body, "<AccessKeyId>", "</AccessKeyId>");
        let secret = between(&body, "<SecretAccessKey>", "</SecretAccessKey>");
        AwsCredentials::new(id, Secret::new(secret))
    }

    /// Sets a key's status (`Active` or `Inactive`).
    pub async fn set_status(&self, admin: &AwsCredentials, user: &str, key_id: &str, status: &str) {
        self.iam(
            admin,
            "UpdateAccessKey",
            &[
                ("UserName", user),
                ("AccessKeyId", key_id),
                ("Status", status),
            ],
        )
        .await;
    }

    /// Lists a user's access key ids.
    pub async fn key_ids(&self, admin: &AwsCredentials, user: &str) -> Vec<String> {
        let body = self
            .iam(admin, "ListAccessKeys", &[("UserName", user)])
            .await;
        body.split("<AccessKeyId>")
            .skip(1)
            .map(|part| part.split("</AccessKeyId>").next().unwrap().to_owned())
            .collect()
    }

    /// Sends a signed IAM Query API call and returns the body; panics on an
    /// error status.
    pub async fn iam(
        &self,
        credentials: &AwsCredentials,
        action: &str,
        params: &[(&str, &str)],
    ) -> String {
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action)
                .append_pair("Version", "2010-05-08");
            for (key, value) in params {
                form.append_pair(key, value);
            }
            form.finish()
        };
        let url = format!("{}/", self.url);
        let headers = sign_headers(&url, &body, credentials);
        let mut request = reqwest::Client::new().post(&url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{action} failed with {status}: {text}");
        text
    }
}

/// Credentials for an instance that checks nothing; moto's documentation
/// uses the same placeholder words.
pub fn dummy_credentials() -> AwsCredentials {
    AwsCredentials::new("testing", Secret::new("testing"))
}

fn sign_headers(url: &str, body: &str, credentials: &AwsCredentials) -> Vec<(String, String)> {
    let identity: Identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials
            .secret_access_key
            .expose_str()
            .unwrap()
            .to_owned(),
        None,
        None,
        "tests",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("iam")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let signable = SignableRequest::new(
        "POST",
        url,
        [("content-type", content_type)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
    headers.extend(
        instructions
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
    );
    headers
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in response"))
        + start.len();
    let to = text[from..].find(end).unwrap() + from;
    text[from..to].to_owned()
}
