//! Whole images through `scan_path`: OCI layouts (directory and tar, image
//! indexes, several platforms, attestation manifests), docker-archives in
//! each style, digest checks and malformed JSON. Each case runs at default
//! buffer sizes and at 64-byte chunks with 7-byte pipeline blocks.

mod support;

use leak_core::{GapKind, Location, Removal, Severity};
use support::*;

fn secret_file(n: usize) -> Vec<u8> {
    format!("# config\ntoken = {}\n", known(n)).into_bytes()
}

/// Two layers: the upper one deletes the lower one's secret and adds one.
fn two_layer_spec() -> ImageSpec {
    let lower = LayerBuilder::new()
        .file("app/old.env", &secret_file(0))
        .finish();
    let upper = LayerBuilder::new()
        .whiteout("app/old.env")
        .file("app/new.env", &secret_file(1))
        .finish();
    let mut spec = ImageSpec::new(vec![lower, upper]);
    spec.env.push(format!("API_TOKEN={}", known(2)));
    spec
}

fn expected_two_layers() -> Vec<Seen> {
    sorted(vec![
        removed(
            0,
            0,
            "app/old.env",
            2,
            1,
            Removal::Whiteout,
            "app/.wh.old.env",
        ),
        present(1, 1, "app/new.env", 2),
    ])
}

fn assert_env_finding(report: &leak_core::Report) {
    let env: Vec<_> = report
        .findings
        .iter()
        .filter(|finding| matches!(&finding.location, Location::Env { key } if key == "API_TOKEN"))
        .collect();
    assert_eq!(env.len(), 1, "{:#?}", report.findings);
}

fn layer_digests(report: &leak_core::Report) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = report
        .findings
        .iter()
        .filter_map(|finding| match &finding.location {
            Location::Layer {
                layer_index,
                layer_digest,
                ..
            } => Some((*layer_index, layer_digest.clone())),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn oci_layout_directory() {
    let spec = two_layer_spec();
    let mut layout = OciLayout::new();
    let manifest = layout.image(&spec);
    layout.manifests.push(manifest);
    let dir = tempfile::tempdir().unwrap();
    let path = layout.write_dir(dir.path());
    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        assert_eq!(
            seen(&report.findings),
            expected_two_layers(),
            "mode {mode:?}"
        );
        assert_env_finding(&report);
        let blobs = spec.blobs();
        assert_eq!(
            layer_digests(&report),
            vec![(0, digest(&blobs[0])), (1, digest(&blobs[1]))]
        );
        assert_clean(&report);
    }
}

#[test]
fn oci_layout_tar_with_mixed_codecs() {
    let tars = vec![
        LayerBuilder::new().file("a", &secret_file(0)).finish(),
        LayerBuilder::new().file("b", &secret_file(1)).finish(),
        LayerBuilder::new().file("c", &secret_file(2)).finish(),
    ];
    let spec = ImageSpec::new(tars).codecs(&[Codec::Gzip, Codec::Zstd, Codec::Plain]);
    let mut layout = OciLayout::new();
    let manifest = layout.image(&spec);
    let index = layout.index(vec![manifest], Some("v1"));
    layout.manifests.push(index);
    let dir = tempfile::tempdir().unwrap();
    let path = layout.write_tar(dir.path());
    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        assert_eq!(
            seen(&report.findings),
            sorted(vec![
                present(0, 0, "a", 2),
                present(1, 1, "b", 2),
                present(2, 2, "c", 2)
            ]),
            "mode {mode:?}"
        );
        assert_eq!(report.coverage.images.len(), 1);
        assert_eq!(report.coverage.images[0].image, "layout:v1");
        assert_clean(&report);
    }
}

fn multi_platform_layout() -> OciLayout {
    let clean = ImageSpec::new(vec![
        LayerBuilder::new()
            .file("etc/app.conf", b"clean\n")
            .finish(),
    ]);
    let leaky = ImageSpec::new(vec![
        LayerBuilder::new()
            .file("etc/app.conf", &secret_file(0))
            .finish(),
    ])
    .platform("linux", "arm64");
    let mut layout = OciLayout::new();
    let amd64 = layout.image(&clean);
    let arm64 = layout.image(&leaky);
    let index = layout.index(vec![amd64, arm64], Some("multi"));
    layout.manifests.push(index);
    layout
}

#[test]
fn multi_platform_only_one_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = multi_platform_layout().write_dir(dir.path());
    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        assert_eq!(
            seen(&report.findings),
            vec![present(0, 0, "etc/app.conf", 2)],
            "mode {mode:?}"
        );
        assert_eq!(report.findings[0].platform.as_deref(), Some("linux/arm64"));
        let platforms: Vec<_> = report
            .coverage
            .images
            .iter()
            .map(|image| image.platform.clone())
            .collect();
        assert_eq!(
            platforms,
            vec![
                Some("linux/amd64".to_owned()),
                Some("linux/arm64".to_owned())
            ]
        );
        assert_clean(&report);
    }
}

#[test]
fn platform_filter_skips_other_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = multi_platform_layout().write_dir(dir.path());
    for mode in PATH_MODES {
        let scanner = leak_core::Scanner::builder()
            .builtin_rules(false)
            .known_values({
                let mut values = leak_core::KnownValues::new();
                values.add(leak_core::Secret::new(known(0)));
                values
            })
            .options(options(mode))
            .platform("linux/amd64")
            .build()
            .unwrap();
        let report = scanner.scan_path(&path).unwrap();
        assert!(report.findings.is_empty(), "mode {mode:?}");
        assert_eq!(report.coverage.images.len(), 1);
        assert_eq!(
            report.coverage.images[0].platform.as_deref(),
            Some("linux/amd64")
        );
        assert_eq!(
            gap_kinds(&report.coverage.gaps),
            vec![(GapKind::PlatformNotSelected, Severity::Info, None)]
        );
        assert!(report.coverage.complete);
    }
}

#[test]
fn attestation_manifest_skipped() {
    let spec = two_layer_spec();
    let mut layout = OciLayout::new();
    let manifest = layout.image(&spec);
    let subject = manifest["digest"].as_str().unwrap().to_owned();
    let attestation = layout.attestation(&subject);
    let attestation_digest = attestation["digest"].as_str().unwrap().to_owned();
    let index = layout.index(vec![manifest, attestation], Some("app"));
    layout.manifests.push(index);
    let dir = tempfile::tempdir().unwrap();
    let path = layout.write_dir(dir.path());
    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        assert_eq!(
            seen(&report.findings),
            expected_two_layers(),
            "mode {mode:?}"
        );
        assert_eq!(report.coverage.images.len(), 1);
        assert!(!report.coverage.images[0].partial);
        assert_eq!(
            gap_kinds(&report.coverage.gaps),
            vec![(GapKind::AttestationSkipped, Severity::Info, None)]
        );
        assert_eq!(
            report.coverage.gaps[0].digest.as_deref(),
            Some(attestation_digest.as_str())
        );
        assert!(report.coverage.complete);
    }
}

fn check_docker(style: DockerStyle, name: &str) {
    let spec = two_layer_spec().codecs(&[Codec::Gzip, Codec::Zstd]);
    let bytes = docker_archive(&[("example.test/app:1", &spec)], style);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, &bytes);
    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        assert_eq!(
            seen(&report.findings),
            expected_two_layers(),
            "{style:?} mode {mode:?}"
        );
        assert_env_finding(&report);
        assert_eq!(report.coverage.images.len(), 1);
        assert_eq!(report.coverage.images[0].image, "example.test/app:1");
        // docker-archive layers are reported by diff ID.
        assert_eq!(
            layer_digests(&report),
            vec![(0, digest(&spec.tars[0])), (1, digest(&spec.tars[1]))]
        );
        assert_clean(&report);
    }
}

#[test]
fn docker_archive_plain() {
    check_docker(DockerStyle::default(), "image.tar");
}

#[test]
fn docker_archive_gzip_whole() {
    check_docker(
        DockerStyle {
            gzip_whole: true,
            ..DockerStyle::default()
        },
        "image.tar.gz",
    );
}

#[test]
fn docker_archive_with_oci_files() {
    check_docker(
        DockerStyle {
            oci_files: true,
            ..DockerStyle::default()
        },
        "image.tar",
    );
}

#[test]
fn docker_archive_gzip_oci_files_compressed_members() {
    check_docker(
        DockerStyle {
            gzip_whole: true,
            oci_files: true,
            compressed_members: true,
        },
        "image.tar.gz",
    );
}

#[test]
fn docker_archive_compressed_members() {
    check_docker(
        DockerStyle {
            compressed_members: true,
            ..DockerStyle::default()
        },
        "image.tar",
    );
}

#[test]
fn damaged_layer_in_layout() {
    let tars = vec![
        LayerBuilder::new().file("a", &secret_file(0)).finish(),
        LayerBuilder::new()
            .file("b", &secret_file(1))
            .file("padding", &[b'x'; 70_000])
            .file("c", &secret_file(2))
            .finish(),
        LayerBuilder::new().file("d", &secret_file(3)).finish(),
    ];
    let spec = ImageSpec::new(tars);
    let mut layout = OciLayout::new();
    let manifest = layout.image(&spec);
    layout.manifests.push(manifest);
    let blobs = spec.blobs();
    let middle = digest(&blobs[1]);
    // Cut inside the deflate data of the last file, "c".
    let cut = blobs[1][..blobs[1].len() - 40].to_vec();
    layout.corrupt(&middle, cut);

    let dir = tempfile::tempdir().unwrap();
    let path = layout.write_dir(dir.path());
    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        assert_eq!(
            seen(&report.findings),
            sorted(vec![
                present(0, 0, "a", 2),
                present(1, 1, "b", 2),
                present(3, 2, "d", 2)
            ]),
            "mode {mode:?}"
        );
        let decompression = gaps_of(&report.coverage.gaps, GapKind::Decompression);
        assert_eq!(decompression.len(), 1, "{:#?}", report.coverage.gaps);
        assert_eq!(decompression[0].digest.as_deref(), Some(middle.as_str()));
        assert_eq!(
            decompression[0].image.as_deref(),
            Some(report.coverage.images[0].image.as_str())
        );
        let mismatch = gaps_of(&report.coverage.gaps, GapKind::DigestMismatch);
        assert_eq!(mismatch.len(), 1, "{:#?}", report.coverage.gaps);
        assert!(mismatch[0].detail.contains(&format!("expected {middle}")));
        assert!(
            report
                .coverage
                .gaps
                .iter()
                .any(|gap| gap.path.as_deref() == Some("c")),
            "{:#?}",
            report.coverage.gaps
        );
        assert!(report.coverage.images[0].partial);
        assert_eq!(report.coverage.images[0].layers_scanned, 2);
        assert!(!report.coverage.complete);
    }
}

#[test]
fn diff_id_mismatch_in_config() {
    let mut spec = ImageSpec::new(vec![
        LayerBuilder::new().file("a", &secret_file(0)).finish(),
    ]);
    let wrong = format!("sha256:{}", "cd".repeat(32));
    spec.diff_ids = Some(vec![wrong.clone()]);
    let mut layout = OciLayout::new();
    let manifest = layout.image(&spec);
    layout.manifests.push(manifest);
    let dir = tempfile::tempdir().unwrap();
    let path = layout.write_dir(dir.path());
    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        assert_eq!(seen(&report.findings), vec![present(0, 0, "a", 2)]);
        assert_eq!(
            gap_kinds(&report.coverage.gaps),
            vec![(GapKind::DiffIdMismatch, Severity::Error, None)]
        );
        let detail = &report.coverage.gaps[0].detail;
        assert!(detail.contains(&format!("expected {wrong}")), "{detail}");
        assert!(
            detail.contains(&format!("actual {}", digest(&spec.tars[0]))),
            "{detail}"
        );
        assert!(report.coverage.images[0].partial);
    }
}

#[test]
fn malformed_index_json_is_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("broken");
    write_files(
        &layout,
        &[("index.json".to_owned(), b"{\"manifests\": [".to_vec())],
    );
    let error = scanner(Mode::Defaults).scan_path(&layout).unwrap_err();
    assert!(error.to_string().contains("index.json"), "{error}");
}

#[test]
fn malformed_manifest_is_gap() {
    let mut layout = OciLayout::new();
    let broken = b"{\"schemaVersion\": 2, \"layers\": [".to_vec();
    let size = broken.len();
    let broken_digest = layout.blob(broken);
    let good = layout.image(&two_layer_spec());
    layout.manifests.push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": broken_digest, "size": size,
    }));
    layout.manifests.push(good);
    let dir = tempfile::tempdir().unwrap();
    let path = layout.write_dir(dir.path());
    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        assert_eq!(
            seen(&report.findings),
            expected_two_layers(),
            "mode {mode:?}"
        );
        assert_eq!(
            gap_kinds(&report.coverage.gaps),
            vec![(GapKind::ManifestUnreadable, Severity::Error, None)]
        );
        assert_eq!(
            report.coverage.gaps[0].digest.as_deref(),
            Some(broken_digest.as_str())
        );
        assert!(!report.coverage.complete);
    }
}

#[test]
fn malformed_config_is_gap() {
    let spec = two_layer_spec();
    let mut layout = OciLayout::new();
    let manifest = layout.image(&spec);
    layout.manifests.push(manifest);
    // Replace the config with broken JSON and point the manifest at it.
    let config_digest = digest(&spec.config());
    layout.corrupt(&config_digest, b"{\"rootfs\": ".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let path = layout.write_dir(dir.path());
    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        assert_eq!(
            seen(&report.findings),
            expected_two_layers(),
            "mode {mode:?}"
        );
        let config = gaps_of(&report.coverage.gaps, GapKind::ConfigUnreadable);
        assert_eq!(config.len(), 1, "{:#?}", report.coverage.gaps);
        assert_eq!(config[0].severity, Severity::Error);
        assert!(report.coverage.images[0].partial);
        assert!(!report.coverage.images[0].config_scanned);
    }
}

#[test]
fn compressed_archive_streams_large_layer() {
    // A layer over 16 MiB is not kept by the first pass over a compressed
    // archive; it is scanned during the second, streaming pass.
    let mut big = vec![b'\n'; 17 << 20];
    big.extend_from_slice(&secret_file(0));
    let lower = LayerBuilder::new().file("data/big.txt", &big).finish();
    let upper = LayerBuilder::new().file("small", &secret_file(1)).finish();
    let spec = ImageSpec::new(vec![lower, upper]);
    let bytes = docker_archive(
        &[("example.test/big:1", &spec)],
        DockerStyle {
            gzip_whole: true,
            ..DockerStyle::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "big.tar.gz", &bytes);
    // Default buffers only: 64-byte chunks over 17 MiB are slow in a debug
    // build, and the chunk edges are covered by the other cases.
    let report = scanner(Mode::Defaults).scan_path(&path).unwrap();
    assert_eq!(
        seen(&report.findings),
        sorted(vec![
            present(0, 0, "data/big.txt", (17 << 20) + 2),
            present(1, 1, "small", 2)
        ])
    );
    assert_clean(&report);
}

#[test]
fn compressed_archive_large_layer_behind_symlink() {
    // Older `docker save` writes a layer shared by two images once and
    // links the second `<id>/layer.tar` to the first.
    let mut big = vec![b'\n'; 17 << 20];
    big.extend_from_slice(&secret_file(0));
    let tar = LayerBuilder::new().file("data/big.txt", &big).finish();
    let spec = ImageSpec::new(vec![tar.clone()]);
    let config = spec.config();
    let config_name = format!("{}.json", &digest(&config)[7..]);
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["example.test/linked:1"], "Layers": ["second/layer.tar"]}]);
    let archive = LayerBuilder::new()
        .file(&config_name, &config)
        .file("first/layer.tar", &tar)
        .symlink("second/layer.tar", "../first/layer.tar")
        .file("manifest.json", &serde_json::to_vec(&manifest).unwrap())
        .finish();
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("linked.tar", archive.clone()),
        ("linked.tar.gz", gzip(&archive)),
    ] {
        let path = write(dir.path(), name, &bytes);
        let report = scanner(Mode::Defaults).scan_path(&path).unwrap();
        assert_eq!(
            seen(&report.findings),
            vec![present(0, 0, "data/big.txt", (17 << 20) + 2)],
            "{name}"
        );
        assert_clean(&report);
    }
}

#[test]
fn shared_layer_assembled_per_image() {
    let base = LayerBuilder::new()
        .file("etc/token", &secret_file(0))
        .finish();
    let cleanup = LayerBuilder::new().whiteout("etc/token").finish();
    let cleaned = ImageSpec::new(vec![base.clone(), cleanup]);
    let plain = ImageSpec::new(vec![base]);
    let bytes = docker_archive(
        &[
            ("example.test/cleaned:1", &cleaned),
            ("example.test/plain:1", &plain),
        ],
        DockerStyle::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "two.tar", &bytes);
    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        let mut by_image: Vec<(String, bool, Option<usize>)> = report
            .findings
            .iter()
            .filter_map(|finding| match &finding.location {
                Location::Layer {
                    present_in_final_fs,
                    removed_by_layer,
                    ..
                } => Some((
                    finding.image.clone(),
                    *present_in_final_fs,
                    *removed_by_layer,
                )),
                _ => None,
            })
            .collect();
        by_image.sort();
        assert_eq!(
            by_image,
            vec![
                ("example.test/cleaned:1".to_owned(), false, Some(1)),
                ("example.test/plain:1".to_owned(), true, None)
            ],
            "mode {mode:?}"
        );
        assert_eq!(report.coverage.images.len(), 2);
        assert_clean(&report);
    }
}

#[test]
fn oci_layout_gzip_tar() {
    let spec = two_layer_spec().codecs(&[Codec::Zstd, Codec::GzipMembers]);
    let mut layout = OciLayout::new();
    let manifest = layout.image(&spec);
    let index = layout.index(vec![manifest], Some("v2"));
    layout.manifests.push(index);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "layout.tar.gz", &gzip(&tar_of(&layout.files())));

    for mode in PATH_MODES {
        let report = scanner(mode).scan_path(&path).unwrap();
        assert_eq!(
            seen(&report.findings),
            expected_two_layers(),
            "mode {mode:?}"
        );
        assert_env_finding(&report);
        assert_eq!(report.coverage.images[0].image, "layout:v2");
        assert_clean(&report);
    }
}
