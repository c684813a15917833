//! The shared conformance suite, run against PostgreSQL: each test gets a
//! fresh, migrated database from `#[sqlx::test]`.

use sqlx::PgPool;
use workflow_core::testing as t;
use workflow_pg::PgStore;

async fn store(pool: PgPool) -> PgStore {
    workflow_pg::migrator().run(&pool).await.expect("migrate");
    PgStore::new(pool)
}

#[sqlx::test(migrations = false)]
async fn happy_path_chain_and_fan_in(pool: PgPool) {
    t::check_happy_path(&store(pool).await).await;
}

#[sqlx::test(migrations = false)]
async fn zombie_completion_is_rejected(pool: PgPool) {
    t::check_stale_token_rejected(&store(pool).await).await;
}

#[sqlx::test(migrations = false)]
async fn expired_lease_is_rescued_then_fails_and_errors_back_off(pool: PgPool) {
    t::check_retries(&store(pool).await).await;
}

#[sqlx::test(migrations = false)]
async fn failed_branch_does_not_block_others_and_resume_redoes_only_unfinished(pool: PgPool) {
    t::check_failure_isolation_and_resume(&store(pool).await).await;
}

#[sqlx::test(migrations = false)]
async fn same_idempotency_key_returns_same_run(pool: PgPool) {
    t::check_idempotency_key(&store(pool).await).await;
}

#[sqlx::test(migrations = false)]
async fn fan_out_children_gate_the_parents_dependents(pool: PgPool) {
    t::check_fan_out(&store(pool).await).await;
}

#[sqlx::test(migrations = false)]
async fn release_cancel_and_skip(pool: PgPool) {
    t::check_release_cancel_skip(&store(pool).await).await;
}

#[sqlx::test(migrations = false)]
async fn store_follows_the_transition_function(pool: PgPool) {
    let store = store(pool).await;
    for seed in 1..=12 {
        t::check_follows_transition_function(&store, seed, 60).await;
    }
}
