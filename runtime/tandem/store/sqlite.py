"""The run store's SQLite database: a file in the state folder, nothing to set up."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .migrations import VERSIONS_TABLE, Migration, known, lacking, statements
from .records import StoreError

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

# SQLite has no ADD COLUMN IF NOT EXISTS: such a statement is made only for a missing column.
_ADD_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN IF NOT EXISTS (\w+) (.+)", re.DOTALL)


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


class SqliteDatabase:
    """One connection in autocommit mode; a transaction holds the write lock from its start
    (BEGIN IMMEDIATE), so a read-then-write step is one step beside other processes."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _owner_only(path)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self.migrated = self._migrate()

    def _migrate(self) -> list[Migration]:
        """PostgreSQL's migrations, each once, recorded as there; under the write lock, so
        daemons opening one file together apply each once. The first is safe on a store an
        earlier version made before versions were recorded (IF NOT EXISTS), which then
        gains the columns added since."""
        with self.transaction() as execute:
            execute(VERSIONS_TABLE)
            applied = {row[0] for row in execute("SELECT version FROM schema_migrations")}
            pending = lacking(known(), applied, self.where)
            for migration in pending:
                for statement in statements(migration.sql):
                    self._apply(execute, statement)
                if migration.version == 1:
                    for column, kind in _ADDED_COLUMNS.items():
                        self._apply(
                            execute, f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {column} {kind}"
                        )
                execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
        return pending

    def _apply(self, execute: Callable[..., Any], statement: str) -> None:
        added = _ADD_COLUMN.fullmatch(statement)
        if added is None:
            execute(statement)
            return
        table, column, kind = added.groups()
        if column not in {row[1] for row in execute(f"PRAGMA table_info({table})")}:
            execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self._db.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.OperationalError as error:
            raise StoreError(self.where, error) from error

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.transaction(immediate=False):
            try:
                self._db.executemany(sql, rows)
            except sqlite3.OperationalError as error:
                raise StoreError(self.where, error) from error

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = True) -> Iterator[Callable[..., Any]]:
        self.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield self.execute
            self.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
