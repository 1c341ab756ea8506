//! The exposure audit: every image of every tag of the chosen repositories,
//! scanned with each unique layer read once, and reported per finding with
//! every repository, tag, manifest digest and platform that carries it.

mod cache;
mod pipeline;
mod report;
mod single;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use leak_core::{
    Fingerprint, Gap, GapKind, ImageReport, KnownValues, RuleSet, ScanOptions, Scanner, Severity,
};
use oci_spec::image::Digest;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::RegistryClient;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestKind, ResolvedImages};
use cache::{LayerCache, scanner_key};
use pipeline::{LayerCounters, Pipeline, PreparedImage};

pub use report::{AuditFinding, AuditReport, AuditStats, Carrier, Exposure, LayerExposure};
pub use single::{scan_image_reference, scan_reference};

/// Default number of layers downloaded and scanned at once.
const DEFAULT_LAYER_CONCURRENCY: usize = 4;

/// Progress of an audit, for a progress bar.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AuditEvent {
    /// The repositories to audit are known.
    Repositories {
        /// How many.
        count: usize,
    },
    /// One repository's tags were listed.
    Tags {
        /// The repository.
        repository: String,
        /// How many tags it has.
        count: usize,
    },
    /// One tag was resolved to its images.
    TagResolved {
        /// The repository.
        repository: String,
    },
    /// The distinct images to scan are known.
    ImagesQueued {
        /// How many.
        count: usize,
    },
    /// The distinct layers to scan are known.
    LayersQueued {
        /// How many.
        count: usize,
    },
    /// One layer was scanned or served from the cache.
    LayerDone {
        /// The layer digest.
        digest: String,
        /// True when no download was needed.
        from_cache: bool,
    },
    /// One image's report was assembled.
    ImageDone {
        /// The image reference.
        reference: String,
    },
}

/// Receives [`AuditEvent`]s while an audit runs.
pub trait AuditProgress: Send + Sync + std::fmt::Debug {
    /// Called for each event, from any task.
    fn event(&self, event: &AuditEvent);
}

/// Builder for [`Audit`].
#[derive(Debug)]
pub struct AuditBuilder {
    client: RegistryClient,
    repositories: Option<Vec<String>>,
    known: KnownValues,
    rules: Option<RuleSet>,
    builtin_rules: bool,
    options: ScanOptions,
    fingerprints: Vec<Fingerprint>,
    leaked_layers: Vec<Digest>,
    cache_dir: Option<PathBuf>,
    layer_concurrency: usize,
    progress: Option<Arc<dyn AuditProgress>>,
}

/// A configured exposure audit of one registry.
#[derive(Debug)]
pub struct Audit {
    pipeline: Arc<Pipeline>,
    repositories: Option<Vec<String>>,
    fingerprints: HashSet<Fingerprint>,
    leaked_layers: Vec<Digest>,
}

impl AuditBuilder {
    /// Starts an audit of the whole catalog with the built-in rules.
    pub fn new(client: RegistryClient) -> Self {
        AuditBuilder {
            client,
            repositories: None,
            known: KnownValues::new(),
            rules: None,
            builtin_rules: true,
            options: ScanOptions::default(),
            fingerprints: Vec::new(),
            leaked_layers: Vec::new(),
            cache_dir: None,
            layer_concurrency: DEFAULT_LAYER_CONCURRENCY,
            progress: None,
        }
    }

    /// Audits only these repositories instead of the catalog.
    pub fn with_repositories(mut self, repositories: Vec<String>) -> Self {
        self.repositories = Some(repositories);
        self
    }

    /// Searches for these known leaked values as well.
    pub fn with_known_values(mut self, known: KnownValues) -> Self {
        self.known = known;
        self
    }

    /// Adds rules to the built-in ones.
    pub fn with_rules(mut self, rules: RuleSet) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Turns the built-in rules on or off (on by default).
    pub fn with_builtin_rules(mut self, enabled: bool) -> Self {
        self.builtin_rules = enabled;
        self
    }

    /// Sets the scan bounds.
    pub fn with_options(mut self, options: ScanOptions) -> Self {
        self.options = options;
        self
    }

    /// Reports only findings with these fingerprints, such as those of an earlier scan.
    pub fn with_fingerprints(mut self, fingerprints: Vec<Fingerprint>) -> Self {
        self.fingerprints = fingerprints;
        self
    }

    /// Also reports every image that contains one of these layer digests.
    pub fn with_leaked_layers(mut self, layers: Vec<Digest>) -> Self {
        self.leaked_layers = layers;
        self
    }

    /// Keeps complete layer reports in this directory, so a second audit
    /// downloads no layer it has scanned with the same rules and options.
    pub fn with_cache_dir(mut self, directory: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(directory.into());
        self
    }

    /// Sets how many layers are downloaded and scanned at once (default 4).
    pub fn with_layer_concurrency(mut self, layers: usize) -> Self {
        self.layer_concurrency = layers;
        self
    }

    /// Sends progress events to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn AuditProgress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Compiles the scanner and builds the audit.
    ///
    /// # Errors
    ///
    /// [`Error::Scanner`] when the rules do not compile,
    /// [`Error::InvalidConfig`] for a zero layer concurrency.
    pub fn build(self) -> Result<Audit> {
        if self.layer_concurrency == 0 {
            return Err(Error::InvalidConfig {
                reason: "layer concurrency must be at least 1".to_owned(),
            });
        }
        let mut builder = Scanner::builder()
            .builtin_rules(self.builtin_rules)
            .known_values(self.known.clone())
            .options(self.options.clone());
        if let Some(rules) = self.rules {
            builder = builder.rules(rules);
        }
        let scanner = builder
            .build()
            .map_err(|source| Error::Scanner { source })?;
        let key = scanner_key(scanner.detector().rules(), &self.known, &self.options);
        let pipeline = Pipeline {
            client: self.client,
            scanner: Arc::new(scanner),
            cache: Arc::new(LayerCache::new(key, self.cache_dir)),
            counters: Arc::new(LayerCounters::default()),
            layer_limit: Arc::new(Semaphore::new(self.layer_concurrency)),
            progress: self.progress,
        };
        Ok(Audit {
            pipeline: Arc::new(pipeline),
            repositories: self.repositories,
            fingerprints: self.fingerprints.into_iter().collect(),
            leaked_layers: self.leaked_layers,
        })
    }
}

/// One image manifest and the repositories that reach it.
#[derive(Debug)]
struct ImageEntry {
    manifest: Arc<Manifest>,
    platform: Option<String>,
    carriers: BTreeMap<String, RepositoryCarrier>,
}

/// The tags, indexes and platform through which one repository reaches an image manifest.
#[derive(Debug, Default)]
struct RepositoryCarrier {
    tags: BTreeSet<String>,
    index_digests: BTreeSet<String>,
    /// The platform of the index entry, when an index leads to the image.
    platform: Option<String>,
}

/// The repositories, tags and images found by enumeration.
#[derive(Debug, Default)]
struct Inventory {
    repositories: usize,
    tags: usize,
    attestations_skipped: usize,
    images: BTreeMap<String, ImageEntry>,
    gaps: Vec<Gap>,
}

impl Audit {
    /// Starts an [`AuditBuilder`].
    pub fn builder(client: RegistryClient) -> AuditBuilder {
        AuditBuilder::new(client)
    }

    /// Returns the hash of the rules, known values and options that keys the layer cache.
    pub fn cache_key(&self) -> &str {
        self.pipeline.cache.key()
    }

    /// Runs the audit.
    ///
    /// A tag that disappears or cannot be read during the audit becomes a
    /// coverage gap; other registry errors stop the audit.
    ///
    /// # Errors
    ///
    /// [`Error::CatalogUnavailable`] when no repositories were named and the
    /// registry has no catalog, access and transport errors, and
    /// [`Error::Cache`] when the on-disk cache cannot be written.
    pub async fn run(&self) -> Result<AuditReport> {
        let inventory = self.enumerate().await?;
        let prepared = self.prepare_images(&inventory).await?;
        let layers = self.pipeline.scan_layers(&prepared).await?;
        let mut report = AuditReport {
            registry: self.pipeline.client.registry().to_owned(),
            leaked_layers: self.layer_exposures(&inventory),
            ..AuditReport::default()
        };
        report.coverage.gaps.extend(inventory.gaps.iter().cloned());
        let mut exposures: BTreeMap<(String, String), Exposure> = BTreeMap::new();
        for image in prepared {
            let digest = image.info.manifest_digest.clone().unwrap_or_default();
            let image_report = self.pipeline.assemble(image, &layers);
            let Some(entry) = inventory.images.get(&digest) else {
                continue;
            };
            self.record_image(entry, image_report, &mut report, &mut exposures);
        }
        report.exposures = exposures.into_values().collect();
        report.coverage.complete = is_complete(&report.coverage);
        report.stats = self.stats(&inventory, layers.len());
        Ok(report)
    }

    async fn enumerate(&self) -> Result<Inventory> {
        let client = &self.pipeline.client;
        let mut repositories = match &self.repositories {
            Some(named) => named.clone(),
            None => client.catalog().await?,
        };
        repositories.sort();
        repositories.dedup();
        self.pipeline.emit(AuditEvent::Repositories {
            count: repositories.len(),
        });
        let mut inventory = Inventory {
            repositories: repositories.len(),
            ..Inventory::default()
        };
        for repository in &repositories {
            let mut tags = client.tags(repository).await?;
            tags.sort();
            inventory.tags += tags.len();
            self.pipeline.emit(AuditEvent::Tags {
                repository: repository.clone(),
                count: tags.len(),
            });
            let mut tasks = JoinSet::new();
            for tag in tags {
                let client = client.clone();
                let repository = repository.clone();
                tasks.spawn(async move {
                    let resolved = client.resolve_images(&repository, &tag).await;
                    (tag, resolved)
                });
            }
            while let Some(joined) = tasks.join_next().await {
                let (tag, resolved) = joined.map_err(|error| Error::Task {
                    what: format!("resolving tags of {repository}"),
                    reason: error.to_string(),
                })?;
                self.pipeline.emit(AuditEvent::TagResolved {
                    repository: repository.clone(),
                });
                match resolved {
                    Ok(resolved) => inventory.add(repository, &tag, resolved),
                    Err(
                        error @ (Error::NotFound { .. }
                        | Error::InvalidManifest { .. }
                        | Error::DigestMismatch { .. }),
                    ) => {
                        tracing::warn!(registry = %client.registry(), repository, tag, %error, "skipping unreadable tag");
                        inventory.gaps.push(Gap::new(
                            GapKind::ManifestUnreadable,
                            Severity::Error,
                            format!("{repository}:{tag}: {error}"),
                        ));
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(inventory)
    }

    async fn prepare_images(&self, inventory: &Inventory) -> Result<Vec<PreparedImage>> {
        self.pipeline.emit(AuditEvent::ImagesQueued {
            count: inventory.images.len(),
        });
        let mut tasks = JoinSet::new();
        for entry in inventory.images.values() {
            let Some((repository, carrier)) = entry.carriers.iter().next() else {
                continue;
            };
            let reference = image_reference(
                self.pipeline.client.registry(),
                repository,
                carrier.tags.iter().next(),
                &entry.manifest.digest,
            );
            let pipeline = self.pipeline.clone();
            let repository = repository.clone();
            let manifest = entry.manifest.clone();
            let platform = entry.platform.clone();
            tasks.spawn(async move {
                pipeline
                    .prepare(&repository, &manifest, platform, reference)
                    .await
            });
        }
        let mut prepared = Vec::with_capacity(inventory.images.len());
        while let Some(joined) = tasks.join_next().await {
            prepared.push(joined.map_err(|error| Error::Task {
                what: "scanning image configs".to_owned(),
                reason: error.to_string(),
            })??);
        }
        prepared.sort_by(|a, b| a.info.manifest_digest.cmp(&b.info.manifest_digest));
        Ok(prepared)
    }

    fn record_image(
        &self,
        entry: &ImageEntry,
        image_report: ImageReport,
        report: &mut AuditReport,
        exposures: &mut BTreeMap<(String, String), Exposure>,
    ) {
        let carriers = entry.carrier_list();
        report.coverage.images.push(image_report.coverage);
        report.coverage.gaps.extend(image_report.gaps);
        for finding in image_report.findings {
            if !self.fingerprints.is_empty() && !self.fingerprints.contains(&finding.fingerprint) {
                continue;
            }
            let key = (finding.fingerprint.to_string(), finding.rule.clone());
            let exposure = exposures.entry(key).or_insert_with(|| Exposure {
                fingerprint: finding.fingerprint.clone(),
                kind: finding.kind.clone(),
                rule: finding.rule.clone(),
                redacted: finding.redacted.clone(),
                carriers: Vec::new(),
            });
            for carrier in &carriers {
                if !exposure.carriers.contains(carrier) {
                    exposure.carriers.push(carrier.clone());
                    exposure.carriers.sort();
                }
                let mut carried = finding.clone();
                carried.image = image_reference(
                    &report.registry,
                    &carrier.repository,
                    carrier.tags.first(),
                    &entry.manifest.digest,
                );
                report.findings.push(AuditFinding {
                    finding: carried,
                    repository: carrier.repository.clone(),
                    tags: carrier.tags.clone(),
                });
            }
        }
    }

    fn layer_exposures(&self, inventory: &Inventory) -> Vec<LayerExposure> {
        self.leaked_layers
            .iter()
            .map(|layer| {
                let mut carriers: Vec<Carrier> = inventory
                    .images
                    .values()
                    .filter(|entry| entry.has_layer(layer))
                    .flat_map(ImageEntry::carrier_list)
                    .collect();
                carriers.sort();
                LayerExposure {
                    layer_digest: layer.to_string(),
                    carriers,
                }
            })
            .collect()
    }

    fn stats(&self, inventory: &Inventory, unique_layers: usize) -> AuditStats {
        let counters = &self.pipeline.counters;
        AuditStats {
            repositories: inventory.repositories,
            tags: inventory.tags,
            images: inventory.images.len(),
            attestations_skipped: inventory.attestations_skipped,
            unique_layers,
            layers_scanned: counters.scanned.load(Ordering::Relaxed),
            layers_from_cache: counters.from_cache.load(Ordering::Relaxed),
            layers_from_disk_cache: counters.from_disk.load(Ordering::Relaxed),
            requests: self.pipeline.client.stats(),
        }
    }
}

impl Inventory {
    fn add(&mut self, repository: &str, tag: &str, resolved: ResolvedImages) {
        self.attestations_skipped += resolved.attestations_skipped;
        for image in resolved.images {
            let entry = self
                .images
                .entry(image.manifest.digest.to_string())
                .or_insert_with(|| ImageEntry {
                    manifest: image.manifest.clone(),
                    platform: image.platform.clone(),
                    carriers: BTreeMap::new(),
                });
            if entry.platform.is_none() {
                entry.platform = image.platform.clone();
            }
            let carrier = entry.carriers.entry(repository.to_owned()).or_default();
            carrier.tags.insert(tag.to_owned());
            if let Some(index) = image.index_digest {
                carrier.index_digests.insert(index.to_string());
            }
            if carrier.platform.is_none() {
                carrier.platform = image.platform.clone();
            }
        }
    }
}

impl ImageEntry {
    fn carrier_list(&self) -> Vec<Carrier> {
        self.carriers
            .iter()
            .map(|(repository, carrier)| Carrier {
                repository: repository.clone(),
                tags: carrier.tags.iter().cloned().collect(),
                manifest_digest: self.manifest.digest.to_string(),
                platform: carrier.platform.clone(),
                index_digests: carrier.index_digests.iter().cloned().collect(),
            })
            .collect()
    }

    fn has_layer(&self, layer: &Digest) -> bool {
        match &self.manifest.kind {
            ManifestKind::Image(image) => image
                .layers()
                .iter()
                .any(|descriptor| descriptor.digest() == layer),
            ManifestKind::Index(_) => false,
        }
    }
}

fn image_reference(
    registry: &str,
    repository: &str,
    tag: Option<&String>,
    digest: &Digest,
) -> String {
    match tag {
        Some(tag) => format!("{registry}/{repository}:{tag}"),
        None => format!("{registry}/{repository}@{digest}"),
    }
}

/// Returns true when every image was scanned completely and no gap is an error.
fn is_complete(coverage: &leak_core::Coverage) -> bool {
    coverage.images.iter().all(|image| !image.partial)
        && !coverage
            .gaps
            .iter()
            .any(|gap| gap.severity == Severity::Error)
}
