//! Streaming, lenient-but-never-silent parsers for the upstream bank feeds
//! of the nightly ETL.
//!
//! Map of the crate:
//!
//! | module | owns |
//! |---|---|
//! | [`feed`] | [`Format`], detection, [`open`]/[`parse`] returning a [`Feed`] iterator |
//! | [`inspect`](mod@inspect) | [`InspectReport`] and [`inspect()`](fn@inspect) behind `wf feed inspect` |
//! | [`model`] | canonical [`Transaction`], [`Statement`], [`Reject`], [`Finding`], [`Item`] |
//! | [`money`] | [`Currency`] exponent table, exact decimal parsing, [`Money`] |
//! | [`error`] | [`FeedError`]: failures that reject a whole file |
//! | [`mt940`] / [`mt940_fields`] | SWIFT MT940/MT942 stream and field grammar |
//! | [`camt`] / [`camt_entry`] | ISO 20022 camt.052/053/054 .001.01-.08 |
//! | [`nacha`] / [`nacha_records`] | NACHA ACH batches, addenda, controls / 94-character records |
//! | [`bai2`] / [`bai2_fields`] | BAI2 groups, accounts, checks / record and field grammar |
//! | [`csv_feed`] / [`profile`] | profile-driven CSV exports |
//! | [`text`], [`xml_tap`], [`emit`] | line reading, transcoding, hashing, output queue |
//!
//! Every parser reads a `BufRead` and yields [`Item`]s one at a time, holding
//! only the state of the current statement, so memory does not grow with the
//! file. Unreadable records become [`Reject`]s, failed statement checks
//! become [`Finding`]s; only a file that is not the format at all fails with
//! [`FeedError`].
//!
//! ```no_run
//! use feeds::{Item, open};
//! let feed = open(std::path::Path::new("statement.sta"), None, None)?;
//! for item in feed {
//!     match item? {
//!         Item::Transaction(tx) => println!("{} {:?}", tx.amount, tx.direction),
//!         Item::Reject(r) => eprintln!("{r}"),
//!         _ => {}
//!     }
//! }
//! # Ok::<(), feeds::FeedError>(())
//! ```
#![forbid(unsafe_code)]

pub mod bai2;
pub mod bai2_fields;
pub mod camt;
pub mod camt_entry;
pub mod csv_feed;
pub mod emit;
pub mod error;
pub mod feed;
pub mod inspect;
pub mod model;
pub mod money;
pub mod mt940;
pub mod mt940_fields;
pub mod nacha;
pub mod nacha_records;
pub mod profile;
pub mod text;
pub mod xml_tap;

pub use error::FeedError;
pub use feed::{Feed, Format, file_sha256, open, parse};
pub use inspect::{CurrencyTotal, InspectReport, RejectSummary, StatementSummary, inspect};
pub use model::{
    Balance, Counterparty, Direction, Finding, Item, Provenance, Reject, SourceInfo, Statement, StatementKind,
    Transaction,
};
pub use money::{Currency, Money};
pub use profile::{Columns, CsvProfile, SignConvention};
