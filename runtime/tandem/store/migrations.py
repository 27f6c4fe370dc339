"""PostgreSQL's schema, as versioned migrations: `migrations/NNNN_name.sql`, applied in
order and recorded in `schema_migrations`, under an advisory lock so daemons starting
together apply each one once. SQLite applies the same files the same way (sqlite.py), under
its write lock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .records import StoreError

if TYPE_CHECKING:
    import psycopg

FOLDER = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock's key for "the run store's schema" ("tandem" in ASCII).
LOCK_KEY = 0x74616E64656D
VERSIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def known() -> list[Migration]:
    """This Tandem's migrations, oldest first."""
    found = []
    for path in sorted(FOLDER.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        found.append(Migration(int(path.name[:4]), path.stem, path.read_text()))
    return found


def lacking(migrations: list[Migration], applied: set[int], where: str) -> list[Migration]:
    """The migrations a database that has `applied` lacks. A store migrated by a newer
    Tandem is refused, since this one would not know its columns."""
    newest = migrations[-1].version
    if applied and max(applied) > newest:
        raise StoreError(
            where,
            f"its schema is at version {max(applied)}, newer than this Tandem's"
            f" ({newest}); upgrade Tandem",
        )
    return [m for m in migrations if m.version not in applied]


def statements(sql: str) -> list[str]:
    """A migration's statements (its files hold no `;` but at statements' ends)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def migrate(db: psycopg.Connection[Any], where: str) -> list[Migration]:
    """Apply the migrations the database lacks, in one transaction; returns them. A store
    migrated by a newer Tandem is refused, since this one would not know its columns. An
    up-to-date store is only read (no lock, no DDL), so a role granted just reading and
    writing the tables serves a store another role migrated."""
    migrations = known()
    if db.execute("SELECT to_regclass('schema_migrations')").fetchone() != (None,):
        applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        if not lacking(migrations, applied, where):
            return []
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        db.execute(VERSIONS_TABLE)
        applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        pending = lacking(migrations, applied, where)
        for migration in pending:
            db.execute(migration.sql.encode())
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.name, time.time()),
            )
    return pending
