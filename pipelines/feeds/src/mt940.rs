//! SWIFT MT940 (end-of-day) and MT942 (intraday) statement reader.
//!
//! Owns splitting the stream into messages and tag fields, SWIFT `{1:}{2:}{4:`
//! envelopes and SOH/ETX framing, statement state (account, balances, entry
//! totals) and the balance / `:90a:` checks. Field grammar is in
//! [`crate::mt940_fields`].

use std::io::BufRead;

use crate::emit::{Out, check_equal};
use crate::error::FeedError;
use crate::model::{Balance, Direction, Item, SourceInfo, Statement, StatementKind, Transaction};
use crate::money::{Currency, Money};
use crate::mt940_fields::{self as f, squash};
use crate::text::{Line, LineReader, decode, default_fallback};

/// True when `head` (the first bytes of a file) looks like MT940/MT942.
pub fn looks_like(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut has_20 = false;
    let mut has_body = false;
    for line in text.lines() {
        let l = line.trim_start_matches(['\u{1}', '\u{3}', ' ']);
        let l = l.rsplit("{4:").next().unwrap_or(l);
        has_20 |= l.starts_with(":20:");
        has_body |= [":25:", ":28", ":60", ":61:", ":62", ":34F:"].iter().any(|t| l.starts_with(t));
    }
    has_20 && has_body
}

struct Field {
    tag: String,
    text: String,
    raw: Vec<u8>,
    line: u64,
    record: u64,
}

#[derive(Default)]
struct StmtState {
    index: u32,
    id: Option<String>,
    seq: Option<String>,
    account: Option<String>,
    currency: Option<Currency>,
    opening: Option<f::BalanceField>,
    closing: Option<f::BalanceField>,
    intraday: bool,
    line: u64,
    entries: u64,
    net: i128,
    debits: (u64, i128),
    credits: (u64, i128),
    declared_debits: Option<(u64, i64)>,
    declared_credits: Option<(u64, i64)>,
    all_entries_read: bool,
}

struct PendingTx {
    line: f::StatementLine,
    raw: Vec<u8>,
    record: u64,
    first_line: u64,
    info: String,
    currency: Currency,
}

/// Streaming MT940/MT942 parser; iterate it for [`Item`]s.
pub struct Mt940Reader<R> {
    lines: LineReader<R>,
    out: Out,
    buf: Line,
    field: Option<Field>,
    st: Option<StmtState>,
    pending: Option<PendingTx>,
    records: u64,
    statements: u32,
    message_is_942: bool,
    transcoded: bool,
    unknown_tags: Vec<String>,
    done: bool,
}

impl<R: BufRead> Mt940Reader<R> {
    /// Creates a reader over a stream already checked with [`looks_like`].
    pub fn new(reader: R, source: SourceInfo) -> Self {
        Mt940Reader {
            lines: LineReader::new(reader),
            out: Out::new(source),
            buf: Line::default(),
            field: None,
            st: None,
            pending: None,
            records: 0,
            statements: 0,
            message_is_942: false,
            transcoded: false,
            unknown_tags: Vec::new(),
            done: false,
        }
    }

    fn step(&mut self) -> Result<(), FeedError> {
        let more = self.lines.next_line(&mut self.buf).map_err(|e| FeedError::io(&self.out.source.name, e))?;
        if !more {
            self.end_field();
            self.end_statement();
            self.done = true;
            return Ok(());
        }
        let number = self.buf.number;
        if self.buf.truncated {
            self.out.reject(self.records + 1, number, "line too long; excess dropped");
        }
        let raw = std::mem::take(&mut self.buf.bytes);
        let (decoded, used_fallback) = decode(&raw, default_fallback());
        if used_fallback && !self.transcoded {
            self.transcoded = true;
            self.out.finding(None, Some(number), "text is not UTF-8; transcoded from windows-1252");
        }
        self.line(&decoded, &raw, number);
        self.buf.bytes = raw;
        Ok(())
    }

    fn line(&mut self, text: &str, raw: &[u8], number: u64) {
        // SOH/ETX framing of file transfers carries no content.
        let mut l = text.trim_matches(['\u{1}', '\u{3}']);
        if l.starts_with('{') && !l.starts_with("{4:") || l.contains("{4:") {
            if let Some(p) = l.find("{2:") {
                let t = l.get(p + 4..p + 7).unwrap_or("");
                self.message_is_942 = t == "942";
            }
            self.end_field();
            match l.find("{4:") {
                Some(p) => l = &l[p + 3..],
                None => return,
            }
            if l.trim().is_empty() {
                return;
            }
        }
        let trimmed = l.trim_end();
        if trimmed == "-" || trimmed.starts_with("-}") {
            self.end_field();
            self.end_statement();
            self.message_is_942 = false;
            return;
        }
        if let Some((tag, rest)) = split_tag(l) {
            self.end_field();
            self.records += 1;
            self.field = Some(Field {
                tag: tag.to_owned(),
                text: rest.to_owned(),
                raw: raw.to_vec(),
                line: number,
                record: self.records,
            });
            return;
        }
        match self.field.as_mut() {
            Some(field) if self.st.is_some() || field.tag == "20" => {
                field.text.push('\n');
                field.text.push_str(l);
                field.raw.push(b'\n');
                field.raw.extend_from_slice(raw);
            }
            _ if l.trim().is_empty() => {}
            _ if self.st.is_some() => {
                self.records += 1;
                self.out.reject(self.records, number, format!("text outside any field: {l:?}"));
            }
            // Bank headers before the first field (ABN AMRO's BIC and
            // message type lines, Rabobank's `:940:`) are envelope, not data.
            _ => {}
        }
    }

    fn end_field(&mut self) {
        let Some(field) = self.field.take() else {
            return;
        };
        if field.tag != "86" {
            self.flush_pending();
        }
        if field.tag == "20" {
            self.end_statement();
        }
        if self.st.is_none() {
            if field.tag != "20" {
                self.out.finding(
                    Some(self.statements),
                    Some(field.line),
                    format!("statement starts without :20: (first field :{}:)", field.tag),
                );
            }
            self.statements += 1;
            self.st = Some(StmtState {
                index: self.statements - 1,
                intraday: self.message_is_942,
                line: field.line,
                all_entries_read: true,
                ..StmtState::default()
            });
        }
        let out = &mut self.out;
        let Some(st) = self.st.as_mut() else { return };
        let text = field.text.trim_end_matches(['\n', ' ']);
        let first = text.lines().next().unwrap_or("").trim();
        match field.tag.as_str() {
            "20" => st.id = squash(first),
            "25" => st.account = squash(first),
            "28" | "28C" => st.seq = squash(first),
            "60F" | "60M" | "62F" | "62M" => match f::balance(text) {
                Ok(b) => {
                    if st.currency.is_none() {
                        st.currency = Some(b.currency);
                    }
                    if field.tag.starts_with("60") {
                        st.opening = Some(b);
                    } else {
                        st.closing = Some(b);
                    }
                }
                Err(e) => out.reject(field.record, field.line, e),
            },
            "34F" => {
                st.intraday = true;
                if st.currency.is_none() {
                    st.currency = f::floor_limit_currency(text);
                }
            }
            "13" | "13D" => st.intraday = true,
            "90D" | "90C" => {
                st.intraday = true;
                match f::entry_totals(text) {
                    Ok((n, cur, minor)) => {
                        st.currency.get_or_insert(cur);
                        if field.tag == "90D" {
                            st.declared_debits = Some((n, minor));
                        } else {
                            st.declared_credits = Some((n, minor));
                        }
                    }
                    Err(e) => out.reject(field.record, field.line, e),
                }
            }
            "61" => {
                st.entries += 1;
                let Some(currency) = st.currency else {
                    st.all_entries_read = false;
                    out.reject_entry(
                        field.record,
                        field.line,
                        "no statement currency before :61: (missing :60a:/:34F:)",
                    );
                    return;
                };
                match f::statement_line(text, currency) {
                    Ok(line) => {
                        self.pending = Some(PendingTx {
                            line,
                            raw: field.raw,
                            record: field.record,
                            first_line: field.line,
                            info: String::new(),
                            currency,
                        })
                    }
                    Err(e) => {
                        st.all_entries_read = false;
                        out.reject_entry(field.record, field.line, e);
                    }
                }
            }
            "86" => {
                if let Some(p) = self.pending.as_mut() {
                    if !p.info.is_empty() {
                        p.info.push('\n');
                    }
                    p.info.push_str(text);
                    p.raw.push(b'\n');
                    p.raw.extend_from_slice(&field.raw);
                }
            }
            "21" | "64" | "65" => {}
            other => {
                if !self.unknown_tags.iter().any(|t| t == other) && self.unknown_tags.len() < 32 {
                    self.unknown_tags.push(other.to_owned());
                    out.finding(Some(st.index), Some(field.line), format!("unknown field :{other}: ignored"));
                }
            }
        }
    }

    fn flush_pending(&mut self) {
        let Some(p) = self.pending.take() else { return };
        let Some(st) = self.st.as_mut() else { return };
        let info = f::information(&p.info);
        let l = p.line;
        let description = match (info.description, l.supplementary) {
            (Some(d), Some(s)) => Some(format!("{s} | {d}")),
            (d, s) => d.or(s),
        };
        let mut counterparty = info.counterparty;
        // The bank's own reference is unique per entry; the customer's is
        // often a placeholder (NONREF, KREF+), so it only fills in.
        let customer = Some(l.customer_ref).filter(|r| !r.is_empty() && r != "NONREF");
        let reference = l.bank_ref.or(customer).or(info.end_to_end);
        if counterparty.name.is_none() && counterparty.account.is_none() {
            counterparty = Default::default();
        }
        let signed = match l.direction {
            Direction::Credit => i128::from(l.minor),
            Direction::Debit => -i128::from(l.minor),
        };
        st.net += signed;
        let bucket = match l.direction {
            Direction::Credit => &mut st.credits,
            Direction::Debit => &mut st.debits,
        };
        bucket.0 += 1;
        bucket.1 += i128::from(l.minor);
        let tx = Transaction {
            statement: st.index,
            amount: Money { minor: l.minor, currency: p.currency },
            direction: l.direction,
            booking_date: Some(l.entry_date.unwrap_or(l.value_date)),
            value_date: Some(l.value_date),
            account: st.account.clone(),
            counterparty,
            reference,
            description,
            reversal: l.reversal,
            type_code: Some(l.type_code),
            provenance: self.out.provenance(p.record, p.first_line, &p.raw),
        };
        self.out.transaction(tx);
    }

    fn end_statement(&mut self) {
        self.flush_pending();
        let Some(st) = self.st.take() else { return };
        let out = &mut self.out;
        let idx = Some(st.index);
        let line = Some(st.line);
        if let (Some(o), Some(c)) = (&st.opening, &st.closing) {
            if o.currency != c.currency {
                out.finding(idx, line, "opening and closing balance currencies differ");
            } else if st.all_entries_read {
                let cur = o.currency;
                check_equal(
                    out,
                    idx,
                    line,
                    "closing balance (opening + entries)",
                    cur.format_minor(i128::from(c.minor)),
                    cur.format_minor(i128::from(o.minor) + st.net),
                );
            } else {
                out.finding(idx, line, "balance not checked: some entries were rejected");
            }
        } else if !st.intraday {
            out.finding(idx, line, "statement lacks opening or closing balance (:60a:/:62a:)");
        }
        if let Some(cur) = st.currency {
            for (what, declared, computed) in [
                ("debit entries (:90D:)", st.declared_debits, st.debits),
                ("credit entries (:90C:)", st.declared_credits, st.credits),
            ] {
                if let Some((n, sum)) = declared {
                    check_equal(out, idx, line, &format!("{what} count"), n, computed.0);
                    check_equal(
                        out,
                        idx,
                        line,
                        &format!("{what} sum"),
                        cur.format_minor(i128::from(sum)),
                        cur.format_minor(computed.1),
                    );
                }
            }
        }
        let to_balance = |b: &f::BalanceField| Balance {
            amount: Money { minor: b.minor, currency: b.currency },
            date: Some(b.date),
        };
        let id = match (st.id, st.seq) {
            (Some(a), Some(b)) => Some(format!("{a} {b}")),
            (a, b) => a.or(b),
        };
        out.statement(Statement {
            index: st.index,
            id,
            account: st.account,
            currency: st.currency,
            opening: st.opening.as_ref().map(to_balance),
            closing: st.closing.as_ref().map(to_balance),
            kind: if st.intraday { StatementKind::Intraday } else { StatementKind::EndOfDay },
            entries: st.entries,
            line: st.line,
        });
    }
}

/// Splits `:TAG:rest` where TAG is two digits and an optional letter.
fn split_tag(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(':')?;
    let end = rest.find(':')?;
    let tag = &rest[..end];
    let b = tag.as_bytes();
    let ok = (b.len() == 2 || b.len() == 3)
        && b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && (b.len() == 2 || b[2].is_ascii_uppercase());
    ok.then(|| (tag, &rest[end + 1..]))
}

impl<R: BufRead> crate::emit::Parser for Mt940Reader<R> {
    fn parts(&mut self) -> (&mut Out, &mut bool) {
        (&mut self.out, &mut self.done)
    }

    fn step(&mut self) -> Result<(), FeedError> {
        Mt940Reader::step(self)
    }
}

impl<R: BufRead> Iterator for Mt940Reader<R> {
    type Item = Result<Item, FeedError>;

    fn next(&mut self) -> Option<Self::Item> {
        crate::emit::next_item(self)
    }
}
