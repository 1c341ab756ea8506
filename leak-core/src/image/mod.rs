//! Image inputs: docker-archive tarballs and OCI image layouts, as found on
//! disk, resolved to a list of images with their config and layers.

mod docker;
mod oci;
pub(crate) mod store;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::layer::LayerInfo;
use crate::report::Gap;
pub(crate) use store::Store;

/// One layer of an image, and where its blob is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageLayer {
    /// Digest checks and the name used in reports.
    pub info: LayerInfo,
    /// The digest reported as `layer_digest`: the descriptor digest, or the
    /// diff ID for docker-archive layers.
    pub digest: String,
    /// Member or blob name inside the input.
    pub blob: String,
}

/// One image (one platform of one manifest) found in an input.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The reference reported as `image`: a repository tag, or a layout
    /// reference name.
    pub reference: String,
    /// Where the image was read from.
    pub source: String,
    /// Manifest digest; `None` for docker-archive images.
    pub manifest_digest: Option<String>,
    /// Platform as `os/architecture[/variant]`.
    pub platform: Option<String>,
    /// Member or blob name of the config.
    pub config_blob: String,
    /// Digest the config must have, when the input names one.
    pub config_digest: Option<String>,
    /// Layers in order.
    pub layers: Vec<ImageLayer>,
    /// Annotations of the manifest and of the indexes above it, as
    /// (key, value, digest of the manifest or index that carries it).
    pub annotations: Vec<(String, String, Option<String>)>,
}

/// Everything found in one input: the images and what was passed over.
#[derive(Debug, Default)]
pub(crate) struct Discovered {
    pub(crate) images: Vec<ImageInfo>,
    pub(crate) gaps: Vec<Gap>,
}

/// Selects platforms by `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformFilter {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl PlatformFilter {
    /// Parses `os/architecture` or `os/architecture/variant`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?.to_owned();
        let architecture = parts.next().filter(|s| !s.is_empty())?.to_owned();
        let variant = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return None;
        }
        Some(PlatformFilter {
            os,
            architecture,
            variant,
        })
    }

    /// Checks a platform string against the filter. An image without a
    /// known platform is always selected.
    pub fn matches(&self, platform: Option<&str>) -> bool {
        let Some(platform) = platform else {
            return true;
        };
        let mut parts = platform.split('/');
        let os = parts.next().unwrap_or("");
        let architecture = parts.next().unwrap_or("");
        let variant = parts.next();
        os == self.os
            && architecture == self.architecture
            && (self.variant.is_none() || self.variant.as_deref() == variant)
    }
}

/// Formats a platform as `os/architecture[/variant]`.
pub(crate) fn platform_string(
    os: &str,
    architecture: &str,
    variant: Option<&str>,
) -> Option<String> {
    if os.is_empty() && architecture.is_empty() {
        return None;
    }
    Some(match variant {
        Some(variant) if !variant.is_empty() => format!("{os}/{architecture}/{variant}"),
        _ => format!("{os}/{architecture}"),
    })
}

/// Finds every image in an opened input. docker-archive `manifest.json`
/// wins over an OCI `index.json` when both exist (Docker 25 and later
/// write both, for the same images).
pub(crate) fn discover(store: &Store, source: &Path) -> Result<Discovered, String> {
    let source_name = source.display().to_string();
    if store.contains("manifest.json") {
        return docker::discover(store, &source_name);
    }
    if store.contains("index.json") {
        return oci::discover(store, &source_name);
    }
    Err(format!(
        "{source_name} has neither manifest.json (docker-archive) nor index.json (OCI layout)"
    ))
}
