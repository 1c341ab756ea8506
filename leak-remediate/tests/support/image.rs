//! Builds small OCI images in memory (gzip layers, config, manifest) and
//! pushes them, without leak-core.

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use leak_registry::{Digest, OCI_MANIFEST, RegistryClient, parse_digest};
use sha2::{Digest as _, Sha256};

/// A gzip layer and its digests.
pub struct Layer {
    pub blob: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
}

/// An image ready to push.
pub struct Image {
    pub config: Vec<u8>,
    pub layers: Vec<Layer>,
    pub manifest: Vec<u8>,
    pub digest: String,
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Builds a gzip layer holding `files` (path, contents).
pub fn layer(files: &[(&str, &[u8])]) -> Layer {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, *contents).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
    std::io::Write::write_all(&mut gzip, &tar).unwrap();
    let blob = gzip.finish().unwrap();
    Layer {
        digest: sha256(&blob),
        diff_id: sha256(&tar),
        blob,
    }
}

/// Builds an image from layers, an environment and history commands.
pub fn image(layers: Vec<Layer>, env: &[String], history: &[&str]) -> Image {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": env },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "history": history.iter().map(|h| serde_json::json!({"created_by": h})).collect::<Vec<_>>(),
    });
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config),
            "size": config.len(),
        },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": l.digest,
            "size": l.blob.len(),
        })).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    Image {
        digest: sha256(&manifest),
        config,
        layers,
        manifest,
    }
}

/// Uploads the blobs and puts the manifest under each tag.
pub async fn push(
    client: &RegistryClient,
    image: &Image,
    repository: &str,
    tags: &[&str],
) -> Digest {
    let mut blobs = vec![image.config.clone()];
    blobs.extend(image.layers.iter().map(|l| l.blob.clone()));
    for blob in blobs {
        let digest = parse_digest(&sha256(&blob)).unwrap();
        if !client.blob_exists(repository, &digest).await.unwrap() {
            client
                .upload_blob(repository, &digest, Bytes::from(blob))
                .await
                .unwrap();
        }
    }
    let mut digest = None;
    for tag in tags {
        digest = Some(
            client
                .put_manifest(
                    repository,
                    tag,
                    OCI_MANIFEST,
                    Bytes::from(image.manifest.clone()),
                )
                .await
                .unwrap(),
        );
    }
    digest.unwrap()
}

/// Pushes an OCI index of `children` (image, `os/arch`) under `tag`, the
/// children by digest first.
pub async fn push_index(
    client: &RegistryClient,
    children: &[(&Image, &str)],
    repository: &str,
    tag: &str,
) -> String {
    let mut entries = Vec::new();
    for (child, platform) in children {
        push(client, child, repository, &[child.digest.as_str()]).await;
        let (os, architecture) = platform.split_once('/').unwrap();
        entries.push(serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": child.digest,
            "size": child.manifest.len(),
            "platform": {"os": os, "architecture": architecture},
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": leak_registry::OCI_INDEX,
        "manifests": entries,
    });
    let body = serde_json::to_vec(&index).unwrap();
    client
        .put_manifest(repository, tag, leak_registry::OCI_INDEX, Bytes::from(body))
        .await
        .unwrap()
        .to_string()
}
