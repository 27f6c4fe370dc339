-- The claim's oldest unowned queued run, in order, from an index of the queued runs alone:
-- a claim reads its first entries however deep the queue (runs_by_workflow_status made the
-- planner sort every queued run of the workflow).
CREATE INDEX IF NOT EXISTS runs_claimable ON runs (created_at, id) WHERE status = 'queued' AND owner IS NULL;
