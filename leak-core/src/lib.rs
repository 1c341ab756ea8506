//! Stream-scan container images for leaked secrets.
//!
//! `leak-core` reads docker-archive tarballs and OCI image layouts from disk
//! and reports every secret in them: in every file of every layer (files a
//! later layer deleted or overwrote included), in the image config's `Env`,
//! labels, `Cmd`, `Entrypoint` and history `created_by` lines (where build
//! arguments appear), and in manifest and index annotations. It has no
//! network code; `leak-registry` feeds it layers from a registry.
//!
//! # Guide
//!
//! ```
//! use leak_core::{Location, Scanner};
//!
//! let scanner = Scanner::builder().build()?;
//! let report = scanner.scan_path("../examples/demo/demo-image.tar")?;
//! for finding in &report.findings {
//!     // Never the secret: a fingerprint and a redacted preview.
//!     println!("{} {} {}", finding.kind, finding.fingerprint, finding.redacted);
//!     if let Location::Layer { path, present_in_final_fs, .. } = &finding.location {
//!         println!("  in /{path}, still in the final filesystem: {present_in_final_fs}");
//!     }
//! }
//! assert!(report.coverage.complete);
//! # Ok::<(), leak_core::ScanError>(())
//! ```
//!
//! - [`Scanner::builder`] takes extra rules ([`ScannerBuilder::rules_file`],
//!   gitleaks-style TOML), exact known values
//!   ([`ScannerBuilder::known_values_file`], also searched in base64), a
//!   platform filter and [`ScanOptions`].
//! - [`Scanner::scan_path`] scans every image of an input. A registry client
//!   uses the pieces instead: [`Scanner::scan_layer`] for one layer blob
//!   (its [`LayerReport`] is serialisable, so it can be cached by digest),
//!   [`Scanner::scan_config`] and [`Scanner::assemble_image`].
//! - [`Report`] serialises to the JSON report (`findings` and `coverage`);
//!   [`sarif::to_sarif`] converts it to SARIF 2.1.0. The schema is in
//!   `docs/report-schema.md` at the repository root.
//!
//! # What is read, and how
//!
//! Each layer blob is decompressed on the calling thread (gzip with every
//! member, zstd, or plain tar, chosen by magic bytes) while a second thread
//! walks the tar and matches, so decompression overlaps matching. Both the
//! blob digest and the diff ID are checked while the bytes stream. Each
//! file is scanned in chunks of [`ScanOptions::chunk_size`] that overlap by
//! at least the longest possible match, so memory stays bounded whatever
//! the size of the layer or the file. Nothing is written to disk.
//!
//! Problems inside an image (a corrupt layer, a truncated entry, a digest
//! mismatch, a bound that tripped) never stop the scan: each becomes a
//! [`Gap`] in [`Coverage`], the image is marked partial, and the rest is
//! scanned. Only an input that cannot be opened at all is an error
//! ([`ScanError`]).
//!
//! # Limits
//!
//! - A match longer than the chunk overlap (raised automatically to the
//!   longest rule or known value) may be missed where it crosses a chunk
//!   edge.
//! - Nested archives are opened up to [`ScanOptions::nested_max_bytes`]
//!   each, [`ScanOptions::nested_max_depth`] levels deep and
//!   [`ScanOptions::nested_max_expanded_bytes`] of members; beyond those
//!   their raw bytes are still scanned and a gap is reported.
//! - UTF-16 is detected from a file's first 128 bytes only.
//! - A compressed archive as a whole is read twice (metadata, then layers)
//!   and its layers are scanned one after another.
//!
//! # Security
//!
//! - A secret lives only in [`Secret`], whose `Debug` prints a redaction and
//!   which has neither `Display` nor `Serialize`. Findings carry it in memory
//!   (`Finding::secret`, skipped by serde) so a rotator can use it; output,
//!   logs and errors carry only the [`Fingerprint`] and a preview from
//!   [`redact`].
//! - Scanned data is untrusted: tar paths are never used to touch the file
//!   system (nothing is extracted), symlinks are recorded and never
//!   followed, sizes in headers only bound reads, and every allocation that
//!   depends on the input is capped (metadata files at 16 MiB, nested
//!   archives by the options above).
//! - The layer reader is fuzzed (`leak-core/fuzz`).

pub mod codec;
pub mod detect;
pub mod image;
pub mod layer;
pub mod options;
pub mod report;
pub mod rules;
pub mod sarif;
pub mod scanner;
pub mod secret;

mod assemble;
mod chunk;
mod config;
mod digest;
mod file;
mod nested;
mod utf16;

pub use detect::{Detector, KnownValues};
pub use image::{ImageInfo, ImageLayer, PlatformFilter};
pub use layer::{LayerInfo, LayerReport};
pub use options::ScanOptions;
pub use report::{
    Coverage, Finding, Gap, GapKind, ImageCoverage, Location, Removal, Report, Severity,
};
pub use rules::{Rule, RuleSet};
pub use scanner::{ImageReport, ScanError, Scanner, ScannerBuilder, merge_reports};
pub use secret::{Fingerprint, Secret, redact};
