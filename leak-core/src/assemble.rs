//! Turning per-layer results into an image's findings: which files survive
//! in the final filesystem, which later layer hid the others, and hardlinks
//! whose targets live in lower layers.

use std::collections::HashMap;
use std::sync::Arc;

use crate::image::ImageInfo;
use crate::layer::{EntryKind, LayerFinding, LayerReport, MAX_LINKED_FINDINGS};
use crate::report::{Finding, Gap, GapKind, ImageCoverage, Location, Removal, Severity};

/// Per-layer lookup tables for whiteout and overwrite checks.
struct LayerIndex {
    /// Every entry index at each path.
    paths: HashMap<String, Vec<usize>>,
    /// Whiteout target -> whiteout entry path.
    whiteouts: HashMap<String, String>,
    /// Opaque directory -> marker entry path.
    opaque: HashMap<String, String>,
}

impl LayerIndex {
    fn new(report: &LayerReport) -> Self {
        let mut index = LayerIndex {
            paths: HashMap::new(),
            whiteouts: HashMap::new(),
            opaque: HashMap::new(),
        };
        for (position, entry) in report.entries.iter().enumerate() {
            match &entry.kind {
                EntryKind::Whiteout { target } => {
                    index.whiteouts.insert(target.clone(), entry.path.clone());
                }
                EntryKind::OpaqueWhiteout { directory } => {
                    index.opaque.insert(directory.clone(), entry.path.clone());
                }
                _ => index
                    .paths
                    .entry(entry.path.clone())
                    .or_default()
                    .push(position),
            }
        }
        index
    }
}

fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(move |(split, _)| &path[..split])
}

/// Layer, kind of removal and entry that hid a file.
type Hidden = (usize, Removal, String);

/// Finds the first layer at or above `layer` that hides the file at `path`
/// (entry `entry_index` of `layer`).
fn hidden_by(
    indexes: &[LayerIndex],
    reports: &[Arc<LayerReport>],
    layer: usize,
    entry_index: usize,
    path: &str,
) -> Option<Hidden> {
    if let Some(positions) = indexes[layer].paths.get(path)
        && positions.iter().any(|&p| p > entry_index)
    {
        return Some((layer, Removal::Overwritten, path.to_owned()));
    }
    // A later entry of the same layer that turns a parent directory into a
    // file or link removes the directory's contents when the layer applies.
    for ancestor in ancestors(path) {
        if let Some(positions) = indexes[layer].paths.get(ancestor) {
            let replaced = positions.iter().any(|&p| {
                p > entry_index && !matches!(reports[layer].entries[p].kind, EntryKind::Directory)
            });
            if replaced {
                return Some((layer, Removal::ParentReplaced, ancestor.to_owned()));
            }
        }
    }
    for (upper, index) in indexes.iter().enumerate().skip(layer + 1) {
        if let Some(marker) = index.whiteouts.get(path) {
            return Some((upper, Removal::Whiteout, marker.clone()));
        }
        for ancestor in ancestors(path) {
            if let Some(marker) = index.whiteouts.get(ancestor) {
                return Some((upper, Removal::Whiteout, marker.clone()));
            }
        }
        if let Some(marker) = index.opaque.get("") {
            return Some((upper, Removal::OpaqueWhiteout, marker.clone()));
        }
        for ancestor in ancestors(path) {
            if let Some(marker) = index.opaque.get(ancestor) {
                return Some((upper, Removal::OpaqueWhiteout, marker.clone()));
            }
        }
        if index.paths.contains_key(path) {
            return Some((upper, Removal::Overwritten, path.to_owned()));
        }
        for ancestor in ancestors(path) {
            if let Some(positions) = index.paths.get(ancestor) {
                let replaced = positions
                    .iter()
                    .any(|&p| !matches!(reports[upper].entries[p].kind, EntryKind::Directory));
                if replaced {
                    return Some((upper, Removal::ParentReplaced, ancestor.to_owned()));
                }
            }
        }
    }
    None
}

/// Assembles an image's layer findings and coverage.
pub(crate) fn assemble_layers(
    image: &ImageInfo,
    reports: &[Arc<LayerReport>],
    coverage: &mut ImageCoverage,
) -> (Vec<Finding>, Vec<Gap>) {
    let indexes: Vec<LayerIndex> = reports
        .iter()
        .map(|report| LayerIndex::new(report))
        .collect();
    let mut findings = Vec::new();
    let mut gaps = Vec::new();
    let mut truncated = false;
    for (layer, report) in reports.iter().enumerate() {
        coverage.entries_scanned += report.entries.len() as u64;
        coverage.bytes_scanned += report.bytes_scanned;
        if report.complete {
            coverage.layers_scanned += 1;
        }
        for gap in &report.gaps {
            gaps.push(Gap {
                image: Some(image.reference.clone()),
                ..gap.clone()
            });
        }
        for found in &report.findings {
            findings.push(layer_finding(image, &indexes, reports, layer, found));
        }
        for link in &report.pending_hardlinks {
            match resolve_link(reports, layer, &link.target) {
                Some(targets) => {
                    let room = MAX_LINKED_FINDINGS.saturating_sub(findings.len());
                    if targets.len() > room && !truncated {
                        truncated = true;
                        gaps.push(
                            Gap::new(
                                GapKind::FindingsTruncated,
                                Severity::Error,
                                format!(
                                    "{}: hardlinks copy more than {MAX_LINKED_FINDINGS} findings; later copies, from {:?} in layer {layer} on, were dropped",
                                    image.reference, link.path
                                ),
                            )
                            .with_image(image.reference.clone())
                            .with_digest(image.layers[layer].digest.clone())
                            .with_path(link.path.clone()),
                        );
                    }
                    for target in targets.into_iter().take(room) {
                        let copy = LayerFinding {
                            path: crate::layer::relink(&target.path, &target.fs_path, &link.path),
                            fs_path: link.fs_path.clone(),
                            entry_index: link.entry_index,
                            ..target.clone()
                        };
                        findings.push(layer_finding(image, &indexes, reports, layer, &copy));
                    }
                }
                None => gaps.push(
                    Gap::new(
                        GapKind::HardlinkTargetMissing,
                        Severity::Warning,
                        format!(
                            "{}: hardlink {:?} in layer {layer} names {:?}, which no layer at or below it contains",
                            image.reference, link.path, link.target
                        ),
                    )
                    .with_image(image.reference.clone())
                    .with_digest(image.layers[layer].digest.clone())
                    .with_path(link.path.clone()),
                ),
            }
        }
    }
    (findings, gaps)
}

/// Finds the findings of the newest file at `target` in a layer below
/// `layer`. `None` when no lower layer has the path at all. When that entry
/// is itself a hardlink into a still lower layer, its target is followed;
/// each step goes strictly lower, so the recursion ends.
fn resolve_link(
    reports: &[Arc<LayerReport>],
    layer: usize,
    target: &str,
) -> Option<Vec<LayerFinding>> {
    for lower in (0..layer).rev() {
        let report = &reports[lower];
        let Some(last) = report
            .entries
            .iter()
            .rposition(|entry| entry.path == target)
        else {
            continue;
        };
        if let Some(link) = report
            .pending_hardlinks
            .iter()
            .find(|link| link.entry_index == last)
        {
            return resolve_link(reports, lower, &link.target);
        }
        return Some(
            report
                .findings
                .iter()
                .filter(|found| found.entry_index == last)
                .cloned()
                .collect(),
        );
    }
    None
}

fn layer_finding(
    image: &ImageInfo,
    indexes: &[LayerIndex],
    reports: &[Arc<LayerReport>],
    layer: usize,
    found: &LayerFinding,
) -> Finding {
    let hidden = hidden_by(indexes, reports, layer, found.entry_index, &found.fs_path);
    let described = &image.layers[layer];
    Finding {
        rule: found.rule.clone(),
        kind: found.kind.clone(),
        fingerprint: found.fingerprint.clone(),
        redacted: found.redacted.clone(),
        image: image.reference.clone(),
        manifest_digest: image.manifest_digest.clone(),
        platform: image.platform.clone(),
        location: Location::Layer {
            layer_index: layer,
            layer_digest: described.digest.clone(),
            diff_id: described
                .info
                .diff_id
                .clone()
                .or_else(|| reports[layer].actual_diff_id.clone()),
            path: found.path.clone(),
            line: found.line,
            present_in_final_fs: hidden.is_none(),
            removed_by_layer: hidden.as_ref().map(|h| h.0),
            removed_how: hidden.as_ref().map(|h| h.1),
            removed_by_entry: hidden.map(|h| h.2),
        },
        encoding: found.encoding,
        secret: found.secret.clone(),
    }
}
