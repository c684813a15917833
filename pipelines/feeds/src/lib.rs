//! Streaming parsers for upstream bank feeds.
#![forbid(unsafe_code)]

pub mod emit;
pub mod error;
pub mod model;
pub mod money;
pub mod mt940;
pub mod mt940_fields;
pub mod text;
pub mod camt;
pub mod camt_entry;
pub mod xml_tap;
pub mod nacha;
