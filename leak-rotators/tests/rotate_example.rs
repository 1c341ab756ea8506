//! End-to-end runs of the `rotate` example. An AWS key planted in an image
//! is found by the `scan` example and rotated with `rotate --execute`
//! against a real moto_server. A GCP key file is rotated against the
//! loopback GCP server, and an HTTP-configured credential against the
//! loopback token service.
//!
//! Cargo gives integration tests no path to another package's example, so
//! the tests build `scan` and `rotate` with the cargo that runs them, in
//! the same target directory and profile.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use support::gcp::FakeGcp;
use support::moto::Moto;
use support::tokens::{ADMIN_ENV, ADMIN_TOKEN, TokenService};

fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let test_exe = std::env::current_exe().unwrap();
    let profile_dir = test_exe.parent().and_then(Path::parent).unwrap().to_owned();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        let mut build = Command::new(&cargo);
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "leak-examples",
                "--example",
                "scan",
                "--example",
                "rotate",
                "--target-dir",
            ])
            .arg(profile_dir.parent().unwrap())
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
        assert!(
            status.success(),
            "building the scan and rotate examples failed: {status}"
        );
    });
    profile_dir.join("examples").join(name)
}

/// Starts a command for an example with no AWS variables from the test's
/// environment and `HOME` in `home`, so no real profile is read.
fn command(name: &str, home: &Path) -> Command {
    let mut command = Command::new(example(name));
    for variable in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
    ] {
        command.env_remove(variable);
    }
    command.env("HOME", home).env("RUST_LOG", "info");
    command
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex_string(&Sha256::digest(bytes)))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Writes a one-layer docker-archive image holding `path` with `content`.
fn plant_image(dir: &Path, path: &str, content: &[u8]) -> PathBuf {
    let layer = tar_of(&[(path, content)]);
    let diff_id = sha256(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "COPY .env /app/.env"}],
    })
    .to_string();
    let config_name = format!("{}.json", &sha256(config.as_bytes())["sha256:".len()..]);
    let layer_name = format!("{}/layer.tar", &diff_id["sha256:".len()..]);
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["planted:1"], "Layers": [layer_name]}]).to_string();
    let archive = tar_of(&[
        ("manifest.json", manifest.as_bytes()),
        (&config_name, config.as_bytes()),
        (&layer_name, &layer),
    ]);
    let image = dir.join("planted.tar");
    std::fs::write(&image, archive).unwrap();
    image
}

fn assert_sink_file(path: &Path) -> serde_json::Value {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "sink file mode");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn assert_journal_complete(dir: &Path, outcome: &str) {
    let journals: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    let text = std::fs::read_to_string(&journals[0]).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["record"], "finished");
    assert_eq!(last["outcome"], outcome);
}

#[tokio::test]
async fn planted_aws_key_scanned_and_rotated() {
    let moto = Moto::start(true).await;
    let admin = moto.create_admin().await;
    let leaky = moto.create_user_with_key(&admin, "leaky").await;
    let dir = tempfile::tempdir().unwrap();
    let env_file = format!(
        "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
        leaky.access_key_id,
        leaky.secret_access_key.expose_str().unwrap()
    );
    let image = plant_image(dir.path(), "app/.env", env_file.as_bytes());

    let scanned = command("scan", dir.path())
        .args(["--format", "json"])
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(
        scanned.status.code(),
        Some(1),
        "scan should find the key: {}",
        describe(&scanned)
    );
    let report_path = dir.path().join("report.json");
    std::fs::write(&report_path, &scanned.stdout).unwrap();
    let report_text = String::from_utf8_lossy(&scanned.stdout);
    assert!(report_text.contains("aws-access-key-id"), "{report_text}");
    assert!(!report_text.contains(leaky.secret_access_key.expose_str().unwrap()));

    let sink = dir.path().join("aws-key.json");
    let journal = dir.path().join("journal");
    let admin_secret = admin.secret_access_key.expose_str().unwrap().to_owned();
    let rotated = command("rotate", dir.path())
        .arg("--report")
        .arg(&report_path)
        .arg("--image")
        .arg(&image)
        .args([
            "--execute",
            "--verify-timeout",
            "20",
            "--revoked-timeout",
            "5",
        ])
        .arg(format!("--sink=file:{}", sink.display()))
        .arg("--journal")
        .arg(&journal)
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", &admin.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &admin_secret)
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", describe(&rotated));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&rotated.stdout),
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(
        !output.contains(leaky.secret_access_key.expose_str().unwrap()),
        "the leaked secret was printed"
    );
    assert!(
        !output.contains(&admin_secret),
        "the rotator's secret was printed"
    );

    let written = assert_sink_file(&sink);
    let new_id = written["key_id"].as_str().unwrap().to_owned();
    assert!(
        !output.contains(written["secret"].as_str().unwrap()),
        "the new secret was printed"
    );
    assert_eq!(moto.key_ids(&admin, "leaky").await, vec![new_id]);
    assert_journal_complete(&journal, "rotated");
}

#[test]
fn gcp_key_file_rotated_by_example() {
    let gcp = FakeGcp::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.json");
    std::fs::write(&admin, gcp.create_account("rotator-admin").expose()).unwrap();
    let leaked = dir.path().join("leaked.json");
    std::fs::write(&leaked, gcp.create_account("leaky").expose()).unwrap();
    let sink = dir.path().join("sa.json");
    let journal = dir.path().join("journal");

    let rotated = command("rotate", dir.path())
        .arg("--gcp-key-file")
        .arg(&leaked)
        .arg("--gcp-auth-file")
        .arg(&admin)
        .args([
            "--gcp-iam-url",
            &gcp.iam_base_url(),
            "--gcp-token-url",
            &gcp.token_url(),
        ])
        .args([
            "--execute",
            "--verify-timeout",
            "10",
            "--revoked-timeout",
            "2",
        ])
        .arg(format!("--sink=file:{}", sink.display()))
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", describe(&rotated));

    let written = assert_sink_file(&sink);
    let new_id = written["key_id"].as_str().unwrap().to_owned();
    assert_eq!(gcp.key_ids(&FakeGcp::email("leaky")), vec![new_id]);
    assert!(!String::from_utf8_lossy(&rotated.stdout).contains("PRIVATE KEY"));
    assert_journal_complete(&journal, "rotated");
}

#[test]
fn http_credential_rotated_by_example() {
    let service = TokenService::start();
    let (_, secret) = service.issue("team-a");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokens.toml");
    std::fs::write(&config, service.config(false)).unwrap();
    let token = dir.path().join("leaked-token");
    std::fs::write(&token, secret.expose()).unwrap();
    let sink = dir.path().join("token.json");
    let journal = dir.path().join("journal");

    let rotated = command("rotate", dir.path())
        .arg("--http-config")
        .arg(&config)
        .arg("--http-secret-file")
        .arg(&token)
        .args([
            "--execute",
            "--verify-timeout",
            "5",
            "--revoked-timeout",
            "2",
        ])
        .arg(format!("--sink=file:{}", sink.display()))
        .arg("--journal")
        .arg(&journal)
        .env(ADMIN_ENV, ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", describe(&rotated));

    let written = assert_sink_file(&sink);
    assert!(service.accepts(written["secret"].as_str().unwrap()));
    assert!(!service.accepts(secret.expose_str().unwrap()));
    assert_eq!(service.ids("team-a").len(), 1);
    assert_journal_complete(&journal, "rotated");
}

#[test]
fn dry_run_prints_plan_and_changes_nothing() {
    let service = TokenService::start();
    let (leaked_id, secret) = service.issue("team-b");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokens.toml");
    std::fs::write(&config, service.config(false)).unwrap();
    let token = dir.path().join("leaked-token");
    std::fs::write(&token, secret.expose()).unwrap();

    let planned = command("rotate", dir.path())
        .arg("--http-config")
        .arg(&config)
        .arg("--http-secret-file")
        .arg(&token)
        .arg("--journal")
        .arg(dir.path().join("journal"))
        .env(ADMIN_ENV, ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(planned.status.success(), "{}", describe(&planned));

    let printed: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    assert_eq!(printed["plan"]["leaked_key_id"], leaked_id.as_str());
    assert_eq!(printed["plan"]["strategy"], "create-then-revoke");
    assert_eq!(service.ids("team-b"), vec![leaked_id]);
}
