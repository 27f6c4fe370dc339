"""The run store's interface, on both databases: SQLite (a file) and PostgreSQL (the test
server of tandem.testing.postgres). Every query is written once, so each test runs on each."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tandem.store import Event, RunQuery, RunRecord, RunStore, StoreError
from tandem.store.migrations import known, migrate


def _run(run_id: str, at: float, **fields: Any) -> RunRecord:
    fields.setdefault("workflow", "count")
    return RunRecord(run_id, fields.pop("workflow"), "v1", "script", {"n": 1}, "queued",
                     created_at=at, **fields)  # fmt: skip


def test_runs_are_made_read_listed_by_filters_and_paged(store: RunStore) -> None:
    for n in range(5):
        store.create(_run(f"r{n}", 1000.0 + n, workflow="count" if n % 2 else "greet"))
    store.mark_started("r1", 1001.5)
    store.finish("r1", "succeeded", {"total": 3}, None, {"input_tokens": 7}, 1002.0)
    record = store.get("r1")
    assert record is not None
    assert (record.status, record.output, record.trigger) == ("succeeded", {"total": 3}, {"n": 1})
    assert (record.started_at, record.finished_at, record.usage["input_tokens"]) == (
        1001.5,
        1002.0,
        7,
    )
    assert store.get("nothing") is None
    assert [r.id for r in store.list()] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r.id for r in store.list(RunQuery(workflow="count"))] == ["r3", "r1"]
    assert [r.id for r in store.list(RunQuery(status="succeeded"))] == ["r1"]
    assert [r.id for r in store.list(RunQuery(since=1002.0, until=1003.0))] == ["r3", "r2"]
    first = store.list(RunQuery(limit=2))
    after = store.list(RunQuery(limit=2, until=first[-1].created_at, before_id=first[-1].id))
    assert [r.id for r in first + after] == ["r4", "r3", "r2", "r1"]


def test_events_are_read_whole_by_kind_a_page_at_a_time_and_newest_first(
    store: RunStore,
) -> None:
    store.create(_run("old", 1.0))
    store.create(_run("new", 2.0))
    for seq, kind in enumerate(["log", "tool.call", "log", "approval.decided"], start=1):
        store.append_event("new", Event(seq, 10.0 + seq, kind, {"text": "x" * 40, "seq": seq}))
    store.append_event("old", Event(1, 5.0, "approval.decided", {"seq": 0}))
    assert [e.seq for e in store.events("new")] == [1, 2, 3, 4]
    assert [e.seq for e in store.events("new", after=2)] == [3, 4]
    assert [e.kind for e in store.events("new", kinds=["tool.call"])] == ["tool.call"]
    page, more = store.events_page("new", 0, 250)
    assert [e.seq for e in page] == [1, 2] and more
    page, more = store.events_page("new", 2, 10_000)
    assert [e.seq for e in page] == [3, 4] and not more and '"seq": 3' in str(page[0].data_json)
    recent = store.recent_events("approval.decided", runs=5)
    assert [(run_id, e.data["seq"]) for run_id, e in recent] == [("new", 4), ("old", 0)]
    assert [run_id for run_id, _ in store.recent_events("approval.decided", runs=1)] == ["new"]


def test_buffered_events_are_written_before_any_read_and_by_their_timer(
    store: RunStore, store_location: Path | str
) -> None:
    store.create(_run("r", 1.0))
    other = RunStore(store_location)  # another reader sees only what was committed

    async def append_then_wait() -> None:
        store.append_event("r", Event(1, 1.0, "log", {"n": 1}))
        assert other.events("r") == []  # still in the buffer
        while store._pending:  # the flush timer commits it
            await asyncio.sleep(0)

    try:
        asyncio.run(asyncio.wait_for(append_then_wait(), 10))
        assert [e.data for e in other.events("r")] == [{"n": 1}]

        async def append_then_read() -> list[Event]:
            store.append_event("r", Event(2, 2.0, "log", {"n": 2}))
            return store.events("r", after=1)  # a read flushes first

        assert [e.seq for e in asyncio.run(append_then_read())] == [2]
    finally:
        other.close()


def test_flags_exclusions_plan_diffs_exports_and_versions(store: RunStore) -> None:
    store.create(_run("live", 1.0))
    store.create(_run("shadow", 2.0, mode="shadow", source_run="live"))
    assert store.flag("live", {"reason": "wrong", "calls": [1]})
    assert not store.flag("missing", {"reason": "x"})
    assert [r.id for r in store.list(RunQuery(flagged=True))] == ["live"]
    assert store.exclude("live", {"reason": "a typo", "at": 3.0})
    assert store.list(RunQuery(without_excluded=True)) == []
    store.set_plan_diff("shadow", {"agree": True, "summary": "same", "entries": []})
    store.mark_exported("live", 4.0)
    shadow, live = store.get("shadow"), store.get("live")
    assert shadow is not None and live is not None
    assert shadow.plan_diff == {"agree": True, "summary": "same", "entries": []}
    assert (live.exported_at, live.excluded) == (4.0, {"reason": "a typo", "at": 3.0})
    store.keep_version("v1", "count", {"script": "print(1)"})
    store.keep_version("v1", "count", {"script": "something else"})  # kept once
    assert store.version_content("v1") == {"script": "print(1)"}
    assert store.version_content("v2") is None


def test_a_delivery_claimed_from_two_stores_on_one_database_is_taken_once(
    store: RunStore, store_location: Path | str
) -> None:
    other = RunStore(store_location)
    try:
        won = []
        barrier = threading.Barrier(2)

        def claim(by: RunStore) -> None:
            barrier.wait()
            won.append(by.claim_delivery("hook", "d-1"))

        threads = [threading.Thread(target=claim, args=(s,)) for s in (store, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(won) == [False, True]
        store.create(_run("r", 1.0))
        other.delivery_started("hook", "d-1", "r")
        assert store.delivery_run("hook", "d-1") == "r"
        store.release_delivery("hook", "d-1")
        assert other.claim_delivery("hook", "d-1")
    finally:
        other.close()


def test_a_transaction_commits_as_one_step_or_not_at_all(store: RunStore) -> None:
    store.create(_run("r", 1.0))
    with pytest.raises(RuntimeError), store.transaction() as execute:
        execute("UPDATE runs SET status=? WHERE id=?", ("running", "r"))
        raise RuntimeError("after the write")
    assert store.get("r").status == "queued"  # type: ignore[union-attr]
    with store.transaction() as execute:
        (status,) = execute("SELECT status FROM runs WHERE id=?", ("r",)).fetchone()
        execute("UPDATE runs SET status=? WHERE id=?", ("running", "r"))
    assert status == "queued" and store.get("r").status == "running"  # type: ignore[union-attr]
    assert store.dialect == ("sqlite" if isinstance(store.location, Path) else "postgresql")


def test_a_runs_end_is_kept_while_postgresql_cannot_be_reached(pg_server: Any, pg_url: str) -> None:
    """The analogue of a full disk (tests/test_admission.py has SQLite's): the run's end is
    shown at once and written when the database is back; nothing is lost."""
    store = RunStore(pg_url)
    try:
        store.create(_run("r", 1.0))
        with pg_server.unreachable(pg_url.rsplit("/", 1)[1]):
            store.append_event("r", Event(1, 2.0, "log", {"n": 1}))
            store.finish("r", "succeeded", {"ok": True}, None, {}, 3.0)
            with pytest.raises(StoreError) as failed:
                store.events("r")
            assert failed.value.unavailable and "127.0.0.1" in failed.value.message
            assert store._ends and store._pending  # kept, not dropped
            assert "\n" not in failed.value.message
        assert _eventually_written(store, "r")
        fresh = RunStore(pg_url)
        try:
            record = fresh.get("r")
            assert record is not None and record.status == "succeeded"
            assert [e.data for e in record.events] == [{"n": 1}]
        finally:
            fresh.close()
    finally:
        store.close()


def _eventually_written(store: RunStore, run_id: str) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            store.get(run_id)  # a statement that gets through writes what waits
        except StoreError:
            continue
        if not store._ends and not store._pending:
            return True
    return False


def test_migrations_apply_once_when_two_daemons_start_together_and_refuse_a_newer_store(
    pg_url: str,
) -> None:
    applied: list[list[int]] = []
    barrier = threading.Barrier(2)

    def start() -> None:
        with psycopg.connect(pg_url, autocommit=True) as db:
            barrier.wait()
            applied.append([m.version for m in migrate(db, "the test store")])

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(applied) == [[], [m.version for m in known()]]
    with psycopg.connect(pg_url, autocommit=True) as db:
        assert migrate(db, "the test store") == []
        db.execute("INSERT INTO schema_migrations VALUES (9999, '9999_future', 0)")
    with pytest.raises(StoreError, match="version 9999, newer than this Tandem"):
        RunStore(pg_url)


def test_store_setting_names_sqlite_a_file_or_postgresql_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tandem.config import load_config
    from tandem_sdk.errors import DefinitionError

    monkeypatch.delenv("TANDEM_DATABASE_URL", raising=False)
    settings = tmp_path / "tandem.yaml"
    assert load_config(tmp_path).store_location == tmp_path / ".tandem" / "runs.sqlite3"
    settings.write_text("store: data/runs.db\n")
    assert load_config(tmp_path).store_location == tmp_path / "data" / "runs.db"
    settings.write_text("store: postgresql://tandem:${DB_PASSWORD}@db/runs\n")
    with pytest.raises(DefinitionError, match=r"\$\{DB_PASSWORD\} is not set"):
        load_config(tmp_path)
    monkeypatch.setenv("DB_PASSWORD", "pw")
    assert load_config(tmp_path).store_location == "postgresql://tandem:pw@db/runs"
    monkeypatch.setenv("TANDEM_DATABASE_URL", "postgres://other@db2/runs")
    assert load_config(tmp_path).store_location == "postgres://other@db2/runs"
    monkeypatch.setenv("TANDEM_DATABASE_URL", "runs.db")
    with pytest.raises(DefinitionError, match="expected a postgresql:// URL"):
        load_config(tmp_path)


def test_retention_deletes_old_finished_runs_with_their_events_and_keeps_flagged_ones(
    store: RunStore, store_location: Path | str
) -> None:
    from tandem.retention import prune

    for run_id, at in (("old", 10.0), ("old-flagged", 11.0), ("new", 1000.0)):
        store.create(_run(run_id, at))
        store.append_event(run_id, Event(1, at, "log", {}))
        store.finish(run_id, "succeeded", None, None, {}, at + 1)
    store.flag("old-flagged", {"reason": "evidence"})
    pruned = prune(store_location, before=500.0)
    assert (pruned.runs, pruned.kept) == (1, 1)
    assert [r.id for r in store.list()] == ["new", "old-flagged"]
    assert store.events("old") == [] and len(store.events("old-flagged")) == 1


def test_a_batch_sent_again_after_its_commit_answer_was_lost_writes_what_it_lacks(
    store: RunStore,
) -> None:
    store.create(_run("r", 1.0))
    store.append_event("r", Event(1, 2.0, "log", {"n": 1}))  # no event loop: written at once

    async def again_with_the_next() -> None:
        store.append_event("r", Event(1, 2.0, "log", {"n": 1}))
        store.append_event("r", Event(2, 3.0, "log", {"n": 2}))
        store.flush()

    asyncio.run(again_with_the_next())
    assert [e.data for e in store.events("r")] == [{"n": 1}, {"n": 2}]
    assert not store._pending


@pytest.mark.parametrize("password", ["s3cret%ZZpw", "s3cr%65t%ZZ"])
def test_a_url_that_does_not_parse_never_shows_its_password(password: str) -> None:
    """Raw, or percent-encoded (`%65` is `e`) with a token that does not decode."""
    with pytest.raises(StoreError) as refused:
        RunStore(f"postgresql://tandem:{password}@127.0.0.1:1/runs")
    assert "percent-encoded" in refused.value.message
    assert "s3cr" not in refused.value.message and "***" in refused.value.message


def test_a_statement_blocked_on_postgresql_is_cut_by_its_timeout(
    pg_server: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tandem.store import postgres

    monkeypatch.setattr(postgres, "STATEMENT_TIMEOUT_S", 1.0)
    store = RunStore(pg_url)
    try:
        assert store._run("SHOW statement_timeout").fetchone() == ("1s",)
        # libpq's own side: a server gone silent is given up by the kernel, not waited on.
        settings = store._db._kept.info.get_parameters()  # type: ignore[attr-defined]
        assert settings["keepalives"] == "1" and int(settings["tcp_user_timeout"]) > 0
        with pg_server.admin(pg_url.rsplit("/", 1)[1]) as holder, holder.transaction():
            holder.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreError, match="statement timeout"):
                store.get("r")
        store.create(_run("r", 1.0))  # the store works on once the lock is gone
        assert store.get("r") is not None
    finally:
        store.close()
