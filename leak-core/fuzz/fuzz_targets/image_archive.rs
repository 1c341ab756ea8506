//! Writes arbitrary bytes to a file and scans it as an image input
//! (docker-archive or OCI layout tar, plain or compressed).

#![no_main]

use std::sync::OnceLock;

use leak_core::{ScanOptions, Scanner};
use libfuzzer_sys::fuzz_target;

fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| {
        Scanner::builder()
            .options(ScanOptions {
                chunk_size: 64,
                overlap: 0,
                pipeline_block_size: 7,
                pipeline_depth: 2,
                parallel_layers: 1,
                nested_max_bytes: 1 << 20,
                nested_max_expanded_bytes: 4 << 20,
                ..ScanOptions::default()
            })
            .build()
            .expect("scanner builds")
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("input.tar");
    std::fs::write(&path, data).expect("input writes");
    let _ = scanner().scan_path(&path);
});
