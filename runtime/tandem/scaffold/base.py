"""What every skeleton shares: the error, the result, and writing a new folder whole."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tandem_sdk.errors import TandemError

if TYPE_CHECKING:
    from .pytest_config import PytestConfig


class ScaffoldError(TandemError):
    """A skeleton could not be written: a bad name, or the folder or name is taken.
    `path` is the folder it would have written, when there is one."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Scaffold:
    kind: str  # "workflow" | "plugin"
    name: str
    folder: Path
    files: tuple[Path, ...]  # in the order they were written; the manifest last
    coordinator: str | None = None  # a workflow's
    pytest_config: PytestConfig | None = None  # the project's, written when it had none


def check_name(kind: str, name: str, pattern: re.Pattern[str], max_length: int, rule: str) -> None:
    if not pattern.fullmatch(name) or len(name) > max_length:
        raise ScaffoldError(
            f"{name!r} is not a valid {kind} name: {rule}, at most {max_length} characters"
        )


def write_new_folder(folder: Path, files: dict[str, str], manifest: str) -> tuple[Path, ...]:
    """Create `folder` (it must not exist) with `files` (relative path -> text), writing
    `manifest` last: a running daemon that notices the folder half-written sees no
    workflow or plugin yet. A failure removes the folder again."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError:
        raise ScaffoldError(f"{folder} already exists; choose another name", path=folder) from None
    written: list[Path] = []
    try:
        for relative in [*(f for f in files if f != manifest), manifest]:
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[relative], encoding="utf-8")
            written.append(path)
    except OSError as error:
        shutil.rmtree(folder, ignore_errors=True)  # ours: it did not exist a moment ago
        raise ScaffoldError(f"cannot write {folder}: {error}", path=folder) from error
    return tuple(written)


def commented(text: str, comment: str, column: int) -> str:
    """A YAML line with its comment starting at `column`, as the template's lines have."""
    return f"{(text + ' ').ljust(column)}# {comment}"


def fill(template: str, **values: str) -> str:
    """Replace each `__KEY__` in a template: templates hold code and YAML, full of braces."""
    for key, value in values.items():
        template = template.replace(f"__{key.upper()}__", value)
    return template
