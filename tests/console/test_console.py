"""The console's pages, against a real host on the console's own event loop (as in the
daemon): sign-in, CSRF, the runs list, a run's timeline, approvals, and live updates."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from conftest import REPO, eventually, tandem
from starlette.testclient import TestClient
from tandem.config import load_config
from tandem.console import Console, create_app
from tandem.console.address import TOKEN_FILE, TOKEN_VARIABLE, ConsoleError, console_token
from tandem.console.timeline import Call, timeline
from tandem.host import Host
from tandem.ledger.prices import default_prices
from tandem.store import Event, RunQuery, RunRecord
from tandem.webhooks import HttpListener, bind_listener

TOKEN = "console-test-token"
BASE = "http://127.0.0.1:8765"
HELD = """\
name: held
coordinator: script
coordinator_script: script.py
tools: [state.*]
files:
  greeting.md: files/greeting.md
approvals: {script: [state.increment], timeout_s: 20}
limits: {timeout_s: 30}
"""
TWO_HELD = """\
from concurrent.futures import ThreadPoolExecutor


def handler(trigger, tools, virtual_files, subagent):
    with ThreadPoolExecutor(2) as pool:
        counts = pool.map(lambda key: tools.state.increment(key=key), ["one", "two"])
        return list(counts)
"""
NIGHTLY = HELD.replace("name: held", "name: nightly").replace(
    "approvals:", "triggers: [{schedule: '0 3 * * *'}]\napprovals:"
)


@dataclass
class Setup:
    portal: anyio.from_thread.BlockingPortal
    host: Host
    console: Console
    client: TestClient

    def run(self, workflow: str, payload: Any = None) -> str:
        return str(self.portal.call(lambda: self.host.runs.trigger(workflow, payload).id))

    def finished(self, run_id: str) -> RunRecord:
        record: RunRecord = self.portal.call(self.host.runs.wait, run_id)
        return record

    def signed_in(self) -> TestClient:
        self.client.cookies.clear()
        assert self.client.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303
        return self.client

    def csrf(self) -> str:
        """The session's CSRF token, as its pages carry it."""
        page = self.client.get("/runs").text
        return page.split('"X-CSRF-Token": "')[1].split('"')[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("console") / "project"
    shutil.copytree(REPO / "workflows" / "hello", root / "workflows" / "hello")
    held = root / "workflows" / "held"
    shutil.copytree(REPO / "workflows" / "hello", held)
    (held / "workflow.yaml").write_text(HELD)
    two = root / "workflows" / "two"
    shutil.copytree(held, two)
    (two / "workflow.yaml").write_text(HELD.replace("name: held", "name: two"))
    (two / "script.py").write_text(TWO_HELD)
    nightly = root / "workflows" / "nightly"
    shutil.copytree(REPO / "workflows" / "hello", nightly)
    (nightly / "workflow.yaml").write_text(NIGHTLY)
    (root / "workflows" / "broken").mkdir()
    (root / "workflows" / "broken" / "workflow.yaml").write_text("name: broken\n")
    config = load_config(root)

    async def start() -> tuple[Host, Console]:
        host = Host(config, daemon=False)
        await host.start()
        return host, Console(host.runs, TOKEN, root)

    with anyio.from_thread.start_blocking_portal() as portal:
        host, console = portal.call(start)
        client = TestClient(create_app(console), base_url=BASE)
        client.portal = portal  # the app runs on the host's loop, as in the daemon
        try:
            yield Setup(portal, host, console, client)
        finally:
            console.stop()
            portal.call(host.stop)


def _post(setup: Setup, path: str, **form: str) -> httpx.Response:
    return setup.client.post(
        path,
        data={"csrf": setup.csrf(), **form},
        headers={"Origin": BASE},
        follow_redirects=False,
    )


def test_sign_in_sets_the_cookie_and_without_it_only_sign_in_shows(setup: Setup) -> None:
    run_id = setup.run("hello", {"name": "Ada"})
    setup.finished(run_id)
    client = setup.client
    client.cookies.clear()
    for path in ("/runs", f"/runs/{run_id}", "/approvals", "/runs/stream"):
        page = client.get(path)
        assert page.status_code == 401 and "Sign in" in page.text, path
        assert run_id not in page.text
    assert client.get("/?token=not-the-token", follow_redirects=False).status_code == 401
    signed = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/runs"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert run_id in client.get("/runs").text


def test_a_cross_site_post_is_refused(setup: Setup) -> None:
    run_id = setup.run("hello", {"name": "Bo"})
    setup.finished(run_id)
    client = setup.signed_in()
    path = f"/runs/{run_id}/flag"
    evil = client.post(
        path,
        data={"csrf": setup.csrf(), "reason": "x"},
        headers={"Origin": "http://evil.example"},
    )
    assert evil.status_code == 403
    no_token = client.post(path, data={"reason": "x"}, headers={"Origin": BASE})
    assert no_token.status_code == 403
    assert setup.host.store.get(run_id, events=False).flag is None  # type: ignore[union-attr]
    assert _post(setup, path, reason="wrong greeting", call="1").status_code == 303
    flag = setup.host.store.get(run_id, events=False).flag  # type: ignore[union-attr]
    assert flag == {"reason": "wrong greeting", "calls": [0]}


def test_the_runs_page_filters_and_pages(setup: Setup) -> None:
    store = setup.host.store
    now = time.time()
    for n in range(60):  # replays of a run, as a busy store holds them
        store.create(
            RunRecord(f"paged{n:03d}", "hello", "v", "script", {}, "succeeded", None, None, now)
        )
        store.set_plan_diff(f"paged{n:03d}", {"agree": False, "summary": "", "entries": []})
    client = setup.signed_in()
    first = client.get("/runs", params={"workflow": "hello", "coordinator": "script"}).text
    assert first.count('<tr id="run-paged') == 50  # same created_at: ordered by id
    assert "paged059" in first and "paged010" in first and "paged009" not in first
    assert "disagreed" in first
    older = first.split('<a href="/runs?')[1].split('">')[0].replace("&amp;", "&")
    second = client.get(f"/runs?{older}").text
    assert second.count('<tr id="run-paged') == 10 and "paged000" in second
    assert "Older runs" not in second
    held = client.get("/runs", params={"workflow": "held"}).text
    assert "paged" not in held
    bad = client.get("/runs", params={"status": "sleeping"}).text
    assert "status &#39;sleeping&#39;: expected one of" in bad


def test_a_run_page_shows_the_timeline_with_calls_that_expand(setup: Setup) -> None:
    run_id = setup.run("hello", {"name": "Cy"})
    assert setup.finished(run_id).status == "succeeded"
    page = setup.signed_in().get(f"/runs/{run_id}").text
    assert "&#34;name&#34;: &#34;Cy&#34;" in page  # the trigger payload
    call = page.split('class="entry call"')[1].split("</li>")[0]
    assert "<details>" in call and "call 1" in call and "state.increment" in call
    assert "greeted:Cy" in call and "Result" in call  # arguments and result, expanding


def _held_seqs(setup: Setup, run_id: str) -> list[int]:
    """The tool.call seqs of the run's calls the approvals page lists as waiting."""
    page = setup.client.get("/approvals").text
    return [int(part.split('"')[0]) for part in page.split(f'id="held-{run_id}-')[1:]]


def test_an_approval_from_the_page_lets_the_held_call_run(setup: Setup) -> None:
    run_id = setup.run("held", {"name": "Di"})
    client = setup.signed_in()
    assert eventually(lambda: len(_held_seqs(setup, run_id)) == 1)
    (seq,) = _held_seqs(setup, run_id)
    page = client.get("/approvals").text
    assert "greeted:Di" in page and "state.increment" in page
    assert _post(setup, f"/approvals/{run_id}/seq/{seq}", decision="approve").status_code == 303
    record = setup.finished(run_id)
    assert record.status == "succeeded", record.error
    assert _held_seqs(setup, run_id) == []
    decided = client.get("/approvals").text
    row = decided.split(f'href="/runs/{run_id}"')[1].split("</tr>")[0]
    assert "approved" in row and "the console" in row


def test_the_page_decides_only_the_call_it_names(setup: Setup) -> None:
    run_id = setup.run("two")
    setup.signed_in()
    assert eventually(lambda: len(_held_seqs(setup, run_id)) == 2)
    first, second = _held_seqs(setup, run_id)
    denied = _post(setup, f"/approvals/{run_id}/seq/{second}", decision="deny", reason="no")
    assert denied.status_code == 303
    assert eventually(lambda: _held_seqs(setup, run_id) == [first])
    assert _post(setup, f"/approvals/{run_id}/seq/{first}", decision="approve").status_code == 303
    record = setup.finished(run_id)
    decided = {
        e.data["call"]: e.data["approved"] for e in record.events if e.kind == "approval.decided"
    }
    assert sorted(decided.values()) == [False, True], record.events
    assert record.status == "failed", record.error  # the script's denied call raises


def test_the_runs_stream_says_when_a_run_starts(setup: Setup) -> None:
    sock = bind_listener("127.0.0.1", 0)
    listener = HttpListener(create_app(setup.console), sock)
    serving = setup.portal.start_task_soon(listener.serve)
    port = sock.getsockname()[1]
    try:
        signed = httpx.get(f"http://127.0.0.1:{port}/?token={TOKEN}")
        cookies = signed.cookies
        url = f"http://127.0.0.1:{port}/runs/stream"
        with httpx.stream("GET", url, cookies=cookies, timeout=20) as stream:
            assert stream.status_code == 200
            run_id = setup.run("hello", {"name": "Eve"})
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: runs"
            assert next(lines) == f"data: {run_id}"
        setup.finished(run_id)
    finally:
        setup.portal.call(listener.stop)
        serving.result(timeout=20)


def test_a_daemon_serves_the_console_and_tandem_console_signs_in(
    start_daemon: Any, cli: Any, project: Any
) -> None:
    project.workflow(
        "noop", script="def handler(trigger, tools, virtual_files, subagent):\n    return 1\n"
    )
    daemon = start_daemon(project, "--console", "127.0.0.1:0")
    run = daemon.run("noop")
    shown = cli(project, "console")
    assert shown.returncode == 0, shown.stderr
    url = shown.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and "/?token=" in url
    with httpx.Client(follow_redirects=True) as browser:
        assert run.id in browser.get(url).text  # signed in, redirected to the runs page
    assert (Path(project.root) / ".tandem" / "console-token").stat().st_mode & 0o077 == 0


def test_a_console_beyond_loopback_needs_a_token_set(project: Any) -> None:
    project.workflow(
        "noop", script="def handler(trigger, tools, virtual_files, subagent):\n    return 1\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TANDEM_CONSOLE_TOKEN"}
    refused = tandem(project, "serve", "--console", "0.0.0.0:0", env=env)
    assert refused.returncode != 0
    assert "needs TANDEM_CONSOLE_TOKEN set" in refused.stderr


def test_the_ledger_page_counts_the_runs_as_tandem_stats_does(setup: Setup) -> None:
    setup.finished(setup.run("hello", {"name": "Flo"}))
    page = setup.signed_in().get("/ledger", params={"workflow": "hello"}).text
    listed = setup.host.store.list(RunQuery(workflow="hello", modes=("live",), limit=1000))
    rows = [row.split("</tr>")[0] for row in page.split('<tr class="group">')[1:]]
    assert rows
    for row in rows:  # workflow, coordinator, version, runs, ...
        cells = [cell.split("</td>")[0] for cell in row.split("<td>")[1:]]
        version = [r for r in listed if r.workflow_version == cells[2]]
        assert cells[0] == "hello" and cells[1].rstrip("*") == "script", cells
        assert cells[3] == str(len(version)), cells


def test_the_ledger_page_charts_tokens_and_cost_per_run(setup: Setup) -> None:
    run_id = setup.run("hello", {"name": "Gus"})
    setup.finished(run_id)
    page = setup.signed_in().get("/ledger", params={"workflow": "hello"}).text
    listed = setup.host.store.list(RunQuery(workflow="hello", modes=("live",), limit=1000))
    charts = page.split("<svg ")[1:]
    assert len(charts) == 2  # tokens, then cost
    for chart, axis in zip(charts, ("tokens per run", "cost per run (USD)"), strict=True):
        assert f">{axis}</text>" in chart and 'role="img"' in chart
        assert 'data-series="hello · script"' in chart and run_id in chart
        assert chart.count("<circle ") == len(listed)  # a point per live run


def test_the_workflows_page_shows_state_triggers_and_next_time(setup: Setup) -> None:
    page = setup.signed_in().get("/workflows").text
    rows = {row.split('"')[0]: row.split("</tr>")[0] for row in page.split('<tr id="workflow-')[1:]}
    hello = setup.host.registry.get("hello")
    assert hello is not None
    assert ">ok<" in rows["hello"] and hello.version in rows["hello"]
    assert "<td>script</td>" in rows["hello"] and "manual" in rows["hello"]
    assert "schedule 0 3 * * * (next 2" in rows["nightly"]  # its next time, dated
    assert ">error<" in rows["broken"] and "load error" in rows["broken"]


def test_a_run_is_replayed_from_its_page(setup: Setup) -> None:
    run_id = setup.run("hello", {"name": "Gus"})
    setup.finished(run_id)
    page = setup.signed_in().get(f"/runs/{run_id}").text
    assert "<option>llm</option><option>script</option>" in page  # the other one first
    replayed = _post(setup, f"/runs/{run_id}/replay", coordinator="script")
    assert replayed.status_code == 303
    replay = setup.finished(replayed.headers["location"].rsplit("/", 1)[1])
    assert replay.mode == "replay" and replay.source_run == run_id
    assert replay.status == "succeeded", replay.error


def test_two_runs_compare_call_by_call(setup: Setup) -> None:
    first, second = setup.run("hello", {"name": "Hal"}), setup.run("hello", {"name": "Ida"})
    setup.finished(first)
    setup.finished(second)
    client = setup.signed_in()
    page = client.get("/compare", params={"a": first, "b": second}).text
    assert "the plans differ" in page
    row = page.split('<tr class="plan changed">')[1].split("</tr>")[0]
    assert "greeted:Hal" in row and "greeted:Ida" in row and "key differs" in row
    replayed = _post(setup, f"/runs/{first}/replay", coordinator="script")
    replay_id = replayed.headers["location"].rsplit("/", 1)[1]
    setup.finished(replay_id)
    assert f'href="/compare?a={first}&amp;b={replay_id}"' in client.get(f"/runs/{replay_id}").text
    same = client.get("/compare", params={"a": first, "b": replay_id}).text
    assert "the plans agree" in same and '<tr class="plan same">' in same


def test_a_listener_answers_without_waiting_for_acks() -> None:
    """Its connections have TCP_NODELAY, so a response's body leaves right after its
    headers instead of waiting for the client's delayed ACK."""
    sock = bind_listener("127.0.0.1", 0)
    options: list[int] = []

    async def main() -> None:
        seen = asyncio.Event()

        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            options.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
            seen.set()

        async with await asyncio.start_server(accepted, sock=sock):
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            await seen.wait()
            writer.close()

    asyncio.run(asyncio.wait_for(main(), 20))
    assert options and options[0] != 0


def test_a_subagents_held_call_is_waiting_then_decided_on_the_timeline() -> None:
    def event(seq: int, kind: str, **data: Any) -> Event:
        return Event(seq, 1_700_000_000.0 + seq, kind, data)

    call = {"tool": "state.increment", "arguments": {}}
    record = RunRecord("r1", "held", "v1", "llm", None, "waiting")
    record.events = [
        event(1, "tool.call", **call),
        event(2, "approval.waiting", call=1, tool="state.increment", timeout_s=20.0),
        event(3, "tool.call", **call, subagent="helper"),
        event(4, "approval.waiting", tool="state.increment", timeout_s=20.0),
    ]
    calls = [e for e in timeline(record, default_prices()) if isinstance(e, Call)]
    assert [(c.seq, c.number, c.state) for c in calls] == [(1, 1, "waiting"), (3, None, "waiting")]
    record.events.append(event(5, "approval.decided", tool="state.increment", approved=True))
    calls = [e for e in timeline(record, default_prices()) if isinstance(e, Call)]
    assert [(c.seq, c.state, c.decision) for c in calls] == [
        (1, "waiting", ""),
        (3, "running", "approved"),
    ]


def test_a_decision_made_in_slack_shows_who_made_it(setup: Setup) -> None:
    run_id = setup.run("hello", {"name": "Sam"})
    assert setup.finished(run_id).status == "succeeded"
    by = "Ann in Slack (U123)"
    decided = {"tool": "state.increment", "approved": True, "reason": "ok", "by": by}
    setup.host.runs.store.append_event(run_id, Event(999, time.time(), "approval.decided", decided))
    setup.host.runs.store.flush()
    page = setup.signed_in().get("/approvals").text
    row = page.split(f'href="/runs/{run_id}"')[1].split("</tr>")[0]
    assert by in row and "not recorded" not in row


def test_a_flag_with_a_call_that_is_not_a_number_is_refused(setup: Setup) -> None:
    run_id = setup.run("hello", {"name": "Flo"})
    setup.finished(run_id)
    setup.signed_in()
    refused = _post(setup, f"/runs/{run_id}/flag", reason="odd", call="1 \u00b2")
    assert refused.status_code == 400 and "numbers" in refused.text
    assert setup.host.store.get(run_id, events=False).flag is None  # type: ignore[union-attr]


def test_a_kept_token_others_could_read_or_an_empty_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    token = console_token(tmp_path, "127.0.0.1")
    assert token and console_token(tmp_path, "127.0.0.1") == token
    kept = tmp_path / TOKEN_FILE
    kept.chmod(0o644)
    with pytest.raises(ConsoleError, match=r"0600.*delete it"):
        console_token(tmp_path, "127.0.0.1")
    kept.write_text("")
    kept.chmod(0o600)
    with pytest.raises(ConsoleError, match=r"empty.*delete it"):
        console_token(tmp_path, "127.0.0.1")
