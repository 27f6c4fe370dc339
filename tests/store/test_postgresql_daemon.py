"""A project whose store is PostgreSQL: the daemon runs on it, `tandem store` migrates and
copies into it, and a database it cannot use is one clear line at start, never its
password."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import Cli, Project, tandem
from tandem.store import Event, RunRecord, RunStore
from tandem.store.migrations import known
from tandem.testing.postgres import PASSWORD, PASSWORD_USER

SHARED = """
def handler(trigger, tools, virtual_files, subagent):
    s = tools.state
    return {"count": s.increment(key="runs"), "first": s.add_once(key="delivery:1")}
"""
COUNT = """
def handler(trigger, tools, virtual_files, subagent):
    return {"seen": trigger}
"""


def test_a_daemon_on_postgresql_runs_workflows_and_says_unavailable_while_it_is_gone(
    project: Project,
    start_daemon: Any,
    pg_server: Any,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (project.root / "tandem.yaml").write_text("store: ${TEST_STORE_URL}\n")
    project.workflow("count", script=COUNT)
    monkeypatch.setenv("TEST_STORE_URL", pg_url)
    daemon = start_daemon(project)
    record = daemon.run("count", {"n": 1})
    assert record.status == "succeeded", record.error
    listed = tandem(project, "runs", "--json")
    assert record.id in listed.stdout, listed.stdout + listed.stderr
    assert not (project.config.state_dir / "runs.sqlite3").exists()
    stored = RunStore(pg_url)
    try:
        assert stored.get(record.id).output == {"seen": {"n": 1}}  # type: ignore[union-attr]
    finally:
        stored.close()
    with pg_server.unreachable(pg_url.rsplit("/", 1)[1]):
        with pytest.raises(grpc.RpcError) as refused:
            daemon.client.trigger("count", {"n": 2}, None)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "127.0.0.1" in str(refused.value.details())
    assert _eventually_succeeds(daemon)


def _eventually_succeeds(daemon: Any) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            return bool(daemon.run("count", {"n": 3}).status == "succeeded")
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
    return False


def test_store_migrate_and_copy_move_a_sqlite_store_into_postgresql(
    project: Project, cli: Cli, pg_url: str
) -> None:
    sqlite = RunStore(project.config.database)
    for n in range(3):
        sqlite.create(RunRecord(f"r{n}", "count", "v1", "script", {"n": n}, "succeeded",
                                created_at=100.0 + n))  # fmt: skip
        sqlite.append_event(f"r{n}", Event(1, 101.0 + n, "log", {"n": n}))
    sqlite.keep_version("v1", "count", {"script": "print(1)"})
    assert sqlite.claim_delivery("count", "d-1")
    sqlite.close()
    (project.root / "tandem.yaml").write_text(f"store: {pg_url}\n")
    migrated = cli(project, "store", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert f"applied {known()[0].name}" in migrated.stdout
    again = cli(project, "store", "migrate")
    assert "nothing to apply" in again.stdout and "applied" not in again.stdout
    copied = cli(project, "store", "copy")
    assert copied.returncode == 0, copied.stderr
    assert "runs: 3 read, 3 new" in copied.stdout and "events: 3 read, 3 new" in copied.stdout
    assert "webhook_deliveries: 1 read, 1 new" in copied.stdout
    repeated = cli(project, "store", "copy")
    assert "runs: 3 read, 0 new" in repeated.stdout
    shared = RunStore(pg_url)
    try:
        record = shared.get("r2")
        assert record is not None and record.trigger == {"n": 2} and record.created_at == 102.0
        assert [e.data for e in record.events] == [{"n": 2}]
        assert shared.version_content("v1") == {"script": "print(1)"}
        assert not shared.claim_delivery("count", "d-1")
    finally:
        shared.close()


@pytest.mark.parametrize("fault", ["password", "database", "refused"])
def test_a_database_that_cannot_be_used_is_one_line_at_start_without_its_password(
    project: Project, pg_server: Any, pg_url: str, fault: str
) -> None:
    database = pg_url.rsplit("/", 1)[1]
    url = {
        "password": pg_server.url(database, PASSWORD_USER, "wrong-" + PASSWORD),
        "database": pg_server.url("no_such_db", PASSWORD_USER, PASSWORD),
        "refused": f"postgresql://{PASSWORD_USER}:{PASSWORD}@127.0.0.1:1/{database}",
    }[fault]
    project.workflow("count", script=COUNT)
    started = time.monotonic()
    served = tandem(project, "serve", "--no-reload", env={**os.environ, "TANDEM_DATABASE_URL": url})
    assert served.returncode == 2 and time.monotonic() - started < 15
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1, served.stderr
    assert PASSWORD not in served.stderr and "Traceback" not in served.stderr
    assert f"postgresql://{PASSWORD_USER}@127.0.0.1:" in lines[0]
    expected = {
        "password": "password authentication failed",
        "database": "does not exist",
        "refused": "refused",
    }[fault]
    assert expected in lines[0], lines[0]
    assert json.dumps(lines[0])  # one printable line
    assert not Path(project.config.state_dir / "runs.sqlite3").exists()


def test_copy_again_brings_up_to_date_the_runs_it_found_active_and_no_daemon_takes_them(
    tmp_path: Path, pg_url: str
) -> None:
    from tandem.cluster.claims import any_claimable
    from tandem.store.copy import copy_store

    source, target = RunStore(tmp_path / "runs.sqlite3"), RunStore(pg_url)
    try:
        for run_id, status in (("ran", "running"), ("queued", "queued"), ("done", "succeeded")):
            source.create(RunRecord(run_id, "count", "v1", "script", {}, status, created_at=1.0))
        first = copy_store(source, target)
        assert (first["runs"].added, first["runs"].active) == (3, 2)
        assert target.get("ran").status == "running"  # type: ignore[union-attr]
        assert not any_claimable(target, ["count"])  # the source's daemon runs it
        source.finish("ran", "succeeded", {"ok": True}, None, {}, 2.0)
        source.finish("done", "failed", None, "changed after it ended", {}, 2.0)
        again = copy_store(source, target)
        assert (again["runs"].added, again["runs"].updated, again["runs"].active) == (0, 2, 1)
        ended = target.get("ran")
        assert ended is not None and (ended.status, ended.output) == ("succeeded", {"ok": True})
        assert target.get("done").status == "succeeded"  # type: ignore[union-attr]
        assert target._run("SELECT owner FROM runs WHERE id='ran'").fetchone() == (None,)
    finally:
        source.close()
        target.close()


def test_a_role_granted_only_reads_and_writes_serves_a_migrated_store(
    tmp_path: Path, start_daemon: Any, pg_server: Any, pg_url: str
) -> None:
    """The tables' owner migrates (a first daemon); a daemon whose role may only read and
    write rows then starts, runs a workflow and keeps its state, with no DDL."""
    database = pg_url.rsplit("/", 1)[1]
    role, secret = f"dml_{database}", "dml-pw"
    answers = []
    for name, url in (("owner", pg_url), ("dml", pg_server.url(database, role, secret))):
        if name == "dml":
            with pg_server.admin(database) as db:
                db.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'")
                db.execute(
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
                )
                db.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
                assert db.execute(
                    "SELECT has_schema_privilege(%s, 'public', 'CREATE')", (role,)
                ).fetchone() == (False,)
        project = Project(tmp_path / name)
        (project.root / "tandem.yaml").write_text(f"store: {url}\n")
        project.workflow("shared", tools=["state.*"], script=SHARED)
        record = start_daemon(project).run("shared")
        assert record.status == "succeeded", record.error
        answers.append(record.output)
    assert answers == [{"count": 1, "first": True}, {"count": 2, "first": False}]
