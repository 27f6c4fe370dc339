"""A claim's cost does not grow with the queue: on PostgreSQL its read walks the index of
queued runs in order and stops at the first, instead of sorting every queued run."""

from __future__ import annotations

import time

from tandem.cluster import claims
from tandem.store import RunStore


def test_the_claim_reads_the_oldest_queued_run_from_its_index(pg_url: str) -> None:
    store = RunStore(pg_url)
    try:
        now = time.time()
        with store.transaction() as execute:
            for n in range(2000):
                execute(
                    "INSERT INTO runs (id, workflow, workflow_version, coordinator,"
                    " trigger_json, status, created_at, mode, host_pid) VALUES"
                    " (?, 'tick', 'v1', 'script', 'null', 'queued', ?, 'live', 1)",
                    (f"r{n:05}", now + n),
                )
        sql = claims.oldest_sql(store.dialect, 1)
        plan = [row[0] for row in store._run(f"EXPLAIN (ANALYZE) {sql}", ("tick",))]
        assert any("runs_claimable" in line for line in plan), plan
        assert not any("Sort" in line for line in plan), plan
        claim = claims.claim_next(store, "me", {"tick": "v1"}, {}, now, now + 10)
        assert claim is not None and claim.run_id == "r00000"
    finally:
        store.close()
