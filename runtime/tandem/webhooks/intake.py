"""From a verified HTTP delivery to runs. Framework-free, so the rules read in one place:

    unknown path           404
    secret not configured  503 (nothing started; the sender may redeliver later)
    bad or no signature    401 (logged with the sender's address; nothing started)
    GitHub `ping`          200 "pong"
    body not JSON          400
    filtered out           200 "ignored"   (event not in `events`, action not in `actions`)
    delivery id seen       200 "duplicate" (per workflow: a redelivery starts no run)
    signed body seen       200 "duplicate" (within the replay window: a captured delivery
                           sent again under a new delivery id starts no run)
    started                202 with the run ids
    queue full             429 with Retry-After (runs.max_queued runs already wait)
    start failed           503

Where several workflows share the path and any of them could not be queued, the answer is
the retryable one (429, 503) even though others started: the sender delivers again, and
the ones that started answer "duplicate" then.

Several workflows may listen on one path (GitHub sends one webhook to one URL); they must
then verify the same way with the same secret. The body limit (413) is the listener's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tandem_sdk.errors import TandemError

from tandem.config import DEFAULT_REPLAY_WINDOW_S
from tandem.runs import QueueFull, RunManager
from tandem.store import RunStore
from tandem.workflows import WorkflowRegistry
from tandem.workflows.spec import Webhook

from .verify import GITHUB_SIGNATURE_HEADER, signature_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    remote: str = "?"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Route:
    workflow: str
    hook: Webhook


class WebhookIntake:
    def __init__(
        self,
        registry: WorkflowRegistry,
        runs: RunManager,
        store: RunStore,
        environ: Mapping[str, str] = os.environ,
        replay_window_s: float = DEFAULT_REPLAY_WINDOW_S,
    ) -> None:
        self._registry = registry
        self._replay_window_s = replay_window_s
        self._runs = runs
        self._store = store
        self._environ = environ
        self._reported_conflicts: set[tuple[str, str]] = set()

    def routes(self) -> dict[str, list[_Route]]:
        """Path -> the workflows listening there, from each workflow's last good version
        (so one that fails to reload keeps its routes)."""
        routes: dict[str, list[_Route]] = {}
        for state in self._registry.states():
            if state.current is None:
                continue
            for trigger in state.current.spec.triggers:
                hook = trigger.webhook
                if hook is None:
                    continue
                listeners = routes.setdefault(hook.path, [])
                if listeners and not _same_verification(listeners[0].hook, hook):
                    self._report_conflict(hook.path, state.name, listeners[0].workflow)
                    continue
                listeners.append(_Route(state.name, hook))
        return routes

    def knows(self, path: str) -> bool:
        return path in self.routes()

    def receive(self, delivery: Delivery) -> Answer:
        listeners = self.routes().get(delivery.path)
        if not listeners:
            return Answer(404, {"error": f"no webhook at {delivery.path}"})
        hook = listeners[0].hook
        secret = self._environ.get(hook.secret_env)
        if not secret:
            log.error(
                "webhook %s: %s is not set in the daemon's environment; delivery refused",
                delivery.path,
                hook.secret_env,
            )
            return Answer(503, {"error": "this webhook's secret is not configured"})
        header = GITHUB_SIGNATURE_HEADER if hook.verify == "github" else hook.header.lower()
        problem = signature_problem(secret, delivery.body, delivery.headers.get(header))
        if problem is not None:
            log.warning(
                "webhook %s: refused a delivery from %s: %s (%s)",
                delivery.path,
                delivery.remote,
                problem,
                header,
            )
            return Answer(401, {"error": f"{problem} in {header}"})
        event = delivery.headers.get("x-github-event") if hook.verify == "github" else None
        if event == "ping":
            return Answer(200, {"status": "pong"})
        try:
            payload = _payload(delivery, form_allowed=hook.verify == "github")
        except ValueError as error:
            return Answer(400, {"error": f"the body is not JSON: {error}"})
        delivery_id = _delivery_id(hook, delivery.headers)
        body_key = "sha256:" + hashlib.sha256(delivery.body).hexdigest()
        trigger = {
            "trigger": "webhook",
            "path": delivery.path,
            "event": event,
            "delivery": delivery_id,
            "payload": payload,
        }
        outcomes = [
            self._start(route, trigger, event, payload, delivery_id, body_key)
            for route in listeners
        ]
        return _answer(outcomes)

    def _start(
        self,
        route: _Route,
        trigger: dict[str, Any],
        event: str | None,
        payload: Any,
        delivery_id: str | None,
        body_key: str,
    ) -> dict[str, Any]:
        outcome: dict[str, Any] = {"workflow": route.workflow}
        hook = route.hook
        action = payload.get("action") if isinstance(payload, dict) else None
        if hook.events and event not in hook.events:
            return {**outcome, "status": "ignored", "reason": f"event {event!r}"}
        if hook.actions and action not in hook.actions:
            return {**outcome, "status": "ignored", "reason": f"action {action!r}"}
        if delivery_id and not self._store.claim_delivery(route.workflow, delivery_id):
            existing = self._store.delivery_run(route.workflow, delivery_id)
            return {**outcome, "status": "duplicate", "run_id": existing}
        claimed = [delivery_id] if delivery_id else []
        if not self._store.claim_delivery(route.workflow, body_key, window_s=self._replay_window_s):
            self._release(route.workflow, claimed)
            existing = self._store.delivery_run(route.workflow, body_key)
            log.warning(
                "webhook %s: delivery %s repeats a signed body %s already took (run %s);"
                " no run started",
                trigger["path"],
                delivery_id or "-",
                route.workflow,
                existing or "-",
            )
            return {**outcome, "status": "duplicate", "run_id": existing}
        claimed.append(body_key)
        try:
            session = self._runs.trigger(route.workflow, trigger)
        except QueueFull as error:
            self._release(route.workflow, claimed)
            log.warning("webhook %s: %s", trigger["path"], error)
            return {**outcome, "status": "busy", "error": str(error)}
        except TandemError as error:
            self._release(route.workflow, claimed)
            log.error(
                "webhook %s: run of %s not started: %s", trigger["path"], route.workflow, error
            )
            return {**outcome, "status": "error", "error": str(error)}
        for key in claimed:
            self._store.delivery_started(route.workflow, key, session.id)
        log.info(
            "webhook %s: delivery %s (%s) started run %s of %s",
            trigger["path"],
            delivery_id or "-",
            event or "-",
            session.id,
            route.workflow,
        )
        return {**outcome, "status": "started", "run_id": session.id}

    def _release(self, workflow: str, keys: list[str]) -> None:
        for key in keys:
            self._store.release_delivery(workflow, key)

    def _report_conflict(self, path: str, workflow: str, holder: str) -> None:
        if (path, workflow) in self._reported_conflicts:
            return
        self._reported_conflicts.add((path, workflow))
        log.error(
            "workflow %s: webhook %s is served by %s with another verification or secret; "
            "%s's webhook trigger is not served",
            workflow,
            path,
            holder,
            workflow,
        )


def _same_verification(a: Webhook, b: Webhook) -> bool:
    return (a.verify, a.secret_env, a.header) == (b.verify, b.secret_env, b.header)


def _payload(delivery: Delivery, *, form_allowed: bool) -> Any:
    """The JSON payload; GitHub may also send it form-encoded as `payload=<json>`."""
    body = delivery.body
    content_type = delivery.headers.get("content-type", "")
    if form_allowed and content_type.startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", "replace"))
        if "payload" not in form:
            raise ValueError("a form-encoded delivery needs a `payload` field")
        body = form["payload"][0].encode()
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(str(error)) from None
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


def _delivery_id(hook: Webhook, headers: Mapping[str, str]) -> str | None:
    name = "x-github-delivery" if hook.verify == "github" else hook.delivery_header
    value = headers.get(name.lower()) if name else None
    return value.strip()[:200] if value and value.strip() else None


def _answer(outcomes: list[dict[str, Any]]) -> Answer:
    def having(status: str) -> list[dict[str, Any]]:
        return [o for o in outcomes if o["status"] == status]

    # A run that could not be queued wins over the ones that started: the sender must
    # deliver again, and the started ones answer "duplicate" then.
    started = having("started")
    extra = {"run_id": started[0]["run_id"]} if started else {}
    if having("busy"):
        retry = str(QueueFull.retry_after_s)
        return Answer(429, {"status": "busy", **extra, "runs": outcomes}, {"Retry-After": retry})
    if having("error"):
        return Answer(503, {"status": "error", **extra, "runs": outcomes})
    if started:
        return Answer(202, {"status": "started", **extra, "runs": outcomes})
    if having("duplicate"):
        return Answer(200, {"status": "duplicate", "runs": outcomes})
    return Answer(200, {"status": "ignored", "runs": outcomes})
