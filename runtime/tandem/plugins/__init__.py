"""Plugins: tool providers, each its own subprocess holding only its own secrets.

The names below are imported on first use: `tandem.plugins.standby` must stay light, as
the CLI imports it before anything else (an embedded host starts its plugins first)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .manager import PluginManager
    from .manifest import PluginManifest, find_plugins
    from .process import PluginProcess

__all__ = ["PluginManager", "PluginManifest", "PluginProcess", "find_plugins"]
_MODULES = {
    "PluginManager": "manager",
    "PluginManifest": "manifest",
    "PluginProcess": "process",
    "find_plugins": "manifest",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
