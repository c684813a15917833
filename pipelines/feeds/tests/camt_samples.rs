//! camt samples and the hand-made per-version fixtures. Expectations come
//! from the genkgo/camt test suite's own assertions (entry counts and
//! amounts), from reading the XML, and for the hand-made files from the
//! numbers written into them (see tests/fixtures/make_handmade.py).

mod common;

use common::*;
use feeds::{Direction, Format, StatementKind};

#[test]
fn camt053_v2_multi_statement_balances() {
    let r = report("camt/camt053.v2.multi.statement.xml");
    assert_eq!(r.format, Format::Camt);
    assert_eq!((r.statements, r.transactions, r.reject_count), (2, 2, 0));
    // 18.15 + 8.85 = 27.00 and 27.00 - 7.00 = 20.00: both statements balance.
    assert_eq!(totals(&r), want(&[("EUR", "8.85", "7.00")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert!(r.statement_list.iter().all(|s| s.kind == StatementKind::EndOfDay));
    let all = items("camt/camt053.v2.multi.statement.xml", None, None);
    let t = transactions(&all);
    assert_eq!(t[0].reference.as_deref(), Some("000000001"), "EndToEndId when no AcctSvcrRef");
    assert_eq!(t[1].counterparty.name.as_deref(), Some("Company Name 2"));
    assert_eq!(t[1].counterparty.account.as_deref(), Some("NL56AGDH9619008421"));
    assert_eq!(t[1].description.as_deref(), Some("Transaction Description 2"));
    assert_eq!(t[1].account.as_deref(), Some("NL26VAYB8060476890"));
}

#[test]
fn camt053_single_statement_versions() {
    // genkgo's fixtures have OPBD in EUR but CLBD in SEK: the check cannot run
    // and says so.
    for f in ["camt/camt053.v2.minimal.xml", "camt/camt053.v3.xml", "camt/camt053.v4.xml"] {
        let r = report(f);
        assert_eq!((r.statements, r.transactions, r.reject_count), (1, 1, 0), "{f}");
        assert_eq!(totals(&r), want(&[("EUR", "8.85", "0.00")]), "{f}");
        assert_eq!(r.findings.len(), 1, "{f}: {:?}", r.findings);
        assert!(r.findings[0].contains("EUR") && r.findings[0].contains("SEK"));
    }
}

#[test]
fn camt052_and_054_are_intraday() {
    let r = report("camt/camt052.v2.xml");
    assert_eq!((r.statements, r.transactions), (1, 1));
    assert_eq!(totals(&r), want(&[("SEK", "0.00", "200000.00")]));
    assert_eq!(r.statement_list[0].kind, StatementKind::Intraday);

    let r = report("camt/camt054.v4.xml");
    assert_eq!((r.statements, r.transactions), (1, 1));
    // One Ntry of 200000 SEK whose Btch/TtlAmt says 6.3 CHF: reported.
    assert_eq!(totals(&r), want(&[("SEK", "0.00", "200000.00")]));
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert!(r.findings[0].contains("batch total 6.3 CHF"));
    assert_eq!(r.statement_list[0].kind, StatementKind::Intraday);
    let all = items("camt/camt054.v4.xml", None, None);
    let t = transactions(&all)[0];
    assert_eq!(t.reference.as_deref(), Some("ACSR160617103200001"));
}

#[test]
fn camt053_without_statement_is_a_finding() {
    let r = report("camt/camt053.v2.wrong.xml");
    assert_eq!((r.statements, r.transactions), (0, 0));
    assert_eq!(r.findings, vec!["message contains no statement, report or notification".to_string()]);
}

#[test]
fn every_version_and_message_handmade() {
    for msg in [52, 53, 54] {
        for v in 1..=8 {
            let f = format!("handmade/camt0{msg}.v{v}.xml");
            let r = report(&f);
            assert_eq!((r.statements, r.transactions, r.reject_count), (1, 2, 0), "{f}");
            // 200.500 EUR credit (trailing zero, exact) and a 50.25 EUR batch debit.
            assert_eq!(totals(&r), want(&[("EUR", "200.50", "50.25")]), "{f}");
            // Balances 1000.00 + 200.50 - 50.25 = 1150.25 and TxsSummry agree.
            assert!(r.findings.is_empty(), "{f}: {:?}", r.findings);
            let kind = if msg == 53 { StatementKind::EndOfDay } else { StatementKind::Intraday };
            assert_eq!(r.statement_list[0].kind, kind, "{f}");
            let all = items(&f, None, None);
            let t = transactions(&all);
            assert_eq!(t[0].counterparty.name.as_deref(), Some("Alice GmbH"), "{f}");
            assert_eq!(t[0].reference.as_deref(), Some("REF-1"), "{f}");
            assert_eq!(t[0].description.as_deref(), Some("Invoice 42"), "{f}");
            assert_eq!(t[1].direction, Direction::Debit);
            assert_eq!(t[1].counterparty.name.as_deref(), Some("Bob Ltd"), "{f}: first TxDtls of the batch");
            assert_eq!(t[1].booking_date, chrono::NaiveDate::from_ymd_opt(2024, 3, 1));
        }
    }
}

#[test]
fn latin1_camt_is_transcoded() {
    let all = items("handmade/camt053.v2.latin1.xml", None, None);
    let t = transactions(&all);
    assert_eq!(t[0].counterparty.name.as_deref(), Some("Müller GmbH"));
}

#[test]
fn entry_hash_covers_exactly_the_ntry_element() {
    let f = "camt/camt053.v2.multi.statement.xml";
    let text = std::fs::read_to_string(fixture(f)).unwrap();
    let start = text.find("<Ntry>").unwrap();
    let end = text[start..].find("</Ntry>").unwrap() + start + "</Ntry>".len();
    let all = items(f, None, None);
    let t = transactions(&all)[0];
    assert_eq!(t.provenance.raw_sha256, feeds::text::sha256_hex(&text.as_bytes()[start..end]));
    // `grep -n "<Ntry>"` gives line 66.
    assert_eq!((t.provenance.record, t.provenance.line), (1, 66));
}

#[test]
fn too_many_decimals_is_a_reject() {
    let xml = std::fs::read_to_string(fixture("handmade/camt053.v2.xml")).unwrap().replace("200.500", "200.505");
    let feed =
        feeds::parse(std::io::Cursor::new(xml.into_bytes()), None, None, feeds::SourceInfo::named("x.xml")).unwrap();
    let all: Vec<_> = feed.collect::<Result<_, _>>().unwrap();
    let rejects: Vec<_> = all
        .iter()
        .filter_map(|i| match i {
            feeds::Item::Reject(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rejects.len(), 1);
    assert!(rejects[0].reason.contains("more decimals"), "{}", rejects[0].reason);
    assert_eq!(transactions(&all).len(), 1);
}

#[test]
fn broken_xml_keeps_what_was_read() {
    let xml = std::fs::read_to_string(fixture("handmade/camt053.v2.xml")).unwrap();
    let cut = xml.find("<AcctSvcrRef>REF-2").unwrap();
    let feed = feeds::parse(
        std::io::Cursor::new(xml.as_bytes()[..cut].to_vec()),
        None,
        None,
        feeds::SourceInfo::named("cut.xml"),
    )
    .unwrap();
    let all: Vec<_> = feed.collect::<Result<_, _>>().unwrap();
    assert_eq!(transactions(&all).len(), 1);
    assert!(all.iter().any(|i| matches!(i, feeds::Item::Reject(r) if r.entry)));
}
