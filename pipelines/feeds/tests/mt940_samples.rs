//! MT940/MT942 samples against numbers read off the files by hand: entry
//! counts from `grep -c '^:61:'`, sums added up from the `:61:` amounts, and
//! balance findings where the file's own `:60F:` + entries differ from `:62F:`.

mod common;

use common::*;
use feeds::{Direction, Format, StatementKind};

#[test]
fn abnamro() {
    let r = report("mt940/abnamro.sta");
    assert_eq!(r.format, Format::Mt940);
    assert_eq!((r.statements, r.transactions, r.reject_count), (2, 10, 0));
    // 9 + 11.59 + 11.63 + 11.80 + 13.45 + 15.49 + 107 + 141.48 = 321.44 and 9.49 + 15 = 24.49.
    assert_eq!(totals(&r), want(&[("EUR", "0.00", "345.93")]));
    // The sample's balances do not add up: 3236.28 - 321.44 = 2914.84 != 876.84,
    // 2876.84 - 24.49 = 2852.35 != 1849.75.
    assert_eq!(r.findings.len(), 2, "{:?}", r.findings);
    assert!(r.findings[0].contains("876.84") && r.findings[0].contains("2914.84"));
    assert!(r.findings[1].contains("1849.75") && r.findings[1].contains("2852.35"));
}

#[test]
fn rabobank_without_entry_dates_and_multiple_86() {
    let r = report("mt940/rabobank.sta");
    assert_eq!((r.statements, r.transactions, r.reject_count), (4, 5, 0));
    // 1213.28 + 44.95 + 236.56 + 88.10 + 6.20
    assert_eq!(totals(&r), want(&[("EUR", "0.00", "1589.09")]));
    // Statements 2 and 4 balance (1000.89 -> 1000.89; 4196.12 - 94.30 = 4101.82);
    // 1 and 3 do not (473.17 - 1213.28 != 395.82; 1295.82 - 281.51 != 1250.87).
    assert_eq!(r.findings.len(), 2, "{:?}", r.findings);
    let all = items("mt940/rabobank.sta", None, None);
    let txs = transactions(&all);
    assert_eq!(
        txs[0].description.as_deref(),
        Some("W.P. Jansen | Terugboeking NIET AKKOORD MET AFSCHRIJVING KOSTEN KINDEROPVANG JUNI 20095731")
    );
    assert_eq!(txs[0].reference.as_deref(), Some("0121470966"));
    assert_eq!(txs[0].booking_date, chrono::NaiveDate::from_ymd_opt(2011, 5, 27));
    assert_eq!(txs[0].account.as_deref(), Some("1291.99.348EUR"));
}

#[test]
fn asn_blank_entry_dates_and_envelopes() {
    let r = report("mt940/mt940_with_spaces_for_entry_date.txt");
    // 31 `{4:` messages, 8 `:61:` lines; every statement balances.
    assert_eq!((r.statements, r.transactions, r.reject_count), (31, 8, 0));
    // credits 1000.00 + 828.72 + 1000.18; debits 65.00 + 801.55 + 1.65 + 1000.00 + 903.76
    assert_eq!(totals(&r), want(&[("EUR", "2828.90", "2771.96")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let all = items("mt940/mt940_with_spaces_for_entry_date.txt", None, None);
    let t = transactions(&all);
    assert_eq!(t[0].booking_date, t[0].value_date, "blank entry date falls back to value date");
    assert_eq!(
        t[0].description.as_deref(),
        Some("hr gjlm paulissen | NL47INGB9999999999 hr gjlm paulissen Betaling sieraden")
    );
}

#[test]
fn deutschebank_crlf_and_structured_86() {
    let r = report("mt940/deutschebank.txt");
    assert_eq!((r.statements, r.transactions), (1, 1));
    assert_eq!(totals(&r), want(&[("EUR", "0.00", "12.35")]));
    // :60F: 0,00 and :62F: 0,00 around a 12,35 debit.
    assert_eq!(r.findings.len(), 1);
    let all = items("mt940/deutschebank.txt", None, None);
    let t = transactions(&all)[0];
    assert_eq!(t.reference.as_deref(), Some("2016021783252833"), "bank reference first");
    assert_eq!(t.counterparty.name.as_deref(), Some("TESTEREL"));
    assert_eq!(t.counterparty.bank.as_deref(), Some("CSDBDE71XXX"));
    assert_eq!(t.type_code.as_deref(), Some("NRTI"));
}

#[test]
fn sparkasse_reversal_of_debit() {
    let r = report("mt940/sparkasse2.txt");
    assert_eq!((r.statements, r.transactions), (1, 1));
    // RD = reversal of a debit, booked as a credit of 1027,25.
    assert_eq!(totals(&r), want(&[("EUR", "1027.25", "0.00")]));
    assert_eq!(r.findings.len(), 1, "931052.29 + 1027.25 != 931304.50");
    let all = items("mt940/sparkasse2.txt", None, None);
    let t = transactions(&all)[0];
    assert!(t.reversal);
    assert_eq!(t.direction, Direction::Credit);
    assert_eq!(t.counterparty.name.as_deref(), Some("GEBÜHREN MANUELL GG UST-FREI"));
    assert_eq!(
        t.description.as_deref(),
        Some("STORNO STORNO RECHNUNGSABSCHLUSSPER 01.02.2020"),
        "?2x lines are 27-character slices joined as is"
    );
}

#[test]
fn whitespace_continuation_is_kept() {
    let r = report("mt940/whitespace.sta");
    assert_eq!((r.statements, r.transactions), (1, 1));
    assert_eq!(totals(&r), want(&[("EUR", "0.00", "233.15")]));
    assert_eq!(r.findings.len(), 1, "12345.12 - 233.15 != 12345.98");
    let all = items("mt940/whitespace.sta", None, None);
    let t = transactions(&all)[0];
    assert_eq!(
        t.description.as_deref(),
        Some("UMBUCHUNG ERSTATTUNG AUSLANDSEINSATZENTGELT FUER VISA 4998 XXXXXXXX 1234")
    );
    assert_eq!(t.counterparty.name.as_deref(), Some("DEUTSCHE KREDITBANK AG"));
}

#[test]
fn mt942_intraday_with_90_totals() {
    let r = report("mt940/test1.mt942");
    assert_eq!((r.statements, r.transactions), (1, 2));
    // :90D:1NZD5000, and :90C:1NZD5000, agree with the two :61: lines.
    assert_eq!(totals(&r), want(&[("NZD", "5000.00", "5000.00")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.statement_list[0].kind, StatementKind::Intraday);
    let all = items("mt940/test1.mt942", None, None);
    let t = transactions(&all);
    assert_eq!(t[1].counterparty.name.as_deref(), Some("test rate"));
    assert_eq!(t[1].counterparty.account.as_deref(), Some("12-3011-0334122-37"));
}

#[test]
fn not_mt940_is_rejected_whole() {
    let err = feeds::inspect(&fixture("mt940/invalid_statement.sta"), None, None).unwrap_err();
    assert!(err.to_string().contains("unknown feed format"), "{err}");
    let err = feeds::inspect(&fixture("mt940/invalid_statement.sta"), Some(Format::Mt940), None).unwrap_err();
    assert!(err.to_string().contains("not a mt940 file"), "{err}");
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn provenance_points_at_the_raw_lines() {
    let all = items("mt940/abnamro.sta", None, None);
    let t = transactions(&all)[0];
    // Fifth field (:20: :25: :28: :60F: :61:); the bank header lines are not fields.
    assert_eq!((t.provenance.record, t.provenance.line), (5, 8));
    // The :61: line and its three :86: lines, joined with LF as in the file.
    let text = std::fs::read_to_string(fixture("mt940/abnamro.sta")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let expected = lines[7..11].join("\n");
    assert_eq!(t.provenance.raw_sha256, feeds::text::sha256_hex(expected.as_bytes()));
    assert_eq!(
        t.provenance.source_sha256.as_deref(),
        Some("cbec266b057f2130d73ab799ad0bc72e06648dfd96297c6c8a0aa26c21acb2db")
    );
}
