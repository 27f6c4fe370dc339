"""Where a daemon serves its console, and the token that signs in to it: both in the state
folder, so `tandem console` can print the sign-in URL."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from tandem_sdk.errors import TandemError

TOKEN_VARIABLE = "TANDEM_CONSOLE_TOKEN"  # noqa: S105 - a name, not a token
TOKEN_FILE = "console-token"  # noqa: S105 - a file name
ADDRESS_FILE = "console.json"


class ConsoleError(TandemError):
    pass


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def console_token(state_dir: Path, host: str) -> str:
    """TANDEM_CONSOLE_TOKEN; else, for a loopback address only, the token kept in the
    state folder (0600), made the first time."""
    token = os.environ.get(TOKEN_VARIABLE, "")
    if token:
        return token
    if not is_loopback(host):
        raise ConsoleError(
            f"--console {host}: an address other than loopback needs {TOKEN_VARIABLE} set"
        )
    path = state_dir / TOKEN_FILE
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32))
    return _kept_token(path)


def _kept_token(path: Path) -> str:
    """The kept token, only from a file that no one else could have read or written: a
    token others know signs them in, and an empty one signs no one in."""
    fix = "delete it and start again to make a new one"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        raise ConsoleError(f"{path}: cannot read the console's token ({error}); {fix}") from None
    with os.fdopen(fd) as file:
        stat = os.fstat(file.fileno())
        if stat.st_uid != os.getuid() or stat.st_mode & 0o777 != 0o600:
            raise ConsoleError(
                f"{path}: the console's token must be mode 0600 and owned by this user"
                f" (it is {stat.st_mode & 0o777:04o}, uid {stat.st_uid}); {fix}"
            )
        token = file.read().strip()
    if not token:
        raise ConsoleError(f"{path}: the console's token is empty; {fix}")
    return token


@dataclass(frozen=True)
class ConsoleAddress:
    """The daemon's console, as it records it while it serves."""

    host: str
    port: int
    # Whether the daemon signs in with the token kept in the state folder (not one from
    # TANDEM_CONSOLE_TOKEN, which only its own environment holds).
    kept_token: bool = True

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def write(self, state_dir: Path) -> None:
        path = state_dir / ADDRESS_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(
            json.dumps({"host": self.host, "port": self.port, "kept_token": self.kept_token})
        )
        temporary.replace(path)

    @staticmethod
    def remove(state_dir: Path) -> None:
        (state_dir / ADDRESS_FILE).unlink(missing_ok=True)

    @staticmethod
    def read(state_dir: Path) -> ConsoleAddress | None:
        try:
            data = json.loads((state_dir / ADDRESS_FILE).read_text())
        except (OSError, ValueError):
            return None
        return ConsoleAddress(str(data["host"]), int(data["port"]), bool(data["kept_token"]))


def sign_in_url(state_dir: Path, address: ConsoleAddress) -> str:
    """The URL that signs in: the token from TANDEM_CONSOLE_TOKEN, else the kept one."""
    token = os.environ.get(TOKEN_VARIABLE, "")
    if not token and not address.kept_token:
        raise ConsoleError(
            f"the daemon signs in with its {TOKEN_VARIABLE}: set it here too to print the URL"
        )
    if not token:
        try:
            token = (state_dir / TOKEN_FILE).read_text().strip()
        except OSError:
            raise ConsoleError(
                f"the console's token is not in {state_dir}: set {TOKEN_VARIABLE} as the"
                " daemon has it"
            ) from None
    return f"{address.url}/?token={token}"
