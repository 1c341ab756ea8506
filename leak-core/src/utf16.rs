//! Detecting UTF-16 text from a file's first bytes and transcoding it to
//! UTF-8 as it streams, so rules written for ASCII find secrets in it.

use crate::detect::Encoding;

/// Number of leading bytes used to detect UTF-16.
pub(crate) const SNIFF_LEN: usize = 128;

/// Detects UTF-16 from a byte-order mark or, without one, from ASCII text
/// with a zero byte beside every character.
pub(crate) fn detect(head: &[u8]) -> Option<Encoding> {
    if head.starts_with(&[0xff, 0xfe]) {
        return Some(Encoding::Utf16le);
    }
    if head.starts_with(&[0xfe, 0xff]) {
        return Some(Encoding::Utf16be);
    }
    let pairs = head.len() / 2;
    if pairs < 8 {
        return None;
    }
    let text_like =
        |byte: u8| byte.is_ascii_graphic() || matches!(byte, b' ' | b'\n' | b'\r' | b'\t');
    let le = head
        .chunks_exact(2)
        .filter(|pair| pair[1] == 0 && text_like(pair[0]))
        .count();
    let be = head
        .chunks_exact(2)
        .filter(|pair| pair[0] == 0 && text_like(pair[1]))
        .count();
    let threshold = pairs * 9 / 10;
    if le >= threshold && le > be {
        Some(Encoding::Utf16le)
    } else if be >= threshold {
        Some(Encoding::Utf16be)
    } else {
        None
    }
}

/// Streaming UTF-16 to UTF-8 transcoder. Unpaired surrogates become
/// U+FFFD.
#[derive(Debug)]
pub(crate) struct Transcoder {
    big_endian: bool,
    pending_byte: Option<u8>,
    pending_high: Option<u16>,
    started: bool,
}

impl Transcoder {
    pub(crate) fn new(encoding: Encoding) -> Self {
        Transcoder {
            big_endian: encoding == Encoding::Utf16be,
            pending_byte: None,
            pending_high: None,
            started: false,
        }
    }

    /// Transcodes `input`, appending UTF-8 to `out`.
    pub(crate) fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if let Some(first) = self.pending_byte.take() {
            let Some((&second, rest)) = input.split_first() else {
                self.pending_byte = Some(first);
                return;
            };
            self.unit([first, second], out);
            input = rest;
        }
        let mut pairs = input.chunks_exact(2);
        for pair in &mut pairs {
            self.unit([pair[0], pair[1]], out);
        }
        if let [last] = pairs.remainder() {
            self.pending_byte = Some(*last);
        }
    }

    fn unit(&mut self, bytes: [u8; 2], out: &mut Vec<u8>) {
        let unit = if self.big_endian {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        };
        if !self.started {
            self.started = true;
            if unit == 0xfeff {
                return;
            }
        }
        let decoded = match (self.pending_high.take(), unit) {
            (Some(high), 0xdc00..=0xdfff) => {
                let code =
                    0x10000 + ((u32::from(high) - 0xd800) << 10) + (u32::from(unit) - 0xdc00);
                char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
            }
            (previous, 0xd800..=0xdbff) => {
                if previous.is_some() {
                    push_char(char::REPLACEMENT_CHARACTER, out);
                }
                self.pending_high = Some(unit);
                return;
            }
            (previous, _) => {
                if previous.is_some() {
                    push_char(char::REPLACEMENT_CHARACTER, out);
                }
                char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER)
            }
        };
        push_char(decoded, out);
    }
}

fn push_char(c: char, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    #[test]
    fn detects_le_without_bom() {
        assert_eq!(
            detect(&utf16le("password = something long")),
            Some(Encoding::Utf16le)
        );
        assert_eq!(detect(b"plain ascii text that is long"), None);
    }

    #[test]
    fn transcodes_across_odd_splits() {
        let text = "key=värde 😀 end";
        let mut bytes = vec![0xff, 0xfe];
        bytes.extend(utf16le(text));
        for split in 0..bytes.len() {
            let mut transcoder = Transcoder::new(Encoding::Utf16le);
            let mut out = Vec::new();
            transcoder.push(&bytes[..split], &mut out);
            transcoder.push(&bytes[split..], &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), text, "split {split}");
        }
    }
}
