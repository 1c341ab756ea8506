//! Entry kinds and names inside one layer: hardlinks, GNU and PAX long
//! names, GNU sparse files, hostile and very long paths, huge declared
//! sizes, UTF-16 text and nested archives. Each case runs at default buffer
//! sizes, at 64-byte chunks with 7-byte pipeline blocks, and through a
//! reader that returns 1 to 7 bytes a read.

mod support;

use leak_core::{GapKind, Removal, Severity};
use support::*;

fn secret_file(n: usize) -> Vec<u8> {
    format!("# config\ntoken = {}\n", known(n)).into_bytes()
}

fn check(tars: &[Vec<u8>], expected: Vec<Seen>) {
    for mode in MODES {
        let report = scan_tars(mode, &scanner(mode), tars);
        assert!(
            report.gaps.is_empty(),
            "mode {mode:?}: unexpected gaps {:#?}",
            report.gaps
        );
        assert_eq!(
            seen(&report.findings),
            sorted(expected.clone()),
            "mode {mode:?}"
        );
        assert!(!report.coverage.partial, "mode {mode:?}");
    }
}

#[test]
fn hardlink_chain_reports_every_name() {
    let layer = LayerBuilder::new()
        .file("s/orig", &secret_file(0))
        .hardlink("s/first", "s/orig")
        .hardlink("s/second", "./s/first")
        .finish();
    check(
        &[layer],
        vec![
            present(0, 0, "s/orig", 2),
            present(0, 0, "s/first", 2),
            present(0, 0, "s/second", 2),
        ],
    );
}

#[test]
fn hardlink_to_lower_layer_file() {
    let lower = LayerBuilder::new().file("s/orig", &secret_file(0)).finish();
    let upper = LayerBuilder::new()
        .hardlink("s/link", "s/orig")
        .whiteout("s/orig")
        .finish();
    check(
        &[lower, upper],
        vec![
            removed(0, 0, "s/orig", 2, 1, Removal::Whiteout, "s/.wh.orig"),
            present(0, 1, "s/link", 2),
        ],
    );
}

#[test]
fn hardlink_chain_across_three_layers() {
    let base = LayerBuilder::new().file("s/a", &secret_file(0)).finish();
    let middle = LayerBuilder::new().hardlink("s/b", "s/a").finish();
    let top = LayerBuilder::new().hardlink("s/c", "s/b").finish();
    check(
        &[base, middle, top],
        vec![
            present(0, 0, "s/a", 2),
            present(0, 1, "s/b", 2),
            present(0, 2, "s/c", 2),
        ],
    );
}

#[test]
fn hardlink_to_lower_layer_uses_newest_copy() {
    let base = LayerBuilder::new().file("s/orig", &secret_file(0)).finish();
    let middle = LayerBuilder::new().file("s/orig", &secret_file(1)).finish();
    let top = LayerBuilder::new().hardlink("s/link", "s/orig").finish();
    check(
        &[base, middle, top],
        vec![
            removed(0, 0, "s/orig", 2, 1, Removal::Overwritten, "s/orig"),
            present(1, 1, "s/orig", 2),
            present(1, 2, "s/link", 2),
        ],
    );
}

#[test]
fn hardlink_to_nested_archive_keeps_member() {
    let jar = zip_of(&[("app.properties", &secret_file(0))]);
    let lower = LayerBuilder::new()
        .file("lib/a.jar", &jar)
        .hardlink("lib/b.jar", "lib/a.jar")
        .finish();
    let upper = LayerBuilder::new()
        .hardlink("lib/c.jar", "lib/a.jar")
        .finish();
    check(
        &[lower, upper],
        vec![
            present(0, 0, "lib/a.jar!/app.properties", 2),
            present(0, 0, "lib/b.jar!/app.properties", 2),
            present(0, 1, "lib/c.jar!/app.properties", 2),
        ],
    );
}

#[test]
fn hardlink_missing_target_is_warning() {
    let layer = LayerBuilder::new()
        .file("a", &secret_file(0))
        .hardlink("s/link", "nowhere/file")
        .finish();
    for mode in MODES {
        let report = scan_tars(mode, &scanner(mode), std::slice::from_ref(&layer));
        assert_eq!(
            seen(&report.findings),
            vec![present(0, 0, "a", 2)],
            "mode {mode:?}"
        );
        assert_eq!(
            gap_kinds(&report.gaps),
            vec![(
                GapKind::HardlinkTargetMissing,
                Severity::Warning,
                Some("s/link".to_owned())
            )],
            "mode {mode:?}"
        );
        assert_eq!(report.gaps[0].image.as_deref(), Some("fixture:latest"));
        assert_eq!(
            report.gaps[0].digest.as_deref(),
            Some(digest(&layer).as_str())
        );
        assert!(!report.coverage.partial, "mode {mode:?}");
    }
}

#[test]
fn gnu_long_name() {
    let name = format!("opt/{}/config.env", "very-long-directory-name".repeat(8));
    let layer = LayerBuilder::new().file(&name, &secret_file(0)).finish();
    check(&[layer], vec![present(0, 0, &name, 2)]);
}

#[test]
fn pax_long_name() {
    let name = format!("srv/{}/settings.ini", "pax-directory".repeat(12));
    let layer = LayerBuilder::new()
        .pax_file(&name, &secret_file(0))
        .finish();
    check(&[layer], vec![present(0, 0, &name, 2)]);
}

#[test]
fn pax_name_overwrites_earlier_file() {
    let name = format!("srv/{}/settings.ini", "pax-directory".repeat(12));
    let layer = LayerBuilder::new()
        .file(&name, &secret_file(0))
        .pax_file(&name, b"clean\n")
        .finish();
    check(
        &[layer],
        vec![removed(0, 0, &name, 2, 0, Removal::Overwritten, &name)],
    );
}

#[test]
fn gnu_sparse_file() {
    let mut data = vec![b' '; 512];
    let text = format!("key={}\n", known(0));
    data[..text.len()].copy_from_slice(text.as_bytes());
    let layer = LayerBuilder::new()
        .sparse("var/lib/sparse.db", 4096, &data, 64 * 1024)
        .file("after", &secret_file(1))
        .finish();
    check(
        &[layer],
        vec![
            present(0, 0, "var/lib/sparse.db", 1),
            present(1, 0, "after", 2),
        ],
    );
}

#[test]
fn hostile_parent_path_maps_into_root() {
    let lower = LayerBuilder::new()
        .file("../../etc/x", &secret_file(0))
        .finish();
    let upper = LayerBuilder::new().whiteout("etc/x").finish();
    check(
        &[lower, upper],
        vec![removed(
            0,
            0,
            "../../etc/x",
            2,
            1,
            Removal::Whiteout,
            "etc/.wh.x",
        )],
    );
}

#[test]
fn absolute_path_is_relative_to_root() {
    let layer = LayerBuilder::new()
        .file("/root/.netrc", &secret_file(0))
        .file("./root/.ssh/id", &secret_file(1))
        .finish();
    check(
        &[layer],
        vec![
            present(0, 0, "root/.netrc", 2),
            present(1, 0, "root/.ssh/id", 2),
        ],
    );
}

#[test]
fn very_long_hostile_path() {
    let name = format!("/{}/../secret.txt", "d/".repeat(3000));
    let expected_path = format!("{}/../secret.txt", "d/".repeat(3000).trim_end_matches('/'));
    let layer = LayerBuilder::new().file(&name, &secret_file(0)).finish();
    for mode in MODES {
        let report = scan_tars(mode, &scanner(mode), std::slice::from_ref(&layer));
        let found = seen(&report.findings);
        assert_eq!(found.len(), 1, "mode {mode:?}");
        assert_eq!(
            found[0].path.replace("//", "/"),
            expected_path,
            "mode {mode:?}"
        );
        assert!(found[0].present, "mode {mode:?}");
        assert!(report.gaps.is_empty(), "mode {mode:?}");
    }
}

#[test]
fn huge_declared_size_is_truncation() {
    // A header that declares 1 TiB, followed by only a few real bytes.
    let head = LayerBuilder::new()
        .file("first", &secret_file(0))
        .unfinished();
    let mut huge = LayerBuilder::new()
        .entry(b"huge.bin", b'0', b"", b"")
        .unfinished();
    // Rewrite the size field of the last header to 1 TiB in base-256.
    let mut header: [u8; 512] = huge[..512].try_into().unwrap();
    header[124] = 0x80;
    header[125..136].fill(0);
    header[128..136].copy_from_slice(&(1u64 << 40).to_be_bytes());
    header[148..156].copy_from_slice(b"        ");
    let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    huge[..512].copy_from_slice(&header);

    let mut tar = head;
    tar.extend_from_slice(&huge);
    tar.extend_from_slice(known(1).as_bytes());

    for mode in MODES {
        let report = scan_tars(mode, &scanner(mode), std::slice::from_ref(&tar));
        assert_eq!(
            seen(&report.findings),
            vec![present(0, 0, "first", 2), present(1, 0, "huge.bin", 1)],
            "mode {mode:?}"
        );
        let kinds = gap_kinds(&report.gaps);
        assert_eq!(kinds.len(), 1, "mode {mode:?}: {kinds:?}");
        assert_eq!(kinds[0].1, Severity::Error, "mode {mode:?}");
        assert_eq!(kinds[0].2.as_deref(), Some("huge.bin"), "mode {mode:?}");
        assert!(report.coverage.partial, "mode {mode:?}");
    }
}

#[test]
fn utf16_files_with_and_without_bom() {
    let text = |n: usize| format!("first line of settings\r\npassword = {}\r\n", known(n));
    let layer = LayerBuilder::new()
        .file("le-bom.txt", &utf16(&text(0), true, true))
        .file("be-bom.txt", &utf16(&text(1), false, true))
        .file("le.txt", &utf16(&text(2), true, false))
        .file("be.txt", &utf16(&text(3), false, false))
        .finish();
    for mode in MODES {
        let report = scan_tars(mode, &scanner(mode), std::slice::from_ref(&layer));
        let mut found: Vec<(String, String, Option<u64>, String)> = report
            .findings
            .iter()
            .map(|finding| match &finding.location {
                leak_core::Location::Layer { path, line, .. } => (
                    path.clone(),
                    finding
                        .secret
                        .as_ref()
                        .and_then(|s| s.expose_str())
                        .unwrap_or("")
                        .to_owned(),
                    *line,
                    format!("{:?}", finding.encoding),
                ),
                other => panic!("unexpected location {other:?}"),
            })
            .collect();
        found.sort();
        let expect = |path: &str, n: usize, encoding: &str| {
            (path.to_owned(), known(n), Some(2), encoding.to_owned())
        };
        assert_eq!(
            found,
            vec![
                expect("be-bom.txt", 1, "Utf16be"),
                expect("be.txt", 3, "Utf16be"),
                expect("le-bom.txt", 0, "Utf16le"),
                expect("le.txt", 2, "Utf16le"),
            ],
            "mode {mode:?}"
        );
        assert!(report.gaps.is_empty(), "mode {mode:?}");
    }
}

fn nested_tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = LayerBuilder::new();
    for (name, bytes) in members {
        builder = builder.file(name, bytes);
    }
    builder.finish()
}

#[test]
fn nested_archives_of_each_kind() {
    let layer = LayerBuilder::new()
        .file("a.tar", &nested_tar(&[("conf/one", &secret_file(0))]))
        .file(
            "b.tar.gz",
            &gzip(&nested_tar(&[("./two", &secret_file(1))])),
        )
        .file("c.tgz", &gzip(&nested_tar(&[("three", &secret_file(2))])))
        .file("lib/d.zip", &zip_of(&[("four.txt", &secret_file(3))]))
        .file(
            "lib/e.jar",
            &zip_of(&[("META-INF/app.properties", &secret_file(0))]),
        )
        .file(
            "webapps/f.war",
            &zip_of(&[("WEB-INF/web.xml", &secret_file(1))]),
        )
        .finish();
    check(
        &[layer],
        vec![
            present(0, 0, "a.tar!/conf/one", 2),
            // An uncompressed archive's raw bytes show the secret too.
            present(0, 0, "a.tar", 2),
            present(1, 0, "b.tar.gz!/two", 2),
            present(2, 0, "c.tgz!/three", 2),
            present(3, 0, "lib/d.zip!/four.txt", 2),
            present(0, 0, "lib/e.jar!/META-INF/app.properties", 2),
            present(1, 0, "webapps/f.war!/WEB-INF/web.xml", 2),
        ],
    );
}

#[test]
fn nested_twice_and_whited_out() {
    let jar = zip_of(&[("BOOT-INF/application.yml", &secret_file(0))]);
    let outer = gzip(&nested_tar(&[("lib/inner.jar", &jar)]));
    let lower = LayerBuilder::new().file("opt/bundle.tgz", &outer).finish();
    let upper = LayerBuilder::new().whiteout("opt/bundle.tgz").finish();
    check(
        &[lower, upper],
        vec![removed(
            0,
            0,
            "opt/bundle.tgz!/lib/inner.jar!/BOOT-INF/application.yml",
            2,
            1,
            Removal::Whiteout,
            "opt/.wh.bundle.tgz",
        )],
    );
}

#[test]
fn nested_past_depth_bound_is_gap() {
    let inner = nested_tar(&[("deep.txt", &secret_file(0))]);
    let middle = nested_tar(&[("inner.tar", &inner)]);
    let layer = LayerBuilder::new().file("outer.tar", &middle).finish();
    for mode in MODES {
        let scanner = scanner_with(mode, 4, false, |options| options.nested_max_depth = 1);
        let report = scan_tars(mode, &scanner, std::slice::from_ref(&layer));
        // The too-deep archive is a plain tar, so its raw bytes still show
        // the secret, at the archive's own path.
        assert_eq!(
            seen(&report.findings),
            sorted(vec![
                present(0, 0, "outer.tar!/inner.tar", 2),
                present(0, 0, "outer.tar", 2)
            ]),
            "mode {mode:?}"
        );
        assert_eq!(
            gap_kinds(&report.gaps),
            vec![(
                GapKind::NestedArchiveTooDeep,
                Severity::Error,
                Some("outer.tar!/inner.tar".to_owned())
            )],
            "mode {mode:?}"
        );
        assert!(report.coverage.partial, "mode {mode:?}");
    }
}

#[test]
fn nested_past_size_bound_is_gap() {
    let big = nested_tar(&[("padding", &vec![b'x'; 4096]), ("big.txt", &secret_file(0))]);
    let layer = LayerBuilder::new()
        .file("big.tar", &big)
        .file("small.zip", &zip_of(&[("s", &secret_file(1))]))
        .finish();
    for mode in MODES {
        let scanner = scanner_with(mode, 4, false, |options| options.nested_max_bytes = 2048);
        let report = scan_tars(mode, &scanner, std::slice::from_ref(&layer));
        assert_eq!(
            seen(&report.findings),
            sorted(vec![
                present(0, 0, "big.tar", 2),
                present(1, 0, "small.zip!/s", 2)
            ]),
            "mode {mode:?}"
        );
        assert_eq!(
            gap_kinds(&report.gaps),
            vec![(
                GapKind::NestedArchiveTooLarge,
                Severity::Error,
                Some("big.tar".to_owned())
            )],
            "mode {mode:?}"
        );
        assert!(report.coverage.partial, "mode {mode:?}");
    }
}

#[test]
fn nested_expansion_bound_is_gap() {
    let bomb = gzip(&nested_tar(&[
        ("zeros", &vec![0u8; 256 * 1024]),
        ("late.txt", &secret_file(0)),
    ]));
    let layer = LayerBuilder::new().file("bomb.tgz", &bomb).finish();
    for mode in MODES {
        let scanner = scanner_with(mode, 4, false, |options| {
            options.nested_max_expanded_bytes = 64 * 1024
        });
        let report = scan_tars(mode, &scanner, std::slice::from_ref(&layer));
        assert!(seen(&report.findings).is_empty(), "mode {mode:?}");
        let kinds = gap_kinds(&report.gaps);
        assert!(
            kinds.contains(&(
                GapKind::NestedArchiveTooLarge,
                Severity::Error,
                Some("bomb.tgz".to_owned())
            )),
            "mode {mode:?}: {kinds:?}"
        );
        assert!(report.coverage.partial, "mode {mode:?}");
    }
}

#[test]
fn rule_shaped_fake_in_layer() {
    let key_id = format!("AKIA{}", "LEAKTESTFAKEKEY2");
    let layer = LayerBuilder::new()
        .file(
            "root/.aws/credentials",
            format!("[default]\naws_access_key_id = {key_id}\n").as_bytes(),
        )
        .finish();
    for mode in MODES {
        let scanner = scanner_with(mode, 0, true, |_| {});
        let report = scan_tars(mode, &scanner, std::slice::from_ref(&layer));
        let found = seen(&report.findings);
        assert!(
            found.iter().any(|s| s.label == "aws-access-key-id"
                && s.path == "root/.aws/credentials"
                && s.line == Some(2)),
            "mode {mode:?}: {found:?}"
        );
    }
}

#[test]
fn data_in_directory_and_symlink_entries_scanned() {
    let layer = LayerBuilder::new()
        .entry_with_data("odd/dir", b'5', &secret_file(0), "")
        .entry_with_data("odd/link", b'2', &secret_file(1), "target")
        .finish();
    check(
        &[layer],
        vec![present(0, 0, "odd/dir", 2), present(1, 0, "odd/link", 2)],
    );
}
