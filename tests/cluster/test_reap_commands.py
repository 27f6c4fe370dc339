"""The reap of claimed runs that never started, and commands between daemons taken before
they are carried out, against a real store on each database (daemons played by their ids)."""

from __future__ import annotations

import asyncio
import time

import pytest
from cluster.test_claims import add_run, status_of
from cluster.test_fencing import QUICK
from conftest import Project, eventually
from tandem.client import ControlClient
from tandem.cluster import claims, commands, members
from tandem.embedded import EmbeddedHost
from tandem.store import Event, RunStore


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
    reaped = members.reap(store, "other", 10.0, now + 2)
    assert (reaped.requeued, reaped.interrupted) == (["lost"], ["started"])
    assert status_of(store, "lost") == "queued"
    claim = claims.claim_next(store, "other", {"wf": "v1"}, {}, now + 2, now + 12)
    assert claim is not None and claim.run_id == "lost" and claim.attempt == 3
    # The first claimer's late write of its attempt is refused.
    end = ("succeeded", None, None, {}, now + 3)
    assert not claims.finish(store, "lost", "gone", 1, end)


def test_a_command_is_either_taken_and_answered_or_withdrawn_undone(store: RunStore) -> None:
    """The asker's wait ends: a command the owner took is waited for (its answer, even one
    that came just then, is the asker's; none at all is said so, not UNAVAILABLE), and one
    it did not take is withdrawn, so the owner never carries it out after."""
    now = time.time
    answered = commands.send(store, "owner", "run", "cancel", {}, now())
    assert commands.take(store, answered, now())
    commands.answer(store, answered, True, now())
    assert asyncio.run(commands.answer_of(store, answered, 0, "owner", now)) is True

    silent = commands.send(store, "owner", "run", "cancel", {}, now())
    assert commands.take(store, silent, now())
    with pytest.raises(commands.AnswerLate, match="which took it"):
        asyncio.run(commands.answer_of(store, silent, 0, "owner", now, taken_s=0))

    untaken = commands.send(store, "owner", "run", "cancel", {}, now())
    with pytest.raises(commands.NoAnswer):
        asyncio.run(commands.answer_of(store, untaken, 0, "owner", now))
    assert commands.pending(store, "owner") == []
    assert not commands.take(store, untaken, now())


def test_a_runs_times_are_all_on_the_stores_clock(project: Project) -> None:
    """A store whose clock is an hour ahead of this machine's (PostgreSQL elsewhere): a run's
    creation and end are stamped on it, as its start and lease are, so the runs' times
    order the cluster's runs whatever machine made them."""
    (project.root / "tandem.yaml").write_text("builtin_plugins: false\n")
    project.workflow("quick", script=QUICK)
    with EmbeddedHost(project.config) as embedded, ControlClient(embedded.control_socket) as client:
        embedded.host.node._skew = 3600.0  # the store's clock less this machine's
        before = time.time()
        run_id = client.trigger("quick", None, None)
        assert eventually(lambda: client.run(run_id).status == "succeeded")
        record = embedded.host.store.get(run_id, events=False)
        assert record is not None and record.started_at is not None
        assert record.finished_at is not None
        assert before + 3600 <= record.created_at <= record.started_at <= record.finished_at
