"""The console: a browser's view of the daemon's runs and approvals, served by the daemon on
a listener of its own (never the webhook listener, which faces the internet)."""

from .address import ConsoleAddress, console_token
from .app import Console, create_app

__all__ = ["Console", "ConsoleAddress", "console_token", "create_app"]
