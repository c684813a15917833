//! Runs the example's own `wf` end to end: migrate, a worker process, a
//! run started with `--wait`, and the report step's output.

use std::process::{Command, Stdio};

fn url_of(pool_db: &str) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL must point at the test server");
    let (head, query) =
        base.split_once('?').map(|(h, q)| (h.to_owned(), format!("?{q}"))).unwrap_or((base.clone(), String::new()));
    let root = head.rsplit_once('/').map(|(r, _)| r.to_owned()).unwrap_or(head);
    format!("{root}/{pool_db}{query}")
}

fn hello(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hello-wf")).args(args).env("DATABASE_URL", url).output().expect("run hello-wf")
}

#[sqlx::test(migrations = false)]
async fn hello_workflow_runs_end_to_end(pool: sqlx::PgPool) {
    let (db,): (String,) = sqlx::query_as("SELECT current_database()").fetch_one(&pool).await.unwrap();
    let url = url_of(&db);
    assert!(hello(&url, &["migrate"]).status.success());
    let mut worker = Command::new(env!("CARGO_BIN_EXE_hello-wf"))
        .args(["worker", "--concurrency", "2"])
        .env("DATABASE_URL", &url)
        .stderr(Stdio::null())
        .spawn()
        .expect("worker");
    let url2 = url.clone();
    let started = tokio::task::spawn_blocking(move || {
        hello(&url2, &["run", "start", "hello", "-p", "city=Oslo", "--wait", "--json"])
    })
    .await
    .unwrap();
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let id: serde_json::Value = serde_json::from_slice(&started.stdout).unwrap();
    let (report,): (serde_json::Value,) =
        sqlx::query_as("SELECT output FROM wf.steps WHERE run_id = $1::uuid AND name = 'report'")
            .bind(id["id"].as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(report["report"], "It is 12 °C in Oslo.");
    let listed = hello(&url, &["workflows", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("hello"));
}
