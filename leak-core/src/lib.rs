//! Stream-scan container images for leaked secrets.

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
