//! The conformance suite every [`Store`] must pass, written once against the
//! trait. Step definitions here are plain JSON: stores never run steps.
//!
//! Each `check_*` function panics with a message on a violation; a store's
//! test crate calls each from its own test with a fresh, empty store.

use crate::ids::{Lease, RunId, WorkerId};
use crate::retry::RetryPolicy;
use crate::state::{RunState, StepEvent, StepState, transition};
use crate::store::*;
use crate::workflow::{Params, Trigger};
use serde_json::json;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(60);

/// A plan step of type `test.<kind>` with no backoff and `attempts` attempts.
pub fn plan_step(name: &str, kind: &str, after: &[&str], trigger: Trigger, attempts: u32) -> NewStep {
    NewStep {
        name: name.to_owned(),
        step_type: format!("test.{kind}"),
        definition: json!({ "type": format!("test.{kind}") }),
        after: after.iter().map(|s| (*s).to_owned()).collect(),
        trigger,
        queue: crate::step::DEFAULT_QUEUE.to_owned(),
        retry: RetryPolicy::attempts(attempts).with_backoff(Duration::ZERO, Duration::ZERO),
    }
}

/// A run of `steps` for workflow `test`.
pub fn plan(steps: Vec<NewStep>) -> RunInsert {
    RunInsert {
        workflow: "test".into(),
        version: 1,
        params: Params::default(),
        correlation_id: None,
        idempotency_key: None,
        deadline: None,
        created_by: "tester".into(),
        steps,
    }
}

/// Claims up to `n` steps of the given kinds.
pub async fn claim<S: Store>(store: &S, worker: WorkerId, kinds: &[&str], n: u32, ttl: Duration) -> Vec<ClaimedStep> {
    store
        .steps_claim(StepsClaim {
            worker,
            queues: vec![crate::step::DEFAULT_QUEUE.into()],
            step_types: kinds.iter().map(|k| format!("test.{k}")).collect(),
            limit: n,
            lease_ttl: ttl,
        })
        .await
        .expect("claim")
}

/// Completes one lease with output `v`; true when accepted.
pub async fn complete<S: Store>(store: &S, worker: WorkerId, lease: Lease, v: serde_json::Value) -> bool {
    let r = store
        .steps_complete(StepsComplete {
            worker,
            items: vec![StepCompletion { lease, completion: Completion::Output(v) }],
            notify_above: 0,
            claim: None,
        })
        .await
        .expect("complete");
    !r.completed.is_empty()
}

/// The status of step `name` of `run`.
pub async fn status<S: Store>(store: &S, run: RunId, name: &str) -> StepState {
    store
        .steps_list(run)
        .await
        .expect("steps")
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name}"))
        .status
}

fn op(run: RunId, step: Option<&str>, reason: Option<&str>) -> OperatorAction {
    OperatorAction { run, step: step.map(str::to_owned), actor: "tester".into(), reason: reason.map(str::to_owned) }
}

/// The run's status must follow from its steps' statuses.
pub async fn check_run_consistent<S: Store>(store: &S, run: RunId) {
    let steps = store.steps_list(run).await.expect("steps");
    let remaining = steps.iter().filter(|s| !s.status.is_terminal()).count();
    let failed = steps.iter().filter(|s| matches!(s.status, StepState::Failed | StepState::UpstreamFailed)).count();
    let cancelled = steps.iter().any(|s| s.status == StepState::Cancelled);
    let info = store.run_get(run).await.expect("run");
    let expected = match (remaining, cancelled, failed) {
        (1.., _, _) => RunState::Running,
        (0, true, _) => RunState::Cancelled,
        (0, false, 1..) => RunState::Failed,
        (0, false, 0) => RunState::Succeeded,
    };
    assert_eq!(info.status, expected, "run status disagrees with its steps: {steps:#?}");
    assert_eq!(info.finished_at.is_some(), expected != RunState::Running, "finished_at follows the status");
}

/// A chain and a fan-in complete in order; the run succeeds; the history
/// has created, deps_met, claimed and succeeded events.
pub async fn check_happy_path<S: Store>(store: &S) {
    let w = WorkerId::new();
    let run = store
        .run_insert(plan(vec![
            plan_step("a", "x", &[], Trigger::AllSucceeded, 1),
            plan_step("b", "x", &[], Trigger::AllSucceeded, 1),
            plan_step("c", "x", &["a", "b"], Trigger::AllSucceeded, 1),
        ]))
        .await
        .expect("insert")
        .id;
    assert_eq!(store.run_get(run).await.unwrap().started_at, None, "not started before a claim");
    let first = claim(store, w, &["x"], 10, TTL).await;
    assert_eq!(first.len(), 2, "only a and b are ready");
    let started = store.run_get(run).await.unwrap().started_at;
    assert!(started.is_some(), "started at its first claim");
    assert!(complete(store, w, first[0].lease, json!({"n": 1})).await);
    assert_eq!(store.run_get(run).await.unwrap().started_at, started, "the first claim, still");
    assert!(claim(store, w, &["x"], 10, TTL).await.is_empty(), "c waits for b");
    assert!(complete(store, w, first[1].lease, json!({"n": 2})).await);
    let c = claim(store, w, &["x"], 10, TTL).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].name, "c");
    assert_eq!(c[0].upstream.len(), 2, "c sees both upstream outputs");
    assert_eq!(c[0].upstream["b"], json!({"n": 2}));
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Running);
    assert!(complete(store, w, c[0].lease, json!(null)).await);
    let info = store.run_get(run).await.unwrap();
    assert_eq!(info.status, RunState::Succeeded);
    assert_eq!(info.started_at, started, "the first claim, once finished too");
    check_run_consistent(store, run).await;
    let events: Vec<String> =
        store.events_list(run, Some("c".into())).await.unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(events, ["created", "deps_met", "claimed", "succeeded"]);
}

/// A completion call that also claims: the results are recorded, the
/// claim takes other ready steps (not necessarily the dependents this call
/// promoted, which a later claim finds), a lost lease's result is still
/// rejected, and a claim of 0 or for types nobody has claims nothing.
pub async fn check_complete_and_claim<S: Store>(store: &S) {
    let w = WorkerId::new();
    let chain = store
        .run_insert(plan(vec![
            plan_step("a", "x", &[], Trigger::AllSucceeded, 1),
            plan_step("b", "x", &["a"], Trigger::AllSucceeded, 1),
        ]))
        .await
        .unwrap()
        .id;
    let a = claim(store, w, &["x"], 1, TTL).await.remove(0);
    assert_eq!(a.name, "a");
    let mut singles = Vec::new();
    for _ in 0..3 {
        singles
            .push(store.run_insert(plan(vec![plan_step("c", "x", &[], Trigger::AllSucceeded, 1)])).await.unwrap().id);
    }
    let next = |limit: u32, kinds: &[&str]| StepsClaim {
        worker: w,
        queues: vec![crate::step::DEFAULT_QUEUE.into()],
        step_types: kinds.iter().map(|k| format!("test.{k}")).collect(),
        limit,
        lease_ttl: TTL,
    };
    let r = store
        .steps_complete(StepsComplete {
            worker: w,
            items: vec![StepCompletion { lease: a.lease, completion: Completion::Output(json!("a")) }],
            notify_above: usize::MAX,
            claim: Some(next(2, &["x"])),
        })
        .await
        .expect("complete and claim");
    assert_eq!(r.completed, vec![a.lease]);
    assert_eq!(r.promoted, 1, "b became ready");
    assert_eq!(r.claimed.len(), 2, "the claim took two ready steps: {:?}", r.claimed);
    assert_eq!(status(store, chain, "a").await, StepState::Succeeded);
    let mut held: Vec<ClaimedStep> = r.claimed;
    for c in &held {
        assert_eq!(status(store, c.run_id, &c.name).await, StepState::Running, "{} is leased", c.name);
        assert!(c.attempt == 1 && c.lease.token >= 1);
    }
    // The rest: the third single and b, whichever the first claim left.
    let r = store
        .steps_complete(StepsComplete {
            worker: w,
            items: vec![StepCompletion { lease: a.lease, completion: Completion::Output(json!("zombie")) }],
            notify_above: usize::MAX,
            claim: Some(next(10, &["x"])),
        })
        .await
        .unwrap();
    assert_eq!(r.rejected, vec![a.lease], "a result for a lease no longer held is rejected");
    assert!(r.completed.is_empty());
    held.extend(r.claimed);
    let mut names: Vec<&str> = held.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["b", "c", "c", "c"], "every ready step claimed once");
    let b = held.iter().find(|c| c.name == "b").unwrap();
    assert_eq!(b.upstream["a"], json!("a"), "the claimed dependent sees its upstream's output");
    let items: Vec<StepCompletion> =
        held.iter().map(|c| StepCompletion { lease: c.lease, completion: Completion::Output(json!(c.name)) }).collect();
    let r = store
        .steps_complete(StepsComplete { worker: w, items, notify_above: usize::MAX, claim: Some(next(0, &["x"])) })
        .await
        .unwrap();
    assert_eq!(r.completed.len(), 4);
    assert!(r.claimed.is_empty(), "a claim of 0 claims nothing");
    let extra = store.run_insert(plan(vec![plan_step("d", "x", &[], Trigger::AllSucceeded, 1)])).await.unwrap().id;
    let r = store
        .steps_complete(StepsComplete {
            worker: w,
            items: Vec::new(),
            notify_above: usize::MAX,
            claim: Some(next(5, &["unknown"])),
        })
        .await
        .unwrap();
    assert!(r.claimed.is_empty(), "only the types the worker has");
    assert_eq!(status(store, extra, "d").await, StepState::Ready);
    for run in singles.into_iter().chain([chain]) {
        assert_eq!(store.run_get(run).await.unwrap().status, RunState::Succeeded);
        check_run_consistent(store, run).await;
    }
    let events: Vec<String> =
        store.events_list(chain, Some("b".into())).await.unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(events, ["created", "deps_met", "claimed", "succeeded"]);
}

/// A stale lease token cannot complete, fail or extend a step.
pub async fn check_stale_token_rejected<S: Store>(store: &S) {
    let w = WorkerId::new();
    let run = store.run_insert(plan(vec![plan_step("a", "x", &[], Trigger::AllSucceeded, 5)])).await.unwrap().id;
    let first = claim(store, w, &["x"], 1, Duration::from_millis(1)).await.remove(0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rescued = store.leases_rescue(100).await.unwrap();
    assert_eq!(rescued.retried, 1);
    let second = claim(store, w, &["x"], 1, TTL).await.remove(0);
    assert!(second.lease.token > first.lease.token, "tokens grow");
    assert!(!complete(store, w, first.lease, json!("zombie")).await, "stale completion rejected");
    let fail = store
        .step_fail(StepFail { worker: w, lease: first.lease, kind: FailKind::Error, error: "x".into(), retry_in: None })
        .await;
    assert!(matches!(fail, Err(crate::StoreError::LeaseLost { .. })), "stale failure rejected: {fail:?}");
    let ext = store.leases_extend(LeasesExtend { worker: w, leases: vec![first.lease], lease_ttl: TTL }).await.unwrap();
    assert!(ext.is_empty(), "stale lease not extended");
    assert_eq!(status(store, run, "a").await, StepState::Running);
    assert!(complete(store, w, second.lease, json!("real")).await);
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Succeeded);
}

/// Expired leases are rescued until attempts run out, then the step fails;
/// a retryable failure backs off; a permanent failure fails at once.
pub async fn check_retries<S: Store>(store: &S) {
    let w = WorkerId::new();
    let run = store.run_insert(plan(vec![plan_step("a", "x", &[], Trigger::AllSucceeded, 2)])).await.unwrap().id;
    for expected in [StepState::Ready, StepState::Failed] {
        let c = claim(store, w, &["x"], 1, Duration::from_millis(1)).await;
        assert_eq!(c.len(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        store.leases_rescue(100).await.unwrap();
        assert_eq!(status(store, run, "a").await, expected);
    }
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Failed);

    let run = store.run_insert(plan(vec![plan_step("b", "y", &[], Trigger::AllSucceeded, 5)])).await.unwrap().id;
    let c = claim(store, w, &["y"], 1, TTL).await.remove(0);
    let to = store
        .step_fail(StepFail {
            worker: w,
            lease: c.lease,
            kind: FailKind::Error,
            error: "flaky".into(),
            retry_in: Some(Duration::from_secs(3600)),
        })
        .await
        .unwrap();
    assert_eq!(to, StepState::Ready);
    assert!(claim(store, w, &["y"], 1, TTL).await.is_empty(), "backoff delays the retry");
    let info = store.steps_list(run).await.unwrap().remove(0);
    assert!(info.available_at > chrono::Utc::now() + chrono::Duration::minutes(50));
    assert_eq!(info.last_error.as_deref(), Some("flaky"));

    let run = store.run_insert(plan(vec![plan_step("c", "z", &[], Trigger::AllSucceeded, 5)])).await.unwrap().id;
    let c = claim(store, w, &["z"], 1, TTL).await.remove(0);
    let to = store
        .step_fail(StepFail { worker: w, lease: c.lease, kind: FailKind::Error, error: "bad".into(), retry_in: None })
        .await
        .unwrap();
    assert_eq!(to, StepState::Failed);
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Failed);
}

/// A failed branch does not block an independent one; its dependents become
/// upstream-failed; an all-done report runs; resume redoes only what did not
/// finish.
pub async fn check_failure_isolation_and_resume<S: Store>(store: &S) {
    let w = WorkerId::new();
    let run = store
        .run_insert(plan(vec![
            plan_step("bad", "bad", &[], Trigger::AllSucceeded, 1),
            plan_step("bad_load", "x", &["bad"], Trigger::AllSucceeded, 1),
            plan_step("bad_after", "x", &["bad_load"], Trigger::AllSucceeded, 1),
            plan_step("good", "x", &[], Trigger::AllSucceeded, 1),
            plan_step("good_load", "x", &["good"], Trigger::AllSucceeded, 1),
            plan_step("report", "x", &["bad_after", "good_load"], Trigger::AllDone, 1),
        ]))
        .await
        .unwrap()
        .id;
    let bad = claim(store, w, &["bad"], 1, TTL).await.remove(0);
    store
        .step_fail(StepFail {
            worker: w,
            lease: bad.lease,
            kind: FailKind::Error,
            error: "unreadable".into(),
            retry_in: None,
        })
        .await
        .unwrap();
    assert_eq!(status(store, run, "bad_load").await, StepState::UpstreamFailed);
    assert_eq!(status(store, run, "bad_after").await, StepState::UpstreamFailed, "transitively");
    assert_eq!(status(store, run, "report").await, StepState::Blocked, "report waits for the good branch");
    for _ in 0..3 {
        for c in claim(store, w, &["x"], 10, TTL).await {
            assert!(c.name != "bad_load" && c.name != "bad_after");
            assert!(complete(store, w, c.lease, json!(c.name)).await);
        }
    }
    assert_eq!(status(store, run, "good_load").await, StepState::Succeeded);
    assert_eq!(status(store, run, "report").await, StepState::Succeeded, "all-done report ran");
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Failed);
    check_run_consistent(store, run).await;

    let moved = store.run_resume(op(run, None, Some("fixed the feed"))).await.unwrap();
    assert!(moved >= 3);
    assert_eq!(status(store, run, "bad").await, StepState::Ready);
    assert_eq!(status(store, run, "bad_load").await, StepState::Blocked);
    assert_eq!(status(store, run, "good_load").await, StepState::Succeeded, "finished work is not redone");
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Running);
    let bad = claim(store, w, &["bad"], 1, TTL).await.remove(0);
    assert_eq!(bad.attempt, 2);
    assert!(complete(store, w, bad.lease, json!(1)).await);
    for _ in 0..3 {
        for c in claim(store, w, &["x"], 10, TTL).await {
            assert!(["bad_load", "bad_after"].contains(&c.name.as_str()), "only unfinished steps rerun: {}", c.name);
            assert!(complete(store, w, c.lease, json!(1)).await);
        }
    }
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Succeeded);
    let resumed = store.events_list(run, Some("bad".into())).await.unwrap();
    let ev = resumed.iter().find(|e| e.event == "resumed").expect("resume recorded");
    assert_eq!(ev.actor.as_deref(), Some("tester"));
    assert_eq!(ev.reason.as_deref(), Some("fixed the feed"));
}

/// The same idempotency key returns the same run and writes nothing new.
pub async fn check_idempotency_key<S: Store>(store: &S) {
    let mut p = plan(vec![plan_step("a", "x", &[], Trigger::AllSucceeded, 1)]);
    p.idempotency_key = Some("2026-11-24".into());
    let first = store.run_insert(p.clone()).await.unwrap();
    let second = store.run_insert(p.clone()).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!(first.id, second.id);
    p.workflow = "other".into();
    let third = store.run_insert(p).await.unwrap();
    assert!(third.created, "keys are unique per workflow");
    let all = store.runs_list(RunsFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 2);
}

/// Fan-out: the parent's dependents wait for every child, and see their outputs.
pub async fn check_fan_out<S: Store>(store: &S) {
    let w = WorkerId::new();
    let run = store
        .run_insert(plan(vec![
            plan_step("split", "x", &[], Trigger::AllSucceeded, 1),
            plan_step("join", "x", &["split"], Trigger::AllSucceeded, 1),
        ]))
        .await
        .unwrap()
        .id;
    let split = claim(store, w, &["x"], 10, TTL).await.remove(0);
    let kids: Vec<NewStep> = (0..3)
        .map(|i| {
            let mut s = plan_step(&format!("split/{i}"), "x", &[], Trigger::AllSucceeded, 1);
            s.after.clear();
            s
        })
        .collect();
    let r = store
        .steps_complete(StepsComplete {
            worker: w,
            items: vec![StepCompletion { lease: split.lease, completion: Completion::Expand(kids) }],
            notify_above: 0,
            claim: None,
        })
        .await
        .unwrap();
    assert_eq!(r.promoted, 3);
    let kids = claim(store, w, &["x"], 10, TTL).await;
    assert_eq!(kids.len(), 3, "only the children are ready: {kids:?}");
    for (i, k) in kids.iter().enumerate() {
        assert_eq!(status(store, run, "join").await, StepState::Blocked);
        assert!(complete(store, w, k.lease, json!(i)).await);
    }
    let join = claim(store, w, &["x"], 10, TTL).await.remove(0);
    assert_eq!(join.name, "join");
    assert_eq!(join.upstream.len(), 4, "the parent and its three children");
    assert!(complete(store, w, join.lease, json!(null)).await);
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Succeeded);
}

/// Released steps are ready at once and the attempt is not counted; cancel
/// ends every unfinished step; skip needs a reason and unblocks dependents.
pub async fn check_release_cancel_skip<S: Store>(store: &S) {
    let w = WorkerId::new();
    let run = store
        .run_insert(plan(vec![
            plan_step("a", "x", &[], Trigger::AllSucceeded, 3),
            plan_step("b", "x", &["a"], Trigger::AllSucceeded, 3),
        ]))
        .await
        .unwrap()
        .id;
    let a = claim(store, w, &["x"], 1, TTL).await.remove(0);
    assert_eq!(store.steps_release(StepsRelease { worker: w, leases: vec![a.lease] }).await.unwrap(), 1);
    let again = claim(store, w, &["x"], 1, TTL).await.remove(0);
    assert_eq!(again.attempt, 1, "a released attempt is not counted");
    store.steps_release(StepsRelease { worker: w, leases: vec![again.lease] }).await.unwrap();

    let no_reason = store.step_skip(op(run, Some("a"), None)).await;
    assert!(no_reason.is_err(), "skip needs a reason");
    store.step_skip(op(run, Some("a"), Some("feed not delivered today"))).await.unwrap();
    assert_eq!(status(store, run, "a").await, StepState::Skipped);
    assert_eq!(status(store, run, "b").await, StepState::Ready, "skipped counts as done");
    let unknown = store.step_skip(op(run, Some("nope"), Some("x"))).await;
    assert!(matches!(unknown, Err(crate::StoreError::NotFound(_))), "{unknown:?}");

    let b = claim(store, w, &["x"], 1, TTL).await.remove(0);
    store.run_cancel(op(run, None, Some("wrong date"))).await.unwrap();
    assert_eq!(status(store, run, "b").await, StepState::Cancelled);
    assert!(!complete(store, w, b.lease, json!(1)).await, "a cancelled step's late result is rejected");
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Cancelled);
    check_run_consistent(store, run).await;
    assert!(store.run_cancel(op(run, None, None)).await.is_err(), "cancelling twice is a conflict");
    let missing = store.run_get(RunId::new()).await;
    assert!(matches!(missing, Err(crate::StoreError::NotFound(_))));
}

/// Random event sequences applied to a step give the statuses the pure
/// [`transition`] function predicts, and the run stays consistent.
pub async fn check_follows_transition_function<S: Store>(store: &S, seed: u64, events: usize) {
    use StepEvent as E;
    let mut rng = fastrand::Rng::with_seed(seed);
    // A step type of its own, so runs of other seeds in the same store are not claimed.
    let kind = format!("a{seed}");
    let w = WorkerId::new();
    let run = store
        .run_insert(plan(vec![
            plan_step("a", &kind, &[], Trigger::AllSucceeded, 1000),
            plan_step("b", "other", &["a"], Trigger::AllSucceeded, 1000),
            plan_step("c", "other", &["a"], Trigger::AllDone, 1000),
        ]))
        .await
        .unwrap()
        .id;
    // Events a test can cause directly on a step without upstreams.
    // LeaseExpired{retry:false} needs exhausted attempts and is covered by
    // `check_retries`.
    let menu = [
        E::Claimed,
        E::Succeeded,
        E::Expanded,
        E::Failed { retry: true },
        E::Failed { retry: false },
        E::TimedOut { retry: true },
        E::TimedOut { retry: false },
        E::LeaseExpired { retry: true },
        E::Released,
        E::Cancel,
        E::Resume { deps_met: true },
        E::Skip,
    ];
    let mut model = StepState::Ready;
    let mut lease: Option<Lease> = None;
    let mut short_lease = false;
    let mut trace = Vec::new();
    let mut next = menu[rng.usize(..menu.len())];
    for _ in 0..events {
        let event = next;
        next = menu[rng.usize(..menu.len())];
        trace.push(format!("{model} + {event:?}"));
        let expected = transition(model, event);
        match event {
            E::Claimed => {
                short_lease = matches!(next, E::LeaseExpired { .. });
                let ttl = if short_lease { Duration::from_millis(1) } else { TTL };
                let got = claim(store, w, &[kind.as_str()], 1, ttl).await;
                assert_eq!(got.len(), usize::from(expected.is_ok()), "claim: {trace:?}");
                if let Some(c) = got.first() {
                    lease = Some(c.lease);
                }
            }
            E::Succeeded | E::Expanded => {
                if let Some(l) = lease {
                    let completion = if event == E::Expanded {
                        let mut kid = plan_step(&format!("a/{}", trace.len()), "other", &[], Trigger::AllSucceeded, 1);
                        kid.after.clear();
                        Completion::Expand(vec![kid])
                    } else {
                        Completion::Output(json!(1))
                    };
                    let r = store
                        .steps_complete(StepsComplete {
                            worker: w,
                            items: vec![StepCompletion { lease: l, completion }],
                            notify_above: 0,
                            claim: None,
                        })
                        .await
                        .unwrap();
                    assert_eq!(r.completed.len(), usize::from(expected.is_ok()), "complete: {trace:?}");
                }
            }
            E::Failed { retry } | E::TimedOut { retry } => {
                if let Some(l) = lease {
                    let kind = if matches!(event, E::Failed { .. }) { FailKind::Error } else { FailKind::Timeout };
                    let r = store
                        .step_fail(StepFail {
                            worker: w,
                            lease: l,
                            kind,
                            error: "e".into(),
                            retry_in: retry.then_some(Duration::ZERO),
                        })
                        .await;
                    assert_eq!(r.is_ok(), expected.is_ok(), "fail: {trace:?} {r:?}");
                }
            }
            E::LeaseExpired { .. } => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let r = store.leases_rescue(100).await.unwrap();
                if expected.is_ok() && short_lease {
                    assert_eq!(r.retried, 1, "rescue: {trace:?}");
                }
            }
            E::Released => {
                if let Some(l) = lease {
                    let n = store.steps_release(StepsRelease { worker: w, leases: vec![l] }).await.unwrap();
                    assert_eq!(n, usize::from(expected.is_ok()), "release: {trace:?}");
                }
            }
            E::Cancel => {
                let _ = store.run_cancel(op(run, None, Some("random"))).await;
            }
            E::Resume { .. } => {
                let _ = store.step_retry(op(run, Some("a"), Some("random"))).await;
            }
            E::Skip => {
                let r = store.step_skip(op(run, Some("a"), Some("random"))).await;
                assert_eq!(r.is_ok(), expected.is_ok(), "skip: {trace:?} {r:?}");
            }
            E::DepsMet | E::UpstreamFailed => unreachable!("not in the menu"),
        }
        // An event the test could not cause (no lease held, or a lease too
        // long to expire) leaves the step where it was.
        let applied = match event {
            E::Succeeded | E::Expanded | E::Failed { .. } | E::TimedOut { .. } | E::Released => lease.is_some(),
            E::LeaseExpired { .. } => short_lease,
            _ => true,
        };
        let want = match expected {
            Ok(s) if applied => s,
            _ => model,
        };
        let got = status(store, run, "a").await;
        assert_eq!(got, want, "after {trace:?}");
        model = got;
        if model != StepState::Running {
            lease = None;
        }
        check_run_consistent(store, run).await;
    }
}
