//! A seeded business day of feeds, one feed per format (MT940, camt.053,
//! NACHA, BAI2, CSV), at any volume, written streaming, with a known share
//! of unparseable, invalid and duplicate records, plus `feeds.toml` (the
//! config the pipeline reads) and `manifest.json` (the expected counts).
//!
//! Each feed's main file holds its new records, grouped per account into
//! statements of [`STATEMENT_ENTRIES`] entries whose balances add up; its
//! `-redelivery` file re-sends earlier valid records (the duplicates). A
//! valid record is a pure function of (seed, feed, ordinal), so duplicates
//! are regenerated rather than remembered.

mod formats;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::EtlError;
use formats::{FormatWriter, new_writer};

/// Entries per generated statement (batch, account report).
pub const STATEMENT_ENTRIES: usize = 500;
/// Accounts per feed.
const ACCOUNTS: u64 = 4;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenSpec {
    /// Business date.
    pub date: NaiveDate,
    /// Records over all feeds, duplicates included.
    pub records: u64,
    /// Share of records that are malformed (half unparseable, half invalid).
    pub malformed_rate: f64,
    /// Share of records that re-deliver an earlier valid record.
    pub duplicate_rate: f64,
    /// Seed.
    pub seed: u64,
}

/// Expected counts of one feed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCounts {
    /// Records written, duplicates included.
    pub records: u64,
    /// Distinct records that must reach the warehouse.
    pub valid: u64,
    /// Records no parser can read.
    pub unparseable: u64,
    /// Readable records that validation must quarantine.
    pub invalid: u64,
    /// Re-deliveries of valid records.
    pub duplicates: u64,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Business date.
    pub date: NaiveDate,
    /// Seed.
    pub seed: u64,
    /// Expected counts per feed.
    pub feeds: BTreeMap<String, FeedCounts>,
}

impl Manifest {
    /// The counts summed over feeds.
    pub fn total(&self) -> FeedCounts {
        self.feeds.values().fold(FeedCounts::default(), |a, c| FeedCounts {
            records: a.records + c.records,
            valid: a.valid + c.valid,
            unparseable: a.unparseable + c.unparseable,
            invalid: a.invalid + c.invalid,
            duplicates: a.duplicates + c.duplicates,
        })
    }
}

/// The generated feeds: name, format, file extension.
pub const FEEDS: &[(&str, &str, &str)] = &[
    ("swift", "mt940", "sta"),
    ("camt", "camt", "xml"),
    ("ach", "nacha", "ach"),
    ("bai", "bai2", "bai2"),
    ("ledger", "csv", "csv"),
];

/// How a generated entry is broken, if at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// A normal record.
    None,
    /// The amount is not a number: parse rejects it.
    Unparseable,
    /// Readable but invalid (zero amount or a date outside the window).
    Invalid,
}

/// One entry as a generator writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Unique reference (16 characters at most; NACHA uses 15 digits).
    pub reference: String,
    /// Credit when true.
    pub credit: bool,
    /// Amount in minor units.
    pub amount: i64,
    /// Value (and booking) date.
    pub date: NaiveDate,
    /// Counterparty name.
    pub counterparty: String,
    /// Free text.
    pub description: String,
    /// Flaw.
    pub flaw: Flaw,
}

/// A deterministic 64-bit draw.
fn draw(seed: u64, feed: &str, what: &str, n: u64) -> u64 {
    let h = Sha256::digest(format!("{seed}/{feed}/{what}/{n}"));
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

const NAMES: &[&str] = &["ACME SUPPLY", "NORTHWIND", "GLOBEX", "INITECH", "UMBRELLA", "STARK IND", "WAYNE ENT"];

/// Valid record `j` of `feed`.
fn valid(spec: &GenSpec, feed: &str, j: u64) -> Entry {
    let r = draw(spec.seed, feed, "valid", j);
    Entry {
        reference: format!("V{}{j:09}", spec.date.format("%y%m%d")),
        credit: r & 1 == 1,
        amount: 1 + (r >> 8) as i64 % 250_000,
        date: spec.date - Duration::days(((r >> 4) % 2) as i64),
        counterparty: NAMES[((r >> 40) % NAMES.len() as u64) as usize].into(),
        description: format!("INVOICE {}", (r >> 20) % 1_000_000),
        flaw: Flaw::None,
    }
}

/// Malformed record `m` of `feed`.
fn malformed(spec: &GenSpec, feed: &str, m: u64, dated: bool) -> Entry {
    let r = draw(spec.seed, feed, "malformed", m);
    let flaw = if r & 1 == 0 { Flaw::Unparseable } else { Flaw::Invalid };
    let out_of_window = flaw == Flaw::Invalid && dated && (r >> 1) & 1 == 1;
    Entry {
        reference: format!("M{}{m:09}", spec.date.format("%y%m%d")),
        credit: (r >> 2) & 1 == 1,
        amount: if flaw == Flaw::Invalid && !out_of_window { 0 } else { 1 + (r >> 8) as i64 % 250_000 },
        date: if out_of_window { spec.date - Duration::days(40) } else { spec.date },
        counterparty: "BAD DATA INC".into(),
        description: "MALFORMED".into(),
        flaw,
    }
}

/// Which account (0..ACCOUNTS) an ordinal belongs to.
fn account_of(n: u64) -> usize {
    (n % ACCOUNTS) as usize
}

/// Writes one feed's main and re-delivery files, returning its counts.
fn generate_feed(
    spec: &GenSpec,
    records: u64,
    feed: &str,
    format: &str,
    dir: &Path,
    ext: &str,
) -> Result<FeedCounts, EtlError> {
    let open = |name: String| -> Result<(BufWriter<File>, String), EtlError> {
        let path = dir.join(&name);
        Ok((BufWriter::with_capacity(1 << 20, File::create(&path).map_err(|e| EtlError::io(&path, e))?), name))
    };
    let (main_out, _) = open(format!("{feed}.{ext}"))?;
    let mut main = new_writer(format, feed, spec.date, main_out);
    let mut redelivery: Option<Box<dyn FormatWriter>> = None;
    let dated = format != "nacha";
    let mut c = FeedCounts { records, ..FeedCounts::default() };
    let mut main_buf: Vec<Vec<Entry>> = vec![Vec::new(); ACCOUNTS as usize];
    let mut dup_buf: Vec<Vec<Entry>> = vec![Vec::new(); ACCOUNTS as usize];
    let mut malformed_n = 0;
    for i in 0..records {
        let u = unit(draw(spec.seed, feed, "slot", i));
        let (acct, entry, dup) = if u < spec.malformed_rate {
            let e = malformed(spec, feed, malformed_n, dated);
            match e.flaw {
                Flaw::Unparseable => c.unparseable += 1,
                _ => c.invalid += 1,
            }
            malformed_n += 1;
            (account_of(malformed_n - 1), e, false)
        } else if u < spec.malformed_rate + spec.duplicate_rate && c.valid > 0 {
            let j = draw(spec.seed, feed, "dup", i) % c.valid;
            c.duplicates += 1;
            (account_of(j), valid(spec, feed, j), true)
        } else {
            c.valid += 1;
            (account_of(c.valid - 1), valid(spec, feed, c.valid - 1), false)
        };
        let buf = if dup { &mut dup_buf[acct] } else { &mut main_buf[acct] };
        buf.push(entry);
        if buf.len() == STATEMENT_ENTRIES {
            let entries = std::mem::take(buf);
            if dup {
                let w = match &mut redelivery {
                    Some(w) => w,
                    None => redelivery.insert(new_writer(
                        format,
                        feed,
                        spec.date,
                        open(format!("{feed}-redelivery.{ext}"))?.0,
                    )),
                };
                w.statement(acct, &entries).map_err(|e| EtlError::io(dir, e))?;
            } else {
                main.statement(acct, &entries).map_err(|e| EtlError::io(dir, e))?;
            }
        }
    }
    for (acct, entries) in main_buf.into_iter().enumerate().filter(|(_, b)| !b.is_empty()) {
        main.statement(acct, &entries).map_err(|e| EtlError::io(dir, e))?;
    }
    for (acct, entries) in dup_buf.into_iter().enumerate().filter(|(_, b)| !b.is_empty()) {
        let w = match &mut redelivery {
            Some(w) => w,
            None => redelivery.insert(new_writer(format, feed, spec.date, open(format!("{feed}-redelivery.{ext}"))?.0)),
        };
        w.statement(acct, &entries).map_err(|e| EtlError::io(dir, e))?;
    }
    main.finish().map_err(|e| EtlError::io(dir, e))?;
    if let Some(w) = redelivery {
        w.finish().map_err(|e| EtlError::io(dir, e))?;
    }
    Ok(c)
}

const LEDGER_PROFILE: &str = r#"# Profile of the generated "ledger" CSV feed.
name = "ledger"
delimiter = ","
date_format = "%Y-%m-%d"
decimal_separator = "."
currency = "USD"

[columns]
booking_date = "booking_date"
value_date = "value_date"
amount = "amount"
description = ["description"]
reference = "reference"
counterparty = "counterparty"
account = "account"
"#;

/// Writes the day into `dir` (created if needed): the feeds, `feeds.toml`,
/// `ledger.profile.toml` and `manifest.json`.
pub fn generate(spec: &GenSpec, dir: &Path) -> Result<Manifest, EtlError> {
    if !(0.0..=1.0).contains(&spec.malformed_rate) || !(0.0..=1.0).contains(&spec.duplicate_rate) {
        return Err(EtlError::Invalid("rates must be in 0..=1".into()));
    }
    if spec.malformed_rate + spec.duplicate_rate > 1.0 {
        return Err(EtlError::Invalid("malformed rate plus duplicate rate must not exceed 1".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| EtlError::io(dir, e))?;
    let per_feed = spec.records / FEEDS.len() as u64;
    let mut feeds = BTreeMap::new();
    let mut config =
        String::from("# Feeds of the generated business day.\n[window]\ndays_before = 5\ndays_after = 1\n");
    for (k, (feed, format, ext)) in FEEDS.iter().enumerate() {
        let n = per_feed + u64::from((k as u64) < spec.records % FEEDS.len() as u64);
        feeds.insert((*feed).to_owned(), generate_feed(spec, n, feed, format, dir, ext)?);
        config.push_str(&format!(
            "\n[[feed]]\nname = \"{feed}\"\nformat = \"{format}\"\npattern = \"{feed}*.{ext}\"\nkind = \"end_of_day\"\n"
        ));
        if *format == "csv" {
            config.push_str("profile = \"ledger.profile.toml\"\n");
        }
    }
    let write =
        |name: &str, text: &str| std::fs::write(dir.join(name), text).map_err(|e| EtlError::io(dir.join(name), e));
    write("feeds.toml", &config)?;
    write("ledger.profile.toml", LEDGER_PROFILE)?;
    let manifest = Manifest { date: spec.date, seed: spec.seed, feeds };
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| EtlError::Invalid(e.to_string()))?;
    write("manifest.json", &(json + "\n"))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_counts_add_up_and_parsers_agree() {
        let dir = std::env::temp_dir().join(format!("etl-gen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spec = GenSpec {
            date: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
            records: 5_000,
            malformed_rate: 0.04,
            duplicate_rate: 0.03,
            seed: 9,
        };
        let m = generate(&spec, &dir).unwrap();
        let t = m.total();
        assert_eq!(t.records, 5_000);
        assert_eq!(t.valid + t.unparseable + t.invalid + t.duplicates, t.records);
        assert!(t.unparseable > 0 && t.invalid > 0 && t.duplicates > 0, "{t:?}");
        let profile = feeds::CsvProfile::load(&dir.join("ledger.profile.toml")).unwrap();
        for (feed, format, ext) in FEEDS {
            let (mut txs, mut rejects) = (0, 0);
            for name in [format!("{feed}.{ext}"), format!("{feed}-redelivery.{ext}")] {
                let format = Some(format.parse().unwrap());
                let p = if format == Some(feeds::Format::Csv) { Some(&profile) } else { None };
                for item in feeds::open(&dir.join(name), format, p).unwrap() {
                    match item.unwrap() {
                        feeds::Item::Transaction(_) => txs += 1,
                        feeds::Item::Reject(_) => rejects += 1,
                        _ => {}
                    }
                }
            }
            let c = m.feeds[*feed];
            assert_eq!(rejects, c.unparseable, "{feed} rejects");
            assert_eq!(txs, c.valid + c.invalid + c.duplicates, "{feed} transactions");
        }
    }
}
