-- Several daemons sharing one store: the daemons registry, commands between daemons, the
-- schedule slots fired, and on each run its owner, attempt and lease.

-- One row per daemon start (and per embedded host): who lives, and how busy it is.
CREATE TABLE IF NOT EXISTS daemons (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    state_dir TEXT NOT NULL,
    role TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    in_flight INTEGER NOT NULL DEFAULT 0,
    stopped_at DOUBLE PRECISION,
    stop_reason TEXT
);
-- What one daemon asks the daemon that executes a run (cancel, approve, deny).
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    args_json TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    done_at DOUBLE PRECISION,
    result_json TEXT
);
CREATE INDEX IF NOT EXISTS commands_open ON commands (owner, done_at);
-- A schedule's slot is fired by the one daemon whose insert made its row.
CREATE TABLE IF NOT EXISTS schedule_slots (
    workflow TEXT NOT NULL,
    schedule TEXT NOT NULL,
    slot TEXT NOT NULL,
    daemon TEXT NOT NULL,
    fired_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workflow, schedule, slot)
);
CREATE INDEX IF NOT EXISTS schedule_slots_by_time ON schedule_slots (fired_at);
-- owner: the daemon executing (or holding, for local runs) the run; attempt: bumped by each
-- claim and each takeover, so a write of an older attempt is refused; lease_until: when a
-- running run counts as abandoned (NULL while it waits for approval, or not started).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS owner TEXT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS lease_until DOUBLE PRECISION;
-- The claim's oldest unowned queued run, and a daemon's running runs (leases).
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, owner, created_at, id);
-- A workflow's runs in flight across the cluster (limits.max_in_flight).
CREATE INDEX IF NOT EXISTS runs_by_workflow_status ON runs (workflow, status);
