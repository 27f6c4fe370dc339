"""`tandem store migrate|copy`: the run store's schema, and moving a store's runs into
another (a SQLite store into PostgreSQL). Both open the store directly; no daemon needed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, UsageError

if TYPE_CHECKING:
    from tandem.config import ProjectConfig


def add_parser(commands: Any) -> None:
    store = commands.add_parser(
        "store", help="the run store: `store migrate` its schema, `store copy` runs into another"
    )
    verbs = store.add_subparsers(dest="store_command", metavar="migrate|copy", required=True)
    verbs.add_parser(
        "migrate",
        help="apply the schema migrations the store lacks (a daemon also does at start)",
    )
    copy = verbs.add_parser(
        "copy",
        help="copy a store's runs, traces, workflow versions and deliveries into another;"
        " rows already there are kept but for runs found active, so it can run again",
    )
    copy.add_argument(
        "--from",
        dest="source",
        help="the store to read: a SQLite file or a postgresql:// URL"
        " (default: the state folder's runs.sqlite3)",
    )
    copy.add_argument(
        "--to",
        dest="target",
        help="the store to write: a postgresql:// URL or a SQLite file"
        " (default: the configured store, when it is PostgreSQL)",
    )


def cmd_store(config: ProjectConfig, args: argparse.Namespace) -> int:
    if args.store_command == "migrate":
        return _migrate(config)
    return _copy(config, args.source, args.target)


def _migrate(config: ProjectConfig) -> int:
    from tandem.store.migrations import known
    from tandem.store.postgres import migrate_database, shown_url
    from tandem.store.sqlite import SqliteDatabase

    if config.store_url is None:
        sqlite = SqliteDatabase(config.database)  # migrated as it opens, as a daemon's is
        sqlite.close()
        applied, where = sqlite.migrated, str(config.database)
    else:
        applied, where = migrate_database(config.store_url), shown_url(config.store_url)
    for migration in applied:
        print(f"applied {migration.name}")
    newest = known()[-1].version
    print(f"{where}: schema at version {newest}", end="")
    print("" if applied else " (nothing to apply)")
    return EXIT_OK


def _copy(config: ProjectConfig, source: str | None, target: str | None) -> int:
    from tandem.config import POSTGRES_SCHEMES
    from tandem.store import RunStore
    from tandem.store.copy import copy_store

    def location(text: str) -> Path | str:
        return text if text.startswith(POSTGRES_SCHEMES) else Path(text).resolve()

    source_at = location(source) if source else config.database
    target_at = location(target) if target else config.store_url
    if target_at is None:
        raise UsageError("store copy: say where to with --to postgresql://...")
    if isinstance(source_at, Path) and not source_at.is_file():
        raise UsageError(f"store copy: no store at {source_at}")
    if source_at == target_at:
        raise UsageError("store copy: the source and the target are the same store")
    reading, writing = RunStore(source_at), RunStore(target_at)
    try:
        counts = copy_store(reading, writing)
        where = writing.where
    finally:
        reading.close()
        writing.close()
    for table, done in counts.items():
        updated = f", {done.updated} brought up to date" if done.updated else ""
        print(f"{table}: {done.read} read, {done.added} new{updated}")
    active = counts["runs"].active
    if active:
        print(
            f"{active} runs active in the source (queued, running or waiting) copied as they"
            " stand: no daemon here runs them; copy again once they ended to bring their ends"
        )
    print(f"copied into {where}")
    return EXIT_OK
