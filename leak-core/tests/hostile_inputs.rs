//! Hostile image inputs: member names that leave the input directory, and
//! members that are not regular files. Nothing outside the input may be
//! read, nothing may block, and each refused member is a coverage gap.

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use leak_core::{GapKind, Report};
use serde_json::json;
use support::*;

/// Writes a docker-archive directory whose `manifest.json` names `layer`.
fn docker_directory(root: &Path, layer: &str) {
    docker_directory_layers(root, &[layer]);
}

/// Writes a docker-archive directory whose `manifest.json` names `layers`.
fn docker_directory_layers(root: &Path, layers: &[&str]) {
    std::fs::create_dir_all(root).unwrap();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [] },
    });
    std::fs::write(root.join("config.json"), config.to_string()).unwrap();
    let manifest =
        json!([{ "Config": "config.json", "RepoTags": ["hostile:1"], "Layers": layers }]);
    std::fs::write(root.join("manifest.json"), manifest.to_string()).unwrap();
}

/// Scans `path` on another thread, failing the test when the scan takes
/// longer than 90 seconds instead of hanging it.
fn scan_with_deadline(path: &Path) -> Report {
    let (sender, receiver) = mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let report = scanner(Mode::Defaults).scan_path(&path);
        let _ = sender.send(report);
    });
    receiver
        .recv_timeout(Duration::from_secs(90))
        .expect("the scan finished within 90 seconds")
        .expect("the input opens")
}

#[test]
fn docker_directory_layer_outside_root() {
    let temp = tempfile::tempdir().unwrap();
    let outside = temp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let layer = LayerBuilder::new()
        .file("etc/token", format!("token={}\n", known(0)).as_bytes())
        .finish();
    std::fs::write(outside.join("layer.tar"), layer).unwrap();
    let image = temp.path().join("image");
    docker_directory(&image, "../outside/layer.tar");

    let report = scan_with_deadline(&image);

    assert!(
        report.findings.is_empty(),
        "a file outside the input was scanned: {:#?}",
        report.findings
    );
    assert!(!report.coverage.complete);
    assert!(
        report
            .coverage
            .gaps
            .iter()
            .any(|gap| gap.kind == GapKind::LayerUnreadable),
        "{:#?}",
        report.coverage.gaps
    );
}

#[test]
fn docker_directory_layer_is_fifo() {
    let temp = tempfile::tempdir().unwrap();
    let image = temp.path().join("image");
    docker_directory(&image, "layer.tar");
    let status = std::process::Command::new("mkfifo")
        .arg(image.join("layer.tar"))
        .status()
        .expect("mkfifo runs (coreutils)");
    assert!(status.success());

    let report = scan_with_deadline(&image);

    assert!(!report.coverage.complete);
    assert!(
        report
            .coverage
            .gaps
            .iter()
            .any(|gap| gap.kind == GapKind::LayerUnreadable),
        "{:#?}",
        report.coverage.gaps
    );
}

/// Builds a layer of one file with `count` copies of a known value (when
/// `with_file`), then `links` hardlinks to that file.
fn linked_secrets(count: usize, links: usize, with_file: bool) -> Vec<u8> {
    let mut layer = LayerBuilder::new();
    if with_file {
        layer = layer.file(
            "secrets.txt",
            format!("{}\n", known(0)).repeat(count).as_bytes(),
        );
    }
    for link in 0..links {
        layer = layer.hardlink(&format!("link{link}"), "secrets.txt");
    }
    layer.finish()
}

fn assert_truncated(report: &Report) {
    assert!(
        report.findings.len() <= 100_000 + 150,
        "{} findings kept",
        report.findings.len()
    );
    assert!(!report.coverage.complete);
    assert!(
        report
            .coverage
            .gaps
            .iter()
            .any(|gap| gap.kind == GapKind::FindingsTruncated),
        "{:#?}",
        report.coverage.gaps
    );
}

#[test]
fn hardlink_findings_bounded_in_layer() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(
        temp.path().join("layer.tar"),
        linked_secrets(150, 1_000, true),
    )
    .unwrap();
    docker_directory(temp.path(), "layer.tar");

    let report = scan_with_deadline(temp.path());

    assert_truncated(&report);
}

#[test]
fn hardlink_findings_bounded_across_layers() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(temp.path().join("lower.tar"), linked_secrets(150, 0, true)).unwrap();
    std::fs::write(
        temp.path().join("upper.tar"),
        linked_secrets(0, 1_000, false),
    )
    .unwrap();
    docker_directory_layers(temp.path(), &["lower.tar", "upper.tar"]);

    let report = scan_with_deadline(temp.path());

    assert_truncated(&report);
}

/// Writes `bytes` as a blob of an OCI layout and returns its descriptor.
fn write_blob(root: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let digest = digest(bytes);
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::write(root.join("blobs/sha256").join(hex), bytes).unwrap();
    json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
}

#[test]
fn oci_wide_indexes_walk_linearly() {
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const CHILDREN: usize = 3;
    const WIDTH: usize = 100_000;
    let temp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(temp.path().join("blobs/sha256")).unwrap();
    let mut indexes = Vec::new();
    for child in 0..CHILDREN {
        let manifests: Vec<_> = (0..WIDTH)
            .map(|n| {
                json!({
                    "mediaType": MANIFEST,
                    "digest": digest(format!("{child}-{n}").as_bytes()),
                    "size": 2,
                })
            })
            .collect();
        let index = json!({ "schemaVersion": 2, "manifests": manifests }).to_string();
        indexes.push(write_blob(temp.path(), INDEX, index.as_bytes()));
    }
    let top = json!({ "schemaVersion": 2, "manifests": indexes }).to_string();
    std::fs::write(temp.path().join("index.json"), top).unwrap();

    let report = scan_with_deadline(temp.path());

    let missing = report
        .coverage
        .gaps
        .iter()
        .filter(|gap| gap.kind == GapKind::ManifestUnreadable)
        .count();
    assert_eq!(missing, CHILDREN * WIDTH);
    assert!(!report.coverage.complete);
}

#[test]
fn zip_member_past_budget_reported() {
    let temp = tempfile::tempdir().unwrap();
    let mut member = vec![0u8; 4096];
    member.extend_from_slice(format!("token={}\n", known(0)).as_bytes());
    let zip = zip_of(&[("big.bin", &member)]);
    let layer = LayerBuilder::new().file("app/bundle.zip", &zip).finish();
    std::fs::write(temp.path().join("layer.tar"), layer).unwrap();
    docker_directory(temp.path(), "layer.tar");
    let scanner = scanner_with(Mode::Defaults, 1, false, |options| {
        options.nested_max_expanded_bytes = 1024;
    });

    let report = scanner.scan_path(temp.path()).unwrap();

    assert!(!report.coverage.complete);
    assert!(
        report
            .coverage
            .gaps
            .iter()
            .any(|gap| gap.kind == GapKind::NestedArchiveTooLarge),
        "{:#?}",
        report.coverage.gaps
    );
}
