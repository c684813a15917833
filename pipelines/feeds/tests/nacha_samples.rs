//! NACHA samples: counts and sums are the files' own batch (8) and file (9)
//! control records, which the parser must reproduce without a finding; the
//! SEC codes without a public sample (CCD, TEL, plain WEB) use hand-made
//! files whose controls were computed by tests/fixtures/make_handmade.py.

mod common;

use common::*;
use feeds::{Direction, Format};

#[test]
fn ppd_multi_batch_file() {
    let r = report("nacha/20110805A.ach");
    assert_eq!(r.format, Format::Nacha);
    // 48 entry records; 9-record: debits 000005101000, credits 000000000200,
    // entry/addenda count 83, hash 0136685201.
    assert_eq!((r.statements, r.transactions, r.reject_count), (4, 48, 0));
    assert_eq!(totals(&r), want(&[("USD", "2.00", "51010.00")]));
    // The only disagreement: the file control claims 5 batches, the file holds
    // 4 batch headers (grep -c '^5').
    assert_eq!(r.findings, vec!["line 93: file batch count: file says 5, entries give 4".to_string()]);
}

#[test]
fn malformed_upstream_file_is_read_with_findings() {
    let r = report("nacha/20110729A-invalid.ach");
    // Control record: 283 entry+addenda records, debits 26871000.00, credits 185.00.
    assert_eq!(r.transactions, 178);
    assert_eq!(totals(&r), want(&[("USD", "185.00", "26871000.00")]));
    assert!(r.findings.iter().any(|f| f.contains("record 1 is 93 characters")));
    // The batch headers are one character short, so IAT batches are not seen
    // as IAT and their 710-716 addenda are rejected, never dropped.
    assert_eq!(r.reject_count, 105);
}

#[test]
fn ctx_with_addenda() {
    let r = report("nacha/ctx-debit.ach");
    assert_eq!((r.statements, r.transactions, r.reject_count), (1, 1, 0));
    assert_eq!(totals(&r), want(&[("USD", "0.00", "1000000.00")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let all = items("nacha/ctx-debit.ach", None, None);
    let t = transactions(&all)[0];
    assert_eq!(t.counterparty.name.as_deref(), Some("Receiver Company"));
    assert_eq!(t.reference.as_deref(), Some("121042880000001"));
    assert_eq!(t.description.as_deref(), Some("ACH CTX Debit First Account Debit Second Account"));
    assert_eq!(t.type_code.as_deref(), Some("CTX 27"));
}

#[test]
fn iat_with_mandatory_addenda() {
    let r = report("nacha/iat-debit.ach");
    assert_eq!((r.statements, r.transactions, r.reject_count), (1, 1, 0));
    assert_eq!(totals(&r), want(&[("USD", "0.00", "1000.00")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let all = items("nacha/iat-debit.ach", None, None);
    let t = transactions(&all)[0];
    assert_eq!(t.counterparty.name.as_deref(), Some("BEK Enterprises"));
    assert_eq!(t.counterparty.account.as_deref(), Some("123456789"));
}

#[test]
fn web_returns() {
    let r = report("nacha/return-WEB.ach");
    // Batch 1: 26 return debit 123.54; batch 2: 21 return credit 45.65.
    assert_eq!((r.statements, r.transactions, r.reject_count), (2, 2, 0));
    assert_eq!(totals(&r), want(&[("USD", "45.65", "123.54")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let all = items("nacha/return-WEB.ach", None, None);
    let t = transactions(&all);
    assert!(t.iter().all(|t| t.reversal));
    assert!(t[0].description.as_deref().unwrap().contains("return R01"));
    assert!(t[1].description.as_deref().unwrap().contains("return R03"));
}

#[test]
fn notification_of_change() {
    let r = report("nacha/cor-example.ach");
    assert_eq!((r.statements, r.transactions, r.reject_count), (1, 1, 0));
    assert_eq!(totals(&r), want(&[("USD", "0.00", "0.00")]));
    // Effective entry date is 000000 in the sample.
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    let all = items("nacha/cor-example.ach", None, None);
    let t = transactions(&all)[0];
    assert!(t.description.as_deref().unwrap().contains("NOC C01 corrected data 1918171614"));
}

#[test]
fn short_lines_are_padded_and_reported() {
    let r = report("nacha/short-line.ach");
    assert_eq!((r.statements, r.transactions, r.reject_count), (1, 1, 0));
    assert_eq!(totals(&r), want(&[("USD", "0.00", "1000000.00")]));
    assert_eq!(r.findings.len(), 1);
}

#[test]
fn handmade_ccd_tel_web() {
    let r = report("handmade/ccd.ach");
    assert_eq!((r.statements, r.transactions), (1, 2));
    assert_eq!(totals(&r), want(&[("USD", "1250.00", "49.99")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let r = report("handmade/tel.ach");
    assert_eq!((r.statements, r.transactions), (1, 1));
    assert_eq!(totals(&r), want(&[("USD", "0.00", "25.00")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let r = report("handmade/web.ach");
    assert_eq!((r.statements, r.transactions), (1, 2));
    assert_eq!(totals(&r), want(&[("USD", "0.00", "50.00")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
}

#[test]
fn records_without_line_breaks() {
    let text = std::fs::read_to_string(fixture("handmade/ccd.ach")).unwrap().replace('\n', "");
    let feed = feeds::parse(std::io::Cursor::new(text.into_bytes()), None, None, feeds::SourceInfo::named("flat.ach"))
        .unwrap();
    let all: Vec<_> = feed.collect::<Result<_, _>>().unwrap();
    let t = transactions(&all);
    assert_eq!(t.len(), 2);
    assert_eq!(t[1].direction, Direction::Debit);
    assert_eq!(t[1].provenance.record, 4);
    assert!(!all.iter().any(|i| matches!(i, feeds::Item::Finding(_) | feeds::Item::Reject(_))));
}
