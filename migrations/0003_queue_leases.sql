-- Ready steps and running steps each get a small table of their own, so
-- that no index of wf.steps depends on a step's status any more: the
-- updates a step goes through (claimed, ended, promoted, heartbeat) change
-- no indexed column and stay on the row's page (HOT), instead of writing a
-- new entry into every index of the table, the (run_id, name) unique index
-- with its uniqueness check included, twice per step.
--
-- The invariant, kept by every statement that changes a step's status in
-- the same transaction: a step has a row in wf.ready_queue exactly while
-- it is 'ready', and a row in wf.leases exactly while it is 'running'.
-- wf.steps stays the record of truth; the claim checks the step's status.

-- A claim walks this table in (queue, available_at, step_id) order and
-- deletes what it takes.
CREATE TABLE wf.ready_queue (
    step_id      bigint PRIMARY KEY,
    queue        text NOT NULL,
    step_type    text NOT NULL,
    available_at timestamptz NOT NULL
);
CREATE INDEX ready_queue_order ON wf.ready_queue (queue, available_at, step_id);

-- The steps under a lease. The lease itself (token, worker, expiry) stays
-- on the step's row, where a heartbeat extends it in place; the rescuer
-- reads this table to find the leases to check.
CREATE TABLE wf.leases (
    step_id bigint PRIMARY KEY
);

INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
SELECT id, queue, step_type, available_at FROM wf.steps WHERE status = 'ready';
INSERT INTO wf.leases (step_id) SELECT id FROM wf.steps WHERE status = 'running';

DROP INDEX wf.steps_ready;
DROP INDEX wf.steps_running;

-- Room on each page for two more versions of every row (its claim and its
-- end) before the page has to be pruned, so both stay HOT.
ALTER TABLE wf.steps SET (fillfactor = 30);
