//! The daily transactions ETL (being built): per-feed branches that land,
//! parse, transform, validate and load upstream bank files into the
//! reporting warehouse, with a per-record audit lineage.
//!
//! [`feeds`] holds the upstream file parsers. Until the ETL's workflows
//! land, [`registry`] registers nothing.

pub use feeds;
use workflow_core::Registry;

/// The step types and workflows of the ETL.
pub fn registry() -> Registry {
    Registry::new()
}
