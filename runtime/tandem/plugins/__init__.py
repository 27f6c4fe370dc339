"""Plugins: tool providers, each its own subprocess holding only its own secrets."""

from .manager import PluginManager
from .manifest import PluginManifest, find_plugins
from .process import PluginProcess

__all__ = ["PluginManager", "PluginManifest", "PluginProcess", "find_plugins"]
