"""What every benchmark shares: interleaved rounds, medians of rounds, how figures print.

The machine is shared and noisy, so no figure stands alone: each is measured in rounds,
interleaved with a reference measured in the same run (A, B, A, B, ...), and reported as
the median over rounds of A / B, with absolute medians beside it for orientation.
"""

from __future__ import annotations

import os
import platform
import statistics
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self, TypeVar

from tandem.testing.closing import Closing

T = TypeVar("T")


def p50(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def p99(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def interleave(rounds: int, contenders: dict[str, Callable[[], T]]) -> dict[str, list[T]]:
    """Every contender once per round, in reverse order every other round, so that none
    always runs first (or right after another). Returns each one's results, by round."""
    results: dict[str, list[T]] = {name: [] for name in contenders}
    names = list(contenders)
    for n in range(rounds):
        for name in names if n % 2 == 0 else reversed(names):
            results[name].append(contenders[name]())
    return results


def ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """The median over rounds of a / b (each round's a against the same round's b)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def ms(seconds: float, width: int = 8) -> str:
    return f"{seconds * 1e3:{width}.2f} ms"


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def rss_mib(pid: int) -> float:
    """The process's resident set (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for pid {pid}")


class PeakRss(Closing):
    """Samples a process's VmRSS every 10 ms while in use; `peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mib(self.pid))
            if self._stop.wait(0.01):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
