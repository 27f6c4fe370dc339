-- The run store's tables, in the SQL both databases run: PostgreSQL's first migration and
-- SQLite's schema script (sqlite.py). Unix times are DOUBLE PRECISION (PostgreSQL's REAL
-- is float4 and would lose seconds), JSON is TEXT.
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    coordinator TEXT NOT NULL,
    trigger_json TEXT NOT NULL,
    status TEXT NOT NULL,
    output_json TEXT,
    error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    usage_json TEXT NOT NULL DEFAULT '{}',
    host_pid INTEGER NOT NULL,
    mode TEXT NOT NULL DEFAULT 'live',
    source_run TEXT,
    flag_json TEXT,
    plan_diff_json TEXT,
    excluded_json TEXT,
    exported_at DOUBLE PRECISION,
    rerun_of TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow, created_at);
-- The newest runs first, a page at a time (the console's runs page, `tandem runs`).
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at, id);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs (id),
    seq INTEGER NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    data_json TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
-- The content of every workflow version a run used.
CREATE TABLE IF NOT EXISTS workflow_versions (
    version TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    content_json TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
-- Webhook deliveries already taken, so a redelivery of the same id starts no second run.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    workflow TEXT NOT NULL,
    delivery TEXT NOT NULL,
    run_id TEXT,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workflow, delivery)
);
