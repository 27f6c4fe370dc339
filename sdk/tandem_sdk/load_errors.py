"""Where a plugin failed to load, as `path/to/plugin.py:LINE: message`, the way a
workflow's errors name their file: a syntax error at its line, a tool with a bad
signature at its `def`, any other exception at the deepest line of the plugin's own code
it passed through."""

from __future__ import annotations

import inspect
import linecache
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import DefinitionError


def defined_at(function: Callable[..., Any]) -> str:
    """`file:LINE` of a function's `def` line (after its decorators)."""
    code = getattr(inspect.unwrap(function), "__code__", None)
    if code is None:
        return str(inspect.getsourcefile(function) or "<unknown>")
    line = code.co_firstlineno  # the first decorator's line when it has decorators
    for candidate in range(line, line + 50):
        text = linecache.getline(code.co_filename, candidate).lstrip()
        if text.startswith(("def ", "async def ")):
            line = candidate
            break
    return f"{code.co_filename}:{line}"


def load_report(module: Path, error: BaseException) -> str:
    """One line (or more, when the message has them) naming where `error` arose."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename}:{error.lineno}: syntax error: {error.msg}"
    if isinstance(error, DefinitionError):
        return str(error)  # placed by whoever raised it
    folder = module.resolve().parent
    place = str(module)
    for frame in traceback.extract_tb(error.__traceback__):
        path = Path(frame.filename)
        if path.is_absolute() and path.resolve().is_relative_to(folder):
            place = f"{frame.filename}:{frame.lineno}"
    return f"{place}: {type(error).__name__}: {error}"
