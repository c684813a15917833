//! The generator's writers, one per format: each writes a file header on
//! its first statement, one statement (batch, account report) per call and
//! the trailer with control totals on `finish`. Unparseable entries get an
//! amount that is not a number; balances count every entry as written.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use chrono::NaiveDate;

use super::{Entry, Flaw};

/// Opening balance of every generated statement, in minor units.
const OPENING: i64 = 1_000_000_000;

/// Writes one file of one format.
pub trait FormatWriter {
    /// Writes one statement of `entries` for account number `account`.
    fn statement(&mut self, account: usize, entries: &[Entry]) -> io::Result<()>;
    /// Writes the trailer and flushes.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A writer for `format` ("mt940", "camt", "nacha", "bai2", "csv").
pub fn new_writer(format: &str, feed: &str, date: NaiveDate, out: BufWriter<File>) -> Box<dyn FormatWriter> {
    let base = Base { out, date, feed: feed.to_owned(), statements: 0, started: false };
    match format {
        "mt940" => Box::new(Mt940(base)),
        "camt" => Box::new(Camt(base)),
        "nacha" => Box::new(Nacha { base, entries: 0, hash: 0, debit: 0, credit: 0, lines: 0 }),
        "bai2" => Box::new(Bai2 { base, total: 0, records: 0 }),
        _ => Box::new(Csv(base)),
    }
}

struct Base {
    out: BufWriter<File>,
    date: NaiveDate,
    feed: String,
    statements: u64,
    started: bool,
}

fn signed(e: &Entry) -> i64 {
    if e.credit { e.amount } else { -e.amount }
}

fn closing(entries: &[Entry]) -> i64 {
    OPENING + entries.iter().map(signed).sum::<i64>()
}

/// `minor` with two decimals and `sep` ("123,45").
fn decimal(minor: i64, sep: char) -> String {
    format!("{}{sep}{:02}", minor / 100, minor % 100)
}

fn amount(e: &Entry, sep: char) -> String {
    match e.flaw {
        Flaw::Unparseable => format!("{}{sep}{sep}{:02}", e.amount / 100, e.amount % 100),
        _ => decimal(e.amount, sep),
    }
}

struct Mt940(Base);

impl FormatWriter for Mt940 {
    fn statement(&mut self, account: usize, entries: &[Entry]) -> io::Result<()> {
        let b = &mut self.0;
        b.statements += 1;
        let d = b.date.format("%y%m%d");
        let o = &mut b.out;
        writeln!(
            o,
            ":20:{}{}\n:25:NL91ABNA04171643{account:02}\n:28C:{}/1",
            b.feed.to_uppercase(),
            b.statements,
            b.statements
        )?;
        writeln!(o, ":60F:C{d}EUR{}", decimal(OPENING, ','))?;
        for e in entries {
            let dc = if e.credit { 'C' } else { 'D' };
            writeln!(
                o,
                ":61:{}{}{dc}{}NTRFNONREF//{}",
                e.date.format("%y%m%d"),
                e.date.format("%m%d"),
                amount(e, ','),
                e.reference
            )?;
            writeln!(o, ":86:{} {}", e.counterparty, e.description)?;
        }
        writeln!(o, ":62F:C{d}EUR{}\n-", decimal(closing(entries), ','))
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.out.flush()
    }
}

struct Camt(Base);

impl FormatWriter for Camt {
    fn statement(&mut self, account: usize, entries: &[Entry]) -> io::Result<()> {
        let b = &mut self.0;
        let o = &mut b.out;
        if !b.started {
            b.started = true;
            writeln!(o, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
            writeln!(o, r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>"#)?;
            writeln!(o, "<GrpHdr><MsgId>{}{}</MsgId><CreDtTm>{}T20:00:00</CreDtTm></GrpHdr>", b.feed, b.date, b.date)?;
        }
        b.statements += 1;
        let bal = |code: &str, minor: i64| {
            format!(
                r#"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{}</Dt></Dt></Bal>"#,
                decimal(minor, '.'),
                b.date
            )
        };
        writeln!(o, "<Stmt><Id>{}-{}</Id><CreDtTm>{}T20:00:00</CreDtTm>", b.feed, b.statements, b.date)?;
        writeln!(o, "<Acct><Id><IBAN>DE893704004405320130{account:02}</IBAN></Id><Ccy>EUR</Ccy></Acct>")?;
        writeln!(o, "{}\n{}", bal("OPBD", OPENING), bal("CLBD", closing(entries)))?;
        for e in entries {
            let dc = if e.credit { "CRDT" } else { "DBIT" };
            writeln!(
                o,
                r#"<Ntry><Amt Ccy="EUR">{}</Amt><CdtDbtInd>{dc}</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>{}</Dt></BookgDt><ValDt><Dt>{}</Dt></ValDt><AcctSvcrRef>{}</AcctSvcrRef><NtryDtls><TxDtls><RltdPties><Dbtr><Nm>{}</Nm></Dbtr></RltdPties><RmtInf><Ustrd>{}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"#,
                amount(e, '.'),
                e.date,
                e.date,
                e.reference,
                e.counterparty,
                e.description
            )?;
        }
        writeln!(o, "</Stmt>")
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        writeln!(self.0.out, "</BkToCstmrStmt></Document>")?;
        self.0.out.flush()
    }
}

struct Nacha {
    base: Base,
    entries: u64,
    hash: u64,
    debit: i64,
    credit: i64,
    lines: u64,
}

const ROUTING: u64 = 2_100_002;

impl FormatWriter for Nacha {
    fn statement(&mut self, account: usize, entries: &[Entry]) -> io::Result<()> {
        let b = &mut self.base;
        let d = b.date.format("%y%m%d");
        if !b.started {
            b.started = true;
            writeln!(b.out, "101 0910000190123456789{d}2000A094101{:<23}{:<23}{:<8}", "DEST BANK", "ORIGIN CO", "")?;
            self.lines += 1;
        }
        b.statements += 1;
        let company = format!("12345678{account:02}");
        writeln!(
            b.out,
            "5200{:<16}{:<20}{company}CCDVENDORPAY       {d}   109100001{:07}",
            "ORIGIN CO", "", b.statements
        )?;
        let (mut hash, mut debit, mut credit) = (0u64, 0i64, 0i64);
        for e in entries {
            let code = if e.credit { 22 } else { 27 };
            let amt = match e.flaw {
                Flaw::Unparseable => format!("{:05}X{:04}", e.amount / 10_000, e.amount % 10_000),
                _ => format!("{:010}", e.amount),
            };
            let trace = e.reference.chars().filter(char::is_ascii_digit).collect::<String>();
            let trace = format!(
                "{}{:0>14}",
                if e.reference.starts_with('V') { '0' } else { '9' },
                &trace[trace.len().saturating_sub(14)..]
            );
            let name: String = e.counterparty.chars().take(22).collect();
            writeln!(
                b.out,
                "6{code}0{ROUTING:07}1{:<17}{amt}{:<15}{name:<22}  0{trace}",
                "8675309",
                &e.description[..e.description.len().min(15)]
            )?;
            hash += ROUTING;
            if e.credit { credit += e.amount } else { debit += e.amount }
        }
        let n = entries.len() as u64;
        writeln!(
            b.out,
            "8200{n:06}{:010}{debit:012}{credit:012}{company}{:<19}{:<6}09100001{:07}",
            hash % 10_000_000_000,
            "",
            "",
            b.statements
        )?;
        self.lines += n + 2;
        self.entries += n;
        self.hash += hash;
        self.debit += debit;
        self.credit += credit;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let lines = self.lines + 1;
        let blocks = lines.div_ceil(10);
        writeln!(
            self.base.out,
            "9{:06}{blocks:06}{:08}{:010}{:012}{:012}{:<39}",
            self.base.statements,
            self.entries,
            self.hash % 10_000_000_000,
            self.debit,
            self.credit,
            ""
        )?;
        for _ in lines..blocks * 10 {
            writeln!(self.base.out, "{}", "9".repeat(94))?;
        }
        self.base.out.flush()
    }
}

struct Bai2 {
    base: Base,
    total: i64,
    records: u64,
}

impl FormatWriter for Bai2 {
    fn statement(&mut self, account: usize, entries: &[Entry]) -> io::Result<()> {
        let b = &mut self.base;
        let d = b.date.format("%y%m%d");
        if !b.started {
            b.started = true;
            writeln!(b.out, "01,SENDER,RECEIVER,{d},2000,1,,,2/\n02,RECEIVER,SENDER,1,{d},2000,USD,2/")?;
            self.records += 2;
        }
        b.statements += 1;
        let close = closing(entries);
        writeln!(b.out, "03,5550001{account:03},USD,010,{OPENING},,,015,{close},,/")?;
        let mut total = OPENING + close;
        for e in entries {
            let code = if e.credit { 195 } else { 495 };
            let amt = match e.flaw {
                Flaw::Unparseable => format!("{}X", e.amount),
                _ => e.amount.to_string(),
            };
            writeln!(
                b.out,
                "16,{code},{amt},V,{},,{},,{} {}/",
                e.date.format("%y%m%d"),
                e.reference,
                e.counterparty,
                e.description
            )?;
            total += e.amount;
        }
        let n = entries.len() as u64 + 2;
        writeln!(b.out, "49,{total},{n}/")?;
        self.records += n;
        self.total += total;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let b = &mut self.base;
        writeln!(b.out, "98,{},{},{}/", self.total, b.statements, self.records)?;
        writeln!(b.out, "99,{},1,{}/", self.total, self.records + 2)?;
        b.out.flush()
    }
}

struct Csv(Base);

impl FormatWriter for Csv {
    fn statement(&mut self, account: usize, entries: &[Entry]) -> io::Result<()> {
        let b = &mut self.0;
        if !b.started {
            b.started = true;
            writeln!(b.out, "booking_date,value_date,amount,reference,counterparty,account,description")?;
        }
        for e in entries {
            let sign = if e.credit { "" } else { "-" };
            writeln!(
                b.out,
                "{},{},{sign}{},{},{},LEDGER-{account:02},{}",
                e.date,
                e.date,
                amount(e, '.'),
                e.reference,
                e.counterparty,
                e.description
            )?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.out.flush()
    }
}
