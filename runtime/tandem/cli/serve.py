"""`tandem serve`: the long-lived host daemon."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from tandem.config import ProjectConfig
from tandem.host import Host
from tandem.schedule import Scheduler

log = logging.getLogger("tandem")


def serve(config: ProjectConfig, args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(_serve(config, args))


async def _serve(config: ProjectConfig, args: argparse.Namespace) -> int:
    host = Host(config, daemon=True)
    for warning in host.isolation_choice.warnings:
        log.warning("%s", warning)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await host.start()
    watcher = None
    if not args.no_reload:
        watcher = asyncio.create_task(host.watch_workflows())
        # Let the watcher register its inotify watches (its first step), then load once more
        # so a change made between the first load and the watch is not missed.
        await asyncio.sleep(0)
        host.reload()
    scheduler = asyncio.create_task(Scheduler(host.runs).run_forever())
    for state in host.registry.states():
        if state.current and any(t.webhook for t in state.current.spec.triggers):
            log.warning(
                "workflow %s declares a webhook trigger; this version does not serve "
                "webhooks yet (manual and schedule triggers work)",
                state.name,
            )
    for run_id in host.interrupted:
        log.warning("run %s was left unfinished by a previous host: marked interrupted", run_id)
    log.info(
        "serving %s: %d workflow(s), %d plugin(s), isolation %s",
        config.root,
        len(host.registry.states()),
        len(host.plugins.plugins),
        host.isolation.name,
    )
    log.info("control socket %s", host.control_socket)
    try:
        await stop.wait()
        log.info("stopping: runs in flight get %.1fs", args.grace)
    finally:
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await host.stop(grace=args.grace)
    log.info("stopped")
    return 0
