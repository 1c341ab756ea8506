//! Scanning one file's bytes: raw chunks, a UTF-16 view when the file is
//! UTF-16 text, and the members of a nested archive.

use std::io::Read;

use crate::chunk::{ChunkScanner, StreamMatch};
use crate::detect::{Detector, Encoding, KNOWN_VALUE_RULE};
use crate::layer::LayerFinding;
use crate::nested;
use crate::options::ScanOptions;
use crate::report::{Gap, GapKind, Severity};
use crate::utf16;

/// Result of scanning one file. `fs_path` and `entry_index` of the
/// findings are left for the caller to fill in.
#[derive(Debug, Default)]
pub(crate) struct FileScan {
    pub(crate) findings: Vec<LayerFinding>,
    pub(crate) gaps: Vec<Gap>,
    /// Bytes scanned, nested archive members included.
    pub(crate) bytes_scanned: u64,
    /// Bytes read from the file itself.
    pub(crate) bytes_read: u64,
    /// Set when the file could not be read to its end.
    pub(crate) read_error: Option<String>,
}

/// Scans files with a shared detector; keeps no per-file state, so nested
/// archives can recurse into it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileScanner<'a> {
    pub(crate) detector: &'a Detector,
    pub(crate) options: &'a ScanOptions,
}

struct Utf16View<'a> {
    transcoder: utf16::Transcoder,
    scanner: ChunkScanner<'a>,
    text: Vec<u8>,
}

impl<'a> FileScanner<'a> {
    pub(crate) fn new(detector: &'a Detector, options: &'a ScanOptions) -> Self {
        FileScanner { detector, options }
    }

    /// Scans every byte of `reader` as the file at `path`. `depth` is the
    /// nesting depth of the archive the file sits in (0 for a layer file).
    pub(crate) fn scan(&self, reader: &mut dyn Read, path: &str, depth: usize) -> FileScan {
        let mut result = FileScan::default();
        let archive = nested::archive_kind(path);
        let copy_limit = self.options.nested_max_bytes;
        let mut copy: Option<Vec<u8>> = archive.map(|_| Vec::new());
        let mut copy_overflowed = false;

        let mut raw = ChunkScanner::new(
            self.detector,
            self.options.chunk_size,
            self.options.overlap,
            Encoding::Raw,
        );
        let mut head: Vec<u8> = Vec::new();
        let mut decided = false;
        let mut view: Option<Utf16View<'_>> = None;
        let mut raw_matches: Vec<StreamMatch> = Vec::new();
        let mut view_matches: Vec<StreamMatch> = Vec::new();

        loop {
            let mut observe = |bytes: &[u8]| {
                if let Some(buffer) = copy.as_mut() {
                    if (buffer.len() + bytes.len()) as u64 <= copy_limit {
                        buffer.extend_from_slice(bytes);
                    } else {
                        copy = None;
                        copy_overflowed = true;
                    }
                }
                if decided {
                    if let Some(view) = view.as_mut() {
                        view.push(bytes, path, &mut view_matches);
                    }
                    return;
                }
                let take = (utf16::SNIFF_LEN - head.len()).min(bytes.len());
                head.extend_from_slice(&bytes[..take]);
                if head.len() >= utf16::SNIFF_LEN {
                    decided = true;
                    view = self.open_view(&head);
                    if let Some(view) = view.as_mut() {
                        view.push(&head, path, &mut view_matches);
                        view.push(&bytes[take..], path, &mut view_matches);
                    }
                }
            };
            match raw.read_from(reader, Some(path), &mut observe, &mut |found| {
                raw_matches.push(found)
            }) {
                Ok(0) => break,
                Ok(n) => result.bytes_read += n as u64,
                Err(error) => {
                    result.read_error = Some(error.to_string());
                    break;
                }
            }
        }
        if !decided {
            view = self.open_view(&head);
            if let Some(view) = view.as_mut() {
                view.push(&head, path, &mut view_matches);
            }
        }
        raw.finish(Some(path), &mut |found| raw_matches.push(found));
        result.bytes_scanned += result.bytes_read;
        if let Some(mut view) = view {
            view.scanner
                .finish(Some(path), &mut |found| view_matches.push(found));
        }

        for found in self
            .reduce(raw_matches)
            .into_iter()
            .chain(self.reduce(view_matches))
        {
            result.findings.push(self.layer_finding(found, path));
        }

        if let Some(kind) = archive {
            self.scan_nested(kind, copy, copy_overflowed, path, depth, &mut result);
        }
        result
    }

    fn open_view(&self, head: &[u8]) -> Option<Utf16View<'a>> {
        let encoding = utf16::detect(head)?;
        Some(Utf16View {
            transcoder: utf16::Transcoder::new(encoding),
            scanner: ChunkScanner::new(
                self.detector,
                self.options.chunk_size,
                self.options.overlap,
                encoding,
            ),
            text: Vec::new(),
        })
    }

    fn scan_nested(
        &self,
        kind: nested::ArchiveKind,
        copy: Option<Vec<u8>>,
        overflowed: bool,
        path: &str,
        depth: usize,
        result: &mut FileScan,
    ) {
        if result.read_error.is_some() {
            return;
        }
        if overflowed {
            result.gaps.push(
                Gap::new(
                    GapKind::NestedArchiveTooLarge,
                    Severity::Error,
                    format!(
                        "nested archive {path:?} is larger than {} bytes and was not opened; its raw bytes were scanned",
                        self.options.nested_max_bytes
                    ),
                )
                .with_path(path),
            );
            return;
        }
        if depth + 1 > self.options.nested_max_depth {
            result.gaps.push(
                Gap::new(
                    GapKind::NestedArchiveTooDeep,
                    Severity::Error,
                    format!(
                        "nested archive {path:?} is nested deeper than {} levels and was not opened; its raw bytes were scanned",
                        self.options.nested_max_depth
                    ),
                )
                .with_path(path),
            );
            return;
        }
        if let Some(bytes) = copy {
            nested::scan_archive(self, kind, &bytes, path, depth + 1, result);
        }
    }

    /// Drops matches that a more specific overlapping rule replaces, and
    /// keeps one match per secret and line.
    fn reduce(&self, mut matches: Vec<StreamMatch>) -> Vec<StreamMatch> {
        if matches.len() < 2 {
            return matches;
        }
        matches.sort_by_key(|m| (m.found.span.start, m.found.span.end));
        let mut dropped = vec![false; matches.len()];
        for i in 0..matches.len() {
            for j in i + 1..matches.len() {
                if matches[j].found.span.start >= matches[i].found.span.end {
                    break;
                }
                if self.overrides(&matches[i], &matches[j]) {
                    dropped[j] = true;
                } else if self.overrides(&matches[j], &matches[i]) {
                    dropped[i] = true;
                }
            }
        }
        let mut kept: Vec<StreamMatch> = matches
            .into_iter()
            .zip(dropped)
            .filter(|(_, dropped)| !dropped)
            .map(|(m, _)| m)
            .collect();
        kept.sort_by(|a, b| {
            let key = |m: &StreamMatch| (m.line, m.found.rule.unwrap_or(usize::MAX));
            a.found
                .secret
                .expose()
                .cmp(b.found.secret.expose())
                .then(key(a).cmp(&key(b)))
        });
        kept.dedup_by(|later, earlier| {
            later.found.secret == earlier.found.secret && later.line == earlier.line
        });
        kept.sort_by_key(|m| (m.line, m.found.span.start));
        kept
    }

    fn overrides(&self, winner: &StreamMatch, loser: &StreamMatch) -> bool {
        let (Some(winner), Some(loser)) = (winner.found.rule, loser.found.rule) else {
            return false;
        };
        let loser_id = &self.detector.rule(loser).id;
        self.detector
            .rule(winner)
            .overrides
            .iter()
            .any(|id| id == loser_id)
    }

    pub(crate) fn layer_finding(&self, found: StreamMatch, path: &str) -> LayerFinding {
        let (rule, kind) = match found.found.rule {
            Some(index) => {
                let rule = self.detector.rule(index);
                (rule.id.clone(), rule.kind.clone())
            }
            None => (KNOWN_VALUE_RULE.to_owned(), KNOWN_VALUE_RULE.to_owned()),
        };
        let secret = found.found.secret;
        LayerFinding {
            rule,
            kind,
            fingerprint: secret.fingerprint(),
            redacted: secret.redacted(),
            encoding: found.found.encoding,
            path: path.to_owned(),
            fs_path: String::new(),
            entry_index: 0,
            line: Some(found.line),
            secret: Some(secret),
        }
    }
}

impl Utf16View<'_> {
    fn push(&mut self, bytes: &[u8], path: &str, out: &mut Vec<StreamMatch>) {
        self.text.clear();
        self.transcoder.push(bytes, &mut self.text);
        let text = std::mem::take(&mut self.text);
        self.scanner
            .feed(&text, Some(path), &mut |found| out.push(found));
        self.text = text;
    }
}
