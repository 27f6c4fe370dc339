"""What every subcommand shares: exit codes, the usage error, the Control client of the
daemon (or of a host embedded for one command), and reading a payload."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from tandem.client import ControlClient
    from tandem.config import ProjectConfig

    from .model_replies import ScriptedModel

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def fail(args: argparse.Namespace, message: str) -> int:
    """One line on stderr; with --json, a JSON document on stdout as well."""
    if getattr(args, "json", False):
        print(json.dumps({"error": message}))
    print(f"tandem: {message}", file=sys.stderr)
    return EXIT_USAGE


@contextlib.contextmanager
def control(
    config: ProjectConfig,
    *,
    prefer_daemon: bool = True,
    for_workflow: str | None = None,
    skip_llm_shadows: str | None = None,
) -> Iterator[ControlClient]:
    """A Control client: the daemon's if one is running, else an embedded host's (with only
    the plugins `for_workflow` needs, when a command concerns one workflow; and no model
    for llm shadows, saying why, when `skip_llm_shadows`)."""
    if prefer_daemon and config.control_socket.exists():
        from tandem.client import ControlClient

        client = ControlClient.connect(config.control_socket)
        if client is not None:
            with contextlib.closing(client):
                yield client
            return
    if prefer_daemon and config.daemon_holds_state():
        # A second host beside a daemon that is stuck (or still starting) would run the
        # project's runs twice over; say so instead.
        raise UsageError(
            f"the tandem daemon serving {config.state_dir} is not answering on"
            f" {config.control_socket} (still starting, or stuck); try again, or stop it"
        )
    # Nothing heavy is imported before the embedded host has started its plugins' processes.
    from tandem.embedded import EmbeddedHost

    plugins = needed_plugins(config, for_workflow) if for_workflow else None
    with EmbeddedHost(config, plugins, skip_llm_shadows=skip_llm_shadows) as host:
        from tandem.client import ControlClient

        with contextlib.closing(ControlClient(host.control_socket)) as client:
            yield client


@contextlib.contextmanager
def model_control(
    config: ProjectConfig,
    model_replies: str | None,
    *,
    quiet: bool,
    for_workflow: str | None = None,
) -> Iterator[tuple[ControlClient, ScriptedModel | None]]:
    """`control()`, or with `--model-replies` a host in this process whose model is the
    scripted stand-in (serving first: the host reads the model's address when it starts).
    The banner saying so goes to stderr when `quiet` (stdout holds JSON)."""
    if not model_replies:
        with control(config, for_workflow=for_workflow) as client:
            yield client, None
        return
    from .model_replies import ScriptedModel

    scripted = ScriptedModel.load(config, model_replies)
    print(scripted.banner, file=sys.stderr if quiet else sys.stdout, flush=True)
    with (
        scripted.serve(),
        control(
            config,
            prefer_daemon=False,
            for_workflow=for_workflow,
            skip_llm_shadows=scripted.skip_llm_shadows,
        ) as client,
    ):
        yield client, scripted


@contextlib.contextmanager
def control_for_run(config: ProjectConfig, run_id: str) -> Iterator[ControlClient]:
    """A Control client of the host that runs `run_id`, for what only that host can do
    (approve, deny, cancel). A run may be on a host embedded in another `tandem` command
    (`tandem run` without a daemon, or with --model-replies beside one): that host serves
    Control in its own socket folder, found from the run's host process in the store.
    Otherwise, as `control()`: the daemon's, or an embedded host's."""
    from tandem.client import ControlClient

    pid = _host_pid(config, run_id)
    socket = config.embedded_control_socket(pid) if pid is not None else None
    client = ControlClient.connect(socket) if socket is not None else None
    if client is not None:
        with contextlib.closing(client):
            yield client
        return
    with control(config) as client:
        yield client


def _host_pid(config: ProjectConfig, run_id: str) -> int | None:
    """The run's host process, read from the store directly (WAL: beside any host)."""
    from tandem.store import open_existing_store

    store = open_existing_store(config)
    if store is None:
        return None
    try:
        return store.host_pid(run_id)
    finally:
        store.close()


def needed_plugins(config: ProjectConfig, workflow: str) -> set[str] | None:
    """The plugins a workflow's `tools:` names, read from its workflow.yaml; None (all of
    them) when it cannot tell, e.g. a pattern like `*.get`."""
    import yaml

    try:
        spec = yaml.safe_load((config.workflows_dir / workflow / "workflow.yaml").read_text())
        patterns = [str(p) for p in spec.get("tools", [])]
        if ((spec.get("approvals") or {}).get("notify") or {}).get("slack"):
            patterns.append("slack.post_message")  # the host announces held calls there
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        return None
    plugins = {pattern.partition(".")[0] for pattern in patterns}
    if any(set(name) & set("*?[") for name in plugins):
        return None
    return plugins


def rpc_error(error: Exception) -> UsageError:
    details = error.details() if hasattr(error, "details") else str(error)
    if "larger than max" in str(details):  # gRPC's own words for an oversized message
        from tandem_sdk.protocol import MAX_MESSAGE_BYTES

        details = (
            f"the request is over the message limit of {MAX_MESSAGE_BYTES} bytes ({details}); "
            "pass a smaller payload (a reference to the data rather than the data), or raise "
            "the limit with TANDEM_MAX_MESSAGE_BYTES in the daemon's environment and this one"
        )
    return UsageError(details)


def read_payload(text: str) -> Any:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as error:
            raise UsageError(f"--payload: cannot read {text[1:]}: {error.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--payload is not valid JSON: {error}") from None
