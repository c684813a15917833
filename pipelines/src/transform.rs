//! The `transform` and `validate` steps, set-based SQL over one feed and
//! business date. Transform makes canonical rows from staging (warehouse
//! key, canonical hash, transform version); validate checks currency,
//! amount, dates and statement balances, and quarantines failures in
//! `etl.rejects` (stage `validate`) with their reason and identity; load
//! skips those identities. Both insert with `ON CONFLICT DO NOTHING`, so
//! re-running them changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use std::sync::OnceLock;
use workflow_core::{ResultExt, Step, StepContext, StepError, StepOutcome, async_trait};

use crate::workflow::{Job, TRANSFORM_VERSION};

/// Makes canonical rows from staging.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    /// The branch.
    pub job: Job,
}

/// The warehouse key (`txn_key`) is the sha256 of the canonical identity:
/// for referenced records account, reference, direction, amount and
/// currency, whatever the feed, so an intraday report and the end-of-day
/// statement of one transaction share a key; otherwise the feed and the
/// staging identity (raw hash and occurrence).
const TRANSFORM_SQL: &str = "
INSERT INTO etl.canonical (business_date, feed, identity, transform_version, txn_key, canonical_sha256)
SELECT s.business_date, s.feed, s.identity, $3,
       sha256(convert_to(CASE WHEN s.identity LIKE 'ref:%'
                 THEN concat_ws('|', 'ref', coalesce(s.account, ''), s.reference, s.direction, s.amount_minor, s.currency)
                 ELSE concat_ws('|', 'raw', s.feed, s.identity) END, 'UTF8')),
       encode(sha256(convert_to(concat_ws('|', coalesce(s.account, ''), s.direction, s.amount_minor, s.currency,
                 coalesce(s.booking_date::text, ''), coalesce(s.value_date::text, ''), coalesce(s.counterparty, ''),
                 coalesce(s.reference, ''), coalesce(s.description, '')), 'UTF8')), 'hex')
FROM etl.staging s
WHERE s.business_date = $1 AND s.feed = $2
ON CONFLICT DO NOTHING";

#[typetag::serde(name = "etl.transform")]
#[async_trait]
impl Step for Transform {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let pool = ctx.resource::<PgPool>()?;
        crate::refresh_statistics(pool, "etl.staging").await?;
        let n = sqlx::query(TRANSFORM_SQL)
            .bind(self.job.date)
            .bind(&self.job.feed.name)
            .bind(TRANSFORM_VERSION)
            .execute(pool)
            .await
            .retryable("transform")?
            .rows_affected();
        Ok(StepOutcome::output(json!({ "canonical": n, "transform_version": TRANSFORM_VERSION })))
    }
}

/// Checks canonical rows and quarantines failures.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validate {
    /// The branch.
    pub job: Job,
}

/// Every ISO 4217 code the parsers know.
pub fn iso_currencies() -> &'static [String] {
    static CODES: OnceLock<Vec<String>> = OnceLock::new();
    CODES.get_or_init(|| {
        let letters = b'A'..=b'Z';
        letters
            .clone()
            .flat_map(|a| letters.clone().flat_map(move |b| (b'A'..=b'Z').map(move |c| [a, b, c])))
            .filter_map(|code| feeds::Currency::from_code(std::str::from_utf8(&code).ok()?))
            .map(|c| c.code().to_owned())
            .collect()
    })
}

const CHECK_SQL: &str = "
INSERT INTO etl.rejects (business_date, feed, file_sha256, file_name, record, line, stage, identity, reason)
SELECT $1, $2, k.file_sha256, f.name, k.record, k.line, 'validate', k.identity, k.reason
FROM (
SELECT c.identity, s.file_sha256, s.record, s.line,
       CASE WHEN NOT (s.currency = ANY($3)) THEN 'currency ' || s.currency || ' is not ISO 4217'
            WHEN s.amount_minor = 0 THEN 'amount is zero'
            WHEN s.amount_minor < 0 THEN 'amount is negative'
            WHEN coalesce(s.value_date, s.booking_date) IS NULL THEN 'no booking or value date'
            WHEN coalesce(s.value_date, s.booking_date) NOT BETWEEN $4 AND $5
                THEN 'date ' || coalesce(s.value_date, s.booking_date) || ' outside the business window ' || $4 || '..' || $5
            WHEN s.booking_date IS NOT NULL AND s.booking_date NOT BETWEEN $4 AND $5
                THEN 'booking date ' || s.booking_date || ' outside the business window ' || $4 || '..' || $5
       END AS reason
FROM etl.canonical c JOIN etl.staging s USING (business_date, feed, identity)
WHERE c.business_date = $1 AND c.feed = $2
) k JOIN etl.landed_files f ON f.sha256 = k.file_sha256
WHERE k.reason IS NOT NULL
ON CONFLICT DO NOTHING";

/// Statements whose entries were all staged but whose opening balance plus
/// entries is not the closing balance. Statements with unreadable entries
/// cannot be checked (the parse rejects say why).
const BALANCE_SQL: &str = "
WITH sums AS (
    SELECT file_sha256, statement, count(*) AS n,
           sum(CASE direction WHEN 'C' THEN amount_minor ELSE -amount_minor END) AS sum_minor
    FROM etl.staging WHERE business_date = $1 AND feed = $2
    GROUP BY file_sha256, statement
)
INSERT INTO etl.rejects (business_date, feed, file_sha256, file_name, record, line, stage, subject, reason)
SELECT st.business_date, st.feed, st.file_sha256, f.name, st.statement, 0, 'validate', 'statement',
       format('statement %s: opening %s + entries %s <> closing %s', st.statement, st.opening_minor, t.sum_minor, st.closing_minor)
FROM etl.statements st
JOIN etl.landed_files f ON f.sha256 = st.file_sha256
JOIN sums t ON t.file_sha256 = st.file_sha256 AND t.statement = st.statement
WHERE st.business_date = $1 AND st.feed = $2 AND st.opening_minor IS NOT NULL AND st.closing_minor IS NOT NULL
  AND t.n = st.entries AND st.opening_minor + t.sum_minor <> st.closing_minor
ON CONFLICT DO NOTHING";

#[typetag::serde(name = "etl.validate")]
#[async_trait]
impl Step for Validate {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let pool = ctx.resource::<PgPool>()?;
        let (lo, hi) = self.job.window.bounds(self.job.date);
        crate::refresh_statistics(pool, "etl.canonical").await?;
        let mut tx = pool.begin().await.retryable("begin")?;
        crate::bulk_plans(&mut tx).await?;
        let quarantined = sqlx::query(CHECK_SQL)
            .bind(self.job.date)
            .bind(&self.job.feed.name)
            .bind(iso_currencies())
            .bind(lo)
            .bind(hi)
            .execute(&mut *tx)
            .await
            .retryable("validate")?
            .rows_affected();
        let statements = sqlx::query(BALANCE_SQL)
            .bind(self.job.date)
            .bind(&self.job.feed.name)
            .execute(&mut *tx)
            .await
            .retryable("balance checks")?
            .rows_affected();
        let output = json!({ "quarantined": quarantined, "statement_failures": statements });
        let done = ctx.complete_in(&mut *tx, output).await?;
        tx.commit().await.retryable("commit")?;
        Ok(done)
    }
}
