//! The output side every parser shares: a small queue of finished items plus
//! helpers that stamp rejects, findings and provenance with the source file.
//!
//! Parsers push into the queue while reading one logical record and the
//! iterator drains it, so at most one statement's worth of items is held.

use std::collections::VecDeque;

use crate::error::FeedError;
use crate::model::{Finding, Item, Provenance, Reject, SourceInfo, Statement, Transaction};
use crate::text::sha256_hex;

/// A parser that reads one logical record per [`Parser::step`], queueing
/// what it found in its [`Out`].
pub trait Parser {
    /// Its queue and its "no more input" flag.
    fn parts(&mut self) -> (&mut Out, &mut bool);
    /// Reads the next logical record; an error ends the file.
    fn step(&mut self) -> Result<(), FeedError>;
}

/// The iterator every parser shares: hand out queued items, read on when the
/// queue is empty, stop at the end or after a whole-file error.
pub fn next_item<P: Parser>(p: &mut P) -> Option<Result<Item, FeedError>> {
    loop {
        let (out, done) = p.parts();
        if let Some(item) = out.pop() {
            return Some(Ok(item));
        }
        if *done {
            return None;
        }
        if let Err(e) = p.step() {
            *p.parts().1 = true;
            return Some(Err(e));
        }
    }
}

/// Queue of items ready to be handed out, with the source they belong to.
#[derive(Debug, Default)]
pub struct Out {
    /// Source being parsed.
    pub source: SourceInfo,
    queue: VecDeque<Item>,
}

impl Out {
    /// An empty queue for `source`.
    pub fn new(source: SourceInfo) -> Self {
        Out { source, queue: VecDeque::new() }
    }

    /// Next finished item, if any.
    pub fn pop(&mut self) -> Option<Item> {
        self.queue.pop_front()
    }

    /// Provenance for a record with the given raw bytes.
    pub fn provenance(&self, record: u64, line: u64, raw: &[u8]) -> Provenance {
        Provenance {
            source: self.source.name.clone(),
            source_sha256: self.source.sha256.clone(),
            record,
            line,
            raw_sha256: sha256_hex(raw),
        }
    }

    /// Queues a transaction.
    pub fn transaction(&mut self, tx: Transaction) {
        self.queue.push_back(Item::Transaction(Box::new(tx)));
    }

    /// Queues a finished statement.
    pub fn statement(&mut self, st: Statement) {
        self.queue.push_back(Item::Statement(Box::new(st)));
    }

    /// Queues a reject of a record that is not a booked entry.
    pub fn reject(&mut self, record: u64, line: u64, reason: impl Into<String>) {
        self.push_reject(record, line, reason.into(), false);
    }

    /// Queues a reject of a booked entry (it still counts as an entry).
    pub fn reject_entry(&mut self, record: u64, line: u64, reason: impl Into<String>) {
        self.push_reject(record, line, reason.into(), true);
    }

    fn push_reject(&mut self, record: u64, line: u64, reason: String, entry: bool) {
        self.queue.push_back(Item::Reject(Reject { source: self.source.name.clone(), record, line, reason, entry }));
    }

    /// Queues a finding.
    pub fn finding(&mut self, statement: Option<u32>, line: Option<u64>, message: impl Into<String>) {
        self.queue.push_back(Item::Finding(Finding { statement, line, message: message.into() }));
    }
}

/// Compares a declared total with the computed one and queues a finding when
/// they differ; `what` names the check in the message.
pub fn check_equal<T: PartialEq + std::fmt::Display>(
    out: &mut Out,
    statement: Option<u32>,
    line: Option<u64>,
    what: &str,
    declared: T,
    computed: T,
) {
    if declared != computed {
        out.finding(statement, line, format!("{what}: file says {declared}, entries give {computed}"));
    }
}
