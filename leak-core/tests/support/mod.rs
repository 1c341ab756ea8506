//! Fixture builder for the layer and image tests: layers written as raw tar
//! bytes (so hostile names and odd entry orders are possible), compressed
//! in several ways, and packed as OCI layouts and docker-archives.
//!
//! Every secret is a fake made at test time: known values look like
//! `leak-test-known-value-<n>`.

#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use leak_core::{
    Finding, Gap, GapKind, ImageInfo, ImageLayer, ImageReport, KnownValues, LayerInfo, Location,
    Removal, Report, ScanOptions, Scanner, Secret, Severity,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Returns the fake known value number `n`.
pub fn known(n: usize) -> String {
    format!("leak-test-known-value-{n}")
}

/// Returns `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

// ---------------------------------------------------------------- layers

/// Builds a layer's tar stream entry by entry. Names are written as given,
/// byte for byte, with a GNU long-name record when they exceed 100 bytes.
#[derive(Default)]
pub struct LayerBuilder {
    bytes: Vec<u8>,
}

const BLOCK: usize = 512;

/// Writes `value` as NUL-terminated octal, or in GNU base-256 when it
/// does not fit.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    if text.len() > width {
        field.fill(0);
        field[0] = 0x80;
        let end = field.len();
        field[end - 8..].copy_from_slice(&value.to_be_bytes());
        return;
    }
    field[..width].copy_from_slice(text.as_bytes());
    field[width] = 0;
}

/// Builds a ustar header block. `name` and `link` are cut to 100 bytes.
fn header(name: &[u8], kind: u8, size: u64, link: &[u8]) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    let name_len = name.len().min(100);
    block[..name_len].copy_from_slice(&name[..name_len]);
    octal(
        &mut block[100..108],
        if kind == b'5' { 0o755 } else { 0o644 },
    );
    octal(&mut block[108..116], 0);
    octal(&mut block[116..124], 0);
    octal(&mut block[124..136], size);
    octal(&mut block[136..148], 1_700_000_000);
    block[156] = kind;
    let link_len = link.len().min(100);
    block[157..157 + link_len].copy_from_slice(&link[..link_len]);
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    seal(&mut block);
    block
}

/// Writes the header checksum.
fn seal(block: &mut [u8; BLOCK]) {
    block[148..156].copy_from_slice(b"        ");
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(text.as_bytes());
}

fn pad(bytes: &mut Vec<u8>) {
    let rest = bytes.len() % BLOCK;
    if rest != 0 {
        bytes.resize(bytes.len() + BLOCK - rest, 0);
    }
}

impl LayerBuilder {
    /// Starts an empty layer.
    pub fn new() -> Self {
        LayerBuilder::default()
    }

    fn block(&mut self, block: &[u8; BLOCK], data: &[u8]) {
        self.bytes.extend_from_slice(block);
        self.bytes.extend_from_slice(data);
        pad(&mut self.bytes);
    }

    /// Appends an entry with a GNU long-name record when `name` is long.
    pub fn entry(mut self, name: &[u8], kind: u8, data: &[u8], link: &[u8]) -> Self {
        if name.len() > 100 {
            let mut long = name.to_vec();
            long.push(0);
            let record = header(b"././@LongLink", b'L', long.len() as u64, b"");
            self.block(&record, &long);
        }
        if link.len() > 100 {
            let mut long = link.to_vec();
            long.push(0);
            let record = header(b"././@LongLink", b'K', long.len() as u64, b"");
            self.block(&record, &long);
        }
        let size = if matches!(kind, b'0' | b'7') {
            data.len() as u64
        } else {
            0
        };
        let block = header(name, kind, size, link);
        let data = if size == 0 { &[][..] } else { data };
        self.block(&block, data);
        self
    }

    /// Appends an entry of any type that carries `data`, as a damaged or
    /// hostile tar may (a directory or symlink with content).
    pub fn entry_with_data(mut self, name: &str, kind: u8, data: &[u8], link: &str) -> Self {
        let block = header(name.as_bytes(), kind, data.len() as u64, link.as_bytes());
        self.block(&block, data);
        self
    }

    /// Appends a regular file.
    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name.as_bytes(), b'0', data, b"")
    }

    /// Appends a directory.
    pub fn dir(self, name: &str) -> Self {
        self.entry(name.as_bytes(), b'5', b"", b"")
    }

    /// Appends a symbolic link.
    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name.as_bytes(), b'2', b"", target.as_bytes())
    }

    /// Appends a hard link.
    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name.as_bytes(), b'1', b"", target.as_bytes())
    }

    /// Appends a `.wh.NAME` whiteout that deletes `path`.
    pub fn whiteout(self, path: &str) -> Self {
        let name = match path.rsplit_once('/') {
            Some((parent, base)) => format!("{parent}/.wh.{base}"),
            None => format!(".wh.{path}"),
        };
        self.file(&name, b"")
    }

    /// Appends a `.wh..wh..opq` marker for `directory` (empty for the root).
    pub fn opaque(self, directory: &str) -> Self {
        let name = if directory.is_empty() {
            ".wh..wh..opq".to_owned()
        } else {
            format!("{directory}/.wh..wh..opq")
        };
        self.file(&name, b"")
    }

    /// Appends a regular file whose name travels in a PAX `path` record;
    /// the ustar name field contains a short placeholder.
    pub fn pax_file(mut self, name: &str, data: &[u8]) -> Self {
        let record_body = format!(" path={name}\n");
        // The length prefix counts itself; find the fixed point.
        let mut length = record_body.len() + 1;
        while format!("{length}{record_body}").len() != length {
            length += 1;
        }
        let record = format!("{length}{record_body}");
        let pax = header(b"PaxHeaders/placeholder", b'x', record.len() as u64, b"");
        self.block(&pax, record.as_bytes());
        self.entry(b"placeholder-name", b'0', data, b"")
    }

    /// Appends a GNU sparse file of `real_size` bytes whose only data is
    /// `data` at `offset` (a multiple of 512); the rest are holes.
    pub fn sparse(mut self, name: &str, offset: u64, data: &[u8], real_size: u64) -> Self {
        let mut block = header(name.as_bytes(), b'S', data.len() as u64, b"");
        // GNU header: sparse map at 386 (4 entries of 12+12 bytes),
        // isextended at 482, realsize at 483.
        block[257..263].copy_from_slice(b"ustar ");
        block[263..265].copy_from_slice(b" \0");
        octal(&mut block[386..398], offset);
        octal(&mut block[398..410], data.len() as u64);
        // A zero-length chunk at the end marks the trailing hole.
        octal(&mut block[410..422], real_size);
        octal(&mut block[422..434], 0);
        block[482] = 0;
        octal(&mut block[483..495], real_size);
        seal(&mut block);
        self.block(&block, data);
        self
    }

    /// Appends raw bytes (for corrupt streams).
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// Ends the archive with two zero blocks and returns the tar bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0u8; 2 * BLOCK]);
        self.bytes
    }

    /// Returns the bytes without the end-of-archive blocks.
    pub fn unfinished(self) -> Vec<u8> {
        self.bytes
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// An uncompressed tar.
    Plain,
    /// One gzip member.
    Gzip,
    /// The tar split into three gzip members.
    GzipMembers,
    /// One gzip member followed by zero bytes.
    GzipTrailing,
    /// One zstd frame.
    Zstd,
}

/// Compresses `tar` as `codec`.
pub fn compress(tar: &[u8], codec: Codec) -> Vec<u8> {
    match codec {
        Codec::Plain => tar.to_vec(),
        Codec::Gzip => gzip(tar),
        Codec::GzipMembers => {
            let third = tar.len() / 3;
            let mut out = gzip(&tar[..third]);
            out.extend(gzip(&tar[third..2 * third]));
            out.extend(gzip(&tar[2 * third..]));
            out
        }
        Codec::GzipTrailing => {
            let mut out = gzip(tar);
            out.extend_from_slice(&[0u8; 300]);
            out
        }
        Codec::Zstd => zstd::encode_all(tar, 3).expect("zstd encodes into memory"),
    }
}

/// gzip-compresses bytes.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("gzip writes into memory");
    encoder.finish().expect("gzip finishes into memory")
}

/// Builds a zip archive of `(name, bytes)` members.
pub fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        writer
            .start_file(*name, options)
            .expect("zip member starts");
        writer.write_all(bytes).expect("zip member writes");
    }
    writer.finish().expect("zip finishes").into_inner()
}

/// Encodes text as UTF-16, little- or big-endian, with an optional BOM.
pub fn utf16(text: &str, little_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let units: Vec<u16> = if bom {
        std::iter::once(0xfeff).chain(text.encode_utf16()).collect()
    } else {
        text.encode_utf16().collect()
    };
    for unit in units {
        if little_endian {
            out.extend_from_slice(&unit.to_le_bytes());
        } else {
            out.extend_from_slice(&unit.to_be_bytes());
        }
    }
    out
}

// ---------------------------------------------------------------- scanning

/// How a test scans: buffer sizes and read sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Default options.
    Defaults,
    /// 64-byte chunks, no requested overlap, 7-byte pipeline blocks.
    Tiny,
    /// Tiny options and a reader that returns 1 to 7 bytes per read.
    ShortReads,
}

/// Every mode, for tests that loop over them.
pub const MODES: [Mode; 3] = [Mode::Defaults, Mode::Tiny, Mode::ShortReads];

/// Modes that go through `scan_path` (files cannot return short reads).
pub const PATH_MODES: [Mode; 2] = [Mode::Defaults, Mode::Tiny];

/// Returns the options of a mode.
pub fn options(mode: Mode) -> ScanOptions {
    match mode {
        Mode::Defaults => ScanOptions::default(),
        Mode::Tiny | Mode::ShortReads => ScanOptions {
            chunk_size: 64,
            overlap: 0,
            pipeline_block_size: 7,
            pipeline_depth: 2,
            ..ScanOptions::default()
        },
    }
}

/// Builds a scanner that searches for `known(0..count)`, with or without
/// the built-in rules.
pub fn scanner_with(
    mode: Mode,
    count: usize,
    builtin: bool,
    edit: impl FnOnce(&mut ScanOptions),
) -> Scanner {
    let mut values = KnownValues::new();
    for n in 0..count {
        values.add(Secret::new(known(n)));
    }
    let mut options = options(mode);
    edit(&mut options);
    Scanner::builder()
        .builtin_rules(builtin)
        .known_values(values)
        .options(options)
        .build()
        .expect("scanner builds")
}

/// Builds a scanner for `known(0..4)` without built-in rules.
pub fn scanner(mode: Mode) -> Scanner {
    scanner_with(mode, 4, false, |_| {})
}

/// A reader that returns 1 to 7 bytes per read, in a fixed cycle.
pub struct ShortReader<'a> {
    data: &'a [u8],
    turn: usize,
}

impl<'a> ShortReader<'a> {
    /// Wraps `data`.
    pub fn new(data: &'a [u8]) -> Self {
        ShortReader { data, turn: 0 }
    }
}

impl Read for ShortReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.turn += 1;
        let n = (self.turn % 7 + 1).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Scans layer blobs in order as one image through `scan_layer` and
/// `assemble_image`, with short reads in [`Mode::ShortReads`]. Diff IDs are
/// the digests of `tars`, blob digests those of `blobs`.
pub fn scan_blobs(
    mode: Mode,
    scanner: &Scanner,
    blobs: &[Vec<u8>],
    tars: &[Vec<u8>],
) -> ImageReport {
    let image = image_info(blobs, tars);
    let reports: Vec<Arc<leak_core::LayerReport>> = image
        .layers
        .iter()
        .zip(blobs)
        .map(|(layer, blob)| {
            let report = if mode == Mode::ShortReads {
                scanner.scan_layer(&mut ShortReader::new(blob), &layer.info)
            } else {
                scanner.scan_layer(&mut &blob[..], &layer.info)
            };
            Arc::new(report)
        })
        .collect();
    scanner.assemble_image(&image, Vec::new(), Vec::new(), &reports)
}

/// Scans uncompressed layers as one image.
pub fn scan_tars(mode: Mode, scanner: &Scanner, tars: &[Vec<u8>]) -> ImageReport {
    scan_blobs(mode, scanner, tars, tars)
}

/// Describes an image of the given layers for `assemble_image`.
pub fn image_info(blobs: &[Vec<u8>], tars: &[Vec<u8>]) -> ImageInfo {
    let layers = blobs
        .iter()
        .zip(tars)
        .map(|(blob, tar)| {
            let blob_digest = digest(blob);
            ImageLayer {
                info: LayerInfo {
                    digest: Some(blob_digest.clone()),
                    diff_id: Some(digest(tar)),
                    name: blob_digest.clone(),
                },
                digest: blob_digest.clone(),
                blob: blob_digest,
            }
        })
        .collect();
    ImageInfo {
        reference: "fixture:latest".to_owned(),
        source: "memory".to_owned(),
        manifest_digest: None,
        platform: Some("linux/amd64".to_owned()),
        config_blob: String::new(),
        config_digest: None,
        layers,
        annotations: Vec::new(),
    }
}

// ---------------------------------------------------------------- assertions

/// The place of a layer finding, flattened for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Fake known value number, or the rule id for rule findings.
    pub label: String,
    /// Layer index.
    pub layer: usize,
    /// Reported path.
    pub path: String,
    /// Line of the match.
    pub line: Option<u64>,
    /// Still in the final filesystem.
    pub present: bool,
    /// Layer that hid it.
    pub removed_by: Option<usize>,
    /// How it was hidden.
    pub removed_how: Option<Removal>,
    /// Entry that hid it.
    pub removed_by_entry: Option<String>,
}

/// Returns a present finding of known value `n`.
pub fn present(n: usize, layer: usize, path: &str, line: u64) -> Seen {
    Seen {
        label: known(n),
        layer,
        path: path.to_owned(),
        line: Some(line),
        present: true,
        removed_by: None,
        removed_how: None,
        removed_by_entry: None,
    }
}

/// Returns a finding of known value `n` hidden by `by` in layer `removed_by`.
pub fn removed(
    n: usize,
    layer: usize,
    path: &str,
    line: u64,
    removed_by: usize,
    how: Removal,
    by: &str,
) -> Seen {
    Seen {
        present: false,
        removed_by: Some(removed_by),
        removed_how: Some(how),
        removed_by_entry: Some(by.to_owned()),
        ..present(n, layer, path, line)
    }
}

fn label(finding: &Finding) -> String {
    let secret = finding
        .secret
        .as_ref()
        .and_then(|s| s.expose_str())
        .unwrap_or("");
    if finding.rule == "known-value" && secret.starts_with("leak-test-known-value-") {
        secret.to_owned()
    } else {
        finding.rule.clone()
    }
}

/// Flattens and sorts the layer findings; other locations are dropped.
pub fn seen(findings: &[Finding]) -> Vec<Seen> {
    let out: Vec<Seen> = findings
        .iter()
        .filter_map(|finding| match &finding.location {
            Location::Layer {
                layer_index,
                path,
                line,
                present_in_final_fs,
                removed_by_layer,
                removed_how,
                removed_by_entry,
                ..
            } => Some(Seen {
                label: label(finding),
                layer: *layer_index,
                path: path.clone(),
                line: *line,
                present: *present_in_final_fs,
                removed_by: *removed_by_layer,
                removed_how: *removed_how,
                removed_by_entry: removed_by_entry.clone(),
            }),
            _ => None,
        })
        .collect();
    sorted(out)
}

/// Sorts findings into the order [`seen`] returns.
pub fn sorted(mut expected: Vec<Seen>) -> Vec<Seen> {
    expected.sort_by_key(|seen| format!("{seen:?}"));
    expected
}

/// Returns the (kind, severity, path) of every gap.
pub fn gap_kinds(gaps: &[Gap]) -> Vec<(GapKind, Severity, Option<String>)> {
    let mut out: Vec<_> = gaps
        .iter()
        .map(|gap| (gap.kind, gap.severity, gap.path.clone()))
        .collect();
    out.sort_by_key(|(kind, severity, path)| (format!("{kind:?}"), *severity, path.clone()));
    out
}

/// Returns the gaps of one kind.
pub fn gaps_of(gaps: &[Gap], kind: GapKind) -> Vec<&Gap> {
    gaps.iter().filter(|gap| gap.kind == kind).collect()
}

/// Asserts a report has no gaps at all and its images are complete.
pub fn assert_clean(report: &Report) {
    assert!(
        report.coverage.gaps.is_empty(),
        "unexpected gaps: {:#?}",
        report.coverage.gaps
    );
    assert!(report.coverage.complete, "coverage is not complete");
    for image in &report.coverage.images {
        assert!(!image.partial, "image {} is partial", image.image);
        assert_eq!(
            image.layers_scanned, image.layers_total,
            "image {}",
            image.image
        );
    }
}

// ---------------------------------------------------------------- images

/// One image to write: layers, platform and config contents.
#[derive(Clone)]
pub struct ImageSpec {
    /// Uncompressed layer tars.
    pub tars: Vec<Vec<u8>>,
    /// Compression of each layer (the last one repeats).
    pub codecs: Vec<Codec>,
    /// OS and architecture.
    pub platform: (String, String),
    /// `Env` entries.
    pub env: Vec<String>,
    /// Labels.
    pub labels: Vec<(String, String)>,
    /// `rootfs.diff_ids` written in place of the true ones.
    pub diff_ids: Option<Vec<String>>,
}

impl ImageSpec {
    /// Starts a linux/amd64 image of gzip layers.
    pub fn new(tars: Vec<Vec<u8>>) -> Self {
        ImageSpec {
            tars,
            codecs: vec![Codec::Gzip],
            platform: ("linux".to_owned(), "amd64".to_owned()),
            env: vec!["PATH=/usr/bin".to_owned()],
            labels: vec![("org.example.fixture".to_owned(), "yes".to_owned())],
            diff_ids: None,
        }
    }

    /// Sets per-layer codecs.
    pub fn codecs(mut self, codecs: &[Codec]) -> Self {
        self.codecs = codecs.to_vec();
        self
    }

    /// Sets the platform.
    pub fn platform(mut self, os: &str, architecture: &str) -> Self {
        self.platform = (os.to_owned(), architecture.to_owned());
        self
    }

    fn codec(&self, index: usize) -> Codec {
        *self
            .codecs
            .get(index)
            .or(self.codecs.last())
            .unwrap_or(&Codec::Gzip)
    }

    /// Returns the layer blobs as compressed.
    pub fn blobs(&self) -> Vec<Vec<u8>> {
        self.tars
            .iter()
            .enumerate()
            .map(|(i, tar)| compress(tar, self.codec(i)))
            .collect()
    }

    /// Returns the config JSON.
    pub fn config(&self) -> Vec<u8> {
        let labels: serde_json::Map<String, Value> = self
            .labels
            .iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect();
        let history: Vec<Value> = (0..self.tars.len())
            .map(|i| json!({"created": "2026-01-01T00:00:00Z", "created_by": format!("COPY layer-{i} /")}))
            .collect();
        let config = json!({
            "architecture": self.platform.1,
            "os": self.platform.0,
            "config": {"Env": self.env, "Labels": labels, "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids.clone().unwrap_or_else(|| self.tars.iter().map(|tar| digest(tar)).collect())},
            "history": history,
        });
        serde_json::to_vec(&config).expect("config serialises")
    }
}

fn media_type(codec: Codec) -> &'static str {
    match codec {
        Codec::Plain => "application/vnd.oci.image.layer.v1.tar",
        Codec::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => "application/vnd.oci.image.layer.v1.tar+gzip",
    }
}

/// An OCI layout being written: blobs, and descriptors for `index.json`.
#[derive(Default)]
pub struct OciLayout {
    /// Blobs by digest.
    pub blobs: Vec<(String, Vec<u8>)>,
    /// Descriptors of `index.json`.
    pub manifests: Vec<Value>,
}

impl OciLayout {
    /// Starts an empty layout.
    pub fn new() -> Self {
        OciLayout::default()
    }

    /// Stores a blob and returns its digest.
    pub fn blob(&mut self, bytes: Vec<u8>) -> String {
        let digest = digest(&bytes);
        if !self.blobs.iter().any(|(d, _)| *d == digest) {
            self.blobs.push((digest.clone(), bytes));
        }
        digest
    }

    /// Stores an image's blobs and manifest; returns the manifest
    /// descriptor (with platform), not yet listed anywhere.
    pub fn image(&mut self, spec: &ImageSpec) -> Value {
        let config = spec.config();
        let config_size = config.len();
        let config_digest = self.blob(config);
        let layers: Vec<Value> = spec
            .blobs()
            .into_iter()
            .enumerate()
            .map(|(i, blob)| {
                let size = blob.len();
                json!({"mediaType": media_type(spec.codec(i)), "digest": self.blob(blob), "size": size})
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let size = bytes.len();
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": self.blob(bytes),
            "size": size,
            "platform": {"os": spec.platform.0, "architecture": spec.platform.1},
        })
    }

    /// Stores an attestation manifest for the image manifest `subject` and
    /// returns its descriptor, annotated as Docker buildx writes it.
    pub fn attestation(&mut self, subject: &str) -> Value {
        let statement = json!({"_type": "https://in-toto.io/Statement/v0.1", "predicate": {}});
        let layer = serde_json::to_vec(&statement).expect("statement serialises");
        let layer_size = layer.len();
        let config = b"{}".to_vec();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.blob(config), "size": 2},
            "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": self.blob(layer), "size": layer_size}],
        });
        let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let size = bytes.len();
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": self.blob(bytes),
            "size": size,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": subject,
            },
        })
    }

    /// Stores an image index of `children` and returns its descriptor.
    pub fn index(&mut self, children: Vec<Value>, name: Option<&str>) -> Value {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": children,
        });
        let bytes = serde_json::to_vec(&index).expect("index serialises");
        let size = bytes.len();
        let mut descriptor = json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": self.blob(bytes),
            "size": size,
        });
        if let Some(name) = name {
            descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        }
        descriptor
    }

    /// Replaces the bytes of a stored blob, keeping its digest name.
    pub fn corrupt(&mut self, digest: &str, bytes: Vec<u8>) {
        for (name, stored) in &mut self.blobs {
            if name == digest {
                *stored = bytes.clone();
            }
        }
    }

    fn index_json(&self) -> Vec<u8> {
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": self.manifests});
        serde_json::to_vec(&index).expect("index serialises")
    }

    /// Returns every file of the layout as (path, bytes).
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = vec![
            (
                "oci-layout".to_owned(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".to_owned(), self.index_json()),
        ];
        for (digest, bytes) in &self.blobs {
            files.push((format!("blobs/sha256/{}", hex_of(digest)), bytes.clone()));
        }
        files
    }

    /// Writes the layout as a directory under `root`.
    pub fn write_dir(&self, root: &Path) -> PathBuf {
        let dir = root.join("layout");
        write_files(&dir, &self.files());
        dir
    }

    /// Writes the layout as a tar file under `root`.
    pub fn write_tar(&self, root: &Path) -> PathBuf {
        let path = root.join("layout.tar");
        std::fs::write(&path, tar_of(&self.files())).expect("layout tar writes");
        path
    }
}

/// Writes files under a directory.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("file has a parent"))
            .expect("directory creates");
        std::fs::write(&path, bytes).expect("file writes");
    }
}

/// Packs files into a tar stream.
pub fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = LayerBuilder::new();
    for (name, bytes) in files {
        builder = builder.file(name, bytes);
    }
    builder.finish()
}

/// How a docker-archive is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct DockerStyle {
    /// gzip the whole archive.
    pub gzip_whole: bool,
    /// Docker 25 and later: `blobs/sha256/` members plus `index.json`.
    pub oci_files: bool,
    /// Layer members compressed as the image spec says (else plain tars).
    pub compressed_members: bool,
}

/// Writes a docker-archive of tagged images and returns its bytes.
pub fn docker_archive(images: &[(&str, &ImageSpec)], style: DockerStyle) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifest = Vec::new();
    let mut index = Vec::new();
    let add = |files: &mut Vec<(String, Vec<u8>)>, name: String, bytes: Vec<u8>| {
        if !files.iter().any(|(existing, _)| *existing == name) {
            files.push((name, bytes));
        }
    };
    for (tag, spec) in images {
        let config = spec.config();
        let config_digest = digest(&config);
        let config_name = if style.oci_files {
            format!("blobs/sha256/{}", hex_of(&config_digest))
        } else {
            format!("{}.json", hex_of(&config_digest))
        };
        add(&mut files, config_name.clone(), config);
        let mut layer_names = Vec::new();
        let mut layer_descriptors = Vec::new();
        for (i, tar) in spec.tars.iter().enumerate() {
            let blob = if style.compressed_members {
                compress(tar, spec.codec(i))
            } else {
                tar.clone()
            };
            let blob_digest = digest(&blob);
            let name = if style.oci_files {
                format!("blobs/sha256/{}", hex_of(&blob_digest))
            } else {
                format!("{}/layer.tar", hex_of(&blob_digest))
            };
            let codec = if style.compressed_members {
                spec.codec(i)
            } else {
                Codec::Plain
            };
            layer_descriptors.push(
                json!({"mediaType": media_type(codec), "digest": blob_digest, "size": blob.len()}),
            );
            add(&mut files, name.clone(), blob);
            layer_names.push(name);
        }
        manifest.push(json!({"Config": config_name, "RepoTags": [tag], "Layers": layer_names}));
        let image_manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 0},
            "layers": layer_descriptors,
        });
        let image_manifest = serde_json::to_vec(&image_manifest).expect("manifest serialises");
        let manifest_digest = digest(&image_manifest);
        index.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": image_manifest.len(),
            "annotations": {"io.containerd.image.name": tag, "org.opencontainers.image.ref.name": tag},
        }));
        if style.oci_files {
            add(
                &mut files,
                format!("blobs/sha256/{}", hex_of(&manifest_digest)),
                image_manifest,
            );
        }
    }
    files.push((
        "manifest.json".to_owned(),
        serde_json::to_vec(&manifest).expect("manifest serialises"),
    ));
    if style.oci_files {
        let index = json!({"schemaVersion": 2, "manifests": index});
        files.push((
            "index.json".to_owned(),
            serde_json::to_vec(&index).expect("index serialises"),
        ));
        files.push((
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
    }
    let tar = tar_of(&files);
    if style.gzip_whole { gzip(&tar) } else { tar }
}

/// Writes bytes to a file under `root` and returns its path.
pub fn write(root: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = root.join(name);
    std::fs::write(&path, bytes).expect("file writes");
    path
}
