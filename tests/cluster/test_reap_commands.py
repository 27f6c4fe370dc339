"""The reap of claimed runs that never started, and commands between daemons taken before
they are carried out, against a real store on each database (daemons played by their ids)."""

from __future__ import annotations

import time

from cluster.test_claims import add_run, location, status_of, store
from tandem.cluster import claims, members
from tandem.store import Event, RunStore

__all__ = ["location", "store"]  # the fixtures, on each database


def test_a_claimed_run_that_never_started_goes_back_to_the_queue(store: RunStore) -> None:
    """A claim whose reply was lost: the store says the run is the daemon's, running, but
    the daemon never started it (no run.started). Once its lease runs out it is queued
    again for any daemon, not interrupted; a run that started is interrupted."""
    now = time.time()
    add_run(store, "lost", created_at=now - 2)
    add_run(store, "started", created_at=now - 1)
    for run_id in ("lost", "started"):
        assert claims.claim_run(store, run_id, "gone", "v1", now, now + 1) is not None
    store.append_event("started", Event(0, now, "run.started", {}))
    store.flush()
    reaped = members.reap(store, "other", 10.0, now + 2, beat_s=1.0)
    assert (reaped.requeued, reaped.interrupted) == (["lost"], ["started"])
    assert status_of(store, "lost") == "queued"
    claim = claims.claim_next(store, "other", {"wf": "v1"}, {}, now + 2, now + 12)
    assert claim is not None and claim.run_id == "lost" and claim.attempt == 3
    # The first claimer's late write of its attempt is refused.
    end = ("succeeded", None, None, {}, now + 3)
    assert not claims.finish(store, "lost", "gone", 1, end)
