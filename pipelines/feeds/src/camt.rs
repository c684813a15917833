//! ISO 20022 camt.052 / camt.053 / camt.054 reader, versions .001.01-.001.08.
//!
//! Owns the element walk (a stack of local names, namespace-agnostic so every
//! version's namespace is accepted), statement state, balances, transaction
//! summaries and their checks. Entry-level field mapping is in
//! [`crate::camt_entry`]. XML is read event by event; only one `Ntry` is
//! held at a time.

use std::io::BufRead;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::camt_entry::{BalanceAcc, EntryAcc};
use crate::emit::{Out, check_equal};
use crate::error::FeedError;
use crate::model::{Balance, Item, SourceInfo, Statement, StatementKind};
use crate::money::{Currency, Decimal, Money};
use crate::xml_tap::Tap;

/// Deepest element nesting accepted; real camt files stay far below it.
const MAX_DEPTH: usize = 64;
/// Longest text node kept, in bytes.
const MAX_TEXT: usize = 64 * 1024;

/// Which camt message a file holds, from its namespace or root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CamtVersion {
    /// 52, 53 or 54.
    pub message: u8,
    /// Schema version, 1-8 (0 when the namespace does not say).
    pub version: u8,
}

/// Finds the camt message and version in the first bytes of a file.
pub fn sniff(head: &[u8]) -> Option<CamtVersion> {
    let text = String::from_utf8_lossy(head);
    for (message, root) in [(53u8, "BkToCstmrStmt"), (52, "BkToCstmrAcctRpt"), (54, "BkToCstmrDbtCdtNtfctn")] {
        let ns = format!("camt.0{message}.001.");
        if let Some(p) = text.find(&ns) {
            let v = text[p + ns.len()..].get(..2).and_then(|v| v.parse().ok()).unwrap_or(0);
            return Some(CamtVersion { message, version: v });
        }
        if text.contains(&format!("<{root}")) || text.contains(&format!(":{root}")) {
            return Some(CamtVersion { message, version: 0 });
        }
    }
    None
}

/// Reads the `encoding="..."` of an XML declaration, if any.
pub fn declared_encoding(head: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let end = head.iter().position(|&b| b == b'>')?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    if !decl.starts_with("<?xml") {
        return None;
    }
    let p = decl.find("encoding")?;
    let rest = decl[p + 8..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next()?;
    // The quote may be any character in damaged input: slice by its width.
    let value = rest[quote.len_utf8()..].split(quote).next()?;
    encoding_rs::Encoding::for_label(value.trim().as_bytes())
}

#[derive(Default)]
struct StmtAcc {
    index: u32,
    depth: usize,
    line: u64,
    id: Option<String>,
    account: Option<String>,
    currency: Option<Currency>,
    opening: Option<Balance>,
    closing: Option<Balance>,
    entries: u64,
    rejected: u64,
    pending: u64,
    net: i128,
    credits: (u64, i128),
    debits: (u64, i128),
    summary: Summary,
}

#[derive(Default)]
struct Summary {
    count: Option<String>,
    sum: Option<String>,
    credit_count: Option<String>,
    credit_sum: Option<String>,
    debit_count: Option<String>,
    debit_sum: Option<String>,
}

/// Streaming camt parser; iterate it for [`Item`]s.
pub struct CamtReader<R: BufRead> {
    xml: Reader<Tap<R>>,
    out: Out,
    kind: StatementKind,
    buf: Vec<u8>,
    stack: Vec<String>,
    text: String,
    st: Option<StmtAcc>,
    bal: Option<BalanceAcc>,
    entry: Option<EntryAcc>,
    statements: u32,
    entries_seen: u64,
    root_seen: bool,
    done: bool,
}

impl<R: BufRead> CamtReader<R> {
    /// Creates a reader; `version` comes from [`sniff`] on the same bytes.
    pub fn new(reader: R, version: CamtVersion, source: SourceInfo) -> Self {
        let mut xml = Reader::from_reader(Tap::new(reader));
        let cfg = xml.config_mut();
        cfg.expand_empty_elements = true;
        cfg.check_end_names = true;
        CamtReader {
            xml,
            out: Out::new(source),
            kind: if version.message == 53 { StatementKind::EndOfDay } else { StatementKind::Intraday },
            buf: Vec::new(),
            stack: Vec::new(),
            text: String::new(),
            st: None,
            bal: None,
            entry: None,
            statements: 0,
            entries_seen: 0,
            root_seen: false,
            done: false,
        }
    }

    fn step(&mut self) -> Result<(), FeedError> {
        self.buf.clear();
        let line = self.xml.get_ref().line();
        let event = match self.xml.read_event_into(&mut self.buf) {
            Ok(e) => e.into_owned(),
            Err(quick_xml::Error::Io(e)) => {
                return Err(FeedError::io(&self.out.source.name, std::io::Error::new(e.kind(), e.to_string())));
            }
            Err(e) => {
                self.fail(line, format!("XML syntax error: {e}; rest of file not read"));
                return Ok(());
            }
        };
        match event {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(line, "XML nested too deeply; rest of file not read".into());
                    return Ok(());
                }
                let ccy = start
                    .try_get_attribute("Ccy")
                    .ok()
                    .flatten()
                    .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()));
                self.stack.push(name);
                self.text.clear();
                self.open(&start, ccy, line);
            }
            Event::End(_) => {
                let text = std::mem::take(&mut self.text);
                self.close(text.trim(), line);
                self.stack.pop();
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(|e| e.to_string());
                match s {
                    Ok(s) => self.push_text(&s),
                    Err(e) => self.fail(line, format!("text encoding error: {e}")),
                }
            }
            Event::CData(c) => {
                let s = String::from_utf8_lossy(&c).into_owned();
                self.push_text(&s);
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => {
                        let name = String::from_utf8_lossy(&r).into_owned();
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .map(str::to_owned)
                            .unwrap_or_else(|| format!("&{name};"))
                    }
                };
                self.push_text(&resolved);
            }
            Event::Eof => {
                if !self.stack.is_empty() {
                    self.fail(line, "file ends inside an open element (truncated?)".into());
                } else {
                    self.finish();
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn push_text(&mut self, s: &str) {
        if self.text.len() + s.len() <= MAX_TEXT {
            self.text.push_str(s);
        }
    }

    /// Stops after an unrecoverable XML problem, keeping what was read.
    fn fail(&mut self, line: u64, reason: String) {
        self.entries_seen += u64::from(self.entry.is_some());
        let record = self.entries_seen.max(1);
        if let Some(e) = self.entry.take() {
            self.out.reject_entry(record, e.line, format!("entry not complete: {reason}"));
            if let Some(st) = self.st.as_mut() {
                st.entries += 1;
                st.rejected += 1;
            }
        } else {
            self.out.reject(record, line, reason);
        }
        self.end_statement();
        self.done = true;
    }

    fn finish(&mut self) {
        self.end_statement();
        if self.statements == 0 {
            self.out.finding(None, None, "message contains no statement, report or notification");
        }
        self.done = true;
    }

    fn rel(&self, from: usize) -> String {
        self.stack.get(from..).map(|s| s.join("/")).unwrap_or_default()
    }

    fn open(&mut self, start: &quick_xml::events::BytesStart<'_>, ccy: Option<String>, line: u64) {
        let depth = self.stack.len();
        let name = self.stack[depth - 1].clone();
        if !self.root_seen {
            self.root_seen = true;
            if name != "Document" && !name.starts_with("BkToCstmr") {
                self.fail(line, format!("root element <{name}> is not a camt Document"));
            }
            return;
        }
        if let Some(e) = self.entry.as_mut() {
            if depth > e.depth {
                e.open(&self.stack[e.depth..], ccy);
            }
            return;
        }
        if let Some(b) = self.bal.as_mut() {
            b.open(&self.stack[b.depth..], ccy);
            return;
        }
        let st_depth = self.st.as_ref().map(|s| s.depth);
        match (st_depth, name.as_str()) {
            (None, "Stmt" | "Rpt" | "Ntfctn") if depth <= 3 => {
                self.statements += 1;
                self.st = Some(StmtAcc { index: self.statements - 1, depth, line, ..StmtAcc::default() });
            }
            (Some(sd), "Ntry") if depth == sd + 1 => {
                self.entries_seen += 1;
                let mut prefix = Vec::with_capacity(start.len() + 2);
                prefix.push(b'<');
                prefix.extend_from_slice(start);
                prefix.push(b'>');
                self.xml.get_mut().start_hash(&prefix);
                self.entry = Some(EntryAcc::new(depth, line, self.entries_seen));
            }
            (Some(sd), "Bal") if depth == sd + 1 => {
                self.bal = Some(BalanceAcc::new(depth, line));
            }
            _ => {}
        }
    }

    fn close(&mut self, text: &str, line: u64) {
        let depth = self.stack.len();
        if let Some(e) = self.entry.as_mut() {
            if depth > e.depth {
                e.close(&self.stack[e.depth..], text);
                return;
            }
            let Some(e) = self.entry.take() else { return };
            let hash = self.xml.get_mut().finish_hash();
            self.end_entry(e, hash);
            return;
        }
        if let Some(b) = self.bal.as_mut() {
            if depth > b.depth {
                b.close(&self.stack[b.depth..], text);
                return;
            }
            let Some(b) = self.bal.take() else { return };
            self.end_balance(b);
            return;
        }
        let Some(st_depth) = self.st.as_ref().map(|s| s.depth) else {
            return;
        };
        if depth == st_depth {
            self.end_statement();
            return;
        }
        let rel = self.rel(st_depth);
        let Some(st) = self.st.as_mut() else { return };
        let value = || (!text.is_empty()).then(|| text.to_owned());
        match rel.as_str() {
            "Id" => st.id = value(),
            "Acct/Id/IBAN" | "Acct/Id/Othr/Id" | "Acct/Id/PrtryAcct/Id" | "Acct/Id/BBAN" | "Acct/Id/UPIC" => {
                st.account = value()
            }
            "Acct/Ccy" => st.currency = Currency::from_code(text),
            "TxsSummry/TtlNtries/NbOfNtries" => st.summary.count = value(),
            "TxsSummry/TtlNtries/Sum" => st.summary.sum = value(),
            "TxsSummry/TtlCdtNtries/NbOfNtries" => st.summary.credit_count = value(),
            "TxsSummry/TtlCdtNtries/Sum" => st.summary.credit_sum = value(),
            "TxsSummry/TtlDbtNtries/NbOfNtries" => st.summary.debit_count = value(),
            "TxsSummry/TtlDbtNtries/Sum" => st.summary.debit_sum = value(),
            _ => {}
        }
        let _ = line;
    }

    fn end_balance(&mut self, b: BalanceAcc) {
        let Some(st) = self.st.as_mut() else { return };
        let code = b.code.clone().unwrap_or_default();
        let slot = match code.as_str() {
            "OPBD" | "PRCD" => &mut st.opening,
            "CLBD" => &mut st.closing,
            _ => return,
        };
        match b.finish(st.currency) {
            Ok(bal) => {
                if slot.is_none() {
                    *slot = Some(bal);
                }
            }
            Err(reason) => self.out.reject(self.entries_seen, b.line, format!("{code} balance: {reason}")),
        }
    }

    fn end_entry(&mut self, e: EntryAcc, raw_sha256: String) {
        let Some(st) = self.st.as_mut() else { return };
        st.entries += 1;
        let record = e.record;
        let line = e.line;
        let mut prov = self.out.provenance(record, line, b"");
        prov.raw_sha256 = raw_sha256;
        match e.finish(st.index, st.account.clone(), st.currency, prov) {
            Ok((tx, booked, notes)) => {
                for n in notes {
                    self.out.finding(Some(st.index), Some(line), n);
                }
                if booked {
                    st.net += i128::from(tx.signed_minor());
                } else {
                    st.pending += 1;
                }
                let bucket = match tx.direction {
                    crate::model::Direction::Credit => &mut st.credits,
                    crate::model::Direction::Debit => &mut st.debits,
                };
                bucket.0 += 1;
                bucket.1 += i128::from(tx.amount.minor);
                self.out.transaction(tx);
            }
            Err(reason) => {
                st.rejected += 1;
                self.out.reject_entry(record, line, reason);
            }
        }
    }

    fn end_statement(&mut self) {
        let Some(st) = self.st.take() else { return };
        let out = &mut self.out;
        let idx = Some(st.index);
        let line = Some(st.line);
        if st.pending > 0 {
            out.finding(
                idx,
                line,
                format!(
                    "{} entries are not booked (status other than BOOK); left out of the balance check",
                    st.pending
                ),
            );
        }
        match (&st.opening, &st.closing) {
            (Some(o), Some(c)) if o.amount.currency != c.amount.currency => {
                out.finding(
                    idx,
                    line,
                    format!(
                        "opening balance is in {} but closing balance in {}; balance not checked",
                        o.amount.currency, c.amount.currency
                    ),
                );
            }
            (Some(_), Some(_)) if st.rejected > 0 => {
                out.finding(idx, line, "balance not checked: some entries were rejected");
            }
            (Some(o), Some(c)) => {
                let cur = o.amount.currency;
                check_equal(
                    out,
                    idx,
                    line,
                    "closing balance (opening + booked entries)",
                    cur.format_minor(i128::from(c.amount.minor)),
                    cur.format_minor(i128::from(o.amount.minor) + st.net),
                );
            }
            _ if self.kind == StatementKind::EndOfDay => {
                out.finding(idx, line, "statement lacks opening (OPBD/PRCD) or closing (CLBD) balance");
            }
            _ => {}
        }
        let s = &st.summary;
        let cur = st.currency.or(st.opening.as_ref().map(|b| b.amount.currency));
        for (what, count, sum, computed) in [
            ("entries (TtlNtries)", &s.count, &s.sum, (st.credits.0 + st.debits.0, st.credits.1 + st.debits.1)),
            ("credit entries (TtlCdtNtries)", &s.credit_count, &s.credit_sum, st.credits),
            ("debit entries (TtlDbtNtries)", &s.debit_count, &s.debit_sum, st.debits),
        ] {
            if let Some(n) = count {
                let read = computed.0 + if what.starts_with("entries") { st.rejected } else { 0 };
                check_equal(out, idx, line, &format!("{what} count"), n.clone(), read.to_string());
            }
            if let (Some(sum), Some(cur)) = (sum, cur) {
                match Decimal::parse(sum, '.', None).and_then(|d| d.to_minor(cur, sum)) {
                    Ok(minor) if st.rejected == 0 => check_equal(
                        out,
                        idx,
                        line,
                        &format!("{what} sum"),
                        cur.format_minor(i128::from(minor)),
                        cur.format_minor(computed.1),
                    ),
                    Ok(_) => {}
                    Err(e) => out.finding(idx, line, format!("{what} sum not checked: {e}")),
                }
            }
        }
        out.statement(Statement {
            index: st.index,
            id: st.id,
            account: st.account,
            currency: cur,
            opening: st.opening,
            closing: st.closing,
            kind: self.kind,
            entries: st.entries,
            line: st.line,
        });
    }
}

impl<R: BufRead> crate::emit::Parser for CamtReader<R> {
    fn parts(&mut self) -> (&mut Out, &mut bool) {
        (&mut self.out, &mut self.done)
    }

    fn step(&mut self) -> Result<(), FeedError> {
        CamtReader::step(self)
    }
}

impl<R: BufRead> Iterator for CamtReader<R> {
    type Item = Result<Item, FeedError>;

    fn next(&mut self) -> Option<Self::Item> {
        crate::emit::next_item(self)
    }
}

/// Shared by balances: a signed amount in a currency.
pub(crate) fn signed_money(
    amount: &str,
    ccy: Option<&str>,
    indicator: Option<&str>,
    fallback: Option<Currency>,
) -> Result<Money, String> {
    let currency = match ccy {
        Some(c) => Currency::from_code(c).ok_or_else(|| format!("unknown currency {c:?}"))?,
        None => fallback.ok_or("amount without currency")?,
    };
    let minor =
        Decimal::parse(amount, '.', None).and_then(|d| d.to_minor(currency, amount)).map_err(|e| e.to_string())?;
    let minor = match indicator {
        Some("DBIT") => -minor,
        Some("CRDT") | None => minor,
        Some(other) => return Err(format!("unknown credit/debit indicator {other:?}")),
    };
    Ok(Money { minor, currency })
}
