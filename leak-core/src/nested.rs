//! Archives inside layers: tar (plain, gzip or zstd) and zip (jar, war, ear,
//! whl). Members are scanned with the same file scanner, recursively, within
//! the depth, size and expansion bounds of [`ScanOptions`].
//!
//! [`ScanOptions`]: crate::ScanOptions

use std::io::{Cursor, Read};

use crate::codec::{Codec, MultiGzDecoder, sniff};
use crate::file::{FileScan, FileScanner};
use crate::report::{Gap, GapKind, Severity};

/// The archive format a file name promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArchiveKind {
    /// `.tar`, `.tar.gz`, `.tgz`, `.tar.zst`, `.tzst`: the codec is chosen
    /// from the magic bytes.
    Tar,
    /// `.zip`, `.jar`, `.war`, `.ear`, `.whl`.
    Zip,
}

/// Returns the archive kind for a path by its extension, compared
/// case-insensitively.
pub(crate) fn archive_kind(path: &str) -> Option<ArchiveKind> {
    let name = path
        .rsplit("!/")
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase();
    let tar_suffixes = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"];
    let zip_suffixes = [".zip", ".jar", ".war", ".ear", ".whl"];
    if tar_suffixes.iter().any(|suffix| name.ends_with(suffix)) {
        Some(ArchiveKind::Tar)
    } else if zip_suffixes.iter().any(|suffix| name.ends_with(suffix)) {
        Some(ArchiveKind::Zip)
    } else {
        None
    }
}

fn unreadable(path: &str, detail: String) -> Gap {
    Gap::new(GapKind::NestedArchiveUnreadable, Severity::Error, detail).with_path(path)
}

/// Scans the members of the archive `bytes`, found at `outer`, adding
/// findings (as `OUTER!/MEMBER`) and gaps to `result`.
pub(crate) fn scan_archive(
    files: &FileScanner<'_>,
    kind: ArchiveKind,
    bytes: &[u8],
    outer: &str,
    depth: usize,
    result: &mut FileScan,
) {
    let mut budget = files.options.nested_max_expanded_bytes;
    match kind {
        ArchiveKind::Tar => scan_tar(files, bytes, outer, depth, &mut budget, result),
        ArchiveKind::Zip => scan_zip(files, bytes, outer, depth, &mut budget, result),
    }
}

fn member_path(outer: &str, member: &str) -> String {
    let member = crate::layer::display_path(member);
    format!("{outer}!/{member}")
}

fn scan_tar(
    files: &FileScanner<'_>,
    bytes: &[u8],
    outer: &str,
    depth: usize,
    budget: &mut u64,
    result: &mut FileScan,
) {
    let reader: Box<dyn Read + '_> = match sniff(bytes) {
        Codec::Gzip => Box::new(MultiGzDecoder::new(bytes)),
        Codec::Zstd => match zstd::stream::read::Decoder::new(bytes) {
            Ok(decoder) => Box::new(decoder),
            Err(error) => {
                result.gaps.push(unreadable(
                    outer,
                    format!("nested archive {outer:?}: zstd: {error}"),
                ));
                return;
            }
        },
        Codec::Tar | Codec::Empty => Box::new(bytes),
        Codec::Unknown => {
            result.gaps.push(unreadable(
                outer,
                format!("{outer:?} is named like a tar archive but is not one; its raw bytes were scanned"),
            ));
            return;
        }
    };
    let mut limited = reader.take(*budget);
    let mut archive = tar::Archive::new(&mut limited as &mut dyn Read);
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(error) => {
            result.gaps.push(unreadable(
                outer,
                format!("nested archive {outer:?}: {error}"),
            ));
            return;
        }
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                result.gaps.push(unreadable(
                    outer,
                    format!("nested archive {outer:?} is corrupt or truncated: {error}; later members were not scanned"),
                ));
                break;
            }
        };
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_gnu_sparse() || kind == tar::EntryType::Continuous) {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = member_path(outer, &name);
        let scan = files.scan(&mut entry, &path, depth);
        merge(result, scan, &path);
    }
    *budget = limited.limit();
    if *budget == 0 {
        result.gaps.push(
            Gap::new(
                GapKind::NestedArchiveTooLarge,
                Severity::Error,
                format!(
                    "nested archive {outer:?} expands to more than {} bytes; members past that were not scanned",
                    files.options.nested_max_expanded_bytes
                ),
            )
            .with_path(outer),
        );
    }
}

fn scan_zip(
    files: &FileScanner<'_>,
    bytes: &[u8],
    outer: &str,
    depth: usize,
    budget: &mut u64,
    result: &mut FileScan,
) {
    let mut archive = match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(archive) => archive,
        Err(error) => {
            result.gaps.push(unreadable(
                outer,
                format!("nested archive {outer:?} is not a readable zip: {error}"),
            ));
            return;
        }
    };
    for index in 0..archive.len() {
        let mut member = match archive.by_index(index) {
            Ok(member) => member,
            Err(error) => {
                result.gaps.push(unreadable(
                    outer,
                    format!("nested archive {outer:?}: member {index}: {error}"),
                ));
                continue;
            }
        };
        if member.is_dir() {
            continue;
        }
        let name = String::from_utf8_lossy(member.name_raw()).into_owned();
        let path = member_path(outer, &name);
        if *budget == 0 {
            result.gaps.push(
                Gap::new(
                    GapKind::NestedArchiveTooLarge,
                    Severity::Error,
                    format!(
                        "nested archive {outer:?} expands to more than {} bytes; members from {path:?} on were not scanned",
                        files.options.nested_max_expanded_bytes
                    ),
                )
                .with_path(outer),
            );
            return;
        }
        let mut limited = (&mut member as &mut dyn Read).take(*budget);
        let scan = files.scan(&mut limited, &path, depth);
        *budget = limited.limit();
        merge(result, scan, &path);
        // The budget can run out inside the last member, where the check
        // above never runs again: report the unread rest here.
        if *budget == 0 && member.read(&mut [0u8; 1]).is_ok_and(|read| read > 0) {
            result.gaps.push(
                Gap::new(
                    GapKind::NestedArchiveTooLarge,
                    Severity::Error,
                    format!(
                        "nested archive {outer:?} expands to more than {} bytes; the rest of {path:?} and later members were not scanned",
                        files.options.nested_max_expanded_bytes
                    ),
                )
                .with_path(outer),
            );
            return;
        }
    }
}

fn merge(result: &mut FileScan, scan: FileScan, path: &str) {
    result.findings.extend(scan.findings);
    result.gaps.extend(scan.gaps);
    result.bytes_scanned += scan.bytes_scanned;
    if let Some(error) = scan.read_error {
        result.gaps.push(unreadable(
            path,
            format!("member {path:?} could not be read to its end: {error}"),
        ));
    }
}
