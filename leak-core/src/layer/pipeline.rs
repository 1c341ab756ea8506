//! The two-thread pipeline: the calling thread reads and decompresses the
//! blob, a scoped thread walks the tar and matches, and bounded channels
//! between them keep memory fixed while decompression overlaps matching.

use std::io::{self, BufReader, Read};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::walk::Walker;
use super::{LayerInfo, LayerReport, LayerScanner};
use crate::codec::{Codec, CodecWarning, MultiGzDecoder, peek_codec};
use crate::digest::HashingReader;
use crate::report::{Gap, GapKind, Severity};

type Block = io::Result<Vec<u8>>;

/// What the decompressing side learned.
struct Produced {
    actual_digest: Option<String>,
    compressed_bytes: u64,
    warnings: Vec<CodecWarning>,
    error: Option<String>,
}

pub(super) fn scan_layer(
    scanner: &LayerScanner<'_>,
    raw: &mut dyn Read,
    info: &LayerInfo,
) -> LayerReport {
    let mut report = LayerReport {
        name: info.name.clone(),
        digest: info.digest.clone(),
        ..LayerReport::default()
    };
    let options = scanner.options;
    let mut hashing = HashingReader::new(raw);
    let outcome = std::thread::scope(|scope| {
        let (codec, stream) = match peek_codec(&mut hashing) {
            Ok(peeked) => peeked,
            Err(error) => return Err(error),
        };
        let (block_tx, block_rx) = bounded::<Block>(options.pipeline_depth.max(1));
        let (recycle_tx, recycle_rx) = bounded::<Vec<u8>>(options.pipeline_depth.max(1) + 2);
        let walker = scope.spawn(move || {
            let reader = ChannelReader::new(block_rx, recycle_tx);
            let walker = Walker::new(scanner.detector, options, info);
            walker.walk(reader, codec)
        });
        let mut produced = produce(
            stream,
            codec,
            block_tx,
            recycle_rx,
            options.pipeline_block_size,
        );
        match hashing.finish() {
            Ok((digest, length)) => {
                produced.actual_digest = Some(digest);
                produced.compressed_bytes = length;
            }
            Err(error) => {
                produced.compressed_bytes = hashing.count();
                produced.error.get_or_insert_with(|| error.to_string());
            }
        }
        Ok((codec, produced, walker.join()))
    });
    let (codec, produced, walked) = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            report.gaps.push(layer_gap(
                info,
                GapKind::LayerUnreadable,
                format!("cannot read layer {}: {error}", info.name),
            ));
            return report;
        }
    };
    report.codec = Some(codec);

    match walked {
        Ok(walked) => {
            report.actual_diff_id = walked.diff_id;
            report.uncompressed_bytes = walked.uncompressed_bytes;
            report.bytes_scanned = walked.bytes_scanned;
            report.entries = walked.entries;
            report.findings = walked.findings;
            report.pending_hardlinks = walked.pending_hardlinks;
            report.gaps.extend(walked.gaps);
        }
        Err(_) => report.gaps.push(layer_gap(
            info,
            GapKind::TarCorrupt,
            "the layer walker panicked; this is a bug, please report it".to_owned(),
        )),
    }
    report.compressed_bytes = produced.compressed_bytes;
    report.actual_digest = produced.actual_digest.clone();
    finish_checks(&mut report, info, codec, produced);
    report.complete = !report
        .gaps
        .iter()
        .any(|gap| gap.severity == Severity::Error);
    report
}

fn finish_checks(report: &mut LayerReport, info: &LayerInfo, codec: Codec, produced: Produced) {
    if let Some(error) = produced.error {
        report.gaps.push(layer_gap(
            info,
            GapKind::Decompression,
            format!(
                "layer {}: {codec:?} stream failed after {} compressed bytes: {error}",
                info.name, produced.compressed_bytes
            ),
        ));
    }
    for warning in produced.warnings {
        match warning {
            CodecWarning::TrailingBytes { count } => report.gaps.push(Gap {
                severity: Severity::Warning,
                ..layer_gap(
                    info,
                    GapKind::TrailingBytes,
                    format!(
                        "layer {}: {count} bytes after the last gzip member were ignored",
                        info.name
                    ),
                )
            }),
        }
    }
    if let (Some(expected), Some(actual)) = (&info.digest, &report.actual_digest)
        && expected != actual
    {
        report.gaps.push(layer_gap(
            info,
            GapKind::DigestMismatch,
            format!(
                "layer {}: blob digest mismatch: expected {expected}, actual {actual}",
                info.name
            ),
        ));
    }
    if let (Some(expected), Some(actual)) = (&info.diff_id, &report.actual_diff_id) {
        let decoded_fully = !report
            .gaps
            .iter()
            .any(|gap| gap.kind == GapKind::Decompression);
        if expected != actual && decoded_fully {
            report.gaps.push(layer_gap(
                info,
                GapKind::DiffIdMismatch,
                format!(
                    "layer {}: diff ID mismatch: expected {expected}, actual {actual}",
                    info.name
                ),
            ));
        }
    }
}

fn layer_gap(info: &LayerInfo, kind: GapKind, detail: String) -> Gap {
    let gap = Gap::new(kind, Severity::Error, detail);
    match &info.digest {
        Some(digest) => gap.with_digest(digest.clone()),
        None => gap.with_digest(info.name.clone()),
    }
}

/// Reads and decompresses the blob, sending fixed-size blocks; finishes
/// the blob digest by reading to the end.
fn produce<R: Read>(
    stream: R,
    codec: Codec,
    blocks: Sender<Block>,
    recycled: Receiver<Vec<u8>>,
    block_size: usize,
) -> Produced {
    let mut warnings = Vec::new();
    let result = match codec {
        Codec::Gzip => {
            let mut decoder = MultiGzDecoder::new(BufReader::with_capacity(128 << 10, stream));
            let result = pump(&mut decoder, &blocks, &recycled, block_size);
            warnings = std::mem::take(&mut decoder.warnings);
            result
        }
        Codec::Zstd => match zstd::stream::read::Decoder::new(stream) {
            Ok(mut decoder) => pump(&mut decoder, &blocks, &recycled, block_size),
            Err(error) => Err(error),
        },
        Codec::Tar | Codec::Empty | Codec::Unknown => {
            let mut stream = stream;
            pump(&mut stream, &blocks, &recycled, block_size)
        }
    };
    let error = match result {
        Ok(()) => None,
        Err(error) => {
            let message = error.to_string();
            let _ = blocks.send(Err(error));
            Some(message)
        }
    };
    drop(blocks);
    Produced {
        actual_digest: None,
        compressed_bytes: 0,
        warnings,
        error,
    }
}

fn pump(
    reader: &mut dyn Read,
    blocks: &Sender<Block>,
    recycled: &Receiver<Vec<u8>>,
    block_size: usize,
) -> io::Result<()> {
    loop {
        let mut block = recycled.try_recv().unwrap_or_default();
        block.resize(block_size, 0);
        let mut filled = 0;
        while filled < block.len() {
            match reader.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if filled > 0 {
                        block.truncate(filled);
                        let _ = blocks.send(Ok(block));
                    }
                    return Err(e);
                }
            }
        }
        if filled == 0 {
            return Ok(());
        }
        block.truncate(filled);
        if blocks.send(Ok(block)).is_err() {
            // The walker stopped; nothing more to do for it.
            return Ok(());
        }
    }
}

/// `Read` over the blocks of a channel, returning spent blocks for reuse.
pub(super) struct ChannelReader {
    blocks: Receiver<Block>,
    recycle: Sender<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
    failed: Option<String>,
}

impl ChannelReader {
    fn new(blocks: Receiver<Block>, recycle: Sender<Vec<u8>>) -> Self {
        ChannelReader {
            blocks,
            recycle,
            current: Vec::new(),
            position: 0,
            failed: None,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            if let Some(message) = &self.failed {
                return Err(io::Error::other(message.clone()));
            }
            let spent = std::mem::take(&mut self.current);
            if spent.capacity() > 0 {
                let _ = self.recycle.try_send(spent);
            }
            self.position = 0;
            match self.blocks.recv() {
                Ok(Ok(block)) => self.current = block,
                Ok(Err(error)) => {
                    self.failed = Some(format!("decompression failed: {error}"));
                    return Err(error);
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}
