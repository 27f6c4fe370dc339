"""Curating the run store from the command line: excluding runs, rerunning a trigger,
listing what was triggered (replays and shadows when asked), a timeline that shows the
trigger and marks flagged and denied calls, and retention."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, Daemon, Project, eventually
from tandem.store import Event, RunRecord, RunStore
from tandem_sdk._pb import control_pb2

COUNT = """
def handler(trigger, tools, virtual_files, subagent):
    return {"n": tools.state.increment(key="n"), "name": (trigger or {}).get("name")}
"""
ECHO = """
def handler(trigger, tools, virtual_files, subagent):
    return {'v': 1, 'got': trigger}
"""
DAY = 86400.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    project = Project(tmp_path_factory.mktemp("curation") / "project")
    project.workflow("count", tools=["state.*"], script=COUNT)
    project.workflow("echo", script=ECHO)
    served = Daemon(project)
    yield served
    served.close()


def seed(database: Path, run_id: str, *, at: float, mode: str = "live", **fields: Any) -> None:
    """A finished run written straight into the store, its trace two events long."""
    store = RunStore(database)
    try:
        store.create(
            RunRecord(run_id, "count", "v0", "script", {"name": run_id}, "queued", created_at=at)
        )
        store.mark_started(run_id, at)
        store.append_event(run_id, Event(1, at, "run.started", {"workflow": "count"}))
        store.append_event(run_id, Event(2, at, "run.finished", {"status": "succeeded"}))
        store.finish(run_id, "succeeded", None, None, {}, at + 1)
        if mode != "live" or fields:
            with sqlite3.connect(database) as db:
                db.execute("UPDATE runs SET mode=? WHERE id=?", (mode, run_id))
                for column, value in fields.items():
                    db.execute(f"UPDATE runs SET {column}=? WHERE id=?", (value, run_id))
    finally:
        store.close()


def listed(cli: Cli, project: Project, *args: str) -> list[dict[str, Any]]:
    result = cli(project, "runs", *args, "--json")
    assert result.returncode == 0, result.stderr
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


def test_an_excluded_run_says_so_wherever_it_is_listed(daemon: Daemon, cli: Cli) -> None:
    project = daemon.project
    kept, typo = daemon.run("count", {"name": "ada"}).id, daemon.run("count", {"nme": "x"}).id
    excluded = cli(project, "runs", "exclude", typo, "--reason", "a typo in the payload")
    assert excluded.returncode == 0, excluded.stderr
    rows = {r["id"]: r for r in listed(cli, project, "--workflow", "count")}
    assert rows[typo]["excluded"]["reason"] == "a typo in the payload"
    assert rows[kept]["excluded"] is None
    text = cli(project, "runs", "--workflow", "count").stdout
    assert "[excluded]" in next(line for line in text.splitlines() if typo in line)
    assert "[excluded]" not in next(line for line in text.splitlines() if kept in line)
    shown = cli(project, "runs", "show", typo).stdout
    assert "EXCLUDED from rewrite validation, shadows and stats: a typo in the payload" in shown

    assert cli(project, "runs", "include", typo).returncode == 0
    assert listed(cli, project, "--workflow", "count")[0]["excluded"] is None
    missing = cli(project, "runs", "exclude", "no-such-run")
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr


def test_rerun_runs_the_trigger_again_live_on_the_current_version(daemon: Daemon, cli: Cli) -> None:
    project = daemon.project
    first = daemon.client.trigger("echo", {"pr": 7}, None, dry_run=True)
    for _ in daemon.client.watch(first):
        pass
    before = daemon.client.run(first)
    script = project.root / "workflows" / "echo" / "script.py"
    script.write_text(ECHO.replace("'v': 1", "'v': 2"))
    assert list(daemon.client.stub.Reload(control_pb2.ReloadRequest()).errors) == []

    result = cli(project, "runs", "rerun", first, "--json")
    assert result.returncode == 0, result.stderr
    rerun = json.loads(result.stdout)
    assert (rerun["mode"], rerun["status"], rerun["rerun_of"]) == ("live", "succeeded", first)
    assert rerun["trigger"] == {"pr": 7} and rerun["output"] == {"v": 2, "got": {"pr": 7}}
    assert rerun["workflow_version"] != before.workflow_version
    shown = cli(project, "runs", "show", rerun["id"]).stdout
    assert f"rerun of {first}" in shown
    row = next(r for r in listed(cli, project, "--workflow", "echo") if r["id"] == rerun["id"])
    assert row["rerun_of"] == first


def test_runs_lists_triggered_runs_unless_asked_for_replays_and_shadows(
    daemon: Daemon, cli: Cli
) -> None:
    project = daemon.project
    live = daemon.run("count", {"name": "grace"}).id
    replay = daemon.client.replay(live)
    for _ in daemon.client.watch(replay):
        pass
    shadow = "shadow-of-" + live
    seed(daemon.project.config.database, shadow, at=time.time(), mode="shadow", source_run=live)

    default = {r["id"] for r in listed(cli, project, "--workflow", "count")}
    assert live in default and replay not in default and shadow not in default
    everything = {r["id"] for r in listed(cli, project, "--workflow", "count", "--all")}
    assert {live, replay, shadow} <= everything
    assert [r["id"] for r in listed(cli, project, "--mode", "shadow")] == [shadow]
    assert [r["id"] for r in listed(cli, project, "--mode", "replay")] == [replay]


def test_runs_show_prints_the_trigger_and_marks_flagged_and_denied_calls(
    daemon: Daemon, cli: Cli
) -> None:
    project = daemon.project
    run_id = "denied-run"
    store = RunStore(project.config.database)
    try:
        store.create(
            RunRecord(run_id, "count", "v0", "script", {"pr": 42}, "queued", created_at=time.time())
        )
        call = {"executed": True, "source": "plugin", "arguments": {"key": "n"}}
        trace = [
            ("tool.call", {"tool": "state.increment", **call}),
            ("tool.result", {"call": 1, "tool": "state.increment", "ok": True, "result": 1}),
            ("tool.call", {"tool": "state.set", **call}),
            ("approval.waiting", {"call": 3, "tool": "state.set", "decide": "..."}),
            ("approval.decided", {"call": 3, "tool": "state.set", "approved": False}),
            ("tool.result", {"call": 3, "tool": "state.set", "ok": False, "error_type": "denied"}),
        ]
        for seq, (kind, data) in enumerate(trace, start=1):
            store.append_event(run_id, Event(seq, time.time(), kind, data))
        store.finish(run_id, "succeeded", None, None, {}, time.time())
    finally:
        store.close()

    beyond = cli(project, "runs", "flag", run_id, "wrong key", "--call", "7")
    assert beyond.returncode == 2
    assert "has 2 call(s), numbered 1 to 2" in beyond.stderr and "no call 7" in beyond.stderr
    assert listed(cli, project, "--flagged") == [], "a refused flag leaves no flag"
    assert cli(project, "runs", "flag", run_id, "wrong key", "--call", "1").returncode == 0

    shown = cli(project, "runs", "show", run_id).stdout
    assert 'trigger: {\n    "pr": 42\n  }' in shown
    calls = [line for line in shown.splitlines() if "tool.call" in line]
    assert calls[0].endswith("(call 1)  FLAGGED"), calls
    assert calls[1].endswith("(call 2)  DENIED"), calls


def test_retention_keeps_flagged_and_exported_runs_unless_asked(
    project: Project, start_daemon, tmp_path: Path, cli: Cli
) -> None:
    project.workflow("count", tools=["state.*"], script=COUNT)
    (project.root / "tandem.yaml").write_text("record:\n  keep_days: 30\n")
    database = project.config.database
    old = time.time() - 100 * DAY
    seed(database, "old", at=old)
    seed(database, "old-exported", at=old)
    seed(database, "old-flagged", at=old, flag_json='{"reason": "wrong", "calls": []}')
    seed(database, "recent", at=time.time() - DAY)
    # Exported through Control (an embedded host here): the run is then kept.
    assert cli(project, "runs", "export", "old-exported", str(tmp_path)).returncode == 0

    daemon = start_daemon(project)

    def ids() -> set[str]:
        return {r.id for r in daemon.client.runs("count", "", 50)}

    assert eventually(lambda: "old" not in ids()), daemon.log
    assert ids() == {"old-flagged", "old-exported", "recent"}
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM events WHERE run_id='old'").fetchone() == (0,)

    kept = cli(project, "runs", "prune", "--before", "2d")
    assert kept.returncode == 0, kept.stderr
    assert "0 run(s) deleted" in kept.stdout and "2 flagged or exported" in kept.stdout
    flagged = cli(project, "runs", "prune", "--before", "2d", "--include-flagged")
    assert "1 run(s) deleted" in flagged.stdout
    assert ids() == {"old-exported", "recent"}
    both = cli(project, "runs", "prune", "--before", "2d", "--include-exported")
    assert "1 run(s) deleted" in both.stdout and ids() == {"recent"}


def test_a_store_made_before_curation_gains_its_columns(tmp_path: Path) -> None:
    from tandem.store.migrations import FOLDER

    # A store an earlier version made: the first schema, without these columns, and no
    # record of migrations.
    schema = (FOLDER / "0001_initial.sql").read_text()
    added = ",\n    excluded_json TEXT,\n    exported_at DOUBLE PRECISION,\n    rerun_of TEXT"
    assert added in schema
    database = tmp_path / "runs.sqlite3"
    with sqlite3.connect(database) as db:
        db.executescript(schema.replace(added, ""))
    store = RunStore(database)
    try:
        store.create(RunRecord("again", "count", "v0", "script", None, "queued", rerun_of="first"))
        assert store.exclude("again", {"reason": "a typo", "at": 0.0})
        store.mark_exported("again", 5.0)
        record = store.get("again")
        assert record is not None
        assert (record.rerun_of, record.excluded, record.exported_at) == (
            "first",
            {"reason": "a typo", "at": 0.0},
            5.0,
        )
    finally:
        store.close()


def test_replay_of_the_last_runs_passes_over_excluded_ones(daemon: Daemon, cli: Cli) -> None:
    project = daemon.project
    good, typo = daemon.run("echo", {"name": "ada"}).id, daemon.run("echo", {"nme": "x"}).id
    assert cli(project, "runs", "exclude", typo).returncode == 0
    replayed = cli(project, "replay", "--workflow", "echo", "--last", "2", "--json")
    assert replayed.returncode == 0, replayed.stderr
    ids = {result["run"] for result in json.loads(replayed.stdout)["runs"]}
    assert typo not in ids and good in ids
