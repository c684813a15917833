//! The canonical output shared by every parser: transactions, statements,
//! rejects, findings and their provenance.
//!
//! Every format maps onto these types so the ETL downstream never needs to
//! know which upstream system sent a file.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};

/// Direction of a booked entry, seen from the reported account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Money in.
    Credit,
    /// Money out.
    Debit,
}

/// Whether a statement is a final end-of-day statement or an intraday report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementKind {
    /// MT940, camt.053, BAI2 prior-day data.
    EndOfDay,
    /// MT942, camt.052, camt.054, BAI2 same-day data.
    Intraday,
    /// Formats without that notion: NACHA batches and CSV exports.
    Unspecified,
}

/// Where a record came from, precise enough to find and verify its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// File name (or stream label) given by the caller.
    pub source: String,
    /// SHA-256 of the whole source file, hex, when the caller supplied it.
    pub source_sha256: Option<String>,
    /// 1-based ordinal of the logical record in the file (format specific:
    /// a tag field, a 94-character record, an XML `Ntry`, a CSV row).
    pub record: u64,
    /// 1-based physical line where the record starts.
    pub line: u64,
    /// SHA-256 of the record's raw bytes, hex.
    pub raw_sha256: String,
}

/// The other party of a transaction, as far as the format tells it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterparty {
    /// Name.
    pub name: Option<String>,
    /// Account (IBAN or local number).
    pub account: Option<String>,
    /// Bank identifier (BIC, routing number).
    pub bank: Option<String>,
}

/// One booked entry in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// 0-based index of the statement (within the file) this entry belongs to.
    pub statement: u32,
    /// Amount as a non-negative count of minor units; see `direction`.
    pub amount: Money,
    /// Credit or debit.
    pub direction: Direction,
    /// Booking (entry) date, when the format carries one.
    pub booking_date: Option<NaiveDate>,
    /// Value date, when the format carries one.
    pub value_date: Option<NaiveDate>,
    /// The reported account.
    pub account: Option<String>,
    /// The other party.
    pub counterparty: Counterparty,
    /// The format's own transaction reference.
    pub reference: Option<String>,
    /// Free text describing the entry.
    pub description: Option<String>,
    /// True for a reversal (storno) entry.
    pub reversal: bool,
    /// The format's transaction type code (MT940 `NTRF`, BAI2 `195`, ...).
    pub type_code: Option<String>,
    /// Origin of the record.
    pub provenance: Provenance,
}

impl Transaction {
    /// The amount signed by direction: credits positive, debits negative.
    pub fn signed_minor(&self) -> i64 {
        match self.direction {
            Direction::Credit => self.amount.minor,
            Direction::Debit => -self.amount.minor,
        }
    }
}

/// A balance carried by a statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Signed amount (negative for a debit balance).
    pub amount: Money,
    /// Date of the balance, when given.
    pub date: Option<NaiveDate>,
}

/// One statement, report, batch or export, emitted once it is complete
/// (after its last transaction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// 0-based index within the file; transactions refer to it.
    pub index: u32,
    /// The statement's own identifier (MT940 `:20:`, camt `Id`, batch number).
    pub id: Option<String>,
    /// The reported account.
    pub account: Option<String>,
    /// Statement currency.
    pub currency: Option<Currency>,
    /// Opening balance, when the format carries it.
    pub opening: Option<Balance>,
    /// Closing balance, when the format carries it.
    pub closing: Option<Balance>,
    /// End-of-day or intraday.
    pub kind: StatementKind,
    /// Number of booked entries read (transactions plus rejected entries).
    pub entries: u64,
    /// 1-based line where the statement starts.
    pub line: u64,
}

/// A record that could not be read; the rest of the file goes on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// File name or stream label.
    pub source: String,
    /// 1-based record ordinal (same numbering as [`Provenance::record`]).
    pub record: u64,
    /// 1-based physical line.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// True when the rejected record was a booked entry (counts as a
    /// transaction of the file even though it yields no [`Transaction`]).
    pub entry: bool,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: record {} (line {}): {}", self.source, self.record, self.line, self.reason)
    }
}

/// A statement-level observation: a failed balance or control-total check,
/// or a tolerated deviation from the format worth knowing about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Statement it concerns, when it concerns one.
    pub statement: Option<u32>,
    /// 1-based line it concerns, when known.
    pub line: Option<u64>,
    /// Human-readable description.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// One item of a parsed feed, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "item", rename_all = "lowercase")]
pub enum Item {
    /// A readable booked entry.
    Transaction(Box<Transaction>),
    /// A statement, after all its entries.
    Statement(Box<Statement>),
    /// A record that could not be read.
    Reject(Reject),
    /// A statement-level check result or tolerated deviation.
    Finding(Finding),
}

/// Identifies the file being parsed in provenance, rejects and errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceInfo {
    /// File name or stream label.
    pub name: String,
    /// SHA-256 of the whole file, hex, if known before parsing.
    pub sha256: Option<String>,
}

impl SourceInfo {
    /// A source known by name only.
    pub fn named(name: impl Into<String>) -> Self {
        SourceInfo { name: name.into(), sha256: None }
    }
}
