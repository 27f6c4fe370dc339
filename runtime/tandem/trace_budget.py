"""What a run may add to its trace besides its calls: log lines and their bytes, up to the
workflow's limits, and one refusal of the calls past `max_tool_calls`. The rest is dropped
and counted, so a script in a loop cannot grow its trace (and the store, and every reader
of it) without bound; the run's end writes the counts as one `trace.dropped` event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class TraceBudget:
    max_log_lines: int
    max_log_bytes: int
    log_lines: int = 0
    log_bytes: int = 0
    dropped_log_lines: int = 0
    dropped_log_bytes: int = 0
    calls_past_limit: int = 0  # calls refused by max_tool_calls; only the first is traced

    def take_log(self, size: int) -> bool:
        """Count a log event of `size` bytes: True to write it, False when it is dropped."""
        if self.log_lines >= self.max_log_lines or self.log_bytes + size > self.max_log_bytes:
            self.dropped_log_lines += 1
            self.dropped_log_bytes += size
            return False
        self.log_lines += 1
        self.log_bytes += size
        return True

    def call_past_limit(self) -> None:
        self.calls_past_limit += 1

    def dropped(self) -> dict[str, Any] | None:
        """What was left out of the trace, for the `trace.dropped` event; None: nothing."""
        refusals = max(self.calls_past_limit - 1, 0)
        if not (self.dropped_log_lines or refusals):
            return None
        return {
            "log_lines": self.dropped_log_lines,
            "log_bytes": self.dropped_log_bytes,
            "refused_calls": refusals,
            "limits": {"max_log_lines": self.max_log_lines, "max_log_bytes": self.max_log_bytes},
        }
