//! CSV feed profiles: the small TOML file that describes one upstream
//! system's export (columns, date format, separators, sign convention,
//! encoding, delimiter, rows before the header, default currency).
//!
//! ```toml
//! name = "sparkasse"
//! delimiter = ";"
//! encoding = "windows-1252"
//! skip_rows = 0
//! date_format = "%d.%m.%y"
//! decimal_separator = ","
//! thousands_separator = "."
//! currency = "EUR"
//! sign = "credit_positive"          # or "debit_positive"
//!
//! [columns]
//! booking_date = "Buchungstag"
//! value_date = "Valutadatum"
//! amount = "Betrag"                 # or: debit = "...", credit = "..."
//! currency = "Waehrung"
//! description = ["Buchungstext", "Verwendungszweck"]
//! counterparty = "Beguenstigter/Zahlungspflichtiger"
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::FeedError;
use crate::money::Currency;

/// How the sign of a single amount column maps to a direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignConvention {
    /// Positive amounts are credits (money in).
    #[default]
    CreditPositive,
    /// Positive amounts are debits (card statements often do this).
    DebitPositive,
}

/// Column names (as in the header row) the profile maps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// Booking date column (required).
    pub booking_date: String,
    /// Value date column.
    pub value_date: Option<String>,
    /// Single signed amount column.
    pub amount: Option<String>,
    /// Debit-only amount column (used with `credit`).
    pub debit: Option<String>,
    /// Credit-only amount column (used with `debit`).
    pub credit: Option<String>,
    /// Column whose text gives the direction (used with `amount`).
    pub direction: Option<String>,
    /// Currency column; the profile's `currency` is the default.
    pub currency: Option<String>,
    /// Description columns, joined with a blank.
    #[serde(default)]
    pub description: Vec<String>,
    /// Reference column.
    pub reference: Option<String>,
    /// Counterparty name column.
    pub counterparty: Option<String>,
    /// Counterparty account column.
    pub counterparty_account: Option<String>,
    /// Reported account column.
    pub account: Option<String>,
}

/// A CSV feed profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvProfile {
    /// Name of the upstream system.
    pub name: String,
    /// Field delimiter.
    #[serde(default = "comma")]
    pub delimiter: char,
    /// Text encoding label (WHATWG names: "utf-8", "windows-1252", ...).
    #[serde(default = "utf8")]
    pub encoding: String,
    /// Rows to skip before the header row.
    #[serde(default)]
    pub skip_rows: usize,
    /// chrono format of date cells; a date-time format also works.
    pub date_format: String,
    /// Decimal separator of amounts.
    #[serde(default = "dot")]
    pub decimal_separator: char,
    /// Thousands separator of amounts, if any.
    pub thousands_separator: Option<char>,
    /// Text stripped from amount cells before parsing (currency symbols).
    #[serde(default)]
    pub strip: Vec<String>,
    /// Default currency (ISO 4217).
    pub currency: Option<String>,
    /// Sign convention of a single amount column.
    #[serde(default)]
    pub sign: SignConvention,
    /// Values of the direction column that mean credit (case-insensitive).
    #[serde(default)]
    pub credit_values: Vec<String>,
    /// Values of the direction column that mean debit (case-insensitive).
    #[serde(default)]
    pub debit_values: Vec<String>,
    /// Fixed reported account, when the export has no account column.
    pub account: Option<String>,
    /// Column mapping.
    pub columns: Columns,
}

fn comma() -> char {
    ','
}
fn dot() -> char {
    '.'
}
fn utf8() -> String {
    "utf-8".into()
}

impl CsvProfile {
    /// Parses and validates a profile from TOML text.
    pub fn from_toml(name: &str, text: &str) -> Result<CsvProfile, FeedError> {
        let profile: CsvProfile = toml::from_str(text).map_err(|e| FeedError::Profile {
            name: name.to_owned(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        profile.validate().map_err(|reason| FeedError::Profile { name: name.to_owned(), reason })?;
        Ok(profile)
    }

    /// Reads a profile file.
    pub fn load(path: &Path) -> Result<CsvProfile, FeedError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| FeedError::Profile { name: name.clone(), reason: e.to_string() })?;
        CsvProfile::from_toml(&name, &text)
    }

    /// The encoding named by the profile.
    pub fn encoding(&self) -> Option<&'static encoding_rs::Encoding> {
        encoding_rs::Encoding::for_label(self.encoding.as_bytes())
    }

    /// The default currency, if the profile names a valid one.
    pub fn default_currency(&self) -> Option<Currency> {
        self.currency.as_deref().and_then(Currency::from_code)
    }

    fn validate(&self) -> Result<(), String> {
        let c = &self.columns;
        match (&c.amount, &c.debit, &c.credit) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            _ => {
                return Err("give either columns.amount or both columns.debit and columns.credit".into());
            }
        }
        if c.direction.is_some() && (self.credit_values.is_empty() || self.debit_values.is_empty()) {
            return Err("columns.direction needs credit_values and debit_values".into());
        }
        if self.encoding().is_none() {
            return Err(format!("unknown encoding {:?}", self.encoding));
        }
        if let Some(cur) = &self.currency
            && Currency::from_code(cur).is_none()
        {
            return Err(format!("unknown currency {cur:?}"));
        }
        if self.currency.is_none() && c.currency.is_none() {
            return Err("give a default currency or a currency column".into());
        }
        if !self.delimiter.is_ascii() {
            return Err("delimiter must be one ASCII character".into());
        }
        if self.decimal_separator == self.thousands_separator.unwrap_or('\u{0}') {
            return Err("decimal and thousands separators must differ".into());
        }
        Ok(())
    }
}
