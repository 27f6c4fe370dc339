"""Isolation tiers for script coordinators. A tier turns a launch request into a plan:
the command line, environment and descriptors of the sandboxed process."""

from .base import Isolation, LaunchPlan, LaunchRequest
from .namespace import NamespaceIsolation
from .process import ProcessIsolation
from .select import STRICTNESS, TIERS, IsolationChoice, IsolationUnavailable, choose_isolation


def isolation_for(name: str) -> Isolation:
    try:
        return TIERS[name]()
    except KeyError:
        raise ValueError(f"unknown isolation tier {name!r}; known: {sorted(TIERS)}") from None


__all__ = [
    "STRICTNESS",
    "TIERS",
    "Isolation",
    "IsolationChoice",
    "IsolationUnavailable",
    "LaunchPlan",
    "LaunchRequest",
    "NamespaceIsolation",
    "ProcessIsolation",
    "choose_isolation",
    "isolation_for",
]
