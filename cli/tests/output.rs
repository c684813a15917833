//! Snapshots of every table and JSON output, from fixed data (clock and ids
//! injected), plus the clap definition and help text.

use chrono::{DateTime, TimeZone, Utc};
use clap::CommandFactory;
use std::collections::BTreeMap;
use uuid::Uuid;
use wf_cli::render;
use workflow_core::store::{EventInfo, RunInfo, StepInfo, WorkerInfo};
use workflow_core::{Params, RunId, RunState, StepId, StepState, WorkerId};

fn t(sec: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap() + chrono::Duration::milliseconds(i64::from(sec) * 250)
}

fn run_id() -> RunId {
    RunId(Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888))
}

fn worker_id() -> WorkerId {
    WorkerId(Uuid::from_u128(0xaaaa_bbbb_cccc_dddd_eeee_ffff_0000_1111))
}

fn run() -> RunInfo {
    RunInfo {
        id: run_id(),
        workflow: "daily_transactions".into(),
        workflow_version: 1,
        status: RunState::Failed,
        correlation_id: "nightly-2026-11-24".into(),
        idempotency_key: Some("2026-11-24".into()),
        params: Params::parse(["date=2026-11-24"]).unwrap(),
        created_by: "ops".into(),
        created_at: t(0),
        started_at: Some(t(1)),
        finished_at: Some(t(40)),
        deadline: Some(t(30)),
        step_counts: BTreeMap::from([("succeeded".into(), 2), ("failed".into(), 1), ("ready".into(), 1)]),
    }
}

fn steps() -> Vec<StepInfo> {
    let base = StepInfo {
        id: StepId(1),
        name: "land".into(),
        step_type: "etl.land".into(),
        queue: "default".into(),
        status: StepState::Succeeded,
        attempts: 1,
        max_attempts: 3,
        worker_id: Some(worker_id()),
        lease_expires_at: None,
        available_at: t(0),
        started_at: Some(t(1)),
        finished_at: Some(t(5)),
        last_error: None,
        after: vec![],
    };
    vec![
        base.clone(),
        StepInfo {
            id: StepId(2),
            name: "parse".into(),
            step_type: "etl.parse".into(),
            status: StepState::Failed,
            attempts: 3,
            started_at: Some(t(6)),
            finished_at: Some(t(9)),
            last_error: Some("file is not MT940: no :20: tag in the first 4 KiB".into()),
            after: vec!["land".into()],
            ..base.clone()
        },
        StepInfo {
            id: StepId(3),
            name: "report".into(),
            step_type: "etl.report".into(),
            queue: "reports".into(),
            status: StepState::Ready,
            attempts: 0,
            worker_id: None,
            started_at: None,
            finished_at: None,
            after: vec!["parse".into()],
            ..base
        },
    ]
}

fn workers() -> Vec<WorkerInfo> {
    vec![WorkerInfo {
        id: worker_id(),
        host: "etl-1".into(),
        pid: 4242,
        queues: vec!["default".into()],
        step_types: vec!["etl.land".into(), "etl.parse".into()],
        concurrency: 8,
        started_at: Some(t(0)),
        last_seen_at: Some(t(40)),
        stopped_at: None,
    }]
}

fn events() -> Vec<EventInfo> {
    let e = |id, step: &str, event: &str, from, to, attempt, err: Option<&str>, actor: Option<&str>| EventInfo {
        id,
        step: step.into(),
        event: event.into(),
        from_status: from,
        to_status: to,
        at: t(id as u32),
        attempt,
        worker_id: (attempt > 0).then(worker_id),
        lease_token: (attempt > 0).then_some(i64::from(attempt)),
        duration_ms: err.map(|_| 1250),
        error: err.map(str::to_owned),
        actor: actor.map(str::to_owned),
        reason: actor.map(|_| "feed re-delivered".to_owned()),
    };
    use StepState as S;
    vec![
        e(1, "parse", "created", None, S::Blocked, 0, None, None),
        e(2, "parse", "deps_met", Some(S::Blocked), S::Ready, 0, None, None),
        e(3, "parse", "claimed", Some(S::Ready), S::Running, 1, None, None),
        e(4, "parse", "failed", Some(S::Running), S::Failed, 1, Some("not MT940"), None),
        e(5, "parse", "resumed", Some(S::Failed), S::Ready, 1, None, Some("ops")),
    ]
}

fn text(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    f(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn runs_list() {
    insta::assert_snapshot!(text(|o| render::runs(o, &[run()], false)));
    insta::assert_snapshot!(text(|o| render::runs(o, &[run()], true)));
}

#[test]
fn run_show_explains_a_step_nobody_can_claim() {
    let out = text(|o| render::run_show(o, &run(), &steps(), &workers(), t(44), false));
    assert!(out.contains("no live worker runs step type etl.report on queue reports"));
    insta::assert_snapshot!(out);
    insta::assert_snapshot!(text(|o| render::run_show(o, &run(), &steps(), &workers(), t(44), true)));
}

#[test]
fn run_history() {
    insta::assert_snapshot!(text(|o| render::history(o, &events(), false)));
    insta::assert_snapshot!(text(|o| render::history(o, &events(), true)));
}

#[test]
fn workers_and_workflows() {
    insta::assert_snapshot!(text(|o| render::workers(o, &workers(), t(44), false)));
    insta::assert_snapshot!(text(|o| render::workers(o, &workers(), t(44), true)));
    let registry = wf_cli::builtin_registry();
    insta::assert_snapshot!(text(|o| render::workflows(o, registry.workflows(), false)));
}

#[test]
fn clap_definition_is_consistent_and_help_is_stable() {
    wf_cli::args::Cli::command().debug_assert();
    let mut cmd = wf_cli::args::Cli::command();
    insta::assert_snapshot!(cmd.render_help().to_string());
    let mut run = wf_cli::args::Cli::command();
    let start = run.find_subcommand_mut("run").unwrap().find_subcommand_mut("start").unwrap();
    insta::assert_snapshot!(start.render_help().to_string());
}

#[test]
fn since_accepts_times_and_durations() {
    let now = t(0);
    assert_eq!(wf_cli::commands::parse_since("2h", now).unwrap(), now - chrono::Duration::hours(2));
    assert_eq!(wf_cli::commands::parse_since("2026-11-24T00:00:00Z", now).unwrap(), t(0) - chrono::Duration::hours(2));
    assert!(wf_cli::commands::parse_since("yesterday-ish", now).is_err());
}
