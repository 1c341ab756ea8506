//! Layer reports cached by layer digest and a hash of the rules, known
//! values and options, in memory and optionally on disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use leak_core::{KnownValues, LayerReport, RuleSet, ScanOptions};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Bumped when the cached format or the meaning of a cached report changes.
const CACHE_FORMAT: &str = "leak-registry-layer-cache-1";

/// The cache level that served a layer report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CacheHit {
    Memory,
    Disk,
}

/// Layer reports shared by every image of one audit.
#[derive(Debug)]
pub(crate) struct LayerCache {
    key: String,
    memory: Mutex<HashMap<String, Arc<LayerReport>>>,
    directory: Option<PathBuf>,
}

impl LayerCache {
    pub(crate) fn new(key: String, directory: Option<PathBuf>) -> Self {
        LayerCache {
            key,
            memory: Mutex::new(HashMap::new()),
            directory,
        }
    }

    /// Returns the hash of the rules, known values and options that the reports are valid for.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn get(&self, digest: &str) -> Result<Option<(Arc<LayerReport>, CacheHit)>> {
        if let Some(report) = self.lock().get(digest) {
            return Ok(Some((report.clone(), CacheHit::Memory)));
        }
        let Some(path) = self.disk_path(digest) else {
            return Ok(None);
        };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(cache_error(&path, source)),
        };
        let report: LayerReport = match serde_json::from_slice(&bytes) {
            Ok(report) => report,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring unreadable layer cache entry");
                return Ok(None);
            }
        };
        let report = Arc::new(report);
        self.lock().insert(digest.to_owned(), report.clone());
        Ok(Some((report, CacheHit::Disk)))
    }

    /// Stores a report; only complete reports go to disk, so a layer whose
    /// download failed is fetched again next time.
    pub(crate) fn insert(&self, digest: &str, report: Arc<LayerReport>) -> Result<()> {
        self.lock().insert(digest.to_owned(), report.clone());
        let Some(path) = self.disk_path(digest).filter(|_| report.complete) else {
            return Ok(());
        };
        write_atomically(&path, &report)
    }

    fn disk_path(&self, digest: &str) -> Option<PathBuf> {
        let directory = self.directory.as_ref()?;
        let (algorithm, hex) = digest.split_once(':')?;
        let safe = |text: &str| text.chars().all(|c| c.is_ascii_alphanumeric());
        if !safe(algorithm) || !safe(hex) {
            return None;
        }
        Some(
            directory
                .join(&self.key)
                .join(algorithm)
                .join(format!("{hex}.json")),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LayerReport>>> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn write_atomically(path: &Path, report: &LayerReport) -> Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    std::fs::create_dir_all(parent).map_err(|source| cache_error(parent, source))?;
    let bytes = serde_json::to_vec(report)
        .map_err(|error| cache_error(path, std::io::Error::other(error)))?;
    let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes).map_err(|source| cache_error(&temporary, source))?;
    std::fs::rename(&temporary, path).map_err(|source| cache_error(path, source))
}

fn cache_error(path: &Path, source: std::io::Error) -> Error {
    Error::Cache {
        path: path.display().to_string(),
        source,
    }
}

/// Hashes everything that changes a layer report: the rules, the known
/// values (by fingerprint) and the options that bound the scan.
///
/// Tuning that does not change results (thread count, pipeline block size
/// and depth) is left out, so the key is the same on every machine.
pub(crate) fn scanner_key(rules: &RuleSet, known: &KnownValues, options: &ScanOptions) -> String {
    let mut hasher = Sha256::new();
    let mut field = |text: &str| {
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    };
    field(CACHE_FORMAT);
    for rule in rules.rules() {
        field(&rule.id);
        field(&rule.kind);
        field(rule.regex.as_str());
        field(&rule.secret_group.to_string());
        field(&rule.keywords.join("\u{1f}"));
        field(&format!("{:?}", rule.min_entropy));
        field(&rule.max_match_len.to_string());
        for regex in rule
            .allowlist
            .regexes
            .iter()
            .chain(&rule.allowlist.match_regexes)
        {
            field(regex.as_str());
        }
        for regex in &rule.allowlist.paths {
            field(regex.as_str());
        }
        field(&rule.allowlist.stopwords.join("\u{1f}"));
        field(&rule.overrides.join("\u{1f}"));
        field(if rule.validate.is_some() {
            "validated"
        } else {
            "unvalidated"
        });
        field(&format!("{:?}", rule.decoding));
        field(rule.path.as_ref().map_or("", |path| path.as_str()));
    }
    let mut fingerprints: Vec<String> = known
        .clone()
        .into_values()
        .iter()
        .map(|value| value.fingerprint().to_string())
        .collect();
    fingerprints.sort();
    for fingerprint in &fingerprints {
        field(fingerprint);
    }
    field(&format!(
        "{} {} {} {} {}",
        options.chunk_size,
        options.overlap,
        options.nested_max_bytes,
        options.nested_max_depth,
        options.nested_max_expanded_bytes
    ));
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_with_known_values() {
        let rules = RuleSet::builtin();
        let options = ScanOptions::default();
        let empty = scanner_key(&rules, &KnownValues::new(), &options);
        let mut known = KnownValues::new();
        known.add(leak_core::Secret::new("value"));
        assert_ne!(empty, scanner_key(&rules, &known, &options));
        assert_eq!(empty, scanner_key(&rules, &KnownValues::new(), &options));
    }

    #[test]
    fn key_ignores_thread_count() {
        let rules = RuleSet::builtin();
        let one = ScanOptions {
            parallel_layers: 1,
            ..ScanOptions::default()
        };
        let many = ScanOptions {
            parallel_layers: 16,
            ..ScanOptions::default()
        };
        assert_eq!(
            scanner_key(&rules, &KnownValues::new(), &one),
            scanner_key(&rules, &KnownValues::new(), &many)
        );
    }

    #[test]
    fn disk_round_trip() {
        let directory = tempfile::tempdir().unwrap();
        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let report = LayerReport {
            name: "layer".to_owned(),
            complete: true,
            ..LayerReport::default()
        };
        LayerCache::new("k".to_owned(), Some(directory.path().to_owned()))
            .insert(digest, Arc::new(report))
            .unwrap();
        let fresh = LayerCache::new("k".to_owned(), Some(directory.path().to_owned()));
        let (cached, hit) = fresh.get(digest).unwrap().unwrap();
        assert_eq!(cached.name, "layer");
        assert_eq!(hit, CacheHit::Disk);
        assert_eq!(fresh.get(digest).unwrap().unwrap().1, CacheHit::Memory);
    }

    #[test]
    fn incomplete_reports_stay_in_memory() {
        let directory = tempfile::tempdir().unwrap();
        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        LayerCache::new("k".to_owned(), Some(directory.path().to_owned()))
            .insert(digest, Arc::new(LayerReport::default()))
            .unwrap();
        let fresh = LayerCache::new("k".to_owned(), Some(directory.path().to_owned()));
        assert!(fresh.get(digest).unwrap().is_none());
    }
}
