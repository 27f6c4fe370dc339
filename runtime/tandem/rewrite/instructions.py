"""The words of a rewrite: what a script is written against (the SDK's surface, true to
`tandem_sdk.script` and `tandem_sdk.errors`), what makes a script acceptable, and what
the model must answer. The model's system prompt and the brief for a person share them."""

from __future__ import annotations

SDK_SURFACE = """\
A script coordinator is a Python module (the standard library and `tandem_sdk` only) that
defines one function:

    def handler(trigger, tools, virtual_files, subagent):
        ...
        return result  # anything JSON-serialisable: the run's output

For each run the host imports the module in a fresh sandboxed process and calls `handler`
once. An exception it does not catch fails the run (the traceback is kept in the run's
trace); `print` goes to the trace too.

- `trigger`: the run's trigger payload, as JSON (dict, list, str, number, bool or None):
  - a manual run: the payload given (`tandem run WORKFLOW --payload JSON`), None if none;
  - a schedule: `{"trigger": "schedule", "schedule": CRON, "slot": ISO_TIME}`;
  - a webhook: `{"trigger": "webhook", "path": PATH, "event": EVENT, "delivery": ID,
    "payload": THE_DELIVERED_JSON_BODY}` (EVENT is GitHub's `X-GitHub-Event`).
  - an MCP session (coordinator `mcp`: a person called the workflow's tools from an MCP
    client): `{"mcp_client": {"name": NAME, "version": VERSION}}`. The person chose each
    call; a script replayed against the session must make the same calls.
- `tools`: the tools in the workflow's scope, and only those.
  - `tools.<plugin>.<tool>(**kwargs)` calls the tool `<plugin>.<tool>` (for example
    `tools.slack.add_reaction(channel="eng", ts=ts, name="merged")`) and returns its
    result as JSON (dict, list, str, number, bool or None). Keyword arguments only: a
    positional argument raises TypeError.
  - A name that is not a Python identifier (an MCP server's tool may hold `-`) is reached
    by item access: `tools["my-server"]["get-thing"](**kwargs)`.
  - The tools of an MCP server (`mcp_servers:` in tandem.yaml, or `.mcp.json`) are
    `<server>.<tool>` and are called the same way (`tools.git.git_status(repo_path=repo)`):
    the result is the tool's structured content when it declares an output schema, else
    its text; a result the server marks `isError` raises `ToolError`.
  - `tools.call("plugin.tool", {...})` does the same by name; `tools.list()` names the
    tools in scope; `tools.describe()` gives each one's `ToolInfo(name, description,
    input_schema, annotations)`.
  - The host checks the scope and the arguments (against the tool's JSON schema) before
    every call, the same way as for a model.
- `virtual_files`: a read-only mapping of the workflow's declared files by virtual path:
  `virtual_files["settings.json"]` is the file's text (UTF-8),
  `virtual_files.read_bytes(path)` its bytes, `list(virtual_files)` the paths,
  `path in virtual_files` a test. A file that is not declared raises NotFound.
- `subagent(prompt, input=None, schema=None, tools=None, model=None)`: ask an LLM for help
  where code cannot decide. Returns the model's text, or, with `schema` (a JSON Schema),
  its answer parsed and validated against it. `tools` names some of the run's own tools
  the model may use (globs allowed; none by default); `model` defaults to the workflow's.
  Its tokens count against the run's budget. `subagent.last` holds the last call's
  `SubagentResult(text, output, usage)`.

Errors, one tree (`from tandem_sdk import ToolError, NotFound, ...`, or
`from tandem_sdk import errors` and then `errors.ToolError`); the base is `TandemError`:

- `ToolError`: the tool ran and failed. It is a result the script decides on: catch it and
  carry on, or let it fail the run. `.type` is a code to match on (a plugin's own, such as
  `"not_found"` or `"already_reacted"`, else the class name of the exception the tool
  raised), `.reason` the message, `.tool` the tool's name, `.retryable` a bool;
  `str(error)` is `"<tool>: <type>: <reason>"`.
  - `GuardRefused`: a guard of the workflow (guards.py) refused the call, which was not
    made; `.type` is `"guard_refused"`, `.reason` says which guard and why.
- `InterfaceError` (fields `.tool`, `.run_id`): the host refused the call.
  - `ToolNotInScope`: the tool is not in the workflow's `tools:`.
  - `InvalidArguments`: the arguments fail the tool's schema (the message says where).
  - `NotFound`: no such tool or virtual file.
  - `LimitExceeded`: a run limit was hit; the run fails even if the script catches it.
  - `ToolUnavailable` (retryable): the plugin or MCP server is down or crashed mid-call.
  - `ToolTimeout` (retryable): the plugin did not answer in time.
  - `Unauthenticated`: a bad or ended run token.
- `SubagentError`: the subagent gave no valid answer (a refusal, an API error, or an answer
  that missed the schema twice).
- `Escalate(reason, context=None)`: not an error but a hand-over, raised by the script
  itself (`raise Escalate("...", context={...})`, or `subagent.take_over(reason,
  context=...)`) for a case it was not written for: its part of the run ends and the model
  carries the same run on, told the reason, the context (JSON) and the calls made so far.
  Only a workflow with a prompt can escalate.
"""

ACCEPTANCE = """\
The script is accepted when, replayed against every recorded run of the workflow, it
agrees with the run. A replay calls `handler` with the run's trigger and answers every tool
call from the run's recording (a call with the same tool and the same arguments gets the
recorded result, or raises the recorded error again); nothing really runs. A call the
recording cannot answer raises `ToolError` with type `"not_recorded"`. The script agrees
with a run when it raises nothing and makes the same tool calls with the same arguments as
the run did (in any order), and, for a run a script made (and did not escalate), returns
the same output. Reads of virtual files are inputs, not calls. A run a person flagged
marks some of its calls as wrong: there the script must make every other recorded call,
and never the flagged ones. A call a person denied in an approval is wrong the same way,
and so is a call a guard refused (marked REFUSED).
"""

GUARDS = """The host asks these guards before each tool call, the script's as the model's, with the
call (`{"tool", "arguments"}`) and the run's calls so far (`[{"tool", "arguments",
"result" | "error", "refused"}]`). A guard returning a string refuses the call: it is not
made, and the script gets `GuardRefused` (a `ToolError` of type `"guard_refused"`). The
script must not make a call they refuse: check first what the guard checks."""

TASK = """\
Rewrite the workflow below, coordinated until now by a language model following its
prompt, as a Python script that does the same job deterministically: the `script.py` of
`coordinator: script`, to be reviewed like any code.

- Define `handler(trigger, tools, virtual_files, subagent)`; use only the standard library
  and `tandem_sdk`.
- Call the tools in scope only, as `tools.<plugin>.<tool>(keyword=argument, ...)`, with
  arguments valid against their input schemas.
- Take settings from the virtual files, as the prompt says, rather than copying their
  values into the code.
- Do what the prompt says, in every case it names. The recorded runs show how the tools
  answer, and what the model did; where a run is flagged, the model was wrong and the
  prompt is right.
- A run marked ESCALATED was started by the workflow's current script, which handed it
  to the model for a case it was not written for: the new script must handle that case
  itself, making the calls the script and then the model made.
- Handle the tool errors that the prompt or the runs show (catch `ToolError` and decide
  on its `.type`); let anything unexpected fail the run.
- Ask a `subagent` only for a judgement code cannot make; none is better.
- Return a small JSON summary of what the script did.
"""

ANSWER_FORMAT = """\
Answer with exactly one ```python code block that holds the whole of script.py, and
nothing else: no explanation before or after it."""

SYSTEM = (
    "You write Python for Tandem, a host that runs workflows coordinated either by a"
    " language model or by a reviewed script, over one tool interface.\n\n"
    f"{TASK}\n{ACCEPTANCE}\nThe SDK a script is written against:\n\n{SDK_SURFACE}\n"
    f"{ANSWER_FORMAT}"
)

REPAIR = """\
Your script does not agree with every recorded run. For each run it disagreed with, below:
the plan diff of the run's recorded tool calls against the calls your script made (`-` a
recorded call your script did not make, `+` a call your script made that was not expected,
`~` the same tool called with other arguments, `↕` made in another order, which is fine;
`·` a call a person flagged or denied, rightly left out; `!` such a call made again, which
it must never be; unmarked lines agree), the flagged calls it made again, and what it
raised. Correct the script so that it agrees with every run, these and the others."""
