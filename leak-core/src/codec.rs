//! Choosing a layer's codec from its first bytes, and the decoders.

use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;

/// Compression of a layer blob, as told by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// gzip, one or more members.
    Gzip,
    /// Zstandard, one or more frames.
    Zstd,
    /// An uncompressed tar stream.
    Tar,
    /// An empty blob.
    Empty,
    /// Anything else: scanned as raw bytes, without file paths.
    Unknown,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Sniffs the codec from the first bytes of a blob.
pub fn sniff(head: &[u8]) -> Codec {
    if head.is_empty() {
        Codec::Empty
    } else if head.starts_with(&GZIP_MAGIC) {
        Codec::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        Codec::Zstd
    } else if looks_like_tar(head) {
        Codec::Tar
    } else {
        Codec::Unknown
    }
}

/// Checks a tar header: the `ustar` magic, or a valid header checksum, or
/// an all-zero end-of-archive block.
pub fn looks_like_tar(head: &[u8]) -> bool {
    if head.len() < 512 {
        return head.len() >= 263 && &head[257..262] == b"ustar";
    }
    let block = &head[..512];
    if &block[257..262] == b"ustar" || block.iter().all(|&b| b == 0) {
        return true;
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let computed: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    stored == Some(computed)
}

/// A reader that yields the sniffed head again, then the rest.
pub(crate) type Peeked<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Reads up to 512 bytes of `reader` to sniff its codec, and returns the
/// codec with a reader that yields the whole stream again.
pub(crate) fn peek_codec<R: Read>(mut reader: R) -> io::Result<(Codec, Peeked<R>)> {
    let mut head = vec![0u8; 512];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    head.truncate(filled);
    let codec = sniff(&head);
    Ok((codec, io::Cursor::new(head).chain(reader)))
}

/// Events a decoder reports that do not stop decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecWarning {
    /// Bytes after the last gzip member that are not another member.
    TrailingBytes {
        /// Number of bytes ignored.
        count: u64,
    },
}

/// gzip decoder over every member of a stream, which reports bytes after
/// the last member as a warning instead of failing.
#[derive(Debug)]
pub(crate) struct MultiGzDecoder<R: BufRead> {
    state: GzState<R>,
    pub(crate) warnings: Vec<CodecWarning>,
}

#[derive(Debug)]
enum GzState<R: BufRead> {
    Member(Box<GzDecoder<Unread<R>>>),
    Between(Unread<R>),
    Done,
}

impl<R: BufRead> MultiGzDecoder<R> {
    pub(crate) fn new(reader: R) -> Self {
        let reader = Unread {
            byte: None,
            inner: reader,
        };
        MultiGzDecoder {
            state: GzState::Member(Box::new(GzDecoder::new(reader))),
            warnings: Vec::new(),
        }
    }
}

/// A `BufRead` that can put back one consumed byte, so the two magic bytes
/// of a gzip member can be checked when a buffer ends between them.
#[derive(Debug)]
struct Unread<R> {
    byte: Option<u8>,
    inner: R,
}

impl<R: BufRead> Unread<R> {
    /// Returns the first two bytes ahead, or fewer at the end of the stream,
    /// without consuming them.
    fn peek_two(&mut self) -> io::Result<Vec<u8>> {
        let put_back = self.byte.is_some();
        let head = self.fill_buf()?;
        if head.len() != 1 || put_back {
            return Ok(head.iter().take(2).copied().collect());
        }
        let first = head[0];
        self.inner.consume(1);
        let second = self.inner.fill_buf()?.first().copied();
        self.byte = Some(first);
        Ok(std::iter::once(first).chain(second).collect())
    }
}

impl<R: BufRead> Read for Unread<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.byte.take() {
            Some(byte) => {
                buf[0] = byte;
                Ok(1)
            }
            None => self.inner.read(buf),
        }
    }
}

impl<R: BufRead> BufRead for Unread<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match &self.byte {
            Some(byte) => Ok(std::slice::from_ref(byte)),
            None => self.inner.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        if amount > 0 && self.byte.take().is_some() {
            self.inner.consume(amount - 1);
        } else {
            self.inner.consume(amount);
        }
    }
}

impl<R: BufRead> Read for MultiGzDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, GzState::Done) {
                GzState::Member(mut decoder) => {
                    let n = decoder.read(buf)?;
                    if n > 0 {
                        self.state = GzState::Member(decoder);
                        return Ok(n);
                    }
                    self.state = GzState::Between(decoder.into_inner());
                }
                GzState::Between(mut reader) => {
                    let head = reader.peek_two()?;
                    if head.is_empty() {
                        return Ok(0);
                    }
                    if head.starts_with(&GZIP_MAGIC) {
                        self.state = GzState::Member(Box::new(GzDecoder::new(reader)));
                        continue;
                    }
                    let count = io::copy(&mut reader, &mut io::sink())?;
                    self.warnings.push(CodecWarning::TrailingBytes { count });
                    return Ok(0);
                }
                GzState::Done => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn multi_member_gzip_decodes_all_members() {
        let mut data = gzip(b"first ");
        data.extend(gzip(b"second"));
        let mut decoder = MultiGzDecoder::new(&data[..]);
        let mut out = String::new();
        decoder.read_to_string(&mut out).unwrap();
        assert_eq!(out, "first second");
        assert!(decoder.warnings.is_empty());
    }

    #[test]
    fn trailing_bytes_are_a_warning() {
        let mut data = gzip(b"payload");
        data.extend_from_slice(&[0u8; 100]);
        let mut decoder = MultiGzDecoder::new(&data[..]);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"payload");
        assert_eq!(
            decoder.warnings,
            vec![CodecWarning::TrailingBytes { count: 100 }]
        );
    }

    #[test]
    fn one_byte_buffers_decode_every_member() {
        let mut data = gzip(b"first ");
        data.extend(gzip(b"second"));
        data.push(GZIP_MAGIC[0]);
        let mut decoder = MultiGzDecoder::new(std::io::BufReader::with_capacity(1, &data[..]));
        let mut out = String::new();
        decoder.read_to_string(&mut out).unwrap();
        assert_eq!(out, "first second");
        assert_eq!(
            decoder.warnings,
            vec![CodecWarning::TrailingBytes { count: 1 }]
        );
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let data = gzip(&vec![7u8; 100_000]);
        let mut decoder = MultiGzDecoder::new(&data[..data.len() / 2]);
        let mut out = Vec::new();
        assert!(decoder.read_to_end(&mut out).is_err());
    }

    #[test]
    fn sniff_by_magic() {
        assert_eq!(sniff(&gzip(b"x")), Codec::Gzip);
        assert_eq!(sniff(&ZSTD_MAGIC), Codec::Zstd);
        assert_eq!(sniff(b""), Codec::Empty);
        assert_eq!(sniff(b"hello world"), Codec::Unknown);
        assert_eq!(sniff(&[0u8; 1024]), Codec::Tar);
    }
}
