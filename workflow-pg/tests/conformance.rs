//! The shared conformance suite, run against PostgreSQL: each test gets a
//! fresh, migrated database from `#[sqlx::test]`.

use sqlx::PgPool;
use workflow_core::testing as t;
use workflow_pg::PgStore;

async fn store(pool: PgPool) -> PgStore {
    workflow_pg::migrator().run(&pool).await.expect("migrate");
    PgStore::new(pool)
}

/// After each check: every step's queue and lease rows agree with its status.
async fn consistent(store: &PgStore) {
    let n = workflow_pg::queue_mismatches(store.pool()).await.expect("queue check");
    assert_eq!(n, 0, "steps whose ready-queue or lease rows disagree with their status");
}

#[sqlx::test(migrations = false)]
async fn happy_path_chain_and_fan_in(pool: PgPool) {
    let store = store(pool).await;
    t::check_happy_path(&store).await;
    consistent(&store).await;
}

#[sqlx::test(migrations = false)]
async fn a_completion_call_claims_the_next_batch(pool: PgPool) {
    let store = store(pool).await;
    t::check_complete_and_claim(&store).await;
    consistent(&store).await;
}

#[sqlx::test(migrations = false)]
async fn zombie_completion_is_rejected(pool: PgPool) {
    let store = store(pool).await;
    t::check_stale_token_rejected(&store).await;
    consistent(&store).await;
}

#[sqlx::test(migrations = false)]
async fn expired_lease_is_rescued_then_fails_and_errors_back_off(pool: PgPool) {
    let store = store(pool).await;
    t::check_retries(&store).await;
    consistent(&store).await;
}

#[sqlx::test(migrations = false)]
async fn failed_branch_does_not_block_others_and_resume_redoes_only_unfinished(pool: PgPool) {
    let store = store(pool).await;
    t::check_failure_isolation_and_resume(&store).await;
    consistent(&store).await;
}

#[sqlx::test(migrations = false)]
async fn same_idempotency_key_returns_same_run(pool: PgPool) {
    let store = store(pool).await;
    t::check_idempotency_key(&store).await;
    consistent(&store).await;
}

#[sqlx::test(migrations = false)]
async fn fan_out_children_gate_the_parents_dependents(pool: PgPool) {
    let store = store(pool).await;
    t::check_fan_out(&store).await;
    consistent(&store).await;
}

#[sqlx::test(migrations = false)]
async fn release_cancel_and_skip(pool: PgPool) {
    let store = store(pool).await;
    t::check_release_cancel_skip(&store).await;
    consistent(&store).await;
}

#[sqlx::test(migrations = false)]
async fn store_follows_the_transition_function(pool: PgPool) {
    let store = store(pool).await;
    for seed in 1..=12 {
        t::check_follows_transition_function(&store, seed, 60).await;
        consistent(&store).await;
    }
}
