//! Scanning registry images: fetch and scan each config, scan each unique
//! layer once (streamed from the registry on a blocking thread), and
//! assemble per-image reports from the shared layer reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use leak_core::{
    Finding, Gap, GapKind, ImageInfo, ImageLayer, ImageReport, LayerInfo, LayerReport, Scanner,
    Severity,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::cache::{CacheHit, LayerCache};
use super::{AuditEvent, AuditProgress};
use crate::client::RegistryClient;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestKind};

/// An image whose config was scanned, waiting for its layers.
#[derive(Debug)]
pub(crate) struct PreparedImage {
    pub(crate) info: ImageInfo,
    pub(crate) repository: String,
    pub(crate) layer_sizes: Vec<u64>,
    pub(crate) config_findings: Vec<Finding>,
    pub(crate) gaps: Vec<Gap>,
}

/// One unique layer to scan, with a repository that has it.
#[derive(Clone, Debug)]
struct LayerJob {
    repository: String,
    info: LayerInfo,
    size: u64,
}

/// Layer counters of one audit or scan.
#[derive(Debug, Default)]
pub(crate) struct LayerCounters {
    pub(crate) scanned: AtomicUsize,
    pub(crate) from_cache: AtomicUsize,
    pub(crate) from_disk: AtomicUsize,
}

/// Shared state for scanning the images of one registry.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) client: RegistryClient,
    pub(crate) scanner: Arc<Scanner>,
    pub(crate) cache: Arc<LayerCache>,
    pub(crate) counters: Arc<LayerCounters>,
    pub(crate) layer_limit: Arc<Semaphore>,
    pub(crate) progress: Option<Arc<dyn AuditProgress>>,
}

impl Pipeline {
    /// Fetches and scans the config of an image manifest.
    pub(crate) async fn prepare(
        &self,
        repository: &str,
        manifest: &Manifest,
        platform: Option<String>,
        reference: String,
    ) -> Result<PreparedImage> {
        let ManifestKind::Image(image) = &manifest.kind else {
            return Err(Error::InvalidManifest {
                registry: self.client.registry().to_owned(),
                repository: repository.to_owned(),
                reference: manifest.digest.to_string(),
                reason: "expected an image manifest, got an index".to_owned(),
            });
        };
        let manifest_digest = manifest.digest.to_string();
        let layers = image
            .layers()
            .iter()
            .map(|layer| ImageLayer {
                info: LayerInfo {
                    digest: Some(layer.digest().to_string()),
                    diff_id: None,
                    name: layer.digest().to_string(),
                },
                digest: layer.digest().to_string(),
                blob: layer.digest().to_string(),
            })
            .collect();
        let annotations = image
            .annotations()
            .iter()
            .flatten()
            .map(|(key, value)| (key.clone(), value.clone(), Some(manifest_digest.clone())))
            .collect();
        let config = image.config();
        let mut info = ImageInfo {
            reference,
            source: format!("registry {}", self.client.registry()),
            manifest_digest: Some(manifest_digest),
            platform,
            config_blob: config.digest().to_string(),
            config_digest: Some(config.digest().to_string()),
            layers,
            annotations,
        };
        let config_bytes = self
            .client
            .blob_bytes(repository, config.digest(), Some(config.size()))
            .await;
        let (config_findings, gaps) = match config_bytes {
            Ok(bytes) => self.scanner.scan_config(&mut info, &bytes),
            Err(error) => {
                tracing::warn!(registry = %self.client.registry(), repository, digest = %config.digest(), %error, "config blob unreadable; scanning layers only");
                let gap = Gap::new(
                    GapKind::ConfigUnreadable,
                    Severity::Error,
                    format!("{}: {error}", info.reference),
                )
                .with_digest(config.digest().to_string());
                (Vec::new(), vec![gap])
            }
        };
        Ok(PreparedImage {
            info,
            repository: repository.to_owned(),
            layer_sizes: image.layers().iter().map(|layer| layer.size()).collect(),
            config_findings,
            gaps,
        })
    }

    /// Scans every distinct layer of `images` once, reusing cached reports.
    pub(crate) async fn scan_layers(
        self: &Arc<Self>,
        images: &[PreparedImage],
    ) -> Result<HashMap<String, Arc<LayerReport>>> {
        let jobs = unique_layers(images);
        self.emit(AuditEvent::LayersQueued { count: jobs.len() });
        let mut reports = HashMap::with_capacity(jobs.len());
        let mut tasks = JoinSet::new();
        for (digest, job) in jobs {
            let pipeline = self.clone();
            tasks.spawn(async move {
                let report = pipeline.layer_report(&digest, job).await;
                (digest, report)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (digest, report) = joined.map_err(|error| Error::Task {
                what: "scanning a layer".to_owned(),
                reason: error.to_string(),
            })?;
            reports.insert(digest, report?);
        }
        Ok(reports)
    }

    /// Builds the image report from its config findings and layer reports.
    pub(crate) fn assemble(
        &self,
        image: PreparedImage,
        layers: &HashMap<String, Arc<LayerReport>>,
    ) -> ImageReport {
        let reports: Vec<Arc<LayerReport>> = image
            .info
            .layers
            .iter()
            .map(|layer| layers.get(&layer.digest).cloned().unwrap_or_default())
            .collect();
        let report =
            self.scanner
                .assemble_image(&image.info, image.config_findings, image.gaps, &reports);
        self.emit(AuditEvent::ImageDone {
            reference: image.info.reference.clone(),
        });
        report
    }

    async fn layer_report(&self, digest: &str, job: LayerJob) -> Result<Arc<LayerReport>> {
        if let Some((report, hit)) = self.cache.get(digest)? {
            self.counters.from_cache.fetch_add(1, Ordering::Relaxed);
            if hit == CacheHit::Disk {
                self.counters.from_disk.fetch_add(1, Ordering::Relaxed);
            }
            self.emit(AuditEvent::LayerDone {
                digest: digest.to_owned(),
                from_cache: true,
            });
            return Ok(report);
        }
        let _permit = self
            .layer_limit
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Task {
                what: format!("scanning layer {digest}"),
                reason: "the layer limit was closed".to_owned(),
            })?;
        let report = Arc::new(self.download_and_scan(digest, job).await?);
        if !report.complete {
            tracing::warn!(registry = %self.client.registry(), digest, gaps = report.gaps.len(), "layer scanned incompletely");
        }
        self.cache.insert(digest, report.clone())?;
        self.counters.scanned.fetch_add(1, Ordering::Relaxed);
        self.emit(AuditEvent::LayerDone {
            digest: digest.to_owned(),
            from_cache: false,
        });
        Ok(report)
    }

    /// Streams the blob into the synchronous scanner on a blocking thread,
    /// so decompression and matching overlap the download.
    async fn download_and_scan(&self, digest: &str, job: LayerJob) -> Result<LayerReport> {
        let parsed = crate::digest::parse_digest(digest)?;
        let mut reader = self
            .client
            .blob_reader(&job.repository, &parsed, Some(job.size));
        let scanner = self.scanner.clone();
        tokio::task::spawn_blocking(move || scanner.scan_layer(&mut reader, &job.info))
            .await
            .map_err(|error| Error::Task {
                what: format!("scanning layer {digest}"),
                reason: error.to_string(),
            })
    }

    pub(crate) fn emit(&self, event: AuditEvent) {
        if let Some(progress) = &self.progress {
            progress.event(&event);
        }
    }
}

/// Collects each distinct layer digest once, in a stable order.
fn unique_layers(images: &[PreparedImage]) -> BTreeMap<String, LayerJob> {
    let mut jobs = BTreeMap::new();
    for image in images {
        for (layer, size) in image.info.layers.iter().zip(&image.layer_sizes) {
            jobs.entry(layer.digest.clone())
                .or_insert_with(|| LayerJob {
                    repository: image.repository.clone(),
                    info: layer.info.clone(),
                    size: *size,
                });
        }
    }
    jobs
}
