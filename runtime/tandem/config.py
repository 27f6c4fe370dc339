"""Where a project's workflows, plugins and state are, from flags and `tandem.yaml`.

A folder with a `workflows/` subfolder is a project. Paths in `tandem.yaml` are relative
to the file; flags win over the file, the file over the defaults.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tandem_sdk.errors import DefinitionError

from .private_dirs import check_ours, ensure_private_dir, runtime_root

CONFIG_FILE = "tandem.yaml"
_KEYS = {
    "workflows_dir",
    "plugins_dirs",
    "state_dir",
    "isolation",
    "isolation_fallback",
    "builtin_plugins",
    "http",
    "console",  # the console's listener: [HOST:]PORT
    "record",
    "prices",  # read by tandem.ledger.prices
    "runs",
    "mcp_servers",  # read by tandem.mcp.config
    "store",  # sqlite (the default), a SQLite file's path, or postgresql://...
    "cluster",  # read by tandem.cluster (heartbeat and lease times)
}
# A PostgreSQL URL for the run store; it wins over `store:` in tandem.yaml, so one file
# serves every machine and each names its database (and password) in its environment.
DATABASE_URL_VARIABLE = "TANDEM_DATABASE_URL"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_QUEUED = 1000
# A tool result up to this size is kept whole in the trace (what replay answers with).
DEFAULT_RECORD_MAX_RESULT_BYTES = 1024 * 1024
# How long a signed webhook body is remembered: GitHub's signature covers the body and not
# the delivery id, so a captured delivery could otherwise be sent again under a new id.
DEFAULT_REPLAY_WINDOW_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class ClusterSettings:
    """`cluster: {heartbeat_s, lease_s, poll_s}`: how often a daemon says it lives and
    renews its runs' leases, how long a lease lasts (another daemon takes over after it),
    and how often a daemon with room looks at the shared queue (at least every heartbeat;
    on PostgreSQL a notification wakes it sooner)."""

    heartbeat_s: float = 1.0
    lease_s: float = 10.0
    poll_s: float = 0.25


@dataclass(frozen=True)
class ListenerLimits:
    """What holds on the webhook listener before a delivery is verified."""

    max_connections: int = 2048
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    # Bytes of request bodies held at once across all connections.
    max_buffered_bytes: int = 16 * 1024 * 1024


@dataclass
class McpHttp:
    """`http: {mcp: ...}`: Tandem's MCP server at /mcp on the HTTP listener (off without it).
    Hosts a request may name besides loopback's and the listen host (DNS rebinding), how
    long a session may idle before it ends, and how many may be open at once."""

    allowed_hosts: list[str] = field(default_factory=list)
    session_idle_s: float = 1800.0
    max_sessions: int = 64


# sockaddr_un.sun_path holds 108 bytes on Linux; keep room for the socket's own name.
_MAX_SOCKET_DIR = 80


def builtin_plugins_dir() -> Path:
    """The plugins that ship with Tandem: in a wheel beside the package, else the repo's."""
    packaged = Path(__file__).parent / "builtin_plugins"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "plugins"


@dataclass
class ProjectConfig:
    root: Path
    workflows_dir: Path
    plugins_dirs: list[Path]
    state_dir: Path
    isolation: str = "namespace"
    # Start with the `process` tier when `namespace` is unavailable, instead of refusing.
    isolation_fallback: bool = False
    # The daemon's HTTP listener for webhooks: "HOST:PORT", or None for none.
    http_listen: str | None = None
    http_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # What holds before a delivery is verified (see webhooks/guard.py).
    http_limits: ListenerLimits = field(default_factory=ListenerLimits)
    # Proxies whose X-Forwarded-For names the sender; none by default.
    http_trusted_proxies: list[str] = field(default_factory=list)
    # How long a signed body is remembered, so a captured delivery cannot start a run again.
    http_replay_window_s: float = DEFAULT_REPLAY_WINDOW_S
    # The MCP server over streamable HTTP at /mcp; None: not served.
    http_mcp: McpHttp | None = None
    # The console's own listener (never the webhook listener's): "[HOST:]PORT", or None.
    console_listen: str | None = None
    record_max_result_bytes: int = DEFAULT_RECORD_MAX_RESULT_BYTES
    # The daemon deletes finished runs older than this (flagged and exported ones kept).
    record_keep_days: float | None = None
    # Admission control: runs in flight at once, and runs that may wait behind them.
    max_in_flight: int = field(default_factory=lambda: default_max_in_flight())
    max_queued: int = 1000  # DEFAULT_MAX_QUEUED
    # Fork script runs from the zygote (a daemon's); false: spawn an interpreter per run.
    zygote: bool = True
    # The run store: a PostgreSQL URL (shared by several daemons), or None for SQLite, in
    # `sqlite_path` when `store:` names a file, else in the state folder.
    store_url: str | None = None
    sqlite_path: Path | None = None
    cluster: ClusterSettings = field(default_factory=lambda: ClusterSettings())
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def socket_dir(self) -> Path:
        """A short, private folder for unix sockets: the state dir's when its path is short,
        else one in this user's runtime folder (see private_dirs)."""
        preferred = self.state_dir / "sock"
        if len(str(preferred)) <= _MAX_SOCKET_DIR:
            return preferred
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        return runtime_root() / f"tandem-{os.getuid()}-{digest}"

    @property
    def daemon_lock(self) -> Path:
        """Held (flock) by the daemon serving this state folder, for as long as it lives."""
        return self.state_dir / "daemon.lock"

    def daemon_holds_state(self) -> bool:
        """Whether a daemon holds this state folder, answering or not."""
        try:
            fd = os.open(self.daemon_lock, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    @property
    def control_socket(self) -> Path:
        return self.socket_dir / "control.sock"

    @property
    def database(self) -> Path:
        """The SQLite store's file (unused when the store is PostgreSQL)."""
        return self.sqlite_path or self.state_dir / "runs.sqlite3"

    @property
    def store_location(self) -> Path | str:
        """What RunStore opens: the PostgreSQL URL, else the SQLite file."""
        return self.store_url or self.database

    @property
    def host_socket_dir(self) -> Path:
        """This process's own socket folder: an embedded host never touches a daemon's."""
        return self.host_socket_dir_of(os.getpid())

    def host_socket_dir_of(self, pid: int) -> Path:
        return self.socket_dir / f"h{pid}"

    def embedded_control_socket(self, pid: int) -> Path:
        """The Control socket of the host embedded in process `pid` (`tandem run` without a
        daemon, or with --model-replies): other commands reach that process's runs there."""
        return self.host_socket_dir_of(pid) / "control.sock"

    def ensure_dirs(self) -> None:
        """The state folder (0700; refused when others may write it, since whoever can
        holds the daemon's store and sockets) and the socket folder, made exclusively."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_ours(self.state_dir)
        if self.state_dir.stat().st_mode & 0o077:
            self.state_dir.chmod(0o700)
        ensure_private_dir(self.socket_dir)


def load_config(
    root: Path | None = None,
    *,
    workflows_dir: Path | None = None,
    plugins_dirs: list[Path] | None = None,
    state_dir: Path | None = None,
    isolation: str | None = None,
    isolation_fallback: bool | None = None,
    http_listen: str | None = None,
    console_listen: str | None = None,
) -> ProjectConfig:
    root = (root or Path.cwd()).resolve()
    settings = _read_file(root / CONFIG_FILE)
    http = _http_settings(root / CONFIG_FILE, settings.get("http"))
    admission = _admission(root / CONFIG_FILE, settings.get("runs"))
    record = _record(root / CONFIG_FILE, settings.get("record"))
    base = root
    store_url, sqlite_path = _store(root / CONFIG_FILE, settings.get("store"))

    def path_of(key: str, default: str) -> Path:
        return (base / str(settings.get(key, default))).resolve()

    plugin_dirs = [(base / str(p)).resolve() for p in settings.get("plugins_dirs", ["plugins"])]
    if plugins_dirs is not None:
        plugin_dirs = [p.resolve() for p in plugins_dirs]
    if settings.get("builtin_plugins", True):
        builtin = builtin_plugins_dir().resolve()
        if builtin not in plugin_dirs:
            plugin_dirs.insert(0, builtin)
    return ProjectConfig(
        root=root,
        workflows_dir=(workflows_dir or path_of("workflows_dir", "workflows")).resolve(),
        plugins_dirs=plugin_dirs,
        state_dir=(state_dir or path_of("state_dir", ".tandem")).resolve(),
        isolation=isolation or str(settings.get("isolation", "namespace")),
        isolation_fallback=bool(
            settings.get("isolation_fallback", False)
            if isolation_fallback is None
            else isolation_fallback
        ),
        http_listen=http_listen or http.get("listen"),
        http_max_body_bytes=int(http.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
        http_limits=ListenerLimits(**{key: http[key] for key in _LISTENER_LIMITS if key in http}),
        http_trusted_proxies=list(http.get("trusted_proxies", [])),
        http_replay_window_s=float(http.get("replay_window_s", DEFAULT_REPLAY_WINDOW_S)),
        http_mcp=_mcp_http(root / CONFIG_FILE, http.get("mcp")),
        console_listen=console_listen or _console(root / CONFIG_FILE, settings.get("console")),
        record_max_result_bytes=record.get("max_result_bytes", DEFAULT_RECORD_MAX_RESULT_BYTES),
        record_keep_days=record.get("keep_days"),
        max_in_flight=admission.get("max_in_flight", default_max_in_flight()),
        max_queued=admission.get("max_queued", DEFAULT_MAX_QUEUED),
        zygote=admission.get("zygote", True),
        store_url=store_url,
        sqlite_path=sqlite_path,
        cluster=_cluster(root / CONFIG_FILE, settings.get("cluster")),
    )


def _cluster(path: Path, value: Any) -> ClusterSettings:
    if value is None:
        return ClusterSettings()
    expected = "cluster: expected {heartbeat_s: S, lease_s: L, poll_s: P}, 0 < S < L, 0 < P"
    if not isinstance(value, dict) or set(value) - {"heartbeat_s", "lease_s", "poll_s"}:
        raise DefinitionError(str(path), expected)
    numbers = [v for v in value.values() if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(value):
        raise DefinitionError(str(path), expected)
    settings = ClusterSettings(**{str(key): float(number) for key, number in value.items()})
    if not (0 < settings.heartbeat_s < settings.lease_s and settings.poll_s > 0):
        raise DefinitionError(str(path), expected)
    return settings


def default_max_in_flight() -> int:
    """Four runs per core: a run mostly waits on its tools; its sandbox costs ~30 MB."""
    return 4 * (os.cpu_count() or 1)


def _admission(path: Path, value: Any) -> dict[str, Any]:
    """`runs: {max_in_flight: N, max_queued: M, zygote: true|false}`."""
    if value is None:
        return {}
    known = {"max_in_flight", "max_queued", "zygote"}
    if not isinstance(value, dict) or set(value) - known:
        raise DefinitionError(
            str(path), "runs: expected {max_in_flight: N, max_queued: M, zygote: true|false}"
        )
    if not isinstance(value.get("zygote", True), bool):
        raise DefinitionError(
            str(path), f"runs.zygote: expected true or false, not {value['zygote']!r}"
        )
    for key, number in value.items():
        if key == "zygote":
            continue
        if not isinstance(number, int) or number < (1 if key == "max_in_flight" else 0):
            raise DefinitionError(str(path), f"runs.{key}: expected a whole number, not {number!r}")
    return {str(key): setting for key, setting in value.items()}  # checked above


def _store(path: Path, value: Any) -> tuple[str | None, Path | None]:
    """`store: sqlite | PATH | postgresql://...` (`${VAR}` expanded), with
    TANDEM_DATABASE_URL winning: the PostgreSQL URL, or the SQLite file when not default."""
    from_env = os.environ.get(DATABASE_URL_VARIABLE, "")
    where = str(path)
    if from_env:
        value, where = from_env, DATABASE_URL_VARIABLE
    if value is None or value == "sqlite":
        return None, None
    if not isinstance(value, str) or not value:
        raise DefinitionError(where, "store: expected sqlite, a file's path or postgresql://...")

    def expand(match: re.Match[str]) -> str:
        if match[1] not in os.environ:
            raise DefinitionError(where, f"store: ${{{match[1]}}} is not set")
        return os.environ[match[1]]

    value = _VARIABLE.sub(expand, value)
    if value.startswith(POSTGRES_SCHEMES):
        return value, None
    if from_env or "://" in value:
        raise DefinitionError(where, "store: expected a postgresql:// URL")
    return None, (path.parent / value).resolve()


def _record(path: Path, value: Any) -> dict[str, Any]:
    """`record: {max_result_bytes: N, keep_days: D}`: the largest tool result a trace keeps
    whole, and how many days the daemon keeps finished runs."""
    if value is None:
        return {}
    expected = "record: expected {max_result_bytes: N, keep_days: D}, N and D > 0"
    if not isinstance(value, dict) or set(value) - {"max_result_bytes", "keep_days"}:
        raise DefinitionError(str(path), expected)
    size = value.get("max_result_bytes", DEFAULT_RECORD_MAX_RESULT_BYTES)
    days = value.get("keep_days", 1)
    if not (isinstance(size, int) and not isinstance(size, bool) and size > 0):
        raise DefinitionError(str(path), expected)
    if not (isinstance(days, int | float) and not isinstance(days, bool) and days > 0):
        raise DefinitionError(str(path), f"record.keep_days: expected days > 0, not {days!r}")
    return {str(key): setting for key, setting in value.items()}  # checked above


_LISTENER_LIMITS = ("max_connections", "header_timeout_s", "body_timeout_s")
_HTTP_KEYS = {
    "listen",
    "max_body_bytes",
    "trusted_proxies",
    "replay_window_s",
    "mcp",
    *_LISTENER_LIMITS,
}
_MCP_HTTP_KEYS = {"allowed_hosts", "session_idle_s", "max_sessions"}


def _mcp_http(path: Path, value: Any) -> McpHttp | None:
    """`http.mcp: true`, or a mapping of McpHttp's settings; absent or false: off."""
    if value is None or value is False:
        return None
    if value is True:
        return McpHttp()
    if not isinstance(value, dict) or set(value) - _MCP_HTTP_KEYS:
        raise DefinitionError(
            str(path), f"http.mcp: expected true or a mapping of {sorted(_MCP_HTTP_KEYS)}"
        )
    hosts = value.get("allowed_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise DefinitionError(str(path), "http.mcp.allowed_hosts: expected a list of host names")
    idle = value.get("session_idle_s", 1800.0)
    if not isinstance(idle, int | float) or isinstance(idle, bool) or idle <= 0:
        raise DefinitionError(str(path), "http.mcp.session_idle_s: expected seconds > 0")
    most = value.get("max_sessions", 64)
    if not isinstance(most, int) or isinstance(most, bool) or most < 1:
        raise DefinitionError(str(path), "http.mcp.max_sessions: expected a positive integer")
    return McpHttp(list(hosts), float(idle), most)


def _console(path: Path, value: Any) -> str | None:
    """`console: PORT` or `console: HOST:PORT` (a bare port binds to loopback)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DefinitionError(str(path), f"console: expected [HOST:]PORT, not {value!r}")
    return str(value)


def _http_settings(path: Path, value: Any) -> dict[str, Any]:
    """`http: HOST:PORT`, or `http: {listen: HOST:PORT, max_body_bytes: N, ...}`."""
    if value is None:
        return {}
    if isinstance(value, str | int):
        return {"listen": str(value)}
    if not isinstance(value, dict) or set(value) - _HTTP_KEYS:
        raise DefinitionError(
            str(path), f"http: expected HOST:PORT or a mapping of {sorted(_HTTP_KEYS)}"
        )
    for key in ("max_body_bytes", "max_connections"):
        number = value.get(key, 1)
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise DefinitionError(str(path), f"http.{key}: expected a positive integer")
    for key in ("header_timeout_s", "body_timeout_s", "replay_window_s"):
        number = value.get(key, 1)
        if not isinstance(number, int | float) or isinstance(number, bool) or number <= 0:
            raise DefinitionError(str(path), f"http.{key}: expected a positive number of seconds")
    proxies = value.get("trusted_proxies", [])
    if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
        raise DefinitionError(
            str(path), "http.trusted_proxies: expected a list of addresses or networks"
        )
    return {**value, "listen": None if value.get("listen") is None else str(value["listen"])}


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise DefinitionError(str(path), f"not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise DefinitionError(str(path), "must be a mapping of settings")
    unknown = set(data) - _KEYS
    if unknown:
        raise DefinitionError(
            str(path), f"unknown setting(s) {sorted(unknown)}; known: {sorted(_KEYS)}"
        )
    return data
