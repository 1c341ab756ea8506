//! Walking a layer's tar stream: one record per entry, every file's bytes
//! scanned, hardlinks reported under each of their paths, nested archives
//! opened within bounds.

use std::collections::HashMap;
use std::io::Read;

use super::{EntryKind, EntryRecord, LayerFinding, LayerInfo, PendingHardlink};
use crate::codec::Codec;
use crate::detect::Detector;
use crate::digest::HashingReader;
use crate::file::{FileScan, FileScanner};
use crate::options::ScanOptions;
use crate::report::{Gap, GapKind, Severity};

/// Maximum number of findings in a layer or an image past which hardlink
/// copies are dropped (with a `FindingsTruncated` gap).
/// Each link reports its target's findings again under its own path, so a
/// small tar of many links to one file full of secrets would otherwise
/// multiply findings (and memory) without bound.
pub(crate) const MAX_LINKED_FINDINGS: usize = 100_000;

/// Result of walking one layer.
pub(super) struct Walked {
    pub(super) diff_id: Option<String>,
    pub(super) uncompressed_bytes: u64,
    pub(super) bytes_scanned: u64,
    pub(super) entries: Vec<EntryRecord>,
    pub(super) findings: Vec<LayerFinding>,
    pub(super) pending_hardlinks: Vec<PendingHardlink>,
    pub(super) gaps: Vec<Gap>,
}

pub(super) struct Walker<'a> {
    files: FileScanner<'a>,
    info: &'a LayerInfo,
    entries: Vec<EntryRecord>,
    findings: Vec<LayerFinding>,
    pending_hardlinks: Vec<PendingHardlink>,
    gaps: Vec<Gap>,
    bytes_scanned: u64,
    /// Latest entry index for each normalised path, and the indices of its
    /// findings, so hardlinks can copy them.
    by_path: HashMap<String, (usize, Vec<usize>)>,
}

impl<'a> Walker<'a> {
    pub(super) fn new(
        detector: &'a Detector,
        options: &'a ScanOptions,
        info: &'a LayerInfo,
    ) -> Self {
        Walker {
            files: FileScanner::new(detector, options),
            info,
            entries: Vec::new(),
            findings: Vec::new(),
            pending_hardlinks: Vec::new(),
            gaps: Vec::new(),
            bytes_scanned: 0,
            by_path: HashMap::new(),
        }
    }

    pub(super) fn walk<R: Read>(mut self, reader: R, codec: Codec) -> Walked {
        let mut hashing = HashingReader::new(reader);
        match codec {
            Codec::Empty => {}
            Codec::Unknown => self.scan_raw_blob(&mut hashing),
            Codec::Gzip | Codec::Zstd | Codec::Tar => self.walk_tar(&mut hashing),
        }
        let (diff_id, uncompressed_bytes) = match hashing.finish() {
            Ok((digest, length)) => (Some(digest), length),
            // The decompressing side reports its own error.
            Err(_) => (None, hashing.count()),
        };
        Walked {
            diff_id,
            uncompressed_bytes,
            bytes_scanned: self.bytes_scanned,
            entries: self.entries,
            findings: self.findings,
            pending_hardlinks: self.pending_hardlinks,
            gaps: self.gaps,
        }
    }

    fn gap(&self, kind: GapKind, severity: Severity, path: Option<&str>, detail: String) -> Gap {
        let gap = Gap::new(kind, severity, detail).with_digest(
            self.info
                .digest
                .clone()
                .unwrap_or_else(|| self.info.name.clone()),
        );
        match path {
            Some(path) => gap.with_path(path),
            None => gap,
        }
    }

    fn scan_raw_blob(&mut self, reader: &mut dyn Read) {
        self.gaps.push(self.gap(
            GapKind::UnknownLayerFormat,
            Severity::Error,
            None,
            format!(
                "layer {} is neither gzip, zstd nor tar: its raw bytes were scanned, without file paths",
                self.info.name
            ),
        ));
        let entry_index = self.entries.len();
        self.entries.push(EntryRecord {
            path: String::new(),
            kind: EntryKind::File,
        });
        let scan = self.files.scan(reader, "", 0);
        self.record_file(scan, "", "", entry_index);
    }

    fn walk_tar(&mut self, reader: &mut dyn Read) {
        let mut archive = tar::Archive::new(reader);
        let entries = match archive.entries() {
            Ok(entries) => entries,
            Err(error) => {
                let gap = self.gap(
                    GapKind::TarCorrupt,
                    Severity::Error,
                    None,
                    format!("layer {}: cannot read tar: {error}", self.info.name),
                );
                self.gaps.push(gap);
                return;
            }
        };
        let mut last_path = String::new();
        for entry in entries {
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    let detail = format!(
                        "layer {}: tar stream is corrupt or truncated after entry {} ({:?}): {error}; the rest of the layer was not scanned",
                        self.info.name,
                        self.entries.len(),
                        last_path
                    );
                    // Before the first entry there is no path to name.
                    let path = (!self.entries.is_empty()).then_some(last_path.as_str());
                    let gap = self.gap(GapKind::TarCorrupt, Severity::Error, path, detail);
                    self.gaps.push(gap);
                    break;
                }
            };
            let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let display = display_path(&raw_path);
            last_path.clone_from(&display);
            if !self.handle_entry(&mut entry, &display) {
                break;
            }
        }
    }

    /// Records and scans one entry. Returns false when the stream broke.
    fn handle_entry(&mut self, entry: &mut tar::Entry<'_, &mut dyn Read>, display: &str) -> bool {
        let key = normalize_path(display);
        let entry_type = entry.header().entry_type();
        let entry_index = self.entries.len();
        let kind = classify(entry, &key);
        self.entries.push(EntryRecord {
            path: key.clone(),
            kind: kind.clone(),
        });
        let sized = entry.header().entry_size().unwrap_or(0) > 0 || entry_type.is_gnu_sparse();
        match &kind {
            EntryKind::Hardlink { target } => {
                self.link_findings(display, &key, target, entry_index);
                if !sized {
                    return true;
                }
            }
            _ if sized => {
                // Directories, symlinks and whiteouts carry no data in a
                // well-formed layer, but a tar may give them some, and those
                // bytes are in the image too.
            }
            _ => {
                self.by_path.insert(key, (entry_index, Vec::new()));
                return true;
            }
        }
        let scan = self.files.scan(entry, display, 0);
        let broken = scan.read_error.is_some();
        self.record_file(scan, display, &key, entry_index);
        !broken
    }

    fn record_file(&mut self, scan: FileScan, display: &str, key: &str, entry_index: usize) {
        self.bytes_scanned += scan.bytes_scanned;
        let first_new = self.findings.len();
        for found in scan.findings {
            self.findings.push(LayerFinding {
                fs_path: key.to_owned(),
                entry_index,
                ..found
            });
        }
        for gap in scan.gaps {
            let gap = Gap {
                digest: Some(
                    self.info
                        .digest
                        .clone()
                        .unwrap_or_else(|| self.info.name.clone()),
                ),
                ..gap
            };
            self.gaps.push(gap);
        }
        if let Some(error) = scan.read_error {
            let gap = self.gap(
                GapKind::EntryUnreadable,
                Severity::Error,
                Some(display),
                format!(
                    "layer {}: file {display:?} could not be read to its end after {} bytes: {error}",
                    self.info.name, scan.bytes_read
                ),
            );
            self.gaps.push(gap);
        }
        let indices: Vec<usize> = (first_new..self.findings.len()).collect();
        let slot = self.by_path.entry(key.to_owned()).or_default();
        slot.0 = entry_index;
        if !matches!(self.entries[entry_index].kind, EntryKind::Hardlink { .. }) {
            slot.1 = indices;
        } else {
            slot.1.extend(indices);
        }
    }

    /// Reports the target's findings again under the link's path. Chains
    /// resolve because each link already carries its target's findings.
    fn link_findings(&mut self, display: &str, key: &str, target: &str, entry_index: usize) {
        let Some((_, indices)) = self.by_path.get(target) else {
            self.pending_hardlinks.push(PendingHardlink {
                path: display.to_owned(),
                fs_path: key.to_owned(),
                target: target.to_owned(),
                entry_index,
            });
            self.by_path
                .insert(key.to_owned(), (entry_index, Vec::new()));
            return;
        };
        let room = MAX_LINKED_FINDINGS.saturating_sub(self.findings.len());
        if indices.len() > room
            && !self
                .gaps
                .iter()
                .any(|gap| gap.kind == GapKind::FindingsTruncated)
        {
            let gap = self.gap(
                GapKind::FindingsTruncated,
                Severity::Error,
                Some(display),
                format!(
                    "layer {}: hardlinks copy more than {MAX_LINKED_FINDINGS} findings; later copies, from {display:?} on, were dropped",
                    self.info.name
                ),
            );
            self.gaps.push(gap);
        }
        let copies: Vec<LayerFinding> = indices
            .iter()
            .take(room)
            .map(|&index| {
                let original = &self.findings[index];
                LayerFinding {
                    path: relink_path(&original.path, &original.fs_path, display),
                    fs_path: key.to_owned(),
                    entry_index,
                    ..original.clone()
                }
            })
            .collect();
        let first_new = self.findings.len();
        self.findings.extend(copies);
        let new_indices = (first_new..self.findings.len()).collect();
        self.by_path
            .insert(key.to_owned(), (entry_index, new_indices));
    }
}

/// Rewrites a finding's reported path from its target file to a link,
/// keeping any `!/member` suffix of a nested archive.
pub(crate) fn relink_path(path: &str, target_key: &str, link_display: &str) -> String {
    match path.find("!/") {
        Some(split) if normalize_path(&path[..split]) == target_key => {
            format!("{link_display}{}", &path[split..])
        }
        _ => link_display.to_owned(),
    }
}

fn classify(entry: &tar::Entry<'_, &mut dyn Read>, key: &str) -> EntryKind {
    let header = entry.header();
    let entry_type = header.entry_type();
    let (parent, base) = match key.rfind('/') {
        Some(split) => (&key[..split], &key[split + 1..]),
        None => ("", key),
    };
    if let Some(rest) = base.strip_prefix(".wh.") {
        if rest == ".wh..opq" {
            return EntryKind::OpaqueWhiteout {
                directory: parent.to_owned(),
            };
        }
        if !rest.starts_with(".wh.") && !rest.is_empty() {
            let target = if parent.is_empty() {
                rest.to_owned()
            } else {
                format!("{parent}/{rest}")
            };
            return EntryKind::Whiteout { target };
        }
    }
    match entry_type {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            EntryKind::File
        }
        tar::EntryType::Directory => EntryKind::Directory,
        tar::EntryType::Symlink => EntryKind::Symlink {
            target: entry
                .link_name_bytes()
                .map(|name| String::from_utf8_lossy(&name).into_owned())
                .unwrap_or_default(),
        },
        tar::EntryType::Link => EntryKind::Hardlink {
            target: entry
                .link_name_bytes()
                .map(|name| normalize_path(&String::from_utf8_lossy(&name)))
                .unwrap_or_default(),
        },
        _ => EntryKind::Other,
    }
}

/// Strips leading `/` and `./` and a trailing `/`, as paths are reported.
pub(crate) fn display_path(raw: &str) -> String {
    let mut path = raw;
    loop {
        if let Some(rest) = path.strip_prefix("./") {
            path = rest;
        } else if let Some(rest) = path.strip_prefix('/') {
            path = rest;
        } else {
            break;
        }
    }
    let path = path.trim_end_matches('/');
    if path == "." {
        String::new()
    } else {
        path.to_owned()
    }
}

/// Normalises a path for comparison: no empty or `.` components, `..`
/// resolved lexically and clamped at the root.
pub(crate) fn normalize_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise() {
        assert_eq!(display_path("./etc/passwd"), "etc/passwd");
        assert_eq!(display_path("/root/"), "root");
        assert_eq!(display_path("./"), "");
        assert_eq!(normalize_path("a//b/./c/../d"), "a/b/d");
        assert_eq!(normalize_path("../../etc/shadow"), "etc/shadow");
    }

    #[test]
    fn relink_keeps_nested_member() {
        assert_eq!(
            relink_path("lib/a.jar!/x.properties", "lib/a.jar", "lib/b.jar"),
            "lib/b.jar!/x.properties"
        );
        assert_eq!(
            relink_path("etc/secret", "etc/secret", "etc/link"),
            "etc/link"
        );
    }
}
