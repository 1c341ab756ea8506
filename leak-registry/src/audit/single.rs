//! Scanning one registry image reference, every platform of an index
//! included, into a scan report.

use std::sync::Arc;

use leak_core::{Gap, GapKind, Report, Scanner, Severity};
use tokio::sync::Semaphore;

use super::cache::LayerCache;
use super::pipeline::{LayerCounters, Pipeline, PreparedImage};
use super::{DEFAULT_LAYER_CONCURRENCY, is_complete};
use crate::client::RegistryClient;
use crate::error::{Error, Result};
use crate::manifest::ResolvedImages;
use crate::reference::Reference;

/// Parses `REGISTRY/REPOSITORY[:TAG][@DIGEST]`, builds a client for its
/// registry with credentials from the docker config (`DOCKER_CONFIG`), and
/// scans it with [`scan_reference`].
///
/// `insecure` allows plain `http://`, as for a loopback registry.
///
/// # Errors
///
/// [`Error::InvalidReference`] for text that is not a registry reference,
/// the docker-config errors, and the errors of [`scan_reference`].
pub async fn scan_image_reference(
    text: &str,
    insecure: bool,
    scanner: Arc<Scanner>,
) -> Result<Report> {
    let reference = Reference::parse(text)?;
    let client = RegistryClient::builder(reference.registry())
        .with_insecure(insecure)
        .with_docker_config(crate::auth::DockerConfig::from_env()?)
        .build()?;
    scan_reference(&client, &reference, scanner).await
}

/// Scans one registry image (`REGISTRY/REPOSITORY:TAG` or `@sha256:...`),
/// every platform of an index included, and returns the scan report.
///
/// The client must be for the reference's registry. Platforms the scanner
/// does not select and attestation manifests are reported as coverage gaps.
///
/// # Errors
///
/// [`Error::InvalidConfig`] when the client is for another registry, and
/// the registry errors of resolving the reference.
pub async fn scan_reference(
    client: &RegistryClient,
    reference: &Reference,
    scanner: Arc<Scanner>,
) -> Result<Report> {
    if client.registry() != reference.registry() {
        return Err(Error::InvalidConfig {
            reason: format!(
                "the client is for registry {}, not {}",
                client.registry(),
                reference.registry()
            ),
        });
    }
    let resolved = client
        .resolve_images(reference.repository(), &reference.manifest_reference())
        .await?;
    let pipeline = Arc::new(Pipeline {
        client: client.clone(),
        scanner,
        cache: Arc::new(LayerCache::new(String::new(), None)),
        counters: Arc::new(LayerCounters::default()),
        layer_limit: Arc::new(Semaphore::new(DEFAULT_LAYER_CONCURRENCY)),
        progress: None,
    });
    let mut report = Report::default();
    let prepared = prepare_selected(&pipeline, reference, resolved, &mut report).await?;

    let layers = pipeline.scan_layers(&prepared).await?;
    for image in prepared {
        let image_report = pipeline.assemble(image, &layers);
        report.findings.extend(image_report.findings);
        report.coverage.images.push(image_report.coverage);
        report.coverage.gaps.extend(image_report.gaps);
    }
    report.coverage.complete = is_complete(&report.coverage);
    Ok(report)
}

/// Scans the configs of the images the scanner selects, and records the
/// skipped platforms and attestation manifests as gaps.
async fn prepare_selected(
    pipeline: &Pipeline,
    reference: &Reference,
    resolved: ResolvedImages,
    report: &mut Report,
) -> Result<Vec<PreparedImage>> {
    if resolved.attestations_skipped > 0 {
        report.coverage.gaps.push(Gap::new(
            GapKind::AttestationSkipped,
            Severity::Info,
            format!(
                "{reference}: {} attestation manifest(s) skipped",
                resolved.attestations_skipped
            ),
        ));
    }
    let mut prepared = Vec::new();
    for image in resolved.images {
        let platform = image.platform.clone();
        if !pipeline.scanner.selects_platform(platform.as_deref()) {
            report.coverage.gaps.push(Gap::new(
                GapKind::PlatformNotSelected,
                Severity::Info,
                format!(
                    "{reference}: platform {} was not selected",
                    platform.as_deref().unwrap_or("unknown")
                ),
            ));
            continue;
        }
        let image = pipeline
            .prepare(
                reference.repository(),
                &image.manifest,
                platform,
                reference.to_string(),
            )
            .await?;
        prepared.push(image);
    }
    Ok(prepared)
}
