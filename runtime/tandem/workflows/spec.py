"""The schema of `workflow.yaml`. Unknown keys are errors, so typos cannot pass silently."""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tandem.cron import check_cron

DEFAULT_MODEL = "claude-sonnet-5-5"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    timeout_s: Annotated[float, Field(gt=0, le=86_400)] = 300
    max_tool_calls: Annotated[int, Field(ge=1, le=100_000)] = 100
    max_turns: Annotated[int, Field(ge=1, le=1_000)] = 20
    max_tokens: Annotated[int, Field(ge=1_000)] = 200_000
    memory_mb: Annotated[int, Field(ge=64, le=65_536)] = 512
    # Log lines a run may write to its trace, and their bytes; more are dropped and counted.
    max_log_lines: Annotated[int, Field(ge=0, le=1_000_000)] = 10_000
    max_log_bytes: Annotated[int, Field(ge=0, le=1024**3)] = 8 * 1024 * 1024
    # Runs of this workflow in flight at once; more wait in the queue (default: no own limit).
    max_in_flight: Annotated[int, Field(ge=1)] | None = None


class Guards(_Strict):
    """How the host runs the workflow's guards.py (see tandem.guards)."""

    # A guard that has not answered by then refuses the call; its process is restarted.
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0


class Webhook(_Strict):
    """An HTTP path the daemon serves (`tandem serve --http`). Every delivery is verified:

    - `verify: github` (default): HMAC-SHA256 of the raw body in `X-Hub-Signature-256`;
      `X-GitHub-Event` may be filtered by `events`, the payload's `action` by `actions`,
      and `X-GitHub-Delivery` deduplicates redeliveries.
    - `verify: hmac`: any sender signing the raw body with HMAC-SHA256 into `header`
      (hex, optionally prefixed `sha256=`); `delivery_header`, if named, deduplicates.
    """

    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_.-]*$", max_length=200)]
    verify: Literal["github", "hmac"] = "github"
    secret_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    events: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] = "X-Signature-256"
    delivery_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] | None = None

    @model_validator(mode="after")
    def _events_need_github(self) -> Webhook:
        if self.events and self.verify != "github":
            raise ValueError("events filters GitHub's X-GitHub-Event: it needs verify: github")
        return self


class Trigger(_Strict):
    """Exactly one of: `manual: {}`, `schedule: "<cron>"`, `webhook: {path, secret_env, ...}`."""

    manual: dict[str, Any] | None = None
    schedule: str | None = None
    webhook: Webhook | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            check_cron(value)  # BadCron is a ValueError: pydantic names the field
        return value

    def kind(self) -> str:
        set_fields = [k for k in ("manual", "schedule", "webhook") if getattr(self, k) is not None]
        if len(set_fields) != 1:
            raise ValueError("a trigger has exactly one of manual, schedule, webhook")
        return set_fields[0]

    def describe(self) -> str:
        kind = self.kind()
        if kind == "schedule":
            return f"schedule {self.schedule}"
        if kind == "webhook" and self.webhook:
            return f"webhook {self.webhook.path}"
        return kind


# A Slack channel as a name ("approvals", "#approvals") or an ID ("C0123456789").
SLACK_CHANNEL = r"^(#?[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{8,})$"


class ApprovalNotify(_Strict):
    """Where a held call is announced besides the trace: `slack: CHANNEL` posts it there
    with Approve / Deny buttons (through the `slack` plugin)."""

    slack: str

    @field_validator("slack")
    @classmethod
    def _channel(cls, value: str) -> str:
        if not re.match(SLACK_CHANNEL, value):
            raise ValueError(
                f"{value!r} is not a Slack channel: give a name like 'approvals' (lower"
                " case, no spaces) or a channel ID like 'C0123456789'"
            )
        return value


class Approvals(_Strict):
    """Which tool calls wait for a person, per coordinator: `destructive` (tools annotated
    so), `side_effects` (every tool that is not read-only), or tool names and globs. A
    subagent's calls follow the `llm` list. `timeout_s`: how long a call waits before it
    is denied (default: until just before the run's own time limit). `notify`: where
    else a held call is announced (`{slack: CHANNEL}`)."""

    llm: list[str] = Field(default_factory=list)
    script: list[str] = Field(default_factory=list)
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    notify: ApprovalNotify | None = None

    def required(self, coordinator: str, tool: str, destructive: bool, read_only: bool) -> bool:
        if read_only:
            return False
        rules = self.llm if coordinator == "llm" else self.script
        return any(
            (rule == "destructive" and destructive)
            or rule == "side_effects"
            or fnmatch.fnmatchcase(tool, rule)
            for rule in rules
        )


class WorkflowSpec(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
    description: str = ""
    triggers: list[Trigger] = Field(default_factory=lambda: [Trigger(manual={})])
    coordinator: Literal["llm", "script"]
    coordinator_script: str | None = None
    prompt: str | None = None
    model: str = DEFAULT_MODEL
    tools: list[str] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    isolation: Literal["process", "namespace"] | None = None
    # Run the other coordinator beside every real trigger, as a dry run answered from the
    # primary run's recording, and keep the two plans' diff (`tandem shadow`).
    shadow: Literal["llm", "script"] | None = None
    approvals: Approvals = Field(default_factory=Approvals)
    guards: Guards = Field(default_factory=Guards)
    # What a manual or Control trigger's payload must look like (JSON Schema 2020-12):
    # checked before a run is made, shown to the model and by `tandem workflows`.
    input_schema: dict[str, Any] | None = None

    @field_validator("triggers")
    @classmethod
    def _one_kind_each(cls, triggers: list[Trigger]) -> list[Trigger]:
        for trigger in triggers:
            trigger.kind()
        return triggers
