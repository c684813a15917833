//! Exact money: ISO 4217 currencies with their minor-unit exponent, decimal
//! parsing into integer minor units, and formatting back to decimal strings.
//!
//! Floats never appear. An amount with more significant decimals than its
//! currency allows is an error (the caller turns it into a reject), because
//! rounding would silently change a bank's figure.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Active ISO 4217 codes with their minor-unit exponent. Funds codes and
/// precious metals without a defined exponent are left out on purpose: an
/// amount in them cannot be represented in minor units.
#[rustfmt::skip]
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2),
    ("AUD", 2), ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2),
    ("BHD", 3), ("BIF", 0), ("BMD", 2), ("BND", 2), ("BOB", 2), ("BOV", 2), ("BRL", 2),
    ("BSD", 2), ("BTN", 2), ("BWP", 2), ("BYN", 2), ("BZD", 2), ("CAD", 2), ("CDF", 2),
    ("CHE", 2), ("CHF", 2), ("CHW", 2), ("CLF", 4), ("CLP", 0), ("CNY", 2), ("COP", 2),
    ("COU", 2), ("CRC", 2), ("CUC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2), ("DJF", 0),
    ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2), ("ETB", 2), ("EUR", 2),
    ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2), ("GIP", 2), ("GMD", 2),
    ("GNF", 0), ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HTG", 2), ("HUF", 2),
    ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0), ("JMD", 2),
    ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2), ("KMF", 0), ("KPW", 2),
    ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2), ("LBP", 2), ("LKR", 2),
    ("LRD", 2), ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2), ("MKD", 2),
    ("MMK", 2), ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2), ("MWK", 2),
    ("MXN", 2), ("MXV", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2), ("NIO", 2),
    ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2), ("PGK", 2),
    ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2), ("RSD", 2),
    ("RUB", 2), ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2),
    ("SGD", 2), ("SHP", 2), ("SLE", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2), ("STN", 2),
    ("SVC", 2), ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2), ("TND", 3),
    ("TOP", 2), ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2), ("UGX", 0),
    ("USD", 2), ("USN", 2), ("UYI", 0), ("UYU", 2), ("UYW", 4), ("UZS", 2), ("VED", 2),
    ("VES", 2), ("VND", 0), ("VUV", 0), ("WST", 2), ("XAF", 0), ("XCD", 2), ("XCG", 2),
    ("XOF", 0), ("XPF", 0), ("YER", 2), ("ZAR", 2), ("ZMW", 2), ("ZWG", 2), ("ZWL", 2),
];

/// An ISO 4217 alphabetic currency code known to the exponent table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

impl Currency {
    /// Looks a code up (case-insensitive, surrounding blanks ignored).
    pub fn from_code(code: &str) -> Option<Currency> {
        let code = code.trim();
        if code.len() != 3 {
            return None;
        }
        let upper = code.to_ascii_uppercase();
        CURRENCIES.binary_search_by(|(c, _)| c.cmp(&upper.as_str())).ok().map(|i| {
            let mut bytes = [0u8; 3];
            bytes.copy_from_slice(CURRENCIES[i].0.as_bytes());
            Currency { code: bytes, exponent: CURRENCIES[i].1 }
        })
    }

    /// The three-letter code.
    pub fn code(&self) -> &str {
        // The table holds ASCII only, so this cannot fail.
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Number of decimals of the minor unit (2 for EUR, 0 for JPY, 3 for KWD).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Formats a signed amount in minor units as a plain decimal string.
    pub fn format_minor(&self, minor: i128) -> String {
        format_minor(minor, self.exponent)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::from_code(&value).ok_or_else(|| format!("unknown currency {value:?}"))
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.code().to_owned()
    }
}

/// Formats `minor` with `exponent` implied decimals ("-1234.50").
pub fn format_minor(minor: i128, exponent: u8) -> String {
    let digits = minor.unsigned_abs().to_string();
    let sign = if minor < 0 { "-" } else { "" };
    let exp = usize::from(exponent);
    if exp == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = exp + 1);
    let (int, frac) = padded.split_at(padded.len() - exp);
    format!("{sign}{int}.{frac}")
}

/// A signed amount in integer minor units of a currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units (cents for USD); negative only for balances.
    pub minor: i64,
    /// Currency of the amount.
    pub currency: Currency,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.currency.format_minor(i128::from(self.minor)), self.currency)
    }
}

/// A decimal number as written in a file: sign, digits and scale, exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    /// All digits as one integer, sign applied.
    pub mantissa: i128,
    /// Number of digits after the decimal separator.
    pub scale: u32,
}

/// Why a textual amount could not become minor units.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a number in the expected notation.
    #[error("malformed amount {0:?}")]
    Malformed(String),
    /// More significant decimals than the currency allows.
    #[error("amount {amount:?} has more decimals than {currency} allows ({exponent})")]
    TooManyDecimals {
        /// The amount as written.
        amount: String,
        /// The currency.
        currency: String,
        /// The currency's exponent.
        exponent: u8,
    },
    /// Does not fit a 64-bit count of minor units.
    #[error("amount {0:?} is too large")]
    Overflow(String),
}

// 30 digits keep every intermediate product well inside i128.
const MAX_DIGITS: usize = 30;

impl Decimal {
    /// Parses `[+-]digits[<sep>digits]`, ignoring `thousands` separators.
    /// A leading or trailing minus, and parentheses for negatives, are accepted
    /// because spreadsheet exports use all three.
    pub fn parse(text: &str, decimal_sep: char, thousands: Option<char>) -> Result<Decimal, AmountError> {
        let malformed = || AmountError::Malformed(text.to_owned());
        let mut s = text.trim();
        let mut negative = false;
        if let Some(inner) = s.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            negative = true;
            s = inner.trim();
        }
        if let Some(rest) = s.strip_prefix('-') {
            negative = !negative;
            s = rest.trim_start();
        } else if let Some(rest) = s.strip_prefix('+') {
            s = rest.trim_start();
        } else if let Some(rest) = s.strip_suffix('-') {
            negative = !negative;
            s = rest.trim_end();
        }
        if s.is_empty() {
            return Err(malformed());
        }
        let mut mantissa: i128 = 0;
        let mut digits = 0usize;
        let mut scale = 0u32;
        let mut seen_sep = false;
        for c in s.chars() {
            if c == decimal_sep {
                if seen_sep {
                    return Err(malformed());
                }
                seen_sep = true;
            } else if Some(c) == thousands && !seen_sep {
                continue;
            } else if let Some(d) = c.to_digit(10) {
                digits += 1;
                if digits > MAX_DIGITS {
                    return Err(AmountError::Overflow(text.to_owned()));
                }
                mantissa = mantissa * 10 + i128::from(d);
                if seen_sep {
                    scale += 1;
                }
            } else {
                return Err(malformed());
            }
        }
        if digits == 0 {
            return Err(malformed());
        }
        Ok(Decimal { mantissa: if negative { -mantissa } else { mantissa }, scale })
    }

    /// Converts to minor units of `currency`, refusing to round.
    pub fn to_minor(self, currency: Currency, original: &str) -> Result<i64, AmountError> {
        let exp = u32::from(currency.exponent());
        let value = if self.scale > exp {
            let divisor = 10i128.pow(self.scale - exp);
            if self.mantissa % divisor != 0 {
                return Err(AmountError::TooManyDecimals {
                    amount: original.trim().to_owned(),
                    currency: currency.code().to_owned(),
                    exponent: currency.exponent(),
                });
            }
            self.mantissa / divisor
        } else {
            self.mantissa
                .checked_mul(10i128.pow(exp - self.scale))
                .ok_or_else(|| AmountError::Overflow(original.to_owned()))?
        };
        i64::try_from(value).map_err(|_| AmountError::Overflow(original.to_owned()))
    }
}

/// Parses `text` and converts it to minor units of `currency` in one step.
pub fn parse_minor(
    text: &str,
    currency: Currency,
    decimal_sep: char,
    thousands: Option<char>,
) -> Result<i64, AmountError> {
    Decimal::parse(text, decimal_sep, thousands)?.to_minor(currency, text)
}

/// Parses an amount written as an integer count of minor units (NACHA, BAI2).
pub fn parse_implied(text: &str) -> Result<i64, AmountError> {
    let d = Decimal::parse(text, '\u{0}', None)?;
    i64::try_from(d.mantissa).map_err(|_| AmountError::Overflow(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::from_code("EUR").unwrap()
    }

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn exponents() {
        assert_eq!(Currency::from_code("jpy").unwrap().exponent(), 0);
        assert_eq!(Currency::from_code("KWD").unwrap().exponent(), 3);
        assert!(Currency::from_code("XYZ").is_none());
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(parse_minor("3236,28", eur(), ',', None), Ok(323628));
        assert_eq!(parse_minor("107,", eur(), ',', None), Ok(10700));
        assert_eq!(parse_minor("1,036.47", eur(), '.', Some(',')), Ok(103647));
        assert_eq!(parse_minor("105.750", eur(), '.', None), Ok(10575));
        assert_eq!(parse_minor("(5.00)", eur(), '.', None), Ok(-500));
        assert_eq!(parse_minor("-24,14", eur(), ',', Some('.')), Ok(-2414));
        assert!(matches!(parse_minor("1.005", eur(), '.', None), Err(AmountError::TooManyDecimals { .. })));
        assert!(parse_minor("1.2.3", eur(), '.', None).is_err());
        assert!(parse_minor("", eur(), '.', None).is_err());
        assert!(parse_minor("99999999999999999999", eur(), '.', None).is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_minor(123450, 2), "1234.50");
        assert_eq!(format_minor(-5, 2), "-0.05");
        assert_eq!(format_minor(7, 0), "7");
        assert_eq!(format_minor(1, 3), "0.001");
    }
}
