"""A throwaway PostgreSQL for the tests and benchmarks: Debian's binaries (make install),
a cluster made by initdb in a temporary folder and run as an unprivileged user
(PostgreSQL refuses root), listening on a socket in that folder and on a free loopback
port. One per test process (pytest-xdist workers each start their own); each test gets a
database of its own."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

NOBODY = 65534
# The superuser every test database belongs to (trust: no password), and a user with a
# password over TCP, for the tests of a wrong password.
SUPERUSER = "tandem"
PASSWORD_USER = "secretive"  # noqa: S105 - a throwaway server's test user
PASSWORD = "s3cret-pw-never-printed"  # noqa: S105 - a throwaway server's


def binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgServer:
    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed: run `make install`")
        self.bin = bin_dir
        # In /tmp, not pytest's 0700 folder: the server's user must reach it.
        self.base = Path(tempfile.mkdtemp(prefix="tandem-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        self.sockets.mkdir()
        self.port = _free_port()
        self._as_server_user = os.getuid() == 0
        if self._as_server_user:
            for path in (self.base, self.sockets):
                os.chown(path, NOBODY, NOBODY)
        self._names = itertools.count()
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "--no-sync")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {SUPERUSER} 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        self.start()
        with self.admin() as db:
            db.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_server_user:
            command = [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                *command,
            ]
        subprocess.run(command, check=True, capture_output=True, timeout=60, cwd=self.base)

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.sockets}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.base / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "30", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str, user: str = SUPERUSER, password: str = "") -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    @contextlib.contextmanager
    def admin(self, database: str = "postgres") -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        with psycopg.connect(
            dbname=database, user=SUPERUSER, host=str(self.sockets), port=self.port, autocommit=True
        ) as db:
            yield db

    def fresh_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.admin() as db:
            db.execute(f"CREATE DATABASE {name} TEMPLATE template0")
            db.execute(f"GRANT ALL ON DATABASE {name} TO {PASSWORD_USER}")
        return self.url(name)

    @contextlib.contextmanager
    def unreachable(self, database: str) -> Iterator[None]:
        """The database refuses connections and its open ones are cut, as when its server
        is gone, without stopping the server other tests share; back afterwards."""
        with self.admin() as db:
            db.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s",
                (database,),
            )
        try:
            yield
        finally:
            with self.admin() as db:
                db.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
