//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use feeds::{CsvProfile, Format, InspectReport, Item, inspect, open};

/// Path of a fixture file.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// Path of a CSV profile.
pub fn profile(name: &str) -> CsvProfile {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles").join(format!("{name}.toml"));
    CsvProfile::load(&p).expect("profile loads")
}

/// Inspects a fixture with auto-detection.
pub fn report(rel: &str) -> InspectReport {
    inspect(&fixture(rel), None, None).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Totals as `{currency: (credits, debits)}`.
pub fn totals(r: &InspectReport) -> BTreeMap<String, (String, String)> {
    r.totals.iter().map(|t| (t.currency.clone(), (t.credits.clone(), t.debits.clone()))).collect()
}

/// Expected totals from a literal list.
pub fn want(list: &[(&str, &str, &str)]) -> BTreeMap<String, (String, String)> {
    list.iter().map(|(c, cr, db)| (c.to_string(), (cr.to_string(), db.to_string()))).collect()
}

/// All items of a fixture.
pub fn items(rel: &str, format: Option<Format>, profile: Option<&CsvProfile>) -> Vec<Item> {
    open(&fixture(rel), format, profile).expect("opens").collect::<Result<Vec<_>, _>>().expect("reads")
}

/// The transactions among `items`.
pub fn transactions(items: &[Item]) -> Vec<&feeds::Transaction> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Transaction(t) => Some(t.as_ref()),
            _ => None,
        })
        .collect()
}

/// The statements among `items`.
pub fn statements(items: &[Item]) -> Vec<&feeds::Statement> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Statement(s) => Some(s.as_ref()),
            _ => None,
        })
        .collect()
}
