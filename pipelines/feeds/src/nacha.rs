//! NACHA ACH file reader: 94-character records with or without line breaks,
//! blocking fill, batches of any SEC code (PPD, CCD, CTX, IAT, WEB, TEL, COR,
//! returns), entries with their addenda, and batch / file control checks.
//!
//! Direction follows the transaction code as the file's own control totals
//! do (last digit 1-4 credit, 5-9 debit, seen from the receiver's account).

use std::io::BufRead;

use chrono::NaiveDate;

use crate::emit::{Out, check_equal};
use crate::error::FeedError;
use crate::model::{Counterparty, Direction, Item, SourceInfo, Statement, StatementKind, Transaction};
use crate::money::{Currency, Money, format_minor};
use crate::mt940_fields::{squash, yymmdd};
use crate::nacha_records::{RECORD, Records, field, number, usd};

/// True when `head` starts like a NACHA file header record.
pub fn looks_like(head: &[u8]) -> bool {
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len());
    let h = &head[start..];
    // The record-size field "094" sits at positions 35-37; a header with a
    // field one character short still counts, and is reported when read.
    h.len() >= 40 && h.starts_with(b"101") && h[30..40].windows(3).any(|w| w == b"094")
}

#[derive(Default)]
struct Batch {
    index: u32,
    line: u64,
    sec: String,
    service_class: String,
    company_name: Option<String>,
    company_id: Option<String>,
    description: Option<String>,
    effective: Option<NaiveDate>,
    number: Option<String>,
    records: u64,
    entries: u64,
    hash: u64,
    debits: i128,
    credits: i128,
}

struct Pending {
    tx: Transaction,
    raw: Vec<u8>,
    addenda: Vec<String>,
    iat: bool,
}

#[derive(Default)]
struct FileTotals {
    batches: u64,
    records: u64,
    hash: u64,
    debits: i128,
    credits: i128,
}

/// Streaming NACHA parser; iterate it for [`Item`]s.
pub struct NachaReader<R> {
    records: Records<R>,
    out: Out,
    rec: Vec<u8>,
    n: u64,
    all_records: u64,
    batch: Option<Batch>,
    pending: Option<Pending>,
    file: FileTotals,
    statements: u32,
    header_seen: bool,
    control_seen: bool,
    padded: bool,
    file_block_count: Option<u64>,
    usd: Currency,
    done: bool,
}

impl<R: BufRead> NachaReader<R> {
    /// Creates a reader over a stream already checked with [`looks_like`].
    pub fn new(reader: R, source: SourceInfo) -> Self {
        NachaReader {
            records: Records::new(reader),
            out: Out::new(source),
            rec: Vec::with_capacity(RECORD),
            n: 0,
            all_records: 0,
            batch: None,
            pending: None,
            file: FileTotals::default(),
            statements: 0,
            header_seen: false,
            control_seen: false,
            padded: false,
            file_block_count: None,
            usd: Currency::from_code("USD").expect("USD is in the currency table"),
            done: false,
        }
    }

    fn step(&mut self) -> Result<(), FeedError> {
        let mut rec = std::mem::take(&mut self.rec);
        let line = self.records.next(&mut rec).map_err(|e| FeedError::io(&self.out.source.name, e))?;
        let Some(line) = line else {
            self.finish();
            self.done = true;
            return Ok(());
        };
        self.n += 1;
        self.all_records += 1;
        if rec.len() < RECORD {
            if !self.padded {
                self.padded = true;
                self.out.finding(
                    None,
                    Some(line),
                    format!(
                        "record {} is {} characters, not 94; short records are padded with blanks",
                        self.n,
                        rec.len()
                    ),
                );
            }
            rec.resize(RECORD, b' ');
        }
        self.record(&rec, line);
        self.rec = rec;
        Ok(())
    }

    fn record(&mut self, rec: &[u8], line: u64) {
        let n = self.n;
        if rec.iter().all(|&b| b == b'9') {
            return; // blocking fill
        }
        if rec[0] != b'7' {
            self.flush_pending();
        }
        if self.control_seen {
            self.out.reject(n, line, "record after the file control record");
            return;
        }
        match rec[0] {
            b'1' => {
                if self.header_seen {
                    self.out.reject(n, line, "second file header record");
                }
                self.header_seen = true;
            }
            b'5' => self.batch_header(rec, line),
            b'6' => self.entry(rec, line),
            b'7' => self.addenda(rec, line),
            b'8' => self.batch_control(rec, line),
            b'9' => self.file_control(rec, line),
            other => self.out.reject(n, line, format!("unknown record type {:?}", char::from(other))),
        }
    }

    fn batch_header(&mut self, rec: &[u8], line: u64) {
        if self.batch.is_some() {
            self.out.finding(None, Some(line), "batch header before the previous batch's control record");
            self.end_batch(None, line);
        }
        let sec = field(rec, 51, 53);
        let iat = sec == "IAT";
        self.statements += 1;
        let effective = yymmdd(&field(rec, 70, 75));
        self.batch = Some(Batch {
            index: self.statements - 1,
            line,
            service_class: field(rec, 2, 4),
            company_name: if iat { None } else { squash(&field(rec, 5, 20)) },
            company_id: squash(&field(rec, 41, 50)),
            description: squash(&field(rec, 54, 63)),
            effective,
            number: squash(&field(rec, 88, 94)),
            sec,
            ..Batch::default()
        });
        if effective.is_none() {
            self.out.finding(Some(self.statements - 1), Some(line), "batch header has no valid effective entry date");
        }
    }

    fn entry(&mut self, rec: &[u8], line: u64) {
        let n = self.n;
        let Some(batch) = self.batch.as_mut() else {
            self.out.reject_entry(n, line, "entry detail record outside a batch");
            return;
        };
        batch.records += 1;
        batch.entries += 1;
        let routing = number(rec, 4, 11);
        batch.hash += routing.unwrap_or(0);
        let code = field(rec, 2, 3);
        let direction = match code.as_bytes().get(1) {
            Some(b'1'..=b'4') => Direction::Credit,
            Some(b'5'..=b'9') => Direction::Debit,
            _ => {
                self.out.reject_entry(n, line, format!("invalid transaction code {code:?}"));
                return;
            }
        };
        let Some(amount) = number(rec, 30, 39) else {
            self.out.reject_entry(n, line, format!("invalid amount {:?}", field(rec, 30, 39)));
            return;
        };
        let amount = amount as i64;
        match direction {
            Direction::Credit => batch.credits += i128::from(amount),
            Direction::Debit => batch.debits += i128::from(amount),
        }
        let iat = batch.sec == "IAT";
        let counterparty = if iat {
            Counterparty { name: None, account: squash(&field(rec, 40, 74)), bank: squash(&field(rec, 4, 12)) }
        } else if batch.sec == "CTX" {
            Counterparty {
                name: squash(&field(rec, 59, 74)),
                account: squash(&field(rec, 13, 29)),
                bank: squash(&field(rec, 4, 12)),
            }
        } else {
            Counterparty {
                name: squash(&field(rec, 55, 76)),
                account: squash(&field(rec, 13, 29)),
                bank: squash(&field(rec, 4, 12)),
            }
        };
        let tx = Transaction {
            statement: batch.index,
            amount: Money { minor: amount, currency: self.usd },
            direction,
            booking_date: batch.effective,
            value_date: batch.effective,
            account: batch.company_id.clone(),
            counterparty,
            reference: squash(&field(rec, 80, 94)),
            description: batch.description.clone(),
            reversal: false,
            type_code: Some(format!("{} {}", batch.sec, code)),
            provenance: self.out.provenance(n, line, b""),
        };
        self.pending = Some(Pending { tx, raw: rec.to_vec(), addenda: Vec::new(), iat });
    }

    fn addenda(&mut self, rec: &[u8], line: u64) {
        let n = self.n;
        if let Some(b) = self.batch.as_mut() {
            b.records += 1;
        }
        let Some(p) = self.pending.as_mut() else {
            self.out.reject(n, line, "addenda record without a preceding entry");
            return;
        };
        p.raw.push(b'\n');
        p.raw.extend_from_slice(rec);
        let kind = field(rec, 2, 3);
        let text = match kind.as_str() {
            "05" => squash(&field(rec, 4, 83)),
            "98" => squash(&format!("NOC {} corrected data {}", field(rec, 4, 6), field(rec, 36, 64))),
            "99" => {
                p.tx.reversal = true;
                squash(&format!("return {} of trace {} {}", field(rec, 4, 6), field(rec, 7, 21), field(rec, 36, 79)))
            }
            "10" if p.iat => {
                p.tx.counterparty.name = squash(&field(rec, 47, 81));
                None
            }
            "17" if p.iat => squash(&field(rec, 4, 83)),
            _ if p.iat => None,
            other => {
                self.out.reject(n, line, format!("unknown addenda type {other:?}"));
                None
            }
        };
        // Bound what one entry may hold: CTX allows 9,999 addenda.
        if let Some(t) = text
            && p.addenda.len() < 64
        {
            p.addenda.push(t);
        }
    }

    fn flush_pending(&mut self) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        if !p.addenda.is_empty() {
            let extra = p.addenda.join(" ");
            p.tx.description = Some(match p.tx.description.take() {
                Some(d) => format!("{d} {extra}"),
                None => extra,
            });
        }
        p.tx.provenance.raw_sha256 = crate::text::sha256_hex(&p.raw);
        self.out.transaction(p.tx);
    }

    fn batch_control(&mut self, rec: &[u8], line: u64) {
        if self.batch.is_none() {
            self.out.reject(self.n, line, "batch control record without a batch header");
            return;
        }
        self.end_batch(Some(rec), line);
    }

    fn end_batch(&mut self, control: Option<&[u8]>, line: u64) {
        self.flush_pending();
        let Some(b) = self.batch.take() else { return };
        let out = &mut self.out;
        let idx = Some(b.index);
        let hash = b.hash % 10_000_000_000;
        match control {
            Some(rec) => {
                let l = Some(line);
                check_equal(
                    out,
                    idx,
                    l,
                    "batch entry/addenda count",
                    number(rec, 5, 10).unwrap_or(u64::MAX),
                    b.records,
                );
                check_equal(out, idx, l, "batch entry hash", number(rec, 11, 20).unwrap_or(u64::MAX), hash);
                check_equal(out, idx, l, "batch total debits", usd(number(rec, 21, 32)), format_minor(b.debits, 2));
                check_equal(out, idx, l, "batch total credits", usd(number(rec, 33, 44)), format_minor(b.credits, 2));
                check_equal(out, idx, l, "batch service class", field(rec, 2, 4), b.service_class.clone());
            }
            None => out.finding(idx, Some(b.line), "batch has no batch control record"),
        }
        self.file.batches += 1;
        self.file.records += b.records;
        self.file.hash += b.hash;
        self.file.debits += b.debits;
        self.file.credits += b.credits;
        out.statement(Statement {
            index: b.index,
            id: b.number,
            account: b.company_id,
            currency: Some(self.usd),
            opening: None,
            closing: None,
            kind: StatementKind::Unspecified,
            entries: b.entries,
            line: b.line,
        });
        let _ = b.company_name;
    }

    fn file_control(&mut self, rec: &[u8], line: u64) {
        if self.batch.is_some() {
            self.out.finding(None, Some(line), "file control record inside an open batch");
            self.end_batch(None, line);
        }
        self.control_seen = true;
        let f = &self.file;
        let l = Some(line);
        let out = &mut self.out;
        check_equal(out, None, l, "file batch count", number(rec, 2, 7).unwrap_or(u64::MAX), f.batches);
        check_equal(out, None, l, "file entry/addenda count", number(rec, 14, 21).unwrap_or(u64::MAX), f.records);
        check_equal(out, None, l, "file entry hash", number(rec, 22, 31).unwrap_or(u64::MAX), f.hash % 10_000_000_000);
        check_equal(out, None, l, "file total debits", usd(number(rec, 32, 43)), format_minor(f.debits, 2));
        check_equal(out, None, l, "file total credits", usd(number(rec, 44, 55)), format_minor(f.credits, 2));
        self.file_block_count = number(rec, 8, 13);
    }

    fn finish(&mut self) {
        self.flush_pending();
        if self.batch.is_some() {
            self.end_batch(None, 0);
        }
        if !self.header_seen {
            self.out.finding(None, None, "file has no file header record");
        }
        if !self.control_seen {
            self.out.finding(None, None, "file has no file control record");
        } else if let Some(blocks) = self.file_block_count {
            let computed = self.all_records.div_ceil(10);
            check_equal(&mut self.out, None, None, "file block count", blocks, computed);
        }
    }
}

impl<R: BufRead> crate::emit::Parser for NachaReader<R> {
    fn parts(&mut self) -> (&mut Out, &mut bool) {
        (&mut self.out, &mut self.done)
    }

    fn step(&mut self) -> Result<(), FeedError> {
        NachaReader::step(self)
    }
}

impl<R: BufRead> Iterator for NachaReader<R> {
    type Item = Result<Item, FeedError>;

    fn next(&mut self) -> Option<Self::Item> {
        crate::emit::next_item(self)
    }
}
