//! The `report` step, run once every feed's branch has ended (whatever the
//! outcome): per feed, loaded / quarantined counts and whether the branch
//! failed, written to `etl.daily_report` with each chain's head; it seals
//! every chain of the day (`audit.seals`) and outputs the report as JSON,
//! with the day's audit head (sha256 over the feeds' heads).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use workflow_core::{ResultExt, Step, StepContext, StepError, StepOutcome, async_trait};

use crate::audit::GENESIS;

/// Reports on every feed of the day and seals their chains.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Business date.
    pub date: NaiveDate,
    /// The feeds of the run.
    pub feeds: Vec<String>,
}

/// One feed's line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedLine {
    /// Feed name.
    pub feed: String,
    /// `loaded` or `failed` (its branch did not finish).
    pub status: String,
    /// Source records with lineage for the day (loaded).
    pub loaded: i64,
    /// Records quarantined for the day (parse and validate rejects).
    pub quarantined: i64,
    /// Head of the feed's chain for the day.
    pub audit_head: String,
}

#[typetag::serde(name = "etl.report")]
#[async_trait]
impl Step for Report {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let pool = ctx.resource::<PgPool>()?;
        let mut tx = pool.begin().await.retryable("begin")?;
        let mut lines = Vec::new();
        let mut day = Sha256::new();
        for feed in &self.feeds {
            // A load that did not succeed has no output (absent or null).
            let failed = ctx.upstream(&format!("{feed}.load")).map_or(true, |v| v.is_null());
            let (loaded, head): (i64, Option<String>) = sqlx::query_as(
                "SELECT count(*), (SELECT hash FROM audit.lineage WHERE business_date = $1 AND feed = $2
                                   ORDER BY seq DESC LIMIT 1)
                 FROM audit.lineage WHERE business_date = $1 AND feed = $2",
            )
            .bind(self.date)
            .bind(feed)
            .fetch_one(&mut *tx)
            .await
            .retryable("count lineage")?;
            let (quarantined,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM etl.rejects WHERE business_date = $1 AND feed = $2")
                    .bind(self.date)
                    .bind(feed)
                    .fetch_one(&mut *tx)
                    .await
                    .retryable("count rejects")?;
            let head = head.unwrap_or_else(|| GENESIS.to_owned());
            if loaded > 0 {
                sqlx::query(
                    "INSERT INTO audit.seals (business_date, feed, rows, head_hash, run_id) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT DO NOTHING",
                )
                .bind(self.date)
                .bind(feed)
                .bind(loaded)
                .bind(&head)
                .bind(ctx.run_id.0)
                .execute(&mut *tx)
                .await
                .retryable("seal")?;
            }
            let status = if failed { "failed" } else { "loaded" };
            sqlx::query(
                "INSERT INTO etl.daily_report (run_id, business_date, feed, status, loaded, quarantined, audit_head)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (run_id, feed) DO UPDATE SET status = excluded.status, loaded = excluded.loaded,
                     quarantined = excluded.quarantined, audit_head = excluded.audit_head, reported_at = now()",
            )
            .bind(ctx.run_id.0)
            .bind(self.date)
            .bind(feed)
            .bind(status)
            .bind(loaded)
            .bind(quarantined)
            .bind(&head)
            .execute(&mut *tx)
            .await
            .retryable("report row")?;
            day.update(format!("{feed}:{head}\n"));
            lines.push(FeedLine { feed: feed.clone(), status: status.into(), loaded, quarantined, audit_head: head });
        }
        let failed: Vec<&str> = lines.iter().filter(|l| l.status == "failed").map(|l| l.feed.as_str()).collect();
        let output = json!({
            "date": self.date,
            "feeds": lines,
            "failed_feeds": failed,
            "audit_head": hex::encode(day.finalize()),
        });
        let done = ctx.complete_in(&mut *tx, output).await?;
        tx.commit().await.retryable("commit")?;
        Ok(done)
    }
}
