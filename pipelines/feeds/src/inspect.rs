//! The summary behind `wf feed inspect`: counts, per-currency totals,
//! findings and rejects of one file, as JSON (serde) or readable text.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::FeedError;
use crate::feed::{Format, open};
use crate::model::{Direction, Item, StatementKind};
use crate::money::Currency;
use crate::profile::CsvProfile;

/// Longest list of findings, rejects or statements kept in a report; the
/// counts stay exact beyond it.
pub const REPORT_LIST_CAP: usize = 10_000;

/// Credits and debits of one currency, as positive decimal strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyTotal {
    /// ISO 4217 code.
    pub currency: String,
    /// Sum of credits ("1234.50").
    pub credits: String,
    /// Sum of debits ("1234.50").
    pub debits: String,
    /// Number of credit entries.
    pub credit_count: u64,
    /// Number of debit entries.
    pub debit_count: u64,
}

/// One reject as listed in a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectSummary {
    /// Record ordinal.
    pub record: u64,
    /// Physical line.
    pub line: u64,
    /// Reason.
    pub reason: String,
}

/// One statement as listed in a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementSummary {
    /// Statement identifier, if any.
    pub id: Option<String>,
    /// Reported account.
    pub account: Option<String>,
    /// Currency.
    pub currency: Option<String>,
    /// End-of-day, intraday or unspecified.
    pub kind: StatementKind,
    /// Opening balance as a signed decimal string.
    pub opening: Option<String>,
    /// Closing balance as a signed decimal string.
    pub closing: Option<String>,
    /// Booked entries in the statement.
    pub entries: u64,
}

/// What `inspect` found in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectReport {
    /// File inspected.
    pub file: String,
    /// SHA-256 of the file.
    pub sha256: Option<String>,
    /// Format read.
    pub format: Format,
    /// Number of statements (reports, notifications, batches, accounts).
    pub statements: u64,
    /// Number of booked entries, readable or rejected.
    pub transactions: u64,
    /// Number of entries that became canonical transactions.
    pub readable: u64,
    /// Credits and debits per currency over readable entries.
    pub totals: Vec<CurrencyTotal>,
    /// Statement-level findings.
    pub findings: Vec<String>,
    /// Rejected records.
    pub rejects: Vec<RejectSummary>,
    /// Number of rejects (may exceed the listed ones).
    pub reject_count: u64,
    /// Statements in file order.
    pub statement_list: Vec<StatementSummary>,
}

/// Reads a whole file and summarises it. A file that is not the format, or
/// an unknown format, is an `Err` with a one-line message.
pub fn inspect(path: &Path, format: Option<Format>, profile: Option<&CsvProfile>) -> Result<InspectReport, FeedError> {
    let feed = open(path, format, profile)?;
    let mut report = InspectReport {
        file: path.display().to_string(),
        sha256: crate::feed::file_sha256(path).ok(),
        format: feed.format(),
        statements: 0,
        transactions: 0,
        readable: 0,
        totals: Vec::new(),
        findings: Vec::new(),
        rejects: Vec::new(),
        reject_count: 0,
        statement_list: Vec::new(),
    };
    let mut sums: BTreeMap<Currency, (i128, i128, u64, u64)> = BTreeMap::new();
    for item in feed {
        match item? {
            Item::Transaction(tx) => {
                report.transactions += 1;
                report.readable += 1;
                let s = sums.entry(tx.amount.currency).or_default();
                match tx.direction {
                    Direction::Credit => {
                        s.0 += i128::from(tx.amount.minor);
                        s.2 += 1;
                    }
                    Direction::Debit => {
                        s.1 += i128::from(tx.amount.minor);
                        s.3 += 1;
                    }
                }
            }
            Item::Statement(st) => {
                report.statements += 1;
                if report.statement_list.len() < REPORT_LIST_CAP {
                    let bal = |b: &Option<crate::model::Balance>| {
                        b.as_ref().map(|b| b.amount.currency.format_minor(i128::from(b.amount.minor)))
                    };
                    report.statement_list.push(StatementSummary {
                        id: st.id.clone(),
                        account: st.account.clone(),
                        currency: st.currency.map(|c| c.code().to_owned()),
                        kind: st.kind,
                        opening: bal(&st.opening),
                        closing: bal(&st.closing),
                        entries: st.entries,
                    });
                }
            }
            Item::Reject(r) => {
                report.reject_count += 1;
                if r.entry {
                    report.transactions += 1;
                }
                if report.rejects.len() < REPORT_LIST_CAP {
                    report.rejects.push(RejectSummary { record: r.record, line: r.line, reason: r.reason });
                }
            }
            Item::Finding(f) => {
                if report.findings.len() < REPORT_LIST_CAP {
                    let text = match f.statement {
                        Some(s) => format!("statement {}: {f}", s + 1),
                        None => f.to_string(),
                    };
                    report.findings.push(text);
                }
            }
        }
    }
    report.totals = sums
        .into_iter()
        .map(|(cur, (c, d, nc, nd))| CurrencyTotal {
            currency: cur.code().to_owned(),
            credits: cur.format_minor(c),
            debits: cur.format_minor(d),
            credit_count: nc,
            debit_count: nd,
        })
        .collect();
    Ok(report)
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "file:         {}", self.file)?;
        if let Some(sha) = &self.sha256 {
            writeln!(f, "sha256:       {sha}")?;
        }
        writeln!(f, "format:       {}", self.format)?;
        writeln!(f, "statements:   {}", self.statements)?;
        writeln!(f, "transactions: {} ({} readable, {} rejects)", self.transactions, self.readable, self.reject_count)?;
        for t in &self.totals {
            writeln!(
                f,
                "  {}  credits {} ({})  debits {} ({})",
                t.currency, t.credits, t.credit_count, t.debits, t.debit_count
            )?;
        }
        for (i, s) in self.statement_list.iter().enumerate() {
            let kind = match s.kind {
                StatementKind::EndOfDay => "end-of-day",
                StatementKind::Intraday => "intraday",
                StatementKind::Unspecified => "-",
            };
            writeln!(
                f,
                "  statement {}: {} account {} {} entries {} opening {} closing {}",
                i + 1,
                kind,
                s.account.as_deref().unwrap_or("?"),
                s.currency.as_deref().unwrap_or("?"),
                s.entries,
                s.opening.as_deref().unwrap_or("-"),
                s.closing.as_deref().unwrap_or("-"),
            )?;
        }
        if self.statement_list.len() as u64 != self.statements {
            writeln!(f, "  ... {} statements in all", self.statements)?;
        }
        writeln!(f, "findings:     {}", self.findings.len())?;
        for x in &self.findings {
            writeln!(f, "  - {x}")?;
        }
        writeln!(f, "rejects:      {}", self.reject_count)?;
        for r in &self.rejects {
            writeln!(f, "  - record {} line {}: {}", r.record, r.line, r.reason)?;
        }
        Ok(())
    }
}
