-- The ETL's own tables: landed files, staging keyed by record identity,
-- canonical rows, rejects (quarantine) and the daily report.
CREATE SCHEMA IF NOT EXISTS etl;

-- Every landed file, identified by its sha256; never updated.
CREATE TABLE etl.landed_files (
    sha256        text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    feed          text NOT NULL,
    business_date date NOT NULL,
    name          text NOT NULL,
    path          text NOT NULL,
    bytes         bigint NOT NULL,
    landed_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per readable source record, keyed by its identity within the
-- business date and feed: the format's reference, or raw hash + occurrence.
-- No foreign keys on the bulk tables (staging, canonical): their rows are
-- only ever made from a landed file or a staging row, and a per-row
-- referential trigger on millions of rows a night costs more than it guards.
CREATE TABLE etl.staging (
    business_date date NOT NULL,
    feed          text NOT NULL,
    identity      text NOT NULL,
    file_sha256   text NOT NULL,
    record        bigint NOT NULL,
    line          bigint NOT NULL,
    statement     integer NOT NULL,
    raw_sha256    text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('end_of_day', 'intraday', 'unspecified')),
    account       text,
    bank_id       text,
    direction     char(1) NOT NULL CHECK (direction IN ('C', 'D')),
    amount_minor  bigint NOT NULL,
    currency      text NOT NULL,
    booking_date  date,
    value_date    date,
    counterparty  text,
    reference     text,
    description   text,
    PRIMARY KEY (business_date, feed, identity)
);

-- Statement balances read by parse, for balance checks and daily_balance.
CREATE TABLE etl.statements (
    business_date date NOT NULL,
    feed          text NOT NULL,
    file_sha256   text NOT NULL REFERENCES etl.landed_files (sha256),
    statement     integer NOT NULL,
    kind          text NOT NULL,
    account       text,
    currency      text,
    opening_minor bigint,
    closing_minor bigint,
    closing_date  date,
    entries       bigint NOT NULL,
    PRIMARY KEY (business_date, feed, file_sha256, statement)
);

-- Canonical rows made by transform from staging, stamped with the
-- transform version. Rows with a validate reject are not loaded.
CREATE TABLE etl.canonical (
    business_date     date NOT NULL,
    feed              text NOT NULL,
    identity          text NOT NULL,
    transform_version integer NOT NULL,
    txn_key           bytea NOT NULL CHECK (octet_length(txn_key) = 32),
    canonical_sha256  text NOT NULL,
    PRIMARY KEY (business_date, feed, identity)
);

-- Quarantine: records that could not be read (parse) or failed a check
-- (validate), with the reason. Never dropped.
CREATE TABLE etl.rejects (
    business_date date NOT NULL,
    feed          text NOT NULL,
    file_sha256   text NOT NULL REFERENCES etl.landed_files (sha256),
    file_name     text NOT NULL,
    record        bigint NOT NULL,
    line          bigint NOT NULL,
    stage         text NOT NULL CHECK (stage IN ('parse', 'validate')),
    -- 'record': record is the record ordinal; 'statement': a failed
    -- statement check, record is the statement's index in the file.
    subject       text NOT NULL DEFAULT 'record' CHECK (subject IN ('record', 'statement')),
    -- The staging identity of a record that failed validation.
    identity      text,
    reason        text NOT NULL,
    rejected_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file_sha256, stage, subject, record)
);
CREATE INDEX rejects_date_feed_identity ON etl.rejects (business_date, feed, identity);

-- The final report, one row per run and feed.
CREATE TABLE etl.daily_report (
    run_id        uuid NOT NULL,
    business_date date NOT NULL,
    feed          text NOT NULL,
    status        text NOT NULL CHECK (status IN ('loaded', 'failed')),
    loaded        bigint NOT NULL,
    quarantined   bigint NOT NULL,
    audit_head    text,
    error         text,
    reported_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, feed)
);
