"""The run store: every query, written once in the SQL SQLite and PostgreSQL both run, over
a small adapter per database (sqlite.py, postgres.py). Every event is committed as it
happens, so nothing a run did is lost when a coordinator or the daemon dies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from tandem.config import POSTGRES_SCHEMES

from .records import (
    EVENT_OVERHEAD_CHARS,
    FLUSH_AFTER_S,
    FLUSH_AT,
    RUN_COLUMNS,
    Event,
    RunQuery,
    RunRecord,
    StoreError,
    run_record,
)
from .sqlite import SqliteDatabase

log = logging.getLogger(__name__)


class Cursor(Protocol):
    """A statement's result, as sqlite3's cursor and postgres.Rows both give it."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...
    def close(self) -> None: ...


class Database(Protocol):
    """What a database gives the store: statements with `?` placeholders whose errors are
    StoreErrors naming the store (`where`), and transactions."""

    where: str
    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def transaction(self) -> contextlib.AbstractContextManager[Callable[..., Any]]: ...
    def close(self) -> None: ...


def open_database(location: Path | str) -> Database:
    """A `postgresql://` (or `postgres://`) URL, else the path of a SQLite file."""
    if isinstance(location, str) and location.startswith(POSTGRES_SCHEMES):
        from .postgres import PostgresDatabase  # psycopg, only for a store that needs it

        return PostgresDatabase(location)
    return SqliteDatabase(Path(location))


class RunStore:
    def __init__(self, location: Path | str) -> None:
        """`location`: a SQLite file's path, or a PostgreSQL URL (see open_store)."""
        self.location = location
        self._pending: list[tuple[str, int, float, str, str]] = []
        # Ends of runs the store could not write yet (a full disk, a database that cannot
        # be reached), by run: written with the next statement that gets through, and
        # shown by every read meanwhile.
        self._ends: dict[str, tuple[str, str, str | None, str, float]] = {}
        self._fences: dict[str, tuple[str, int]] = {}  # run -> (owner, attempt) of its end
        self._flush_timer: asyncio.TimerHandle | None = None
        # Called with a run's id when it is made or its status or flag changes (the
        # console's live runs page).
        self.watchers: list[Callable[[str], None]] = []
        self._db = open_database(location)
        # Which SQL the database speaks, for the few statements written differently per
        # database (a claim's row lock: PostgreSQL's FOR UPDATE SKIP LOCKED).
        self.dialect = self._db.dialect

    @property
    def where(self) -> str:
        """The store as messages name it: a file, or a URL without its password."""
        return self._db.where

    def close(self) -> None:
        self._flush_before()
        for run_id, (status, *_) in self._ends.items():
            log.error("run %s: its end (%s) is still not recorded", run_id, status)
        self._db.close()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """One statement, after the buffered events (so reads see them and a run's end is
        written after its trace), with `?` placeholders; returns a cursor (fetchone,
        fetchall, rowcount, iteration). A store that cannot be read or written is a
        StoreError that names it (a full disk, a server gone), never a driver's error."""
        self._flush_before()
        return self._db.execute(sql, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Callable[..., Any]]:
        """Statements that read and write as one step (a claim): yields `execute(sql,
        params)`, with `?` placeholders, inside a transaction that holds the write lock from
        its start (SQLite) or one connection (PostgreSQL) and commits at the end, or rolls
        back on an exception. Use only `execute` inside: on PostgreSQL the store's other
        methods run on other connections, outside the transaction (and would wait for its
        row locks)."""
        self._flush_before()
        with self._db.transaction() as execute:
            yield execute

    def _changed(self, run_id: str) -> None:
        for watcher in self.watchers:
            watcher(run_id)

    def create(self, record: RunRecord, *, owner: str | None = None) -> None:
        """`owner`: the daemon that holds the run from its insert (no other claims it)."""
        self._run(
            "INSERT INTO runs (id, workflow, workflow_version, coordinator, trigger_json, status,"
            " created_at, usage_json, host_pid, mode, source_run, rerun_of, owner)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.workflow,
                record.workflow_version,
                record.coordinator,
                json.dumps(record.trigger),
                record.status,
                record.created_at,
                json.dumps(record.usage),
                os.getpid(),
                record.mode,
                record.source_run,
                record.rerun_of,
                owner,
            ),
        )
        self._changed(record.id)

    def keep_version(self, version: str, workflow: str, content: dict[str, Any]) -> None:
        self._run(
            "INSERT INTO workflow_versions (version, workflow, content_json, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (version) DO NOTHING",
            (version, workflow, json.dumps(content), time.time()),
        )

    def version_content(self, version: str) -> dict[str, Any] | None:
        row = self._run(
            "SELECT content_json FROM workflow_versions WHERE version=?", (version,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def set_plan_diff(self, run_id: str, diff: dict[str, Any]) -> None:
        self._run("UPDATE runs SET plan_diff_json=? WHERE id=?", (json.dumps(diff), run_id))

    def flag(self, run_id: str, flag: dict[str, Any] | None) -> bool:
        cursor = self._run(
            "UPDATE runs SET flag_json=? WHERE id=?",
            (None if flag is None else json.dumps(flag), run_id),
        )
        self._changed(run_id)
        return cursor.rowcount == 1

    def exclude(self, run_id: str, excluded: dict[str, Any] | None) -> bool:
        cursor = self._run(
            "UPDATE runs SET excluded_json=? WHERE id=?",
            (None if excluded is None else json.dumps(excluded), run_id),
        )
        return cursor.rowcount == 1

    def mark_exported(self, run_id: str, at: float) -> None:
        self._run("UPDATE runs SET exported_at=? WHERE id=?", (at, run_id))

    def set_status(self, run_id: str, status: str) -> None:
        """running <-> waiting, while a call waits for approval; never over a run's end
        (one another daemon took over, say)."""
        self._run(
            "UPDATE runs SET status=? WHERE id=? AND status IN ('running', 'waiting')",
            (status, run_id),
        )
        self._changed(run_id)

    def set_coordinator(self, run_id: str, coordinator: str) -> None:
        """A script's run that the model took over (`script+llm`)."""
        self._run("UPDATE runs SET coordinator=? WHERE id=?", (coordinator, run_id))
        self._changed(run_id)

    def mark_started(self, run_id: str, at: float) -> None:
        self._run("UPDATE runs SET status='running', started_at=? WHERE id=?", (at, run_id))
        self._changed(run_id)

    def finish(
        self,
        run_id: str,
        status: str,
        output: Any,
        error: str | None,
        usage: dict[str, int],
        at: float,
        fence: tuple[str, int] | None = None,
    ) -> None:
        """Record a run's end, after its trace. A store that cannot take it now (a full
        disk) keeps it to write with the next statement that gets through; reads show it
        meanwhile, so the run never looks as if it still ran. `fence`: (owner, attempt)
        the run must still have for the end to be written (one kept through an outage
        must not overwrite another daemon's takeover)."""
        self._ends[run_id] = (status, json.dumps(output), error, json.dumps(usage), at)
        if fence is not None:
            self._fences[run_id] = fence
        self._flush_before()
        self._changed(run_id)

    def _write_ends(self) -> None:
        for run_id, (status, output, error, usage, at) in list(self._ends.items()):
            fence = self._fences.get(run_id)
            fenced = " AND owner=? AND attempt=?" if fence else ""
            cursor = self._db.execute(
                "UPDATE runs SET status=?, output_json=?, error=?, usage_json=?,"  # noqa: S608 - constant conditions
                f" finished_at=?, lease_until=NULL WHERE id=?{fenced}",
                (status, output, error, usage, at, run_id, *(fence or ())),
            )
            del self._ends[run_id]
            self._fences.pop(run_id, None)
            if fence and cursor.rowcount != 1:
                log.warning(
                    "run %s: its end (%s) was refused: another daemon took it", run_id, status
                )

    def _shown(self, record: RunRecord) -> RunRecord:
        """The record as it is, its end included when the store has not written it yet."""
        end = self._ends.get(record.id)
        if end is not None:
            status, output, error, usage, at = end
            record.status, record.error, record.finished_at = status, error, at
            record.output, record.usage = json.loads(output), json.loads(usage)
        return record

    def append_event(self, run_id: str, event: Event) -> None:
        """Buffer an event; the buffer is committed in one transaction within
        FLUSH_AFTER_S, at FLUSH_AT events, before any read, and before a run's end is
        written, so a crash loses at most the last few milliseconds of a trace and never
        a finished run's final status."""
        data = event.data_json = json.dumps(event.data, default=str)
        self._pending.append((run_id, event.seq, event.ts, event.kind, data))
        if len(self._pending) >= FLUSH_AT:
            self._flush_before()
            return
        if self._flush_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop here (a tool, a test): write at once
                self._flush_before()
                return
            self._flush_timer = loop.call_later(FLUSH_AFTER_S, self._flush_before)

    def holds(self, run_id: str, owner: str, attempt: int) -> bool:
        """Whether the run is still `owner`'s `attempt`, read before the buffered events are
        written: a copy that lost the run drops its events (drop_events) instead."""
        row = self._db.execute(
            "SELECT 1 FROM runs WHERE id=? AND owner=? AND attempt=?", (run_id, owner, attempt)
        ).fetchone()
        return row is not None

    def drop_events(self, run_id: str) -> None:
        """Forget a run's buffered events: another daemon took the run over."""
        self._pending = [row for row in self._pending if row[0] != run_id]

    def flush(self) -> None:
        """Commit the buffered events, in one transaction."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        try:
            # A batch sent again after its commit's answer was lost finds its rows there:
            # those are skipped, the rest written.
            self._db.executemany(
                "INSERT INTO events (run_id, seq, ts, kind, data_json) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, seq) DO NOTHING",
                rows,
            )
        except StoreError:
            self._pending = rows + self._pending  # kept for the next try
            raise

    def _flush_before(self) -> None:
        """Flush ahead of a statement, then the runs' ends waiting for it; a failure is
        logged and both kept, so a read still answers while the disk is full."""
        try:
            self.flush()
            self._write_ends()
        except StoreError as error:
            waiting = f"{len(self._pending)} trace events and {len(self._ends)} run ends wait"
            log.error("%s (%s)", error.message, waiting)

    def claim_delivery(
        self, workflow: str, delivery: str, *, window_s: float | None = None
    ) -> bool:
        """Record a webhook delivery for `workflow`; False when it was already taken (within
        the last `window_s` seconds, when given)."""
        now = time.time()
        if window_s is not None:
            self._run(
                "DELETE FROM webhook_deliveries WHERE workflow=? AND delivery=? AND received_at<?",
                (workflow, delivery, now - window_s),
            )
        cursor = self._run(
            "INSERT INTO webhook_deliveries (workflow, delivery, received_at)"
            " VALUES (?, ?, ?) ON CONFLICT (workflow, delivery) DO NOTHING",
            (workflow, delivery, now),
        )
        return cursor.rowcount == 1

    def delivery_started(self, workflow: str, delivery: str, run_id: str) -> None:
        self._run(
            "UPDATE webhook_deliveries SET run_id=? WHERE workflow=? AND delivery=?",
            (run_id, workflow, delivery),
        )

    def delivery_run(self, workflow: str, delivery: str) -> str | None:
        row = self._run(
            "SELECT run_id FROM webhook_deliveries WHERE workflow=? AND delivery=?",
            (workflow, delivery),
        ).fetchone()
        return None if row is None else row[0]

    def release_delivery(self, workflow: str, delivery: str) -> None:
        """Forget a claimed delivery whose run could not start, so a redelivery may."""
        self._run(
            "DELETE FROM webhook_deliveries WHERE workflow=? AND delivery=?", (workflow, delivery)
        )

    def host_pid(self, run_id: str) -> int | None:
        """The process of the host that runs (or ran) the run; None for no such run."""
        row = self._run("SELECT host_pid FROM runs WHERE id=?", (run_id,)).fetchone()
        return None if row is None else int(row[0])

    def get(
        self, run_id: str, *, events: bool = True, kinds: Sequence[str] = ()
    ) -> RunRecord | None:
        """The run, with its events (only those of `kinds`, when given)."""
        row = self._run(f"SELECT {RUN_COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()  # noqa: S608
        if row is None:
            return None
        record = self._shown(run_record(row))
        if events:
            record.events = self.events(run_id, kinds=kinds)
        return record

    def events(self, run_id: str, after: int = 0, *, kinds: Sequence[str] = ()) -> list[Event]:
        where = f" AND kind IN ({','.join('?' * len(kinds))})" if kinds else ""
        rows = self._run(
            "SELECT seq, ts, kind, data_json FROM events"  # noqa: S608 - placeholders
            f" WHERE run_id=? AND seq>?{where} ORDER BY seq",
            (run_id, after, *kinds),
        ).fetchall()
        return [Event(seq, ts, kind, json.loads(data), data) for seq, ts, kind, data in rows]

    def events_page(self, run_id: str, after: int, max_chars: int) -> tuple[list[Event], bool]:
        """The events after seq `after` whose data comes to at most `max_chars` (at least
        one event), and whether more follow: a trace of any size is read a page at a time,
        never whole. Events keep their data as stored (JSON text), not decoded."""
        # One row more than can fit (each costs over EVENT_OVERHEAD_CHARS): PostgreSQL's
        # rows come whole, and a page must not fetch the rest of a long trace.
        fit = max(2, max_chars // EVENT_OVERHEAD_CHARS + 1)
        cursor = self._run(
            "SELECT seq, ts, kind, data_json FROM events WHERE run_id=? AND seq>?"
            " ORDER BY seq LIMIT ?",
            (run_id, after, fit),
        )
        page: list[Event] = []
        size = 0
        try:
            for seq, ts, kind, data in cursor:
                size += len(data) + len(kind) + EVENT_OVERHEAD_CHARS
                if page and size > max_chars:
                    return page, True
                page.append(Event(seq, ts, kind, {}, data))
        finally:
            cursor.close()
        return page, False

    def recent_events(self, kind: str, runs: int) -> list[tuple[str, Event]]:
        """Events of `kind` in the newest `runs` runs, newest first (the console's decided
        approvals): read through each run's own events, never the whole table."""
        rows = self._run(
            "SELECT events.run_id, seq, ts, kind, data_json FROM"
            " (SELECT id FROM runs ORDER BY created_at DESC LIMIT ?) AS recent"
            " JOIN events ON events.run_id = recent.id WHERE kind=? ORDER BY ts DESC",
            (runs, kind),
        ).fetchall()
        return [
            (run_id, Event(seq, ts, kind, json.loads(data), data))
            for run_id, seq, ts, kind, data in rows
        ]

    def list(self, query: RunQuery | None = None) -> list[RunRecord]:
        q = query or RunQuery()
        where = ["created_at >= ?", "created_at <= ?"]
        params: list[Any] = [q.since, q.until]
        if q.before_id:
            where.append("(created_at < ? OR id < ?)")
            params.extend([q.until, q.before_id])
        for column, value in (
            ("workflow", q.workflow),
            ("status", q.status),
            ("coordinator", q.coordinator),
            ("mode", q.mode),
        ):
            if value:
                where.append(f"{column}=?")
                params.append(value)
        if q.modes:
            where.append(f"mode IN ({','.join('?' * len(q.modes))})")
            params.extend(q.modes)
        if q.flagged:
            where.append("flag_json IS NOT NULL")
        if q.without_excluded:
            where.append(
                "excluded_json IS NULL AND NOT EXISTS (SELECT 1 FROM runs AS source"
                " WHERE source.id=runs.source_run AND source.excluded_json IS NOT NULL)"
            )
        conditions = " AND ".join(where)  # constants and placeholders
        sql = (
            f"SELECT {RUN_COLUMNS} FROM runs WHERE {conditions}"  # noqa: S608
            " ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        rows = self._run(sql, (*params, q.limit)).fetchall()
        records = [self._shown(run_record(row)) for row in rows]
        return [r for r in records if not q.status or r.status == q.status]
