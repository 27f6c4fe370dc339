"""Durable key-value state, one namespace per workflow: on SQLite in the plugin's data
folder, or, when the run store is PostgreSQL, in that database (the host gives this plugin
its URL), so every daemon of a cluster sees the same state.

Workflows use it to remember what they already handled: `state.add_once(key)` is an atomic
check-and-set that answers True the first time a key is seen.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import JsonValue
from tandem_sdk import RunContext, tool

# The run store's PostgreSQL URL, given by the host to this plugin alone.
DATABASE_URL_VARIABLE = "STATE_DATABASE_URL"
_TABLE = (
    "CREATE TABLE IF NOT EXISTS kv (workflow TEXT, key TEXT, value TEXT,"
    " PRIMARY KEY (workflow, key))"
)
_local = threading.local()


class _Kv:
    """One connection (a thread's) to where the state is; statements use `?` placeholders,
    in the SQL both databases run."""

    def __init__(self) -> None:
        url = os.environ.get(DATABASE_URL_VARIABLE)
        self.postgres = bool(url)
        if url:
            import psycopg

            self._pg = psycopg.connect(url, autocommit=True, connect_timeout=5)
            made = self._pg.execute("SELECT to_regclass('plugin_state_kv')").fetchone()
            if made == (None,):  # DDL only when needed: a role may have DML rights alone
                with self._pg.transaction():  # two daemons' plugins may start together
                    self._pg.execute("SELECT pg_advisory_xact_lock(hashtext('tandem state kv'))")
                    self._pg.execute(_TABLE.replace(" kv ", " plugin_state_kv ").encode())
            return
        folder = Path(os.environ.get("TANDEM_PLUGIN_DATA", "."))
        self._db = sqlite3.connect(folder / "state.sqlite3", isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_TABLE)

    def run(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Any], int]:
        """The rows and the row count."""
        if not self.postgres:
            cursor = self._db.execute(sql, params)
            return cursor.fetchall(), cursor.rowcount
        # In the shared database the table's name says whose it is.
        sql = sql.replace("?", "%s").replace(" kv ", " plugin_state_kv ")
        cursor = self._pg.execute(sql.encode(), params)
        return (cursor.fetchall() if cursor.description else []), cursor.rowcount

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self.postgres:
            with self._pg.transaction():
                yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _kv() -> _Kv:
    kv: _Kv | None = getattr(_local, "kv", None)
    if kv is None or (kv.postgres and kv._pg.closed):
        kv = _local.kv = _Kv()
    return kv


@tool(read_only=True, open_world=False)
def get(key: str, ctx: RunContext, default: JsonValue = None) -> JsonValue:
    """Read the value stored under a key, or `default` when there is none.

    Args:
        key: the key to read.
        default: what to return when the key is not set.
    """
    rows, _ = _kv().run("SELECT value FROM kv WHERE workflow=? AND key=?", (ctx.workflow, key))
    return json.loads(rows[0][0]) if rows else default


@tool(destructive=True, idempotent=True, open_world=False, dry_run_result=None)
def set(key: str, value: JsonValue, ctx: RunContext) -> None:
    """Store a JSON value under a key, replacing what was there.

    Args:
        key: the key to write.
        value: any JSON value.
    """
    _kv().run(
        "INSERT INTO kv (workflow, key, value) VALUES (?, ?, ?)"
        " ON CONFLICT (workflow, key) DO UPDATE SET value=excluded.value",
        (ctx.workflow, key, json.dumps(value)),
    )


@tool(destructive=True, idempotent=True, open_world=False, dry_run_result=False)
def delete(key: str, ctx: RunContext) -> bool:
    """Remove a key. Returns whether it existed.

    Args:
        key: the key to remove.
    """
    _, count = _kv().run("DELETE FROM kv WHERE workflow=? AND key=?", (ctx.workflow, key))
    return count > 0


@tool(read_only=True, open_world=False)
def keys(ctx: RunContext, prefix: str = "", limit: int = 1000) -> list[str]:
    """List stored keys that start with a prefix, in order.

    Args:
        prefix: only keys starting with this.
        limit: at most this many keys.
    """
    rows, _ = _kv().run(
        "SELECT key FROM kv WHERE workflow=? AND substr(key, 1, ?)=? ORDER BY key LIMIT ?",
        (ctx.workflow, len(prefix), prefix, limit),
    )
    return [key for (key,) in rows]


@tool(destructive=False, idempotent=True, open_world=False, dry_run_result=True)
def add_once(key: str, ctx: RunContext) -> bool:
    """Mark a key as handled. True the first time, False if it was already marked: an atomic
    check-and-set for "have I handled this already?".

    Args:
        key: what was handled, e.g. a message id.
    """
    _, count = _kv().run(
        "INSERT INTO kv (workflow, key, value) VALUES (?, ?, 'true')"
        " ON CONFLICT (workflow, key) DO NOTHING",
        (ctx.workflow, key),
    )
    return count == 1


# A dry run answers as a fresh counter would: a number, as scripts expect.
@tool(destructive=False, idempotent=False, open_world=False, dry_run_result=1)
def increment(key: str, ctx: RunContext, by: int = 1) -> int:
    """Add to an integer counter (missing counts as 0) and return the new value.

    Args:
        key: the counter's key.
        by: how much to add.
    """
    kv = _kv()
    with kv.transaction():
        # The row first, so PostgreSQL's FOR UPDATE has a row to lock (SQLite's BEGIN
        # IMMEDIATE holds the whole file): two daemons' increments both count.
        kv.run(
            "INSERT INTO kv (workflow, key, value) VALUES (?, ?, '0')"
            " ON CONFLICT (workflow, key) DO NOTHING",
            (ctx.workflow, key),
        )
        lock = " FOR UPDATE" if kv.postgres else ""
        rows, _ = kv.run(
            f"SELECT value FROM kv WHERE workflow=? AND key=?{lock}",  # noqa: S608 - a constant
            (ctx.workflow, key),
        )
        current = json.loads(rows[0][0])
        if not isinstance(current, int):
            raise TypeError(f"{key!r} holds {type(current).__name__}, not an integer counter")
        value = current + by
        kv.run(
            "UPDATE kv SET value=? WHERE workflow=? AND key=?",
            (json.dumps(value), ctx.workflow, key),
        )
    return value
