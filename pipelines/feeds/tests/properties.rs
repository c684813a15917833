//! Property tests: arbitrary bytes never panic any parser, and generated
//! valid files of every format come back with the counts and sums they were
//! generated from, without rejects or findings.

mod common;

use std::io::Cursor;

use feeds::{Direction, Format, Item, SourceInfo, parse};
use proptest::prelude::*;

fn run(bytes: Vec<u8>, format: Option<Format>) -> Vec<Item> {
    let p = common::profile("capitalone");
    match parse(Cursor::new(bytes), format, Some(&p), SourceInfo::named("prop")) {
        Ok(feed) => feed.filter_map(Result::ok).collect(),
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "one-line error: {e}");
            Vec::new()
        }
    }
}

const PREFIXES: [&[u8]; 6] = [
    b"",
    b":20:REF\n:25:ACC\n:28C:1/1\n:60F:C240101EUR1,00\n",
    b"101 091000019 1234567892403011200A094101",
    b"01,A,B,240301,0800,1,,,2/\n02,B,A,1,240301,0800,USD,2/\n",
    b"<?xml version=\"1.0\"?><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\"><BkToCstmrStmt><Stmt>",
    b"Transaction Date,Posted Date,Card No.,Description,Category,Debit,Credit\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(prefix in 0usize..PREFIXES.len(), body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = PREFIXES[prefix].to_vec();
        bytes.extend(body);
        for format in [None, Some(Format::Mt940), Some(Format::Camt), Some(Format::Nacha), Some(Format::Bai2), Some(Format::Csv)] {
            run(bytes.clone(), format);
        }
    }

    #[test]
    fn text_like_bytes_never_panic(prefix in 0usize..PREFIXES.len(), body in "[-0-9A-Z:,/{}?<>.\n\r ]{0,400}") {
        let mut bytes = PREFIXES[prefix].to_vec();
        bytes.extend(body.into_bytes());
        run(bytes, None);
    }

    #[test]
    fn mt940_round_trip(entries in proptest::collection::vec((1u64..10_000_000, any::<bool>()), 0..20), opening in 0i64..100_000_000) {
        let mut text = String::from("{1:F01BANKDEFFXXXX0000000000}{2:O940BANKDEFFXXXXN}{4:\r\n:20:GEN\r\n:25:DE89370400440532013000\r\n:28C:1/1\r\n");
        text += &format!(":60F:C240301EUR{}\r\n", comma(opening));
        let mut bal = opening;
        for (i, (minor, credit)) in entries.iter().enumerate() {
            let mark = if *credit { 'C' } else { 'D' };
            text += &format!(":61:2403010301{mark}{}NTRFREF{i}//B{i}\r\n:86:entry {i}\r\n", comma(*minor as i64));
            bal += if *credit { *minor as i64 } else { -(*minor as i64) };
        }
        let mark = if bal < 0 { 'D' } else { 'C' };
        text += &format!(":62F:{mark}240301EUR{}\r\n-}}\r\n", comma(bal.abs()));
        check(text.into_bytes(), &entries, 1);
    }

    #[test]
    fn bai2_round_trip(entries in proptest::collection::vec((1u64..10_000_000, any::<bool>()), 0..20)) {
        let mut recs = vec!["03,12345,USD,010,500,,/".to_string()];
        let mut total: u64 = 500;
        for (i, (minor, credit)) in entries.iter().enumerate() {
            let code = if *credit { 195 } else { 475 };
            recs.push(format!("16,{code},{minor},Z,B{i},C{i},TEXT {i}/"));
            total += minor;
        }
        recs.push(format!("49,{total},{}/", recs.len() + 1));
        let account_records = recs.len() as u64;
        let mut text = String::from("01,A,B,240301,0800,1,,,2/\n02,B,A,1,240301,0800,USD,2/\n");
        text += &recs.join("\n");
        text += &format!("\n98,{total},1,{}/\n99,{total},1,{}/\n", account_records + 2, account_records + 4);
        check(text.into_bytes(), &entries, 1);
    }

    #[test]
    fn nacha_round_trip(entries in proptest::collection::vec((1u64..100_000_000, any::<bool>()), 1..20), breaks in any::<bool>()) {
        let mut recs = vec![pad("101 0910000190123456789240301120".to_string() + "0A094101")];
        recs.push(pad(format!("5200{:16}{:20}1234567890PPDPAYROLL         240304   1091000010000001", "ORIGIN", "")));
        let (mut debit, mut credit, mut hash) = (0u64, 0u64, 0u64);
        for (i, (minor, is_credit)) in entries.iter().enumerate() {
            let code = if *is_credit { "22" } else { "27" };
            recs.push(pad(format!("6{code}021000021{:17}{minor:010}{:15}{:22}  0091000010{:06}", "12345", "ID", "NAME", i + 1)));
            hash += 2100002;
            if *is_credit { credit += minor } else { debit += minor }
        }
        let n = entries.len();
        recs.push(pad(format!("8200{n:06}{:010}{debit:012}{credit:012}1234567890{:25}091000010000001", hash % 10_000_000_000, "")));
        let blocks = (recs.len() + 1).div_ceil(10);
        recs.push(pad(format!("9000001{blocks:06}{n:08}{:010}{debit:012}{credit:012}", hash % 10_000_000_000)));
        while recs.len() % 10 != 0 { recs.push("9".repeat(94)); }
        let text = recs.join(if breaks { "\r\n" } else { "" });
        check(text.into_bytes(), &entries, 1);
    }

    #[test]
    fn camt_round_trip(entries in proptest::collection::vec((1u64..10_000_000, any::<bool>()), 0..12), version in 1u8..=8) {
        let root = if version == 1 { "BkToCstmrStmtV01" } else { "BkToCstmrStmt" };
        let mut xml = format!("<?xml version=\"1.0\"?><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.0{version}\"><{root}><Stmt><Id>G</Id><Acct><Id><IBAN>X</IBAN></Id><Ccy>EUR</Ccy></Acct>");
        let mut bal: i64 = 0;
        let mut body = String::new();
        for (minor, credit) in &entries {
            let ind = if *credit { "CRDT" } else { "DBIT" };
            body += &format!("<Ntry><Amt Ccy=\"EUR\">{}</Amt><CdtDbtInd>{ind}</CdtDbtInd><Sts>BOOK</Sts></Ntry>", dot(*minor as i64));
            bal += if *credit { *minor as i64 } else { -(*minor as i64) };
        }
        let ind = if bal < 0 { "DBIT" } else { "CRDT" };
        xml += "<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">0</Amt><CdtDbtInd>CRDT</CdtDbtInd></Bal>";
        xml += &format!("<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">{}</Amt><CdtDbtInd>{ind}</CdtDbtInd></Bal>", dot(bal.abs()));
        xml += &body;
        xml += &format!("</Stmt></{root}></Document>");
        check(xml.into_bytes(), &entries, 1);
    }

    #[test]
    fn csv_round_trip(entries in proptest::collection::vec((1u64..100_000_000, any::<bool>()), 0..20)) {
        let mut text = String::from("Transaction Date,Posted Date,Card No.,Description,Category,Debit,Credit\n");
        for (minor, credit) in &entries {
            let amount = dot(*minor as i64);
            let (d, c) = if *credit { (String::new(), amount) } else { (amount, String::new()) };
            text += &format!("2024-03-01,2024-03-02,1234,\"Shop, Inc\",Cat,{d},{c}\n");
        }
        let p = common::profile("capitalone");
        let items: Vec<Item> = parse(Cursor::new(text.into_bytes()), None, Some(&p), SourceInfo::named("g.csv")).unwrap().map(Result::unwrap).collect();
        verify(&items, &entries, 1);
    }
}

fn pad(s: String) -> String {
    format!("{s:94}")
}

fn comma(minor: i64) -> String {
    format!("{},{:02}", minor / 100, minor % 100)
}

fn dot(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

fn check(bytes: Vec<u8>, entries: &[(u64, bool)], statements: usize) {
    let items: Vec<Item> = parse(Cursor::new(bytes), None, None, SourceInfo::named("gen"))
        .expect("generated file is recognised")
        .map(|i| i.expect("no I/O error"))
        .collect();
    verify(&items, entries, statements);
}

fn verify(items: &[Item], entries: &[(u64, bool)], statements: usize) {
    let bad: Vec<_> = items.iter().filter(|i| matches!(i, Item::Reject(_) | Item::Finding(_))).collect();
    assert!(bad.is_empty(), "{bad:?}");
    let txs = common::transactions(items);
    assert_eq!(txs.len(), entries.len());
    assert_eq!(common::statements(items).len(), statements);
    let sum = |credit: bool| -> u64 { entries.iter().filter(|e| e.1 == credit).map(|e| e.0).sum() };
    let got =
        |dir: Direction| -> u64 { txs.iter().filter(|t| t.direction == dir).map(|t| t.amount.minor as u64).sum() };
    assert_eq!(got(Direction::Credit), sum(true));
    assert_eq!(got(Direction::Debit), sum(false));
}
