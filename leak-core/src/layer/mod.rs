//! Scanning one layer blob: decompress on one thread, walk the tar and match
//! on another, verify both digests, and record every entry so that later
//! layers can be checked for whiteouts and overwrites.

mod pipeline;
mod walk;

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::codec::Codec;
use crate::detect::{Detector, Encoding};
use crate::options::ScanOptions;
use crate::report::Gap;
use crate::secret::{Fingerprint, Secret};

pub(crate) use walk::{MAX_LINKED_FINDINGS, display_path, normalize_path, relink_path as relink};

/// Facts about a layer blob known before it is read.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Digest the blob must have, as the manifest names it. `None` skips
    /// the check (docker-archive layer files are named by their diff ID).
    pub digest: Option<String>,
    /// Digest the uncompressed tar must have (`rootfs.diff_ids[i]`).
    pub diff_id: Option<String>,
    /// Name used in errors and reports (the digest, or the archive member).
    pub name: String,
}

/// The type of a tar entry, as far as the final filesystem cares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EntryKind {
    /// A regular file (also sparse and contiguous files).
    File,
    /// A directory.
    Directory,
    /// A symbolic link; never followed.
    Symlink {
        /// The link target as written.
        target: String,
    },
    /// A hard link to another path.
    Hardlink {
        /// The normalised target path.
        target: String,
    },
    /// A `.wh.NAME` marker that deletes `target` from lower layers.
    Whiteout {
        /// The normalised path it deletes.
        target: String,
    },
    /// A `.wh..wh..opq` marker that hides the contents of `directory` in
    /// lower layers.
    OpaqueWhiteout {
        /// The normalised directory path.
        directory: String,
    },
    /// A device, FIFO or other entry.
    Other,
}

/// One tar entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// Normalised path: no leading `/` or `./`, `.` and `..` resolved.
    pub path: String,
    /// Entry type.
    pub kind: EntryKind,
}

/// A secret found in one file of a layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerFinding {
    /// Rule id.
    pub rule: String,
    /// Credential kind.
    pub kind: String,
    /// Fingerprint of the secret.
    pub fingerprint: Fingerprint,
    /// Redacted preview.
    pub redacted: String,
    /// Encoding at the place it was found.
    pub encoding: Encoding,
    /// Path as reported: the tar entry name without a leading `/` or `./`,
    /// and `ARCHIVE!/MEMBER` inside nested archives.
    pub path: String,
    /// Normalised path of the layer file that contains it, used to decide
    /// whether the file survives in the final filesystem.
    pub fs_path: String,
    /// Index of that file's entry in [`LayerReport::entries`].
    pub entry_index: usize,
    /// 1-based line of the match start.
    pub line: Option<u64>,
    /// The secret; not serialised, so a cached report must be rescanned
    /// to recover it.
    #[serde(skip)]
    pub secret: Option<Secret>,
}

/// A hardlink whose target is not in its own layer; the image assembler
/// resolves it against lower layers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingHardlink {
    /// Reported path of the link.
    pub path: String,
    /// Normalised path of the link.
    pub fs_path: String,
    /// Normalised target path.
    pub target: String,
    /// Index of the link's entry.
    pub entry_index: usize,
}

/// The result of scanning one layer blob; serialisable so a registry audit
/// can cache it by digest.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LayerReport {
    /// Name used in reports.
    pub name: String,
    /// Digest the descriptor names, if any.
    pub digest: Option<String>,
    /// Digest of the blob as read.
    pub actual_digest: Option<String>,
    /// Digest of the uncompressed stream as read (the diff ID).
    pub actual_diff_id: Option<String>,
    /// Codec detected from the magic bytes.
    pub codec: Option<Codec>,
    /// Blob size in bytes, as read.
    pub compressed_bytes: u64,
    /// Uncompressed size in bytes, as read.
    pub uncompressed_bytes: u64,
    /// File content bytes scanned, nested archives included.
    pub bytes_scanned: u64,
    /// Every tar entry, in order.
    pub entries: Vec<EntryRecord>,
    /// Every finding in the layer's files.
    pub findings: Vec<LayerFinding>,
    /// Hardlinks to targets outside this layer.
    pub pending_hardlinks: Vec<PendingHardlink>,
    /// Parts of the layer that were not covered.
    pub gaps: Vec<Gap>,
    /// True when the blob was read to its end, both digests matched and no
    /// entry failed.
    pub complete: bool,
}

/// Scans layer blobs with a shared detector.
#[derive(Debug)]
pub struct LayerScanner<'a> {
    detector: &'a Detector,
    options: &'a ScanOptions,
}

impl<'a> LayerScanner<'a> {
    /// Creates a layer scanner.
    pub fn new(detector: &'a Detector, options: &'a ScanOptions) -> Self {
        LayerScanner { detector, options }
    }

    /// Scans one layer blob read from `raw` (gzip, zstd or plain tar, chosen
    /// by magic bytes). Returns a report, not a `Result`: every problem
    /// becomes a gap in it, and findings made before the problem are kept.
    pub fn scan(&self, raw: &mut dyn Read, info: &LayerInfo) -> LayerReport {
        pipeline::scan_layer(self, raw, info)
    }
}
