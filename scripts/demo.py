"""`make demo`: the pr_merged example end to end, on this machine alone.

GitHub and Slack are local stand-ins that speak their real wire formats (the plugins use
the real slack_sdk and githubkit clients); the model is the Messages API stand-in
replaying a recorded conversation unless ANTHROPIC_API_KEY is set. The daemon is a real
`tandem serve --http`, reached by a signed GitHub webhook delivery. Everything started
here is stopped before it exits.

The demo's own copy of the workflow (in its state folder) starts configured with
`coordinator: llm`, as a workflow does before it has a script; then it is switched to
`coordinator: script` (what `tandem rewrite --write` does) and reloaded. That switch is the
migration the closing ledger measures: llm -> script, per run, before and after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tandem.cli.stats import headline
from tandem.client import ControlClient
from tandem.config import load_config
from tandem.replay import attempted_plan
from tandem.store import Event, RunRecord
from tandem.testing import AnthropicStandIn
from tandem.testing.github_api import GitHubStandIn, pull_request_event
from tandem.testing.github_webhook import deliver
from tandem.testing.pr_merged import webhook_conversation
from tandem.testing.slack_api import SlackStandIn
from tandem.testing.workspace import CHANNELS, MESSAGES, OWNER, REPO
from tandem_sdk._pb import control_pb2

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "workflows" / "pr_merged"
PULL = 101
SECRET = "demo-webhook-secret"
READY_TIMEOUT_S = 60
TTY = sys.stdout.isatty()


def style(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if TTY else text


def bold(text: str) -> str:
    return style(text, "1")


def dim(text: str) -> str:
    return style(text, "2")


def green(text: str) -> str:
    return style(text, "32")


def red(text: str) -> str:
    return style(text, "31")


def tandem_command(state: Path) -> list[str]:
    """`tandem` on the demo's state folder and its own copy of the workflows."""
    command = [sys.executable, "-m", "tandem.cli", "--project", str(ROOT), "--state", str(state)]
    return [*command, "--workflows", str(state / "workflows")]


def copy_workflow(state: Path) -> Path:
    """The demo's copy of pr_merged, configured with the llm coordinator to begin with."""
    folder = state / "workflows" / WORKFLOW.name
    shutil.copytree(WORKFLOW, folder, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    set_coordinator(folder, "llm")
    return folder


def set_coordinator(folder: Path, coordinator: str) -> None:
    spec = folder / "workflow.yaml"
    text = re.sub(r"^coordinator: \w+", f"coordinator: {coordinator}", spec.read_text(), flags=re.M)
    spec.write_text(text)


def heading(number: int, text: str) -> None:
    print(f"\n{bold(f'{number}. {text}')}")


class Daemon:
    """`tandem serve --http` for the demo, its log kept in the state folder."""

    def __init__(self, state: Path, env: dict[str, str], *options: str) -> None:
        self.state = state
        self.log_path = state / "daemon.log"
        self._log = self.log_path.open("w")
        command = [*tandem_command(state), "serve", "--http", "127.0.0.1:0", "--no-reload"]
        self.process = subprocess.Popen(
            [*command, *options],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            # Its own session: a Ctrl-C reaches this script alone, which stops it in order.
            start_new_session=True,
        )
        self.url = self._wait_ready()
        self.client = ControlClient(load_config(ROOT, state_dir=state).control_socket)
        self.workflows = state / "workflows"

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.log_path.read_text()
            if "control socket" in text:
                match = re.search(r"http listener (http://\S+)", text)
                if match:
                    return match.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the daemon did not start; its log:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def follow(self, run_id: str) -> RunRecord:
        for event in self.client.watch(run_id):
            line = describe(event)
            if line:
                print(f"   {dim('│')} {line}", flush=True)
        return self.client.run(run_id)


def short(value: Any, width: int = 90) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", "="))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def arguments(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={short(v, 40)}" for k, v in args.items())


def describe(event: Event) -> str | None:
    """One line a person reads, or None for events the demo leaves out."""
    data = event.data
    if event.kind == "tool.call":
        return f"{bold(data['tool'])}({arguments(data.get('arguments', {}))})"
    if event.kind == "tool.result":
        took = f"{data.get('duration_ms', 0):.0f} ms"
        if not data.get("ok"):
            return (
                f"  {red('✗')} {data.get('error_type')}: {short(data.get('message'))}  {dim(took)}"
            )
        return f"  → {summarise(data['tool'], data.get('result'))}  {dim(took)}"
    if event.kind == "model.response":
        usage = data.get("usage", {})
        tokens = f"{tokens_in(usage)} in / {usage.get('output_tokens', 0)} out"
        said = f' "{short(data["text"], 70)}"' if data.get("text") else ""
        return f"{style('model', '35')} {data.get('stop_reason')}{said}  {dim(tokens + ' tokens')}"
    if event.kind == "process.started":
        return dim(f"script process {data.get('pid')} ({data.get('isolation')} sandbox)")
    return None


def tokens_in(usage: dict[str, int]) -> int:
    """Input tokens, cached or not: what the prompt cost to read."""
    keys = ("input_tokens", "cache_read_tokens", "cache_write_tokens")
    return sum(int(usage.get(key, 0)) for key in keys)


def summarise(tool: str, result: Any) -> str:
    if tool == "slack.get_messages" and isinstance(result, list):
        linked = sum(1 for m in result if m.get("links"))
        return f"{len(result)} messages, {linked} with links"
    if tool == "github.pr_status" and isinstance(result, dict):
        pull = f"{result.get('owner')}/{result.get('repo')}#{result.get('number')}"
        return f"{pull} is {bold(str(result.get('state')))}"
    if tool == "slack.add_reaction" and isinstance(result, dict):
        return f":{result.get('name')}: on {result.get('ts')}"
    if tool == "files.read":
        return short(result, 60)
    return short(result)


def run_both(daemon: Daemon, slack: SlackStandIn) -> dict[str, tuple[RunRecord, list[Any]]]:
    results: dict[str, tuple[RunRecord, list[Any]]] = {}
    event = pull_request_event(PULL, action="closed")
    heading(1, f"GitHub delivers: pull_request closed, {OWNER}/{REPO}#{PULL} merged")
    answer = deliver(f"{daemon.url}/hooks/github", "pull_request", event, secret=SECRET)
    sent = f"POST /hooks/github (signed, delivery {answer.delivery[:8]}…)"
    told = answer.body.get("status") if isinstance(answer.body, dict) else answer.body
    print(f"   {sent} -> {answer.status} {told}, run {answer.body.get('run_id')}")
    if answer.status != 202:
        raise RuntimeError(f"the webhook was refused: {answer.status} {answer.body}")
    again = deliver(
        f"{daemon.url}/hooks/github", "pull_request", event, secret=SECRET, delivery=answer.delivery
    )
    print(
        f"   the same delivery again -> {again.status} {again.body.get('status')} (no second run)"
    )

    heading(2, "The LLM coordinator runs it (prompt.md; workflow.yaml says coordinator: llm)")
    record = daemon.follow(answer.body["run_id"])
    results["llm"] = (record, list(slack.reactions_added))
    outcome(record, results["llm"][1])

    heading(3, "Switched to coordinator: script (script.py); the same trigger again")
    set_coordinator(daemon.workflows / WORKFLOW.name, "script")
    errors = daemon.client.stub.Reload(control_pb2.ReloadRequest()).errors
    if errors:
        raise RuntimeError(f"the workflow did not reload: {list(errors)}")
    print("   workflow.yaml edited and reloaded: a new version, configured script")
    slack.reset()
    run_id = daemon.client.trigger("pr_merged", record.trigger, None)
    script = daemon.follow(run_id)
    results["script"] = (script, list(slack.reactions_added))
    outcome(script, results["script"][1])
    return results


def outcome(record: RunRecord, added: list[Any]) -> None:
    took = (record.finished_at or 0) - (record.started_at or 0)
    if record.status == "succeeded":
        print(f"   {green('✓')} succeeded in {took:.2f} s, {len(added)} reaction(s) added")
    else:
        print(f"   {red('✗')} {record.status}: {record.error}")


def show_channel(slack: SlackStandIn) -> None:
    channel = CHANNELS[0]
    heading(4, f"Slack now, #{channel.name}")
    for message in MESSAGES:
        if message.channel != channel.id:
            continue
        reactions = " ".join(f":{name}:" for name in slack.reactions(channel.id, message.ts))
        text = re.sub(r"<([^>|]+)\|([^>]+)>", r"\2", message.text)
        text = re.sub(r"<https://github.com/[^/]+/[^/]+/(pull|issues)/(\d+)>", r"#\2", text)
        print(f"   {short(text, 60):<62} {green(reactions) if reactions else ''}")


def side_by_side(results: dict[str, tuple[RunRecord, list[Any]]]) -> bool:
    heading(5, "Side by side")
    script, llm = results["script"], results["llm"]

    def tool_calls(record: RunRecord) -> int:  # as the ledger counts them: files.* left out
        return len(attempted_plan(record))

    def took(record: RunRecord) -> str:
        return f"{(record.finished_at or 0) - (record.started_at or 0):.2f} s"

    rows = [
        ("status", script[0].status, llm[0].status),
        ("reactions added", len(script[1]), len(llm[1])),
        ("tool calls", tool_calls(script[0]), tool_calls(llm[0])),
        ("model calls", script[0].usage["model_calls"], llm[0].usage["model_calls"]),
        ("input tokens", tokens_in(script[0].usage), tokens_in(llm[0].usage)),
        (
            "  read from cache",
            script[0].usage["cache_read_tokens"],
            llm[0].usage["cache_read_tokens"],
        ),
        ("output tokens", script[0].usage["output_tokens"], llm[0].usage["output_tokens"]),
        ("duration", took(script[0]), took(llm[0])),
    ]
    print(f"   {'':<18}{bold('script'):>12}{bold('llm'):>12}")
    for name, left, right in rows:
        print(f"   {name:<18}{left!s:>12}{right!s:>12}")
    same = sorted(map(str, script[1])) == sorted(map(str, llm[1]))
    verdict = green("the same reactions") if same else red("different reactions")
    print(f"   {verdict} from the same trigger, by either coordinator")
    return same and script[0].status == llm[0].status == "succeeded"


def show_ledger(state: Path) -> None:
    heading(6, "The ledger: tandem stats pr_merged")
    command = [*tandem_command(state), "stats", "pr_merged"]
    ledger = subprocess.run(command, capture_output=True, text=True, timeout=60)
    text = ledger.stdout if ledger.returncode == 0 else ledger.stderr
    for line in text.rstrip().splitlines():
        print(f"   {line}")
    report = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=60)
    migrations = json.loads(report.stdout)["migrations"] if report.returncode == 0 else []
    for migration in migrations:
        print(f"\n   {bold(headline(migration))}")


@contextlib.contextmanager
def stand_ins(settings: dict[str, Any]) -> Iterator[tuple[SlackStandIn, dict[str, str], str]]:
    with SlackStandIn() as slack, GitHubStandIn() as github, contextlib.ExitStack() as stack:
        env = {**slack.env, **github.env, "GITHUB_WEBHOOK_SECRET": SECRET}
        if os.environ.get("ANTHROPIC_API_KEY"):
            model = "a real model (ANTHROPIC_API_KEY is set)"
        else:
            replies = webhook_conversation(PULL, settings)
            anthropic = stack.enter_context(AnthropicStandIn(replies))
            env.update(anthropic.env)
            model = f"Messages API stand-in {anthropic.base_url}, replaying a recorded conversation"
        print(f"   Slack   stand-in {slack.base_url}")
        print(f"   GitHub  stand-in {github.base_url}")
        print(f"   model   {model}")
        yield slack, env, model


def introduce() -> dict[str, Any]:
    """The example's title; returns the workflow's settings the model stand-in needs."""
    print(bold("Tandem: when a pull request merges, react in Slack to the messages that link it."))
    print(
        dim("   Everything runs on this machine; nothing here reaches Slack, GitHub or Anthropic.")
    )
    settings: dict[str, Any] = json.loads((WORKFLOW / "files" / "settings.json").read_text())
    return settings


def run_example(daemon: Daemon, slack: SlackStandIn) -> bool:
    """Steps 1 to 6 on a started daemon: whether both coordinators succeeded alike."""
    print(f"   daemon  tandem serve --http {daemon.url}")
    results = run_both(daemon, slack)
    show_channel(slack)
    ok = side_by_side(results)
    show_ledger(daemon.state)
    return ok


def main() -> int:
    settings = introduce()
    with (
        stand_ins(settings) as (slack, env, _),
        tempfile.TemporaryDirectory(prefix="tandem-demo-") as state,
    ):
        copy_workflow(Path(state))
        daemon = Daemon(Path(state), env)
        try:
            ok = run_example(daemon, slack)
        finally:
            daemon.stop()
    print(dim('\nStopped the daemon and the stand-ins. Next: README.md, "Try it for real".'))
    print(dim("The same example with the console on, in a browser: make console"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
