"""Isolation tiers for script coordinators. A tier turns a launch request into a plan:
the command line, environment and descriptors of the sandboxed process."""

from .base import Isolation, LaunchPlan, LaunchRequest
from .process import ProcessIsolation

TIERS: dict[str, type[Isolation]] = {"process": ProcessIsolation}


def isolation_for(name: str) -> Isolation:
    try:
        return TIERS[name]()
    except KeyError:
        raise ValueError(f"unknown isolation tier {name!r}; known: {sorted(TIERS)}") from None


__all__ = ["TIERS", "Isolation", "LaunchPlan", "LaunchRequest", "ProcessIsolation", "isolation_for"]
