"""Webhook triggers: the daemon's HTTP listener, delivery verification, and the intake
that turns a verified delivery into runs (`tandem serve --http HOST:PORT`)."""

from .intake import Answer, Delivery, WebhookIntake
from .listener import HttpListener, bind_listener, parse_listen

__all__ = ["Answer", "Delivery", "HttpListener", "WebhookIntake", "bind_listener", "parse_listen"]
