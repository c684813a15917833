//! Output: readable tables and `--json`, written to any `io::Write`, from
//! data only (the clock is passed in), so snapshots are stable.

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets};
use serde::Serialize;
use std::io::{self, Write};
use workflow_core::StepState;
use workflow_core::registry::WorkflowEntry;
use workflow_core::store::{EventInfo, RunInfo, StepInfo, WorkerInfo};

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_string()));
    t
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()).unwrap_or_else(|| "-".into())
}

fn dur_ms(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

fn span(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<i64> {
    Some((b? - a?).num_milliseconds())
}

fn short(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n - 1).collect::<String>())
    }
}

/// Writes a table without the padding comfy-table leaves at line ends.
fn write_table(out: &mut dyn Write, t: &Table) -> io::Result<()> {
    for line in t.to_string().lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn json<T: Serialize + ?Sized>(out: &mut dyn Write, v: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)
}

/// `wf runs list`.
pub fn runs(out: &mut dyn Write, runs: &[RunInfo], as_json: bool) -> io::Result<()> {
    if as_json {
        return json(out, runs);
    }
    let mut t = table(&["RUN", "WORKFLOW", "STATUS", "STEPS", "CORRELATION", "CREATED", "DURATION"]);
    for r in runs {
        let total: i64 = r.step_counts.values().sum();
        let done =
            r.step_counts.get("succeeded").copied().unwrap_or(0) + r.step_counts.get("skipped").copied().unwrap_or(0);
        t.add_row(vec![
            r.id.to_string(),
            r.workflow.clone(),
            r.status.to_string(),
            format!("{done}/{total}"),
            short(&r.correlation_id, 36),
            time(Some(r.created_at)),
            dur_ms(span(r.started_at.or(Some(r.created_at)), r.finished_at)),
        ]);
    }
    write_table(out, &t)
}

/// A step as `wf run show` presents it.
#[derive(Debug, Serialize)]
pub struct StepView<'a> {
    #[serde(flatten)]
    step: &'a StepInfo,
    /// Set for a ready step that no live worker can claim.
    waiting_for: Option<String>,
}

/// `wf run show` as JSON.
#[derive(Debug, Serialize)]
struct RunView<'a> {
    #[serde(flatten)]
    run: &'a RunInfo,
    late: bool,
    steps: Vec<StepView<'a>>,
}

/// Why a ready step may not be picked up: no live worker has its type (or queue).
pub fn waiting_for(step: &StepInfo, workers: &[WorkerInfo], now: DateTime<Utc>) -> Option<String> {
    if step.status != StepState::Ready || step.available_at > now {
        return None;
    }
    let live = |w: &&WorkerInfo| {
        w.stopped_at.is_none() && w.last_seen_at.is_some_and(|t| now - t < chrono::Duration::seconds(60))
    };
    let can =
        workers.iter().filter(live).any(|w| w.step_types.contains(&step.step_type) && w.queues.contains(&step.queue));
    (!can).then(|| format!("no live worker runs step type {} on queue {}", step.step_type, step.queue))
}

/// `wf run show`.
pub fn run_show(
    out: &mut dyn Write,
    run: &RunInfo,
    steps: &[StepInfo],
    workers: &[WorkerInfo],
    now: DateTime<Utc>,
    as_json: bool,
) -> io::Result<()> {
    let late = run.deadline.is_some_and(|d| run.finished_at.unwrap_or(now) > d);
    let views: Vec<StepView> =
        steps.iter().map(|s| StepView { step: s, waiting_for: waiting_for(s, workers, now) }).collect();
    if as_json {
        return json(out, &RunView { run, late, steps: views });
    }
    writeln!(out, "run          {}", run.id)?;
    writeln!(out, "workflow     {} (v{})", run.workflow, run.workflow_version)?;
    writeln!(out, "status       {}", run.status)?;
    writeln!(out, "correlation  {}", run.correlation_id)?;
    if let Some(k) = &run.idempotency_key {
        writeln!(out, "idempotency  {k}")?;
    }
    let params: Vec<String> = run.params.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
    writeln!(out, "params       {}", if params.is_empty() { "-".into() } else { params.join(" ") })?;
    writeln!(out, "created      {} by {}", time(Some(run.created_at)), run.created_by)?;
    writeln!(out, "started      {}", time(run.started_at))?;
    writeln!(out, "finished     {}", time(run.finished_at))?;
    writeln!(
        out,
        "duration     {}",
        dur_ms(span(run.started_at.or(Some(run.created_at)), run.finished_at.or(Some(now))))
    )?;
    if let Some(d) = run.deadline {
        writeln!(out, "deadline     {}{}", time(Some(d)), if late { "  LATE" } else { "" })?;
    }
    writeln!(out)?;
    let mut t =
        table(&["STEP", "STATUS", "ATTEMPTS", "WORKER", "LEASE EXPIRES", "STARTED", "FINISHED", "DURATION", "NOTE"]);
    for v in &views {
        let s = v.step;
        let note = v.waiting_for.clone().or_else(|| s.last_error.as_deref().map(|e| short(e, 60))).unwrap_or_default();
        t.add_row(vec![
            s.name.clone(),
            s.status.to_string(),
            format!("{}/{}", s.attempts, s.max_attempts),
            s.worker_id.map(|w| w.to_string()[..8].to_owned()).unwrap_or_else(|| "-".into()),
            time(s.lease_expires_at),
            time(s.started_at),
            time(s.finished_at),
            dur_ms(span(s.started_at, s.finished_at)),
            note,
        ]);
    }
    write_table(out, &t)
}

/// `wf run history`.
pub fn history(out: &mut dyn Write, events: &[EventInfo], as_json: bool) -> io::Result<()> {
    if as_json {
        return json(out, events);
    }
    let mut t = table(&["TIME", "STEP", "EVENT", "STATUS", "ATTEMPT", "WORKER", "TOKEN", "DURATION", "DETAIL"]);
    for e in events {
        let from = e.from_status.map(|s| format!("{s} -> ")).unwrap_or_default();
        let mut detail = Vec::new();
        if let Some(err) = &e.error {
            detail.push(short(err, 60));
        }
        if let Some(a) = &e.actor {
            detail.push(format!("by {a}"));
        }
        if let Some(r) = &e.reason {
            detail.push(format!("reason: {}", short(r, 60)));
        }
        t.add_row(vec![
            time(Some(e.at)),
            e.step.clone(),
            e.event.clone(),
            format!("{from}{}", e.to_status),
            e.attempt.to_string(),
            e.worker_id.map(|w| w.to_string()[..8].to_owned()).unwrap_or_else(|| "-".into()),
            e.lease_token.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            dur_ms(e.duration_ms),
            detail.join("; "),
        ]);
    }
    write_table(out, &t)
}

/// `wf workflows list`.
pub fn workflows<'a>(
    out: &mut dyn Write,
    entries: impl Iterator<Item = &'a WorkflowEntry>,
    as_json: bool,
) -> io::Result<()> {
    #[derive(Serialize)]
    struct Row<'a> {
        name: &'a str,
        description: &'a str,
        params: Vec<serde_json::Value>,
    }
    let rows: Vec<Row> = entries
        .map(|e| Row {
            name: &e.name,
            description: &e.description,
            params: e.params.iter().map(|(k, v)| serde_json::json!({"name": k, "meaning": v})).collect(),
        })
        .collect();
    if as_json {
        return json(out, &rows);
    }
    let mut t = table(&["WORKFLOW", "DESCRIPTION", "PARAMETERS"]);
    for r in &rows {
        let params: Vec<&str> = r.params.iter().filter_map(|p| p["name"].as_str()).collect();
        t.add_row(vec![r.name.to_owned(), r.description.to_owned(), params.join(", ")]);
    }
    write_table(out, &t)
}

/// `wf workers list`.
pub fn workers(out: &mut dyn Write, workers: &[WorkerInfo], now: DateTime<Utc>, as_json: bool) -> io::Result<()> {
    if as_json {
        return json(out, workers);
    }
    let mut t = table(&["WORKER", "HOST", "PID", "STATE", "LAST SEEN", "QUEUES", "CONCURRENCY", "STEP TYPES"]);
    for w in workers {
        let state = match (w.stopped_at, w.last_seen_at) {
            (Some(_), _) => "stopped",
            (None, Some(t)) if now - t < chrono::Duration::seconds(60) => "live",
            _ => "gone",
        };
        t.add_row(vec![
            w.id.to_string(),
            w.host.clone(),
            w.pid.to_string(),
            state.into(),
            time(w.last_seen_at),
            w.queues.join(","),
            w.concurrency.to_string(),
            w.step_types.join(", "),
        ]);
    }
    write_table(out, &t)
}
