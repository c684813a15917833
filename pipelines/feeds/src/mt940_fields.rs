//! Field-level grammar of SWIFT MT940/MT942: the `:61:` statement line,
//! `:86:` information (free text, `?nn` subfields, `/CODE/` subfields),
//! balances (`:60a:`, `:62a:`), `:34F:` floor limits and `:90a:` totals.
//!
//! Every function here works on one field's text and returns a plain value or
//! an error message; the statement logic lives in [`crate::mt940`].

use chrono::NaiveDate;

use crate::model::{Counterparty, Direction};
use crate::money::{Currency, parse_minor};

/// YYMMDD with the same pivot as strptime's `%y` (69-99 are 19xx).
pub fn yymmdd(s: &str) -> Option<NaiveDate> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = s[0..2].parse().ok()?;
    let year = if yy >= 69 { 1900 + yy } else { 2000 + yy };
    NaiveDate::from_ymd_opt(year, s[2..4].parse().ok()?, s[4..6].parse().ok()?)
}

/// A parsed `:61:` statement line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    /// Value date.
    pub value_date: NaiveDate,
    /// Entry (booking) date, when present.
    pub entry_date: Option<NaiveDate>,
    /// Direction after applying a reversal mark.
    pub direction: Direction,
    /// True for `RC`/`RD`.
    pub reversal: bool,
    /// Amount in minor units.
    pub minor: i64,
    /// Transaction type identification, e.g. `NTRF`.
    pub type_code: String,
    /// Reference for the account owner (`NONREF` kept as written).
    pub customer_ref: String,
    /// Account servicing institution's reference.
    pub bank_ref: Option<String>,
    /// Supplementary details (rest of the first line and the second line).
    pub supplementary: Option<String>,
}

/// Parses a `:61:` field (its continuation line is the supplementary detail).
pub fn statement_line(text: &str, currency: Currency) -> Result<StatementLine, String> {
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("");
    let second: String = lines.collect::<Vec<_>>().join(" ");
    let b = first.as_bytes();
    let value_date = first.get(0..6).and_then(yymmdd).ok_or_else(|| format!("bad value date in :61: {first:?}"))?;
    let mut i = 6;
    let mut entry_date = None;
    if let Some(md) = first.get(6..10) {
        if md.bytes().all(|c| c.is_ascii_digit()) {
            let month: u32 = md[0..2].parse().unwrap_or(0);
            let day: u32 = md[2..4].parse().unwrap_or(0);
            entry_date =
                Some(entry_year(value_date, month, day).ok_or_else(|| format!("bad entry date {md:?} in :61:"))?);
            i = 10;
        } else if md == "    " {
            // Some banks blank the optional entry date instead of omitting it.
            i = 10;
        }
    }
    let (direction, reversal, mark_len) = match b.get(i..i + 2) {
        Some(b"RC") => (Direction::Debit, true, 2),
        Some(b"RD") => (Direction::Credit, true, 2),
        _ => match b.get(i) {
            Some(b'C') => (Direction::Credit, false, 1),
            Some(b'D') => (Direction::Debit, false, 1),
            _ => return Err(format!("missing debit/credit mark in :61: {first:?}")),
        },
    };
    i += mark_len;
    // Optional funds code: the third letter of the currency code.
    if b.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
        i += 1;
    }
    let amount_len = b[i..].iter().take_while(|c| c.is_ascii_digit() || **c == b',').count();
    if amount_len == 0 {
        return Err(format!("missing amount in :61: {first:?}"));
    }
    let amount_text = &first[i..i + amount_len];
    let minor = parse_minor(amount_text, currency, ',', None).map_err(|e| e.to_string())?;
    i += amount_len;
    // Tolerate blanks between amount and type code (seen from Deutsche Bank).
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let type_code = first
        .get(i..i + 4)
        .filter(|t| t.is_ascii())
        .ok_or_else(|| format!("missing transaction type in :61: {first:?}"))?
        .to_owned();
    i += 4;
    let rest = first.get(i..).unwrap_or("");
    let (refs, bank_ref) = match rest.find("//") {
        Some(p) => (&rest[..p], Some(rest[p + 2..].trim().to_owned())),
        None => (rest, None),
    };
    // The customer reference is at most 16 characters; anything after it on
    // the first line (Rabobank puts a name there) is supplementary detail.
    // A longer reference without blanks (ASN puts an 18-character IBAN
    // there) is kept whole rather than cut mid-word.
    let cut = if refs.trim().contains(char::is_whitespace) {
        refs.char_indices().nth(16).map(|(p, _)| p).unwrap_or(refs.len())
    } else {
        refs.len()
    };
    let customer_ref = refs[..cut].trim().to_owned();
    let extra = refs[cut..].trim();
    let bank_ref = bank_ref.filter(|s| !s.is_empty());
    let mut supp: Vec<&str> = Vec::new();
    if !extra.is_empty() {
        supp.push(extra);
    }
    let second = second.trim();
    if !second.is_empty() {
        supp.push(second);
    }
    Ok(StatementLine {
        value_date,
        entry_date,
        direction,
        reversal,
        minor,
        type_code,
        customer_ref,
        bank_ref,
        supplementary: if supp.is_empty() { None } else { Some(supp.join(" ")) },
    })
}

/// Entry dates carry no year: take the value date's year, moved by one when
/// the entry falls across a year end from the value date.
fn entry_year(value: NaiveDate, month: u32, day: u32) -> Option<NaiveDate> {
    use chrono::Datelike;
    let mut year = value.year();
    let vm = value.month();
    if vm == 12 && month == 1 {
        year += 1;
    } else if vm == 1 && month == 12 {
        year -= 1;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

/// A parsed balance field (`:60F:`, `:62M:`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceField {
    /// Signed minor units.
    pub minor: i64,
    /// Currency.
    pub currency: Currency,
    /// Date.
    pub date: NaiveDate,
}

/// Parses `1!a6!n3!a15d` (mark, date, currency, amount).
pub fn balance(text: &str) -> Result<BalanceField, String> {
    let first = text.lines().next().unwrap_or("").trim();
    let sign = match first.as_bytes().first() {
        Some(b'C') => 1,
        Some(b'D') => -1,
        _ => return Err(format!("balance without C/D mark: {first:?}")),
    };
    let date = first.get(1..7).and_then(yymmdd).ok_or_else(|| format!("bad balance date: {first:?}"))?;
    let code = first.get(7..10).unwrap_or("");
    let currency = Currency::from_code(code).ok_or_else(|| format!("unknown currency {code:?} in balance"))?;
    let minor = parse_minor(first.get(10..).unwrap_or(""), currency, ',', None).map_err(|e| e.to_string())?;
    Ok(BalanceField { minor: sign * minor, currency, date })
}

/// Parses `:34F:` (`3!a[1!a]15d`) and returns its currency.
pub fn floor_limit_currency(text: &str) -> Option<Currency> {
    Currency::from_code(text.trim().get(0..3)?)
}

/// Parses `:90D:`/`:90C:` (`5n3!a15d`): number of entries and their sum.
pub fn entry_totals(text: &str) -> Result<(u64, Currency, i64), String> {
    let t = text.trim();
    let digits = t.bytes().take_while(|b| b.is_ascii_digit()).count();
    let count: u64 = t[..digits].parse().map_err(|_| format!("bad entry count in {t:?}"))?;
    let code = t.get(digits..digits + 3).unwrap_or("");
    let currency = Currency::from_code(code).ok_or_else(|| format!("unknown currency {code:?}"))?;
    let minor = parse_minor(t.get(digits + 3..).unwrap_or(""), currency, ',', None).map_err(|e| e.to_string())?;
    Ok((count, currency, minor))
}

/// What `:86:` tells about an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Information {
    /// Readable description.
    pub description: Option<String>,
    /// Other party, when the text is structured.
    pub counterparty: Counterparty,
    /// End-to-end reference (`EREF+` / `/EREF/`), when present.
    pub end_to_end: Option<String>,
}

/// Interprets `:86:` text in any of the three layouts banks use.
pub fn information(text: &str) -> Information {
    let b = text.as_bytes();
    if b.len() > 3 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b'?' {
        return question_mark_subfields(text);
    }
    if text.starts_with('/') && text[1..].contains('/') {
        return slash_subfields(text);
    }
    Information { description: squash(&text.replace('\n', " ")), ..Information::default() }
}

/// German `?nn` layout: line breaks are only wrapping, so they are removed
/// before splitting (a continuation may legitimately start with a blank).
fn question_mark_subfields(text: &str) -> Information {
    let joined: String = text.split('\n').collect();
    let mut posting = String::new();
    let mut purpose = String::new();
    let mut name = String::new();
    let mut info = Information::default();
    for part in joined.split('?').skip(1) {
        let Some(key) = part.get(0..2) else { continue };
        let value = &part[2..];
        match key {
            "00" => posting.push_str(value),
            "20" | "21" | "22" | "23" | "24" | "25" | "26" | "27" | "28" | "29" | "60" | "61" | "62" | "63" => {
                purpose.push_str(value)
            }
            "30" => info.counterparty.bank = squash(value),
            "31" => info.counterparty.account = squash(value),
            "32" | "33" => name.push_str(value),
            _ => {}
        }
    }
    if let Some(p) = purpose.find("EREF+") {
        let tail = &purpose[p + 5..];
        let end = tail.find(" KREF+").or_else(|| tail.find(" MREF+"));
        let end = end.or_else(|| tail.find(" CRED+")).or_else(|| tail.find(" SVWZ+")).unwrap_or(tail.len());
        info.end_to_end = squash(&tail[..end]);
    }
    info.counterparty.name = squash(&name);
    let desc = match (squash(&posting), squash(&purpose)) {
        (Some(a), Some(b)) => Some(format!("{a} {b}")),
        (a, b) => a.or(b),
    };
    info.description = desc;
    info
}

/// SWIFT `/CODE/value` layout (ABN AMRO, ING, MT942 BAI codes).
fn slash_subfields(text: &str) -> Information {
    let joined = text.replace('\n', "");
    let mut info = Information::default();
    let mut remittance = None;
    let parts: Vec<&str> = joined.split('/').collect();
    // Values may themselves contain text, so only a known code opens a pair.
    let mut i = 1;
    while i < parts.len() {
        let value = parts.get(i + 1).copied().unwrap_or("");
        match parts[i] {
            "NAME" | "ORDP" | "BENM" => {
                if info.counterparty.name.is_none() {
                    info.counterparty.name = squash(value)
                }
            }
            "IBAN" | "ACNO" => {
                if info.counterparty.account.is_none() {
                    info.counterparty.account = squash(value)
                }
            }
            "BIC" => info.counterparty.bank = squash(value),
            "REMI" => remittance = squash(value),
            "EREF" => info.end_to_end = squash(value).filter(|v| v != "NOTPROVIDED"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    info.description = remittance.or_else(|| squash(&text.replace('\n', " ")));
    info
}

/// Collapses runs of whitespace; `None` for blank text.
pub fn squash(s: &str) -> Option<String> {
    let out = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.is_empty() { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::from_code("EUR").unwrap()
    }

    #[test]
    fn statement_line_variants() {
        let l = statement_line("1105240524D9,N192NONREF", eur()).unwrap();
        assert_eq!(l.minor, 900);
        assert_eq!(l.type_code, "N192");
        assert_eq!(l.entry_date, NaiveDate::from_ymd_opt(2011, 5, 24));
        let l = statement_line("2002010219RDR1027,25N068NONREF", eur()).unwrap();
        assert!(l.reversal);
        assert_eq!(l.direction, Direction::Credit);
        assert_eq!(l.minor, 102725);
        let l = statement_line("200101    D65,00NOVBNL47INGB9999999999\nhr gjlm", eur()).unwrap();
        assert_eq!(l.entry_date, None);
        assert_eq!(l.type_code, "NOVB");
        assert_eq!(l.supplementary.as_deref(), Some("hr gjlm"));
        let l = statement_line("2006080608D12,35 NRTIKREF+//2016021783252833", eur()).unwrap();
        assert_eq!(l.bank_ref.as_deref(), Some("2016021783252833"));
        assert_eq!(l.customer_ref, "KREF+");
        let l = statement_line("110527D000000001213,28N0440121470966      W.P. Jansen", eur()).unwrap();
        assert_eq!(l.customer_ref, "0121470966");
        assert_eq!(l.supplementary.as_deref(), Some("W.P. Jansen"));
        assert!(statement_line("1105240524X9,N192", eur()).is_err());
        assert!(statement_line("1105240524D9,005N192", eur()).is_err());
        let l = statement_line("1112310102C1,00NTRFX", eur()).unwrap();
        assert_eq!(l.entry_date, NaiveDate::from_ymd_opt(2012, 1, 2));
    }

    #[test]
    fn question_mark_layout() {
        let i = information(
            "820?00UMBUCHUNG?109392?20ERSTATTUNG AUSLANDSEINSATZE?21NTGELT\n FUER VISA?3012030000?319003932309?32DEUTSC\nHE KREDITBANK AG",
        );
        assert_eq!(i.description.as_deref(), Some("UMBUCHUNG ERSTATTUNG AUSLANDSEINSATZENTGELT FUER VISA"));
        assert_eq!(i.counterparty.name.as_deref(), Some("DEUTSCHE KREDITBANK AG"));
        assert_eq!(i.counterparty.account.as_deref(), Some("9003932309"));
    }

    #[test]
    fn slash_layout() {
        let i = information("/BAI/399/MISCELLANEOUS CREDIT\n/ORDP/test rate\n/ACNO/12-3011");
        assert_eq!(i.counterparty.name.as_deref(), Some("test rate"));
        assert_eq!(i.counterparty.account.as_deref(), Some("12-3011"));
    }
}
