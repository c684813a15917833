-- The synthetic workflow's side effects: one row per successful attempt of
-- a step with effect=true, written in the step's own transaction together
-- with its completion. No unique key on purpose: a duplicate effect must be
-- countable by SQL, not turned into an error.
CREATE TABLE wf_synthetic.effects (
    run_id       uuid NOT NULL,
    step         text NOT NULL,
    attempt      int NOT NULL,
    lease_token  bigint NOT NULL,
    input_hash   text NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX effects_run ON wf_synthetic.effects (run_id, step);
