"""The MCP servers a project uses: `mcp_servers:` in tandem.yaml and `mcpServers` in the
project's `.mcp.json`, read, expanded (`${VAR}`, `${VAR:-default}`) and checked.

Light on purpose (no `mcp` import): every host reads it, most have no MCP server.
A broken entry is an error at that server only; the others load. On a name in both
files, tandem.yaml's entry is the one used (it may add Tandem's own keys to a server
that `.mcp.json` shares with other MCP clients); while tandem.yaml does not parse, a
server of `.mcp.json` that it names is an error, never `.mcp.json`'s entry alone.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tandem_sdk.errors import DefinitionError

MCP_JSON = ".mcp.json"
CONFIG_KEY = "mcp_servers"
DEFAULT_CALL_TIMEOUT_S = 60.0
DEFAULT_START_TIMEOUT_S = 20.0
# A server's name is a plugin name: the part of a tool's name before the dot, and of the
# model's name for it before `__` (llm/naming.py).
NAME = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
RESERVED = {"files"}  # the built-in file tools
HINTS = {"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}
_STDIO_KEYS = {"type", "command", "args", "env", "cwd"}
_HTTP_KEYS = {"type", "url", "headers"}
_TANDEM_KEYS = {"annotations", "call_timeout_s", "start_timeout_s"}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class ServerConfig:
    """One MCP server, expanded and checked. Equal configs mean an unchanged server."""

    name: str
    source: str  # the file it came from
    transport: str  # "stdio" | "http"
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    # Operator overrides, in order: (tool name or glob, {hint: value}).
    annotations: tuple[tuple[str, Mapping[str, bool]], ...] = ()
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S

    def hints_for(self, tool: str) -> dict[str, bool]:
        """The operator's hints for `tool`: globs in the order written, then its exact name."""
        hints: dict[str, bool] = {}
        for pattern, values in self.annotations:
            if pattern != tool and _is_glob(pattern) and fnmatch.fnmatchcase(tool, pattern):
                hints.update(values)
        for pattern, values in self.annotations:
            if pattern == tool:
                hints.update(values)
        return hints

    def describe(self) -> str:
        return f"{self.command} {' '.join(self.args)}".strip() if self.command else self.url


class ServerConfigError(DefinitionError):
    """A server entry that cannot be used; `server` names it."""

    def __init__(self, source: str, server: str, reason: str) -> None:
        super().__init__(source, f"mcp server {server!r}: {reason}")
        self.server = server


@dataclass
class ServerConfigs:
    servers: dict[str, ServerConfig] = field(default_factory=dict)
    errors: dict[str, ServerConfigError] = field(default_factory=dict)  # name -> why
    # A file that cannot be read at all (not YAML/JSON, not a mapping).
    file_errors: list[DefinitionError] = field(default_factory=list)


def load_servers(root: Path, environ: Mapping[str, str] | None = None) -> ServerConfigs:
    """The MCP servers of the project at `root`, from `.mcp.json` then tandem.yaml."""
    environ = os.environ if environ is None else environ
    found = ServerConfigs()
    files = ((root / MCP_JSON, "mcpServers"), (root / "tandem.yaml", CONFIG_KEY))
    for rank, (path, key) in enumerate(files):
        try:
            entries = _entries(path, key)
        except DefinitionError as error:
            found.file_errors.append(error)
            _withhold(found, error, path, {str(p) for p, _ in files[:rank]})
            continue
        for name, entry in entries.items():
            found.servers.pop(name, None)
            found.errors.pop(name, None)
            try:
                found.servers[name] = parse_server(str(path), name, entry, root, environ)
            except ServerConfigError as error:
                found.errors[name] = error
    return found


def _withhold(found: ServerConfigs, error: DefinitionError, path: Path, earlier: set[str]) -> None:
    """An earlier file's server that the file that does not parse names: its entry there
    would win (it may mark tools destructive), so the earlier one is no stand-in for it."""
    text = path.read_text(errors="replace")
    for name, config in list(found.servers.items()):
        if config.source in earlier and _mentions(text, name):
            del found.servers[name]
            found.errors[name] = ServerConfigError(
                str(path), name, f"defined in {path.name} too, which does not parse: {error.reason}"
            )


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_-]){re.escape(name)}(?![A-Za-z0-9_-])", text) is not None


def parse_server(
    source: str, name: Any, entry: Any, root: Path, environ: Mapping[str, str]
) -> ServerConfig:
    name = str(name)
    if not NAME.match(name) or "__" in name or name in RESERVED:
        raise ServerConfigError(
            source,
            name,
            "a server's name is its tools' prefix: letters, digits, `_` and `-` (no `__`), "
            f"up to 48, and not {sorted(RESERVED)}",
        )

    def fail(reason: str) -> ServerConfigError:
        return ServerConfigError(source, name, reason)

    if not isinstance(entry, dict):
        raise fail("expected a mapping ({command, args, env, cwd} or {type: http, url, headers})")
    kind = entry.get("type", "http" if "url" in entry else "stdio")
    if kind == "sse":
        raise fail("type sse (the deprecated HTTP+SSE transport) is not supported: use type: http")
    if kind not in ("stdio", "http"):
        raise fail(f"unknown type {kind!r}: expected stdio or http")
    known = (_STDIO_KEYS if kind == "stdio" else _HTTP_KEYS) | _TANDEM_KEYS
    if unknown := sorted(set(entry) - known):
        raise fail(f"unknown key(s) {unknown} for a {kind} server; known: {sorted(known)}")

    def expand(value: Any, where: str) -> str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise fail(f"{where}: expected a string, not {value!r}")
        return _expand(str(value), environ, lambda variable: fail(f"{where}: {variable}"))

    def strings(key: str) -> dict[str, str]:
        value = entry.get(key) or {}
        if not isinstance(value, dict):
            raise fail(f"{key}: expected a mapping of names to strings")
        return {str(k): expand(v, f"{key}.{k}") for k, v in value.items()}

    timeouts = {key: _seconds(entry, key, fail) for key in ("call_timeout_s", "start_timeout_s")}
    common: dict[str, Any] = {
        "name": name,
        "source": source,
        "transport": kind,
        "annotations": _overrides(entry.get("annotations"), fail),
        **{key: value for key, value in timeouts.items() if value is not None},
    }
    if kind == "http":
        if not entry.get("url"):
            raise fail("an http server needs a url")
        url = expand(entry["url"], "url")
        if not url.startswith(("http://", "https://")):
            raise fail(f"url: expected http:// or https://, not {url!r}")
        return ServerConfig(url=url, headers=strings("headers"), **common)
    if not entry.get("command"):
        raise fail("a stdio server needs a command (or type: http and a url)")
    args = entry.get("args") or []
    if not isinstance(args, list):
        raise fail("args: expected a list of strings")
    cwd = entry.get("cwd")
    return ServerConfig(
        command=expand(entry["command"], "command"),
        args=tuple(expand(arg, f"args[{i}]") for i, arg in enumerate(args)),
        env=strings("env"),
        # The project root by default: a pasted .mcp.json's relative paths mean the same
        # whatever folder the daemon or the command was started from.
        cwd=root if cwd is None else (root / expand(cwd, "cwd")).resolve(),
        **common,
    )


def _entries(path: Path, key: str) -> dict[Any, Any]:
    if not path.is_file():
        return {}
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise DefinitionError(str(path), f"not valid {path.suffix[1:].upper()}: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DefinitionError(str(path), "must be a mapping")
    servers = data.get(key) or {}
    if not isinstance(servers, dict):
        raise DefinitionError(str(path), f"{key}: expected a mapping of server names")
    return servers


def _expand(text: str, environ: Mapping[str, str], unset: Any) -> str:
    """`${VAR}` and `${VAR:-default}` (the default when VAR is unset or empty)."""

    def value(match: re.Match[str]) -> str:
        variable, default = match.group(1), match.group(2)
        found = environ.get(variable)
        if found:
            return found
        if default is not None:
            return default
        if found is not None:
            return found
        raise unset(f"${{{variable}}} is not set (give it a value, or a default: ${{VAR:-x}})")

    return _VARIABLE.sub(value, text)


def _seconds(entry: dict[str, Any], key: str, fail: Any) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise fail(f"{key}: expected a positive number of seconds, not {value!r}")
    return float(value)


def _overrides(value: Any, fail: Any) -> tuple[tuple[str, Mapping[str, bool]], ...]:
    """`annotations: {TOOL_OR_GLOB: {readOnlyHint: true, ...}}`."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise fail("annotations: expected {tool name or glob: {readOnlyHint: true, ...}}")
    overrides = []
    for pattern, hints in value.items():
        if not isinstance(hints, dict) or set(hints) - HINTS:
            raise fail(f"annotations.{pattern}: expected a mapping of {sorted(HINTS)}")
        for hint, flag in hints.items():
            if not isinstance(flag, bool):
                raise fail(f"annotations.{pattern}.{hint}: expected true or false")
        overrides.append((str(pattern), dict(hints)))
    return tuple(overrides)


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")
