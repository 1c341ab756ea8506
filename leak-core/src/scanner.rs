//! The scanner: builder, image inputs on disk, and the pieces a registry
//! client reuses (one layer, one config, assembling an image).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::scan_config;
use crate::detect::{Detector, DetectorError, KnownValues};
use crate::image::{self, ImageInfo, PlatformFilter, Store};
use crate::layer::{LayerInfo, LayerReport, LayerScanner};
use crate::options::ScanOptions;
use crate::report::{Coverage, Finding, Gap, GapKind, ImageCoverage, Report, Severity};
use crate::rules::{BUILTIN_RULES, RuleError, RuleSet, load_gitleaks_toml};

/// Error that stops a whole scan. Problems inside an image (a bad layer, a
/// corrupt entry) are not errors: they are gaps in the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The input path could not be opened as an image.
    #[error("cannot open image input {path}: {message}")]
    Input {
        /// The path given.
        path: PathBuf,
        /// Description of the failure.
        message: String,
    },
    /// A rules file could not be loaded.
    #[error(transparent)]
    Rules(#[from] RuleError),
    /// A known-values file could not be read.
    #[error("cannot read known values file {path}: {source}")]
    KnownValues {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The detector could not be built.
    #[error(transparent)]
    Detector(#[from] DetectorError),
    /// The platform filter is not `os/architecture[/variant]`.
    #[error("invalid platform {0:?}: expected OS/ARCH or OS/ARCH/VARIANT, for example linux/amd64")]
    Platform(String),
}

/// Builds a [`Scanner`].
#[derive(Debug, Default)]
pub struct ScannerBuilder {
    builtin: Option<bool>,
    rule_files: Vec<PathBuf>,
    rules: Vec<RuleSet>,
    known_files: Vec<PathBuf>,
    known: KnownValues,
    platform: Option<String>,
    options: ScanOptions,
}

impl ScannerBuilder {
    /// Turns the built-in rules on or off (on by default).
    pub fn builtin_rules(mut self, enabled: bool) -> Self {
        self.builtin = Some(enabled);
        self
    }

    /// Adds rules from a gitleaks-style TOML file, loaded at build time.
    pub fn rules_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.rule_files.push(path.into());
        self
    }

    /// Adds compiled rules.
    pub fn rules(mut self, rules: RuleSet) -> Self {
        self.rules.push(rules);
        self
    }

    /// Adds known leaked values from a file, one per line, loaded at build
    /// time.
    pub fn known_values_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.known_files.push(path.into());
        self
    }

    /// Adds known leaked values.
    pub fn known_values(mut self, values: KnownValues) -> Self {
        for value in values_of(values) {
            self.known.add(value);
        }
        self
    }

    /// Scans only images of this platform (`os/architecture[/variant]`).
    pub fn platform(mut self, platform: impl Into<String>) -> Self {
        self.platform = Some(platform.into());
        self
    }

    /// Sets bounds and tuning.
    pub fn options(mut self, options: ScanOptions) -> Self {
        self.options = options;
        self
    }

    /// Loads the files and compiles the detector.
    ///
    /// # Errors
    ///
    /// [`ScanError`] when a file cannot be read, a rule does not compile or
    /// the platform is malformed.
    pub fn build(self) -> Result<Scanner, ScanError> {
        let mut rules = if self.builtin.unwrap_or(true) {
            RuleSet::builtin()
        } else {
            RuleSet::new()
        };
        for path in &self.rule_files {
            let text = std::fs::read_to_string(path).map_err(|error| RuleError::InvalidFile {
                path: path.display().to_string(),
                message: format!("cannot read: {error}"),
            })?;
            let loaded = load_gitleaks_toml(&path.display().to_string(), &text)?;
            // A file with `[extend] useDefault = true` returns the built-in
            // rules too; keep one copy of each.
            for rule in loaded.rules().iter().cloned() {
                let builtin_copy = rules.rules().iter().any(|existing| existing.id == rule.id)
                    && BUILTIN_RULES.iter().any(|builtin| builtin.id == rule.id);
                if !builtin_copy {
                    rules.push(rule)?;
                }
            }
        }
        for set in self.rules {
            rules.extend(set)?;
        }
        let mut known = self.known;
        for path in &self.known_files {
            let bytes = std::fs::read(path).map_err(|source| ScanError::KnownValues {
                path: path.clone(),
                source,
            })?;
            known.add_lines(&bytes);
        }
        let platform = match self.platform {
            Some(text) => Some(PlatformFilter::parse(&text).ok_or(ScanError::Platform(text))?),
            None => None,
        };
        Ok(Scanner {
            detector: Arc::new(Detector::new(rules, &known)?),
            options: self.options,
            platform,
        })
    }
}

fn values_of(values: KnownValues) -> Vec<crate::Secret> {
    values.into_values()
}

/// Scans images for secrets. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Scanner {
    detector: Arc<Detector>,
    options: ScanOptions,
    platform: Option<PlatformFilter>,
}

/// Findings and coverage of one image.
#[derive(Debug, Default)]
pub struct ImageReport {
    /// Findings in the config, manifests and layers.
    pub findings: Vec<Finding>,
    /// Coverage of the image.
    pub coverage: ImageCoverage,
    /// Gaps of the image.
    pub gaps: Vec<Gap>,
}

impl Scanner {
    /// Starts a builder with the built-in rules and default options.
    pub fn builder() -> ScannerBuilder {
        ScannerBuilder::default()
    }

    /// Returns the compiled detector.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Returns the options.
    pub fn options(&self) -> &ScanOptions {
        &self.options
    }

    /// Checks whether an image of `platform` passes the platform filter.
    pub fn selects_platform(&self, platform: Option<&str>) -> bool {
        self.platform
            .as_ref()
            .is_none_or(|filter| filter.matches(platform))
    }

    /// Scans one layer blob. See [`LayerScanner::scan`].
    pub fn scan_layer(&self, raw: &mut dyn Read, info: &LayerInfo) -> LayerReport {
        LayerScanner::new(&self.detector, &self.options).scan(raw, info)
    }

    /// Scans an image's config bytes (Env, labels, history, Cmd, Entrypoint)
    /// and its manifest and index annotations. Also fills in the layers'
    /// diff IDs and the platform from the config when the image lacks them.
    pub fn scan_config(&self, image: &mut ImageInfo, config: &[u8]) -> (Vec<Finding>, Vec<Gap>) {
        scan_config(&self.detector, &self.options, image, config)
    }

    /// Assembles an image's findings from its config findings and its
    /// layers' reports, one per layer in order.
    pub fn assemble_image(
        &self,
        image: &ImageInfo,
        config_findings: Vec<Finding>,
        mut gaps: Vec<Gap>,
        layers: &[Arc<LayerReport>],
    ) -> ImageReport {
        let mut coverage = ImageCoverage {
            image: image.reference.clone(),
            source: image.source.clone(),
            manifest_digest: image.manifest_digest.clone(),
            platform: image.platform.clone(),
            layers_total: image.layers.len(),
            config_scanned: !gaps.iter().any(|gap| gap.kind == GapKind::ConfigUnreadable),
            ..ImageCoverage::default()
        };
        let (mut findings, layer_gaps) =
            crate::assemble::assemble_layers(image, layers, &mut coverage);
        gaps.extend(layer_gaps);
        findings.splice(0..0, config_findings);
        coverage.partial = gaps.iter().any(|gap| gap.severity == Severity::Error)
            || coverage.layers_scanned < coverage.layers_total;
        ImageReport {
            findings,
            coverage,
            gaps,
        }
    }

    /// Scans every image in a docker-archive (plain or compressed) or an
    /// OCI layout (directory or tar).
    ///
    /// # Errors
    ///
    /// [`ScanError::Input`] when the path is not an image input at all.
    /// Problems inside images are gaps in the report.
    pub fn scan_path(&self, path: impl AsRef<Path>) -> Result<Report, ScanError> {
        let path = path.as_ref();
        let input_error = |message: String| ScanError::Input {
            path: path.to_owned(),
            message,
        };
        let store = Store::open(path).map_err(|error| input_error(error.to_string()))?;
        let discovered = image::discover(&store, path).map_err(input_error)?;
        let mut report = Report::default();
        report.coverage.gaps.extend(discovered.gaps);

        let mut images = Vec::new();
        for mut image in discovered.images {
            let (findings, gaps) = match store.read_small(&image.config_blob) {
                Ok(bytes) => self.check_config_digest(&mut image, &bytes),
                Err(error) => (
                    Vec::new(),
                    vec![
                        Gap::new(
                            GapKind::ConfigUnreadable,
                            Severity::Error,
                            format!(
                                "{}: cannot read config {}: {error}",
                                image.reference, image.config_blob
                            ),
                        )
                        .with_image(image.reference.clone()),
                    ],
                ),
            };
            if !self.selects_platform(image.platform.as_deref()) {
                report.coverage.gaps.push(
                    Gap::new(
                        GapKind::PlatformNotSelected,
                        Severity::Info,
                        format!(
                            "{}: platform {} was not selected",
                            image.reference,
                            image.platform.as_deref().unwrap_or("unknown")
                        ),
                    )
                    .with_image(image.reference.clone()),
                );
                continue;
            }
            images.push((image, findings, gaps));
        }

        let layers = self.scan_unique_layers(&store, &images);
        for (image, findings, gaps) in images {
            let reports: Vec<Arc<LayerReport>> = image
                .layers
                .iter()
                .map(|layer| {
                    layers
                        .get(&layer_key(&layer.blob, &layer.info))
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            let image_report = self.assemble_image(&image, findings, gaps, &reports);
            report.findings.extend(image_report.findings);
            report.coverage.images.push(image_report.coverage);
            report.coverage.gaps.extend(image_report.gaps);
        }
        report.coverage.complete = report.coverage.images.iter().all(|image| !image.partial)
            && !report
                .coverage
                .gaps
                .iter()
                .any(|gap| gap.severity == Severity::Error);
        Ok(report)
    }

    fn check_config_digest(&self, image: &mut ImageInfo, bytes: &[u8]) -> (Vec<Finding>, Vec<Gap>) {
        let (findings, mut gaps) = self.scan_config(image, bytes);
        if let Some(expected) = &image.config_digest {
            let actual = crate::Fingerprint::of(bytes);
            if actual.as_str() != expected {
                gaps.push(
                    Gap::new(
                        GapKind::DigestMismatch,
                        Severity::Error,
                        format!(
                            "{}: config digest mismatch: expected {expected}, actual {actual}",
                            image.reference
                        ),
                    )
                    .with_image(image.reference.clone())
                    .with_digest(expected.clone()),
                );
            }
        }
        (findings, gaps)
    }

    /// Scans each distinct layer blob once, in parallel where the store
    /// allows it.
    fn scan_unique_layers(
        &self,
        store: &Store,
        images: &[(ImageInfo, Vec<Finding>, Vec<Gap>)],
    ) -> HashMap<String, Arc<LayerReport>> {
        let mut unique: Vec<(String, String, LayerInfo)> = Vec::new();
        for (image, _, _) in images {
            for layer in &image.layers {
                let key = layer_key(&layer.blob, &layer.info);
                if !unique.iter().any(|(existing, _, _)| *existing == key) {
                    unique.push((key, layer.blob.clone(), layer.info.clone()));
                }
            }
        }
        let results: Mutex<HashMap<String, Arc<LayerReport>>> = Mutex::new(HashMap::new());
        if store.random_access() {
            let next = AtomicUsize::new(0);
            let workers = match self.options.parallel_layers {
                0 => std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
                n => n,
            }
            .min(unique.len().max(1));
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    scope.spawn(|| {
                        loop {
                            let position = next.fetch_add(1, Ordering::Relaxed);
                            let Some((key, blob, info)) = unique.get(position) else {
                                break;
                            };
                            let report = match store.open_blob(blob) {
                                Ok(mut reader) => self.scan_layer(&mut reader, info),
                                Err(error) => unreadable_layer(info, &error.to_string()),
                            };
                            results
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(key.clone(), Arc::new(report));
                        }
                    });
                }
            });
        } else {
            let mut results = results.lock().unwrap_or_else(|e| e.into_inner());
            let mut streamed: Vec<String> = Vec::new();
            for (key, blob, info) in &unique {
                if let Ok(mut reader) = store.open_blob(blob) {
                    results.insert(key.clone(), Arc::new(self.scan_layer(&mut reader, info)));
                    streamed.push(key.clone());
                }
            }
            let wanted: Vec<String> = unique
                .iter()
                .filter(|(key, _, _)| !streamed.contains(key))
                .map(|(_, blob, _)| crate::layer::display_path(blob))
                .collect();
            let outcome = store.stream_members(&wanted, &mut |name, reader| {
                // Blob names may be links to the member streamed as `name`.
                let mut scanned: Option<(Arc<LayerReport>, &LayerInfo)> = None;
                for (key, blob, info) in &unique {
                    if store.resolve(blob) != name || results.contains_key(key) {
                        continue;
                    }
                    let report = match &scanned {
                        None => Arc::new(self.scan_layer(reader, info)),
                        Some((report, first))
                            if first.digest == info.digest && first.diff_id == info.diff_id =>
                        {
                            report.clone()
                        }
                        // The stream was read once; another expectation
                        // for the same bytes cannot be checked here.
                        Some(_) => continue,
                    };
                    scanned.get_or_insert((report.clone(), info));
                    results.insert(key.clone(), report);
                }
            });
            for (key, _, info) in &unique {
                if !results.contains_key(key) {
                    let reason = match &outcome {
                        Err(error) => format!("the archive could not be read to its end: {error}"),
                        Ok(()) => "the layer is not in the archive".to_owned(),
                    };
                    results.insert(key.clone(), Arc::new(unreadable_layer(info, &reason)));
                }
            }
        }
        results.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

fn layer_key(blob: &str, info: &LayerInfo) -> String {
    format!(
        "{blob}\n{}\n{}",
        info.digest.as_deref().unwrap_or(""),
        info.diff_id.as_deref().unwrap_or("")
    )
}

fn unreadable_layer(info: &LayerInfo, reason: &str) -> LayerReport {
    LayerReport {
        name: info.name.clone(),
        digest: info.digest.clone(),
        gaps: vec![
            Gap::new(
                GapKind::LayerUnreadable,
                Severity::Error,
                format!("cannot open layer {}: {reason}", info.name),
            )
            .with_digest(info.digest.clone().unwrap_or_else(|| info.name.clone())),
        ],
        ..LayerReport::default()
    }
}

/// Merges the reports of several inputs into one.
pub fn merge_reports(reports: impl IntoIterator<Item = Report>) -> Report {
    let mut merged = Report {
        coverage: Coverage {
            complete: true,
            ..Coverage::default()
        },
        ..Report::default()
    };
    for report in reports {
        merged.merge(report);
    }
    merged
}
