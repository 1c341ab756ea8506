//! Findings, coverage and the JSON report.

use serde::{Deserialize, Serialize};

use crate::detect::Encoding;
use crate::secret::{Fingerprint, Secret};

/// One secret at one place in one image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Finding {
    /// Id of the rule that found it (`known-value` for exact search).
    pub rule: String,
    /// Credential kind, such as `aws-access-key-id`.
    pub kind: String,
    /// `sha256:` and the hex SHA-256 of the exact secret bytes.
    pub fingerprint: Fingerprint,
    /// A preview that identifies the secret but cannot be used.
    pub redacted: String,
    /// The image reference or tag the finding came from.
    pub image: String,
    /// Digest of the image manifest; `None` for docker-archive images,
    /// which carry no manifest.
    pub manifest_digest: Option<String>,
    /// Platform as `os/architecture[/variant]`, when known.
    pub platform: Option<String>,
    /// Place of the secret in the image.
    pub location: Location,
    /// Encoding of the secret at that place.
    pub encoding: Encoding,
    /// The secret itself, kept in memory for rotation; never serialised.
    #[serde(skip)]
    pub secret: Option<Secret>,
}

/// Way in which a later layer hid a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Removal {
    /// A `.wh.NAME` whiteout deleted the file or one of its parent
    /// directories.
    Whiteout,
    /// An opaque whiteout (`.wh..wh..opq`) emptied a parent directory.
    OpaqueWhiteout,
    /// A later entry at the same path replaced the file.
    Overwritten,
    /// A later entry replaced a parent directory with a non-directory.
    ParentReplaced,
}

/// The place of a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Location {
    /// A file in a layer.
    Layer {
        /// 0-based position in the manifest's layers and `rootfs.diff_ids`.
        layer_index: usize,
        /// The layer's digest as the manifest names it (for docker-archive
        /// images, its diff ID).
        layer_digest: String,
        /// The layer's diff ID (digest of the uncompressed tar), when known.
        diff_id: Option<String>,
        /// Path as written in the tar entry, without a leading `/` or `./`.
        /// A file inside a nested archive is written `ARCHIVE!/MEMBER`.
        path: String,
        /// 1-based line where the match starts.
        line: Option<u64>,
        /// Whether the file is still in the image's final filesystem.
        present_in_final_fs: bool,
        /// Index of the layer that deleted or replaced the file.
        removed_by_layer: Option<usize>,
        /// Way in which that layer hid it.
        removed_how: Option<Removal>,
        /// The entry that hid it (the whiteout file or the new entry).
        removed_by_entry: Option<String>,
    },
    /// An `Env` entry of the image config.
    Env {
        /// Variable name.
        key: String,
    },
    /// A label of the image config.
    Label {
        /// Label key.
        key: String,
    },
    /// A history entry's `created_by`.
    History {
        /// 0-based index into the config history, empty layers included.
        index: usize,
        /// The layer that history step created; `None` for empty-layer steps.
        layer_index: Option<usize>,
    },
    /// An annotation of a manifest or index.
    Annotation {
        /// Annotation key.
        key: String,
        /// Digest of the manifest or index that carries it.
        digest: Option<String>,
    },
    /// The config's `Cmd`.
    Cmd,
    /// The config's `Entrypoint`.
    Entrypoint,
}

/// How much a gap matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something that was not an image was passed over on purpose
    /// (attestation manifests, platforms not selected).
    Info,
    /// Scanned fully, but something was odd (bytes after the last gzip
    /// member).
    Warning,
    /// Part of the image was not scanned: the image is partial.
    Error,
}

/// A part of an image that was not covered, or was covered with a caveat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapKind {
    /// The image source could not be opened or parsed.
    SourceUnreadable,
    /// A manifest or index could not be read or parsed.
    ManifestUnreadable,
    /// The image config could not be read or parsed.
    ConfigUnreadable,
    /// A layer blob could not be opened.
    LayerUnreadable,
    /// A blob's digest differs from the one its descriptor names.
    DigestMismatch,
    /// The uncompressed layer's digest differs from the config's diff ID.
    DiffIdMismatch,
    /// Decompression failed (truncated or corrupt gzip or zstd).
    Decompression,
    /// The layer's tar stream is corrupt or truncated.
    TarCorrupt,
    /// One tar entry could not be read to its end.
    EntryUnreadable,
    /// Bytes after the last gzip member.
    TrailingBytes,
    /// The layer is neither gzip, zstd nor tar: its raw bytes were scanned
    /// without file paths.
    UnknownLayerFormat,
    /// A nested archive was larger than the size bound and was not opened
    /// (its raw bytes were scanned).
    NestedArchiveTooLarge,
    /// A nested archive was deeper than the depth bound and was not opened.
    NestedArchiveTooDeep,
    /// A nested archive could not be parsed.
    NestedArchiveUnreadable,
    /// A hardlink names a target that no layer contains.
    HardlinkTargetMissing,
    /// An attestation manifest was skipped: it is not an image.
    AttestationSkipped,
    /// A platform was not selected by the platform filter.
    PlatformNotSelected,
    /// A manifest of a type that is not an image (for example an artifact).
    NotAnImage,
    /// Hardlinks would have copied more findings than the bound allows; the
    /// copies past it were dropped.
    FindingsTruncated,
}

/// One coverage gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Kind of gap.
    pub kind: GapKind,
    /// Whether the image is partial because of it.
    pub severity: Severity,
    /// The image reference, when the gap belongs to one image.
    pub image: Option<String>,
    /// The manifest, index or layer digest involved.
    pub digest: Option<String>,
    /// The path inside the layer, when one entry is involved.
    pub path: Option<String>,
    /// Description of what happened, in a sentence.
    pub detail: String,
}

impl Gap {
    /// Creates a gap with a kind, severity and detail.
    pub fn new(kind: GapKind, severity: Severity, detail: impl Into<String>) -> Self {
        Gap {
            kind,
            severity,
            image: None,
            digest: None,
            path: None,
            detail: detail.into(),
        }
    }

    /// Sets the digest.
    pub fn with_digest(mut self, digest: impl Into<String>) -> Self {
        self.digest = Some(digest.into());
        self
    }

    /// Sets the path.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Sets the image.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }
}

/// Coverage of one image.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageCoverage {
    /// Image reference.
    pub image: String,
    /// Input the image was read from (a file or directory path, or a
    /// registry reference).
    pub source: String,
    /// Manifest digest, when the image has a manifest.
    pub manifest_digest: Option<String>,
    /// Platform as `os/architecture[/variant]`.
    pub platform: Option<String>,
    /// Number of layers in the manifest.
    pub layers_total: usize,
    /// Number of layers read to their end without an error.
    pub layers_scanned: usize,
    /// Tar entries read, over all layers.
    pub entries_scanned: u64,
    /// File bytes scanned (uncompressed), over all layers.
    pub bytes_scanned: u64,
    /// Whether the image config was scanned.
    pub config_scanned: bool,
    /// True when any gap of severity `error` belongs to this image.
    pub partial: bool,
}

/// Account of what a scan covered and what it did not.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Coverage {
    /// True when every image was scanned completely.
    pub complete: bool,
    /// Per-image coverage.
    pub images: Vec<ImageCoverage>,
    /// Every gap, of every severity.
    pub gaps: Vec<Gap>,
}

/// The result of a scan: findings and coverage.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Every finding, one per secret and place.
    pub findings: Vec<Finding>,
    /// Coverage of the scan.
    pub coverage: Coverage,
}

impl Report {
    /// Appends another report's findings and coverage.
    pub fn merge(&mut self, other: Report) {
        self.findings.extend(other.findings);
        self.coverage.images.extend(other.coverage.images);
        self.coverage.gaps.extend(other.coverage.gaps);
        self.coverage.complete = self.coverage.images.iter().all(|image| !image.partial)
            && !self
                .coverage
                .gaps
                .iter()
                .any(|gap| gap.severity == Severity::Error);
    }
}
