"""Several daemons sharing one run store, on each database (a SQLite file in WAL mode, and
PostgreSQL): triggers on any of them run
exactly once, a workflow's limit holds across them, a schedule fires once per slot, one
delivery starts one run, cancel and approve work from any daemon, and a daemon that stops
heartbeating has its runs interrupted (its late writes refused) and its queue run by the
others; on PostgreSQL, a server restarted mid-burst loses nothing."""

from __future__ import annotations

import itertools
import json
import re
import signal
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from cluster_fixtures import held_workflow
from conftest import Daemon, Project, eventually, post_signed, tandem
from tandem.cluster import claims
from tandem.store import FINAL, RunStore, StoreError
from tandem_sdk._pb import control_pb2

SETTINGS = """\
store: {store}
cluster: {heartbeat_s: 0.2, lease_s: 3}
runs: {max_in_flight: 2}
"""
NAP = """
import time

def handler(trigger, tools, virtual_files, subagent):
    time.sleep((trigger or {}).get("sleep", 0.2))
    return trigger
"""
HOOK = {
    "path": "/hooks/deploys",
    "verify": "hmac",
    "secret_env": "DEPLOY_SECRET",
    "header": "X-Deploy-Signature",
    "delivery_header": "X-Request-Id",
}
SECRET = "deploy-secret"


class Cluster:
    def __init__(self, project: Project, location: str) -> None:
        self.project = project
        self.daemons: list[Daemon] = []
        self.location = location
        self._store: RunStore | None = None

    @property
    def store(self) -> RunStore:
        """The test's own view of the shared store, opened once the daemons made it."""
        if self._store is None:
            self._store = RunStore(self.location)
        return self._store

    @property
    def dialect(self) -> str:
        return self.store.dialect

    def start(self, name: str) -> Daemon:
        daemon = Daemon(
            self.project,
            "--http",
            "127.0.0.1:0",
            env={"DEPLOY_SECRET": SECRET},
            state_dir=self.project.root / f"state-{name}",
        )
        self.daemons.append(daemon)
        return daemon

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return list(self.store._run(sql, params).fetchall())

    def ended(self, run_ids: list[str]) -> bool:
        marks = ",".join("?" * len(run_ids))
        statuses = self.rows(f"SELECT status FROM runs WHERE id IN ({marks})", *run_ids)
        return len(statuses) == len(run_ids) and all(s in FINAL for (s,) in statuses)

    def owner(self, run_id: str) -> str:
        return str(self.rows("SELECT owner FROM runs WHERE id=?", run_id)[0][0])


def daemon_id(daemon: Daemon) -> str:
    return str(daemon.client.stub.Health(control_pb2.HealthRequest()).daemon_id)


def listener(daemon: Daemon) -> str:
    for line in daemon.log:
        if match := re.search(r"http listener (http://\S+)", line):
            return match.group(1)
    raise AssertionError("no http listener in the log:\n" + "\n".join(daemon.log))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    project = Project(tmp_path_factory.mktemp("cluster") / "project")
    if request.param == "postgresql":
        location = request.getfixturevalue("pg_server").fresh_database()
    else:
        location = str(project.root / "shared" / "runs.sqlite3")
    (project.root / "tandem.yaml").write_text(SETTINGS.replace("{store}", location))
    project.workflow("nap", script=NAP)
    project.workflow("single", script=NAP, limits={"max_in_flight": 1})
    project.workflow("ticker", script=NAP, triggers=[{"schedule": "* * * * * *"}])
    project.workflow("hooked", script=NAP, triggers=[{"webhook": HOOK}])
    held_workflow(project)
    group = Cluster(project, location)
    try:
        for name in ("a", "b", "c"):
            group.start(name)
        yield group
    finally:
        for daemon in group.daemons:
            daemon.close()
        if group._store is not None:
            group._store.close()


def test_triggers_on_any_daemon_each_run_exactly_once(cluster: Cluster) -> None:
    a, b, c = cluster.daemons[:3]
    # The 300 on PostgreSQL; fewer on the SQLite file, whose one writer is slower.
    count = 300 if cluster.dialect == "postgresql" else 60
    run_ids = [
        [a, b, c][n % 3].client.trigger("nap", {"n": n, "sleep": 0.05}, None) for n in range(count)
    ]
    assert eventually(lambda: cluster.ended(run_ids), within=120)
    marks = ",".join("?" * len(run_ids))
    rows = cluster.rows(
        f"SELECT status, attempt, owner, (SELECT COUNT(*) FROM events WHERE run_id=runs.id"
        f" AND kind='run.started') FROM runs WHERE id IN ({marks})",
        *run_ids,
    )
    assert {(status, attempt, started) for status, attempt, _, started in rows} == {
        ("succeeded", 1, 1)
    }
    assert {owner for *_, owner, _ in rows} <= {daemon_id(d) for d in (a, b, c)}
    assert len({owner for *_, owner, _ in rows}) == 3
    # Every daemon lists every run, whichever ran it.
    assert {r.id for r in c.client.runs("nap", "", count)} == set(run_ids)


def test_a_workflow_limited_to_one_never_overlaps_across_daemons(cluster: Cluster) -> None:
    a, b, c = cluster.daemons[:3]
    run_ids = [[a, b, c][n % 3].client.trigger("single", {"sleep": 0.1}, None) for n in range(6)]
    assert eventually(lambda: cluster.ended(run_ids), within=60)
    marks = ",".join("?" * len(run_ids))
    spans = cluster.rows(
        f"SELECT started_at, finished_at, status FROM runs WHERE id IN ({marks})"
        " ORDER BY started_at",
        *run_ids,
    )
    assert {status for *_, status in spans} == {"succeeded"}
    for (_, finished, _), (started, _, _) in itertools.pairwise(spans):
        assert started >= finished


def test_a_schedule_on_every_daemon_fires_once_per_slot(cluster: Cluster) -> None:
    def slots() -> list[str]:
        return [str(r.trigger["slot"]) for r in cluster.daemons[0].client.runs("ticker", "", 100)]

    assert eventually(lambda: len(slots()) >= 4, within=30)
    fired = slots()
    assert len(fired) == len(set(fired)), fired
    firing = cluster.rows("SELECT COUNT(DISTINCT daemon) FROM schedule_slots")[0][0]
    assert firing >= 1


def test_one_delivery_sent_to_every_daemon_starts_one_run(cluster: Cluster) -> None:
    body = json.dumps({"service": "api"}).encode()

    def post(daemon: Daemon) -> int:
        return post_signed(listener(daemon) + "/hooks/deploys", body, SECRET, "delivery-1")

    answers = sorted(post(d) for d in cluster.daemons[:3])
    assert answers == [200, 200, 202]
    assert len(cluster.daemons[1].client.runs("hooked", "", 100)) == 1


def test_cancel_and_approve_from_another_daemon(cluster: Cluster) -> None:
    daemons = {daemon_id(d): d for d in cluster.daemons[:3]}
    first = cluster.daemons[0]
    held = first.client.trigger("held", None, None)
    assert eventually(lambda: first.client.run(held).status == "waiting")
    # `tandem approve` through a daemon that does not execute the run.
    other = next(i for i in daemons if i != cluster.owner(held))
    state = cluster.project.root / f"state-{'abc'[list(daemons).index(other)]}"
    approved = tandem(cluster.project, "--state", str(state), "approve", held, "1")
    assert approved.returncode == 0, approved.stderr
    assert eventually(lambda: cluster.ended([held]))
    assert (first.client.run(held).status, first.client.run(held).output) == (
        "succeeded",
        "poked",
    )

    sleepy = first.client.trigger("nap", {"sleep": 60}, None)
    assert eventually(lambda: first.client.run(sleepy).status == "running")
    other = next(d for i, d in daemons.items() if i != cluster.owner(sleepy))
    assert other.client.cancel(sleepy)
    assert eventually(lambda: first.client.run(sleepy).status == "cancelled")


def test_a_daemon_that_stops_heartbeating_is_taken_over_and_its_late_end_refused(
    cluster: Cluster,
) -> None:
    late = cluster.start("late")
    late_id = daemon_id(late)
    run_id = late.client.trigger("nap", {"sleep": 60}, None)
    assert eventually(lambda: late.client.run(run_id).status == "running")
    assert cluster.owner(run_id) == late_id
    late.process.send_signal(signal.SIGSTOP)
    try:
        watcher = cluster.daemons[0].client
        assert eventually(lambda: watcher.run(run_id).status == "interrupted", within=30)
    finally:
        late.process.send_signal(signal.SIGCONT)
    interrupted = watcher.run(run_id)
    assert "never re-run" in (interrupted.error or "")
    # Back, it finds the run taken, cancels its copy and writes no end over the takeover.
    assert eventually(lambda: any("took it over" in line for line in late.log), within=30)
    end = ("succeeded", "late", None, {}, 0.0)
    assert not claims.finish(cluster.store, run_id, late_id, 1, end)
    again = watcher.run(run_id)
    assert (again.status, again.error) == ("interrupted", interrupted.error)
    assert late.client.run(run_id).status == "interrupted"


def test_a_sigkilled_daemons_runs_end_interrupted_and_its_queue_runs_elsewhere(
    cluster: Cluster,
) -> None:
    doomed = cluster.start("doomed")
    doomed_id = daemon_id(doomed)
    # Dry runs stay with the daemon that made them: two run, the rest wait in its queue.
    run_ids = [
        doomed.client.trigger("nap", {"sleep": 60 if n < 2 else 0}, None, dry_run=True)
        for n in range(4)
    ]
    assert eventually(lambda: len(_held(cluster, doomed_id, "running")) == 2)
    running = _held(cluster, doomed_id, "running")
    queued = _held(cluster, doomed_id, "queued")
    assert queued, "some of its runs wait in its queue"
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(10)
    survivor = cluster.daemons[0].client
    assert eventually(lambda: cluster.ended(running + queued), within=30)
    for run_id in running:
        assert survivor.run(run_id).status == "interrupted"
    assert sorted(running + queued) == sorted(run_ids)
    for run_id in queued:
        assert survivor.run(run_id).status == "succeeded"
        assert cluster.owner(run_id) != doomed_id


def _held(cluster: Cluster, owner: str, status: str) -> list[str]:
    rows = cluster.rows(
        "SELECT id FROM runs WHERE owner=? AND status=? AND workflow='nap' AND mode='dry_run'",
        owner,
        status,
    )
    return [run_id for (run_id,) in rows]


def test_status_lists_the_daemons_sharing_the_store(cluster: Cluster) -> None:
    root = cluster.project.root
    result = tandem(cluster.project, "--state", str(root / "state-b"), "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("daemons sharing the run store:") for line in lines)
    for name, daemon in zip("abc", cluster.daemons, strict=False):
        mark = "*" if name == "b" else " "
        listed = [line for line in lines if f" pid {daemon.pid}: heartbeat " in line]
        assert len(listed) == 1 and listed[0].startswith(f"  {mark} "), result.stdout
        assert f"state-{name})" in listed[0]


@pytest.mark.parametrize("cluster", ["postgresql"], indirect=True)
def test_postgresql_restarted_mid_burst_loses_nothing(cluster: Cluster, pg_server: Any) -> None:
    a, b, c = cluster.daemons[:3]
    accepted: list[str] = []

    def trigger(n: int, sleep: float = 0.2) -> None:
        """The burst's client: a trigger refused as UNAVAILABLE is sent again."""
        while True:
            try:
                accepted.append([a, b, c][n % 3].client.trigger("nap", {"sleep": sleep}, None))
                return
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error

    # More than the daemons have room for (two each): some wait in the shared queue. Those
    # running outlast the lease (3 s) unrenewed: the outage is longer than a lease.
    for n in range(9):
        trigger(n, sleep=3.5)
    status = cluster.daemons[0].client.run
    assert eventually(lambda: any(status(r).status == "running" for r in accepted))
    in_flight = [run_id for run_id in accepted if status(run_id).status == "running"]
    pg_server.stop()
    try:
        # The runs in flight end meanwhile; their daemons keep the ends to write later.
        assert eventually(lambda: all(_ended_in_log(cluster, r) for r in in_flight), within=30)
        with pytest.raises(grpc.RpcError) as outage:
            a.client.trigger("nap", {}, None)
        assert outage.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        pg_server.start()
    # Each daemon listens for queued runs again (LISTEN on a new connection).
    assert eventually(
        lambda: all(
            any("listening for queued runs again" in line for line in d.log) for d in (a, b, c)
        )
    )
    for n in range(9, 30):
        trigger(n)
    assert eventually(lambda: _settled(cluster, accepted), within=60)
    marks = ",".join("?" * len(accepted))
    rows = cluster.rows(
        f"SELECT status, attempt, (SELECT COUNT(*) FROM events WHERE run_id=runs.id"
        f" AND kind='run.started') FROM runs WHERE id IN ({marks})",
        *accepted,
    )
    assert len(rows) == len(accepted) == 30
    assert set(rows) == {("succeeded", 1, 1)}
    # Nor any other (the ticker's schedule runs on, beside these).
    stuck = cluster.rows(
        "SELECT id, status FROM runs WHERE workflow='nap' AND status IN ('queued', 'running')"
    )
    assert stuck == []


def _ended_in_log(cluster: Cluster, run_id: str) -> bool:
    return any(f"run {run_id} nap: succeeded" in line for d in cluster.daemons for line in d.log)


def _settled(cluster: Cluster, run_ids: list[str]) -> bool:
    try:
        return cluster.ended(run_ids)
    except StoreError:  # the test's own connection, until the server is back
        return False
