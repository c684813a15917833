//! The feeds config: a TOML file naming each upstream feed (format, file
//! pattern, CSV profile, end-of-day or intraday) and the business window
//! that validation accepts dates in. Read once when a run is built, so a
//! run keeps the config it started with.
//!
//! ```toml
//! chunk_records = 250000   # record ordinals per parse chunk (at most 250000)
//!
//! [window]
//! days_before = 5   # value/booking dates accepted from date - 5 ...
//! days_after = 1    # ... to date + 1
//!
//! [[feed]]
//! name = "ledger_csv"
//! format = "csv"
//! pattern = "ledger-*.csv"
//! profile = "ledger.profile.toml"   # relative to this file
//! kind = "end_of_day"               # or "intraday"
//! ```

use std::path::Path;

use chrono::{Duration, NaiveDate};
use feeds::{CsvProfile, Format};
use serde::{Deserialize, Serialize};

use crate::error::EtlError;

/// Whether a feed is the book of record or an intraday report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedKind {
    /// End-of-day statements: the book of record; they win over intraday rows.
    EndOfDay,
    /// Intraday reports: never double-count a transaction the end-of-day feed carries.
    Intraday,
}

impl FeedKind {
    /// The name used in SQL and TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::EndOfDay => "end_of_day",
            FeedKind::Intraday => "intraday",
        }
    }
}

/// One feed, as stored in the run's step definitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSpec {
    /// The feed's name (the warehouse's `source_system`).
    pub name: String,
    /// The file format.
    pub format: Format,
    /// File name pattern in the landing directory (`*` and `?` wildcards).
    pub pattern: String,
    /// CSV profile, loaded from the config's `profile` path.
    pub profile: Option<CsvProfile>,
    /// End-of-day or intraday.
    pub kind: FeedKind,
}

/// Dates accepted by validation, relative to the business date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Days before the business date.
    pub days_before: u32,
    /// Days after the business date.
    pub days_after: u32,
}

impl Default for Window {
    fn default() -> Self {
        Window { days_before: 5, days_after: 1 }
    }
}

impl Window {
    /// First and last accepted date for business date `date`.
    pub fn bounds(&self, date: NaiveDate) -> (NaiveDate, NaiveDate) {
        (date - Duration::days(self.days_before.into()), date + Duration::days(self.days_after.into()))
    }
}

/// The whole config.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedsConfig {
    /// The business window.
    pub window: Window,
    /// Record ordinals per parse chunk.
    pub chunk_records: u64,
    /// The feeds, in file order.
    pub feeds: Vec<FeedSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    window: Window,
    #[serde(default = "default_chunk_records")]
    chunk_records: u64,
    #[serde(default)]
    feed: Vec<RawFeed>,
}

/// The default (and largest) number of record ordinals per parse chunk.
pub fn default_chunk_records() -> u64 {
    250_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: String,
    format: String,
    pattern: String,
    profile: Option<String>,
    kind: FeedKind,
}

impl FeedsConfig {
    /// Reads and checks the config at `path`.
    pub fn load(path: &Path) -> Result<FeedsConfig, EtlError> {
        let bad = |message: String| EtlError::Config { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| bad(e.to_string().replace('\n', " ")))?;
        if raw.feed.is_empty() {
            return Err(bad("no [[feed]] entries".into()));
        }
        if !(1..=default_chunk_records()).contains(&raw.chunk_records) {
            return Err(bad(format!("chunk_records = {}: use 1 to {}", raw.chunk_records, default_chunk_records())));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut feeds = Vec::new();
        for f in raw.feed {
            if f.name.is_empty() || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(bad(format!("feed name {:?}: use letters, digits, '_' or '-'", f.name)));
            }
            if feeds.iter().any(|g: &FeedSpec| g.name == f.name) {
                return Err(bad(format!("feed {:?} is listed twice", f.name)));
            }
            let format: Format = f.format.parse().map_err(|e: String| bad(format!("feed {}: {e}", f.name)))?;
            let profile = match (&f.profile, format) {
                (Some(p), Format::Csv) => {
                    Some(CsvProfile::load(&dir.join(p)).map_err(|e| bad(format!("feed {}: {e}", f.name)))?)
                }
                (None, Format::Csv) => return Err(bad(format!("feed {}: a csv feed needs a profile", f.name))),
                (Some(_), _) => return Err(bad(format!("feed {}: only csv feeds take a profile", f.name))),
                (None, _) => None,
            };
            feeds.push(FeedSpec { name: f.name, format, pattern: f.pattern, profile, kind: f.kind });
        }
        Ok(FeedsConfig { window: raw.window, chunk_records: raw.chunk_records, feeds })
    }
}

/// True when `name` matches `pattern` (`*` any run, `?` one character).
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_a_shell() {
        assert!(matches("*.sta", "a.sta"));
        assert!(matches("ledger-??.csv", "ledger-01.csv"));
        assert!(!matches("*.sta", "a.sta.bak"));
        assert!(!matches("ledger-?.csv", "ledger-01.csv"));
        assert!(matches("*", ""));
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("etl-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            ("", "no [[feed]]"),
            ("chunk_records = 0\n[[feed]]\nname='a'\nformat='bai2'\npattern='*'\nkind='intraday'\n", "chunk_records"),
            ("[[feed]]\nname='a'\nformat='xml'\npattern='*'\nkind='end_of_day'\n", "unknown feed format"),
            ("[[feed]]\nname='a'\nformat='csv'\npattern='*'\nkind='end_of_day'\n", "needs a profile"),
            ("[[feed]]\nname='a b'\nformat='bai2'\npattern='*'\nkind='intraday'\n", "feed name"),
        ];
        for (text, msg) in cases {
            let p = dir.join("feeds.toml");
            std::fs::write(&p, text).unwrap();
            let err = FeedsConfig::load(&p).unwrap_err().to_string();
            assert!(err.contains(msg), "{text}: {err}");
        }
    }
}
