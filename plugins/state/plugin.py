"""Durable key-value state on SQLite, one namespace per workflow.

Workflows use it to remember what they already handled: `state.add_once(key)` is an atomic
check-and-set that answers True the first time a key is seen.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

from pydantic import JsonValue
from tandem_sdk import RunContext, tool

_local = threading.local()


def _db() -> sqlite3.Connection:
    connection: sqlite3.Connection | None = getattr(_local, "db", None)
    if connection is None:
        folder = Path(os.environ.get("TANDEM_PLUGIN_DATA", "."))
        connection = sqlite3.connect(folder / "state.sqlite3", isolation_level=None, timeout=10)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS kv (workflow TEXT, key TEXT, value TEXT,"
            " PRIMARY KEY (workflow, key))"
        )
        _local.db = connection
    return connection


@tool(read_only=True, open_world=False)
def get(key: str, ctx: RunContext, default: JsonValue = None) -> JsonValue:
    """Read the value stored under a key, or `default` when there is none.

    Args:
        key: the key to read.
        default: what to return when the key is not set.
    """
    row = (
        _db()
        .execute("SELECT value FROM kv WHERE workflow=? AND key=?", (ctx.workflow, key))
        .fetchone()
    )
    return json.loads(row[0]) if row else default


@tool(destructive=True, idempotent=True, open_world=False, dry_run_result=None)
def set(key: str, value: JsonValue, ctx: RunContext) -> None:
    """Store a JSON value under a key, replacing what was there.

    Args:
        key: the key to write.
        value: any JSON value.
    """
    _db().execute(
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
    cursor = _db().execute("DELETE FROM kv WHERE workflow=? AND key=?", (ctx.workflow, key))
    return cursor.rowcount > 0


@tool(read_only=True, open_world=False)
def keys(ctx: RunContext, prefix: str = "", limit: int = 1000) -> list[str]:
    """List stored keys that start with a prefix, in order.

    Args:
        prefix: only keys starting with this.
        limit: at most this many keys.
    """
    rows = (
        _db()
        .execute(
            "SELECT key FROM kv WHERE workflow=? AND substr(key, 1, ?)=? ORDER BY key LIMIT ?",
            (ctx.workflow, len(prefix), prefix, limit),
        )
        .fetchall()
    )
    return [key for (key,) in rows]


@tool(destructive=False, idempotent=True, open_world=False, dry_run_result=True)
def add_once(key: str, ctx: RunContext) -> bool:
    """Mark a key as handled. True the first time, False if it was already marked: an atomic
    check-and-set for "have I handled this already?".

    Args:
        key: what was handled, e.g. a message id.
    """
    cursor = _db().execute(
        "INSERT OR IGNORE INTO kv (workflow, key, value) VALUES (?, ?, 'true')", (ctx.workflow, key)
    )
    return cursor.rowcount == 1


# A dry run answers as a fresh counter would: a number, as scripts expect.
@tool(destructive=False, idempotent=False, open_world=False, dry_run_result=1)
def increment(key: str, ctx: RunContext, by: int = 1) -> int:
    """Add to an integer counter (missing counts as 0) and return the new value.

    Args:
        key: the counter's key.
        by: how much to add.
    """
    db = _db()
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute(
            "SELECT value FROM kv WHERE workflow=? AND key=?", (ctx.workflow, key)
        ).fetchone()
        current = json.loads(row[0]) if row else 0
        if not isinstance(current, int):
            raise TypeError(f"{key!r} holds {type(current).__name__}, not an integer counter")
        value = current + by
        db.execute(
            "INSERT INTO kv (workflow, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (workflow, key) DO UPDATE SET value=excluded.value",
            (ctx.workflow, key, json.dumps(value)),
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return value
