"""`tandem serve`: the long-lived host daemon."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from tandem.config import ProjectConfig
from tandem.console import Console, ConsoleAddress
from tandem.console import console_token as console_token_for
from tandem.console import create_app as create_console_app
from tandem.console.address import TOKEN_VARIABLE
from tandem.host import Host
from tandem.plugins import confine
from tandem.retention import prune_forever
from tandem.schedule import Scheduler
from tandem.slack_approvals import SlackApprovals
from tandem.webhooks import HttpListener, WebhookIntake, bind_listener, parse_listen
from tandem.webhooks.guard import connection_cap, raise_descriptor_limit
from tandem.webhooks.listener import create_app
from tandem.webhooks.slack import INTERACTIONS_PATH, SIGNING_SECRET_ENV

log = logging.getLogger("tandem")


def serve(config: ProjectConfig, args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(_serve(config, args))


class BackgroundTasks:
    """The daemon's long-lived tasks. One that dies is logged at ERROR at once (the daemon
    keeps serving what it can); stopping them never raises, so shutdown always runs."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self, name: str, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(_report_death)
        self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _report_death(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("background task %s died; it stays stopped", task.get_name(), exc_info=error)
    else:
        log.error("background task %s ended unexpectedly", task.get_name())


async def _serve(
    config: ProjectConfig, args: argparse.Namespace, stop: asyncio.Event | None = None
) -> int:
    # Descriptors: the soft limit (often 1024) is lifted to the hard one before anything
    # opens, and the listener's connection cap keeps a reserve for the rest.
    descriptors = raise_descriptor_limit()
    host = Host(config, daemon=True)
    # Held calls of workflows with approvals.notify.slack are posted there, before any run.
    slack = SlackApprovals(host.plugins, host.runs)
    host.runs.approval_observer = slack
    for warning in host.isolation_choice.warnings:
        log.warning("%s", warning)
    if (why := confine.reason()) is not None:
        log.warning("plugins are not confined: %s (docs/sandbox.md)", why)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    background = BackgroundTasks()
    closing = contextlib.ExitStack()
    listener: HttpListener | None = None
    sock: socket.socket | None = None
    console: Console | None = None
    console_listener: HttpListener | None = None
    try:
        # The console's listener, bound now too; its token is checked before anything starts.
        console_token = console_sock = None
        if config.console_listen:
            console_host, console_port = parse_listen(config.console_listen, "--console")
            console_token = console_token_for(config.state_dir, console_host)
            console_sock = bind_listener(console_host, console_port)
            closing.callback(console_sock.close)
        # Bound first: a taken port stops the daemon before it starts anything.
        token = None
        if config.http_mcp is not None and config.http_listen:
            from tandem.mcp.server.http import token_from_env  # the mcp package: only if on

            token = token_from_env()
        sock = bind_listener(*parse_listen(config.http_listen)) if config.http_listen else None
        await host.start()
        if sock is not None:
            mcp = None
            if config.http_mcp is not None and token is not None:
                from tandem.client import ControlClient
                from tandem.mcp.server.http import Mcp

                control = ControlClient(config.control_socket)
                closing.callback(control.close)
                mcp = Mcp(
                    config.http_mcp,
                    token,
                    sock.getsockname()[0],
                    control,
                    config.workflows_dir,
                    config.state_dir,
                    lambda name: host.registry.get(name) is not None,
                )
                background.start("mcp-sessions", mcp.run())
            intake = WebhookIntake(
                host.registry,
                host.runs,
                host.store,
                replay_window_s=config.http_replay_window_s,
            )
            limits = replace(
                config.http_limits,
                max_connections=connection_cap(config.http_limits.max_connections, descriptors),
            )
            listener = HttpListener(
                create_app(intake, config.http_max_body_bytes, limits, mcp, slack),
                sock,
                limits,
                config.http_trusted_proxies,
            )
            background.start("http-listener", listener.serve())
        ConsoleAddress.remove(config.state_dir)  # one a killed daemon left names no console
        if console_sock is not None and console_token is not None:
            console = Console(host.runs, console_token, config.root)
            console_listener = HttpListener(create_console_app(console), console_sock)
            background.start("console-listener", console_listener.serve())
            bound_host, bound_port = console_sock.getsockname()[:2]
            kept = not os.environ.get(TOKEN_VARIABLE)
            ConsoleAddress(bound_host, bound_port, kept).write(config.state_dir)
            closing.callback(ConsoleAddress.remove, config.state_dir)
        if not args.no_reload:
            background.start("workflow-watcher", host.watch_workflows())
            background.start("plugin-watcher", host.watch_plugins())
            # Let the watcher register its inotify watches (its first step), then load once
            # more so a change made between the first load and the watch is not missed.
            await asyncio.sleep(0)
            host.reload()
        background.start("scheduler", Scheduler(host.runs).run_forever())
        if config.record_keep_days is not None:
            background.start(
                "retention", prune_forever(config.store_location, config.record_keep_days)
            )
        _announce(host, config, listener)
        if console_listener is not None:
            log.info(
                "console %s: `tandem console` prints its sign-in URL", console_listener.address
            )
        await stop.wait()
        log.info("stopping: runs in flight get %.1fs", args.grace)
    finally:
        if console is not None and console_listener is not None:
            console.stop()  # its live streams end, so its listener stops at once
            console_listener.stop()
        if listener is not None:
            listener.stop()  # no new deliveries; uvicorn finishes the ones it holds
        elif sock is not None:
            sock.close()
        await background.stop()  # MCP sessions end here: their runs succeed
        await slack.close()
        await host.stop(grace=args.grace)
        closing.close()
    log.info("stopped")
    return 0


def _announce_slack(host: Host, listener: HttpListener | None) -> None:
    """Where held calls go to Slack, and what their buttons still need."""
    for state in host.registry.states():
        notify = state.current.spec.approvals.notify if state.current else None
        if notify is None:
            continue
        if listener is None:
            log.warning(
                "workflow %s posts held calls to Slack %s, but their buttons need the daemon"
                " to serve HTTP (--http HOST:PORT, Slack's Request URL %s)",
                state.name,
                notify.slack,
                INTERACTIONS_PATH,
            )
        elif not os.environ.get(SIGNING_SECRET_ENV):
            log.warning(
                "workflow %s posts held calls to Slack %s, but %s is not set: clicks on"
                " their buttons are refused until it is",
                state.name,
                notify.slack,
                SIGNING_SECRET_ENV,
            )
        else:
            log.info(
                "Slack clicks POST %s%s -> held calls of %s",
                listener.address,
                INTERACTIONS_PATH,
                state.name,
            )


def _announce(host: Host, config: ProjectConfig, listener: HttpListener | None) -> None:
    for state in host.registry.states():
        triggers = state.current.spec.triggers if state.current else []
        for hook in (t.webhook for t in triggers if t.webhook):
            if listener is None:
                log.warning(
                    "workflow %s has a webhook trigger (%s) but the daemon serves no HTTP: "
                    "start it with --http HOST:PORT (or http: in tandem.yaml)",
                    state.name,
                    hook.path,
                )
            else:
                log.info("webhook POST %s%s -> %s", listener.address, hook.path, state.name)
            if not os.environ.get(hook.secret_env):
                log.warning(
                    "workflow %s: %s is not set; deliveries to %s are refused until it is",
                    state.name,
                    hook.secret_env,
                    hook.path,
                )
    _announce_slack(host, listener)
    if config.http_mcp is not None and listener is None:
        log.warning(
            "http.mcp is on but the daemon serves no HTTP: start it with --http HOST:PORT"
            " (or http.listen in tandem.yaml)"
        )
    for run_id in host.interrupted:
        log.warning("run %s was left unfinished by a previous host: marked interrupted", run_id)
    if host.adopted:
        log.info("%d run(s) a previous host left queued are queued again", len(host.adopted))
    log.info(
        "serving %s: %d workflow(s), %d plugin(s), isolation %s",
        config.root,
        len(host.registry.states()),
        len(host.plugins.plugins),
        host.isolation.name,
    )
    if host.cgroups_note:
        log.info("%s", host.cgroups_note)
    if listener is not None:
        log.info("http listener %s", listener.address)
    log.info("control socket %s", host.control_socket)
