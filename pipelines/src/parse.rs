//! The `parse` step and its chunks: one child per file, or per chunk of
//! about [`CHUNK_RECORDS`] records for large files. Each chunk streams its
//! file through the parser, COPYs its records into a temporary table and
//! inserts them into `etl.staging` keyed on record identity (so a re-run
//! inserts nothing twice), writes rejects to `etl.rejects` (stage `parse`)
//! and, for the last chunk, statement balances to `etl.statements`, all in
//! the transaction that completes the step.

use std::collections::HashMap;
use std::path::Path;

use feeds::{Direction, Item, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;
use workflow_core::{ChildStep, ResultExt, Step, StepContext, StepError, StepOutcome, async_trait};

use crate::land::LandedFile;
use crate::workflow::Job;

/// Records per chunk, about.
pub const CHUNK_RECORDS: u64 = 250_000;
/// Bytes per record ordinal assumed when sizing chunks (typical of each
/// format: MT940 counts each tag field, camt each `Ntry`, NACHA each
/// 94-character record).
fn bytes_per_record(format: feeds::Format) -> u64 {
    match format {
        feeds::Format::Mt940 => 40,
        feeds::Format::Camt => 330,
        feeds::Format::Nacha => 95,
        feeds::Format::Bai2 => 65,
        feeds::Format::Csv => 80,
    }
}
/// Environment variable that makes a parse chunk abort the whole process
/// after writing its rows and before committing them (recovery tests).
pub const ABORT_IN_PARSE: &str = "WF_ETL_ABORT_IN_PARSE";
/// Size of one COPY buffer.
const COPY_BUFFER: usize = 1 << 20;

/// Fans out into one [`ParseChunk`] per file or chunk of a file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parse {
    /// The branch.
    pub job: Job,
}

#[typetag::serde(name = "etl.parse")]
#[async_trait]
impl Step for Parse {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let landed = ctx.upstream(&self.job.step("land"))?;
        let files: Vec<LandedFile> = serde_json::from_value(landed["files"].clone()).permanent("land output")?;
        let mut children = Vec::new();
        for (i, file) in files.into_iter().enumerate() {
            let chunks = file.bytes.div_ceil(CHUNK_RECORDS * bytes_per_record(self.job.feed.format)).max(1);
            for c in 0..chunks {
                let last = (c + 1 < chunks).then_some((c + 1) * CHUNK_RECORDS);
                children.push(ChildStep {
                    name: format!("f{i:03}c{c:03}"),
                    step: Box::new(ParseChunk {
                        job: self.job.clone(),
                        file: file.clone(),
                        first: c * CHUNK_RECORDS + 1,
                        last,
                    }),
                });
            }
        }
        if children.is_empty() {
            return Ok(StepOutcome::output(json!({ "files": 0 })));
        }
        Ok(StepOutcome::Expand(children))
    }
}

/// Parses records `first..=last` (to the end when `last` is `None`) of one file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseChunk {
    /// The branch.
    pub job: Job,
    /// The file.
    pub file: LandedFile,
    /// First record ordinal (1-based).
    pub first: u64,
    /// Last record ordinal, or `None` for the rest of the file.
    pub last: Option<u64>,
}

/// What the parsing thread hands back besides the COPY stream.
#[derive(Default)]
struct Parsed {
    records: u64,
    rejects: Vec<(i64, i64, String)>,
    statements: Vec<StatementRow>,
}

struct StatementRow {
    index: i32,
    account: Option<String>,
    currency: Option<String>,
    opening: Option<i64>,
    closing: Option<i64>,
    closing_date: Option<chrono::NaiveDate>,
    entries: i64,
}

/// Appends one COPY text field (`\N` for none).
fn field(buf: &mut String, v: Option<&str>) {
    match v {
        None => buf.push_str("\\N"),
        Some(s) => copy_escape(buf, s),
    }
}

/// Appends `s` escaped for COPY's text format.
pub(crate) fn copy_escape(buf: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '\\' => buf.push_str("\\\\"),
            '\t' => buf.push_str("\\t"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            c => buf.push(c),
        }
    }
}

/// The staging identity of a transaction: its reference (with account and
/// amount, so a reference reused for another payment stays distinct), else
/// the raw hash plus its occurrence index in the file.
pub fn identity(tx: &Transaction, occurrence: u32) -> String {
    match tx.reference.as_deref().filter(|r| !r.trim().is_empty()) {
        Some(r) => format!(
            "ref:{}|{}|{}{}{}",
            tx.account.as_deref().unwrap_or(""),
            r.trim(),
            dir(tx.direction),
            tx.amount.minor,
            tx.amount.currency
        ),
        None => format!("raw:{}#{occurrence}", tx.provenance.raw_sha256),
    }
}

fn dir(d: Direction) -> &'static str {
    match d {
        Direction::Credit => "C",
        Direction::Debit => "D",
    }
}

impl ParseChunk {
    fn in_range(&self, record: u64) -> bool {
        record >= self.first && self.last.is_none_or(|l| record <= l)
    }

    /// Streams the file on a blocking thread, sending COPY buffers.
    fn parse_blocking(&self, out: mpsc::Sender<String>) -> Result<Parsed, StepError> {
        let path = Path::new(&self.file.path);
        let sha = feeds::file_sha256(path).permanent(&format!("unreadable file {}", self.file.name))?;
        if sha != self.file.sha256 {
            return Err(StepError::Permanent(format!("landed file {} changed after landing", self.file.name)));
        }
        let feed = feeds::open(path, Some(self.job.feed.format), self.job.feed.profile.as_ref())
            .permanent(&format!("unreadable file {}", self.file.name))?;
        let prefix = format!("{}\t{}\t", self.job.date, self.job.feed.name);
        let mut occurrences: HashMap<String, u32> = HashMap::new();
        let mut parsed = Parsed::default();
        let mut buf = String::with_capacity(COPY_BUFFER + 4096);
        for item in feed {
            let item = item.permanent(&format!("unreadable file {}", self.file.name))?;
            match item {
                Item::Transaction(tx) => {
                    let occ = if tx.reference.as_deref().is_none_or(|r| r.trim().is_empty()) {
                        let n = occurrences.entry(tx.provenance.raw_sha256.clone()).or_insert(0);
                        *n += 1;
                        *n
                    } else {
                        0
                    };
                    if self.last.is_some_and(|l| tx.provenance.record > l) {
                        break;
                    }
                    if !self.in_range(tx.provenance.record) {
                        continue;
                    }
                    parsed.records += 1;
                    self.row(&mut buf, &prefix, &tx, occ);
                    if buf.len() >= COPY_BUFFER && out.blocking_send(std::mem::take(&mut buf)).is_err() {
                        return Err(StepError::Retryable("COPY writer stopped".into()));
                    }
                }
                Item::Reject(r) if self.in_range(r.record) => {
                    parsed.rejects.push((r.record as i64, r.line as i64, r.reason));
                }
                Item::Statement(s) if self.last.is_none() => parsed.statements.push(StatementRow {
                    index: s.index as i32,
                    account: s.account.clone(),
                    currency: s.currency.map(|c| c.code().to_owned()),
                    opening: s.opening.as_ref().map(|b| b.amount.minor),
                    closing: s.closing.as_ref().map(|b| b.amount.minor),
                    closing_date: s.closing.as_ref().and_then(|b| b.date),
                    entries: s.entries as i64,
                }),
                _ => {}
            }
        }
        if !buf.is_empty() && out.blocking_send(buf).is_err() {
            return Err(StepError::Retryable("COPY writer stopped".into()));
        }
        Ok(parsed)
    }

    fn row(&self, buf: &mut String, prefix: &str, tx: &Transaction, occ: u32) {
        use std::fmt::Write;
        buf.push_str(prefix);
        field(buf, Some(&identity(tx, occ)));
        let p = &tx.provenance;
        let _ = write!(
            buf,
            "\t{}\t{}\t{}\t{}\t{}\t{}\t",
            self.file.sha256,
            p.record,
            p.line,
            tx.statement,
            p.raw_sha256,
            self.job.feed.kind.as_str()
        );
        field(buf, tx.account.as_deref());
        let _ = write!(buf, "\t\\N\t{}\t{}\t{}\t", dir(tx.direction), tx.amount.minor, tx.amount.currency);
        let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string());
        field(buf, date(tx.booking_date).as_deref());
        buf.push('\t');
        field(buf, date(tx.value_date).as_deref());
        buf.push('\t');
        field(buf, tx.counterparty.name.as_deref());
        buf.push('\t');
        field(buf, tx.reference.as_deref());
        buf.push('\t');
        field(buf, tx.description.as_deref());
        buf.push('\n');
    }

    async fn write_rest(&self, conn: &mut PgConnection, parsed: &Parsed) -> Result<u64, StepError> {
        let staged = sqlx::query("INSERT INTO etl.staging SELECT * FROM stage_in ON CONFLICT DO NOTHING")
            .execute(&mut *conn)
            .await
            .retryable("insert staging")?
            .rows_affected();
        let (records, lines, reasons): (Vec<i64>, Vec<i64>, Vec<String>) =
            parsed.rejects.iter().cloned().fold(Default::default(), |mut acc, (r, l, why)| {
                acc.0.push(r);
                acc.1.push(l);
                acc.2.push(why);
                acc
            });
        sqlx::query(
            "INSERT INTO etl.rejects (business_date, feed, file_sha256, file_name, record, line, stage, reason)
             SELECT $1, $2, $3, $4, r, l, 'parse', why FROM unnest($5::bigint[], $6::bigint[], $7::text[]) AS u(r, l, why)
             ON CONFLICT DO NOTHING",
        )
        .bind(self.job.date)
        .bind(&self.job.feed.name)
        .bind(&self.file.sha256)
        .bind(&self.file.name)
        .bind(&records)
        .bind(&lines)
        .bind(&reasons)
        .execute(&mut *conn)
        .await
        .retryable("insert rejects")?;
        for s in &parsed.statements {
            sqlx::query(
                "INSERT INTO etl.statements (business_date, feed, file_sha256, statement, kind, account, currency,
                     opening_minor, closing_minor, closing_date, entries)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
            )
            .bind(self.job.date)
            .bind(&self.job.feed.name)
            .bind(&self.file.sha256)
            .bind(s.index)
            .bind(self.job.feed.kind.as_str())
            .bind(&s.account)
            .bind(&s.currency)
            .bind(s.opening)
            .bind(s.closing)
            .bind(s.closing_date)
            .bind(s.entries)
            .execute(&mut *conn)
            .await
            .retryable("insert statement")?;
        }
        Ok(staged)
    }
}

#[typetag::serde(name = "etl.parse_chunk")]
#[async_trait]
impl Step for ParseChunk {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let pool = ctx.resource::<PgPool>()?;
        let mut tx = pool.begin().await.retryable("begin")?;
        sqlx::query("CREATE TEMP TABLE stage_in (LIKE etl.staging) ON COMMIT DROP")
            .execute(&mut *tx)
            .await
            .retryable("temp table")?;
        let (send, mut recv) = mpsc::channel::<String>(4);
        let me = ParseChunk { job: self.job.clone(), file: self.file.clone(), first: self.first, last: self.last };
        let parser = tokio::task::spawn_blocking(move || me.parse_blocking(send));
        let mut copy = tx.copy_in_raw("COPY stage_in FROM STDIN").await.retryable("start COPY")?;
        while let Some(buf) = recv.recv().await {
            if ctx.cancel.is_cancelled() {
                return Err(StepError::Retryable("cancelled".into()));
            }
            copy.send(buf.into_bytes()).await.retryable("COPY")?;
        }
        let parsed = parser.await.retryable("parse task")?;
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                let _ = copy.abort("parse failed").await;
                return Err(e);
            }
        };
        copy.finish().await.retryable("finish COPY")?;
        let staged = self.write_rest(&mut tx, &parsed).await?;
        if std::env::var_os(ABORT_IN_PARSE).is_some() {
            // Fault injection for recovery tests: die like a killed worker,
            // with the chunk's rows written but not committed.
            std::process::abort();
        }
        let output = json!({
            "file": self.file.name, "records": parsed.records, "staged": staged, "rejects": parsed.rejects.len(),
        });
        let done = ctx.complete_in(&mut *tx, output).await?;
        tx.commit().await.retryable("commit")?;
        Ok(done)
    }
}
