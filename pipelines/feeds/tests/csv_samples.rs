//! CSV samples with the profiles in profiles/. Expected sums are the amount
//! cells of each file added up by hand.

mod common;

use common::*;
use feeds::{Format, inspect};

fn csv(name: &str) -> feeds::InspectReport {
    let p = profile(name);
    inspect(&fixture(&format!("csv/{name}.csv")), None, Some(&p)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn all_six_exports() {
    // (file, rows, credits, debits)
    let cases = [
        ("capitalone", 2, "USD", "1000.00", "1000.00"),
        // credit 2000.00; debits 1000.00 + 1500.00 + 2500.00
        ("mint", 4, "USD", "2000.00", "5000.00"),
        ("n26-fr", 2, "EUR", "328.00", "328.00"),
        // deposit 20.00; withdrawals 103.00 + 75.00 + 57.27
        ("schwab-checking", 4, "USD", "20.00", "235.27"),
        ("sparkasse", 1, "EUR", "0.00", "24.14"),
        // 25.00 + 27.50 + 25.00 + 25.00 + 10.00
        ("stripe-all", 5, "CAD", "112.50", "0.00"),
    ];
    for (name, rows, cur, credits, debits) in cases {
        let r = csv(name);
        assert_eq!(r.format, Format::Csv, "{name}");
        assert_eq!((r.statements, r.transactions, r.reject_count), (1, rows, 0), "{name}");
        assert_eq!(totals(&r), want(&[(cur, credits, debits)]), "{name}");
        assert!(r.findings.is_empty(), "{name}: {:?}", r.findings);
    }
}

#[test]
fn csv_needs_a_profile() {
    let err = inspect(&fixture("csv/mint.csv"), None, None).unwrap_err();
    assert!(err.to_string().contains("--profile"), "{err}");
    let err = inspect(&fixture("csv/mint.csv"), Some(Format::Csv), None).unwrap_err();
    assert!(err.to_string().contains("--profile"), "{err}");
}

#[test]
fn wrong_profile_names_the_missing_column() {
    let p = profile("mint");
    let err = inspect(&fixture("csv/capitalone.csv"), None, Some(&p)).unwrap_err();
    assert!(err.to_string().contains("\"Date\""), "{err}");
}

#[test]
fn mapped_fields() {
    let p = profile("sparkasse");
    let rows = items("csv/sparkasse.csv", None, Some(&p));
    let t = transactions(&rows)[0];
    assert_eq!(t.booking_date, chrono::NaiveDate::from_ymd_opt(2020, 11, 4));
    assert_eq!(t.counterparty.name.as_deref(), Some("PayPal (Europe) S.a.r.l. et Cie., S.C.A."));
    assert_eq!(t.account.as_deref(), Some("DE11111100100100100100"));
    assert_eq!(t.provenance.line, 2);
    let p = profile("n26-fr");
    let n26 = items("csv/n26-fr.csv", None, Some(&p));
    assert!(transactions(&n26).iter().all(|t| t.value_date.is_none()));
}

#[test]
fn bad_rows_are_rejects_with_line() {
    let p = profile("capitalone");
    let text = "Transaction Date,Posted Date,Card No.,Description,Category,Debit,Credit\n\
                2015-12-31,2016-01-02,1234,A,B,10.005,\n\
                2015-12-31,not-a-date,1234,A,B,1.00,\n\
                2015-12-31,2016-01-02,1234,A,B,,\n\
                2015-12-31,2016-01-02,1234,A,B,2.50,\n";
    let feed = feeds::parse(
        std::io::Cursor::new(text.as_bytes().to_vec()),
        Some(Format::Csv),
        Some(&p),
        feeds::SourceInfo::named("x.csv"),
    )
    .unwrap();
    let items: Vec<_> = feed.collect::<Result<_, _>>().unwrap();
    let rejects: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            feeds::Item::Reject(r) => Some((r.line, r.reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(rejects.len(), 3, "{rejects:?}");
    assert_eq!(rejects[0].0, 2);
    assert!(rejects[0].1.contains("more decimals"));
    assert_eq!(rejects[1].0, 3);
    assert_eq!(transactions(&items).len(), 1);
}

#[test]
fn latin1_csv_through_profile_encoding() {
    let mut p = profile("sparkasse");
    p.encoding = "windows-1252".into();
    let mut bytes = std::fs::read(fixture("csv/sparkasse.csv")).unwrap();
    let pos = bytes.windows(6).position(|w| w == b"PayPal").unwrap();
    bytes.splice(pos..pos + 6, b"M\xfcller".iter().copied());
    let feed = feeds::parse(std::io::Cursor::new(bytes), None, Some(&p), feeds::SourceInfo::named("l1.csv")).unwrap();
    let items: Vec<_> = feed.collect::<Result<_, _>>().unwrap();
    assert!(transactions(&items)[0].counterparty.name.as_deref().unwrap().starts_with("Müller"));
}
