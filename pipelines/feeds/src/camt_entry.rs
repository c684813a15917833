//! Field mapping of one camt `Ntry` (and one `Bal`) onto the canonical
//! record: amount, direction, status, dates, references, related parties,
//! remittance text, batch details. Paths are relative to the element and
//! written for all versions at once (`Sts` vs `Sts/Cd`, `Dbtr/Nm` vs
//! `Dbtr/Pty/Nm`, `TxDtls` under `NtryDtls` or directly under `Ntry`).

use chrono::NaiveDate;

use crate::camt::signed_money;
use crate::model::{Balance, Counterparty, Direction, Provenance, Transaction};
use crate::money::{Currency, Decimal};

fn date(text: &str) -> Option<NaiveDate> {
    // `DtTm` values start with the date; time and zone are not needed here.
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

/// Accumulates one `Bal` element.
#[derive(Debug, Default)]
pub struct BalanceAcc {
    /// Stack depth of the `Bal` element.
    pub depth: usize,
    /// Line where it starts.
    pub line: u64,
    /// Balance type code (`OPBD`, `CLBD`, ...).
    pub code: Option<String>,
    amount: Option<String>,
    ccy: Option<String>,
    pending_ccy: Option<String>,
    indicator: Option<String>,
    date: Option<NaiveDate>,
}

impl BalanceAcc {
    /// Starts a balance at `depth`.
    pub fn new(depth: usize, line: u64) -> Self {
        BalanceAcc { depth, line, ..Self::default() }
    }

    /// An element below `Bal` opened; `rel` is its path.
    pub fn open(&mut self, rel: &[String], ccy: Option<String>) {
        if rel.len() == 1 && rel[0] == "Amt" {
            self.pending_ccy = ccy;
        }
    }

    /// An element below `Bal` closed with `text`.
    pub fn close(&mut self, rel: &[String], text: &str) {
        let path = rel.join("/");
        match path.as_str() {
            "Tp/CdOrPrtry/Cd" | "Tp/Cd" | "Tp/CdOrPrtry/Prtry" | "Tp/Prtry" if self.code.is_none() => {
                self.code = Some(text.to_owned());
            }
            "Amt" => {
                self.amount = Some(text.to_owned());
                self.ccy = self.pending_ccy.take();
            }
            "CdtDbtInd" => self.indicator = Some(text.to_owned()),
            "Dt/Dt" | "Dt/DtTm" => self.date = date(text),
            _ => {}
        }
    }

    /// The balance, in the statement currency when `Amt` has no `Ccy`.
    pub fn finish(&self, fallback: Option<Currency>) -> Result<Balance, String> {
        let amount = self.amount.as_deref().ok_or("no Amt")?;
        let money = signed_money(amount, self.ccy.as_deref(), self.indicator.as_deref(), fallback)?;
        Ok(Balance { amount: money, date: self.date })
    }
}

/// Accumulates one `Ntry` element.
#[derive(Debug, Default)]
pub struct EntryAcc {
    /// Stack depth of the `Ntry` element.
    pub depth: usize,
    /// Line where it starts.
    pub line: u64,
    /// Ordinal of the entry in the file.
    pub record: u64,
    amount: Option<String>,
    ccy: Option<String>,
    pending_ccy: Option<String>,
    indicator: Option<String>,
    reversal: bool,
    status: Option<String>,
    booking: Option<NaiveDate>,
    value: Option<NaiveDate>,
    servicer_ref: Option<String>,
    end_to_end: Option<String>,
    domain: Vec<String>,
    proprietary: Option<String>,
    info: Option<String>,
    remittance: Vec<String>,
    tx_info: Option<String>,
    debtor: Counterparty,
    creditor: Counterparty,
    tx_details: u64,
    batch_count: Option<String>,
    batch_amount: Option<(String, Option<String>)>,
}

impl EntryAcc {
    /// Starts entry number `record` at `depth`.
    pub fn new(depth: usize, line: u64, record: u64) -> Self {
        EntryAcc { depth, line, record, ..Self::default() }
    }

    /// An element below `Ntry` opened.
    pub fn open(&mut self, rel: &[String], ccy: Option<String>) {
        let last = rel.last().map(String::as_str);
        if last == Some("TxDtls") {
            self.tx_details += 1;
        }
        if matches!(last, Some("Amt") | Some("TtlAmt")) {
            self.pending_ccy = ccy;
        }
    }

    /// An element below `Ntry` closed with `text`.
    pub fn close(&mut self, rel: &[String], text: &str) {
        let path = rel.join("/");
        let value = || (!text.is_empty()).then(|| text.to_owned());
        match path.as_str() {
            "Amt" => {
                self.amount = value();
                self.ccy = self.pending_ccy.take();
                return;
            }
            "CdtDbtInd" => self.indicator = value(),
            "RvslInd" => self.reversal = text == "true" || text == "1",
            "Sts" | "Sts/Cd" | "Sts/Prtry" => self.status = value(),
            "BookgDt/Dt" | "BookgDt/DtTm" => self.booking = date(text),
            "ValDt/Dt" | "ValDt/DtTm" => self.value = date(text),
            "AcctSvcrRef" => self.servicer_ref = value(),
            "BkTxCd/Domn/Cd" | "BkTxCd/Domn/Fmly/Cd" | "BkTxCd/Domn/Fmly/SubFmlyCd" => self.domain.extend(value()),
            "BkTxCd/Prtry/Cd" => self.proprietary = value(),
            "AddtlNtryInf" => self.info = value(),
            _ => {}
        }
        if path.ends_with("Btch/NbOfTxs") {
            self.batch_count = value();
        } else if path.ends_with("Btch/TtlAmt") {
            self.batch_amount = value().map(|v| (v, self.pending_ccy.take()));
        }
        // Counterparty and references come from the first transaction only:
        // for a batch entry the others describe the batch's members.
        let Some(p) = path.find("TxDtls/") else {
            return;
        };
        if self.tx_details > 1 {
            return;
        }
        let sub = &path[p + 7..];
        match sub {
            "Refs/EndToEndId" => self.end_to_end = value().filter(|v| v != "NOTPROVIDED"),
            "RmtInf/Ustrd" => {
                if self.remittance.len() < 16 {
                    self.remittance.extend(value())
                }
            }
            "AddtlTxInf" => self.tx_info = value(),
            _ => party(sub, text, &mut self.debtor, &mut self.creditor),
        }
    }

    /// Builds the transaction; also says whether it is booked and returns
    /// notes worth a finding. `Err` is the reject reason.
    pub fn finish(
        self,
        statement: u32,
        account: Option<String>,
        currency: Option<Currency>,
        provenance: Provenance,
    ) -> Result<(Transaction, bool, Vec<String>), String> {
        let amount = self.amount.as_deref().ok_or("entry without Amt")?;
        let direction = match self.indicator.as_deref() {
            Some("CRDT") => Direction::Credit,
            Some("DBIT") => Direction::Debit,
            Some(other) => return Err(format!("unknown CdtDbtInd {other:?}")),
            None => return Err("entry without CdtDbtInd".into()),
        };
        let money = signed_money(amount, self.ccy.as_deref(), None, currency)?;
        if money.minor < 0 {
            return Err(format!("negative entry amount {amount:?}"));
        }
        let mut notes = Vec::new();
        if let Some((total, ccy)) = &self.batch_amount {
            let same_ccy = ccy.as_deref().is_none_or(|c| c == money.currency.code());
            let parsed = Decimal::parse(total, '.', None).and_then(|d| d.to_minor(money.currency, total));
            if !same_ccy || parsed.as_ref().ok() != Some(&money.minor) {
                notes.push(format!(
                    "entry {}: batch total {} {} differs from entry amount {}",
                    self.record,
                    total,
                    ccy.as_deref().unwrap_or(""),
                    money
                ));
            }
        }
        let booked = matches!(self.status.as_deref(), None | Some("BOOK"));
        let counterparty = match direction {
            Direction::Credit => self.debtor,
            Direction::Debit => self.creditor,
        };
        let type_code = if self.domain.is_empty() { self.proprietary } else { Some(self.domain.join("/")) };
        let mut description = if self.remittance.is_empty() { None } else { Some(self.remittance.join(" ")) };
        description = description.or(self.tx_info).or(self.info);
        if description.is_none() && self.tx_details > 1 {
            description = Some(format!("batch of {} transactions", self.tx_details));
        }
        let tx = Transaction {
            statement,
            amount: money,
            direction,
            booking_date: self.booking,
            value_date: self.value,
            account,
            counterparty,
            reference: self.servicer_ref.or(self.end_to_end),
            description,
            reversal: self.reversal,
            type_code,
            provenance,
        };
        Ok((tx, booked, notes))
    }
}

/// Maps `RltdPties` / `RltdAgts` paths onto debtor and creditor.
fn party(sub: &str, text: &str, debtor: &mut Counterparty, creditor: &mut Counterparty) {
    let set = |slot: &mut Option<String>| {
        if slot.is_none() && !text.is_empty() {
            *slot = Some(text.to_owned());
        }
    };
    match sub {
        "RltdPties/Dbtr/Nm" | "RltdPties/Dbtr/Pty/Nm" => set(&mut debtor.name),
        "RltdPties/Cdtr/Nm" | "RltdPties/Cdtr/Pty/Nm" => set(&mut creditor.name),
        "RltdPties/DbtrAcct/Id/IBAN" | "RltdPties/DbtrAcct/Id/Othr/Id" => set(&mut debtor.account),
        "RltdPties/CdtrAcct/Id/IBAN" | "RltdPties/CdtrAcct/Id/Othr/Id" => set(&mut creditor.account),
        "RltdAgts/DbtrAgt/FinInstnId/BIC" | "RltdAgts/DbtrAgt/FinInstnId/BICFI" => set(&mut debtor.bank),
        "RltdAgts/CdtrAgt/FinInstnId/BIC" | "RltdAgts/CdtrAgt/FinInstnId/BICFI" => set(&mut creditor.bank),
        _ => {}
    }
}
