"""The run store: SQLite in the state folder. Every event is committed as it happens, so
nothing a run did is lost when a coordinator or the daemon dies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandem_sdk.errors import TandemError

log = logging.getLogger(__name__)
# Trace events are committed in groups (RunStore.append_event).
FLUSH_AFTER_S = 0.005
FLUSH_AT = 64
# What an event costs in a message besides its data and kind (seq, time, framing).
EVENT_OVERHEAD_CHARS = 32
ACTIVE = ("queued", "running", "waiting")  # waiting: a call waits for a person's approval
MODES = ("live", "dry_run", "replay", "shadow", "mcp")
# Columns added after the first release, for stores made before them.
_ADDED_COLUMNS = {
    "mode": "TEXT NOT NULL DEFAULT 'live'",
    "source_run": "TEXT",
    "flag_json": "TEXT",
    "plan_diff_json": "TEXT",
    "excluded_json": "TEXT",
    "exported_at": "REAL",
    "rerun_of": "TEXT",
}
FINAL = ("succeeded", "failed", "cancelled", "interrupted", "timed_out")
# The events a run's tool plan, recording and cost are read from: replay, shadows, export,
# flags and the ledger read only these, never a run's logs and output however many.
PLAN_KINDS = (
    "tool.call",
    "tool.result",
    "subagent.started",
    "subagent.finished",
    "model.request",
    "model.response",
    "run.finished",
)
USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "model_calls",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    coordinator TEXT NOT NULL,
    trigger_json TEXT NOT NULL,
    status TEXT NOT NULL,
    output_json TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    usage_json TEXT NOT NULL DEFAULT '{}',
    host_pid INTEGER NOT NULL,
    mode TEXT NOT NULL DEFAULT 'live',
    source_run TEXT,
    flag_json TEXT,
    plan_diff_json TEXT,
    excluded_json TEXT,
    exported_at REAL,
    rerun_of TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow, created_at);
-- The newest runs first, a page at a time (the console's runs page, `tandem runs`).
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at, id);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs (id),
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    data_json TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
-- The content of every workflow version a run used, so a trace says exactly which
-- prompt, script and files ran, and replay and export can use them.
CREATE TABLE IF NOT EXISTS workflow_versions (
    version TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    content_json TEXT NOT NULL,
    created_at REAL NOT NULL
);
-- Webhook deliveries already taken, so a redelivery of the same id starts no second run.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    workflow TEXT NOT NULL,
    delivery TEXT NOT NULL,
    run_id TEXT,
    received_at REAL NOT NULL,
    PRIMARY KEY (workflow, delivery)
);
"""


@dataclass
class Event:
    seq: int
    ts: float
    kind: str
    data: dict[str, Any]
    # `data` as the store wrote it, so a watcher or a trace read sends it without encoding
    # it again.
    data_json: str | None = field(default=None, compare=False, repr=False)


@dataclass
class RunRecord:
    id: str
    workflow: str
    workflow_version: str
    coordinator: str
    trigger: Any
    status: str
    output: Any = None
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USAGE_KEYS, 0))
    events: list[Event] = field(default_factory=list)
    mode: str = "live"  # live | dry_run | replay | shadow | mcp
    source_run: str | None = None  # the recorded run a replay answered from
    flag: dict[str, Any] | None = None  # {"reason", "calls": [indexes]} once a person flags it
    # A shadow's tool plan against its primary's: {"agree", "summary", "entries"}.
    plan_diff: dict[str, Any] | None = None
    queue_position: int = 0  # a queued run's place in line, as the host knows it now
    # {"reason", "at"} once a person takes the run out of validation, shadows and stats.
    excluded: dict[str, Any] | None = None
    exported_at: float | None = None  # last `runs export`: retention keeps the run
    rerun_of: str | None = None  # the run whose trigger this live run ran again

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "workflow_version": self.workflow_version,
            "coordinator": self.coordinator,
            "trigger": self.trigger,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "usage": self.usage,
            "mode": self.mode,
            "source_run": self.source_run,
            "flag": self.flag,
            "plan_diff": self.plan_diff,
            "queue_position": self.queue_position or None,
            "excluded": self.excluded,
            "exported_at": self.exported_at,
            "rerun_of": self.rerun_of,
            "events": [
                {"seq": e.seq, "ts": e.ts, "kind": e.kind, "data": e.data} for e in self.events
            ],
        }


class StoreError(TandemError):
    """The run store cannot be written or read: a full disk, a read-only or damaged file."""

    def __init__(self, path: Path, error: Exception) -> None:
        hint = f"; free space in {path.parent}" if "full" in str(error) else ""
        super().__init__(f"the run store {path} cannot be used: {error}{hint}")
        self.path = path


@dataclass(frozen=True)
class RunQuery:
    """Which runs to list: empty strings match everything; times are unix seconds."""

    workflow: str = ""
    status: str = ""
    coordinator: str = ""
    mode: str = ""
    modes: tuple[str, ...] = ()  # any of these, when set
    flagged: bool = False
    # Leave out excluded runs, and the shadows and replays made from them.
    without_excluded: bool = False
    since: float = 0.0
    until: float = float("inf")
    # Keyset paging: with `until`, the runs before (until, before_id) in the list's order.
    before_id: str = ""
    limit: int = 50


def _owner_only(database: Path) -> None:
    """The store holds triggers, tool results and outputs: readable by its owner alone. The
    database is made 0600 before SQLite opens it, and SQLite gives its WAL and shared-memory
    files the database's mode; files an older version left are narrowed too."""
    # Only a file that is not there yet is opened: closing a descriptor of a database this
    # process has open elsewhere would drop SQLite's POSIX locks on it.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)


class RunStore:
    # Which SQL the database speaks, for the few statements written differently per
    # database (a claim's row lock: PostgreSQL's FOR UPDATE SKIP LOCKED).
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[tuple[str, int, float, str, str]] = []
        # Ends of runs the store could not write yet (a full disk), by run: written with
        # the next statement that gets through, and shown by every read meanwhile.
        self._ends: dict[str, tuple[str, str, str | None, str, float]] = {}
        self._flush_timer: asyncio.TimerHandle | None = None
        # Called with a run's id when it is made or its status or flag changes (the
        # console's live runs page).
        self.watchers: list[Callable[[str], None]] = []
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _owner_only(path)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self._flush_before()
        for run_id, (status, *_) in self._ends.items():
            log.error("run %s: its end (%s) is still not recorded", run_id, status)
        self._db.close()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """One statement, after the buffered events (so reads see them and a run's end is
        written after its trace); a store that cannot be read or written is a StoreError
        that names the file (a full disk above all), never a bare sqlite3 error."""
        self._flush_before()
        try:
            return self._db.execute(sql, params)
        except sqlite3.OperationalError as error:
            raise StoreError(self.path, error) from error

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Callable[..., Any]]:
        """Statements that read and write as one step (a claim): yields `execute(sql,
        params)`, with `?` placeholders, inside a transaction that holds the write lock from
        its start and commits at the end, or rolls back on an exception."""
        self._flush_before()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise StoreError(self.path, error) from error

        def execute(sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
            try:
                return self._db.execute(sql, params)
            except sqlite3.OperationalError as error:
                raise StoreError(self.path, error) from error

        try:
            yield execute
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _changed(self, run_id: str) -> None:
        for watcher in self.watchers:
            watcher(run_id)

    def create(self, record: RunRecord) -> None:
        self._run(
            "INSERT INTO runs (id, workflow, workflow_version, coordinator, trigger_json, status,"
            " created_at, usage_json, host_pid, mode, source_run, rerun_of)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ),
        )
        self._changed(record.id)

    def keep_version(self, version: str, workflow: str, content: dict[str, Any]) -> None:
        self._run(
            "INSERT OR IGNORE INTO workflow_versions (version, workflow, content_json, created_at)"
            " VALUES (?, ?, ?, ?)",
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
    ) -> None:
        """Record a run's end, after its trace. A store that cannot take it now (a full
        disk) keeps it to write with the next statement that gets through; reads show it
        meanwhile, so the run never looks as if it still ran."""
        self._ends[run_id] = (status, json.dumps(output), error, json.dumps(usage), at)
        self._flush_before()
        self._changed(run_id)

    def _write_ends(self) -> None:
        for run_id, (status, output, error, usage, at) in list(self._ends.items()):
            try:
                self._db.execute(
                    "UPDATE runs SET status=?, output_json=?, error=?, usage_json=?,"
                    " finished_at=? WHERE id=?",
                    (status, output, error, usage, at, run_id),
                )
            except sqlite3.OperationalError as error:
                raise StoreError(self.path, error) from error
            del self._ends[run_id]

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

    def flush(self) -> None:
        """Commit the buffered events, in one transaction."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        try:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO events (run_id, seq, ts, kind, data_json) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            self._pending = rows + self._pending  # kept for the next try
            raise StoreError(self.path, error) from error

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
            "INSERT OR IGNORE INTO webhook_deliveries (workflow, delivery, received_at)"
            " VALUES (?, ?, ?)",
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

    def mark_interrupted(self) -> list[str]:
        """Runs a host process that is gone left started are `interrupted`; the runs it
        left queued stay queued, for the next host to start (`adopt_queued`)."""
        started = tuple(status for status in ACTIVE if status != "queued")
        rows = self._run(
            f"SELECT id, host_pid FROM runs WHERE status IN {started}"  # noqa: S608 - constants
        ).fetchall()
        orphaned = [run_id for run_id, pid in rows if not _alive(pid) or pid == os.getpid()]
        now = time.time()
        for run_id in orphaned:
            self._run(
                "UPDATE runs SET status='interrupted', finished_at=?,"
                " error='the host stopped before the run finished' WHERE id=?",
                (now, run_id),
            )
        return orphaned

    def adopt_queued(self) -> list[RunRecord]:
        """The queued runs of hosts that are gone, oldest first, now this host's."""
        rows = self._run(
            "SELECT id, host_pid FROM runs WHERE status='queued' ORDER BY created_at"
        ).fetchall()
        adopted = []
        for run_id, pid in rows:
            if _alive(pid) and pid != os.getpid():
                continue  # another live host's queue
            self._run("UPDATE runs SET host_pid=? WHERE id=?", (os.getpid(), run_id))
            record = self.get(run_id, events=False)
            if record is not None:
                adopted.append(record)
        return adopted

    def host_pid(self, run_id: str) -> int | None:
        """The process of the host that runs (or ran) the run; None for no such run."""
        row = self._run("SELECT host_pid FROM runs WHERE id=?", (run_id,)).fetchone()
        return None if row is None else int(row[0])

    def get(
        self, run_id: str, *, events: bool = True, kinds: Sequence[str] = ()
    ) -> RunRecord | None:
        """The run, with its events (only those of `kinds`, when given)."""
        row = self._run("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            return None
        record = self._shown(_record(row))
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
        cursor = self._run(
            "SELECT seq, ts, kind, data_json FROM events WHERE run_id=? AND seq>? ORDER BY seq",
            (run_id, after),
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
        sql = f"SELECT * FROM runs WHERE {conditions} ORDER BY created_at DESC, id DESC LIMIT ?"  # noqa: S608
        rows = self._run(sql, (*params, q.limit)).fetchall()
        records = [self._shown(_record(row)) for row in rows]
        return [r for r in records if not q.status or r.status == q.status]


def _record(row: tuple[Any, ...]) -> RunRecord:
    (
        run_id,
        workflow,
        version,
        coordinator,
        trigger_json,
        status,
        output_json,
        error,
        created_at,
        started_at,
        finished_at,
        usage_json,
        _pid,
        mode,
        source_run,
        flag_json,
        plan_diff_json,
        excluded_json,
        exported_at,
        rerun_of,
    ) = row[:20]  # the columns after these are the cluster's (tandem.cluster.schema)
    return RunRecord(
        id=run_id,
        workflow=workflow,
        workflow_version=version,
        coordinator=coordinator,
        trigger=json.loads(trigger_json),
        status=status,
        output=json.loads(output_json) if output_json else None,
        error=error,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        usage={**dict.fromkeys(USAGE_KEYS, 0), **json.loads(usage_json)},
        mode=mode,
        source_run=source_run,
        flag=json.loads(flag_json) if flag_json else None,
        plan_diff=json.loads(plan_diff_json) if plan_diff_json else None,
        excluded=json.loads(excluded_json) if excluded_json else None,
        exported_at=exported_at,
        rerun_of=rerun_of,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
