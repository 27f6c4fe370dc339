"""What an MCP client needs for the pattern's step 3: recorded runs as resources (a run's
trace as JSON), the brief `tandem rewrite --brief` writes as the prompt `rewrite_workflow`,
and `replay_script`, which replays a candidate script against recorded runs as `tandem
rewrite` validates one, returning each run's plan diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import mcp_types as types
from tandem_sdk.errors import TandemError

from tandem.client import ControlClient

from . import convert

SCHEME = "tandem://runs/"
PAGE = 50
MAX_LISTED = 1000
PROMPT = "rewrite_workflow"
REPLAY_TOOL = "replay_script"
SAMPLE = 3  # sample runs in the brief, as `tandem rewrite`'s default


def list_runs(
    client: ControlClient, workflow: str, cursor: str | None
) -> types.ListResourcesResult:
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    runs = client.runs(workflow, "", min(offset + PAGE + 1, MAX_LISTED))[offset:]
    page = runs[:PAGE]
    more = len(runs) > PAGE and offset + PAGE < MAX_LISTED
    return types.ListResourcesResult(
        resources=[
            types.Resource(
                uri=SCHEME + run.id,
                name=run.id,
                title=f"{run.workflow} run {run.id} ({run.mode}, {run.coordinator}, {run.status})",
                mime_type="application/json",
            )
            for run in page
        ],
        next_cursor=str(offset + PAGE) if more else None,
    )


def read_run(client: ControlClient, uri: str) -> types.ReadResourceResult:
    if not uri.startswith(SCHEME):
        raise ValueError(f"no resource {uri!r}: runs are {SCHEME}RUN_ID")
    record = client.run(uri.removeprefix(SCHEME))
    return types.ReadResourceResult(
        contents=[
            types.TextResourceContents(
                uri=uri, mime_type="application/json", text=json.dumps(record.to_json())
            )
        ]
    )


def prompt() -> types.Prompt:
    return types.Prompt(
        name=PROMPT,
        description="The brief for rewriting a workflow as a script, from its recorded runs",
        arguments=[types.PromptArgument(name="workflow", required=True)],
    )


def rewrite_brief(
    client: ControlClient, workflows_dir: Path, workflow: str, bound: str | None = None
) -> types.GetPromptResult:
    """The brief `tandem rewrite` gives the model; Refused (a ValueError: the client gets a
    protocol error saying why) for a name that is not a loaded workflow, or not `bound`."""
    from tandem.rewrite import brief_markdown, gather
    from tandem.rewrite.material import load

    workflow = _loaded(client, workflow, bound)
    material = gather(client, load(client, workflows_dir / workflow), SAMPLE)
    return types.GetPromptResult(
        description=f"rewrite workflow {workflow} as script.py",
        messages=[
            types.PromptMessage(
                role="user", content=types.TextContent(text=brief_markdown(material))
            )
        ],
    )


def replay_tool() -> types.Tool:
    return types.Tool(
        name=REPLAY_TOOL,
        title="replay a candidate script against recorded runs",
        description=(
            "Replay a candidate script.py for a workflow against its recorded runs (the"
            " given ones, or every run `tandem rewrite` validates against) and return, per"
            " run, whether it agrees and the plan diff. No tool with side effects runs."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "workflow": {
                    "type": "string",
                    "minLength": 1,
                    "description": "a workflow's name (the server's own when bound to one)",
                },
                "script": {"type": "string", "description": "the candidate script.py source"},
                "runs": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "run ids of the workflow (default: every run to validate)",
                },
            },
            "required": ["workflow", "script"],
        },
        annotations=types.ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )


def replay_script(
    client: ControlClient,
    workflows_dir: Path,
    state_dir: Path,
    arguments: dict[str, Any],
    bound: str | None = None,
) -> types.CallToolResult:
    """The replay's report; every failure an `isError` result saying why. `bound`: the
    workflow the server serves (`--workflow W`, `/mcp/W`), the only one it replays."""
    try:
        return _replay(client, workflows_dir, state_dir, arguments, bound)
    except grpc.RpcError as error:
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        return convert.error(f"{REPLAY_TOOL}: {details}")
    except (Refused, TandemError) as error:
        return convert.error(f"{REPLAY_TOOL}: {error}")


class Refused(ValueError):
    """Arguments replay_script or the rewrite prompt does not take."""


def _loaded(client: ControlClient, name: str, bound: str | None) -> str:
    """`name` when it names a workflow the daemon has loaded (and the one the server is
    bound to, if it is): a name, never a path, so the folder is the workflow's own."""
    if bound is not None and name != bound:
        raise Refused(f"this server serves workflow {bound!r} only, not {name!r}")
    known = sorted(w.name for w in client.workflows() if w.loaded)
    if name not in known:
        raise Refused(f"no workflow named {name!r}; the workflows: {', '.join(known) or 'none'}")
    return name


def _replay(
    client: ControlClient,
    workflows_dir: Path,
    state_dir: Path,
    arguments: dict[str, Any],
    bound: str | None,
) -> types.CallToolResult:
    from tandem.rewrite import table, validate, write_candidate
    from tandem.rewrite.material import load, recorded_runs

    name, script = arguments.get("workflow"), arguments.get("script")
    wanted = arguments.get("runs") or []
    if not isinstance(name, str) or not name:
        raise Refused("`workflow` is required: the name of a workflow")
    if not isinstance(script, str):
        raise Refused("`script` is required: the candidate script.py source, as a string")
    if not isinstance(wanted, list) or not all(isinstance(r, str) for r in wanted):
        raise Refused("`runs`, when given, is a list of run ids")
    workflow = load(client, workflows_dir / _loaded(client, name, bound))
    runs = [client.run(r) for r in wanted] if wanted else recorded_runs(client, name)
    if others := [r.id for r in runs if r.workflow != name]:
        raise Refused(f"run(s) {', '.join(others)} are not runs of workflow {name!r}")
    if not runs:
        return convert.error(f"workflow {name} has no recorded runs to replay")
    candidate = write_candidate(workflow, state_dir, script)
    verdicts = validate(client, runs, candidate)
    report = {"agreed": all(v.agree for v in verdicts), "runs": [v.to_json() for v in verdicts]}
    return convert.result(report, "\n".join(table(verdicts)))
