"""The run store's PostgreSQL database: one store shared by every daemon that names it.

Statements come with `?` placeholders (the SQL both databases run) and run in autocommit
mode, so none holds a lock longer than itself: single statements on one connection the
store keeps from its pool (a pool's lending costs more than a statement on loopback;
psycopg serializes threads on it), a transaction or a batch of events on a connection of
its own from the pool. A server that cannot be reached is a StoreError (`unavailable`)
within seconds, never a pool's long wait; the pool checks a connection before lending it,
and the kept one is checked after it idled, so the store works again as soon as the
server is back."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from .migrations import Migration, migrate
from .records import StoreError

# Seconds to reach the server: a wrong host or a stopped server is said at once.
CONNECT_TIMEOUT_S = 5
# The store's statements are short and run on the daemon's event loop: one the server
# holds longer (a lock another client keeps) is cancelled by the server after this many
# seconds, and one whose server went silent (a partition) is given up by the kernel
# after TCP_SILENT_S, so neither freezes the daemon for minutes. Migrations have no limit.
STATEMENT_TIMEOUT_S = 5.0
TCP_SILENT_S = 10
# Seconds a statement waits for a pooled connection before the store says it cannot work.
POOL_TIMEOUT_S = 1.0
# After that, statements fail at once for this long (the pool reconnects behind them), so
# a daemon whose database is gone is not held up by every statement in turn.
DOWN_FOR_S = 2.0
# Connections per store: the daemon's event loop is one writer; retention and the
# console's reads in threads are the others.
POOL_SIZE = 4
# A kept connection idle this long is checked before its next statement (a server
# restarted meanwhile has closed it).
CHECK_AFTER_IDLE_S = 1.0
# What a database error is when the server, not the statement, is the trouble.
_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def connection_options(url: str, statement_timeout_s: float) -> dict[str, Any]:
    """libpq's options for the store's connections: keepalives and a TCP timeout, so a
    server gone silent is noticed within TCP_SILENT_S, and the statement timeout (0: none)
    after the URL's own `options`."""
    given = ""
    with contextlib.suppress(psycopg.ProgrammingError):
        given = str(conninfo_to_dict(url).get("options") or "")
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": TCP_SILENT_S * 1000,
        "options": f"{given} -c statement_timeout={int(statement_timeout_s * 1000)}".strip(),
    }


def shown_url(url: str) -> str:
    """The URL as messages name it: `postgresql://user@host:port/db`, never a password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(a URL that does not parse)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


def _written_passwords(url: str) -> list[str]:
    """The password as written in a URL, after `scheme://user:` up to the first `@` and up
    to the last one (a URL that does not parse may mean either)."""
    _, scheme, rest = url.partition("://")
    user, colon, after = rest.partition(":")
    if not scheme or not colon or "/" in user or "@" in user:
        return []
    return [after[:end] for end in {after.find("@"), after.rfind("@")} if end > 0]


def _secrets(url: str) -> list[str]:
    """Every form of the URL's password a message may quote: as parsed, and as written,
    raw and percent-decoded, whether the URL parses or not; longest first."""
    found: set[str] = set()
    with contextlib.suppress(psycopg.ProgrammingError):
        found.add(str(conninfo_to_dict(url).get("password") or ""))
    for written in _written_passwords(url):
        found.update((written, urllib.parse.unquote(written)))
    return sorted(found - {""}, key=len, reverse=True)


def _store_error(where: str, url: str, error: Exception) -> StoreError:
    message = str(error) or type(error).__name__
    # Drivers do not print a password, but a message that quotes the URL or a token of
    # one that does not parse would.
    for secret in _secrets(url):
        message = message.replace(secret, "***")
    return StoreError(where, message, unavailable=isinstance(error, _UNREACHABLE))


def migrate_database(url: str) -> list[Migration]:
    """Apply the migrations the database lacks (on a connection of its own, whose error is
    the server's own words within seconds); returns them."""
    where = shown_url(url)
    try:
        options = connection_options(url, 0)
        with psycopg.connect(url, autocommit=True, **options) as db:
            return migrate(db, where)
    except psycopg.Error as error:
        raise _store_error(where, url, error) from None


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> bytes:
    """`?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s").encode()


def _run(db: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> Rows:
    # Without parameters psycopg reads the SQL as written, `%` and all.
    return Rows(db.execute(_pg(sql), params) if params else db.execute(sql.encode()))


class Rows:
    """A statement's result, read whole before its connection goes back to the pool; reads
    as a DB-API cursor does (fetchone, fetchall, iteration, rowcount)."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self.rowcount = cursor.rowcount
        self._rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
        self._next = 0

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())

    def close(self) -> None:
        self._rows = []


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.where = shown_url(url)
        self._url = url
        # Until when statements fail at once, and why (see DOWN_FOR_S).
        self._down = (0.0, "")
        self.migrated = migrate_database(url)
        self._pool = self._new_pool()
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
        except PoolTimeout as error:
            self._pool.close()
            raise self._error(error) from None
        # Set when no connection could be had: the next statement, past DOWN_FOR_S, opens
        # a new pool (see _renew).
        self._stale = False
        # The connection single statements use, and when it was last used.
        self._kept: psycopg.Connection[tuple[Any, ...]] | None = None
        self._used = 0.0
        self._keeping = threading.Lock()

    def _new_pool(self) -> ConnectionPool[psycopg.Connection[tuple[Any, ...]]]:
        return ConnectionPool(
            self._url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, **connection_options(self._url, STATEMENT_TIMEOUT_S)},
            timeout=POOL_TIMEOUT_S,
            check=ConnectionPool.check_connection,
            open=False,
            name="tandem-store",
        )

    def _renew(self) -> None:
        """A pool that found no connection tries again on a growing backoff (1, 2, 4, 8 s),
        so a daemon could stay away from the store for seconds after it is back, and the
        other daemons take its runs for a dead daemon's: a new pool connects at once."""
        with self._keeping:
            old, kept = self._pool, self._kept
            self._pool, self._kept, self._stale = self._new_pool(), None, False
            self._pool.open(wait=False)
        if kept is not None:
            kept.close()
        old.close(timeout=0)

    def _error(self, error: Exception) -> StoreError:
        failure = _store_error(self.where, self._url, error)
        if isinstance(error, PoolTimeout):  # no connection to be had: the server is gone
            self._down = (time.monotonic() + DOWN_FOR_S, failure.detail)
            self._stale = True
        return failure

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        with self._keeping:
            kept = self._kept
            if kept is not None and time.monotonic() - self._used > CHECK_AFTER_IDLE_S:
                try:
                    ConnectionPool.check_connection(kept)
                except psycopg.Error:
                    self._pool.putconn(kept)  # the pool discards a broken connection
                    self._kept = kept = None
            if kept is None:
                kept = self._kept = self._pool.getconn()
            self._used = time.monotonic()
            return kept

    def _drop(self, kept: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Give a kept connection that failed back to the pool, which discards it."""
        with self._keeping:
            if self._kept is kept:
                self._kept = None
                self._pool.putconn(kept)

    def _check_up(self) -> None:
        until, message = self._down
        if time.monotonic() < until:
            raise StoreError(self.where, message, unavailable=True)
        if self._stale:
            self._renew()

    def close(self) -> None:
        if self._kept is not None:
            self._pool.putconn(self._kept)
        self._pool.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        self._check_up()
        kept = None
        try:
            kept = self._connection()
            return _run(kept, sql, params)
        except _UNREACHABLE as error:
            if kept is not None:
                self._drop(kept)
            raise self._error(error) from error

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._check_up()
        try:
            with self._pool.connection() as db, db.transaction():
                db.cursor().executemany(_pg(sql), rows)
        except _UNREACHABLE as error:
            raise self._error(error) from error

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Callable[..., Any]]:
        self._check_up()
        try:
            with self._pool.connection() as db, db.transaction():

                def execute(sql: str, params: Sequence[Any] = ()) -> Rows:
                    return _run(db, sql, params)

                yield execute
        except _UNREACHABLE as error:
            raise self._error(error) from error
