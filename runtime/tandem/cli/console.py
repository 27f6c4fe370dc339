"""`tandem console`: the sign-in URL of the console the project's daemon serves."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, UsageError

if TYPE_CHECKING:
    from tandem.config import ProjectConfig


def add_parser(commands: Any) -> None:
    commands.add_parser("console", help="print the sign-in URL of the daemon's console")


def cmd_console(config: ProjectConfig, args: argparse.Namespace) -> int:
    from tandem.console import ConsoleAddress
    from tandem.console.address import sign_in_url

    address = ConsoleAddress.read(config.state_dir) if config.daemon_holds_state() else None
    if address is None:
        raise UsageError(
            "no daemon serves a console here: start one with `tandem serve --console PORT`"
            " (or console: in tandem.yaml)"
        )
    print(sign_in_url(config.state_dir, address))
    return EXIT_OK
