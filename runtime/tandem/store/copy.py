"""`tandem store copy`: a store's runs, traces, workflow versions and webhook deliveries
into another store (a SQLite file into PostgreSQL, above all), read and written in batches
in key order, each batch one transaction. Rows the target has already are left as they
are, but for runs the copy found active: so a copy can be run again (after an
interruption, or to take the runs made and ended since).

A run queued, running or waiting in the source belongs to the daemon serving the source: it
is copied as it stands, held by COPIED (no daemon of the target claims, renews or reaps
it), and brought up to date by the next copy, which releases it once it has ended."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .records import ACTIVE, RUN_COLUMNS
from .runstore import RunStore

BATCH = 500
# The owner of a run the copy found active: no daemon's id, so none takes it.
COPIED = "tandem store copy"
# Each table with its columns, its key (the first columns) and, for runs, the columns a
# later copy brings up to date; in an order that keeps references whole (a run before its
# events).
TABLES = (
    ("runs", f"{RUN_COLUMNS}, owner", "id"),
    ("events", "run_id, seq, ts, kind, data_json", "run_id, seq"),
    ("workflow_versions", "version, workflow, content_json, created_at", "version"),
    ("webhook_deliveries", "workflow, delivery, run_id, received_at", "workflow, delivery"),
)
_STATUS = [name.strip() for name in RUN_COLUMNS.split(",")].index("status")
_ACTIVE_SQL = ", ".join(f"'{status}'" for status in ACTIVE)


@dataclass
class Copied:
    """One table's copy: rows read, rows the target did not have, rows brought up to date
    (runs the last copy found active), runs still active in the source."""

    read: int = 0
    added: int = 0
    updated: int = 0
    active: int = 0


def _insert(table: str, columns: str, key: str) -> str:
    names = [name.strip() for name in columns.split(",")]
    insert = f"INSERT INTO {table} ({columns}) VALUES ({','.join('?' * len(names))})"  # noqa: S608 - constants
    if table != "runs":
        return f"{insert} ON CONFLICT ({key}) DO NOTHING"
    refreshed = ", ".join(f"{name}=excluded.{name}" for name in names if name != "id")
    return (
        f"{insert} ON CONFLICT (id) DO UPDATE SET {refreshed}"
        f" WHERE runs.status IN ({_ACTIVE_SQL}) OR runs.owner='{COPIED}'"
    )


def _batches(
    store: RunStore, table: str, columns: str, key: str
) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows, BATCH at a time in key order (never the whole table at once)."""
    keys = len(key.split(","))
    after: tuple[Any, ...] = ()
    while True:
        where = f" WHERE ({key}) > ({','.join('?' * keys)})" if after else ""
        batch = store._run(
            f"SELECT {columns} FROM {table}{where} ORDER BY {key} LIMIT ?",  # noqa: S608 - constants
            (*after, BATCH),
        ).fetchall()
        if not batch:
            return
        yield batch
        after = tuple(batch[-1][:keys])


def copy_store(source: RunStore, target: RunStore) -> dict[str, Copied]:
    """Per table, what the copy did."""
    counts = {}
    for table, columns, key in TABLES:
        insert, done = _insert(table, columns, key), Copied()
        for batch in _batches(source, table, columns, key):
            there = 0
            if table == "runs":  # an active run is held by COPIED, an ended one by nobody
                batch = [(*row[:-1], COPIED if row[_STATUS] in ACTIVE else None) for row in batch]
                done.active += sum(row[-1] == COPIED for row in batch)
            with target.transaction() as execute:
                if table == "runs":
                    there = execute(
                        f"SELECT count(*) FROM runs WHERE id IN ({','.join('?' * len(batch))})",  # noqa: S608
                        [row[0] for row in batch],
                    ).fetchone()[0]
                written = sum(execute(insert, row).rowcount for row in batch)
            added = written if table != "runs" else len(batch) - there
            done.read, done.added = done.read + len(batch), done.added + added
            done.updated += written - added
        counts[table] = done
    return counts
