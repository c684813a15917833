//! Auto-detection of every sample, and streaming of a large generated file.

mod common;

use std::io::Read;

use common::*;
use feeds::{Format, Item, SourceInfo, parse};

#[test]
fn every_readable_sample_is_detected() {
    let cases = [
        ("mt940", Format::Mt940),
        ("camt", Format::Camt),
        ("nacha", Format::Nacha),
        ("bai2", Format::Bai2),
        ("csv", Format::Csv),
    ];
    let mut seen = 0;
    for (dir, format) in cases {
        for entry in std::fs::read_dir(fixture(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name == "SOURCES.md" || name == "invalid_statement.sta" {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(Format::detect(&bytes), Some(format), "{name}");
            seen += 1;
        }
    }
    // 7 MT940 + 7 camt + 7 NACHA + 6 BAI2 + 6 CSV samples.
    assert_eq!(seen, 33);
    let bytes = std::fs::read(fixture("mt940/invalid_statement.sta")).unwrap();
    assert_eq!(Format::detect(&bytes), None);
    assert_eq!(Format::detect(b""), None);
    assert_eq!(Format::detect(b"\x00\x01\x02binary"), None);
}

#[test]
fn format_names_parse() {
    for (s, f) in [
        ("auto", None),
        ("mt940", Some(Format::Mt940)),
        ("camt", Some(Format::Camt)),
        ("nacha", Some(Format::Nacha)),
        ("bai2", Some(Format::Bai2)),
        ("csv", Some(Format::Csv)),
    ] {
        assert_eq!(s.parse::<Format>().ok(), f, "{s}");
    }
}

#[test]
fn report_json_has_the_contract_fields() {
    let r = report("bai2/sample2.txt");
    let v = serde_json::to_value(&r).unwrap();
    for key in ["format", "statements", "transactions", "totals", "findings", "rejects"] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(v["format"], "bai2");
    assert_eq!(v["totals"][0]["credits"], "309500.00");
    let text = r.to_string();
    assert!(text.contains("statements:   5") && text.contains("USD  credits 309500.00"), "{text}");
}

/// An endless MT940 stream cut at `limit` bytes, generated on the fly.
struct Generated {
    produced: u64,
    limit: u64,
    pending: Vec<u8>,
    n: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            if self.produced >= self.limit {
                return Ok(0);
            }
            self.n += 1;
            let mut s = format!(":20:S{}\n:25:ACC\n:28C:{}/1\n:60F:C240101EUR100,00\n", self.n, self.n);
            for i in 0..50 {
                s += &format!(":61:2401010101D1,00NTRFREF{i}\n:86:entry {i}\n");
            }
            s += ":62F:C240101EUR50,00\n-\n";
            self.pending = s.into_bytes();
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        self.produced += n as u64;
        Ok(n)
    }
}

#[test]
fn large_stream_is_read_item_by_item() {
    // ~8 MB: enough to show items flow out while reading, not at the end.
    let source = Generated { produced: 0, limit: 8 << 20, pending: Vec::new(), n: 0 };
    let feed = parse(source, Some(Format::Mt940), None, SourceInfo::named("big")).unwrap();
    let (mut txs, mut statements, mut other) = (0u64, 0u64, 0u64);
    for item in feed {
        match item.unwrap() {
            Item::Transaction(_) => txs += 1,
            Item::Statement(_) => statements += 1,
            _ => other += 1,
        }
    }
    assert!(statements > 3000, "{statements}");
    assert_eq!(txs, statements * 50);
    assert_eq!(other, 0);
}
