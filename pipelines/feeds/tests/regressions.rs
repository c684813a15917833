//! Inputs that once crashed a parser (found by fuzzing); each must now give
//! items or a clear error.

mod common;

use std::io::Cursor;

use feeds::{Format, SourceInfo, parse};

fn survives(rel: &str, format: Option<Format>) {
    let bytes = std::fs::read(common::fixture(rel)).unwrap();
    if let Ok(feed) = parse(Cursor::new(bytes), format, None, SourceInfo::named(rel)) {
        for item in feed {
            let _ = item;
        }
    }
}

#[test]
fn camt_declaration_with_multibyte_quote() {
    // `encoding=` followed by a BOM character instead of a quote.
    survives("regressions/camt-multibyte-quote.bin", Some(Format::Camt));
    survives("regressions/camt-multibyte-quote.bin", None);
    assert!(feeds::camt::declared_encoding("<?xml version=\"1.0\" encoding=\u{feff}x\u{feff}?>".as_bytes()).is_none());
}
