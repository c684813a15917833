//! BAI2 samples: every expectation below is the file's own 49/98/99 control
//! totals and record counts (which the parser must reproduce without a
//! finding) or sums of the `16` amounts added by hand.

mod common;

use common::*;
use feeds::{Format, StatementKind};

#[test]
fn sample1_canadian_fixed_width() {
    for f in ["bai2/sample1.txt", "bai2/sample1-btrs.txt"] {
        let r = report(f);
        assert_eq!(r.format, Format::Bai2);
        assert_eq!((r.statements, r.transactions, r.reject_count), (2, 17, 0), "{f}");
        // 108 credits: 2035.00 + 25.00 + 25.00 + 115.00 + 1000.00; the 409 debits
        // add up to the same 3200.00, equal to the 100/400 summaries in 03/88.
        assert_eq!(totals(&r), want(&[("CAD", "3200.00", "3200.00")]));
        // 49: 834000 / 14 and 446000 / 9; 98 and 99: 1280000.
        assert!(r.findings.is_empty(), "{f}: {:?}", r.findings);
    }
}

#[test]
fn sample2_spec_example_with_funds_types_and_continuations() {
    let r = report("bai2/sample2.txt");
    // Five 03 accounts in four groups; four 16 details.
    assert_eq!((r.statements, r.transactions, r.reject_count), (5, 4, 0));
    // 115: 4500.00 + 5000.00, 218: 200000.00, 195: 100000.00
    assert_eq!(totals(&r), want(&[("USD", "309500.00", "0.00")]));
    // 99 says 345450000 over 4 groups and 31 records; all 49/98 agree too.
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.statement_list[0].opening.as_deref(), Some("43500.00"));
    let all = items("bai2/sample2.txt", None, None);
    let t = transactions(&all);
    assert_eq!(t[2].reference.as_deref(), Some("SP4738"));
    assert_eq!(t[2].description.as_deref(), Some("PROCEEDS OF LETTER OF CREDIT FROM THE ARAMCO OIL CO"));
    assert_eq!(t[2].value_date, chrono::NaiveDate::from_ymd_opt(2004, 6, 22));
}

#[test]
fn daily_and_eod() {
    let r = report("bai2/daily.bai2");
    assert_eq!((r.statements, r.transactions), (1, 1));
    assert_eq!(totals(&r), want(&[("USD", "250.01", "0.00")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.statement_list[0].kind, StatementKind::EndOfDay);

    let r = report("bai2/eod.bai2");
    assert_eq!((r.statements, r.transactions), (1, 1));
    assert_eq!(totals(&r), want(&[("USD", "83259.82", "0.00")]));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    // As-of-date modifier 4 = final same-day data.
    assert_eq!(r.statement_list[0].kind, StatementKind::Intraday);
    let all = items("bai2/eod.bai2", None, None);
    let t = transactions(&all)[0];
    let d = t.description.as_deref().unwrap();
    assert!(d.starts_with("FED NO: 20100831L1B77D1CDSDSDJSIO15608310954FT01 SENDER BNK:=ETRADE BANK"), "{d}");
    assert!(d.ends_with("OBI:=INVOICE 123456"), "{d}");
    assert!(d.contains("1995 SE. 57TH ST. NY, NY 10022"));
}

#[test]
fn invalid_checksum_is_three_findings_not_an_error() {
    let r = report("bai2/invalid_checksum_eod.bai2");
    assert_eq!((r.statements, r.transactions), (1, 1));
    assert_eq!(totals(&r), want(&[("USD", "83259.82", "0.00")]));
    // 49, 98 and 99 say 8325983; the single detail is 8325982.
    assert_eq!(r.findings.len(), 3, "{:?}", r.findings);
    assert!(r.findings.iter().all(|f| f.contains("8325983") && f.contains("8325982")));
}

#[test]
fn several_records_on_one_line_and_88_without_slash() {
    let text = "01,A,B,240301,0800,1,,,2/02,B,A,1,240301,0800,USD,2/03,123,USD,010,1000,,/\n\
                16,195,250,Z,REF1,,WIRE/88,FROM X/16,475,100,,REF2,,CHECK\n\
                88,CONTINUED\n49,1350,6/98,1350,1,8/99,1350,1,10/\n";
    let feed =
        feeds::parse(std::io::Cursor::new(text.as_bytes().to_vec()), None, None, feeds::SourceInfo::named("inline"))
            .unwrap();
    let all: Vec<_> = feed.collect::<Result<_, _>>().unwrap();
    let t = transactions(&all);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].description.as_deref(), Some("WIRE FROM X"));
    assert_eq!(t[1].description.as_deref(), Some("CHECK CONTINUED"));
    assert_eq!(t[1].direction, feeds::Direction::Debit);
    let findings: Vec<_> = all.iter().filter(|i| matches!(i, feeds::Item::Finding(_))).collect();
    assert!(findings.is_empty(), "{findings:?}");
}
