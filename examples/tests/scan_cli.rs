//! End-to-end tests of the `scan` example on the real fixture images: exit
//! codes, the JSON and SARIF shapes, the `--known-values`, `--platform` and
//! `--rules` options, and that no output ever carries a planted secret in
//! clear.
//!
//! Cargo gives integration tests no path to an example binary, so the tests
//! build `scan` once with the cargo that runs them, in the same target
//! directory and profile, and run it from there. The fixtures live in
//! `shared/fixtures` beside the repository. When that folder is missing the
//! tests fail: they never pass by skipping.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use sha2::{Digest, Sha256};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");

/// Exit status of `scan` when nothing is found.
const EXIT_CLEAN: i32 = 0;
/// Exit status of `scan` when something is found.
const EXIT_FOUND: i32 = 1;
/// Exit status of `scan` on an error or partial coverage.
const EXIT_ERROR: i32 = 2;

/// One run of `scan`.
#[derive(Debug)]
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "scan {:?}: stdout is not JSON ({error}):\n{}",
                self.args, self.stdout
            )
        })
    }

    fn assert_code(&self, expected: i32) {
        assert_eq!(
            self.code,
            Some(expected),
            "scan {:?}: exit status\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
    }
}

fn fixtures_dir() -> PathBuf {
    let dir = PathBuf::from(FIXTURES);
    assert!(
        dir.join("ground_truth.json").is_file(),
        "fixture images not found: expected {}/ground_truth.json. Place the shared/ folder \
         (with fixtures/docker-archive, fixtures/oci and fixtures/ground_truth.json) beside \
         the repository checkout.",
        dir.display()
    );
    dir
}

fn fixture(relative: &str) -> String {
    fixtures_dir().join(relative).display().to_string()
}

fn ground_truth() -> &'static Value {
    static TRUTH: OnceLock<Value> = OnceLock::new();
    TRUTH.get_or_init(|| {
        let path = fixtures_dir().join("ground_truth.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("cannot parse {}: {error}", path.display()))
    })
}

/// Builds the `scan` example into the target directory and profile of this
/// test binary (`<target>/<profile>/deps/scan_cli-HASH`) and returns its
/// path.
fn scan_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let test_exe = std::env::current_exe().expect("path of the test binary");
        let profile_dir = test_exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in <target>/<profile>/deps");
        let target_dir = profile_dir
            .parent()
            .expect("profile directory has a parent");
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
                "--target-dir",
            ])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build
            .status()
            .unwrap_or_else(|error| panic!("cannot run {cargo}: {error}"));
        assert!(
            status.success(),
            "`cargo build --example scan` failed: {status}"
        );
        let binary = profile_dir
            .join("examples")
            .join(format!("scan{}", std::env::consts::EXE_SUFFIX));
        assert!(
            binary.is_file(),
            "scan example not found at {} after building it",
            binary.display()
        );
        binary
    })
}

/// Runs `scan` with `args` in the package directory.
fn scan(args: &[&str]) -> Run {
    scan_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Runs `scan` with `args` in the working directory `dir`, with tracing at
/// `trace` level so that log lines are checked for secrets too.
fn scan_in(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(scan_binary())
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap_or_else(|error| panic!("cannot run scan {args:?}: {error}"));
    Run {
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Every docker-archive and OCI layout of the fixture set.
fn all_inputs() -> Vec<String> {
    let mut inputs = Vec::new();
    for folder in ["docker-archive", "oci"] {
        let dir = fixtures_dir().join(folder);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()));
        for entry in entries {
            inputs.push(entry.expect("directory entry").path().display().to_string());
        }
    }
    inputs.sort();
    inputs
}

/// Strings whose presence in any output would mean a planted value leaked:
/// each value, its JSON-escaped form, every base64 line of a PEM key, and
/// the password and key id listed under `details`.
fn clear_text_forms() -> Vec<(String, String)> {
    let truth = ground_truth();
    let mut forms = Vec::new();
    let values = truth["all_values"]
        .as_array()
        .expect("all_values is an array");
    for planted in values {
        let name = planted["name"].as_str().expect("value name").to_owned();
        let value = planted["value"].as_str().expect("value text");
        forms.push((name.clone(), value.to_owned()));
        let escaped = serde_json::to_string(value).expect("string serialises");
        forms.push((
            format!("{name} (JSON-escaped)"),
            escaped.trim_matches('"').to_owned(),
        ));
        for line in value
            .lines()
            .filter(|line| line.len() >= 40 && !line.starts_with("-----"))
        {
            forms.push((format!("{name} (line of the PEM body)"), line.to_owned()));
        }
    }
    for image in truth["images"].as_array().expect("images is an array") {
        for secret in image["secrets"].as_array().expect("secrets is an array") {
            let name = secret["name"].as_str().expect("secret name");
            for field in ["password", "private_key_id"] {
                if let Some(text) = secret["details"][field].as_str() {
                    forms.push((format!("{name} details.{field}"), text.to_owned()));
                }
            }
        }
    }
    forms.sort();
    forms.dedup();
    forms
}

fn assert_no_clear_secret(run: &Run) {
    for (name, form) in clear_text_forms() {
        assert!(
            !run.stdout.contains(&form),
            "scan {:?}: stdout contains {name} in clear",
            run.args
        );
        assert!(
            !run.stderr.contains(&form),
            "scan {:?}: stderr contains {name} in clear",
            run.args
        );
    }
}

fn sha256_fingerprint(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

fn planted_value(name: &str) -> String {
    ground_truth()["all_values"]
        .as_array()
        .expect("all_values is an array")
        .iter()
        .find(|value| value["name"] == name)
        .and_then(|value| value["value"].as_str())
        .unwrap_or_else(|| panic!("ground truth lists no value {name}"))
        .to_owned()
}

/// `(image, rule, fingerprint, location)` of every finding, sorted.
fn finding_rows(report: &Value) -> Vec<(String, String, String, String)> {
    let mut rows: Vec<_> = report["findings"]
        .as_array()
        .expect("findings is an array")
        .iter()
        .map(|finding| {
            (
                finding["image"].as_str().unwrap_or_default().to_owned(),
                finding["rule"].as_str().unwrap_or_default().to_owned(),
                finding["fingerprint"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                canonical_json(&finding["location"]),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Writes JSON with object keys sorted, whatever order the map type keeps.
fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    format!(
                        "{}:{}",
                        Value::from(key.as_str()),
                        canonical_json(&map[key])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Builds the rows expected for a value in `Env DATABASE_URL` and `history[4]` of
/// app:1.0 and app:1.1, in the docker-archive and in the OCI layout.
fn app_database_rows(rule: &str, fingerprint: &str) -> Vec<(String, String, String, String)> {
    let env = r#"{"key":"DATABASE_URL","source":"env"}"#;
    let history = r#"{"index":4,"layer_index":null,"source":"history"}"#;
    let mut rows = Vec::new();
    for image in [
        "localhost/fixtures/app:1.0",
        "localhost/fixtures/app:1.1",
        "app:1.0",
        "app:1.1",
    ] {
        for location in [env, history] {
            rows.push((
                image.to_owned(),
                rule.to_owned(),
                fingerprint.to_owned(),
                location.to_owned(),
            ));
        }
    }
    rows.sort();
    rows
}

#[test]
fn clean_image_exits_zero() {
    let run = scan(&[&fixture("docker-archive/fixed.tar")]);
    run.assert_code(EXIT_CLEAN);
}

#[test]
fn image_with_secrets_exits_one() {
    let run = scan(&[&fixture("docker-archive/env.tar")]);
    run.assert_code(EXIT_FOUND);
}

#[test]
fn missing_input_exits_two() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("no-such-image.tar").display().to_string();
    let run = scan(&[&missing]);
    run.assert_code(EXIT_ERROR);
    assert!(
        run.stderr.contains("no-such-image.tar"),
        "stderr should name the missing input:\n{}",
        run.stderr
    );
}

#[test]
fn truncated_oci_blob_exits_two() {
    let source = fixtures_dir().join("oci/env");
    let copy = tempfile::tempdir().expect("temporary directory");
    let layout = copy.path().join("env");
    copy_dir(&source, &layout);

    let base = ground_truth()["base"]["oci_digest"]
        .as_str()
        .expect("base.oci_digest");
    let hex = base.strip_prefix("sha256:").expect("sha256 digest");
    let blob = layout.join("blobs/sha256").join(hex);
    let length = std::fs::metadata(&blob)
        .expect("base layer blob exists")
        .len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&blob)
        .expect("open blob copy for writing");
    file.set_len(length / 2).expect("truncate blob copy");
    drop(file);

    let layout = layout.display().to_string();
    let run = scan(&["--format", "json", &layout]);
    run.assert_code(EXIT_ERROR);
    let report = run.json();
    assert_eq!(
        report["coverage"]["complete"], false,
        "coverage.complete after truncation"
    );
    let gaps = report["coverage"]["gaps"]
        .as_array()
        .expect("gaps is an array");
    assert!(
        gaps.iter().any(|gap| gap["severity"] == "error"),
        "a truncated blob should leave a gap of severity error, gaps: {gaps:?}"
    );
    let images = report["coverage"]["images"]
        .as_array()
        .expect("images is an array");
    assert!(
        images.iter().any(|image| image["partial"] == true),
        "the image with a truncated blob should be partial: {images:?}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create directory in the copy");
    for entry in std::fs::read_dir(from).expect("list fixture directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            // A plain copy, so truncating it never touches the fixture
            // (identical blobs in the fixtures are hard links).
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

#[test]
fn json_has_findings_and_coverage() {
    let run = scan(&["--format", "json", &fixture("docker-archive/env.tar")]);
    run.assert_code(EXIT_FOUND);
    let report = run.json();

    let findings = report["findings"].as_array().expect("findings is an array");
    assert_eq!(findings.len(), 6, "env:latest has six planted locations");
    for finding in findings {
        for field in [
            "rule",
            "kind",
            "fingerprint",
            "redacted",
            "image",
            "location",
            "encoding",
        ] {
            assert!(
                !finding[field].is_null(),
                "finding lacks {field}: {finding}"
            );
        }
    }

    let coverage = &report["coverage"];
    assert_eq!(coverage["complete"], true, "coverage.complete");
    assert!(coverage["images"].is_array(), "coverage.images is an array");
    assert!(coverage["gaps"].is_array(), "coverage.gaps is an array");
    assert_eq!(
        coverage["images"][0]["image"],
        "localhost/fixtures/env:latest"
    );
    assert_eq!(coverage["images"][0]["layers_total"], 2);
}

#[test]
fn sarif_is_version_2_1_0() {
    let run = scan(&["--format", "sarif", &fixture("docker-archive/env.tar")]);
    run.assert_code(EXIT_FOUND);
    let log = run.json();
    assert_eq!(log["version"], "2.1.0", "SARIF version");
    let driver = &log["runs"][0]["tool"]["driver"]["name"];
    assert!(
        driver.as_str().is_some_and(|name| !name.is_empty()),
        "runs[0].tool.driver.name: {driver}"
    );
    let results = log["runs"][0]["results"]
        .as_array()
        .expect("runs[0].results is an array");
    assert_eq!(results.len(), 6, "one SARIF result per finding");
    for result in results {
        assert!(
            result["ruleId"].as_str().is_some_and(|id| !id.is_empty()),
            "result lacks ruleId: {result}"
        );
        assert!(
            result["message"]["text"].is_string(),
            "result lacks message.text: {result}"
        );
    }
}

#[test]
fn no_output_shows_secret_in_clear() {
    let inputs = all_inputs();
    let known = tempfile::NamedTempFile::new().expect("temporary file");
    let values: Vec<String> = ground_truth()["all_values"]
        .as_array()
        .expect("all_values is an array")
        .iter()
        .filter_map(|value| value["value"].as_str())
        .filter(|value| !value.contains('\n'))
        .map(str::to_owned)
        .collect();
    std::fs::write(known.path(), values.join("\n")).expect("write known values");
    let known = known.path().display().to_string();

    for format in ["text", "json", "sarif"] {
        let mut args = vec!["--format", format];
        args.extend(inputs.iter().map(String::as_str));
        let run = scan(&args);
        run.assert_code(EXIT_FOUND);
        assert_no_clear_secret(&run);

        let mut args = vec!["--format", format, "--known-values", &known];
        args.extend(inputs.iter().map(String::as_str));
        let run = scan(&args);
        run.assert_code(EXIT_FOUND);
        assert_no_clear_secret(&run);
    }
}

#[test]
fn known_values_match_two_app_tags() {
    let url = planted_value("APP_POSTGRES_URL");
    let file = tempfile::NamedTempFile::new().expect("temporary file");
    std::fs::write(file.path(), format!("{url}\n")).expect("write known values");
    let known = file.path().display().to_string();

    let run = scan(&[
        "--format",
        "json",
        "--no-builtin-rules",
        "--known-values",
        &known,
        &fixture("docker-archive/app.tar"),
        &fixture("oci/app"),
        &fixture("docker-archive/env.tar"),
        &fixture("oci/env"),
    ]);
    run.assert_code(EXIT_FOUND);
    let rows = finding_rows(&run.json());
    assert_eq!(
        rows,
        app_database_rows("known-value", &sha256_fingerprint(&url))
    );
}

#[test]
fn known_values_on_clean_image_exit_zero() {
    let url = planted_value("APP_POSTGRES_URL");
    let file = tempfile::NamedTempFile::new().expect("temporary file");
    std::fs::write(file.path(), format!("{url}\n")).expect("write known values");
    let known = file.path().display().to_string();

    let run = scan(&[
        "--no-builtin-rules",
        "--known-values",
        &known,
        &fixture("docker-archive/env.tar"),
    ]);
    run.assert_code(EXIT_CLEAN);
}

#[test]
fn other_platform_scans_nothing() {
    let run = scan(&[
        "--format",
        "json",
        "--platform",
        "linux/arm64",
        &fixture("docker-archive/env.tar"),
        &fixture("oci/env"),
    ]);
    // Nothing matched the filter, so nothing was scanned: an error, not a
    // clean result.
    run.assert_code(EXIT_ERROR);
    let report = run.json();
    assert_eq!(
        report["findings"].as_array().map(Vec::len),
        Some(0),
        "findings: {}",
        report["findings"]
    );
    assert_eq!(
        report["coverage"]["images"].as_array().map(Vec::len),
        Some(0),
        "no image is scanned"
    );

    let gaps = report["coverage"]["gaps"]
        .as_array()
        .expect("gaps is an array");
    let mut skipped: Vec<&str> = gaps
        .iter()
        .filter(|gap| gap["kind"] == "platform-not-selected" && gap["severity"] == "info")
        .filter_map(|gap| gap["image"].as_str())
        .collect();
    skipped.sort_unstable();
    assert_eq!(
        skipped,
        ["env:latest", "localhost/fixtures/env:latest"],
        "gaps: {gaps:?}"
    );
}

#[test]
fn invalid_platform_exits_two() {
    let run = scan(&["--platform", "arm64", &fixture("docker-archive/env.tar")]);
    run.assert_code(EXIT_ERROR);
}

#[test]
fn gitleaks_rules_file_adds_rule() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let rules = dir.path().join("rules.toml");
    let toml = r#"
[[rules]]
id = "fixture-postgres-password"
description = "Password in a postgres:// URL"
regex = '''postgres://[A-Za-z0-9_]+:([^@\s"']+)@'''
secretGroup = 1
keywords = ["postgres://"]
"#;
    std::fs::write(&rules, toml).expect("write rules file");
    let rules = rules.display().to_string();

    let run = scan(&[
        "--format",
        "json",
        "--no-builtin-rules",
        "--rules",
        &rules,
        &fixture("docker-archive/app.tar"),
        &fixture("oci/app"),
        &fixture("docker-archive/fixed.tar"),
    ]);
    run.assert_code(EXIT_FOUND);
    assert_no_clear_secret(&run);

    let password = ground_truth()["images"]
        .as_array()
        .expect("images is an array")
        .iter()
        .flat_map(|image| image["secrets"].as_array().into_iter().flatten())
        .find_map(|secret| secret["details"]["password"].as_str())
        .expect("ground truth lists the postgres password");
    let rows = finding_rows(&run.json());
    assert_eq!(
        rows,
        app_database_rows("fixture-postgres-password", &sha256_fingerprint(password))
    );
}

#[test]
fn invalid_rules_file_exits_two() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rules]]\nid = \"broken\"\nregex = '''(unclosed'''\n",
    )
    .expect("write rules file");
    let rules = rules.display().to_string();
    let run = scan(&["--rules", &rules, &fixture("docker-archive/env.tar")]);
    run.assert_code(EXIT_ERROR);
}

#[test]
fn truncated_archive_json_is_not_complete() {
    let source = fixtures_dir().join("docker-archive/app.tar");
    let bytes = std::fs::read(&source)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", source.display()));
    let dir = tempfile::tempdir().expect("temporary directory");
    let truncated = dir.path().join("app-truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write truncated archive");
    let truncated = truncated.display().to_string();

    let run = scan(&["--format", "json", &truncated]);
    run.assert_code(EXIT_ERROR);
    // A reader of the JSON report alone must not take an unreadable input
    // for a complete scan with nothing found.
    let report = run.json();
    assert_eq!(
        report["coverage"]["complete"], false,
        "coverage.complete for an archive that could not be read:\n{}",
        run.stdout
    );
}

#[test]
fn oci_layout_given_as_dot_keeps_its_name() {
    let layout = fixtures_dir().join("oci/app");
    let run = scan_in(&layout, &["--format", "json", "."]);
    run.assert_code(EXIT_FOUND);
    let report = run.json();
    let mut images: Vec<&str> = report["coverage"]["images"]
        .as_array()
        .expect("images is an array")
        .iter()
        .filter_map(|image| image["image"].as_str())
        .collect();
    images.sort_unstable();
    assert_eq!(
        images,
        ["app:1.0", "app:1.1", "app:1.2"],
        "an OCI image is named <layout directory name>:<ref name>"
    );
}

#[test]
fn no_rules_at_all_rejected() {
    let run = scan(&["--no-builtin-rules", &fixture("docker-archive/env.tar")]);
    run.assert_code(EXIT_ERROR);
    assert!(
        run.stderr.contains("--rules FILE or --known-values FILE"),
        "stderr: {}",
        run.stderr
    );
}

#[test]
fn missing_file_named_as_missing() {
    let run = scan(&["/nonexistent/image.tar"]);
    run.assert_code(EXIT_ERROR);
    assert!(
        run.stderr.contains("no such file or directory"),
        "stderr: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("registry host"),
        "a file path is not parsed as a registry reference: {}",
        run.stderr
    );
}

#[test]
fn closed_stdout_is_not_a_crash() {
    use std::io::Read as _;
    use std::process::Stdio;

    let mut child = Command::new(scan_binary())
        .arg(fixture("docker-archive/env.tar"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scan starts");
    // Close the read end at once, as `scan ... | head -0` would.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr)
        .expect("stderr reads");
    let status = child.wait().expect("scan exits");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(status.code(), Some(EXIT_FOUND), "stderr: {stderr}");
}
