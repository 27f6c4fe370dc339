"""The console's starlette app: pages that need a signed-in session, and actions that are
POSTs from the console's own pages (CSRF token and Origin). It reads and acts on the host
in process (the console runs on the daemon's event loop), through the same RunManager
methods the Control servicer uses; cancel, approve and deny reach a run another daemon
executes as Control's do (tandem.cluster.remote)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from tandem_sdk.errors import TandemError

from tandem.cluster import remote
from tandem.ledger.prices import PriceTable, load_prices
from tandem.runs import RunManager
from tandem.store import FINAL

from . import live
from .approvals import decided_calls, waiting_calls
from .auth import COOKIE, CSRF_FIELD, Session, Sessions, csrf_ok, same_origin
from .compare import compare
from .ledger import ledger_view
from .runs_view import COORDINATORS, STATUSES, runs_page
from .timeline import Call, Turn, timeline
from .workflows import workflows

HERE = Path(__file__).parent
Handler = Callable[[Request], Awaitable[Response]]
Action = Callable[[Request, dict[str, str]], Awaitable[Response]]


class Console:
    """What the pages read and act on: the host's runs, and who is signed in."""

    def __init__(self, runs: RunManager, token: str, project_root: Path) -> None:
        self.runs = runs
        self.sessions = Sessions(token)
        self.project_root = project_root
        self.changes = live.Changes(runs.store)
        self.stopping = asyncio.Event()  # ends the live streams, so the listener can stop
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
        )
        self.templates.filters["when"] = _when
        self.templates.tests["call_entry"] = lambda entry: isinstance(entry, Call)
        self.templates.tests["turn_entry"] = lambda entry: isinstance(entry, Turn)

    def prices(self) -> PriceTable:
        return load_prices(self.project_root)  # read each time: tandem.yaml may change

    def stop(self) -> None:
        self.stopping.set()
        self.changes.close()

    def render(
        self, name: str, session: Session | None, status: int = 200, **values: Any
    ) -> HTMLResponse:
        values["csrf"] = session.csrf if session is not None else ""
        values["csrf_field"] = CSRF_FIELD
        html = self.templates.get_template(name).render(**values)
        return HTMLResponse(html, status_code=status)


def _when(stamp: float | None) -> str:
    if not stamp:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def create_app(console: Console) -> Starlette:
    def page(handler: Callable[[Request, Session], Awaitable[Response]]) -> Handler:
        async def guarded(request: Request) -> Response:
            session = console.sessions.of(request)
            if session is None:
                return console.render("signin.html", None, status=401)
            return await handler(request, session)

        return guarded

    def action(handler: Action) -> Handler:
        async def guarded(request: Request) -> Response:
            session = console.sessions.of(request)
            if session is None:
                return console.render("signin.html", None, status=401)
            if not same_origin(request) or not await csrf_ok(request, session):
                return Response("refused: not a request from this console's pages", 403)
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            try:
                return await handler(request, form)
            except TandemError as error:
                return Response(str(error), status_code=409)

        return guarded

    async def sign_in(request: Request) -> Response:
        token = request.query_params.get("token", "")
        session = console.sessions.sign_in(token) if token else None
        if session is None:
            if console.sessions.of(request) is not None:
                return RedirectResponse("/runs", 303)
            return console.render("signin.html", None, status=401 if token else 200)
        response = RedirectResponse("/runs", 303)
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", path="/")
        return response

    async def runs_list(request: Request, session: Session) -> Response:
        fragment = request.query_params.get("fragment") == "rows"
        return console.render(
            "runs_rows.html" if fragment else "runs.html",
            session,
            page=runs_page(console.runs, request.query_params),
            first_page=not request.query_params.get("after"),
            coordinators=COORDINATORS,
            statuses=STATUSES,
            modes=("live", "dry_run", "replay", "shadow", "mcp"),
            workflows=sorted(state.name for state in console.runs.registry.states()),
        )

    async def runs_stream(request: Request, session: Session) -> Response:
        return live.runs_stream(console.changes, console.stopping)

    async def run_page(request: Request, session: Session) -> Response:
        run_id = request.path_params["run_id"]
        record = console.runs.store.get(run_id)
        if record is None:
            return console.render("missing.html", session, status=404, run_id=run_id)
        fragment = request.query_params.get("fragment") == "timeline"
        return console.render(
            "timeline.html" if fragment else "run.html",
            session,
            run=record,
            trigger=json.dumps(record.trigger, indent=2),
            output=json.dumps(record.output, indent=2),
            entries=timeline(record, console.prices()),
            live=record.status not in FINAL,
            queue_position=console.runs.queue_position(run_id),
            flagged_calls=" ".join(str(n + 1) for n in (record.flag or {}).get("calls", [])),
        )

    async def run_stream(request: Request, session: Session) -> Response:
        return live.run_stream(console.runs, request.path_params["run_id"], console.stopping)

    async def cancel(request: Request, form: dict[str, str]) -> Response:
        run_id = request.path_params["run_id"]
        await remote.cancel(console.runs, run_id)
        return RedirectResponse(f"/runs/{run_id}", 303)

    async def rerun(request: Request, form: dict[str, str]) -> Response:
        session = console.runs.rerun(request.path_params["run_id"])
        return RedirectResponse(f"/runs/{session.id}", 303)

    async def replay(request: Request, form: dict[str, str]) -> Response:
        coordinator = form.get("coordinator") or None
        session = console.runs.replay(request.path_params["run_id"], coordinator)
        return RedirectResponse(f"/runs/{session.id}", 303)

    async def flag(request: Request, form: dict[str, str]) -> Response:
        run_id = request.path_params["run_id"]
        numbers = form.get("call", "").split()
        if not all(n.isascii() and n.isdigit() for n in numbers):
            return Response("calls are numbers as the timeline shows them, e.g. 1 3", 400)
        calls = [int(n) - 1 for n in numbers]
        console.runs.flag(run_id, form.get("reason", "").strip(), calls)
        return RedirectResponse(f"/runs/{run_id}", 303)

    async def export(request: Request, form: dict[str, str]) -> Response:
        fixture = console.runs.export(request.path_params["run_id"])
        name = f"{fixture['workflow']}-{fixture['run']}.json"
        return Response(
            json.dumps(fixture, indent=2, ensure_ascii=False) + "\n",
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def approvals(request: Request, session: Session) -> Response:
        return console.render(
            "approvals.html",
            session,
            waiting=waiting_calls(console.runs, console.prices()),
            decided=decided_calls(console.runs.store),
            now=time.time(),
        )

    async def compare_page(request: Request, session: Session) -> Response:
        ids = request.query_params.get("a", ""), request.query_params.get("b", "")
        records = [console.runs.store.get(run_id) for run_id in ids]
        if records[0] is None or records[1] is None:
            missing = ids[0] if records[0] is None else ids[1]
            return console.render("missing.html", session, status=404, run_id=missing)
        comparison = compare(records[0], records[1], console.prices())
        return console.render("compare.html", session, compared=comparison)

    async def workflows_page(request: Request, session: Session) -> Response:
        views = workflows(console.runs, console.prices())
        return console.render("workflows.html", session, workflows=views)

    async def ledger_page(request: Request, session: Session) -> Response:
        return console.render(
            "ledger.html",
            session,
            ledger=ledger_view(console.runs, console.prices(), request.query_params),
            workflows=sorted(state.name for state in console.runs.registry.states()),
        )

    async def decide(request: Request, form: dict[str, str]) -> Response:
        run_id = request.path_params["run_id"]
        approve = form.get("decision") == "approve"
        reason = form.get("reason", "").strip()
        if not approve and not reason:
            return Response("say why the call is denied", 400)
        # One call, by its tool.call seq: a subagent's call has no number to name it by;
        # answered where the run is held, this daemon or another.
        seq = int(request.path_params["seq"])
        decided = await remote.decide_held(
            console.runs, run_id, seq, approve, reason or "approved", by="console"
        )
        if not decided:
            return Response(f"run {run_id}: that call is not waiting for approval", 409)
        return RedirectResponse("/approvals", 303)

    routes = [
        Route("/", sign_in),
        Route("/runs", page(runs_list)),
        Route("/runs/stream", page(runs_stream)),
        Route("/runs/{run_id}", page(run_page)),
        Route("/runs/{run_id}/stream", page(run_stream)),
        Route("/runs/{run_id}/cancel", action(cancel), methods=["POST"]),
        Route("/runs/{run_id}/rerun", action(rerun), methods=["POST"]),
        Route("/runs/{run_id}/replay", action(replay), methods=["POST"]),
        Route("/runs/{run_id}/flag", action(flag), methods=["POST"]),
        Route("/runs/{run_id}/export", action(export), methods=["POST"]),
        Route("/approvals", page(approvals)),
        Route("/ledger", page(ledger_page)),
        Route("/workflows", page(workflows_page)),
        Route("/compare", page(compare_page)),
        Route("/approvals/{run_id}/seq/{seq:int}", action(decide), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)
