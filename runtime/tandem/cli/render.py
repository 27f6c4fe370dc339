"""How runs and their traces read in a terminal."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection
from typing import Any, TextIO

from tandem_sdk.plan import in_plan

from tandem.store import Event, RunRecord

# What a terminal acts on rather than shows: C0 and C1 controls but newline and tab, DEL,
# and the bidirectional overrides that reorder what follows them.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Where a trace line's text starts after the timestamp and kind; continuation lines of
# what a run wrote are indented past it, so none can pass for a line of the trace.
CONTINUED = " " * 24


def visible(text: str, indent: str | None = None) -> str:
    """`text`, from a run, a tool, a plugin or the model, made safe to print: a control
    character shows as its escape (ESC as `\\x1b`, CR as `\\r`), so it can neither drive
    the terminal nor overwrite a line; with `indent`, every line after the first starts
    with it, so the text cannot start a line of its own."""
    text = _CONTROLS.sub(_escape, text)
    return text if indent is None else text.replace("\n", "\n" + indent)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x0D:
        return "\\r"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class VisibleOutput:
    """A text stream that passes every write through `visible`: the CLI prints what runs,
    tools and plugins said in many places, and none of it may reach the terminal raw.
    JSON output passes unchanged (json.dumps escapes every control character itself)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(visible(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _short(value: Any, width: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 3] + "..."


def format_event(event: Event) -> str:
    data = event.data
    kind = event.kind
    if kind == "tool.call":
        body = f"{data['tool']}({_short(data.get('arguments', {}))})"
        mark = SOURCE_MARKS.get(str(data.get("source", "plugin")), "")
        if data.get("subagent"):
            mark = f"[{data['subagent']}] " + mark
        body = f"{body}  {mark}".rstrip()
    elif kind == "tool.result":
        outcome = (
            _short(data.get("result"))
            if data.get("ok")
            else f"ERROR {data.get('error_type')}: {data.get('message')}"
        )
        body = f"{data['tool']} -> {outcome}  [{data.get('duration_ms', 0):.1f} ms]"
    elif kind == "tool.refused":
        body = f"{data['tool']} refused: {data.get('error')}: {data.get('message')}"
    elif kind in ("stdout", "stderr"):
        body = data.get("text", "").rstrip("\n")
    elif kind == "log":
        body = f"[{data.get('level')}] {data.get('message')}" + (
            f" {_short(data['fields'])}" if data.get("fields") else ""
        )
    elif kind == "run.finished":
        body = data["status"] + (f": {data['error']}" if data.get("error") else "")
        if data.get("details"):
            body += "\n" + str(data["details"]).rstrip()
    elif kind == "run.started":
        body = f"{data.get('workflow')} ({data.get('coordinator')}, version {data.get('version')})"
        if data.get("mode", "live") != "live":
            body += f"  {str(data['mode']).upper().replace('_', ' ')}"
            if data.get("source_run"):
                body += f" of {data['source_run']}"
    elif kind == "model.response":
        body = _model_response(data)
    elif kind == "run.escalated":
        body = f"the script handed the run to the model after {data.get('calls')} call(s):"
        body += f" {data.get('reason')}" + (
            f"  context {_short(data['context'])}" if data.get("context") is not None else ""
        )
    elif kind == "approval.waiting":
        body = f"{_held(data)} ({data['tool']}) WAITS for approval: {data['decide']}"
    elif kind == "approval.decided":
        verdict = "approved" if data.get("approved") else f"DENIED ({data.get('reason')})"
        body = f"{_held(data)} ({data['tool']}) {verdict}"
    else:
        body = _short(data)
    body = visible(body, CONTINUED)
    stamp = (
        time.strftime("%H:%M:%S", time.localtime(event.ts)) + f".{int(event.ts * 1000) % 1000:03d}"
    )
    return f"{stamp} {kind:<14} {body}"


def _held(data: dict[str, Any]) -> str:
    """A call held for approval, by its number in the trace (a subagent's has none)."""
    return f"call {data['call']}" if "call" in data else "a subagent's call"


# How a call was answered, marked in the trace (and the console); a plain call ran for real.
SOURCE_MARKS = {
    "plugin": "",
    "planned": "[planned: dry run, not executed]",
    "recording": "[answered from the recording]",
    "unrecorded": "[no recorded answer]",
}


class TraceRenderer:
    """Trace lines that number the run's own tool calls (`call 1`, `call 2`, ...), as
    `tandem runs flag --call N` counts them; a finished run's flagged calls (0-based
    indexes, as the flag keeps them) and denied ones (their tool.call seqs) are marked."""

    def __init__(self, flagged: Collection[int] = (), denied: Collection[int] = ()) -> None:
        self.calls = 0
        self.flagged = flagged
        self.denied = denied

    @classmethod
    def of(cls, record: RunRecord) -> TraceRenderer:
        # Keyed by the tool.call seq its result names (approval events carry the call's
        # number in the trace instead, or none for a subagent's call).
        denied = {
            int(e.data["call"])
            for e in record.events
            if e.kind == "tool.result" and denied_result(e.data)
        }
        return cls((record.flag or {}).get("calls", []), denied)

    def line(self, event: Event) -> str:
        text = format_event(event)
        if own_call(event):
            self.calls += 1
            marks = "".join(
                (
                    "  FLAGGED" if self.calls - 1 in self.flagged else "",
                    "  DENIED" if event.seq in self.denied else "",
                )
            )
            return f"{text}  (call {self.calls}){marks}"
        return text


def denied_result(data: dict[str, Any]) -> bool:
    """A tool.result's data says the call was held and then denied (or not decided in
    time), so it never ran."""
    return not data.get("ok") and data.get("error_type") == "denied"


def own_call(event: Event) -> bool:
    """A call of the run's own, numbered in the trace (`call 1`, ...): not a subagent's,
    nor one of the tools outside the plan."""
    data = event.data
    return event.kind == "tool.call" and not data.get("subagent") and in_plan(str(data["tool"]))


def numbered_calls(record: RunRecord, width: int = 100) -> dict[int, str]:
    """The run's own calls by their number in the trace, as `tool(arguments)` shortened
    to about `width` characters; numbered as TraceRenderer numbers them."""
    calls: dict[int, str] = {}
    for event in record.events:
        data = event.data
        if own_call(event):
            calls[len(calls) + 1] = f"{data['tool']}({_short(data.get('arguments', {}), width)})"
    return calls


def _model_response(data: dict[str, Any]) -> str:
    usage = data.get("usage", {})
    body = (
        f"{data.get('stop_reason')}  in {usage.get('input_tokens', 0)}"
        f" out {usage.get('output_tokens', 0)} cache read {usage.get('cache_read_tokens', 0)}"
        f" write {usage.get('cache_write_tokens', 0)}  [{data.get('latency_ms', 0):.0f} ms]"
    )
    uses = [f"{u.get('tool')}({_short(u.get('input', {}), 60)})" for u in data.get("tool_uses", [])]
    if uses:
        body += " -> " + ", ".join(uses)
    if data.get("text"):
        body += "  " + _short(data["text"], 100)
    return ("" if "subagent" not in data else f"[{data['subagent']}] ") + body


def usage_line(usage: dict[str, int]) -> str:
    return (
        f"model calls {usage.get('model_calls', 0)}, tokens in {usage.get('input_tokens', 0)}"
        f" out {usage.get('output_tokens', 0)} cache read {usage.get('cache_read_tokens', 0)}"
        f" write {usage.get('cache_write_tokens', 0)}"
    )


def format_run(record: RunRecord, *, trace: bool) -> str:
    lines = [
        f"run {record.id}  {record.workflow}  {record.coordinator}  {record.status}",
        f"  version {record.workflow_version}, {duration(record)}",
        f"  usage: {usage_line(record.usage)}",
    ]
    if record.mode != "live":
        source = f" of {record.source_run}" if record.source_run else ""
        lines.append(f"  mode: {record.mode.replace('_', ' ')}{source}")
    if record.rerun_of:
        lines.append(f"  rerun of {record.rerun_of}")
    if record.excluded is not None:
        why = record.excluded.get("reason") or "no reason given"
        lines.append(f"  EXCLUDED from rewrite validation, shadows and stats: {_field(why)}")
    if record.flag:
        calls = ", ".join(str(i + 1) for i in record.flag.get("calls", []))
        lines.append(
            f"  FLAGGED: {_field(record.flag.get('reason'))}"
            + (f" (calls {calls})" if calls else "")
        )
    plugins = {
        f"{e.data['tool'].partition('.')[0]} {e.data['plugin_version']}"
        for e in record.events
        if e.kind == "tool.call" and e.data.get("plugin_version")
    }
    if plugins:
        lines.append(f"  plugins: {_field(', '.join(sorted(plugins)))}")
    if record.error:
        lines.append(f"  error: {_field(record.error)}")
    if record.output is not None:
        lines.append("  output: " + json.dumps(record.output, indent=2).replace("\n", "\n  "))
    if trace:
        lines.append("  trigger: " + json.dumps(record.trigger, indent=2).replace("\n", "\n  "))
        lines.append("  trace:")
        renderer = TraceRenderer.of(record)
        lines.extend("    " + renderer.line(e) for e in record.events)
    return "\n".join(lines)


def _field(value: object) -> str:
    """A field of the run's own (its error, a reason), its lines kept under its label."""
    return visible(str(value), CONTINUED)


def duration(record: RunRecord) -> str:
    if record.started_at and record.finished_at:
        return f"{record.finished_at - record.started_at:.3f}s"
    return "not finished"


def format_run_row(record: RunRecord) -> str:
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created_at))
    usage = record.usage
    tokens = sum(
        usage.get(k, 0)
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    )
    marks = "".join(
        (
            f" [{record.mode.replace('_', ' ')}]" if record.mode != "live" else "",
            " [flagged]" if record.flag else "",
            " [excluded]" if record.excluded is not None else "",
            f" [rerun of {record.rerun_of}]" if record.rerun_of else "",
            f" [#{record.queue_position} in line]" if record.queue_position else "",
        )
    )
    return (
        f"{record.id:<24} {created}  {record.workflow:<20} {record.coordinator:<7}"
        f" {record.status:<11} {duration(record):>12}  {tokens:>8} tok (all, cache incl.){marks}"
    )


def signature(schema: dict[str, Any]) -> str:
    """A tool's arguments as a signature: `channel: string, limit: integer = 20`, required
    ones first, in the schema's order."""
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))

    def typed(name: str) -> str:
        prop = properties[name]
        kind = (
            prop.get("type")
            or " | ".join(str(option.get("type", "any")) for option in prop.get("anyOf", []))
            or "any"
        )
        if "enum" in prop:
            kind = " | ".join(json.dumps(v) for v in prop["enum"])
        text = f"{name}: {kind}"
        if name not in required:
            text += f" = {json.dumps(prop.get('default'))}"
        return text

    ordered = [n for n in properties if n in required] + [
        n for n in properties if n not in required
    ]
    return ", ".join(typed(name) for name in ordered)
