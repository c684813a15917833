//! NACHA record layer: cutting a stream into 94-character records (with or
//! without line breaks, short lines kept short) and reading fixed-position
//! fields as the NACHA rules number them.

use std::io::BufRead;

use crate::money::format_minor;

/// Record length fixed by the NACHA rules.
pub const RECORD: usize = 94;

/// Splits the stream into 94-byte records, with or without line breaks.
pub struct Records<R> {
    inner: R,
    line: u64,
    at_line_start: bool,
}

impl<R: BufRead> Records<R> {
    /// Wraps a buffered stream.
    pub fn new(inner: R) -> Self {
        Records { inner, line: 0, at_line_start: true }
    }

    /// Next record and the line it starts on; short lines come back short.
    pub fn next(&mut self, rec: &mut Vec<u8>) -> std::io::Result<Option<u64>> {
        rec.clear();
        let mut start_line = None;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(start_line);
            }
            let b = buf[0];
            if b == b'\n' || b == b'\r' {
                self.inner.consume(1);
                if b == b'\n' || self.peek_is_not_lf()? {
                    self.at_line_start = true;
                }
                if start_line.is_some() {
                    return Ok(start_line);
                }
                continue;
            }
            if self.at_line_start {
                self.line += 1;
                self.at_line_start = false;
            }
            start_line.get_or_insert(self.line);
            let take = buf.iter().take(RECORD - rec.len()).take_while(|&&c| c != b'\n' && c != b'\r').count();
            rec.extend_from_slice(&buf[..take]);
            self.inner.consume(take);
            if rec.len() == RECORD {
                return Ok(start_line);
            }
        }
    }

    fn peek_is_not_lf(&mut self) -> std::io::Result<bool> {
        let buf = self.inner.fill_buf()?;
        Ok(buf.first() != Some(&b'\n'))
    }
}

/// Text of 1-based inclusive positions `from..=to`.
pub fn field(rec: &[u8], from: usize, to: usize) -> String {
    // Positions are 1-based and inclusive, as printed in the NACHA rules.
    String::from_utf8_lossy(rec.get(from - 1..to).unwrap_or(b"")).into_owned()
}

/// Digits at `from..=to` as a number; `None` if blank or not digits.
pub fn number(rec: &[u8], from: usize, to: usize) -> Option<u64> {
    let f = field(rec, from, to);
    let t = f.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Minor units as a USD decimal string for messages.
pub fn usd(minor: Option<u64>) -> String {
    minor.map_or_else(|| "unreadable".to_owned(), |m| format_minor(i128::from(m), 2))
}
