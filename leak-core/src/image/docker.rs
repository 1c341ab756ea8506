//! docker-archive inputs (`docker save`, `skopeo copy docker-archive:`,
//! `podman save`, with or without the OCI files Docker 25 adds).

use serde::Deserialize;

use super::{Discovered, ImageInfo, ImageLayer, Store, platform_string};
use crate::layer::LayerInfo;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize, Default)]
struct ConfigHead {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Deserialize, Default)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// Returns the digest a member name carries: `blobs/sha256/<hex>`, or
/// `<hex>.json` / `<hex>.tar` / `<hex>` for members named by digest.
fn digest_from_name(name: &str) -> Option<String> {
    if let Some(hex) = name.strip_prefix("blobs/sha256/") {
        return crate::digest::parse_digest(&format!("sha256:{hex}"))
            .map(|_| format!("sha256:{hex}"));
    }
    None
}

pub(super) fn discover(store: &Store, source: &str) -> Result<Discovered, String> {
    let bytes = store
        .read_small("manifest.json")
        .map_err(|error| format!("{source}: cannot read manifest.json: {error}"))?;
    let entries: Vec<ManifestEntry> = serde_json::from_slice(&bytes)
        .map_err(|error| format!("{source}: manifest.json is not valid: {error}"))?;
    let mut discovered = Discovered::default();
    for (position, entry) in entries.into_iter().enumerate() {
        let config_digest = digest_from_name(&entry.config).or_else(|| {
            let stem = entry.config.trim_end_matches(".json");
            crate::digest::parse_digest(&format!("sha256:{stem}")).map(|_| format!("sha256:{stem}"))
        });
        let head: ConfigHead = store
            .read_small(&entry.config)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let diff_ids = head
            .rootfs
            .map(|rootfs| rootfs.diff_ids)
            .unwrap_or_default();
        let reference = entry
            .repo_tags
            .as_ref()
            .and_then(|tags| tags.first().cloned())
            .or_else(|| config_digest.clone())
            .unwrap_or_else(|| format!("{source}#{position}"));
        let layers = entry
            .layers
            .iter()
            .enumerate()
            .map(|(index, blob)| {
                let diff_id = diff_ids.get(index).cloned();
                let blob_digest = digest_from_name(blob);
                ImageLayer {
                    digest: diff_id
                        .clone()
                        .or(blob_digest.clone())
                        .unwrap_or_else(|| blob.clone()),
                    info: LayerInfo {
                        digest: blob_digest,
                        diff_id,
                        name: blob.clone(),
                    },
                    blob: blob.clone(),
                }
            })
            .collect();
        discovered.images.push(ImageInfo {
            reference,
            source: source.to_owned(),
            manifest_digest: None,
            platform: platform_string(&head.os, &head.architecture, head.variant.as_deref()),
            config_blob: entry.config,
            config_digest,
            layers,
            annotations: Vec::new(),
        });
    }
    Ok(discovered)
}
