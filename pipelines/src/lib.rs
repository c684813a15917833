//! The daily transactions ETL (being built): per-feed branches that land,
//! parse, transform, validate and load upstream bank files into the
//! reporting warehouse, with a per-record audit lineage.
//!
//! Until its workflows land, [`registry`] registers nothing.

use workflow_core::Registry;

/// The step types and workflows of the ETL.
pub fn registry() -> Registry {
    Registry::new()
}
