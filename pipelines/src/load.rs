//! The `load` step: idempotent upserts of one feed's valid canonical rows
//! into the warehouse (accounts, transactions, end-of-day balances) and one
//! audit lineage row per newly loaded source record, hash-chained after the
//! chain's current head. All in the transaction that completes the step.
//!
//! End-of-day feeds are the book of record: when a transaction an intraday
//! feed loaded first arrives on the end-of-day statement (same `txn_key`),
//! the warehouse row is taken over by the end-of-day feed instead of
//! counted twice; an intraday row never replaces an end-of-day one.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use workflow_core::{ResultExt, Step, StepContext, StepError, StepOutcome, async_trait};

use crate::audit::{GENESIS, Link};
use crate::config::FeedKind;
use crate::workflow::Job;

/// Lineage rows hashed and written per round trip.
const PAGE: i64 = 50_000;

/// Loads one feed's valid rows.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// The branch.
    pub job: Job,
}

const ACCOUNTS_SQL: &str = "
INSERT INTO warehouse.dim_account (account_id, bank_id, first_seen)
SELECT DISTINCT coalesce(s.account, s.feed || ':unknown'), NULL::text, $1::date
FROM etl.staging s
WHERE s.business_date = $1 AND s.feed = $2
  AND NOT EXISTS (SELECT 1 FROM etl.rejects r WHERE r.business_date = $1 AND r.feed = $2 AND r.identity = s.identity)
ON CONFLICT (account_id) DO NOTHING";

const FACTS_SQL: &str = "
INSERT INTO warehouse.fact_transaction AS t (txn_key, business_date, source_system, account_key, booked_at, value_date,
    direction, amount_minor, currency, counterparty, reference, description)
SELECT DISTINCT ON (c.txn_key) c.txn_key, c.business_date, c.feed, a.account_key, s.booking_date::timestamptz,
       coalesce(s.value_date, s.booking_date), s.direction, s.amount_minor, s.currency, s.counterparty, s.reference,
       s.description
FROM etl.canonical c JOIN etl.staging s USING (business_date, feed, identity)
JOIN warehouse.dim_account a ON a.account_id = coalesce(s.account, s.feed || ':unknown')
WHERE c.business_date = $1 AND c.feed = $2
  AND NOT EXISTS (SELECT 1 FROM etl.rejects r WHERE r.business_date = $1 AND r.feed = $2 AND r.identity = c.identity)
ORDER BY c.txn_key, s.file_sha256, s.record
ON CONFLICT (txn_key) DO UPDATE SET source_system = excluded.source_system, business_date = excluded.business_date,
    account_key = excluded.account_key, booked_at = excluded.booked_at, value_date = excluded.value_date,
    counterparty = excluded.counterparty, description = excluded.description
WHERE $3 AND t.source_system <> excluded.source_system";

const BALANCES_SQL: &str = "
INSERT INTO warehouse.daily_balance (account_key, balance_date, currency, opening_minor, closing_minor)
SELECT DISTINCT ON (a.account_key, coalesce(st.closing_date, st.business_date), st.currency)
       a.account_key, coalesce(st.closing_date, st.business_date), st.currency, st.opening_minor, st.closing_minor
FROM etl.statements st JOIN warehouse.dim_account a ON a.account_id = st.account
WHERE st.business_date = $1 AND st.feed = $2 AND st.kind = 'end_of_day'
  AND st.closing_minor IS NOT NULL AND st.currency IS NOT NULL
ORDER BY a.account_key, coalesce(st.closing_date, st.business_date), st.currency, st.file_sha256, st.statement DESC
ON CONFLICT (account_key, balance_date, currency) DO UPDATE
    SET opening_minor = excluded.opening_minor, closing_minor = excluded.closing_minor";

/// Valid rows of the feed and date that have no lineage yet, numbered in
/// file and record order: the order they join the chain.
const PENDING_SQL: &str = "
CREATE TEMP TABLE pending ON COMMIT DROP AS
SELECT row_number() OVER (ORDER BY s.file_sha256, s.record, s.identity) AS n,
       s.identity, s.file_sha256, s.record, s.line, s.raw_sha256, c.canonical_sha256, c.txn_key, c.transform_version
FROM etl.canonical c JOIN etl.staging s USING (business_date, feed, identity)
WHERE c.business_date = $1 AND c.feed = $2
  AND NOT EXISTS (SELECT 1 FROM etl.rejects r WHERE r.business_date = $1 AND r.feed = $2 AND r.identity = c.identity)
  AND NOT EXISTS (SELECT 1 FROM audit.lineage l
                  WHERE l.business_date = $1 AND l.feed = $2 AND l.identity = c.identity)";

#[derive(sqlx::FromRow)]
struct Pending {
    identity: String,
    file_sha256: String,
    record: i64,
    line: i64,
    raw_sha256: String,
    canonical_sha256: String,
    txn_key: Vec<u8>,
    transform_version: i32,
}

fn text(buf: &mut String, s: &str) {
    crate::parse::copy_escape(buf, s);
}

impl Load {
    /// Appends the pending rows to the chain; returns how many.
    async fn lineage(&self, conn: &mut PgConnection, ctx: &StepContext) -> Result<i64, StepError> {
        let (date, feed) = (self.job.date, &self.job.feed.name);
        sqlx::query(PENDING_SQL).bind(date).bind(feed).execute(&mut *conn).await.retryable("pending rows")?;
        sqlx::query("CREATE INDEX ON pending (n)").execute(&mut *conn).await.retryable("index pending rows")?;
        let head: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, hash FROM audit.lineage WHERE business_date = $1 AND feed = $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(date)
        .bind(feed)
        .fetch_optional(&mut *conn)
        .await
        .retryable("chain head")?;
        let (mut seq, mut prev) = head.unwrap_or((0, GENESIS.to_owned()));
        let mut from = 0i64;
        let mut written = 0i64;
        loop {
            let page: Vec<Pending> = sqlx::query_as(
                "SELECT identity, file_sha256, record, line, raw_sha256, canonical_sha256, txn_key, transform_version
                 FROM pending WHERE n > $1 AND n <= $2 ORDER BY n",
            )
            .bind(from)
            .bind(from + PAGE)
            .fetch_all(&mut *conn)
            .await
            .retryable("read pending rows")?;
            if page.is_empty() {
                break;
            }
            from += PAGE;
            let mut buf = String::with_capacity(page.len() * 420);
            for p in page {
                seq += 1;
                let link = Link {
                    business_date: date,
                    feed: feed.clone(),
                    seq,
                    identity: p.identity,
                    file_sha256: p.file_sha256,
                    record: p.record,
                    line: p.line,
                    raw_sha256: p.raw_sha256,
                    canonical_sha256: p.canonical_sha256,
                    txn_key: p.txn_key,
                    run_id: ctx.run_id.0,
                    step: ctx.step_name.clone(),
                    attempt: ctx.attempt as i32,
                    transform_version: p.transform_version,
                };
                let hash = link.hash(&prev);
                push_link(&mut buf, &link, &prev, &hash);
                prev = hash;
                written += 1;
            }
            let mut copy = conn.copy_in_raw("COPY audit.lineage FROM STDIN").await.retryable("start COPY")?;
            copy.send(buf.into_bytes()).await.retryable("COPY lineage")?;
            copy.finish().await.retryable("finish COPY")?;
        }
        Ok(written)
    }
}

fn push_link(buf: &mut String, l: &Link, prev: &str, hash: &str) {
    use std::fmt::Write;
    let _ = write!(buf, "{}\t", l.business_date);
    text(buf, &l.feed);
    let _ = write!(buf, "\t{}\t", l.seq);
    text(buf, &l.identity);
    let _ = write!(
        buf,
        "\t{}\t{}\t{}\t{}\t{}\t\\\\x{}\t{}\t",
        l.file_sha256,
        l.record,
        l.line,
        l.raw_sha256,
        l.canonical_sha256,
        hex::encode(&l.txn_key),
        l.run_id
    );
    text(buf, &l.step);
    let _ = writeln!(buf, "\t{}\t{}\t{prev}\t{hash}", l.attempt, l.transform_version);
}

#[typetag::serde(name = "etl.load")]
#[async_trait]
impl Step for Load {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let pool = ctx.resource::<PgPool>()?;
        let (date, feed) = (self.job.date, &self.job.feed.name);
        crate::refresh_statistics(pool, "etl.rejects, warehouse.dim_account, audit.lineage").await?;
        let mut tx = pool.begin().await.retryable("begin")?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('etl.load/' || $1::text || '/' || $2, 0))")
            .bind(date)
            .bind(feed)
            .execute(&mut *tx)
            .await
            .retryable("lock the chain")?;
        crate::bulk_plans(&mut tx).await?;
        sqlx::query(ACCOUNTS_SQL).bind(date).bind(feed).execute(&mut *tx).await.retryable("accounts")?;
        let facts = sqlx::query(FACTS_SQL)
            .bind(date)
            .bind(feed)
            .bind(self.job.feed.kind == FeedKind::EndOfDay)
            .execute(&mut *tx)
            .await
            .retryable("transactions")?
            .rows_affected();
        let balances = sqlx::query(BALANCES_SQL)
            .bind(date)
            .bind(feed)
            .execute(&mut *tx)
            .await
            .retryable("balances")?
            .rows_affected();
        let lineage = self.lineage(&mut tx, ctx).await?;
        let output = json!({ "warehouse_rows_written": facts, "balances": balances, "lineage_rows": lineage });
        let done = ctx.complete_in(&mut *tx, output).await?;
        tx.commit().await.retryable("commit")?;
        Ok(done)
    }
}
