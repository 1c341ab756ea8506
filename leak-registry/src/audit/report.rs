//! The audit report: findings with the repositories and tags that carry
//! them, exposures grouped by secret, and request and cache counters.

use leak_core::{Coverage, Finding, Fingerprint};
use serde::Serialize;

use crate::client::RequestStats;

/// One place that carries an image: a repository, the tags that lead to the
/// manifest, and the manifest digest and platform.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Carrier {
    /// The repository.
    pub repository: String,
    /// Tags that point at the manifest, or at an index that leads to it;
    /// empty for a manifest reached only by digest.
    pub tags: Vec<String>,
    /// The image manifest digest.
    pub manifest_digest: String,
    /// `os/arch[/variant]` from the index entry, when an index in this
    /// repository leads to the image.
    pub platform: Option<String>,
    /// Indexes that list the manifest, when any.
    pub index_digests: Vec<String>,
}

/// A finding of one image, in the scan finding schema, with the repository
/// and tags that carry the image.
#[derive(Clone, Debug, Serialize)]
pub struct AuditFinding {
    /// The finding as a scan reports it (`manifest_digest` and `platform`
    /// name the image).
    #[serde(flatten)]
    pub finding: Finding,
    /// The repository.
    pub repository: String,
    /// Tags in that repository that carry the image.
    pub tags: Vec<String>,
}

/// One secret (by fingerprint) and every place that carries it.
#[derive(Clone, Debug, Serialize)]
pub struct Exposure {
    /// The secret's fingerprint.
    pub fingerprint: Fingerprint,
    /// Credential kind.
    pub kind: String,
    /// Rule id.
    pub rule: String,
    /// Redacted preview.
    pub redacted: String,
    /// Every repository, tag set, manifest digest and platform that carries it.
    pub carriers: Vec<Carrier>,
}

/// Every place that carries a layer named as leaked.
#[derive(Clone, Debug, Serialize)]
pub struct LayerExposure {
    /// The layer digest.
    pub layer_digest: String,
    /// Images whose manifests list the layer.
    pub carriers: Vec<Carrier>,
}

/// Counters of one audit.
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct AuditStats {
    /// Repositories audited.
    pub repositories: usize,
    /// Tags audited.
    pub tags: usize,
    /// Distinct image manifests (one per platform) scanned.
    pub images: usize,
    /// Attestation manifests skipped inside indexes.
    pub attestations_skipped: usize,
    /// Distinct layer digests across all images.
    pub unique_layers: usize,
    /// Layers downloaded and scanned.
    pub layers_scanned: usize,
    /// Layers served from the cache (memory or disk) instead.
    pub layers_from_cache: usize,
    /// Of those, layers read from the on-disk cache.
    pub layers_from_disk_cache: usize,
    /// HTTP requests and response bytes, token requests included.
    pub requests: RequestStats,
}

/// The result of an audit.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditReport {
    /// The registry host.
    pub registry: String,
    /// One entry per finding per repository carrying the image.
    pub findings: Vec<AuditFinding>,
    /// Findings grouped by secret, with every carrier.
    pub exposures: Vec<Exposure>,
    /// Carriers of each layer named as leaked.
    pub leaked_layers: Vec<LayerExposure>,
    /// Coverage per image, and the gaps.
    pub coverage: Coverage,
    /// Request, byte and cache counters.
    pub stats: AuditStats,
}

impl AuditReport {
    /// Returns every carrier of any finding, without duplicates.
    pub fn leaking_carriers(&self) -> Vec<Carrier> {
        let mut carriers: Vec<Carrier> = self
            .exposures
            .iter()
            .flat_map(|exposure| exposure.carriers.iter().cloned())
            .collect();
        carriers.sort();
        carriers.dedup();
        carriers
    }
}
