"""Which store a project uses: `config.store_location` (a SQLite file, or a PostgreSQL
URL from `store:` in tandem.yaml or TANDEM_DATABASE_URL), opened in one place."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .runstore import RunStore

if TYPE_CHECKING:
    from tandem.config import ProjectConfig


def open_store(config: ProjectConfig) -> RunStore:
    return RunStore(config.store_location)


def open_existing_store(config: ProjectConfig) -> RunStore | None:
    """The project's store for a command that only reads it: None when it is a SQLite file
    no run has made yet (a PostgreSQL store is always there to ask)."""
    location = config.store_location
    if isinstance(location, Path) and not location.exists():
        return None
    return RunStore(location)
