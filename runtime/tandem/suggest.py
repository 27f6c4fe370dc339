"""Names close to a misspelled one ("did you mean"), for every error naming a tool or a
workflow that does not exist: workflow.yaml, scripts, the model, the CLI."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str], *, cutoff: float = 0.75) -> str:
    """` (did you mean a, b?)` naming up to three known names close to `name`, or ""."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=cutoff)
    return f" (did you mean {', '.join(close)}?)" if close else ""
