"""`tandem run` through a daemon: the plugins get the daemon's environment, not this
shell's. When this shell sets a variable that a plugin in the workflow's scope reads
(its manifest's `secrets:`) to a value the daemon's plugin does not get, say so.

The values are compared without sending one: the daemon answers, for a nonce chosen
here, an HMAC of each value its plugins get (HealthRequest.environment_nonce), and this
side computes the same of its own."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

import grpc
from tandem_sdk._pb import control_pb2

from tandem.client import ControlClient


def environment_warnings(client: ControlClient, workflow: str) -> list[str]:
    """One line per variable this shell sets differently from the daemon's plugins."""
    nonce = secrets.token_bytes(32)
    try:
        health = client.stub.Health(control_pb2.HealthRequest(environment_nonce=nonce))
        scope = client.stub.ListWorkflowTools(
            control_pb2.ListWorkflowToolsRequest(workflow=workflow)
        )
    except grpc.RpcError:
        return []  # the run itself reports what is wrong
    plugins = {tool.name.partition(".")[0] for tool in scope.tools}
    warnings = []
    for plugin in health.plugins:
        if plugin.name not in plugins:
            continue
        for name, digest in sorted(plugin.environment.items()):
            mine = os.environ.get(name)
            if mine is None:
                continue
            if not digest:
                warnings.append(
                    f"{name} is set in this shell, but the daemon's plugin {plugin.name} does"
                    " not get it: the run goes through the daemon, whose environment lacks it"
                )
            elif not hmac.compare_digest(digest, _digest(nonce, mine)):
                warnings.append(
                    f"{name} in this shell differs from the value the daemon's plugin"
                    f" {plugin.name} gets: the run goes through the daemon, which uses its own"
                )
    return warnings


def _digest(nonce: bytes, value: str) -> str:
    return hmac.new(nonce, value.encode(), hashlib.sha256).hexdigest()
