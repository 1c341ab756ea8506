//! OCI image layouts: `index.json`, nested image indexes, and image
//! manifests, down to every platform.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::{Discovered, ImageInfo, ImageLayer, Store, platform_string};
use crate::digest::parse_digest;
use crate::layer::LayerInfo;
use crate::report::{Gap, GapKind, Severity};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const MAX_INDEX_DEPTH: usize = 8;

fn blob_path(digest: &str) -> Option<String> {
    let (algorithm, hex) = parse_digest(digest)?;
    Some(format!("blobs/{algorithm}/{hex}"))
}

struct Walk<'a> {
    store: &'a Store,
    source: &'a str,
    layout_name: String,
    discovered: Discovered,
    visited: std::collections::HashSet<String>,
}

pub(super) fn discover(store: &Store, source: &str) -> Result<Discovered, String> {
    let bytes = store
        .read_small("index.json")
        .map_err(|error| format!("{source}: cannot read index.json: {error}"))?;
    let index: ImageIndex = serde_json::from_slice(&bytes)
        .map_err(|error| format!("{source}: index.json is not a valid OCI index: {error}"))?;
    // `.` and `..` have no file name: name the layout after its real path.
    let resolved =
        std::fs::canonicalize(source).unwrap_or_else(|_| std::path::PathBuf::from(source));
    let layout_name = resolved
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| source.to_owned());
    let layout_name = layout_name
        .trim_end_matches(".tar")
        .trim_end_matches(".tgz")
        .trim_end_matches(".tar.gz")
        .to_owned();
    let mut walk = Walk {
        store,
        source,
        layout_name,
        discovered: Discovered::default(),
        visited: std::collections::HashSet::new(),
    };
    let annotations = annotation_list(index.annotations().as_ref(), None);
    for descriptor in index.manifests() {
        walk.descriptor(descriptor, None, &annotations, 0);
    }
    Ok(walk.discovered)
}

fn annotation_list(
    map: Option<&std::collections::HashMap<String, String>>,
    digest: Option<&str>,
) -> Vec<(String, String, Option<String>)> {
    let mut list: Vec<_> = map
        .into_iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.clone(), digest.map(str::to_owned)))
        .collect();
    list.sort();
    list
}

impl Walk<'_> {
    fn gap(&mut self, kind: GapKind, severity: Severity, digest: &str, detail: String) {
        self.discovered
            .gaps
            .push(Gap::new(kind, severity, detail).with_digest(digest));
    }

    fn reference_for(&self, descriptor: &Descriptor, parent: Option<&str>) -> String {
        let name = descriptor
            .annotations()
            .as_ref()
            .and_then(|annotations| annotations.get(REF_NAME).cloned());
        match (name, parent) {
            (Some(name), _) if name.contains(':') || name.contains('/') => name,
            (Some(name), _) => format!("{}:{name}", self.layout_name),
            (None, Some(parent)) => parent.to_owned(),
            (None, None) => format!("{}@{}", self.layout_name, descriptor.digest()),
        }
    }

    fn descriptor(
        &mut self,
        descriptor: &Descriptor,
        parent: Option<&str>,
        inherited: &[(String, String, Option<String>)],
        depth: usize,
    ) {
        let digest = descriptor.digest().to_string();
        let reference = self.reference_for(descriptor, parent);
        let annotations = descriptor.annotations().as_ref();
        if annotations
            .and_then(|a| a.get(REFERENCE_TYPE))
            .map(String::as_str)
            == Some("attestation-manifest")
        {
            self.gap(
                GapKind::AttestationSkipped,
                Severity::Info,
                &digest,
                format!(
                    "{reference}: attestation manifest {digest} is not an image and was skipped"
                ),
            );
            return;
        }
        if depth > MAX_INDEX_DEPTH || self.visited.contains(&digest) && depth > 0 {
            self.gap(
                GapKind::ManifestUnreadable,
                Severity::Error,
                &digest,
                format!("{reference}: index nesting deeper than {MAX_INDEX_DEPTH} levels or a cycle at {digest}"),
            );
            return;
        }
        self.visited.insert(digest.clone());
        let Some(path) = blob_path(&digest) else {
            self.gap(
                GapKind::ManifestUnreadable,
                Severity::Error,
                &digest,
                format!("{reference}: invalid descriptor digest {digest:?}"),
            );
            return;
        };
        let bytes = match self.store.read_small(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.gap(
                    GapKind::ManifestUnreadable,
                    Severity::Error,
                    &digest,
                    format!("{reference}: cannot read manifest {digest}: {error}"),
                );
                return;
            }
        };
        let actual = crate::Fingerprint::of(&bytes);
        if actual.as_str() != digest {
            self.gap(
                GapKind::DigestMismatch,
                Severity::Error,
                &digest,
                format!(
                    "{reference}: manifest digest mismatch: expected {digest}, actual {actual}"
                ),
            );
        }
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(error) => {
                self.gap(
                    GapKind::ManifestUnreadable,
                    Severity::Error,
                    &digest,
                    format!("{reference}: manifest {digest} is not valid JSON: {error}"),
                );
                return;
            }
        };
        if value.get("manifests").is_some() {
            self.index(&bytes, &digest, &reference, inherited, depth);
        } else if value.get("layers").is_some() {
            let platform = descriptor.platform().as_ref().and_then(|p| {
                platform_string(
                    &p.os().to_string(),
                    &p.architecture().to_string(),
                    p.variant().as_deref(),
                )
            });
            self.manifest(&bytes, &digest, reference, platform, inherited);
        } else {
            self.gap(
                GapKind::NotAnImage,
                Severity::Info,
                &digest,
                format!("{reference}: {digest} is neither an image manifest nor an index and was skipped"),
            );
        }
    }

    fn index(
        &mut self,
        bytes: &[u8],
        digest: &str,
        reference: &str,
        inherited: &[(String, String, Option<String>)],
        depth: usize,
    ) {
        let index: ImageIndex = match serde_json::from_slice(bytes) {
            Ok(index) => index,
            Err(error) => {
                self.gap(
                    GapKind::ManifestUnreadable,
                    Severity::Error,
                    digest,
                    format!("{reference}: index {digest} is not a valid image index: {error}"),
                );
                return;
            }
        };
        let mut annotations = inherited.to_vec();
        annotations.extend(annotation_list(index.annotations().as_ref(), Some(digest)));
        for child in index.manifests() {
            self.descriptor(child, Some(reference), &annotations, depth + 1);
        }
    }

    fn manifest(
        &mut self,
        bytes: &[u8],
        digest: &str,
        reference: String,
        platform: Option<String>,
        inherited: &[(String, String, Option<String>)],
    ) {
        let manifest: ImageManifest = match serde_json::from_slice(bytes) {
            Ok(manifest) => manifest,
            Err(error) => {
                self.gap(
                    GapKind::ManifestUnreadable,
                    Severity::Error,
                    digest,
                    format!(
                        "{reference}: manifest {digest} is not a valid image manifest: {error}"
                    ),
                );
                return;
            }
        };
        let config_digest = manifest.config().digest().to_string();
        let Some(config_blob) = blob_path(&config_digest) else {
            self.gap(
                GapKind::ConfigUnreadable,
                Severity::Error,
                digest,
                format!("{reference}: invalid config digest {config_digest:?}"),
            );
            return;
        };
        let mut layers = Vec::new();
        for descriptor in manifest.layers() {
            let layer_digest = descriptor.digest().to_string();
            let blob = blob_path(&layer_digest).unwrap_or_else(|| layer_digest.clone());
            layers.push(ImageLayer {
                info: LayerInfo {
                    digest: Some(layer_digest.clone()),
                    diff_id: None,
                    name: layer_digest.clone(),
                },
                digest: layer_digest,
                blob,
            });
        }
        let mut annotations = inherited.to_vec();
        annotations.extend(annotation_list(
            manifest.annotations().as_ref(),
            Some(digest),
        ));
        self.discovered.images.push(ImageInfo {
            reference,
            source: self.source.to_owned(),
            manifest_digest: Some(digest.to_owned()),
            platform,
            config_blob,
            config_digest: Some(config_digest),
            layers,
            annotations,
        });
    }
}
