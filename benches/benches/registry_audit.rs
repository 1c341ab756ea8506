//! Registry audit benchmark: 100 tags over 10 images that share one large
//! base layer, audited against a real `docker-registry` on 127.0.0.1.
//!
//! Prints the request and byte counts of the audit, how many layers it
//! scanned, and its wall time against scanning the unique layer blobs alone
//! (from memory, with the same number of layers in parallel).
//!
//! ```text
//! cargo bench -p leak-benches --bench registry_audit
//! ```
//!
//! Needs `docker-registry` (Debian package `docker-registry`, distribution
//! 2.8) on PATH or in `LEAK_DOCKER_REGISTRY`. `LEAK_BENCH_BASE_MIB` sets the
//! uncompressed size of the shared base layer (default 64), and
//! `LEAK_BENCH_RUNS` the number of timed runs of each side (default 5). The
//! medians are compared.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use leak_core::{KnownValues, LayerInfo, Scanner, Secret};
use leak_registry::{Audit, RegistryClient, sha256_digest};

const REPOSITORIES: usize = 10;
const TAGS_PER_REPOSITORY: usize = 10;
const IMAGES: usize = 10;
const LAYER_CONCURRENCY: usize = 4;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A layer blob with its digests.
struct Layer {
    blob: Vec<u8>,
    digest: String,
    diff_id: String,
}

/// Kills the registry when the benchmark ends.
struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let base_mib = env_number("LEAK_BENCH_BASE_MIB", 64);
    let runs = env_number("LEAK_BENCH_RUNS", 5).max(1);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run(base_mib, runs));
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn run(base_mib: usize, runs: usize) {
    let (_registry, address) = start_registry().await;
    let base = make_layer(&text_files(base_mib << 20, 0x5eed));
    let tops: Vec<Layer> = (0..IMAGES).map(top_layer).collect();
    let known = known_values();
    push_images(&address, &base, &tops).await;

    let mut audit_times = Vec::new();
    let mut last_report = None;
    for _ in 0..runs {
        // A fresh client and audit each run, so no manifest or layer is cached.
        let client = RegistryClient::builder(address.clone())
            .with_insecure(true)
            .build()
            .expect("client");
        let audit = Audit::builder(client)
            .with_known_values(known.clone())
            .with_layer_concurrency(LAYER_CONCURRENCY)
            .build()
            .expect("audit");
        let started = Instant::now();
        let report = audit.run().await.expect("audit run");
        audit_times.push(started.elapsed());
        last_report = Some(report);
    }
    let report = last_report.expect("at least one run");
    let audit_time = median(audit_times);

    let mut unique: Vec<&Layer> = vec![&base];
    unique.extend(tops.iter());
    let scan_times = (0..runs)
        .map(|_| scan_alone(&unique, known.clone()))
        .collect();
    let scan_time = median(scan_times);
    let unique_bytes: usize = unique.iter().map(|layer| layer.blob.len()).sum();

    let stats = report.stats;
    println!(
        "registry audit: {} repositories, {} tags, {} images",
        stats.repositories, stats.tags, stats.images
    );
    println!(
        "layers: {} unique, {} scanned, {} from cache",
        stats.unique_layers, stats.layers_scanned, stats.layers_from_cache
    );
    println!(
        "requests: {}, bytes fetched: {} (unique layer blobs: {} bytes)",
        stats.requests.requests, stats.requests.bytes, unique_bytes
    );
    println!(
        "findings: {} across {} exposures",
        report.findings.len(),
        report.exposures.len()
    );
    println!(
        "median of {runs} runs: audit {:.3} s, unique layers scanned alone {:.3} s, ratio {:.2}x",
        audit_time.as_secs_f64(),
        scan_time.as_secs_f64(),
        audit_time.as_secs_f64() / scan_time.as_secs_f64()
    );
}

/// Scans each unique layer blob from memory, `LAYER_CONCURRENCY` at a time.
fn scan_alone(layers: &[&Layer], known: KnownValues) -> Duration {
    let scanner = Arc::new(
        Scanner::builder()
            .known_values(known)
            .build()
            .expect("scanner"),
    );
    let started = Instant::now();
    for batch in layers.chunks(LAYER_CONCURRENCY) {
        std::thread::scope(|scope| {
            for layer in batch {
                let scanner = scanner.clone();
                scope.spawn(move || {
                    let info = LayerInfo {
                        digest: Some(layer.digest.clone()),
                        diff_id: Some(layer.diff_id.clone()),
                        name: layer.digest.clone(),
                    };
                    let report = scanner.scan_layer(&mut layer.blob.as_slice(), &info);
                    assert!(
                        report.complete,
                        "layer {} scanned incompletely",
                        layer.digest
                    );
                });
            }
        });
    }
    started.elapsed()
}

fn known_values() -> KnownValues {
    let mut known = KnownValues::new();
    known.add(Secret::new("bench-planted-value-7f3a9c"));
    known
}

/// Builds a small top layer. Every third image plants the known value.
fn top_layer(image: usize) -> Layer {
    let mut body = format!("release {image}\n");
    if image.is_multiple_of(3) {
        body.push_str("token=bench-planted-value-7f3a9c\n");
    }
    make_layer(&[(format!("app/release-{image}.txt"), body.into_bytes())])
}

/// Deterministic text files of about `total` bytes, 256 KiB each.
fn text_files(total: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    const WORDS: [&str; 8] = [
        "alpha ", "bravo ", "charlie ", "delta ", "echo ", "foxtrot ", "golf ", "hotel\n",
    ];
    let mut state = seed;
    let mut files = Vec::new();
    let mut written = 0;
    while written < total {
        let mut content = Vec::with_capacity(256 << 10);
        while content.len() < 256 << 10 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            content.extend_from_slice(WORDS[(state % 8) as usize].as_bytes());
        }
        written += content.len();
        files.push((format!("usr/share/data/file-{}.txt", files.len()), content));
    }
    files
}

fn make_layer(files: &[(String, Vec<u8>)]) -> Layer {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, content.as_slice())
            .expect("tar entry");
    }
    let tar = builder.into_inner().expect("tar");
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(&tar).expect("gzip");
    let blob = encoder.finish().expect("gzip");
    Layer {
        digest: sha256_digest(&blob).expect("digest").to_string(),
        diff_id: sha256_digest(&tar).expect("digest").to_string(),
        blob,
    }
}

/// Pushes 10 images (base + one top layer each) and tags them 100 times
/// across 10 repositories.
async fn push_images(address: &str, base: &Layer, tops: &[Layer]) {
    let client = RegistryClient::builder(address.to_owned())
        .with_insecure(true)
        .build()
        .expect("client");
    for repository_index in 0..REPOSITORIES {
        let repository = format!("bench/service-{repository_index}");
        for tag_index in 0..TAGS_PER_REPOSITORY {
            let image = (repository_index + tag_index) % IMAGES;
            let (config, manifest) = image_documents(base, &tops[image], image);
            for (digest, bytes) in [
                (base.digest.clone(), base.blob.clone()),
                (tops[image].digest.clone(), tops[image].blob.clone()),
                (
                    sha256_digest(&config).expect("digest").to_string(),
                    config.clone(),
                ),
            ] {
                let digest = leak_registry::parse_digest(&digest).expect("digest");
                if !client
                    .blob_exists(&repository, &digest)
                    .await
                    .expect("blob check")
                {
                    client
                        .upload_blob(&repository, &digest, bytes)
                        .await
                        .expect("upload");
                }
            }
            client
                .put_manifest(
                    &repository,
                    &format!("v{tag_index}"),
                    OCI_MANIFEST,
                    manifest,
                )
                .await
                .expect("manifest");
        }
    }
}

fn image_documents(base: &Layer, top: &Layer, image: usize) -> (Vec<u8>, Vec<u8>) {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": [format!("RELEASE={image}")] },
        "rootfs": { "type": "layers", "diff_ids": [base.diff_id, top.diff_id] },
    }))
    .expect("config");
    let descriptor = |media_type: &str, digest: &str, size: usize| serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size });
    let config_digest = sha256_digest(&config).expect("digest").to_string();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config_digest, config.len()),
        "layers": [
            descriptor(OCI_LAYER, &base.digest, base.blob.len()),
            descriptor(OCI_LAYER, &top.digest, top.blob.len()),
        ],
    }))
    .expect("manifest");
    (config, manifest)
}

async fn start_registry() -> (Registry, String) {
    let binary = std::env::var_os("LEAK_DOCKER_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docker-registry"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../leak-registry/tests/registry/anonymous.yml");
    let child = Command::new(&binary)
        .arg("serve")
        .arg(config)
        .env("REGISTRY_HTTP_ADDR", &address)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot start {}: {error}; install it with `apt-get install -y docker-registry` or set LEAK_DOCKER_REGISTRY",
                binary.display()
            )
        });
    let registry = Registry(child);
    let client = RegistryClient::builder(address.clone())
        .with_insecure(true)
        .build()
        .expect("client");
    for _ in 0..200 {
        if client.ping().await.is_ok() {
            return (registry, address);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("docker-registry on {address} did not respond to /v2/ within 10 s");
}
