"""Held calls posted to the workflow's Slack channel, updated once decided, and the
clicks on their buttons turned into decisions.

Posting and updating are the host's own calls to the `slack` plugin (its `post_message`
and `update_message` tools, through the PluginManager): they are not the run's tool
calls, so they are not in its trace nor subject to its `tools:`. A post that fails is
logged and changes nothing else: the call stays held, and `tandem approve|deny` answer it.
The daemon that executes the run posts and updates its messages; a click that reaches
another daemon sharing the store is passed on to it (tandem.cluster.remote).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from typing import Any

from tandem_sdk.errors import NotFound, TandemError, ToolError

from tandem.approvals import NO_DECISION, RUN_ENDED, HeldCall
from tandem.cluster import remote
from tandem.plugins import PluginManager
from tandem.runs import RunManager
from tandem.session import RunSession

from . import messages

log = logging.getLogger(__name__)

# How many decided calls are remembered, to answer a late click with who decided.
REMEMBERED_OUTCOMES = 1000


@dataclass(frozen=True)
class Posted:
    channel: str  # the channel's ID, as Slack answered
    ts: str
    blocks: list[messages.JSON]


@dataclass(frozen=True)
class Click:
    """One button click, as the interactions endpoint read it from Slack's payload."""

    action_id: str
    value: str
    user_id: str
    user_name: str
    channel: str
    message_ts: str
    message_blocks: list[messages.JSON]


class SlackApprovals:
    """The daemon's ApprovalObserver for workflows with `approvals.notify.slack`."""

    def __init__(self, plugins: PluginManager, runs: RunManager) -> None:
        self._plugins = plugins
        self._runs = runs
        self._posts: dict[tuple[str, int], asyncio.Task[Posted | None]] = {}
        self._clickers: dict[tuple[str, int], str] = {}  # Slack user ids, by held call
        # Outcomes, with the post, by held call: a late click is answered on that message.
        self._outcomes: OrderedDict[
            tuple[str, int], tuple[str, asyncio.Task[Posted | None] | None]
        ] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- ApprovalObserver ------------------------------------------------------------------

    def held(self, session: RunSession, call: HeldCall) -> None:
        notify = session.workflow.spec.approvals.notify
        if notify is None:
            return
        text, blocks = messages.held_message(
            run_id=session.id,
            workflow=session.workflow.name,
            coordinator=session.coordinator,
            tool=call.tool,
            number=call.number,
            arguments=call.arguments,
            deadline=call.deadline,
            seq=call.seq,
        )
        post = self._start(self._post(session, call, notify.slack, text, blocks))
        self._posts[(session.id, call.seq)] = post

    def settled(
        self, session: RunSession, call: HeldCall, approved: bool, reason: str, by: str | None
    ) -> None:
        key = (session.id, call.seq)
        post = self._posts.pop(key, None)
        clicker = self._clickers.pop(key, None)
        outcome = (
            messages.RUN_ENDED_TEXT
            if reason == RUN_ENDED
            else messages.outcome_text(approved, reason, clicker, reason == NO_DECISION, by)
        )
        self._outcomes[key] = (outcome, post)
        while len(self._outcomes) > REMEMBERED_OUTCOMES:
            self._outcomes.popitem(last=False)
        if post is not None:
            self._start(self._show_outcome(session.workflow.name, post, outcome))

    # -- clicks ----------------------------------------------------------------------------

    def click(self, click: Click) -> None:
        """Decide the clicked call, as `tandem approve|deny` would; a click on a call that
        is not waiting (decided, ended, unknown) updates its message to say so. A click
        on a call this daemon neither holds nor posted goes to the daemon that executes
        its run, which posted the message and so checks and updates it (once)."""
        held = messages.parse_value(click.value)
        if held is None or click.action_id not in (messages.APPROVE, messages.DENY):
            return
        run_id = held[0]
        if (
            run_id not in self._runs.sessions
            and held not in self._posts
            and held not in self._outcomes
        ):
            self._start(self._pass_on(click, held))
            return
        self._answer(click, held)

    def take_click(self, fields: dict[str, Any]) -> bool:
        """A click another daemon passed on (see tandem.cluster.remote): answered here,
        never passed on again; whether it decided the call."""
        try:
            click = Click(**{f.name: fields[f.name] for f in dataclasses.fields(Click)})
        except KeyError:  # passed on by a daemon of another version: not a click we know
            return False
        held = messages.parse_value(click.value)
        if held is None or click.action_id not in (messages.APPROVE, messages.DENY):
            return False
        return self._answer(click, held)

    async def _pass_on(self, click: Click, held: tuple[str, int]) -> None:
        who = click.user_name or click.user_id
        try:
            decided = await remote.pass_click(self._runs, held[0], asdict(click))
        except NotFound:
            decided = None  # no such run: answered here, as any click on no call
        except TandemError as error:  # the daemon executing it did not answer
            log.warning("Slack: %s's click %s on run %s: %s", who, click.action_id, held[0], error)
            return
        if decided is None:  # no other daemon executes the run: this one answers
            self._answer(click, held)
            return
        log.info(
            "Slack: %s's click %s passed on to the daemon executing run %s: %s",
            who,
            click.action_id,
            held[0],
            "decided" if decided else "not decided",
        )

    def _answer(self, click: Click, held: tuple[str, int]) -> bool:
        """Decide the call if it waits here, on the message posted for it (any workflow
        may post buttons with the same bot token and a value naming another run's call);
        else say on the message why not. Whether it decided the call."""
        run_id, seq = held
        approved = click.action_id == messages.APPROVE
        who = click.user_name or click.user_id
        post = self._posts.get(held)
        known = self._outcomes.get(held)
        if post is None and known is not None:
            post = known[1]
        if post is not None and not _same_message(post, click):
            log.warning(
                "Slack: refused %s's click %s naming run %s call %s: it is on message %s in"
                " %s, not the one posted for that call",
                who,
                click.action_id,
                run_id,
                seq,
                click.message_ts,
                click.channel,
            )
            return False
        decided = False
        session = self._runs.sessions.get(run_id)
        if session is not None and seq in session.approvals:
            self._clickers[held] = click.user_id
            verb = "approved" if approved else "denied"
            by = f"{who} in Slack ({click.user_id})"
            decided = session.decide_held(seq, approved, f"{verb} in Slack by {who}", by)
            if not decided:
                self._clickers.pop(held, None)
        log.info(
            "Slack: %s clicked %s on run %s call %s: %s",
            who,
            click.action_id,
            run_id,
            seq,
            "decided" if decided else "not waiting",
        )
        if decided:
            return True  # `settled` updates the message
        note = (
            f"Already decided: {known[0]}"
            if known
            else ":grey_question: This call is not waiting for a decision any more"
            " (its run has ended, or the daemon restarted)."
        )
        text, blocks = messages.settled_message(click.message_blocks, note)
        self._start(self._update("", click.channel, click.message_ts, text, blocks))
        return False

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the slack plugin ------------------------------------------------------------------

    async def _post(
        self,
        session: RunSession,
        call: HeldCall,
        channel: str,
        text: str,
        blocks: list[messages.JSON],
    ) -> Posted | None:
        arguments = {"channel": channel, "text": text, "blocks": blocks}
        try:
            answer = await self._invoke("post_message", session.workflow.name, arguments)
        except TandemError as error:
            which = f" {call.number}" if call.number is not None else ""
            log.warning(
                "run %s: could not post its held call%s (%s) to Slack channel %s: %s;"
                " it stays held: answer it with tandem approve|deny %s%s",
                session.id,
                which,
                call.tool,
                channel,
                _why(error),
                session.id,
                which,
            )
            return None
        return Posted(str(answer.get("channel", "")), str(answer.get("ts", "")), blocks)

    async def _show_outcome(
        self, workflow: str, post: asyncio.Task[Posted | None], outcome: str
    ) -> None:
        posted = await post
        if posted is not None:
            text, blocks = messages.settled_message(posted.blocks, outcome)
            await self._update(workflow, posted.channel, posted.ts, text, blocks)

    async def _update(
        self, workflow: str, channel: str, ts: str, text: str, blocks: list[messages.JSON]
    ) -> None:
        arguments = {"channel": channel, "ts": ts, "text": text, "blocks": blocks}
        try:
            await self._invoke("update_message", workflow, arguments)
        except TandemError as error:
            log.warning("could not update Slack message %s in %s: %s", ts, channel, _why(error))

    async def _invoke(self, tool: str, workflow: str, arguments: dict[str, Any]) -> Any:
        """The host's own call: no run id, the workflow's name for the plugin's logs."""
        _, provider = self._plugins.resolve(f"slack.{tool}")
        result = await provider.invoke(tool, json.dumps(arguments), "", workflow)
        return json.loads(result)

    def _start(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _same_message(post: asyncio.Task[Posted | None], click: Click) -> bool:
    """Whether the click is on the message posted for its call, its call section as the
    host wrote it (a run may rewrite the host's message with slack.update_message)."""
    if not post.done() or post.cancelled() or post.exception() is not None:
        return False
    posted = post.result()
    if posted is None or (click.channel, click.message_ts) != (posted.channel, posted.ts):
        return False
    return messages.call_text(click.message_blocks) == messages.call_text(posted.blocks)


def _why(error: TandemError) -> str:
    if isinstance(error, ToolError):
        return f"{error.type}: {error.reason}"
    return str(error)
