//! Scanning a byte stream of any length in bounded, overlapping chunks.
//!
//! The buffer holds at most `chunk_size + overlap` bytes. Each chunk keeps
//! the last `overlap` bytes of the one before it, and a match is accepted
//! only in the chunk where it starts before the overlap tail, so a match up
//! to `overlap` bytes long that crosses a chunk edge is found exactly once.

use std::io::{self, Read};

use crate::detect::{Detector, Encoding, Match};

/// Size of a new file's buffer, before it grows to a full chunk.
const INITIAL_BUFFER: usize = 64 << 10;

/// A match with its position in the whole stream.
#[derive(Clone, Debug)]
pub(crate) struct StreamMatch {
    /// The match; its span is relative to the stream start.
    pub(crate) found: Match,
    /// 1-based line of the match start, counting `\n` bytes before it.
    pub(crate) line: u64,
}

/// Push-based chunked scanner for one stream (one file's bytes).
#[derive(Debug)]
pub(crate) struct ChunkScanner<'d> {
    detector: &'d Detector,
    buffer: Vec<u8>,
    filled: usize,
    chunk_size: usize,
    overlap: usize,
    /// Stream offset of `buffer[0]`.
    base: u64,
    /// Newlines in the stream before `buffer[0]`.
    lines_before: u64,
    /// Encoding reported for raw matches (the stream may be a UTF-16 view).
    encoding: Encoding,
    scratch: Vec<Match>,
}

impl<'d> ChunkScanner<'d> {
    /// Creates a scanner. `overlap` is raised to the detector's longest
    /// match and `chunk_size` to twice the overlap.
    pub(crate) fn new(
        detector: &'d Detector,
        chunk_size: usize,
        overlap: usize,
        encoding: Encoding,
    ) -> Self {
        let overlap = overlap.max(detector.max_match_len()).max(1);
        let chunk_size = chunk_size.max(2 * overlap).max(64);
        ChunkScanner {
            detector,
            buffer: Vec::new(),
            filled: 0,
            chunk_size,
            overlap,
            base: 0,
            lines_before: 0,
            encoding,
            scratch: Vec::new(),
        }
    }

    fn capacity(&self) -> usize {
        self.chunk_size + self.overlap
    }

    /// Allocates a small buffer first: most files in a layer are small, and
    /// zeroing a full chunk for each of them costs more than scanning them.
    fn ensure_buffer(&mut self) {
        if self.buffer.is_empty() {
            self.buffer = vec![0; INITIAL_BUFFER.min(self.capacity())];
        }
    }

    /// Makes room for more bytes: grows the buffer up to its capacity, and
    /// scans a full chunk only once it is at capacity.
    fn make_room(&mut self, path: Option<&str>, emit: &mut dyn FnMut(StreamMatch)) {
        if self.filled < self.buffer.len() {
            return;
        }
        if self.buffer.len() < self.capacity() {
            let grown = (self.buffer.len() * 4).min(self.capacity());
            self.buffer.resize(grown, 0);
        } else {
            self.scan_full(path, emit);
        }
    }

    /// Reads from `reader` straight into the buffer, scanning each full
    /// chunk. Returns the bytes read by this call; 0 means end of stream.
    /// The bytes just read are passed to `observe` (for a UTF-16 view or
    /// a nested-archive copy) before they are scanned.
    pub(crate) fn read_from(
        &mut self,
        reader: &mut dyn Read,
        path: Option<&str>,
        observe: &mut dyn FnMut(&[u8]),
        emit: &mut dyn FnMut(StreamMatch),
    ) -> io::Result<usize> {
        self.ensure_buffer();
        self.make_room(path, emit);
        let read = loop {
            match reader.read(&mut self.buffer[self.filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        observe(&self.buffer[self.filled..self.filled + read]);
        self.filled += read;
        Ok(read)
    }

    /// Appends `data`, scanning each full chunk.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        path: Option<&str>,
        emit: &mut dyn FnMut(StreamMatch),
    ) {
        self.ensure_buffer();
        while !data.is_empty() {
            self.make_room(path, emit);
            let room = self.buffer.len() - self.filled;
            let take = room.min(data.len());
            self.buffer[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
        }
    }

    /// Scans what is left as the final chunk and returns the total stream
    /// length.
    pub(crate) fn finish(&mut self, path: Option<&str>, emit: &mut dyn FnMut(StreamMatch)) -> u64 {
        let end = self.filled;
        self.scan_range(end, end, path, emit);
        let total = self.base + end as u64;
        self.filled = 0;
        total
    }

    /// Scans a full buffer, accepting matches that start before the
    /// overlap tail, then moves the tail to the front.
    fn scan_full(&mut self, path: Option<&str>, emit: &mut dyn FnMut(StreamMatch)) {
        let accept_end = self.filled - self.overlap;
        self.scan_range(self.filled, accept_end, path, emit);
        self.lines_before += count_newlines(&self.buffer[..accept_end]);
        self.buffer.copy_within(accept_end..self.filled, 0);
        self.filled -= accept_end;
        self.base += accept_end as u64;
    }

    fn scan_range(
        &mut self,
        end: usize,
        accept_end: usize,
        path: Option<&str>,
        emit: &mut dyn FnMut(StreamMatch),
    ) {
        let haystack = &self.buffer[..end];
        self.scratch.clear();
        self.detector
            .scan(haystack, 0..accept_end, path, &mut self.scratch);
        for mut found in self.scratch.drain(..) {
            let line = self.lines_before + count_newlines(&haystack[..found.secret_start]) + 1;
            let start = self.base + found.span.start as u64;
            let end = self.base + found.span.end as u64;
            found.secret_start =
                usize::try_from(self.base + found.secret_start as u64).unwrap_or(usize::MAX);
            found.span = usize::try_from(start).unwrap_or(usize::MAX)
                ..usize::try_from(end).unwrap_or(usize::MAX);
            if found.encoding == crate::detect::Encoding::Raw {
                found.encoding = self.encoding;
            }
            emit(StreamMatch { found, line });
        }
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::KnownValues;
    use crate::rules::RuleSet;

    fn scan_all(
        detector: &Detector,
        data: &[u8],
        chunk: usize,
        read_size: usize,
    ) -> Vec<StreamMatch> {
        let mut scanner = ChunkScanner::new(detector, chunk, 0, Encoding::Raw);
        let mut out = Vec::new();
        let mut reader = ShortReader { data, read_size };
        loop {
            let n = scanner
                .read_from(&mut reader, None, &mut |_| {}, &mut |m| out.push(m))
                .unwrap();
            if n == 0 {
                break;
            }
        }
        scanner.finish(None, &mut |m| out.push(m));
        out
    }

    struct ShortReader<'a> {
        data: &'a [u8],
        read_size: usize,
    }

    impl Read for ShortReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.read_size.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn match_across_every_chunk_edge_found_once() {
        let value = "leaked-needle-0123456789";
        let mut known = KnownValues::new();
        known.add_lines(value.as_bytes());
        let detector = Detector::new(RuleSet::new(), &known).unwrap();
        for offset in 0..200 {
            let mut data = vec![b'.'; 400];
            data[100] = b'\n';
            data.splice(offset..offset, value.bytes());
            for read_size in [1, 7, 4096] {
                let found = scan_all(&detector, &data, 1, read_size);
                let raw: Vec<_> = found
                    .iter()
                    .filter(|m| m.found.encoding == Encoding::Raw)
                    .collect();
                assert_eq!(raw.len(), 1, "offset {offset} read size {read_size}");
                assert_eq!(raw[0].found.span.start, offset);
                let expected_line = if offset > 100 { 2 } else { 1 };
                assert_eq!(raw[0].line, expected_line, "offset {offset}");
            }
        }
    }
}
