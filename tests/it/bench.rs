//! `wf bench engine` end to end at a small size: every row it prints keeps
//! the guarantees its figures are quoted with.

use crate::support::{stderr, stdout, wf_async};

#[tokio::test]
async fn the_engine_benchmark_reports_rows_that_keep_the_guarantees() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL must point at the test server");
    // 1 process only, quick (concurrency 32), one scale row, 20 latency samples.
    let args = [
        "bench",
        "engine",
        "--json",
        "--quick",
        "--only",
        "1 proc",
        "--steps",
        "2000",
        "--txn-steps",
        "300",
        "--baseline-secs",
        "1",
        "--scale-max",
        "10000",
        "--latency-samples",
        "20",
        "--no-recovery",
    ];
    let o = wf_async(&url, &args).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON report");
    let rows = r["rows"].as_array().expect("rows");
    let names: Vec<&str> = rows.iter().map(|row| row["scenario"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "1-step no-op, 1 proc x 32",
            "4-step chain no-op, 1 proc x 32",
            "1-step transactional, 1 proc x 32",
            "4-step chain transactional, 1 proc x 32",
            "1-step no-op, 4 proc x 32, 10000 waiting + 10000 finished",
        ]
    );
    for row in rows {
        let name = row["scenario"].as_str().unwrap();
        let want_steps = if name.contains("transactional") { 300 } else { 2000 };
        assert_eq!(row["steps"], want_steps, "{name}");
        assert_eq!(row["duplicate_completions"], 0, "{name}");
        // created, claimed, succeeded per step; a chain's first step is
        // created ready, the other three blocked and then promoted.
        let events = if name.contains("chain") { 3.75 } else { 3.0 };
        assert_eq!(row["events_per_step"].as_f64(), Some(events), "{name}");
        assert!(row["steps_per_s"].as_f64().unwrap() > 0.0, "{name}");
        assert!(row["baseline_tps"].as_f64().unwrap() > 0.0, "{name}");
    }
    // One baseline run right before every row.
    assert_eq!(r["baseline_runs_tps"].as_array().map(Vec::len), Some(rows.len()));
    let (p50, p99) = (r["pickup_p50_ms"].as_f64().unwrap(), r["pickup_p99_ms"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "pickup p50 {p50} p99 {p99}");
    let (n50, n99) = (r["floor_p50_ms"].as_f64().unwrap(), r["floor_p99_ms"].as_f64().unwrap());
    assert!(n50 > 0.0 && n50 <= n99, "floor p50 {n50} p99 {n99}");
    assert!(r["recovery_s"].is_null());
}
