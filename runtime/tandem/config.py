"""Where a project's workflows, plugins and state are, from flags and `tandem.yaml`.

A folder with a `workflows/` subfolder is a project. Paths in `tandem.yaml` are relative
to the file; flags win over the file, the file over the defaults.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tandem_sdk.errors import DefinitionError

CONFIG_FILE = "tandem.yaml"
_KEYS = {
    "workflows_dir",
    "plugins_dirs",
    "state_dir",
    "isolation",
    "isolation_fallback",
    "builtin_plugins",
    "http",
    "record",
    "prices",  # read by tandem.ledger.prices
    "runs",
}
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_QUEUED = 1000
# A tool result up to this size is kept whole in the trace (what replay answers with).
DEFAULT_RECORD_MAX_RESULT_BYTES = 1024 * 1024
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
    record_max_result_bytes: int = DEFAULT_RECORD_MAX_RESULT_BYTES
    # Admission control: runs in flight at once, and runs that may wait behind them.
    max_in_flight: int = field(default_factory=lambda: default_max_in_flight())
    max_queued: int = 1000  # DEFAULT_MAX_QUEUED
    # Fork script runs from the zygote (a daemon's); false: spawn an interpreter per run.
    zygote: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def socket_dir(self) -> Path:
        """A short, private folder for unix sockets (the state dir when its path is short)."""
        preferred = self.state_dir / "sock"
        if len(str(preferred)) <= _MAX_SOCKET_DIR:
            return preferred
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"tandem-{os.getuid()}-{digest}"

    @property
    def control_socket(self) -> Path:
        return self.socket_dir / "control.sock"

    @property
    def database(self) -> Path:
        return self.state_dir / "runs.sqlite3"

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
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket_dir.chmod(0o700)


def load_config(
    root: Path | None = None,
    *,
    workflows_dir: Path | None = None,
    plugins_dirs: list[Path] | None = None,
    state_dir: Path | None = None,
    isolation: str | None = None,
    isolation_fallback: bool | None = None,
    http_listen: str | None = None,
) -> ProjectConfig:
    root = (root or Path.cwd()).resolve()
    settings = _read_file(root / CONFIG_FILE)
    http = _http_settings(root / CONFIG_FILE, settings.get("http"))
    admission = _admission(root / CONFIG_FILE, settings.get("runs"))
    base = root

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
        record_max_result_bytes=_record_cap(root / CONFIG_FILE, settings.get("record")),
        max_in_flight=admission.get("max_in_flight", default_max_in_flight()),
        max_queued=admission.get("max_queued", DEFAULT_MAX_QUEUED),
        zygote=admission.get("zygote", True),
    )


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


def _record_cap(path: Path, value: Any) -> int:
    """`record: {max_result_bytes: N}`: the largest tool result a trace keeps whole."""
    if value is None:
        return DEFAULT_RECORD_MAX_RESULT_BYTES
    size = value.get("max_result_bytes") if isinstance(value, dict) else None
    if (
        not isinstance(value, dict)
        or set(value) - {"max_result_bytes"}
        or not (isinstance(size, int) and size > 0)
    ):
        raise DefinitionError(str(path), "record: expected {max_result_bytes: N}, N > 0")
    return size


def _http_settings(path: Path, value: Any) -> dict[str, Any]:
    """`http: HOST:PORT`, or `http: {listen: HOST:PORT, max_body_bytes: N}`."""
    if value is None:
        return {}
    if isinstance(value, str | int):
        return {"listen": str(value)}
    if not isinstance(value, dict) or set(value) - {"listen", "max_body_bytes"}:
        raise DefinitionError(
            str(path), "http: expected HOST:PORT or {listen: HOST:PORT, max_body_bytes: N}"
        )
    size = value.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    if not isinstance(size, int) or size < 1:
        raise DefinitionError(str(path), "http.max_body_bytes: expected a positive integer")
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
