"""A child of the host dies with it, whatever kills the host (SIGKILL included)."""

from __future__ import annotations

import os
import threading
import time

# How often a plugin looks at its parent (see watch_parent): a dead daemon's plugins go
# within this much.
WATCH_EVERY_S = 0.2
_watching = threading.Event()


def die_with_parent(parent: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies, so a crashed daemon
    leaves no script or plugin running (the host marks unfinished runs interrupted when it
    starts again). `parent`: the pid the parent had when this process was made, where the
    caller knows it (a forked child); the parent seen now otherwise. Linux only; elsewhere
    a no-op."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    if parent is None:
        parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    # Compared with the parent seen before the request, not with 1: inside a pid namespace
    # the parent legitimately is pid 1.
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def watch_parent(parent: int | None = None) -> None:
    """Also leave when the parent is gone, by looking: a plugin that dropped to a uid of its
    own cannot rely on the parent-death signal, which the kernel sends with the dying
    parent's rights (bubblewrap's monitor, root without CAP_KILL, may not signal another
    uid) and which a change of uid clears anyway. A daemon thread; once per process."""
    if _watching.is_set():
        return
    _watching.set()
    expected = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == expected:
            time.sleep(WATCH_EVERY_S)
        os._exit(1)

    threading.Thread(target=watch, name="tandem-parent-watch", daemon=True).start()
