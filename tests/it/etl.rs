//! The daily transactions ETL end to end: exact counts on generated days,
//! re-runs, tampering, a failed feed, a crash inside a parse step, and the
//! real sample files.

use crate::support::{db_url, migrate, start_run, start_worker, stderr, wait_run, wf};
use chrono::NaiveDate;
use pipelines::generate::{GenSpec, Manifest, generate};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::time::Duration;
use workflow_core::{RunState, Store};
use workflow_pg::PgStore;

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
}

/// A fresh landing directory, removed when dropped.
struct Landing(PathBuf);

impl Landing {
    fn new(name: &str) -> Landing {
        let dir = std::env::temp_dir().join(format!("wf-it-etl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Landing(dir)
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn day(dir: &Path, records: u64, seed: u64) -> Manifest {
    let spec = GenSpec { date: date(), records, malformed_rate: 0.04, duplicate_rate: 0.03, seed };
    generate(&spec, dir).unwrap()
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn per_feed(pool: &PgPool, sql: &'static str) -> Vec<(String, i64)> {
    sqlx::query_as(sql).fetch_all(pool).await.unwrap()
}

/// Warehouse, rejects and lineage agree with the manifest, exactly.
async fn assert_counts(pool: &PgPool, m: &Manifest) {
    let t = m.total();
    let facts =
        per_feed(pool, "SELECT source_system, count(*) FROM warehouse.fact_transaction GROUP BY 1 ORDER BY 1").await;
    let expected: Vec<(String, i64)> = m.feeds.iter().map(|(f, c)| (f.clone(), c.valid as i64)).collect();
    assert_eq!(facts, expected, "warehouse rows per feed = valid records");
    let parse = count(pool, "SELECT count(*) FROM etl.rejects WHERE stage = 'parse'").await;
    let validate = count(pool, "SELECT count(*) FROM etl.rejects WHERE stage = 'validate'").await;
    assert_eq!((parse, validate), (t.unparseable as i64, t.invalid as i64), "rejects = unparseable + invalid");
    let no_reason = count(pool, "SELECT count(*) FROM etl.rejects WHERE reason = ''").await;
    assert_eq!(no_reason, 0);
    assert_eq!(
        count(pool, "SELECT count(*) FROM audit.lineage").await,
        t.valid as i64,
        "one lineage row per loaded record"
    );
    let orphans = count(
        pool,
        "SELECT count(*) FROM warehouse.fact_transaction f WHERE NOT EXISTS (SELECT 1 FROM audit.lineage l WHERE l.txn_key = f.txn_key)",
    )
    .await;
    assert_eq!(orphans, 0, "every warehouse row has lineage");
    let chains = pipelines::audit::verify(pool, Some(date())).await.unwrap();
    assert_eq!(chains.len(), m.feeds.len());
    assert!(chains.iter().all(|c| c.broken.is_none() && c.sealed.is_some()), "{chains:?}");
}

#[sqlx::test(migrations = false)]
async fn generated_day_loads_exact_counts_and_a_rerun_loads_nothing_twice(pool: PgPool) {
    let url = db_url(&pool).await;
    let landing = Landing::new("counts");
    let m = day(&landing.0, 3_000, 5);
    let registry = wf_cli::builtin_registry();
    let (_, run, status) = wf_cli::etl::run_day(&url, &registry, date(), &landing.0, 2).await.unwrap();
    assert_eq!(status, RunState::Succeeded);
    assert_counts(&pool, &m).await;
    let report: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT feed, status, loaded, quarantined FROM etl.daily_report WHERE run_id = $1 ORDER BY feed",
    )
    .bind(run.0)
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<(String, String, i64, i64)> = m
        .feeds
        .iter()
        .map(|(f, c)| (f.clone(), "loaded".into(), c.valid as i64, (c.unparseable + c.invalid) as i64))
        .collect();
    assert_eq!(report, expected);
    let heads = count(&pool, "SELECT count(*) FROM etl.daily_report WHERE audit_head ~ '^[0-9a-f]{64}$'").await;
    assert_eq!(heads, 5);

    // The same date again, with the same files: nothing new anywhere.
    let (_, again, status) = wf_cli::etl::run_day(&url, &registry, date(), &landing.0, 2).await.unwrap();
    assert_eq!(status, RunState::Succeeded);
    assert_ne!(run, again);
    assert_counts(&pool, &m).await;
    let files = count(&pool, "SELECT count(*) FROM etl.landed_files").await;
    assert_eq!(files, 10, "five main files and five re-deliveries, each landed once");
    let seals = count(&pool, "SELECT count(*) FROM audit.seals").await;
    assert_eq!(seals, 5, "an unchanged chain is not sealed twice");
}

#[sqlx::test(migrations = false)]
async fn audit_lineage_refuses_changes_and_verify_names_a_tampered_link(pool: PgPool) {
    let url = db_url(&pool).await;
    let landing = Landing::new("tamper");
    day(&landing.0, 1_000, 11);
    let registry = wf_cli::builtin_registry();
    let (_, _, status) = wf_cli::etl::run_day(&url, &registry, date(), &landing.0, 1).await.unwrap();
    assert_eq!(status, RunState::Succeeded);
    let ok = wf(Some(&url), &["audit", "verify", "--date", "2026-11-24"]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    for sql in [
        "UPDATE audit.lineage SET record = record + 1 WHERE feed = 'camt' AND seq = 7",
        "DELETE FROM audit.lineage WHERE feed = 'camt' AND seq = 7",
        "TRUNCATE audit.lineage",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }

    // A superuser lifts the guard and edits one row, and drops a chain's tail.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(
        "SET session_replication_role = replica;
         UPDATE audit.lineage SET record = record + 1 WHERE feed = 'camt' AND seq = 7;
         DELETE FROM audit.lineage WHERE feed = 'swift' AND seq = (SELECT max(seq) FROM audit.lineage WHERE feed = 'swift');
         SET session_replication_role = origin;",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    let chains = pipelines::audit::verify(&pool, Some(date())).await.unwrap();
    let broken: Vec<(&str, &str)> =
        chains.iter().filter_map(|c| Some((c.feed.as_str(), c.broken.as_deref()?))).collect();
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(
        broken[0].0 == "camt" && broken[0].1.contains("camt seq 7") && broken[0].1.contains("altered"),
        "{broken:?}"
    );
    assert!(broken[1].0 == "swift" && broken[1].1.contains("tail missing"), "{broken:?}");
    let bad = wf(Some(&url), &["audit", "verify"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("2026-11-24 camt seq 7"), "{}", stderr(&bad));
}

#[sqlx::test(migrations = false)]
async fn failed_feed_does_not_block_other_feeds(pool: PgPool) {
    let url = db_url(&pool).await;
    let landing = Landing::new("isolation");
    let m = day(&landing.0, 1_500, 3);
    std::fs::write(landing.0.join("ach-extra.ach"), "this is not an ACH file at all\n").unwrap();
    let registry = wf_cli::builtin_registry();
    let (store, run, status) = wf_cli::etl::run_day(&url, &registry, date(), &landing.0, 2).await.unwrap();
    assert_eq!(status, RunState::Failed, "a failed branch fails the run");
    let steps = store.steps_list(run).await.unwrap();
    let state = |name: &str| steps.iter().find(|s| s.name == name).map(|s| s.status.to_string()).unwrap();
    assert_eq!(state("report"), "succeeded");
    assert_eq!(state("ach.load"), "upstream_failed");
    let report: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT feed, status, loaded FROM etl.daily_report WHERE run_id = $1 ORDER BY feed")
            .bind(run.0)
            .fetch_all(&pool)
            .await
            .unwrap();
    for (feed, status, loaded) in report {
        if feed == "ach" {
            assert_eq!((status.as_str(), loaded), ("failed", 0));
        } else {
            assert_eq!((status.as_str(), loaded), ("loaded", m.feeds[&feed].valid as i64), "{feed}");
        }
    }
    let ach = count(&pool, "SELECT count(*) FROM warehouse.fact_transaction WHERE source_system = 'ach'").await;
    assert_eq!(ach, 0);
}

#[sqlx::test(migrations = false)]
async fn crash_inside_a_parse_step_then_resume_loads_nothing_twice(pool: PgPool) {
    let url = db_url(&pool).await;
    migrate(&pool).await;
    let landing = Landing::new("crash");
    let m = day(&landing.0, 2_000, 21);
    let store = PgStore::new(pool.clone());
    let landing_param = format!("landing={}", landing.0.display());
    let run = start_run(&store, "daily_transactions", &["date=2026-11-24", &landing_param]).await;

    // A worker process dies inside its first parse chunk, rows written but not committed.
    let url2 = url.clone();
    let crashed = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wf"))
            .args(["worker", "--lease-ttl", "2s", "--concurrency", "1"])
            .env("DATABASE_URL", &url2)
            .env(pipelines::parse::ABORT_IN_PARSE, "1")
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(60), crashed).await.expect("the worker crashed").unwrap();
    assert!(!out.status.success(), "the worker aborted");
    let staged = count(&pool, "SELECT count(*) FROM etl.staging").await;
    assert_eq!(staged, 0, "nothing of the crashed chunk was committed");

    let worker =
        start_worker(&url, wf_cli::builtin_registry(), crate::support::config(2, Duration::from_secs(2))).await;
    let status = wait_run(&store, run, Duration::from_secs(120)).await;
    worker.stop().await;
    assert_eq!(status, RunState::Succeeded);
    let retried: i64 =
        sqlx::query_scalar("SELECT count(*) FROM wf.steps WHERE run_id = $1 AND name LIKE '%.parse/%' AND attempt > 1")
            .bind(run.0)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(retried >= 1, "the crashed chunk ran again");
    assert_counts(&pool, &m).await;
    let dupes = count(
        &pool,
        "SELECT count(*) FROM (SELECT file_sha256, record FROM etl.staging GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .await;
    assert_eq!(dupes, 0);
}

/// Copies the sample files of `format` whose names pass `keep` into the
/// landing directory as `<prefix>-<name>`.
fn land_samples(dir: &Path, format: &str, prefix: &str, keep: impl Fn(&str) -> bool) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/feeds/tests/fixtures").join(format);
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name != "SOURCES.md" && keep(&name) {
            std::fs::copy(&path, dir.join(format!("{prefix}-{name}"))).unwrap();
        }
    }
}

#[sqlx::test(migrations = false)]
async fn real_samples_reach_the_warehouse_or_quarantine_with_a_reason(pool: PgPool) {
    let url = db_url(&pool).await;
    let landing = Landing::new("samples");
    let dir = &landing.0;
    land_samples(dir, "mt940", "mt940", |n| !n.ends_with(".mt942") && n != "invalid_statement.sta");
    land_samples(dir, "mt940", "mt942", |n| n.ends_with(".mt942"));
    land_samples(dir, "mt940", "bad", |n| n == "invalid_statement.sta");
    land_samples(dir, "camt", "camt053", |n| n.starts_with("camt053"));
    land_samples(dir, "camt", "camt05x", |n| !n.starts_with("camt053"));
    land_samples(dir, "nacha", "ach", |_| true);
    land_samples(dir, "bai2", "bai2", |_| true);
    land_samples(dir, "csv", "csv", |_| true);
    // The samples span 2007-2024: a wide window lets each keep its own dates.
    let mut config = String::from("[window]\ndays_before = 9000\ndays_after = 30\n");
    let feed = |name: &str, format: &str, pattern: &str, kind: &str| {
        format!("\n[[feed]]\nname = \"{name}\"\nformat = \"{format}\"\npattern = \"{pattern}\"\nkind = \"{kind}\"\n")
    };
    config += &feed("swift", "mt940", "mt940-*", "end_of_day");
    config += &feed("swift_intraday", "mt940", "mt942-*", "intraday");
    config += &feed("swift_bad", "mt940", "bad-*", "end_of_day");
    config += &feed("camt", "camt", "camt053-*", "end_of_day");
    config += &feed("camt_intraday", "camt", "camt05x-*", "intraday");
    config += &feed("ach", "nacha", "ach-*", "end_of_day");
    config += &feed("bai2", "bai2", "bai2-*", "end_of_day");
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/feeds/profiles");
    for p in ["capitalone", "mint", "n26-fr", "schwab-checking", "sparkasse", "stripe-all"] {
        config += &feed(&format!("csv_{p}"), "csv", &format!("csv-{p}.csv"), "end_of_day");
        config += &format!("profile = \"{}\"\n", profiles.join(format!("{p}.toml")).display());
    }
    std::fs::write(dir.join("feeds.toml"), &config).unwrap();
    let cfg = pipelines::config::FeedsConfig::load(&dir.join("feeds.toml")).unwrap();

    let registry = wf_cli::builtin_registry();
    let (_, run, status) = wf_cli::etl::run_day(&url, &registry, date(), dir, 2).await.unwrap();
    assert_eq!(status, RunState::Failed, "swift_bad holds a file that is not MT940 at all");
    let report: Vec<(String, String)> =
        sqlx::query_as("SELECT feed, status FROM etl.daily_report WHERE run_id = $1 ORDER BY feed")
            .bind(run.0)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(report.len(), cfg.feeds.len());
    for (feed, status) in &report {
        assert_eq!(status, if feed == "swift_bad" { "failed" } else { "loaded" }, "{feed}");
    }

    // Every readable transaction of every sample is staged under its identity,
    // every unreadable one is a parse reject of its file.
    let mut transactions = 0;
    for spec in cfg.feeds.iter().filter(|f| f.name != "swift_bad") {
        for path in pipelines::land::feed_files(dir, &spec.pattern).unwrap() {
            let sha = pipelines::feeds::file_sha256(&path).unwrap();
            let mut occurrences = std::collections::HashMap::new();
            let mut rejects = 0i64;
            for item in pipelines::feeds::open(&path, Some(spec.format), spec.profile.as_ref()).unwrap() {
                match item.unwrap() {
                    pipelines::feeds::Item::Transaction(tx) => {
                        let occ = occurrences.entry(tx.provenance.raw_sha256.clone()).or_insert(0u32);
                        *occ += 1;
                        let occ = if tx.reference.as_deref().is_some_and(|r| !r.trim().is_empty()) { 0 } else { *occ };
                        let id = pipelines::parse::identity(&tx, occ);
                        let staged: i64 = sqlx::query_scalar(
                            "SELECT count(*) FROM etl.staging WHERE business_date = $1 AND feed = $2 AND identity = $3",
                        )
                        .bind(date())
                        .bind(&spec.name)
                        .bind(&id)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                        assert_eq!(staged, 1, "{} {id}", path.display());
                        transactions += 1;
                    }
                    pipelines::feeds::Item::Reject(_) => rejects += 1,
                    _ => {}
                }
            }
            let stored: i64 =
                sqlx::query_scalar("SELECT count(*) FROM etl.rejects WHERE file_sha256 = $1 AND stage = 'parse'")
                    .bind(&sha)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            assert_eq!(stored, rejects, "{}", path.display());
        }
    }
    assert!(transactions > 250, "{transactions}");
    // ... and every staged record was loaded (with lineage and a warehouse
    // row) or quarantined by validation with a reason.
    let neither = count(
        &pool,
        "SELECT count(*) FROM etl.staging s
         WHERE NOT EXISTS (SELECT 1 FROM audit.lineage l JOIN warehouse.fact_transaction f USING (txn_key)
                           WHERE l.business_date = s.business_date AND l.feed = s.feed AND l.identity = s.identity)
           AND NOT EXISTS (SELECT 1 FROM etl.rejects r WHERE r.file_sha256 = s.file_sha256 AND r.record = s.record
                           AND r.stage = 'validate' AND r.subject = 'record' AND r.reason <> '')",
    )
    .await;
    assert_eq!(neither, 0);
    let loaded = count(&pool, "SELECT count(DISTINCT source_system) FROM warehouse.fact_transaction").await;
    assert!(loaded >= 10, "most sample feeds reach the warehouse: {loaded}");
    let chains = pipelines::audit::verify(&pool, None).await.unwrap();
    assert!(chains.iter().all(|c| c.broken.is_none()), "{chains:?}");
}

#[sqlx::test(migrations = false)]
async fn intraday_report_never_double_counts_the_end_of_day_statement(pool: PgPool) {
    let url = db_url(&pool).await;
    let landing = Landing::new("intraday");
    let dir = &landing.0;
    let m = day(dir, 1_000, 8);
    // An MT942 carrying three transactions the end-of-day MT940 also carries.
    let eod = std::fs::read_to_string(dir.join("swift.sta")).unwrap();
    let lines: Vec<&str> = eod.lines().collect();
    let account = lines.iter().find(|l| l.starts_with(":25:")).unwrap();
    let mut body = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with(":61:") && l.contains("//V") && body.len() < 6 {
            body.push(l.to_string());
            body.push(lines[i + 1].to_string());
        }
    }
    let mt942 = format!(":20:INTRA1\n{account}\n:28C:1/1\n:34F:EURC0,\n:13D:2611241200+0100\n{}\n-\n", body.join("\n"));
    std::fs::write(dir.join("intraday-1.mt942"), mt942).unwrap();
    let mut config = std::fs::read_to_string(dir.join("feeds.toml")).unwrap();
    config +=
        "\n[[feed]]\nname = \"swift_intraday\"\nformat = \"mt940\"\npattern = \"intraday-*\"\nkind = \"intraday\"\n";
    std::fs::write(dir.join("feeds.toml"), config).unwrap();

    let registry = wf_cli::builtin_registry();
    let (_, _, status) = wf_cli::etl::run_day(&url, &registry, date(), dir, 2).await.unwrap();
    assert_eq!(status, RunState::Succeeded);
    let facts = count(&pool, "SELECT count(*) FROM warehouse.fact_transaction").await;
    assert_eq!(facts, m.total().valid as i64, "no transaction counted twice");
    let intraday =
        count(&pool, "SELECT count(*) FROM warehouse.fact_transaction WHERE source_system = 'swift_intraday'").await;
    assert_eq!(intraday, 0, "the end-of-day statement is the book of record");
    let shared = count(
        &pool,
        "SELECT count(*) FROM audit.lineage l JOIN warehouse.fact_transaction f USING (txn_key)
         WHERE l.feed = 'swift_intraday' AND f.source_system = 'swift'",
    )
    .await;
    assert_eq!(shared, 3, "both source records keep their lineage, pointing at the one warehouse row");
}

#[sqlx::test(migrations = false)]
async fn a_statement_that_does_not_balance_is_quarantined_with_its_reason(pool: PgPool) {
    let url = db_url(&pool).await;
    let landing = Landing::new("balance");
    let spec = GenSpec { date: date(), records: 500, malformed_rate: 0.0, duplicate_rate: 0.0, seed: 2 };
    let m = generate(&spec, &landing.0).unwrap();
    let path = landing.0.join("swift.sta");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen(":60F:C261124EUR10000000,00", ":60F:C261124EUR10000000,01", 1)).unwrap();
    let registry = wf_cli::builtin_registry();
    let (_, _, status) = wf_cli::etl::run_day(&url, &registry, date(), &landing.0, 1).await.unwrap();
    assert_eq!(status, RunState::Succeeded);
    let flagged: Vec<(String, String)> =
        sqlx::query_as("SELECT feed, reason FROM etl.rejects WHERE subject = 'statement' AND stage = 'validate'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0].0, "swift");
    assert!(flagged[0].1.contains("opening 1000000001"), "{}", flagged[0].1);
    let facts = count(&pool, "SELECT count(*) FROM warehouse.fact_transaction").await;
    assert_eq!(facts, m.total().valid as i64, "the entries themselves are valid and loaded");
}
