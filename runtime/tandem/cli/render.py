"""How runs and their traces read in a terminal."""

from __future__ import annotations

import json
import time
from typing import Any

from tandem.store import Event, RunRecord


def _short(value: Any, width: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 3] + "..."


def format_event(event: Event) -> str:
    data = event.data
    kind = event.kind
    if kind == "tool.call":
        body = f"{data['tool']}({_short(data.get('arguments', {}))})"
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
        body = data.get("text", "").rstrip("\n").replace("\n", "\n" + " " * 24)
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
    elif kind == "model.response":
        body = _model_response(data)
    else:
        body = _short(data)
    stamp = (
        time.strftime("%H:%M:%S", time.localtime(event.ts)) + f".{int(event.ts * 1000) % 1000:03d}"
    )
    return f"{stamp} {kind:<14} {body}"


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
    if record.error:
        lines.append(f"  error: {record.error}")
    if record.output is not None:
        lines.append("  output: " + json.dumps(record.output, indent=2).replace("\n", "\n  "))
    if trace:
        lines.append("  trace:")
        lines.extend("    " + format_event(e) for e in record.events)
    return "\n".join(lines)


def duration(record: RunRecord) -> str:
    if record.started_at and record.finished_at:
        return f"{record.finished_at - record.started_at:.3f}s"
    return "not finished"


def format_run_row(record: RunRecord) -> str:
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created_at))
    tokens = record.usage.get("input_tokens", 0) + record.usage.get("output_tokens", 0)
    return (
        f"{record.id:<24} {created}  {record.workflow:<20} {record.coordinator:<7}"
        f" {record.status:<11} {duration(record):>12}  {tokens:>8} tok"
    )
