//! The audit lineage's hash chain, and the two ways to read it back:
//! [`verify`] recomputes every chain of a business date (or all dates),
//! names the first broken link and notices a tail missing after a seal;
//! [`trace`] shows one warehouse row's path back to its source file.
//!
//! Link hash: `sha256(prev_hash | date | feed | seq | identity | file_sha256
//! | record | line | raw_sha256 | canonical_sha256 | hex(txn_key) | run |
//! step | attempt | transform_version)`, fields joined by `|`; the first
//! link's `prev_hash` is 64 zeros.

use std::fmt::Write as _;

use chrono::NaiveDate;
use futures_util::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::EtlError;

/// The `prev_hash` of a chain's first link.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One lineage row, as hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Link {
    /// Business date.
    pub business_date: NaiveDate,
    /// Feed.
    pub feed: String,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Staging identity of the record.
    pub identity: String,
    /// Source file sha256.
    pub file_sha256: String,
    /// Record ordinal in the file.
    pub record: i64,
    /// Line in the file.
    pub line: i64,
    /// sha256 of the record's raw bytes.
    pub raw_sha256: String,
    /// sha256 of the canonical row.
    pub canonical_sha256: String,
    /// Warehouse key.
    pub txn_key: Vec<u8>,
    /// Run that loaded it.
    pub run_id: Uuid,
    /// Step that loaded it.
    pub step: String,
    /// Attempt of that step.
    pub attempt: i32,
    /// Transform version.
    pub transform_version: i32,
}

impl Link {
    /// The link's hash given the previous one.
    pub fn hash(&self, prev: &str) -> String {
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            "{prev}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.business_date,
            self.feed,
            self.seq,
            self.identity,
            self.file_sha256,
            self.record,
            self.line,
            self.raw_sha256,
            self.canonical_sha256,
            hex::encode(&self.txn_key),
            self.run_id,
            self.step,
            self.attempt,
            self.transform_version
        );
        hex::encode(Sha256::digest(s.as_bytes()))
    }
}

/// The result of checking one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Business date.
    pub business_date: NaiveDate,
    /// Feed.
    pub feed: String,
    /// Links read.
    pub rows: i64,
    /// Head hash recomputed.
    pub head: String,
    /// Rows and head of the latest seal, when sealed.
    pub sealed: Option<(i64, String)>,
    /// The first problem, if any.
    pub broken: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StoredLink {
    #[sqlx(flatten)]
    link: Link,
    prev_hash: String,
    hash: String,
}

fn chain(d: NaiveDate, feed: &str) -> ChainReport {
    ChainReport { business_date: d, feed: feed.to_owned(), rows: 0, head: GENESIS.into(), sealed: None, broken: None }
}

/// Recomputes every chain of `date` (every date when `None`), checking
/// each link's sequence, back-pointer and hash, and each latest seal's
/// length and head.
pub async fn verify(pool: &PgPool, date: Option<NaiveDate>) -> Result<Vec<ChainReport>, EtlError> {
    let seals: Vec<(NaiveDate, String, i64, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (business_date, feed) business_date, feed, rows, head_hash FROM audit.seals
         WHERE $1::date IS NULL OR business_date = $1 ORDER BY business_date, feed, rows DESC",
    )
    .bind(date)
    .fetch_all(pool)
    .await?;
    let mut reports: Vec<ChainReport> = Vec::new();
    let mut rows = sqlx::query_as::<_, StoredLink>(
        "SELECT business_date, feed, seq, identity, file_sha256, record, line, raw_sha256, canonical_sha256, txn_key,
                run_id, step, attempt, transform_version, prev_hash, hash
         FROM audit.lineage WHERE $1::date IS NULL OR business_date = $1 ORDER BY business_date, feed, seq",
    )
    .bind(date)
    .fetch(pool);
    while let Some(StoredLink { link, prev_hash, hash }) = rows.try_next().await? {
        if !reports.last().is_some_and(|r| r.business_date == link.business_date && r.feed == link.feed) {
            let mut r = chain(link.business_date, &link.feed);
            r.sealed = seals.iter().find(|s| s.0 == link.business_date && s.1 == link.feed).map(|s| (s.2, s.3.clone()));
            reports.push(r);
        }
        let r = reports.last_mut().expect("pushed above");
        r.rows += 1;
        if r.broken.is_none() {
            let here = format!("{} {} seq {}", link.business_date, link.feed, link.seq);
            if link.seq != r.rows {
                r.broken = Some(format!("{here}: expected seq {} (a link is missing)", r.rows));
            } else if prev_hash != r.head {
                r.broken = Some(format!("{here}: prev_hash does not match the previous link"));
            } else if link.hash(&prev_hash) != hash {
                r.broken = Some(format!("{here}: content does not match its hash (row altered)"));
            } else if r.sealed.as_ref().is_some_and(|(n, head)| *n == r.rows && *head != hash) {
                r.broken = Some(format!("{here}: differs from the sealed head"));
            }
        }
        r.head = hash;
    }
    drop(rows);
    for (d, feed, n, head) in seals {
        let r = match reports.iter().position(|r| r.business_date == d && r.feed == feed) {
            Some(i) => &mut reports[i],
            None => {
                reports.push(chain(d, &feed));
                let r = reports.last_mut().expect("pushed above");
                r.sealed = Some((n, head));
                r
            }
        };
        if r.broken.is_none() && r.rows < n {
            r.broken = Some(format!("{d} {feed}: sealed with {n} links but only {} remain (tail missing)", r.rows));
        }
    }
    reports.sort_by(|a, b| (a.business_date, &a.feed).cmp(&(b.business_date, &b.feed)));
    Ok(reports)
}

/// One warehouse row and every lineage link behind it.
#[derive(Debug, Serialize)]
pub struct Trace {
    /// The warehouse row, as JSON.
    pub warehouse: serde_json::Value,
    /// The links, with their file name and path.
    pub lineage: Vec<serde_json::Value>,
}

/// Finds the warehouse row `txn_key` (64 hex digits) and its lineage.
pub async fn trace(pool: &PgPool, txn_key: &str) -> Result<Option<Trace>, EtlError> {
    let key = hex::decode(txn_key.trim())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| EtlError::Invalid(format!("bad transaction key {txn_key:?}: expected 64 hex digits")))?;
    let row: Option<(serde_json::Value,)> = sqlx::query_as(
        "SELECT to_jsonb(t) - 'txn_key' || jsonb_build_object('account_id', a.account_id)
         FROM warehouse.fact_transaction t JOIN warehouse.dim_account a USING (account_key) WHERE t.txn_key = $1",
    )
    .bind(&key)
    .fetch_optional(pool)
    .await?;
    let Some((warehouse,)) = row else { return Ok(None) };
    let lineage: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT to_jsonb(l) - 'txn_key' || jsonb_build_object('file_name', f.name, 'file_path', f.path)
         FROM audit.lineage l JOIN etl.landed_files f ON f.sha256 = l.file_sha256
         WHERE l.txn_key = $1 ORDER BY l.business_date, l.feed, l.seq",
    )
    .bind(&key)
    .fetch_all(pool)
    .await?;
    Ok(Some(Trace { warehouse, lineage: lineage.into_iter().map(|(v,)| v).collect() }))
}
