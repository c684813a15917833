//! BAI2 record grammar: splitting physical lines into logical records,
//! walking comma-separated fields across `88` continuations, funds-type
//! extras, type-code directions and control-total comparison.

use crate::emit::{Out, check_equal};
use crate::model::Direction;
use crate::money::parse_implied;

/// Direction of a BAI type code, `None` for status and non-transaction codes.
pub fn direction(code: u32) -> Option<Direction> {
    match code {
        100..=399 => Some(Direction::Credit),
        400..=699 => Some(Direction::Debit),
        // Customised codes: 920-959 credits, 960-999 debits.
        920..=959 => Some(Direction::Credit),
        960..=999 => Some(Direction::Debit),
        _ => None,
    }
}

/// Cursor over the comma-separated fields of a record and its continuations;
/// the boundary between two segments also separates fields.
pub struct Fields<'a> {
    segments: &'a [String],
    seg: usize,
    pos: usize,
}

impl<'a> Fields<'a> {
    /// Starts at the first field.
    pub fn new(segments: &'a [String]) -> Self {
        Fields { segments, seg: 0, pos: 0 }
    }

    /// Next field, `None` when all are read.
    pub fn field(&mut self) -> Option<&'a str> {
        while self.seg < self.segments.len() {
            let s = self.segments[self.seg].as_str();
            if self.pos > s.len() {
                self.seg += 1;
                self.pos = 0;
                continue;
            }
            let rest = &s[self.pos..];
            return Some(match rest.find(',') {
                Some(p) => {
                    self.pos += p + 1;
                    &rest[..p]
                }
                None => {
                    self.pos = s.len() + 1;
                    rest
                }
            });
        }
        None
    }

    /// Everything not yet read, continuations joined by a blank (free text).
    pub fn rest(&mut self) -> String {
        let mut parts = Vec::new();
        while self.seg < self.segments.len() {
            let s = &self.segments[self.seg];
            if self.pos <= s.len() {
                parts.push(&s[self.pos..]);
            }
            self.seg += 1;
            self.pos = 0;
        }
        parts.join(" ")
    }
}

/// Drops one record-closing `/`.
pub fn strip_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

/// Splits a physical line into logical records at a `/` directly followed by
/// another record code. A `/` inside text stays, unless it is followed by
/// something that looks exactly like the start of a record.
pub fn split_logical(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' {
            let next = &line[i + 1..];
            let is_record =
                ["01,", "02,", "03,", "16,", "49,", "88,", "98,", "99,"].iter().any(|c| next.starts_with(c));
            if is_record {
                out.push(&line[start..=i]);
                start = i + 1;
            }
        }
        i += 1;
    }
    if start < line.len() {
        out.push(&line[start..]);
    }
    out
}

/// Reads the extra fields a funds type brings (S: three amounts; D: a count
/// and that many day/amount pairs; V: date and time).
pub fn skip_funds(funds: &str, f: &mut Fields<'_>) -> Result<(), String> {
    match funds {
        "" | "Z" | "0" | "1" | "2" => Ok(()),
        "V" => {
            f.field();
            f.field();
            Ok(())
        }
        "S" => {
            for _ in 0..3 {
                f.field();
            }
            Ok(())
        }
        "D" => {
            let n: usize = f
                .field()
                .unwrap_or("")
                .trim()
                .parse()
                .map_err(|_| "funds type D without a distribution count".to_owned())?;
            if n > 1000 {
                return Err(format!("implausible funds distribution count {n}"));
            }
            for _ in 0..n * 2 {
                f.field();
            }
            Ok(())
        }
        other => Err(format!("unknown funds type {other:?}")),
    }
}

/// Control totals are signed integers of minor units ("+00000000000834000").
pub fn check_total(out: &mut Out, idx: Option<u32>, line: Option<u64>, what: &str, declared: &str, computed: i128) {
    match parse_implied(declared) {
        Ok(d) => check_equal(out, idx, line, what, i128::from(d), computed),
        Err(_) => out.finding(idx, line, format!("{what}: unreadable value {declared:?}")),
    }
}
