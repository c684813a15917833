//! CSV export reader driven by a [`CsvProfile`]: header lookup, per-row
//! mapping onto the canonical record, and CSV recognition for auto-detect.
//!
//! A CSV export carries no statement structure, so the whole file is one
//! statement without balances.

use std::io::Read;

use chrono::{NaiveDate, NaiveDateTime};

use crate::emit::Out;
use crate::error::FeedError;
use crate::model::{Counterparty, Direction, Item, SourceInfo, Statement, StatementKind, Transaction};
use crate::money::{Currency, Decimal, Money};
use crate::mt940_fields::squash;
use crate::profile::{CsvProfile, SignConvention};

/// True when `head` looks like delimited text with a header row.
pub fn looks_like(head: &[u8]) -> bool {
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    let text = String::from_utf8_lossy(head);
    let lines: Vec<&str> = text.split(['\n', '\r']).filter(|l| !l.trim().is_empty()).take(5).collect();
    // The last line may be cut by the look-ahead window.
    let complete = if lines.len() > 2 { &lines[..lines.len() - 1] } else { &lines[..] };
    if complete.len() < 2 {
        return false;
    }
    [',', ';', '\t', '|'].iter().any(|&d| {
        let first = complete[0].matches(d).count();
        first >= 1 && complete.iter().all(|l| l.matches(d).count() >= 1)
    })
}

struct Cols {
    booking: usize,
    value: Option<usize>,
    amount: Option<usize>,
    debit: Option<usize>,
    credit: Option<usize>,
    direction: Option<usize>,
    currency: Option<usize>,
    description: Vec<usize>,
    reference: Option<usize>,
    counterparty: Option<usize>,
    counterparty_account: Option<usize>,
    account: Option<usize>,
}

/// Streaming CSV parser; iterate it for [`Item`]s.
pub struct CsvReader<R: Read> {
    csv: csv::Reader<R>,
    profile: CsvProfile,
    cols: Cols,
    out: Out,
    record: csv::StringRecord,
    default_currency: Option<Currency>,
    entries: u64,
    done: bool,
}

impl<R: Read> CsvReader<R> {
    /// Opens the CSV stream (already UTF-8) and reads up to the header row.
    pub fn new(reader: R, profile: &CsvProfile, source: SourceInfo) -> Result<Self, FeedError> {
        let mut csv = csv::ReaderBuilder::new()
            .delimiter(profile.delimiter as u8)
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        let mut header = csv::StringRecord::new();
        let name = source.name.clone();
        let read_err = |e: csv::Error| FeedError::not_format(&name, "CSV", e.to_string());
        for _ in 0..profile.skip_rows {
            if !csv.read_record(&mut header).map_err(read_err)? {
                break;
            }
        }
        if !csv.read_record(&mut header).map_err(read_err)? {
            return Err(FeedError::not_format(&source.name, "CSV", "no header row"));
        }
        let find = |col: &str| header.iter().position(|h| h.trim().trim_start_matches('\u{feff}') == col);
        let need = |col: &str| {
            find(col).ok_or_else(|| {
                FeedError::not_format(
                    &source.name,
                    &format!("CSV ({})", profile.name),
                    format!("header has no column {col:?}"),
                )
            })
        };
        let opt = |col: &Option<String>| col.as_deref().map(need).transpose();
        let c = &profile.columns;
        let cols = Cols {
            booking: need(&c.booking_date)?,
            value: opt(&c.value_date)?,
            amount: opt(&c.amount)?,
            debit: opt(&c.debit)?,
            credit: opt(&c.credit)?,
            direction: opt(&c.direction)?,
            currency: opt(&c.currency)?,
            description: c.description.iter().map(|d| need(d)).collect::<Result<_, _>>()?,
            reference: opt(&c.reference)?,
            counterparty: opt(&c.counterparty)?,
            counterparty_account: opt(&c.counterparty_account)?,
            account: opt(&c.account)?,
        };
        Ok(CsvReader {
            csv,
            default_currency: profile.default_currency(),
            profile: profile.clone(),
            cols,
            out: Out::new(source),
            record: csv::StringRecord::new(),
            entries: 0,
            done: false,
        })
    }

    fn step(&mut self) {
        match self.csv.read_record(&mut self.record) {
            Ok(true) => {}
            Ok(false) => {
                self.finish();
                return;
            }
            Err(e) => {
                let (record, line) = e.position().map_or((self.entries + 1, 0), |p| (p.record() + 1, p.line()));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    self.out.reject(record, line, format!("read error: {e}; rest of file not read"));
                    self.finish();
                } else {
                    self.entries += 1;
                    self.out.reject_entry(record, line, format!("unreadable CSV row: {e}"));
                }
                return;
            }
        }
        if self.record.iter().all(|f| f.trim().is_empty()) {
            return;
        }
        self.entries += 1;
        let (record, line) = self.record.position().map_or((self.entries, 0), |p| (p.record() + 1, p.line()));
        match self.row() {
            Ok(mut tx) => {
                let raw = self.record.iter().collect::<Vec<_>>().join(&self.profile.delimiter.to_string());
                tx.provenance = self.out.provenance(record, line, raw.as_bytes());
                self.out.transaction(tx);
            }
            Err(reason) => self.out.reject_entry(record, line, reason),
        }
    }

    fn cell(&self, i: Option<usize>) -> Option<&str> {
        i.and_then(|i| self.record.get(i)).map(str::trim).filter(|s| !s.is_empty())
    }

    fn date(&self, i: Option<usize>, what: &str) -> Result<Option<NaiveDate>, String> {
        let Some(text) = self.cell(i) else {
            return Ok(None);
        };
        let fmt = &self.profile.date_format;
        NaiveDate::parse_from_str(text, fmt)
            .or_else(|_| NaiveDateTime::parse_from_str(text, fmt).map(|d| d.date()))
            .map(Some)
            .map_err(|_| format!("{what} {text:?} does not match date format {fmt:?}"))
    }

    fn amount(&self, text: &str, currency: Currency) -> Result<i64, String> {
        let mut t = text.to_owned();
        for s in &self.profile.strip {
            t = t.replace(s.as_str(), "");
        }
        Decimal::parse(&t, self.profile.decimal_separator, self.profile.thousands_separator)
            .and_then(|d| d.to_minor(currency, text))
            .map_err(|e| e.to_string())
    }

    fn row(&self) -> Result<Transaction, String> {
        let c = &self.cols;
        let booking = self.date(Some(c.booking), "booking date")?.ok_or("empty booking date")?;
        let value = self.date(c.value, "value date")?;
        let currency = match self.cell(c.currency) {
            Some(code) => Currency::from_code(code).ok_or_else(|| format!("unknown currency {code:?}"))?,
            None => self.default_currency.ok_or("no currency in row and no default currency")?,
        };
        let signed = if c.amount.is_some() {
            let text = self.cell(c.amount).ok_or("empty amount")?;
            let v = self.amount(text, currency)?;
            if let Some(dir) = self.cell(c.direction) {
                let is = |vals: &[String]| vals.iter().any(|v| v.eq_ignore_ascii_case(dir));
                let magnitude = v.checked_abs().ok_or("amount out of range")?;
                if is(&self.profile.credit_values) {
                    magnitude
                } else if is(&self.profile.debit_values) {
                    -magnitude
                } else {
                    return Err(format!("direction {dir:?} is neither a credit nor a debit value"));
                }
            } else if c.direction.is_some() {
                return Err("empty direction".into());
            } else {
                match self.profile.sign {
                    SignConvention::CreditPositive => v,
                    SignConvention::DebitPositive => v.checked_neg().ok_or("amount out of range")?,
                }
            }
        } else {
            let debit = self.cell(c.debit).map(|t| self.amount(t, currency)).transpose()?;
            let credit = self.cell(c.credit).map(|t| self.amount(t, currency)).transpose()?;
            match (debit.filter(|d| *d != 0), credit.filter(|c| *c != 0)) {
                (Some(d), None) => -d.checked_abs().ok_or("amount out of range")?,
                (None, Some(c)) => c.checked_abs().ok_or("amount out of range")?,
                (None, None) if debit.is_some() || credit.is_some() => 0,
                (None, None) => return Err("both debit and credit cells are empty".into()),
                (Some(_), Some(_)) => {
                    return Err("both debit and credit cells hold an amount".into());
                }
            }
        };
        let description: Vec<&str> = c.description.iter().filter_map(|&i| self.cell(Some(i))).collect();
        Ok(Transaction {
            statement: 0,
            amount: Money { minor: signed.checked_abs().ok_or("amount out of range")?, currency },
            direction: if signed < 0 { Direction::Debit } else { Direction::Credit },
            booking_date: Some(booking),
            value_date: value,
            account: self.cell(c.account).map(str::to_owned).or_else(|| self.profile.account.clone()),
            counterparty: Counterparty {
                name: self.cell(c.counterparty).and_then(squash),
                account: self.cell(c.counterparty_account).and_then(squash),
                bank: None,
            },
            reference: self.cell(c.reference).map(str::to_owned),
            description: squash(&description.join(" ")),
            reversal: false,
            type_code: None,
            provenance: self.out.provenance(0, 0, b""),
        })
    }

    fn finish(&mut self) {
        self.out.statement(Statement {
            index: 0,
            id: None,
            account: self.profile.account.clone(),
            currency: self.default_currency,
            opening: None,
            closing: None,
            kind: StatementKind::Unspecified,
            entries: self.entries,
            line: 1,
        });
        self.done = true;
    }
}

impl<R: Read> Iterator for CsvReader<R> {
    type Item = Result<Item, FeedError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.out.pop() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            self.step();
        }
    }
}
