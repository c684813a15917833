//! BAI2 cash-management reader: logical records split on `/` (several may
//! share a physical line), `88` continuations with or without the closing
//! `/`, funds-type aware parsing of `03` summaries and `16` details, and the
//! account (49), group (98) and file (99) control totals and record counts.

use std::io::BufRead;

use chrono::NaiveDate;

use crate::bai2_fields::{Fields, check_total, direction, skip_funds, split_logical, strip_slash};
use crate::emit::{Out, check_equal};
use crate::error::FeedError;
use crate::model::{Balance, Counterparty, Item, SourceInfo, Statement, StatementKind, Transaction};
use crate::money::{Currency, Money, parse_implied};
use crate::mt940_fields::{squash, yymmdd};
use crate::text::{Line, LineReader, decode, default_fallback};

/// True when `head` starts like a BAI2 file header (`01,` ... `/`).
pub fn looks_like(head: &[u8]) -> bool {
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len());
    let h = &head[start..];
    let first_line = h.split(|&b| b == b'\n' || b == b'\r').next().unwrap_or(b"");
    h.starts_with(b"01,") && first_line.iter().filter(|&&b| b == b',').count() >= 5
}

/// A logical record: its type, body segments (the record and its `88`
/// continuations), raw bytes and position.
#[derive(Default)]
struct Logical {
    code: String,
    segments: Vec<String>,
    raw: Vec<u8>,
    record: u64,
    line: u64,
}

#[derive(Default)]
struct Group {
    currency: Option<String>,
    as_of: Option<NaiveDate>,
    intraday: bool,
    line: u64,
    records: u64,
    total: i128,
    accounts: u64,
}

#[derive(Default)]
struct Account {
    index: u32,
    line: u64,
    account: Option<String>,
    currency: Option<Currency>,
    opening: Option<Balance>,
    closing: Option<Balance>,
    records: u64,
    total: i128,
    entries: u64,
}

/// Streaming BAI2 parser; iterate it for [`Item`]s.
pub struct Bai2Reader<R> {
    lines: LineReader<R>,
    out: Out,
    buf: Line,
    current: Option<Logical>,
    records: u64,
    group: Option<Group>,
    account: Option<Account>,
    file_records: u64,
    file_total: i128,
    file_groups: u64,
    statements: u32,
    header_seen: bool,
    trailer_seen: bool,
    transcoded: bool,
    done: bool,
}

impl<R: BufRead> Bai2Reader<R> {
    /// Creates a reader over a stream already checked with [`looks_like`].
    pub fn new(reader: R, source: SourceInfo) -> Self {
        Bai2Reader {
            lines: LineReader::new(reader),
            out: Out::new(source),
            buf: Line::default(),
            current: None,
            records: 0,
            group: None,
            account: None,
            file_records: 0,
            file_total: 0,
            file_groups: 0,
            statements: 0,
            header_seen: false,
            trailer_seen: false,
            transcoded: false,
            done: false,
        }
    }

    fn step(&mut self) -> Result<(), FeedError> {
        let more = self.lines.next_line(&mut self.buf).map_err(|e| FeedError::io(&self.out.source.name, e))?;
        if !more {
            self.flush();
            self.finish();
            self.done = true;
            return Ok(());
        }
        let number = self.buf.number;
        let raw = std::mem::take(&mut self.buf.bytes);
        let (text, fallback) = decode(&raw, default_fallback());
        if fallback && !self.transcoded {
            self.transcoded = true;
            self.out.finding(None, Some(number), "text is not UTF-8; transcoded from windows-1252");
        }
        if self.buf.truncated {
            self.out.reject(self.records + 1, number, "line too long; excess dropped");
        }
        for piece in split_logical(text.trim_end()) {
            self.piece(piece, number);
        }
        self.buf.bytes = raw;
        Ok(())
    }

    fn piece(&mut self, piece: &str, line: u64) {
        if piece.trim().is_empty() {
            return;
        }
        let (code, body) = match piece.split_once(',') {
            Some((c, b)) => (c.trim(), b),
            None => (strip_slash(piece.trim()), ""),
        };
        if code == "88" {
            if let Some(cur) = self.current.as_mut() {
                cur.segments.push(strip_slash(body).to_owned());
                cur.raw.push(b'\n');
                cur.raw.extend_from_slice(piece.as_bytes());
                self.count_record();
                return;
            }
            self.records += 1;
            self.out.reject(self.records, line, "88 continuation without a record to continue");
            return;
        }
        self.flush();
        self.records += 1;
        self.current = Some(Logical {
            code: code.to_owned(),
            segments: vec![strip_slash(body).to_owned()],
            raw: piece.as_bytes().to_vec(),
            record: self.records,
            line,
        });
        self.count_record();
    }

    /// Every physical record counts toward the 49/98/99 record counts.
    fn count_record(&mut self) {
        self.file_records += 1;
        if let Some(g) = self.group.as_mut() {
            g.records += 1;
        }
        if let Some(a) = self.account.as_mut() {
            a.records += 1;
        }
    }

    fn flush(&mut self) {
        let Some(rec) = self.current.take() else {
            return;
        };
        match rec.code.as_str() {
            "01" => self.header_seen = true,
            "02" => self.group_header(&rec),
            "03" => self.account_header(&rec),
            "16" => self.detail(&rec),
            "49" => self.account_trailer(&rec),
            "98" => self.group_trailer(&rec),
            "99" => self.file_trailer(&rec),
            other => self.out.reject(rec.record, rec.line, format!("unknown record type {other:?}")),
        }
    }

    fn group_header(&mut self, rec: &Logical) {
        if self.group.is_some() {
            self.out.finding(None, Some(rec.line), "group header inside an open group (missing 98)");
        }
        let mut f = Fields::new(&rec.segments);
        let _receiver = f.field();
        let _originator = f.field();
        let _status = f.field();
        let as_of = f.field().and_then(|d| yymmdd(d.trim()));
        let _time = f.field();
        let currency = f.field().map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned);
        let modifier = f.field().map(str::trim).unwrap_or("");
        self.group = Some(Group {
            currency,
            as_of,
            // 3 and 4 are same-day data; 1, 2 or blank are prior-day.
            intraday: modifier == "3" || modifier == "4",
            line: rec.line,
            records: rec.segments.len() as u64,
            ..Group::default()
        });
    }

    fn account_header(&mut self, rec: &Logical) {
        if self.account.is_some() {
            self.out.finding(None, Some(rec.line), "account header inside an open account (missing 49)");
            self.end_account(None);
        }
        let Some(group) = self.group.as_ref() else {
            self.out.reject(rec.record, rec.line, "account record outside a group");
            return;
        };
        let mut f = Fields::new(&rec.segments);
        let account = f.field().and_then(squash);
        let code = f.field().map(str::trim).filter(|c| !c.is_empty());
        let code = code.or(group.currency.as_deref()).unwrap_or("USD");
        let currency = Currency::from_code(code);
        self.statements += 1;
        let mut acc = Account {
            index: self.statements - 1,
            line: rec.line,
            account,
            currency,
            records: rec.segments.len() as u64,
            ..Account::default()
        };
        if currency.is_none() {
            self.out.reject(rec.record, rec.line, format!("unknown currency {code:?}; account entries cannot be read"));
        }
        // Summary fields: type, amount, item count, funds type [+ details].
        while let Some(type_code) = f.field() {
            let type_code = type_code.trim();
            let amount = f.field().unwrap_or("").trim();
            let _count = f.field();
            let funds = f.field().unwrap_or("").trim().to_owned();
            if let Err(e) = skip_funds(&funds, &mut f) {
                self.out.reject(rec.record, rec.line, e);
                break;
            }
            if type_code.is_empty() && amount.is_empty() {
                continue;
            }
            if amount.is_empty() {
                continue;
            }
            match parse_implied(amount) {
                Ok(minor) => {
                    acc.total += i128::from(minor);
                    if let Some(cur) = currency {
                        let bal = Balance { amount: Money { minor, currency: cur }, date: group.as_of };
                        match type_code {
                            "010" => acc.opening = Some(bal),
                            "015" => acc.closing = Some(bal),
                            _ => {}
                        }
                    }
                }
                Err(e) => self.out.reject(rec.record, rec.line, format!("summary {type_code}: {e}")),
            }
        }
        self.account = Some(acc);
    }

    fn detail(&mut self, rec: &Logical) {
        let (Some(group), Some(acc)) = (self.group.as_ref(), self.account.as_mut()) else {
            self.out.reject_entry(rec.record, rec.line, "16 detail outside an account");
            return;
        };
        acc.entries += 1;
        let mut f = Fields::new(&rec.segments);
        let type_code = f.field().unwrap_or("").trim().to_owned();
        let amount_text = f.field().unwrap_or("").trim().to_owned();
        let funds = f.field().unwrap_or("").trim().to_owned();
        let value_date = match funds.as_str() {
            "V" => {
                let d = f.field().and_then(|d| yymmdd(d.trim()));
                let _time = f.field();
                d
            }
            _ => {
                if let Err(e) = skip_funds(&funds, &mut f) {
                    self.out.reject_entry(rec.record, rec.line, e);
                    return;
                }
                None
            }
        };
        let bank_ref = f.field().and_then(squash);
        let customer_ref = f.field().and_then(squash);
        let text = squash(&f.rest());
        let minor = match parse_implied(&amount_text) {
            Ok(m) => m,
            Err(e) => {
                self.out.reject_entry(rec.record, rec.line, e.to_string());
                return;
            }
        };
        acc.total += i128::from(minor);
        let Some(direction) = type_code.parse::<u32>().ok().and_then(direction) else {
            self.out.reject_entry(
                rec.record,
                rec.line,
                format!("type code {type_code:?} is not a credit or debit detail code"),
            );
            return;
        };
        let Some(currency) = acc.currency else {
            self.out.reject_entry(rec.record, rec.line, "account currency unknown");
            return;
        };
        if minor < 0 {
            self.out.reject_entry(rec.record, rec.line, format!("negative detail amount {amount_text:?}"));
            return;
        }
        let tx = Transaction {
            statement: acc.index,
            amount: Money { minor, currency },
            direction,
            booking_date: group.as_of,
            value_date: value_date.or(group.as_of),
            account: acc.account.clone(),
            counterparty: Counterparty::default(),
            reference: bank_ref.or(customer_ref),
            description: text,
            reversal: false,
            type_code: Some(type_code),
            provenance: self.out.provenance(rec.record, rec.line, &rec.raw),
        };
        self.out.transaction(tx);
    }

    fn account_trailer(&mut self, rec: &Logical) {
        if self.account.is_none() {
            self.out.reject(rec.record, rec.line, "49 account trailer without an account");
            return;
        }
        self.end_account(Some(rec));
    }

    fn end_account(&mut self, trailer: Option<&Logical>) {
        let Some(acc) = self.account.take() else {
            return;
        };
        let idx = Some(acc.index);
        let kind = match self.group.as_ref() {
            Some(g) if g.intraday => StatementKind::Intraday,
            _ => StatementKind::EndOfDay,
        };
        match trailer {
            Some(rec) => {
                let mut f = Fields::new(&rec.segments);
                let total = f.field().unwrap_or("").trim().to_owned();
                let count = f.field().unwrap_or("").trim().to_owned();
                let l = Some(rec.line);
                check_total(&mut self.out, idx, l, "account control total (49)", &total, acc.total);
                check_equal(&mut self.out, idx, l, "account record count (49)", count, acc.records.to_string());
            }
            None => self.out.finding(idx, Some(acc.line), "account has no 49 trailer"),
        }
        if let Some(g) = self.group.as_mut() {
            g.total += acc.total;
            g.accounts += 1;
        }
        self.out.statement(Statement {
            index: acc.index,
            id: None,
            account: acc.account,
            currency: acc.currency,
            opening: acc.opening,
            closing: acc.closing,
            kind,
            entries: acc.entries,
            line: acc.line,
        });
    }

    fn group_trailer(&mut self, rec: &Logical) {
        if self.account.is_some() {
            self.out.finding(None, Some(rec.line), "group trailer inside an open account (missing 49)");
            self.end_account(None);
        }
        let Some(g) = self.group.take() else {
            self.out.reject(rec.record, rec.line, "98 group trailer without a group");
            return;
        };
        let mut f = Fields::new(&rec.segments);
        let total = f.field().unwrap_or("").trim().to_owned();
        let accounts = f.field().unwrap_or("").trim().to_owned();
        let count = f.field().unwrap_or("").trim().to_owned();
        let l = Some(rec.line);
        check_total(&mut self.out, None, l, "group control total (98)", &total, g.total);
        check_equal(&mut self.out, None, l, "group account count (98)", accounts, g.accounts.to_string());
        check_equal(&mut self.out, None, l, "group record count (98)", count, g.records.to_string());
        self.file_total += g.total;
        self.file_groups += 1;
        let _ = g.line;
    }

    fn file_trailer(&mut self, rec: &Logical) {
        if self.group.is_some() {
            self.out.finding(None, Some(rec.line), "file trailer inside an open group (missing 98)");
            self.end_account(None);
            self.group = None;
        }
        self.trailer_seen = true;
        let mut f = Fields::new(&rec.segments);
        let total = f.field().unwrap_or("").trim().to_owned();
        let groups = f.field().unwrap_or("").trim().to_owned();
        let count = f.field().unwrap_or("").trim().to_owned();
        let l = Some(rec.line);
        check_total(&mut self.out, None, l, "file control total (99)", &total, self.file_total);
        check_equal(&mut self.out, None, l, "file group count (99)", groups, self.file_groups.to_string());
        check_equal(&mut self.out, None, l, "file record count (99)", count, self.file_records.to_string());
    }

    fn finish(&mut self) {
        if self.account.is_some() {
            self.end_account(None);
        }
        if self.group.is_some() {
            self.out.finding(None, None, "last group has no 98 trailer");
        }
        if !self.header_seen {
            self.out.finding(None, None, "file has no 01 header");
        }
        if !self.trailer_seen {
            self.out.finding(None, None, "file has no 99 trailer");
        }
    }
}

impl<R: BufRead> crate::emit::Parser for Bai2Reader<R> {
    fn parts(&mut self) -> (&mut Out, &mut bool) {
        (&mut self.out, &mut self.done)
    }

    fn step(&mut self) -> Result<(), FeedError> {
        Bai2Reader::step(self)
    }
}

impl<R: BufRead> Iterator for Bai2Reader<R> {
    type Item = Result<Item, FeedError>;

    fn next(&mut self) -> Option<Self::Item> {
        crate::emit::next_item(self)
    }
}
