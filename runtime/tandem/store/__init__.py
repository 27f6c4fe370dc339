"""The run store: SQLite in the state folder by default, or PostgreSQL shared by several
daemons (`store: postgresql://...`). One RunStore holds every query; sqlite.py and
postgres.py each only run statements on their database."""

from .location import open_existing_store, open_store
from .records import (
    ACTIVE,
    EVENT_OVERHEAD_CHARS,
    FINAL,
    FLUSH_AFTER_S,
    FLUSH_AT,
    MODES,
    PLAN_KINDS,
    USAGE_KEYS,
    Event,
    RunQuery,
    RunRecord,
    StoreError,
)
from .runstore import RunStore

__all__ = [
    "ACTIVE",
    "EVENT_OVERHEAD_CHARS",
    "FINAL",
    "FLUSH_AFTER_S",
    "FLUSH_AT",
    "MODES",
    "PLAN_KINDS",
    "USAGE_KEYS",
    "Event",
    "RunQuery",
    "RunRecord",
    "RunStore",
    "StoreError",
    "open_existing_store",
    "open_store",
]
