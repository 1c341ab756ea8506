//! Whiteouts, overwrites and type changes across and within layers. Each
//! case runs at default buffer sizes, at 64-byte chunks with 7-byte
//! pipeline blocks, and through a reader that returns 1 to 7 bytes a read.

mod support;

use leak_core::Removal;
use support::*;

fn secret_file(n: usize) -> Vec<u8> {
    format!("# config\ntoken = {}\n", known(n)).into_bytes()
}

fn check(tars: &[Vec<u8>], expected: Vec<Seen>) {
    for mode in MODES {
        let report = scan_tars(mode, &scanner(mode), tars);
        assert_eq!(
            seen(&report.findings),
            sorted(expected.clone()),
            "mode {mode:?}"
        );
        assert!(
            report.gaps.is_empty(),
            "mode {mode:?}: unexpected gaps {:#?}",
            report.gaps
        );
        assert!(!report.coverage.partial, "mode {mode:?}");
        assert_eq!(report.coverage.layers_scanned, tars.len(), "mode {mode:?}");
    }
}

#[test]
fn opaque_whiteout_hides_lower_directory() {
    let lower = LayerBuilder::new()
        .dir("etc/app")
        .file("etc/app/secret.conf", &secret_file(0))
        .file("etc/other.conf", &secret_file(1))
        .finish();
    let upper = LayerBuilder::new()
        .dir("etc/app")
        .opaque("etc/app")
        .file("etc/app/new.conf", &secret_file(2))
        .finish();
    check(
        &[lower, upper],
        vec![
            removed(
                0,
                0,
                "etc/app/secret.conf",
                2,
                1,
                Removal::OpaqueWhiteout,
                "etc/app/.wh..wh..opq",
            ),
            present(1, 0, "etc/other.conf", 2),
            present(2, 1, "etc/app/new.conf", 2),
        ],
    );
}

#[test]
fn opaque_whiteout_after_files_in_tar_order() {
    let lower = LayerBuilder::new()
        .file("srv/data/key", &secret_file(0))
        .finish();
    // The marker comes after the directory's new contents: it still hides
    // only the lower layer.
    let upper = LayerBuilder::new()
        .file("srv/data/key", &secret_file(1))
        .opaque("srv/data")
        .finish();
    check(
        &[lower, upper],
        vec![
            removed(
                0,
                0,
                "srv/data/key",
                2,
                1,
                Removal::OpaqueWhiteout,
                "srv/data/.wh..wh..opq",
            ),
            present(1, 1, "srv/data/key", 2),
        ],
    );
}

#[test]
fn root_opaque_whiteout_hides_everything() {
    let lower = LayerBuilder::new().file("a/b/c", &secret_file(0)).finish();
    let upper = LayerBuilder::new().opaque("").finish();
    check(
        &[lower, upper],
        vec![removed(
            0,
            0,
            "a/b/c",
            2,
            1,
            Removal::OpaqueWhiteout,
            ".wh..wh..opq",
        )],
    );
}

#[test]
fn whiteout_before_recreated_file() {
    let lower = LayerBuilder::new()
        .file("app/.env", &secret_file(0))
        .finish();
    let upper = LayerBuilder::new()
        .whiteout("app/.env")
        .file("app/.env", &secret_file(1))
        .finish();
    check(
        &[lower, upper],
        vec![
            removed(0, 0, "app/.env", 2, 1, Removal::Whiteout, "app/.wh..env"),
            present(1, 1, "app/.env", 2),
        ],
    );
}

#[test]
fn whiteout_after_recreated_file() {
    let lower = LayerBuilder::new()
        .file("app/.env", &secret_file(0))
        .finish();
    // A whiteout applies to lower layers only, whatever its tar position.
    let upper = LayerBuilder::new()
        .file("app/.env", &secret_file(1))
        .whiteout("app/.env")
        .finish();
    check(
        &[lower, upper],
        vec![
            removed(0, 0, "app/.env", 2, 1, Removal::Whiteout, "app/.wh..env"),
            present(1, 1, "app/.env", 2),
        ],
    );
}

#[test]
fn whiteout_of_parent_directory() {
    let lower = LayerBuilder::new()
        .dir("home/dev")
        .file("home/dev/.aws/credentials", &secret_file(0))
        .finish();
    let upper = LayerBuilder::new().whiteout("home/dev").finish();
    check(
        &[lower, upper],
        vec![removed(
            0,
            0,
            "home/dev/.aws/credentials",
            2,
            1,
            Removal::Whiteout,
            "home/.wh.dev",
        )],
    );
}

#[test]
fn whiteout_in_middle_layer_only() {
    let base = LayerBuilder::new().file("k", &secret_file(0)).finish();
    let middle = LayerBuilder::new().whiteout("k").finish();
    let top = LayerBuilder::new().file("k", &secret_file(1)).finish();
    check(
        &[base, middle, top],
        vec![
            removed(0, 0, "k", 2, 1, Removal::Whiteout, ".wh.k"),
            present(1, 2, "k", 2),
        ],
    );
}

#[test]
fn file_replaced_by_directory() {
    let lower = LayerBuilder::new()
        .file("opt/cfg", &secret_file(0))
        .finish();
    let upper = LayerBuilder::new()
        .dir("opt/cfg")
        .file("opt/cfg/inner", b"clean\n")
        .finish();
    check(
        &[lower, upper],
        vec![removed(
            0,
            0,
            "opt/cfg",
            2,
            1,
            Removal::Overwritten,
            "opt/cfg",
        )],
    );
}

#[test]
fn directory_replaced_by_file() {
    let lower = LayerBuilder::new()
        .dir("opt/d")
        .file("opt/d/secret", &secret_file(0))
        .finish();
    let upper = LayerBuilder::new().file("opt/d", b"now a file\n").finish();
    check(
        &[lower, upper],
        vec![removed(
            0,
            0,
            "opt/d/secret",
            2,
            1,
            Removal::ParentReplaced,
            "opt/d",
        )],
    );
}

#[test]
fn directory_replaced_by_symlink() {
    let lower = LayerBuilder::new()
        .dir("opt/d")
        .file("opt/d/secret", &secret_file(0))
        .finish();
    let upper = LayerBuilder::new().symlink("opt/d", "/tmp").finish();
    check(
        &[lower, upper],
        vec![removed(
            0,
            0,
            "opt/d/secret",
            2,
            1,
            Removal::ParentReplaced,
            "opt/d",
        )],
    );
}

#[test]
fn grandparent_replaced_by_symlink() {
    let lower = LayerBuilder::new()
        .file("a/b/c/secret", &secret_file(0))
        .finish();
    let upper = LayerBuilder::new().symlink("a", "elsewhere").finish();
    check(
        &[lower, upper],
        vec![removed(
            0,
            0,
            "a/b/c/secret",
            2,
            1,
            Removal::ParentReplaced,
            "a",
        )],
    );
}

#[test]
fn parent_replaced_later_in_same_layer() {
    let layer = LayerBuilder::new()
        .dir("opt/d")
        .file("opt/d/secret", &secret_file(0))
        .symlink("opt/d", "/srv")
        .file("opt/kept", &secret_file(1))
        .finish();
    check(
        &[layer],
        vec![
            removed(0, 0, "opt/d/secret", 2, 0, Removal::ParentReplaced, "opt/d"),
            present(1, 0, "opt/kept", 2),
        ],
    );
}

#[test]
fn directory_redeclared_keeps_contents() {
    let lower = LayerBuilder::new()
        .dir("a/b")
        .file("a/b/secret", &secret_file(0))
        .finish();
    let upper = LayerBuilder::new().dir("a").dir("a/b").finish();
    check(&[lower, upper], vec![present(0, 0, "a/b/secret", 2)]);
}

#[test]
fn duplicate_path_last_wins() {
    let layer = LayerBuilder::new()
        .file("etc/conf", &secret_file(0))
        .file("./etc/conf", &secret_file(1))
        .finish();
    check(
        &[layer],
        vec![
            removed(0, 0, "etc/conf", 2, 0, Removal::Overwritten, "etc/conf"),
            present(1, 0, "etc/conf", 2),
        ],
    );
}

#[test]
fn duplicate_path_absolute_spelling() {
    let layer = LayerBuilder::new()
        .file("/etc/conf", &secret_file(0))
        .file("etc//conf", b"replaced\n")
        .finish();
    check(
        &[layer],
        vec![removed(
            0,
            0,
            "etc/conf",
            2,
            0,
            Removal::Overwritten,
            "etc/conf",
        )],
    );
}
