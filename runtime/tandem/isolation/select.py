"""Choosing the tier: once per daemon, at start, then per workflow only towards stricter.

The daemon asks for a tier (`tandem serve --isolation`, `isolation:` in tandem.yaml). If
the machine cannot provide it, the daemon refuses to start, unless `isolation_fallback:
true` allows it to fall back from `namespace` to `process`, which it then says loudly.
A workflow's own `isolation:` can only make its runs stricter than the daemon's tier.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tandem_sdk.errors import TandemError

from .base import Isolation
from .namespace import NamespaceIsolation
from .probe import probe
from .process import ProcessIsolation

STRICTNESS = ("process", "namespace")  # weakest first
TIERS: dict[str, type[Isolation]] = {
    "process": ProcessIsolation,
    "namespace": NamespaceIsolation,
}


class IsolationUnavailable(TandemError):
    pass


@dataclass
class IsolationChoice:
    default: Isolation
    available: dict[str, Isolation]
    unavailable: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def for_workflow(self, requested: str | None) -> Isolation:
        """The tier of one run: the daemon's, or the workflow's if that is stricter."""
        if requested is None or _rank(requested) <= _rank(self.default.name):
            return self.default
        tier = self.available.get(requested)
        if tier is None:
            reason = self.unavailable.get(requested, "not probed")
            raise IsolationUnavailable(
                f"the workflow requires isolation {requested!r}, which this host "
                f"cannot provide: {reason}"
            )
        return tier


def _rank(name: str) -> int:
    if name not in STRICTNESS:
        raise ValueError(f"unknown isolation tier {name!r}; known: {list(STRICTNESS)}")
    return STRICTNESS.index(name)


def choose_isolation(requested: str, *, fallback: bool = False) -> IsolationChoice:
    _rank(requested)
    wanted = {requested} | ({"process"} if fallback else set())
    report = probe(process="process" in wanted, namespace=True)
    available: dict[str, Isolation] = {}
    unavailable: dict[str, str] = {}
    for name, support in report.tiers.items():
        if support.available:
            available[name] = TIERS[name]()
        else:
            unavailable[name] = "; ".join(support.notes) or "unavailable"
    if requested in available:
        return IsolationChoice(available[requested], available, unavailable)
    reason = unavailable[requested]
    if fallback and requested == "namespace" and "process" in available:
        warning = (
            f"isolation 'namespace' is unavailable ({reason}); falling back to 'process' "
            "as isolation_fallback allows: scripts see the host's files, network and processes"
        )
        return IsolationChoice(available["process"], available, unavailable, [warning])
    hint = "" if fallback else " (set isolation_fallback: true in tandem.yaml to fall back)"
    raise IsolationUnavailable(f"isolation {requested!r} is unavailable here: {reason}{hint}")
