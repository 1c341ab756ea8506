//! Codecs and damaged layers: zstd and mixed codecs, multi-member gzip,
//! trailing bytes, truncated and corrupt gzip, zstd and tar, and digest
//! mismatches. Each case runs at default buffer sizes, at 64-byte chunks
//! with 7-byte pipeline blocks, and through a reader that returns 1 to 7
//! bytes a read.

mod support;

use leak_core::{GapKind, ImageReport, Severity};
use support::*;

fn secret_file(n: usize) -> Vec<u8> {
    format!("# config\ntoken = {}\n", known(n)).into_bytes()
}

/// Bytes that gzip and zstd cannot shrink much, so a cut lands inside.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'a' + (state % 26) as u8
        })
        .collect()
}

/// Three layers; the middle one contains `before` (known 1), a large noise
/// file and `after` (known 2).
fn three_layers() -> Vec<Vec<u8>> {
    vec![
        LayerBuilder::new().file("base", &secret_file(0)).finish(),
        LayerBuilder::new()
            .file("before", &secret_file(1))
            .file("noise.bin", &noise(200_000))
            .file("after", &secret_file(2))
            .finish(),
        LayerBuilder::new().file("top", &secret_file(3)).finish(),
    ]
}

fn scan_with_middle(mode: Mode, tars: &[Vec<u8>], middle: Vec<u8>, codec: Codec) -> ImageReport {
    let blobs = vec![compress(&tars[0], codec), middle, compress(&tars[2], codec)];
    // The middle blob's digest is what the manifest would name for the
    // damaged bytes, so only the stream itself is at fault.
    scan_blobs(mode, &scanner(mode), &blobs, tars)
}

fn assert_damaged_middle(
    report: &ImageReport,
    mode: Mode,
    expected: &[Seen],
    kinds: &[GapKind],
    path: Option<&str>,
) {
    assert_eq!(
        seen(&report.findings),
        sorted(expected.to_vec()),
        "mode {mode:?}"
    );
    let middle_digest = report
        .gaps
        .iter()
        .find(|gap| gap.kind == kinds[0])
        .and_then(|gap| gap.digest.clone());
    for kind in kinds {
        let gaps = gaps_of(&report.gaps, *kind);
        assert_eq!(
            gaps.len(),
            1,
            "mode {mode:?}: {kind:?} in {:#?}",
            report.gaps
        );
        assert_eq!(gaps[0].severity, Severity::Error, "mode {mode:?}");
        assert_eq!(
            gaps[0].image.as_deref(),
            Some("fixture:latest"),
            "mode {mode:?}"
        );
        assert_eq!(gaps[0].digest, middle_digest, "mode {mode:?}");
    }
    if let Some(path) = path {
        assert!(
            report
                .gaps
                .iter()
                .any(|gap| gap.path.as_deref() == Some(path)),
            "mode {mode:?}: no gap names {path}: {:#?}",
            report.gaps
        );
    }
    assert_eq!(
        report.gaps.len(),
        kinds.len(),
        "mode {mode:?}: {:#?}",
        report.gaps
    );
    assert!(report.coverage.partial, "mode {mode:?}");
    assert_eq!(report.coverage.layers_scanned, 2, "mode {mode:?}");
}

#[test]
fn zstd_layers() {
    let tars = three_layers();
    for mode in MODES {
        let blobs: Vec<Vec<u8>> = tars.iter().map(|tar| compress(tar, Codec::Zstd)).collect();
        let report = scan_blobs(mode, &scanner(mode), &blobs, &tars);
        assert_eq!(seen(&report.findings).len(), 4, "mode {mode:?}");
        assert!(report.gaps.is_empty(), "mode {mode:?}: {:#?}", report.gaps);
        assert!(!report.coverage.partial, "mode {mode:?}");
    }
}

#[test]
fn mixed_codec_image() {
    let tars = three_layers();
    let blobs = vec![
        compress(&tars[0], Codec::Gzip),
        compress(&tars[1], Codec::Zstd),
        compress(&tars[2], Codec::Plain),
    ];
    for mode in MODES {
        let report = scan_blobs(mode, &scanner(mode), &blobs, &tars);
        assert_eq!(
            seen(&report.findings),
            sorted(vec![
                present(0, 0, "base", 2),
                present(1, 1, "before", 2),
                present(2, 1, "after", 2),
                present(3, 2, "top", 2),
            ]),
            "mode {mode:?}"
        );
        assert!(report.gaps.is_empty(), "mode {mode:?}: {:#?}", report.gaps);
        assert!(!report.coverage.partial, "mode {mode:?}");
    }
}

#[test]
fn multi_member_gzip_layer() {
    let tars = three_layers();
    for mode in MODES {
        let blobs: Vec<Vec<u8>> = tars
            .iter()
            .map(|tar| compress(tar, Codec::GzipMembers))
            .collect();
        let report = scan_blobs(mode, &scanner(mode), &blobs, &tars);
        assert_eq!(seen(&report.findings).len(), 4, "mode {mode:?}");
        assert!(report.gaps.is_empty(), "mode {mode:?}: {:#?}", report.gaps);
    }
}

#[test]
fn trailing_bytes_after_gzip_warn() {
    let tars = three_layers();
    for mode in MODES {
        let middle = compress(&tars[1], Codec::GzipTrailing);
        let report = scan_with_middle(mode, &tars, middle.clone(), Codec::Gzip);
        assert_eq!(seen(&report.findings).len(), 4, "mode {mode:?}");
        assert_eq!(
            gap_kinds(&report.gaps),
            vec![(GapKind::TrailingBytes, Severity::Warning, None)],
            "mode {mode:?}"
        );
        assert_eq!(
            report.gaps[0].digest.as_deref(),
            Some(digest(&middle).as_str())
        );
        assert!(
            report.gaps[0].detail.contains("300 bytes"),
            "{}",
            report.gaps[0].detail
        );
        assert!(!report.coverage.partial, "mode {mode:?}");
    }
}

fn truncated(codec: Codec, mode: Mode) -> ImageReport {
    let tars = three_layers();
    let mut middle = compress(&tars[1], codec);
    // zstd emits nothing of a block until the whole block is read, so the
    // cut must fall past the first 128 KiB block.
    let keep = if codec == Codec::Zstd {
        middle.len() * 3 / 4
    } else {
        middle.len() / 2
    };
    middle.truncate(keep);
    scan_with_middle(mode, &tars, middle, codec)
}

fn kept_before_damage() -> Vec<Seen> {
    vec![
        present(0, 0, "base", 2),
        present(1, 1, "before", 2),
        present(3, 2, "top", 2),
    ]
}

#[test]
fn truncated_gzip_keeps_earlier_findings() {
    for mode in MODES {
        let report = truncated(Codec::Gzip, mode);
        assert_damaged_middle(
            &report,
            mode,
            &kept_before_damage(),
            &[GapKind::Decompression, GapKind::EntryUnreadable],
            Some("noise.bin"),
        );
    }
}

#[test]
fn truncated_zstd_keeps_earlier_findings() {
    for mode in MODES {
        let report = truncated(Codec::Zstd, mode);
        assert_damaged_middle(
            &report,
            mode,
            &kept_before_damage(),
            &[GapKind::Decompression, GapKind::EntryUnreadable],
            Some("noise.bin"),
        );
    }
}

#[test]
fn truncated_tar_keeps_earlier_findings() {
    for mode in MODES {
        let report = truncated(Codec::Plain, mode);
        // The blob of a plain tar is its own diff, so the diff ID differs.
        assert_damaged_middle(
            &report,
            mode,
            &kept_before_damage(),
            &[GapKind::TarCorrupt, GapKind::DiffIdMismatch],
            Some("noise.bin"),
        );
    }
}

#[test]
fn corrupt_tar_header_checksum() {
    let tars = three_layers();
    let mut middle = tars[1].clone();
    // The second header starts after the first entry's header and data.
    let second = 512 + 512;
    middle[second] ^= 0x55;
    for mode in MODES {
        let report = scan_with_middle(mode, &tars, middle.clone(), Codec::Plain);
        assert_damaged_middle(
            &report,
            mode,
            &kept_before_damage(),
            &[GapKind::TarCorrupt, GapKind::DiffIdMismatch],
            Some("before"),
        );
    }
}

#[test]
fn corrupt_gzip_checksum() {
    let tars = three_layers();
    let mut middle = compress(&tars[1], Codec::Gzip);
    let crc = middle.len() - 8;
    middle[crc] ^= 0xff;
    for mode in MODES {
        let report = scan_with_middle(mode, &tars, middle.clone(), Codec::Gzip);
        let all = sorted(vec![
            present(0, 0, "base", 2),
            present(1, 1, "before", 2),
            present(2, 1, "after", 2),
            present(3, 2, "top", 2),
        ]);
        assert_damaged_middle(&report, mode, &all, &[GapKind::Decompression], None);
    }
}

#[test]
fn corrupt_zstd_block() {
    let tars = three_layers();
    let mut middle = compress(&tars[1], Codec::Zstd);
    let cut = middle.len() / 2;
    for byte in &mut middle[cut..cut + 64] {
        *byte ^= 0xa5;
    }
    for mode in MODES {
        let report = scan_with_middle(mode, &tars, middle.clone(), Codec::Zstd);
        let found = seen(&report.findings);
        assert!(found.contains(&present(0, 0, "base", 2)), "mode {mode:?}");
        assert!(found.contains(&present(3, 2, "top", 2)), "mode {mode:?}");
        // zstd frames written without a content checksum decode damaged
        // blocks silently; the diff ID check is what catches them.
        assert_eq!(
            gaps_of(&report.gaps, GapKind::DiffIdMismatch).len(),
            1,
            "mode {mode:?}: {:#?}",
            report.gaps
        );
        assert!(report.coverage.partial, "mode {mode:?}");
        assert_eq!(report.coverage.layers_scanned, 2, "mode {mode:?}");
    }
}

#[test]
fn blob_digest_mismatch() {
    let tars = three_layers();
    let blobs: Vec<Vec<u8>> = tars.iter().map(|tar| compress(tar, Codec::Gzip)).collect();
    for mode in MODES {
        let scanner = scanner(mode);
        let mut image = image_info(&blobs, &tars);
        let expected = format!("sha256:{}", "ab".repeat(32));
        image.layers[1].info.digest = Some(expected.clone());
        let reports: Vec<_> = image
            .layers
            .iter()
            .zip(&blobs)
            .map(|(layer, blob)| {
                std::sync::Arc::new(scanner.scan_layer(&mut ShortReader::new(blob), &layer.info))
            })
            .collect();
        let report = scanner.assemble_image(&image, Vec::new(), Vec::new(), &reports);
        assert_eq!(seen(&report.findings).len(), 4, "mode {mode:?}");
        assert_eq!(
            gap_kinds(&report.gaps),
            vec![(GapKind::DigestMismatch, Severity::Error, None)]
        );
        let detail = &report.gaps[0].detail;
        assert!(detail.contains(&format!("expected {expected}")), "{detail}");
        assert!(
            detail.contains(&format!("actual {}", digest(&blobs[1]))),
            "{detail}"
        );
        assert!(report.coverage.partial);
    }
}

#[test]
fn diff_id_mismatch() {
    let tars = three_layers();
    let blobs: Vec<Vec<u8>> = tars.iter().map(|tar| compress(tar, Codec::Zstd)).collect();
    let mut claimed = tars.clone();
    claimed[1] = b"not this layer".to_vec();
    for mode in MODES {
        let report = scan_blobs(mode, &scanner(mode), &blobs, &claimed);
        assert_eq!(seen(&report.findings).len(), 4, "mode {mode:?}");
        assert_eq!(
            gap_kinds(&report.gaps),
            vec![(GapKind::DiffIdMismatch, Severity::Error, None)]
        );
        let detail = &report.gaps[0].detail;
        assert!(
            detail.contains(&format!("expected {}", digest(&claimed[1]))),
            "{detail}"
        );
        assert!(
            detail.contains(&format!("actual {}", digest(&tars[1]))),
            "{detail}"
        );
        assert_eq!(
            report.gaps[0].digest.as_deref(),
            Some(digest(&blobs[1]).as_str())
        );
        assert!(report.coverage.partial);
    }
}

#[test]
fn unknown_layer_format_scanned_raw() {
    let raw = format!("not a tar at all\n{}\n", known(0)).into_bytes();
    for mode in MODES {
        let report = scan_blobs(
            mode,
            &scanner(mode),
            std::slice::from_ref(&raw),
            std::slice::from_ref(&raw),
        );
        assert_eq!(
            seen(&report.findings),
            vec![present(0, 0, "", 2)],
            "mode {mode:?}"
        );
        assert_eq!(
            gap_kinds(&report.gaps),
            vec![(GapKind::UnknownLayerFormat, Severity::Error, None)]
        );
        assert!(report.coverage.partial);
    }
}

#[test]
fn corrupt_first_header_names_no_path() {
    let mut tar = LayerBuilder::new().file("only", &secret_file(0)).finish();
    tar[0] ^= 0x55;
    for mode in MODES {
        let report = scan_tars(mode, &scanner(mode), std::slice::from_ref(&tar));
        assert!(report.findings.is_empty(), "mode {mode:?}");
        assert_eq!(
            gap_kinds(&report.gaps),
            vec![(GapKind::TarCorrupt, Severity::Error, None)],
            "mode {mode:?}"
        );
        assert!(report.coverage.partial, "mode {mode:?}");
    }
}

#[test]
fn trailing_single_magic_byte_warns() {
    let tar = LayerBuilder::new().file("only", &secret_file(0)).finish();
    let mut blob = compress(&tar, Codec::Gzip);
    blob.push(0x1f);
    for mode in MODES {
        let report = scan_blobs(
            mode,
            &scanner(mode),
            std::slice::from_ref(&blob),
            std::slice::from_ref(&tar),
        );
        assert_eq!(
            seen(&report.findings),
            vec![present(0, 0, "only", 2)],
            "mode {mode:?}"
        );
        assert_eq!(
            gap_kinds(&report.gaps),
            vec![(GapKind::TrailingBytes, Severity::Warning, None)],
            "mode {mode:?}"
        );
        assert!(!report.coverage.partial, "mode {mode:?}");
    }
}
