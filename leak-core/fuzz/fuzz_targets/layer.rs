//! Feeds arbitrary bytes to `scan_layer` as a layer blob, at tiny chunk and
//! pipeline block sizes, so buffer edges fall everywhere.

#![no_main]

use std::sync::OnceLock;

use leak_core::{KnownValues, LayerInfo, ScanOptions, Scanner, Secret};
use libfuzzer_sys::fuzz_target;

fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| {
        let mut known = KnownValues::new();
        known.add(Secret::new("leak-test-known-value-0"));
        Scanner::builder()
            .known_values(known)
            .options(ScanOptions {
                chunk_size: 64,
                overlap: 0,
                pipeline_block_size: 7,
                pipeline_depth: 2,
                nested_max_bytes: 1 << 20,
                nested_max_expanded_bytes: 4 << 20,
                ..ScanOptions::default()
            })
            .build()
            .expect("scanner builds")
    })
}

fuzz_target!(|data: &[u8]| {
    let info = LayerInfo {
        digest: Some(format!("sha256:{}", "0".repeat(64))),
        diff_id: Some(format!("sha256:{}", "1".repeat(64))),
        name: "fuzz".to_owned(),
    };
    let report = scanner().scan_layer(&mut &data[..], &info);
    assert_eq!(report.compressed_bytes, data.len() as u64);
});
