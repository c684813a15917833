//! A seeded business day of feeds (placeholder, filled in below).
