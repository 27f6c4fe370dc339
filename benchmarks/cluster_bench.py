"""`make bench` (part): several daemons on one store.

- Throughput: a burst of runs triggered at once (spread round-robin), to the last one's
  end, on one daemon on SQLite, one on PostgreSQL and three on PostgreSQL sharing one
  database; interleaved rounds, medians, each against one daemon on SQLite.
- Takeover: the time from a daemon's SIGKILL (and SIGSTOP: a daemon that hangs, or dies
  on another machine, is only seen by its silence) to its running runs `interrupted` and
  its queued runs claimed by another daemon, against the configured lease.
- Claim cost on PostgreSQL: `claims.claim_next` with 10,000 runs queued, against one run
  queued (goal: within 1.5x, the queue's depth must not slow a claim).
"""

from __future__ import annotations

import functools
import signal
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from measure import interleave, machine, ms, ratio
from tandem.cluster import claims
from tandem.store import FINAL, RunRecord, RunStore
from tandem.testing.daemon import ServedDaemon
from tandem.testing.postgres import PgServer

BURST = 200
ROUNDS = 3
TAKEOVERS = 3
CLAIMS = 300  # per round and queue depth
DEEP = 10_000
HEARTBEAT_S, LEASE_S = 0.5, 3.0
SCRIPT = """
import time

def handler(trigger, tools, virtual_files, subagent):
    time.sleep((trigger or {}).get("sleep", 0))
    return trigger
"""


def project(root: Path, store: str, settings: str = "") -> Path:
    folder = root / "workflows" / "tick"
    folder.mkdir(parents=True)
    (folder / "script.py").write_text(textwrap.dedent(SCRIPT))
    (folder / "workflow.yaml").write_text("coordinator: script\ncoordinator_script: script.py\n")
    (root / "tandem.yaml").write_text(f"store: {store}\n{settings}")
    return root


def serve(root: Path, name: str) -> ServedDaemon:
    return ServedDaemon(root, "--no-reload", ready_within_s=60, state_dir=root / f"state-{name}")


def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"cluster bench: {what} not within {within} s")
        time.sleep(0.005)


class Burst:
    """BURST runs triggered across `daemons`, timed from the first Trigger to the last end
    (read from the shared store)."""

    def __init__(self, daemons: list[ServedDaemon], store: RunStore) -> None:
        self.daemons = daemons
        self.store = store

    def __call__(self) -> float:
        started = time.perf_counter()
        ids = [
            self.daemons[n % len(self.daemons)].client.trigger("tick", {"n": n}, None)
            for n in range(BURST)
        ]
        wait_for(lambda: self._ended(ids) == BURST, 300, "the burst's runs")
        took = time.perf_counter() - started
        marks = ",".join("?" * len(ids))
        rows = self.store._run(f"SELECT status FROM runs WHERE id IN ({marks})", ids).fetchall()
        if {status for (status,) in rows} != {"succeeded"}:
            sys.exit(f"cluster bench: the burst's runs ended {sorted(set(rows))}")
        return took

    def _ended(self, ids: list[str]) -> int:
        marks = ",".join("?" * len(ids))
        finals = ",".join(f"'{status}'" for status in FINAL)
        row = self.store._run(
            f"SELECT COUNT(*) FROM runs WHERE id IN ({marks}) AND status IN ({finals})",
            ids,
        ).fetchone()
        return int(row[0])


def throughput(base: Path, server: PgServer) -> None:
    setups = {
        "1 daemon, SQLite": (str(base / "sqlite" / "runs.sqlite3"), 1),
        "1 daemon, PostgreSQL": (server.fresh_database(), 1),
        "3 daemons, PostgreSQL": (server.fresh_database(), 3),
    }
    daemons: list[ServedDaemon] = []
    stores: list[RunStore] = []
    bursts: dict[str, Callable[[], float]] = {}
    try:
        for n, (name, (store, count)) in enumerate(setups.items()):
            root = project(base / f"throughput-{n}", store)
            members = [serve(root, str(i)) for i in range(count)]
            daemons += members
            stores.append(RunStore(store))
            bursts[name] = Burst(members, stores[-1])
        walls = interleave(ROUNDS, bursts)
    finally:
        for daemon in daemons:
            daemon.close()
        for opened in stores:
            opened.close()
    print(
        f"throughput: {BURST} runs triggered at once, {ROUNDS} interleaved rounds, medians;"
        " runs.max_in_flight 8 per daemon"
    )
    reference = walls["1 daemon, SQLite"]
    for name, samples in walls.items():
        rates = [BURST / s for s in samples]
        print(
            f"  {name:24} {statistics.median(rates):7.1f} runs/s"
            f"  {ratio(reference, samples):5.2f}x SQLite's"
            f"  (wall {statistics.median(samples):.2f} s)"
        )
    three = ratio(walls["1 daemon, PostgreSQL"], walls["3 daemons, PostgreSQL"])
    print(f"  3 daemons / 1 daemon on PostgreSQL: {three:.2f}x")


def takeover(base: Path, server: PgServer) -> None:
    settings = (
        f"cluster: {{heartbeat_s: {HEARTBEAT_S}, lease_s: {LEASE_S}}}\nruns: {{max_in_flight: 2}}\n"
    )
    url = server.fresh_database()
    root = project(base / "takeover", url, settings)
    store = RunStore(url)
    survivors = [serve(root, "a"), serve(root, "b")]
    took: dict[str, list[float]] = {"SIGKILL": [], "SIGSTOP": []}
    try:
        for n in range(TAKEOVERS):
            for how, sig in (("SIGKILL", signal.SIGKILL), ("SIGSTOP", signal.SIGSTOP)):
                took[how].append(_take_over(root, store, f"{how}-{n}", sig))
    finally:
        for daemon in survivors:
            daemon.close()
        store.close()
    print(
        f"takeover: {TAKEOVERS} daemons each, 2 runs running and 2 queued (dry runs: its own),"
        f" heartbeat_s {HEARTBEAT_S}, lease_s {LEASE_S}; signal -> runs interrupted and"
        " queued runs claimed by another daemon"
    )
    for how, samples in took.items():
        seen = (
            "its process gone, seen by a daemon of the same machine"
            if how == "SIGKILL"
            else "silent: its lease runs out"
        )
        print(
            f"  {how}: median {statistics.median(samples):.2f} s"
            f" ({', '.join(f'{s:.2f}' for s in samples)}),"
            f" {statistics.median(samples) / LEASE_S:.2f}x the lease ({seen})"
        )


def _take_over(root: Path, store: RunStore, name: str, sig: signal.Signals) -> float:
    victim = serve(root, name)
    try:
        ids = [
            victim.client.trigger("tick", {"sleep": 600 if n < 2 else 0}, None, dry_run=True)
            for n in range(4)
        ]
        me = store._run("SELECT owner FROM runs WHERE id=?", (ids[0],)).fetchone()[0]

        def statuses() -> list[tuple[str, str]]:
            marks = ",".join("?" * len(ids))
            rows = store._run(
                f"SELECT status, owner FROM runs WHERE id IN ({marks}) ORDER BY created_at",
                ids,
            ).fetchall()
            return [(str(status), str(owner)) for status, owner in rows]

        wait_for(lambda: [s for s, _ in statuses()][:2] == ["running", "running"], 30, "runs")
        started = time.perf_counter()
        victim.process.send_signal(sig)
        if sig == signal.SIGKILL:
            victim.process.wait(10)  # reaped by its parent, as a service manager does

        def taken() -> bool:
            now = statuses()
            return [s for s, _ in now[:2]] == ["interrupted"] * 2 and all(
                s != "queued" and owner != me for s, owner in now[2:]
            )

        wait_for(taken, 60, "the takeover")
        return time.perf_counter() - started
    finally:
        victim.kill()


def claim_cost(server: PgServer) -> None:
    stores = {
        "10,000 queued": RunStore(server.fresh_database()),
        "1 queued": RunStore(server.fresh_database()),
    }
    for name, store in stores.items():
        _queue(store, DEEP if name.startswith("10,000") else 1)
    try:
        samples = interleave(
            ROUNDS * 2, {name: functools.partial(_claims, s) for name, s in stores.items()}
        )
    finally:
        for store in stores.values():
            store.close()
    deep, empty = samples["10,000 queued"], samples["1 queued"]
    print(
        f"claim on PostgreSQL (claims.claim_next, one transaction): {CLAIMS} claims per round,"
        f" {ROUNDS * 2} interleaved rounds, medians of per-claim means"
    )
    print(f"  1 run queued        {ms(statistics.median(empty))}")
    print(
        f"  10,000 runs queued  {ms(statistics.median(deep))}"
        f"   deep/empty {ratio(deep, empty):.2f}x (goal: within 1.5x)"
    )


def _queue(store: RunStore, count: int) -> None:
    for _ in range(count):
        _one(store)


def _one(store: RunStore) -> None:
    store.create(
        RunRecord(
            id=f"r{time.time_ns()}",
            workflow="tick",
            workflow_version="v1",
            coordinator="script",
            trigger=None,
            status="queued",
            created_at=time.time(),
        )
    )


def _claims(store: RunStore) -> float:
    """Mean seconds per claim; each claimed run is replaced, so the depth stays."""
    spent = 0.0
    for _ in range(CLAIMS):
        now = time.time()
        started = time.perf_counter()
        claim = claims.claim_next(store, "bench", {"tick": "v1"}, {}, now, now + LEASE_S)
        spent += time.perf_counter() - started
        if claim is None:
            sys.exit("cluster bench: nothing to claim")
        _one(store)
    return spent / CLAIMS


def main() -> None:
    print(f"machine: {machine()}")
    server = PgServer()
    try:
        with tempfile.TemporaryDirectory(prefix="tandem-cluster-bench-") as tmp:
            base = Path(tmp)
            throughput(base, server)
            takeover(base, server)
            claim_cost(server)
    finally:
        server.close()


if __name__ == "__main__":
    main()
