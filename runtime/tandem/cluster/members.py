"""The daemons registry: each daemon (and each embedded host) registers when it starts,
heartbeats while it serves, and says when it stops; any of them marks one that stopped
heartbeating dead and interrupts the runs it held."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tandem.store import RunStore

from . import wakeup
from .claims import SHARED_MODES

_COLUMNS = (
    "id, host, pid, state_dir, role, started_at, heartbeat_at, in_flight, stopped_at,"
    " boot_id, pid_ns"
)
# Why a run that was running on a daemon that died is not run again.
# How long stopped members and fired schedule slots are kept.
KEEP_S = 24 * 3600.0
NEVER_AGAIN = "a run that already called a tool with side effects is never re-run blindly"
ORPHANED = "a queued run of this kind does not outlive its host; start it again"


@dataclass(frozen=True)
class Member:
    id: str
    host: str
    pid: int
    state_dir: str
    role: str  # "daemon", or "embedded" (a `tandem run` host: it claims nothing)
    started_at: float
    heartbeat_at: float
    in_flight: int
    stopped_at: float | None
    boot_id: str | None  # the kernel's boot, and
    pid_ns: int | None  # the pid namespace its pid is in (None: unknown, not Linux)

    def name(self) -> str:
        return f"{self.host} pid {self.pid}"


@dataclass
class Reaped:
    """What one pass of `reap` did."""

    dead: list[Member]
    interrupted: list[str]  # runs that were running or waiting
    requeued: list[str]  # queued runs back in the shared queue, for any daemon


def this_host() -> str:
    return socket.gethostname()


@cache
def this_machine() -> tuple[str | None, int | None]:
    """This process's boot id and pid namespace inode: two members that share both see the
    same pids (None where the system does not say)."""
    try:
        boot_id: str | None = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = None
    try:
        pid_ns: int | None = Path("/proc/self/ns/pid").stat().st_ino
    except OSError:
        pid_ns = None
    return boot_id, pid_ns


def register(store: RunStore, member_id: str, state_dir: str, role: str, now: float) -> None:
    boot_id, pid_ns = this_machine()
    store._run(
        f"INSERT INTO daemons ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL, ?, ?)",  # noqa: S608
        (member_id, this_host(), os.getpid(), state_dir, role, now, now, boot_id, pid_ns),
    )


def beat(store: RunStore, member_id: str, in_flight: int, now: float) -> None:
    """Say this daemon lives (back to life, if others had marked it dead meanwhile: its runs
    were taken over then, and its fenced writes are refused)."""
    store._run(
        "UPDATE daemons SET heartbeat_at=?, in_flight=?, stopped_at=NULL, stop_reason=NULL"
        " WHERE id=?",
        (now, in_flight, member_id),
    )


def stopped(store: RunStore, member_id: str, now: float) -> None:
    """A clean stop: its queued runs go back to the shared queue."""
    store._run(
        "UPDATE daemons SET stopped_at=?, stop_reason='stopped', in_flight=0 WHERE id=?",
        (now, member_id),
    )
    _requeue(store, member_id, now)


def members(store: RunStore, *, role: str = "daemon") -> list[Member]:
    """The live members of the cluster (not stopped), oldest first."""
    rows = store._run(
        f"SELECT {_COLUMNS} FROM daemons WHERE stopped_at IS NULL AND role=?"  # noqa: S608
        " ORDER BY started_at, id",
        (role,),
    ).fetchall()
    return [Member(*row) for row in rows]


def reap(store: RunStore, me: str, lease_s: float, now: float, *, leases: bool = True) -> Reaped:
    """Mark dead the members whose process is gone from this machine (same boot, same pid
    namespace) and, with `leases`, those whose heartbeat is older than `lease_s`; interrupt
    the runs they were running or holding for an approval, and put their queued runs back
    in the shared queue; with `leases`, interrupt too any running run whose lease ran out.
    A host just started, or back after the store was away, reaps without `leases`: every
    heartbeat looks old then. Each statement is conditional, so daemons reaping together
    each take a different share, never the same run twice."""
    rows = store._run(
        f"SELECT {_COLUMNS} FROM daemons WHERE stopped_at IS NULL AND id<>?",  # noqa: S608
        (me,),
    ).fetchall()
    candidates = [Member(*row) for row in rows]
    dead = [
        m for m in candidates if (leases and m.heartbeat_at < now - lease_s) or _gone_from_here(m)
    ]
    reaped = Reaped([], [], [])
    for member in dead:
        marked = store._run(
            "UPDATE daemons SET stopped_at=?, stop_reason='stopped heartbeating'"
            " WHERE id=? AND stopped_at IS NULL AND heartbeat_at=?",
            (now, member.id, member.heartbeat_at),
        )
        if marked.rowcount != 1:
            continue  # another daemon reaped it, or it beat again
        reaped.dead.append(member)
        why = (
            f"the host stopped before the run finished: daemon {member.name()} stopped"
            f" heartbeating; {NEVER_AGAIN}"
        )
        reaped.interrupted += _interrupt(
            store, "owner=? AND status IN ('running', 'waiting')", (member.id,), why, now
        )
        reaped.requeued += _requeue(store, member.id, now)
    if not leases:
        return reaped
    reaped.requeued += _requeue_unstarted(store, now)
    why = f"the host stopped before the run finished: its lease ran out unrenewed; {NEVER_AGAIN}"
    reaped.interrupted += _interrupt(store, "status='running' AND lease_until<?", (now,), why, now)
    # Runs an older version left started, owned by no daemon.
    why = f"the host stopped before the run finished; {NEVER_AGAIN}"
    reaped.interrupted += _interrupt(
        store, "owner IS NULL AND status IN ('running', 'waiting')", (), why, now
    )
    # Queued runs no daemon may claim and none holds (an older version made them, then
    # failed to hold them): they would wait forever, counted against runs.max_queued.
    store._run(
        "UPDATE runs SET status='failed', finished_at=?, error=? WHERE status='queued'"  # noqa: S608 - constant modes
        f" AND owner IS NULL AND mode NOT IN {SHARED_MODES} AND created_at<?",
        (now, ORPHANED, now - lease_s),
    )
    return reaped


def sweep(store: RunStore, now: float) -> None:
    """Forget what no one needs any more: members stopped a day ago, commands sent an hour
    ago (answered or not), schedule slots of days past (a slot is only ever fired near its
    time)."""
    store._run("DELETE FROM daemons WHERE stopped_at<?", (now - KEEP_S,))
    store._run("DELETE FROM commands WHERE created_at<?", (now - 3600,))
    store._run("DELETE FROM schedule_slots WHERE fired_at<?", (now - KEEP_S,))


def _interrupt(
    store: RunStore, where: str, params: tuple[object, ...], why: str, now: float
) -> list[str]:
    """The attempt goes up: the daemon that ran the run, should it come back, is refused."""
    rows = store._run(
        "UPDATE runs SET status='interrupted', finished_at=?, error=?, lease_until=NULL,"  # noqa: S608 - constant conditions
        f" attempt=attempt+1 WHERE {where} RETURNING id",
        (now, why, *params),
    ).fetchall()
    for (run_id,) in rows:
        store._changed(run_id)
    return [run_id for (run_id,) in rows]


def _requeue(store: RunStore, member_id: str, now: float) -> list[str]:
    """A member's queued runs: live ones and dry runs back to the shared queue; any other
    (a replay or shadow, whose recording and candidate were the daemon's; an MCP session's)
    fails, saying so: no other daemon may claim it."""
    store._run(
        "UPDATE runs SET status='failed', finished_at=?, error=? WHERE owner=?"  # noqa: S608
        f" AND status='queued' AND mode NOT IN {SHARED_MODES}",
        (now, ORPHANED, member_id),
    )
    rows = store._run(
        "UPDATE runs SET owner=NULL WHERE owner=? AND status='queued' RETURNING id",
        (member_id,),
    ).fetchall()
    if rows:
        wakeup.hint(store)
    return [run_id for (run_id,) in rows]


def _requeue_unstarted(store: RunStore, now: float) -> list[str]:
    """Claimed runs whose lease ran out before they started (no `run.started` in the trace:
    the claim's reply was lost, say, and its daemon took the run for still queued): back to
    the shared queue, their attempt raised so the claim's daemon can write nothing on them."""
    rows = store._run(
        "UPDATE runs SET status='queued', owner=NULL, lease_until=NULL, started_at=NULL,"  # noqa: S608 - constant modes
        f" attempt=attempt+1 WHERE status='running' AND lease_until<? AND mode IN {SHARED_MODES}"
        " AND NOT EXISTS (SELECT 1 FROM events WHERE events.run_id=runs.id"
        " AND events.kind='run.started') RETURNING id",
        (now,),
    ).fetchall()
    for (run_id,) in rows:
        store._changed(run_id)
    if rows:
        wakeup.hint(store)
    return [run_id for (run_id,) in rows]


def _gone_from_here(member: Member) -> bool:
    """A member of this boot and pid namespace whose pid is gone is dead, however fresh its
    heartbeat (it may have beaten just before a SIGKILL). A hostname proves nothing (it may
    be shared by containers, or copied); a pid reused since only makes the member look
    alive, and the lease decides."""
    boot_id, pid_ns = this_machine()
    return (
        boot_id is not None
        and pid_ns is not None
        and (member.boot_id, member.pid_ns) == (boot_id, pid_ns)
        and not _alive(member.pid)
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
