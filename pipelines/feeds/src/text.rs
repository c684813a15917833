//! Byte-level input plumbing shared by the parsers: a bounded line reader
//! that accepts LF, CRLF and lone CR, per-line transcoding of non-UTF-8 text,
//! stream transcoding for UTF-16, look-ahead for format checks, and hashing.

use std::io::{self, BufRead, BufReader, Cursor, Read};

use encoding_rs::{Encoding, WINDOWS_1252};
use encoding_rs_io::DecodeReaderBytes;
use sha2::{Digest, Sha256};

/// Longest physical line kept; the excess is dropped and reported, so one
/// line without breaks cannot make memory grow with the file.
pub const MAX_LINE: usize = 64 * 1024;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A physical line without its terminator.
#[derive(Debug, Default, Clone)]
pub struct Line {
    /// Raw bytes as in the file.
    pub bytes: Vec<u8>,
    /// 1-based line number.
    pub number: u64,
    /// True when the line was longer than [`MAX_LINE`] and cut.
    pub truncated: bool,
}

/// Splits a byte stream into lines on LF, CRLF or lone CR.
pub struct LineReader<R> {
    inner: R,
    line_no: u64,
    skip_lf: bool,
    done: bool,
}

impl<R: BufRead> LineReader<R> {
    /// Wraps a buffered reader.
    pub fn new(inner: R) -> Self {
        LineReader { inner, line_no: 0, skip_lf: false, done: false }
    }

    /// Reads the next line into `line`; `Ok(false)` at end of input.
    pub fn next_line(&mut self, line: &mut Line) -> io::Result<bool> {
        line.bytes.clear();
        line.truncated = false;
        if self.done {
            return Ok(false);
        }
        let mut any = false;
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                self.done = true;
                break;
            }
            let mut start = 0;
            if self.skip_lf {
                self.skip_lf = false;
                if buf[0] == b'\n' {
                    start = 1;
                }
            }
            any = true;
            let rest = &buf[start..];
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    push_bounded(line, &rest[..pos]);
                    if rest[pos] == b'\r' {
                        self.skip_lf = true;
                    }
                    self.inner.consume(start + pos + 1);
                    self.line_no += 1;
                    line.number = self.line_no;
                    return Ok(true);
                }
                None => {
                    push_bounded(line, rest);
                    let n = buf.len();
                    self.inner.consume(n);
                }
            }
        }
        if any && (!line.bytes.is_empty() || line.truncated) {
            self.line_no += 1;
            line.number = self.line_no;
            return Ok(true);
        }
        Ok(false)
    }

    /// Number of lines returned so far.
    pub fn line_number(&self) -> u64 {
        self.line_no
    }
}

fn push_bounded(line: &mut Line, bytes: &[u8]) {
    let room = MAX_LINE.saturating_sub(line.bytes.len());
    if bytes.len() > room {
        line.truncated = true;
    }
    line.bytes.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// Decodes one line: UTF-8 when valid, otherwise the legacy `fallback`
/// encoding. Returns whether the fallback was used so the parser can report
/// the transcoding once.
pub fn decode(bytes: &[u8], fallback: &'static Encoding) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => {
            let (text, _) = fallback.decode_without_bom_handling(bytes);
            (text.into_owned(), true)
        }
    }
}

/// The legacy encoding assumed for text that is not valid UTF-8: Windows-1252
/// is a superset of ISO-8859-1 for printable text and is what the sampled
/// European and US bank systems emit.
pub fn default_fallback() -> &'static Encoding {
    WINDOWS_1252
}

/// Reads up to `n` bytes from the front of `reader` and returns them together
/// with a reader that yields the whole stream again from the start.
pub fn peek<R: Read>(mut reader: R, n: usize) -> io::Result<(Vec<u8>, impl Read)> {
    let mut head = Vec::with_capacity(n.min(1 << 16));
    (&mut reader).take(n as u64).read_to_end(&mut head)?;
    let replay = Cursor::new(head.clone()).chain(reader);
    Ok((head, replay))
}

/// Wraps a stream so that a UTF-16 or UTF-8 byte-order mark is honoured:
/// UTF-16 becomes UTF-8, a UTF-8 BOM is dropped, other bytes pass unchanged.
pub fn bom_aware<R: Read>(reader: R) -> BufReader<DecodeReaderBytes<R, Vec<u8>>> {
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .bom_sniffing(true)
        .strip_bom(true)
        .utf8_passthru(true)
        .build(reader);
    BufReader::with_capacity(64 * 1024, decoded)
}

/// Wraps a stream so that text in `encoding` arrives as UTF-8.
pub fn transcoding<R: Read>(reader: R, encoding: &'static Encoding) -> BufReader<DecodeReaderBytes<R, Vec<u8>>> {
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .bom_override(true)
        .strip_bom(true)
        .utf8_passthru(true)
        .build(reader);
    BufReader::with_capacity(64 * 1024, decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(u64, String)> {
        let mut r = LineReader::new(input);
        let mut l = Line::default();
        let mut out = Vec::new();
        while r.next_line(&mut l).unwrap() {
            out.push((l.number, String::from_utf8_lossy(&l.bytes).into_owned()));
        }
        out
    }

    #[test]
    fn splits_all_line_endings() {
        let got = lines(b"a\r\nb\rc\n\nd");
        let want: Vec<(u64, String)> =
            vec![(1, "a".into()), (2, "b".into()), (3, "c".into()), (4, "".into()), (5, "d".into())];
        assert_eq!(got, want);
        assert!(lines(b"").is_empty());
        assert_eq!(lines(b"x\r\n").len(), 1);
    }

    #[test]
    fn decodes_latin1_fallback() {
        let (s, used) = decode(b"Geb\xfchren", default_fallback());
        assert_eq!(s, "Gebühren");
        assert!(used);
    }
}
