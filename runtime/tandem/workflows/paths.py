"""Virtual file paths: relative, normalised, and never leaving the workflow folder."""

from __future__ import annotations

import posixpath
from pathlib import Path


class UnsafePath(ValueError):
    pass


def normalise_virtual_path(path: str) -> str:
    """The canonical form of a virtual path, or UnsafePath saying what is wrong with it."""
    if not path:
        raise UnsafePath("empty path")
    if "\x00" in path:
        raise UnsafePath("path contains a NUL byte")
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        raise UnsafePath(f"{path!r} is absolute; virtual paths are relative")
    if "\\" in path:
        raise UnsafePath(f"{path!r} contains a backslash")
    if ".." in path.split("/"):
        raise UnsafePath(f"{path!r} contains '..'")
    normal = posixpath.normpath(path)
    if normal in (".", "") or normal.startswith("../"):
        raise UnsafePath(f"{path!r} does not name a file")
    return normal


def resolve_inside(folder: Path, relative: str) -> Path:
    """`folder/relative` with symlinks resolved; UnsafePath if it ends up outside `folder`."""
    normalise_virtual_path(relative)
    root = folder.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise UnsafePath(f"{relative!r} resolves outside the workflow folder (to {target})")
    return target
