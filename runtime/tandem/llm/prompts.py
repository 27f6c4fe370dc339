"""What the model is told: the system prompt of a run and of a subagent, and the first
user message. The stable part comes first and is cached; what changes per run follows."""

from __future__ import annotations

import json
from typing import Any

from tandem.llm.loop import CACHE
from tandem.llm.naming import to_api_name

JSON = dict[str, Any]
START = (
    "Carry out the task for this trigger now, using the tools when you need them. When you"
    " are done, reply with the result as your final answer."
)


def run_system(
    prompt: str, files: list[str], trigger: Any, input_schema: JSON | None = None
) -> list[JSON]:
    stable = prompt.strip()
    if input_schema is not None:  # the same for every run of this version: cached
        stable += (
            "\n\nA run triggered by hand gets a payload valid against this JSON Schema (the"
            " workflow's input_schema):\n" + _json(input_schema)
        )
    if files:
        listing = "\n".join(f"- {path}" for path in files)
        stable += (
            f"\n\nThis workflow has these files; read them with the {to_api_name('files.read')}"
            f" tool ({to_api_name('files.list')} lists them):\n{listing}"
        )
    return [
        {"type": "text", "text": stable, "cache_control": CACHE},
        {
            "type": "text",
            "text": "The run was triggered with this payload (JSON):\n" + _json(trigger),
        },
    ]


def handover(reason: str, context_json: str, calls_json: str) -> str:
    """The first user message of a run a script escalated: the workflow's prompt and the
    trigger are in the system prompt, as for any run; this says what the script did (the
    context and the calls as JSON, each cut to a budget by the caller)."""
    return (
        "This run was started by the workflow's script, which met a case it was not written"
        " for and handed the run over to you.\n\n"
        f"Its reason: {reason}\n\n"
        f"What it passed on (JSON):\n{context_json}\n\n"
        "The tool calls it made, in order, with their results (JSON). They happened: do not"
        f" make again a call with side effects that succeeded.\n{calls_json}\n\n"
        "Carry out the rest of the task for this trigger now, using the tools when you need"
        " them. When you are done, reply with the result as your final answer."
    )


def subagent_system(workflow: str, schema: JSON | None) -> list[JSON]:
    text = (
        f"You help a script of the workflow {workflow!r}: answer its request in the user"
        " message, using the tools offered if you need them."
    )
    if schema is not None:
        text += (
            "\n\nYour final answer must be one JSON value, and nothing else, that validates"
            " against this JSON Schema:\n" + _json(schema)
        )
    return [{"type": "text", "text": text, "cache_control": CACHE}]


def subagent_request(prompt: str, input: Any) -> str:
    if input is None:
        return prompt
    return f"{prompt}\n\nInput (JSON):\n{_json(input)}"


def schema_retry(problem: str) -> str:
    return (
        f"Your answer is not valid: {problem}. Answer again with only the JSON value, valid"
        " against the schema."
    )


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
