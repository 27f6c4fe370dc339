"""`make bench` (part): the daemon under load, a real `tandem serve` with default settings.

- throughput: 1 and 8 scripts at once, each making CALLS tool calls in a loop (runs
  triggered together through Control), against as many client processes on a bare 2-hop
  gRPC chain (grpc_refs.Chain), interleaved in rounds. Tandem's calls/s is over the wall
  time from the first run.started to the last run.finished, which includes starting the
  sandboxed scripts; "calls only" is over the first tool.call to the last tool.result, the
  window that matches the chain's (whose clients are started beforehand);
- burst: BURST runs triggered at once by as many threads, interleaved with naive Python
  starts, as many at a time as the daemon admits runs at once. Trigger latency is shown
  two ways: the burst's own Triggers against BURST Health calls at once from the same
  client (what BURST simultaneous RPCs cost this client and a Python gRPC server, with no
  work behind them), and a probe's Triggers against its Health calls (the cheapest
  Control RPC) while the burst's runs run, each sent alone, so the ratio is the daemon's
  responsiveness under load rather than BURST calls queueing behind each other;
- the daemon's resident memory (VmRSS): idle, and its peak under each load.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from daemon import Daemon, first, last, make_project
from grpc_refs import Chain, naive_start
from measure import PeakRss, interleave, ms, p50, p99, ratio, rss_mib
from tandem.client import ControlClient
from tandem.config import DEFAULT_MAX_QUEUED, load_config
from tandem_sdk._pb import control_pb2

ROUNDS = 5
CALLS = 200
BURST = 200
BURST_ROUNDS = 3
NAIVE_STARTS = 24  # the burst's reference: a rate, so fewer starts do
PROBE_EVERY_S = 0.01
HEALTH = control_pb2.HealthRequest()
T = TypeVar("T")


class Loops:
    """`scripts` runs of the `loop` workflow, CALLS calls each, triggered at once."""

    def __init__(self, daemon: Daemon, scripts: int) -> None:
        self.daemon = daemon
        self.scripts = scripts
        self.calls_only: list[float] = []  # calls/s over the calls' own window, by round

    def __call__(self) -> float:
        """Calls/s over the runs' wall time."""
        _, triggered = at_once(
            self.scripts, lambda: self.daemon.client.trigger("loop", {"calls": CALLS}, None)
        )
        records = [self.daemon.finish(run_id) for run_id, _ in triggered]
        total = self.scripts * CALLS
        calls = max(last(r, "tool.result") for r in records) - min(
            first(r, "tool.call") for r in records
        )
        self.calls_only.append(total / calls)
        return total / (
            max(last(r, "run.finished") for r in records)
            - min(first(r, "run.started") for r in records)
        )


class Burst:
    """BURST runs of the `cold` workflow triggered at once by as many threads; then, until
    they have all ended, a probe alternating a Trigger and a Health every PROBE_EVERY_S, on
    a connection of its own. The probe's runs queue behind the burst's and are waited for
    after the round, outside its figures."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.succeeded: list[int] = []
        self.trigger_latency: list[float] = []  # the burst's own Triggers
        self.health_at_once: list[float] = []  # BURST Health calls at once, between rounds
        self.probe_trigger: list[float] = []  # while the burst's runs are in flight
        self.probe_health: list[float] = []
        self.intake: list[float] = []  # first trigger sent -> the last run created, by round

    def __call__(self) -> float:
        """Runs/s: BURST over the time from the first trigger to the last run's end."""
        began, triggered = at_once(BURST, lambda: self.daemon.client.trigger("cold", None, None))
        run_ids = [run_id for run_id, _ in triggered]
        done = threading.Event()
        probed: list[str] = []
        probe = threading.Thread(target=self._probe, args=(done, probed))
        probe.start()
        for run_id in run_ids:
            for _ in self.daemon.client.watch(run_id):
                pass
        done.set()
        probe.join()
        records = [self.daemon.client.run(run_id) for run_id in run_ids]
        for run_id in probed:
            self.daemon.finish(run_id)
        self.trigger_latency += [seconds for _, seconds in triggered]
        _, health = at_once(BURST, self._health)
        self.health_at_once += [seconds for _, seconds in health]
        self.succeeded.append(sum(r.status == "succeeded" for r in records))
        self.intake.append(max(r.created_at for r in records) - began)
        return BURST / (max(r.finished_at or 0.0 for r in records) - began)

    def _probe(self, done: threading.Event, run_ids: list[str]) -> None:
        with ControlClient(self.daemon.client.socket) as client:
            while not done.wait(PROBE_EVERY_S):
                run_id, seconds = timed(lambda: client.trigger("cold", None, None))
                run_ids.append(run_id)
                self.probe_trigger.append(seconds)
                if done.wait(PROBE_EVERY_S):
                    return
                self.probe_health.append(timed(lambda: client.stub.Health(HEALTH))[1])

    def _health(self) -> None:
        """The cheapest Control RPC: BURST of them at once, with no run behind them, are
        the floor for BURST calls at once from this client."""
        self.daemon.client.stub.Health(HEALTH)


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """The call's result, and the seconds it took."""
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def at_once(count: int, call: Callable[[], T]) -> tuple[float, list[tuple[T, float]]]:
    """`count` calls from as many threads, released together: when they were released
    (time.time()), and each call's result and seconds."""
    barrier = threading.Barrier(count + 1)

    def released(_: int) -> tuple[T, float]:
        barrier.wait()
        return timed(call)

    with ThreadPoolExecutor(count) as pool:
        results = pool.map(released, range(count))
        began = time.time()
        barrier.wait()
        return began, list(results)


def naive_starts(at_once: int) -> float:
    """Starts/s: NAIVE_STARTS naive Python starts, `at_once` at a time."""
    started = time.perf_counter()
    with ThreadPoolExecutor(at_once) as pool:
        list(pool.map(lambda _: naive_start(), range(NAIVE_STARTS)))
    return NAIVE_STARTS / (time.perf_counter() - started)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tandem-load-bench-") as tmp:
        root = make_project(Path(tmp) / "project")
        admits = load_config(root).max_in_flight
        with Daemon(root) as daemon, Chain(Path(tmp)) as chain:
            daemon.run("loop", {"calls": 20})  # the plugin and the page cache
            idle, reference_rss = rss_mib(daemon.pid), rss_mib(chain.front.pid)
            one, eight = Loops(daemon, 1), Loops(daemon, 8)
            with PeakRss(daemon.pid) as loops_rss:
                loops: dict[str, list[float]] = interleave(
                    ROUNDS,
                    {
                        "tandem 1": one,
                        "chain 1": lambda: chain.calls_per_second(1, CALLS),
                        "tandem 8": eight,
                        "chain 8": lambda: chain.calls_per_second(8, CALLS),
                    },
                )
            burst = Burst(daemon)
            with PeakRss(daemon.pid) as burst_rss:
                bursts: dict[str, list[float]] = interleave(
                    BURST_ROUNDS, {"tandem": burst, "naive": lambda: naive_starts(admits)}
                )
            time.sleep(1)
            after = rss_mib(daemon.pid)
    print(f"throughput: {ROUNDS} interleaved rounds, {CALLS} calls per script; medians of rounds")
    print(f"  {'':<12}{'tandem, run wall':>22}{'tandem, calls only':>24}{'2-hop gRPC chain':>20}")
    for loop in (one, eight):
        wall, chain_rate = loops[f"tandem {loop.scripts}"], loops[f"chain {loop.scripts}"]
        print(
            f"  {f'{loop.scripts} script(s)':<12}"
            f"{p50(wall):9.0f} calls/s {ratio(wall, chain_rate):5.2f}x"
            f"{p50(loop.calls_only):11.0f} calls/s {ratio(loop.calls_only, chain_rate):5.2f}x"
            f"{p50(chain_rate):12.0f} calls/s"
        )
    show_burst(burst, bursts, admits)
    print("daemon memory (VmRSS, MiB)")
    print(
        f"  idle {idle:.1f}; peak with 8 scripts looping {loops_rss.peak:.1f}; peak in the "
        f"burst {burst_rss.peak:.1f}; idle after {after:.1f}"
    )
    print(f"  (beside it: the chain's forwarder, a bare grpc.aio server, {reference_rss:.1f})")


def show_burst(burst: Burst, rounds: dict[str, list[float]], admits: int) -> None:
    print(
        f"burst: {BURST} runs triggered at once, {BURST_ROUNDS} interleaved rounds; admission "
        f"defaults: runs.max_in_flight {admits} (4 per core), runs.max_queued {DEFAULT_MAX_QUEUED}"
    )
    tandem, naive = rounds["tandem"], rounds["naive"]
    print(
        f"  {p50(tandem):.1f} runs/s, {ratio(tandem, naive):.2f}x naive Python starts "
        f"{admits} at a time ({p50(naive):.1f}/s); wall {BURST / p50(tandem):.1f} s; "
        f"succeeded {', '.join(f'{n}/{BURST}' for n in burst.succeeded)}"
    )
    intake = p50(burst.intake)
    print(
        f"  all {BURST} runs created (queued) {ms(intake, 0)} after the first Trigger was sent: "
        f"{intake / BURST * 1e3:.2f} ms per Trigger"
    )
    trigger_p99, floor_p99 = p99(burst.trigger_latency), p99(burst.health_at_once)
    print(
        f"  {BURST} Triggers at once: p50 {ms(p50(burst.trigger_latency), 0)}, p99 "
        f"{ms(trigger_p99, 0)}; {BURST} Health calls at once (the floor for this client, no "
        f"runs): p99 {ms(floor_p99, 0)}; Trigger p99 / that floor {trigger_p99 / floor_p99:.1f}x"
    )
    probe_p99, health_p50 = p99(burst.probe_trigger), p50(burst.probe_health)
    print(
        f"  under load (probed every {PROBE_EVERY_S * 1e3:.0f} ms while the burst's runs run, "
        f"n={len(burst.probe_trigger)}): Trigger p50 {ms(p50(burst.probe_trigger), 0)}, p99 "
        f"{ms(probe_p99, 0)}; Health p50 {ms(health_p50, 0)}, p99 "
        f"{ms(p99(burst.probe_health), 0)}; Trigger p99 / Health p50 {probe_p99 / health_p50:.1f}x"
    )


if __name__ == "__main__":
    main()
