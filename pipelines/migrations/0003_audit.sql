-- Audit lineage: one row per loaded source record, append-only and
-- hash-chained per business date and feed; seals close a day's chain.
CREATE SCHEMA IF NOT EXISTS audit;

CREATE TABLE audit.lineage (
    business_date     date NOT NULL,
    feed              text NOT NULL,
    seq               bigint NOT NULL,
    identity          text NOT NULL,
    file_sha256       text NOT NULL,
    record            bigint NOT NULL,
    line              bigint NOT NULL,
    raw_sha256        text NOT NULL,
    canonical_sha256  text NOT NULL,
    txn_key           bytea NOT NULL,
    run_id            uuid NOT NULL,
    step              text NOT NULL,
    attempt           integer NOT NULL,
    transform_version integer NOT NULL,
    prev_hash         text NOT NULL,
    hash              text NOT NULL,
    PRIMARY KEY (business_date, feed, seq),
    UNIQUE (business_date, feed, identity)
);
CREATE INDEX lineage_txn_key ON audit.lineage (txn_key);

-- A seal records a chain's length and head at the end of a day's run.
CREATE TABLE audit.seals (
    business_date date NOT NULL,
    feed          text NOT NULL,
    rows          bigint NOT NULL,
    head_hash     text NOT NULL,
    run_id        uuid NOT NULL,
    sealed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_date, feed, rows)
);

CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on %.% is refused: the audit trail is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME;
END $$;

CREATE TRIGGER lineage_no_update_delete BEFORE UPDATE OR DELETE ON audit.lineage
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER lineage_no_truncate BEFORE TRUNCATE ON audit.lineage
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER seals_no_update_delete BEFORE UPDATE OR DELETE ON audit.seals
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER seals_no_truncate BEFORE TRUNCATE ON audit.seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
