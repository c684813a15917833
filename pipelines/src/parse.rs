//! The `parse` step and its chunks.
//!
//! `parse` reads each of the feed's files once, on a blocking thread, and
//! writes its records into spool files of at most `chunk_records` (250,000 by
//! default) record ordinals each (under `<landing>/.spool/<run>/`, already in COPY text
//! form, with the chunk's rejects and, in the last chunk, the statements),
//! then fans out one [`ParseChunk`] per spool file. Each chunk COPYs its
//! spool into a temporary table and inserts it into `etl.staging` keyed on
//! record identity (so a re-run inserts nothing twice), writes rejects to
//! `etl.rejects` (stage `parse`) and statement balances to
//! `etl.statements`, all in the transaction that completes the step, then
//! deletes its spool file.
//!
//! A spool file is a cache, not a source of truth: a chunk whose spool is
//! missing or does not match its recorded sha256 (or a fan-out made where
//! the spool directory cannot be written) parses its range of ordinals
//! from the landed file instead, which gives the same rows.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use feeds::{Direction, Item, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;
use workflow_core::{ChildStep, ResultExt, Step, StepContext, StepError, StepOutcome, async_trait};

use crate::land::LandedFile;
use crate::workflow::Job;

/// Bytes per record ordinal assumed when sizing chunks without a spool
/// (typical of each format: MT940 counts each tag field, camt each `Ntry`,
/// NACHA each 94-character record).
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
            let dir =
                Path::new(&file.path).parent().unwrap_or(Path::new(".")).join(".spool").join(ctx.run_id.to_string());
            let job = self.job.clone();
            let cancel = ctx.cancel.clone();
            let chunks = tokio::task::spawn_blocking(move || spool_file(&job, file, &dir, &cancel))
                .await
                .retryable("spool task")??;
            for (c, chunk) in chunks.into_iter().enumerate() {
                children.push(ChildStep { name: format!("f{i:03}c{c:03}"), step: Box::new(chunk) });
            }
        }
        if children.is_empty() {
            return Ok(StepOutcome::output(json!({ "files": 0 })));
        }
        Ok(StepOutcome::Expand(children))
    }
}

/// A chunk's records, already parsed, in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spool {
    /// Absolute path of the spool file.
    pub path: String,
    /// sha256 of its content, hex.
    pub sha256: String,
    /// Staging rows in it.
    pub rows: u64,
}

/// Parses records `first..=last` (to the end when `last` is `None`) of one
/// file, from its spool when it has one.
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
    /// The chunk's records, parsed by the fan-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<Spool>,
}

/// What the parsing thread hands back besides the COPY stream.
#[derive(Default)]
struct Parsed {
    /// Read from the chunk's spool rather than from the landed file.
    from_spool: bool,
    records: u64,
    rejects: Vec<RejectRow>,
    statements: Vec<StatementRow>,
}

#[derive(Serialize, Deserialize)]
struct RejectRow {
    record: i64,
    line: i64,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct StatementRow {
    index: i32,
    account: Option<String>,
    currency: Option<String>,
    opening: Option<i64>,
    closing: Option<i64>,
    closing_date: Option<chrono::NaiveDate>,
    entries: i64,
}

impl StatementRow {
    fn of(s: &feeds::Statement) -> Self {
        StatementRow {
            index: s.index as i32,
            account: s.account.clone(),
            currency: s.currency.map(|c| c.code().to_owned()),
            opening: s.opening.as_ref().map(|b| b.amount.minor),
            closing: s.closing.as_ref().map(|b| b.amount.minor),
            closing_date: s.closing.as_ref().and_then(|b| b.date),
            entries: s.entries as i64,
        }
    }
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

/// Counts each reference-less record's occurrences of its raw hash so far
/// in the file (keyed on the first 128 bits of the hash: 20-odd bytes per
/// distinct record instead of a 64-character string).
#[derive(Default)]
struct Occurrences(HashMap<u128, u32>);

impl Occurrences {
    fn next(&mut self, tx: &Transaction) -> u32 {
        if tx.reference.as_deref().is_some_and(|r| !r.trim().is_empty()) {
            return 0;
        }
        let raw = &tx.provenance.raw_sha256;
        let key = raw.get(..32).and_then(|h| u128::from_str_radix(h, 16).ok()).unwrap_or(0);
        let n = self.0.entry(key).or_insert(0);
        *n += 1;
        *n
    }
}

/// Opens the landed file for parsing after checking it is still what was landed.
fn open_landed(job: &Job, file: &LandedFile) -> Result<feeds::Feed, StepError> {
    let path = Path::new(&file.path);
    let sha = feeds::file_sha256(path).permanent(&format!("unreadable file {}", file.name))?;
    if sha != file.sha256 {
        return Err(StepError::Permanent(format!("landed file {} changed after landing", file.name)));
    }
    feeds::open(path, Some(job.feed.format), job.feed.profile.as_ref())
        .permanent(&format!("unreadable file {}", file.name))
}

/// Appends a transaction's staging row, in COPY text form.
fn staging_row(buf: &mut String, prefix: &str, job: &Job, file: &LandedFile, tx: &Transaction, occ: u32) {
    use std::fmt::Write;
    buf.push_str(prefix);
    field(buf, Some(&identity(tx, occ)));
    let p = &tx.provenance;
    let _ = write!(
        buf,
        "\t{}\t{}\t{}\t{}\t{}\t{}\t",
        file.sha256,
        p.record,
        p.line,
        tx.statement,
        p.raw_sha256,
        job.feed.kind.as_str()
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

fn row_prefix(job: &Job) -> String {
    format!("{}\t{}\t", job.date, job.feed.name)
}

/// One spool file being written: lines `T\t<staging row>`, `R\t<reject
/// json>`, `S\t<statement json>`.
struct SpoolWriter {
    path: PathBuf,
    out: BufWriter<File>,
    hash: Sha256,
    rows: u64,
    first: u64,
}

impl SpoolWriter {
    fn put(&mut self, tag: &str, line: &str) -> std::io::Result<()> {
        for part in [tag.as_bytes(), b"\t", line.as_bytes()] {
            self.hash.update(part);
            self.out.write_all(part)?;
        }
        Ok(())
    }
}

/// Parses one landed file once into spool files of `job.chunk_records`
/// ordinals each and returns their chunks. Where the spool directory
/// cannot be written, returns chunks sized from the file's bytes that
/// will parse their own ranges.
fn spool_file(
    job: &Job,
    file: LandedFile,
    dir: &Path,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Vec<ParseChunk>, StepError> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "no spool directory: each chunk will parse its own range");
        let size = job.chunk_records;
        let chunks = file.bytes.div_ceil(size * bytes_per_record(job.feed.format)).max(1);
        return Ok((0..chunks)
            .map(|c| ParseChunk {
                job: job.clone(),
                file: file.clone(),
                first: c * size + 1,
                last: (c + 1 < chunks).then_some((c + 1) * size),
                spool: None,
            })
            .collect());
    }
    let feed = open_landed(job, &file)?;
    let io = |e: std::io::Error| StepError::Retryable(format!("writing the spool in {}: {e}", dir.display()));
    let stem = &file.sha256[..16];
    let mut writers: Vec<SpoolWriter> = Vec::new();
    let mut occurrences = Occurrences::default();
    let mut statements = Vec::new();
    let prefix = row_prefix(job);
    let mut line = String::with_capacity(1024);
    for item in feed {
        let item = item.permanent(&format!("unreadable file {}", file.name))?;
        line.clear();
        let (record, tag) = match item {
            Item::Transaction(tx) => {
                let occ = occurrences.next(&tx);
                staging_row(&mut line, &prefix, job, &file, &tx, occ);
                (tx.provenance.record, "T")
            }
            Item::Reject(r) => {
                let row = RejectRow { record: r.record as i64, line: r.line as i64, reason: r.reason };
                line.push_str(&serde_json::to_string(&row).permanent("reject")?);
                line.push('\n');
                (r.record, "R")
            }
            Item::Statement(s) => {
                statements.push(StatementRow::of(&s));
                continue;
            }
            Item::Finding(_) => continue,
        };
        let c = (record.max(1) - 1) / job.chunk_records;
        while writers.len() as u64 <= c {
            if cancel.is_cancelled() {
                return Err(StepError::Retryable("cancelled".into()));
            }
            let n = writers.len() as u64;
            let path = dir.join(format!("{stem}.c{n:04}.spool"));
            let out = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io)?);
            writers.push(SpoolWriter { path, out, hash: Sha256::new(), rows: 0, first: n * job.chunk_records + 1 });
        }
        let w = &mut writers[c as usize];
        w.rows += u64::from(tag == "T");
        w.put(tag, &line).map_err(io)?;
    }
    if writers.is_empty() {
        let path = dir.join(format!("{stem}.c0000.spool"));
        let out = BufWriter::new(File::create(&path).map_err(io)?);
        writers.push(SpoolWriter { path, out, hash: Sha256::new(), rows: 0, first: 1 });
    }
    let last = writers.last_mut().expect("at least one chunk");
    for s in &statements {
        line.clear();
        line.push_str(&serde_json::to_string(s).permanent("statement")?);
        line.push('\n');
        last.put("S", &line).map_err(io)?;
    }
    let n = writers.len();
    let mut chunks = Vec::with_capacity(n);
    for (i, mut w) in writers.into_iter().enumerate() {
        w.out.flush().map_err(io)?;
        chunks.push(ParseChunk {
            job: job.clone(),
            file: file.clone(),
            first: w.first,
            last: (i + 1 < n).then_some(w.first + job.chunk_records - 1),
            spool: Some(Spool {
                path: w.path.display().to_string(),
                sha256: hex::encode(w.hash.finalize()),
                rows: w.rows,
            }),
        });
    }
    Ok(chunks)
}

/// Sends a full COPY buffer to the writer task.
fn send(out: &mpsc::Sender<String>, buf: &mut String, force: bool) -> Result<(), StepError> {
    if (force && !buf.is_empty()) || buf.len() >= COPY_BUFFER {
        let full = std::mem::replace(buf, String::with_capacity(COPY_BUFFER + 4096));
        out.blocking_send(full).map_err(|_| StepError::Retryable("COPY writer stopped".into()))?;
    }
    Ok(())
}

impl ParseChunk {
    fn in_range(&self, record: u64) -> bool {
        record >= self.first && self.last.is_none_or(|l| record <= l)
    }

    /// Streams the chunk's rows on a blocking thread, sending COPY buffers:
    /// from the spool when it is there, else by parsing the landed file.
    fn rows_blocking(&self, out: mpsc::Sender<String>) -> Result<Parsed, StepError> {
        match &self.spool {
            Some(spool) if Path::new(&spool.path).exists() => self.read_spool(spool, out),
            Some(spool) => {
                tracing::warn!(spool = %spool.path, "spool file missing: parsing the chunk's range of the landed file");
                self.parse_range(out)
            }
            None => self.parse_range(out),
        }
    }

    fn read_spool(&self, spool: &Spool, out: mpsc::Sender<String>) -> Result<Parsed, StepError> {
        let io = |e: std::io::Error| StepError::Retryable(format!("reading spool {}: {e}", spool.path));
        let mut input = BufReader::with_capacity(1 << 20, File::open(&spool.path).map_err(io)?);
        let mut hash = Sha256::new();
        let mut parsed = Parsed { from_spool: true, ..Parsed::default() };
        let mut buf = String::with_capacity(COPY_BUFFER + 4096);
        let mut line = Vec::with_capacity(1024);
        let damaged = |why: &str| {
            // The retry parses the landed file instead.
            let _ = std::fs::remove_file(&spool.path);
            StepError::Retryable(format!("spool {} is damaged ({why}); it was removed", spool.path))
        };
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line).map_err(io)? == 0 {
                break;
            }
            hash.update(&line);
            let text = std::str::from_utf8(&line).map_err(|_| damaged("not UTF-8"))?;
            match text.split_once('\t') {
                Some(("T", row)) => {
                    parsed.records += 1;
                    buf.push_str(row);
                    send(&out, &mut buf, false)?;
                }
                Some(("R", json)) => {
                    parsed.rejects.push(serde_json::from_str(json).map_err(|_| damaged("bad reject"))?)
                }
                Some(("S", json)) => {
                    parsed.statements.push(serde_json::from_str(json).map_err(|_| damaged("bad statement"))?)
                }
                _ => return Err(damaged("unknown line")),
            }
        }
        if hex::encode(hash.finalize()) != spool.sha256 || parsed.records != spool.rows {
            return Err(damaged("sha256 or row count differs"));
        }
        send(&out, &mut buf, true)?;
        Ok(parsed)
    }

    /// Parses the landed file from its start (occurrences count from
    /// there), keeping the records in this chunk's range.
    fn parse_range(&self, out: mpsc::Sender<String>) -> Result<Parsed, StepError> {
        let feed = open_landed(&self.job, &self.file)?;
        let prefix = row_prefix(&self.job);
        let mut occurrences = Occurrences::default();
        let mut parsed = Parsed::default();
        let mut buf = String::with_capacity(COPY_BUFFER + 4096);
        for item in feed {
            let item = item.permanent(&format!("unreadable file {}", self.file.name))?;
            match item {
                Item::Transaction(tx) => {
                    let occ = occurrences.next(&tx);
                    if self.last.is_some_and(|l| tx.provenance.record > l) {
                        break;
                    }
                    if !self.in_range(tx.provenance.record) {
                        continue;
                    }
                    parsed.records += 1;
                    staging_row(&mut buf, &prefix, &self.job, &self.file, &tx, occ);
                    send(&out, &mut buf, false)?;
                }
                Item::Reject(r) if self.in_range(r.record) => {
                    parsed.rejects.push(RejectRow { record: r.record as i64, line: r.line as i64, reason: r.reason });
                }
                Item::Statement(s) if self.last.is_none() => parsed.statements.push(StatementRow::of(&s)),
                _ => {}
            }
        }
        send(&out, &mut buf, true)?;
        Ok(parsed)
    }

    async fn write_rest(&self, conn: &mut PgConnection, parsed: &Parsed) -> Result<u64, StepError> {
        let staged = sqlx::query("INSERT INTO etl.staging SELECT * FROM stage_in ON CONFLICT DO NOTHING")
            .execute(&mut *conn)
            .await
            .retryable("insert staging")?
            .rows_affected();
        let records: Vec<i64> = parsed.rejects.iter().map(|r| r.record).collect();
        let lines: Vec<i64> = parsed.rejects.iter().map(|r| r.line).collect();
        let reasons: Vec<&str> = parsed.rejects.iter().map(|r| r.reason.as_str()).collect();
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
        let me = ParseChunk {
            job: self.job.clone(),
            file: self.file.clone(),
            first: self.first,
            last: self.last,
            spool: self.spool.clone(),
        };
        let reader = tokio::task::spawn_blocking(move || me.rows_blocking(send));
        let mut copy = tx.copy_in_raw("COPY stage_in FROM STDIN").await.retryable("start COPY")?;
        while let Some(buf) = recv.recv().await {
            if ctx.cancel.is_cancelled() {
                return Err(StepError::Retryable("cancelled".into()));
            }
            copy.send(buf.into_bytes()).await.retryable("COPY")?;
        }
        let parsed = match reader.await.retryable("parse task")? {
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
            "from_spool": parsed.from_spool,
        });
        let done = ctx.complete_in(&mut *tx, output).await?;
        tx.commit().await.retryable("commit")?;
        if let Some(spool) = &self.spool {
            // Committed: the spool has served. Best effort; the directory
            // goes with its last file.
            let _ = std::fs::remove_file(&spool.path);
            if let Some(dir) = Path::new(&spool.path).parent() {
                let _ = std::fs::remove_dir(dir);
                if let Some(spools) = dir.parent() {
                    let _ = std::fs::remove_dir(spools);
                }
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FeedsConfig;
    use crate::generate::{GenSpec, generate};

    /// Everything a chunk yields, in a comparable form.
    fn drain(
        chunk: &ParseChunk,
        via: fn(&ParseChunk, mpsc::Sender<String>) -> Result<Parsed, StepError>,
    ) -> Vec<String> {
        let (send, mut recv) = mpsc::channel(1 << 16);
        let parsed = via(chunk, send).expect("chunk reads");
        let mut out = Vec::new();
        while let Ok(buf) = recv.try_recv() {
            out.extend(buf.lines().map(|l| format!("T {l}")));
        }
        assert_eq!(out.len() as u64, parsed.records);
        out.extend(parsed.rejects.iter().map(|r| format!("R {} {} {}", r.record, r.line, r.reason)));
        out.extend(parsed.statements.iter().map(|s| format!("S {}", serde_json::to_string(s).unwrap())));
        out
    }

    #[test]
    fn spooled_chunks_give_exactly_what_parsing_each_range_gives() {
        let dir = std::env::temp_dir().join(format!("etl-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let spec = GenSpec { date, records: 6_000, malformed_rate: 0.05, duplicate_rate: 0.05, seed: 3 };
        generate(&spec, &dir).unwrap();
        let config = FeedsConfig::load(&dir.join("feeds.toml")).unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        for feed in config.feeds {
            let job = Job { date, feed, window: config.window, chunk_records: 97 };
            for path in crate::land::feed_files(&dir, &job.feed.pattern).unwrap() {
                let file = LandedFile {
                    sha256: feeds::file_sha256(&path).unwrap(),
                    name: path.file_name().unwrap().to_string_lossy().into_owned(),
                    path: path.display().to_string(),
                    bytes: std::fs::metadata(&path).unwrap().len(),
                };
                let spool_dir = dir.join(".spool").join(&job.feed.name);
                let chunks = spool_file(&job, file.clone(), &spool_dir, &cancel).unwrap();
                let big = !file.name.contains("redelivery");
                assert!(!big || chunks.len() > 3, "{}: {} chunks", file.name, chunks.len());
                let mut all_spooled = Vec::new();
                for chunk in &chunks {
                    let spooled = drain(chunk, ParseChunk::read_spool_of);
                    let parsed = drain(chunk, ParseChunk::parse_range);
                    assert_eq!(spooled, parsed, "{} records {}..{:?}", file.name, chunk.first, chunk.last);
                    all_spooled.extend(spooled);
                }
                let whole = ParseChunk { job: job.clone(), file: file.clone(), first: 1, last: None, spool: None };
                let mut whole = drain(&whole, ParseChunk::parse_range);
                whole.sort();
                all_spooled.sort();
                assert_eq!(all_spooled, whole, "{}: the chunks together are the whole file", file.name);

                // A damaged spool is refused (and removed, so the retry parses the file).
                let spool = chunks[0].spool.clone().unwrap();
                std::fs::write(&spool.path, b"T\tnot what was written\n").unwrap();
                let (send, _recv) = mpsc::channel(1 << 16);
                let err = chunks[0].read_spool(&spool, send).err().expect("damage is noticed");
                assert!(err.to_string().contains("damaged"), "{err}");
                assert!(!Path::new(&spool.path).exists());
                assert_eq!(drain(&chunks[0], ParseChunk::rows_blocking), drain(&chunks[0], ParseChunk::parse_range));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    impl ParseChunk {
        fn read_spool_of(&self, out: mpsc::Sender<String>) -> Result<Parsed, StepError> {
            self.read_spool(self.spool.as_ref().expect("a spooled chunk"), out)
        }
    }
}
