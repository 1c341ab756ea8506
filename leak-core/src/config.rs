//! Scanning an image config: `Env`, labels, history `created_by` (where
//! build arguments appear), `Cmd`, `Entrypoint`, and the annotations of the
//! manifest and indexes above it.

use oci_spec::image::ImageConfiguration;

use crate::detect::Detector;
use crate::file::FileScanner;
use crate::image::{ImageInfo, platform_string};
use crate::options::ScanOptions;
use crate::report::{Finding, Gap, GapKind, Location, Severity};

pub(crate) fn scan_config(
    detector: &Detector,
    options: &ScanOptions,
    image: &mut ImageInfo,
    bytes: &[u8],
) -> (Vec<Finding>, Vec<Gap>) {
    let files = FileScanner::new(detector, options);
    let mut findings = Vec::new();
    let mut gaps = Vec::new();
    let mut scan = |text: &str, location: Location| {
        let result = files.scan(&mut text.as_bytes(), "", 0);
        for found in result.findings {
            findings.push(Finding {
                rule: found.rule,
                kind: found.kind,
                fingerprint: found.fingerprint,
                redacted: found.redacted,
                image: image.reference.clone(),
                manifest_digest: image.manifest_digest.clone(),
                platform: image.platform.clone(),
                location: location.clone(),
                encoding: found.encoding,
                secret: found.secret,
            });
        }
    };

    for (key, value, digest) in &image.annotations {
        scan(
            &format!("{key}={value}"),
            Location::Annotation {
                key: key.clone(),
                digest: digest.clone(),
            },
        );
    }

    let config: ImageConfiguration = match serde_json::from_slice(bytes) {
        Ok(config) => config,
        Err(error) => {
            gaps.push(
                Gap::new(
                    GapKind::ConfigUnreadable,
                    Severity::Error,
                    format!(
                        "{}: config {} is not a valid image config: {error}",
                        image.reference, image.config_blob
                    ),
                )
                .with_image(image.reference.clone())
                .with_digest(
                    image
                        .config_digest
                        .clone()
                        .unwrap_or_else(|| image.config_blob.clone()),
                ),
            );
            return (dedupe(findings), gaps);
        }
    };

    if let Some(settings) = config.config() {
        for entry in settings.env().iter().flatten() {
            let key = entry.split_once('=').map(|(key, _)| key).unwrap_or(entry);
            scan(
                entry,
                Location::Env {
                    key: key.to_owned(),
                },
            );
        }
        let mut labels: Vec<_> = settings.labels().iter().flatten().collect();
        labels.sort();
        for (key, value) in labels {
            scan(
                &format!("{key}={value}"),
                Location::Label { key: key.clone() },
            );
        }
        if let Some(cmd) = settings.cmd() {
            scan(&cmd.join(" "), Location::Cmd);
        }
        if let Some(entrypoint) = settings.entrypoint() {
            scan(&entrypoint.join(" "), Location::Entrypoint);
        }
    }

    let mut layer_index = 0usize;
    for (index, step) in config.history().iter().flatten().enumerate() {
        let empty = step.empty_layer().unwrap_or(false);
        let created = if empty { None } else { Some(layer_index) };
        if !empty {
            layer_index += 1;
        }
        if let Some(created_by) = step.created_by() {
            scan(
                created_by,
                Location::History {
                    index,
                    layer_index: created,
                },
            );
        }
    }

    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != image.layers.len() {
        gaps.push(
            Gap::new(
                GapKind::ConfigUnreadable,
                Severity::Warning,
                format!(
                    "{}: config lists {} diff IDs for {} layers; diff IDs were not checked",
                    image.reference,
                    diff_ids.len(),
                    image.layers.len()
                ),
            )
            .with_image(image.reference.clone()),
        );
    } else {
        for (layer, diff_id) in image.layers.iter_mut().zip(diff_ids) {
            if layer.info.diff_id.is_none() {
                layer.info.diff_id = Some(diff_id.clone());
            }
        }
    }
    if image.platform.is_none() {
        image.platform = platform_string(
            &config.os().to_string(),
            &config.architecture().to_string(),
            config.variant().as_deref(),
        );
        for finding in &mut findings {
            finding.platform.clone_from(&image.platform);
        }
    }
    (dedupe(findings), gaps)
}

/// Keeps one finding per secret and place.
fn dedupe(findings: Vec<Finding>) -> Vec<Finding> {
    let mut kept: Vec<Finding> = Vec::with_capacity(findings.len());
    for finding in findings {
        let duplicate = kept.iter().any(|other| {
            other.fingerprint == finding.fingerprint && other.location == finding.location
        });
        if !duplicate {
            kept.push(finding);
        }
    }
    kept
}
