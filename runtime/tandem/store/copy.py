"""`tandem store copy`: a store's runs, traces, workflow versions and webhook deliveries
into another store (a SQLite file into PostgreSQL, above all), in batches, each batch one
transaction. Rows the target has already are left as they are, so a copy can be run again
(after an interruption, or to take the runs made since)."""

from __future__ import annotations

import itertools

from .records import RUN_COLUMNS
from .runstore import RunStore

BATCH = 500
# Each table with its columns and key, in an order that keeps references whole (a run
# before its events).
TABLES = (
    ("runs", RUN_COLUMNS, "id"),
    ("events", "run_id, seq, ts, kind, data_json", "run_id, seq"),
    ("workflow_versions", "version, workflow, content_json, created_at", "version"),
    ("webhook_deliveries", "workflow, delivery, run_id, received_at", "workflow, delivery"),
)


def copy_store(source: RunStore, target: RunStore) -> dict[str, tuple[int, int]]:
    """Per table: (rows read, rows the target did not have)."""
    counts = {}
    for table, columns, key in TABLES:
        marks = ",".join("?" * len(columns.split(",")))
        insert = (
            f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - constants
            f" ON CONFLICT ({key}) DO NOTHING"
        )
        rows = iter(source._run(f"SELECT {columns} FROM {table} ORDER BY {key}"))  # noqa: S608
        read = added = 0
        while batch := list(itertools.islice(rows, BATCH)):
            with target.transaction() as execute:
                for row in batch:
                    added += execute(insert, row).rowcount
            read += len(batch)
        counts[table] = (read, added)
    return counts
